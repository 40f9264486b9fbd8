"""The public surface of the tick pipeline (ARCHITECTURE.md): stream and subject names, the raw batch
format connectors publish, and the canonical tick schema every destination receives.

Never change a name or a column here without saying so in the README: other teams' tools rely on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# pandas' C SipHash-2-4 of object arrays (pandas.util.hash_array calls it, then remixes the values, so the public
# function would not give standard SipHash): 1 us a call, the whole column in one C loop.
from pandas._libs.hashing import hash_object_array as _siphash

STREAM_RAW = "TICKS_RAW"
STREAM_NORM = "TICKS"
STREAM_DLQ = "TICKS_DLQ"


def server_list(url: str) -> list[str]:
    """QP_NATS_URL may name several servers of a cluster, comma-separated: the client fails over between them."""
    servers = [u.strip() for u in url.split(",") if u.strip()]
    if not servers:
        raise ValueError("no NATS server URL given")
    return servers


def raw_subject(source: str) -> str:
    """Connectors publish each batch of vendor frames to ticks.raw.<source>.batch."""
    return f"ticks.raw.{source}.batch"


def norm_subject(source: str, instrument_id: str) -> str:
    """Normalised ticks of one instrument: ticks.norm.<source>.<instrument token>, e.g.
    ticks.norm.binance.CRYPTO_BTC-USDT (what normalizers published before 2026-12-05; still read everywhere)."""
    return f"ticks.norm.{source}.{instrument_token(instrument_id)}"


def norm_batch_subject(source: str) -> str:
    """Normalised ticks of one fetched set of one source, all its instruments in one Arrow message:
    ticks.norm.<source>.batch. One message per set instead of one per instrument (issue 15): a set of the
    realistic mix held ~16 instruments, each message an IPC write, a publish, a store fsync and a lander fetch.
    An instrument's filter (ticks.norm.<source>.<token>) is applied to the rows by the fan-out."""
    return f"ticks.norm.{source}.batch"


def dlq_subject(source: str) -> str:
    return f"ticks.dlq.{source}"


def instrument_token(instrument_id: str) -> str:
    """A subject-safe token for an instrument id (':' and '.' are not allowed in one subject token)."""
    return instrument_id.replace(":", "_").replace(".", "_").replace(" ", "_").replace("*", "_").replace(">", "_")


# ------------------------------------------------------------------------------------------- raw batches
# A raw message carries one or more vendor frames, verbatim, each with the instant the connector received
# it: lines of `<received_at_ns> <frame>` separated by "\n". Frames are single-line JSON as vendors send
# them. Bundling frames is what makes fsync-before-ack affordable (NATS_NOTES.md).
RAW_FORMAT = "qp.rawbatch.v1"
HDR_FORMAT = "Qp-Format"
HDR_SOURCE = "Qp-Source"
HDR_FRAMES = "Qp-Frames"


@dataclass(frozen=True)
class RawFrame:
    received_at_ns: int
    payload: bytes


def encode_batch(frames: Iterable[RawFrame]) -> bytes:
    lines = [b"%d %s" % (f.received_at_ns, f.payload) for f in frames]
    data = b"\n".join(lines)
    if data.count(b"\n") != max(len(lines) - 1, 0):
        raise ValueError("a vendor frame must be a single line")
    return data


def decode_batch(data: bytes) -> Iterator[RawFrame | tuple[int, bytes, str]]:
    """Frames of a raw batch. A line that is not `<int> <payload>` is yielded as (line_no, line, reason)."""
    for n, line in enumerate(data.split(b"\n")):
        if not line:
            continue
        head, sep, payload = line.partition(b" ")
        if not sep or not head.isdigit() or not payload:
            yield (n, line, "raw line is not '<received_at_ns> <frame>'")
            continue
        yield RawFrame(int(head), payload)


def batch_msg_id(source: str, connection_id: str, batch_no: int) -> str:
    """Deterministic Nats-Msg-Id: the same batch resent after a timeout is deduplicated by JetStream."""
    return f"{source}:{connection_id}:{batch_no}"


# Event ids: SipHash-2-4 (pandas' hash of object arrays, a C loop over the whole column) of the joined text under
# two fixed keys, 64 + 32 of the 128 bits, as 24 hex digits. Scheme 2 (issue 15): scheme 1 hashed each row with
# blake2b in a Python loop, a fifth of the normalizer's CPU. The same text gives the same id on every host and
# every run (fixed keys, a standard function); a raw message normalised by a scheme-1 worker and redelivered to a
# scheme-2 one during a rolling upgrade lands twice under two ids (only then; see the README's upgrade notes).
_ID_KEYS = ("qp.event-id.k001", "qp.event-id.k002")  # 16 bytes each, as SipHash wants


def _hex_ids(texts: np.ndarray) -> pa.Array:
    """Object array of UTF-8 bytes -> Arrow strings of 24 hex digits (the 12 bytes of each row formatted at once,
    no Python per row)."""
    n = len(texts)
    high = _siphash(texts, _ID_KEYS[0], "utf8").astype(">u8")
    low = (_siphash(texts, _ID_KEYS[1], "utf8") >> np.uint64(32)).astype(">u4")
    raw = np.empty((n, 12), np.uint8)
    raw[:, :8] = high.view(np.uint8).reshape(n, 8)
    raw[:, 8:] = low.view(np.uint8).reshape(n, 4)
    digits = raw.tobytes().hex().encode("ascii")  # C's hex formatting: a quarter of the time of a table lookup
    offsets = np.arange(0, 24 * n + 1, 24, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(digits)])


def event_id(source: str, *parts: object) -> str:
    """Deterministic tick id for dedup at compaction: the same vendor event always gets the same id (the same
    value event_ids_arrow gives for the same row)."""
    text = source + "".join("\x1f" + str(p) for p in parts)
    one = np.array([text.encode()], dtype=object)
    high = int(_siphash(one, _ID_KEYS[0], "utf8")[0])
    low = int(_siphash(one, _ID_KEYS[1], "utf8")[0])
    return f"{high:016x}{low >> 32:08x}"


def event_ids_arrow(source: str, *columns: pa.Array | pa.ChunkedArray) -> pa.Array:
    """event_id(source, *row) for every row of Arrow columns of strings or integers without nulls: the text is
    joined by Arrow (integers in the decimal form str() gives) and hashed by SipHash over the whole column."""
    parts = []
    for col in columns:
        if col.null_count:
            raise ValueError("event id parts must not be null")
        if pa.types.is_integer(col.type):
            col = col.cast(pa.string())
        elif not pa.types.is_string(col.type):
            raise TypeError(f"event id parts must be strings or integers, got {col.type}")
        parts.append(col)
    text = pc.binary_join_element_wise(pa.scalar(source), *parts, "\x1f").cast(pa.binary())
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    return _hex_ids(text.to_numpy(zero_copy_only=False))  # bytes objects: SipHash takes them without encoding


# ------------------------------------------------------------------------------------------- canonical tick
TICK_SCHEMA = pa.schema([
    pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),  # exchange event time
    pa.field("received_at", pa.timestamp("ns", tz="UTC"), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("instrument_id", pa.string(), nullable=False),
    pa.field("venue_symbol", pa.string(), nullable=False),
    pa.field("exchange", pa.string()),
    pa.field("event", pa.string(), nullable=False),  # one of EVENTS
    pa.field("price", pa.float64()),
    pa.field("size", pa.float64()),
    pa.field("bid", pa.float64()),
    pa.field("bid_size", pa.float64()),
    pa.field("ask", pa.float64()),
    pa.field("ask_size", pa.float64()),
    pa.field("vendor_seq", pa.int64()),
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("stream_seq", pa.int64(), nullable=False),  # JetStream sequence of the raw message
    # Extension (issue 13), appended so the columns above keep their positions; null where a vendor sends none.
    pa.field("conditions", pa.string()),  # trade conditions as the vendor sent them, comma-joined ("14,41", "@,F")
    pa.field("size_unit", pa.string()),  # unit of size / bid_size / ask_size when the vendor states one
    pa.field("ref_seq", pa.int64()),  # cancel / correction: the vendor_seq of the trade it cancels or corrects
])
# The core columns every destination has taken since the first release (CSV and PostgreSQL fan-out tables are
# declared with exactly these); TICK_ALL_COLUMNS adds the extension columns the lake and TICKS carry.
TICK_COLUMNS = [f.name for f in TICK_SCHEMA][:16]
TICK_EXTENSION_COLUMNS = ("conditions", "size_unit", "ref_seq")
TICK_ALL_COLUMNS = [f.name for f in TICK_SCHEMA]
# The order of a compacted day's rows, and of the lander's rolled landing files (so compaction sorts runs).
DAILY_SORT_COLUMNS = ("instrument_id", "ts", "event_id")
# trade, quote; mark (a mark price, in price), funding (a funding rate per interval, in price: a fraction, may be
# negative); cancel (a busted trade: ref_seq names it) and correction (the corrected values of the trade ref_seq
# names; vendor_seq is the corrected trade's id). Bars and statistics count event = 'trade' only.
EVENTS = ("trade", "quote", "mark", "funding", "cancel", "correction")
SIZE_UNITS = ("shares", "round_lots")
