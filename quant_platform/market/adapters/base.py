"""What every vendor adapter shares: the Adapter interface, the typed rejection, and the field checks that
turn vendor values into canonical tick values (int ns UTC, finite floats, resolved instrument ids).

Never let a malformed value through as a tick, and never raise anything but TickRejected out of normalize.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from quant_platform.errors import QuantPlatformError
from quant_platform.market.contracts import RawFrame
from quant_platform.market.instruments import InstrumentMaster


class TickRejected(QuantPlatformError):
    """A frame that cannot become canonical ticks; it goes to TICKS_DLQ with `reason`."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(slots=True)
class NormalizeResult:
    ticks: list[dict]  # canonical tick dicts: every TICK_COLUMNS column except stream_seq
    ignored: int  # vendor messages in the frame that are valid but not ticks (control, depth, bars, ...)


class Adapter:
    """One vendor frame format -> canonical ticks. A frame is all or nothing: any bad event rejects it whole,
    so the DLQ holds the frame exactly as the vendor sent it and a replay after a fix loses nothing."""

    source: str = ""

    def __init__(self, source: str | None = None):
        if source is not None:
            self.source = source

    def normalize(self, frame: RawFrame, master: InstrumentMaster) -> NormalizeResult:
        try:
            return self._normalize(frame, master)
        except TickRejected:
            raise
        except KeyError as exc:
            raise TickRejected(f"missing field {exc}") from None
        except (TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
            raise TickRejected(f"malformed frame ({exc.__class__.__name__}: {_short(exc)})") from None

    def _normalize(self, frame: RawFrame, master: InstrumentMaster) -> NormalizeResult:
        raise NotImplementedError

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
               exchange: str | None, price_: float, size_: float, vendor_seq: int | None, eid: str) -> dict:
    return {"ts": ts, "received_at": received_at, "source": source, "instrument_id": instrument_id,
            "venue_symbol": venue_symbol, "exchange": exchange, "event": "trade", "price": price_,
            "size": size_, "bid": None, "bid_size": None, "ask": None, "ask_size": None,
            "vendor_seq": vendor_seq, "event_id": eid}


def quote_tick(ts: int, received_at: int, source: str, instrument_id: str, venue_symbol: str,
               exchange: str | None, bid: float, bid_size: float, ask: float, ask_size: float,
               vendor_seq: int | None, eid: str) -> dict:
    # bid > ask (a crossed quote) is recorded as sent: the quality checks flag it, the adapter does not judge.
    return {"ts": ts, "received_at": received_at, "source": source, "instrument_id": instrument_id,
            "venue_symbol": venue_symbol, "exchange": exchange, "event": "quote", "price": None,
            "size": None, "bid": bid, "bid_size": bid_size, "ask": ask, "ask_size": ask_size,
            "vendor_seq": vendor_seq, "event_id": eid}
