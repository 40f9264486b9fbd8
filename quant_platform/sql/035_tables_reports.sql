-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.
CREATE TABLE IF NOT EXISTS reports.findings (
    finding_id TEXT NOT NULL,
    family TEXT NOT NULL,
    series_id TEXT NOT NULL,
    desk TEXT NOT NULL,
    entity TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    kind TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    detected_at TIMESTAMPTZ NOT NULL,
    probability DOUBLE PRECISION NOT NULL,
    surprise DOUBLE PRECISION NOT NULL,
    magnitude DOUBLE PRECISION,
    magnitude_sd DOUBLE PRECISION,
    estimate_before DOUBLE PRECISION,
    estimate_after DOUBLE PRECISION,
    score DOUBLE PRECISION NOT NULL,
    source_asset TEXT NOT NULL,
    source_partition TEXT NOT NULL,
    detector_version TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (finding_id)
);

CREATE TABLE IF NOT EXISTS reports.daily_reports (
    report_date DATE NOT NULL,
    window_days INTEGER NOT NULL,
    findings_shown INTEGER NOT NULL,
    findings_in_window INTEGER NOT NULL,
    desks TEXT NOT NULL,
    html_path TEXT NOT NULL,
    markdown_path TEXT NOT NULL,
    json_path TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    generated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (report_date)
);
