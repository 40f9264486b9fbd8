"""Several normalizers and landers at once: the TICKS message id and the landing file name come from the content, so
interleaved, split or merged redeliveries never drop a message as a duplicate or overwrite a file; and a fault run
with 3 normalizers and 2 landers (subprocesses), a short ack wait, one of each stalled past it (its messages are
redelivered to the others while it still holds them, then it finishes them too) and one of each killed -9 lands
exactly the published events after compaction.

Never wait for the default 30 s ack wait here: QP_NATS_ACK_WAIT_S makes redelivery part of the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from quant_platform.market.contracts import RawFrame, encode_batch
from quant_platform_tests.market_helpers import landed_table, sim_frames, wait_for


def _raw_msg(seq: int, frames: list[RawFrame]):
    return SimpleNamespace(subject="ticks.raw.simulator.batch", data=encode_batch(frames), headers={},
                           metadata=SimpleNamespace(sequence=SimpleNamespace(stream=seq)))


def test_ids_and_file_names_follow_the_content_not_the_fetched_range(tmp_path):
    from quant_platform.market.instruments import InstrumentMaster
    from quant_platform.market.lake_landing import batch_digest, land_batch
    from quant_platform.market.normalizer import ipc_to_table, prepare

    master = InstrumentMaster.load()
    frames = sim_frames(50, symbols=("CL",))
    msgs = [_raw_msg(seq, frames[10 * (seq - 1):10 * seq]) for seq in range(1, 6)]

    def ids(batch):
        return [(h["Nats-Msg-Id"], ipc_to_table(d)) for _, d, h, stream in prepare(batch, master).publishes
                if stream == "TICKS"]

    # A worker's set {1, 5} (2-4 went to another worker) and a redelivered set {1..5}: the same first and last raw
    # sequence, other content. The old id `simulator:1-5:FUT:CL` was the same for both, so JetStream dropped the
    # second as a duplicate, and raw messages 2-4's ticks with it when their first delivery was never stored.
    [(split_id, split)] = ids([msgs[0], msgs[4]])
    [(whole_id, whole)] = ids(msgs)
    assert split_id != whole_id and (split.num_rows, whole.num_rows) == (20, 50)
    assert ids(msgs)[0][0] == whole_id  # the same raw messages normalised again: the same id (deduplicated)

    # Two landers' batches over the same TICKS range (7..9) with different messages: two files, none overwritten.
    lake = tmp_path / "lake"
    a = land_batch(lake, split, 7, 9, None, batch_digest([7, 9]))
    b = land_batch(lake, whole, 7, 9, None, batch_digest([7, 8, 9]))
    assert a[0][0] != b[0][0] and a[0][0].name.startswith("7-9-") and b[0][0].name.startswith("7-9-")
    assert landed_table(lake).num_rows == 70
    assert land_batch(lake, whole, 7, 9, None, batch_digest([9, 8, 7]))[0][0] == b[0][0]  # a redelivery: same file


def test_an_instruments_ticks_over_the_message_limit_go_in_parts_with_their_own_ids(monkeypatch):
    """A full fetch set of one busy instrument made one TICKS message over the server's max_payload: the set
    failed, went down the one-by-one path, and the other instruments' messages already stored landed twice (the
    realistic bench landed 784,736 duplicates of 2M ticks that way). A set's one message is cut the same way."""
    from quant_platform.market import normalizer
    from quant_platform.market.instruments import InstrumentMaster
    from quant_platform.market.normalizer import ipc_to_table, prepare

    frames = sim_frames(3000, symbols=("CL", "BZ"))
    msgs = [_raw_msg(seq, frames[500 * (seq - 1):500 * seq]) for seq in range(1, 7)]
    whole = [p for p in prepare(msgs, InstrumentMaster.load()).publishes if p[3] == "TICKS"]
    assert len(whole) == 1  # one message for the set, both instruments in it (ticks.norm.<source>.batch)
    assert whole[0][0] == "ticks.norm.simulator.batch"
    assert set(ipc_to_table(whole[0][1])["instrument_id"].to_pylist()) == {"FUT:CL", "FUT:BZ"}
    limit = len(whole[0][1]) // 10
    monkeypatch.setattr(normalizer, "MAX_TICKS_MESSAGE_BYTES", limit)
    parts = [p for p in prepare(msgs, InstrumentMaster.load()).publishes if p[3] == "TICKS"]
    assert len(parts) >= 10 and all(len(p[1]) <= limit for p in parts)
    assert len({p[2]["Nats-Msg-Id"] for p in parts}) == len(parts)
    rows = [r for p in parts for r in ipc_to_table(p[1])["event_id"].to_pylist()]
    assert sorted(rows) == sorted(r for p in whole for r in ipc_to_table(p[1])["event_id"].to_pylist())
    assert {p[2]["Qp-Raw-Ticks"] for p in parts} == {whole[0][2]["Qp-Raw-Ticks"]}  # every part names the set


def test_a_fetched_set_is_normalised_in_chunks_of_bounded_bytes():
    from quant_platform.market.normalizer import set_chunks

    msgs = [SimpleNamespace(data=b"x" * n) for n in (5, 5, 5, 20, 1)]
    assert [[len(m.data) for m in c] for c in set_chunks(msgs, 10)] == [[5, 5], [5], [20], [1]]
    assert set_chunks([], 10) == []


def _worker(role: str, url: str, lake, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "quant_platform.market.worker", "--role", role, "--lake", str(lake)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.mark.slow
def test_three_normalizers_two_landers_redelivery_and_kill_9_land_exactly_the_published_events(tmp_path):
    from quant_platform.market.compaction import landing_days, stage_day
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.publisher import RawPublisher

    total = 24_000
    frames = sim_frames(total, step_ns=100_000)
    lake = tmp_path / "lake"
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        env = {**os.environ, "QP_NATS_URL": srv.url, "QP_NATS_ACK_WAIT_S": "1", "QP_REDELIVERY_DELAY_MS": "50",
               "QP_WORKER_NICE": "0"}
        os.environ["QP_NATS_ACK_WAIT_S"] = "1"  # this process declares the consumers first: the same settings
        roles = [f"normalizer{i}" for i in range(3)] + ["lander0", "lander1"]
        procs = {r: _worker(r.rstrip("0123456789"), srv.url, lake, env) for r in roles}
        kills: list[str] = []
        stalled: list[str] = []

        async def publish():
            import nats

            from quant_platform.market.streams import ensure_streams

            nc = await nats.connect(srv.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
            js = nc.jetstream()
            await ensure_streams(js)

            async def waiting(consumer_stream, durable, n):
                return (await js.consumer_info(consumer_stream, durable)).num_waiting >= n

            # every worker connected and pulling before the first frame (their start-up is seconds on 2 cores)
            await wait_for(lambda: waiting("TICKS_RAW", "normalizer", 3), timeout_s=60, interval_s=0.2)
            await wait_for(lambda: waiting("TICKS", "lander", 2), timeout_s=60, interval_s=0.2)
            pub = RawPublisher(js, source="simulator", connection_id="multi", max_frames=40)
            await pub.start()
            for i, f in enumerate(frames):  # about 6,000 frames/s: four seconds of data
                await pub.add(f)
                for at, role in ((8_000, "normalizer1"), (14_000, "lander0")):
                    if i == at:  # mid-stream: it holds fetched, unacknowledged messages
                        os.kill(procs[role].pid, signal.SIGKILL)
                        procs[role].wait()
                        kills.append(role)
                        procs[role] = _worker(role.rstrip("0123456789"), srv.url, lake, env)
                for at, role in ((5_000, "normalizer0"), (11_000, "lander1")):
                    if i == at:  # a stall longer than the ack wait: its messages go to the others meanwhile, and
                        os.kill(procs[role].pid, signal.SIGSTOP)  # it finishes them too when it wakes up
                        stalled.append(role)
                        asyncio.get_running_loop().call_later(2.5, os.kill, procs[role].pid, signal.SIGCONT)
                if i % 300 == 0:
                    await asyncio.sleep(0.05)
            await pub.close(timeout=60)
            await asyncio.sleep(2.5)  # the last stalled worker is woken up

            async def drained():
                raw, norm = await js.stream_info("TICKS_RAW"), await js.stream_info("TICKS")
                n, la = await js.consumer_info("TICKS_RAW", "normalizer"), await js.consumer_info("TICKS", "lander")
                return (n.ack_floor.stream_seq >= raw.state.last_seq and la.ack_floor.stream_seq >= norm.state.last_seq
                        and not la.num_ack_pending and not n.num_ack_pending)

            await wait_for(drained, timeout_s=120, interval_s=0.3)
            # Deliveries beyond one per message: the consumer sequence counts every delivery, redeliveries too.
            out = []
            for stream, durable in (("TICKS_RAW", "normalizer"), ("TICKS", "lander")):
                ci, si = await js.consumer_info(stream, durable), await js.stream_info(stream)
                out.append(ci.delivered.consumer_seq - si.state.last_seq)
            await nc.close()
            return out

        try:
            redelivered = asyncio.run(publish())
        finally:
            os.environ.pop("QP_NATS_ACK_WAIT_S", None)
            for p in procs.values():
                p.send_signal(signal.SIGTERM)
            for p in procs.values():
                p.wait(timeout=30)
    assert kills == ["normalizer1", "lander0"] and stalled == ["normalizer0", "lander1"]
    assert all(n > 0 for n in redelivered), redelivered  # both consumers delivered messages again
    landed = landed_table(lake)
    staged = [stage_day(lake, day) for day in sorted(landing_days(lake))]
    compacted = pa.concat_tables([pq.read_table(s.ticks_path) for s in staged])
    print(json.dumps({"published": total, "landed_rows": landed.num_rows, "compacted": compacted.num_rows,
                      "redelivered_raw_and_ticks": redelivered,
                      "landing_files": sum(len(s.inputs) for s in staged)}))
    # Exactly the published events: each vendor sequence once, nothing else, whatever was landed twice.
    assert compacted.num_rows == total
    assert sorted(compacted["vendor_seq"].to_pylist()) == list(range(total))
    assert pc.count_distinct(compacted["event_id"]).as_py() == total
    assert landed.num_rows >= total and sum(s.duplicates_removed for s in staged) == landed.num_rows - total
