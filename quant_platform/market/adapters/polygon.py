"""Massive (formerly Polygon.io) stocks websocket frames (JSON arrays of events) -> canonical ticks: ev "T" ->
trade (conditions kept), ev "Q" -> quote (size unit recorded); status messages and aggregates are ignored.

Never translate Massive's numeric exchange or condition ids here: they are kept as the vendor sent them.
"""

from __future__ import annotations

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
    integer,
    parse_json,
    price,
    quote_tick,
    read_lines,
    reason_of,
    resolve,
    resolve_column,
    size,
    tick_table,
    trade_tick,
    ts_from_ms,
    valid_event_ns,
    valid_prices,
    valid_sizes,
    where,
)
from quant_platform.market.contracts import RawFrame, event_id, event_ids_arrow
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


# The vectorised path: every line's array read at once with the fields of trades and quotes (Arrow's reader refuses a
# value of another JSON type, e.g. a numeric trade id or a string price: such a batch goes frame by frame).
_S, _I, _F = pa.string(), pa.int64(), pa.float64()
# Quirk (Massive): "c" is a list of condition ids in a trade and one integer in a quote, so the trade conditions are
# read by themselves, from the lines without quotes (a line holding both goes frame by frame).
_EVENT = pa.struct([("ev", _S), ("sym", _S), ("i", _S), ("x", _I), ("p", _F), ("s", _F), ("t", _I), ("q", _I),
                    ("bx", _I), ("ax", _I), ("bp", _F), ("bs", _F), ("ap", _F), ("as", _F)])
_ARRAYS = pa.schema([(ARRAY_KEY, pa.list_(_EVENT))])
_CONDITIONS = pa.schema([(ARRAY_KEY, pa.list_(pa.struct([("c", pa.list_(_I))])))])


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

    # ------------------------------------------------------------------------------------- vectorised path
    def normalize_fast(self, data: bytes, line_seqs: np.ndarray, master: InstrumentMaster
                       ) -> tuple[pa.Table, np.ndarray] | None:
        """Frames whose every event is a trade (T) or a quote (Q) with plainly valid fields; anything else (an
        empty array, a status or aggregate event, a reject) goes frame by frame, which counts and explains it."""
        read = array_events(data, _ARRAYS)
        if read is None:
            return None
        ev, line_of, lines = read
        f = {name: ev.field(name) for name in ("ev", "sym", "i", "x", "p", "s", "t", "q", "bx", "ax",
                                                "bp", "bs", "ap", "as")}
        kind = f["ev"]
        is_t, is_q = pc.equal(kind, "T"), pc.equal(kind, "Q")
        if kind.null_count or not all_true(pc.or_(is_t, is_q)):
            return None
        n = len(ev)
        iid = resolve_column(master, self.source, f["sym"])
        if iid is None or f["t"].null_count or f["q"].null_count or not all_true(pc.greater_equal(f["q"], 0)):
            return None
        ts = pc.multiply_checked(f["t"], 1_000_000)
        if not valid_event_ns(ts):
            return None
        n_t = int(pc.sum(is_t).as_py() or 0)
        trades, quotes = (ev.filter(is_t), ev.filter(is_q))
        if n_t:
            tx, ti = trades.field("x"), trades.field("i")
            if (tx.null_count or ti.null_count or not all_true(pc.greater_equal(tx, 0))
                    or not all_true(pc.greater(pc.utf8_length(ti), 0))):
                return None
            if not valid_prices(f["p"], is_t) or not valid_sizes(f["s"], is_t):
                return None
            cond = self._conditions(lines, line_of, is_t)
            if cond is None:
                return None
        if n - n_t:
            for name in ("bx", "ax"):
                col = quotes.field(name)
                if col.null_count or not all_true(pc.greater_equal(col, 0)):
                    return None
            if not (valid_prices(f["bp"], is_q) and valid_prices(f["ap"], is_q) and valid_sizes(f["bs"], is_q)
                    and valid_sizes(f["as"], is_q)):
                return None
        x_txt, bx_txt, ax_txt = (f[k].cast(_S) for k in ("x", "bx", "ax"))
        quote_exch = pc.if_else(pc.equal(f["bx"], f["ax"]), bx_txt, pc.binary_join_element_wise(bx_txt, ax_txt, "/"))
        exchange = pc.if_else(is_t, x_txt, quote_exch)
        conditions = pa.nulls(n, _S)
        if n_t:
            cond_txt = pc.binary_join(cond.cast(pa.list_(_S)), ",")
            cond_txt = pc.if_else(pc.greater(pc.utf8_length(cond_txt), 0), cond_txt, pa.scalar(None, _S))
            t_mask = is_t.to_numpy(zero_copy_only=False)
            conditions = cond_txt if n_t == n else cond_txt.take(
                pa.array(np.cumsum(t_mask) - 1, _I, mask=~t_mask))  # trade rows in order, null on quote rows
        ids = np.empty(n, dtype=object)
        t_rows, q_rows = np.flatnonzero(is_t.to_numpy(zero_copy_only=False)), None
        if n_t:
            ids[t_rows] = event_ids_arrow(self.source, constant("T", n_t), trades.field("sym"), exchange.filter(is_t),
                                          trades.field("i"), ts.filter(is_t), trades.field("q")).to_numpy(
                zero_copy_only=False)
        if n - n_t:
            q_rows = np.flatnonzero(is_q.to_numpy(zero_copy_only=False))
            ids[q_rows] = event_ids_arrow(self.source, constant("Q", n - n_t), quotes.field("sym"), ts.filter(is_q),
                                          quotes.field("q")).to_numpy(zero_copy_only=False)
        unit = pc.if_else(pc.or_(is_t, pc.greater_equal(ts, SHARES_FROM_NS)), SHARES, ROUND_LOTS)
        columns = {
            "ts": ts.cast(TS_TYPE), "received_at": pa.array(lines.received[line_of], _I).cast(TS_TYPE),
            "source": constant(self.source, n), "instrument_id": iid, "venue_symbol": f["sym"],
            "exchange": exchange, "event": pc.if_else(is_t, "trade", "quote"),
            "price": where(is_t, f["p"], _F), "size": where(is_t, f["s"], _F),
            "bid": where(is_q, f["bp"], _F), "bid_size": where(is_q, f["bs"], _F),
            "ask": where(is_q, f["ap"], _F), "ask_size": where(is_q, f["as"], _F),
            "vendor_seq": f["q"], "event_id": pa.array(ids, _S), "stream_seq": pa.array(line_seqs[line_of], _I),
            "conditions": conditions, "size_unit": unit,
        }
        return tick_table(columns, n), np.zeros(len(lines), dtype=bool)

    @staticmethod
    def _conditions(lines, line_of: np.ndarray, is_t) -> pa.Array | None:
        """The "c" of every event (trade conditions on trade rows, null elsewhere), read from the lines that hold
        trades only; None when a line holds trades and quotes, or a condition is not an integer."""
        t_mask = is_t.to_numpy(zero_copy_only=False)
        trade_lines = np.unique(line_of[t_mask])
        if np.unique(line_of[~t_mask]).size and np.isin(trade_lines, line_of[~t_mask]).any():
            return None
        if trade_lines.size == len(lines):
            body = lines.body
        else:
            body = b"\n".join([lines.body[lines.starts[i]:lines.ends[i]] for i in trade_lines.tolist()])
        table = read_lines(body, trade_lines.size, _CONDITIONS)
        if table is None:
            return None
        cond = pc.list_flatten(table.column(ARRAY_KEY).combine_chunks()).field("c")
        if len(cond) != int(t_mask.sum()) or (cond.null_count < len(cond) and pc.list_flatten(cond).null_count):
            return None
        return cond
