"""Crash and scale: kill -9 of a normalizer, a lander and the NATS server mid-stream loses nothing
(duplicates allowed and counted); the autoscaler adds normalizers under a burst and removes them after.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from quant_platform_tests.market_helpers import landed_table, sim_frames, wait_for


def _worker(role: str, url: str, lake) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "quant_platform.market.worker", "--role", role, "--nats", url,
                             "--lake", str(lake)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _landed_ids(lake):
    t = landed_table(lake)
    return (0, 0) if t is None else (t.num_rows, pc.count_distinct(t["event_id"]).as_py())


@pytest.mark.slow
def test_kill_9_of_normalizer_lander_and_nats_loses_nothing(tmp_path):
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.publisher import RawPublisher

    lake = tmp_path / "lake"
    total = 60_000
    frames = sim_frames(total)
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        procs = {"normalizer": _worker("normalizer", srv.url, lake), "lander": _worker("lander", srv.url, lake)}

        async def publish():
            import nats

            from quant_platform.market.streams import ensure_streams

            nc = await nats.connect(srv.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
            await ensure_streams(nc.jetstream())
            pub = RawPublisher(nc.jetstream(), source="simulator", connection_id="crash-test", max_frames=200)
            await pub.start()
            for i, f in enumerate(frames):
                await pub.add(f)
                if i == 15_000:
                    os.kill(procs["normalizer"].pid, signal.SIGKILL)
                    procs["normalizer"].wait()
                    procs["normalizer"] = _worker("normalizer", srv.url, lake)
                if i == 30_000:
                    os.kill(procs["lander"].pid, signal.SIGKILL)
                    procs["lander"].wait()
                    procs["lander"] = _worker("lander", srv.url, lake)
                if i == 45_000:
                    srv.kill()
                    await asyncio.sleep(0.5)
                    srv.restart()
                if i % 2000 == 0:
                    await asyncio.sleep(0.01)  # let the workers run between bursts
            await pub.close(timeout=60)
            stats = pub.stats()
            await nc.close()
            return stats

        try:
            stats = asyncio.run(publish())
            asyncio.run(wait_for(lambda: _landed_ids(lake)[1] >= total, timeout_s=120, interval_s=0.5))
        finally:
            for p in procs.values():
                p.send_signal(signal.SIGTERM)
            for p in procs.values():
                p.wait(timeout=30)
    landed = landed_table(lake)
    rows, unique = landed.num_rows, pc.count_distinct(landed["event_id"]).as_py()
    assert sorted(set(landed["vendor_seq"].to_pylist())) == list(range(total))  # every tick published is landed
    assert unique == total
    duplicates = rows - unique  # the crashes may land a tick more than once: counted, then compacted away
    print(json.dumps({"published": total, "landed_rows": rows, "unique": unique, "duplicates": duplicates,
                      "publisher_resends": stats.get("resends") if isinstance(stats, dict) else None}))

    # Compaction removes exactly those duplicates: each day's compacted file holds every tick once.
    from quant_platform.market.compaction import landing_days, stage_day

    staged = [stage_day(lake, day) for day in sorted(landing_days(lake))]
    assert sum(s.rows_in for s in staged) == rows
    assert sum(s.duplicates_removed for s in staged) == duplicates
    compacted = pa.concat_tables([pq.read_table(s.ticks_path) for s in staged])
    assert compacted.num_rows == total
    assert sorted(compacted["vendor_seq"].to_pylist()) == list(range(total))
    assert pc.count_distinct(compacted["event_id"]).as_py() == total


def test_autoscaler_adds_workers_under_a_burst_and_removes_them_after(tmp_path, caplog):
    import logging

    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.publisher import publish_frames
    from quant_platform.market.supervisor import ScalePolicy, Supervisor

    caplog.set_level(logging.INFO, logger="quant_platform.market.supervisor")
    lake = tmp_path / "lake"
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        sup = Supervisor(nats_url=srv.url, lake_root=lake, interval_s=0.3,
                         normalizer_policy=ScalePolicy("normalizer", 1, 3, lag_per_worker=100, cooldown_ticks=3))

        async def run():
            stop = asyncio.Event()
            task = asyncio.create_task(sup.run(stop))
            await wait_for(lambda: sup.count("normalizer") == 1 and sup.count("lander") == 1, timeout_s=20)
            await asyncio.sleep(2)  # workers connected
            # A burst of many small raw messages builds lag faster than one worker drains it.
            await publish_frames(srv.url, "simulator", sim_frames(150_000), max_frames=20)
            await wait_for(lambda: any(d.after > d.before for d in sup.decisions), timeout_s=30)
            peak = max(d.after for d in sup.decisions)
            await wait_for(lambda: sup.count("normalizer") == 1 and sup.decisions[-1].after < peak, timeout_s=90)
            stop.set()
            await task
            return peak

        peak = asyncio.run(run())
    assert peak >= 2
    ups = [d for d in sup.decisions if d.role == "normalizer" and d.after > d.before]
    downs = [d for d in sup.decisions if d.role == "normalizer" and d.after < d.before]
    assert ups and downs and downs[-1].after == 1
    assert ups[0].lag > 100
    # Every decision, and only those, is logged once, in order, as one JSON line.
    logged = [json.loads(r.getMessage()) for r in caplog.records if '"event": "autoscale"' in r.getMessage()]
    assert [(e["role"], e["lag"], e["from"], e["to"]) for e in logged] == [
        (d.role, d.lag, d.before, d.after) for d in sup.decisions]
