"""Binance websocket frames (combined-stream `{"stream", "data"}` or raw single-stream) -> canonical ticks:
aggTrade and trade -> trade, bookTicker -> quote; depthUpdate, kline and other streams are ignored.

Never invent an exchange time: where Binance sends none, say so and use the connector's receipt time.
"""

from __future__ import annotations

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
    trade_tick,
    ts_from_ms,
)
from quant_platform.market.contracts import RawFrame, event_id
from quant_platform.market.instruments import InstrumentMaster

_TICK_KINDS = ("aggTrade", "trade", "bookTicker")


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
