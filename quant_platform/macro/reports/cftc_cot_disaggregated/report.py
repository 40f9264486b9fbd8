"""The COT disaggregated futures-only report as one declaration: its table, routes and parser on the shared COT machinery.

Never key a contract on its market name: the CFTC renames markets (contract_code is the key).
"""

from __future__ import annotations

from dataclasses import replace

from quant_platform.macro.cftc.checks import DISAGGREGATED_SUMS, cot_domain_checks
from quant_platform.macro.cftc.cot import cot_report
from quant_platform.macro.cftc.parsing import parse_cot_disaggregated
from quant_platform.macro.reports.cftc_cot_disaggregated.routes import HISTORY, WEEKLY
from quant_platform.macro.reports.cftc_cot_disaggregated.table import TABLE

REPORT = replace(
    cot_report(table=TABLE, name="disaggregated", weekly=WEEKLY, history=HISTORY, parse=parse_cot_disaggregated,
               job_description="Load COT disaggregated weeks."),
    # categories add up to open interest (blocking), open interest moves plausibly (WARN)
    domain_checks=cot_domain_checks(TABLE.qualified_name, DISAGGREGATED_SUMS),
)
