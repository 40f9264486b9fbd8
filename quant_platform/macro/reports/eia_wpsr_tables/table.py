"""The table of every WPSR table: macro.eia_wpsr_tables, long format, one row per series, week and observation.

Never rename a column or the table: analysts' SQL, the marts and the catalog snapshot read them.
"""

from __future__ import annotations

from quant_platform.macro.columns import LOAD_COLUMNS
from quant_platform.macro.reports.eia_wpsr_tables.routes import TABLES
from quant_platform.platform.tables import Column, TableSpec

TABLE = TableSpec(
    schema="macro",
    name="eia_wpsr_tables",
    description=(
        "EIA Weekly Petroleum Status Report, every table (psw01..psw14 workbooks: balance sheet, inputs and "
        "production by PADD, stocks by PADD and Cushing, imports by country, weekly estimates, spot and futures "
        "prices, retail prices), long format keyed on EIA's own series ids (e.g. WCESTUS1 commercial crude "
        "stocks, W_EPC0_SAX_YCUOK_MBBL Cushing), with units, from each table's history sheets since 1982. "
        "Released Wednesdays 10:30 America/New_York for the week ending the previous Friday; each release "
        "rewrites every workbook with its whole history, so a backfill of any weeks reads each workbook once. "
        "Weekly, four-week-average and daily sheets; `macro.eia_wpsr` keeps table 1 as printed."
    ),
    columns=(
        Column("week_ending", "date", "Friday that ends the WPSR week the row was published for (the partition "
               "key): the period itself for Friday-dated weekly series, the Friday before for weekly series dated "
               "another day (retail prices are dated Mondays), the Friday ending the week for daily series.",
               nullable=False),
        Column("wpsr_table", "text", "Which WPSR table (workbook psw<table>.xls) the row comes from.",
               nullable=False, allowed_values=TABLES),
        Column("series_id", "text", "EIA series id (the workbook's Sourcekey), e.g. 'WCESTUS1'. Key on this: "
               "labels change.", nullable=False),
        Column("frequency", "text", "W weekly, 4W four-week average (same series id as the weekly value), D "
               "daily.", nullable=False, allowed_values=("W", "4W", "D")),
        Column("period", "date", "The observation's date as EIA gives it (week ending, Monday, or day).",
               nullable=False),
        Column("value", "double", "The published number.", unit="see unit column", nullable=False,
               min_value=-1_000_000_000, max_value=1_000_000_000),
        Column("unit", "text", "Unit as EIA names it in the series name, lower case, e.g. 'thousand barrels', "
               "'thousand barrels per day', 'dollars per barrel'.", nullable=False),
        Column("series_name", "text", "EIA's series name without its unit.", nullable=False),
        Column("sheet", "text", "Workbook sheet the row was read from, e.g. 'Data 1'.", nullable=False),
        *LOAD_COLUMNS,
    ),
    primary_key=("week_ending", "wpsr_table", "series_id", "frequency", "period"),
    partition_column="week_ending",
    rows_per_partition=(1, 50_000),
)
