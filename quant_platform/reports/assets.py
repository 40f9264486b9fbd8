"""The reporting lane in the asset graph: metric assets that read the market, macro and platform lanes (with
lineage to what they read), reports/findings partitioned by metric family (one run per family, in parallel,
each holding only its own detectors), the daily report, and the sensor that moves the lane along.

Never let a reporting asset depend on the tick lane through a different partitioning: ticks_daily_job selects
everything downstream of market/ticks_daily, so only daily-partitioned metric assets hang below it, and
reports/findings names its inputs by column lineage and row lineage (source_asset, source_partition) instead.
"""


import json
import os
import time
from datetime import date
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
    return Path(load_settings().lake_url)


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
    ticks = cp.daily_file(root, day)
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
    ticks = cp.daily_file(root, day)
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
    pool=WAREHOUSE_POOL,
    code_version="macro_metrics.v1",
)
def macro_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from quant_platform.macro.cftc.parsing import KEY_CONTRACTS

    source = context.partition_key
    family = MACRO_SOURCES[source]
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
    wh = warehouse.open()
    try:
        run = run_family(lake_root(), family, wh, replay=config.replay)
    finally:
        wh.dispose()
    return dg.MaterializeResult(metadata={
        **run.metadata(), "dagster/row_count": len(run.findings),
        "alert_findings": dg.MetadataValue.json(run.alert_candidates)})


@dg.asset(
    key=DAILY_REPORT_KEY,
    description=(
        "The daily report: the best findings detected in the 7 days to the report date, one per series and at "
        "most 6 per desk (crude, gas, crypto, equities, platform), each with a plot of its series, the "
        "predictive band and the change points, outliers and trends found. HTML (inline SVG), Markdown and JSON "
        "in the lake (reports/daily/date=D/), indexed in reports.daily_reports; served by `quant-platform "
        "reports serve`."),
    partitions_def=DAILY,
    deps=[dg.AssetDep(FINDINGS.asset_key, partition_mapping=dg.AllPartitionMapping())],
    group_name=GROUP,
    owners=[OWNER_REPORTING],
    kinds={"html", "svg", warehouse_kind()},
    tags={"layer": "report"},
    metadata={**DAILY_REPORTS.catalog_metadata()},
    pool=WAREHOUSE_POOL,
    code_version="daily_report.v1",
)
def daily_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from quant_platform.reports.report import build_report

    wh = warehouse.open()
    try:
        built = build_report(lake_root(), wh, context.partition_key)
    finally:
        wh.dispose()
    return dg.MaterializeResult(metadata={
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


def _latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> int:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1, ascending=False).records
    return int(records[0].storage_id) if records else 0


def evaluate_reports_sensor(instance: dg.DagsterInstance, cursor: dict, root: Path) -> tuple[list, dict]:
    """Run requests of one tick: macro metrics after their marts or reports change, a family's findings after
    its chunks change, the report of the latest day a finished findings run reached."""
    requests = []
    macro = cursor.setdefault("macro", {})
    for source, keys in MACRO_UPSTREAM.items():
        latest = max(_latest_storage_id(instance, k) for k in keys)
        if latest and latest != macro.get(source):
            requests.append(dg.RunRequest(run_key=f"macro_metrics:{source}:{latest}", partition_key=source,
                                          job_name=macro_metrics_job.name))
            macro[source] = latest
    sigs = cursor.setdefault("families", {})
    for family in FAMILIES:
        sig = family_signature(root, family)
        if sig and sig != sigs.get(family):
            requests.append(dg.RunRequest(run_key=f"findings:{family}:{sig}", partition_key=family,
                                          job_name=findings_job.name))
            sigs[family] = sig
    after = int(cursor.get("findings_after", 0))
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=FINDINGS.asset_key, after_storage_id=after or None), limit=100,
        ascending=True).records
    days = set()
    for rec in records:
        md = rec.asset_materialization.metadata if rec.asset_materialization else {}
        latest = getattr(md.get("latest_day"), "value", None)
        if latest and latest != "None" and latest >= DAILY.get_first_partition_key():
            days.add(str(latest))
        after = max(after, int(rec.storage_id))
    cursor["findings_after"] = after
    for day in sorted(days):
        requests.append(dg.RunRequest(run_key=f"daily_report:{day}:{after}", partition_key=day,
                                      job_name=daily_report_job.name))
    return requests, cursor


@dg.sensor(
    name="reports_sensor",
    jobs=REPORTING_JOBS,
    minimum_interval_seconds=int(os.environ.get("QP_REPORTS_SENSOR_INTERVAL", "30")),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Moves the reporting lane along (light: event-log queries and a listing of the metric chunks): requests "
        "reports/macro_metrics when its marts or COT reports land, reports/findings for a family whose metric "
        "chunks changed (the market and platform metrics are built in the ticks_daily_job run of their day), "
        "and reports/daily_report for the latest day a findings run reached."),
)
def reports_sensor(context: dg.SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else {}
    t0 = time.monotonic()
    requests, cursor = evaluate_reports_sensor(context.instance, cursor, lake_root())
    context.log.info(f"{len(requests)} run request(s) in {time.monotonic() - t0:.2f} s")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))
