"""Normalizer worker: durable pull consumer on TICKS_RAW; vendor frames -> canonical ticks on TICKS, and
anything that cannot be normalised -> TICKS_DLQ with the reason and the original frame.

Never acknowledge a raw message before its ticks and its rejects are stored: a crash means redelivery.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time

import pyarrow as pa
import pyarrow.compute as pc

from quant_platform.market.adapters import normalize_messages
from quant_platform.market.connection import connect_worker
from quant_platform.market.contracts import (
    STREAM_NORM,
    STREAM_RAW,
    dlq_subject,
    norm_subject,
)
from quant_platform.market.instruments import InstrumentMaster
from quant_platform.platform.settings import bounded_env

log = logging.getLogger(__name__)

HDR_REASON = "Qp-Reason"
HDR_RAW_SEQ = "Qp-Raw-Seq"
# On every TICKS message: "<raw seq>:<ticks>,..." for each raw message of its fetch set and source, so the lake
# can tell a raw message whose ticks arrived only in part (a lost file) from one that arrived whole.
HDR_RAW_TICKS = "Qp-Raw-Ticks"
ARROW_FORMAT = "arrow-ipc"


def table_to_ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def ipc_to_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


class NormalizerStats:
    def __init__(self) -> None:
        self.raw_messages = 0
        self.frames = 0
        self.ticks = 0
        self.rejected = 0
        self.ignored = 0
        self.failures = 0
        self.fast_messages = 0  # raw messages the adapter's vectorised path took whole


def _dlq_publishes(js, source: str, seq: int, rejected, bad_lines, ignored: int, has_ticks: bool) -> list:
    pubs = []
    for n, (frame, reason) in enumerate(rejected):
        pubs.append(js.publish(
            dlq_subject(source), frame.payload, timeout=10,
            headers={"Nats-Msg-Id": f"dlq:{seq}:{n}", HDR_REASON: reason[:500], HDR_RAW_SEQ: str(seq),
                     "Qp-Received-At": str(frame.received_at_ns)}))
    for n, (line_no, line, reason) in enumerate(bad_lines):
        pubs.append(js.publish(
            dlq_subject(source), line, timeout=10,
            headers={"Nats-Msg-Id": f"dlq:{seq}:line{line_no}:{n}", HDR_REASON: reason, HDR_RAW_SEQ: str(seq)}))
    if not has_ticks and not rejected and not bad_lines:
        # Nothing but control frames: recorded so completeness audits can account for the sequence.
        pubs.append(js.publish(
            dlq_subject(source), b"", timeout=10,
            headers={"Nats-Msg-Id": f"dlq:{seq}:empty", HDR_REASON: "no ticks: control frames only",
                     HDR_RAW_SEQ: str(seq), "Qp-Ignored": str(ignored)}))
    return pubs


async def process_raw_messages(js, msgs: list, master: InstrumentMaster, stats: NormalizerStats) -> None:
    """Normalise a fetched set of raw messages together: one TICKS message per (source, instrument) for the
    whole set, rejects to the DLQ, then ack every raw message; on any failure nak them all (redelivery;
    duplicates are removed by event_id at compaction)."""
    by_source: dict[str, list[tuple[int, bytes]]] = {}
    for msg in msgs:
        parts = msg.subject.split(".")
        source = parts[2] if len(parts) > 2 else "unknown"
        by_source.setdefault(source, []).append((msg.metadata.sequence.stream, msg.data))
    tables: dict[str, pa.Table] = {}
    seqs: dict[str, list[int]] = {}
    raw_ticks: dict[str, list[str]] = {}
    publishes = []
    counts = [0, 0, 0, 0]  # frames, ticks, rejected, ignored
    for source, messages in by_source.items():
        done = normalize_messages(source, messages, master)
        if done.table.num_rows:
            tables[source] = done.table
        for res in done.messages:
            if res.ticks:
                seqs.setdefault(source, []).append(res.stream_seq)
                raw_ticks.setdefault(source, []).append(f"{res.stream_seq}:{res.ticks}")
            publishes += _dlq_publishes(js, source, res.stream_seq, res.rejected, res.bad_lines, res.ignored,
                                        res.ticks > 0)
            counts[0] += res.frames
            counts[1] += res.ticks
            counts[2] += len(res.rejected) + len(res.bad_lines)
            counts[3] += res.ignored
        stats.fast_messages += done.fast
    for source, table in tables.items():
        first, last = min(seqs[source]), max(seqs[source])
        ids = table["instrument_id"]
        for inst in pc.unique(ids).to_pylist():
            part = table.filter(pc.equal(ids, inst))
            publishes.append(js.publish(
                norm_subject(source, inst), table_to_ipc(part), stream=STREAM_NORM, timeout=10,
                headers={"Nats-Msg-Id": f"{source}:{first}-{last}:{inst}", "Qp-Format": ARROW_FORMAT,
                         HDR_RAW_SEQ: f"{first}-{last}", HDR_RAW_TICKS: ",".join(raw_ticks[source])}))
    try:
        await asyncio.gather(*publishes)
    except Exception as exc:
        stats.failures += 1
        log.warning("storing %d raw messages failed (%s); nak for redelivery", len(msgs), exc)
        for m in msgs:
            try:
                await m.nak(delay=1)
            except Exception:  # noqa: S110 - redelivery follows ack_wait anyway
                pass
        return
    for m in msgs:
        await m.ack()
    stats.raw_messages += len(msgs)
    stats.frames += counts[0]
    stats.ticks += counts[1]
    stats.rejected += counts[2]
    stats.ignored += counts[3]


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


async def run_normalizer(url: str, stop: asyncio.Event, *, fetch_batch: int = 256,
                         master: InstrumentMaster | None = None, stats: NormalizerStats | None = None,
                         linger_s: float | None = None) -> None:
    from quant_platform.market.streams import ensure_streams

    master = master or InstrumentMaster.load()
    stats = stats or NormalizerStats()
    linger = linger_seconds() if linger_s is None else linger_s
    nc = await connect_worker(url, "qp-normalizer")
    js = nc.jetstream()
    await ensure_streams(js)
    sub = await js.pull_subscribe("ticks.raw.>", durable="normalizer", stream=STREAM_RAW)

    async def handle(batch):
        try:
            await process_raw_messages(js, batch, master, stats)
        except Exception as exc:  # a bug must not kill the worker: nak and carry on
            stats.failures += 1
            log.exception("raw messages failed: %s", exc)
            for m in batch:
                try:
                    await m.nak(delay=2)
                except Exception:  # noqa: S110 - the connection may be gone; redelivery follows ack_wait
                    pass

    try:
        while not stop.is_set():
            try:
                msgs = await fetch_set(sub, fetch_batch, 0.5, linger)
            except TimeoutError:
                continue
            except Exception as exc:
                log.warning("fetch failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            await handle(msgs)
    finally:
        try:
            await sub.unsubscribe()
        except Exception:  # noqa: S110
            pass
        await nc.close()
