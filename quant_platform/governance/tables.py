"""Governance tables, declared once (see platform/tables.py).

Never store secrets (API keys) in these rows: URLs are redacted before they get here.
"""

from __future__ import annotations

from quant_platform.platform.tables import Column, TableSpec

RAW_FILES = TableSpec(
    schema="governance",
    name="raw_files",
    description=(
        "Every raw vendor file the platform loaded, as released: one row per distinct file (sha256) per "
        "dataset partition, written in the same transaction as the rows parsed from it. A file seen again is "
        "not added again; a revised file is a new row, and both files stay in the lake under "
        "raw/<vendor>/<dataset>/<partition>/<sha256>."
    ),
    columns=(
        Column("vendor", "text", "Vendor, e.g. 'eia', 'cftc'.", nullable=False),
        Column("dataset", "text", "Dataset of the vendor, e.g. 'wpsr_table1'.", nullable=False),
        Column("partition_key", "text", "Partition the file belongs to (week, year or series id).",
               nullable=False),
        Column("sha256", "text", "sha256 of the file's bytes.", nullable=False),
        Column("lake_path", "text", "Path of the archived file, relative to the lake root.", nullable=False),
        Column("size_bytes", "bigint", "File size.", unit="bytes", nullable=False, min_value=0),
        Column("url", "text", "Where it was fetched from (secrets redacted).", nullable=False),
        Column("etag", "text", "ETag the vendor sent, if any."),
        Column("last_modified", "text", "Last-Modified the vendor sent, if any."),
        Column("fetched_at", "timestamptz", "When the platform downloaded it (UTC).", nullable=False),
        Column("scheduled_release_at", "timestamptz", "When the vendor's calendar said it was due (UTC)."),
        Column("revision", "int", "1 for the first file of a partition, 2 for the first revision, ...",
               nullable=False, min_value=1),
        Column("loaded_at", "timestamptz", "When rows parsed from this file were first committed to the "
               "warehouse (UTC): stamped last in the transaction that writes them, so it is when they became "
               "visible. release_on_time judges this, not fetched_at. Files indexed before this column existed carry "
               "their fetch time.", nullable=False, backfill_from="fetched_at"),
    ),
    primary_key=("vendor", "dataset", "partition_key", "sha256"),
)

LOAD_AUDIT = TableSpec(
    schema="governance",
    name="load_audit",
    description=(
        "One row per materialized table partition: which asset and partition, how many rows, from which "
        "source (raw file sha256, watermark range of an operational table, stream sequence range), by which "
        "run and code version, when, and who or what triggered it. Mirrored from Dagster's event log by the "
        "governance_audit_sensor, so every load is covered, whatever started it."
    ),
    columns=(
        Column("event_id", "bigint", "Storage id of the materialization event in the Dagster event log.",
               nullable=False, min_value=0),
        Column("asset_key", "text", "Asset key, e.g. 'macro/eia_wpsr'; its table is schema.name.", nullable=False),
        Column("partition_key", "text", "Partition materialized; empty for an unpartitioned asset.",
               nullable=False),
        Column("run_id", "text", "Dagster run id.", nullable=False),
        Column("row_count", "bigint", "Rows written (dagster/row_count).", unit="rows", min_value=0),
        Column("source_kind", "text", "What the rows came from.", nullable=False,
               allowed_values=("file_sha256", "watermark", "stream_seq", "derived", "unknown")),
        Column("source_ref", "text", "The source itself: sha256(s), watermark range, sequence range or the "
               "upstream assets."),
        Column("code_version", "text", "Code version of the asset definition."),
        Column("started_at", "timestamptz", "Start of the run (UTC)."),
        Column("finished_at", "timestamptz", "When the materialization was recorded (UTC).", nullable=False),
        Column("triggered_by", "text", "sensor:<name>, schedule:<name>, automation, backfill:<id>, cli or "
               "manual.", nullable=False),
    ),
    primary_key=("event_id",),
)

CHECK_RESULTS = TableSpec(
    schema="governance",
    name="check_results",
    description=(
        "Every asset check outcome with its metadata, passed or failed, blocking or warning: the history "
        "auditors read to see what was verified about each table and when."
    ),
    columns=(
        Column("event_id", "bigint", "Storage id of the check evaluation in the Dagster event log.",
               nullable=False, min_value=0),
        Column("asset_key", "text", "Asset the check guards.", nullable=False),
        Column("check_name", "text", "Check name, e.g. 'primary_key_unique'.", nullable=False),
        Column("partition_key", "text", "Partition of the run that evaluated it; empty if none.", nullable=False),
        Column("run_id", "text", "Dagster run id.", nullable=False),
        Column("passed", "bool", "Whether the check passed.", nullable=False),
        Column("severity", "text", "ERROR (blocking when failed) or WARN.", nullable=False,
               allowed_values=("ERROR", "WARN")),
        Column("blocking", "bool", "Whether a failure blocks downstream assets.", nullable=False),
        Column("metadata_json", "text", "The check's metadata as JSON (counts, samples, failures)."),
        Column("evaluated_at", "timestamptz", "When the check was evaluated (UTC).", nullable=False),
    ),
    primary_key=("event_id",),
)

GOVERNANCE_TABLES = (RAW_FILES, LOAD_AUDIT, CHECK_RESULTS)
