"""Columns several macro tables share: the load columns every report table ends with, the COT position columns.

Never declare a report's own columns here: they belong to its table.py in macro/reports/<report>/.
"""

from __future__ import annotations

from quant_platform.platform.tables import Column

LOAD_COLUMNS = (
    Column("source_sha256", "text", "sha256 of the raw vendor file this row was parsed from; the file is "
           "archived under raw/<vendor>/<dataset>/<partition>/<sha256>.", nullable=False),
    Column("loaded_at", "timestamptz", "When the platform wrote this row to the warehouse (UTC).", nullable=False),
)

# The head of every Commitments of Traders table: the week, when it became public, the contract market.
COT_HEAD_COLUMNS = (
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


def cot_position_columns(*names_and_desc: tuple[str, str]) -> tuple[Column, ...]:
    """Position columns of a COT table: contracts, all months combined."""
    return tuple(
        Column(name, "bigint", desc, unit="contracts", min_value=0, max_value=50_000_000)
        for name, desc in names_and_desc
    )
