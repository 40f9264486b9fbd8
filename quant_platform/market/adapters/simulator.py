"""The platform's own market simulator frames (one JSON object per event, `t` in Unix ns) -> canonical ticks:
ev "T" -> trade, ev "Q" -> quote; any other ev (heartbeats) is ignored.

Never treat simulator ticks differently from vendor ticks: the same checks apply, so demos exercise them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quant_platform.market.adapters.base import (
    RECEIVED_KEY,
    TS_TYPE,
    Adapter,
    NormalizeResult,
    TickRejected,
    all_true,
    constant,
    frames_table,
    integer,
    parse_json,
    price,
    quote_tick,
    resolve,
    resolve_column,
    size,
    text,
    tick_table,
    trade_tick,
    ts_from_ns,
    valid_event_ns,
    valid_prices,
    valid_sizes,
    where,
)
from quant_platform.market.contracts import TICK_SCHEMA, RawFrame, event_id, event_ids_arrow
from quant_platform.market.instruments import InstrumentMaster

# The fields the simulator sends, typed as the per-frame path accepts them on the fast path (a price sent as a
# decimal string is valid too, but takes the per-frame path).
_FAST_SCHEMA = pa.schema([
    ("ev", pa.string()), ("sym", pa.string()), ("t", pa.int64()), ("seq", pa.int64()), ("x", pa.string()),
    ("p", pa.float64()), ("s", pa.float64()), ("bp", pa.float64()), ("bs", pa.float64()),
    ("ap", pa.float64()), ("as", pa.float64()),
])


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

    def normalize_fast(self, data: bytes, line_seqs: np.ndarray, master: InstrumentMaster
                       ) -> tuple[pa.Table, np.ndarray] | None:
        t = frames_table(data, _FAST_SCHEMA)
        if t is None or t.column("ev").null_count:
            return None
        ev = t.column("ev")
        is_tick = pc.or_(pc.equal(ev, "T"), pc.equal(ev, "Q")).to_numpy(zero_copy_only=False)
        ignored = ~is_tick  # heartbeats and other non-tick events
        if ignored.any():
            t = t.filter(is_tick)
            line_seqs = line_seqs[is_tick]
            ev = t.column("ev")
        if not t.num_rows:
            return TICK_SCHEMA.empty_table(), ignored
        sym, ts, seq, x = t.column("sym"), t.column("t"), t.column("seq"), t.column("x")
        is_trade = pc.equal(ev, "T")
        is_quote = pc.invert(is_trade)
        iid = resolve_column(master, self.source, sym)
        if (iid is None or not valid_event_ns(ts) or seq.null_count or not all_true(pc.greater_equal(seq, 0))
                or not all_true(pc.fill_null(pc.greater(pc.utf8_length(x), 0), True))  # "x": "" is rejected
                or not valid_prices(t.column("p"), is_trade) or not valid_sizes(t.column("s"), is_trade)
                or not valid_prices(t.column("bp"), is_quote) or not valid_sizes(t.column("bs"), is_quote)
                or not valid_prices(t.column("ap"), is_quote) or not valid_sizes(t.column("as"), is_quote)):
            return None
        n = t.num_rows
        f64 = pa.float64()
        columns = {
            "ts": ts.cast(TS_TYPE), "received_at": t.column(RECEIVED_KEY).cast(TS_TYPE),
            "source": constant(self.source, n), "instrument_id": iid, "venue_symbol": sym,
            "exchange": x, "event": pc.if_else(is_trade, "trade", "quote"),
            "price": where(is_trade, t.column("p"), f64), "size": where(is_trade, t.column("s"), f64),
            "bid": where(is_quote, t.column("bp"), f64), "bid_size": where(is_quote, t.column("bs"), f64),
            "ask": where(is_quote, t.column("ap"), f64), "ask_size": where(is_quote, t.column("as"), f64),
            "vendor_seq": seq,
            "event_id": event_ids_arrow(self.source, ev, sym, seq, ts),
            "stream_seq": pa.array(line_seqs, pa.int64()),
        }
        return tick_table(columns, n), ignored
