"""The table of the EIA series report: macro.eia_series, one row per series and period, both routes alike.

Never rename a column or the table: analysts' SQL, the marts and the catalog snapshot read them.
"""

from __future__ import annotations

from quant_platform.macro.columns import LOAD_COLUMNS
from quant_platform.platform.tables import Column, TableSpec

TABLE = TableSpec(
    schema="macro",
    name="eia_series",
    description=(
        "EIA petroleum time series by series id (e.g. WCESTUS1 weekly commercial crude stocks, WCRFPUS2 "
        "weekly field production, RWTC daily WTI Cushing spot), full history. Loaded from the dnav "
        "'Download Series History' CSV or from EIA API v2; both land in this same table (see source)."
    ),
    columns=(
        Column("series_id", "text", "EIA series id, e.g. 'WCESTUS1' (the partition key).", nullable=False),
        Column("period", "date", "Observation date: week ending (weekly), day (daily) or first day of the "
               "month (monthly).", nullable=False),
        Column("value", "double", "Observed value.", unit="see unit column", nullable=False,
               min_value=-1_000_000_000, max_value=1_000_000_000),
        Column("unit", "text", "Unit as EIA names it, e.g. 'thousand barrels', 'dollars per barrel'.",
               nullable=False),
        Column("frequency", "text", "W weekly, D daily, M monthly, A annual.", nullable=False,
               allowed_values=("W", "D", "M", "A")),
        Column("series_name", "text", "EIA's series description.", nullable=False),
        Column("source", "text", "How the data came: 'dnav' (history CSV) or 'api_v2'.", nullable=False,
               allowed_values=("dnav", "api_v2")),
        *LOAD_COLUMNS,
    ),
    primary_key=("series_id", "period"),
    partition_column="series_id",
    rows_per_partition=(1, 20_000),
)
