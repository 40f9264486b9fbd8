"""Binance websocket frames (combined-stream `{"stream", "data"}` or raw single-stream) -> canonical ticks:
aggTrade and trade -> trade, bookTicker -> quote; depthUpdate, kline and other streams are ignored.

Never invent an exchange time: where Binance sends none, say so and use the connector's receipt time.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quant_platform.market.adapters.base import (
    TS_TYPE,
    Adapter,
    NormalizeResult,
    TickRejected,
    all_true,
    constant,
    event_ns,
    integer,
    parse_json,
    price,
    quote_tick,
    raw_lines,
    read_lines,
    resolve,
    resolve_column,
    size,
    trade_tick,
    ts_from_ms,
    valid_event_ns,
    valid_prices,
    valid_sizes,
)
from quant_platform.market.contracts import TICK_SCHEMA, RawFrame, event_id, event_ids_arrow
from quant_platform.market.instruments import InstrumentMaster

_TICK_KINDS = ("aggTrade", "trade", "bookTicker")

# The vectorised path (combined streams only): one read of every line's envelope, then one read per tick kind
# with that kind's schema (Binance gives the same letter different types in different events: "b" is a price
# string in bookTicker, a list of levels in depthUpdate, an order id in trade).
_S, _I = pa.string(), pa.int64()
_ENVELOPE = pa.schema([("stream", _S), ("data", pa.struct([("e", _S)]))])
_KIND_FIELDS = {  # kind -> (id field, {canonical column: Binance field}, whether T is required)
    "aggTrade": ("a", {"price": "p", "size": "q"}, True),
    "trade": ("t", {"price": "p", "size": "q"}, True),
    "bookTicker": ("u", {"bid": "b", "bid_size": "B", "ask": "a", "ask_size": "A"}, False),
}
_KIND_SCHEMAS = {kind: pa.schema([("data", pa.struct([("s", _S), (id_, _I), *((f, _S) for f in nums.values()),
                                                      ("T", _I)]))])
                 for kind, (id_, nums, _) in _KIND_FIELDS.items()}
_PRICES = ("price", "bid", "ask")  # > 0; the sizes >= 0
# Decimal text the way Binance writes it. Anything else ("1e-5", " 1", "NaN", a number instead of a string)
# goes to the per-frame path, whose number() decides; for this form Arrow's cast and float() agree exactly.
_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
_F64 = pa.float64()


def _stream_kind(stream: str) -> str:
    """'nknusdt@bookTicker' -> 'bookTicker', 'btcusdt@depth@100ms' -> 'depth', '!bookTicker' -> 'bookTicker'."""
    if stream.startswith("!"):
        return stream[1:].split("@", 1)[0]
    parts = stream.split("@", 2)
    return parts[1] if len(parts) > 1 else ""


class BinanceAdapter(Adapter):
    source = "binance"

    def __init__(self, source: str | None = None, exchange: str | None = None):
        super().__init__(source)
        self.exchange = exchange or self.source.upper()

    def _normalize(self, frame: RawFrame, master: InstrumentMaster) -> NormalizeResult:
        msg = parse_json(frame.payload)
        if type(msg) is not dict:
            raise TickRejected(f"frame is not a JSON object ({type(msg).__name__})")
        stream = msg.get("stream")
        if stream is not None:  # combined stream: {"stream": "<sym>@<kind>", "data": {...}}
            if type(stream) is not str:
                raise TickRejected("field 'stream': expected a string")
            data = msg["data"]
        elif "result" in msg and "id" in msg:  # reply to SUBSCRIBE / LIST_SUBSCRIPTIONS
            return NormalizeResult([], 1)
        else:  # raw single stream: the event itself
            data = msg
        if type(data) is not dict:  # e.g. the `!miniTicker@arr` streams send arrays: not ticks
            if type(data) is list:
                return NormalizeResult([], 1)
            raise TickRejected(f"field 'data': expected an object, got {type(data).__name__}")

        kind = data.get("e")
        if kind is None:
            # Quirk (Binance spot bookTicker): the payload has no "e", "E" or "T" field at all, so its kind
            # comes from the stream name, or from its shape on a raw single-stream connection.
            if stream is not None:
                kind = _stream_kind(stream)
            elif "u" in data and "b" in data and "a" in data and "B" in data and "A" in data:
                kind = "bookTicker"
        elif type(kind) is not str:
            raise TickRejected("field 'e': expected a string")
        if kind not in _TICK_KINDS:
            return NormalizeResult([], 1)  # depthUpdate, kline, 24hrTicker, ...: valid, not ticks

        sym = data["s"]
        iid = resolve(master, self.source, sym)
        received = frame.received_at_ns
        if kind == "aggTrade":
            agg_id = integer(data["a"], "a")
            # "m" (buyer is maker) and "f"/"l" (first/last raw trade ids) are not part of the canonical tick.
            tick = trade_tick(ts_from_ms(data["T"], "T"), received, self.source, iid, sym, self.exchange,
                              price(data["p"], "p"), size(data["q"], "q"), agg_id,
                              event_id(self.source, "aggTrade", sym, agg_id))
        elif kind == "trade":
            trade_id = integer(data["t"], "t")
            tick = trade_tick(ts_from_ms(data["T"], "T"), received, self.source, iid, sym, self.exchange,
                              price(data["p"], "p"), size(data["q"], "q"), trade_id,
                              event_id(self.source, "trade", sym, trade_id))
        else:  # bookTicker
            update_id = integer(data["u"], "u")
            if "T" in data:  # futures bookTicker carries the transaction time
                ts = ts_from_ms(data["T"], "T")
            else:
                # Quirk (Binance spot bookTicker has no event time): ts is the connector's received_at, so it
                # includes network latency. event_id still uses only vendor fields (symbol, update id u).
                ts = event_ns(received, "received_at")
            tick = quote_tick(ts, received, self.source, iid, sym, self.exchange,
                              price(data["b"], "b"), size(data["B"], "B"),
                              price(data["a"], "a"), size(data["A"], "A"), update_id,
                              event_id(self.source, "bookTicker", sym, update_id))
        return NormalizeResult([tick], 0)

    # ------------------------------------------------------------------------------------- vectorised path
    def normalize_fast(self, data: bytes, line_seqs: np.ndarray, master: InstrumentMaster
                       ) -> tuple[pa.Table, np.ndarray] | None:
        lines = raw_lines(data)
        if lines is None:
            return None
        env = read_lines(lines.body, len(lines), _ENVELOPE)
        if env is None or env.column("stream").null_count or env.column("data").null_count:
            return None  # a raw single stream, a subscription reply, an array payload: frame by frame
        streams = env.column("stream").to_pylist()
        es = pc.struct_field(env.column("data"), "e").to_pylist()
        kinds = np.array([e if e is not None else _stream_kind(st) for st, e in zip(streams, es, strict=True)],
                         dtype=object)
        ignored = ~np.isin(kinds, _TICK_KINDS)
        rows: list[np.ndarray] = []
        tables: list[pa.Table] = []
        for kind in _TICK_KINDS:
            idx = np.flatnonzero(kinds == kind)
            if idx.size:
                table = self._kind_table(kind, idx, lines, line_seqs, master)
                if table is None:
                    return None
                rows.append(idx)
                tables.append(table)
        if not tables:
            return TICK_SCHEMA.empty_table(), ignored
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        if len(tables) > 1:  # back to line order, as the per-frame path emits them
            table = table.take(pa.array(np.argsort(np.concatenate(rows), kind="stable")))
        return table, ignored

    def _kind_table(self, kind: str, idx: np.ndarray, lines, line_seqs: np.ndarray, master: InstrumentMaster
                    ) -> pa.Table | None:
        body, starts, ends = lines.body, lines.starts, lines.ends
        sub = b"\n".join([body[starts[i]:ends[i]] for i in idx.tolist()])
        t = read_lines(sub, idx.size, _KIND_SCHEMAS[kind])
        if t is None:
            return None
        d = t.column("data")
        if d.null_count:
            return None
        id_field, num_fields, needs_t = _KIND_FIELDS[kind]
        sym, vendor_id, exch_ms = (pc.struct_field(d, f) for f in ("s", id_field, "T"))
        iid = resolve_column(master, self.source, sym)
        if iid is None or vendor_id.null_count or not all_true(pc.greater_equal(vendor_id, 0)):
            return None
        received = lines.received[idx]
        if exch_ms.null_count:
            if needs_t:
                return None
            missing = np.flatnonzero(pc.is_null(exch_ms).to_numpy(zero_copy_only=False))
            if any(b'"T"' in body[starts[i]:ends[i]] for i in idx[missing].tolist()):
                return None  # "T": null is a reject on the per-frame path, not an absent T
        received_col = pa.array(received, _I)
        ts = pc.multiply_checked(exch_ms, 1_000_000)  # ms -> ns; overflow raises: the per-frame path decides
        ts = pc.coalesce(ts, received_col)  # spot bookTicker: no event time, the receipt time
        if not valid_event_ns(ts):
            return None
        n = idx.size
        null_f64 = pa.nulls(n, _F64)
        numbers = dict.fromkeys(("price", "size", "bid", "bid_size", "ask", "ask_size"), null_f64)
        for column, field in num_fields.items():
            txt = pc.struct_field(d, field)
            if txt.null_count or not all_true(pc.match_substring_regex(txt, _DECIMAL)):
                return None
            values = txt.cast(_F64)
            if not (valid_prices(values) if column in _PRICES else valid_sizes(values)):
                return None
            numbers[column] = values
        columns = {
            "ts": ts.cast(TS_TYPE), "received_at": received_col.cast(TS_TYPE),
            "source": constant(self.source, n), "instrument_id": iid, "venue_symbol": sym,
            "exchange": constant(self.exchange, n), "event": constant("quote" if kind == "bookTicker" else "trade", n),
            **numbers,
            "vendor_seq": vendor_id,
            "event_id": event_ids_arrow(self.source, constant(kind, n), sym, vendor_id),
            "stream_seq": pa.array(line_seqs[idx], _I),
        }
        return pa.Table.from_arrays([columns[f.name] for f in TICK_SCHEMA], schema=TICK_SCHEMA)
