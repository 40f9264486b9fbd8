"""The COT disaggregated futures-and-options combined report as one declaration, on the shared COT machinery.

Never load a futures-only file here: the file's FutOnly_or_Combined column must say Combined.
"""

from __future__ import annotations

from quant_platform.macro.cftc.cot import cot_report
from quant_platform.macro.cftc.parsing import parse_cot_disaggregated
from quant_platform.macro.reports.cftc_cot_disaggregated_combined.routes import HISTORY, WEEKLY
from quant_platform.macro.reports.cftc_cot_disaggregated_combined.table import TABLE

REPORT = cot_report(table=TABLE, name="disaggregated", weekly=WEEKLY, history=HISTORY,
                    parse=parse_cot_disaggregated, job_description="Load COT disaggregated futures-and-options "
                    "combined weeks.", futures_and_options=True)
