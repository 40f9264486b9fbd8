"""The table of the COT legacy futures-only report: macro.cftc_cot_legacy, one row per week and market.

Never rename a column or the table: analysts' SQL, the marts and the catalog snapshot read them.
"""

from __future__ import annotations

from quant_platform.macro.columns import COT_HEAD_COLUMNS, LOAD_COLUMNS, cot_position_columns
from quant_platform.platform.tables import Column, TableSpec

TABLE = TableSpec(
    schema="macro",
    name="cftc_cot_legacy",
    description=(
        "CFTC Commitments of Traders, legacy futures-only report: commercial and non-commercial positions "
        "per contract market, as of Tuesday, published Friday. All months combined."
    ),
    columns=(
        *COT_HEAD_COLUMNS,
        *cot_position_columns(
            ("noncomm_long", "Non-commercial long."),
            ("noncomm_short", "Non-commercial short."),
            ("noncomm_spread", "Non-commercial spreading."),
            ("comm_long", "Commercial long."),
            ("comm_short", "Commercial short."),
            ("tot_rept_long", "Total reportable long."),
            ("tot_rept_short", "Total reportable short."),
            ("nonrept_long", "Non-reportable long."),
            ("nonrept_short", "Non-reportable short."),
        ),
        Column("contract_units", "text", "Contract size as the CFTC prints it."),
        *LOAD_COLUMNS,
    ),
    primary_key=("as_of", "contract_code"),
    partition_column="as_of",
    rows_per_partition=(1, 2_000),
)
