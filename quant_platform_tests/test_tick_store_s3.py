"""The tick lane on the object-store lake: the real lander process lands into Iceberg tables (SQL catalog on
PostgreSQL) over moto's S3 server, is killed mid-stream and restarted; every tick is landed, small-file compaction
keeps every row, the day compacts from a working copy and publishes in one commit, a re-publish is a no-op, and
DuckDB reads the tables' files through pyarrow's S3 client."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from quant_platform_tests.market_helpers import sim_frames, wait_for
from quant_platform_tests.s3_server import s3_server  # noqa: F401 - the session fixture


def _lander(url: str, lake: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "quant_platform.market.worker", "--role", "lander", "--nats", url,
                             "--lake", lake], env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _normalizer(url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "quant_platform.market.worker", "--role", "normalizer", "--nats",
                             url, "--lake", "unused"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


@pytest.mark.timeout(180)
def test_tick_lane_on_s3_survives_a_killed_lander_and_compacts_idempotently(s3_server, monkeypatch, tmp_path):  # noqa: F811
    import duckdb

    from quant_platform.market import compaction as cp
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.publisher import publish_frames
    from quant_platform.market.tick_store import TickStore, working_copy

    lake_url = s3_server.lake_env(monkeypatch)
    monkeypatch.setenv("QP_HOME", str(tmp_path / "home"))
    # the test's own catalog (a SQLite file): the deployed default is the PostgreSQL warehouse
    store = TickStore(lake_url, catalog_uri=f"sqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv("QP_ICEBERG_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    total = 6_000
    frames = sim_frames(total, start_ns=1_764_720_000_000_000_000)  # 2025-12-03 00:00 UTC
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        procs = [_normalizer(srv.url), _lander(srv.url, lake_url)]
        try:
            asyncio.run(publish_frames(srv.url, "simulator", frames[:3_000], max_frames=100))

            def landed() -> int:
                return sum(f.rows for f in store.landing_files())

            asyncio.run(wait_for(lambda: landed() > 0, timeout_s=60, interval_s=0.5))
            os.kill(procs[1].pid, signal.SIGKILL)  # mid-stream: some batches unacked, maybe uncommitted
            procs[1].wait()
            asyncio.run(publish_frames(srv.url, "simulator", frames[3_000:], max_frames=100))
            procs[1] = _lander(srv.url, lake_url)
            asyncio.run(wait_for(lambda: len(set(_ids(store))) >= total, timeout_s=90, interval_s=0.5))
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)

    ids = _ids(store)
    days = store.landing_days()
    assert list(days) == ["2025-12-03"]
    # every tick landed; a batch redelivered after the kill is not added twice when its commit was made
    assert len(set(ids)) == total
    rows_before = sum(f.rows for f in days["2025-12-03"])

    # small-file compaction: one file per source, the same rows, the raw tick counts kept
    replaced = store.compact_landing("2025-12-03")
    after = store.landing_files("2025-12-03")
    assert replaced and len(after) == 1 and sum(f.rows for f in after) == rows_before

    # compact the day from the working copy with the local lake's code, publish in one commit
    root = working_copy(lake_url, tmp_path / "home")
    pulled = store.pull_landing(root, "2025-12-03")
    assert len(pulled) == 1 and pq.read_metadata(pulled[0]).metadata[b"qp.raw_ticks"]
    staged = cp.stage_day(root, "2025-12-03")
    assert staged.rows_out == total
    cp.publish_staged(root, staged, {"published": True})
    version = store.publish_daily(root, "2025-12-03")
    snapshots = len(list(store.daily.snapshots()))
    assert store.publish_daily(root, "2025-12-03") == version  # idempotent: no new commit
    store.refresh()
    assert len(list(store.daily.snapshots())) == snapshots

    # another host's working copy gets the published day back, nanoseconds intact
    other = tmp_path / "other-host"
    path = TickStore(lake_url).pull_daily(other, "2025-12-03")
    t = pq.read_table(path)
    assert t.num_rows == total and pc.count_distinct(t["event_id"]).as_py() == total
    assert t.schema.field("ts").type.unit == "ns"
    assert min(pc.cast(t["ts"], "int64").to_pylist()) == 1_764_720_000_000_000_000  # sim_frames' first t

    con = duckdb.connect()
    store.register_olap(con)
    assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM ticks_daily").fetchone() == (total, total)
    assert con.execute("SELECT count(DISTINCT event_id) FROM ticks_recent").fetchone()[0] == total
    assert sorted(t["vendor_seq"].to_pylist()) == list(range(total))  # every frame's tick, once


def _ids(store) -> list[str]:
    import pyarrow as pa

    out: list[str] = []
    for f in store.landing_files():
        out += pq.read_table(pa.BufferReader(store._get(f.path)), columns=["event_id"])["event_id"].to_pylist()
    return out


def test_a_lake_url_with_an_unreachable_catalog_is_one_line(s3_server, monkeypatch, tmp_path):  # noqa: F811
    from quant_platform.errors import ConfigError
    from quant_platform.market.tick_store import TickStore

    lake_url = s3_server.lake_env(monkeypatch, prefix=f"lake-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigError) as err:
        TickStore(lake_url, catalog_uri="postgresql+psycopg2://postgres@127.0.0.1:1/none")
    assert "\n" not in str(err.value) and "Iceberg catalog" in str(err.value)
