"""Mart tables of the crude-oil analyst team, declared once.

Never add a column without its unit and the upstream columns it comes from (column lineage).
"""

from __future__ import annotations

from quant_platform.platform.tables import Column, TableSpec

_MB = "million barrels"
_KBD = "thousand barrels per day"


def _num(name: str, desc: str, unit: str, lo: float = -1e6, hi: float = 1e6, nullable: bool = True) -> Column:
    return Column(name, "double", desc, unit=unit, nullable=nullable, min_value=lo, max_value=hi)


US_CRUDE_BALANCE_WEEKLY = TableSpec(
    schema="marts",
    name="us_crude_balance_weekly",
    description=(
        "U.S. crude oil balance, one row per week ending Friday: stocks, production, imports, exports and "
        "refinery runs with week-on-week changes. From the WPSR table 1 where the platform has the week, "
        "otherwise from the EIA weekly series history (WCESTUS1, WCRFPUS2, ...), so the table reaches back "
        "decades. The 'source' column says which. Point in time: a row holds the current numbers of its week, "
        "and its week-on-week changes read the week before as the platform knew it at the row's available_at "
        "(a revision loaded later changes the revised week, not the changes computed before it)."
    ),
    columns=(
        Column("week_ending", "date", "Friday ending the report week.", nullable=False),
        _num("commercial_crude_stocks", "Commercial crude oil stocks excluding the SPR.", _MB, 0, 2000),
        _num("spr_crude_stocks", "Strategic Petroleum Reserve crude stocks.", _MB, 0, 1000),
        _num("crude_production", "U.S. field production of crude oil.", _KBD, 0, 30000),
        _num("crude_imports", "Crude oil imports (including SPR).", _KBD, 0, 20000),
        _num("crude_exports", "Crude oil exports.", _KBD, 0, 20000),
        _num("crude_net_imports", "Net crude imports including SPR (imports minus exports).", _KBD, -20000, 20000),
        _num("refinery_crude_input", "Crude oil input to refineries (refinery runs).", _KBD, 0, 25000),
        _num("commercial_crude_stocks_wow", "Week-on-week change of commercial crude stocks.", _MB, -100, 100),
        _num("spr_crude_stocks_wow", "Week-on-week change of SPR stocks.", _MB, -100, 100),
        _num("crude_production_wow", "Week-on-week change of production.", _KBD, -5000, 5000),
        _num("crude_imports_wow", "Week-on-week change of imports.", _KBD, -10000, 10000),
        _num("refinery_crude_input_wow", "Week-on-week change of refinery runs.", _KBD, -10000, 10000),
        Column("source", "text", "'wpsr' (table 1 of the weekly report) or 'eia_series' (series history).",
               nullable=False, allowed_values=("wpsr", "eia_series")),
        Column("available_at", "timestamptz", "When the platform had every number of this row (UTC): the latest "
               "valid_from of its inputs in macro.eia_wpsr_versions or macro.eia_series_versions.", nullable=False,
               backfill_from="loaded_at"),
        Column("loaded_at", "timestamptz", "When this row was written (UTC).", nullable=False),
    ),
    primary_key=("week_ending",),
)

COT_POSITIONING = TableSpec(
    schema="marts",
    name="cot_positioning",
    description=(
        "Speculative positioning in the firm's key energy futures, point-in-time: managed-money net "
        "positions (disaggregated report) and non-commercial net positions (legacy report) per contract and "
        "week, with the week-on-week change and a 3-year z-score computed only from the weeks up to that row "
        "as the platform knew them at the row's available_at: a revision loaded later changes the revised "
        "week's row, never the z-scores computed before it. Join on available_at <= your timestamp to avoid "
        "look-ahead."
    ),
    columns=(
        Column("as_of", "date", "Tuesday the positions are measured.", nullable=False),
        Column("available_at", "timestamptz", "When the platform had this row's numbers (UTC): the valid_from of "
               "the week's current version in macro.cftc_cot_*_versions (its first sight of the CFTC file, or of "
               "the revision). The scheduled release is scheduled_release_at in those tables.", nullable=False),
        Column("contract_code", "text", "CFTC contract market code (stable across renames).", nullable=False),
        Column("instrument", "text", "The firm's label for the contract, e.g. 'NYMEX WTI crude oil (CL)'.",
               nullable=False),
        Column("trader_group", "text", "'managed_money' (disaggregated) or 'non_commercial' (legacy).",
               nullable=False, allowed_values=("managed_money", "non_commercial")),
        Column("long_contracts", "bigint", "Long positions.", unit="contracts", nullable=False, min_value=0),
        Column("short_contracts", "bigint", "Short positions.", unit="contracts", nullable=False, min_value=0),
        Column("net_contracts", "bigint", "Long minus short.", unit="contracts", nullable=False),
        Column("open_interest", "bigint", "Open interest, all months.", unit="contracts", nullable=False,
               min_value=0),
        _num("net_pct_open_interest", "Net position as a percentage of open interest.", "percent", -100, 100,
             nullable=False),
        Column("net_change_wow", "bigint", "Change of the net position since the previous week.",
               unit="contracts"),
        _num("net_zscore_3y", "Z-score of the net position against the trailing 156 weeks up to and "
             "including this week, each week as known at this row's available_at (needs 26 weeks of history, "
             "empty before).", "standard deviations", -20, 20),
        Column("loaded_at", "timestamptz", "When this row was written (UTC).", nullable=False),
    ),
    primary_key=("as_of", "contract_code", "trader_group"),
)

MART_TABLES = (US_CRUDE_BALANCE_WEEKLY, COT_POSITIONING)
