"""Warehouse tables of the macro lane, declared once (columns, units, keys, plausible ranges).

Parsers produce exactly these columns (minus the load columns); never declare a macro column elsewhere.
"""

from __future__ import annotations

from quant_platform.platform.tables import Column, TableSpec

LOAD_COLUMNS = (
    Column("source_sha256", "text", "sha256 of the raw vendor file this row was parsed from; the file is "
           "archived under raw/<vendor>/<dataset>/<partition>/<sha256>.", nullable=False),
    Column("loaded_at", "timestamptz", "When the platform wrote this row to the warehouse (UTC).", nullable=False),
)

WPSR_MEASURES = (
    "level", "level_prior_week", "change_vs_prior_week", "pct_change_vs_prior_week",
    "level_year_ago", "change_vs_year_ago", "pct_change_vs_year_ago",
    "four_week_avg", "four_week_avg_year_ago", "four_week_avg_pct_change_vs_year_ago",
    "ytd_avg", "ytd_avg_year_ago", "ytd_avg_pct_change_vs_year_ago",
)

EIA_WPSR = TableSpec(
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

EIA_SERIES = TableSpec(
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

_COT_COMMON_HEAD = (
    Column("as_of", "date", "Tuesday on which positions are measured (the partition key).", nullable=False),
    Column("available_at", "timestamptz", "When the CFTC published this report (normally Friday 15:30 "
           "America/New_York, later after a federal holiday). Join on available_at <= t for "
           "point-in-time analysis.", nullable=False),
    Column("contract_code", "text", "CFTC contract market code, e.g. '067651' NYMEX WTI. Key on this: "
           "market names change (067651 was renamed in 2022).", nullable=False),
    Column("market_name", "text", "Market and exchange name as printed that week.", nullable=False),
    Column("exchange_code", "text", "CFTC market (exchange) code, e.g. 'NYME'.", nullable=False),
    Column("commodity_code", "text", "CFTC commodity code, e.g. '067' crude oil.", nullable=False),
    Column("open_interest", "bigint", "Open interest, all months.", unit="contracts", nullable=False,
           min_value=0, max_value=50_000_000),
)


def _positions(*names_and_desc: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(
        Column(name, "bigint", desc, unit="contracts", min_value=0, max_value=50_000_000)
        for name, desc in names_and_desc
    )


CFTC_COT_DISAGGREGATED = TableSpec(
    schema="macro",
    name="cftc_cot_disaggregated",
    description=(
        "CFTC Commitments of Traders, disaggregated futures-only report: positions of producers/merchants, "
        "swap dealers, managed money and other reportables per contract market, as of Tuesday, published "
        "Friday. All months combined ('_All' columns of the vendor file)."
    ),
    columns=(
        *_COT_COMMON_HEAD,
        *_positions(
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

CFTC_COT_LEGACY = TableSpec(
    schema="macro",
    name="cftc_cot_legacy",
    description=(
        "CFTC Commitments of Traders, legacy futures-only report: commercial and non-commercial positions "
        "per contract market, as of Tuesday, published Friday. All months combined."
    ),
    columns=(
        *_COT_COMMON_HEAD,
        *_positions(
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

MACRO_TABLES = (EIA_WPSR, EIA_SERIES, CFTC_COT_DISAGGREGATED, CFTC_COT_LEGACY)
