"""Workers on several hosts: two "hosts" (separate QP_HOMEs and working directories, each with its own normalizer
and lander processes started through the real worker entry point) share a three-node JetStream cluster and the
object-store lake (QP_LAKE_URL=s3://..., Iceberg tables over moto's S3 server, the SQL catalog in PostgreSQL: the
two landers commit to one table concurrently). Host A is connected to node 0, host B to node 1. In the middle of the
stream host A dies: SIGKILL of all its workers and of the NATS node it uses. Host B's workers take over what A
held through the shared durable consumers (redelivered after the ack wait), and the compacted lake holds every
published event id exactly once.

Every stream or consumer whose leader was on the killed node answers nothing (fetches: 503, API requests: a
timeout) until its other two replicas elect a leader, 4-9 s in nats-server: host B's workers wait that out and log
why (connection.FetchHealth), and this test's own reads ask again meanwhile. An earlier version read consumer info
once per poll and failed whenever an election outlasted the publishing (1 run in 4).

The local-folder lake with a killed lander: test_tick_lane_lakes.py (which runs on both lakes).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pyarrow.parquet as pq
import pytest

from quant_platform.market.contracts import STREAM_DLQ, STREAM_NORM, STREAM_RAW
from quant_platform_tests.market_helpers import sim_frames, wait_for
from quant_platform_tests.s3_server import s3_server  # noqa: F401 - the session fixture
from quant_platform_tests.test_nats_cluster import _expected_event_ids, _stop_workers
from quant_platform_tests.test_nats_cluster import _landed as _landed_local

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOTAL = 30_000  # ticks published
RATE = 8_000  # frames/s: about 4 s of stream, host A dies a third of the way in (an election follows: 4-9 s)
ACK_WAIT_S = "2"  # what host A held is redelivered to host B after this


def _landed_rows(store) -> int:
    """Rows in the landing table (its metadata: no object read)."""
    return sum(f.rows for f in store.landing_files())


def _landed(store) -> tuple[int, set[str]]:
    """(rows, distinct event ids) of the landing table's files, read from the bucket."""
    import pyarrow as pa

    ids: list[str] = []
    for f in store.landing_files():
        ids += pq.read_table(pa.BufferReader(store._get(f.path)), columns=["event_id"])["event_id"].to_pylist()
    return len(ids), set(ids)


def _host_env(home, lake, url: str) -> dict:
    env = {**os.environ, "QP_HOME": str(home), "QP_LAKE_URL": str(lake), "QP_NATS_URL": url,
           "QP_NATS_REPLICAS": "3", "QP_NATS_ACK_WAIT_S": ACK_WAIT_S, "QP_REDELIVERY_DELAY_MS": "50",
           "QP_WORKER_NICE": "0"}
    env.pop("QP_STREAM_REPLICAS", None)
    return env


def _start_host(name: str, base, lake, url: str) -> dict[str, subprocess.Popen]:
    """A host: its own QP_HOME and working directory, one normalizer and one lander (the worker entry point)."""
    home = base / name
    (home / "logs").mkdir(parents=True)
    env = _host_env(home, lake, url)
    procs = {}
    for role in ("normalizer", "lander"):
        with open(home / "logs" / f"{role}.log", "ab") as log:
            procs[f"{name}:{role}"] = subprocess.Popen(
                [sys.executable, "-m", "quant_platform.market.worker", "--role", role, "--lake", str(lake)],
                cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return procs


def test_a_host_killed_mid_stream_loses_nothing_and_lands_nothing_twice(tmp_path, monkeypatch, s3_server,  # noqa: F811
                                                                        fresh_pg_database):
    import nats
    import nats.errors
    import nats.js.errors

    from quant_platform.market.compaction import stage_day
    from quant_platform.market.nats_cluster import NatsCluster
    from quant_platform.market.publisher import RawPublisher
    from quant_platform.market.streams import ensure_streams
    from quant_platform.market.tick_store import TickStore, working_copy

    for var in ("QP_NATS_REPLICAS", "QP_STREAM_REPLICAS", "QP_NATS_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("QP_NATS_ACK_WAIT_S", ACK_WAIT_S)  # this process declares the consumers: the same settings
    monkeypatch.setenv("QP_REDELIVERY_DELAY_MS", "50")
    t_start = time.monotonic()
    lake = s3_server.lake_env(monkeypatch)  # the one lake both hosts write to
    # the catalog both hosts commit through: PostgreSQL, as deployed (the warehouse database by default)
    monkeypatch.setenv("QP_ICEBERG_CATALOG_URL", fresh_pg_database.replace("postgresql://", "postgresql+psycopg2://", 1))
    store = TickStore(lake)
    procs: dict[str, subprocess.Popen] = {}

    with NatsCluster(tmp_path / "cluster", size=3, name="qp-hosts") as cluster:
        node_a, node_b, node_pub = cluster.nodes

        async def scenario() -> dict:
            admin = await nats.connect([node_b.url, node_pub.url], max_reconnect_attempts=-1,
                                       reconnect_time_wait=0.2, connect_timeout=2, name="qp-test-admin")
            js = admin.jetstream(timeout=1)  # short API requests, asked again while a leader is elected
            try:
                await ensure_streams(admin.jetstream(), replicas=3)
                procs.update(_start_host("host-a", tmp_path, lake, node_a.url))
                procs.update(_start_host("host-b", tmp_path, lake, node_b.url))
                frames = sim_frames(TOTAL, step_ns=100_000)  # while the workers start

                async def pulling():  # both hosts' workers connected and pulling on the shared consumers
                    n = await js.consumer_info(STREAM_RAW, "normalizer")
                    m = await js.consumer_info(STREAM_NORM, "lander")
                    return (n.num_waiting or 0) >= 2 and (m.num_waiting or 0) >= 2

                await wait_for(pulling, timeout_s=40, interval_s=0.2)
                pub_nc = await nats.connect([node_pub.url, node_b.url], dont_randomize=True,
                                            max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=2,
                                            name="qp-test-publisher")
                pub = RawPublisher(pub_nc.jetstream(), source="simulator",
                                   connection_id=f"hosts-{uuid.uuid4().hex[:8]}", max_frames=100)
                await pub.start()
                t0 = pace0 = time.monotonic()
                t_kill = 0.0
                a_landed_before = 0
                kill_at = -1
                for i, f in enumerate(frames):
                    if i == TOTAL // 3:
                        # Mid-stream, after the landers' first commits (an Iceberg lander's first flush also loads
                        # the table), so what was landed and what was held are both in play. While this waits the
                        # publishing stops and the landers flush and ack all they hold (0.5 s at most), so the
                        # stream goes on at its pace (no catch-up burst) for a quarter second before the kill:
                        # killed right after the wait, host A held nothing (CI, 1 run: 0 redelivered).
                        paused = time.monotonic()
                        await wait_for(lambda: _landed_rows(store) > 0, timeout_s=30, interval_s=0.1)
                        a_landed_before = _landed_rows(store)
                        pace0 += time.monotonic() - paused
                        kill_at = i + RATE // 4
                    if i == kill_at:
                        # host A dies: its workers hold fetched, unacknowledged messages, and its NATS node goes too
                        for role, p in procs.items():
                            if role.startswith("host-a:"):
                                os.kill(p.pid, signal.SIGKILL)
                        cluster.kill(node_a)
                        t_kill = time.monotonic()
                    await pub.add(f)
                    delay = pace0 + i / RATE - time.monotonic()
                    if delay > 0.001:
                        await asyncio.sleep(delay)
                await pub.close(timeout=60)
                t_published = time.monotonic()
                # the event ids the workers must land, computed while they finish (and leaders are elected)
                expected_ids = asyncio.ensure_future(asyncio.to_thread(_expected_event_ids, frames))
                stats = pub.stats()
                await pub_nc.close()
                assert all(p.poll() is not None for r, p in procs.items() if r.startswith("host-a:"))

                async def leader_answer(call, *args):
                    # The streams and consumers whose leader was on the dead node answer nothing until their
                    # group elects another (the server's election timeout, several seconds): ask again.
                    deadline = time.monotonic() + 30
                    while True:
                        try:
                            return await call(*args)
                        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
                            if time.monotonic() > deadline:
                                raise
                            await asyncio.sleep(0.2)

                async def drained():
                    raw = await leader_answer(js.stream_info, STREAM_RAW)
                    norm = await leader_answer(js.stream_info, STREAM_NORM)
                    n = await leader_answer(js.consumer_info, STREAM_RAW, "normalizer")
                    la = await leader_answer(js.consumer_info, STREAM_NORM, "lander")
                    return (n.ack_floor.stream_seq >= raw.state.last_seq and la.ack_floor.stream_seq
                            >= norm.state.last_seq and not n.num_ack_pending and not la.num_ack_pending)

                await wait_for(drained, timeout_s=60, interval_s=0.3)
                await wait_for(lambda: _landed_rows(store) >= TOTAL, timeout_s=20, interval_s=0.3)
                redelivered = []
                for stream, durable in ((STREAM_RAW, "normalizer"), (STREAM_NORM, "lander")):
                    ci = await leader_answer(js.consumer_info, stream, durable)
                    si = await leader_answer(js.stream_info, stream)
                    redelivered.append(ci.delivered.consumer_seq - si.state.last_seq)
                return {"stats": stats, "expected": await expected_ids, "dlq": (await leader_answer(js.stream_info, STREAM_DLQ)).state.messages,
                        "raw_messages": (await leader_answer(js.stream_info, STREAM_RAW)).state.messages,
                        "redelivered_raw_and_ticks": redelivered, "landed_before_kill": a_landed_before,
                        "setup_s": round(t0 - t_start, 2), "kill_at_s": round(t_kill - t0, 2), "publish_s": round(t_published - t0, 2),
                        "drained_s": round(time.monotonic() - t0, 2)}
            finally:
                await admin.close()

        try:
            report = asyncio.run(asyncio.wait_for(scenario(), 100))
        except BaseException:
            for f in sorted(tmp_path.glob("host-*/logs/*.log")):
                print(f"--- {f}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-20:]))
            for f in sorted(tmp_path.glob("cluster/*/nats-server.log")):
                print(f"--- {f}\n" + "\n".join(ln for ln in f.read_text(errors="replace").splitlines()
                                                 if "leader" in ln))
            raise
        finally:
            _stop_workers(procs)

    rows, landed = _landed(store)
    root = working_copy(lake, tmp_path / "dagster-host")  # compaction on a third host's working copy
    for day in sorted(store.landing_days()):
        store.compact_landing(day)
        store.pull_landing(root, day)
    staged = [stage_day(root, day) for day in sorted(store.landing_days())]
    compacted = [e for s in staged for e in pq.read_table(s.ticks_path, columns=["event_id"])["event_id"].to_pylist()]
    stats, expected = report.pop("stats"), report.pop("expected")
    assert len(expected) == TOTAL
    summary = {"published": TOTAL, "landed_rows": rows, "compacted_rows": len(compacted),
               "missing": len(expected - landed), "unexpected": len(landed - expected),
               "publisher_resends": stats["resends"], **report, "total_s": round(time.monotonic() - t_start, 1)}
    print(json.dumps(summary))
    assert report["landed_before_kill"] > 0  # host A was killed mid-stream, not before it started
    assert stats["frames_acked"] == TOTAL
    assert report["dlq"] == 0
    assert landed == expected  # zero loss, nothing else
    assert len(compacted) == TOTAL and set(compacted) == expected  # zero duplicates after compaction
    assert sum(s.duplicates_removed for s in staged) == rows - TOTAL
    # Host B finished what host A held: messages were delivered again after the kill (on 2 cores the normalizer
    # often acks its set before the kill, the lander, flushing by size and time, nearly always holds some).
    assert sum(report["redelivered_raw_and_ticks"]) > 0, report["redelivered_raw_and_ticks"]


@pytest.mark.timeout(60)
def test_workers_declare_a_deleted_consumer_again_within_the_bound_and_say_why(tmp_path, caplog):
    """Fetches that keep failing past the bound are no leader election: a normalizer, a lander and a fan-out
    destination whose durable consumers were deleted under them (503 on every fetch) declare them again and
    re-create their pull subscriptions by themselves, log why, and land (and deliver) every tick."""
    import logging

    import nats

    from quant_platform.market.fanout import Destination, FanoutStats, run_destination
    from quant_platform.market.lander import LanderStats, run_lander
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.normalizer import NormalizerStats, run_normalizer
    from quant_platform.market.publisher import publish_frames

    bound_s = 1.5
    frames = sim_frames(4000, step_ns=100_000)
    expected = _expected_event_ids(frames)
    lake = tmp_path / "lake"
    caplog.set_level(logging.INFO, logger="quant_platform.market.connection")
    caplog.set_level(logging.INFO, logger="quant_platform.market.fanout")
    dest = Destination("research", "files", "ticks.norm.>", {"path": str(tmp_path / "fanout"), "format": "parquet"})

    async def run(url: str) -> dict:
        stop = asyncio.Event()
        lstats, fstats = LanderStats(), FanoutStats()
        tasks = [asyncio.create_task(run_normalizer(url, stop, stats=NormalizerStats(), resubscribe_after_s=bound_s)),
                 asyncio.create_task(run_lander(url, lake, stop, max_age_s=0.2, stats=lstats,
                                                resubscribe_after_s=bound_s)),
                 asyncio.create_task(run_destination(url, dest, stop, stats=fstats, resubscribe_after_s=bound_s))]
        admin = await nats.connect(url)
        js = admin.jetstream()
        try:
            await publish_frames(url, "simulator", frames[:2000])
            await wait_for(lambda: len(_landed_local(lake)[1]) >= 2000, timeout_s=30, interval_s=0.2)
            await js.delete_consumer(STREAM_RAW, "normalizer")
            await js.delete_consumer(STREAM_NORM, "lander")
            await wait_for(lambda: fstats.delivered_rows >= 2000, timeout_s=30, interval_s=0.2)
            delivered_before = fstats.delivered_rows
            await js.delete_consumer(STREAM_NORM, dest.consumer)
            t_deleted = time.monotonic()
            await publish_frames(url, "simulator", frames[2000:], ensure=False)  # declares nothing
            await wait_for(lambda: len(_landed_local(lake)[1]) >= len(expected), timeout_s=30, interval_s=0.2)
            recovered_s = time.monotonic() - t_deleted
            # the fan-out destination: re-declared (the test's user may) and every later tick delivered to it
            await wait_for(lambda: fstats.delivered_rows - delivered_before >= len(expected) - 2000, timeout_s=30,
                           interval_s=0.2)
            consumers = [(await js.consumer_info(s, d)).config.ack_wait for s, d in
                         ((STREAM_RAW, "normalizer"), (STREAM_NORM, "lander"))]
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await admin.close()
        return {"recovered_s": round(recovered_s, 2), "ack_waits": consumers}

    with EmbeddedNats(tmp_path / "nats").start() as srv:
        report = asyncio.run(run(srv.url))
    print(json.dumps(report))
    assert _landed_local(lake)[1] == expected  # nothing lost across the deletion
    # bound + a retry interval + the landing of the second half, never an operator's restart
    assert report["recovered_s"] < bound_s + 10, report
    assert all(w and w > 0 for w in report["ack_waits"])  # declared again with the declared settings
    text = caplog.text
    # The first worker past the bound declares both consumers again (ensure_streams), the other may find its
    # consumer back before its own bound: each says why its fetches failed and when they answered again.
    assert f"have failed for {bound_s}s; declaring it again and re-creating the pull subscription" in text
    for worker in ("normalizer", "lander"):
        assert f"{worker}: fetch from consumer {worker} failed: no server answers for the consumer (503)" in text
        assert f"{worker}: fetch from consumer {worker} answered again after" in text
    assert "fan-out research: fetches from consumer fanout_research have failed for 1.5s; binding" in text
    assert "fan-out research: fetch from consumer fanout_research answered again after" in text
