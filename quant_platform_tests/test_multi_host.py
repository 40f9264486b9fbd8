"""Workers on several hosts: two "hosts" (separate QP_HOMEs and working directories, each with its own normalizer
and lander processes started through the real worker entry point) share a three-node JetStream cluster and one
lake (QP_LAKE_URL, a shared folder here). Host A is connected to node 0, host B to node 1. In the middle of the
stream host A dies: SIGKILL of all its workers and of the NATS node it uses. Host B's workers take over what A
held through the shared durable consumers (redelivered after the ack wait), and the compacted lake holds every
published event id exactly once.

The S3 lake is not used here yet: the lander's object-store landing was not committed when this test was written.
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
from quant_platform_tests.test_nats_cluster import _expected_event_ids, _landed, _stop_workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOTAL = 30_000  # ticks published
RATE = 8_000  # frames/s: about 4 s of stream, host A dies in the middle
ACK_WAIT_S = "2"  # what host A held is redelivered to host B after this


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


def test_a_host_killed_mid_stream_loses_nothing_and_lands_nothing_twice(tmp_path, monkeypatch):
    import nats

    from quant_platform.market.compaction import landing_days, stage_day
    from quant_platform.market.nats_cluster import NatsCluster
    from quant_platform.market.publisher import RawPublisher
    from quant_platform.market.streams import ensure_streams

    for var in ("QP_NATS_REPLICAS", "QP_STREAM_REPLICAS", "QP_NATS_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("QP_NATS_ACK_WAIT_S", ACK_WAIT_S)  # this process declares the consumers: the same settings
    monkeypatch.setenv("QP_REDELIVERY_DELAY_MS", "50")
    t_start = time.monotonic()
    lake = tmp_path / "shared-lake"  # the one lake both hosts write to
    frames = sim_frames(TOTAL, step_ns=100_000)
    expected = _expected_event_ids(frames)
    assert len(expected) == TOTAL
    procs: dict[str, subprocess.Popen] = {}

    with NatsCluster(tmp_path / "cluster", size=3, name="qp-hosts") as cluster:
        node_a, node_b, node_pub = cluster.nodes

        async def scenario() -> dict:
            admin = await nats.connect([node_b.url, node_pub.url], max_reconnect_attempts=-1,
                                       reconnect_time_wait=0.2, connect_timeout=2, name="qp-test-admin")
            js = admin.jetstream()
            try:
                await ensure_streams(js, replicas=3)
                procs.update(_start_host("host-a", tmp_path, lake, node_a.url))
                procs.update(_start_host("host-b", tmp_path, lake, node_b.url))

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
                t0 = time.monotonic()
                t_kill = 0.0
                a_landed_before = 0
                for i, f in enumerate(frames):
                    if i == TOTAL // 2:
                        # host A dies: its workers hold fetched, unacknowledged messages, and its NATS node goes too
                        a_landed_before = _landed(lake)[0]
                        for role, p in procs.items():
                            if role.startswith("host-a:"):
                                os.kill(p.pid, signal.SIGKILL)
                        cluster.kill(node_a)
                        t_kill = time.monotonic()
                    await pub.add(f)
                    delay = t0 + i / RATE - time.monotonic()
                    if delay > 0.001:
                        await asyncio.sleep(delay)
                await pub.close(timeout=60)
                t_published = time.monotonic()
                stats = pub.stats()
                await pub_nc.close()
                assert all(p.poll() is not None for r, p in procs.items() if r.startswith("host-a:"))

                async def drained():
                    raw, norm = await js.stream_info(STREAM_RAW), await js.stream_info(STREAM_NORM)
                    n = await js.consumer_info(STREAM_RAW, "normalizer")
                    la = await js.consumer_info(STREAM_NORM, "lander")
                    return (n.ack_floor.stream_seq >= raw.state.last_seq and la.ack_floor.stream_seq
                            >= norm.state.last_seq and not n.num_ack_pending and not la.num_ack_pending)

                await wait_for(drained, timeout_s=60, interval_s=0.3)
                await wait_for(lambda: len(_landed(lake)[1]) >= TOTAL, timeout_s=20, interval_s=0.3)
                redelivered = []
                for stream, durable in ((STREAM_RAW, "normalizer"), (STREAM_NORM, "lander")):
                    ci, si = await js.consumer_info(stream, durable), await js.stream_info(stream)
                    redelivered.append(ci.delivered.consumer_seq - si.state.last_seq)
                return {"stats": stats, "dlq": (await js.stream_info(STREAM_DLQ)).state.messages,
                        "raw_messages": (await js.stream_info(STREAM_RAW)).state.messages,
                        "redelivered_raw_and_ticks": redelivered, "landed_before_kill": a_landed_before,
                        "kill_at_s": round(t_kill - t0, 2), "publish_s": round(t_published - t0, 2),
                        "drained_s": round(time.monotonic() - t0, 2)}
            finally:
                await admin.close()

        try:
            report = asyncio.run(asyncio.wait_for(scenario(), 100))
        except BaseException:
            for f in sorted(tmp_path.glob("host-*/logs/*.log")):
                print(f"--- {f}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-20:]))
            raise
        finally:
            _stop_workers(procs)

    rows, landed = _landed(lake)
    staged = [stage_day(lake, day) for day in sorted(landing_days(lake))]
    compacted = [e for s in staged for e in pq.read_table(s.ticks_path, columns=["event_id"])["event_id"].to_pylist()]
    stats = report.pop("stats")
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
