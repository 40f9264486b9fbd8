"""The whole tick lane, the same test on the local folder lake and on the object-store lake (Iceberg tables over
moto's S3 server): real normalizer and lander processes land a day of simulator ticks, the lander is SIGKILLed
mid-stream and restarted; the real ingest sensor requests the closed day; the real ticks_daily_job compacts it,
checks it (every raw message accounted for) and publishes it with its bars and warehouse history; DuckDB queries
the lake; a re-run is idempotent (same content, and on S3 no new table snapshot)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from quant_platform_tests.market_helpers import landed_table, sim_frames, wait_for
from quant_platform_tests.s3_server import s3_server  # noqa: F401 - the session fixture

DAY = "2025-12-03"
START_NS = 1_764_720_000_000_000_000  # 2025-12-03 00:00 UTC
TOTAL = 6_000


def _worker(role: str, url: str, lake: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "quant_platform.market.worker", "--role", role, "--nats", url,
                             "--lake", lake], env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _landed_ids(lake: str, store) -> list[str]:
    if store is None:
        table = landed_table(__import__("pathlib").Path(lake))
        return [] if table is None else table["event_id"].to_pylist()
    import pyarrow as pa

    out: list[str] = []
    for f in store.landing_files():
        out += pq.read_table(pa.BufferReader(store._get(f.path)), columns=["event_id"])["event_id"].to_pylist()
    return out


def _rolled(lake: str, store) -> bool:
    """The lander has rolled small landing files up (a rolled file in the folder, a rollup commit in the table)."""
    if store is None:
        from quant_platform.market.compaction import landing_files

        return any("-r" in f.name for f in landing_files(__import__("pathlib").Path(lake), DAY))
    store.refresh()
    return any(s.summary["qp.rolled"] for s in store.landing.snapshots())


def _job_run(instance, request):
    from quant_platform.definitions import defs

    job = defs.resolve_job_def("ticks_daily_job")
    return job.execute_in_process(partition_key=request.partition_key, tags=request.tags, instance=instance,
                                  raise_on_error=False)


def _materialization(result, key: str):
    mats = list(result.asset_materializations_for_node(key))
    return mats[-1].metadata if mats else None


def _checks(result) -> dict:
    return {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("lake_kind", ["local", "s3"])
def test_the_tick_lane_lands_compacts_and_reruns_on_either_lake(lake_kind, qp_home, duck, instance, monkeypatch,
                                                                request):
    import dagster as dg
    import duckdb

    from quant_platform.definitions import defs
    from quant_platform.market import compaction as cp
    from quant_platform.market.assets import market_ingest_sensor
    from quant_platform.market.contracts import STREAM_NORM, STREAM_RAW
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.observe import ack_floor, stream_state_now
    from quant_platform.market.publisher import publish_frames
    from quant_platform.market.tick_store import TickStore

    if lake_kind == "s3":
        lake = request.getfixturevalue("s3_server").lake_env(monkeypatch)
        # the test's own catalog (a SQLite file); the deployed default is the PostgreSQL warehouse
        monkeypatch.setenv("QP_ICEBERG_CATALOG_URL", f"sqlite:///{qp_home / 'catalog.db'}")
        store = TickStore(lake)
    else:
        lake = str(qp_home / "lake")
        monkeypatch.setenv("QP_LAKE_URL", lake)
        store = None
    monkeypatch.setenv("QP_TICK_LATENESS_MINUTES", "0")
    monkeypatch.setenv("QP_LANDING_ROLLUP_S", "1")  # the lander rolls its small files up during the test
    frames = sim_frames(TOTAL, start_ns=START_NS)

    with EmbeddedNats(qp_home / "nats").start() as srv:
        monkeypatch.setenv("QP_NATS_URL", srv.url)
        procs = [_worker("normalizer", srv.url, lake), _worker("lander", srv.url, lake)]
        try:
            asyncio.run(publish_frames(srv.url, "simulator", frames[:3_000], max_frames=100))
            asyncio.run(wait_for(lambda: len(_landed_ids(lake, store)) > 0, timeout_s=60, interval_s=0.3))
            os.kill(procs[1].pid, signal.SIGKILL)  # mid-stream: some batches landed but unacked, some not landed
            procs[1].wait()
            asyncio.run(publish_frames(srv.url, "simulator", frames[3_000:4_500], max_frames=100))
            procs[1] = _worker("lander", srv.url, lake)
            # the rest once that has landed: the new lander lands several files, so it has some to roll up
            asyncio.run(wait_for(lambda: len(set(_landed_ids(lake, store))) >= 4_500, timeout_s=60, interval_s=0.3))
            asyncio.run(publish_frames(srv.url, "simulator", frames[4_500:], max_frames=100))

            def drained() -> bool:
                s = stream_state_now(srv.url)
                return (ack_floor(s, STREAM_RAW) >= int(s[STREAM_RAW]["last_seq"]) == TOTAL // 100
                        and ack_floor(s, STREAM_NORM) >= int(s[STREAM_NORM]["last_seq"]) > 0)

            deadline = time.monotonic() + 90
            while not drained():  # stream_state_now runs its own event loop: polled here, not in wait_for
                assert time.monotonic() < deadline, "the pipeline did not drain in 90 s"
                time.sleep(0.3)
            asyncio.run(wait_for(lambda: _rolled(lake, store), timeout_s=30, interval_s=0.3))
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)
        ids = _landed_ids(lake, store)
        assert len(set(ids)) == TOTAL  # every tick landed (a batch redelivered after the kill may land twice)
        if store is None:  # the lander's rollup left nothing half done
            from quant_platform.market.lake_landing import finish_rollups

            assert finish_rollups(lake, [DAY]) == 0

        # the real sensor: the stream is drained and the day is over, so it asks for exactly that day
        result = market_ingest_sensor(dg.build_sensor_context(instance=instance, definitions=defs))
        assert [r.partition_key for r in result.run_requests] == [DAY]
        req = result.run_requests[0]

        run = _job_run(instance, req)
        checks = _checks(run)
        assert run.success, {n: (c.passed, c.metadata) for n, c in checks.items()}
        md = _materialization(run, "market__ticks_daily")
        assert md["published"].value is True and md["dagster/row_count"].value == TOTAL
        assert md["rows_landed"].value == len(ids) and md["duplicates_removed"].value == len(ids) - TOTAL
        comp = checks["complete_by_sequence"]
        assert comp.passed and comp.metadata["raw_messages_missing"].value == 0
        assert comp.metadata["raw_messages_in_ticks"].value == TOTAL // 100
        if store is not None:
            store.refresh()  # this client's table objects predate the run's commit
            assert store.published_days() == [DAY]
            # the run's small-file compaction of the landing table: one file per source, the same rows
            after = store.landing_files(DAY)
            assert len(after) == 1 and sum(f.rows for f in after) == len(ids)
        snapshots = len(list(store.daily.snapshots())) if store else None

        # a re-run of the same request: the same content, and on S3 no new commit
        again = _job_run(instance, req)
        assert again.success
        md2 = _materialization(again, "market__ticks_daily")
        assert (md2["content_hash"].value, md2["dagster/row_count"].value) == (md["content_hash"].value, TOTAL)
        if store is not None:
            store.refresh()
            assert len(list(store.daily.snapshots())) == snapshots
            # the sensor reads the table's metadata only: an unchanged landing is not requested again
            assert market_ingest_sensor(dg.build_sensor_context(
                instance=instance, definitions=defs, cursor=result.cursor)).run_requests == []

    # the `up --headless` summary's tick counts, from the folders or from the tables' metadata
    from quant_platform.demo import tick_counts

    assert tick_counts(lake, qp_home) == (len(ids), {DAY: TOTAL})

    # query: DuckDB over the published day (the S3 lake through the Iceberg table's files), against the warehouse
    con = duckdb.connect()
    if store is not None:
        TickStore(lake).register_olap(con)  # a fresh client: what another host sees
        daily = "ticks_daily"
    else:
        daily = f"read_parquet('{cp.daily_file(qp_home / 'lake', DAY)}')"
    n, distinct, trades, first_ns = con.execute(
        f"SELECT count(*), count(DISTINCT event_id), count(*) FILTER (WHERE event = 'trade'), "  # noqa: S608
        f"min(epoch_ns(ts)) FROM {daily}").fetchone()
    assert (n, distinct, first_ns) == (TOTAL, TOTAL, START_NS)  # nanoseconds intact on both lakes
    assert duck.scalar("SELECT count(*) FROM market.ticks_history WHERE trade_date = :d", {"d": DAY}) == TOTAL
    assert duck.scalar("SELECT sum(trades) FROM market.bars_1m WHERE trade_date = :d", {"d": DAY}) == trades
    assert trades == sum(1 for f in frames if b'"ev":"T"' in f.payload)
