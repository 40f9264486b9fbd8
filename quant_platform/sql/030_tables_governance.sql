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
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (vendor, dataset, partition_key, sha256)
);

CREATE TABLE IF NOT EXISTS governance.load_audit (
    event_id BIGINT NOT NULL,
    asset_key TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    row_count BIGINT,
    source_kind TEXT NOT NULL,
    source_ref TEXT,
    code_version TEXT,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ NOT NULL,
    triggered_by TEXT NOT NULL,
    PRIMARY KEY (event_id)
);

CREATE TABLE IF NOT EXISTS governance.check_results (
    event_id BIGINT NOT NULL,
    asset_key TEXT NOT NULL,
    check_name TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    passed BOOLEAN NOT NULL,
    severity TEXT NOT NULL,
    blocking BOOLEAN NOT NULL,
    metadata_json TEXT,
    evaluated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (event_id)
);
