"""Massive (formerly Polygon.io) stocks websocket frames (JSON arrays of events) -> canonical ticks: ev "T" ->
trade (conditions kept), ev "Q" -> quote (size unit recorded); status messages and aggregates are ignored.

Never translate Massive's numeric exchange or condition ids here: they are kept as the vendor sent them.
"""

from __future__ import annotations

from quant_platform.market.adapters.base import (
    MALFORMED,
    Adapter,
    NormalizeResult,
    TickRejected,
    conditions_text,
    integer,
    parse_json,
    price,
    quote_tick,
    reason_of,
    resolve,
    size,
    trade_tick,
    ts_from_ms,
)
from quant_platform.market.contracts import RawFrame, event_id
from quant_platform.market.instruments import InstrumentMaster

# Quirk (Massive quote sizes, vendor notice "Upcoming Changes to Bid and Ask Sizes in Stocks Quotes", 2025-10-27,
# https://polygon.io/blog/change-stocks-quotes-round-lots-to-shares): "On November 3, 2025 ... we will begin
# publishing bid_size and ask_size values in shares instead of round lots across all Stocks Quotes REST API,
# WebSocket feed, and Flat Files" (SEC Market Data Infrastructure rules; the SIPs made the same change that day,
# UTP Vendor Alert #2025-10). Before, `bs`/`as` counted round lots (100 shares for most stocks; Massive's ws
# quotes page still describes lots). The unit is recorded per tick from the quote's own time: a quote of
# 2025-11-03 or later (New York trading day, from 00:00 ET = 05:00 UTC) is in shares. Trade sizes `s` were
# always shares.
SHARES_FROM_NS = 1_762_146_000 * 1_000_000_000  # 2025-11-03T05:00:00Z = 2025-11-03 00:00 America/New_York (EST)
ROUND_LOTS, SHARES = "round_lots", "shares"

# Massive's stock sale conditions whose consolidated update rules say a trade does not set the high/low, the
# open/close (last) or the volume: `GET /v3/reference/conditions?asset_class=stocks` (docs:
# https://massive.com/docs/rest/stocks/market-operations/condition-codes), field update_rules.consolidated. Only
# ids established from the vendor's listing are here (see SOURCES.md "Massive condition rules"); any other id is
# eligible for everything (an unknown code must never hide a real trade). Ids are per data type: these are the
# trade (sale_condition) ids, which is what the `c` of a trade event holds.
#   id: (updates_high_low, updates_open_close, updates_volume)
CONDITION_RULES: dict[int, tuple[bool, bool, bool]] = {
    2: (False, False, True),    # Average Price Trade
    5: (True, False, True),     # Bunched Sold Trade
    7: (False, False, True),    # Cash Sale
    10: (True, False, True),    # Derivatively Priced
    12: (False, False, True),   # Form T / Extended Hours
    13: (False, False, True),   # Extended Hours (Sold Out Of Sequence)
    16: (False, False, False),  # Market Center Official Open
    32: (True, False, True),    # Sold (Out Of Sequence)
    37: (False, False, True),   # Odd Lot Trade
    38: (True, True, False),    # Corrected Consolidated Close (per listing market)
}
NO_HIGH_LOW = tuple(str(c) for c, r in sorted(CONDITION_RULES.items()) if not r[0])
NO_OPEN_CLOSE = tuple(str(c) for c, r in sorted(CONDITION_RULES.items()) if not r[1])
NO_VOLUME = tuple(str(c) for c, r in sorted(CONDITION_RULES.items()) if not r[2])


def _exchange(value: object, name: str) -> str:
    return str(integer(value, name))


class PolygonAdapter(Adapter):
    source = "polygon"
    # The condition codes of this format, for bars and daily statistics (daily_checks reads them by format).
    bar_exclusions = {"high_low": NO_HIGH_LOW, "open_close": NO_OPEN_CLOSE, "volume": NO_VOLUME}

    def _normalize(self, frame: RawFrame, master: InstrumentMaster) -> NormalizeResult:
        events = parse_json(frame.payload)
        if type(events) is not list:
            raise TickRejected(f"frame is not a JSON array ({type(events).__name__})")
        if not events:
            return NormalizeResult([], 1)
        received = frame.received_at_ns
        ticks: list[dict] = []
        at: list[int] = []
        rejects: list[tuple[int, str]] = []
        ignored = 0
        for n, ev in enumerate(events):
            try:
                tick = self._event(n, ev, received, master)
            except (TickRejected, *MALFORMED) as exc:
                rejects.append((n, reason_of(exc)))
                continue
            if tick is None:
                ignored += 1  # status, A/AM aggregates, LULD, NOI, ...: valid, not ticks
            else:
                ticks.append(tick)
                at.append(n)
        return NormalizeResult(ticks, ignored, rejects, at)

    def _event(self, n: int, ev: object, received: int, master: InstrumentMaster) -> dict | None:
        if type(ev) is not dict:
            raise TickRejected(f"event {n}: expected an object, got {type(ev).__name__}")
        kind = ev["ev"]
        source = self.source
        if kind == "T":
            sym = ev["sym"]
            iid = resolve(master, source, sym)
            trade_id = ev["i"]  # a string in Massive's feed ("5096"); unique per ticker, exchange and day
            if type(trade_id) not in (str, int) or trade_id == "":
                raise TickRejected(f"event {n}: field 'i': expected a trade id")
            ts = ts_from_ms(ev["t"], "t")
            seq = integer(ev["q"], "q")
            exchange = _exchange(ev["x"], "x")
            # Quirk (Massive trades): "c" is left out when a trade has no condition (a regular sale).
            return trade_tick(ts, received, source, iid, sym, exchange, price(ev["p"], "p"), size(ev["s"], "s"), seq,
                              event_id(source, "T", sym, exchange, trade_id, ts, seq),
                              conditions=conditions_text(ev.get("c"), "c"), size_unit=SHARES)
        if kind == "Q":
            sym = ev["sym"]
            iid = resolve(master, source, sym)
            ts = ts_from_ms(ev["t"], "t")
            seq = integer(ev["q"], "q")
            bx = _exchange(ev["bx"], "bx")
            ax = _exchange(ev["ax"], "ax")
            # One exchange column: the venue when both sides quote from one, else "<bid>/<ask>" (NBBO).
            exchange = bx if bx == ax else f"{bx}/{ax}"
            return quote_tick(ts, received, source, iid, sym, exchange,
                              price(ev["bp"], "bp"), size(ev["bs"], "bs"),
                              price(ev["ap"], "ap"), size(ev["as"], "as"), seq,
                              event_id(source, "Q", sym, ts, seq),
                              size_unit=SHARES if ts >= SHARES_FROM_NS else ROUND_LOTS)
        if type(kind) is str:
            return None
        raise TickRejected(f"event {n}: field 'ev': expected a string")
