"""quant_platform."""
