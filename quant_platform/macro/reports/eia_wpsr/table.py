"""The table of the WPSR table 1 report: macro.eia_wpsr, long format, one row per number EIA prints.

Never rename a column or the table: analysts' SQL, the marts and the catalog snapshot read them.
"""

from __future__ import annotations

from quant_platform.macro.columns import LOAD_COLUMNS
from quant_platform.platform.tables import Column, TableSpec

# The printed columns of table 1, as `measure` values (level is this week's number).
WPSR_MEASURES = (
    "level", "level_prior_week", "change_vs_prior_week", "pct_change_vs_prior_week",
    "level_year_ago", "change_vs_year_ago", "pct_change_vs_year_ago",
    "four_week_avg", "four_week_avg_year_ago", "four_week_avg_pct_change_vs_year_ago",
    "ytd_avg", "ytd_avg_year_ago", "ytd_avg_pct_change_vs_year_ago",
)

TABLE = TableSpec(
    schema="macro",
    name="eia_wpsr",
    description=(
        "EIA Weekly Petroleum Status Report, Table 1 (U.S. petroleum balance sheet), one row per number "
        "published: both sub-tables of table1.csv (stocks in million barrels; supply and disposition in "
        "thousand barrels per day), in long format. Released Wednesdays 10:30 America/New_York for the "
        "week ending the previous Friday (later in weeks with a federal holiday). Filter measure = 'level' "
        "for the headline figure of the week; the other measures are EIA's own comparisons as printed."
    ),
    columns=(
        Column("week_ending", "date", "Friday that ends the report week (the partition key).", nullable=False),
        Column("report_table", "text", "Sub-table of table1.csv: 'stocks' or 'supply'.", nullable=False,
               allowed_values=("stocks", "supply")),
        Column("section", "text", "Section heading in the report (e.g. 'Crude Oil Supply'); 'Stocks' for "
               "the stocks sub-table.", nullable=False),
        Column("line_no", "int", "EIA's line number in the supply sub-table, e.g. 17 for '(17) Crude Oil "
               "Input to Refineries'; empty for stocks. EIA numbers two different lines (33).", min_value=1,
               max_value=99),
        Column("series", "text", "Series label as EIA prints it, whitespace trimmed.", nullable=False),
        Column("series_key", "text", "Stable identifier: report_table.section.series slug, e.g. "
               "'stocks.commercial_excluding_spr'. Use it in joins; labels can change.", nullable=False),
        Column("measure", "text", "Which printed column this value is: 'level' (this week), "
               "'level_prior_week', 'change_vs_prior_week', 'four_week_avg', 'ytd_avg', ...",
               nullable=False, allowed_values=WPSR_MEASURES),
        Column("reference_date", "date", "The date the printed column refers to (this week, the prior "
               "week or the same week a year ago).", nullable=False),
        Column("value", "double", "The published number; empty when EIA prints the 'not meaningful' "
               "marker.", unit="see unit column", min_value=-100_000, max_value=100_000),
        Column("unit", "text", "Unit of value: 'million barrels', 'thousand barrels per day' or 'percent'.",
               nullable=False, allowed_values=("million barrels", "thousand barrels per day", "percent")),
        Column("not_meaningful", "bool", "True where EIA prints '– –' (not meaningful) instead of a number.",
               nullable=False),
        *LOAD_COLUMNS,
    ),
    primary_key=("week_ending", "series_key", "measure"),
    partition_column="week_ending",
    rows_per_partition=(300, 700),
)
