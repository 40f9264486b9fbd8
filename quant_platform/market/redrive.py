"""`quant-platform ingest redrive`: publish what the normalizer rejected (TICKS_DLQ) to TICKS_RAW again, after a fix
(an instrument master that learnt a symbol, an adapter bug fixed), so exactly the rejected frames and events land.

Never alter a vendor frame (the bytes published are the bytes the DLQ kept) and never publish a record twice.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter

from quant_platform.market.contracts import (
    HDR_FORMAT,
    HDR_FRAMES,
    HDR_SOURCE,
    RAW_FORMAT,
    STREAM_DLQ,
    STREAM_RAW,
    RawFrame,
    dlq_subject,
    encode_batch,
    raw_subject,
)
from quant_platform.market.normalizer import (
    DLQ_FORMAT,
    HDR_RAW_SEQ,
    HDR_REDRIVE_OF,
    HDR_REDRIVE_SELECT,
    HDR_STAGE,
    format_selection,
)

log = logging.getLogger(__name__)

# The marker a redrive leaves in TICKS_DLQ once every frame of a record is published again: the next run skips
# that record. Markers carry no Qp-Raw-Seq, so the daily completeness check never counts them.
REDRIVE_STAGE = "redrive"
REDRIVE_FORMAT = "qp.redrive.v1"
HDR_REDRIVE_DLQ = "Qp-Redrive-Dlq"


def redrive_msg_id(source: str, raw_seq: int, frame_index: int | str) -> str:
    """Nats-Msg-Id of a redriven frame: derived from the original raw reference only, so publishing it twice
    (a rerun, a crash between publish and marker) is deduplicated by TICKS_RAW within its duplicate window, and
    the event ids dedup anything later at compaction."""
    return f"redrive:{source}:{raw_seq}:{frame_index}"


def plan_record(source: str, dlq_seq: int, headers: dict, data: bytes) -> tuple[list[tuple[bytes, dict]], Counter]:
    """The raw messages to publish for one TICKS_DLQ record, and counts of what could not be taken again."""
    counts: Counter = Counter()
    fmt = headers.get(HDR_FORMAT)
    raw_seq = headers.get(HDR_RAW_SEQ, "")
    common = {HDR_FORMAT: RAW_FORMAT, HDR_SOURCE: source, HDR_REDRIVE_DLQ: str(dlq_seq)}
    if fmt == RAW_FORMAT:  # a raw message dead-lettered whole (it failed every delivery): all of it again
        frames = data.count(b"\n") + 1 if data else 0
        counts["frames"] += frames
        return [(data, {**common, "Nats-Msg-Id": redrive_msg_id(source, raw_seq, "all"),
                        HDR_REDRIVE_OF: f"{raw_seq}:all", HDR_FRAMES: str(frames)})], counts
    if fmt != DLQ_FORMAT:
        counts["records_unknown_format"] += 1
        return [], counts
    doc = json.loads(data)
    by_frame: dict[int, tuple[RawFrame, set[int] | None]] = {}
    for n, rej in enumerate(doc.get("rejects", [])):
        if "frame" in rej:
            payload = rej["frame"].encode("utf-8")
        elif "frame_b64" in rej:
            payload = base64.b64decode(rej["frame_b64"])
        else:  # a line that was not `<received_at_ns> <frame>`: no vendor frame to take again
            counts["lines_unreadable"] += 1
            continue
        # Records written before issue 13 have no frame_index: each reject is then a frame of its own.
        k = int(rej.get("frame_index", n))
        frame, events = by_frame.get(k, (RawFrame(int(rej["received_at_ns"]), payload), set()))
        event = rej.get("event")
        if event is None or events is None:
            events = None  # the whole frame
        else:
            events.add(int(event))
        by_frame[k] = (frame, events)
    out = []
    for k, (frame, events) in sorted(by_frame.items()):
        counts["frames"] += 1
        counts["events"] += len(events) if events is not None else 0
        out.append((encode_batch([frame]), {
            **common, "Nats-Msg-Id": redrive_msg_id(source, raw_seq, k), HDR_FRAMES: "1",
            HDR_REDRIVE_OF: f"{raw_seq}:{k}", HDR_REDRIVE_SELECT: format_selection({0: events})}))
    return out, counts


async def _dlq_records(js, first: int, last: int):
    """(sequence, subject, headers, data) of TICKS_DLQ from first to last (deleted sequences skipped)."""
    from nats.js.errors import NotFoundError

    for seq in range(first, last + 1):
        try:
            msg = await js.get_msg(STREAM_DLQ, seq)
        except NotFoundError:
            continue
        yield seq, msg.subject, dict(msg.headers or {}), msg.data or b""


async def redrive(url: str, *, source: str | None = None, since_seq: int | None = None, dry_run: bool = False,
                  timeout: float = 10.0) -> dict:
    """Publish the normalizer's TICKS_DLQ records from `since_seq` (default: the stream's first) again to
    TICKS_RAW: one raw message per rejected frame, verbatim, whose Qp-Redrive-Select header names the rejected
    events (or the whole frame), so the normalizer takes exactly those; then a marker per record. Records of the
    lander and fan-out stages, and records already marked, are skipped. Returns counts."""
    import nats

    from quant_platform.market.connection import connect_options
    from quant_platform.market.streams import ensure_streams

    nc = await nats.connect(**connect_options(url), connect_timeout=timeout, max_reconnect_attempts=2,
                            name="qp-redrive")
    counts: Counter = Counter()
    try:
        js = nc.jetstream(timeout=timeout)
        await ensure_streams(js)
        info = await js.stream_info(STREAM_DLQ)
        first, last = int(info.state.first_seq), int(info.state.last_seq)
        start = max(first, since_seq or first)
        records, done = [], set()
        if info.state.messages and start <= last:
            async for seq, subject, headers, data in _dlq_records(js, start, last):
                if headers.get(HDR_STAGE) == REDRIVE_STAGE and headers.get(HDR_REDRIVE_DLQ, "").isdigit():
                    done.add(int(headers[HDR_REDRIVE_DLQ]))
                else:
                    records.append((seq, subject, headers, data))
        for seq, subject, headers, data in records:
            src = subject.split(".", 2)[2] if subject.count(".") >= 2 else ""
            if source is not None and src != source:
                continue
            if headers.get(HDR_STAGE) != "normalizer":
                counts["records_other_stage"] += 1
                continue
            if seq in done:
                counts["records_already_redriven"] += 1
                continue
            plan, c = plan_record(src, seq, headers, data)
            counts.update(c)
            if not plan:
                counts["records_nothing_to_publish"] += 1
                continue
            counts["records"] += 1
            if dry_run:
                continue
            for payload, hdrs in plan:
                ack = await js.publish(raw_subject(src), payload, stream=STREAM_RAW, timeout=timeout, headers=hdrs)
                counts["published"] += 1
                counts["duplicates"] += int(bool(getattr(ack, "duplicate", False)))
            marker = {"dlq_seq": seq, "raw_seq": headers.get(HDR_RAW_SEQ), "frames": len(plan)}
            await js.publish(dlq_subject(src), json.dumps(marker).encode(), stream=STREAM_DLQ, timeout=timeout,
                             headers={"Nats-Msg-Id": f"redriven:{seq}", HDR_STAGE: REDRIVE_STAGE,
                                      HDR_FORMAT: REDRIVE_FORMAT, HDR_REDRIVE_DLQ: str(seq)})
            log.info("redrove TICKS_DLQ record %s (raw seq %s): %d raw messages", seq, headers.get(HDR_RAW_SEQ),
                     len(plan))
        return {"dlq_first_seq": first, "dlq_last_seq": last, "read_from": start, "dry_run": dry_run,
                "source": source, **dict(sorted(counts.items()))}
    finally:
        await nc.close()
