"""The table of the COT disaggregated futures-only report: macro.cftc_cot_disaggregated, one row per week and market.

Never rename a column or the table: analysts' SQL, the marts and the catalog snapshot read them.
"""

from __future__ import annotations

from quant_platform.macro.columns import COT_HEAD_COLUMNS, LOAD_COLUMNS, cot_position_columns
from quant_platform.platform.tables import Column, TableSpec

TABLE = TableSpec(
    schema="macro",
    name="cftc_cot_disaggregated",
    description=(
        "CFTC Commitments of Traders, disaggregated futures-only report: positions of producers/merchants, "
        "swap dealers, managed money and other reportables per contract market, as of Tuesday, published "
        "Friday. All months combined ('_All' columns of the vendor file)."
    ),
    columns=(
        *COT_HEAD_COLUMNS,
        *cot_position_columns(
            ("prod_merc_long", "Producer/merchant/processor/user long."),
            ("prod_merc_short", "Producer/merchant/processor/user short."),
            ("swap_long", "Swap dealer long."),
            ("swap_short", "Swap dealer short."),
            ("swap_spread", "Swap dealer spreading."),
            ("m_money_long", "Managed money long."),
            ("m_money_short", "Managed money short."),
            ("m_money_spread", "Managed money spreading."),
            ("other_rept_long", "Other reportables long."),
            ("other_rept_short", "Other reportables short."),
            ("other_rept_spread", "Other reportables spreading."),
            ("tot_rept_long", "Total reportable long."),
            ("tot_rept_short", "Total reportable short."),
            ("nonrept_long", "Non-reportable long."),
            ("nonrept_short", "Non-reportable short."),
        ),
        Column("contract_units", "text", "Contract size as the CFTC prints it, e.g. '(CONTRACTS OF 1,000 "
               "BARRELS)'."),
        *LOAD_COLUMNS,
    ),
    primary_key=("as_of", "contract_code"),
    partition_column="as_of",
    rows_per_partition=(1, 2_000),
)
