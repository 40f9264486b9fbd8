"""Daily compaction of landed tick micro-batches, write-audit-publish: the landing files of a UTC day (and the
day's earlier compacted file, if any) are deduplicated by event_id, the vendors' trade cancels and corrections
are applied, rows are sorted by (instrument_id, ts) and written to a staging folder; the checks run on the staged
file; only when every blocking check passes is it renamed to ticks/daily/date=D/. A failed day leaves the
previous good version in place.

Never delete a landing file here (retention does that, after a published and checked compaction; a day that
never published goes to quarantine first), never read another day's files when its manifest answers, and never
let the completeness ledger lose a raw sequence number: raw_seqs.parquet keeps every one seen, before dedup.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from quant_platform.errors import QuantPlatformError
from quant_platform.market.contracts import DAILY_SORT_COLUMNS, TICK_ALL_COLUMNS, TICK_EXTENSION_COLUMNS
from quant_platform.market.lake_landing import LANDING, SCHEMA_ANCHOR, _fsync_dir, landed_count, sql_path

log = logging.getLogger(__name__)

DAILY = "ticks/daily"
STAGING = "ticks/daily/_staging"
BARS = "bars/1m"
TICKS_FILE = "ticks.parquet"
SEQS_FILE = "raw_seqs.parquet"
VENDOR_GAPS_FILE = "vendor_gaps.parquet"  # the day's market.vendor_gaps rows (vendor_gaps.py), published with it
MANIFEST = "_manifest.json"
# <first>-<last>[-<digest>] or a rollup's <first>-<last>-r<digest>n<count> (lake_landing.rolled_name)
_RANGE_NAME = re.compile(r"^(\d+)-(\d+)(?:-(?:r[0-9a-f]+n\d+|[0-9a-f]+))?\.parquet$")
ANCHOR_DAY = SCHEMA_ANCHOR.split("date=")[1].split("/")[0]
COLUMNS_SQL = ", ".join(TICK_ALL_COLUMNS)  # the canonical columns, extension columns included, in contract order


class NothingToCompact(QuantPlatformError):
    """A day with neither landing files nor an earlier compaction."""


# ------------------------------------------------------------------------------------------- the lake's days
def landing_files(lake_root: Path, day: str) -> list[Path]:
    """Landed micro-batch files of a UTC day, every source, in name order (temp files excluded)."""
    root = Path(lake_root) / LANDING / f"date={day}"
    if not root.is_dir():
        return []
    return sorted((p for p in root.glob("source=*/*.parquet")
                   if not p.name.startswith(".") and p.parent.name != "source=_schema"),
                  key=lambda p: p.parts)  # Path order, without Path's slow comparisons (a day has ~10^5 files)


def landing_days(lake_root: Path) -> dict[str, list[Path]]:
    """{UTC day: its landing files} for every day that has landed ticks."""
    root = Path(lake_root) / LANDING
    out: dict[str, list[Path]] = {}
    if not root.is_dir():
        return out
    for d in sorted(root.glob("date=*")):
        day = d.name.split("=", 1)[1]
        if day == ANCHOR_DAY:
            continue
        files = landing_files(lake_root, day)
        if files:
            out[day] = files
    return out


def _date_names(root: Path) -> list[str]:
    """The D of every date=D folder directly under `root`: one directory read, nothing inside is listed."""
    if not root.is_dir():
        return []
    with os.scandir(root) as entries:
        return sorted(e.name[5:] for e in entries if e.name.startswith("date=") and e.is_dir())


def landing_day_names(lake_root: Path) -> list[str]:
    """Days with a landing folder (their files are not listed; the schema anchor's day excluded)."""
    return [d for d in _date_names(Path(lake_root) / LANDING) if d != ANCHOR_DAY]


def lake_day_names(lake_root: Path) -> list[str]:
    """Days with a landing or a compacted folder, by name only."""
    return sorted(set(landing_day_names(lake_root)) | set(_date_names(Path(lake_root) / DAILY)))


def dir_fingerprint(day_dir: Path, sources: Iterable[str], settled_before: float | None = None) -> list[int] | None:
    """mtime_ns of a landing day's folder and of its source folders (a file renamed into a source folder, or a
    new source folder, changes one of them): stats only, no listing. None when a folder is gone or, given
    `settled_before` (epoch seconds), changed after it: a change within the file system's timestamp
    granularity of the read could then go unseen, so such a fingerprint is not trusted."""
    out = []
    try:
        for path in (day_dir, *(day_dir / s for s in sources)):
            out.append(os.stat(path).st_mtime_ns)
    except FileNotFoundError:
        return None
    if settled_before is not None and max(out) > settled_before * 1e9:
        return None
    return out


def landing_signature(files: Iterable[Path]) -> str:
    """`<first TICKS seq>-<last TICKS seq>x<files>` of a day's landing files: changes when a file arrives
    (a late tick), so the ingest sensor's run key changes with it."""
    firsts, lasts, n = [], [], 0
    for f in files:
        m = _RANGE_NAME.match(f.name)
        n += landed_count(f.name)  # a rolled file counts the files it replaced
        if m:
            firsts.append(int(m.group(1)))
            lasts.append(int(m.group(2)))
    if not n:
        return "empty"
    return f"{min(firsts, default=0)}-{max(lasts, default=0)}x{n}"


def daily_dir(lake_root: Path, day: str) -> Path:
    return Path(lake_root) / DAILY / f"date={day}"


def daily_file(lake_root: Path, day: str) -> Path:
    return daily_dir(lake_root, day) / TICKS_FILE


def read_manifest(lake_root: Path, day: str) -> dict | None:
    path = daily_dir(lake_root, day) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def compacted_days(lake_root: Path) -> list[str]:
    root = Path(lake_root) / DAILY
    return sorted(p.parent.name.split("=", 1)[1] for p in root.glob("date=*/" + TICKS_FILE)) if root.is_dir() else []


# ------------------------------------------------------------------------------------------- duckdb
def duck(threads: int | None = None):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def parquet_list(paths: Iterable[Path | str]) -> str:
    """A DuckDB list literal of vetted Parquet paths, for views and COPY (which take no bound parameters)."""
    return "[" + ", ".join(f"'{sql_path(p)}'" for p in paths) + "]"


# ------------------------------------------------------------------------------------------- compaction
@dataclass
class Staged:
    day: str
    stage_dir: Path
    inputs: list[str]
    landing_signature: str
    rows_in: int
    rows_out: int
    duplicates_removed: int
    raw_seq_count: int
    raw_seq_min: int | None
    raw_seq_max: int | None
    content_hash: str
    file_sha256: str
    bytes: int
    instruments: int
    sources: list[str]
    published: bool = False
    extra: dict = field(default_factory=dict)
    trades_cancelled: int = 0  # trades a vendor cancel removed (Alpaca "x")
    trades_corrected: int = 0  # trades a vendor correction replaced (Alpaca "c")
    event_id_hashes: int | None = None  # distinct 64-bit hashes of the written file's event_ids (no-duplicates rule)
    duplicates_apart: int = 0  # of duplicates_removed, copies that sorted apart from their first (_full_dedup)

    @property
    def id_hashes(self) -> tuple[int, int] | None:
        """(rows, distinct event_id hashes) of the written file, for daily_checks.evaluate_rules."""
        return None if self.event_id_hashes is None else (self.rows_out, self.event_id_hashes)

    @property
    def ticks_path(self) -> Path:
        return self.stage_dir / TICKS_FILE

    @property
    def seqs_path(self) -> Path:
        return self.stage_dir / SEQS_FILE


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_ticks(con, path: Path) -> dict:
    """One pass over a tick file: rows, instruments, sources, the distinct hashes of its event_ids (the
    no-duplicates rule's count, in the same scan: 0.1 s less at 10M ticks than a scan of its own), and an
    order-independent digest of every column (stable across re-compactions)."""
    src = f"read_parquet('{sql_path(path)}')"
    rows, instruments, sources, digest, id_hashes = con.execute(
        f"SELECT count(*), count(DISTINCT instrument_id), list(DISTINCT source ORDER BY source), "  # noqa: S608
        f"coalesce(sum(hash({COLUMNS_SQL})::HUGEINT), 0), count(DISTINCT hash(event_id)) FROM {src}").fetchone()
    return {"rows": int(rows), "instruments": int(instruments), "sources": list(sources or []),
            "event_id_hashes": int(id_hashes),
            "content_hash": hashlib.sha256(f"{rows}:{digest}".encode()).hexdigest()[:32]}


# How the compacted day is written, measured on bench compaction's day (bytes per tick, 1M ticks unless said):
# Parquet 2 pages (DELTA_BINARY_PACKED times and integers, near-constant steps in (instrument_id, ts) order;
# dictionary or byte-stream-split prices) 15.0 against 24.8 for Parquet 1; zstd level 1 15.0 and level 3 14.9
# (level 1 writes in two thirds of the time), level 9 15.3; row groups of a million rows 14.9 against 15.6 for
# 100k; a dictionary size limit of 5000 keeps raw sequence numbers delta-coded (10M ticks: 14.9 against 16.4
# with DuckDB's default, which dictionary-codes 70k of them). What is left is mostly event_id, 24 hex digits of
# a 12-byte hash: 12 bytes a tick.
# Sorted once, as the landing is read into the temporary table (measured at 10M ticks: 51 CPU-s for read, sort
# and write against 58 when the table is sorted on the way out).
DAILY_ORDER = "ORDER BY " + ", ".join(DAILY_SORT_COLUMNS)
DAILY_PARQUET = ("FORMAT parquet, PARQUET_VERSION V2, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 1000000, "
                 "DICTIONARY_SIZE_LIMIT 5000")


# The day's text columns of few values (venues, instruments, event kinds, conditions) are held as DuckDB ENUMs while
# the day is sorted and written: a 15-character instrument id or source is a pointer into a string heap that the
# sort moves with every row, an ENUM value one byte, and the Parquet writer takes an ENUM's dictionary as it is
# instead of hashing every string again. The values are listed in text order, so the ENUM's order is the text's
# (instrument_id is a sort key). The file holds plain UTF8 strings (DuckDB writes no enum annotation): readers see
# text. Listing the values is one more scan of those columns (0.12 s at 10M ticks). Measured at 10M ticks: read and
# sort 2.2-2.5 s / 4.3-4.9 CPU-s against 3.0-3.4 s / 5.8-6.5; the write 1.9-2.0 s / 2.9-3.0 CPU-s against 2.3-3.0 s
# / 3.9-4.6 (same rows, same order).
ENUM_COLUMNS = ("source", "instrument_id", "venue_symbol", "exchange", "event", "conditions", "size_unit")
ENUM_MAX_VALUES = 100_000  # more distinct values than this (a column that is not a code) stay VARCHAR


def _create_src(con, rows_sql: str) -> None:
    """Temporary table `src` from a query of the tick columns and `_prior`, sorted (DAILY_ORDER), with the
    ENUM_COLUMNS that have values held as ENUM types of exactly the day's values (listed in text order)."""
    lists = con.execute("SELECT " + ", ".join(  # noqa: S608 - fixed column names
        f"list(DISTINCT {c} ORDER BY {c}) FILTER (WHERE {c} IS NOT NULL)" for c in ENUM_COLUMNS)
        + f" FROM ({rows_sql})").fetchone()
    casts = {}
    for column, values in zip(ENUM_COLUMNS, lists, strict=True):
        if values and len(values) <= ENUM_MAX_VALUES:
            con.execute(f"CREATE OR REPLACE TYPE qp_{column} AS ENUM (SELECT unnest(?))", [values])
            casts[column] = f"qp_{column}"
    select = ", ".join(f"CAST({c} AS {casts[c]}) AS {c}" if c in casts else c for c in TICK_ALL_COLUMNS)
    con.execute(f"CREATE TEMP TABLE src AS SELECT {select}, _prior FROM ({rows_sql}) {DAILY_ORDER}")  # noqa: S608


def _read_landing(con, stage: Path, inputs: list[Path], prior_sql: str | None) -> None:
    """Temporary table `src`: every row of the landing files (and of the earlier compaction, `_prior` true), in
    one read, sorted (DAILY_ORDER). A file with the tick schema, first in the list, fixes the columns, so the files'
    schemas need not be read before the scan; when some file lacks the extension columns (landed before them) the
    scan fails on it and the day is read again with union_by_name, those columns null where missing."""
    import duckdb
    import pyarrow.parquet as pq

    from quant_platform.market.contracts import TICK_SCHEMA

    schema_file = stage / "_schema.parquet"
    pq.write_table(TICK_SCHEMA.empty_table(), schema_file)
    tail = f" UNION ALL {prior_sql}" if prior_sql else ""
    try:
        _create_src(con, f"SELECT {COLUMNS_SQL}, false AS _prior "  # noqa: S608
                         f"FROM read_parquet({parquet_list([schema_file, *inputs])}, hive_partitioning = false){tail}")
        return
    except duckdb.InvalidInputException as exc:
        if "schema mismatch" not in str(exc):
            raise
    finally:
        schema_file.unlink()
    read = f"read_parquet({parquet_list(inputs)}, union_by_name = true, hive_partitioning = false)"
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {read}").fetchall()}  # noqa: S608
    missing = "".join(f", NULL::{'BIGINT' if c == 'ref_seq' else 'VARCHAR'} AS {c}"
                      for c in TICK_EXTENSION_COLUMNS if c not in present)
    _create_src(con, f"SELECT {COLUMNS_SQL}, false AS _prior FROM (SELECT *{missing} FROM {read}){tail}")  # noqa: S608


# Duplicate candidates (the 64-bit hashes of event_ids held more than once): copies next to each other in the sorted
# table (a streaming lag() over it, in its order), and among the rows whose ts is their receipt time, every hash
# seen twice. A hash two different ids share only adds both to the candidates, each its own partition below.
_DUP_CANDIDATES = ("SELECT DISTINCT hash(event_id) AS h FROM (SELECT event_id, lag(event_id) OVER () AS prev "
                   "FROM src) WHERE event_id = prev "
                   "UNION SELECT hash(event_id) FROM src WHERE ts = received_at GROUP BY 1 HAVING count(*) > 1")
_DUP_CANDIDATES_ALL = "SELECT hash(event_id) AS h FROM src GROUP BY h HAVING count(*) > 1"
# Every copy of the candidates: the first (earliest raw message) stays, the others are dropped.
_DUP_ROWS = ("CREATE OR REPLACE TEMP TABLE dup_rows AS SELECT rowid AS r, event_id, stream_seq, _prior, "
             "row_number() OVER (PARTITION BY event_id ORDER BY stream_seq, received_at, _prior) = 1 AS _first "
             "FROM src WHERE hash(event_id) IN (SELECT h FROM dup_hashes) AND event_id IS NOT NULL")
_DROP_LATER_COPIES = "DELETE FROM src WHERE rowid IN (SELECT r FROM dup_rows WHERE NOT _first)"


def _full_dedup(con, day: str) -> int:
    """The written day holds an event_id twice (or two ids share a hash): group every row of `src` by its id's
    hash and drop the later copies the adjacent candidates missed (an id whose copies differ in instrument or ts,
    an instrument mapped anew between them, say). The ledger stays as written: copies within one raw message are
    the same rows, next to each other. Returns the rows dropped (0: the ids only share a hash)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE dup_hashes AS {_DUP_CANDIDATES_ALL}")
    con.execute(_DUP_ROWS)
    dropped = con.execute("SELECT count(*) FROM dup_rows WHERE NOT _first").fetchone()[0]
    if dropped:
        log.warning("%s: %d later copies of event ids were not next to their first copy; the day is written again",
                    day, dropped)
        con.execute(_DROP_LATER_COPIES)
    return int(dropped)


def _write_day(con, out: Path) -> tuple[int, int]:
    """Write `src`'s ticks (cancels and corrections applied) to `out` in DAILY_ORDER; (cancelled, corrected)."""
    keep = f"SELECT {COLUMNS_SQL} FROM src"  # noqa: S608
    adjusts = con.execute("SELECT count(*) FROM src WHERE event IN ('cancel', 'correction') "
                          "AND ref_seq IS NOT NULL").fetchone()[0] > 0
    cancelled = corrected = 0
    if adjusts:
        con.execute(f"CREATE OR REPLACE TEMP TABLE d AS {keep}")
        cancelled, corrected = apply_cancels_and_corrections(con, "d")
        select = f"SELECT {COLUMNS_SQL} FROM d {DAILY_ORDER}"  # noqa: S608
    else:
        select = keep  # src is in order already (insertion order is preserved: duck())
    con.execute(f"COPY ({select}) TO '{sql_path(out)}' ({DAILY_PARQUET})")  # noqa: S608 - fixed columns, vetted path
    return cancelled, corrected


STAGE_ATTEMPTS = 3


def stage_day(lake_root: Path, day: str, *, threads: int | None = None) -> Staged:
    """_stage_day, read again when a landing file it listed was gone before it was read: the lander's rollup
    (market/landing_rollup.py) replaced it by a file holding the same rows. A day replayed from history is closed
    as soon as the stream drains, so its compaction can start while the lander rolls its files up."""
    import duckdb

    for attempt in range(STAGE_ATTEMPTS):
        inputs = landing_files(lake_root, day)
        try:
            return _stage_day(lake_root, day, inputs, threads=threads)
        except duckdb.IOException:
            if attempt + 1 == STAGE_ATTEMPTS or all(p.exists() for p in inputs):
                raise
            log.info("landing files of %s were replaced while they were read (a rollup); reading the day again", day)
    raise AssertionError("unreachable")


def _stage_day(lake_root: Path, day: str, inputs: list[Path], *, threads: int | None = None) -> Staged:
    """Compact day D into ticks/daily/_staging/date=D/: dedup by event_id (the copy from the earliest raw
    message wins), sort by (instrument_id, ts, event_id), zstd Parquet; plus the raw sequence ledger.

    The landing files are read once, into a temporary table sorted as the day is written (one read_parquet over
    the file list); their
    per-raw-message tick counts come from one parquet_kv_metadata query. The ledger's counts, the duplicates
    and the written file all come from that table."""
    lake_root = Path(lake_root)
    prior, prior_seqs = daily_file(lake_root, day), daily_dir(lake_root, day) / SEQS_FILE
    if not inputs and not prior.exists():
        raise NothingToCompact(f"no landed ticks for {day} in {lake_root / LANDING}")
    stage = lake_root / STAGING / f"date={day}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    con = duck(threads)
    # The footers the scan parsed answer the key-value metadata query (measured: 0.5 instead of 0.8-1.2 CPU-s
    # for 6,000 files).
    con.execute("SET parquet_metadata_cache = true")
    try:
        prior_sql = f"SELECT {COLUMNS_SQL}, true AS _prior FROM read_parquet('{sql_path(prior)}')"  # noqa: S608
        if inputs:
            _read_landing(con, stage, inputs, prior_sql if prior.exists() else None)
        else:
            _create_src(con, prior_sql)
        rows_in = con.execute("SELECT count(*) FROM src").fetchone()[0]
        # event_ids seen more than once (a redelivery, a vendor's replay, or rows already in the earlier
        # compaction): few. Every copy of an id is next to the others in the sorted table when its instrument and
        # ts are the same, which holds for any id whose ts is the vendor's event time; an id whose ts is its
        # receipt time (Binance spot bookTicker) can be received again after a reconnect and sort apart, so those
        # rows are grouped by the id's 64-bit hash. Measured at 10M ticks: 0.5 s against 1.2-1.5 s for the hash
        # group over every row. The written file's distinct id count (describe_ticks) proves it: when it is short
        # of the rows, the whole day is grouped and written again (_full_dedup).
        con.execute(f"CREATE TEMP TABLE dup_hashes AS {_DUP_CANDIDATES}")
        con.execute(_DUP_ROWS)
        write_ledger(con, stage / SEQS_FILE, inputs, prior_seqs if prior_seqs.exists() else None)
        con.execute(_DROP_LATER_COPIES)
        out = stage / TICKS_FILE
        cancelled, corrected = _write_day(con, out)
        described = describe_ticks(con, out)
        apart = _full_dedup(con, day) if described["event_id_hashes"] < described["rows"] else 0
        if apart:
            cancelled, corrected = _write_day(con, out)
            described = describe_ticks(con, out)
        ledger = f"read_parquet('{sql_path(stage / SEQS_FILE)}')"
        n, lo, hi = con.execute(f"SELECT count(*), min(stream_seq), max(stream_seq) FROM {ledger}").fetchone()  # noqa: S608
    finally:
        con.close()
    return Staged(day=day, stage_dir=stage, inputs=[str(p.relative_to(lake_root)) for p in inputs],
                  landing_signature=landing_signature(inputs), rows_in=int(rows_in), rows_out=described["rows"],
                  duplicates_removed=int(rows_in) - described["rows"], raw_seq_count=int(n), raw_seq_min=lo,
                  raw_seq_max=hi, content_hash=described["content_hash"], file_sha256=_sha256(out),
                  bytes=out.stat().st_size, instruments=described["instruments"], sources=described["sources"],
                  trades_cancelled=cancelled, trades_corrected=corrected,
                  event_id_hashes=described["event_id_hashes"], duplicates_apart=apart)


# A vendor's cancel or correction names the trade it applies to by the vendor's trade id, on the same source,
# instrument and exchange (Alpaca: ids are unique per symbol, exchange and day), and both are events of the day.
_SAME_TRADE = ("t.source = a.source AND t.instrument_id = a.instrument_id "
               "AND t.exchange IS NOT DISTINCT FROM a.exchange AND t.vendor_seq = a.ref_seq")
MAX_CORRECTION_CHAIN = 20


def apply_cancels_and_corrections(con, table: str) -> tuple[int, int]:
    """Apply the day's `correction` rows to its trades (price, size, conditions and the trade id replaced in
    place; the trade keeps its time and event_id), following chains (a correction of a corrected trade names the
    corrected id), then remove the trades a `cancel` names. The cancel and correction rows stay, for audit. A
    cancel or correction whose trade is not in the day changes nothing. Idempotent: applied again, the corrected
    trade no longer carries the original id and a cancelled one is gone. Returns (cancelled, corrected)."""
    corrected = 0
    for _ in range(MAX_CORRECTION_CHAIN):
        n = con.execute(
            f"UPDATE {table} AS t SET price = a.price, size = a.size, conditions = a.conditions, "  # noqa: S608
            f"vendor_seq = a.vendor_seq FROM (SELECT * FROM {table} WHERE event = 'correction' "
            "QUALIFY row_number() OVER (PARTITION BY source, instrument_id, exchange, ref_seq "
            f"ORDER BY ts, event_id) = 1) AS a WHERE t.event = 'trade' AND {_SAME_TRADE}").fetchone()[0]
        if not n:
            break
        corrected += int(n)
    cancelled = con.execute(
        f"DELETE FROM {table} AS t WHERE t.event = 'trade' AND EXISTS (SELECT 1 FROM {table} AS a "  # noqa: S608
        f"WHERE a.event = 'cancel' AND {_SAME_TRADE})").fetchone()[0]
    return int(cancelled), corrected


def expected_ticks(con, files: list[Path]) -> dict[int, int]:
    """{raw seq: ticks the normalizer made of it} from the landing files' key-value metadata (one query)."""
    from quant_platform.market.lake_landing import RAW_TICKS_KEY

    out: dict[int, int] = {}
    if not files:
        return out
    rows = con.execute(f"SELECT value FROM parquet_kv_metadata({parquet_list(files)}) WHERE key = ?",  # noqa: S608
                       [RAW_TICKS_KEY]).fetchall()
    get = out.get
    for (value,) in rows:
        for seq, n in json.loads(value).items():
            q = int(seq)
            if n > get(q, 0):
                out[q] = n
    return out


def write_ledger(con, path: Path, landing: list[Path], prior_ledger: Path | None) -> None:
    """raw_seqs.parquet: per raw sequence with ticks on the day, the distinct ticks that reached the lake
    (before dedup across raw messages) and the ticks the normalizer made of it (null when unknown).
    Reads stage_day's temporary tables: `src` (every row, `_prior` for the earlier compaction's) and
    `dup_rows` (every copy of an event_id seen more than once, and rows whose id only shares a hash with another:
    each of those is its own event_id, so it adds nothing to `extra`), not the landing files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = []
    if landing:  # rows per raw seq, less the repeated copies of an event_id within it
        parts.append("SELECT c.stream_seq, c.n - coalesce(x.extra, 0) AS landed FROM "
                     "(SELECT stream_seq, count(*) AS n FROM src WHERE NOT _prior GROUP BY 1) c LEFT JOIN "
                     "(SELECT stream_seq, count(*) - count(DISTINCT event_id) AS extra FROM dup_rows "
                     "WHERE NOT _prior GROUP BY 1) x USING (stream_seq)")
    if prior_ledger is not None:
        parts.append(f"SELECT stream_seq, landed FROM read_parquet('{sql_path(prior_ledger)}')")  # noqa: S608
    rows = con.execute("SELECT stream_seq, max(landed) FROM (" + " UNION ALL ".join(parts) + ") GROUP BY 1 ORDER BY 1"  # noqa: S608
                       ).fetchall() if parts else []
    expected = expected_ticks(con, landing)
    if prior_ledger is not None:
        prior = pq.read_table(prior_ledger, columns=["stream_seq", "expected"]).to_pydict()
        for seq, n in zip(prior["stream_seq"], prior["expected"], strict=True):
            if n is not None:
                expected[seq] = max(expected.get(seq, 0), n)
    seqs = [r[0] for r in rows]
    table = pa.table({"stream_seq": pa.array(seqs, pa.int64()),
                      "landed": pa.array([r[1] for r in rows], pa.int64()),
                      "expected": pa.array([expected.get(q) for q in seqs], pa.int64())})
    pq.write_table(table, path, compression="zstd")


def publish_staged(lake_root: Path, staged: Staged, manifest: dict) -> Path:
    """Move the checked staged files into ticks/daily/date=D/ (each an atomic rename) and write the manifest
    last: a manifest means the day was published with every blocking check passed."""
    target = daily_dir(lake_root, staged.day)
    target.mkdir(parents=True, exist_ok=True)
    previous = read_manifest(lake_root, staged.day)
    names = [SEQS_FILE, TICKS_FILE]
    if (previous and previous.get("content_hash") == staged.content_hash and (target / TICKS_FILE).exists()):
        # Same rows as the published file: leave it untouched (byte for byte), refresh only the ledger.
        names = [SEQS_FILE]
        staged.file_sha256 = previous.get("file_sha256", staged.file_sha256)
        staged.bytes = (target / TICKS_FILE).stat().st_size
        staged.extra["unchanged"] = True
    if (staged.stage_dir / VENDOR_GAPS_FILE).exists():  # a redrive changes the gaps, not always the ticks
        names.append(VENDOR_GAPS_FILE)
    (target / MANIFEST).unlink(missing_ok=True)
    for name in names:
        src = staged.stage_dir / name
        with open(src, "rb") as f:
            os.fsync(f.fileno())
        os.replace(src, target / name)
    fields = {k: v for k, v in asdict(staged).items() if k not in ("stage_dir", "extra", "published")}
    body = json.dumps({**fields, **manifest}, indent=2, default=str)
    tmp = target / f".{MANIFEST}.tmp"
    tmp.write_text(body)
    os.replace(tmp, target / MANIFEST)
    _fsync_dir(target)
    shutil.rmtree(staged.stage_dir, ignore_errors=True)
    staged.published = True
    return target / TICKS_FILE


# ------------------------------------------------------------------------------------------- sequence ledger
def _landed_counts(con, lake_root: Path, day: str, lo: int, hi: int) -> dict[int, int]:
    """{raw seq: distinct ticks of day D in the lake} for raw seqs in [lo, hi] (landing files or the ledger)."""
    out: dict[int, int] = {}
    files = landing_files(lake_root, day)
    if files:
        for seq, n in con.execute("SELECT stream_seq, count(DISTINCT event_id) FROM read_parquet(?, union_by_name = true) "
                                  "WHERE stream_seq BETWEEN ? AND ? GROUP BY 1", [[str(f) for f in files], lo, hi]).fetchall():
            out[int(seq)] = int(n)
    ledger = daily_dir(lake_root, day) / SEQS_FILE
    if ledger.exists():
        for seq, n in con.execute(f"SELECT stream_seq, landed FROM read_parquet('{sql_path(ledger)}') "  # noqa: S608
                                  "WHERE stream_seq BETWEEN ? AND ?", [lo, hi]).fetchall():
            out[int(seq)] = max(out.get(int(seq), 0), int(n))
    return out


def ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def format_ranges(rs: list[tuple[int, int]], limit: int = 20) -> str:
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in rs[:limit])
    return text + (f" (+{len(rs) - limit} more)" if len(rs) > limit else "") if rs else "none"


@dataclass
class Accounting:
    """Raw TICKS_RAW sequences of a day's window and where each one went."""

    window: tuple[int, int]
    expected: int
    in_ticks: int
    in_dlq: int
    on_other_days: int
    missing: list[tuple[int, int]]
    partial: list[tuple[int, int]] = field(default_factory=list)
    ticks_missing: int = 0
    days_read: list[str] = field(default_factory=list)  # other days whose ledger or landing files were opened

    @property
    def missing_count(self) -> int:
        return sum(b - a + 1 for a, b in self.missing)

    @property
    def passed(self) -> bool:
        return not self.missing and not self.partial


@dataclass
class DayView:
    """What the lake holds for one day, found without reading a Parquet file: its landing files, its published
    ledger and manifest. When the manifest's raw sequence range covers everything there (`summarized`), the
    range answers questions about the day's sequences and its files stay closed."""

    day: str
    landing: list[Path]
    ledger: Path | None
    manifest: dict | None

    @classmethod
    def of(cls, lake_root: Path, day: str) -> DayView:
        ledger = daily_dir(lake_root, day) / SEQS_FILE
        has_ledger = ledger.exists() and daily_file(lake_root, day).exists()
        return cls(day, landing_files(lake_root, day), ledger if has_ledger else None,
                   read_manifest(lake_root, day) if has_ledger else None)

    @property
    def has_data(self) -> bool:
        return bool(self.landing) or self.ledger is not None

    @property
    def files(self) -> list[Path]:
        return self.landing + ([self.ledger] if self.ledger is not None else [])

    def seq_range(self, lake_root: Path) -> tuple[int, int] | None:
        """(first, last) raw sequence of the day from its manifest, when that covers every file there."""
        m = self.manifest
        if not m or not m.get("published") or m.get("raw_seq_min") is None or m.get("raw_seq_max") is None:
            return None
        covered = set(m.get("inputs", []))
        if any(str(f.relative_to(lake_root)) not in covered for f in self.landing):
            return None
        return int(m["raw_seq_min"]), int(m["raw_seq_max"])


@dataclass
class SequenceWindow:
    """Day D's window of raw sequences and the neighbouring days it was taken from."""

    day: str
    start: int
    end: int
    own: dict[int, tuple[int, int | None]]  # raw seq -> (distinct ticks landed, ticks the normalizer made)
    prev: DayView | None
    next: DayView | None
    days_read: set[str] = field(default_factory=set)

    @property
    def lo(self) -> int | None:
        return min(self.own) if self.own else None


def _neighbour_view(lake_root: Path, names: list[str], day: str, before: bool) -> DayView | None:
    """The nearest earlier (later) day holding landing files or a compaction: only folder names are listed."""
    for other in (sorted((d for d in names if d < day), reverse=True) if before
                  else sorted(d for d in names if d > day)):
        view = DayView.of(lake_root, other)
        if view.has_data:
            return view
    return None


def sequence_window(lake_root: Path, day: str, ledger_file: Path, *, stream_first_seq: int | None,
                    drained_raw_seq: int | None) -> SequenceWindow:
    """D's window of TICKS_RAW sequences: from just after the previous day's last raw sequence (or the stream's
    first) to just before the next day's first (or the sequence the pipeline had drained when the day was
    closed). The neighbours' manifests answer when their sequence range lies on one side of D's first
    sequence; otherwise their files are read, never any other day's."""
    lake_root = Path(lake_root)
    con = duck()
    try:
        rows = con.execute(f"SELECT stream_seq, landed, expected FROM read_parquet('{sql_path(ledger_file)}')"  # noqa: S608
                           ).fetchall()
        own = {int(r[0]): (int(r[1]), r[2]) for r in rows}
        if not own:
            return SequenceWindow(day, 0, -1, {}, None, None)
        lo, hi = min(own), max(own)
        names = lake_day_names(lake_root)
        prev, nxt = _neighbour_view(lake_root, names, day, True), _neighbour_view(lake_root, names, day, False)
        read: set[str] = set()
        start = lo
        if prev is not None:
            rng = prev.seq_range(lake_root)
            if rng is not None and rng[1] < lo:
                last = rng[1]
            elif rng is not None and rng[0] >= lo:
                last = None
            else:
                read.add(prev.day)
                last = con.execute("SELECT max(stream_seq) FROM read_parquet(?, union_by_name = true) "
                                   "WHERE stream_seq < ?", [[str(f) for f in prev.files], lo]).fetchone()[0]
            if last is not None:
                start = int(last) + 1
        elif stream_first_seq and stream_first_seq <= lo:
            start = stream_first_seq
        end = hi
        first_next = None
        if nxt is not None:
            # after D's first sequence, not its last: a late tick of D carries a sequence from the next day
            rng = nxt.seq_range(lake_root)
            if rng is not None and rng[0] > lo:
                first_next = rng[0]
            elif rng is None or rng[1] > lo:
                read.add(nxt.day)
                first_next = con.execute("SELECT min(stream_seq) FROM read_parquet(?, union_by_name = true) "
                                         "WHERE stream_seq > ?", [[str(f) for f in nxt.files], lo]).fetchone()[0]
        if first_next is not None:
            end = int(first_next) - 1
        elif drained_raw_seq and drained_raw_seq >= lo:
            end = drained_raw_seq
    finally:
        con.close()
    return SequenceWindow(day, start, end, own, prev, nxt, read)


def _counts_on(con, lake_root: Path, view: DayView, lo: int, hi: int, read: set[str]) -> dict[int, int]:
    """{raw seq: distinct ticks} of another day in [lo, hi]; its files stay closed when its manifest's
    range lies outside."""
    rng = view.seq_range(lake_root)
    if not view.has_data or (rng is not None and (rng[1] < lo or rng[0] > hi)):
        return {}
    read.add(view.day)
    return _landed_counts(con, lake_root, view.day, lo, hi)


def account_sequences(lake_root: Path, day: str, ledger_file: Path, dlq_seqs: set[int], *,
                      stream_first_seq: int | None, drained_raw_seq: int | None,
                      window: SequenceWindow | None = None) -> Accounting:
    """Every raw message accepted by TICKS_RAW in day D's window (sequence_window) must be in D's ticks (all of
    its ticks: the ledger knows how many the normalizer made), in the DLQ, or carry ticks of another day (a
    message straddling midnight, a late tick).

    Work is bounded by D and its two neighbours: other days are searched only for the sequences these leave
    unaccounted for, and only the days whose manifest range holds them (or that have no manifest) are read."""
    lake_root = Path(lake_root)
    w = window or sequence_window(lake_root, day, ledger_file, stream_first_seq=stream_first_seq,
                                  drained_raw_seq=drained_raw_seq)
    if not w.own:
        return Accounting((0, -1), 0, 0, 0, 0, [])
    start, end, own = w.start, w.end, w.own
    read = set(w.days_read)
    top = max(end, max(own))
    window_seqs = sorted(set(range(start, end + 1)) | set(own))  # D's late ticks may lie past the window

    def unaccounted(others: dict[int, int]) -> list[int]:
        out = []
        for seq in window_seqs:
            if seq in own:
                landed, expected = own[seq]
                if expected is not None and landed + others.get(seq, 0) < expected:
                    out.append(seq)
            elif seq not in dlq_seqs and seq not in others:
                out.append(seq)
        return out

    others: dict[int, int] = {}
    con = duck()
    try:
        for view in (w.prev, w.next):
            if view is not None:
                for seq, n in _counts_on(con, lake_root, view, start, top, read).items():
                    others[seq] = others.get(seq, 0) + n
        open_seqs = unaccounted(others)
        if open_seqs:  # rare: a late tick of an older day, or a loss; search the days whose range holds them
            a, b = open_seqs[0], open_seqs[-1]
            near = {v.day for v in (w.prev, w.next) if v is not None}
            for other in lake_day_names(lake_root):
                if other != day and other not in near:
                    for seq, n in _counts_on(con, lake_root, DayView.of(lake_root, other), a, b, read).items():
                        others[seq] = others.get(seq, 0) + n
    finally:
        con.close()
    in_ticks = in_dlq = elsewhere = ticks_missing = 0
    missing, partial = [], []
    for seq in window_seqs:
        if seq in own:
            landed, expected = own[seq]
            total = landed + others.get(seq, 0)
            if expected is not None and total < expected:
                partial.append(seq)
                ticks_missing += expected - total
            else:
                in_ticks += 1
        elif seq in dlq_seqs:
            in_dlq += 1
        elif seq in others:
            elsewhere += 1
        else:
            missing.append(seq)
    return Accounting((start, end), len(window_seqs), in_ticks, in_dlq, elsewhere, ranges(missing),
                      ranges(partial), ticks_missing, sorted(read))


def dlq_resume_seq(lake_root: Path, day: str, window_start: int, lookback: int = 7) -> int | None:
    """The TICKS_DLQ sequence from which D's DLQ records must be read: the position an earlier published day
    recorded (`dlq_resume` in its manifest: every DLQ record of a raw sequence above `raw_above` is at or after
    `dlq_seq`), when its `raw_above` lies before D's window. None: read from the stream's first message."""
    looked = 0
    for other in sorted((d for d in lake_day_names(lake_root) if d < day), reverse=True):
        manifest = read_manifest(lake_root, other)
        if manifest is None:
            continue
        resume = manifest.get("dlq_resume")
        if resume and int(resume.get("raw_above", window_start)) < window_start:
            return int(resume["dlq_seq"])
        looked += 1
        if looked >= lookback:
            break
    return None


# ------------------------------------------------------------------------------------------- retention
def apply_landing_retention(lake_root: Path, retention_days: int, today: date) -> list[str]:
    """Delete the landing folders of days older than the retention whose compaction was published (its
    blocking checks passed) and covered every landing file now there. Returns the days removed."""
    removed = []
    cutoff = (today - timedelta(days=retention_days)).isoformat()
    for day in landing_day_names(lake_root):
        if day >= cutoff:
            continue
        files = landing_files(lake_root, day)
        if not files or abandoned_reason(lake_root, day, files) is not None:
            continue  # unpublished, or a late file arrived after the compaction: compact again first
        shutil.rmtree(Path(lake_root) / LANDING / f"date={day}")
        removed.append(day)
    return removed


QUARANTINE = "ticks/quarantine"
QUARANTINE_RECORD = "_quarantine.json"
NOT_PUBLISHED = "not published"
NOT_COVERED = "landing files not covered by the published compaction"


class QuarantineError(QuantPlatformError):
    """A landing day could not be moved to (or removed from) quarantine."""

    def __init__(self, day: str, reason: str):
        self.day = day
        super().__init__(f"quarantine of landing day {day}: {reason}")


def abandoned_reason(lake_root: Path, day: str, files: list[Path]) -> str | None:
    """Why a landing day's files are not in a published compaction (None: they all are)."""
    manifest = read_manifest(lake_root, day)
    if not manifest or not manifest.get("published"):
        return NOT_PUBLISHED
    import pyarrow.parquet as pq

    from quant_platform.market.lake_landing import covered_by

    covered = set(manifest.get("inputs", []))
    for f in files:
        rel = f.relative_to(lake_root)
        if not covered_by(covered, str(rel.parent), f.name, lambda f=f: pq.read_schema(f).metadata):
            return NOT_COVERED
    return None


def quarantine_abandoned_landing(lake_root: Path, after_days: int, keep_days: int, now: datetime) -> list[dict]:
    """Move the landing folders of days older than `after_days` that never published (their compaction failed
    or never ran), or hold files their published compaction does not cover, to
    ticks/quarantine/date=D/at=<UTC time>/ with a _quarantine.json record (reason, files, rows, bytes, when it
    will be deleted). One rename per day, the record inside the moved folder: never a half-moved day.
    Returns the records written."""
    import pyarrow.parquet as pq

    lake_root = Path(lake_root)
    cutoff = (now.date() - timedelta(days=after_days)).isoformat()
    out = []
    for day in landing_day_names(lake_root):
        if day >= cutoff:
            continue
        src = lake_root / LANDING / f"date={day}"
        files = landing_files(lake_root, day)
        if not files:
            continue  # nothing landed (a lander's leftover temp file at most): left alone
        reason = abandoned_reason(lake_root, day, files)
        if reason is None:
            continue  # published and covered: retention deletes it
        at = now.astimezone(UTC)
        target = lake_root / QUARANTINE / f"date={day}" / f"at={at:%Y%m%dT%H%M%S%fZ}"
        record = {"day": day, "reason": reason, "quarantined_at": at.isoformat(),
                  "delete_after": (at + timedelta(days=keep_days)).isoformat(),
                  "files": [str(f.relative_to(src)) for f in files],
                  "rows": sum(pq.ParquetFile(f).metadata.num_rows for f in files),
                  "bytes": sum(f.stat().st_size for f in files), "landing_signature": landing_signature(files),
                  "path": str(target.relative_to(lake_root)),
                  "restore": f"move {target.relative_to(lake_root)}/source=* back to {LANDING}/date={day}/"}
        try:
            tmp = src / f".{QUARANTINE_RECORD}.tmp"
            tmp.write_text(json.dumps(record, indent=2))
            os.replace(tmp, src / QUARANTINE_RECORD)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            raise QuarantineError(day, f"{type(exc).__name__}: {exc}") from exc
        out.append(record)
    return out


def expire_quarantine(lake_root: Path, keep_days: int, now: datetime) -> list[dict]:
    """Delete quarantined landing days kept `keep_days` or longer (by their record's quarantined_at). Returns
    the records of the deleted ones."""
    root = Path(lake_root) / QUARANTINE
    out = []
    for day in _date_names(root):
        day_dir = root / f"date={day}"
        for batch in sorted(p for p in day_dir.glob("at=*") if p.is_dir()):
            try:
                record = json.loads((batch / QUARANTINE_RECORD).read_text())
                at = datetime.fromisoformat(record["quarantined_at"])
            except (OSError, ValueError, KeyError) as exc:
                raise QuarantineError(day, f"unreadable record in {batch}: {exc}") from exc
            if now - at >= timedelta(days=keep_days):
                shutil.rmtree(batch)
                out.append(record)
        if day_dir.is_dir() and not any(day_dir.iterdir()):
            day_dir.rmdir()
    return out
