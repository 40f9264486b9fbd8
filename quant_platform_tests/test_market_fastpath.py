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
from quant_platform_tests.market_helpers import sim_frames

T0 = 1_763_000_000_000_000_000  # 2025-11-13, a 19-digit ns receipt time


@pytest.fixture(scope="module")
def master():
    return InstrumentMaster.load()


def per_frame(source: str, seq: int, data: bytes, master):
    """The reference: the per-frame path on one raw message -> (table, rejects, bad lines, ignored)."""
    frames = [f for f in decode_batch(data) if not isinstance(f, tuple)]
    bad = [(n, line, reason) for n, line, reason in (f for f in decode_batch(data) if isinstance(f, tuple))]
    table, rejected, ignored = normalize_batch(source, frames, seq, master)
    return table, [(f.payload, r) for f, r in rejected], bad, ignored


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
    assert bad.ticks == 99 and [r for _, r in bad.rejected] == [f"unknown symbol simulator:NOPE{json.loads(lines[7].split(b' ', 1)[1])['sym'][4:]}"]
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
        assert [(f.payload, r) for f, r in got.rejected] == rejected, what
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
    assert [[reason for _, reason in m.rejected] for m in done.messages] == [[reason for _, reason in r[1]]
                                                                             for r in refs]
    assert done.messages[1].rejected[0][1].startswith("cannot build canonical rows")
