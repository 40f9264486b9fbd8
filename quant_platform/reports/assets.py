"""The reporting lane in the asset graph: metric assets that read the market, macro and platform lanes (with
lineage to what they read), reports/findings partitioned by metric family (one run per family, in parallel,
each holding only its own detectors), the daily report, and the sensor that moves the lane along.

Never let a reporting asset depend on the tick lane through a different partitioning: ticks_daily_job selects
everything downstream of market/ticks_daily, so only daily-partitioned metric assets hang below it, and
reports/findings names its inputs by column lineage and row lineage (source_asset, source_partition) instead.
"""


import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from quant_platform.macro.tables import CFTC_COT_DISAGGREGATED, CFTC_COT_LEGACY
from quant_platform.market.tables import BARS_1M, DAILY_STATS
from quant_platform.marts.tables import US_CRUDE_BALANCE_WEEKLY
from quant_platform.platform.dagster_common import WAREHOUSE_POOL, warehouse_kind
from quant_platform.platform.settings import load_settings
from quant_platform.reports import metrics as mt
from quant_platform.reports.tables import DAILY_REPORTS, FAMILIES, FINDINGS
from quant_platform.resources import WarehouseResource

OWNER_REPORTING = "team:quant-research"
GROUP = "reporting"
TICKS_DAILY_KEY = dg.AssetKey(["market", "ticks_daily"])
MARKET_METRICS_KEY = dg.AssetKey(["reports", "market_metrics"])
PLATFORM_METRICS_KEY = dg.AssetKey(["reports", "platform_metrics"])
MACRO_METRICS_KEY = dg.AssetKey(["reports", "macro_metrics"])
DAILY_REPORT_KEY = dg.AssetKey(["reports", "daily_report"])

# Same definition as the tick lane's (equal by value): the market and platform metrics of day D run in the
# ticks_daily_job run of day D, right after daily_stats and bars_1m.
DAILY = dg.DailyPartitionsDefinition(start_date="2020-01-01", timezone="UTC")
# The reports' days include today (end_offset=1): today's report is built, and rebuilt, as findings arrive.
REPORT_DAYS = dg.DailyPartitionsDefinition(start_date="2020-01-01", timezone="UTC", end_offset=1)
FAMILY_PARTITIONS = dg.StaticPartitionsDefinition(list(FAMILIES))
MACRO_SOURCES = {"wpsr_week_on_week": "macro_wpsr", "cot_net_positioning": "macro_cot"}
MACRO_PARTITIONS = dg.StaticPartitionsDefinition(list(MACRO_SOURCES))
FAMILY_METRIC_ASSET = {"market_daily": MARKET_METRICS_KEY, "market_intraday": MARKET_METRICS_KEY,
                       "macro_wpsr": MACRO_METRICS_KEY, "macro_cot": MACRO_METRICS_KEY,
                       "platform": PLATFORM_METRICS_KEY}

OBS_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("series_id", "text", "'<entity>|<metric>'."),
    dg.TableColumn("desk", "text", "crude, gas, crypto, equities or platform."),
    dg.TableColumn("entity", "text", "Instrument, macro series or platform component."),
    dg.TableColumn("metric", "text", "Metric name (see the asset description)."),
    dg.TableColumn("unit", "text", "Unit of value."),
    dg.TableColumn("time", "timestamp", "Observation time (UTC): the day, minute, week or release."),
    dg.TableColumn("value", "double", "The observation. Unit: see the unit column.", tags={"unit": "see unit column"}),
    dg.TableColumn("source_asset", "text", "Asset it was computed from."),
    dg.TableColumn("source_partition", "text", "That asset's partition."),
])


def lake_root() -> Path:
    """The reporting lane's folder: the lake, or an object-store lake's local working copy (tick_store.compute_root);
    there the published report files are also PUT to the bucket (`_publish_report`)."""
    from quant_platform.market.tick_store import compute_root

    settings = load_settings()
    return compute_root(settings.lake_url, settings.home)


def _ticks_file(day: str) -> Path:
    """The published tick day to read (pulled into the working copy on an object-store lake); may not exist."""
    from quant_platform.market import compaction as cp
    from quant_platform.market.tick_store import TickStore, is_object_store

    url = load_settings().lake_url
    if is_object_store(url):
        TickStore(url).pull_daily(lake_root(), day)
    return cp.daily_file(lake_root(), day)


def _publish_report(paths: list[Path]) -> list[str]:
    """On an object-store lake, PUT the report's files (whole objects) under the same relative keys; URIs."""
    from quant_platform.market.tick_store import TickStore, is_object_store

    url = load_settings().lake_url
    if not is_object_store(url):
        return []
    store, root = TickStore(url), lake_root()
    return [store.put_file(p, p.relative_to(root).as_posix()) for p in paths]


def _metric_list(metrics: dict) -> str:
    return "; ".join(f"{k} ({u}): {d}" for k, (u, d) in metrics.items())


# ------------------------------------------------------------------------------------------- metrics
@dg.asset(
    key=MARKET_METRICS_KEY,
    description=(
        "Market metrics per instrument for one UTC day, as observation series for the detectors: daily "
        f"(family market_daily: {_metric_list(mt.MARKET_DAILY_METRICS)}) and per minute from the one-minute bars "
        f"(family market_intraday: {_metric_list(mt.MARKET_INTRADAY_METRICS)}). Lake: "
        "reports/metrics/family=<family>/chunk=<day>/observations.parquet, one chunk per family and day."
    ),
    partitions_def=DAILY,
    deps=[DAILY_STATS.asset_key, BARS_1M.asset_key, TICKS_DAILY_KEY],
    group_name=GROUP,
    owners=[OWNER_REPORTING],
    kinds={"parquet", "pandas"},
    tags={"layer": "metrics"},
    metadata={"dagster/column_schema": OBS_SCHEMA, "dagster/table_name": "lake.reports_metrics",
              "families": "market_daily, market_intraday"},
    pool=WAREHOUSE_POOL,
    code_version="market_metrics.v1",
)
def market_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from quant_platform.market import compaction as cp
    from quant_platform.market.instruments import InstrumentMaster

    day = context.partition_key
    root = lake_root()
    wh = warehouse.open()
    try:
        stats = wh.query_df("SELECT * FROM market.daily_stats WHERE trade_date = :d", {"d": date.fromisoformat(day)})
        bars = wh.query_df("SELECT * FROM market.bars_1m WHERE trade_date = :d", {"d": date.fromisoformat(day)})
    finally:
        wh.dispose()
    latency = pd.DataFrame(columns=["instrument_id", "latency_ms"])
    ticks = _ticks_file(day)
    if ticks.exists():
        con = cp.duck()
        try:
            latency = con.execute(
                "SELECT instrument_id, median((epoch_ns(received_at) - epoch_ns(ts)) / 1e6) AS latency_ms "
                "FROM read_parquet(?) GROUP BY instrument_id", [str(ticks)]).df()
        finally:
            con.close()
    classes = {i.instrument_id: i.asset_class for i in InstrumentMaster.load().instruments()}
    daily = mt.market_daily(day, stats, bars, latency, classes)
    intraday = mt.market_intraday(day, bars, classes)
    written = [mt.write_chunk(root, "market_daily", day, daily), mt.write_chunk(root, "market_intraday", day, intraday)]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(daily) + len(intraday), "market_daily_observations": len(daily),
        "market_intraday_observations": len(intraday), "instruments": int(stats["instrument_id"].nunique()),
        "content_hashes": ", ".join(c.content_hash[:12] for c in written if c is not None) or "none"})


def _dlq_counts(instance: dg.DagsterInstance, day: str) -> dict | None:
    """Raw messages of the day and those in TICKS_DLQ, from the latest completeness check of ticks_daily[day]."""
    from dagster import DagsterEventType, EventRecordsFilter

    from quant_platform.market.daily_checks import COMPLETENESS

    records = instance.event_log_storage.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION, asset_key=TICKS_DAILY_KEY),
        limit=500, ascending=False)
    for rec in records:
        ev = rec.event_log_entry.dagster_event.event_specific_data
        if ev.check_name != COMPLETENESS:
            continue
        run = instance.get_run_by_id(rec.event_log_entry.run_id)
        if run is None or run.tags.get("dagster/partition") != day:
            continue
        md = {k: getattr(v, "value", v) for k, v in ev.metadata.items()}
        if "raw_messages_expected" in md:
            return {"expected": int(md["raw_messages_expected"]), "in_dlq": int(md.get("raw_messages_in_dlq", 0))}
    return None


@dg.asset(
    key=PLATFORM_METRICS_KEY,
    description=(
        f"Platform metrics of one UTC day (family platform): {_metric_list(mt.PLATFORM_METRICS)}. Lake: "
        "reports/metrics/family=platform/chunk=<day>/observations.parquet."
    ),
    partitions_def=DAILY,
    deps=[TICKS_DAILY_KEY],
    group_name=GROUP,
    owners=[OWNER_REPORTING],
    kinds={"parquet", "pandas"},
    tags={"layer": "metrics"},
    metadata={"dagster/column_schema": OBS_SCHEMA, "dagster/table_name": "lake.reports_metrics",
              "families": "platform", "also_reads": "governance.raw_files (release lateness)"},
    pool=WAREHOUSE_POOL,
    code_version="platform_metrics.v1",
)
def platform_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from quant_platform.market import compaction as cp

    day = context.partition_key
    root = lake_root()
    lag = pd.DataFrame(columns=["source", "lag_p95_ms"])
    ticks = _ticks_file(day)
    if ticks.exists():
        con = cp.duck()
        try:
            lag = con.execute(
                "SELECT source, quantile_cont((epoch_ns(received_at) - epoch_ns(ts)) / 1e6, 0.95) AS lag_p95_ms "
                "FROM read_parquet(?) GROUP BY source ORDER BY source", [str(ticks)]).df()
        finally:
            con.close()
    d0 = pd.Timestamp(day, tz="UTC")
    wh = warehouse.open()
    try:
        releases = wh.query_df(
            "SELECT vendor, dataset, partition_key, scheduled_release_at, loaded_at FROM governance.raw_files "
            "WHERE revision = 1 AND scheduled_release_at >= :a AND scheduled_release_at < :b",
            {"a": d0.to_pydatetime(), "b": (d0 + pd.Timedelta(days=1)).to_pydatetime()})
    finally:
        wh.dispose()
    frame = mt.platform_day(day, lag, _dlq_counts(context.instance, day), releases)
    chunk = mt.write_chunk(root, "platform", day, frame)
    return dg.MaterializeResult(metadata={"dagster/row_count": len(frame), "series": int(frame["series_id"].nunique()),
                                          "content_hash": chunk.content_hash[:12] if chunk else "none"})


@dg.asset(
    key=MACRO_METRICS_KEY,
    description=(
        "Macro metrics, one partition per source: 'wpsr_week_on_week' (family macro_wpsr): each crude balance "
        "series' week-on-week change placed in the range of the same ISO week's changes over the previous five "
        "years ((change - their mean) / (max - min); from marts.us_crude_balance_weekly); 'cot_net_positioning' "
        "(family macro_cot): net position as % of open interest per key contract and trader category "
        "(producer/merchant, swap dealers, managed money, other reportables, non-commercial, commercial). Lake: "
        "one chunk per calendar year under reports/metrics/family=<family>/."
    ),
    partitions_def=MACRO_PARTITIONS,
    deps=[US_CRUDE_BALANCE_WEEKLY.asset_key,
          dg.AssetDep(CFTC_COT_DISAGGREGATED.asset_key, partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep(CFTC_COT_LEGACY.asset_key, partition_mapping=dg.AllPartitionMapping())],
    group_name=GROUP,
    owners=[OWNER_REPORTING],
    kinds={"parquet", "pandas"},
    tags={"layer": "metrics"},
    metadata={"dagster/column_schema": OBS_SCHEMA, "dagster/table_name": "lake.reports_metrics"},
    # No warehouse-writer pool: it only reads the warehouse (DuckDB's lock is waited for with backoff), so it
    # does not queue behind the loads for the one writer slot.
    code_version="macro_metrics.v1",
)
def macro_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from quant_platform.macro.cftc.parsing import KEY_CONTRACTS

    source = context.partition_key
    family = MACRO_SOURCES[source]
    # what this run reads, recorded for reports_sensor (read before the tables, so a later load is not missed)
    upstream = max(_latest_storage_id(context.instance, k) for k in MACRO_UPSTREAM[source])
    wh = warehouse.open()
    try:
        if source == "wpsr_week_on_week":
            frame = mt.wpsr_week_on_week(wh.query_df("SELECT * FROM marts.us_crude_balance_weekly"))
        else:
            codes = list(KEY_CONTRACTS)
            dis = wh.query_df("SELECT * FROM macro.cftc_cot_disaggregated WHERE contract_code IN :c", {"c": codes})
            leg = wh.query_df("SELECT * FROM macro.cftc_cot_legacy WHERE contract_code IN :c", {"c": codes})
            frame = mt.cot_net_positioning(dis, leg, KEY_CONTRACTS)
    finally:
        wh.dispose()
    root = lake_root()
    parts = mt.year_chunks(frame)
    for old in mt.list_chunks(root, family):
        if old.chunk not in parts:
            mt.write_chunk(root, family, old.chunk, frame.iloc[0:0])
    written = [mt.write_chunk(root, family, y, g) for y, g in parts.items()]
    return dg.MaterializeResult(metadata={"dagster/row_count": len(frame), "family": family,
                                          "upstream_storage_id": upstream,
                                          "series": int(frame["series_id"].nunique()) if len(frame) else 0,
                                          "chunks": len(written),
                                          "latest": str(frame["time"].max().date()) if len(frame) else "none"})


# ------------------------------------------------------------------------------------------- findings
class FindingsConfig(dg.Config):
    replay: bool = False  # start the family's detectors from an empty state (same result, more work)


_FINDINGS_LINEAGE = dg.TableColumnLineage(deps_by_column={
    col: [dg.TableColumnDep(asset_key=k, column_name=src) for k in (MARKET_METRICS_KEY, MACRO_METRICS_KEY,
                                                                     PLATFORM_METRICS_KEY)]
    for col, src in {"series_id": "series_id", "desk": "desk", "entity": "entity", "metric": "metric",
                     "unit": "unit", "occurred_at": "time", "estimate_after": "value",
                     "source_asset": "source_asset", "source_partition": "source_partition"}.items()})


@dg.asset(
    key=FINDINGS.asset_key,
    description=FINDINGS.description + (
        " Partitioned by metric family (market_daily, market_intraday, macro_wpsr, macro_cot, platform): each "
        "run feeds its family's new observations to the detectors, one update per observation, from the "
        "checkpoint in reports/detector_state/family=F/. Reads the metric assets' lake chunks (see the column "
        "lineage; no graph edge, see the module docstring); requested by reports_sensor when a family's chunks "
        "change. Findings at or above QP_FINDING_ALERT_PROBABILITY (default 0.99) are posted by the alert "
        "sensor, once each."),
    partitions_def=FAMILY_PARTITIONS,
    group_name=GROUP,
    owners=[OWNER_REPORTING],
    kinds={"numpy", "parquet", warehouse_kind()},
    tags={"layer": "findings"},
    metadata={**FINDINGS.catalog_metadata(), "dagster/column_lineage": _FINDINGS_LINEAGE},
    pool=WAREHOUSE_POOL,
    code_version="findings.v1",
)
def findings(context: dg.AssetExecutionContext, config: FindingsConfig, warehouse: WarehouseResource):
    from quant_platform.reports.findings import run_family

    family = context.partition_key
    signature = family_signature(lake_root(), family)  # the chunks this run reads, for reports_sensor
    wh = warehouse.open()
    try:
        run = run_family(lake_root(), family, wh, replay=config.replay)
    finally:
        wh.dispose()
    return dg.MaterializeResult(metadata={
        **run.metadata(), "dagster/row_count": len(run.findings), "signature": signature,
        "alert_findings": dg.MetadataValue.json(run.alert_candidates)})


@dg.asset(
    key=DAILY_REPORT_KEY,
    description=(
        "The daily report of day D: the findings recent for their family (daily families, market and platform: "
        "confirmed by an observation of the 7 UTC days to D; weekly families, WPSR and COT: by one of their last 4 "
        "weekly observations up to their latest at or before D), the best per series and at most 6 per desk "
        "(crude, gas, crypto, equities, platform); for a family with nothing recent, its latest 3 earlier "
        "findings, marked as earlier. Each finding with when it happened, the observation that confirmed it, when "
        "the platform first detected it, and a plot of its series around it (the predictive band and the change "
        "points, outliers and trends found). HTML (inline SVG), Markdown and JSON in the lake "
        "(reports/daily/date=D/), indexed in reports.daily_reports; served by `quant-platform reports serve`. "
        "reports_sensor builds today's report once the metrics and findings it depends on are done; a past day: "
        "`quant-platform reports build D` or a backfill of this asset."),
    partitions_def=REPORT_DAYS,
    deps=[dg.AssetDep(FINDINGS.asset_key, partition_mapping=dg.AllPartitionMapping())],
    group_name=GROUP,
    owners=[OWNER_REPORTING],
    kinds={"html", "svg", warehouse_kind()},
    tags={"layer": "report"},
    metadata={**DAILY_REPORTS.catalog_metadata()},
    pool=WAREHOUSE_POOL,
    code_version="daily_report.v2",
)
def daily_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from quant_platform.reports.report import build_report

    findings_storage_id = _latest_storage_id(context.instance, FINDINGS.asset_key)  # read by reports_sensor
    wh = warehouse.open()
    try:
        built = build_report(lake_root(), wh, context.partition_key)
    finally:
        wh.dispose()
    uris = _publish_report([built.html_path, built.markdown_path, built.json_path])
    return dg.MaterializeResult(metadata={**({"object_store_uris": ", ".join(uris)} if uris else {}),
        "findings_storage_id": findings_storage_id, "findings_recent_shown": built.findings_recent_shown,
        "findings_earlier_shown": built.findings_shown - built.findings_recent_shown,
        "findings_shown": built.findings_shown, "findings_in_window": built.findings_in_window,
        "desks": ", ".join(f"{d}:{n}" for d, n in built.desks.items()), "content_sha256": built.content_sha256,
        "html": dg.MetadataValue.path(str(built.html_path)), "dagster/uri": built.html_path.resolve().as_uri()})


REPORTING_ASSETS = [market_metrics, platform_metrics, macro_metrics, findings, daily_report]

macro_metrics_job = dg.define_asset_job("reports_macro_metrics_job", selection=[macro_metrics],
                                        description="Recompute one macro metric source.")
findings_job = dg.define_asset_job("reports_findings_job", selection=[findings],
                                   description="Run one metric family's detectors over its new observations.")
daily_report_job = dg.define_asset_job("reports_daily_report_job", selection=[daily_report],
                                       description="Build one day's report.")
REPORTING_JOBS = [macro_metrics_job, findings_job, daily_report_job]

MACRO_UPSTREAM = {"wpsr_week_on_week": (US_CRUDE_BALANCE_WEEKLY.asset_key,),
                  "cot_net_positioning": (CFTC_COT_DISAGGREGATED.asset_key, CFTC_COT_LEGACY.asset_key)}
# The runs that write a family's metric chunks: the macro metrics partition of its source, or for the market and
# platform families the tick lane's job (market/ticks_daily and everything below it, these metrics included).
TICKS_DAILY_JOB = "ticks_daily_job"
FAMILY_WRITERS = {"macro_wpsr": (macro_metrics_job.name, "wpsr_week_on_week"),
                  "macro_cot": (macro_metrics_job.name, "cot_net_positioning"),
                  "market_daily": (TICKS_DAILY_JOB, None), "market_intraday": (TICKS_DAILY_JOB, None),
                  "platform": (TICKS_DAILY_JOB, None)}
# No run priority: with the warehouse-writer slot contended, runs of a higher priority take the slot each time
# it frees and starve the loads the lane waits for (measured: a WPSR load waited 370 s behind findings runs).
IN_FLIGHT = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED)


def family_signature(root: Path, family: str) -> str:
    """Cheap signature of a family's metric chunks (names, sizes, mtimes): it changes when a chunk does."""
    folder = mt.chunk_dir(root, family)
    if not folder.is_dir():
        return ""
    parts = []
    for p in sorted(folder.glob("chunk=*/observations.parquet")):
        st = p.stat()
        parts.append(f"{p.parent.name}:{st.st_size}:{st.st_mtime_ns}")
    import hashlib

    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16] if parts else ""


def _latest_record(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None):
    flt = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None)
    records = instance.fetch_materializations(flt, limit=1, ascending=False).records
    return records[0] if records else None


def _latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> int:
    rec = _latest_record(instance, key)
    return int(rec.storage_id) if rec else 0


def _recorded(instance: dg.DagsterInstance, rec, name: str, default=None):
    """What the run of a materialization record read: its metadata value `name`, or for a run of an older version
    that did not record it, the last field of the run key reports_sensor gave it (the same value)."""
    md = rec.asset_materialization.metadata if rec is not None and rec.asset_materialization else {}
    value = md.get(name)
    if value is not None:
        return getattr(value, "value", value)
    run = instance.get_run_by_id(rec.run_id) if rec is not None else None
    key = run.tags.get("dagster/run_key", "") if run else ""
    return key.rsplit(":", 1)[-1] if key.count(":") == 2 else default


def _as_int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def today_utc() -> str:
    return datetime.now(UTC).date().isoformat()


@dataclass(frozen=True)
class Pending:
    """One step of the lane whose inputs changed since it last ran: what to run and why."""

    asset: str  # e.g. "reports/findings[macro_wpsr]"
    job_name: str
    partition: str
    run_key: str
    reason: str


def pending_work(instance: dg.DagsterInstance, root: Path, today: str | None = None) -> list[Pending]:
    """What the lane still has to do, in pipeline order, read from the instance and the lake alone (no cursor):
    a macro metrics source whose upstream materialized after the one its last run read; a family whose metric
    chunks differ from those its last findings run read; today's report if a findings run materialized after
    the one its last build read. Each run records what it read (metadata), so this is exact and restartable."""
    today = today or today_utc()
    out = []
    for source, keys in MACRO_UPSTREAM.items():
        upstream = max(_latest_storage_id(instance, k) for k in keys)
        rec = _latest_record(instance, MACRO_METRICS_KEY, source)
        if upstream and (rec is None or _as_int(_recorded(instance, rec, "upstream_storage_id")) < upstream):
            out.append(Pending(f"reports/macro_metrics[{source}]", macro_metrics_job.name, source,
                               f"macro_metrics:{source}:{upstream}", f"upstream materialization {upstream}"))
    for family in FAMILIES:
        sig = family_signature(root, family)
        rec = _latest_record(instance, FINDINGS.asset_key, family)
        if sig and (rec is None or _recorded(instance, rec, "signature") != sig):
            out.append(Pending(f"reports/findings[{family}]", findings_job.name, family, f"findings:{family}:{sig}",
                               f"metric chunks {sig}"))
    findings_latest = _latest_storage_id(instance, FINDINGS.asset_key)
    rec = _latest_record(instance, DAILY_REPORT_KEY, today)
    if findings_latest and (rec is None or _as_int(_recorded(instance, rec, "findings_storage_id")) < findings_latest):
        out.append(Pending(f"reports/daily_report[{today}]", daily_report_job.name, today,
                           f"daily_report:{today}:{findings_latest}", f"findings materialization {findings_latest}"))
    return out


def open_work(instance: dg.DagsterInstance, root: Path, today: str | None = None) -> list[Pending]:
    """pending_work less the steps whose run already ended without doing them (a failure): those are not asked
    again with the same key, and do not hold the report back (it is built from what the other families found;
    the failed run is in the run list)."""
    return [p for p in pending_work(instance, root, today) if not _ended(instance, p.run_key)]


def runs_in_flight(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Queued and running runs of the lane's jobs and of the jobs that write its inputs."""
    jobs = {macro_metrics_job.name, findings_job.name, daily_report_job.name, TICKS_DAILY_JOB}
    runs = instance.get_runs(dg.RunsFilter(statuses=list(IN_FLIGHT)), limit=1000)
    upstream = {k for keys in MACRO_UPSTREAM.values() for k in keys}
    return [r for r in runs if r.job_name in jobs or (r.asset_selection and r.asset_selection & upstream)]


def _ended(instance: dg.DagsterInstance, run_key: str) -> bool:
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": run_key}), limit=5)
    return bool(runs) and all(r.status not in IN_FLIGHT for r in runs)


def _busy(runs: list[dg.DagsterRun], job_name: str, partition: str | None) -> bool:
    return any(r.job_name == job_name and (partition is None or r.tags.get("dagster/partition") == partition)
               for r in runs)


def evaluate_reports_sensor(instance: dg.DagsterInstance, root: Path, today: str | None = None
                            ) -> tuple[list[dg.RunRequest], list[Pending]]:
    """Run requests of one tick, in pipeline order (metrics -> findings -> report): each pending step is
    requested once nothing that writes its inputs is queued or running (so a step never reads half of an
    update), and today's report only once no metrics or findings step is pending or in flight. Returns the
    requests and what waits."""
    todo = open_work(instance, root, today)
    flight = runs_in_flight(instance)
    requests, waiting = [], []
    for p in todo:
        if p.job_name == macro_metrics_job.name:
            mine = set(MACRO_UPSTREAM[p.partition])
            blocked = (_busy(flight, p.job_name, p.partition)
                       or any(r.asset_selection and r.asset_selection & mine for r in flight))
        elif p.job_name == findings_job.name:
            writer, part = FAMILY_WRITERS[p.partition]
            blocked = (_busy(flight, p.job_name, p.partition) or _busy(flight, writer, part)
                       or any(q.partition == part for q in todo if q.job_name == macro_metrics_job.name))
        else:
            blocked = (any(q.job_name != daily_report_job.name for q in todo)
                       or any(r.job_name in (macro_metrics_job.name, findings_job.name, daily_report_job.name)
                              for r in flight))
        if blocked:
            waiting.append(p)
        else:
            requests.append(dg.RunRequest(run_key=p.run_key, partition_key=p.partition, job_name=p.job_name,
                                          tags={"qp/reason": p.reason}))
    return requests, waiting


def _sensor_interval() -> int:
    return int(os.environ.get("QP_REPORTS_SENSOR_INTERVAL", "30"))


@dg.sensor(
    name="reports_sensor",
    jobs=REPORTING_JOBS,
    minimum_interval_seconds=_sensor_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Moves the reporting lane along in pipeline order, metrics -> findings -> report (light: a few event-log "
        "queries and a listing of the metric chunks; no cursor: each run records what it read). Requests "
        "reports/macro_metrics when its marts or COT reports materialized after what its last run read, "
        "reports/findings for a family whose metric chunks changed once nothing writing them is queued or running "
        "(the market and platform metrics are built in the ticks_daily_job run of their day), and today's "
        "reports/daily_report once a findings run materialized after its last build and no metrics or findings "
        "step is pending or running. Interval: QP_REPORTS_SENSOR_INTERVAL seconds (default 30)."),
)
def reports_sensor(context: dg.SensorEvaluationContext):
    t0 = time.monotonic()
    requests, waiting = evaluate_reports_sensor(context.instance, lake_root())
    context.log.info(f"{len(requests)} run request(s), {len(waiting)} waiting "
                     f"({', '.join(p.asset for p in waiting) or 'none'}) in {time.monotonic() - t0:.2f} s")
    return dg.SensorResult(run_requests=requests)
