"""The vectorised normalisation path: whatever it takes, it must give exactly the rows the per-frame path gives;
whatever it cannot take exactly (a bad frame anywhere), it hands to the per-frame path, which names the reason.

Real frames (the simulator's and the bench's), then fuzzed ones: every mutation is compared with the per-frame
result of the same message, so a fast path that accepts something the slow path rejects (or changes a value)
fails here.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest

from quant_platform.market.adapters import (
    ADAPTERS,
    FAST_MIN_LINES,
    Adapter,
    normalize_batch,
    normalize_messages,
    register_adapter,
)
from quant_platform.market.adapters.base import RECEIVED_KEY, frames_table
from quant_platform.market.connectors.simulator import MarketSimulator
from quant_platform.market.contracts import RawFrame, decode_batch, encode_batch, event_id, event_ids_arrow
from quant_platform.market.instruments import InstrumentMaster
from quant_platform_tests.conftest import SAMPLE_DATA
from quant_platform_tests.market_helpers import mutate_value, sim_frames

T0 = 1_763_000_000_000_000_000  # 2025-11-13, a 19-digit ns receipt time


@pytest.fixture(scope="module")
def master():
    return InstrumentMaster.load()


def per_frame(source: str, seq: int, data: bytes, master):
    """The reference: the per-frame path on one raw message -> (table, rejects, bad lines, ignored)."""
    frames = [f for f in decode_batch(data) if not isinstance(f, tuple)]
    bad = [(n, line, reason) for n, line, reason in (f for f in decode_batch(data) if isinstance(f, tuple))]
    table, rejected, ignored = normalize_batch(source, frames, seq, master)
    return table, [(r.frame.payload, r.reason) for r in rejected], bad, ignored


def simulator_messages(n_msgs: int, per_msg: int, seed: int = 7) -> list[tuple[int, bytes]]:
    sim = MarketSimulator(rate=5000, seed=seed)
    frames = sim.frames_at(n_msgs * per_msg, start_ns=T0)
    return [(100 + k, encode_batch([RawFrame(T0 + k * per_msg + i, f)
                                    for i, f in enumerate(frames[k * per_msg:(k + 1) * per_msg])]))
            for k in range(n_msgs)]


def test_fast_path_takes_simulator_frames_and_equals_the_per_frame_path(master):
    messages = simulator_messages(20, 250)
    done = normalize_messages("simulator", messages, master, min_fast_lines=1)
    assert done.fast == 20  # the vectorised path took every message
    reference = pa.concat_tables([per_frame("simulator", seq, data, master)[0] for seq, data in messages])
    assert done.table.num_rows == 5000
    assert done.table.equals(reference)
    assert [m.ticks for m in done.messages] == [250] * 20
    assert [m.stream_seq for m in done.messages] == list(range(100, 120))
    # Spot values read from the frames themselves, not from either path.
    first = json.loads(messages[0][1].split(b"\n")[0].split(b" ", 1)[1])
    row = done.table.slice(0, 1).to_pylist()[0]
    assert row["venue_symbol"] == first["sym"] and row["vendor_seq"] == first["seq"]
    assert done.table.column("ts")[0].value == first["t"]
    assert done.table.column("received_at")[0].value == T0
    assert done.table.column("stream_seq").to_pylist()[:1] == [100]


def test_heartbeats_are_counted_ignored_and_control_only_messages_have_no_ticks(master):
    ticks = sim_frames(6, start_ns=T0)
    hb = [RawFrame(T0 + 99, json.dumps({"ev": "H", "t": T0}).encode()) for _ in range(3)]
    messages = [(1, encode_batch(ticks[:3] + hb[:2] + ticks[3:])), (2, encode_batch(hb[2:]))]
    done = normalize_messages("simulator", messages, master, min_fast_lines=1)
    assert done.fast == 2
    assert [(m.frames, m.ticks, m.ignored) for m in done.messages] == [(8, 6, 2), (1, 0, 1)]
    ref = per_frame("simulator", 1, messages[0][1], master)
    assert done.table.equals(ref[0]) and ref[3] == 2


def test_one_bad_frame_sends_only_its_message_down_the_per_frame_path(master):
    messages = simulator_messages(5, 100)
    lines = messages[2][1].split(b"\n")
    lines[7] = lines[7].replace(b'"sym":"', b'"sym":"NOPE', 1)
    messages[2] = (messages[2][0], b"\n".join(lines))
    done = normalize_messages("simulator", messages, master, min_fast_lines=1)
    assert done.fast == 4
    bad = done.messages[2]
    assert bad.ticks == 99 and [r.reason for r in bad.rejected] == [f"unknown symbol simulator:NOPE{json.loads(lines[7].split(b' ', 1)[1])['sym'][4:]}"]
    reference = pa.concat_tables([per_frame("simulator", seq, data, master)[0] for seq, data in messages])
    assert done.table.equals(reference)


# ------------------------------------------------------------------------------------------- fuzz
def _mutations(rng: random.Random, body: dict) -> tuple[str, bytes]:
    """One way a vendor (or a bug) can spoil a frame; returns (name, frame bytes)."""
    b = dict(body)
    key = rng.choice(sorted(b))
    kind = rng.randrange(22)
    if kind == 0:
        del b[key]
        return f"drop {key}", json.dumps(b).encode()
    if kind == 1:
        b[key] = None
    elif kind == 2:
        b[key] = str(b[key])  # numbers as strings: valid for prices on the per-frame path
    elif kind == 3:
        b[key] = True
    elif kind == 4:
        b[key] = [b[key]]
    elif kind == 5:
        b[key] = float("nan") if rng.random() < 0.5 else float("inf")
    elif kind == 6:
        b[key] = -1
    elif kind == 7:
        b[key] = 0
    elif kind == 8:
        b[key] = ""
    elif kind == 9:
        b[key] = 1.5e18
    elif kind == 10:
        b[key] = 2**64
    elif kind == 11:
        b["x"] = rng.choice(["", "NYMEX", 5, None])
    elif kind == 12:
        b["ev"] = rng.choice(["H", "X", "", 1, None, "t"])
    elif kind == 13:
        return "duplicate key", json.dumps(b).encode()[:-1] + b', "sym": "BZ"}'
    elif kind == 14:
        return "two objects", json.dumps(b).encode() + b" {}"
    elif kind == 15:
        return "not an object", json.dumps([b]).encode()
    elif kind == 16:
        return "truncated", json.dumps(b).encode()[:-3]
    elif kind == 17:
        return "bad utf-8", json.dumps(b).encode()[:-1] + b', "note": "\xff"}'
    elif kind == 18:
        b["t"] = 10**12  # a unit mistake: ms sent as ns
    elif kind == 19:
        return "NaN literal", json.dumps(b).encode()[:-1] + b', "bp": NaN}'
    elif kind == 20:
        b["sym"] = b.get("sym", "CL").lower()  # symbols resolve case-insensitively
    else:
        b["extra"] = {"nested": [1, {"a": None}]}
    return f"{kind}:{key}", json.dumps(b, allow_nan=True).encode()


def _spoiled_head(rng: random.Random, line: bytes) -> tuple[str, bytes]:
    head, _, frame = line.partition(b" ")
    choice = rng.randrange(6)
    if choice == 0:
        return "short head", head[1:] + b" " + frame
    if choice == 1:
        return "negative head", b"-" + head[1:] + b" " + frame
    if choice == 2:
        return "two spaces", head + b"  " + frame
    if choice == 3:
        return "tab", head + b"\t" + frame
    if choice == 4:
        return "empty line", b""
    return "no head", frame


@pytest.mark.parametrize("seed", range(6))
def test_fuzzed_messages_give_exactly_the_per_frame_result(master, seed):
    rng = random.Random(seed)
    sim = MarketSimulator(rate=5000, seed=seed)
    paths = {"fast": 0, "per_frame": 0}
    for round_ in range(60):
        frames = sim.frames_at(12, start_ns=T0)
        lines = [b"%d %s" % (T0 + round_ * 100 + i, f) for i, f in enumerate(frames)]
        what = []
        for _ in range(rng.choice((1, 1, 2))):
            i = rng.randrange(len(lines))
            if rng.random() < 0.2:
                name, lines[i] = _spoiled_head(rng, lines[i])
            else:
                name, frame = _mutations(rng, json.loads(frames[i]))
                lines[i] = b"%d %s" % (T0 + i, frame)
            what.append(name)
        data = b"\n".join(lines)
        seq = 1000 + round_
        done = normalize_messages("simulator", [(seq, data)], master, min_fast_lines=1)
        table, rejected, bad, ignored = per_frame("simulator", seq, data, master)
        got = done.messages[0]
        assert done.table.equals(table), what
        assert [(r.frame.payload, r.reason) for r in got.rejected] == rejected, what
        assert got.bad_lines == bad, what
        assert got.ignored == ignored and got.ticks == table.num_rows, what
        paths["fast" if done.fast else "per_frame"] += 1
    # Both paths were exercised: harmless mutations stay on the fast path, the rest fall back.
    assert paths["fast"] >= 3 and paths["per_frame"] >= 30, paths


def test_fast_path_declines_every_structural_oddity():
    schema = pa.schema([("ev", pa.string())])
    good = b'%d {"ev":"T"}' % T0
    assert frames_table(good + b"\n" + good, schema).column(RECEIVED_KEY).to_pylist() == [T0, T0]
    for data in (b'123 {"ev":"T"}',  # receipt time not 19 digits
                 good + b"\n",  # empty last line
                 good + b' {"ev":"Q"}',  # two objects on one line
                 b'%d {"ev":\n%d "T"}' % (T0, T0),  # an object across two lines
                 b'%d {"ev":"T"}' % (9_999_999_999_999_999_999 // 1),  # beyond int64
                 b'%d {"ev":5}' % T0,  # wrong type
                 b'%d {"ev":"T","ev":"Q"}' % T0,  # duplicate key
                 b'%d ["T"]' % T0):
        assert frames_table(data, schema) is None, data


def test_a_broken_fast_path_loses_nothing(master):
    class Broken(Adapter):
        source = "test_broken_fast"

        def normalize_fast(self, data, line_seqs, master):
            raise RuntimeError("bug in the vectorised path")

        def _normalize(self, frame, master):
            return ADAPTERS["simulator"]._normalize(frame, master)

    register_adapter(Broken())
    try:
        messages = [(5, encode_batch(sim_frames(4, start_ns=T0)))]
        done = normalize_messages("test_broken_fast", messages, master, min_fast_lines=1)
        # The per-frame path ran instead and lost nothing.
        assert done.fast == 0 and done.table.num_rows == 4 and done.messages[0].ticks == 4
        assert done.table.equals(per_frame("simulator", 5, messages[0][1], master)[0])
    finally:
        ADAPTERS.pop("test_broken_fast", None)


def test_stream_seq_follows_each_line_across_a_set(master):
    messages = [(s, encode_batch(sim_frames(n, start_ns=T0 + s))) for s, n in ((7, 3), (9, 1), (12, 5))]
    done = normalize_messages("simulator", messages, master, min_fast_lines=1)
    assert done.fast == 3
    assert done.table.column("stream_seq").to_pylist() == [7] * 3 + [9] + [12] * 5
    assert np.array_equal([m.ticks for m in done.messages], [3, 1, 5])


def test_arrow_event_ids_equal_the_per_tick_ones():
    rng = random.Random(11)
    words = ["T", "Q", "aggTrade", "CL", "BTCUSDT", "été", "a\x1fb", "%s", ""]
    rows = [(rng.choice(words), rng.choice(words), rng.randrange(-10**18, 10**18), rng.randrange(2**63))
            for _ in range(2000)]
    cols = [pa.array([r[i] for r in rows]) for i in range(4)]
    assert event_ids_arrow("src%", *cols).to_pylist() == [event_id("src%", *r) for r in rows]
    with pytest.raises(ValueError):
        event_ids_arrow("s", pa.array(["a", None]))
    with pytest.raises(TypeError):
        event_ids_arrow("s", pa.array([1.5]))


def test_small_sets_take_the_per_frame_path_by_default(master):
    """Below FAST_MIN_LINES frames the vectorised path's fixed cost outweighs its gain: frame by frame."""
    small = [(1, encode_batch(sim_frames(10, start_ns=T0)))]
    done = normalize_messages("simulator", small, master)
    assert done.fast == 0 and done.table.equals(per_frame("simulator", 1, small[0][1], master)[0])
    big = simulator_messages(2, FAST_MIN_LINES // 2)
    assert normalize_messages("simulator", big, master).fast == 2


def test_small_messages_share_one_table_and_a_refused_row_stays_with_its_message(master):
    """Frame by frame, a set builds one table; a frame whose row Arrow refuses (a receipt time beyond int64)
    is rejected in its own message, the other frames and messages land."""
    msgs = [(s, encode_batch(sim_frames(4, start_ns=T0 + s))) for s in (21, 22, 23)]
    lines = msgs[1][1].split(b"\n")
    lines[2] = b"99999999999999999999 " + lines[2].split(b" ", 1)[1]
    msgs[1] = (22, b"\n".join(lines))
    done = normalize_messages("simulator", msgs, master)
    assert done.fast == 0
    refs = [per_frame("simulator", seq, data, master) for seq, data in msgs]
    assert done.table.equals(pa.concat_tables([r[0] for r in refs]))
    assert [m.ticks for m in done.messages] == [4, 3, 4]
    assert [[r.reason for r in m.rejected] for m in done.messages] == [[reason for _, reason in r[1]]
                                                                       for r in refs]
    assert done.messages[1].rejected[0].reason.startswith("cannot build canonical rows")


# ------------------------------------------------------------------------------------------- Binance
BINANCE_CAPTURE = SAMPLE_DATA / "ticks" / "binance_spot_combined_stream_2021-10-12.txt"


def binance_frames() -> list[bytes]:
    from quant_platform.market.connectors.replay import read_capture

    return read_capture("binance", BINANCE_CAPTURE)


def _assert_same_as_per_frame(done, messages, master, what=None) -> None:
    tables = []
    for got, (seq, data) in zip(done.messages, messages, strict=True):
        table, rejected, bad, ignored = per_frame("binance", seq, data, master)
        assert [(r.frame.payload, r.reason) for r in got.rejected] == rejected, what
        assert got.bad_lines == bad and got.ignored == ignored and got.ticks == table.num_rows, what
        tables.append(table)
    assert done.table.equals(pa.concat_tables(tables)), what


def test_binance_capture_takes_the_fast_path_and_equals_the_per_frame_path(master):
    frames = binance_frames()
    messages = [(50 + k, encode_batch([RawFrame(T0 + k * 100 + i, f) for i, f in enumerate(frames[k * 40:(k + 1) * 40])]))
                for k in range((len(frames) + 39) // 40)]
    done = normalize_messages("binance", messages, master, min_fast_lines=1)
    assert done.fast == len(messages)
    _assert_same_as_per_frame(done, messages, master)
    # Spot values read from the file: the first aggTrade and the first bookTicker.
    agg = json.loads(next(f for f in frames if b"@aggTrade" in f))["data"]
    book = json.loads(next(f for f in frames if b"@bookTicker" in f))["data"]
    rows = done.table.to_pylist()
    trade = next(r for r in rows if r["event"] == "trade")
    quote = next(r for r in rows if r["event"] == "quote")
    assert trade["vendor_seq"] == agg["a"] and trade["price"] == float(agg["p"]) and trade["size"] == float(agg["q"])
    assert done.table.column("ts")[rows.index(trade)].value == agg["T"] * 1_000_000
    assert trade["event_id"] == event_id("binance", "aggTrade", agg["s"], agg["a"])
    assert quote["vendor_seq"] == book["u"] and quote["bid"] == float(book["b"]) and quote["ask_size"] == float(book["A"])
    # Spot bookTicker has no event time: the receipt time stands in for it.
    assert done.table.column("ts")[rows.index(quote)] == done.table.column("received_at")[rows.index(quote)]
    assert sum(m.ignored for m in done.messages) == sum(1 for f in frames if b"@depth" in f or b"@kline" in f)


def _binance_mutation(rng: random.Random, frame: bytes) -> tuple[str, bytes]:
    msg = json.loads(frame)
    d = msg["data"]
    key = rng.choice(sorted(d))
    kind = rng.randrange(16)
    if mutate_value(rng, d, key, kind, [1.5, 7, -1, 0, True, "", "1e-5", " 1.5", "0", "NaN", "-0.5", "1.", 2**64,
                                        [1], {}]):
        pass
    elif kind == 3:
        d["T"] = rng.choice([None, 1633998523963, 1633998523963.0, -5, 10**17, "1633998523963"])
    elif kind == 4:
        d["e"] = rng.choice([None, "trade", "aggTrade", "bookTicker", "depthUpdate", 5, ""])
    elif kind == 5:
        msg["stream"] = rng.choice(["nknusdt@trade", "nknusdt@bookTicker", "nknusdt@kline_1m", "!bookTicker",
                                    "nknusdt", 7, None])
    elif kind == 6:
        msg["data"] = rng.choice([[d], None, "x"])
    elif kind == 7:
        del msg["stream"]
    elif kind == 8:
        d["s"] = rng.choice(["nknusdt", "UNKNOWNUSDT", "", 3])
    elif kind == 9:
        return "duplicate key", json.dumps(msg).encode()[:-2] + b', "s": "BLZETH"}}'
    elif kind == 10:
        return "subscription reply", b'{"result":null,"id":1}'
    elif kind == 11:
        return "NaN literal", json.dumps(msg).encode()[:-2] + b', "x": NaN}}'
    elif kind == 12:
        return "truncated", json.dumps(msg).encode()[:-3]
    elif kind == 13:
        return "ms as s", json.dumps({**msg, "data": {**d, "T": 1633998523}}).encode()
    elif kind == 14:
        d["extra"] = {"nested": [1, {"a": None}], "b": [["1", "2"]]}
    else:
        return "lone surrogate", json.dumps(msg).encode()[:-2] + b', "n": "\\ud800"}}'
    return f"{kind}:{key}", json.dumps(msg).encode()


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_binance_messages_give_exactly_the_per_frame_result(master, seed):
    rng = random.Random(seed)
    frames = [f for f in binance_frames() if b"@aggTrade" in f or b"@bookTicker" in f or b"@kline" in f][:30]
    frames += [f for f in binance_frames() if b"@depth" in f][:6]
    paths = {"fast": 0, "per_frame": 0}
    for round_ in range(60):
        chosen = rng.sample(frames, 12)
        what = []
        for i in rng.sample(range(len(chosen)), rng.choice((0, 1, 1, 2))):
            name, chosen[i] = _binance_mutation(rng, chosen[i])
            what.append(name)
        messages = [(2000 + round_, encode_batch([RawFrame(T0 + i, f) for i, f in enumerate(chosen)]))]
        done = normalize_messages("binance", messages, master, min_fast_lines=1)
        _assert_same_as_per_frame(done, messages, master, what)
        paths["fast" if done.fast else "per_frame"] += 1
    assert paths["fast"] >= 10 and paths["per_frame"] >= 15, paths


def test_binance_edge_frames_match_the_per_frame_path(master):
    book = json.loads(next(f for f in binance_frames() if b"@bookTicker" in f))
    agg = json.loads(next(f for f in binance_frames() if b"@aggTrade" in f))

    def dumps(doc) -> str:  # compact, as Binance sends frames (the kind is then read from the first bytes)
        return json.dumps(doc, separators=(",", ":"))

    def with_data(msg, **changes):
        return dumps({**msg, "data": {**msg["data"], **changes}}).encode()

    cases = {  # name -> (frame, what the per-frame path makes of it)
        "book T null": (with_data(book, T=None), "rejected"),
        "book with T (futures)": (with_data(book, T=agg["data"]["T"]), "tick"),
        "book T float": (with_data(book, T=1633998523963.0), "rejected"),
        "all-market stream": (dumps({**book, "stream": "!bookTicker"}).encode(), "tick"),
        # A raw trade event is ignored whatever its stream: aggTrade is the trade of record (no double count).
        "e says trade on a kline stream": (dumps({"stream": "nknusdt@kline_1m", "data": {**agg["data"], "e": "trade", "t": 5}}).encode(), "ignored"),
        "price as a number": (with_data(agg, p=0.3528), "tick"),
        "price 1e-5 text": (with_data(agg, p="1e-5"), "tick"),
        "zero price": (with_data(agg, p="0.000"), "rejected"),
        "zero size": (with_data(agg, q="0"), "tick"),
        "negative id": (with_data(agg, a=-1), "rejected"),
        "lower-case symbol": (with_data(agg, s="nknusdt"), "tick"),
        # The kind is read from a line's first bytes where Binance's key order allows it; any other order is read.
        "data before stream": (dumps({"data": agg["data"], "stream": agg["stream"]}).encode(), "tick"),
        "spaces after colons": (json.dumps(agg).encode(), "tick"),
        "e last, not first": (dumps({**agg, "data": {**{k: v for k, v in agg["data"].items() if k != "e"},
                                                          "e": "aggTrade"}}).encode(), "tick"),
        "e aggTrade late on a book stream": (with_data(book, e="aggTrade"), "rejected"),
        "second stream key": (dumps(agg).encode()[:-1] + b',"stream":"nknusdt@depth@100ms"}', "tick"),
        "cut-off depth line": (b'{"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","E":1,', "rejected"),
    }
    for name, (frame, expected) in cases.items():
        frames = [RawFrame(T0, dumps(agg).encode()), RawFrame(T0 + 1, frame), RawFrame(T0 + 2, dumps(book).encode())]
        messages = [(77, encode_batch(frames))]
        done = normalize_messages("binance", messages, master, min_fast_lines=1)
        _assert_same_as_per_frame(done, messages, master, name)
        got = done.messages[0]
        assert (got.ticks, len(got.rejected)) == {"tick": (3, 0), "ignored": (2, 0), "rejected": (2, 1)}[expected], name
        fast_ones = {"book with T (futures)", "all-market stream", "e says trade on a kline stream", "zero size",
                     "lower-case symbol", "data before stream", "spaces after colons"}
        assert done.fast == (name in fast_ones), name  # the rest are the per-frame path's to judge


def test_event_ids_are_standard_siphash_under_the_fixed_keys():
    """Scheme 2 ids are SipHash-2-4 (any engine can recompute them): the reference vector of the SipHash paper
    (key 00..0f, message 00..0e -> a129ca6149be45e5), then an id as 64 + 32 bits of the two keyed hashes."""
    from quant_platform.market import contracts

    key, message = "".join(map(chr, range(16))), "".join(map(chr, range(15)))
    assert int(contracts._siphash(np.array([message], dtype=object), key, "utf8")[0]) == 0xA129CA6149BE45E5
    text = np.array(["binance\x1faggTrade\x1fBTCUSDT\x1f42"], dtype=object)
    high = int(contracts._siphash(text, contracts._ID_KEYS[0], "utf8")[0])
    low = int(contracts._siphash(text, contracts._ID_KEYS[1], "utf8")[0])
    assert event_id("binance", "aggTrade", "BTCUSDT", 42) == f"{high:016x}{low >> 32:08x}"
    assert event_ids_arrow("binance", pa.array(["aggTrade"]), pa.array(["BTCUSDT"]), pa.array([42])).to_pylist() \
        == [f"{high:016x}{low >> 32:08x}"]


def test_selected_lines_are_the_lines_asked_for():
    from quant_platform.market.adapters.base import raw_lines, selected_lines

    frames = [b'{"k":%d,"pad":"%s"}' % (i, b"x" * (i % 7)) for i in range(9)]
    lines = raw_lines(b"\n".join(b"%d %s" % (T0 + i, f) for i, f in enumerate(frames)))
    body = lines.body
    for idx in ([0, 2, 8], [8], [3, 4, 5], list(range(9)), []):
        want = b"\n".join(body[lines.starts[i]:lines.ends[i]] for i in idx)
        assert selected_lines(lines, np.array(idx, dtype=np.int64)) == want


def test_alpaca_float_text_is_pythons_str_of_every_float():
    """Alpaca quote ids hash str() of the float prices and sizes; the vectorised text must be that, digit for
    digit, on both sides of where the notations change (1e-4, 1e9, 1e16) and for whole numbers."""
    from quant_platform.market.adapters.alpaca import _float_text

    rng = np.random.default_rng(5)
    edges = [0.0, -0.0, 1e-4, 9.99e-5, 5e-5, 1.0, 100.0, 0.1 + 0.2, 1e9 - 0.5, 1e9, 123456789.125, 1e16, 2.5e17]
    plain = np.concatenate([rng.random(20_000) * 600, np.round(rng.random(20_000) * 1e4, 2),
                            rng.integers(0, 10**6, 5_000).astype(float), 10 ** rng.uniform(-4, 8.9, 20_000)])
    for values in (plain, np.concatenate([plain, edges])):  # inside the plain range; and with values outside it
        assert _float_text(pa.array(values)).to_pylist() == [str(v) for v in values.tolist()]


def test_alpaca_times_are_parsed_per_second_and_a_rolled_over_date_is_refused():
    from quant_platform.market.adapters.alpaca import _times_ns, rfc3339_to_ns

    good = ["2023-04-06T11:54:26.838232225Z", "2023-04-06T11:54:26Z", "2024-02-29T23:59:59.5Z",
            "2023-04-06T11:54:26.1Z", "2023-04-06T11:54:27.000000001Z"] * 3
    assert _times_ns(pa.array(good)).to_pylist() == [rfc3339_to_ns(t) for t in good]
    for bad in ("2023-02-30T10:00:00Z", "2023-04-06T24:00:00Z", "2023-02-29T10:00:00Z"):
        assert _times_ns(pa.array(good + [bad])) is None  # the per-frame path rejects it with its reason
