"""Where EIA publishes the gas storage history workbook, and what the vendor simulator serves there.

Never import Dagster or pandas here: the vendor simulator reads this module.
"""

from __future__ import annotations

from quant_platform.macro.routes import EIA_IR, Route
from quant_platform.vendors.core import served_verbatim

# The report's "data history file": every week since 2010 in the five-region structure, levels and net changes,
# rewritten with each Thursday release (EIA's notice https://ir.eia.gov/ngs/notice.html; report page
# https://ir.eia.gov/ngs/ngs.html). The week's own files (wngsr.json/csv/xls) have no public copy to test on.
HISTORY = Route(EIA_IR, "/ngs/ngshistory.xls", dataset="ngs_history", ext="xls",
                documented_at="https://ir.eia.gov/ngs/notice.html")

# A real ngshistory.xls "AS OF NOVEMBER 10, 2021" (weeks 2010-01-08 .. 2021-11-05; origin in SOURCES.md),
# served verbatim at HISTORY.
HISTORY_SAMPLE = "eia/ngs/ngshistory_2021-11-10.xls"
SIMULATED = (served_verbatim(HISTORY.path, HISTORY_SAMPLE, "application/vnd.ms-excel"),)
