"""Vendor-sequence completeness: what the vendors' own sequence numbers and the connectors' connection records say
is missing, found live (the connection records and a probe on each connector's ordered frames) and per compacted
UTC day (the rows of market.vendor_gaps and the WARN check vendor_sequence_complete on market/ticks_daily).

Never count a gap the vendor does not promise is one: only sequences the vendor documents as contiguous are
counted (Binance aggTrade ids `a`, depth update ids U/u/pu); Massive's `q` ("increasing and unique per ticker
symbol, but will not always be sequential") and Databento's `sequence` (the venue's packet sequence of a channel
that carries other instruments) are not, so for them only connection windows and rejected events are gaps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from quant_platform.market.contracts import HDR_FORMAT, HDR_SOURCE, RawFrame

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------- what is checked
# Per frame format: the events whose vendor_seq is contiguous per (source, instrument), and the vendor channel.
CONTIGUOUS: dict[str, tuple[str, str]] = {
    "binance": ("trade", "aggTrade"),  # aggTrade `a`: consecutive per symbol (adapters/binance.py TRADE_KIND)
}
# Per frame format: why its sequence numbers cannot be counted (the check's metadata says it).
NOT_CONTIGUOUS: dict[str, str] = {
    "binance": "bookTicker `u` is the book's update id: only top-of-book changes are sent, so it skips by design",
    "polygon": "Massive `q` is increasing and unique per ticker but not always sequential (vendor docs)",
    "databento": "`sequence` is the venue's packet sequence per channel, shared with instruments not subscribed",
    "alpaca": "trade ids `i` are unique per symbol, exchange and day, not consecutive; quotes carry none",
    "simulator": "test data",
}

KINDS = ("sequence", "disconnect", "restart", "rejected")

# ------------------------------------------------------------------------------------------- connection records
# A connector publishes one control record on its own TICKS_RAW subject (ticks.raw.<source>.batch, the only one its
# NATS user may publish to) each time it (re)gains the vendor: a JSON document, header Qp-Format: qp.control.v1.
# The normalizer stores it in TICKS_DLQ as a `connector` stage record carrying its raw sequence (so the day's
# stream-sequence completeness accounts for it), where the Dagster side reads it with the DLQ records it already
# reads (the read-only `dagster` user may). Kinds: "window" (lost_ns .. regained_ns; cause "reconnect" in the
# process, or "start": the first connection of a process, lost_ns unknown, inferred from the lake) and
# "sequence_gaps" (gaps the live probe found in a channel that makes no ticks, e.g. depth updates).
CONTROL_FORMAT = "qp.control.v1"
HDR_CONTROL = "Qp-Control"
CONNECTOR_STAGE = "connector"
WINDOW = "window"
SEQUENCE_GAPS = "sequence_gaps"


def control_message(source: str, connection_id: str, n: int, record: dict) -> tuple[bytes, dict[str, str]]:
    """(payload, headers) of the n-th control record of a connection: the same record resent keeps its id."""
    body = json.dumps({"source": source, "connection_id": connection_id, **record}, separators=(",", ":"),
                      sort_keys=True).encode()
    return body, {"Nats-Msg-Id": f"{source}:{connection_id}:control:{n}", HDR_FORMAT: CONTROL_FORMAT,
                  HDR_SOURCE: source, HDR_CONTROL: str(record.get("kind", ""))}


def is_control(headers: dict | None) -> bool:
    return bool(headers) and headers.get(HDR_FORMAT) == CONTROL_FORMAT


def parse_control(data: bytes) -> dict | None:
    """A control record's document, or None when it is not one (never raises)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") in (WINDOW, SEQUENCE_GAPS) else None


@dataclass
class ConnectionLog:
    """A connector's view of its vendor connection: when it was lost and regained. One per connection (a routed
    Binance source has one per route). `regained()` returns the window record to publish."""

    connection: str | None = None  # the route, for a source served over several connections
    connects: int = 0
    lost_ns: int | None = None  # when the loss was seen
    lost_reason: str | None = None
    last_frame_ns: int | None = None  # the last frame received before the loss

    def lost(self, reason: str, at_ns: int | None = None, last_frame_ns: int | None = None) -> None:
        """The connection is gone (the first call of an outage counts: retries that fail add nothing)."""
        if self.lost_ns is None:
            self.lost_ns = at_ns or time.time_ns()
            self.lost_reason = reason
            self.last_frame_ns = last_frame_ns

    def regained(self, at_ns: int | None = None, **extra) -> dict:
        """The window record of a connection that is (again) subscribed: cause "start" for the first one of the
        process (what came before it is not known here), else "reconnect" from the last frame received (or the
        moment the loss was seen, if no frame came) to now."""
        now = at_ns or time.time_ns()
        self.connects += 1
        if self.connects == 1:
            rec = {"kind": WINDOW, "cause": "start", "lost_ns": None, "regained_ns": now}
        else:
            start = self.last_frame_ns if self.last_frame_ns is not None else self.lost_ns
            rec = {"kind": WINDOW, "cause": "reconnect", "lost_ns": start, "regained_ns": now,
                   "noticed_ns": self.lost_ns, "reason": (self.lost_reason or "")[:200]}
        if self.connection:
            rec["connection"] = self.connection
        self.lost_ns, self.lost_reason, self.last_frame_ns = None, None, None
        return {**rec, **{k: v for k, v in extra.items() if v is not None}}


# ------------------------------------------------------------------------------------------- the live probe
@dataclass
class ProbeGap:
    symbol: str
    channel: str
    from_seq: int
    to_seq: int
    before_ns: int | None
    after_ns: int
    missing: int | None = None  # ids missing; None where ids are not contiguous (USD-M depth: only pu tells)

    def as_dict(self) -> dict:
        return {"symbol": self.symbol, "channel": self.channel, "from_seq": self.from_seq, "to_seq": self.to_seq,
                "missing": self.missing, "before_ns": self.before_ns, "after_ns": self.after_ns}


@dataclass
class SequenceProbe:
    """Watches one Binance-format connector's frames in receipt order (the only place the whole ordered stream
    of a source is seen: normalizers share raw messages between them) for jumps in the contiguous sequences:
    aggTrade `a` (each id once, +1 per symbol) and depthUpdate (spot: U = previous u + 1; USD-M: pu = previous
    u). State spans reconnects, so the trades a disconnect lost are counted exactly. Reads only; the frame goes
    on verbatim."""

    source: str
    last: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (channel, symbol) -> (seq, ns)
    gaps: int = 0
    missing: int = 0
    pending: list[ProbeGap] = field(default_factory=list)  # depth gaps not yet in a control record

    def observe(self, frame: RawFrame) -> list[ProbeGap]:
        p = frame.payload
        if b'"aggTrade"' not in p and b'"depthUpdate"' not in p:
            return []
        try:
            doc = json.loads(p)
        except ValueError:
            return []
        data = doc.get("data", doc) if isinstance(doc, dict) else None
        if not isinstance(data, dict):
            return []
        kind, sym = data.get("e"), data.get("s")
        if not isinstance(sym, str):
            return []
        try:
            if kind == "aggTrade":
                return self._step("aggTrade", sym, int(data["a"]), int(data["a"]), None, frame.received_at_ns)
            if kind == "depthUpdate":
                pu = data.get("pu")
                return self._step("depthUpdate", sym, int(data["U"]), int(data["u"]),
                                  int(pu) if pu is not None else None, frame.received_at_ns)
        except (KeyError, TypeError, ValueError):
            return []
        return []

    def _step(self, channel: str, sym: str, first: int, last: int, prev_final: int | None, at_ns: int
              ) -> list[ProbeGap]:
        key = (channel, sym)
        before = self.last.get(key)
        if before is not None and last <= before[0]:
            return []  # a repeat or an older event: not a gap (the dedup takes repeats)
        self.last[key] = (last, at_ns)
        if before is None:
            return []
        prev, prev_ns = before
        if prev_final is not None:  # USD-M depth: pu names the previous event's u
            if prev_final == prev:
                return []
            # USD-M update ids are shared by every symbol: pu says that events are missing, not how many
            gap = ProbeGap(sym, channel, prev + 1, max(prev + 1, prev_final), prev_ns, at_ns, None)
        else:
            if first <= prev + 1:
                return []
            gap = ProbeGap(sym, channel, prev + 1, first - 1, prev_ns, at_ns, first - 1 - prev)
        self.gaps += 1
        self.missing += gap.missing or 0
        if channel == "depthUpdate":
            self.pending.append(gap)  # no ticks carry depth ids: the compaction cannot find these itself
        return [gap]

    def take_pending(self, limit: int = 500) -> list[dict]:
        out, self.pending = self.pending[:limit], self.pending[limit:]
        return [g.as_dict() for g in out]


# ------------------------------------------------------------------------------------------- the day's gaps
def gap_id(*parts: object) -> str:
    return hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=10).hexdigest()


def _ts(ns: int | None):
    return None if ns is None else datetime.fromtimestamp(ns / 1e9, UTC)


def _row(day: str, kind: str, source: str, *, channel=None, instrument_id=None, venue_symbol=None, from_seq=None,
         to_seq=None, missing=None, start_ns=None, end_ns=None, raw_before=None, raw_after=None, detected: str,
         detail: str = "") -> dict:
    seconds = (end_ns - start_ns) / 1e9 if start_ns is not None and end_ns is not None else None
    return {"trade_date": datetime.fromisoformat(day).date(),
            "gap_id": gap_id(kind, source, channel, instrument_id, from_seq, to_seq, start_ns, end_ns, raw_before),
            "source": source, "kind": kind, "channel": channel, "instrument_id": instrument_id,
            "venue_symbol": venue_symbol, "from_seq": from_seq, "to_seq": to_seq, "missing": missing,
            "gap_start": _ts(start_ns), "gap_end": _ts(end_ns),
            "seconds": round(seconds, 6) if seconds is not None else None,
            "raw_seq_before": raw_before, "raw_seq_after": raw_after, "detected": detected, "detail": detail[:500]}


SEQUENCE_SQL = """
SELECT source, instrument_id, venue_symbol, prev_seq + 1, vendor_seq - 1, vendor_seq - prev_seq - 1,
       prev_ns, ts_ns, prev_stream, stream_seq, prev_rcv, rcv
FROM (SELECT source, instrument_id, venue_symbol, vendor_seq, epoch_ns(ts) AS ts_ns, stream_seq,
             epoch_ns(received_at) AS rcv, lag(epoch_ns(received_at)) OVER w AS prev_rcv,
             lag(vendor_seq) OVER w AS prev_seq, lag(epoch_ns(ts)) OVER w AS prev_ns, lag(stream_seq) OVER w AS prev_stream
      FROM {src} WHERE event = ? AND vendor_seq IS NOT NULL AND source IN ({sources})
      WINDOW w AS (PARTITION BY source, instrument_id ORDER BY vendor_seq))
WHERE vendor_seq - prev_seq > 1 ORDER BY source, instrument_id, prev_seq
"""


def sequence_gaps(con, ticks_path: Path, day: str, formats: dict[str, str]) -> list[dict]:
    """Jumps in each contiguous vendor sequence (CONTIGUOUS) of the day's compacted ticks, per source and
    instrument: events the vendor numbered that are not in the day (never received, or rejected to TICKS_DLQ)."""
    from quant_platform.market.lake_landing import sql_path

    out: list[dict] = []
    src = f"read_parquet('{sql_path(ticks_path)}')"
    by_rule: dict[tuple[str, str], list[str]] = {}
    for source, fmt in formats.items():
        if fmt in CONTIGUOUS:
            by_rule.setdefault(CONTIGUOUS[fmt], []).append(source)
    for (event, channel), sources in sorted(by_rule.items()):
        names = ", ".join("'" + s.replace("'", "''") + "'" for s in sorted(sources))
        rows = con.execute(SEQUENCE_SQL.format(src=src, sources=names), [event]).fetchall()  # noqa: S608
        for source, iid, sym, a, b, n, prev_ns, ns, raw_a, raw_b, rcv_a, rcv_b in rows:
            row = _row(day, "sequence", source, channel=channel, instrument_id=iid, venue_symbol=sym,
                       from_seq=int(a), to_seq=int(b), missing=int(n), start_ns=int(prev_ns), end_ns=int(ns),
                       raw_before=int(raw_a), raw_after=int(raw_b), detected="compaction")
            row["_received"] = (int(rcv_a), int(rcv_b))  # the connector's clock, as its windows are (not a column)
            out.append(row)
    return out


def _last_received_before(con, ticks_path: Path, source: str, before_ns: int) -> int | None:
    from quant_platform.market.lake_landing import sql_path

    got = con.execute(f"SELECT max(epoch_ns(received_at)) FROM read_parquet('{sql_path(ticks_path)}') "  # noqa: S608
                      "WHERE source = ? AND epoch_ns(received_at) < ?", [source, before_ns]).fetchone()[0]
    return int(got) if got is not None else None


@dataclass
class DlqRecords:
    """What the day's compaction read of TICKS_DLQ besides the raw sequences: connector records and rejects."""

    connector: list[tuple[int, int, str, dict]] = field(default_factory=list)  # (dlq seq, raw seq, source, record)
    rejected: list[dict] = field(default_factory=list)  # {"dlq_seq", "raw_seq", "source", "rejects", "whole", ...}
    redriven: set[int] = field(default_factory=set)  # DLQ sequences `ingest redrive` published again


def day_gaps(con, ticks_path: Path, day: str, formats: dict[str, str], dlq: DlqRecords | None,
             raw_window: tuple[int, int] | None) -> list[dict]:
    """Every vendor gap of day D: sequence jumps in the compacted ticks; connection windows that overlap D; events
    of raw messages in D's raw-sequence window that the normalizer rejected to TICKS_DLQ and nobody redrove (their
    events are not in the day: `ingest redrive` after a fix brings them back, and the next compaction drops the
    row). Sequence gaps name the DLQ'd raw messages or connection windows that explain them, when one does."""
    rows = sequence_gaps(con, ticks_path, day, formats)
    if dlq is None:
        return rows
    start, end = (datetime.fromisoformat(day).replace(tzinfo=UTC), datetime.fromisoformat(day).replace(tzinfo=UTC)
                  + timedelta(days=1))
    d0, d1 = int(start.timestamp() * 1e9), int(end.timestamp() * 1e9)
    windows = []
    for _dlq_seq, raw_seq, source, rec in dlq.connector:
        if rec.get("kind") == SEQUENCE_GAPS:
            for g in rec.get("gaps", []):
                try:
                    at = int(g["after_ns"])
                    if not d0 <= at < d1:
                        continue
                    rows.append(_row(day, "sequence", source, channel=str(g.get("channel")), venue_symbol=g.get("symbol"),
                                     from_seq=int(g["from_seq"]), to_seq=int(g["to_seq"]), missing=g.get("missing"),
                                     start_ns=g.get("before_ns"), end_ns=at, raw_before=raw_seq, raw_after=raw_seq,
                                     detected="connector",
                                     detail="found live by the connector's sequence probe (a channel that makes no ticks)"))
                except (KeyError, TypeError, ValueError):
                    log.warning("TICKS_DLQ connector record of raw seq %s: unreadable gap %r", raw_seq, g)
            continue
        try:
            regained = int(rec["regained_ns"])
            lost = int(rec["lost_ns"]) if rec.get("lost_ns") is not None else None
        except (KeyError, TypeError, ValueError):
            log.warning("TICKS_DLQ connector record of raw seq %s is unreadable: %r", raw_seq, rec)
            continue
        cause = rec.get("cause", "reconnect")
        detail = [f"connection {rec['connection']}" if rec.get("connection") else ""]
        if cause == "start":
            lost = _last_received_before(con, ticks_path, source, regained) if d0 <= regained < d1 else None
            detail.append("connector process started; lost at = the source's last tick received before it on this "
                          "day" if lost is not None else "connector process started; no earlier tick of the source "
                          "this day (first start, or down since an earlier day)")
        elif rec.get("reason"):
            detail.append(f"lost: {rec['reason']}")
        if rec.get("replay_from_ns"):
            detail.append(f"intraday replay requested from {_ts(int(rec['replay_from_ns'])):%Y-%m-%d %H:%M:%S.%f} UTC "
                          "(replayed events land again; duplicates are removed by event_id)")
        lo = lost if lost is not None else regained
        if regained < d0 or lo >= d1:
            continue  # another day's window
        windows.append((source, lost, regained))
        rows.append(_row(day, "disconnect" if cause == "reconnect" else "restart", source,
                         channel=rec.get("connection"), start_ns=lost, end_ns=regained, raw_before=raw_seq,
                         raw_after=raw_seq, detected="connector", detail="; ".join(d for d in detail if d)))
    lo_seq, hi_seq = raw_window if raw_window else (None, None)
    rejected_raw: dict[str, set[int]] = {}
    for rec in dlq.rejected:
        if rec["dlq_seq"] in dlq.redriven:
            continue
        raw = rec["raw_seq"]
        if lo_seq is not None and not lo_seq <= raw <= hi_seq:
            continue
        rejected_raw.setdefault(rec["source"], set()).add(raw)
        what = ("the whole raw message, dead-lettered after its last delivery" if rec.get("whole")
                else f"{rec.get('rejects')} rejected frame(s)/event(s)")
        rows.append(_row(day, "rejected", rec["source"], missing=rec.get("rejects"), start_ns=rec.get("at_ns"),
                         end_ns=rec.get("at_ns"), raw_before=raw, raw_after=raw, detected="dlq",
                         detail=f"{what} in TICKS_DLQ (seq {rec['dlq_seq']}): {rec.get('reason', '')}; "
                                "`quant-platform ingest redrive` after a fix"))
    for r in rows:  # explain sequence jumps by the records around them
        if r["kind"] != "sequence" or r["detected"] != "compaction":
            continue
        why = []
        dlqd = sorted(q for q in rejected_raw.get(r["source"], ()) if r["raw_seq_before"] <= q <= r["raw_seq_after"])
        if dlqd:
            why.append(f"raw message(s) {', '.join(map(str, dlqd[:5]))} of the source are in TICKS_DLQ")
        a, b = r["_received"]
        for source, lost, regained in windows:
            if source == r["source"] and regained >= a and (lost if lost is not None else regained) <= b:
                why.append("the connector lost the vendor in between")
                break
        r["detail"] = "; ".join(why) or "not received from the vendor"
    return rows


def gaps_table(rows: list[dict]) -> pa.Table:
    from quant_platform.market.tables import VENDOR_GAPS

    types = {"date": pa.date32(), "timestamptz": pa.timestamp("us", tz="UTC"), "text": pa.string(),
             "bigint": pa.int64(), "double": pa.float64()}
    schema = pa.schema([pa.field(c.name, types[c.type], nullable=c.nullable) for c in VENDOR_GAPS.columns])
    return pa.Table.from_pylist([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows], schema=schema)


def check_metadata(rows: list[dict], formats: dict[str, str], sample: int = 10) -> tuple[bool, dict]:
    """(passed, metadata) of the vendor_sequence_complete check: counts by kind and source, samples."""
    by_kind = {k: sum(1 for r in rows if r["kind"] == k) for k in KINDS}
    missing = sum(int(r["missing"] or 0) for r in rows if r["kind"] in ("sequence", "rejected"))
    counted = [r for r in rows if not (r["kind"] == "restart" and r["gap_start"] is None)]
    by_source: dict[str, int] = {}
    for r in counted:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1

    def text(r: dict) -> str:
        what = {"sequence": lambda: f"{r['channel']} {r['from_seq']}-{r['to_seq']} ({r['missing']} missing)",
                "rejected": lambda: f"raw seq {r['raw_seq_before']} ({r['missing'] or 'whole'} rejected)"}.get(
            r["kind"], lambda: f"{r['gap_start']:%H:%M:%S} - {r['gap_end']:%H:%M:%S}" if r["gap_start"]
            else f"until {r['gap_end']:%H:%M:%S}")()
        return f"{r['kind']} {r['source']} {r['instrument_id'] or r['venue_symbol'] or ''} {what}".replace("  ", " ")

    checked = sorted(s for s, f in formats.items() if f in CONTIGUOUS)
    return not counted, {
        "gaps": len(counted), **{f"{k}_gaps": n for k, n in by_kind.items()},
        "events_missing": missing,
        "by_source": "; ".join(f"{s} {n}" for s, n in sorted(by_source.items())) or "none",
        "sample": "; ".join(text(r) for r in counted[:sample]) or "none",
        "sequences_checked": ", ".join(f"{s} ({CONTIGUOUS[formats[s]][1]})" for s in checked) or "none",
        "sequences_not_countable": "; ".join(f"{s}: {NOT_CONTIGUOUS.get(f, 'no contiguous sequence')}"
                                            for s, f in sorted(formats.items()) if f not in CONTIGUOUS) or "none",
    }


# ------------------------------------------------------------------------------------------- publishing records
class ControlPublisher:
    """Stores a connector's control records in TICKS_RAW (js.publish: acked = stored), in order, from a background
    task: a record that cannot be stored now (NATS down) is kept and retried with backoff, never dropped while the
    process runs, and never delays a vendor frame."""

    def __init__(self, js, source: str, connection_id: str, *, timeout_s: float = 5.0):
        import asyncio

        self.js, self.source, self.connection_id, self.timeout_s = js, source, connection_id, timeout_s
        self._queue: asyncio.Queue = asyncio.Queue()
        self._n = 0
        self._task: asyncio.Task | None = None
        self.stored = 0
        self.failures = 0

    async def __call__(self, record: dict) -> None:
        """Queue a record (the connectors' `control_sink`)."""
        import asyncio

        self._queue.put_nowait(control_message(self.source, self.connection_id, self._n, record))
        self._n += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        import asyncio

        from quant_platform.market.contracts import STREAM_RAW, raw_subject

        delay = 0.2
        while not self._queue.empty():
            body, headers = self._queue._queue[0]  # noqa: SLF001 - peek: removed only once stored
            try:
                await self.js.publish(raw_subject(self.source), body, stream=STREAM_RAW, timeout=self.timeout_s,
                                      headers=headers)
            except Exception as exc:  # noqa: BLE001 - NATS away: keep it, retry
                self.failures += 1
                log.warning("%s: control record not stored yet (%s); retrying in %.1fs", self.source, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._queue.get_nowait()
            self.stored += 1
            delay = 0.2

    async def close(self, timeout_s: float = 5.0) -> None:
        """Wait (up to timeout_s) for the queued records to be stored; then stop trying."""
        import asyncio

        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                log.error("%s: %d control record(s) not stored at stop", self.source, self._queue.qsize())
                self._task.cancel()
