"""Binance websocket frames (combined-stream `{"stream", "data"}` or raw single-stream), spot and USD-M futures ->
canonical ticks: aggTrade -> trade, bookTicker -> quote, markPriceUpdate -> mark (+ funding); the raw `trade`
stream, depthUpdate, kline and other streams are ignored.

Never invent an exchange time, and never count a fill twice: trade and aggTrade describe the same fills.
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
    number,
    parse_json,
    price,
    quote_tick,
    raw_lines,
    read_lines,
    resolve,
    resolve_column,
    selected_lines,
    size,
    tick_table,
    trade_tick,
    ts_from_ms,
    valid_event_ns,
    valid_prices,
    valid_sizes,
)
from quant_platform.market.contracts import TICK_SCHEMA, RawFrame, event_id, event_ids_arrow
from quant_platform.market.instruments import InstrumentMaster

# Quirk (Binance: one fill, two streams): `<sym>@trade` sends every fill, `<sym>@aggTrade` the fills of one taker
# order at one price aggregated (its f..l names the raw trade ids it holds). Both carry the same volume, and a
# connection subscribed to both would count every fill twice. aggTrade is the trade of record: Binance serves it
# on spot and on USD-M (the /market route; the raw trade stream is not in the USD-M market-stream docs), its id
# `a` is consecutive per symbol (a gap check can use it), and it is several times fewer messages. A raw `trade`
# event is valid input, counted as ignored, never a tick and never a reject.
TRADE_KIND = "aggTrade"
IGNORED_TRADE_KIND = "trade"
MARK_KIND = "markPriceUpdate"
_TICK_KINDS = (TRADE_KIND, "bookTicker", MARK_KIND)

# The vectorised path (combined streams only): each line's kind from its first bytes, `{"stream":"<name>","data":
# {"e":"<kind>"` as Binance writes them (a regex over all lines, a fifth of the cost of an Arrow read), then one
# Arrow read per tick kind with that kind's schema (Binance gives the same letter different types in different
# events: "b" is a price string in bookTicker, a list of levels in depthUpdate, an order id in trade), which reads
# "stream" and "e" again wherever they are in the object and must find what the regex found. Lines of other kinds
# are read with the envelope schema alone (they must be JSON too). A line the regex cannot place: every line is
# read with the envelope schema first, as before.
_S, _I = pa.string(), pa.int64()
_ENVELOPE = pa.schema([("stream", _S), ("data", pa.struct([("e", _S)]))])
_HEAD_KIND = r'^ *\{"stream":"(?P<stream>[^"\\]*)","data":\{(?P<e>"e":"[^"\\]*")?'
_KIND_FIELDS = {  # kind -> (id field, {canonical column: Binance field}, time field, whether the time is required)
    TRADE_KIND: ("a", {"price": "p", "size": "q"}, "T", True),
    "bookTicker": ("u", {"bid": "b", "bid_size": "B", "ask": "a", "ask_size": "A"}, "T", False),
}
_KIND_SCHEMAS = {kind: pa.schema([("stream", _S), ("data", pa.struct([("e", _S), ("s", _S), (id_, _I),
                                                                      *((f, _S) for f in nums.values()), (t, _I)]))])
                 for kind, (id_, nums, t, _) in _KIND_FIELDS.items()}
_MARK_SCHEMA = pa.schema([("stream", _S), ("data", pa.struct([("e", _S), ("s", _S), ("E", _I), ("p", _S),
                                                              ("r", _S)]))])
_PRICES = ("price", "bid", "ask")  # > 0; the sizes >= 0
# Decimal text the way Binance writes it. Anything else ("1e-5", " 1", "NaN", a number instead of a string)
# goes to the per-frame path, whose number() decides; for this form Arrow's cast and float() agree exactly.
_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
_SIGNED_DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"  # funding rates are negative when shorts pay longs
_F64 = pa.float64()


def _stream_kind(stream: str) -> str:
    """'nknusdt@bookTicker' -> 'bookTicker', 'btcusdt@depth@100ms' -> 'depth', '!bookTicker' -> 'bookTicker'."""
    if stream.startswith("!"):
        return stream[1:].split("@", 1)[0]
    parts = stream.split("@", 2)
    return parts[1] if len(parts) > 1 else ""


def _kind_codes(streams: pa.Array, es: pa.Array) -> tuple[np.ndarray, dict[str, int]]:
    """Each line's event kind as a code (and the kind -> code map): its "e", or when it has none the kind its
    stream name gives (_stream_kind). Computed once per distinct stream name and "e" value, not per line."""
    names: dict[str, int] = {}
    streams, es = pc.dictionary_encode(streams), pc.dictionary_encode(es)
    by_stream = np.array([names.setdefault(_stream_kind(x), len(names)) for x in streams.dictionary.to_pylist()],
                         np.int64)
    by_e = np.array([names.setdefault(x, len(names)) for x in es.dictionary.to_pylist()] + [-1], np.int64)
    codes = by_e[es.indices.fill_null(len(es.dictionary)).to_numpy(zero_copy_only=False)]
    from_stream = codes < 0
    codes[from_stream] = by_stream[streams.indices.to_numpy(zero_copy_only=False)[from_stream]]
    return codes, names


def _head_kinds(lines) -> tuple[pa.Array, pa.Array] | None:
    """(stream name, "e" or null) of every line from its first bytes (_HEAD_KIND), or None when a line does not
    begin that way (another key order, an escape in the name, a raw single stream)."""
    n = len(lines)
    offsets = np.append(lines.starts, len(lines.body)).astype(np.int32)  # each line with the "\n" after it
    text = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(lines.body)])
    heads = pc.extract_regex(text, _HEAD_KIND)
    if heads.null_count:
        return None
    e = heads.field("e")
    return heads.field("stream"), pc.if_else(pc.equal(e, ""), None, pc.utf8_slice_codeunits(e, 5, -1))


def _same_head(table: pa.Table, streams: pa.Array, es: pa.Array, idx: np.ndarray) -> bool:
    """The "stream" and "e" an Arrow read found on lines `idx` are what the lines' heads said (a duplicate or a
    later key would make them differ: the per-frame path then decides)."""
    rows = pa.array(idx)
    read_e, head_e = pc.struct_field(table.column("data"), "e"), es.take(rows)
    return (table.column("stream").null_count == 0 and all_true(pc.equal(table.column("stream"), streams.take(rows)))
            and bool(pc.all(pc.equal(pc.is_null(read_e), pc.is_null(head_e))).as_py())
            and all_true(pc.or_kleene(pc.is_null(read_e), pc.equal(read_e, head_e))))


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
            return NormalizeResult([], 1)  # trade (see TRADE_KIND), depthUpdate, kline, 24hrTicker: valid, not ticks

        sym = data["s"]
        iid = resolve(master, self.source, sym)
        received = frame.received_at_ns
        if kind == TRADE_KIND:
            agg_id = integer(data["a"], "a")
            # "m" (buyer is maker) and "f"/"l" (first/last raw trade ids) are not part of the canonical tick.
            return NormalizeResult([trade_tick(
                ts_from_ms(data["T"], "T"), received, self.source, iid, sym, self.exchange,
                price(data["p"], "p"), size(data["q"], "q"), agg_id,
                event_id(self.source, "aggTrade", sym, agg_id))], 0)
        if kind == MARK_KIND:
            return NormalizeResult(self._mark(data, sym, iid, received), 0)
        update_id = integer(data["u"], "u")
        if "T" in data:  # futures bookTicker carries the transaction time
            ts = ts_from_ms(data["T"], "T")
        else:
            # Quirk (Binance spot bookTicker has no event time): ts is the connector's received_at, so it
            # includes network latency. event_id still uses only vendor fields (symbol, update id u).
            ts = event_ns(received, "received_at")
        return NormalizeResult([quote_tick(
            ts, received, self.source, iid, sym, self.exchange,
            price(data["b"], "b"), size(data["B"], "B"),
            price(data["a"], "a"), size(data["A"], "A"), update_id,
            event_id(self.source, "bookTicker", sym, update_id))], 0)

    def _mark(self, data: dict, sym: str, iid: str, received: int) -> list[dict]:
        """USD-M markPriceUpdate -> a `mark` tick (price: the mark price p) and, when the contract has funding, a
        `funding` tick (price: the funding rate r, a fraction per funding interval, negative when shorts pay).
        Quirk (Binance markPriceUpdate): it has no transaction time; ts is the event time E. A contract without
        funding (delivery futures) sends "r": "" and "T": 0: a mark tick only."""
        e_ms = data["E"]
        ts = ts_from_ms(e_ms, "E")
        ticks = [trade_tick(ts, received, self.source, iid, sym, self.exchange, price(data["p"], "p"), None, None,
                            event_id(self.source, "markPrice", sym, e_ms), event="mark")]
        rate = data.get("r")
        if rate is not None and rate != "":
            ticks.append(trade_tick(ts, received, self.source, iid, sym, self.exchange, number(rate, "r"), None,
                                    None, event_id(self.source, "funding", sym, e_ms), event="funding"))
        return ticks

    # ------------------------------------------------------------------------------------- vectorised path
    def normalize_fast(self, data: bytes, line_seqs: np.ndarray, master: InstrumentMaster
                       ) -> tuple[pa.Table, np.ndarray] | None:
        lines = raw_lines(data)
        if lines is None:
            return None
        placed = _head_kinds(lines)
        if placed is None:  # not every line begins as Binance writes a combined-stream frame: read them all
            env = read_lines(lines.body, len(lines), _ENVELOPE)
            if env is None or env.column("stream").null_count or env.column("data").null_count:
                return None  # a raw single stream, a subscription reply, an array payload: frame by frame
            streams = env.column("stream").combine_chunks()
            es = pc.struct_field(env.column("data").combine_chunks(), "e")
        else:
            streams, es = placed
        codes, names = _kind_codes(streams, es)
        tick_codes = [names[k] for k in _TICK_KINDS if k in names]
        ignored = ~np.isin(codes, tick_codes)
        if placed is not None and ignored.any():  # lines of other kinds: JSON, and of the kind their head says
            other = np.flatnonzero(ignored)
            env = read_lines(selected_lines(lines, other), other.size, _ENVELOPE)
            if env is None or env.column("data").null_count or not _same_head(env, streams, es, other):
                return None
        order: list[np.ndarray] = []  # per table: the sort key of each row (line * 2 + row within the line)
        tables: list[pa.Table] = []
        for kind in _TICK_KINDS:
            idx = np.flatnonzero(codes == names[kind]) if kind in names else np.zeros(0, np.int64)
            if not idx.size:
                continue
            built = (self._mark_tables(idx, lines, (streams, es), line_seqs, master) if kind == MARK_KIND
                     else self._kind_table(kind, idx, lines, (streams, es), line_seqs, master))
            if built is None:
                return None
            for table, keys in built:
                tables.append(table)
                order.append(keys)
        if not tables:
            return TICK_SCHEMA.empty_table(), ignored
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        if len(tables) > 1:  # back to line order (a mark before its funding), as the per-frame path emits them
            table = table.take(pa.array(np.argsort(np.concatenate(order), kind="stable")))
        return table, ignored

    def _sub(self, idx: np.ndarray, lines, heads, schema: pa.Schema, text: bytes | None = None
             ) -> pa.StructArray | None:
        t = read_lines(selected_lines(lines, idx) if text is None else text, idx.size, schema)
        if t is None or t.column("data").null_count or not _same_head(t, *heads, idx):
            return None
        return t.column("data")

    def _kind_table(self, kind: str, idx: np.ndarray, lines, heads, line_seqs: np.ndarray, master: InstrumentMaster
                    ) -> list[tuple[pa.Table, np.ndarray]] | None:
        text = selected_lines(lines, idx)
        d = self._sub(idx, lines, heads, _KIND_SCHEMAS[kind], text)
        if d is None:
            return None
        id_field, num_fields, t_field, needs_t = _KIND_FIELDS[kind]
        sym, vendor_id, exch_ms = (pc.struct_field(d, f) for f in ("s", id_field, t_field))
        iid = resolve_column(master, self.source, sym)
        if iid is None or vendor_id.null_count or not all_true(pc.greater_equal(vendor_id, 0)):
            return None
        received = lines.received[idx]
        if exch_ms.null_count:
            if needs_t:
                return None
            missing = np.flatnonzero(pc.is_null(exch_ms).to_numpy(zero_copy_only=False))
            # spot bookTicker: no line has "T", the kind's text is searched as it is
            if b'"T"' in (text if missing.size == idx.size else selected_lines(lines, idx[missing])):
                return None  # "T": null is a reject on the per-frame path, not an absent T
        received_col = pa.array(received, _I)
        ts = pc.multiply_checked(exch_ms, 1_000_000)  # ms -> ns; overflow raises: the per-frame path decides
        ts = pc.coalesce(ts, received_col)  # spot bookTicker: no event time, the receipt time
        if not valid_event_ns(ts):
            return None
        n = idx.size
        numbers = {}
        for column, fld in num_fields.items():
            txt = pc.struct_field(d, fld)
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
        return [(tick_table(columns, n), idx * 2)]

    def _mark_tables(self, idx: np.ndarray, lines, heads, line_seqs: np.ndarray, master: InstrumentMaster
                     ) -> list[tuple[pa.Table, np.ndarray]] | None:
        """markPriceUpdate lines -> the mark rows and the funding rows (see _mark), each keyed to follow its line."""
        d = self._sub(idx, lines, heads, _MARK_SCHEMA)
        if d is None:
            return None
        sym, e_ms, mark, rate = (pc.struct_field(d, f) for f in ("s", "E", "p", "r"))
        iid = resolve_column(master, self.source, sym)
        if iid is None or e_ms.null_count or mark.null_count or not all_true(pc.match_substring_regex(mark, _DECIMAL)):
            return None
        ts = pc.multiply_checked(e_ms, 1_000_000)
        marks = mark.cast(_F64)
        if not valid_event_ns(ts) or not valid_prices(marks):
            return None
        if rate.null_count:  # "r" absent or null: the per-frame path tells which (absent is fine, null is not)
            return None
        has_rate = pc.not_equal(rate, "").to_numpy(zero_copy_only=False)
        rates_txt = rate.filter(pa.array(has_rate))
        if not all_true(pc.match_substring_regex(rates_txt, _SIGNED_DECIMAL)):
            return None
        n = idx.size
        seqs = pa.array(line_seqs[idx], _I)
        received = pa.array(lines.received[idx], _I).cast(TS_TYPE)
        tsc = ts.cast(TS_TYPE)
        src, exch = constant(self.source, n), constant(self.exchange, n)
        mark_cols = {"ts": tsc, "received_at": received, "source": src, "instrument_id": iid, "venue_symbol": sym,
                     "exchange": exch, "event": constant("mark", n), "price": marks,
                     "event_id": event_ids_arrow(self.source, constant("markPrice", n), sym, e_ms),
                     "stream_seq": seqs}
        out = [(tick_table(mark_cols, n), idx * 2)]
        k = int(has_rate.sum())
        if k:
            keep = pa.array(has_rate)
            f_sym, f_e = sym.filter(keep), e_ms.filter(keep)
            fund_cols = {"ts": tsc.filter(keep), "received_at": received.filter(keep), "source": constant(self.source, k),
                         "instrument_id": iid.filter(keep), "venue_symbol": f_sym,
                         "exchange": constant(self.exchange, k), "event": constant("funding", k),
                         "price": rates_txt.cast(_F64),
                         "event_id": event_ids_arrow(self.source, constant("funding", k), f_sym, f_e),
                         "stream_seq": seqs.filter(keep)}
            out.append((tick_table(fund_cols, k), idx[has_rate] * 2 + 1))
        return out
