"""Where EIA serves a daily spot price's history workbook (dnav hist_xls), and what the vendor simulator serves there.

Never import Dagster or pandas here: the vendor simulator reads this module.
"""

from __future__ import annotations

from quant_platform.macro.routes import EIA_WWW, Route
from quant_platform.vendors.core import served_verbatim

# EIA's "Download Series History" workbook of a daily series (sheet "Data 1"): petroleum series under /dnav/pet/,
# natural gas under /dnav/ng/; each workbook's Contents sheet names its file and "Available from Web Page", e.g.
# https://www.eia.gov/dnav/pet/hist/LeafHandler.ashx?n=PET&s=RBRTE&f=D.
DAILY_WORKBOOK = Route(EIA_WWW, "/dnav/{area}/hist_xls/{series_id}d.xls", dataset="dnav_xls_daily", ext="xls",
                       documented_at="https://www.eia.gov/dnav/pet/hist/LeafHandler.ashx?n=PET&s=RBRTE&f=D")

# series id -> (dnav area, what it is)
SERIES = {
    "RBRTE": ("pet", "Europe Brent spot price FOB"),
    "RWTC": ("pet", "Cushing, OK WTI spot price FOB"),
    "RNGWHHD": ("ng", "Henry Hub natural gas spot price"),
}

# Real workbooks (origins in SOURCES.md), each served verbatim on its route: Brent and WTI as released 2025-01-23,
# Henry Hub as released 2019-10-23.
SAMPLES = {
    "RBRTE": "eia/dnav/RBRTEd_2025-01-23.xls",
    "RWTC": "eia/dnav/RWTCd_2025-01-23.xls",
    "RNGWHHD": "eia/dnav/RNGWHHDd_2019-10-23.xls",
}
SIMULATED = tuple(served_verbatim(DAILY_WORKBOOK.path_for(area=SERIES[s][0], series_id=s), sample,
                                  "application/vnd.ms-excel") for s, sample in SAMPLES.items())
