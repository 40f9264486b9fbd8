"""The platform's own market simulator frames (one JSON object per event, `t` in Unix ns) -> canonical ticks:
ev "T" -> trade, ev "Q" -> quote; any other ev (heartbeats) is ignored.

Never treat simulator ticks differently from vendor ticks: the same checks apply, so demos exercise them.
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
    text,
    trade_tick,
    ts_from_ns,
)
from quant_platform.market.contracts import RawFrame, event_id
from quant_platform.market.instruments import InstrumentMaster


class SimulatorAdapter(Adapter):
    source = "simulator"

    def _normalize(self, frame: RawFrame, master: InstrumentMaster) -> NormalizeResult:
        ev = parse_json(frame.payload)
        if type(ev) is not dict:
            raise TickRejected(f"frame is not a JSON object ({type(ev).__name__})")
        kind = ev["ev"]
        if kind != "T" and kind != "Q":
            if type(kind) is not str:
                raise TickRejected("field 'ev': expected a string")
            return NormalizeResult([], 1)
        sym = ev["sym"]
        iid = resolve(master, self.source, sym)
        ts = ts_from_ns(ev["t"], "t")
        seq = integer(ev["seq"], "seq")
        exchange = text(ev["x"], "x") if ev.get("x") is not None else None  # optional venue label
        eid = event_id(self.source, kind, sym, seq, ts)
        if kind == "T":
            tick = trade_tick(ts, frame.received_at_ns, self.source, iid, sym, exchange,
                              price(ev["p"], "p"), size(ev["s"], "s"), seq, eid)
        else:
            tick = quote_tick(ts, frame.received_at_ns, self.source, iid, sym, exchange,
                              price(ev["bp"], "bp"), size(ev["bs"], "bs"),
                              price(ev["ap"], "ap"), size(ev["as"], "as"), seq, eid)
        return NormalizeResult([tick], 0)
