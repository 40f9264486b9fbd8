"""The COT legacy futures-and-options combined report as one declaration, on the shared COT machinery.

Never key a contract on its market name: the CFTC renames markets (contract_code is the key).
"""

from __future__ import annotations

from dataclasses import replace

from quant_platform.macro.cftc.checks import LEGACY_SUMS, cot_domain_checks
from quant_platform.macro.cftc.cot import cot_report
from quant_platform.macro.cftc.parsing import parse_cot_legacy
from quant_platform.macro.reports.cftc_cot_legacy_combined.routes import HISTORY, WEEKLY
from quant_platform.macro.reports.cftc_cot_legacy_combined.table import TABLE

REPORT = replace(
    cot_report(table=TABLE, name="legacy", weekly=WEEKLY, history=HISTORY, parse=parse_cot_legacy,
               job_description="Load COT legacy futures-and-options combined weeks.", futures_and_options=True),
    # categories add up to open interest within the CFTC's rounding of each one (blocking), open interest moves
    # plausibly (WARN)
    domain_checks=cot_domain_checks(TABLE.qualified_name, LEGACY_SUMS, futures_and_options=True),
)
