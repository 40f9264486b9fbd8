"""The table of the COT legacy futures-and-options combined report: macro.cftc_cot_legacy_combined.

Never let its columns drift from the futures-only table's: the CFTC prints both reports in one layout.
"""

from __future__ import annotations

import dataclasses

from quant_platform.macro.reports.cftc_cot_legacy.table import TABLE as FUTURES_ONLY

TABLE = dataclasses.replace(
    FUTURES_ONLY,
    name="cftc_cot_legacy_combined",
    description=(
        "CFTC Commitments of Traders, legacy futures-and-options combined report: commercial and non-commercial "
        "positions per contract market, options counted as delta-weighted futures equivalents, as of Tuesday, "
        "published Friday. All months combined. Each trader category is rounded on its own, so the categories "
        "may miss open interest by a contract (the futures-only report, macro.cftc_cot_legacy, adds up exactly)."
    ),
)
