"""A three-node JetStream cluster on loopback with R3 streams: kill -9 of the TICKS_RAW stream leader in the
middle of ingest loses nothing (every published tick is landed in the lake; duplicates counted, allowed),
and the killed node catches up after a restart.

The workers are the real processes of the crash test (quant_platform.market.worker). Their `--nats` takes a
single URL, so each is pointed at the node that will be killed: it must fail over to the survivors it learnt
from the cluster's INFO gossip. The publisher connects with every node's URL, the doomed one first.
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

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from quant_platform.market.contracts import STREAM_DLQ, STREAM_NORM, STREAM_RAW
from quant_platform_tests.market_helpers import landed_table, sim_frames, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TOTAL = 40_000  # ticks published
RATE = 8_000  # frames/s: ingest lasts ~5 s, the kill lands in the middle
STREAMS = (STREAM_RAW, STREAM_NORM, STREAM_DLQ)


def _worker(role: str, url: str, lake, log_dir) -> subprocess.Popen:
    env = {**os.environ, "QP_NATS_REPLICAS": "3"}
    env.pop("QP_STREAM_REPLICAS", None)
    with open(log_dir / f"{role}.log", "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "quant_platform.market.worker", "--role", role,
                                 "--nats", url, "--lake", str(lake)], stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)


def _stop_workers(procs: dict) -> None:
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def _landed(lake):
    t = landed_table(lake)
    return (0, set()) if t is None else (t.num_rows, set(pc.unique(t["event_id"]).to_pylist()))


def _expected_event_ids(frames) -> set[str]:
    """The event ids the normalizer derives from the published frames (vendor fields only)."""
    from quant_platform.market.adapters import normalize_batch
    from quant_platform.market.instruments import InstrumentMaster

    table, rejected, _ignored = normalize_batch("simulator", frames, 0, InstrumentMaster.load())
    assert not rejected
    return set(table["event_id"].to_pylist())


def _local_stream_states(node) -> dict[str, dict]:
    """What one node itself stores of each stream (its replica), from its /jsz."""
    out = {}
    for acc in node.jsz(accounts=True, streams=True).get("account_details") or []:
        for sd in acc.get("stream_detail") or []:
            out[sd["name"]] = sd.get("state") or {}
    return out


async def _assert_r3(js, cluster, name: str) -> str:
    """The stream has three replicas in our cluster with both followers current; returns its leader."""
    async def settled():
        info = await js.stream_info(name)
        reps = (info.cluster.replicas or []) if info.cluster else []
        return info if info.cluster and info.cluster.leader and len(reps) == 2 and all(r.current for r in reps) \
            else None

    info = await wait_for(settled, timeout_s=15)
    assert info.config.num_replicas == 3
    assert info.cluster.name == cluster.name
    names = {n.server_name for n in cluster.nodes}
    assert {info.cluster.leader, *(r.name for r in info.cluster.replicas)} == names
    return info.cluster.leader


async def _assert_consumer_r3(js, stream: str, durable: str) -> None:
    """The durable consumer is declared with three replicas and its raft group has both followers current
    (after a scale-up the server moves consumers to their new peers asynchronously)."""
    async def settled():
        ci = await js.consumer_info(stream, durable)
        reps = (ci.cluster.replicas or []) if ci.cluster else []
        return ci if len(reps) == 2 and all(r.current for r in reps) else None

    ci = await wait_for(settled, timeout_s=15)
    assert ci.config.num_replicas == 3


def test_r3_cluster_kill_9_of_stream_leader_mid_ingest_loses_nothing(tmp_path, monkeypatch):
    import nats

    from quant_platform.market.nats_cluster import NatsCluster
    from quant_platform.market.publisher import RawPublisher
    from quant_platform.market.streams import ensure_streams

    for var in ("QP_NATS_REPLICAS", "QP_STREAM_REPLICAS", "QP_NATS_URL"):
        monkeypatch.delenv(var, raising=False)
    t_start = time.monotonic()
    lake = tmp_path / "lake"
    logs = tmp_path / "logs"
    logs.mkdir()
    frames = sim_frames(TOTAL)
    expected = _expected_event_ids(frames)
    assert len(expected) == TOTAL
    procs: dict[str, subprocess.Popen] = {}
    report: dict = {}

    with NatsCluster(tmp_path / "cluster", size=3, name="qp-test") as cluster:
        assert cluster.meta_leader() in {n.server_name for n in cluster.nodes}

        async def scenario() -> dict:
            admin = await nats.connect(cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                       connect_timeout=2, name="qp-test-admin")
            js = admin.jetstream()
            try:
                # Streams and consumers at R3; a second declaration without a count changes nothing.
                created = await ensure_streams(js, replicas=3)
                assert set(created["streams"].values()) == {"created"}
                assert set(created["consumers"].values()) == {"created"}
                for name in STREAMS:
                    await _assert_r3(js, cluster, name)
                for stream, durable in ((STREAM_RAW, "normalizer"), (STREAM_NORM, "lander")):
                    await _assert_consumer_r3(js, stream, durable)
                again = await ensure_streams(js)  # no QP_NATS_REPLICAS: existing R3 streams are kept
                assert set(again["streams"].values()) == {"unchanged"}
                assert set(again["consumers"].values()) == {"unchanged"}
                assert (await js.stream_info(STREAM_RAW)).config.num_replicas == 3

                victim = cluster.node(await _assert_r3(js, cluster, STREAM_RAW))
                others = [n.url for n in cluster.nodes if n is not victim]
                procs["normalizer"] = _worker("normalizer", victim.url, lake, logs)
                procs["lander"] = _worker("lander", victim.url, lake, logs)

                async def consuming():
                    n = await js.consumer_info(STREAM_RAW, "normalizer")
                    m = await js.consumer_info(STREAM_NORM, "lander")
                    return (n.num_waiting or 0) > 0 and (m.num_waiting or 0) > 0

                await wait_for(consuming, timeout_s=30, interval_s=0.2)

                pub_nc = await nats.connect([victim.url, *others], dont_randomize=True, max_reconnect_attempts=-1,
                                            reconnect_time_wait=0.2, connect_timeout=2, name="qp-test-publisher")
                assert pub_nc.connected_url.port == victim.port
                pub = RawPublisher(pub_nc, source="simulator", connection_id=f"cluster-{uuid.uuid4().hex[:8]}",
                                   max_frames=200)
                await pub.start()
                t0 = time.monotonic()
                t_kill = 0.0
                for i, f in enumerate(frames):
                    if i == TOTAL // 2:
                        raw_before = (await js.stream_info(STREAM_RAW)).state.last_seq
                        assert raw_before > 0  # ingest is under way
                        cluster.kill(victim)
                        t_kill = time.monotonic()
                    await pub.add(f)
                    delay = t0 + i / RATE - time.monotonic()
                    if delay > 0.001:
                        await asyncio.sleep(delay)
                await pub.close(timeout=90)
                t_published = time.monotonic()
                stats = pub.stats()
                await pub_nc.close()

                after = await js.stream_info(STREAM_RAW)
                assert after.cluster.leader != victim.server_name  # a survivor took over
                assert any(r.name == victim.server_name and (r.offline or not r.current)
                           for r in after.cluster.replicas or [])

                await wait_for(lambda: len(_landed(lake)[1]) >= TOTAL, timeout_s=120, interval_s=0.5)
                t_landed = time.monotonic()
                dlq = (await js.stream_info(STREAM_DLQ)).state.messages

                # The killed node comes back and catches up with what was stored without it.
                t_restart = time.monotonic()
                await asyncio.to_thread(cluster.restart, victim)

                async def caught_up():
                    for name in (STREAM_RAW, STREAM_NORM):
                        info = await js.stream_info(name)
                        if not all(r.current for r in info.cluster.replicas or []):
                            return False
                        mine = _local_stream_states(victim).get(name) or {}
                        if (mine.get("last_seq"), mine.get("messages")) != (info.state.last_seq,
                                                                            info.state.messages):
                            return False
                    return True

                await wait_for(caught_up, timeout_s=30, interval_s=0.2)
                raw_final = (await js.stream_info(STREAM_RAW)).state
                return {"stats": stats, "dlq": dlq, "raw_messages": raw_final.messages, "victim": victim.server_name,
                        "kill_at_s": round(t_kill - t0, 2), "publish_s": round(t_published - t0, 2),
                        "landed_s": round(t_landed - t0, 2), "restart_catch_up_s": round(time.monotonic() - t_restart, 2)}
            finally:
                await admin.close()

        try:
            report = asyncio.run(asyncio.wait_for(scenario(), 200))
        except BaseException:
            for f in sorted(logs.glob("*.log")):
                print(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-20:]))
            raise
        finally:
            _stop_workers(procs)

    rows, landed = _landed(lake)
    stats = report["stats"]
    summary = {"published": TOTAL, "landed_rows": rows, "unique": len(landed), "duplicates": rows - len(landed),
               "missing": len(expected - landed), "unexpected": len(landed - expected),
               "publisher_resends": stats["resends"], "publisher_duplicate_acks": stats["duplicates"],
               "raw_messages": report["raw_messages"], "dlq": report["dlq"], "killed": report["victim"],
               **{k: report[k] for k in ("kill_at_s", "publish_s", "landed_s", "restart_catch_up_s")},
               "total_s": round(time.monotonic() - t_start, 1)}
    print(json.dumps(summary))
    assert landed == expected  # every published tick landed, nothing else
    # Duplicates (redelivery, resends) are allowed in the landing: compaction drops exactly those.
    from quant_platform.market.compaction import landing_days, stage_day

    staged = [stage_day(lake, day) for day in sorted(landing_days(lake))]
    assert sum(s.rows_in for s in staged) == rows
    assert sum(s.duplicates_removed for s in staged) == rows - len(landed)
    compacted = [pq.read_table(s.ticks_path, columns=["event_id"])["event_id"].to_pylist() for s in staged]
    assert sorted(e for ids in compacted for e in ids) == sorted(expected)
    assert stats["frames_acked"] == TOTAL
    assert report["dlq"] == 0
    assert report["raw_messages"] == stats["batches_sent"]  # dedup held across the failover: no batch twice


def test_streams_scale_from_one_to_three_replicas_in_place(tmp_path, monkeypatch):
    """A cluster that started with R1 streams is moved to R3 by declaring again: updated, data kept, idempotent."""
    import nats

    from quant_platform.market.nats_cluster import NatsCluster
    from quant_platform.market.publisher import publish_frames
    from quant_platform.market.streams import ensure_streams

    for var in ("QP_NATS_REPLICAS", "QP_STREAM_REPLICAS", "QP_NATS_URL"):
        monkeypatch.delenv(var, raising=False)
    with NatsCluster(tmp_path / "cluster", size=3, name="qp-scale") as cluster:

        async def main() -> None:
            nc = await nats.connect(cluster.urls, connect_timeout=2)
            js = nc.jetstream()
            try:
                await ensure_streams(js)  # nothing configured: new streams get one replica
                assert (await js.stream_info(STREAM_RAW)).config.num_replicas == 1
                await publish_frames(cluster.urls[0], "simulator", sim_frames(1000), ensure=False)
                before = (await js.stream_info(STREAM_RAW)).state

                monkeypatch.setenv("QP_NATS_REPLICAS", "3")
                scaled = await ensure_streams(js)
                assert set(scaled["streams"].values()) == {"updated"}
                for name in STREAMS:
                    await _assert_r3(js, cluster, name)
                after = (await js.stream_info(STREAM_RAW)).state
                assert (after.messages, after.last_seq) == (before.messages, before.last_seq)
                for stream, durable in ((STREAM_RAW, "normalizer"), (STREAM_NORM, "lander")):
                    await _assert_consumer_r3(js, stream, durable)
                again = await ensure_streams(js)
                assert set(again["streams"].values()) == {"unchanged"}
                assert set(again["consumers"].values()) == {"unchanged"}
            finally:
                await nc.close()

        asyncio.run(asyncio.wait_for(main(), 60))
