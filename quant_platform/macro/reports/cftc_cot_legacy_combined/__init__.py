"""CFTC Commitments of Traders, legacy futures-and-options combined: macro.cftc_cot_legacy_combined, one as-of week per partition.

Never import Dagster or pandas here: the vendor simulator imports this folder's routes.py without them.
"""
