"""Vendor adapters and the instrument master on the real captures in quant_platform/sample_data/ticks, plus malformed input.

Never compare an adapter with itself: expected values are read from the capture here, independently.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from quant_platform.errors import ConfigError
from quant_platform.market.adapters import (
    ADAPTERS,
    Adapter,
    NormalizeResult,
    TickRejected,
    UnknownSourceError,
    get_adapter,
    normalize_batch,
    register_adapter,
    rfc3339_to_ns,
)
from quant_platform.market.contracts import EVENTS, TICK_ALL_COLUMNS, TICK_SCHEMA, RawFrame
from quant_platform.market.instruments import (
    PACKAGED_INSTRUMENTS_FILE,
    InstrumentMaster,
    InstrumentMasterError,
)
from quant_platform_tests.conftest import SAMPLE_DATA  # noqa: E402
from quant_platform_tests.market_helpers import mutate_value

TICKS_DIR = SAMPLE_DATA / "ticks"
BINANCE_FILE = TICKS_DIR / "binance_spot_combined_stream_2021-10-12.txt"
POLYGON_FILE = TICKS_DIR / "polygon_stocks_trades.jsonl"
ALPACA_FILE = TICKS_DIR / "alpaca_v2_sip_session.txt"
RECEIVED = 1_700_000_000_123_456_789  # the captures without receipt times get this one
TICK_KEYS = set(TICK_ALL_COLUMNS) - {"stream_seq"}


@pytest.fixture(scope="module")
def master() -> InstrumentMaster:
    return InstrumentMaster.load(PACKAGED_INSTRUMENTS_FILE)


# ------------------------------------------------------------------------------------------- capture readers
def binance_frames() -> list[RawFrame]:
    """Line 1 is '<url> <-> <ts>'; then '<receipt unix seconds>: <frame>'; the receipt time becomes exact ns."""
    lines = BINANCE_FILE.read_bytes().split(b"\n")
    assert b" <-> " in lines[0]
    out = []
    for line in lines[1:]:
        if not line.strip():
            continue
        head, sep, payload = line.partition(b": ")
        assert sep, line[:60]
        out.append(RawFrame(int(Decimal(head.decode()) * 1_000_000_000), payload))
    return out


def polygon_frames() -> list[RawFrame]:
    return [RawFrame(RECEIVED, line) for line in POLYGON_FILE.read_bytes().splitlines() if line.strip()]


def alpaca_frames() -> list[RawFrame]:
    """wscat transcript: '< ' lines are server frames; '> ' lines are ours; the rest is wscat's chatter."""
    return [RawFrame(RECEIVED, line[2:]) for line in ALPACA_FILE.read_bytes().splitlines() if line.startswith(b"< ")]


CAPTURES = {"binance": binance_frames, "polygon": polygon_frames, "alpaca": alpaca_frames}


def expected_ns(rfc3339: str) -> int:
    """Independent of the adapter's parser: whole seconds via datetime, the fraction as digits."""
    assert rfc3339.endswith("Z")
    whole, _, frac = rfc3339[:-1].partition(".")
    secs = int(datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp())
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def run(source: str, frames: list[RawFrame], master: InstrumentMaster):
    """(ticks, ignored, rejects): a reject is (frame, reason) for a whole frame, (frame, event, reason) for one
    event of a multi-event frame."""
    adapter = get_adapter(source)
    ticks, ignored, rejected = [], 0, []
    for f in frames:
        try:
            res = adapter.normalize(f, master)
        except TickRejected as exc:
            rejected.append((f, exc.reason))
            continue
        ticks.extend(res.ticks)
        ignored += res.ignored
        rejected += [(f, e, reason) for e, reason in res.rejects]
    return ticks, ignored, rejected


def assert_canonical(tick: dict) -> None:
    assert set(tick) == TICK_KEYS
    assert tick["event"] in EVENTS
    assert type(tick["ts"]) is int and type(tick["received_at"]) is int
    for col in ("price", "size", "bid", "bid_size", "ask", "ask_size"):
        assert tick[col] is None or (type(tick[col]) is float and math.isfinite(tick[col]))


# ------------------------------------------------------------------------------------------- Binance
def test_binance_capture_counts(master):
    frames = binance_frames()
    kinds = Counter()
    for f in frames:
        data = json.loads(f.payload)["data"]
        kinds[data.get("e") or json.loads(f.payload)["stream"].split("@")[1]] += 1
    assert kinds == {"depthUpdate": 177, "bookTicker": 84, "aggTrade": 2, "kline": 2}

    ticks, ignored, rejected = run("binance", frames, master)
    assert rejected == []
    events = Counter(t["event"] for t in ticks)
    assert events == {"quote": kinds["bookTicker"], "trade": kinds["aggTrade"]}
    assert ignored == kinds["depthUpdate"] + kinds["kline"] == 179
    for t in ticks:
        assert_canonical(t)
        assert t["source"] == "binance" and t["exchange"] == "BINANCE"
    symbol_map = {"NKNUSDT": "CRYPTO:NKN-USDT", "LRCBTC": "CRYPTO:LRC-BTC", "BLZETH": "CRYPTO:BLZ-ETH"}
    assert {(t["venue_symbol"], t["instrument_id"]) for t in ticks} == set(symbol_map.items())


def test_binance_first_aggtrade(master):
    frames = binance_frames()
    frame = next(f for f in frames if b'"e":"aggTrade"' in f.payload)
    data = json.loads(frame.payload)["data"]
    [tick] = get_adapter("binance").normalize(frame, master).ticks
    assert tick == {
        "ts": data["T"] * 1_000_000, "received_at": frame.received_at_ns, "source": "binance",
        "instrument_id": "CRYPTO:NKN-USDT", "venue_symbol": data["s"], "exchange": "BINANCE", "event": "trade",
        "price": float(data["p"]), "size": float(data["q"]), "bid": None, "bid_size": None, "ask": None,
        "ask_size": None, "vendor_seq": data["a"], "event_id": tick["event_id"], "conditions": None,
        "size_unit": None, "ref_seq": None}
    assert tick["ts"] == 1_633_998_523_963_000_000  # 2021-10-12T00:28:43.963Z
    assert tick["received_at"] == 1_633_998_523_957_215_000  # receipt '1633998523.957215', exact
    assert (tick["price"], tick["size"]) == (0.3528, 58.0)


def test_binance_spot_bookticker_has_no_event_time_so_ts_is_receipt_time(master):
    # The quirk, shown on the capture: spot bookTicker carries no e/E/T, so ts falls back to received_at.
    frames = binance_frames()
    frame = next(f for f in frames if b"@bookTicker" in f.payload)
    data = json.loads(frame.payload)["data"]
    assert not {"e", "E", "T"} & set(data)
    [tick] = get_adapter("binance").normalize(frame, master).ticks
    assert tick["event"] == "quote" and tick["instrument_id"] == "CRYPTO:NKN-USDT"
    assert tick["ts"] == tick["received_at"] == int(Decimal("1633998513.377805") * 10**9)
    assert (tick["bid"], tick["bid_size"], tick["ask"], tick["ask_size"]) == (
        float(data["b"]), float(data["B"]), float(data["a"]), float(data["A"]))
    assert tick["vendor_seq"] == data["u"] == 499869768
    assert tick["price"] is None and tick["size"] is None


def test_binance_subscription_reply_is_ignored(master):
    reply = get_adapter("binance").normalize(RawFrame(RECEIVED, b'{"result":null,"id":1}'), master)
    assert reply == NormalizeResult([], 1)


# ------------------------------------------------------------------------------------------- Polygon
def test_polygon_every_trade(master):
    frames = polygon_frames()
    raw = [e for f in frames for e in json.loads(f.payload)]
    raw_trades = [e for e in raw if e["ev"] == "T"]
    assert len(raw_trades) == 3 and any("c" not in e for e in raw_trades)  # conditions may be missing

    ticks, ignored, rejected = run("polygon", frames, master)
    assert rejected == [] and ignored == 2 == sum(e["ev"] == "status" for e in raw)
    assert len(ticks) == len(raw_trades)
    for tick, e in zip(ticks, raw_trades, strict=True):
        assert_canonical(tick)
        assert tick["event"] == "trade" and tick["instrument_id"] == "EQ:AAPL" and tick["venue_symbol"] == e["sym"]
        assert tick["ts"] == e["t"] * 1_000_000
        assert (tick["price"], tick["size"], tick["vendor_seq"]) == (e["p"], e["s"], e["q"])
        assert tick["exchange"] == str(e["x"])
        # Conditions kept as sent (Massive's integer ids, comma-joined), or null when the vendor sent none.
        assert tick["conditions"] == (",".join(str(c) for c in e["c"]) if "c" in e else None)
        assert tick["size_unit"] == "shares"
    assert ticks[0]["ts"] == 1_651_684_192_462_000_000 and ticks[0]["exchange"] == "10"


def test_polygon_quote(master):
    q = [{"ev": "Q", "sym": "XOM", "bx": 4, "bp": 110.5, "bs": 3, "ax": 7, "ap": 110.4, "as": 2,
          "c": 0, "t": 1651684192462, "q": 77, "z": 1}]  # crossed (bid > ask): recorded, not rejected
    [t] = get_adapter("polygon").normalize(RawFrame(RECEIVED, json.dumps(q).encode()), master).ticks
    assert (t["event"], t["instrument_id"], t["bid"], t["ask"], t["exchange"], t["vendor_seq"]) == (
        "quote", "EQ:XOM", 110.5, 110.4, "4/7", 77)
    assert t["size_unit"] == "round_lots"  # a 2022 quote: before the vendor's 2025-11-03 switch to shares


# ------------------------------------------------------------------------------------------- Alpaca
def test_alpaca_every_trade_and_quote(master):
    frames = alpaca_frames()
    raw = [m for f in frames for m in json.loads(f.payload)]
    raw_ticks = [m for m in raw if m["T"] in ("t", "q")]
    ticks, ignored, rejected = run("alpaca", frames, master)
    assert rejected == []
    assert ignored == 3 == sum(m["T"] in ("success", "subscription") for m in raw)
    assert Counter(t["event"] for t in ticks) == {"trade": 3, "quote": 2}
    instruments = {"AAPL": "EQ:AAPL", "AMD": "EQ:AMD"}
    for tick, m in zip(ticks, raw_ticks, strict=True):
        assert_canonical(tick)
        assert tick["instrument_id"] == instruments[m["S"]] and tick["venue_symbol"] == m["S"]
        assert tick["ts"] == expected_ns(m["t"])
        if m["T"] == "t":
            assert (tick["event"], tick["price"], tick["size"], tick["exchange"], tick["vendor_seq"]) == (
                "trade", m["p"], m["s"], m["x"], m["i"])
            assert tick["conditions"] == ",".join(m["c"])
        else:
            assert (tick["event"], tick["bid"], tick["bid_size"], tick["ask"], tick["ask_size"]) == (
                "quote", m["bp"], m["bs"], m["ap"], m["as"])
            assert tick["exchange"] == f"{m['bx']}/{m['ax']}" and tick["vendor_seq"] is None
    assert ticks[0]["ts"] == 1_680_782_061_670_905_508  # 2023-04-06T11:54:21.670905508Z, exact
    # Quirk: the fraction has 8 digits here ('.83915973Z'): 839159730 ns, not 083915973.
    assert ticks[3]["ts"] == 1_680_782_066_839_159_730


@pytest.mark.parametrize(("text", "ns"), [
    ("2023-04-06T11:54:21.670905508Z", 1_680_782_061_670_905_508),
    ("2023-04-06T11:54:21Z", 1_680_782_061_000_000_000),
    ("2023-04-06T11:54:21.5Z", 1_680_782_061_500_000_000),
    ("2023-04-06T11:54:21.000000001Z", 1_680_782_061_000_000_001),
    ("2023-04-06T13:54:21.670905508+02:00", 1_680_782_061_670_905_508),
    ("2023-04-06T07:54:21.670905508-04:00", 1_680_782_061_670_905_508),
    ("2024-02-29T00:00:00Z", 1_709_164_800_000_000_000),
    ("1970-01-01T00:00:00Z", 0),
])
def test_rfc3339_exact_nanoseconds(text, ns):
    assert rfc3339_to_ns(text) == ns


@pytest.mark.parametrize("text", [
    "2023-04-06T11:54:21.6709055081Z", "2023-04-06T11:54:21.Z", "2023-04-06T11:54:21", "2023-02-30T00:00:00Z",
    "2023-04-06T24:00:00Z", "2023-04-06T11:60:00Z", "2016-12-31T23:59:60Z", "2023-4-06T11:54:21Z",
    "2023-04-06 11:54:21Z", "2023-04-06T11:54:21+0200", " 2023-04-06T11:54:21Z", "",
    "2023-04-06T11:54:21.١٢Z",
])
def test_rfc3339_rejects_malformed(text):
    with pytest.raises(ValueError):
        rfc3339_to_ns(text)


def test_rfc3339_agrees_with_datetime_at_microseconds():
    rng = random.Random(7)
    for _ in range(2000):
        us = rng.randrange(0, 4_000_000_000 * 10**6)
        dt = datetime.fromtimestamp(us / 10**6, UTC).replace(microsecond=us % 10**6)
        text = dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
        assert rfc3339_to_ns(text) == us * 1000


# ------------------------------------------------------------------------------------------- simulator
def test_simulator_trade_quote_and_heartbeat(master):
    sim = get_adapter("simulator")
    t_ns = 1_767_225_600_123_456_789
    trade = {"sym": "CL", "ev": "T", "t": t_ns, "seq": 1, "p": 71.25, "s": 3}
    quote = {"sym": "NG", "ev": "Q", "t": t_ns + 1, "seq": 2, "bp": 3.101, "bs": 5, "ap": 3.103, "as": 4}
    [t] = sim.normalize(RawFrame(RECEIVED, json.dumps(trade).encode()), master).ticks
    [q] = sim.normalize(RawFrame(RECEIVED, json.dumps(quote).encode()), master).ticks
    assert (t["instrument_id"], t["ts"], t["price"], t["size"], t["vendor_seq"], t["exchange"]) == (
        "FUT:CL", t_ns, 71.25, 3.0, 1, None)
    assert (q["instrument_id"], q["bid"], q["ask"], q["bid_size"], q["ask_size"]) == ("FUT:NG", 3.101, 3.103, 5.0, 4.0)
    assert sim.normalize(RawFrame(RECEIVED, b'{"ev":"heartbeat","t":1}'), master) == NormalizeResult([], 1)
    # Milliseconds where nanoseconds belong land in 1970: a unit mistake, rejected.
    with pytest.raises(TickRejected, match="out of range"):
        sim.normalize(RawFrame(RECEIVED, json.dumps(dict(trade, t=1_767_225_600_123)).encode()), master)


# ------------------------------------------------------------------------------------------- event ids
@pytest.mark.parametrize("source", sorted(CAPTURES))
def test_event_ids_deterministic_and_unique(source, master):
    frames = CAPTURES[source]()
    first = [t["event_id"] for t in run(source, frames, master)[0]]
    again = [t["event_id"] for t in run(source, list(frames), master)[0]]
    assert first == again and first
    assert len(set(first)) == len(first)
    # The id depends on vendor fields only, never on when our connector received the frame.
    later = [RawFrame(f.received_at_ns + 5_000_000_000, f.payload) for f in frames]
    assert [t["event_id"] for t in run(source, later, master)[0]] == first


# ------------------------------------------------------------------------------------------- bad input
def outcome(adapter: Adapter, payload: bytes, master: InstrumentMaster) -> str:
    """'ticks', 'ignored' or 'rejected: <reason>'; any other exception fails the test."""
    try:
        res = adapter.normalize(RawFrame(RECEIVED, payload), master)
    except TickRejected as exc:
        assert exc.reason
        return f"rejected: {exc.reason}"
    assert isinstance(res, NormalizeResult)
    for t in res.ticks:
        assert_canonical(t)
    if res.rejects and not res.ticks:  # every event of a multi-event frame rejected, each with its reason
        assert all(reason for _, reason in res.rejects)
        return f"rejected: {res.rejects[0][1]}"
    return "ticks" if res.ticks else "ignored"


@pytest.mark.parametrize("source", sorted(CAPTURES))
def test_truncated_frames_never_escape_as_other_errors(source, master):
    adapter = get_adapter(source)
    frames = CAPTURES[source]()
    prefixes = [f.payload[:cut] for f in frames for cut in range(0, len(f.payload), 7)]
    # Each frame is one JSON document with nothing after it, so every strict prefix is malformed JSON.
    for p in prefixes:
        with pytest.raises(ValueError):
            json.loads(p)
    results = [outcome(adapter, p, master) for p in prefixes]
    wrong = [(p[:40], r) for p, r in zip(prefixes, results, strict=True) if not r.startswith("rejected: bad JSON (")]
    assert wrong == [], f"{len(wrong)} of {len(prefixes)} truncated frames not rejected as bad JSON"


@pytest.mark.parametrize("source", sorted(ADAPTERS))
def test_random_bytes_and_wrong_types(source, master):
    adapter = get_adapter(source)
    rng = random.Random(source)
    for _ in range(300):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        outcome(adapter, payload, master)
    junk = [None, True, 1, -1, 0, 1.5, "x", "", "NaN", [], {}, [1], {"a": 1}, 10**30, "1e400", "1_000"]
    for payload in (b"[]", b"{}", b"null", b"1", b'"x"', b"[[]]", b"[null]", b"[" * 5000 + b"]" * 5000,
                    b"\xff\xfe", b"NaN", b"[{}]", b'{"stream": 1}', b'{"stream":"x@aggTrade","data":[]}'):
        outcome(adapter, payload, master)
    # every field of every real tick event replaced by every junk value, or removed
    for f in CAPTURES.get(source, lambda: [])():
        msg = json.loads(f.payload)
        if source == "binance":
            if b"depthUpdate" in f.payload or b"kline" in f.payload:
                continue
            events, wrap = msg["data"], (lambda d, m=msg: dict(m, data=d))
        else:
            events, wrap = msg[0], (lambda d: [d])
        for key in list(events):
            outcome(adapter, json.dumps(wrap({k: v for k, v in events.items() if k != key})).encode(), master)
            for value in junk:
                outcome(adapter, json.dumps(wrap(dict(events, **{key: value}))).encode(), master)


def test_rejection_reasons_name_the_field(master):
    frame = next(f for f in binance_frames() if b"aggTrade" in f.payload)
    msg = json.loads(frame.payload)
    binance = get_adapter("binance")
    assert outcome(binance, json.dumps(dict(msg, data=dict(msg["data"], a=-1))).encode(), master) == (
        "rejected: field 'a': integer out of range 0..2^63-1: -1")
    assert outcome(binance, json.dumps(dict(msg, data=dict(msg["data"], T=1633998523))).encode(), master) == (
        "rejected: field 'T': timestamp out of range 1990..2100: 1633998523000000 ns")  # seconds sent as ms
    del msg["data"]["p"]
    assert outcome(binance, json.dumps(msg).encode(), master) == "rejected: missing field 'p'"


UNKNOWN_AND_BAD = {
    "binance": ('{"stream":"x@aggTrade","data":{"e":"aggTrade","s":"%s","a":1,"p":%s,"q":"1","T":1633998523963}}',
                "FOOBAR"),
    "polygon": ('[{"ev":"T","sym":"%s","i":"1","x":4,"p":%s,"s":1,"t":1651684192462,"q":1}]', "FOOBAR"),
    "alpaca": ('[{"T":"t","S":"%s","i":1,"x":"K","p":%s,"s":1,"t":"2023-04-06T11:54:26.838232225Z"}]', "FOOBAR"),
    "simulator": ('{"sym":"%s","ev":"T","t":1767225600000000000,"seq":1,"p":%s,"s":1}', "FOOBAR"),
}
KNOWN = {"binance": "NKNUSDT", "polygon": "AAPL", "alpaca": "AAPL", "simulator": "CL"}


@pytest.mark.parametrize("source", sorted(UNKNOWN_AND_BAD))
def test_unknown_symbol_nan_inf_and_non_positive_prices(source, master):
    template, unknown = UNKNOWN_AND_BAD[source]
    adapter = get_adapter(source)
    known = KNOWN[source]
    assert outcome(adapter, (template % (known, '"1.5"' if source == "binance" else "1.5")).encode(), master) == "ticks"
    assert outcome(adapter, (template % (known.lower(), "2")).encode(), master) == "ticks"  # case-insensitive
    assert outcome(adapter, (template % (unknown, "1.5")).encode(), master) == f"rejected: unknown symbol {source}:{unknown}"
    for bad in ("NaN", "Infinity", "-Infinity", '"NaN"', '"inf"', "0", "-1.5", '"-0.1"', '"abc"', "null", "true"):
        result = outcome(adapter, (template % (known, bad)).encode(), master)
        assert result.startswith("rejected: field 'p'"), (bad, result)


def test_empty_arrays_are_ignored_not_ticks(master):
    assert outcome(get_adapter("polygon"), b"[]", master) == "ignored"
    assert outcome(get_adapter("alpaca"), b"[]", master) == "ignored"
    assert outcome(get_adapter("binance"), b"[]", master).startswith("rejected: frame is not a JSON object")


# ------------------------------------------------------------------------------------------- normalize_batch
def test_normalize_batch_schema_seq_rejects_and_ignored(master):
    frames = binance_frames()
    bad = [RawFrame(RECEIVED, b'{"stream":"x@aggTrade","data":{"e":"aggTrade","s":"NOPE"}}'),
           RawFrame(RECEIVED, frames[-1].payload[:50]), RawFrame(RECEIVED, b"\x00\xff garbage")]
    table, rejected, ignored = normalize_batch("binance", frames + bad, 4242, master)
    assert table.schema.equals(TICK_SCHEMA, check_metadata=True)
    assert table.num_rows == 86 and ignored == 179
    assert table["stream_seq"].to_pylist() == [4242] * 86
    assert [r.frame for r in rejected] == bad
    assert [(r.frame_index, r.event) for r in rejected] == [(len(frames) + k, None) for k in range(3)]
    assert rejected[0].reason == "unknown symbol binance:NOPE"
    assert all(r.reason.startswith("bad JSON") for r in rejected[1:])
    first_trade = next(r for r in table.to_pylist() if r["event"] == "trade")
    assert first_trade["ts"] == datetime(2021, 10, 12, 0, 28, 43, 963000, tzinfo=UTC)
    assert table.column("ts").type == pa.timestamp("ns", tz="UTC")


@pytest.mark.parametrize("source", sorted(CAPTURES))
def test_normalize_batch_on_each_capture(source, master):
    table, rejected, ignored = normalize_batch(source, CAPTURES[source](), 1, master)
    assert table.schema == TICK_SCHEMA and rejected == []
    assert (table.num_rows, ignored) == {"binance": (86, 179), "polygon": (3, 2), "alpaca": (5, 3)}[source]
    assert table.column("event_id").null_count == 0 and table.column("instrument_id").null_count == 0


def test_normalize_batch_never_raises(master):
    rng = random.Random(11)
    frames = [RawFrame(RECEIVED, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))) for _ in range(50)]
    for f in frames:  # none of these happens to be JSON, so each is rejected as such, by every adapter
        with pytest.raises(ValueError):
            json.loads(f.payload)
    for source in ("binance", "polygon", "alpaca", "simulator"):
        table, rejected, ignored = normalize_batch(source, frames, 9, master)
        assert table.schema == TICK_SCHEMA and (table.num_rows, ignored) == (0, 0)
        assert [r.frame for r in rejected] == frames
        assert all(r.reason.startswith("bad JSON (") for r in rejected), (source, rejected[:3])
    table, rejected, ignored = normalize_batch("no_such_source", frames[:3], 9, master)
    assert table.num_rows == 0 and ignored == 0
    assert [r.frame for r in rejected] == frames[:3] and "no adapter for source 'no_such_source'" in rejected[0].reason
    empty, rejected, ignored = normalize_batch("polygon", [], 9, master)
    assert empty.schema == TICK_SCHEMA and empty.num_rows == 0 and rejected == [] and ignored == 0


def test_normalize_batch_survives_adapter_bugs(master):
    class Broken(Adapter):
        source = "test_broken"

        def normalize(self, frame, master):
            if frame.payload == b"boom":
                raise RuntimeError("bug")
            if frame.payload == b"badrow":  # a tick Arrow refuses (ts is not an int)
                return NormalizeResult([dict(good, ts="not a time")], 0)
            return NormalizeResult([good], 0)

    good = get_adapter("polygon").normalize(polygon_frames()[2], master).ticks[0]
    register_adapter(Broken())
    try:
        frames = [RawFrame(RECEIVED, p) for p in (b"ok", b"boom", b"badrow", b"ok")]
        table, rejected, ignored = normalize_batch("test_broken", frames, 3, master)
    finally:
        ADAPTERS.pop("test_broken")
    assert table.num_rows == 2 and table.schema == TICK_SCHEMA
    assert [(r.frame.payload, r.reason.split(" ")[0]) for r in rejected] == [(b"boom", "adapter"), (b"badrow", "cannot")]


def test_adapter_registry():
    assert {"binance", "polygon", "alpaca", "simulator"} <= set(ADAPTERS)
    assert get_adapter("binance").source == "binance"
    with pytest.raises(UnknownSourceError) as err:
        get_adapter("nasdaq_itch")
    assert isinstance(err.value, ConfigError) and "nasdaq_itch" in str(err.value)


# ------------------------------------------------------------------------------------------- instrument master
REQUIRED_IDS = {
    "CRYPTO:BTC-USDT", "CRYPTO:ETH-USDT", "CRYPTO:NKN-USDT", "CRYPTO:BLZ-ETH", "CRYPTO:LRC-BTC", "CRYPTO:RUNE-EUR",
    "CRYPTO:BTC-USD", "CRYPTO:ETH-USD", "CRYPTO:AVAX-USD", "CRYPTO:BAT-USD", "CRYPTO:BTC-USDT-PERP",
    "CRYPTO:SUSHI-USDT-PERP", "CRYPTO:AKRO-USDT-PERP", "CRYPTO:KEEP-USDT-PERP", "CRYPTO:CTK-USDT-PERP",
    "EQ:AAPL", "EQ:AMD", "EQ:CLDR", "EQ:XOM", "EQ:CVX", "EQ:AMZN", "EQ:MSFT", "EQ:EEM", "EQ:GOOGL",
    "FUT:CL", "FUT:BZ", "FUT:NG", "FUT:HO", "FUT:RB"}


def test_packaged_master(master, monkeypatch):
    assert {i.instrument_id for i in master.instruments()} == REQUIRED_IDS
    assert master.resolve("binance", "RUNEEUR") == "CRYPTO:RUNE-EUR"
    assert master.resolve("binance", "runeeur") == "CRYPTO:RUNE-EUR"
    assert master.resolve("alpaca", "CLDR") == master.resolve("polygon", "cldr") == "EQ:CLDR"
    assert master.resolve("simulator", "HO") == "FUT:HO"
    assert master.resolve("binance", "AAPL") is None and master.resolve("nowhere", "AAPL") is None
    assert master.symbols_for("polygon") == ["AAPL", "AMD", "CLDR", "XOM", "CVX", "AMZN", "MSFT", "EEM", "GOOGL"]
    # A perpetual is an instrument of its own: BTCUSDT on the USD-M source is never the spot pair.
    assert (master.resolve("binance_futures", "BTCUSDT"), master.resolve("binance", "BTCUSDT")) == (
        "CRYPTO:BTC-USDT-PERP", "CRYPTO:BTC-USDT")
    assert master.format_for("binance_futures") == "binance" and master.format_for("alpaca_crypto") == "alpaca"
    assert set(master.symbols_for("simulator")) == {"CL", "BZ", "NG", "HO", "RB"}
    assert master.symbols_for("nowhere") == []
    monkeypatch.delenv("QP_INSTRUMENTS_FILE", raising=False)
    assert {i.instrument_id for i in InstrumentMaster.load().instruments()} == REQUIRED_IDS


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "instruments.yaml"
    p.write_text(text)
    return p


ONE = "  - {instrument_id: EQ:AAPL, asset_class: equity, venues: {polygon: [AAPL]}}\n"


@pytest.mark.parametrize(("text", "message"), [
    ("instruments:\n" + ONE + ONE, "duplicate instrument_id 'EQ:AAPL'"),
    ("instruments:\n" + ONE + "  - {instrument_id: EQ:APPLE, asset_class: equity, venues: {polygon: [aapl]}}\n",
     "venue symbol polygon:aapl is mapped to both EQ:AAPL and EQ:APPLE"),
    ("instruments: [\n", "is not valid YAML"),
    ("- just a list\n", "must be a mapping with key 'instruments'"),
    ("instruments: []\n", "non-empty list"),
    ("instruments:\n  - {instrument_id: EQ:X, venues: {polygon: [X]}}\n", "missing key(s) ['asset_class']"),
    ("instruments:\n  - {instrument_id: EQ:X, asset_class: e, venue: {polygon: [X]}}\n", "unknown key(s) ['venue']"),
    ("instruments:\n  - {instrument_id: EQ:NO, asset_class: e, venues: {polygon: [NO]}}\n", "quote symbols"),
    ("instruments:\n  - {instrument_id: EQ:X, asset_class: e, venues: {polygon: X}}\n", "non-empty list"),
    ("instruments:\n  - {instrument_id: EQ:X, asset_class: e, tick_size: -1, venues: {polygon: [X]}}\n",
     "tick_size must be a positive number"),
    ("instruments:\n  - {instrument_id: EQ:X, asset_class: e, venues: {Polygon.io: [X]}}\n", "lower-case"),
    ("instruments:\n" + ONE + "sources: {binance_us: binance}\n", "sources.binance_us"),
])
def test_master_errors(tmp_path, text, message):
    with pytest.raises(InstrumentMasterError) as err:
        InstrumentMaster.load(write(tmp_path, text))
    assert message in str(err.value) and str(tmp_path) in str(err.value)
    assert isinstance(err.value, ConfigError)


def test_master_missing_file_and_env(tmp_path, monkeypatch):
    with pytest.raises(InstrumentMasterError, match="cannot be read"):
        InstrumentMaster.load(tmp_path / "nope.yaml")
    monkeypatch.setenv("QP_INSTRUMENTS_FILE", str(write(tmp_path, "instruments:\n" + ONE)))
    assert [i.instrument_id for i in InstrumentMaster.load().instruments()] == ["EQ:AAPL"]


def test_onboarding_a_source_in_a_known_format_is_config_only(tmp_path, master):
    text = ("sources: {binance_us: {format: binance}}\ninstruments:\n"
            "  - {instrument_id: CRYPTO:NKN-USDT, asset_class: crypto, venues: {binance_us: [NKNUSDT]}}\n")
    cfg = InstrumentMaster.load(write(tmp_path, text))
    frames = [f for f in binance_frames() if b"aggTrade" in f.payload]
    try:
        table, rejected, _ = normalize_batch("binance_us", frames, 5, cfg)
    finally:
        ADAPTERS.pop("binance_us", None)
    assert set(table["exchange"].to_pylist()) == {"BINANCE_US"} and table["source"].to_pylist() == ["binance_us"]
    assert [r.reason for r in rejected] == ["unknown symbol binance_us:LRCBTC"]


# ------------------------------------------------------------------------------------------- throughput
def test_throughput_print_only(master):
    """Informational: frames/s through BinanceAdapter.normalize on the capture. No timing assertion; the
    repeated capture must still give, each time, a tick per bookTicker and aggTrade frame and ignore the rest."""
    capture = binance_frames()
    ticking = sum(1 for f in capture if json.loads(f.payload)["stream"].split("@")[1] in ("bookTicker", "aggTrade"))
    frames = capture * 40
    adapter = get_adapter("binance")
    ticks = ignored = 0
    start = time.perf_counter()
    for f in frames:
        res = adapter.normalize(f, master)
        ticks += len(res.ticks)
        ignored += res.ignored
    per_s = len(frames) / (time.perf_counter() - start)
    assert (ticks, ignored) == (40 * ticking, 40 * (len(capture) - ticking))
    print(f"\nbinance normalize: {per_s:,.0f} frames/s over {len(frames)} frames")


# ------------------------------------------------------------------------------------------- vectorised paths
# Massive and Alpaca frames (JSON arrays) on the vectorised path must give the very rows, rejects, ignored counts
# and tick counts the per-frame path gives; a frame it cannot take plainly sends the message down the per-frame path.
def _per_frame(source: str, seq: int, data: bytes, master):
    from quant_platform.market.contracts import decode_batch

    frames = [f for f in decode_batch(data) if not isinstance(f, tuple)]
    table, rejected, ignored = normalize_batch(source, frames, seq, master)
    return table, [(r.frame.payload, r.reason, r.event) for r in rejected], ignored


def _assert_fast_equals_per_frame(source: str, messages, master, what=None):
    from quant_platform.market.adapters import normalize_messages

    done = normalize_messages(source, messages, master, min_fast_lines=1)
    tables = []
    for got, (seq, data) in zip(done.messages, messages, strict=True):
        table, rejected, ignored = _per_frame(source, seq, data, master)
        assert [(r.frame.payload, r.reason, r.event) for r in got.rejected] == rejected, what
        assert got.ignored == ignored and got.ticks == table.num_rows, what
        tables.append(table)
    assert done.table.equals(pa.concat_tables(tables)), what
    return done


def _messages(frames: list[bytes], per_msg: int, seq0: int = 10) -> list[tuple[int, bytes]]:
    from quant_platform.market.contracts import encode_batch

    return [(seq0 + k, encode_batch([RawFrame(RECEIVED + k * per_msg + i, f)
                                     for i, f in enumerate(frames[k * per_msg:(k + 1) * per_msg])]))
            for k in range((len(frames) + per_msg - 1) // per_msg)]


def _polygon_events() -> list[dict]:
    trades = [e for f in polygon_frames() for e in json.loads(f.payload) if e.get("ev") == "T"]
    assert len(trades) == 3
    t_2025 = 1_762_200_000_000  # a quote after the vendor's switch to shares (2025-11-03)
    quotes = [{"ev": "Q", "sym": "XOM", "bx": 4, "bp": 110.5, "bs": 3, "ax": 7, "ap": 110.4, "as": 2, "c": 0,
               "t": 1651684192462, "q": 77, "z": 1},
              {"ev": "Q", "sym": "AAPL", "bx": 12, "bp": 170.25, "bs": 100, "ax": 12, "ap": 170.3, "as": 0,
               "t": t_2025, "q": 78}]
    return trades + [{**trades[0], "c": []}, {k: v for k, v in trades[1].items() if k != "c"}] + quotes


def test_polygon_fast_path_equals_the_per_frame_path(master):
    events = _polygon_events()
    kinds = [[e for e in events if e["ev"] == k] for k in ("T", "Q")]
    rng = random.Random(5)
    frames = [json.dumps(rng.sample(kinds[n % 3 == 2], rng.randint(1, 2)), separators=(",", ":")).encode()
              for n in range(60)]
    done = _assert_fast_equals_per_frame("polygon", _messages(frames, 20), master)
    assert done.fast == 3 and done.table.num_rows > 60
    rows = done.table.to_pylist()
    assert {r["size_unit"] for r in rows if r["event"] == "quote"} == {"round_lots", "shares"}
    assert {r["exchange"] for r in rows if r["event"] == "quote"} == {"4/7", "12"}
    conditions = {r["conditions"] for r in rows if r["event"] == "trade"}
    assert None in conditions and len(conditions) >= 2, conditions
    # A frame of trades and quotes (their "c" differ in type) goes frame by frame, with the same result.
    mixed = _messages([json.dumps(events).encode()] * 4, 4, seq0=90)
    assert _assert_fast_equals_per_frame("polygon", mixed, master).fast == 0


def _polygon_mutation(rng: random.Random, events: list[dict]) -> tuple[str, list]:
    e = events[rng.randrange(len(events))]
    key = rng.choice(sorted(e))
    kind = rng.randrange(8)
    if mutate_value(rng, e, key, kind, [1.5, 7, -1, 0, True, "", "1.5", 2**64, [1], {}, [1, "@"], [], 10**17]):
        pass
    elif kind == 3:
        e["ev"] = rng.choice(["A", "AM", "status", 5, None, "T", "Q"])
    elif kind == 4:
        e["sym"] = rng.choice(["UNKNOWN", "", 3, "AAPL"])
    elif kind == 5:
        events.append({"ev": "status", "status": "connected", "message": "Connected Successfully"})
    elif kind == 6:
        return "empty", []
    else:
        e["t"] = rng.choice([1651684192462.0, -5, 10**17, "1651684192462", 1651684192])
    return f"{kind}:{key}", events


@pytest.mark.parametrize("seed", range(3))
def test_fuzzed_polygon_messages_give_exactly_the_per_frame_result(master, seed):
    import copy

    rng = random.Random(seed)
    kinds = [[e for e in _polygon_events() if e["ev"] == k] for k in ("T", "Q")]
    paths = {"fast": 0, "per_frame": 0}
    for round_ in range(50):
        frames, what = [], []
        for _ in range(8):
            pool = kinds[rng.random() < 0.3]
            events = copy.deepcopy(rng.sample(pool, rng.randint(1, len(pool))))
            if rng.random() < 0.07:
                name, events = _polygon_mutation(rng, events)
                what.append(name)
            frames.append(json.dumps(events).encode())
        messages = _messages(frames, 8, seq0=1000 + round_)
        done = _assert_fast_equals_per_frame("polygon", messages, master, what)
        paths["fast" if done.fast else "per_frame"] += 1
    assert paths["fast"] >= 5 and paths["per_frame"] >= 10, paths


def _alpaca_events(source: str) -> list[dict]:
    from quant_platform.platform.sample_data import sample_file

    stock = [m for f in alpaca_frames() for m in json.loads(f.payload) if isinstance(m, dict) and m.get("T") in "tq"]
    crypto = [m for line in sample_file("ticks/alpaca_v1beta3_crypto_us_session.txt").read_text().splitlines()
              if line.startswith("< [") for m in json.loads(line[2:]) if m.get("T") in ("t", "q")]
    crypto.append(json.loads(sample_file("ticks/alpaca_docs_crypto_trade_AVAX.json").read_text()))
    assert {m["T"] for m in stock} == {"t", "q"} and {m["T"] for m in crypto} == {"t", "q"}
    if source == "alpaca_crypto":
        return crypto + [{**crypto[0], "t": "2023-03-18T13:51:33Z"}]
    # The fraction's length varies (8 digits in the capture), and a time may have none.
    return stock + [{**stock[0], "t": "2023-04-06T11:54:27Z"}, {k: v for k, v in stock[-1].items() if k != "c"}]


@pytest.mark.parametrize("source", ["alpaca", "alpaca_crypto"])
def test_alpaca_fast_path_equals_the_per_frame_path(master, source):
    get_adapter(source, master)
    events = _alpaca_events(source)
    rng = random.Random(9)
    frames = [json.dumps(rng.sample(events, rng.randint(1, min(4, len(events)))), separators=(",", ":")).encode()
              for _ in range(60)]
    done = _assert_fast_equals_per_frame(source, _messages(frames, 20), master)
    assert done.fast == 3 and done.table.num_rows > 60
    rows = done.table.to_pylist()
    assert {r["event"] for r in rows} == {"trade", "quote"}
    if source == "alpaca":
        assert {"K", "K/Q"} <= {r["exchange"] for r in rows}
        assert any(r["conditions"] == "@,F,T,I" for r in rows) and None in {r["conditions"] for r in rows}
    else:
        assert {r["exchange"] for r in rows} == {None}  # crypto messages name no venue
        # A pair's quote naming one side's venue only goes frame by frame, with the same rows.
        quote = next(e for e in events if e["T"] == "q")
        odd = _messages([json.dumps([{**quote, "bx": "K"}]).encode()] * 3, 3, seq0=70)
        assert _assert_fast_equals_per_frame(source, odd, master).fast == 0


def _alpaca_mutation(rng: random.Random, events: list[dict]) -> tuple[str, list]:
    e = events[rng.randrange(len(events))]
    key = rng.choice(sorted(e))
    kind = rng.randrange(8)
    if mutate_value(rng, e, key, kind, [1.5, 7, -1, 0, True, "", "1.5", 2**64, [1], {}, ["a,b"], [], "K"]):
        pass
    elif kind == 3:
        e["T"] = rng.choice(["x", "c", "b", "success", 5, None, "t", "q"])
    elif kind == 4:
        e["S"] = rng.choice(["UNKNOWN", "", 3, "AAPL", "BTC/USD"])
    elif kind == 5:
        e["t"] = rng.choice(["2023-04-06T11:54:26.1234567891Z", "2023-02-30T11:54:26Z", "2023-04-06T24:00:00Z",
                             "2023-04-06T11:54:26+02:00", "2023-04-06t11:54:26z", "1980-01-01T00:00:00Z", 5])
    elif kind == 6:
        return "empty", []
    else:
        events.append({"T": "success", "msg": "authenticated"})
    return f"{kind}:{key}", events


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_alpaca_messages_give_exactly_the_per_frame_result(master, seed):
    import copy

    rng = random.Random(seed)
    source = ("alpaca", "alpaca_crypto")[seed % 2]
    get_adapter(source, master)
    base = _alpaca_events(source)
    paths = {"fast": 0, "per_frame": 0}
    for round_ in range(50):
        frames, what = [], []
        for _ in range(8):
            events = copy.deepcopy(rng.sample(base, rng.randint(1, 3)))
            if rng.random() < 0.07:
                name, events = _alpaca_mutation(rng, events)
                what.append(name)
            frames.append(json.dumps(events).encode())
        messages = _messages(frames, 8, seq0=3000 + round_)
        done = _assert_fast_equals_per_frame(source, messages, master, what)
        paths["fast" if done.fast else "per_frame"] += 1
    assert paths["fast"] >= 5 and paths["per_frame"] >= 10, paths


def _databento_frames() -> list[bytes]:
    """Frames as the connector cuts them: the live session's metadata, its ESZ4 symbol mapping and some of its
    trade and MBP-1 records; and the historical trades, MBP-1 and TBBO files (symbols in their metadata)."""
    from quant_platform.market.adapters.databento import dbn_parts, encode_frame
    from quant_platform.market.connectors.databento import read_dbn
    from quant_platform.platform.sample_data import sample_file

    meta, records = dbn_parts(read_dbn(sample_file("ticks/databento/live_glbx-mdp3_esz4.dbn.zst")))
    mapping = next(r for r in records if r[1] == 0x16)
    market = [r for r in records if r[1] in (0x00, 0x01)]
    others = [r for r in records if r[1] not in (0x00, 0x01, 0x16)][:3]  # statistics, status, ...: ignored
    assert {r[1] for r in market} == {0x00, 0x01} and others
    market = market * 5  # the capture's four, in different frames and positions
    frames = [encode_frame(meta, [mapping, *market[k:k + 6]]) for k in range(0, len(market) - 6, 3)]
    frames.append(encode_frame(meta, [mapping, *others, *market[:4]]))
    for name in ("trades", "mbp-1", "tbbo"):
        m, recs = dbn_parts(read_dbn(sample_file(f"ticks/databento/glbx-mdp3_esh1_2020-12-28.{name}.dbn.zst")))
        frames += [encode_frame(m, recs), encode_frame(m, recs[1:3])]
    return frames


def test_databento_fast_path_equals_the_per_frame_path(master):
    frames = _databento_frames()
    done = _assert_fast_equals_per_frame("databento", _messages(frames, 7), master)
    assert done.fast == len(_messages(frames, 7)) and done.table.num_rows > 50
    rows = done.table.to_pylist()
    assert {r["event"] for r in rows} == {"trade", "quote"}
    assert {r["venue_symbol"] for r in rows} >= {"ESZ4", "ESH1"}
    # Ignored: the mapping record of every live frame, and the three other records of one of them.
    assert sum(m.ignored for m in done.messages) == (len(frames) - 6) + 3


def _databento_mutation(rng: random.Random, frame: bytes) -> tuple[str, bytes]:
    import base64

    from quant_platform.market.adapters.databento import UNDEF_PRICE, dbn_parts, encode_frame

    meta, recs = dbn_parts(base64.b64decode(frame))
    k = next((i for i, r in enumerate(recs) if r[1] in (0x00, 0x01)), 0)
    rec = bytearray(recs[k])
    kind = rng.randrange(8)
    if kind == 0:
        rec[16:24] = rng.choice([UNDEF_PRICE, 0, -5]).to_bytes(8, "little", signed=True)  # price
    elif kind == 1:
        rec[8:16] = rng.choice([5, 2**63 + 7, 10**17 * 40]).to_bytes(8, "little")  # ts_event out of range
    elif kind == 2:
        rec[4:8] = (999_999).to_bytes(4, "little")  # an instrument id with no symbol
    elif kind == 3:
        rec[29] = ord(rng.choice("XZ"))  # side
    elif kind == 4:
        rec[28] = ord(rng.choice("AXCT"))  # action (a tbbo record that is not a trade is a reject)
    elif kind == 5 and len(rec) == 80:
        rec[48:64] = UNDEF_PRICE.to_bytes(8, "little", signed=True) * 2  # an empty book: ignored
    elif kind == 6:
        return "truncated", frame[:-8]
    else:
        return "not base64", frame[:10] + b"!" + frame[11:]
    recs[k] = bytes(rec)
    return f"{kind}", encode_frame(meta, recs)


@pytest.mark.parametrize("seed", range(3))
def test_fuzzed_databento_messages_give_exactly_the_per_frame_result(master, seed):
    rng = random.Random(seed)
    base = _databento_frames()
    paths = {"fast": 0, "per_frame": 0}
    for round_ in range(40):
        frames, what = rng.sample(base, 6), []
        for i in range(len(frames)):
            if rng.random() < 0.08:
                name, frames[i] = _databento_mutation(rng, frames[i])
                what.append(name)
        done = _assert_fast_equals_per_frame("databento", _messages(frames, 6, seq0=5000 + round_), master, what)
        paths["fast" if done.fast else "per_frame"] += 1
    assert paths["fast"] >= 5 and paths["per_frame"] >= 5, paths
