"""The EIA assets by their old import path, for code outside the macro lane that still imports them (bench/release.py).

Never define an asset here: each is derived from its report folder (macro/reports/) by macro/definitions.py.
"""

from __future__ import annotations

from quant_platform.macro.definitions import MACRO_LANE

eia_wpsr = MACRO_LANE.assets["eia_wpsr"]
eia_series = MACRO_LANE.assets["eia_series"]
