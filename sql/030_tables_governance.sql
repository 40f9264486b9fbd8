-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.
CREATE TABLE IF NOT EXISTS governance.raw_files (
    vendor TEXT NOT NULL,
    dataset TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    lake_path TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    fetched_at TIMESTAMPTZ NOT NULL,
    scheduled_release_at TIMESTAMPTZ,
    revision INTEGER NOT NULL,
    PRIMARY KEY (vendor, dataset, partition_key, sha256)
);
