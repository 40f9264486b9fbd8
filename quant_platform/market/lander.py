"""Lake lander: durable pull consumer on TICKS; micro-batches (by rows or time) land as Parquet with an
atomic rename, then exactly those messages are acknowledged.

Never ack a message before the file holding its ticks is renamed into place: a crash means redelivery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from quant_platform.market import metrics
from quant_platform.market.connection import connect_worker
from quant_platform.market.contracts import STREAM_NORM, TICK_SCHEMA
from quant_platform.market.lake_landing import ensure_schema_anchor, land_batch
from quant_platform.market.normalizer import HDR_RAW_TICKS, ipc_to_table

log = logging.getLogger(__name__)


@dataclass
class LanderStats:
    batches: int = 0
    files: int = 0
    rows: int = 0
    bytes: int = 0
    bad_messages: int = 0
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


async def flush(batch: MicroBatch, lake_root: Path, stats: LanderStats) -> None:
    seqs = [m.metadata.sequence.stream for m in batch.msgs]
    table = pa.concat_tables(batch.tables) if batch.tables else TICK_SCHEMA.empty_table()
    written = await asyncio.to_thread(land_batch, lake_root, table, min(seqs), max(seqs), batch.raw_ticks)
    for m in batch.msgs:
        await m.ack()
    stats.batches += 1
    stats.files += len(written)
    stats.rows += table.num_rows
    stats.bytes += sum(size for _, size in written)
    stats.batch_sizes.append(table.num_rows)
    metrics.BATCH_ROWS.observe(table.num_rows)
    if len(stats.batch_sizes) > 1000:
        del stats.batch_sizes[:500]


async def run_lander(url: str, lake_root: Path, stop: asyncio.Event, *, max_rows: int = 50_000,
                     max_age_s: float = 0.5, fetch_batch: int = 512, stats: LanderStats | None = None) -> None:

    from quant_platform.market.streams import ensure_streams

    stats = stats or LanderStats()
    ensure_schema_anchor(lake_root)
    nc = await connect_worker(url, "qp-lander")
    js = nc.jetstream()
    await ensure_streams(js)
    sub = await js.pull_subscribe("ticks.norm.>", durable="lander", stream=STREAM_NORM)
    batch = MicroBatch()
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(fetch_batch, timeout=min(0.2, max_age_s))
            except TimeoutError:
                msgs = []
            except Exception as exc:
                log.warning("fetch failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                msgs = []
            for m in msgs:
                try:
                    batch.add(m, ipc_to_table(m.data))
                except Exception as exc:  # not Arrow IPC: terminate it so it does not loop forever
                    stats.bad_messages += 1
                    log.error("TICKS seq %s is not a tick batch (%s); terminated", m.metadata.sequence.stream, exc)
                    await m.term()
            if batch.due(max_rows, max_age_s):
                await flush(batch, lake_root, stats)
                batch = MicroBatch()
        if batch.msgs:
            await flush(batch, lake_root, stats)
    finally:
        try:
            await sub.unsubscribe()
        except Exception:  # noqa: S110
            pass
        await nc.close()
