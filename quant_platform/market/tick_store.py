"""The tick lane on an object-store lake (`QP_LAKE_URL=s3://bucket/prefix`): Apache Iceberg tables whose commits
are the only record of what landed and what was published.

Object stores have no atomic rename, so a file in the bucket means nothing by itself: a landed micro-batch or a
published day exists when an Iceberg commit (a compare-and-swap of the table's metadata pointer in the SQL
catalog) names it. A crash before the commit leaves an orphan object nobody reads (the redelivered batch writes
the same name again); a crash after the commit and before the ack is a redelivery whose files the table already
holds, so the lander acknowledges without adding them twice.

Tables (namespace `market`, catalog QP_ICEBERG_CATALOG_URL, by default the PostgreSQL warehouse):
- `ticks_landing`: one data file per flush per (UTC day, source), named and keyed like the local lake's
  (`<first>-<last>-<digest>.parquet`, the raw-sequence tick counts in the file's key-value metadata), partitioned by
  (date, source). Small-file compaction (`compact_landing`) replaces a day's files of a source by one file in a
  single commit, keeping every row and every raw count.
- `ticks_daily`: the published compaction of each day (partition `date`); one commit replaces a day's file and
  records, in the table properties of that same commit, where the day's ledger, vendor gaps and manifest are.

Iceberg format v2 (what pyiceberg writes) has microsecond timestamps only; ticks carry nanoseconds (CME's are
nanosecond exchange times). So the store keeps `ts` and `received_at` as int64 nanoseconds since the epoch (UTC)
and a `date` column for partitioning; `to_store`/`from_store` are zero-copy casts, and the OLAP views turn them
back into timestamps. The Dagster side computes on a local working copy of the days it touches
(`pull_landing`, `pull_daily`) with the same code as the local lake, and publishes with `publish_daily`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quant_platform.errors import ConfigError
from quant_platform.market.contracts import TICK_SCHEMA
from quant_platform.market.lake_landing import (
    DICTIONARY_COLUMNS,
    LANDING,
    LANDING_STATISTICS,
    RAW_TICKS_KEY,
    LandedFile,
    covered_by,
    rolled_name,
    split_day_source,
    write_parquet_atomic,
)

log = logging.getLogger(__name__)
LANDING_STATISTICS_STORE = ["date", *LANDING_STATISTICS]  # the partition column too

NAMESPACE = "market"
LANDING_TABLE = f"{NAMESPACE}.ticks_landing"
DAILY_TABLE = f"{NAMESPACE}.ticks_daily"
DAILY = "ticks/daily"
CATALOG_ENV = "QP_ICEBERG_CATALOG_URL"
CATALOG_NAME = "quant_platform"
NS_COLUMNS = ("ts", "received_at")
DIGEST_PROP = "qp.digest"
DAY_PROP = "qp.daily."  # + day -> the published version's folder (v=<content hash>)
COMMIT_RETRIES = 20


def is_object_store(lake_url: str) -> bool:
    """True for an s3:// lake (the Iceberg lane); a local folder (or file://) keeps the folder lane."""
    return str(lake_url).startswith("s3://")


def store_schema() -> pa.Schema:
    """TICK_SCHEMA as the store keeps it: timestamps as int64 ns, plus the partition column `date`."""
    fields = [pa.field(f.name, pa.int64(), nullable=f.nullable) if f.name in NS_COLUMNS else f for f in TICK_SCHEMA]
    return pa.schema([pa.field("date", pa.date32(), nullable=False), *fields])


STORE_SCHEMA = store_schema()


def to_store(table: pa.Table) -> pa.Table:
    """A tick table (TICK_SCHEMA) in the store's form; its key-value metadata is kept."""
    meta = table.schema.metadata
    table = table.cast(TICK_SCHEMA)
    cols = {f.name: (table[f.name].cast(pa.int64()) if f.name in NS_COLUMNS else table[f.name]) for f in TICK_SCHEMA}
    day = pc.cast(table["ts"], pa.date32())
    out = pa.table({"date": day, **cols}, schema=STORE_SCHEMA)
    return out.replace_schema_metadata(meta)


def from_store(table: pa.Table) -> pa.Table:
    """The store's form back to TICK_SCHEMA (metadata kept)."""
    cols = [table[f.name].cast(f.type) if f.name in NS_COLUMNS else table[f.name] for f in TICK_SCHEMA]
    return pa.Table.from_arrays(cols, schema=TICK_SCHEMA).replace_schema_metadata(table.schema.metadata)


def catalog_url(env: Mapping[str, str] | None = None) -> str:
    """QP_ICEBERG_CATALOG_URL, else the warehouse when it is PostgreSQL, else a SQLite file under QP_HOME."""
    from quant_platform.platform.settings import load_settings

    env = os.environ if env is None else env
    if env.get(CATALOG_ENV, "").strip():
        return env[CATALOG_ENV].strip()
    settings = load_settings()
    if settings.warehouse_backend == "postgres":
        url = settings.warehouse_url
        return url if "+" in url.split("://", 1)[0] else url.replace("://", "+psycopg2://", 1)
    settings.home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.home / 'iceberg_catalog.db'}"


def working_copy(lake_url: str, home: Path) -> Path:
    """The local working copy of an object-store lake: where the Dagster side computes the days it touches
    (the same folder layout as a local lake). Disposable: the tables are the record."""
    return Path(home) / "lake-cache" / lake_url.removeprefix("s3://").replace("/", "__")


def compute_root(lake_url: str, home: Path) -> Path:
    """The folder the Dagster side reads and writes: a local lake itself, or an object-store lake's working copy
    (the tick lane pulls the days it needs into it and publishes to the tables; the reporting lane keeps its
    metric chunks, detector state and reports there and PUTs the reports to the bucket)."""
    return working_copy(lake_url, home) if is_object_store(lake_url) else Path(lake_url)


def landing_signature(files: list[StoreFile]) -> str:
    """`<first TICKS seq>-<last TICKS seq>r<rows>` of a day's landing files: a late tick changes it; a small-file
    compaction (same rows, same range, fewer files) does not."""
    firsts, lasts = [], []
    for f in files:
        a, b = f.name.removesuffix(".parquet").split("-")[:2]
        firsts.append(int(a))
        lasts.append(int(b))
    if not files:
        return "empty"
    return f"{min(firsts)}-{max(lasts)}r{sum(f.rows for f in files)}"


@dataclass(frozen=True)
class StoreFile:
    path: str  # s3://bucket/key as the table names it
    day: str
    source: str
    name: str
    size: int
    rows: int


class TickStore:
    """The Iceberg tables of the tick lane on an object-store lake."""

    def __init__(self, lake_url: str, catalog_uri: str | None = None, env: Mapping[str, str] | None = None):
        from pyiceberg.catalog.sql import SqlCatalog

        from quant_platform.platform.lake import s3_filesystem

        env = os.environ if env is None else env
        self.lake_url = lake_url
        self.fs, self.root, endpoint = s3_filesystem(lake_url, env)
        props = {"uri": catalog_uri or catalog_url(env), "warehouse": f"s3://{self.root}/iceberg",
                 "s3.region": env.get("AWS_REGION", "").strip() or "us-east-1",
                 "s3.connect-timeout": "10", "s3.request-timeout": "10"}
        if endpoint:
            scheme = "http" if (env.get("QP_S3_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL", "")).strip() \
                .startswith("http://") else "https"
            props["s3.endpoint"] = f"{scheme}://{endpoint}"
        if env.get("AWS_ACCESS_KEY_ID", "").strip():
            props["s3.access-key-id"] = env["AWS_ACCESS_KEY_ID"].strip()
            props["s3.secret-access-key"] = env.get("AWS_SECRET_ACCESS_KEY", "").strip()
            if env.get("AWS_SESSION_TOKEN", "").strip():
                props["s3.session-token"] = env["AWS_SESSION_TOKEN"].strip()
        try:
            self.catalog = SqlCatalog(CATALOG_NAME, **props)
            self.catalog.create_namespace_if_not_exists(NAMESPACE)
            self.landing = self._table(LANDING_TABLE, "ticks/landing_table", ("date", "source"))
            self.daily = self._table(DAILY_TABLE, "ticks/daily_table", ("date",))
        except ConfigError:
            raise
        except Exception as exc:
            from quant_platform.platform.redaction import redact

            raise ConfigError(f"Iceberg catalog for lake {lake_url!r} unusable: {type(exc).__name__}: "
                              f"{redact(' '.join(str(exc).split()))[:300]}") from None

    def _table(self, name: str, location: str, partition: tuple[str, ...]):
        from pyiceberg.io.pyarrow import pyarrow_to_schema
        from pyiceberg.partitioning import PartitionField, PartitionSpec
        from pyiceberg.table.name_mapping import MappedField, NameMapping
        from pyiceberg.transforms import IdentityTransform

        mapping = NameMapping([MappedField(field_id=i + 1, names=[f.name]) for i, f in enumerate(STORE_SCHEMA)])
        schema = pyarrow_to_schema(STORE_SCHEMA, name_mapping=mapping)
        spec = PartitionSpec(*(PartitionField(schema.find_field(c).field_id, 1000 + i, IdentityTransform(), c)
                               for i, c in enumerate(partition)))
        return self.catalog.create_table_if_not_exists(
            name, schema, location=f"s3://{self.root}/{location}", partition_spec=spec,
            # Merge manifests on append: one commit per flush would otherwise leave one manifest per flush for every
            # later commit and scan to read. Old metadata files are deleted after a commit (the catalog keeps the
            # pointer; readers need only the current one).
            properties={"format-version": "2", "write.parquet.compression-codec": "zstd",
                        "commit.manifest-merge.enabled": "true", "commit.manifest.min-count-to-merge": "50",
                        "write.metadata.delete-after-commit.enabled": "true",
                        "write.metadata.previous-versions-max": "20"})

    # ------------------------------------------------------------------ paths
    def key(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def uri(self, relative: str) -> str:
        return f"s3://{self.root}/{relative}"

    def _put_parquet(self, table: pa.Table, relative: str, statistics: list[str] | None = None) -> int:
        """One PUT of a whole Parquet object (no temp name: an object appears whole or not at all); `statistics`
        as in write_parquet_atomic."""
        dictionary = [c for c in DICTIONARY_COLUMNS if c in table.column_names]
        stats = True if statistics is None else [c for c in statistics if c in table.column_names] or False
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd", compression_level=1, use_dictionary=dictionary or False,
                       write_statistics=stats)
        body = sink.getvalue()
        with self.fs.open_output_stream(self.key(relative)) as out:
            out.write(body)
        return body.size

    def _get(self, path: str) -> bytes:
        with self.fs.open_input_stream(path.removeprefix("s3://")) as f:
            return f.read()

    # ------------------------------------------------------------------ commits
    def _commit(self, table_attr: str, work) -> None:
        """Run `work(transaction)` and commit; on a concurrent commit (the catalog's compare-and-swap failed)
        reload the table and run it again."""
        from pyiceberg.exceptions import CommitFailedException

        for attempt in range(COMMIT_RETRIES):
            table = getattr(self, table_attr)
            try:
                with table.transaction() as tx:
                    work(tx)
                return
            except CommitFailedException:
                setattr(self, table_attr, self.catalog.load_table(table.name()))
                time.sleep(min(0.05 * (attempt + 1), 0.5))
        raise ConfigError(f"{table_attr}: {COMMIT_RETRIES} concurrent commits in a row; not committed")

    def refresh(self) -> None:
        self.landing = self.catalog.load_table(LANDING_TABLE)
        self.daily = self.catalog.load_table(DAILY_TABLE)

    # ------------------------------------------------------------------ landing
    def land(self, table: pa.Table, first_seq: int, last_seq: int, raw_ticks: dict[int, int] | None = None,
             digest: str | None = None, redelivered: bool = False) -> list[tuple[str, int]]:
        """One micro-batch: a Parquet object per (UTC day, source), named like the local lake's landing files,
        then one commit adding all of them. A `redelivered` batch (some message delivered before: the lander may
        have died between the commit and the ack) is first looked up, and files the table already holds are not
        added again; a first delivery cannot have been committed, so it costs no lookup."""
        if table.num_rows == 0:
            return []
        written = self.land_parts(list(split_day_source(table, raw_ticks)), first_seq, last_seq, digest, redelivered)
        return [(f.path, f.size) for f in written]

    def land_parts(self, parts: list, first_seq: int, last_seq: int, digest: str | None = None,
                   redelivered: bool = False) -> list[LandedFile]:
        """land() of a micro-batch already split by (UTC day, source) (split_day_source)."""
        try:
            return self._land_parts(parts, first_seq, last_seq, digest, redelivered)
        except (OSError, ConfigError):
            raise
        except Exception as exc:
            import sqlalchemy.exc

            if isinstance(exc, sqlalchemy.exc.DBAPIError):  # the catalog's database is down: not the data's fault
                raise StoreUnavailableError(f"Iceberg catalog: {type(exc).__name__}: "
                                            f"{' '.join(str(exc).split())[:300]}") from exc
            raise

    def _land_parts(self, parts: list, first_seq: int, last_seq: int, digest: str | None,
                    redelivered: bool) -> list[LandedFile]:
        if not parts:
            return []
        name = f"{first_seq}-{last_seq}" + (f"-{digest}" if digest else "") + ".parquet"
        rels = [f"{LANDING}/date={day}/source={source}/{name}" for day, source, _ in parts]
        held = self._held({day for day, _, _ in parts}) if redelivered else set()
        written: list[LandedFile] = []
        for rel, (day, source, part) in zip(rels, parts, strict=True):
            uri = self.uri(rel)
            size = 0 if uri in held else self._put_parquet(to_store(part), rel, LANDING_STATISTICS_STORE)
            written.append(LandedFile(uri, size, day, source, name, part))
        new = [f.path for f in written if f.size]
        if not new:
            return written

        def add(tx) -> None:
            todo = [u for u in new if u not in self._held({d for d, _, _ in parts})] if redelivered else new
            if todo:
                tx.add_files(todo, check_duplicate_files=False,
                             snapshot_properties={DIGEST_PROP: digest or "", "qp.seqs": f"{first_seq}-{last_seq}"})

        self._commit("landing", add)
        return written

    def _held(self, days: set[str]) -> set[str]:
        """The landing files the current snapshot holds on `days`."""
        from pyiceberg.expressions import In

        self.landing = self.catalog.load_table(LANDING_TABLE)
        return {t.file.file_path for t in self.landing.scan(row_filter=In("date", days),
                                                            selected_fields=("date",)).plan_files()}

    def landing_files(self, day: str | None = None) -> list[StoreFile]:
        from pyiceberg.expressions import AlwaysTrue, EqualTo

        self.landing = self.catalog.load_table(LANDING_TABLE)
        out = []
        for task in self.landing.scan(row_filter=EqualTo("date", day) if day else AlwaysTrue(),
                                      selected_fields=("date",)).plan_files():
            f = task.file
            parts = f.file_path.split("/")
            out.append(StoreFile(f.file_path, parts[-3].split("=", 1)[1], parts[-2].split("=", 1)[1], parts[-1],
                                 f.file_size_in_bytes, f.record_count))
        return sorted(out, key=lambda s: (s.day, s.source, s.name))

    def landing_days(self) -> dict[str, list[StoreFile]]:
        out: dict[str, list[StoreFile]] = {}
        for f in self.landing_files():
            out.setdefault(f.day, []).append(f)
        return out

    def pull_landing(self, cache_root: Path, day: str) -> list[Path]:
        """Make the working copy's landing folder of `day` exactly the table's files of that day (fetching the
        ones it lacks, as TICK_SCHEMA files with their names and metadata; removing the ones the table no longer
        holds, after a small-file compaction)."""
        files = self.landing_files(day)
        day_dir = Path(cache_root) / LANDING / f"date={day}"
        want = {day_dir / f"source={f.source}" / f.name: f for f in files}
        for path, f in want.items():
            if not path.exists() or path.stat().st_size == 0:
                table = pq.read_table(pa.BufferReader(self._get(f.path)))
                write_parquet_atomic(from_store(table), path)
        if day_dir.is_dir():
            for path in day_dir.glob("source=*/*.parquet"):
                if path not in want and not path.name.startswith("."):
                    path.unlink()
        return sorted(want)

    def compact_landing(self, day: str, min_files: int = 2) -> dict[str, int]:
        """Small-file compaction: each source's landing files of `day` (at least `min_files`) become one file,
        in one commit that removes them and adds it. Rows, names' sequence range and raw tick counts are kept
        (the file is named rolled_name: <lowest first>-<highest last>-r<digest of the names>). {source: files
        replaced}."""

        done: dict[str, int] = {}
        by_source: dict[str, list[StoreFile]] = {}
        for f in self.landing_files(day):
            by_source.setdefault(f.source, []).append(f)
        for source, files in sorted(by_source.items()):
            if len(files) < min_files:
                continue
            tables, raw = [], {}
            for f in files:
                t = pq.read_table(pa.BufferReader(self._get(f.path)))
                raw.update(json.loads((t.schema.metadata or {}).get(RAW_TICKS_KEY, b"{}")))
                tables.append(from_store(t).replace_schema_metadata(None))
            merged = pa.concat_tables(tables).sort_by([("stream_seq", "ascending")])
            merged = merged.replace_schema_metadata({RAW_TICKS_KEY: json.dumps(raw, separators=(",", ":")).encode()})
            # another compaction (or the lander's rollup) took some of these files first: nothing lost, nothing done
            if self._swap_in(day, source, [f.name for f in files], merged, {"qp.compacted": str(len(files))}):
                done[source] = len(files)
        return done

    def roll(self, day: str, source: str, names: list[str], merged: pa.Table) -> LandedFile | None:
        """The lander's in-day rollup (market/landing_rollup.py): `merged`, the rows of its landing files `names`
        of (day, source), becomes one object that replaces them in one commit. None (the object deleted again)
        when one of them is no longer in the table (the day's small-file compaction took it): nothing lost."""
        size = self._swap_in(day, source, names, merged, {"qp.rolled": str(len(names))})
        if not size:
            return None
        name = rolled_name(names)
        return LandedFile(self.uri(f"{LANDING}/date={day}/source={source}/{name}"), size, day, source, name, merged)

    def _swap_in(self, day: str, source: str, names: list[str], merged: pa.Table, props: dict) -> int:
        """Write `merged` (TICK_SCHEMA rows, metadata kept) as the object rolled_name(names) and commit it in
        place of the landing files `names`: its bytes, or 0 when one of them is no longer in the table."""
        folder = f"{LANDING}/date={day}/source={source}"
        rel = f"{folder}/{rolled_name(names)}"
        size = self._put_parquet(to_store(merged), rel, LANDING_STATISTICS_STORE)
        paths = {self.uri(f"{folder}/{n}") for n in names}

        def swap(tx) -> None:
            self._replace_files(tx, day, paths, props, add=self.uri(rel))

        try:
            self._commit("landing", swap)
        except _Stale:
            self.fs.delete_file(self.key(rel))
            return 0
        return size

    # ------------------------------------------------------------------ daily
    def published_version(self, day: str) -> str | None:
        self.daily = self.catalog.load_table(DAILY_TABLE)
        return self.daily.properties.get(DAY_PROP + day)

    def publish_daily(self, cache_root: Path, day: str, files: Iterable[str] = ()) -> str:
        """Publish the working copy's compacted `day`: upload its ticks (in the store's form) and side files under
        ticks/daily/date=D/v=<content hash>/, then one commit that replaces the day's data file in ticks_daily and
        points the table property qp.daily.D at the new version. Idempotent: an already published version is not
        uploaded or committed again. Returns the version."""
        from pyiceberg.expressions import EqualTo

        from quant_platform.market import compaction as cp

        src = cp.daily_dir(cache_root, day)
        manifest = json.loads((src / cp.MANIFEST).read_text())
        version = f"v={manifest['content_hash'][:32]}"
        if self.published_version(day) == version:
            return version
        base = f"{DAILY}/date={day}/{version}"
        ticks = pq.read_table(src / cp.TICKS_FILE)
        self._put_parquet(to_store(ticks), f"{base}/{cp.TICKS_FILE}")
        for name in (cp.SEQS_FILE, cp.VENDOR_GAPS_FILE, cp.MANIFEST, *files):
            if (src / name).exists():
                with self.fs.open_output_stream(self.key(f"{base}/{name}")) as out:
                    out.write((src / name).read_bytes())

        def replace(tx) -> None:
            tx.delete(EqualTo("date", day))
            tx.add_files([self.uri(f"{base}/{cp.TICKS_FILE}")], check_duplicate_files=False,
                         snapshot_properties={"qp.day": day, "qp.version": version})
            tx.set_properties({DAY_PROP + day: version})

        self._commit("daily", replace)
        return version

    def pull_daily(self, cache_root: Path, day: str) -> Path | None:
        """The published `day` in the working copy (fetched when the copy is not that version); None when the
        day is not published."""
        from quant_platform.market import compaction as cp

        version = self.published_version(day)
        if version is None:
            return None
        dest = cp.daily_dir(cache_root, day)
        mark = dest / ".version"
        if mark.exists() and mark.read_text() == version and (dest / cp.TICKS_FILE).exists():
            return dest / cp.TICKS_FILE
        tmp = dest.parent / f".date={day}.pull"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        base = self.key(f"{DAILY}/date={day}/{version}")
        from pyarrow.fs import FileSelector

        for info in self.fs.get_file_info(FileSelector(base)):
            name = info.path.rsplit("/", 1)[1]
            body = self._get(info.path)
            if name == cp.TICKS_FILE:
                write_parquet_atomic(from_store(pq.read_table(pa.BufferReader(body))), tmp / name)
            else:
                (tmp / name).write_bytes(body)
        (tmp / ".version").write_text(version)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
        return dest / cp.TICKS_FILE

    def abandoned_reason(self, day: str, files: list[StoreFile] | None = None) -> str | None:
        """Why `day`'s landing files are not in its published compaction (None: they all are), read from the
        published version's manifest (its `inputs`), as compaction.abandoned_reason does on a local lake."""
        from quant_platform.market import compaction as cp

        version = self.published_version(day)
        if version is None:
            return cp.NOT_PUBLISHED
        try:
            manifest = json.loads(self._get(self.key(f"{DAILY}/date={day}/{version}/{cp.MANIFEST}")))
        except (OSError, ValueError):
            return cp.NOT_PUBLISHED
        covered = set(manifest.get("inputs", []))
        files = self.landing_files(day) if files is None else files
        for f in files:
            def meta(f=f):
                with self.fs.open_input_file(f.path.removeprefix("s3://")) as src:
                    return pq.read_schema(src).metadata

            if not covered_by(covered, f"{LANDING}/date={day}/source={f.source}", f.name, meta):
                return cp.NOT_COVERED
        return None

    def _replace_files(self, tx, day: str, paths: set[str], props: dict, add: str | None = None) -> None:
        """In transaction `tx`: one overwrite snapshot of ticks_landing removing exactly the data files `paths` of
        `day` (and adding the object `add`); _Stale when one of them is no longer in the table."""
        from pyiceberg.expressions import EqualTo

        with tx.update_snapshot(snapshot_properties=props).overwrite() as ow:
            current = {t.file.file_path: t.file for t in self.landing.scan(row_filter=EqualTo("date", day)).plan_files()}
            if not paths <= set(current):
                raise _Stale()
            for p in paths:
                ow.delete_data_file(current[p])
            if add is not None:
                from pyiceberg.io.pyarrow import parquet_file_to_data_file

                ow.append_data_file(parquet_file_to_data_file(self.landing.io, tx.table_metadata, add))

    def _drop_landing_files(self, day: str, files: list[StoreFile], note: str) -> bool:
        """One commit removing exactly `files` from ticks_landing (a file landed meanwhile stays). False when
        some of them are no longer in the table (another maintenance run took them)."""
        paths = {f.path for f in files}

        def drop(tx) -> None:
            self._replace_files(tx, day, paths, {"qp.removed": note})

        try:
            self._commit("landing", drop)
        except _Stale:
            return False
        return True

    def expire_landing(self, keep_days: int, today) -> list[str]:
        """Remove from ticks_landing the days older than `keep_days` whose published compaction covers every one
        of their landing files (one commit per day), then expire old snapshots: the OLAP views keep the recent
        days; history lives in ticks_daily. Returns the days removed."""
        from datetime import timedelta

        cutoff = (today - timedelta(days=keep_days)).isoformat()
        removed = []
        for day, files in sorted(self.landing_days().items()):
            if day < cutoff and self.abandoned_reason(day, files) is None:
                if self._drop_landing_files(day, files, f"retention {keep_days} days"):
                    removed.append(day)
        self.expire_snapshots()
        return removed

    def quarantine_abandoned(self, after_days: int, keep_days: int, now) -> list[dict]:
        """Landing days older than `after_days` that never published, or hold files their published compaction
        does not cover, leave ticks_landing for ticks/quarantine/date=D/at=<UTC time>/: each file copied there,
        the record _quarantine.json written, then one commit removes them from the table (a copy first: the table
        never loses a file that is not in quarantine). The record has the same fields as a local lake's."""
        from datetime import UTC, timedelta

        from quant_platform.market import compaction as cp

        cutoff = (now.date() - timedelta(days=after_days)).isoformat()
        out = []
        for day, files in sorted(self.landing_days().items()):
            if day >= cutoff:
                continue
            reason = self.abandoned_reason(day, files)
            if reason is None:
                continue
            at = now.astimezone(UTC)
            base = f"{cp.QUARANTINE}/date={day}/at={at:%Y%m%dT%H%M%S%fZ}"
            record = {"day": day, "reason": reason, "quarantined_at": at.isoformat(),
                      "delete_after": (at + timedelta(days=keep_days)).isoformat(),
                      "files": [f"source={f.source}/{f.name}" for f in files], "rows": sum(f.rows for f in files),
                      "bytes": sum(f.size for f in files), "landing_signature": landing_signature(files),
                      "path": self.uri(base),
                      "restore": f"TickStore.restore_quarantine('{day}', '{base.rsplit('/', 1)[1]}') adds the files "
                                 f"back to {LANDING_TABLE}"}
            try:
                for f in files:
                    self.fs.copy_file(f.path.removeprefix("s3://"), self.key(f"{base}/source={f.source}/{f.name}"))
                with self.fs.open_output_stream(self.key(f"{base}/{cp.QUARANTINE_RECORD}")) as sink:
                    sink.write(json.dumps(record, indent=2).encode())
            except OSError as exc:
                raise cp.QuarantineError(day, f"{type(exc).__name__}: {exc}") from exc
            if self._drop_landing_files(day, files, f"quarantined: {reason}"):
                out.append(record)
        return out

    def _quarantine_batches(self) -> list[tuple[str, dict]]:
        """(key of the batch folder, its record) of every quarantined batch."""
        from pyarrow.fs import FileSelector, FileType

        from quant_platform.market import compaction as cp

        out = []
        infos = self.fs.get_file_info(FileSelector(self.key(cp.QUARANTINE), recursive=True, allow_not_found=True))
        for info in infos:
            if info.type == FileType.File and info.path.endswith("/" + cp.QUARANTINE_RECORD):
                try:
                    out.append((info.path.rsplit("/", 1)[0], json.loads(self._get(info.path))))
                except (OSError, ValueError) as exc:
                    raise cp.QuarantineError(info.path.split("date=")[-1][:10], f"unreadable record: {exc}") from exc
        return sorted(out, key=lambda b: b[0])

    def expire_quarantine(self, keep_days: int, now) -> list[dict]:
        """Delete quarantined batches kept `keep_days` or longer (by their record's quarantined_at); their records."""
        from datetime import datetime, timedelta

        out = []
        for folder, record in self._quarantine_batches():
            if now - datetime.fromisoformat(record["quarantined_at"]) >= timedelta(days=keep_days):
                self.fs.delete_dir(folder)
                out.append(record)
        return out

    def restore_quarantine(self, day: str, batch: str) -> int:
        """Add a quarantined batch's files back to ticks_landing (one commit) and delete the batch; files added."""
        from pyarrow.fs import FileSelector

        from quant_platform.market import compaction as cp

        folder = self.key(f"{cp.QUARANTINE}/date={day}/{batch}")
        infos = self.fs.get_file_info(FileSelector(folder, recursive=True))
        rels = []
        for info in infos:
            if info.path.endswith(".parquet"):
                rel = f"{LANDING}/date={day}/{info.path[len(folder) + 1:]}"
                self.fs.copy_file(info.path, self.key(rel))
                rels.append(rel)
        if rels:
            self._commit("landing", lambda tx: tx.add_files([self.uri(r) for r in rels], check_duplicate_files=True))
        self.fs.delete_dir(folder)
        return len(rels)

    def delete_orphans(self, older_than_s: float = 86_400.0, now: float | None = None) -> dict[str, int]:
        """Delete the objects of ticks/landing/ and ticks/daily/ that no snapshot of their table references and
        that are older than `older_than_s` (a lander PUTs a file before its commit: a young unreferenced file may
        be about to be committed). A published day's version folder is kept while its data file is referenced or
        it is the day's current version. {"landing": objects deleted, "daily": objects deleted}."""
        from pyarrow.fs import FileSelector, FileType

        cutoff = (time.time() if now is None else now) - older_than_s
        self.refresh()
        deleted = {"landing": 0, "daily": 0}
        referenced = set(self.landing.inspect.all_data_files()["file_path"].to_pylist())
        for info in self.fs.get_file_info(FileSelector(self.key(LANDING), recursive=True, allow_not_found=True)):
            if (info.type == FileType.File and f"s3://{info.path}" not in referenced
                    and info.mtime is not None and info.mtime.timestamp() < cutoff):
                self.fs.delete_file(info.path)
                deleted["landing"] += 1
        referenced = set(self.daily.inspect.all_data_files()["file_path"].to_pylist())
        current = {f"date={k[len(DAY_PROP):]}/{v}" for k, v in self.daily.properties.items() if k.startswith(DAY_PROP)}
        folders: dict[str, list] = {}
        for info in self.fs.get_file_info(FileSelector(self.key(DAILY), recursive=True, allow_not_found=True)):
            if info.type == FileType.File:
                folders.setdefault(info.path.rsplit("/", 1)[0], []).append(info)
        for folder, infos in folders.items():
            version = "/".join(folder.split("/")[-2:])
            if (version in current or any(f"s3://{i.path}" in referenced for i in infos)
                    or any(i.mtime is None or i.mtime.timestamp() >= cutoff for i in infos)):
                continue
            for i in infos:
                self.fs.delete_file(i.path)
            deleted["daily"] += len(infos)
        return deleted

    def expire_snapshots(self, older_than_s: float = 86_400.0) -> None:
        """Drop snapshots older than `older_than_s` (the current one is always kept), so table metadata stays
        small under one commit per flush."""
        from datetime import UTC, datetime, timedelta

        for attr in ("landing", "daily"):
            table = self.catalog.load_table(LANDING_TABLE if attr == "landing" else DAILY_TABLE)
            cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
            current = table.current_snapshot()
            old = [s.snapshot_id for s in table.snapshots()
                   if s.timestamp_ms < cutoff.timestamp() * 1000 and (current is None or s.snapshot_id != current.snapshot_id)]
            if old:
                table.maintenance.expire_snapshots().by_ids(old).commit()
            setattr(self, attr, self.catalog.load_table(table.name()))

    def put_file(self, local: Path, relative: str) -> str:
        """One object (a whole PUT) from a local file; its s3:// URI."""
        with self.fs.open_output_stream(self.key(relative)) as out:
            out.write(Path(local).read_bytes())
        return self.uri(relative)

    def daily_rows(self) -> dict[str, int]:
        """Rows of each published day in ticks_daily's current snapshot (manifest metadata only)."""
        self.daily = self.catalog.load_table(DAILY_TABLE)
        out: dict[str, int] = {}
        for task in self.daily.scan(selected_fields=("date",)).plan_files():
            day = task.file.file_path.split("/date=", 1)[1].split("/", 1)[0]
            out[day] = out.get(day, 0) + task.file.record_count
        return dict(sorted(out.items()))

    def published_days(self) -> list[str]:
        self.daily = self.catalog.load_table(DAILY_TABLE)
        return sorted(k[len(DAY_PROP):] for k in self.daily.properties if k.startswith(DAY_PROP))

    # ------------------------------------------------------------------ OLAP
    def register_olap(self, con, since_day: str | None = None) -> list[str]:
        """DuckDB views over the tables' current files (read through pyarrow's S3 client: no DuckDB extension):
        market.ticks_recent (landing since `since_day`), market.ticks_daily (published days), and the trades,
        quotes and 1-minute bar views the local lake has."""
        import pyarrow.dataset as ds
        from pyiceberg.expressions import AlwaysTrue, GreaterThanOrEqual

        self.refresh()
        flt = GreaterThanOrEqual("date", since_day) if since_day else AlwaysTrue()
        landing = [t.file.file_path.removeprefix("s3://") for t in self.landing.scan(row_filter=flt).plan_files()]
        daily = [t.file.file_path.removeprefix("s3://") for t in self.daily.scan().plan_files()]
        cols = ", ".join(f"make_timestamp_ns({c}) AT TIME ZONE 'UTC' AS {c}" if c in NS_COLUMNS else c
                         for c in TICK_SCHEMA.names)
        con.execute("CREATE SCHEMA IF NOT EXISTS market")
        for view, files in (("ticks_recent", landing), ("ticks_daily", daily)):
            con.register(f"_qp_{view}", ds.dataset(files, schema=STORE_SCHEMA, format="parquet", filesystem=self.fs))
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {cols} FROM _qp_{view}")  # noqa: S608
        con.execute("CREATE OR REPLACE TEMP VIEW trades_recent AS SELECT ts, received_at, source, instrument_id, "
                    "exchange, price, size, event_id FROM ticks_recent WHERE event = 'trade'")
        con.execute("CREATE OR REPLACE TEMP VIEW quotes_recent AS SELECT ts, received_at, source, instrument_id, "
                    "exchange, bid, bid_size, ask, ask_size, event_id FROM ticks_recent WHERE event = 'quote'")
        con.execute(
            "CREATE OR REPLACE TEMP VIEW bars_1m_recent AS SELECT instrument_id, date_trunc('minute', ts) AS minute,"
            " arg_min(price, ts) AS open, max(price) AS high, min(price) AS low, arg_max(price, ts) AS close, "
            "sum(size) AS volume, sum(price * size) / nullif(sum(size), 0) AS vwap, count(*) AS trades "
            "FROM trades_recent GROUP BY ALL")
        return ["ticks_recent", "ticks_daily", "trades_recent", "quotes_recent", "bars_1m_recent"]


class StoreUnavailableError(OSError):
    """The object store or the Iceberg catalog could not be written: not the ticks' fault (the lander retries)."""


class _Stale(Exception):
    """A small-file compaction's input changed under it."""
