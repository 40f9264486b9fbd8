"""Landing micro-batches of canonical ticks as Parquet in the lake, atomically, and the OLAP views over them.

Never let a reader see half a file: write a temp name, fsync, rename; acknowledge only after the rename.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quant_platform.market.contracts import TICK_SCHEMA

LANDING = "ticks/landing"
# An empty file with the tick schema, so the OLAP glob always matches (DuckDB refuses an empty glob).
SCHEMA_ANCHOR = f"{LANDING}/date=1970-01-01/source=_schema/0-0.parquet"


def landing_path(lake_root: Path, day: str, source: str, first_seq: int, last_seq: int,
                 digest: str | None = None) -> Path:
    """ticks/landing/date=D/source=S/<first>-<last>[-<digest>].parquet; `digest` names the exact set of TICKS
    messages the file holds (batch_digest), so two landers' batches with the same first and last sequence never
    overwrite each other, while the same batch redelivered rewrites its own file."""
    name = f"{first_seq}-{last_seq}" + (f"-{digest}" if digest else "")
    return lake_root / LANDING / f"date={day}" / f"source={source}" / f"{name}.parquet"


def batch_digest(ticks_seqs) -> str:
    """A short digest of the TICKS sequences of a micro-batch: its content (a TICKS message never changes)."""
    import hashlib

    return hashlib.blake2b(",".join(map(str, sorted(ticks_seqs))).encode(), digest_size=8).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Dictionary encoding pays only for the low-cardinality text columns; on event_id (unique hashes) and on prices
# it costs time and bytes. zstd level 1: measured faster than level 3 and no larger on landed ticks.
DICTIONARY_COLUMNS = ["source", "instrument_id", "venue_symbol", "exchange", "event"]


# Landing files keep min/max statistics only where a reader prunes by them (times, source, instrument, event, raw
# sequence); on event ids, prices and sizes they cost a fifth of the write (measured on a rollup: 0.50 against 0.64
# CPU-s per million ticks) and no query uses them.
LANDING_STATISTICS = ["ts", "received_at", "source", "instrument_id", "event", "stream_seq"]


def write_parquet_atomic(table: pa.Table, final: Path, statistics: list[str] | None = None) -> int:
    """Write `table` to a temp name, fsync, rename to `final`, fsync the folder; the bytes written. `statistics`:
    the columns that get min/max statistics (None: every column)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
    dictionary = [c for c in DICTIONARY_COLUMNS if c in table.column_names]
    stats = True if statistics is None else [c for c in statistics if c in table.column_names] or False
    pq.write_table(table, tmp, compression="zstd", compression_level=1, use_dictionary=dictionary or False,
                   write_statistics=stats)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final.stat().st_size


RAW_TICKS_KEY = b"qp.raw_ticks"


def split_day_source(table: pa.Table, raw_ticks: dict[int, int] | None = None):
    """(day, source, part) for each (UTC day, source) of a tick table; with `raw_ticks` (raw seq -> ticks the
    normalizer made of it) each part carries, in its key-value metadata, the counts of the raw sequences it
    holds."""
    table = table.cast(TICK_SCHEMA)
    days = pc.cast(table["ts"], pa.date32())  # ts is UTC: its date is the UTC day (strftime was 25x slower)
    keys = pa.table({"day": days, "source": table["source"]}).group_by(["day", "source"]).aggregate([])
    for day_, source in zip(keys["day"].to_pylist(), keys["source"].to_pylist(), strict=True):
        mask = pc.and_(pc.equal(days, day_), pc.equal(table["source"], source))
        part = table.filter(mask)
        if raw_ticks:
            held = pc.unique(part["stream_seq"]).to_pylist()
            meta = {str(q): raw_ticks[q] for q in held if q in raw_ticks}
            part = part.replace_schema_metadata({**(part.schema.metadata or {}),
                                                 RAW_TICKS_KEY: json.dumps(meta, separators=(",", ":")).encode()})
        yield day_.isoformat(), source, part


class LandedFile(NamedTuple):
    """One file a micro-batch wrote: where (a path, or an s3:// URI), its bytes (0: already there), and what it
    holds (its UTC day, source, file name and rows, the raw tick counts in the part's metadata)."""

    path: Path | str
    size: int
    day: str
    source: str
    name: str
    part: pa.Table


def land_parts(lake_root: Path, parts, first_seq: int, last_seq: int,
               digest: str | None = None) -> list[LandedFile]:
    """Write the (day, source, part) tables of one micro-batch (split_day_source), one file each."""
    out = []
    for day, source, part in parts:
        path = landing_path(lake_root, day, source, first_seq, last_seq, digest)
        out.append(LandedFile(path, write_parquet_atomic(part, path, LANDING_STATISTICS), day, source, path.name,
                              part))
    return out


def land_batch(lake_root: Path, table: pa.Table, first_seq: int, last_seq: int,
               raw_ticks: dict[int, int] | None = None, digest: str | None = None,
               redelivered: bool = False) -> list[tuple[Path, int]]:
    """Write one micro-batch: one file per (UTC day, source); the name carries the TICKS sequence range and the
    digest of the batch's exact TICKS sequences (batch_digest), so a redelivered batch rewrites its own file
    instead of adding a copy, and another lander's batch over the same range (other messages) never overwrites
    it. `raw_ticks` (raw seq -> ticks the normalizer made of it) goes into each file's key-value metadata for the
    raw sequences the file holds: the completeness check compares it with the rows that reached the lake.
    (`redelivered` matters only to the object-store lane, tick_store.TickStore.land.)"""
    if table.num_rows == 0:
        return []
    return [(f.path, f.size) for f in land_parts(lake_root, split_day_source(table, raw_ticks), first_seq, last_seq,
                                                 digest)]


# ------------------------------------------------------------------------------------------- rollup
# In-day small-file compaction (market/landing_rollup.py): the lander rewrites the small files it landed for a
# (day, source) as one file named <lowest first>-<highest last>-r<digest of the names>.parquet, whose key-value
# metadata lists the names it replaces (REPLACES_KEY) next to the raw tick counts.
REPLACES_KEY = b"qp.replaces"


_ROLLED_COUNT = re.compile(r"-r[0-9a-f]+n(\d+)\.parquet$")


def landed_count(name: str) -> int:
    """How many micro-batch files a landing file stands for: 1, or the count a rolled file's name carries."""
    m = _ROLLED_COUNT.search(name)
    return int(m.group(1)) if m else 1


def rolled_name(names: list[str]) -> str:
    """The name of the file that replaces the landing files `names`: <lowest first>-<highest last>-r<digest of
    the names>n<micro-batch files it stands for>.parquet. Range and count are those of the files it replaces, so
    the ingest sensor's signature of a day (compaction.landing_signature) does not change when it is rolled up."""
    import hashlib

    firsts, lasts = [], []
    for n in names:
        a, b = n.removesuffix(".parquet").split("-")[:2]
        firsts.append(int(a))
        lasts.append(int(b))
    digest = hashlib.blake2b(",".join(sorted(names)).encode(), digest_size=8).hexdigest()
    return f"{min(firsts)}-{max(lasts)}-r{digest}n{sum(map(landed_count, names))}.parquet"


def replaced_names(metadata: dict | None) -> list[str]:
    """The landing file names a rolled file replaces (its REPLACES_KEY), from its Parquet key-value metadata."""
    return json.loads((metadata or {}).get(REPLACES_KEY, b"[]"))


def covered_by(covered: set[str], folder: str, name: str, metadata_of) -> bool:
    """Whether landing file `folder`/`name` is in a compaction whose inputs are `covered`: itself, or, for a
    rolled file (rolled up after that compaction), every file it replaces. `metadata_of()` reads its metadata."""
    if f"{folder}/{name}" in covered:
        return True
    if not _ROLLED_COUNT.search(name):
        return False
    names = replaced_names(metadata_of())
    return bool(names) and all(f"{folder}/{n}" in covered for n in names)


def roll_local(lake_root: Path, day: str, source: str, names: list[str], merged: pa.Table) -> LandedFile:
    """Write `merged` (the rows of the landing files `names`, REPLACES_KEY in its metadata) as one file, then
    remove the files it replaces. A reader between the two sees those rows twice (compaction deduplicates by
    event_id); a crash between them is finished by finish_rollups when the lander starts again."""
    path = landing_path(lake_root, day, source, 0, 0).with_name(rolled_name(names))
    size = write_parquet_atomic(merged, path, LANDING_STATISTICS)
    for n in names:
        if n != path.name:
            (path.parent / n).unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return LandedFile(path, size, day, source, path.name, merged)


def finish_rollups(lake_root: Path, days: list[str]) -> int:
    """Remove the landing files of `days` that a rolled file already replaces (a lander killed between writing
    the rolled file and removing the small ones). Returns the files removed."""
    removed = 0
    for day in days:
        for rolled in (Path(lake_root) / LANDING / f"date={day}").glob("source=*/*-r*.parquet"):
            if rolled.name.startswith("."):
                continue
            try:
                meta = pq.read_schema(rolled).metadata or {}
            except (OSError, pa.ArrowInvalid):
                continue
            for n in replaced_names(meta):
                small = rolled.parent / n
                if n != rolled.name and small.exists():
                    small.unlink()
                    removed += 1
    return removed


def ensure_schema_anchor(lake_root: Path) -> None:
    anchor = lake_root / SCHEMA_ANCHOR
    if not anchor.exists():
        write_parquet_atomic(TICK_SCHEMA.empty_table(), anchor)


def ensure_olap_views(olap_path: Path, lake_root: Path, retention_days: int) -> list[str]:
    """DuckDB views over the landed ticks of the last `retention_days` days, evaluated at query time, so
    analysts see new files as soon as they are renamed into place."""
    import duckdb

    ensure_schema_anchor(lake_root)
    glob = str(lake_root / LANDING / "date=*" / "source=*" / "*.parquet")
    since = (datetime.now(UTC).date() - timedelta(days=retention_days)).isoformat()
    olap_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(olap_path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS market")
        # The retention bound is a literal date, refreshed at every ingest start (DuckDB views take no params).
        view = ("CREATE OR REPLACE VIEW market.ticks_recent AS SELECT * EXCLUDE (date, source), source "  # noqa: S608
                f"FROM read_parquet('{sql_path(glob)}', hive_partitioning = true, union_by_name = true) "
                f"WHERE date >= DATE '{since}' AND source <> '_schema'")
        con.execute(view)
        con.execute("CREATE OR REPLACE VIEW market.trades_recent AS SELECT ts, received_at, source, instrument_id, "
                    "exchange, price, size, event_id FROM market.ticks_recent WHERE event = 'trade'")
        con.execute("CREATE OR REPLACE VIEW market.quotes_recent AS SELECT ts, received_at, source, instrument_id, "
                    "exchange, bid, bid_size, ask, ask_size, event_id FROM market.ticks_recent WHERE event = 'quote'")
        con.execute(
            "CREATE OR REPLACE VIEW market.bars_1m_recent AS SELECT instrument_id, date_trunc('minute', CAST(ts AS TIMESTAMPTZ)) "
            "AS minute, arg_min(price, ts) AS open, max(price) AS high, min(price) AS low, arg_max(price, ts) AS close,"
            " sum(size) AS volume, sum(price * size) / nullif(sum(size), 0) AS vwap, count(*) AS trades "
            "FROM market.trades_recent GROUP BY ALL")
    finally:
        con.close()
    return ["market.ticks_recent", "market.trades_recent", "market.quotes_recent", "market.bars_1m_recent"]


def sql_path(value: str | Path) -> str:
    """A path fit for a DuckDB string literal (table functions and COPY take no bound parameters)."""
    text = str(value)
    if "'" in text:
        raise ValueError(f"refusing a path with a quote in it: {text!r}")
    return text
