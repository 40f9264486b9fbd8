"""Lake lander: durable pull consumer on TICKS; micro-batches (by rows or time) land as Parquet with an
atomic rename, then exactly those messages are acknowledged.

Never ack a message before the file holding its ticks is renamed into place: a crash means redelivery. Never let
one bad message stop the others: a batch that fails because of its content is split until the bad message is
alone; the good ones land, the bad one is nak'd and, at its last delivery, dead-lettered with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from quant_platform.errors import ConfigError
from quant_platform.market import metrics
from quant_platform.market.connection import (
    RESUBSCRIBE_AFTER_S,
    FetchHealth,
    FetchSizer,
    connect_worker,
    resubscribe,
)
from quant_platform.market.contracts import STREAM_NORM, TICK_SCHEMA, dlq_subject
from quant_platform.market.lake_landing import (
    LandedFile,
    batch_digest,
    ensure_schema_anchor,
    finish_rollups,
    land_parts,
    roll_local,
    split_day_source,
)
from quant_platform.market.landing_rollup import ROLLUP_MAX_AGE_S, ROLLUP_MAX_ROWS, LandingRollup
from quant_platform.market.normalizer import (
    ARROW_FORMAT,
    HDR_DELIVERIES,
    HDR_FORMAT,
    HDR_RAW_SEQ,
    HDR_RAW_TICKS,
    HDR_REASON,
    HDR_STAGE,
    HDR_TICKS_SEQ,
    REASON_MAX,
    consumer_max_deliver,
    dead_letter,
    deliveries,
    ipc_to_table,
    is_last_delivery,
    redelivery_delay,
)

log = logging.getLogger(__name__)


def is_object_store(lake: str) -> bool:
    return str(lake).startswith("s3://")


@dataclass
class LanderStats:
    batches: int = 0
    files: int = 0
    rows: int = 0
    bytes: int = 0
    bad_messages: int = 0  # messages dead-lettered (undecodable, or failing alone at their last delivery)
    redelivered: int = 0  # messages nak'd because they failed alone
    rollups: int = 0  # rolled files written (landing_rollup)
    rolled_files: int = 0  # small landing files they replaced
    batch_sizes: list[int] = field(default_factory=list)


def parse_raw_ticks(header: str) -> dict[int, int]:
    """`Qp-Raw-Ticks` ("seq:ticks,...") -> {raw seq: ticks the normalizer made of it}; malformed parts skipped."""
    out: dict[int, int] = {}
    for part in header.split(","):
        seq, _, n = part.partition(":")
        if seq.isdigit() and n.isdigit():
            out[int(seq)] = int(n)
    return out


class MicroBatch:
    def __init__(self) -> None:
        self.msgs: list = []
        self.tables: list[pa.Table] = []
        self.rows = 0
        self.raw_ticks: dict[int, int] = {}
        self.started = time.monotonic()

    def add(self, msg, table: pa.Table) -> None:
        if not self.msgs:
            self.started = time.monotonic()
        self.raw_ticks.update(parse_raw_ticks((msg.headers or {}).get(HDR_RAW_TICKS, "")))
        self.msgs.append(msg)
        self.tables.append(table)
        self.rows += table.num_rows

    def due(self, max_rows: int, max_age_s: float) -> bool:
        return bool(self.msgs) and (self.rows >= max_rows or time.monotonic() - self.started >= max_age_s)

    def part(self, lo: int, hi: int) -> MicroBatch:
        sub = MicroBatch()
        for m, t in zip(self.msgs[lo:hi], self.tables[lo:hi], strict=True):
            sub.add(m, t)
        return sub


class LakeUnavailableError(OSError):
    """The lake could not be written (disk full, permissions, storage down): not the messages' fault."""


class _LocalLake:
    """The local-folder lake as the lander writes it: micro-batches, rollups, and finishing rollups at start."""

    def __init__(self, root: Path):
        self.root = root
        ensure_schema_anchor(root)

    def land_parts(self, parts: list, first_seq: int, last_seq: int, digest: str | None = None,
                   redelivered: bool = False) -> list[LandedFile]:
        return land_parts(self.root, parts, first_seq, last_seq, digest)

    def roll(self, day: str, source: str, names: list[str], merged: pa.Table) -> LandedFile:
        return roll_local(self.root, day, source, names, merged)

    def finish_rollups(self, days: list[str]) -> int:
        return finish_rollups(self.root, days)


def landing_target(lake: Path | str):
    """Where the lander lands micro-batches and rolls them up: a local folder (land_parts, roll_local), or a
    TickStore's Iceberg commits for an object-store URL (s3://)."""
    if isinstance(lake, str) and is_object_store(lake):
        from quant_platform.market.tick_store import TickStore

        return TickStore(lake)
    return _LocalLake(Path(lake))


def tracking_land(target, rollup: LandingRollup | None):
    """The lander's land(table, first, last, raw_ticks, digest, redelivered) -> [(path, size)]: split by (day,
    source), land, and hand the files to `rollup`."""

    def land(table: pa.Table, first_seq: int, last_seq: int, raw_ticks: dict[int, int] | None = None,
             digest: str | None = None, redelivered: bool = False) -> list[tuple[Path | str, int]]:
        if table.num_rows == 0:
            return []
        written = target.land_parts(list(split_day_source(table, raw_ticks)), first_seq, last_seq, digest,
                                    redelivered)
        if rollup is not None:
            rollup.add(written, time.monotonic())
        return [(f.path, f.size) for f in written]

    return land


async def roll_due(rollup: LandingRollup, stats: LanderStats, now: float | None = None) -> None:
    """Roll the groups that are due (at `now`, default the monotonic clock; math.inf: every group of two files
    or more), one at a time in a thread. A failed rollup is logged and forgotten: its small files, acknowledged
    long ago, stay in the lake."""
    for key in rollup.due(time.monotonic() if now is None else now, datetime.now(UTC).date().isoformat()):
        try:
            replaced, written = await asyncio.to_thread(rollup.roll, key)
        except Exception as exc:
            log.warning("rollup of %s/%s failed (%s: %s); its small files stay", key[0], key[1],
                        type(exc).__name__, str(exc)[:300])
            continue
        if written is not None:
            stats.rollups += 1
            stats.rolled_files += replaced


async def _land(batch: MicroBatch, land, stats: LanderStats) -> None:
    """Write the batch's files, then ack its messages. Raises LakeUnavailableError for an OSError (or an
    object store or catalog that cannot be reached), anything else (a table that does not fit the tick
    schema, ...) as it is. Messages are taken in stream order, so a redelivered batch is the same bytes."""
    order = sorted(range(len(batch.msgs)), key=lambda i: batch.msgs[i].metadata.sequence.stream)
    seqs = [batch.msgs[i].metadata.sequence.stream for i in order]
    redelivered = any(deliveries(m) > 1 for m in batch.msgs)
    try:
        table = pa.concat_tables([batch.tables[i] for i in order]) if batch.tables else TICK_SCHEMA.empty_table()
        written = await asyncio.to_thread(land, table, min(seqs), max(seqs), batch.raw_ticks, batch_digest(seqs),
                                          redelivered)
    except (OSError, ConfigError) as exc:
        raise LakeUnavailableError(str(exc)) from exc
    try:
        for m in batch.msgs:
            await m.ack()
    except Exception as exc:  # the connection, not the data: the files are in place, redelivery rewrites them
        log.warning("acking %d landed TICKS messages failed (%s); they will be redelivered", len(batch.msgs), exc)
    stats.batches += 1
    stats.files += len(written)
    stats.rows += table.num_rows
    stats.bytes += sum(size for _, size in written)
    stats.batch_sizes.append(table.num_rows)
    metrics.BATCH_ROWS.observe(table.num_rows)
    if len(stats.batch_sizes) > 1000:
        del stats.batch_sizes[:500]


def _dlq_headers(msg, reason: str) -> dict[str, str]:
    seq = msg.metadata.sequence.stream
    hdrs = msg.headers or {}
    out = {"Nats-Msg-Id": f"dlq:lander:{seq}", HDR_FORMAT: hdrs.get(HDR_FORMAT, ARROW_FORMAT), HDR_STAGE: "lander",
           HDR_REASON: reason[:REASON_MAX], HDR_TICKS_SEQ: str(seq), HDR_DELIVERIES: str(deliveries(msg))}
    # The raw sequences it came from, under another name: a lander record does not account for them (their ticks
    # are not in the lake, which the completeness check must report).
    if hdrs.get(HDR_RAW_SEQ):
        out["Qp-Ticks-Raw-Seqs"] = hdrs[HDR_RAW_SEQ]
    return out


def _source(msg) -> str:
    parts = msg.subject.split(".")
    return parts[2] if len(parts) > 2 else "unknown"


async def dead_letter_msg(js, msg, reason: str, stats: LanderStats) -> bool:
    """Store a TICKS message in TICKS_DLQ with the reason, then term() it. False (and nothing acked) when the
    record could not be stored."""
    try:
        await dead_letter(js, dlq_subject(_source(msg)), msg.data, _dlq_headers(msg, reason))
    except Exception as exc:
        log.error("TICKS seq %s: dead-lettering failed (%s); left for redelivery", msg.metadata.sequence.stream, exc)
        return False
    try:
        await msg.term()
    except Exception:  # noqa: S110 - redelivered after ack_wait; the DLQ record is deduplicated by its id
        pass
    stats.bad_messages += 1
    log.error("TICKS seq %s dead-lettered: %s", msg.metadata.sequence.stream, reason)
    return True


async def _fail_one(js, msg, exc: BaseException, stats: LanderStats, max_deliver: int) -> None:
    reason = f"cannot land ({type(exc).__name__}: {str(exc)[:300]})"
    if is_last_delivery(msg, max_deliver):
        await dead_letter_msg(js, msg, f"failed {deliveries(msg)} deliveries: {reason}", stats)
        return
    stats.redelivered += 1
    log.warning("TICKS seq %s %s (delivery %d); nak for redelivery", msg.metadata.sequence.stream, reason,
                deliveries(msg))
    try:
        await msg.nak(delay=redelivery_delay(deliveries(msg)))
    except Exception:  # noqa: S110 - redelivered after ack_wait anyway
        pass


async def _land_isolating(js, batch: MicroBatch, land, stats: LanderStats, max_deliver: int) -> None:
    try:
        await _land(batch, land, stats)
        return
    except LakeUnavailableError:
        raise
    except Exception as exc:
        if len(batch.msgs) == 1:
            await _fail_one(js, batch.msgs[0], exc, stats, max_deliver)
            return
        log.warning("a batch of %d TICKS messages did not land (%s: %s); splitting it to find the bad one",
                    len(batch.msgs), type(exc).__name__, exc)
    mid = len(batch.msgs) // 2
    await _land_isolating(js, batch.part(0, mid), land, stats, max_deliver)
    await _land_isolating(js, batch.part(mid, len(batch.msgs)), land, stats, max_deliver)


async def flush(batch: MicroBatch, land, stats: LanderStats, js=None, max_deliver: int = -1,
                stop: asyncio.Event | None = None) -> None:
    """Land the batch and ack it. Content failures are isolated (see module doc); a lake that cannot be
    written is retried with backoff while `stop` is unset, the messages kept in progress, then left unacked
    for redelivery."""
    backoff = 0.5
    while True:
        try:
            await _land_isolating(js, batch, land, stats, max_deliver)
            return
        except LakeUnavailableError as exc:
            if stop is None or stop.is_set():
                log.error("lake unavailable (%s); %d messages left for redelivery", exc, len(batch.msgs))
                return
            log.error("lake unavailable (%s); retrying in %.1fs", exc, backoff)
            for m in batch.msgs:
                try:
                    await m.in_progress()
                except Exception:  # noqa: S110
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


async def run_lander(url: str, lake_root: Path | str, stop: asyncio.Event, *, max_rows: int = 50_000,
                     max_age_s: float = 0.5, fetch_batch: int = 512, stats: LanderStats | None = None,
                     resubscribe_after_s: float = RESUBSCRIBE_AFTER_S, rollup_rows: int = ROLLUP_MAX_ROWS,
                     rollup_age_s: float = ROLLUP_MAX_AGE_S) -> None:
    """Land TICKS into `lake_root` in micro-batches of `max_rows` rows or `max_age_s` seconds, and roll each
    (day, source)'s small files into one (landing_rollup) at `rollup_rows` rows or `rollup_age_s` seconds
    (0: no rollup)."""
    from quant_platform.market.streams import ensure_streams

    stats = stats or LanderStats()
    target = landing_target(lake_root)  # before connecting, as the schema anchor always was (no thread to wait on)
    if isinstance(target, _LocalLake):  # a rollup this lander's predecessor left half done
        today = datetime.now(UTC).date()
        if removed := await asyncio.to_thread(target.finish_rollups,
                                              [(today - timedelta(days=1)).isoformat(), today.isoformat()]):
            log.info("removed %d landing files that rolled files already replace", removed)
    rollup = LandingRollup(target.roll, max_rows=rollup_rows, max_age_s=rollup_age_s) if rollup_age_s > 0 else None
    land = tracking_land(target, rollup)
    nc = await connect_worker(url, "qp-lander")
    js = nc.jetstream()
    await ensure_streams(js)
    sub = await js.pull_subscribe("ticks.norm.>", durable="lander", stream=STREAM_NORM)
    max_deliver = await consumer_max_deliver(sub)
    batch = MicroBatch()
    health = FetchHealth("lander", "lander", resubscribe_after_s)
    sizer = FetchSizer(fetch_batch)
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(sizer.count(), timeout=min(0.2, max_age_s))
                sizer.seen(msgs)
                health.ok()
            except TimeoutError:
                msgs = []
                if nc.is_connected:
                    health.ok()
            except Exception as exc:  # e.g. 503 while the consumer's replicas elect a leader: connection.py
                if health.failed(exc):
                    sub = await resubscribe(js, sub, "ticks.norm.>", "lander", STREAM_NORM, health)
                await asyncio.sleep(0.5)
                msgs = []
            for m in msgs:
                try:
                    table = ipc_to_table(m.data)
                except Exception as exc:  # not Arrow IPC: it never will be, dead-letter it now
                    if not await dead_letter_msg(js, m, f"not an Arrow IPC tick batch ({type(exc).__name__}: "
                                                        f"{str(exc)[:300]})", stats):
                        await m.nak(delay=redelivery_delay(deliveries(m)))
                    continue
                batch.add(m, table)
            if batch.due(max_rows, max_age_s):
                await flush(batch, land, stats, js, max_deliver, stop)
                batch = MicroBatch()
            if rollup is not None and rollup.groups:
                await roll_due(rollup, stats)
        if batch.msgs:
            await flush(batch, land, stats, js, max_deliver)
        if rollup is not None and rollup.groups:  # a lander scaled in rolls what it holds (well within its grace)
            await roll_due(rollup, stats, now=math.inf)
    finally:
        try:
            await sub.unsubscribe()
        except Exception:  # noqa: S110
            pass
        await nc.close()
