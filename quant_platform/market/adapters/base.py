"""What every vendor adapter shares: the Adapter interface, the typed rejection, and the field checks that
turn vendor values into canonical tick values (int ns UTC, finite floats, resolved instrument ids).

Never let a malformed value through as a tick, and never raise anything but TickRejected out of normalize.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas  # noqa: F401 - pyarrow imports it lazily at the first numpy conversion (~0.7 s): pay at start
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from quant_platform.errors import QuantPlatformError
from quant_platform.market.contracts import TICK_SCHEMA, RawFrame
from quant_platform.market.instruments import InstrumentMaster


class TickRejected(QuantPlatformError):
    """A frame that cannot become canonical ticks; it goes to TICKS_DLQ with `reason`."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(slots=True)
class NormalizeResult:
    ticks: list[dict]  # canonical tick dicts: every TICK_SCHEMA column except stream_seq
    ignored: int  # vendor messages in the frame that are valid but not ticks (control, depth, bars, ...)
    # Events of a multi-event frame that could not become ticks: (event index in the frame, reason). The other
    # events of the frame are in `ticks`: one bad quote does not take the frame's trades down with it.
    rejects: list[tuple[int, str]] = field(default_factory=list)
    # For a multi-event frame: the event index of each tick (a redrive takes only the events it names). None: a
    # single-event frame (event 0).
    events: list[int] | None = None


# The messages an event's malformed values raise; each becomes a reason (never a traceback) via reason_of().
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError)


def reason_of(exc: BaseException) -> str:
    """The DLQ reason for an exception raised while reading one event or frame."""
    if isinstance(exc, TickRejected):
        return exc.reason
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return f"malformed frame ({exc.__class__.__name__}: {_short(exc)})"


class Adapter:
    """One vendor frame format -> canonical ticks. An event is all or nothing: a bad event of a multi-event frame
    (Polygon, Alpaca arrays) is rejected with its index and reason while the frame's good events become ticks; a
    frame that cannot be read at all is rejected whole. The DLQ keeps the frame exactly as the vendor sent it, with
    the indices, so a redrive after a fix takes back exactly the rejected events."""

    source: str = ""

    def __init__(self, source: str | None = None):
        if source is not None:
            self.source = source

    def normalize(self, frame: RawFrame, master: InstrumentMaster) -> NormalizeResult:
        try:
            return self._normalize(frame, master)
        except TickRejected:
            raise
        except MALFORMED as exc:
            raise TickRejected(reason_of(exc)) from None

    def _normalize(self, frame: RawFrame, master: InstrumentMaster) -> NormalizeResult:
        raise NotImplementedError

    def normalize_fast(self, data: bytes, line_seqs: np.ndarray, master: InstrumentMaster
                       ) -> tuple[pa.Table, np.ndarray] | None:
        """Optional vectorised path for raw messages joined by newlines (`line_seqs`: the raw stream sequence of
        each line): (TICK_SCHEMA table with stream_seq from line_seqs, boolean mask of the lines that were valid
        non-tick events) when every frame is plainly valid, else None and the per-frame path decides, with a
        reason per frame. It must give the very rows the per-frame path gives (tests compare both)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source!r})"


# ----------------------------------------------------------------------------------------- field checks
# Event times outside [1990, 2100) are unit mistakes (seconds sent as ms, ms as ns), not market data.
TS_MIN_NS = 631_152_000 * 1_000_000_000
TS_MAX_NS = 4_102_444_800 * 1_000_000_000
_INT64_MAX = (1 << 63) - 1


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


_loads = json.JSONDecoder().decode


def parse_json(payload: bytes) -> Any:
    try:
        # Vendors send UTF-8; decoding first skips json's encoding detection on bytes (hot path).
        return _loads(payload.decode("utf-8") if type(payload) is bytes else payload)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise TickRejected(f"bad JSON ({exc.__class__.__name__}: {_short(exc)})") from None


def number(value: Any, name: str) -> float:
    """A finite float from a JSON number or a decimal string (Binance sends prices as strings)."""
    kind = type(value)
    if kind is float:
        x = value
    elif kind is int:  # bool is not int here: `type(True) is bool`
        try:
            x = float(value)
        except OverflowError:
            raise TickRejected(f"field {name!r}: number out of range") from None
    elif kind is str:
        if "_" in value:  # float() accepts "1_000"; no vendor does
            raise TickRejected(f"field {name!r}: not a number: {value[:40]!r}")
        try:
            x = float(value)
        except ValueError:
            raise TickRejected(f"field {name!r}: not a number: {value[:40]!r}") from None
    else:
        raise TickRejected(f"field {name!r}: expected a number, got {kind.__name__}")
    if x - x != 0.0:  # NaN and +-inf (json.loads accepts the NaN and Infinity literals)
        raise TickRejected(f"field {name!r}: not finite: {value!r}")
    return x


def price(value: Any, name: str) -> float:
    x = number(value, name)
    if x <= 0.0:
        raise TickRejected(f"field {name!r}: price must be > 0, got {value!r}")
    return x


def size(value: Any, name: str) -> float:
    x = number(value, name)
    if x < 0.0:
        raise TickRejected(f"field {name!r}: size must be >= 0, got {value!r}")
    return x


def integer(value: Any, name: str) -> int:
    """A non-negative JSON integer that fits int64 (vendor ids, sequence numbers, exchange ids)."""
    if type(value) is not int:
        raise TickRejected(f"field {name!r}: expected an integer, got {type(value).__name__}")
    if not 0 <= value <= _INT64_MAX:
        raise TickRejected(f"field {name!r}: integer out of range 0..2^63-1: {str(value)[:30]}")
    return value


def text(value: Any, name: str) -> str:
    if type(value) is not str or not value:
        raise TickRejected(f"field {name!r}: expected a non-empty string, got {type(value).__name__}")
    return value


def event_ns(ns: int, name: str) -> int:
    if not TS_MIN_NS <= ns < TS_MAX_NS:
        raise TickRejected(f"field {name!r}: timestamp out of range 1990..2100: {ns} ns")
    return ns


def ts_from_ms(value: Any, name: str) -> int:
    if type(value) is not int:
        raise TickRejected(f"field {name!r}: expected integer Unix milliseconds, got {type(value).__name__}")
    return event_ns(value * 1_000_000, name)


def ts_from_ns(value: Any, name: str) -> int:
    if type(value) is not int:
        raise TickRejected(f"field {name!r}: expected integer Unix nanoseconds, got {type(value).__name__}")
    return event_ns(value, name)


def resolve(master: InstrumentMaster, source: str, venue_symbol: Any) -> str:
    """The instrument id for a venue symbol; TickRejected('unknown symbol <source>:<sym>') when unmapped."""
    if type(venue_symbol) is not str or not venue_symbol:
        raise TickRejected(f"symbol: expected a non-empty string, got {type(venue_symbol).__name__}")
    iid = master.resolve(source, venue_symbol)
    if iid is None:
        raise TickRejected(f"unknown symbol {source}:{venue_symbol[:64]}")
    return iid


# ----------------------------------------------------------------------------------------- tick builders
def trade_tick(ts: int, received_at: int, source: str, instrument_id: str, venue_symbol: str,
               exchange: str | None, price_: float, size_: float, vendor_seq: int | None, eid: str, *,
               conditions: str | None = None, size_unit: str | None = None, event: str = "trade",
               ref_seq: int | None = None) -> dict:
    """A trade (or, with `event`, a price-and-size event of a trade: mark, funding, cancel, correction)."""
    return {"ts": ts, "received_at": received_at, "source": source, "instrument_id": instrument_id,
            "venue_symbol": venue_symbol, "exchange": exchange, "event": event, "price": price_,
            "size": size_, "bid": None, "bid_size": None, "ask": None, "ask_size": None,
            "vendor_seq": vendor_seq, "event_id": eid, "conditions": conditions, "size_unit": size_unit,
            "ref_seq": ref_seq}


def quote_tick(ts: int, received_at: int, source: str, instrument_id: str, venue_symbol: str,
               exchange: str | None, bid: float, bid_size: float, ask: float, ask_size: float,
               vendor_seq: int | None, eid: str, *, size_unit: str | None = None) -> dict:
    # bid > ask (a crossed quote) is recorded as sent: the quality checks flag it, the adapter does not judge.
    return {"ts": ts, "received_at": received_at, "source": source, "instrument_id": instrument_id,
            "venue_symbol": venue_symbol, "exchange": exchange, "event": "quote", "price": None,
            "size": None, "bid": bid, "bid_size": bid_size, "ask": ask, "ask_size": ask_size,
            "vendor_seq": vendor_seq, "event_id": eid, "conditions": None, "size_unit": size_unit,
            "ref_seq": None}


def conditions_text(value: Any, name: str) -> str | None:
    """Trade conditions as the vendor sent them, comma-joined: [14, 41] -> "14,41", ["@", "F"] -> "@,F"; absent or
    empty -> None. Each condition is kept as its text (Massive sends integers, Alpaca one-character strings)."""
    if value is None:
        return None
    if type(value) is not list:
        raise TickRejected(f"field {name!r}: expected a list of conditions, got {type(value).__name__}")
    out = []
    for c in value:
        kind = type(c)
        if kind is int or kind is str:
            text_ = str(c)
            if "," in text_:
                raise TickRejected(f"field {name!r}: a condition holds a comma: {text_[:20]!r}")
            out.append(text_)
        else:
            raise TickRejected(f"field {name!r}: expected integer or string conditions, got {kind.__name__}")
    return ",".join(out) if out else None


# ----------------------------------------------------------------------------------------- vectorised path
# The fast path reads a whole raw message with Arrow's JSON reader (C++, one call per message) instead of one
# json.loads and one dict per frame. Lines are `<received_at_ns> {...}`; numpy reads the 19-digit receipt
# times and blanks them out (JSON allows leading spaces), so Arrow sees one object per line.
RECEIVED_KEY = "received_at_ns"
TS_TYPE = TICK_SCHEMA.field("ts").type  # what the fast paths cast ns integers to
_HEAD = 19  # digits of a Unix-ns receipt time from 2001-09-09 to 2286-11-20; any other width takes the slow path
_POW10 = np.array([10 ** (_HEAD - 1 - i) for i in range(_HEAD)], dtype=np.uint64)
_INT64_MAX = np.uint64((1 << 63) - 1)
_READ_OPTIONS = pajson.ReadOptions(use_threads=False, block_size=4 << 20)


@dataclass(frozen=True, slots=True)
class RawLines:
    """A raw batch split for the vectorised path: receipt times, and the bytes with the heads blanked out."""

    received: np.ndarray  # int64 ns, one per line
    body: bytes  # the batch with every `<received_at_ns>` replaced by spaces: one JSON object per line
    starts: np.ndarray  # line i is body[starts[i]:ends[i]]
    ends: np.ndarray

    def __len__(self) -> int:
        return int(self.starts.size)


def _split_lines(data: bytes, opening: int):
    """(buffer, line starts, line ends, received_at) of a raw batch whose every line is `<19 digits> <opening>...`,
    with the digits blanked out of a copy of the buffer; None when a line is not so, or the batch is not UTF-8
    (the per-frame path rejects what is not UTF-8; so must the vectorised ones)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [buf.size]))
    if (ends - starts < _HEAD + 3).any():  # digits, space, the opening and closing brackets
        return None
    head = buf[starts[:, None] + np.arange(_HEAD + 2)]
    digits = head[:, :_HEAD] - np.uint8(48)  # not a digit -> > 9 (uint8 wraps)
    if (digits > 9).any() or (head[:, _HEAD] != 32).any() or (head[:, _HEAD + 1] != opening).any():
        return None
    received = digits.astype(np.uint64) @ _POW10
    if (received > _INT64_MAX).any():
        return None
    body = buf.copy()
    body[starts[:, None] + np.arange(_HEAD)] = 32
    return body, starts, ends, received.astype(np.int64)


def raw_lines(data: bytes) -> RawLines | None:
    """Split a raw batch, or None when any line is not `<19 digits> {...`, or the batch is not UTF-8."""
    split = _split_lines(data, ord("{"))
    if split is None:
        return None
    body, starts, ends, received = split
    return RawLines(received, body.tobytes(), starts, ends)


def selected_lines(lines: RawLines, idx: np.ndarray) -> bytes:
    """The lines `idx` (ascending) of a raw_lines body, "\n"-separated: a byte mask over the body (its lines
    tile it, one "\n" between two), not a Python slice per line."""
    if idx.size == len(lines):
        return lines.body
    if not idx.size:
        return b""
    chosen = np.zeros(len(lines), dtype=bool)
    chosen[idx] = True
    mask = np.repeat(chosen, lines.ends - lines.starts + 1)[:len(lines.body)]  # each line with its "\n"
    return np.frombuffer(lines.body, dtype=np.uint8)[mask].tobytes().rstrip(b"\n")


ARRAY_KEY = "a"  # array_lines wraps each line's JSON array as {"a": [...]}


def array_lines(data: bytes) -> RawLines | None:
    """Split a raw batch of array frames (Massive, Alpaca: `<received_at_ns> [...]`) for the vectorised path: each
    line's array becomes the one field ARRAY_KEY of an object (`{"a":[...]}`), so Arrow's JSON reader takes it; None
    when any line is not `<19 digits> [...`, or the batch is not UTF-8."""
    split = _split_lines(data, ord("["))
    if split is None:
        return None
    body, starts, ends, received = split
    opener = np.frombuffer(b'{"%s":' % ARRAY_KEY.encode(), dtype=np.uint8)
    body[starts[:, None] + np.arange(_HEAD + 1 - opener.size, _HEAD + 1)] = opener  # over the blanks before "["
    body = np.insert(body, ends, np.uint8(125))  # "}" at the end of every line
    shift = np.arange(starts.size)
    return RawLines(received, body.tobytes(), starts + shift, ends + shift + 1)


def array_events(data: bytes, schema: pa.Schema) -> tuple[pa.StructArray, np.ndarray, RawLines] | None:
    """The events of a batch of array frames read at once by Arrow (`schema`: ARRAY_KEY's list type), with the line
    of each event and the split lines; None when a line is not an array frame, an array is empty or null, or an
    event is null (the per-frame path then counts and explains the frame)."""
    lines = array_lines(data)
    if lines is None:
        return None
    table = read_lines(lines.body, len(lines), schema)
    if table is None:
        return None
    arrays = table.column(ARRAY_KEY).combine_chunks()
    if arrays.null_count or not all_true(pc.greater(pc.list_value_length(arrays), 0)):
        return None
    ev = pc.list_flatten(arrays)
    if ev.null_count:
        return None
    return ev, pc.list_parent_indices(arrays).to_numpy(), lines


def read_lines(body: bytes, n_lines: int, schema: pa.Schema) -> pa.Table | None:
    """Arrow's JSON reader over `n_lines` lines of one JSON object each, with the fields of `schema` (others
    ignored); None on any line it cannot read exactly (a wrong type, a duplicate key, two objects on a line,
    one object across two lines, ...)."""
    try:
        table = pajson.read_json(pa.BufferReader(pa.py_buffer(body)), read_options=_READ_OPTIONS,
                                 parse_options=pajson.ParseOptions(explicit_schema=schema,
                                                                   unexpected_field_behavior="ignore"))
    except (pa.ArrowException, ValueError):
        return None
    return table if table.num_rows == n_lines else None


def frames_table(data: bytes, schema: pa.Schema) -> pa.Table | None:
    """One row per line of a raw batch: column RECEIVED_KEY (int64 ns) + the fields of `schema` (others
    ignored), or None when any line is not `<19 digits> {one JSON object}` whose fields fit the schema's types
    (wrong type, duplicate key, bad UTF-8, two objects on a line, an empty line, ...): the per-frame path then
    takes the message and gives each bad frame its reason."""
    lines = raw_lines(data)
    table = read_lines(lines.body, len(lines), schema) if lines is not None else None
    if table is None:
        return None
    return table.add_column(0, RECEIVED_KEY, pa.array(lines.received, pa.int64()))


def all_true(mask: pa.Array | pa.ChunkedArray) -> bool:
    """Every value true, a null counting as false (Arrow's `all` would skip nulls)."""
    return mask.null_count == 0 and bool(pc.all(mask).as_py() is not False)


def valid_prices(values, rows=None) -> bool:
    """Finite and > 0 on every row where `rows` is true, or on every row (a null there fails)."""
    return _valid(values, pc.greater, rows)


def valid_sizes(values, rows=None) -> bool:
    """Finite and >= 0 on every row where `rows` is true, or on every row (a null there fails)."""
    return _valid(values, pc.greater_equal, rows)


def _valid(values, above_zero, rows) -> bool:
    ok = pc.and_(pc.is_finite(values), above_zero(values, 0.0))
    return all_true(ok if rows is None else pc.or_kleene(pc.invert(rows), ok))


def valid_event_ns(values) -> bool:
    """Every value non-null and inside [1990, 2100), as event_ns requires."""
    return all_true(pc.and_(pc.greater_equal(values, TS_MIN_NS), pc.less(values, TS_MAX_NS)))


def resolve_column(master: InstrumentMaster, source: str, symbols) -> pa.Array | None:
    """Instrument ids for a column of venue symbols, or None if any is null, empty or unmapped."""
    if symbols.null_count:
        return None
    uniq = pc.unique(symbols)
    ids = []
    for sym in uniq.to_pylist():
        iid = master.resolve(source, sym) if sym else None
        if iid is None:
            return None
        ids.append(iid)
    return pc.take(pa.array(ids, pa.string()), pc.index_in(symbols, value_set=uniq))


def constant(value: str, n: int) -> pa.Array:
    """A string column of `n` times `value` (one Arrow call, not a Python list of n)."""
    return pa.repeat(pa.scalar(value, pa.string()), n)


def where(mask, values, type_: pa.DataType):
    """`values` where mask is true, null elsewhere."""
    return pc.if_else(mask, values, pa.scalar(None, type_))


def tick_table(columns: dict, n: int) -> pa.Table:
    """A TICK_SCHEMA table from {column: array}; extension columns a fast path does not set are null."""
    arrays = []
    for f in TICK_SCHEMA:
        col = columns.get(f.name)
        arrays.append(col if col is not None else pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=TICK_SCHEMA)
