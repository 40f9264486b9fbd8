"""Governance tables, declared once (see platform/tables.py).

Never store secrets (API keys) in these rows: URLs are redacted before they get here.
"""

from __future__ import annotations

from quant_platform.platform.tables import Column, TableSpec

RAW_FILES = TableSpec(
    schema="governance",
    name="raw_files",
    description=(
        "Every raw vendor file the platform archived, as released: one row per distinct file (sha256) per "
        "dataset partition. A file seen again is not added again; a revised file is a new row, and both "
        "files stay in the lake under raw/<vendor>/<dataset>/<partition>/<sha256>."
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
    ),
    primary_key=("vendor", "dataset", "partition_key", "sha256"),
)

GOVERNANCE_TABLES = (RAW_FILES,)
