"""The COT disaggregated futures-and-options combined report as one declaration, on the shared COT machinery.

Never load a futures-only file here: the file's FutOnly_or_Combined column must say Combined.
"""

from __future__ import annotations

from dataclasses import replace

from quant_platform.macro.cftc.checks import DISAGGREGATED_SUMS, cot_domain_checks
from quant_platform.macro.cftc.cot import cot_report
from quant_platform.macro.cftc.parsing import parse_cot_disaggregated
from quant_platform.macro.reports.cftc_cot_disaggregated_combined.routes import HISTORY, WEEKLY
from quant_platform.macro.reports.cftc_cot_disaggregated_combined.table import TABLE

REPORT = replace(
    cot_report(table=TABLE, name="disaggregated", weekly=WEEKLY, history=HISTORY,
               parse=parse_cot_disaggregated, job_description="Load COT disaggregated futures-and-options "
               "combined weeks.", futures_and_options=True),
    # categories add up to open interest within the CFTC's rounding of each one (blocking), open interest moves
    # plausibly (WARN)
    domain_checks=cot_domain_checks(TABLE.qualified_name, DISAGGREGATED_SUMS, futures_and_options=True),
)
