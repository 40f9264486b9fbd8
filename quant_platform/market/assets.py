"""The tick stream in the asset graph: the stream observed by the ingest sensor, each closed UTC day compacted
into market/ticks_daily and checked, then bars, daily statistics and the warehouse history from it.

Never move ticks through Dagster: the sensor only reads stream state; runs read and write the lake.
"""


import json
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from quant_platform.market import compaction as cp
from quant_platform.market import daily_checks as dc
from quant_platform.market import observe
from quant_platform.market import vendor_gaps as vg
from quant_platform.market.continuous import futures_continuous_1m
from quant_platform.market.contracts import STREAM_DLQ, STREAM_NORM, STREAM_RAW
from quant_platform.market.tables import BARS_1M, DAILY_STATS, TICK_COLUMNS, TICKS_HISTORY, VENDOR_GAPS
from quant_platform.market.tick_store import TickStore, compute_root, is_object_store
from quant_platform.platform.dagster_common import WAREHOUSE_POOL, warehouse_kind
from quant_platform.platform.settings import load_settings
from quant_platform.platform.tables import TableSpec
from quant_platform.resources import WarehouseResource

OWNER_MARKET = "team:market-data"
GROUP = "market"

TICK_STREAM_KEY = dg.AssetKey(["market", "tick_stream"])
TICKS_DAILY_KEY = dg.AssetKey(["market", "ticks_daily"])

# UTC days; the newest partition is yesterday (a day is only compacted once it is over).
TICK_DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2020-01-01", timezone="UTC")

# ticks_daily is due by 01:00 UTC for the day before (lateness window + drain + compaction take minutes).
TICKS_DAILY_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 1 * * *", lower_bound_delta=timedelta(hours=1),
                                                timezone="UTC")

RAW_DRAINED_TAG = "qp/raw_drained_seq"
SIGNATURE_TAG = "qp/landing_signature"
STREAM_PROGRESS = "stream_progressing"
SOURCES_PROGRESS = "sources_progressing"


def lateness() -> timedelta:
    """QP_TICK_LATENESS_MINUTES (default 10): how long after midnight UTC late ticks are still waited for."""
    return timedelta(minutes=float(os.environ.get("QP_TICK_LATENESS_MINUTES", "10")))


def stale_after() -> timedelta:
    return timedelta(minutes=float(os.environ.get("QP_STREAM_STALE_MINUTES", "15")))


def lake_root() -> Path:
    """The folder the tick lane computes in: the lake itself, or for an object-store lake (s3://) its local
    working copy (tick_store.working_copy), which tick_store() fills with the days a run needs and publishes."""
    settings = load_settings()
    return compute_root(settings.lake_url, settings.home)


def tick_store() -> TickStore | None:
    """The Iceberg tables of an object-store lake; None for a local lake."""
    url = load_settings().lake_url
    return TickStore(url) if is_object_store(url) else None


def _nats_url() -> str:
    url = observe.running_nats_url(load_settings().home)
    if not url:
        raise dg.Failure("no NATS server to read: start `quant-platform ingest run` or set QP_NATS_URL")
    return url


TICKS_DAILY_TABLE = TableSpec(
    schema="market", name="ticks_daily",
    description="", columns=TICK_COLUMNS, primary_key=("event_id",))

# ------------------------------------------------------------------------------------------- the stream
tick_stream = dg.AssetSpec(
    TICK_STREAM_KEY,
    description=(
        "The live tick stream on NATS JetStream: TICKS_RAW (vendor frames, verbatim), TICKS (canonical ticks) and "
        "TICKS_DLQ (rejects with the reason). Not materialized by Dagster: the market_ingest_sensor records an "
        "observation on every evaluation where the stream moved, with last sequences, consumer ack floors and "
        "lag, DLQ counts and per-source rates, so lag and throughput can be plotted in the asset's Observations "
        "tab. The check 'stream_progressing' fails when nothing new arrived for QP_STREAM_STALE_MINUTES "
        "(default 15) - the markets the platform takes include crypto, which trades around the clock - and the "
        "check 'sources_progressing' when one source stops while others flow (per-subject last message)."
    ),
    group_name=GROUP,
    owners=[OWNER_MARKET],
    kinds={"nats", "jetstream"},
    tags={"layer": "stream"},
    metadata={
        "streams": f"{STREAM_RAW} (ticks.raw.<source>.batch), {STREAM_NORM} (ticks.norm.<source>.batch), "
                   f"{STREAM_DLQ} (ticks.dlq.<source>)",
        "consumers": "normalizer (TICKS_RAW), lander (TICKS), one per fan-out destination",
        "dagster/table_name": "nats.TICKS_RAW",
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn("raw_last_seq", "bigint", "Last sequence accepted by TICKS_RAW."),
            dg.TableColumn("ticks_last_seq", "bigint", "Last sequence of TICKS."),
            dg.TableColumn("normalizer_ack_floor", "bigint", "Every raw message up to here is normalised."),
            dg.TableColumn("lander_ack_floor", "bigint", "Every TICKS message up to here is in the lake."),
            dg.TableColumn("normalizer_lag", "bigint", "num_pending + num_ack_pending of the normalizer."),
            dg.TableColumn("lander_lag", "bigint", "num_pending + num_ack_pending of the lander."),
            dg.TableColumn("dlq_messages", "bigint", "Messages in TICKS_DLQ."),
            dg.TableColumn("raw_msgs_per_s.<source>", "double", "Raw batches per second per source since the "
                           "previous observation.", tags={"unit": "messages/s"}),
        ]),
    },
)


@dg.multi_asset_check(
    name=STREAM_PROGRESS,
    specs=[
        dg.AssetCheckSpec(STREAM_PROGRESS, asset=TICK_STREAM_KEY, blocking=False,
                          description="TICKS_RAW received something in the last QP_STREAM_STALE_MINUTES (default "
                                      "15). The ingest sensor reports this check on every evaluation; it can also "
                                      "be run by hand."),
        dg.AssetCheckSpec(SOURCES_PROGRESS, asset=TICK_STREAM_KEY, blocking=False,
                          description="No source stopped while others flow: each source's newest raw message on "
                                      "ticks.raw.<source>.batch is younger than QP_SOURCE_STALE_MINUTES (default 10) "
                                      "whenever one of its instruments is in trading hours (crypto 24/7, US "
                                      "equities 09:30-16:00 New York on weekdays, futures on Globex hours) and "
                                      "another source is flowing (all of them stopping is stream_progressing's "
                                      "failure). Per source: its last message and age. The ingest sensor reports it "
                                      "on every evaluation; the alert sensor posts one incident per stalled source."),
    ],
)
def stream_progressing():
    state = observe.stream_state_now(_nats_url())
    yield _progress_check(state, None)
    yield _sources_check(state)


def _sources_check(state: dict, now: float | None = None) -> dg.AssetCheckResult:
    from quant_platform.market.instruments import InstrumentMaster

    now = time.time() if now is None else now
    rows = observe.source_liveness(state, now, observe.source_classes(InstrumentMaster.load()))
    stalled = [r for r in rows if r["stalled"]]
    return dg.AssetCheckResult(
        asset_key=TICK_STREAM_KEY, check_name=SOURCES_PROGRESS, passed=not stalled,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"stalled_sources": ", ".join(r["source"] for r in stalled) or "none",
                  "flowing_sources": ", ".join(r["source"] for r in rows if r["fresh"]) or "none",
                  "stale_after_minutes": observe.source_stale_after_s() / 60,
                  **{f"last_message_age_s.{r['source']}": round(r["age_s"], 1) if r["age_s"] is not None else -1
                     for r in rows},
                  **{f"in_trading_hours.{r['source']}": r["expected"] for r in rows}})


def _progress_check(state: dict, last_progress_ts: float | None) -> dg.AssetCheckResult:
    now = time.time()
    last = max(filter(None, (last_progress_ts, state.get(STREAM_RAW, {}).get("last_time"))), default=None)
    passed = last is not None and now - last <= stale_after().total_seconds()
    return dg.AssetCheckResult(
        asset_key=TICK_STREAM_KEY, check_name=STREAM_PROGRESS, passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"last_progress": datetime.fromtimestamp(last, UTC).isoformat() if last else "never",
                  "stale_after_minutes": stale_after().total_seconds() / 60,
                  "raw_last_seq": int(state.get(STREAM_RAW, {}).get("last_seq", 0))})


def _observation_metadata(state: dict, previous: dict | None, now: float) -> dict:
    raw, norm, dlq = state[STREAM_RAW], state[STREAM_NORM], state[STREAM_DLQ]
    cons_raw = raw.get("consumers", {}).get("normalizer", {})
    cons_norm = norm.get("consumers", {}).get("lander", {})
    md: dict = {
        "raw_last_seq": int(raw["last_seq"]), "ticks_last_seq": int(norm["last_seq"]),
        "raw_messages": int(raw["messages"]), "raw_bytes": int(raw["bytes"]),
        "normalizer_ack_floor": int(cons_raw.get("ack_floor_stream_seq", 0)),
        "lander_ack_floor": int(cons_norm.get("ack_floor_stream_seq", 0)),
        "normalizer_lag": int(cons_raw.get("lag", 0)), "lander_lag": int(cons_norm.get("lag", 0)),
        "dlq_messages": int(dlq["messages"]),
    }
    for name, c in sorted(norm.get("consumers", {}).items()):
        if name != "lander":
            md[f"fanout_lag.{name}"] = int(c.get("lag", 0))
    for src, n in sorted(raw.get("per_source", {}).items()):
        md[f"raw_messages.{src}"] = n
    for src, n in sorted(dlq.get("per_source", {}).items()):
        md[f"dlq_messages.{src}"] = n
    if previous and now > previous.get("t", now):
        dt = now - previous["t"]
        for src, n in sorted(raw.get("per_source", {}).items()):
            md[f"raw_msgs_per_s.{src}"] = round(max(0, n - previous.get("per_source", {}).get(src, 0)) / dt, 3)
        md["ticks_msgs_per_s"] = round(max(0, int(norm["last_seq"]) - previous.get("norm", 0)) / dt, 3)
    return md


# ------------------------------------------------------------------------------------------- ticks_daily
def _column_lineage(spec: TableSpec, upstream: dg.AssetKey, mapping: dict[str, list[str]]) -> dg.TableColumnLineage:
    return dg.TableColumnLineage(deps_by_column={
        col: [dg.TableColumnDep(asset_key=upstream, column_name=c) for c in cols] for col, cols in mapping.items()})


TICKS_DAILY_CHECKS = [
    dg.AssetCheckSpec(name, asset=TICKS_DAILY_KEY, blocking=name in dc.BLOCKING, description=desc)
    for name, desc in dc.CHECK_DESCRIPTIONS.items()
]


@dg.asset(
    key=TICKS_DAILY_KEY,
    description=(
        "All ticks of one UTC day, compacted from the landed micro-batches (ticks/landing/date=D): deduplicated by "
        "event_id (redelivery duplicates removed, the copy from the earliest raw message kept), sorted by "
        "(instrument_id, ts), written as zstd Parquet to ticks/daily/date=D/ticks.parquet. Write-audit-publish: "
        "the checks run on a staged file and the day is published only when every blocking check passes, so a "
        "failed compaction leaves the previous good version in place. Requested by market_ingest_sensor once the "
        "day is closed (the normalizer and lander drained everything received up to midnight plus "
        "QP_TICK_LATENESS_MINUTES); a late tick changes the run key and the day is compacted again."
    ),
    partitions_def=TICK_DAILY_PARTITIONS,
    deps=[TICK_STREAM_KEY],
    group_name=GROUP,
    owners=[OWNER_MARKET],
    kinds={"parquet", "duckdb"},
    tags={"layer": "lake"},
    metadata={"dagster/column_schema": TICKS_DAILY_TABLE.column_schema(), "primary_key": "event_id",
              "dagster/table_name": "lake.ticks_daily",
              "path": "ticks/daily/date=<D>/ticks.parquet (ledger raw_seqs.parquet, _manifest.json)"},
    check_specs=TICKS_DAILY_CHECKS,
    freshness_policy=TICKS_DAILY_FRESHNESS,
    code_version="ticks_daily.v1",
)
def ticks_daily(context: dg.AssetExecutionContext):
    from quant_platform.market.instruments import InstrumentMaster

    day = context.partition_key
    root = lake_root()
    store = tick_store()
    t0 = time.monotonic()
    if store is not None:  # the working copy of this day and its neighbours (sequence accounting reads them)
        near = [(date.fromisoformat(day) + timedelta(days=k)).isoformat() for k in (-1, 0, 1)]
        store.compact_landing(day)  # small-file compaction first: same rows, fewer files to read
        for d in near:
            store.pull_landing(root, d)
            store.pull_daily(root, d)
    staged = cp.stage_day(root, day)
    t_compact = time.monotonic() - t0
    url = observe.running_nats_url(load_settings().home)
    drained = context.run.tags.get(RAW_DRAINED_TAG)
    first_seq = None
    state = None
    if url:
        state = observe.stream_state_now(url)
        first_seq = int(state[STREAM_RAW]["first_seq"]) or None
        if drained is None:
            drained = observe.ack_floor(state, STREAM_RAW)
    window = cp.sequence_window(root, day, staged.seqs_path, stream_first_seq=first_seq,
                                drained_raw_seq=int(drained) if drained is not None else None)
    dlq_read = None
    if state is not None:
        # from where an earlier published day left off: the DLQ records of D's window, not the whole DLQ
        dlq_read = observe.dlq_now(url, start_seq=cp.dlq_resume_seq(root, day, window.start))
    else:
        context.log.warning("no NATS server reachable: the completeness check counts only the lake's sequences")
    acc = cp.account_sequences(root, day, staged.seqs_path, set(dlq_read.raw if dlq_read else ()),
                               stream_first_seq=first_seq, drained_raw_seq=None, window=window)
    master = InstrumentMaster.load()
    classes = {i.instrument_id: i.asset_class for i in master.instruments()}
    formats = {src: master.format_for(src) for src in staged.sources}
    con = cp.duck()
    try:
        rules = dc.evaluate_rules(con, staged.ticks_path, day, classes, id_hashes=staged.id_hashes)
        gaps = vg.day_gaps(con, staged.ticks_path, day, formats, dlq_read.vendor if dlq_read else None,
                           acc.window if acc.expected else None)
    finally:
        con.close()
    from quant_platform.market.lake_landing import write_parquet_atomic

    write_parquet_atomic(vg.gaps_table(gaps), staged.stage_dir / cp.VENDOR_GAPS_FILE)
    vendor_ok, vendor_md = vg.check_metadata(gaps, formats)
    if dlq_read is None:
        vendor_md["dlq_read"] = "no NATS server: connection windows and rejected events are not known"
    rules.append(dc.RuleResult(dc.VENDOR_SEQUENCE, vendor_ok, vendor_md))
    completeness = dc.RuleResult(dc.COMPLETENESS, acc.passed, {
        "raw_seq_window": f"{acc.window[0]}-{acc.window[1]}",
        "raw_messages_expected": acc.expected,
        "raw_messages_in_ticks": acc.in_ticks,
        "raw_messages_in_dlq": acc.in_dlq,
        "raw_messages_on_other_days": acc.on_other_days,
        "raw_messages_missing": acc.missing_count,
        "missing_seq_ranges": cp.format_ranges(acc.missing),
        "raw_messages_partly_landed": sum(b - a + 1 for a, b in acc.partial),
        "partly_landed_seq_ranges": cp.format_ranges(acc.partial),
        "ticks_missing": acc.ticks_missing,
    })
    results = [completeness, *rules]
    ok = all(r.passed for r in results if r.name in dc.BLOCKING)
    t_checks = time.monotonic() - t0 - t_compact
    published_path = None
    if ok:
        manifest = {"published": True, "published_at": datetime.now(UTC).isoformat(), "run_id": context.run.run_id,
                    "raw_seq_window": list(acc.window)}
        if dlq_read is not None and window.lo is not None:
            manifest["dlq_resume"] = {"raw_above": window.lo, "dlq_seq": dlq_read.resume_after(window.lo)}
        published_path = cp.publish_staged(root, staged, manifest)
        if store is not None:
            version = store.publish_daily(root, day)
            context.log.info(f"ticks_daily {day} committed to Iceberg {store.daily.name()} ({version})")
    else:
        context.log.error("ticks_daily %s not published: blocking checks failed (%s); staged files kept in %s",
                          day, ", ".join(r.name for r in results if not r.passed and r.name in dc.BLOCKING),
                          staged.stage_dir)
    target = cp.daily_file(root, day)
    yield dg.MaterializeResult(
        metadata={
            "published": ok,
            "path": str(published_path or staged.ticks_path),
            "dagster/row_count": staged.rows_out,
            "rows_landed": staged.rows_in,
            "duplicates_removed": staged.duplicates_removed,
            "duplicates_apart": staged.duplicates_apart,
            "instruments": staged.instruments,
            "sources": ", ".join(staged.sources),
            "landing_files": len(staged.inputs),
            "landing_signature": staged.landing_signature,
            "stream_seq_range": f"{acc.window[0]}-{acc.window[1]}",
            "raw_messages": staged.raw_seq_count,
            "content_hash": staged.content_hash,
            "file_sha256": staged.file_sha256,
            "unchanged_since_last_publish": bool(staged.extra.get("unchanged", False)),
            "bytes": staged.bytes,
            "lake_days_read": json.dumps(acc.days_read),
            "dlq_records_read": dlq_read.records if dlq_read else 0,
            "dlq_read_from": dlq_read.read_from if dlq_read else 0,
            "compaction_seconds": round(t_compact, 3),
            "checks_seconds": round(t_checks, 3),
            "dagster/uri": target.resolve().as_uri() if ok else staged.ticks_path.resolve().as_uri(),
        },
        data_version=dg.DataVersion(staged.content_hash),
        check_results=[dg.AssetCheckResult(
            check_name=r.name, passed=r.passed, metadata=r.metadata,
            severity=dg.AssetCheckSeverity.ERROR if r.name in dc.BLOCKING else dg.AssetCheckSeverity.WARN)
            for r in results],
    )


# ------------------------------------------------------------------------------------------- downstream
def _published_file(day: str) -> Path:
    store = tick_store()
    if store is not None:
        store.pull_daily(lake_root(), day)
    path = cp.daily_file(lake_root(), day)
    manifest = cp.read_manifest(lake_root(), day)
    if not path.exists() or not manifest or not manifest.get("published"):
        raise dg.Failure(f"ticks_daily {day} is not published (its blocking checks have not passed)")
    return path


_BARS_LINEAGE = {"trade_date": ["ts"], "instrument_id": ["instrument_id"], "minute": ["ts"],
                 "open": ["price", "ts"], "high": ["price"], "low": ["price"], "close": ["price", "ts"],
                 "volume": ["size"], "vwap": ["price", "size"], "trades": ["event_id"]}
_STATS_LINEAGE = {"trade_date": ["ts"], "instrument_id": ["instrument_id"], "sources": ["source"],
                  "ticks": ["event_id"], "trades": ["event"], "quotes": ["event"], "volume": ["size"],
                  "vwap": ["price", "size"], "first_ts": ["ts"], "last_ts": ["ts"], "first_price": ["price", "ts"],
                  "last_price": ["price", "ts"], "high": ["price"], "low": ["price"],
                  "spread_mean": ["bid", "ask"], "spread_median": ["bid", "ask"], "spread_max": ["bid", "ask"],
                  "spread_mean_bps": ["bid", "ask"]}


def _rows_check(spec: TableSpec, df) -> list[dg.AssetCheckResult]:
    key_dups = int(df.duplicated(list(spec.primary_key)).sum())
    return [dg.AssetCheckResult(check_name="primary_key_unique", passed=key_dups == 0,
                                metadata={"duplicate_keys": key_dups, "rows": len(df)})]


def _derived_asset(spec: TableSpec, lineage: dict, compute, extra_desc: str):
    @dg.asset(
        key=spec.asset_key,
        description=spec.description + extra_desc,
        partitions_def=TICK_DAILY_PARTITIONS,
        deps=[TICKS_DAILY_KEY],
        group_name=GROUP,
        owners=[OWNER_MARKET],
        kinds={"duckdb", warehouse_kind()} | ({"parquet"} if spec is BARS_1M else set()),
        tags={"layer": "market"},
        metadata={**spec.catalog_metadata(),
                  "dagster/column_lineage": _column_lineage(spec, TICKS_DAILY_KEY, lineage)},
        check_specs=[dg.AssetCheckSpec("primary_key_unique", asset=spec.asset_key, blocking=True,
                                       description=f"One row per ({', '.join(spec.primary_key)}).")],
        pool=WAREHOUSE_POOL,
        code_version=f"{spec.name}.v1",
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        day = context.partition_key
        src = _published_file(day)
        con = cp.duck()
        try:
            df = compute(con, src, day)
        finally:
            con.close()
        extra = {}
        if spec is BARS_1M:
            import pyarrow as pa

            out = lake_root() / cp.BARS / f"date={day}" / "bars.parquet"
            from quant_platform.market.lake_landing import write_parquet_atomic

            write_parquet_atomic(pa.Table.from_pandas(df, preserve_index=False), out)
            extra["lake_path"] = str(out)
            store = tick_store()
            if store is not None:  # one whole object, derived from the published day: rewritten, never partial
                extra["lake_path"] = store.put_file(out, f"{cp.BARS}/date={day}/bars.parquet")
        wh = warehouse.open()
        try:
            rows = wh.replace_rows(spec, df, [date.fromisoformat(day)])
        finally:
            wh.dispose()
        return dg.MaterializeResult(
            metadata={"dagster/row_count": rows, "instruments": int(df["instrument_id"].nunique()), **extra},
            check_results=_rows_check(spec, df))

    return _asset


bars_1m = _derived_asset(BARS_1M, _BARS_LINEAGE, dc.bars_1m,
                         " Also written to the lake as bars/1m/date=D/bars.parquet.")
daily_stats = _derived_asset(DAILY_STATS, _STATS_LINEAGE, dc.daily_stats, "")


@dg.asset(
    key=TICKS_HISTORY.asset_key,
    description=TICKS_HISTORY.description,
    partitions_def=TICK_DAILY_PARTITIONS,
    deps=[TICKS_DAILY_KEY],
    group_name=GROUP,
    owners=[OWNER_MARKET],
    kinds={warehouse_kind(), "parquet"},
    tags={"layer": "market"},
    metadata={**TICKS_HISTORY.catalog_metadata(),
              "dagster/column_lineage": _column_lineage(
                  TICKS_HISTORY, TICKS_DAILY_KEY,
                  {c.name: [c.name if c.name != "trade_date" else "ts"] for c in TICKS_HISTORY.columns})},
    pool=WAREHOUSE_POOL,
    code_version="ticks_history.v1",
)
def ticks_history(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from quant_platform.market.history import load_history

    day = context.partition_key
    src = _published_file(day)
    manifest = cp.read_manifest(lake_root(), day) or {}
    wh = warehouse.open()
    try:
        out = load_history(wh, lake_root(), day, src, int(manifest.get("rows_out", -1)))
    finally:
        wh.dispose()
    return dg.MaterializeResult(metadata={"dagster/row_count": out["rows"], "storage": out["storage"],
                                          "content_hash": manifest.get("content_hash", "")})


@dg.asset(
    key=VENDOR_GAPS.asset_key,
    description=VENDOR_GAPS.description,
    partitions_def=TICK_DAILY_PARTITIONS,
    deps=[TICKS_DAILY_KEY],
    group_name=GROUP,
    owners=[OWNER_MARKET],
    kinds={warehouse_kind(), "parquet"},
    tags={"layer": "market"},
    metadata={**VENDOR_GAPS.catalog_metadata(),
              "lake_path": f"ticks/daily/date=<D>/{cp.VENDOR_GAPS_FILE} (written by the compaction of D)"},
    check_specs=[dg.AssetCheckSpec("primary_key_unique", asset=VENDOR_GAPS.asset_key, blocking=True,
                                   description="One row per (trade_date, gap_id).")],
    pool=WAREHOUSE_POOL,
    code_version="vendor_gaps.v1",
)
def vendor_gaps(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """The rows the day's compaction found (ticks_daily's check vendor_sequence_complete counts them), replacing
    the day's rows in the warehouse."""
    import pyarrow.parquet as pq

    day = context.partition_key
    _published_file(day)
    path = cp.daily_dir(lake_root(), day) / cp.VENDOR_GAPS_FILE
    if not path.exists():  # compacted before the table existed: no rows known, none claimed
        raise dg.Failure(f"ticks_daily {day} was published without {cp.VENDOR_GAPS_FILE}: compact the day again")
    df = pq.read_table(path).to_pandas()
    wh = warehouse.open()
    try:
        rows = wh.replace_rows(VENDOR_GAPS, df, [date.fromisoformat(day)])
    finally:
        wh.dispose()
    by_kind = df["kind"].value_counts().to_dict() if len(df) else {}
    return dg.MaterializeResult(
        metadata={"dagster/row_count": rows, **{f"{k}_gaps": int(by_kind.get(k, 0)) for k in vg.KINDS},
                  "events_missing": int(df["missing"].fillna(0).sum()) if len(df) else 0},
        check_results=_rows_check(VENDOR_GAPS, df))


MARKET_ASSETS = [tick_stream, ticks_daily, bars_1m, daily_stats, ticks_history, vendor_gaps, futures_continuous_1m]

ticks_daily_job = dg.define_asset_job(
    "ticks_daily_job",
    selection=dg.AssetSelection.assets(TICKS_DAILY_KEY).downstream(),
    description="Compact one closed UTC tick day, check it, then bars, daily stats, vendor gaps and warehouse "
                "history.",
)


# ------------------------------------------------------------------------------------------- the sensor
def closed_days(landing, drained_at: datetime | None) -> list[str]:
    """Days (of the iterable `landing`) whose midnight + lateness is before the last completed drain barrier."""
    if drained_at is None:
        return []
    out = []
    for day in sorted(landing):
        end = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
        if end + lateness() <= drained_at:
            out.append(day)
    return out


# A folder changed this recently is listed again on the next tick: a file renamed into it within the file
# system's timestamp granularity of the listing could leave its mtime unchanged.
LANDING_SETTLE_S = 5.0


def _landing_requests(context, cursor: dict, drained_at: datetime | None, now: float) -> list[dg.RunRequest]:
    """Run requests for closed landing days that are new or changed since the sensor last listed them.

    The cursor keeps, per landing day, its signature, its source folders and their mtimes: a known day whose
    folders are unchanged is not listed again (a few stats instead of a glob), so a tick costs the days that
    changed, not the lake's history. Days gone from the landing area (retention, quarantine) are forgotten."""
    store = tick_store()
    if store is not None:
        return _store_landing_requests(context, store, cursor, drained_at)
    root = lake_root()
    names = cp.landing_day_names(root)  # one directory read: folder names only
    present = set(names)
    known = {d: e for d, e in cursor.get("landing", {}).items() if d in present}
    requests, listed = [], 0
    first_partition = TICK_DAILY_PARTITIONS.get_first_partition_key()
    for day in closed_days(names, drained_at):
        entry = known.get(day)
        day_dir = root / cp.LANDING / f"date={day}"
        if entry and entry.get("fp") and cp.dir_fingerprint(day_dir, entry["src"]) == entry["fp"]:
            continue
        listed += 1
        files = cp.landing_files(root, day)
        sources = sorted({f.parent.name for f in files})
        sig = cp.landing_signature(files)
        known[day] = {"sig": sig, "src": sources,
                      "fp": cp.dir_fingerprint(day_dir, sources, settled_before=now - LANDING_SETTLE_S)}
        if files and not (entry is not None and entry.get("sig") == sig):
            requests += _day_request(context, cursor, day, sig, first_partition)
    cursor["landing"] = known
    cursor["landing_listed"] = listed
    return requests


def _day_request(context, cursor: dict, day: str, sig: str, first_partition: str) -> list[dg.RunRequest]:
    """The run request of a new or changed landing day (its run key carries the landing signature)."""
    if day < first_partition:
        context.log.warning(f"landed ticks dated {day} are before the first tick partition {first_partition}")
        return []
    return [dg.RunRequest(run_key=f"ticks_daily:{day}:{sig}", partition_key=day,
                          tags={RAW_DRAINED_TAG: str(cursor.get("drained_raw", 0)), SIGNATURE_TAG: sig})]


def _store_landing_requests(context, store: TickStore, cursor: dict, drained_at: datetime | None) -> list:
    """The object-store lake's run requests: the days of the Iceberg landing table's current snapshot (metadata
    only: no object is read), signed by their sequence range and row count (tick_store.landing_signature)."""
    from quant_platform.market.tick_store import landing_signature

    days = store.landing_days()
    known = {d: e for d, e in cursor.get("landing", {}).items() if d in days}
    requests = []
    first_partition = TICK_DAILY_PARTITIONS.get_first_partition_key()
    for day in closed_days(sorted(days), drained_at):
        sig = landing_signature(days[day])
        entry = known.get(day)
        known[day] = {"sig": sig}
        if not (entry is not None and entry.get("sig") == sig):
            requests += _day_request(context, cursor, day, sig, first_partition)
    cursor["landing"] = known
    cursor["landing_listed"] = len(days)
    return requests


@dg.sensor(
    name="market_ingest_sensor",
    job=ticks_daily_job,
    minimum_interval_seconds=int(os.environ.get("QP_INGEST_SENSOR_INTERVAL", "30")),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Reads the JetStream state of the tick pipeline (light: stream and consumer info only), records it as "
        "an observation of market/tick_stream, and requests market/ticks_daily for each closed UTC day: once "
        "the normalizer and lander have drained everything received up to midnight + QP_TICK_LATENESS_MINUTES. "
        "The run key carries the day's landed sequence range, so a late tick requests the day again. Only new or "
        "changed landing days are listed (their folders' mtimes are kept in the cursor)."
    ),
)
def market_ingest_sensor(context: dg.SensorEvaluationContext):
    url = observe.running_nats_url(load_settings().home)
    if not url:
        return dg.SkipReason("no NATS server: `quant-platform ingest run` is not running and QP_NATS_URL is unset")
    cursor = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    now_dt = datetime.fromtimestamp(now, UTC)
    try:
        state = observe.stream_state_now(url)
    except Exception as exc:  # the stream being down is worth a log line, not a failed sensor tick
        return dg.SkipReason(f"NATS at {url.split('@')[-1]} unreachable: {type(exc).__name__}: {exc}")
    if not state[STREAM_RAW].get("exists"):
        return dg.SkipReason("the tick streams are not declared yet")
    events: list = []
    prev = cursor.get("obs")
    progress = (prev is None or int(state[STREAM_RAW]["last_seq"]) != prev.get("raw")
                or int(state[STREAM_NORM]["last_seq"]) != prev.get("norm"))
    metadata = _observation_metadata(state, prev, now)
    if progress:
        events.append(dg.AssetObservation(asset_key=TICK_STREAM_KEY, metadata=metadata))
        cursor["last_progress"] = now
    cursor["obs"] = {"t": now, "raw": int(state[STREAM_RAW]["last_seq"]), "norm": int(state[STREAM_NORM]["last_seq"]),
                     "per_source": state[STREAM_RAW].get("per_source", {})}
    for check in (_progress_check(state, cursor.get("last_progress")), _sources_check(state, now)):
        events.append(dg.AssetCheckEvaluation(
            asset_key=TICK_STREAM_KEY, check_name=check.check_name, passed=check.passed,
            metadata=check.metadata, severity=dg.AssetCheckSeverity.WARN))

    barrier, done = observe.advance_barrier(cursor.get("barrier"), state, lambda: observe.stream_state_now(url),
                                            now_dt.isoformat())
    cursor["barrier"] = barrier
    if done:
        cursor["drained_at"] = done["at"]
        cursor["drained_raw"] = done["raw"]
    drained_at = datetime.fromisoformat(cursor["drained_at"]) if cursor.get("drained_at") else None
    requests = _landing_requests(context, cursor, drained_at, now)
    return dg.SensorResult(run_requests=requests, asset_events=events, cursor=json.dumps(cursor))


# ------------------------------------------------------------------------------------------- retention
LANDING_ABANDONED = "landing_not_abandoned"
QUARANTINE_AFTER_ENV = "QP_TICK_QUARANTINE_AFTER_DAYS"
QUARANTINE_KEEP_ENV = "QP_TICK_QUARANTINE_KEEP_DAYS"


def _retention_settings() -> tuple[int, int, int]:
    """(QP_OLAP_RETENTION_DAYS, QP_TICK_QUARANTINE_AFTER_DAYS, QP_TICK_QUARANTINE_KEEP_DAYS)."""
    from quant_platform.platform.settings import SettingError, bounded_env

    try:
        return (int(bounded_env("QP_OLAP_RETENTION_DAYS", 3, 0, 3650, integer=True)),
                int(bounded_env(QUARANTINE_AFTER_ENV, 7, 1, 3650, integer=True)),
                int(bounded_env(QUARANTINE_KEEP_ENV, 30, 0, 3650, integer=True)))
    except SettingError as exc:
        raise dg.Failure(str(exc)) from None


@dg.op(description="Delete landing folders older than QP_OLAP_RETENTION_DAYS whose day is published and checked; "
                   "move abandoned landing days (older than QP_TICK_QUARANTINE_AFTER_DAYS, never published or not "
                   "covered by the published compaction) to ticks/quarantine/ with a WARN check per day; delete "
                   "quarantine older than QP_TICK_QUARANTINE_KEEP_DAYS.")
def delete_expired_landing(context: dg.OpExecutionContext) -> list:
    days, after, keep = _retention_settings()
    root, now = lake_root(), datetime.now(UTC)
    store = tick_store()
    if store is not None:
        # Object-store lake: covered published days older than the retention leave ticks_landing (one commit
        # each); abandoned days go to quarantine objects; objects no snapshot references are deleted.
        removed = store.expire_landing(days, now.date())
        context.log.info(f"removed landing days {removed or 'none'} from {store.landing.name()} (retention {days})")
        cp.apply_landing_retention(root, days, now.date())  # the working copy follows
        quarantined = store.quarantine_abandoned(after, keep, now)
        expired = store.expire_quarantine(keep, now)
        orphans = store.delete_orphans()
        context.log.info(f"deleted objects no table snapshot references: {orphans}")
    else:
        removed = cp.apply_landing_retention(root, days, now.date())
        context.log.info(f"removed landing folders of {removed or 'no day'} (retention {days} days)")
        quarantined = cp.quarantine_abandoned_landing(root, after, keep, now)
        expired = cp.expire_quarantine(root, keep, now)
    for rec in quarantined:
        context.log.warning(f"landing day {rec['day']} quarantined to {rec['path']} ({rec['reason']}; "
                            f"{rec['rows']} rows, {len(rec['files'])} files); deleted after {rec['delete_after']}")
        context.log_event(dg.AssetCheckEvaluation(
            asset_key=TICKS_DAILY_KEY, check_name=LANDING_ABANDONED, passed=False, partition=rec["day"],
            severity=dg.AssetCheckSeverity.WARN,
            description=f"Landing ticks of {rec['day']} never reached a published compaction and were moved to "
                        f"quarantine after {after} days; they are deleted after {keep} more unless restored.",
            metadata={k: rec[k] for k in ("reason", "rows", "bytes", "path", "delete_after", "restore")}
            | {"files": len(rec["files"])}))
    for rec in expired:
        context.log.warning(f"quarantined landing ticks of {rec['day']} deleted ({rec['rows']} rows, kept since "
                            f"{rec['quarantined_at']})")
        context.log_event(dg.AssetCheckEvaluation(
            asset_key=TICKS_DAILY_KEY, check_name=LANDING_ABANDONED, passed=True, partition=rec["day"],
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"resolved_by": f"quarantine deleted after {keep} days", "rows_deleted": rec["rows"],
                      "path": rec["path"]}))
    return removed


@dg.job(description="Landing retention: the OLAP views keep the last few days; history lives in ticks_daily. "
                    "Abandoned landing days go to quarantine (with a WARN check) before they are deleted.")
def market_retention_job():
    delete_expired_landing()


market_retention_schedule = dg.ScheduleDefinition(
    job=market_retention_job, cron_schedule="30 2 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING)
