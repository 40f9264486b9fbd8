"""Poison messages on a real nats-server: a message that keeps failing ends in TICKS_DLQ with the reason after a
bounded number of deliveries (normalizer, lander), a message nobody can decode is dead-lettered at once (lander,
fan-out), a webhook's permanent 4xx parks the message it refused; the messages after them keep flowing and each
consumer's ack floor passes the bad ones.

Never use the machine's NATS on 4222: the module owns one embedded server; each test starts from no streams.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import nats
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from quant_platform.market.contracts import STREAM_DLQ, STREAM_NORM, STREAM_RAW, RawFrame, encode_batch
from quant_platform_tests.market_helpers import dlq_messages, landed_table, sim_frames, wait_for

pytestmark = pytest.mark.timeout(180)

ENV = ("QP_TICKS_RAW_MAX_BYTES", "QP_TICKS_MAX_BYTES", "QP_TICKS_DLQ_MAX_BYTES", "QP_NATS_REPLICAS",
       "QP_STREAM_REPLICAS", "QP_TICKS_RAW_MAX_AGE_HOURS", "QP_TICKS_MAX_AGE_HOURS", "QP_TICKS_DLQ_MAX_AGE_HOURS",
       "QP_NATS_INBOX_PREFIX", "QP_NORMALIZER_LINGER_MS")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from quant_platform.market.nats_server import EmbeddedNats

    srv = EmbeddedNats(tmp_path_factory.mktemp("nats")).start()
    yield srv
    srv.stop()


@pytest.fixture
def url(server, monkeypatch):
    """The module's server without the tick streams; at most 3 deliveries, 200 ms before the second."""
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("QP_NATS_MAX_DELIVER", "3")
    monkeypatch.setenv("QP_REDELIVERY_DELAY_MS", "200")

    async def drop():
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        for name in (STREAM_RAW, STREAM_NORM, STREAM_DLQ):
            try:
                await js.delete_stream(name)
            except Exception:  # noqa: S110 - not there
                pass
        await nc.close()

    asyncio.run(drop())
    return server.url


def run(coro, timeout: float = 150):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _consumer(js, stream: str, name: str):
    info = await js.consumer_info(stream, name)
    last = (await js.stream_info(stream)).state.last_seq
    return info, last


def distinct_landed(lake) -> int:
    table = landed_table(lake)
    return 0 if table is None else len(set(table["event_id"].to_pylist()))


def table_to_ipc(table: pa.Table) -> bytes:
    from quant_platform.market.normalizer import table_to_ipc as to_ipc

    return to_ipc(table)


def canonical_table(n: int, symbols=("CL", "BZ")) -> pa.Table:
    from quant_platform.market.adapters import normalize_messages
    from quant_platform.market.instruments import InstrumentMaster

    done = normalize_messages("simulator", [(1, encode_batch(sim_frames(n, symbols=symbols)))], InstrumentMaster.load())
    assert done.table.num_rows == n
    return done.table


# ----------------------------------------------------------------------------------------------- normalizer
def test_a_raw_message_that_keeps_failing_is_dead_lettered_whole_and_later_messages_flow(url, tmp_path, monkeypatch):
    """One raw message whose DLQ record exceeds the largest message NATS takes (76,000 frames of a symbol nobody
    listed: the record holds every frame JSON-escaped; no publisher of ours sends such a batch, they stop at 1 MiB)
    fails on every delivery; after 3 it is in TICKS_DLQ verbatim with the reason. (Its canonical ticks, were they
    good, would go in parts: a TICKS message is cut at 4 MiB.)"""
    monkeypatch.setenv("QP_REDELIVERY_DELAY_MS", "1500")  # 1.5 s, then 3 s: room to see later messages land
    from quant_platform.market.lander import LanderStats, run_lander
    from quant_platform.market.normalizer import NormalizerStats, run_normalizer
    from quant_platform.market.publisher import publish_frames
    from quant_platform.market.streams import ensure_streams

    poison = encode_batch(sim_frames(76_000, symbols=("XX",)))  # not in the instrument master
    assert 7 * 1024**2 < len(poison) < 8 * 1024**2 - 4096
    lake = tmp_path / "lake"

    async def go():
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_streams(js)
        await publish_frames(url, "simulator", sim_frames(300, seq0=0))
        ack = await js.publish("ticks.raw.simulator.batch", poison, headers={"Nats-Msg-Id": "poison-1"})
        stop = asyncio.Event()
        nstats, lstats = NormalizerStats(), LanderStats()
        tasks = [asyncio.create_task(run_normalizer(url, stop, stats=nstats)),
                 asyncio.create_task(run_lander(url, lake, stop, max_age_s=0.2, stats=lstats))]

        async def dead_lettered() -> list:
            return [m for m in await dlq_messages(js) if m.headers.get("Qp-Raw-Seq") == str(ack.seq)]

        async def redelivered() -> bool:
            return (await js.consumer_info(STREAM_RAW, "normalizer")).num_redelivered >= 1

        try:
            await wait_for(redelivered, timeout_s=60)
            # Published after the poison failed: flows while it waits for its next delivery.
            await publish_frames(url, "simulator", sim_frames(300, seq0=1000))
            await wait_for(lambda: distinct_landed(lake) >= 600 or any(t.done() for t in tasks), timeout_s=60)
            dead_before = len(await dead_lettered())
            await wait_for(dead_lettered, timeout_s=60)
            await asyncio.sleep(0.3)
            info, last = await _consumer(js, STREAM_RAW, "normalizer")
            dlq = await dead_lettered()
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await nc.close()
        return ack.seq, nstats, lstats, dead_before, info, last, dlq

    seq, nstats, lstats, dead_before, info, last, dlq = run(go())
    # Every good tick landed (some twice: the failed set's other instruments were stored before it was retried
    # message by message; compaction removes such duplicates by event_id) while the poison was still retried.
    assert distinct_landed(lake) == 600 and dead_before == 0
    assert nstats.dead_lettered == 1 and nstats.redelivered == 2
    (record,) = dlq
    assert record.headers["Qp-Stage"] == "normalizer" and record.headers["Qp-Deliveries"] == "3"
    assert record.headers["Qp-Format"] == "qp.rawbatch.v1" and record.data == poison
    assert "failed 3 deliveries" in record.headers["Qp-Reason"] and "MaxPayload" in record.headers["Qp-Reason"]
    assert info.ack_floor.stream_seq == last and info.num_ack_pending == 0 and info.num_pending == 0


# ----------------------------------------------------------------------------------------------- lander
def test_a_stopping_lander_rolls_up_the_files_it_landed(url, tmp_path):
    """Two micro-batches land as two small files; the lander, stopped before its rollup was due, rolls them into
    one file holding both (a lander scaled in leaves no small files of its own)."""
    import pyarrow.parquet as pq

    from quant_platform.market.lander import LanderStats, run_lander
    from quant_platform.market.streams import ensure_streams

    good = canonical_table(40)
    lake = tmp_path / "lake"

    def files() -> list:
        return sorted(p for p in (lake / "ticks" / "landing").rglob("*.parquet") if "source=_schema" not in str(p))

    async def go():
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_streams(js)
        stop = asyncio.Event()
        stats = LanderStats()
        task = asyncio.create_task(run_lander(url, lake, stop, max_age_s=0.1, rollup_age_s=3600, stats=stats))
        try:
            for k, part in enumerate((good.slice(0, 25), good.slice(25))):
                col = part.schema.get_field_index("stream_seq")  # as if made of raw message k + 1
                part = part.set_column(col, "stream_seq", pa.array([k + 1] * part.num_rows, pa.int64()))
                await js.publish("ticks.norm.simulator.FUT_CL", table_to_ipc(part),
                                 headers={"Nats-Msg-Id": f"roll-{k}", "Qp-Raw-Seq": f"{k + 1}-{k + 1}",
                                          "Qp-Raw-Ticks": f"{k + 1}:{part.num_rows}"})
                await wait_for(lambda n=k + 1: len(files()) == n or task.done(), timeout_s=30)
            assert stats.rollups == 0
        finally:
            stop.set()
            await asyncio.gather(task)
            await nc.close()
        return stats

    stats = run(go())
    [rolled] = files()
    table = pq.read_table(rolled)
    assert stats.rollups == 1 and stats.rolled_files == 2 and "-r" in rolled.name
    assert sorted(table["event_id"].to_pylist()) == sorted(good["event_id"].to_pylist())
    assert json.loads(table.schema.metadata[b"qp.raw_ticks"]) == {"1": 25, "2": 15}


def test_the_lander_isolates_a_bad_message_lands_the_others_and_dead_letters_it(url, tmp_path):
    from quant_platform.market.lander import LanderStats, run_lander
    from quant_platform.market.streams import ensure_streams

    good = canonical_table(40)
    bad = good.slice(0, 5).set_column(7, "price", pa.array(["x"] * 5))  # decodes, but not the tick schema
    lake = tmp_path / "lake"

    async def go():
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_streams(js)
        seqs = {}
        for name, data in (("good1", table_to_ipc(good.slice(0, 20))), ("bad_schema", table_to_ipc(bad)),
                           ("not_ipc", b"definitely not arrow"), ("good2", table_to_ipc(good.slice(20, 20)))):
            ack = await js.publish("ticks.norm.simulator.FUT_CL", data, headers={"Nats-Msg-Id": name,
                                                                                 "Qp-Raw-Seq": "1-1"})
            seqs[name] = ack.seq
        stop = asyncio.Event()
        stats = LanderStats()
        task = asyncio.create_task(run_lander(url, lake, stop, max_age_s=0.2, stats=stats))
        try:
            await wait_for(lambda: (stats.rows >= 40 and stats.bad_messages >= 2) or task.done(), timeout_s=60)
            await asyncio.sleep(0.3)
            info, last = await _consumer(js, STREAM_NORM, "lander")
            dlq = await dlq_messages(js)
        finally:
            stop.set()
            await asyncio.gather(task)
            await nc.close()
        return seqs, stats, info, last, dlq

    seqs, stats, info, last, dlq = run(go())
    assert stats.rows == 40 and landed_table(lake).num_rows == 40
    by_seq = {m.headers["Qp-Ticks-Seq"]: m for m in dlq}
    assert set(by_seq) == {str(seqs["bad_schema"]), str(seqs["not_ipc"])}
    for m in by_seq.values():
        assert m.headers["Qp-Stage"] == "lander" and "Qp-Raw-Seq" not in m.headers
        assert m.subject == "ticks.dlq.simulator" and m.headers["Qp-Ticks-Raw-Seqs"] == "1-1"
    undecodable = by_seq[str(seqs["not_ipc"])]
    assert undecodable.headers["Qp-Deliveries"] == "1" and "not an Arrow IPC" in undecodable.headers["Qp-Reason"]
    schema = by_seq[str(seqs["bad_schema"])]
    assert schema.headers["Qp-Deliveries"] == "3" and "failed 3 deliveries" in schema.headers["Qp-Reason"]
    assert schema.data == table_to_ipc(bad)  # the message verbatim
    assert stats.redelivered == 2
    assert info.ack_floor.stream_seq == last and info.num_ack_pending == 0 and info.num_pending == 0


# ----------------------------------------------------------------------------------------------- fan-out
class _Hook:
    """A team's webhook that refuses (400) any body with a tick of FUT:NG and stores the others."""

    def __init__(self):
        self.instruments: list[str] = []
        self.refused = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                rows = [json.loads(line) for line in self.rfile.read(int(self.headers["Content-Length"])).splitlines()]
                if any(r["instrument_id"] == "FUT:NG" for r in rows):
                    hook.refused += 1
                    self.send_response(400)
                    self.end_headers()
                    self.wfile.write(b"unknown instrument FUT:NG")
                    return
                hook.instruments += [r["instrument_id"] for r in rows]
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ticks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _fanout(url, hook: _Hook, messages: list[tuple[str, str, bytes]], parked: int, delivered: int):
    from quant_platform.market.fanout import Destination, FanoutStats, run_destination
    from quant_platform.market.streams import ensure_streams

    dest = Destination("team_hook", "webhook", "ticks.norm.>", {"url": hook.url, "timeout_s": 2})

    async def go():
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_streams(js)
        seqs = {}
        for name, subject, data in messages:
            seqs[name] = (await js.publish(subject, data, headers={"Nats-Msg-Id": name})).seq
        stop = asyncio.Event()
        stats = FanoutStats()
        task = asyncio.create_task(run_destination(url, dest, stop, max_backoff_s=0.5, stats=stats))
        try:
            await wait_for(lambda: (stats.delivered_rows >= delivered and stats.parked >= parked) or task.done(),
                           timeout_s=30)
            await asyncio.sleep(0.3)
            info, last = await _consumer(js, STREAM_NORM, dest.consumer)
            dlq = await dlq_messages(js)
        finally:
            stop.set()
            await asyncio.gather(task)
            await nc.close()
        return seqs, stats, info, last, {m.headers["Qp-Ticks-Seq"]: m for m in dlq}

    try:
        return run(go())
    finally:
        hook.server.shutdown()


def _only(ticks: pa.Table, inst: str) -> bytes:
    return table_to_ipc(ticks.filter(pc.equal(ticks["instrument_id"], inst)))


def test_a_webhook_400_parks_the_message_and_the_next_one_is_delivered(url):
    hook = _Hook()
    ticks = canonical_table(30, symbols=("CL", "NG", "BZ"))
    seqs, stats, info, last, dlq = _fanout(url, hook, [
        ("cl", "ticks.norm.simulator.FUT_CL", _only(ticks, "FUT:CL")),
        ("ng", "ticks.norm.simulator.FUT_NG", _only(ticks, "FUT:NG")),
        ("bz", "ticks.norm.simulator.FUT_BZ", _only(ticks, "FUT:BZ"))], parked=1, delivered=20)
    assert sorted(set(hook.instruments)) == ["FUT:BZ", "FUT:CL"] and len(hook.instruments) == 20
    assert hook.refused >= 1 and stats.parked == 1
    assert set(dlq) == {str(seqs["ng"])}
    refused = dlq[str(seqs["ng"])]
    assert refused.headers["Qp-Stage"] == "fanout:team_hook" and refused.headers["Qp-Http-Status"] == "400"
    assert "HTTP 400" in refused.headers["Qp-Reason"] and refused.data == _only(ticks, "FUT:NG")
    assert info.ack_floor.stream_seq == last and info.num_ack_pending == 0


def test_a_message_the_fanout_cannot_decode_is_parked_and_the_next_one_is_delivered(url):
    hook = _Hook()
    ticks = canonical_table(10, symbols=("CL",))
    seqs, stats, info, last, dlq = _fanout(url, hook, [
        ("junk", "ticks.norm.simulator.FUT_CL", b"\x00junk"),
        ("cl", "ticks.norm.simulator.FUT_CL", _only(ticks, "FUT:CL"))], parked=1, delivered=10)
    assert hook.instruments == ["FUT:CL"] * 10 and stats.parked == 1
    assert set(dlq) == {str(seqs["junk"])}
    assert "not an Arrow IPC" in dlq[str(seqs["junk"])].headers["Qp-Reason"]
    assert info.ack_floor.stream_seq == last and info.num_ack_pending == 0


def test_dead_letter_records_bundle_every_reject_of_a_raw_message():
    from quant_platform.market.normalizer import reject_record

    frames = [(RawFrame(1, b'{"bad":1}'), "unknown symbol ZZ"), (RawFrame(2, bytes([0xff, 0x01])), "malformed")]
    data, headers = reject_record("simulator", 42, frames, [(3, b"no timestamp", "raw line is not ...")], 1)
    doc = json.loads(data)
    assert doc["raw_seq"] == 42 and [r["reason"] for r in doc["rejects"]] == [
        "unknown symbol ZZ", "malformed", "raw line is not ..."]
    assert doc["rejects"][0]["frame"] == '{"bad":1}' and doc["rejects"][1]["frame_b64"] == "/wE="
    assert headers["Qp-Raw-Seq"] == "42" and headers["Qp-Rejects"] == "3" and headers["Nats-Msg-Id"] == "dlq:42"
    assert headers["Qp-Reason"] == "unknown symbol ZZ (and 2 more rejects)"
