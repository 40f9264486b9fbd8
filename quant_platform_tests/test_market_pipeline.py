"""The tick pipeline on a real nats-server: frames published -> normalizer -> TICKS -> lander -> Parquet in
the lake, queryable in the OLAP views; malformed frames end in TICKS_DLQ with the reason; nothing lost.
"""

from __future__ import annotations

import asyncio

import pyarrow.compute as pc
import pytest

from quant_platform.market.contracts import RawFrame
from quant_platform_tests.market_helpers import dlq_messages, landed_table, sim_frames, wait_for


@pytest.fixture
def nats_server(tmp_path):
    from quant_platform.market.nats_server import EmbeddedNats

    with EmbeddedNats(tmp_path / "nats").start() as srv:
        yield srv


async def _pipeline(url, lake, frames_by_source, workers=1):
    from quant_platform.market.lander import LanderStats, run_lander
    from quant_platform.market.normalizer import NormalizerStats, run_normalizer
    from quant_platform.market.publisher import publish_frames

    stop = asyncio.Event()
    nstats, lstats = NormalizerStats(), LanderStats()
    tasks = [asyncio.create_task(run_normalizer(url, stop, stats=nstats)) for _ in range(workers)]
    tasks.append(asyncio.create_task(run_lander(url, lake, stop, max_age_s=0.2, stats=lstats)))
    results = {}
    for source, frames in frames_by_source.items():
        results[source] = await publish_frames(url, source, frames)
    return stop, tasks, nstats, lstats, results


def test_frames_land_as_canonical_ticks_and_rejects_go_to_the_dlq(nats_server, tmp_path):
    import nats

    lake = tmp_path / "lake"
    good = sim_frames(3000)
    bad = [RawFrame(1, b'{"sym":"CL","ev":"T","t":1,"seq":1,"p":"NaN","s":1}'),
           RawFrame(2, b'{"sym":"ZZ","ev":"T","t":1700000000000000000,"seq":2,"p":1,"s":1}'),
           RawFrame(3, b'{not json'),
           RawFrame(4, bytes(range(1, 9)).replace(b"\n", b" "))]

    async def run():
        stop, tasks, nstats, lstats, results = await _pipeline(
            nats_server.url, lake, {"simulator": good[:1500] + bad + good[1500:]})
        await wait_for(lambda: lstats.rows >= 3000, timeout_s=60)
        nc = await nats.connect(nats_server.url)
        dlq = await dlq_messages(nc.jetstream())
        await nc.close()
        stop.set()
        await asyncio.gather(*tasks)
        return nstats, lstats, dlq

    nstats, lstats, dlq = asyncio.run(run())
    table = landed_table(lake)
    assert table.num_rows == 3000
    assert pc.count_distinct(table["event_id"]).as_py() == 3000
    assert set(table["instrument_id"].to_pylist()) == {"FUT:CL", "FUT:BZ", "FUT:NG"}
    assert set(table["event"].to_pylist()) == {"trade", "quote"}
    trades = table.filter(pc.equal(table["event"], "trade"))
    assert pc.min(trades["price"]).as_py() >= 70.0
    # One DLQ record per raw message, holding every reject of it with its reason and the frame verbatim.
    import json

    rejects = [r for m in dlq for r in json.loads(m.data)["rejects"]]
    assert all(m.headers["Qp-Format"] == "qp.dlq.v1" and m.headers["Qp-Stage"] == "normalizer" for m in dlq)
    assert len(dlq) == len({m.headers["Qp-Raw-Seq"] for m in dlq}) and sum(int(m.headers["Qp-Rejects"]) for m in dlq) == 4
    assert len(rejects) == 4 and all(r["reason"] for r in rejects)
    assert any("unknown symbol" in r["reason"] for r in rejects)
    assert sorted(r.get("frame", "").encode() for r in rejects) == sorted(f.payload for f in bad)
    assert all(f"{json.loads(m.data)['rejects'][0]['reason']}"[:40] in m.headers["Qp-Reason"] for m in dlq)
    assert nstats.failures == 0


def test_olap_views_query_landed_ticks(nats_server, tmp_path):
    import duckdb

    from quant_platform.market.lake_landing import ensure_olap_views

    lake = tmp_path / "lake"
    olap = tmp_path / "olap.duckdb"
    ensure_olap_views(olap, lake, retention_days=3)
    con = duckdb.connect(str(olap), read_only=True)
    assert con.execute("SELECT count(*) FROM market.ticks_recent").fetchone()[0] == 0
    con.close()

    async def run():
        stop, tasks, _, lstats, _ = await _pipeline(nats_server.url, lake, {"simulator": sim_frames(2000)})
        await wait_for(lambda: lstats.rows >= 2000, timeout_s=60)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    con = duckdb.connect(str(olap), read_only=True)
    assert con.execute("SELECT count(*) FROM market.ticks_recent").fetchone()[0] == 2000
    trades = con.execute("SELECT count(*) FROM market.trades_recent").fetchone()[0]
    assert trades == 1000
    bars = con.execute("SELECT instrument_id, sum(trades) FROM market.bars_1m_recent GROUP BY 1 ORDER BY 1").fetchall()
    assert sum(n for _, n in bars) == 1000
    con.close()


def test_a_set_normalised_in_pipelined_chunks_is_stored_in_order_and_acked_whole_before_the_normalizer_returns(
        nats_server):
    """One fetched set of 30 raw messages cut into 30 chunks: each chunk's store and acks run while the next is
    normalised. Stopped as soon as the first chunk is counted, the normalizer still finishes the set it holds (every
    message stored once, in raw order, and acked) before it returns: nothing is left in flight."""
    import nats

    from quant_platform.market.contracts import STREAM_NORM, STREAM_RAW
    from quant_platform.market.normalizer import HDR_RAW_SEQ, NormalizerStats, ipc_to_table, run_normalizer
    from quant_platform.market.publisher import publish_frames

    frames = sim_frames(3000)

    async def run():
        published = await publish_frames(nats_server.url, "simulator", frames, max_frames=100)
        stop, stats = asyncio.Event(), NormalizerStats()
        task = asyncio.create_task(run_normalizer(nats_server.url, stop, fetch_batch=64, stats=stats, linger_s=0.2,
                                                  set_bytes=1))
        await wait_for(lambda: stats.raw_messages >= 1, timeout_s=60)
        stop.set()
        await task
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        info = await js.consumer_info(STREAM_RAW, "normalizer")
        sub = await js.pull_subscribe("ticks.norm.>", stream=STREAM_NORM)
        msgs = await sub.fetch(1000, timeout=2)
        await nc.close()
        return published, stats, info, msgs

    published, stats, info, msgs = asyncio.run(run())
    assert published["batches_sent"] == 30
    assert stats.raw_messages == 30 and stats.failures == 0
    assert (info.num_ack_pending, info.num_pending, info.ack_floor.stream_seq) == (0, 0, 30)
    firsts = [int(m.headers[HDR_RAW_SEQ].split("-")[0]) for m in msgs]
    assert firsts == list(range(1, 31))  # a TICKS message per chunk, in the order of the raw stream
    ids = [i for m in msgs for i in ipc_to_table(m.data)["event_id"].to_pylist()]
    assert len(ids) == len(set(ids)) == 3000


@pytest.mark.parametrize(("source", "capture", "expected_trades", "expected_quotes"), [
    ("binance", "binance_spot_combined_stream_2021-10-12.txt", 2, 84),
    ("polygon", "polygon_stocks_trades.jsonl", 3, 0),
    ("alpaca", "alpaca_v2_sip_session.txt", 3, 2),
    # Sources configured in the instrument master (`ingest replay --source binance_futures|alpaca_crypto`).
    ("binance_futures", "binance_usdm_combined_stream_2021-07-22.txt", 18, 70),
    ("alpaca_crypto", "alpaca_v1beta3_crypto_us_session.txt", 0, 1),
])
def test_real_captures_replay_into_canonical_ticks(source, capture, expected_trades, expected_quotes,
                                                   nats_server, tmp_path):
    """`ingest replay` path: capture -> TICKS_RAW -> normalizer -> lander; values checked against the file."""
    import json

    from quant_platform.market.connectors.replay import read_capture
    from quant_platform_tests.conftest import SAMPLE_DATA

    path = SAMPLE_DATA / "ticks" / capture
    payloads = read_capture(source, path)
    frames = [RawFrame(1_700_000_000_000_000_000 + i, p) for i, p in enumerate(payloads)]
    lake = tmp_path / "lake"

    async def run():
        stop, tasks, nstats, lstats, _ = await _pipeline(nats_server.url, lake, {source: frames})
        await wait_for(lambda: nstats.raw_messages >= 1 and lstats.rows >= expected_trades + expected_quotes,
                       timeout_s=60)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    table = landed_table(lake)
    rows = table.to_pylist()
    assert sum(r["event"] == "trade" for r in rows) == expected_trades
    assert sum(r["event"] == "quote" for r in rows) == expected_quotes
    # Read the vendor's own values from the file and compare with what landed.
    if source == "binance":
        agg = next(json.loads(p)["data"] for p in payloads if b'"aggTrade"' in p)
        got = next(r for r in rows if r["event"] == "trade" and r["vendor_seq"] == agg["a"])
        assert got["instrument_id"] == f"CRYPTO:{ {'NKNUSDT': 'NKN-USDT', 'BLZETH': 'BLZ-ETH', 'LRCBTC': 'LRC-BTC', 'RUNEEUR': 'RUNE-EUR'}[agg['s']] }"
        assert got["price"] == float(agg["p"]) and got["size"] == float(agg["q"])
        assert int(got["ts"].timestamp() * 1000) == agg["T"]
    elif source == "binance_futures":
        events = [json.loads(p)["data"] for p in payloads]
        assert (expected_trades, expected_quotes) == (sum(e["e"] == "aggTrade" for e in events),
                                                      sum(e["e"] == "bookTicker" for e in events))
        for e in (e for e in events if e["e"] == "aggTrade"):
            got = next(r for r in rows if r["event"] == "trade" and r["vendor_seq"] == e["a"])
            assert got["instrument_id"] == f"CRYPTO:{e['s'][:-4]}-USDT-PERP" and got["source"] == "binance_futures"
            assert got["price"] == float(e["p"]) and got["size"] == float(e["q"])
            assert int(got["ts"].timestamp() * 1000) == e["T"]
    elif source == "alpaca_crypto":
        [q] = [m for p in payloads for m in json.loads(p) if m["T"] == "q"]
        [got] = rows
        assert (got["instrument_id"], got["exchange"], got["bid"], got["ask"]) == ("CRYPTO:ETH-USDT", None, q["bp"], q["ap"])
    elif source == "polygon":
        trades = [e for p in payloads for e in json.loads(p) if e.get("ev") == "T"]
        for e in trades:
            got = next(r for r in rows if r["vendor_seq"] == e["q"])
            assert got["instrument_id"] == "EQ:AAPL" and got["price"] == e["p"] and got["size"] == e["s"]
            assert got["ts"].timestamp() * 1000 == pytest.approx(e["t"])
            assert got["exchange"] == str(e["x"])
    else:
        quotes = [e for p in payloads for e in json.loads(p) if isinstance(e, dict) and e.get("T") == "q"]
        landed_quotes = sorted((r for r in rows if r["event"] == "quote"), key=lambda r: r["ts"])
        for e, got in zip(quotes, landed_quotes, strict=True):
            assert got["instrument_id"] == "EQ:AMD" and got["bid"] == e["bp"] and got["ask"] == e["ap"]
        first_trade = next(r for r in rows if r["event"] == "trade" and r["vendor_seq"] == 628)
        # 2023-04-06T11:54:26.838232225Z exactly, in nanoseconds
        import pandas as pd

        assert pd.Timestamp(first_trade["ts"]).value == 1680782066838232225


def test_a_ticks_message_from_before_the_schema_extension_still_lands():
    """A TICKS message written by a normalizer of the first sixteen columns (in flight across an upgrade) decodes
    with the extension columns null, so the lander and fan-outs take it."""
    import pyarrow as pa

    from quant_platform.market.adapters import normalize_batch
    from quant_platform.market.contracts import TICK_COLUMNS, TICK_SCHEMA
    from quant_platform.market.instruments import InstrumentMaster
    from quant_platform.market.normalizer import ipc_to_table, table_to_ipc
    from quant_platform_tests.market_helpers import sim_frames

    table, _, _ = normalize_batch("simulator", sim_frames(4), 1, InstrumentMaster.load())
    old = table.select(TICK_COLUMNS)
    back = ipc_to_table(table_to_ipc(old))
    assert back.schema == TICK_SCHEMA and back.select(TICK_COLUMNS).equals(old)
    assert all(back[c].null_count == 4 for c in ("conditions", "size_unit", "ref_seq"))
    assert isinstance(back, pa.Table)
