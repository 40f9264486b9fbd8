"""The macro lane's tables by name, for readers outside the lane (marts, reports, tests); each is declared in its folder.

Never declare a macro table or column here: a report's table is macro/reports/<report>/table.py, shared columns macro/columns.py.
"""

from __future__ import annotations

from quant_platform.macro.columns import LOAD_COLUMNS
from quant_platform.macro.registry import registered_tables
from quant_platform.macro.reports.cftc_cot_disaggregated.table import TABLE as CFTC_COT_DISAGGREGATED
from quant_platform.macro.reports.cftc_cot_legacy.table import TABLE as CFTC_COT_LEGACY
from quant_platform.macro.reports.eia_series.table import TABLE as EIA_SERIES
from quant_platform.macro.reports.eia_wpsr.table import TABLE as EIA_WPSR
from quant_platform.macro.reports.eia_wpsr.table import WPSR_MEASURES

# Every registered report's table, in registry order (a new report needs no line here).
MACRO_TABLES = registered_tables()

__all__ = ["CFTC_COT_DISAGGREGATED", "CFTC_COT_LEGACY", "EIA_SERIES", "EIA_WPSR", "LOAD_COLUMNS", "MACRO_TABLES",
           "WPSR_MEASURES"]
