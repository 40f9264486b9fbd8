"""What Dagster reads of the tick stream, always briefly: stream and consumer state with per-source counts,
the drain barrier that closes a UTC day, the raw sequences the DLQ accounts for (from a starting sequence, so a
day's compaction reads that day's records, not the whole DLQ), and which streams are filling up.

Never consume, acknowledge or create anything here: reads are stream/consumer info and direct gets, all the
read-only `dagster` NATS user may do.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from quant_platform.errors import ConfigError, QuantPlatformError
from quant_platform.market import vendor_gaps as vg
from quant_platform.market.contracts import HDR_FORMAT, RAW_FORMAT, STREAM_DLQ, STREAM_NORM, STREAM_RAW
from quant_platform.market.normalizer import HDR_RAW_SEQ, HDR_STAGE

# The consumers that put ticks in the lake: a day closes when both have drained past it. Fan-out
# destinations are not waited for (a slow destination must not hold back the daily partition).
LAKE_CONSUMERS = {STREAM_RAW: "normalizer", STREAM_NORM: "lander"}


def nats_url_file(home: Path) -> Path:
    """Where `quant-platform ingest run` announces the URL of the embedded server it started."""
    return Path(home) / "nats" / "url"


def running_nats_url(home: Path) -> str | None:
    """QP_NATS_URL, else the embedded server `quant-platform ingest run` announced in <QP_HOME>/nats/url."""
    url = os.environ.get("QP_NATS_URL", "").strip()
    if url:
        return url
    f = nats_url_file(home)
    return f.read_text().strip() if f.exists() else None


async def _connect(url: str, timeout: float):
    import nats

    from quant_platform.market.connection import connect_options

    async def _failure_is_raised(_exc: Exception) -> None:
        """nats-py's default error callback logs a traceback per failed attempt; the failure is raised anyway."""

    return await nats.connect(**connect_options(url), connect_timeout=timeout, max_reconnect_attempts=1,
                              allow_reconnect=False, name="qp-dagster-observer", error_cb=_failure_is_raised)


async def probe_nats(url: str, timeout: float = 3.0) -> None:
    """Fail with one line when no NATS server answers at `url` (a CLI command must not hang or trace back)."""
    from quant_platform.errors import ConfigError, without_password

    try:
        nc = await _connect(url, timeout)
    except Exception as exc:  # nats-py raises NoServersError, OSError or TimeoutError depending on the failure
        raise ConfigError(f"no NATS server answers at {without_password(url)} "
                          f"({type(exc).__name__}: {exc or 'no answer'}); start `quant-platform ingest run` "
                          "or set QP_NATS_URL") from None
    await nc.close()


async def read_stream_state(url: str, timeout: float = 5.0) -> dict:
    """stream_state() plus per-source message counts of TICKS_RAW, TICKS and TICKS_DLQ."""
    from nats.js.errors import NotFoundError

    from quant_platform.market.streams import stream_state

    nc = await _connect(url, timeout)
    try:
        js = nc.jetstream(timeout=timeout)
        state = await stream_state(js)
        for name, pattern in ((STREAM_RAW, "ticks.raw.>"), (STREAM_NORM, "ticks.norm.>"), (STREAM_DLQ, "ticks.dlq.>")):
            per_source: dict[str, int] = {}
            try:
                info = await js.stream_info(name, subjects_filter=pattern)
                for subject, n in (info.state.subjects or {}).items():
                    src = subject.split(".")[2] if subject.count(".") >= 2 else subject
                    per_source[src] = per_source.get(src, 0) + int(n)
            except NotFoundError:
                pass
            state[name]["per_source"] = per_source
        state[STREAM_RAW]["sources_last"] = await _sources_last(js, state[STREAM_RAW]["per_source"])
        state[STREAM_RAW]["last_time"] = None
        if state[STREAM_RAW].get("last_seq"):
            try:  # when the newest raw message was stored: the stream's progress clock
                last = await js.get_msg(STREAM_RAW, state[STREAM_RAW]["last_seq"])
                state[STREAM_RAW]["last_time"] = last.time.timestamp() if last.time else None
            except Exception:  # noqa: S110 - expired or deleted meanwhile: progress unknown this time
                pass
        return state
    finally:
        await nc.close()


async def _sources_last(js, per_source: dict[str, int]) -> dict[str, dict]:
    """{source: {"seq", "time"}} of the newest raw message on each source's subject ticks.raw.<source>.batch (a
    get of the last message by subject: STREAM.MSG.GET, which the read-only `dagster` user may do). A source whose
    messages all expired is not listed (it is not in the stream any more)."""
    from quant_platform.market.contracts import raw_subject

    out: dict[str, dict] = {}
    for source in sorted(per_source):
        try:
            msg = await js.get_msg(STREAM_RAW, subject=raw_subject(source))
        except Exception:  # noqa: S112 - gone meanwhile, or another subject layout: not a liveness reading
            continue
        out[source] = {"seq": int(msg.seq or 0), "time": msg.time.timestamp() if msg.time else None}
    return out


def stream_state_now(url: str, timeout: float = 5.0) -> dict:
    return asyncio.run(asyncio.wait_for(read_stream_state(url, timeout), timeout * 3))


DIRECT_GET_BATCH = 500


class StreamReadError(QuantPlatformError):
    """The server refused a read of stream messages (e.g. direct gets not allowed on the stream)."""


async def read_headers_direct(nc, stream: str, first_seq: int, last_seq: int, timeout: float = 5.0):
    """(sequence, headers) of every message of `stream` from first_seq to last_seq, by batched direct gets
    ($JS.API.DIRECT.GET.<stream>, nats-server 2.11+, stream allow_direct): no consumer is created, so a user
    allowed only to read (`dagster`) can do it."""
    return [(seq, hdrs) for seq, hdrs, _ in await read_direct(nc, stream, first_seq, last_seq, timeout)]


async def read_direct(nc, stream: str, first_seq: int, last_seq: int, timeout: float = 5.0, keep_data=None):
    """(sequence, headers, data) like read_headers_direct; data is kept only where `keep_data(headers)` is true
    (b"" otherwise), so a long read holds headers only. Headers include Nats-Subject and Nats-Time-Stamp."""
    import json

    out: list[tuple[int, dict, bytes]] = []
    seq = first_seq
    while seq <= last_seq:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        try:
            req = {"seq": seq, "batch": min(DIRECT_GET_BATCH, last_seq - seq + 1)}
            await nc.publish(f"$JS.API.DIRECT.GET.{stream}", json.dumps(req).encode(), reply=inbox)
            got = False
            while True:
                msg = await sub.next_msg(timeout=timeout)
                hdrs = msg.headers or {}
                status = hdrs.get("Status")
                if status:  # 204 end of batch, 404 nothing at or after seq, 408/413 refused
                    if status not in ("204", "404"):
                        raise StreamReadError(f"direct get on {stream} refused: {status} {hdrs.get('Description', '')}")
                    if status == "404":
                        return out
                    break
                n = int(hdrs.get("Nats-Sequence", "0"))
                out.append((n, hdrs, msg.data if keep_data is not None and keep_data(hdrs) else b""))
                seq = max(seq, n + 1)
                got = True
            if not got:
                return out
        finally:
            await sub.unsubscribe()
    return out


@dataclass
class DlqRead:
    """The normalizer's DLQ records read from `read_from` to `last_seq` (the stream's last when read)."""

    raw: dict[int, str] = field(default_factory=dict)  # raw TICKS_RAW sequence -> reason
    dlq_seq: dict[int, int] = field(default_factory=dict)  # raw sequence -> the first DLQ sequence holding it
    read_from: int = 0
    last_seq: int = 0
    records: int = 0  # DLQ messages fetched
    # For vendor completeness (vendor_gaps.day_gaps): connector records, the normalizer's rejects, redrive marks.
    vendor: VendorRecords = field(default_factory=lambda: VendorRecords())

    def resume_after(self, raw_above: int) -> int:
        """The DLQ sequence at or after which every record of a raw sequence above `raw_above` lies: the first
        such record read, else the one after the last (a later record gets a later DLQ sequence)."""
        return min((q for raw, q in self.dlq_seq.items() if raw > raw_above), default=self.last_seq + 1)


async def read_dlq(url: str, timeout: float = 5.0, *, start_seq: int | None = None) -> DlqRead:
    """The raw sequences TICKS_DLQ accounts for (rejects, control-only markers and raw messages dead-lettered
    whole), reading from `start_seq` (None: the stream's first message) to its last. Records of the lander
    and fan-out stages carry no raw sequence: they do not account for a raw message (its ticks are missing
    from the lake, which the completeness check must see)."""
    nc = await _connect(url, timeout)
    out = DlqRead()
    try:
        js = nc.jetstream(timeout=timeout)
        info = await js.stream_info(STREAM_DLQ)
        first, last = int(info.state.first_seq), int(info.state.last_seq)
        out.read_from, out.last_seq = max(first, int(start_seq or 0)), last
        if not info.state.messages or out.read_from > last:
            return out
        for seq, hdrs, data in await read_direct(nc, STREAM_DLQ, out.read_from, last, timeout,
                                                 keep_data=lambda h: h.get(HDR_STAGE) == vg.CONNECTOR_STAGE):
            out.records += 1
            raw = hdrs.get(HDR_RAW_SEQ)
            if raw and raw.isdigit():
                out.raw[int(raw)] = hdrs.get("Qp-Reason", "")
                out.dlq_seq.setdefault(int(raw), seq)
            _vendor_record(out.vendor, seq, hdrs, data)
        return out
    finally:
        await nc.close()


VendorRecords = vg.DlqRecords


def _time_ns(hdrs: dict) -> int | None:
    """Nats-Time-Stamp of a direct get (RFC 3339, nanoseconds) in ns since the epoch."""
    text = hdrs.get("Nats-Time-Stamp")
    if not text:
        return None
    try:
        from quant_platform.market.adapters import rfc3339_to_ns

        return rfc3339_to_ns(text)
    except Exception:  # noqa: BLE001 - a time we cannot read is left out, never a failed read
        return None


def _vendor_record(out: VendorRecords, seq: int, hdrs: dict, data: bytes) -> None:
    """Sort one DLQ record for vendor completeness: a connector record (its document), a normalizer record with
    rejects or a raw message dead-lettered whole, or a redrive mark. Control-only records are not gaps."""
    from quant_platform.market.redrive import HDR_REDRIVE_DLQ, REDRIVE_STAGE

    stage = hdrs.get(HDR_STAGE)
    subject = hdrs.get("Nats-Subject", "")
    source = subject.split(".", 2)[2] if subject.count(".") >= 2 else "unknown"
    raw = hdrs.get(HDR_RAW_SEQ, "")
    if stage == REDRIVE_STAGE and hdrs.get(HDR_REDRIVE_DLQ, "").isdigit():
        out.redriven.add(int(hdrs[HDR_REDRIVE_DLQ]))
    elif stage == vg.CONNECTOR_STAGE and raw.isdigit():
        rec = vg.parse_control(data)
        if rec is not None:
            out.connector.append((seq, int(raw), source, rec))
    elif stage == "normalizer" and raw.isdigit():
        whole = hdrs.get(HDR_FORMAT) == RAW_FORMAT
        rejects = int(hdrs.get("Qp-Rejects", "0") or 0) if hdrs.get("Qp-Rejects", "0").isdigit() else 0
        if whole or rejects:
            out.rejected.append({"dlq_seq": seq, "raw_seq": int(raw), "source": source, "rejects": rejects or None,
                                 "whole": whole, "reason": hdrs.get("Qp-Reason", "")[:200],
                                 "at_ns": _time_ns(hdrs)})


async def read_dlq_raw_seqs(url: str, timeout: float = 5.0, *, start_seq: int | None = None) -> dict[int, str]:
    """{raw TICKS_RAW sequence: reason} of the DLQ records from `start_seq` (None: all of them)."""
    return (await read_dlq(url, timeout, start_seq=start_seq)).raw


def dlq_raw_seqs_now(url: str, timeout: float = 5.0, *, start_seq: int | None = None) -> dict[int, str]:
    return asyncio.run(read_dlq_raw_seqs(url, timeout, start_seq=start_seq))


def dlq_now(url: str, timeout: float = 5.0, *, start_seq: int | None = None) -> DlqRead:
    return asyncio.run(read_dlq(url, timeout, start_seq=start_seq))


SOURCE_STALE_ENV = "QP_SOURCE_STALE_MINUTES"
DEFAULT_SOURCE_STALE_MINUTES = 10.0


def source_stale_after_s() -> float:
    """QP_SOURCE_STALE_MINUTES (0.01-1440, default 10) in seconds."""
    from quant_platform.platform.settings import SettingError, bounded_env

    try:
        return bounded_env(SOURCE_STALE_ENV, DEFAULT_SOURCE_STALE_MINUTES, 0.01, 1440) * 60
    except SettingError as exc:
        raise ConfigError(str(exc)) from None


def source_classes(master) -> dict[str, set[str]]:
    """{source: the asset classes of its instruments} from the instrument master (futures roots included)."""
    out: dict[str, set[str]] = {}
    for ins in master.instruments():
        for src in ins.venues:
            out.setdefault(src, set()).add(ins.asset_class)
    for root in master.futures_roots():
        for src in root.sources:
            out.setdefault(src, set()).add("future")
    return out


def source_liveness(state: dict, now: float, classes: dict[str, set[str]], stale_s: float | None = None
                    ) -> list[dict]:
    """Per source of TICKS_RAW (state from read_stream_state: `sources_last`): its newest raw message's time and
    age, `fresh` (younger than QP_SOURCE_STALE_MINUTES), `expected` (one of its instruments is in trading hours
    now; a source the master does not know is expected around the clock) and `stalled`: not fresh while expected
    and while another source is fresh (one dead source behind live ones; all of them stopping is the whole
    stream's stale check)."""
    from datetime import UTC, datetime

    from quant_platform.market.daily_checks import in_trading_hours

    limit = source_stale_after_s() if stale_s is None else stale_s
    at = datetime.fromtimestamp(now, UTC)
    rows = []
    for src, info in sorted(state.get(STREAM_RAW, {}).get("sources_last", {}).items()):
        t = info.get("time")
        age = now - t if t is not None else None
        cls = classes.get(src) or {"unknown"}
        rows.append({"source": src, "last_time": t, "last_seq": info.get("seq"), "age_s": age,
                     "fresh": age is not None and age <= limit,
                     "expected": any(in_trading_hours(c, at) for c in cls)})
    flowing = any(r["fresh"] for r in rows)
    for r in rows:
        r["stalled"] = flowing and r["expected"] and not r["fresh"]
    return rows


FILL_ALERT_ENV = "QP_STREAM_FILL_ALERT_PCT"
DEFAULT_FILL_ALERT_PCT = 80.0


def fill_alert_ratio() -> float:
    """QP_STREAM_FILL_ALERT_PCT (1-100, default 80) as a ratio."""
    from quant_platform.platform.settings import SettingError, bounded_env

    try:
        return bounded_env(FILL_ALERT_ENV, DEFAULT_FILL_ALERT_PCT, 1, 100) / 100
    except SettingError as exc:
        raise ConfigError(str(exc)) from None


def stream_fill(state: dict, threshold: float | None = None) -> list[dict]:
    """The streams of `state` (stream_state()) holding more than `threshold` (default QP_STREAM_FILL_ALERT_PCT,
    80%) of their max_bytes: [{"stream", "bytes", "max_bytes", "fill", "discard"}], fullest first. A full
    TICKS_RAW (discard new) refuses connectors' batches; a full TICKS or TICKS_DLQ drops its oldest messages."""
    limit = fill_alert_ratio() if threshold is None else threshold
    out = []
    for name, st in state.items():
        max_bytes = int(st.get("max_bytes") or -1)
        if not st.get("exists") or max_bytes <= 0:
            continue
        fill = int(st.get("bytes", 0)) / max_bytes
        if fill > limit:
            out.append({"stream": name, "bytes": int(st["bytes"]), "max_bytes": max_bytes, "fill": round(fill, 4),
                        "discard": st.get("discard")})
    return sorted(out, key=lambda f: -f["fill"])


def ack_floor(state: dict, stream: str) -> int:
    c = state.get(stream, {}).get("consumers", {}).get(LAKE_CONSUMERS[stream])
    if c is None:
        raise ConfigError(f"consumer {LAKE_CONSUMERS[stream]} of {stream} does not exist: is ingest running?")
    return int(c["ack_floor_stream_seq"])


def advance_barrier(barrier: dict | None, state: dict, read_state, now_iso: str) -> tuple[dict, dict | None]:
    """One step of the drain barrier (several in one call when the pipeline keeps up), from `state` just read.

    A barrier set at time T notes TICKS_RAW's last sequence R; once the normalizer's ack floor passes R,
    every tick received before T is in TICKS (the normalizer publishes before it acks), so it notes TICKS'
    last sequence N; once the lander's ack floor passes N, every tick received before T is in the lake.
    Returns (the barrier to keep, the completed barrier or None). `read_state()` reads stream_state again."""
    if not barrier:
        barrier = {"at": now_iso, "raw": int(state[STREAM_RAW]["last_seq"]), "ticks": None}
    if barrier.get("ticks") is None:
        if ack_floor(state, STREAM_RAW) < barrier["raw"]:
            return barrier, None
        state = read_state()  # TICKS read after the normalizer's floor passed R
        barrier["ticks"] = int(state[STREAM_NORM]["last_seq"])
    if ack_floor(state, STREAM_NORM) < barrier["ticks"]:
        return barrier, None
    return {}, barrier
