"""Normalizer worker: durable pull consumer on TICKS_RAW; vendor frames -> canonical ticks on TICKS, and
anything that cannot be normalised -> TICKS_DLQ with the reason and the original frame.

Never acknowledge a raw message before its ticks and its rejects are stored: a crash means redelivery.
"""

from __future__ import annotations

import asyncio
import io
import logging

import pyarrow as pa
import pyarrow.compute as pc

from quant_platform.market.adapters import normalize_batch
from quant_platform.market.contracts import (
    STREAM_NORM,
    STREAM_RAW,
    decode_batch,
    dlq_subject,
    norm_subject,
)
from quant_platform.market.instruments import InstrumentMaster

log = logging.getLogger(__name__)

HDR_REASON = "Qp-Reason"
HDR_RAW_SEQ = "Qp-Raw-Seq"
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


async def process_raw_message(js, msg, master: InstrumentMaster, stats: NormalizerStats) -> None:
    """Normalise one raw message, store its ticks and rejects, then ack it (or nak it on failure)."""
    parts = msg.subject.split(".")
    source = parts[2] if len(parts) > 2 else "unknown"
    seq = msg.metadata.sequence.stream
    frames, bad_lines = [], []
    for item in decode_batch(msg.data):
        if isinstance(item, tuple):
            bad_lines.append(item)
        else:
            frames.append(item)
    table, rejected, ignored = normalize_batch(source, frames, seq, master)
    publishes = []
    if table.num_rows:
        ids = table["instrument_id"]
        for inst in pc.unique(ids).to_pylist():
            part = table.filter(pc.equal(ids, inst))
            publishes.append(js.publish(
                norm_subject(source, inst), table_to_ipc(part), stream=STREAM_NORM, timeout=10,
                headers={"Nats-Msg-Id": f"{seq}:{inst}", "Qp-Format": ARROW_FORMAT, HDR_RAW_SEQ: str(seq)}))
    for n, (frame, reason) in enumerate(rejected):
        publishes.append(js.publish(
            dlq_subject(source), frame.payload, timeout=10,
            headers={"Nats-Msg-Id": f"dlq:{seq}:{n}", HDR_REASON: reason[:500], HDR_RAW_SEQ: str(seq),
                     "Qp-Received-At": str(frame.received_at_ns)}))
    for n, (line_no, line, reason) in enumerate(bad_lines):
        publishes.append(js.publish(
            dlq_subject(source), line, timeout=10,
            headers={"Nats-Msg-Id": f"dlq:{seq}:line{line_no}:{n}", HDR_REASON: reason, HDR_RAW_SEQ: str(seq)}))
    if not table.num_rows and not rejected and not bad_lines:
        # Nothing but ignored frames (control messages): recorded so completeness can account for the seq.
        publishes.append(js.publish(
            dlq_subject(source), b"", timeout=10,
            headers={"Nats-Msg-Id": f"dlq:{seq}:empty", HDR_REASON: "no ticks: control frames only",
                     HDR_RAW_SEQ: str(seq), "Qp-Ignored": str(ignored)}))
    try:
        await asyncio.gather(*publishes)
    except Exception as exc:
        stats.failures += 1
        log.warning("raw seq %s: storing the results failed (%s); nak for redelivery", seq, exc)
        await msg.nak(delay=1)
        return
    await msg.ack()
    stats.raw_messages += 1
    stats.frames += len(frames) + len(bad_lines)
    stats.ticks += table.num_rows
    stats.rejected += len(rejected) + len(bad_lines)
    stats.ignored += ignored


async def run_normalizer(url: str, stop: asyncio.Event, *, fetch_batch: int = 256,
                         master: InstrumentMaster | None = None, stats: NormalizerStats | None = None) -> None:
    import nats

    from quant_platform.market.streams import ensure_streams

    master = master or InstrumentMaster.load()
    stats = stats or NormalizerStats()
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, name="qp-normalizer")
    js = nc.jetstream()
    await ensure_streams(js)
    sub = await js.pull_subscribe("ticks.raw.>", durable="normalizer", stream=STREAM_RAW)
    sem = asyncio.Semaphore(64)

    async def one(m):
        async with sem:
            try:
                await process_raw_message(js, m, master, stats)
            except Exception as exc:  # a bug must not kill the worker: nak and carry on
                stats.failures += 1
                log.exception("raw message failed: %s", exc)
                try:
                    await m.nak(delay=2)
                except Exception:  # noqa: S110 - the connection may be gone; redelivery follows ack_wait
                    pass

    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(fetch_batch, timeout=0.5)
            except TimeoutError:
                continue
            except Exception as exc:
                log.warning("fetch failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            await asyncio.gather(*(one(m) for m in msgs))
    finally:
        try:
            await sub.unsubscribe()
        except Exception:  # noqa: S110
            pass
        await nc.close()
