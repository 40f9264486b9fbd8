"""Alpaca market data frames (JSON arrays of messages; stocks v2 and crypto v1beta3) -> canonical ticks: T "t" ->
trade, T "q" -> quote, T "x" -> cancel, T "c" -> correction; control messages, bars, statuses and the rest are
ignored.

Never route Alpaca's nanosecond timestamps through float seconds or datetime: both lose the last digits.
"""

from __future__ import annotations

import re
from datetime import date

from quant_platform.market.adapters.base import (
    MALFORMED,
    Adapter,
    NormalizeResult,
    TickRejected,
    conditions_text,
    event_ns,
    integer,
    parse_json,
    price,
    quote_tick,
    reason_of,
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


def _venue(msg: dict, sym: object, name: str) -> str | None:
    """The exchange code of a stock message; None for crypto.

    Quirk (Alpaca crypto v1beta3, docs "Real-time Crypto Data"): trades and quotes carry no exchange fields (x,
    bx, ax), no conditions and no tape: the venue is Alpaca's own exchange. Crypto symbols are pairs with a slash
    ("BTC/USD"), stock symbols never have one, so a missing exchange is accepted only on a pair."""
    if name not in msg and type(sym) is str and "/" in sym:
        return None
    return text(msg[name], name)
