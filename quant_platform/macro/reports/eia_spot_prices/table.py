"""The table of the daily spot prices: macro.eia_spot_prices, one row per series and trading day.

Never rename a column or the table: analysts' SQL, the marts and the catalog snapshot read them.
"""

from __future__ import annotations

from quant_platform.macro.columns import LOAD_COLUMNS
from quant_platform.macro.reports.eia_spot_prices.routes import SERIES
from quant_platform.platform.tables import Column, TableSpec

TABLE = TableSpec(
    schema="macro",
    name="eia_spot_prices",
    description=(
        "EIA daily spot prices, whole history per series: RBRTE Europe Brent spot FOB (from 1987), RWTC Cushing WTI "
        "spot FOB (from 1986), RNGWHHD Henry Hub natural gas spot (from 1997), from EIA's dnav history workbooks. "
        "Daily observations, published once a week with the WPSR (Wednesdays, later after a federal holiday), "
        "through the day or two before; each load replaces the series' whole history."
    ),
    columns=(
        Column("series_id", "text", "EIA series id (the partition key).", nullable=False,
               allowed_values=tuple(SERIES)),
        Column("period", "date", "Trading day.", nullable=False),
        Column("value", "double", "Spot price as published (WTI was negative on 2020-04-20).",
               unit="see unit column", nullable=False, min_value=-1_000, max_value=10_000),
        Column("unit", "text", "'dollars per barrel' or 'dollars per million btu'.", nullable=False,
               allowed_values=("dollars per barrel", "dollars per million btu")),
        Column("series_name", "text", "EIA's series name without its unit.", nullable=False),
        Column("frequency", "text", "D (daily).", nullable=False, allowed_values=("D",)),
        Column("release_date", "date", "Release date printed in the workbook's Contents sheet (the Wednesday, or "
               "the delayed day, the file was published).", nullable=False),
        *LOAD_COLUMNS,
    ),
    primary_key=("series_id", "period"),
    partition_column="series_id",
    rows_per_partition=(1, 20_000),
)
