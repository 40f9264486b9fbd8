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

from quant_platform.market.adapters.base import (
    Adapter,
    NormalizeResult,
    TickRejected,
    event_ns,
    quote_tick,
    trade_tick,
)
from quant_platform.market.contracts import RawFrame, event_id
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
