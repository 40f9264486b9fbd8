"""Normalizer worker: durable pull consumer on TICKS_RAW; vendor frames -> canonical ticks on TICKS, and
anything that cannot be normalised -> TICKS_DLQ, one record per raw message with every reason, frame and event.

Never acknowledge a raw message before its ticks and its rejects are stored: a crash means redelivery. A message
that keeps failing on its own is dead-lettered whole at its last delivery (never acked unstored, never left to
block the others): a fetched set that fails is retried message by message, so one poison message costs only itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field

import pyarrow as pa

from quant_platform.market import vendor_gaps as vg
from quant_platform.market.adapters import normalize_messages
from quant_platform.market.connection import RESUBSCRIBE_AFTER_S, FetchHealth, connect_worker, resubscribe
from quant_platform.market.contracts import (
    RAW_FORMAT,
    STREAM_DLQ,
    STREAM_NORM,
    STREAM_RAW,
    TICK_SCHEMA,
    dlq_subject,
    norm_batch_subject,
)
from quant_platform.market.instruments import InstrumentMaster
from quant_platform.platform.settings import SettingError, bounded_env

log = logging.getLogger(__name__)

HDR_REASON = "Qp-Reason"
HDR_RAW_SEQ = "Qp-Raw-Seq"
# On every TICKS message: "<raw seq>:<ticks>,..." for each raw message of its fetch set and source, so the lake
# can tell a raw message whose ticks arrived only in part (a lost file) from one that arrived whole.
HDR_RAW_TICKS = "Qp-Raw-Ticks"
ARROW_FORMAT = "arrow-ipc"

# ----------------------------------------------------------------------------------------- dead letters
# TICKS_DLQ records (subject ticks.dlq.<source>). `Qp-Stage` names who wrote it: normalizer (rejects of a raw
# message, or the raw message dead-lettered whole), lander, fanout:<destination>, connector (a connector's control
# record - a connection window, sequence gaps it saw - kept by the normalizer: vendor_gaps.py). Only normalizer and
# connector records carry Qp-Raw-Seq: they account for a raw sequence in the daily completeness check.
HDR_STAGE = "Qp-Stage"
HDR_FORMAT = "Qp-Format"
HDR_REJECTS = "Qp-Rejects"
HDR_DELIVERIES = "Qp-Deliveries"
HDR_TICKS_SEQ = "Qp-Ticks-Seq"  # the TICKS sequence of a message the lander or a fan-out dead-lettered
HDR_HTTP_STATUS = "Qp-Http-Status"
# One JSON document per raw message with rejects: {"raw_seq", "source", "ignored", "ticks", "rejects": [{"reason",
# "received_at_ns", "frame", "frame_index"[, "event"]} or {"reason", "line", "data"}][, "redrive_of"]}. A reject
# with "event" is one event of the frame (its index in the frame's array; the frame's other events are among the
# message's "ticks"), one without is the whole frame; (raw_seq, frame_index, event) names it for a redrive. A frame
# or line that is not UTF-8 is in "frame_b64" / "data_b64" instead. The reasons are all there; Qp-Reason holds
# the first one and the count. "frame_index", "event", "ticks" and "redrive_of" were added in issue 13 (readers of
# the first records must treat them as optional).
DLQ_FORMAT = "qp.dlq.v1"
REASON_MAX = 500
# A raw message `quant-platform ingest redrive` published again (market/redrive.py): what it takes from its frames,
# "<frame index>:<event>,<event>;<frame index>:*" (* = the whole frame), and the raw message it came from.
HDR_REDRIVE_SELECT = "Qp-Redrive-Select"
HDR_REDRIVE_OF = "Qp-Redrive-Of"


def _text(value: bytes, key: str) -> dict:
    try:
        return {key: value.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{key}_b64": base64.b64encode(value).decode("ascii")}


def _reject_entry(r, n: int) -> dict:
    """One reject: an adapters.Reject, or a (frame, reason) pair (its position standing for the frame index)."""
    if hasattr(r, "frame_index"):
        frame, reason, k, event = r.frame, r.reason, r.frame_index, r.event
    else:
        (frame, reason), k, event = r, n, None
    entry = {"reason": reason, "received_at_ns": frame.received_at_ns, **_text(frame.payload, "frame"),
             "frame_index": k}
    if event is not None:
        entry["event"] = event
    return entry


def reject_record(source: str, seq: int, rejected, bad_lines, ignored: int, *, ticks: int = 0,
                  redrive_of: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The one DLQ record of a raw message's rejects (payload, headers)."""
    rejects = [_reject_entry(r, n) for n, r in enumerate(rejected)]
    rejects += [{"reason": reason, "line": line_no, **_text(line, "data")} for line_no, line, reason in bad_lines]
    if rejects:
        first = rejects[0]["reason"]
        summary = first if len(rejects) == 1 else f"{first} (and {len(rejects) - 1} more rejects)"
    else:
        summary = "no ticks: control frames only"
    doc = {"raw_seq": seq, "source": source, "ignored": ignored, "ticks": ticks, "rejects": rejects}
    headers = {"Nats-Msg-Id": f"dlq:{seq}", HDR_FORMAT: DLQ_FORMAT, HDR_STAGE: "normalizer",
               HDR_REASON: summary[:REASON_MAX], HDR_RAW_SEQ: str(seq), HDR_REJECTS: str(len(rejects)),
               "Qp-Ignored": str(ignored)}
    if redrive_of:
        doc["redrive_of"] = redrive_of
        headers[HDR_REDRIVE_OF] = redrive_of
    return json.dumps(doc, separators=(",", ":")).encode(), headers


def control_record(source: str, seq: int, data: bytes) -> tuple[str, bytes, dict[str, str], str]:
    """A connector's control record (vendor_gaps: a connection window, sequence gaps it saw live) is no vendor
    frame: it makes no ticks and is kept, verbatim, as a `connector` stage record in TICKS_DLQ, where its raw
    sequence is accounted for and the day's compaction reads it (vendor_gaps.day_gaps). Never redriven."""
    rec = vg.parse_control(data)
    summary = (f"connector record: {rec.get('kind')} {rec.get('cause', '')}".strip() if rec is not None
               else "connector record (unreadable)")
    return (dlq_subject(source), data, {"Nats-Msg-Id": f"control:{seq}", HDR_FORMAT: vg.CONTROL_FORMAT,
                                        HDR_STAGE: vg.CONNECTOR_STAGE, HDR_REASON: summary[:REASON_MAX],
                                        HDR_RAW_SEQ: str(seq), HDR_REJECTS: "0"}, STREAM_DLQ)


def parse_selection(text: str):
    """Qp-Redrive-Select -> {frame index: set of events, or None for the whole frame}; ValueError when malformed."""
    out: dict[int, set[int] | None] = {}
    for part in text.split(";"):
        frame, sep, events = part.partition(":")
        if not sep or not frame.isdigit():
            raise ValueError(f"bad {HDR_REDRIVE_SELECT} part {part[:40]!r}")
        out[int(frame)] = None if events == "*" else {int(e) for e in events.split(",")}
    return out


def format_selection(selection) -> str:
    return ";".join(f"{k}:*" if ev is None else f"{k}:{','.join(str(e) for e in sorted(ev))}"
                    for k, ev in sorted(selection.items()))


REDELIVERY_DELAY_ENV = "QP_REDELIVERY_DELAY_MS"
DEFAULT_REDELIVERY_DELAY_MS = 1000
MAX_REDELIVERY_DELAY_S = 60.0


def redelivery_delay(num_delivered: int) -> float:
    """Seconds before a failed message is redelivered: QP_REDELIVERY_DELAY_MS (default 1000) doubled per
    delivery, at most 60 s."""
    try:
        base = bounded_env(REDELIVERY_DELAY_ENV, DEFAULT_REDELIVERY_DELAY_MS, 1, 60_000) / 1000
    except SettingError as exc:
        raise SystemExit(str(exc)) from None
    return min(base * 2 ** max(0, num_delivered - 1), MAX_REDELIVERY_DELAY_S)


def deliveries(msg) -> int:
    return int(getattr(msg.metadata, "num_delivered", 1) or 1)


def is_last_delivery(msg, max_deliver: int) -> bool:
    """True at the message's last delivery by its consumer (never for an unbounded consumer)."""
    return max_deliver > 0 and deliveries(msg) >= max_deliver


async def consumer_max_deliver(sub) -> int:
    """The max_deliver of a pull subscription's consumer (-1: unbounded)."""
    info = await sub.consumer_info()
    return int(info.config.max_deliver or -1)


async def dead_letter(js, subject: str, data: bytes, headers: dict[str, str]) -> None:
    """Store one DLQ record (awaits the stream's ack; raises when it is not stored)."""
    await js.publish(subject, data, stream=STREAM_DLQ, timeout=10, headers=headers)


def is_environment_error(exc: BaseException) -> bool:
    """Failures of the surroundings (NATS down or slow, no stream leader, a full disk), which redelivery or a
    retry fixes, as opposed to failures caused by the message itself."""
    import nats.errors
    from nats.js.errors import APIError, ServiceUnavailableError

    if isinstance(exc, nats.errors.MaxPayloadError):
        return False  # this message is too big: it will always be
    if isinstance(exc, ServiceUnavailableError):
        return True  # 503, also from a status message, which carries no code: no leader answers (yet)
    if isinstance(exc, APIError):
        return (exc.code or 0) >= 500 or exc.code in (408, 429)
    return isinstance(exc, (nats.errors.Error, OSError, TimeoutError, ConnectionError))


# ----------------------------------------------------------------------------------------- normalising
def table_to_ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def ipc_to_table(data: bytes) -> pa.Table:
    """A TICKS message's table; one written before the tick schema's extension columns (a message still in TICKS
    across an upgrade) gets them as nulls, so landers and fan-outs take it like any other."""
    table = pa.ipc.open_stream(data).read_all()
    if table.num_columns < len(TICK_SCHEMA) and table.schema.names == TICK_SCHEMA.names[:table.num_columns]:
        for f in TICK_SCHEMA:
            if f.name not in table.schema.names:
                table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table


class NormalizerStats:
    def __init__(self) -> None:
        self.raw_messages = 0
        self.frames = 0
        self.ticks = 0
        self.rejected = 0
        self.ignored = 0
        self.failures = 0
        self.fast_messages = 0  # raw messages the adapter's vectorised path took whole
        self.dead_lettered = 0  # raw messages dead-lettered whole after their last delivery
        self.redelivered = 0  # raw messages nak'd for another try


@dataclass
class _Prepared:
    """What a set of raw messages becomes: the publishes (subject, payload, headers, stream) and counters."""

    publishes: list[tuple[str, bytes, dict, str]] = field(default_factory=list)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # frames, ticks, rejected, ignored
    fast: int = 0


def _source_of(msg) -> str:
    parts = msg.subject.split(".")
    return parts[2] if len(parts) > 2 else "unknown"


def _redrive_headers(msg) -> tuple[dict | None, str | None]:
    """(selection, redrive_of) of a raw message `ingest redrive` published; (None, None) for any other. A
    malformed selection takes the whole message again (never less than the redrive asked for)."""
    headers = getattr(msg, "headers", None) or {}
    text = headers.get(HDR_REDRIVE_SELECT)
    if not text:
        return None, None
    try:
        return parse_selection(text), headers.get(HDR_REDRIVE_OF)
    except ValueError:
        log.warning("raw seq %s: ignoring a malformed %s header", msg.metadata.sequence.stream, HDR_REDRIVE_SELECT)
        return None, headers.get(HDR_REDRIVE_OF)


def prepare(msgs: list, master: InstrumentMaster) -> _Prepared:
    """Normalise a set of raw messages together: one TICKS message per source for the whole set (all its
    instruments, in parts of at most MAX_TICKS_MESSAGE_BYTES) and one DLQ record per raw message with rejects
    (or with nothing but control frames). Redriven messages (Qp-Redrive-Select) go by themselves and yield only
    the frames and events they name."""
    out = _Prepared()
    groups: dict[tuple[str, bool], list[tuple[int, bytes]]] = {}
    selections: dict[int, dict] = {}
    redrive_of: dict[int, str] = {}
    for msg in msgs:
        seq = msg.metadata.sequence.stream
        if vg.is_control(getattr(msg, "headers", None)):
            out.publishes.append(control_record(_source_of(msg), seq, msg.data))
            continue
        selection, origin = _redrive_headers(msg)
        if selection is not None:
            selections[seq] = selection
        if origin:
            redrive_of[seq] = origin
        groups.setdefault((_source_of(msg), selection is not None), []).append((seq, msg.data))
    for (source, redriven), messages in groups.items():
        done = normalize_messages(source, messages, master, selections=selections if redriven else None)
        seqs, raw_ticks = [], []
        for res in done.messages:
            if res.ticks:
                seqs.append(res.stream_seq)
                raw_ticks.append(f"{res.stream_seq}:{res.ticks}")
            if res.rejected or res.bad_lines or not res.ticks:
                data, headers = reject_record(source, res.stream_seq, res.rejected, res.bad_lines, res.ignored,
                                              ticks=res.ticks, redrive_of=redrive_of.get(res.stream_seq))
                out.publishes.append((dlq_subject(source), data, headers, STREAM_DLQ))
            out.counts[0] += res.frames
            out.counts[1] += res.ticks
            out.counts[2] += len(res.rejected) + len(res.bad_lines)
            out.counts[3] += res.ignored
        out.fast += done.fast
        table = done.table
        if not table.num_rows:
            continue
        first, last = min(seqs), max(seqs)
        for data in ipc_parts(table):
            out.publishes.append((norm_batch_subject(source), data, {
                "Nats-Msg-Id": ticks_msg_id(source, "batch", seqs, data), "Qp-Format": ARROW_FORMAT,
                HDR_RAW_SEQ: f"{first}-{last}", HDR_RAW_TICKS: ",".join(raw_ticks)}, STREAM_NORM))
    return out


# A TICKS message holds at most this many bytes: the ticks of a full fetch set (256 raw messages of 500 frames; a
# Databento frame makes up to 256 ticks) can be more than the server's max_payload (8 MiB), which failed the whole
# set, sent it down the one-by-one path and, with other messages of the set already stored, landed those twice.
# Parts are cut by rows and each has its own content-derived id.
MAX_TICKS_MESSAGE_BYTES = 4 * 1024 * 1024


def ipc_parts(part: pa.Table, limit: int | None = None) -> list[bytes]:
    """The table as one Arrow IPC message, or as several of at most `limit` bytes (MAX_TICKS_MESSAGE_BYTES) each."""
    limit = limit or MAX_TICKS_MESSAGE_BYTES
    data = table_to_ipc(part)
    if len(data) <= limit or part.num_rows <= 1:
        return [data]
    pieces = -(-len(data) // limit) + 1  # a margin: rows differ in size, and each piece carries the schema
    rows = -(-part.num_rows // pieces)
    return [d for k in range(0, part.num_rows, rows) for d in ipc_parts(part.slice(k, rows), limit)]


def ticks_msg_id(source: str, instrument_id: str, raw_seqs: list[int], data: bytes) -> str:
    """Nats-Msg-Id of a TICKS message: derived from its content (the raw sequences it was made of and its bytes),
    never from where a fetched set started and ended. Several normalizers fetch interleaved sets, and a redelivered
    set may come back split or merged: two different messages with the same first and last raw sequence must never
    share an id (JetStream would drop the second as a duplicate, and its ticks with it), while the same raw
    messages normalised again give the same id (deduplicated within the stream's window).
    SHA-256, truncated to 96 bits: with the CPU's SHA extensions it hashes 1.4 GB/s here against 0.6 for blake2b,
    and the payload is hashed whole (blake2b was 5% of the normalizer's CPU). A message published before the
    switch and again after it is not deduplicated by JetStream; its ticks are, by event_id, at compaction."""
    h = hashlib.sha256(",".join(map(str, sorted(raw_seqs))).encode())
    h.update(b"\x1f")
    h.update(data)
    return f"{source}:{instrument_id}:{h.hexdigest()[:24]}"


async def _store(js, prepared: _Prepared) -> None:
    await asyncio.gather(*(js.publish(subject, data, stream=stream, timeout=10, headers=headers)
                           for subject, data, headers, stream in prepared.publishes))


def _count(stats: NormalizerStats, msgs: list, prepared: _Prepared) -> None:
    stats.raw_messages += len(msgs)
    stats.frames += prepared.counts[0]
    stats.ticks += prepared.counts[1]
    stats.rejected += prepared.counts[2]
    stats.ignored += prepared.counts[3]
    stats.fast_messages += prepared.fast


async def _quietly(coro) -> None:
    try:
        await coro
    except Exception:  # noqa: S110 - the connection may be gone: redelivery follows ack_wait anyway
        pass


async def _fail_one(js, msg, reason: str, stats: NormalizerStats, max_deliver: int) -> None:
    """A raw message that failed on its own: nak it for a later try, or at its last delivery store it whole in
    TICKS_DLQ with the reason and term() it, so it never blocks the ack floor."""
    stats.failures += 1
    seq = msg.metadata.sequence.stream
    n = deliveries(msg)
    if not is_last_delivery(msg, max_deliver):
        stats.redelivered += 1
        log.warning("raw seq %s failed (delivery %d of %s): %s; nak for redelivery", seq, n,
                    max_deliver if max_deliver > 0 else "unbounded", reason)
        await _quietly(msg.nak(delay=redelivery_delay(n)))
        return
    headers = {"Nats-Msg-Id": f"dlq:{seq}:dead", HDR_FORMAT: RAW_FORMAT, HDR_STAGE: "normalizer",
               HDR_REASON: f"failed {n} deliveries: {reason}"[:REASON_MAX], HDR_RAW_SEQ: str(seq),
               HDR_DELIVERIES: str(n)}
    try:
        await dead_letter(js, dlq_subject(_source_of(msg)), msg.data, headers)
    except Exception as exc:
        # Not stored: never term() it. The server will not deliver it again (max_deliver), so the normalizer's
        # ack floor stays below it and the day's drain barrier waits: loud, not lost (it is still in TICKS_RAW).
        log.error("raw seq %s: dead-lettering after %d deliveries failed (%s); left unacknowledged", seq, n, exc)
        return
    await _quietly(msg.term())
    stats.dead_lettered += 1
    log.error("raw seq %s dead-lettered to %s after %d deliveries: %s", seq, dlq_subject(_source_of(msg)), n, reason)


# A stream whose leader's server died has none for 4-9 s (nats-server's election timeout; a split vote adds a
# round): storing is retried at most STORE_RETRY_MAX_S apart, so a set waits at most that long once the stream
# answers again (with the backoff growing to 10 s it had waited up to 8 s more after a 5 s election).
STORE_RETRY_MAX_S = 1.0
STORE_FAILURE_LOG_EVERY_S = 10.0


async def process_raw_messages(js, msgs: list, master: InstrumentMaster, stats: NormalizerStats, *,
                               max_deliver: int = -1, stop: asyncio.Event | None = None,
                               retry_s: float = 0.5) -> None:
    """Normalise a fetched set of raw messages, store ticks and DLQ records, then ack each raw message.

    A set that fails because of its content is retried one message at a time: the good ones are stored and
    acked, each failing one is nak'd with a growing delay and dead-lettered at its last delivery. A set that
    fails because of the surroundings (NATS, the streams) is kept and stored again with backoff while `stop` is
    unset (its messages kept in progress), then nak'd; redelivery duplicates are removed by event_id."""
    try:
        prepared = prepare(msgs, master)
        failure: BaseException | None = None
    except Exception as exc:  # normalising never raises by contract: a bug, isolate it
        prepared, failure = None, exc
    backoff = retry_s
    failing_since = logged_at = 0.0
    while prepared is not None:
        try:
            await _store(js, prepared)
            if failing_since:
                log.info("stored %d raw messages after %.1fs of retries", len(msgs), time.monotonic() - failing_since)
            break
        except Exception as exc:
            if not is_environment_error(exc):
                failure = exc
                break
            stats.failures += 1
            if stop is None or stop.is_set():
                log.warning("storing %d raw messages failed (%s); nak for redelivery", len(msgs), exc)
                for m in msgs:
                    await _quietly(m.nak(delay=1))
                return
            now = time.monotonic()
            if not failing_since:
                failing_since = logged_at = now
                log.warning("storing %d raw messages failed (%s); retrying at most %.1fs apart", len(msgs), exc,
                            STORE_RETRY_MAX_S)
            elif now - logged_at >= STORE_FAILURE_LOG_EVERY_S:
                logged_at = now
                log.warning("storing %d raw messages still failing after %.1fs (%s)", len(msgs), now - failing_since,
                            exc)
            for m in msgs:
                await _quietly(m.in_progress())
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, STORE_RETRY_MAX_S)
    if failure is not None:
        if len(msgs) == 1:
            await _fail_one(js, msgs[0], f"{type(failure).__name__}: {str(failure)[:300]}", stats, max_deliver)
            return
        log.warning("a set of %d raw messages failed (%s: %s); retrying them one by one", len(msgs),
                    type(failure).__name__, failure)
        for m in msgs:
            await process_raw_messages(js, [m], master, stats, max_deliver=max_deliver, stop=stop, retry_s=retry_s)
        return
    for m in msgs:
        await m.ack()
    _count(stats, msgs, prepared)


# A fetch that returns less than a full set waits up to this long for more before normalising: each set
# costs a few ms whatever its size (TICKS publishes per instrument, table building), so at low rates one set
# every 50 ms instead of one per raw message cuts the normalizer's and lander's CPU several times, for at
# most 50 ms more receipt -> queryable latency. Under load sets are full at once and nothing waits.
LINGER_ENV = "QP_NORMALIZER_LINGER_MS"
DEFAULT_LINGER_S = 0.05


def linger_seconds() -> float:
    """QP_NORMALIZER_LINGER_MS (0-1000) in seconds; SettingError (a ValueError) when malformed."""
    return bounded_env(LINGER_ENV, DEFAULT_LINGER_S * 1000, 0, 1000) / 1000


async def fetch_set(sub, batch: int, timeout: float, linger_s: float) -> list:
    """Up to `batch` messages: waits up to `timeout` for the first, then up to `linger_s` for the rest."""
    msgs = await sub.fetch(batch, timeout=timeout)
    deadline = time.monotonic() + linger_s
    while len(msgs) < batch:
        left = deadline - time.monotonic()
        if left < 0.005:
            break
        try:
            msgs += await sub.fetch(batch - len(msgs), timeout=left)
        except TimeoutError:
            break
    return msgs


# A fetched set is normalised in chunks of at most this many raw bytes, and before each chunk the set's remaining
# messages are marked in progress: a full set of a slow format (256 raw messages of 500 Databento frames, 128k DBN
# decodes) took longer than the consumer's ack wait on a busy host, was delivered again meanwhile and landed twice.
MAX_SET_BYTES = 8 * 1024 * 1024


def set_chunks(msgs: list, limit: int | None = None) -> list[list]:
    """Consecutive chunks of a fetched set, each at most `limit` (MAX_SET_BYTES) bytes of raw data (at least one
    message)."""
    limit = limit or MAX_SET_BYTES
    chunks: list[list] = [[]]
    size = 0
    for m in msgs:
        n = len(m.data or b"")
        if chunks[-1] and size + n > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(m)
        size += n
    return chunks if chunks[0] else []


# Chunks of fetched sets whose storing and acking may still be under way while the next one is normalised.
PIPELINE_DEPTH = 1


async def run_normalizer(url: str, stop: asyncio.Event, *, fetch_batch: int = 256,
                         master: InstrumentMaster | None = None, stats: NormalizerStats | None = None,
                         linger_s: float | None = None, resubscribe_after_s: float = RESUBSCRIBE_AFTER_S,
                         set_bytes: int | None = None) -> None:
    """Fetch sets of up to `fetch_batch` raw messages until `stop`, normalise each in chunks of at most `set_bytes`
    (MAX_SET_BYTES) raw bytes, store the ticks and ack. Returns once every fetched message is acked or nak'd."""
    from quant_platform.market.streams import ensure_streams

    master = master or InstrumentMaster.load()
    stats = stats or NormalizerStats()
    linger = linger_seconds() if linger_s is None else linger_s
    nc = await connect_worker(url, "qp-normalizer")
    js = nc.jetstream()
    await ensure_streams(js)
    sub = await js.pull_subscribe("ticks.raw.>", durable="normalizer", stream=STREAM_RAW)
    max_deliver = await consumer_max_deliver(sub)

    async def guarded(chunk: list) -> None:
        try:
            await process_raw_messages(js, chunk, master, stats, max_deliver=max_deliver, stop=stop)
        except Exception as exc:  # a bug must not kill the worker: nak and carry on
            stats.failures += 1
            log.exception("raw messages failed: %s", exc)
            for m in chunk:
                await _quietly(m.nak(delay=redelivery_delay(deliveries(m))))

    # One chunk in flight behind the one being normalised (PIPELINE_DEPTH): a chunk's TICKS publishes wait for the
    # server's fsync and its acks, and the normalising of the next chunk, or the next fetch, runs meanwhile.
    in_flight: list[asyncio.Task] = []

    async def handle(batch):
        chunks = set_chunks(batch, set_bytes)
        for k, chunk in enumerate(chunks):
            if k:  # the rest of the set waited while the earlier chunks were normalised: restart its ack clock
                for m in (m for rest in chunks[k:] for m in rest):
                    await _quietly(m.in_progress())
            in_flight.append(asyncio.create_task(guarded(chunk)))
            while len(in_flight) > PIPELINE_DEPTH:  # the new chunk is normalised while the oldest one is awaited
                await in_flight.pop(0)

    health = FetchHealth("normalizer", "normalizer", resubscribe_after_s)
    try:
        while not stop.is_set():
            try:
                msgs = await fetch_set(sub, fetch_batch, 0.5, linger)
            except TimeoutError:
                if nc.is_connected:
                    health.ok()
                continue
            except Exception as exc:  # e.g. 503 while the consumer's replicas elect a leader: connection.py
                if health.failed(exc):
                    sub = await resubscribe(js, sub, "ticks.raw.>", "normalizer", STREAM_RAW, health)
                await asyncio.sleep(0.5)
                continue
            health.ok()
            await handle(msgs)
    finally:
        for task in in_flight:  # stored and acked, or nak'd (stop is set): never left half done
            await task
        try:
            await sub.unsubscribe()
        except Exception:  # noqa: S110
            pass
        await nc.close()
