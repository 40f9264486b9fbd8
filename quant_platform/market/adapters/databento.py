"""Databento DBN frames (CME Globex, GLBX.MDP3: `trades`, `mbp-1`, `tbbo`) -> canonical ticks: each raw frame is
base64 of a self-contained DBN stream (the session's metadata, then whole records as the vendor sent them).

Never guess a contract: its symbol comes from the frame (symbol mappings, definitions, metadata) and its id from
the instrument master; records of other kinds are counted as ignored, never dropped silently.
"""

from __future__ import annotations

import base64
import binascii
import struct
from datetime import UTC, date, datetime
from functools import lru_cache

import databento_dbn as dbn
import numpy as np
import pyarrow as pa

from quant_platform.market.adapters.base import (
    Adapter,
    NormalizeResult,
    TickRejected,
    event_ns,
    quote_tick,
    trade_tick,
)
from quant_platform.market.contracts import TICK_SCHEMA, RawFrame, event_id
from quant_platform.market.instruments import InstrumentMaster

# DBN prices are int64 fixed point, 1 unit = 1e-9. Divide by 1e9 (databento_dbn.FIXED_PRICE_SCALE), never multiply
# by 1e-9: 3702750000000 * 1e-9 is 3702.7500000000005, 3702750000000 / 1e9 is 3702.75 (the correctly rounded value).
PRICE_SCALE = float(dbn.FIXED_PRICE_SCALE)
UNDEF_PRICE = dbn.UNDEF_PRICE  # int64 max: "no price" (an empty book side, a missing statistic)
_HEADER = struct.Struct("<3sBI")  # b"DBN", version, metadata length


def dbn_parts(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split a DBN stream into its metadata bytes and its records' bytes (each record's first byte is its length
    in 4-byte words), without decoding any record. ValueError when it is not whole DBN."""
    if len(data) < _HEADER.size:
        raise ValueError("shorter than a DBN header")
    magic, version, meta_len = _HEADER.unpack_from(data)
    if magic != b"DBN" or not 1 <= version <= 3:
        raise ValueError("not a DBN stream (no 'DBN' version 1..3 header)")
    pos = _HEADER.size + meta_len
    if pos > len(data):
        raise ValueError("metadata cut short")
    records = []
    while pos < len(data):
        size = data[pos] * 4
        if size < 16 or pos + size > len(data):  # a record header alone is 16 bytes
            raise ValueError(f"record at byte {pos} cut short or of length {size}")
        records.append(data[pos:pos + size])
        pos += size
    return data[:_HEADER.size + meta_len], records


def encode_frame(metadata: bytes, records: list[bytes]) -> bytes:
    """The raw frame payload of DBN bytes: base64 (one line, as TICKS_RAW lines must be) of metadata + records."""
    return base64.b64encode(metadata + b"".join(records))


def decode_frame(payload: bytes) -> bytes:
    """The DBN bytes a frame carries, exactly as the vendor sent them."""
    return base64.b64decode(payload, validate=True)


@lru_cache(maxsize=64)
def _venue(publisher_id: int) -> str:
    # Imported on first use: the databento package costs ~1 s to import, paid only by workers that see DBN.
    from databento.common.publishers import Publisher

    try:
        return str(Publisher.from_int(publisher_id).venue)
    except ValueError:
        return str(publisher_id)


def _day(ns: int) -> date:
    return datetime.fromtimestamp(ns / 1e9, UTC).date()


def _px(value: int, name: str) -> float:
    if value == UNDEF_PRICE or value <= 0:
        raise TickRejected(f"field {name!r}: price must be > 0, got {value}")
    return value / PRICE_SCALE


class _Symbols:
    """instrument_id -> raw symbol for the records of one frame, from (in order of trust) the frame's symbol
    mapping records (live sessions send one per instrument at the start), its definition records, and the
    metadata's mappings (historical files with stype_in raw_symbol: symbol -> instrument_id per date range)."""

    def __init__(self, meta: dbn.Metadata, records: list):
        self.direct: dict[int, str] = {}
        for r in records:
            if isinstance(r, dbn.SymbolMappingMsg):
                # Quirk: the live gateway's stype_out_symbol is the raw symbol (ESZ4) whatever stype_in was.
                self.direct[r.instrument_id] = r.stype_out_symbol
            elif isinstance(r, dbn.InstrumentDefMsg):
                self.direct.setdefault(r.instrument_id, r.raw_symbol)
        self.intervals: dict[int, list[tuple[date, date, str]]] = {}
        if meta.stype_in == dbn.SType.RAW_SYMBOL:
            for raw_symbol, spans in (meta.mappings or {}).items():
                for span in spans:
                    try:
                        iid = int(span["symbol"])
                    except (KeyError, TypeError, ValueError):
                        continue
                    self.intervals.setdefault(iid, []).append((span["start_date"], span["end_date"], raw_symbol))

    def get(self, instrument_id: int, ts_ns: int) -> str | None:
        sym = self.direct.get(instrument_id)
        if sym is not None:
            return sym
        day = _day(ts_ns)
        for start, end, sym in self.intervals.get(instrument_id, ()):
            if start <= day < end:
                return sym
        return None


class DatabentoAdapter(Adapter):
    source = "databento"

    def _normalize(self, frame: RawFrame, master: InstrumentMaster) -> NormalizeResult:
        try:
            data = decode_frame(frame.payload)
            _, parts = dbn_parts(data)
        except (binascii.Error, ValueError) as exc:
            raise TickRejected(f"not a base64 DBN stream ({exc})") from None
        decoder = dbn.DBNDecoder(upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
        try:
            decoder.write(data)
            decoded = decoder.decode()
        except Exception as exc:  # DBNError and friends from the Rust decoder
            raise TickRejected(f"DBN does not decode ({type(exc).__name__}: {str(exc)[:160]})") from None
        if not decoded or not isinstance(decoded[0], dbn.Metadata) or len(decoded) != len(parts) + 1:
            raise TickRejected(f"DBN decoded into {max(len(decoded) - 1, 0)} records, the bytes hold {len(parts)}")
        meta, records = decoded[0], decoded[1:]
        # Databento's schema docs (databento.com/docs/schemas/tbbo, /mbp-1, /trades): TBBO "provides every trade
        # event alongside the BBO immediately before the effect of each trade"; MBP-1 "provides every order book
        # event that updates the top price level ... This includes every trade"; trades is every trade. So a tbbo
        # record is a trade and a quote, an mbp-1 record only a quote (its trades come again in the trades schema
        # the connector subscribes beside it: counting them here would count every trade twice). A live session
        # with several schemas has metadata schema None.
        tbbo = meta.schema == dbn.Schema.TBBO
        symbols = _Symbols(meta, records)
        ticks: list[dict] = []
        ignored = 0
        for n, rec in enumerate(records):
            if isinstance(rec, dbn.TradeMsg):
                kinds = ("trade",)
            elif isinstance(rec, dbn.MBP1Msg):
                kinds = ("trade", "quote") if tbbo else ("quote",)
            else:
                ignored += 1  # definitions, symbol mappings, heartbeats, statistics, status, other schemas
                continue
            ts = event_ns(rec.ts_event, f"record {n} ts_event")
            sym = symbols.get(rec.instrument_id, rec.ts_event)
            if sym is None:
                raise TickRejected(f"record {n}: no symbol for instrument_id {rec.instrument_id} in the frame")
            iid = master.resolve_contract(self.source, sym, _day(ts))
            if iid is None:
                if "-" in sym or " " in sym:
                    # Quirk: a parent subscription (CL.FUT) also delivers calendar spreads (CLZ6-CLF7) and, for
                    # options groups, options ("ESM4 P5230"): not outright contracts, so not instruments here.
                    ignored += 1
                    continue
                raise TickRejected(f"unknown symbol {self.source}:{sym[:64]}")
            exchange = _venue(rec.publisher_id)
            # The venue's packet sequence number: several records of one packet share it, so the event id also
            # takes the receive time and the record's content.
            seq = rec.sequence
            common = (rec.instrument_id, rec.ts_recv, ts, seq, rec.price, rec.size, str(rec.side), rec.flags)
            if "trade" in kinds:
                if rec.action != dbn.Action.TRADE and isinstance(rec, dbn.MBP1Msg):
                    raise TickRejected(f"record {n}: a tbbo record with action {rec.action!s}, not a trade")
                ticks.append(trade_tick(ts, frame.received_at_ns, self.source, iid, sym, exchange,
                                        _px(rec.price, "price"), float(rec.size), seq,
                                        event_id(self.source, "T", *common)))
            if "quote" in kinds:
                lvl = rec.levels[0]
                if lvl.bid_px == UNDEF_PRICE and lvl.ask_px == UNDEF_PRICE:
                    ignored += 1  # an empty book (after a clear): no quote to record
                    continue
                # Quirk: an empty side is UNDEF_PRICE with size 0; the quote keeps the other side, this one null.
                bid = None if lvl.bid_px == UNDEF_PRICE else _px(lvl.bid_px, "bid_px_00")
                ask = None if lvl.ask_px == UNDEF_PRICE else _px(lvl.ask_px, "ask_px_00")
                ticks.append(quote_tick(ts, frame.received_at_ns, self.source, iid, sym, exchange,
                                        bid, float(lvl.bid_sz) if bid is not None else None,
                                        ask, float(lvl.ask_sz) if ask is not None else None, seq,
                                        event_id(self.source, "Q", *common, str(rec.action), lvl.bid_px,
                                                 lvl.ask_px, lvl.bid_sz, lvl.ask_sz)))
        return NormalizeResult(ticks, ignored)

    def normalize_fast(self, data: bytes, line_seqs: np.ndarray, master: InstrumentMaster
                       ) -> tuple[pa.Table, np.ndarray] | None:
        """Trades and MBP-1 records read as numpy records (see _fast_normalize); the second value is the number of
        ignored records of each line (not a mask: a DBN frame holds many records)."""
        return _fast_normalize(self, data, line_seqs, master)


# ------------------------------------------------------------------------------------- vectorised path
# Trades (rtype 0x00, 48 bytes) and MBP-1 records (0x01, 80 bytes) have one layout in DBN versions 2 and 3
# (databento dbn: TradeMsg, Mbp1Msg): read them as numpy records. Everything else in a frame (metadata, symbol
# mappings, definitions, other schemas) is decoded by databento_dbn as on the per-frame path, once per distinct
# content (every frame of a session repeats its metadata and mappings).
_TRADE_DTYPE = np.dtype([("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"), ("instrument_id", "<u4"),
                         ("ts_event", "<u8"), ("price", "<i8"), ("size", "<u4"), ("action", "S1"), ("side", "S1"),
                         ("flags", "u1"), ("depth", "u1"), ("ts_recv", "<u8"), ("ts_in_delta", "<i4"),
                         ("sequence", "<u4")])
_MBP1_DTYPE = np.dtype(_TRADE_DTYPE.descr + [("bid_px", "<i8"), ("ask_px", "<i8"), ("bid_sz", "<u4"),
                                             ("ask_sz", "<u4"), ("bid_ct", "<u4"), ("ask_ct", "<u4")])
_MARKET = {0x00: _TRADE_DTYPE.itemsize, 0x01: _MBP1_DTYPE.itemsize}
_SIDES = {b"A", b"B", b"N"}
_ACTIONS = {b"A", b"C", b"M", b"R", b"T", b"F", b"N"}
_DAY_NS = 86_400 * 10**9
_NEAR_MIDNIGHT_NS = 10**6  # _day() goes through float seconds: within 1 ms of midnight the per-frame path decides
_FAST_VERSIONS = (2, 3)


def _chars(column: np.ndarray) -> pa.Array:
    """A numpy column of one-byte ASCII codes (side, action: already checked to be letters) as Arrow strings of one
    character, from its bytes (no numpy unicode array in between)."""
    n = column.size
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(np.arange(n + 1, dtype=np.int32)),
                                                  pa.py_buffer(np.ascontiguousarray(column).tobytes())])


def _rows_of(columns: list[pa.Array], rows: np.ndarray) -> list[pa.Array]:
    """The columns at `rows` (ascending positions): the columns themselves when that is all of them."""
    if columns and rows.size == len(columns[0]):
        return columns
    sel = pa.array(rows)
    return [c.take(sel) for c in columns]


class _Coded:
    """A string column as codes into its distinct values (symbols, instrument ids, venues: a handful per frame set),
    indexed like a numpy array and made an Arrow column by one take, not a Python object per row."""

    __slots__ = ("codes", "values")

    def __init__(self, values: pa.Array, codes: np.ndarray):
        self.values, self.codes = values, codes

    def __getitem__(self, index) -> _Coded:
        return _Coded(self.values, self.codes[index])

    def arrow(self) -> pa.Array:
        return self.values.take(pa.array(self.codes))


class _Context:
    """What a frame's metadata and non-market records say: tbbo or not, its symbols, how many records it ignores."""

    __slots__ = ("ignored", "symbols", "tbbo")

    def __init__(self, tbbo: bool, symbols: _Symbols, ignored: int):
        self.tbbo, self.symbols, self.ignored = tbbo, symbols, ignored


def _context(blob: bytes, n_records: int) -> _Context | None:
    decoder = dbn.DBNDecoder(upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
    try:
        decoder.write(blob)
        decoded = decoder.decode()
    except Exception:  # noqa: BLE001 - the per-frame path gives the reason
        return None
    if not decoded or not isinstance(decoded[0], dbn.Metadata) or len(decoded) != n_records + 1:
        return None
    meta, records = decoded[0], decoded[1:]
    if any(isinstance(r, (dbn.TradeMsg, dbn.MBP1Msg)) for r in records):
        return None
    return _Context(meta.schema == dbn.Schema.TBBO, _Symbols(meta, records), len(records))


def _fast_normalize(adapter: DatabentoAdapter, data: bytes, line_seqs: np.ndarray, master: InstrumentMaster
                    ) -> tuple[pa.Table, np.ndarray] | None:
    from quant_platform.market.adapters.base import TS_MAX_NS, TS_MIN_NS, tick_table
    from quant_platform.market.contracts import event_ids_arrow

    cache: dict[bytes, _Context | None] = adapter.__dict__.setdefault("_contexts", {})
    if len(cache) > 256:
        cache.clear()
    lines = data.split(b"\n")
    raws, heads = [], []
    for line in lines:
        if len(line) < 21 or line[19] != 32:
            return None
        heads.append(line[:19])
        try:  # strict base64 refuses all that b64decode(validate=True) refuses, without its regex pass
            raws.append(binascii.a2b_base64(line[20:], strict_mode=True))
        except (binascii.Error, ValueError):
            return None
    if not b"".join(heads).isdigit():
        return None
    try:
        received = np.array([int(h) for h in heads], dtype=np.int64)
    except OverflowError:
        return None
    # Every frame's records found at once: one step per record position, over all frames together.
    sizes = np.array([len(r) for r in raws], dtype=np.int64)
    if (sizes < _HEADER.size).any():
        return None
    buf = b"".join(raws)
    arr = np.frombuffer(buf, dtype=np.uint8)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    if ((arr[starts] != 68) | (arr[starts + 1] != 66) | (arr[starts + 2] != 78)).any():  # b"DBN"
        return None
    if not np.isin(arr[starts + 3], _FAST_VERSIONS).all():
        return None
    meta_len = arr[starts[:, None] + np.arange(4, 8)].astype(np.int64) @ np.array([1, 1 << 8, 1 << 16, 1 << 24])
    pos = starts + _HEADER.size + meta_len
    if (pos > ends).any():
        return None
    cur, count = pos.copy(), np.zeros(len(lines), dtype=np.int64)
    found_f, found_p, found_n = [], [], []
    active = np.flatnonzero(cur < ends)
    while active.size:
        p = cur[active]
        size = arr[p].astype(np.int64) * 4
        if (size < 16).any() or (p + size > ends[active]).any():
            return None
        found_f.append(active)
        found_p.append(p)
        found_n.append(count[active])
        cur[active] = p + size
        count[active] += 1
        active = active[cur[active] < ends[active]]
    rec_f = np.concatenate(found_f) if found_f else np.zeros(0, np.int64)
    rec_p = np.concatenate(found_p) if found_p else np.zeros(0, np.int64)
    rec_n = np.concatenate(found_n) if found_n else np.zeros(0, np.int64)
    rec_size, rec_type = arr[rec_p].astype(np.int64) * 4, arr[rec_p + 1] if rec_p.size else np.zeros(0, np.uint8)
    market = np.isin(rec_type, (0x00, 0x01))
    for rtype, want in _MARKET.items():
        if (rec_size[rec_type == rtype] != want).any():
            return None
    other = np.flatnonzero(~market)
    other = other[np.lexsort((rec_n[other], rec_f[other]))]
    extra: dict[int, list[bytes]] = {}
    for f, p, n in zip(rec_f[other].tolist(), rec_p[other].tolist(), rec_size[other].tolist(), strict=True):
        extra.setdefault(f, []).append(buf[p:p + n])
    ctx_of: list[_Context] = []
    ignored = np.zeros(len(lines), dtype=np.int64)
    for k, (a, b) in enumerate(zip(starts.tolist(), pos.tolist(), strict=True)):
        more = extra.get(k, ())
        blob = buf[a:b] + b"".join(more) if more else buf[a:b]
        ctx = cache.get(blob, False)
        if ctx is False:
            ctx = cache[blob] = _context(blob, len(more))
        if ctx is None:
            return None
        ctx_of.append(ctx)
        ignored[k] = ctx.ignored
    ctx_ids: dict[int, int] = {}
    for ctx in ctx_of:
        ctx_ids.setdefault(id(ctx), len(ctx_ids))
    ctx_no_of_line = np.array([ctx_ids[id(ctx)] for ctx in ctx_of], dtype=np.int64)
    tbbo_of_line = np.array([ctx.tbbo for ctx in ctx_of], dtype=bool)
    parts = []  # per record kind: (records, line of each, record index of each)
    for rtype, dtype in ((0x00, _TRADE_DTYPE), (0x01, _MBP1_DTYPE)):
        sel = np.flatnonzero(rec_type == rtype)
        if sel.size:
            # rows of a sliding-window view: a copy of each record's bytes, no (records x itemsize) index array
            raw_bytes = np.lib.stride_tricks.sliding_window_view(arr, dtype.itemsize)[rec_p[sel]]
            recs = raw_bytes.reshape(-1).view(dtype)
            parts.append((rtype, recs, rec_f[sel], rec_n[sel]))
    rows = []  # (columns, sort keys)
    for rtype, recs, line, index in parts:
        ts_u = recs["ts_event"]
        if ((ts_u < TS_MIN_NS) | (ts_u >= TS_MAX_NS)).any():
            return None
        ts = ts_u.astype(np.int64)
        into_day = ts % _DAY_NS
        if ((into_day < _NEAR_MIDNIGHT_NS) | (into_day > _DAY_NS - _NEAR_MIDNIGHT_NS)).any():
            return None
        if not (set(np.unique(recs["side"]).tolist()) <= _SIDES and set(np.unique(recs["action"]).tolist()) <= _ACTIONS):
            return None
        # Symbols and instrument ids per (frame context, vendor instrument id, day): a Python call per distinct one.
        day = ts // _DAY_NS
        ctx_no = ctx_no_of_line[line]
        keys = np.stack([ctx_no, recs["instrument_id"].astype(np.int64), day], axis=1)
        uniq, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        u_sym = np.empty(len(uniq), dtype=object)
        u_iid = np.empty(len(uniq), dtype=object)
        for u, j in enumerate(first.tolist()):
            ts_j = int(ts[j])
            s = ctx_of[int(line[j])].symbols.get(int(recs["instrument_id"][j]), ts_j)
            if s is None:
                return None
            i = master.resolve_contract(adapter.source, s, _day(ts_j))
            if i is None and not ("-" in s or " " in s):
                return None
            u_sym[u], u_iid[u] = s, i
        inverse = inverse.reshape(-1)
        sym = _Coded(pa.array(u_sym.tolist(), pa.string()), inverse)
        iid = _Coded(pa.array(u_iid.tolist(), pa.string()), inverse)
        spread = np.array([i is None for i in u_iid.tolist()], dtype=bool)[inverse]
        np.add.at(ignored, line[spread], 1)
        if spread.any():
            keep = ~spread
            recs, line, index, ts, sym, iid = recs[keep], line[keep], index[keep], ts[keep], sym[keep], iid[keep]
        tbbo = tbbo_of_line[line]
        trade = np.ones(len(recs), dtype=bool) if rtype == 0x00 else tbbo
        publishers, which = np.unique(recs["publisher_id"], return_inverse=True)
        venue = _Coded(pa.array([_venue(p) for p in publishers.tolist()], pa.string()), which.reshape(-1))
        common = [pa.array(recs["instrument_id"]), pa.array(recs["ts_recv"]), pa.array(ts), pa.array(recs["sequence"]),
                  pa.array(recs["price"]), pa.array(recs["size"]), _chars(recs["side"]),
                  pa.array(recs["flags"])]
        if trade.any():
            t = np.flatnonzero(trade)
            px = recs["price"][t]
            if ((px == UNDEF_PRICE) | (px <= 0)).any():
                return None
            if rtype == 0x01 and (recs["action"][t] != b"T").any():
                return None  # a tbbo record that is not a trade: the per-frame path rejects it
            sel, n = t, t.size
            rows.append(({"ts": pa.array(ts[t]), "received_at": pa.array(received[line[t]]), "instrument_id": iid[t],
                          "venue_symbol": sym[t], "exchange": venue[t], "event": "trade", "price": px / PRICE_SCALE,
                          "size": recs["size"][t].astype(np.float64), "vendor_seq": recs["sequence"][t],
                          "event_id": event_ids_arrow(adapter.source, pa.repeat(pa.scalar("T"), n),
                                                      *_rows_of(common, sel)),
                          "stream_seq": line_seqs[line[t]]}, index[t] * 2, line[t]))
        if rtype == 0x01:
            bid_px, ask_px = recs["bid_px"], recs["ask_px"]
            empty = (bid_px == UNDEF_PRICE) & (ask_px == UNDEF_PRICE)
            np.add.at(ignored, line[empty], 1)
            q = np.flatnonzero(~empty)
            if q.size:
                bid_px, ask_px = bid_px[q], ask_px[q]
                has_bid, has_ask = bid_px != UNDEF_PRICE, ask_px != UNDEF_PRICE
                if ((has_bid & (bid_px <= 0)) | (has_ask & (ask_px <= 0))).any():
                    return None
                sel, n = q, q.size
                extra = [_chars(recs["action"][q]), pa.array(bid_px), pa.array(ask_px),
                         pa.array(recs["bid_sz"][q]), pa.array(recs["ask_sz"][q])]
                rows.append(({"ts": pa.array(ts[q]), "received_at": pa.array(received[line[q]]),
                              "instrument_id": iid[q], "venue_symbol": sym[q], "exchange": venue[q], "event": "quote",
                              "bid": pa.array(bid_px / PRICE_SCALE, mask=~has_bid),
                              "bid_size": pa.array(recs["bid_sz"][q].astype(np.float64), mask=~has_bid),
                              "ask": pa.array(ask_px / PRICE_SCALE, mask=~has_ask),
                              "ask_size": pa.array(recs["ask_sz"][q].astype(np.float64), mask=~has_ask),
                              "vendor_seq": recs["sequence"][q],
                              "event_id": event_ids_arrow(adapter.source, pa.repeat(pa.scalar("Q"), n),
                                                          *_rows_of(common, sel), *extra),
                              "stream_seq": line_seqs[line[q]]}, index[q] * 2 + 1, line[q]))
    if not rows:
        return TICK_SCHEMA.empty_table(), ignored
    tables, order = [], []
    for cols, key, line in rows:
        n = len(key)
        types = {f.name: f.type for f in TICK_SCHEMA}
        built = {}
        for name, value in cols.items():
            if isinstance(value, str):
                built[name] = pa.repeat(pa.scalar(value, pa.string()), n)
            elif isinstance(value, _Coded):
                built[name] = value.arrow()
            elif isinstance(value, np.ndarray):
                built[name] = pa.array(value).cast(types[name])
            else:
                built[name] = value.cast(types[name])
        built["source"] = pa.repeat(pa.scalar(adapter.source, pa.string()), n)
        tables.append(tick_table(built, n))
        order.append(line.astype(np.int64) * (1 << 32) + key)
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    if len(tables) > 1:  # back to frame and record order (a tbbo record's trade before its quote)
        table = table.take(pa.array(np.argsort(np.concatenate(order), kind="stable")))
    return table, ignored
