"""Polygon.io stocks websocket frames (JSON arrays of events) -> canonical ticks: ev "T" -> trade,
ev "Q" -> quote; status messages and aggregates are ignored.

Never translate Polygon's numeric exchange ids here: the id is kept as a string ('10'), as the vendor sent it.
"""

from __future__ import annotations

from quant_platform.market.adapters.base import (
    Adapter,
    NormalizeResult,
    TickRejected,
    integer,
    parse_json,
    price,
    quote_tick,
    resolve,
    size,
    trade_tick,
    ts_from_ms,
)
from quant_platform.market.contracts import RawFrame, event_id
from quant_platform.market.instruments import InstrumentMaster


def _exchange(value: object, name: str) -> str:
    return str(integer(value, name))


class PolygonAdapter(Adapter):
    source = "polygon"

    def _normalize(self, frame: RawFrame, master: InstrumentMaster) -> NormalizeResult:
        events = parse_json(frame.payload)
        if type(events) is not list:
            raise TickRejected(f"frame is not a JSON array ({type(events).__name__})")
        if not events:
            return NormalizeResult([], 1)
        source = self.source
        received = frame.received_at_ns
        ticks: list[dict] = []
        ignored = 0
        for n, ev in enumerate(events):
            if type(ev) is not dict:
                raise TickRejected(f"event {n}: expected an object, got {type(ev).__name__}")
            kind = ev["ev"]
            if kind == "T":
                sym = ev["sym"]
                iid = resolve(master, source, sym)
                trade_id = ev["i"]  # a string in Polygon's feed ("5096"); unique per ticker, exchange and day
                if type(trade_id) not in (str, int) or trade_id == "":
                    raise TickRejected(f"event {n}: field 'i': expected a trade id")
                ts = ts_from_ms(ev["t"], "t")
                seq = integer(ev["q"], "q")
                exchange = _exchange(ev["x"], "x")
                # "c" (conditions) may be missing on the real feed; it is not part of the canonical tick.
                ticks.append(trade_tick(ts, received, source, iid, sym, exchange, price(ev["p"], "p"),
                                        size(ev["s"], "s"), seq,
                                        event_id(source, "T", sym, exchange, trade_id, ts, seq)))
            elif kind == "Q":
                sym = ev["sym"]
                iid = resolve(master, source, sym)
                ts = ts_from_ms(ev["t"], "t")
                seq = integer(ev["q"], "q")
                bx = _exchange(ev["bx"], "bx")
                ax = _exchange(ev["ax"], "ax")
                # One exchange column: the venue when both sides quote from one, else "<bid>/<ask>" (NBBO).
                exchange = bx if bx == ax else f"{bx}/{ax}"
                # Quote sizes are passed through in the vendor's unit (see Polygon's docs for lots vs shares).
                ticks.append(quote_tick(ts, received, source, iid, sym, exchange,
                                        price(ev["bp"], "bp"), size(ev["bs"], "bs"),
                                        price(ev["ap"], "ap"), size(ev["as"], "as"), seq,
                                        event_id(source, "Q", sym, ts, seq)))
            elif type(kind) is str:
                ignored += 1  # status, A/AM aggregates, LULD, NOI, ...: valid, not ticks
            else:
                raise TickRejected(f"event {n}: field 'ev': expected a string")
        return NormalizeResult(ticks, ignored)
