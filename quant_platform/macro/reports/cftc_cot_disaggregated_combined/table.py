"""The table of the COT disaggregated futures-and-options combined report: macro.cftc_cot_disaggregated_combined.

Never let its columns drift from the futures-only table's: the CFTC prints both reports in one layout.
"""

from __future__ import annotations

import dataclasses

from quant_platform.macro.reports.cftc_cot_disaggregated.table import TABLE as FUTURES_ONLY

TABLE = dataclasses.replace(
    FUTURES_ONLY,
    name="cftc_cot_disaggregated_combined",
    description=(
        "CFTC Commitments of Traders, disaggregated futures-and-options combined report: producers/merchants, swap "
        "dealers, managed money and other reportables per contract market, options counted as delta-weighted "
        "futures equivalents, as of Tuesday, published Friday. All months combined. Each trader category is "
        "rounded on its own (macro.cftc_cot_disaggregated is the futures-only report)."
    ),
)
