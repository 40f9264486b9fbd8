"""Ticks in the asset graph, on a real nats-server and a real Dagster instance: a simulated trading stretch
across midnight UTC with redelivery duplicates is ingested; the ingest sensor requests exactly the closed day;
compaction removes the duplicates; the completeness check accounts for every raw message by sequence; a lost
landing file fails it and blocks the bars; compacting again changes nothing.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from quant_platform.market.contracts import RawFrame
from quant_platform_tests.market_helpers import landed_table, sim_frames, wait_for
from quant_platform_tests.release_helpers import evaluate_sensor


def _frames(start: datetime, n: int, step_ms: int, seq0: int) -> list[RawFrame]:
    return sim_frames(n, int(start.timestamp() * 1e9), step_ns=step_ms * 1_000_000, seq0=seq0)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """Ingest 23:58-00:02 UTC around last midnight through the real normalizer and lander, with a forced
    redelivery of TICKS messages that were already landed, one malformed frame and one heartbeat-only raw
    message. Yields (nats url, lake, published ticks by day, the day before that midnight, ticks landed twice).

    "Last midnight" is taken when the fixture runs; the tests judge what is closed by the time they use it."""
    import nats

    from quant_platform.market.lake_landing import land_batch
    from quant_platform.market.lander import LanderStats, parse_raw_ticks, run_lander
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.normalizer import HDR_RAW_TICKS, NormalizerStats, ipc_to_table, run_normalizer
    from quant_platform.market.publisher import publish_frames

    base = tmp_path_factory.mktemp("daily")
    lake = base / "lake"
    midnight = datetime.combine(datetime.now(UTC).date(), datetime.min.time(), UTC)
    first = _frames(midnight - timedelta(minutes=2), 1200, 100, 0)  # 23:58:00 - 23:59:59.9
    second = _frames(midnight - timedelta(seconds=1), 1210, 100, 5000)  # 23:59:59 - 00:02:00
    heartbeat = [RawFrame(1, b'{"ev":"H","t":1}')]
    malformed = [RawFrame(2, b'{"sym":"CL","ev":"T","t":1,"seq":1,"p":"NaN","s":1}')]
    forced: Counter[str] = Counter()  # ticks landed by the forced redelivery (then landed again), by day

    with EmbeddedNats(base / "nats").start() as srv:
        async def run():
            stop = asyncio.Event()
            nstats, lstats = NormalizerStats(), LanderStats()
            normalizer = asyncio.create_task(run_normalizer(srv.url, stop, fetch_batch=4, stats=nstats))
            await publish_frames(srv.url, "simulator", first, max_frames=40)
            await publish_frames(srv.url, "simulator", heartbeat, max_frames=40)
            await publish_frames(srv.url, "simulator", malformed, max_frames=40)
            await publish_frames(srv.url, "simulator", second, max_frames=40)
            nc = await nats.connect(srv.url)
            js = nc.jetstream()
            await wait_for(lambda: nstats.frames >= len(first) + len(second) + 2, timeout_s=60)
            # Forced redelivery: land the first TICKS messages one file each, then nak them, as a lander that
            # crashed between its rename and its ack would leave them.
            sub = await js.pull_subscribe("ticks.norm.>", durable="lander", stream="TICKS")
            msgs = await sub.fetch(6, timeout=5)
            for m in msgs:
                seq = m.metadata.sequence.stream
                table = ipc_to_table(m.data)
                forced[pc.min(table["ts"]).as_py().date().isoformat()] += table.num_rows
                land_batch(lake, table, seq, seq, parse_raw_ticks(m.headers.get(HDR_RAW_TICKS, "")))
                await m.nak()
            await sub.unsubscribe()
            # one file per micro-batch, no rollup: the lost-file test below derives what is lost file by file
            lander = asyncio.create_task(run_lander(srv.url, lake, stop, max_rows=400, max_age_s=0.2,
                                                     fetch_batch=12, stats=lstats, rollup_age_s=0))
            info = await js.stream_info("TICKS")
            await wait_for(lambda: lstats.batches and _floor(js, info.state.last_seq), timeout_s=60)
            await nc.close()
            stop.set()
            await asyncio.gather(normalizer, lander)

        asyncio.run(run())
        published: dict[str, int] = {}
        for f in first + second:
            day = datetime.fromtimestamp(f.received_at_ns / 1e9, UTC).date().isoformat()
            published[day] = published.get(day, 0) + 1
        yield srv.url, lake, published, (midnight - timedelta(days=1)).date().isoformat(), forced


async def _floor_async(js, target: int) -> bool:
    ci = await js.consumer_info("TICKS", "lander")
    return ci.ack_floor.stream_seq >= target


def _floor(js, target: int):
    return _floor_async(js, target)


def _closed_days(published: dict[str, int]) -> list[str]:
    """The ingested days that are over now (lateness 0), judged when called: a run across midnight UTC
    closes the ingest's second day too."""
    today = datetime.now(UTC).date().isoformat()
    return sorted(d for d in published if d < today)


def _requested_days(sensor_result, closed_before: list[str], published: dict[str, int]) -> list[str]:
    """The sensor asks for exactly the closed days, as they stood before or after its evaluation."""
    days = [r.partition_key for r in sensor_result.run_requests]
    assert days in (closed_before, _closed_days(published)), (days, closed_before)
    return days


def _job_run(instance, day: str, tags: dict | None = None):
    from quant_platform.definitions import defs

    job = defs.resolve_job_def("ticks_daily_job")
    return job.execute_in_process(partition_key=day, tags=tags or {}, instance=instance, raise_on_error=False)


def _checks(result) -> dict:
    return {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def _materialization(result, key: str):
    mats = [m for m in result.asset_materializations_for_node(key)]
    return mats[-1] if mats else None


def _md(mat, name):
    return mat.metadata[name].value


@pytest.fixture
def lake_copy(ingested, qp_home, warehouse_url, monkeypatch):
    url, lake, published, day, forced = ingested
    target = qp_home / "lake"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(lake, target)
    monkeypatch.setenv("QP_LAKE_URL", str(target))
    monkeypatch.setenv("QP_NATS_URL", url)
    monkeypatch.setenv("QP_TICK_LATENESS_MINUTES", "0")
    from quant_platform.cli import sql_dir
    from quant_platform.platform.settings import load_settings
    from quant_platform.platform.warehouse import Warehouse

    Warehouse(load_settings().warehouse_url).apply_sql_dir(sql_dir())
    return target, published, day, forced


def test_sensor_requests_the_closed_day_and_compaction_is_complete_and_idempotent(lake_copy, instance):
    import dagster as dg

    from quant_platform.definitions import defs
    from quant_platform.market.assets import TICK_STREAM_KEY, market_ingest_sensor

    lake, published, day, forced = lake_copy
    landed = landed_table(lake)
    # Every published tick landed, and the forced redelivery's ticks twice (nothing else was redelivered).
    assert (landed.num_rows, pc.count_distinct(landed["event_id"]).as_py()) == (
        sum(published.values()) + sum(forced.values()), sum(published.values()))
    assert set(forced) == {day} and forced[day] > 0
    ctx = dg.build_sensor_context(instance=instance, definitions=defs)
    closed = _closed_days(published)
    result = market_ingest_sensor(ctx)
    assert _requested_days(result, closed, published)[0] == day  # the ingest's second day is not over (yet)
    req = result.run_requests[0]
    assert req.run_key.startswith(f"ticks_daily:{day}:")
    obs = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
    assert obs and obs[0].asset_key == TICK_STREAM_KEY
    assert obs[0].metadata["dlq_messages"].value == 2
    assert obs[0].metadata["lander_lag"].value == 0

    run = _job_run(instance, day, req.tags)
    checks = _checks(run)
    assert run.success, {n: (c.passed, c.metadata) for n, c in checks.items()}
    failed = {n: c.metadata for n, c in checks.items() if not c.passed}
    # The malformed frame's raw message is complete by stream sequence (it is in TICKS_DLQ), not for the vendor:
    # its event is not in the day. That is the one (WARN) failure.
    assert set(failed) == {"vendor_sequence_complete"}, failed
    vendor = failed["vendor_sequence_complete"]
    assert (vendor["rejected_gaps"].value, vendor["sequence_gaps"].value, vendor["disconnect_gaps"].value) == (1, 0, 0)
    comp = checks["complete_by_sequence"].metadata
    assert comp["raw_messages_missing"].value == 0
    assert comp["raw_messages_in_dlq"].value == 2  # the heartbeat-only message and the malformed frame's
    assert (comp["raw_messages_in_ticks"].value + comp["raw_messages_in_dlq"].value
            + comp["raw_messages_on_other_days"].value) == comp["raw_messages_expected"].value
    mat = _materialization(run, "market__ticks_daily")
    assert _md(mat, "published") is True
    assert _md(mat, "dagster/row_count") == published[day]
    assert _md(mat, "duplicates_removed") == forced[day]
    daily = pq.read_table(lake / "ticks" / "daily" / f"date={day}" / "ticks.parquet")
    assert daily.num_rows == published[day]
    assert pc.count_distinct(daily["event_id"]).as_py() == daily.num_rows
    assert pc.min(daily["ts"]).as_py().date().isoformat() == day
    keys = list(zip(daily["instrument_id"].to_pylist(), daily["ts"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    bars = _materialization(run, "market__bars_1m")
    assert bars is not None and _md(bars, "dagster/row_count") == 3 * 2  # 3 instruments x 23:58, 23:59
    from quant_platform.platform.settings import load_settings
    from quant_platform.platform.warehouse import Warehouse

    wh = Warehouse(load_settings().warehouse_url)
    assert wh.scalar("SELECT count(*) FROM market.ticks_history WHERE trade_date = :day", {"day": day}) == daily.num_rows
    trades = int(pc.sum(pc.equal(daily["event"], "trade")).as_py())
    assert wh.scalar("SELECT sum(trades) FROM market.bars_1m WHERE trade_date = :day", {"day": day}) == trades
    assert wh.scalar("SELECT sum(ticks) FROM market.daily_stats WHERE trade_date = :day", {"day": day}) == daily.num_rows

    # The same run key is not requested twice; compacting the day again changes nothing.
    again = _job_run(instance, day, req.tags)
    mat2 = _materialization(again, "market__ticks_daily")
    assert _md(mat2, "dagster/row_count") == _md(mat, "dagster/row_count")
    assert _md(mat2, "content_hash") == _md(mat, "content_hash")
    assert _md(mat2, "file_sha256") == _md(mat, "file_sha256")

    # Load audit: every partition with its raw sequence range, counts and path, by the real audit sensor.
    evaluate_sensor(defs, "governance_audit_sensor", instance, None)
    audit = wh.query_df("SELECT source_kind, source_ref, row_count FROM governance.load_audit "
                        "WHERE asset_key = 'market/ticks_daily' AND partition_key = :day", {"day": day})
    assert len(audit) == 2 and set(audit["source_kind"]) == {"stream_seq"}
    assert set(audit["source_ref"]) == {comp["raw_seq_window"].value}
    assert set(audit["row_count"]) == {daily.num_rows}

    # A late tick for the closed day lands: the sensor requests the day again under a new run key.
    import pyarrow as pa

    from quant_platform.market.lake_landing import land_batch

    late = daily.slice(0, 1).to_pylist()[0]
    late.update(event_id="late-tick", ts=late["ts"] + timedelta(seconds=1), stream_seq=10_000)
    land_batch(lake, pa.Table.from_pylist([late], schema=daily.schema), 900, 900, {10_000: 1})
    closed = _closed_days(published)
    result2 = market_ingest_sensor(dg.build_sensor_context(instance=instance, definitions=defs,
                                                           cursor=result.cursor))
    assert _requested_days(result2, closed, published)[0] == day
    assert result2.run_requests[0].run_key != req.run_key

    # Retention keeps the landing files of a day until a published compaction covered every one of them.
    from quant_platform.market.compaction import apply_landing_retention

    assert apply_landing_retention(lake, 0, datetime.now(UTC).date()) == []  # the late file is not compacted yet
    run3 = _job_run(instance, day, result2.run_requests[0].tags)
    assert _md(_materialization(run3, "market__ticks_daily"), "dagster/row_count") == daily.num_rows + 1
    assert apply_landing_retention(lake, 0, datetime.now(UTC).date()) == [day]
    assert not (lake / "ticks" / "landing" / f"date={day}").exists()
    assert pq.read_table(lake / "ticks" / "daily" / f"date={day}" / "ticks.parquet").num_rows == daily.num_rows + 1


def test_a_lost_landing_file_fails_completeness_names_the_range_and_blocks_the_bars(lake_copy, instance):
    lake, published, day, _ = lake_copy
    files = sorted((lake / "ticks" / "landing" / f"date={day}" / "source=simulator").glob("*.parquet"),
                   key=lambda p: int(p.name.split("-")[0]))
    assert len(files) >= 3
    ids = {f: set(pq.read_table(f, columns=["event_id"])["event_id"].to_pylist()) for f in files}
    # a file holding ticks no other file has (not one of the redelivery copies)
    only = [f for f in files if ids[f] - set().union(*(ids[g] for g in files if g != f))]
    victim = only[len(only) // 2]
    lost = pq.read_table(victim)
    victim.unlink()
    # What the lake no longer has, read from the files: the ticks (raw seq, event id) of the lost file that no
    # remaining landing file of either day holds, and the raw messages they came from.
    left = [pq.read_table(f, columns=["stream_seq", "event_id"])
            for f in (lake / "ticks" / "landing").rglob("*.parquet") if "source=_schema" not in str(f)]
    pairs_left = {pair for t in left for pair in zip(t["stream_seq"].to_pylist(), t["event_id"].to_pylist(),
                                                     strict=True)}
    gone = set(zip(lost["stream_seq"].to_pylist(), lost["event_id"].to_pylist(), strict=True)) - pairs_left
    seqs_left = {seq for seq, _ in pairs_left}
    partly_gone = {seq for seq, _ in gone} & seqs_left
    wholly_gone = {seq for seq, _ in gone} - seqs_left
    assert gone, "the victim file held no tick of its own"
    run = _job_run(instance, day)
    checks = _checks(run)
    comp = checks["complete_by_sequence"]
    assert not comp.passed
    named = [comp.metadata[k].value for k in ("missing_seq_ranges", "partly_landed_seq_ranges")]
    named = [r for text in named if text != "none" for r in text.split(", ")]
    assert named, comp.metadata
    reported = set()
    for r in named:
        a, _, b = r.partition("-")
        reported |= set(range(int(a), int(b or a) + 1))
    # A raw message past D's window (it straddles midnight: its first ticks of D were all in the lost file) is
    # no longer D's to account for: it is the next day's, which holds its other ticks and counts them short.
    end = int(comp.metadata["raw_seq_window"].value.split("-")[1])
    next_day = {s for f in (lake / "ticks" / "landing").glob("date=*/source=simulator/*.parquet")
                if f.parent.parent.name > f"date={day}" for s in pq.read_table(f, columns=["stream_seq"])[0].to_pylist()}
    assert {seq for seq, _ in gone if seq > end} <= next_day
    partly_gone = {s for s in partly_gone if s <= end}
    wholly_gone = {s for s in wholly_gone if s <= end}
    assert reported == partly_gone | wholly_gone  # exactly the raw messages that lost ticks with the file
    assert comp.metadata["raw_messages_missing"].value == len(wholly_gone)
    assert comp.metadata["raw_messages_partly_landed"].value == len(partly_gone)
    assert comp.metadata["ticks_missing"].value == sum(1 for seq, _ in gone if seq in partly_gone)
    mat = _materialization(run, "market__ticks_daily")
    assert _md(mat, "published") is False
    assert not (lake / "ticks" / "daily" / f"date={day}" / "ticks.parquet").exists()
    assert _materialization(run, "market__bars_1m") is None  # blocked by the failed blocking check
    assert _materialization(run, "market__ticks_history") is None


def test_a_crossed_quote_warns_with_samples_and_blocks_nothing(lake_copy, instance):
    """bid > ask is normal on consolidated US equity feeds: a WARN check with counts and samples; the day is
    published and bars and history are built."""
    import pyarrow as pa

    from quant_platform.market.lake_landing import write_parquet_atomic

    lake, _, day, _ = lake_copy
    src = lake / "ticks" / "landing" / f"date={day}" / "source=simulator"
    first = sorted(src.glob("*.parquet"), key=lambda p: int(p.name.split("-")[0]))[0]
    table = pq.read_table(first)
    quote = table.filter(pc.equal(table["event"], "quote")).slice(0, 1).to_pylist()[0]
    crossed = dict(quote, bid=quote["ask"] + 0.05, event_id=quote["event_id"] + "x")
    write_parquet_atomic(pa.Table.from_pylist([crossed], schema=table.schema), src / "999999998-999999998.parquet")
    run = _job_run(instance, day)
    check = _checks(run)["quotes_not_crossed_or_locked"]
    assert not check.passed and check.severity.value == "WARN"
    assert check.metadata["crossed_quotes"].value == 1
    assert crossed["instrument_id"] in check.metadata["sample"].value
    assert _md(_materialization(run, "market__ticks_daily"), "published") is True
    assert _materialization(run, "market__bars_1m") is not None
    assert _materialization(run, "market__ticks_history") is not None
