"""In-day small-file compaction by the lander: the rollup of its own landing files.

The lander flushes every `max_age_s` (0.5 s) so that a tick is queryable within seconds, which makes one small file
per flush per source: about 60,000 files for a 10M-tick day. Reading a file costs about a millisecond of CPU
whatever its size (footer, schema, one page per column), so a day of small files cost the daily compaction, and
every analyst's query over `market.ticks_recent`, more to open than to read.

So the lander keeps the tables it landed for each (UTC day, source) in memory and, when a group holds
`max_rows` rows, is `max_age_s` old, or its day is over (and no file joined it for PAST_DAY_IDLE_S), writes them
again as one file that replaces them: one write from memory, no read. On the local lake the rolled file is
renamed into place and then the small files are removed (lake_landing.roll_local: a crash in between is finished
by finish_rollups at the next start, and the duplicates a reader may see meanwhile are removed by compaction's
event_id dedup); on the object-store lake one Iceberg commit swaps them (TickStore.roll). The messages were acknowledged when the small files landed,
so a failed rollup loses nothing: the small files stay.

A lander rolls only files it wrote itself in this run; files of another lander, or of this one before a
restart, are left to the daily compaction (which reads any mix of small and rolled files).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from quant_platform.market.contracts import DAILY_SORT_COLUMNS
from quant_platform.market.lake_landing import RAW_TICKS_KEY, REPLACES_KEY, LandedFile

log = logging.getLogger(__name__)

ROLLUP_MAX_ROWS = 250_000  # rows of one rolled file (a (day, source) group's memory is bounded by this)
ROLLUP_MAX_AGE_S = 300.0  # a group is rolled this long after its first file landed
# A group of a day that is over is rolled once no file has joined it for this long: the day's last ticks (and late
# ones) roll within seconds of midnight, long before the ingest sensor's lateness closes the day, while a replay of
# an old day still rolls by rows and age like live traffic (not after every second flush).
PAST_DAY_IDLE_S = 10.0
# The order of a rolled file's rows: the daily file's order.
ROLLED_ORDER = [(c, "ascending") for c in DAILY_SORT_COLUMNS]


@dataclass
class _Group:
    started: float
    last: float
    names: list[str] = field(default_factory=list)
    held: set[str] = field(default_factory=set)  # the same names, for the redelivery lookup
    tables: list[pa.Table] = field(default_factory=list)
    raw: dict[str, int] = field(default_factory=dict)
    rows: int = 0


class LandingRollup:
    """The landing files of this lander not yet rolled, by (day, source), with their rows.

    `roll(day, source, names, merged)` writes `merged` in place of the files `names` and returns the LandedFile
    written, or None when the lake no longer holds all of them (nothing done)."""

    def __init__(self, roll: Callable[[str, str, list[str], pa.Table], LandedFile | None], *,
                 max_rows: int = ROLLUP_MAX_ROWS, max_age_s: float = ROLLUP_MAX_AGE_S, min_files: int = 2):
        self._roll = roll
        self.max_rows, self.max_age_s, self.min_files = max_rows, max_age_s, min_files
        self.groups: dict[tuple[str, str], _Group] = {}

    def add(self, files: list[LandedFile], now: float) -> None:
        """Track files just landed (a file landed again under its own name, by a redelivery, is tracked once)."""
        for f in files:
            g = self.groups.get((f.day, f.source))
            if g is None:
                g = self.groups[(f.day, f.source)] = _Group(started=now, last=now)
            g.last = now
            if f.name in g.held:
                continue
            g.held.add(f.name)
            meta = f.part.schema.metadata or {}
            for seq, n in json.loads(meta.get(RAW_TICKS_KEY, b"{}")).items():
                if n > g.raw.get(seq, 0):
                    g.raw[seq] = n
            g.names.append(f.name)
            g.tables.append(f.part.replace_schema_metadata(None))
            g.rows += f.part.num_rows

    def due(self, now: float, today: str) -> list[tuple[str, str]]:
        """Groups to roll now: `max_rows` rows, `max_age_s` old, or of a day before `today` (UTC) and idle for
        PAST_DAY_IDLE_S. An idle group of a past day with a single file is forgotten (nothing to roll)."""
        out = []
        for key, g in list(self.groups.items()):
            settled = key[0] < today and now - g.last >= PAST_DAY_IDLE_S
            if len(g.names) < self.min_files:
                if settled:
                    del self.groups[key]
                continue
            if settled or g.rows >= self.max_rows or now - g.started >= self.max_age_s:
                out.append(key)
        return out

    def merged(self, key: tuple[str, str]) -> tuple[list[str], pa.Table]:
        """Take a group out: the names it replaces and its rows as one table (raw tick counts and the names in
        the metadata)."""
        g = self.groups.pop(key)
        # one chunk per column: the Parquet writer pays per chunk (measured 0.69 against 0.64 CPU-s per million
        # ticks with the copy included, for chunks of a flush's rows)
        # Sorted as the daily file is (instrument_id, ts, event_id): the day's compaction then sorts runs that are
        # already in order (measured at 10M ticks: its stage 11.9 s / 20.7 CPU-s against 14.8 s / 26.2 for rolled
        # files in landing order; the sort here costs the lander about 0.3 CPU-s per million ticks: bench compaction's
        # rollup 1.53-1.57 against 1.25).
        table = pa.concat_tables(g.tables).combine_chunks().sort_by(ROLLED_ORDER).replace_schema_metadata({
            RAW_TICKS_KEY: json.dumps(g.raw, separators=(",", ":")).encode(),
            REPLACES_KEY: json.dumps(g.names, separators=(",", ":")).encode()})
        return g.names, table

    def roll(self, key: tuple[str, str]) -> tuple[int, LandedFile | None]:
        """Roll one group: (files it replaced, the file written or None). Raises what the lake raises; the
        group is forgotten either way (its small files stay where the rollup did not happen)."""
        names, table = self.merged(key)
        return len(names), self._roll(key[0], key[1], names, table)
