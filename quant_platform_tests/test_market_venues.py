"""The venues' current interfaces on their own bytes: Binance volume counted once, Binance USD-M as a source of its
own (routes, perpetuals, mark price and funding), Massive (conditions in bars, refused subscriptions), Alpaca
crypto, Alpaca trade cancels and corrections applied at compaction, crossed quotes as a warning.

Never compare an adapter with itself: every expected value is read from the sample file here, with json.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from quant_platform.market import compaction as cp
from quant_platform.market import daily_checks as dc
from quant_platform.market.adapters import normalize_batch, normalize_messages
from quant_platform.market.adapters.polygon import CONDITION_RULES
from quant_platform.market.connectors import SubscriptionError, build_connector
from quant_platform.market.connectors.replay import read_capture
from quant_platform.market.contracts import TICK_SCHEMA, RawFrame, encode_batch
from quant_platform.market.instruments import PACKAGED_INSTRUMENTS_FILE, InstrumentMaster
from quant_platform.market.lake_landing import land_batch
from quant_platform_tests.conftest import SAMPLE_DATA
from quant_platform_tests.ws_replay_server import ReplayServer

TICKS = SAMPLE_DATA / "ticks"
SPOT = TICKS / "binance_spot_combined_stream_2021-10-12.txt"
USDM = TICKS / "binance_usdm_combined_stream_2021-07-22.txt"
USDM_RAW_TRADES = TICKS / "binance_usdm_btcusdt_trade_2022-08-11.txt"
MARK = TICKS / "binance_usdm_mark_price_stream.json"
POLYGON = TICKS / "polygon_stocks_trades.jsonl"
MASSIVE_CONDITIONS = TICKS / "massive_conditions_stocks_client_python_mock.json"
ALPACA_CRYPTO = TICKS / "alpaca_v1beta3_crypto_us_session.txt"
ALPACA_CORRECTION = TICKS / "alpaca_docs_stock_correction_EEM.json"
ALPACA_CANCEL = TICKS / "alpaca_docs_stock_cancel_GOOGL.json"
ALPACA_CRYPTO_TRADE = TICKS / "alpaca_docs_crypto_trade_AVAX.json"
RECEIVED = 1_700_000_000_123_456_789


@pytest.fixture(scope="module")
def master() -> InstrumentMaster:
    return InstrumentMaster.load(PACKAGED_INSTRUMENTS_FILE)


def cryptofeed_frames(path) -> list[RawFrame]:
    """cryptofeed's recorder: a `<url> <-> <ts>` line, then `<receipt unix seconds>: <frame>`; exact ns."""
    out = []
    for line in path.read_bytes().split(b"\n")[1:]:
        if line.strip():
            head, _, payload = line.partition(b": ")
            out.append(RawFrame(int(Decimal(head.decode()) * 1_000_000_000), payload))
    return out


def compact(tmp_path, table: pa.Table, seq: int = 1):
    """Land a table as the lander would and compact each of its days; {day: Staged}."""
    lake = tmp_path / "lake"
    land_batch(lake, table, seq, seq, {seq: table.num_rows})
    days = sorted({d.isoformat() for d in table.column("ts").cast(pa.date32()).to_pylist()})
    return lake, {day: cp.stage_day(lake, day) for day in days}


def dataframes(staged, day):
    con = cp.duck()
    try:
        return dc.bars_1m(con, staged.ticks_path, day), dc.daily_stats(con, staged.ticks_path, day)
    finally:
        con.close()


# ------------------------------------------------------------------------------------------- Binance: once
def test_binance_volume_and_trades_equal_the_vendors_aggregate_trades_once(tmp_path, master):
    frames = cryptofeed_frames(SPOT)
    # Expected, from the file: every aggTrade event, its quantity as Binance wrote it.
    agg = [json.loads(f.payload)["data"] for f in frames if json.loads(f.payload)["data"].get("e") == "aggTrade"]
    volume = defaultdict(Decimal)
    count = Counter()
    for a in agg:
        volume[a["s"]] += Decimal(a["q"])
        count[a["s"]] += 1
    table, rejected, _ = normalize_batch("binance", frames, 1, master)
    assert rejected == []
    _, staged = compact(tmp_path, table)
    ids = {"NKNUSDT": "CRYPTO:NKN-USDT", "LRCBTC": "CRYPTO:LRC-BTC", "BLZETH": "CRYPTO:BLZ-ETH"}
    for day, st in staged.items():
        bars, stats = dataframes(st, day)
        for sym, iid in ids.items():
            if sym not in count:
                continue
            row = stats[stats.instrument_id == iid].iloc[0]
            assert (int(row.trades), Decimal(str(row.volume))) == (count[sym], volume[sym])
            assert Decimal(str(bars[bars.instrument_id == iid].volume.sum())) == volume[sym]
            assert int(bars[bars.instrument_id == iid].trades.sum()) == count[sym]


def test_raw_trade_stream_is_ignored_so_a_fill_is_never_counted_twice(master):
    # A connection subscribed to both streams gets every fill twice: as `trade` and inside an `aggTrade`. The raw
    # trade events (real USD-M frames) are valid input, counted as ignored: no tick, no reject.
    raw_trades = [RawFrame(int(line.split(b" ", 1)[0]) * 1000, line.split(b" ", 1)[1])
                  for line in USDM_RAW_TRADES.read_bytes().splitlines() if line.strip()]
    assert {json.loads(f.payload)["data"]["e"] for f in raw_trades} == {"trade"}
    usdm = cryptofeed_frames(USDM)
    n_agg = sum(json.loads(f.payload)["data"].get("e") == "aggTrade" for f in usdm)
    table, rejected, ignored = normalize_batch("binance_futures", usdm + raw_trades, 3, master)
    assert rejected == []
    assert table.filter(pa.compute.equal(table["event"], "trade")).num_rows == n_agg
    assert "CRYPTO:BTC-USDT-PERP" not in table["instrument_id"].to_pylist()
    non_tick = sum(json.loads(f.payload)["data"].get("e") in ("depthUpdate", "kline") for f in usdm)
    assert ignored == non_tick + len(raw_trades)


# ------------------------------------------------------------------------------------------- Binance USD-M
def test_binance_usdm_capture_lands_on_perpetuals_not_on_spot(master):
    frames = read_capture("binance_futures", USDM)  # the CLI's reader, through the source's configured format
    assert frames == [f.payload for f in cryptofeed_frames(USDM)]
    stamped = cryptofeed_frames(USDM)
    table, rejected, ignored = normalize_batch("binance_futures", stamped, 7, master)
    assert rejected == []
    rows = table.to_pylist()
    events = [json.loads(f.payload)["data"] for f in stamped]
    kinds = Counter(e["e"] for e in events)
    assert Counter(r["event"] for r in rows) == {"trade": kinds["aggTrade"], "quote": kinds["bookTicker"]}
    assert ignored == kinds["depthUpdate"] + kinds["kline"]
    for r, e in zip(rows, [e for e in events if e["e"] in ("aggTrade", "bookTicker")], strict=True):
        assert r["source"] == "binance_futures" and r["exchange"] == "BINANCE_FUTURES"
        assert r["instrument_id"] == f"CRYPTO:{e['s'][:-4]}-USDT-PERP" and r["venue_symbol"] == e["s"]
        assert r["ts"] == datetime.fromtimestamp(e["T"] / 1000, UTC)  # USD-M bookTicker carries T as well
        if e["e"] == "aggTrade":
            assert (r["price"], r["size"], r["vendor_seq"]) == (float(e["p"]), float(e["q"]), e["a"])
        else:
            assert (r["bid"], r["bid_size"], r["ask"], r["ask_size"], r["vendor_seq"]) == (
                float(e["b"]), float(e["B"]), float(e["a"]), float(e["A"]), e["u"])
    assert not {r["instrument_id"] for r in rows} & {i.instrument_id for i in master.instruments()
                                                     if "binance" in i.venues}
    # The vectorised path gives the very same rows.
    done = normalize_messages("binance_futures", [(7, encode_batch(stamped))], master, min_fast_lines=1)
    assert done.fast == 1 and done.table.equals(table)


def _mark_doc() -> dict:
    return json.loads(MARK.read_text())


def test_binance_usdm_mark_price_and_funding_are_events_of_their_own(master):
    doc = _mark_doc()
    # The documented payload, sent on a raw single stream (/market/ws/btcusdt@markPrice): one line, the same JSON.
    frame = RawFrame(RECEIVED, json.dumps(doc, separators=(",", ":")).encode())
    table, rejected, ignored = normalize_batch("binance_futures", [frame], 1, master)
    assert rejected == [] and ignored == 0
    mark, funding = table.to_pylist()
    for r in (mark, funding):
        assert r["instrument_id"] == "CRYPTO:BTC-USDT-PERP" and r["venue_symbol"] == doc["s"]
        assert r["ts"] == datetime.fromtimestamp(doc["E"] / 1000, UTC)  # no transaction time: the event time
        assert r["size"] is None and r["vendor_seq"] is None
    assert (mark["event"], mark["price"]) == ("mark", float(doc["p"]))
    assert (funding["event"], funding["price"]) == ("funding", float(doc["r"]))
    # In a combined-stream burst the vectorised path takes it too, with the same rows (mark before funding).
    combined = RawFrame(RECEIVED, json.dumps({"stream": "btcusdt@markPrice@1s", "data": doc},
                                             separators=(",", ":")).encode())
    burst = cryptofeed_frames(USDM)[:40] + [combined] + cryptofeed_frames(USDM)[40:80]
    reference, rejected, _ = normalize_batch("binance_futures", burst, 9, master)
    done = normalize_messages("binance_futures", [(9, encode_batch(burst))], master, min_fast_lines=1)
    assert rejected == [] and done.fast == 1 and done.table.equals(reference)
    assert done.messages[0].ticks == reference.num_rows  # a line made two ticks: counted from the rows
    # A delivery contract has no funding: "r": "" (derived in memory from the documented payload).
    no_funding = RawFrame(RECEIVED, json.dumps(dict(doc, r="", T=0), separators=(",", ":")).encode())
    table, _, _ = normalize_batch("binance_futures", [no_funding], 2, master)
    assert table["event"].to_pylist() == ["mark"]


def test_binance_usdm_routes_one_connection_per_route(monkeypatch):
    """Since 2026-04-23 the legacy root serves only the /public streams: a connector that asked it for aggTrade
    would get none. The configured source opens /public for bookTicker and /market for aggTrade."""
    symbols = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
    events = [json.loads(f) for f in read_capture("binance", USDM)]
    wanted = [e for e in events if e["stream"].split("@")[1] in ("aggTrade", "bookTicker")]
    routes = {"public": {"bookTicker", "depth"}, "market": {"aggTrade", "markPrice", "kline"}}

    async def scenario():
        async with ReplayServer("binance", capture=USDM, routes=routes) as server:
            monkeypatch.setenv("QP_BINANCE_FUTURES_WS_URL", server.url)
            connector = build_connector("binance_futures", symbols, channels=["aggTrade", "bookTicker"], proxy=None)
            got: list[RawFrame] = []
            stop = asyncio.Event()

            async def sink(frame: RawFrame) -> None:
                got.append(frame)
                if len(got) == len(wanted):
                    stop.set()

            await asyncio.wait_for(connector.run(sink, stop), 15)
            legacy = build_connector("binance", symbols, channels=["aggTrade", "bookTicker"], url=server.url,
                                     proxy=None)
            seen: list[RawFrame] = []
            stop2 = asyncio.Event()

            async def sink2(frame: RawFrame) -> None:
                seen.append(frame)

            task = asyncio.create_task(legacy.run(sink2, stop2))
            await asyncio.sleep(0.5)
            stop2.set()
            await task
            return server, connector, got, seen

    server, connector, got, seen = asyncio.run(scenario())
    assert sorted(f.payload for f in got) == sorted(json.dumps(e, separators=(",", ":")).encode() for e in wanted)
    assert sorted(p.split("?")[0] for p in server.paths[:2]) == ["/market/stream", "/public/stream"]
    assert connector.stats()["connects"] == 2 and set(connector.stats()["routes"]) == {"public", "market"}
    assert {json.loads(f.payload)["stream"].split("@")[1] for f in seen} == {"bookTicker"}  # starved of trades


# ------------------------------------------------------------------------------------------- Massive
def test_massive_condition_rules_agree_with_the_vendors_listing():
    listing = json.loads(MASSIVE_CONDITIONS.read_text())["results"]
    checked = 0
    for c in listing:
        if c["asset_class"] != "stocks" or "trade" not in c.get("data_types", []):
            continue
        rules = c["update_rules"]["consolidated"]
        vendor = (rules["updates_high_low"], rules["updates_open_close"], rules["updates_volume"])
        assert CONDITION_RULES.get(c["id"], (True, True, True)) == vendor, c["name"]
        checked += 1
    assert checked == len(listing) == 10


def test_massive_conditions_are_kept_and_odd_lots_leave_the_ohlc_not_the_volume(tmp_path, master):
    frames = [RawFrame(RECEIVED, line) for line in POLYGON.read_bytes().splitlines() if line.strip()]
    trades = [e for f in frames for e in json.loads(f.payload) if e["ev"] == "T"]
    table, rejected, _ = normalize_batch("polygon", frames, 1, master)
    assert rejected == []
    _, staged = compact(tmp_path, table)
    [(day, st)] = staged.items()
    con = cp.duck()
    try:
        flags = con.execute(f"SELECT vendor_seq, conditions, {dc.eligibility_flags()} FROM "  # noqa: S608
                            f"read_parquet('{st.ticks_path}') WHERE event = 'trade' ORDER BY vendor_seq").fetchall()
    finally:
        con.close()
    by_seq = {e["q"]: e for e in trades}
    for seq, conditions, hl, oc, vol in flags:
        codes = by_seq[seq].get("c", [])
        assert conditions == (",".join(map(str, codes)) if codes else None)
        # The vendor's rules for the codes on the trade: 37 (odd lot) updates neither high/low nor open/close.
        assert (hl, oc, vol) == (37 not in codes, 37 not in codes, True), (seq, codes)
    bars, stats = dataframes(st, day)
    assert float(stats.volume.iloc[0]) == sum(e["s"] for e in trades)  # the odd lot is volume all the same
    assert int(bars.trades.sum()) == len(trades)


def test_massive_refused_subscription_is_a_typed_fatal_error(monkeypatch):
    monkeypatch.setenv("QP_POLYGON_API_KEY", "test-key-not-real")

    async def scenario():
        async with ReplayServer("polygon", refuse_subscription="not authorized: your plan does not include T") as srv:
            connector = build_connector("polygon", ["AAPL"], url=srv.url, proxy=None)
            with pytest.raises(SubscriptionError) as err:
                await asyncio.wait_for(connector.run(lambda f: asyncio.sleep(0), asyncio.Event()), 10)
            return connector, err.value

    connector, err = asyncio.run(scenario())
    assert err.fatal and err.persistent and "subscription refused (error: not authorized" in err.reason
    assert connector.connects == 1 and connector.reconnects == 0  # never retried


# ------------------------------------------------------------------------------------------- Alpaca
def test_alpaca_crypto_frames_without_exchange_fields_land(master):
    payloads = read_capture("alpaca_crypto", ALPACA_CRYPTO)  # wscat transcript, through the configured format
    quotes = [m for p in payloads for m in json.loads(p) if m["T"] == "q"]
    trade_doc = json.loads(ALPACA_CRYPTO_TRADE.read_text())
    assert not {"x", "bx", "ax", "c", "z"} & (set(trade_doc) | {k for q in quotes for k in q})
    frames = [RawFrame(RECEIVED, p) for p in payloads]
    frames.append(RawFrame(RECEIVED, json.dumps([trade_doc], separators=(",", ":")).encode()))  # docs example
    table, rejected, ignored = normalize_batch("alpaca_crypto", frames, 1, master)
    assert rejected == [] and ignored == 3  # connected, authenticated, subscription
    rows = table.to_pylist()
    quote = next(r for r in rows if r["event"] == "quote")
    q = quotes[0]
    assert (quote["instrument_id"], quote["exchange"], quote["bid"], quote["bid_size"], quote["ask"],
            quote["ask_size"]) == ("CRYPTO:ETH-USDT", None, q["bp"], q["bs"], q["ap"], q["as"])
    trade = next(r for r in rows if r["event"] == "trade")
    assert (trade["instrument_id"], trade["exchange"], trade["price"], trade["size"], trade["vendor_seq"]) == (
        "CRYPTO:AVAX-USD", None, trade_doc["p"], trade_doc["s"], trade_doc["i"])
    assert table["ts"][rows.index(trade)].value == 1_710_239_268_858_228_144  # 2024-03-12T10:27:48.858228144Z


def _alpaca(doc: dict) -> RawFrame:
    return RawFrame(RECEIVED, json.dumps([doc], separators=(",", ":")).encode())


def test_alpaca_cancels_and_corrections_are_applied_at_compaction(tmp_path, master):
    correction = json.loads(ALPACA_CORRECTION.read_text())
    cancel = json.loads(ALPACA_CANCEL.read_text())
    # The trades they name, built in memory from their own o* / trade fields (the docs show no original trade).
    corrected_trade = {"T": "t", "S": correction["S"], "i": correction["oi"], "x": correction["x"],
                       "p": correction["op"], "s": correction["os"], "c": correction["oc"], "z": correction["z"],
                       "t": correction["t"]}
    cancelled_trade = {"T": "t", "S": cancel["S"], "i": cancel["i"], "x": cancel["x"], "p": cancel["p"],
                       "s": cancel["s"], "c": ["@"], "z": cancel["z"], "t": cancel["t"]}
    frames = [_alpaca(corrected_trade), _alpaca(cancelled_trade), _alpaca(correction), _alpaca(cancel)]
    table, rejected, _ = normalize_batch("alpaca", frames, 1, master)
    assert rejected == [] and sorted(table["event"].to_pylist()) == ["cancel", "correction", "trade", "trade"]
    lake, staged = compact(tmp_path, table)
    [(day, st)] = staged.items()
    assert (st.trades_corrected, st.trades_cancelled) == (1, 1)
    rows = pa.parquet.read_table(st.ticks_path).to_pylist()
    trades = [r for r in rows if r["event"] == "trade"]
    [eem] = trades  # GOOGL's trade was busted: gone
    assert eem["instrument_id"] == "EQ:EEM"
    assert (eem["price"], eem["size"], eem["vendor_seq"], eem["conditions"]) == (
        correction["cp"], correction["cs"], correction["ci"], ",".join(correction["cc"]))
    assert {r["event"] for r in rows} == {"trade", "cancel", "correction"}  # the vendor's notices kept, for audit
    bars, stats = dataframes(st, day)
    assert set(bars.instrument_id) == {"EQ:EEM"} and float(bars.close.iloc[0]) == correction["cp"]
    assert "EQ:GOOGL" not in set(stats[stats.trades > 0].instrument_id)
    # Idempotent: compacted again (the published day as an input), nothing changes.
    manifest = {"published": True}
    cp.publish_staged(lake, st, manifest)
    again = cp.stage_day(lake, day)
    assert again.content_hash == st.content_hash and again.rows_out == st.rows_out


# ------------------------------------------------------------------------------------------- crossed quotes
def test_crossed_and_locked_quotes_warn_with_counts_and_samples(tmp_path, master):
    # A real Massive-format quote whose bid is above its ask (the adapters keep it as sent).
    crossed = [{"ev": "Q", "sym": "XOM", "bx": 4, "bp": 110.5, "bs": 3, "ax": 7, "ap": 110.4, "as": 2,
                "c": 0, "t": 1651684192462, "q": 77, "z": 1}]
    frames = [RawFrame(RECEIVED, json.dumps(crossed).encode())]
    frames += [RawFrame(RECEIVED, line) for line in POLYGON.read_bytes().splitlines() if line.strip()]
    table, rejected, _ = normalize_batch("polygon", frames, 1, master)
    assert rejected == [] and table.schema == TICK_SCHEMA
    _, staged = compact(tmp_path, table)
    [(day, st)] = staged.items()
    con = cp.duck()
    try:
        rules = {r.name: r for r in dc.evaluate_rules(con, st.ticks_path, day, {})}
    finally:
        con.close()
    rule = rules[dc.CROSSED_QUOTES]
    assert dc.CROSSED_QUOTES not in dc.BLOCKING and not rule.passed
    assert (rule.metadata["crossed_quotes"], rule.metadata["locked_quotes"]) == (1, 0)
    assert "EQ:XOM crossed 1" in rule.metadata["by_instrument"] and "bid 110.5 ask 110.4" in rule.metadata["sample"]
    assert all(rules[name].passed for name in dc.BLOCKING if name in rules)
