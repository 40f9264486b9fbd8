"""Alpaca market data frames (JSON arrays of messages; stocks v2 and crypto v1beta3) -> canonical ticks: T "t" ->
trade, T "q" -> quote, T "x" -> cancel, T "c" -> correction; control messages, bars, statuses and the rest are
ignored.

Never route Alpaca's nanosecond timestamps through float seconds or datetime: both lose the last digits.
"""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quant_platform.market.adapters.base import (
    ARRAY_KEY,
    MALFORMED,
    TS_TYPE,
    Adapter,
    NormalizeResult,
    TickRejected,
    all_true,
    array_events,
    conditions_text,
    constant,
    event_ns,
    integer,
    parse_json,
    price,
    quote_tick,
    reason_of,
    resolve,
    resolve_column,
    size,
    text,
    tick_table,
    trade_tick,
    valid_event_ns,
    valid_prices,
    valid_sizes,
    where,
)
from quant_platform.market.contracts import RawFrame, event_id, event_ids_arrow
from quant_platform.market.instruments import InstrumentMaster

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def rfc3339_to_ns(value: str) -> int:
    """Exact Unix nanoseconds from an RFC-3339 time with 0-9 fractional digits ('...21.670905508Z').

    Raises ValueError on anything else, including a leap second (:60), which Alpaca never sends."""
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise ValueError(f"not an RFC-3339 time: {value[:40]!r}")
    y, mo, d, hh, mi, ss, frac, sign, oh, om = m.groups()
    hour, minute, second = int(hh), int(mi), int(ss)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"time of day out of range: {value[:40]!r}")
    days = date(int(y), int(mo), int(d)).toordinal() - _EPOCH_ORDINAL  # validates month and day
    secs = days * 86_400 + hour * 3_600 + minute * 60 + second
    if sign is not None:
        off_h, off_m = int(oh), int(om)
        if off_h > 23 or off_m > 59:
            raise ValueError(f"UTC offset out of range: {value[:40]!r}")
        offset = off_h * 3_600 + off_m * 60
        secs -= offset if sign == "+" else -offset
    # Quirk (Alpaca v2): the fraction's length varies (".83915973Z" has 8 digits): pad it to nanoseconds.
    return secs * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)


# The vectorised path: every line's array read at once with the fields of trades and quotes; times of the form
# Alpaca sends ('2023-04-06T11:54:26.838232225Z', 0-9 fractional digits, Z) are read by Arrow and checked by writing
# the seconds back (a day or hour out of range does not survive), any other form goes frame by frame.
_S, _I, _F = pa.string(), pa.int64(), pa.float64()
_EVENT = pa.struct([("T", _S), ("S", _S), ("t", _S), ("i", _I), ("x", _S), ("p", _F), ("s", _F),
                    ("c", pa.list_(_S)), ("bx", _S), ("ax", _S), ("bp", _F), ("bs", _F), ("ap", _F), ("as", _F)])
_ARRAYS = pa.schema([(ARRAY_KEY, pa.list_(_EVENT))])
_TIME = r"^(?P<sec>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.(?P<frac>[0-9]{1,9}))?Z$"
_SEC_FORMAT = "%Y-%m-%dT%H:%M:%S"


def _times_ns(values) -> pa.Array | None:
    """RFC-3339 UTC times of the common form -> int64 ns, exactly as rfc3339_to_ns; None when any is not plain."""
    parts = pc.extract_regex(values, _TIME)
    if parts.null_count:
        return None
    sec = parts.field("sec")
    # Parsed and checked once per distinct second (a set of frames spans a few), not per event: strftime was a
    # fifth of the adapter's time.
    seconds = pc.unique(sec)
    parsed = pc.strptime(seconds, format=_SEC_FORMAT, unit="s", error_is_null=True)
    if parsed.null_count or not all_true(pc.equal(pc.strftime(parsed, format=_SEC_FORMAT), seconds)):
        return None  # 2023-02-30 or 24:00:00: strptime rolls them over, writing back tells
    secs = parsed.take(pc.index_in(sec, value_set=seconds))
    frac = pc.utf8_rpad(parts.field("frac"), 9, "0").cast(_I)
    return pc.add(pc.multiply(secs.cast(_I), 1_000_000_000), frac)


def _float_text(values) -> pa.Array:
    """str() of each float, as event_id writes a Python float. Arrow's cast writes the same shortest round-trip
    digits, without Python's ".0" on a whole number ("100" for 100.0), and inside [1e-4, 1e9) (and 0) in the same
    plain notation (outside it the two switch to exponents at other points): there it is Arrow's text with ".0"
    added to whole numbers, elsewhere (never a price or size seen yet) Python's str() of each value."""
    plain = pc.or_(pc.equal(values, 0.0), pc.and_(pc.greater_equal(values, 1e-4), pc.less(values, 1e9)))
    if not all_true(plain):
        return pa.array([str(v) for v in values.to_pylist()], _S)
    text = values.cast(_S)
    whole = pc.invert(pc.match_substring(text, "."))
    return pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), text)


def _ts(value: object) -> int:
    if type(value) is not str:
        raise TickRejected(f"field 't': expected an RFC-3339 string, got {type(value).__name__}")
    try:
        ns = rfc3339_to_ns(value)
    except ValueError as exc:
        raise TickRejected(f"field 't': {exc}") from None
    return event_ns(ns, "t")


class AlpacaAdapter(Adapter):
    source = "alpaca"

    def _normalize(self, frame: RawFrame, master: InstrumentMaster) -> NormalizeResult:
        msgs = parse_json(frame.payload)
        if type(msgs) is not list:
            raise TickRejected(f"frame is not a JSON array ({type(msgs).__name__})")
        if not msgs:
            return NormalizeResult([], 1)
        received = frame.received_at_ns
        ticks: list[dict] = []
        at: list[int] = []
        rejects: list[tuple[int, str]] = []
        ignored = 0
        for n, msg in enumerate(msgs):
            try:
                tick = self._message(n, msg, received, master)
            except (TickRejected, *MALFORMED) as exc:
                rejects.append((n, reason_of(exc)))
                continue
            if tick is None:
                ignored += 1  # success, subscription, error, b/d/u bars, s statuses, l LULD, o orderbooks, ...
            else:
                ticks.append(tick)
                at.append(n)
        return NormalizeResult(ticks, ignored, rejects, at)

    def _message(self, n: int, msg: object, received: int, master: InstrumentMaster) -> dict | None:
        if type(msg) is not dict:
            raise TickRejected(f"message {n}: expected an object, got {type(msg).__name__}")
        kind = msg["T"]
        source = self.source
        if kind == "t":
            sym = msg["S"]
            iid = resolve(master, source, sym)
            ts = _ts(msg["t"])
            trade_id = integer(msg["i"], "i")  # unique per symbol, exchange and day
            exchange = _venue(msg, sym, "x")
            # The stock event id is unchanged since the first release: (symbol, exchange, id, time).
            return trade_tick(ts, received, source, iid, sym, exchange, price(msg["p"], "p"), size(msg["s"], "s"),
                              trade_id, event_id(source, "t", sym, exchange or "", trade_id, ts),
                              conditions=conditions_text(msg.get("c"), "c"))
        if kind == "q":
            sym = msg["S"]
            iid = resolve(master, source, sym)
            ts = _ts(msg["t"])
            bx = _venue(msg, sym, "bx")
            ax = _venue(msg, sym, "ax")
            # One exchange column: the venue when both sides quote from one, else "<bid>/<ask>" (NBBO).
            exchange = bx if bx == ax else f"{bx}/{ax}"
            bid, bid_size = price(msg["bp"], "bp"), size(msg["bs"], "bs")
            ask, ask_size = price(msg["ap"], "ap"), size(msg["as"], "as")
            # Alpaca quotes carry no id or sequence: the id is the quote's full content at its nanosecond.
            return quote_tick(ts, received, source, iid, sym, exchange, bid, bid_size, ask, ask_size, None,
                              event_id(source, "q", sym, ts, bx or "", bid, bid_size, ax or "", ask, ask_size))
        if kind == "x":
            # Trade cancel/error (docs "Real-time Stock Data", Trade Cancels/Errors): i is the id of the trade it
            # cancels on exchange x; "a" is "C" (cancel) or "E" (error): either way the trade did not happen.
            sym = msg["S"]
            iid = resolve(master, source, sym)
            ts = _ts(msg["t"])
            trade_id = integer(msg["i"], "i")
            exchange = text(msg["x"], "x")
            action = text(msg["a"], "a")
            return trade_tick(ts, received, source, iid, sym, exchange, price(msg["p"], "p"), size(msg["s"], "s"),
                              None, event_id(source, "x", sym, exchange, trade_id, ts, action),
                              event="cancel", ref_seq=trade_id)
        if kind == "c":
            # Trade correction (docs "Real-time Stock Data", Trade Corrections): the trade oi on exchange x is
            # replaced by ci with price cp, size cs and conditions cc; compaction applies it to the day's trades.
            sym = msg["S"]
            iid = resolve(master, source, sym)
            ts = _ts(msg["t"])
            exchange = text(msg["x"], "x")
            original, corrected = integer(msg["oi"], "oi"), integer(msg["ci"], "ci")
            return trade_tick(ts, received, source, iid, sym, exchange, price(msg["cp"], "cp"), size(msg["cs"], "cs"),
                              corrected, event_id(source, "c", sym, exchange, original, corrected, ts),
                              conditions=conditions_text(msg.get("cc"), "cc"), event="correction", ref_seq=original)
        if type(kind) is str:
            return None
        raise TickRejected(f"message {n}: field 'T': expected a string")

    # ------------------------------------------------------------------------------------- vectorised path
    def normalize_fast(self, data: bytes, line_seqs: np.ndarray, master: InstrumentMaster
                       ) -> tuple[pa.Table, np.ndarray] | None:
        """Frames whose every message is a trade (t) or a quote (q) with plainly valid fields; anything else
        (control messages, bars, cancels, corrections, an empty array, a reject) goes frame by frame."""
        read = array_events(data, _ARRAYS)
        if read is None:
            return None
        ev, line_of, lines = read
        kind, sym = ev.field("T"), ev.field("S")
        is_t, is_q = pc.equal(kind, "t"), pc.equal(kind, "q")
        if kind.null_count or not all_true(pc.or_(is_t, is_q)):
            return None
        n = len(ev)
        iid = resolve_column(master, self.source, sym)
        if iid is None or ev.field("t").null_count:
            return None
        ts = _times_ns(ev.field("t"))
        if ts is None or not valid_event_ns(ts):
            return None
        t_mask = is_t.to_numpy(zero_copy_only=False)
        n_t = int(t_mask.sum())
        f = {name: ev.field(name) for name in ("i", "x", "p", "s", "c", "bx", "ax", "bp", "bs", "ap", "as")}
        if n_t:
            ids_ = f["i"].filter(is_t)
            if ids_.null_count or not all_true(pc.greater_equal(ids_, 0)):
                return None
            if not (valid_prices(f["p"], is_t) and valid_sizes(f["s"], is_t)
                    and _venues(ev, is_t, ("x",), lines, line_of)):
                return None
            cond = f["c"].filter(is_t)
            if cond.null_count < len(cond) and pc.any(pc.match_substring(pc.list_flatten(cond), ",")).as_py():
                return None
            if cond.null_count < len(cond) and pc.list_flatten(cond).null_count:
                return None
        if n - n_t:
            if not (valid_prices(f["bp"], is_q) and valid_prices(f["ap"], is_q) and valid_sizes(f["bs"], is_q)
                    and valid_sizes(f["as"], is_q) and _venues(ev, is_q, ("bx", "ax"), lines, line_of)):
                return None
            # One side's venue without the other (a pair quoting "bx" only): the per-frame path writes it as it
            # formats it ("K/None"); such a quote goes frame by frame.
            if not all_true(pc.equal(pc.is_null(f["bx"].filter(is_q)), pc.is_null(f["ax"].filter(is_q)))):
                return None
        bx_or_empty, ax_or_empty = (pc.fill_null(f[k], "") for k in ("bx", "ax"))
        quote_exch = pc.if_else(pc.equal(bx_or_empty, ax_or_empty), f["bx"],
                                pc.binary_join_element_wise(bx_or_empty, ax_or_empty, "/"))
        exchange = pc.if_else(is_t, f["x"], quote_exch)
        ids = np.empty(n, dtype=object)
        if n_t:
            ids[t_mask] = event_ids_arrow(self.source, constant("t", n_t), sym.filter(is_t),
                                          pc.fill_null(f["x"], "").filter(is_t), f["i"].filter(is_t),
                                          ts.filter(is_t)).to_numpy(zero_copy_only=False)
        if n - n_t:
            q = {k: f[k].filter(is_q) for k in ("bp", "bs", "ap", "as")}
            ids[~t_mask] = event_ids_arrow(
                self.source, constant("q", n - n_t), sym.filter(is_q), ts.filter(is_q), bx_or_empty.filter(is_q),
                _float_text(q["bp"]), _float_text(q["bs"]), ax_or_empty.filter(is_q), _float_text(q["ap"]),
                _float_text(q["as"])).to_numpy(zero_copy_only=False)
        conditions = pa.nulls(n, _S)
        if n_t:
            joined = pc.binary_join(f["c"], ",")
            conditions = where(pc.and_(is_t, pc.greater(pc.utf8_length(joined), 0)), joined, _S)
        columns = {
            "ts": ts.cast(TS_TYPE), "received_at": pa.array(lines.received[line_of], _I).cast(TS_TYPE),
            "source": constant(self.source, n), "instrument_id": iid, "venue_symbol": sym,
            "exchange": exchange, "event": pc.if_else(is_t, "trade", "quote"),
            "price": where(is_t, f["p"], _F), "size": where(is_t, f["s"], _F),
            "bid": where(is_q, f["bp"], _F), "bid_size": where(is_q, f["bs"], _F),
            "ask": where(is_q, f["ap"], _F), "ask_size": where(is_q, f["as"], _F),
            "vendor_seq": where(is_t, f["i"], _I), "event_id": pa.array(ids, _S),
            "stream_seq": pa.array(line_seqs[line_of], _I), "conditions": conditions,
        }
        return tick_table(columns, n), np.zeros(len(lines), dtype=bool)


def _venues(ev, rows, names: tuple[str, ...], lines, line_of: np.ndarray) -> bool:
    """The venue fields of `rows` are plain: a non-empty string, or absent on a crypto pair (a slash in the symbol)
    in a line where the field's name appears nowhere (an explicit null is a reject on the per-frame path)."""
    sym = ev.field("S")
    for name in names:
        col = ev.field(name)
        missing = pc.and_(rows, pc.is_null(col))
        present = pc.and_(rows, pc.is_valid(col))
        if not all_true(pc.or_kleene(pc.invert(present), pc.greater(pc.utf8_length(col), 0))):
            return False
        miss = missing.to_numpy(zero_copy_only=False)
        if miss.any():
            if not all_true(pc.match_substring(sym.filter(missing), "/")):
                return False
            key = b'"%s"' % name.encode()
            if any(key in lines.body[lines.starts[i]:lines.ends[i]] for i in np.unique(line_of[miss]).tolist()):
                return False
    return True


def _venue(msg: dict, sym: object, name: str) -> str | None:
    """The exchange code of a stock message; None for crypto.

    Quirk (Alpaca crypto v1beta3, docs "Real-time Crypto Data"): trades and quotes carry no exchange fields (x,
    bx, ax), no conditions and no tape: the venue is Alpaca's own exchange. Crypto symbols are pairs with a slash
    ("BTC/USD"), stock symbols never have one, so a missing exchange is accepted only on a pair."""
    if name not in msg and type(sym) is str and "/" in sym:
        return None
    return text(msg[name], name)
