"""Alpaca market data v2 stock frames (JSON arrays of messages) -> canonical ticks: T "t" -> trade,
T "q" -> quote; control messages (success, subscription, error), bars, statuses and the rest are ignored.

Never route Alpaca's nanosecond timestamps through float seconds or datetime: both lose the last digits.
"""

from __future__ import annotations

import re
from datetime import date

from quant_platform.market.adapters.base import (
    Adapter,
    NormalizeResult,
    TickRejected,
    event_ns,
    integer,
    parse_json,
    price,
    quote_tick,
    resolve,
    size,
    text,
    trade_tick,
)
from quant_platform.market.contracts import RawFrame, event_id
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
        source = self.source
        received = frame.received_at_ns
        ticks: list[dict] = []
        ignored = 0
        for n, msg in enumerate(msgs):
            if type(msg) is not dict:
                raise TickRejected(f"message {n}: expected an object, got {type(msg).__name__}")
            kind = msg["T"]
            if kind == "t":
                sym = msg["S"]
                iid = resolve(master, source, sym)
                ts = _ts(msg["t"])
                trade_id = integer(msg["i"], "i")  # unique per symbol, exchange and day
                exchange = text(msg["x"], "x")
                ticks.append(trade_tick(ts, received, source, iid, sym, exchange, price(msg["p"], "p"),
                                        size(msg["s"], "s"), trade_id,
                                        event_id(source, "t", sym, exchange, trade_id, ts)))
            elif kind == "q":
                sym = msg["S"]
                iid = resolve(master, source, sym)
                ts = _ts(msg["t"])
                bx = text(msg["bx"], "bx")
                ax = text(msg["ax"], "ax")
                # One exchange column: the venue when both sides quote from one, else "<bid>/<ask>" (NBBO).
                exchange = bx if bx == ax else f"{bx}/{ax}"
                bid, bid_size = price(msg["bp"], "bp"), size(msg["bs"], "bs")
                ask, ask_size = price(msg["ap"], "ap"), size(msg["as"], "as")
                # Alpaca quotes carry no id or sequence: the id is the quote's full content at its nanosecond.
                ticks.append(quote_tick(ts, received, source, iid, sym, exchange, bid, bid_size, ask, ask_size,
                                        None, event_id(source, "q", sym, ts, bx, bid, bid_size, ax, ask,
                                                       ask_size)))
            elif type(kind) is str:
                ignored += 1  # success, subscription, error, b/d/u bars, s statuses, l LULD, c, x, ...
            else:
                raise TickRejected(f"message {n}: field 'T': expected a string")
        return NormalizeResult(ticks, ignored)
