"""Per-event rejects and `ingest redrive` on a real nats-server: a Massive frame with three good trades and one bad
quote lands three ticks and one DLQ entry naming the quote; after the instrument master learns the symbol, a
redrive brings the quote back exactly once (a second redrive publishes nothing) and the day accounts for it once.

Never hand a test vendor bytes it did not get from the sample files: the frame is spliced from their events.
"""

from __future__ import annotations

import asyncio
import json

import pyarrow.compute as pc
import pytest

from quant_platform.market import compaction as cp
from quant_platform.market.contracts import RawFrame
from quant_platform.market.instruments import InstrumentMaster
from quant_platform_tests.conftest import SAMPLE_DATA
from quant_platform_tests.market_helpers import dlq_messages, landed_table, wait_for

POLYGON = SAMPLE_DATA / "ticks" / "polygon_stocks_trades.jsonl"
# The quote of Massive's websocket docs (massive.com/docs/websocket/stocks/quotes, response sample), as the docs
# print it on one line.
MSFT_QUOTE = (b'{"ev":"Q","sym":"MSFT","bx":4,"bp":114.125,"bs":100,"ax":7,"ap":114.128,"as":160,"c":0,'
              b'"i":[604],"t":1536036818784,"q":50385480,"z":3}')
KNOWS_AAPL = "instruments:\n  - {instrument_id: EQ:AAPL, asset_class: equity, venues: {polygon: [AAPL]}}\n"
KNOWS_MSFT = KNOWS_AAPL + "  - {instrument_id: EQ:MSFT, asset_class: equity, venues: {polygon: [MSFT]}}\n"


@pytest.fixture
def nats_server(tmp_path):
    from quant_platform.market.nats_server import EmbeddedNats

    with EmbeddedNats(tmp_path / "nats").start() as srv:
        yield srv


def spliced_frame() -> tuple[bytes, list[dict]]:
    """One Massive array frame: the capture's three trade events, byte for byte, then the docs' MSFT quote."""
    trade_frames = [line for line in POLYGON.read_bytes().splitlines() if b'"ev":"T"' in line]
    inner = b", ".join(f.strip()[1:-1] for f in trade_frames)
    frame = b"[" + inner + b"," + MSFT_QUOTE + b"]"
    events = json.loads(frame)
    assert [e["ev"] for e in events] == ["T", "T", "T", "Q"]
    return frame, events


async def _workers(url, lake, master, stop):
    from quant_platform.market.lander import LanderStats, run_lander
    from quant_platform.market.normalizer import NormalizerStats, run_normalizer

    nstats, lstats = NormalizerStats(), LanderStats()
    tasks = [asyncio.create_task(run_normalizer(url, stop, master=master, stats=nstats, linger_s=0.0)),
             asyncio.create_task(run_lander(url, lake, stop, max_age_s=0.2, stats=lstats))]
    return tasks, nstats, lstats


def test_a_bad_event_rejects_only_itself_and_a_redrive_brings_it_back_once(nats_server, tmp_path):
    import nats

    from quant_platform.market.observe import read_dlq
    from quant_platform.market.publisher import publish_frames
    from quant_platform.market.redrive import redrive

    frame, events = spliced_frame()
    lake = tmp_path / "lake"
    before = InstrumentMaster.from_yaml(KNOWS_AAPL)
    after = InstrumentMaster.from_yaml(KNOWS_MSFT)

    async def run():
        stop = asyncio.Event()
        tasks, nstats, lstats = await _workers(nats_server.url, lake, before, stop)
        await publish_frames(nats_server.url, "polygon", [RawFrame(1_700_000_000_000_000_000, frame)])
        await wait_for(lambda: lstats.rows >= 3 and nstats.raw_messages >= 1, timeout_s=60)
        nc = await nats.connect(nats_server.url)
        dlq_before = await dlq_messages(nc.jetstream())
        stop.set()
        await asyncio.gather(*tasks)
        # The master learns MSFT; redrive twice: the second run finds the record marked and publishes nothing.
        stop = asyncio.Event()
        tasks, nstats, lstats = await _workers(nats_server.url, lake, after, stop)
        first = await redrive(nats_server.url, source="polygon")
        second = await redrive(nats_server.url)
        await wait_for(lambda: lstats.rows >= 1, timeout_s=60)
        await asyncio.sleep(0.5)
        dlq_after = await dlq_messages(nc.jetstream())
        dlq_read = await read_dlq(nats_server.url)
        await nc.close()
        stop.set()
        await asyncio.gather(*tasks)
        return dlq_before, first, second, dlq_after, dlq_read

    dlq_before, first, second, dlq_after, dlq_read = asyncio.run(run())
    # One DLQ record for the raw message, naming the quote (event 3 of frame 0) with the frame verbatim.
    [record] = dlq_before
    doc = json.loads(record.data)
    assert doc["ticks"] == 3 and len(doc["rejects"]) == 1
    [reject] = doc["rejects"]
    assert (reject["frame_index"], reject["event"]) == (0, 3)
    assert reject["reason"] == "unknown symbol polygon:MSFT" and reject["frame"].encode() == frame
    assert (first["records"], first["published"], first["events"]) == (1, 1, 1)
    assert (second.get("published", 0), second["records_already_redriven"]) == (0, 1)
    # Every landed row, duplicates included: three trades from the first pass, the quote once from the redrive.
    table = landed_table(lake)
    assert table.num_rows == 4
    trades = table.filter(pc.equal(table["event"], "trade")).to_pylist()
    assert sorted(t["vendor_seq"] for t in trades) == sorted(e["q"] for e in events[:3])
    [quote] = table.filter(pc.equal(table["event"], "quote")).to_pylist()
    q = events[3]
    assert (quote["instrument_id"], quote["bid"], quote["ask"], quote["bid_size"], quote["ask_size"]) == (
        "EQ:MSFT", q["bp"], q["ap"], q["bs"], q["as"])
    assert quote["size_unit"] == "round_lots"  # a 2018 quote
    assert quote["stream_seq"] != trades[0]["stream_seq"]  # it came in the redriven raw message
    # The redrive's marker is in the DLQ, without a raw sequence: the completeness check does not count it.
    markers = [m for m in dlq_after if m.headers.get("Qp-Stage") == "redrive"]
    assert len(markers) == 1 and "Qp-Raw-Seq" not in markers[0].headers
    assert set(dlq_read.raw) == {int(record.headers["Qp-Raw-Seq"])}
    # The quote's day: one tick, from one raw message, every raw sequence of its window accounted for.
    day = quote["ts"].date().isoformat()
    staged = cp.stage_day(lake, day)
    assert staged.rows_out == 1 and staged.raw_seq_count == 1
    acc = cp.account_sequences(lake, day, staged.seqs_path, set(dlq_read.raw), stream_first_seq=None,
                               drained_raw_seq=None)
    assert acc.passed and acc.in_ticks == 1


def test_redrive_of_the_same_reference_is_deduplicated_by_its_message_id(nats_server):
    """A crash between publishing and marking: the next run publishes again, and TICKS_RAW drops the copy."""
    import nats

    from quant_platform.market.contracts import STREAM_RAW, raw_subject
    from quant_platform.market.normalizer import reject_record
    from quant_platform.market.redrive import plan_record

    frame, _ = spliced_frame()
    from quant_platform.market.adapters import Reject

    data, headers = reject_record("polygon", 42, [Reject(RawFrame(5, frame), "unknown symbol polygon:MSFT", 0, 3)],
                                  [], 0, ticks=3)
    plan, counts = plan_record("polygon", 7, headers, data)
    assert counts["events"] == 1 and len(plan) == 1
    payload, hdrs = plan[0]
    assert payload == b"5 " + frame and hdrs["Qp-Redrive-Select"] == "0:3" and hdrs["Qp-Redrive-Of"] == "42:0"

    async def run():
        from quant_platform.market.streams import ensure_streams

        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_streams(js)
        acks = [await js.publish(raw_subject("polygon"), payload, stream=STREAM_RAW, headers=hdrs) for _ in range(2)]
        info = await js.stream_info(STREAM_RAW)
        await nc.close()
        return acks, info.state.messages

    acks, stored = asyncio.run(run())
    assert [a.duplicate for a in acks] == [None, True] or [bool(a.duplicate) for a in acks] == [False, True]
    assert stored == 1
