"""Columns several macro tables share: the load columns every report table ends with, the COT position columns.

Never declare a report's own columns here: they belong to its table.py in macro/reports/<report>/.
"""

from __future__ import annotations

from quant_platform.platform.tables import Column

LOAD_COLUMNS = (
    Column("source_sha256", "text", "sha256 of the raw vendor file this row was parsed from; the file is "
           "archived under raw/<vendor>/<dataset>/<partition>/<sha256>.", nullable=False),
    Column("loaded_at", "timestamptz", "When the platform wrote this row to the warehouse (UTC).", nullable=False),
    # Point in time (macro/loading.py stamps them for every report; README "The macro lane"). Rows loaded before
    # these columns existed take loaded_at (their scheduled release, for COT rows, stays in available_at).
    Column("available_at", "timestamptz", "When the platform first saw the vendor file this row (this version "
           "of it) came from (UTC): the release sensor's first sight, or the download. Join on "
           "available_at <= t for point-in-time analysis; the vendor's schedule is scheduled_release_at.",
           nullable=False, backfill_from="loaded_at"),
    Column("scheduled_release_at", "timestamptz", "When the vendor's release calendar said the partition was "
           "due (UTC); empty for reports without a calendar. available_at - scheduled_release_at is how late it "
           "came."),
    Column("valid_from", "timestamptz", "Start of this row version's validity in the platform's knowledge "
           "(UTC): its available_at, or just after the version it replaced when files came out of order. A "
           "revision moves the replaced version to <table>_history with superseded_at; <table>_versions shows "
           "both.", nullable=False, backfill_from="available_at"),
)

# The head of every Commitments of Traders table: the week and the contract market (available_at: LOAD_COLUMNS).
COT_HEAD_COLUMNS = (
    Column("as_of", "date", "Tuesday on which positions are measured (the partition key).", nullable=False),
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
