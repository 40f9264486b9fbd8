"""The table of the gas storage report: macro.eia_gas_storage, one row per week, region and measure, in Bcf.

Never rename a column or the table: analysts' SQL, the marts and the catalog snapshot read them.
"""

from __future__ import annotations

from quant_platform.macro.columns import LOAD_COLUMNS
from quant_platform.platform.tables import Column, TableSpec

REGIONS = ("East", "Midwest", "Mountain", "Pacific", "South Central", "South Central Salt", "South Central Nonsalt",
           "Lower 48")

TABLE = TableSpec(
    schema="macro",
    name="eia_gas_storage",
    description=(
        "EIA Weekly Natural Gas Storage Report: working gas in underground storage and its week-on-week net change "
        "(negative = withdrawal) per region (East, Midwest, Mountain, Pacific, South Central with its salt and "
        "nonsalt parts, Lower 48 total), in billion cubic feet, from the report's history workbook. Released "
        "Thursdays 10:30 America/New_York for the week ending the previous Friday (a holiday moves it). Keyed on "
        "EIA's series ids (NW2_EPG0_SWO_R48_BCF Lower 48)."
    ),
    columns=(
        Column("week_ending", "date", "Friday that ends the storage week (the partition key).", nullable=False),
        Column("region", "text", "EIA's region; 'Lower 48' is the total, the South Central parts are salt and "
               "nonsalt facilities.", nullable=False, allowed_values=REGIONS),
        Column("series_id", "text", "EIA series id of the region's working gas (API v2 natural-gas/stor/wkly), "
               "e.g. 'NW2_EPG0_SWO_R48_BCF'; the net change row carries its level's id.", nullable=False),
        Column("measure", "text", "'working_gas' (stocks at the end of the week) or 'net_change' (against the week "
               "before, implied flow; negative = net withdrawal).", nullable=False,
               allowed_values=("working_gas", "net_change")),
        Column("value", "double", "Billion cubic feet, as published.", unit="billion cubic feet", nullable=False,
               min_value=-1_000, max_value=10_000),
        Column("unit", "text", "Always 'billion cubic feet'.", nullable=False, allowed_values=("billion cubic feet",)),
        Column("survey", "text", "Where EIA's number comes from: 'EIA-912' (the weekly survey, five regions since "
               "the week ending 2015-06-19) or 'Derived EIA Weekly Estimates' (earlier weeks restated to five "
               "regions).", nullable=False, allowed_values=("EIA-912", "Derived EIA Weekly Estimates")),
        Column("file_as_of", "date", "The 'AS OF' date printed in the history workbook the row was read from (the "
               "release day of its newest week).", nullable=False),
        *LOAD_COLUMNS,
    ),
    primary_key=("week_ending", "series_id", "measure"),
    partition_column="week_ending",
    rows_per_partition=(8, 16),
)
