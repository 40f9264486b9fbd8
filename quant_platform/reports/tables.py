"""Warehouse tables of the reporting lane, declared once: the findings of the detectors and the index of the
daily reports. The `reports` schema is readable by analysts (no PII in either table).

Never describe a findings column anywhere else: the API, the report and the catalog all read these.
"""

from __future__ import annotations

from quant_platform.platform.tables import Column, TableSpec

FAMILIES = ("market_daily", "market_intraday", "macro_wpsr", "macro_cot", "platform")
DESKS = ("crude", "gas", "crypto", "equities", "platform")

FINDINGS = TableSpec(
    schema="reports",
    name="findings",
    description=(
        "What the online detectors found in the platform's metric series: change points (posterior probability "
        "that the series' level or slope changed near that observation), outliers (posterior probability that "
        "one observation does not belong to the series' predictive distribution) and trends (a persistent "
        "slope). One row per finding, with its size, the estimates before and after, and the metric partition "
        "it came from. Rows of a metric family are replaced from the detector checkpoint a run restarts from, "
        "so a replay gives the same rows."
    ),
    columns=(
        Column("finding_id", "text", "Deterministic id: sha1 of series, kind and occurred_at.", nullable=False),
        Column("family", "text", "Metric family (the partition of reports/findings) that produced it.",
               nullable=False, allowed_values=FAMILIES),
        Column("series_id", "text", "The metric series: '<entity>|<metric>', e.g. 'CRYPTO:BTC-USDT|volume'.",
               nullable=False),
        Column("desk", "text", "Trading desk the series matters to.", nullable=False, allowed_values=DESKS),
        Column("entity", "text", "Instrument, macro series or platform component the metric describes.",
               nullable=False),
        Column("metric", "text", "Metric name, e.g. 'volume', 'spread_bps', 'wow_vs_5y_range'.", nullable=False),
        Column("unit", "text", "Unit of the metric's values (and of magnitude, estimate_before/after).",
               nullable=False),
        Column("kind", "text", "change_point, outlier or trend.", nullable=False,
               allowed_values=("change_point", "outlier", "trend")),
        Column("occurred_at", "timestamptz", "Time of the observation where the change, outlier or trend starts.",
               nullable=False),
        Column("detected_at", "timestamptz", "Time of the observation that confirmed it (change points are "
               "confirmed a few observations later).", nullable=False),
        Column("probability", "double", "Posterior probability of the finding (change: mass of the run-length "
               "posterior on a new run starting there; outlier: outlier-mixture posterior; trend: probability "
               "of the slope's sign).", unit="probability", nullable=False, min_value=0, max_value=1),
        Column("surprise", "double", "-log10 of the two-sided predictive tail probability of the observation "
               "at occurred_at (trend: of the slope's sign).", unit="-log10 probability", nullable=False,
               min_value=0),
        Column("magnitude", "double", "estimate_after - estimate_before (trend: slope per observation).",
               unit="see unit column"),
        Column("magnitude_sd", "double", "The same in the series' noise standard deviations (trend: move over "
               "the trend's window).", unit="standard deviations"),
        Column("estimate_before", "double", "Predicted level before (outlier: predictive mean).",
               unit="see unit column"),
        Column("estimate_after", "double", "Level after (outlier: the observed value).", unit="see unit column"),
        Column("score", "double", "Ranking score used by the daily report: probability x min(|magnitude_sd|, "
               "10) / 10, higher first.", unit="score from 0 to 1", nullable=False, min_value=0, max_value=1),
        Column("source_asset", "text", "Asset whose partition holds the observation, e.g. 'market/daily_stats'.",
               nullable=False),
        Column("source_partition", "text", "That asset's partition (day, week or source), the finding's lineage.",
               nullable=False),
        Column("detector_version", "text", "Detector code version and parameter hash that produced the row.",
               nullable=False),
        Column("recorded_at", "timestamptz", "When the platform first recorded this finding (UTC): a rewind or "
               "replay that finds it again keeps this time. The report shows it as 'first detected'.",
               nullable=False),
    ),
    primary_key=("finding_id",),
    partition_column="family",
)

DAILY_REPORTS = TableSpec(
    schema="reports",
    name="daily_reports",
    description=(
        "One row per daily report built: its day, how many findings it shows per desk, where its HTML, "
        "Markdown and JSON bodies are in the lake (reports/daily/date=D/) and their sha256. The REST API "
        "(`quant-platform reports serve`) lists and serves these."
    ),
    columns=(
        Column("report_date", "date", "UTC day the report covers (the partition).", nullable=False),
        Column("window_days", "int", "Recent window of the daily families (market, platform): findings confirmed "
               "by an observation of the window_days UTC days ending report_date. Weekly families (WPSR, COT) use "
               "their last 4 weekly observations up to their latest one at or before report_date.",
               unit="days", nullable=False, min_value=1),
        Column("findings_shown", "int", "Findings in the report: the best recent ones, and for a family with "
               "nothing recent its latest earlier findings (marked as earlier, not new).", nullable=False,
               min_value=0),
        Column("findings_in_window", "int", "Findings in their families' recent windows (before ranking).",
               nullable=False, min_value=0),
        Column("desks", "text", "Desks with findings, 'desk:count' comma-separated.", nullable=False),
        Column("html_path", "text", "Lake path of the HTML body (SVG plots inline).", nullable=False),
        Column("markdown_path", "text", "Lake path of the Markdown body.", nullable=False),
        Column("json_path", "text", "Lake path of the JSON body (findings and plotted series).", nullable=False),
        Column("content_sha256", "text", "sha256 of the JSON body.", nullable=False),
        Column("generated_at", "timestamptz", "When the report was built (UTC).", nullable=False),
    ),
    primary_key=("report_date",),
    partition_column="report_date",
)

REPORTS_TABLES = (FINDINGS, DAILY_REPORTS)
