"""The one path every macro report takes into the warehouse: fetch or reuse, archive, parse, check, publish.
Never write a frame that failed a blocking check, nor drop a superseded row, nor trust a run tag unchecked.

The raw file is fetched (or reused from the lake) and archived content-addressed; the frame is validated with
blocking checks, then the partition is replaced atomically. A tagged lake path must name a file of this
dataset and partition inside the lake, whose bytes hash to the tagged sha256, before it becomes lineage.

Point in time, the same for every report: each row carries available_at (when the platform first saw its file),
scheduled_release_at and valid_from. A revised file changes only the rows whose values changed: their previous
versions move, unchanged, to <table>_history with superseded_at, in the transaction that publishes the new ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd

from quant_platform.errors import LakeError, LakePathError, ReportParseError, VendorError
from quant_platform.governance.tables import RAW_FILES
from quant_platform.platform.lake import Lake, check_name, parse_raw_path
from quant_platform.platform.redaction import redact
from quant_platform.platform.tables import SUPERSEDED_AT, VALID_FROM, TableSpec
from quant_platform.platform.vendor_http import VendorClient
from quant_platform.platform.warehouse import Warehouse
from quant_platform.quality import rules
from quant_platform.quality.gx_suites import run_suite

# Run tags a release sensor sets so the run loads exactly the file the sensor saw.
TAG_RAW_SHA = "qp/raw_sha256"
TAG_RAW_PATH = "qp/raw_path"
TAG_FIRST_SEEN = "qp/first_seen_at"
TAG_URL = "qp/url"
TAG_ETAG = "qp/etag"
TAG_LAST_MODIFIED = "qp/last_modified"

BLOCKING_CHECKS = (*rules.BLOCKING_RULES, rules.GX_SUITE)

# The load columns (macro/columns.py LOAD_COLUMNS) publish_partition stamps; every other column is the row's
# content, and only a change of content makes a new version.
POINT_IN_TIME_COLUMNS = ("source_sha256", "loaded_at", "available_at", "scheduled_release_at", VALID_FROM)
# What an unchanged row keeps of its first version when a later file carries it again.
KEPT_FROM_FIRST_VERSION = ("source_sha256", "loaded_at", "available_at", VALID_FROM)
# Versions of one key are strictly ordered: a version never starts before the one it replaces ends.
VERSION_STEP = pd.Timedelta(microseconds=1)
_NULL = "\x00"


@dataclass(frozen=True)
class DomainCheck:
    """A report's own check of its parsed frame (sum of parts, a revision detector, plausible jumps), declared in
    its folder and evaluated here beside the generic ones. A blocking one stops the write like them (ERROR); the
    others are recorded as WARN and never stop it. `evaluate` may read earlier partitions from the warehouse."""

    name: str
    description: str
    evaluate: Callable[[pd.DataFrame, Warehouse], rules.RuleOutcome]
    blocking: bool = True


def report_check_specs(spec: TableSpec, domain_checks: Sequence[DomainCheck] = ()) -> list[dg.AssetCheckSpec]:
    """Checks evaluated inside the asset before anything is written (write-audit-publish): the generic blocking
    ones, then the report's domain checks."""
    return [
        *(dg.AssetCheckSpec(name, asset=spec.asset_key, blocking=True, description=rules.RULE_DESCRIPTIONS[name])
          for name in BLOCKING_CHECKS),
        *(dg.AssetCheckSpec(c.name, asset=spec.asset_key, blocking=c.blocking, description=c.description)
          for c in domain_checks),
    ]


@dataclass(frozen=True)
class RawFile:
    vendor: str
    dataset: str
    partition: str
    body: bytes
    sha256: str
    lake_path: str
    url: str
    etag: str | None
    last_modified: str | None
    fetched_at: datetime
    first_seen_at: datetime
    attempts: int
    reused: bool  # True when read back from the lake instead of downloaded


def fetch_raw(
    context: dg.AssetExecutionContext,
    client: VendorClient,
    lake: Lake,
    *,
    vendor: str,
    dataset: str,
    partition: str,
    url: str,
    ext: str,
    params: dict | None = None,
    allow_tagged: bool = True,
) -> RawFile:
    """The raw file for a partition: the one the sensor archived (run tags), else a fresh download."""
    tags = context.run.tags if context.run else {}
    now = datetime.now(UTC)
    tagged = _tagged_raw(lake, tags, vendor=vendor, dataset=dataset, partition=partition) if allow_tagged else None
    if tagged is not None:
        path, body = tagged
        first_seen = _tag_time(tags.get(TAG_FIRST_SEEN), now)
        return RawFile(vendor, dataset, partition, body, hashlib.sha256(body).hexdigest(), path,
                       redact(tags.get(TAG_URL) or url)[:250], tags.get(TAG_ETAG), tags.get(TAG_LAST_MODIFIED),
                       first_seen, first_seen, 0, reused=True)
    try:
        resp = client.get(url, params=params)
    except VendorError as exc:  # its text is redacted and it carries no cause (which could name the key)
        raise dg.Failure(
            description=f"{dataset} {partition}: {exc}. Nothing was written; the previous data stays.",
            metadata={"url": exc.url, "reason": exc.reason, "error": type(exc).__name__},
        ) from None
    archived = lake.archive_raw(vendor, dataset, partition, resp.body, ext)
    context.log.info(
        f"fetched {resp.url} ({len(resp.body)} bytes, sha256 {resp.sha256[:12]}, {resp.attempts} attempt(s)); "
        f"{'new revision' if archived.is_new else 'already archived'} at {archived.path}"
    )
    return RawFile(vendor, dataset, partition, resp.body, resp.sha256, archived.path, resp.url, resp.etag,
                   resp.last_modified, resp.fetched_at, resp.fetched_at, resp.attempts, reused=False)


def _tagged_raw(lake: Lake, tags, *, vendor: str, dataset: str, partition: str) -> tuple[str, bytes] | None:
    """The file a release sensor archived for this run (tags qp/raw_path and qp/raw_sha256), checked: a path
    of this vendor, dataset and partition inside the lake, whose bytes hash to the tagged sha256. None when
    the run has no such tags or the file is not in the lake (then the caller downloads)."""
    path, sha = tags.get(TAG_RAW_PATH), tags.get(TAG_RAW_SHA)
    if not path and not sha:
        return None
    try:
        if not path or not sha:
            raise LakePathError(f"{TAG_RAW_PATH} and {TAG_RAW_SHA} come together, got only one of them")
        ref = parse_raw_path(path)
        check_name("sha256", sha)
        if (ref.vendor, ref.dataset, ref.partition) != (vendor, dataset, partition):
            raise LakePathError(f"{ref.path} is a file of {ref.vendor}/{ref.dataset} partition {ref.partition}, "
                                f"not of {vendor}/{dataset} partition {partition}")
        if not lake.exists(ref.path):
            return None
        _, body = lake.read_raw(ref.path, expected_sha256=sha)
    except LakeError as exc:
        raise dg.Failure(
            description=f"{dataset} {partition}: run tag {TAG_RAW_PATH}={str(path)[:120]!r} refused: {exc}. "
            "Nothing was read or written.",
            metadata={"tag_raw_path": str(path)[:250], "tag_raw_sha256": str(sha)[:80], "error": type(exc).__name__},
        ) from None
    return ref.path, body


def _tag_time(value: str | None, default: datetime) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if value else default
    except ValueError:
        return default
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def archived_raw(lake: Lake, vendor: str, dataset: str, partition: str) -> RawFile | None:
    """The newest archived revision of a partition (re-materializing an old week needs no download), its
    bytes checked against the sha256 it was archived under."""
    revisions = lake.revisions(vendor, dataset, partition)
    if not revisions:
        return None
    path = revisions[-1]
    try:
        ref, body = lake.read_raw(path)
    except LakeError as exc:
        raise dg.Failure(
            description=f"{dataset} {partition}: archived file refused: {exc}. Nothing was written; the previous "
            "data stays.",
            metadata={"raw_file": path, "error": type(exc).__name__},
        ) from None
    now = datetime.now(UTC)
    return RawFile(vendor, dataset, partition, body, ref.sha256, path, f"lake://{path}", None, None, now, now, 0,
                   True)


def record_raw_files(warehouse: Warehouse, files: Sequence[RawFile], scheduled: dict[str, datetime],
                     loaded_at: datetime, con=None) -> None:
    """Index loaded files in governance.raw_files: a known sha is a no-op, a new one a new revision.

    With `con`, inside the transaction that wrote the files' rows, whose commit time `loaded_at` stands for.
    """
    if con is None:
        with warehouse.transaction() as own:
            record_raw_files(warehouse, files, scheduled, loaded_at, own)
        return
    for f in files:
        known = {r[0] for r in warehouse.run(
            con, "SELECT sha256 FROM governance.raw_files "
            "WHERE vendor = :vendor AND dataset = :dataset AND partition_key = :partition",
            {"vendor": f.vendor, "dataset": f.dataset, "partition": f.partition}) or []}
        if f.sha256 in known:
            continue
        row = pd.DataFrame([{
            "vendor": f.vendor, "dataset": f.dataset, "partition_key": f.partition, "sha256": f.sha256,
            "lake_path": f.lake_path, "size_bytes": len(f.body), "url": f.url, "etag": f.etag,
            "last_modified": f.last_modified, "fetched_at": f.first_seen_at,
            "scheduled_release_at": scheduled.get(f.partition), "revision": len(known) + 1,
            "loaded_at": loaded_at,
        }])
        warehouse.append_rows(RAW_FILES, row, con=con)


def publish_partition(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    spec: TableSpec,
    *,
    parse: Callable[[], pd.DataFrame],
    partition_values: Sequence,
    raw_files: Sequence[RawFile],
    scheduled_release: dict[str, datetime] | None = None,
    expected_partitions: Sequence | None = None,
    extra_metadata: dict | None = None,
    domain_checks: Sequence[DomainCheck] = (),
) -> Iterator:
    """Parse, validate, and either publish the partition or fail with every check result recorded."""
    scheduled_release = scheduled_release or {}
    shas = sorted({f.sha256 for f in raw_files})
    try:
        frame = parse()
    except ReportParseError as exc:
        yield dg.AssetCheckResult(
            check_name=rules.SCHEMA_AND_TYPES, passed=False, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"error": str(exc), "raw_sha256": ", ".join(shas),
                      "raw_files": ", ".join(f.lake_path for f in raw_files)},
            description=f"File could not be parsed: {exc}",
        )
        raise dg.Failure(
            description=f"{spec.qualified_name}: {exc}. Nothing was written; the previous data stays.",
            metadata={"raw_files": ", ".join(f.lake_path for f in raw_files)},
        ) from exc

    loaded_at = pd.Timestamp(datetime.now(UTC))
    frame = stamp_point_in_time(spec, frame, first_seen_times(warehouse, raw_files), scheduled_release, loaded_at)
    frame = frame[[c for c in spec.column_names if c in frame.columns] +
                  [c for c in frame.columns if c not in spec.column_names]]

    outcomes = rules.validate_frame(spec, frame, expected_partitions=expected_partitions)
    outcomes.append(run_suite(spec, frame))
    results = [
        dg.AssetCheckResult(check_name=o.name, passed=o.passed, severity=dg.AssetCheckSeverity.ERROR,
                            metadata=o.metadata)
        for o in outcomes
    ]
    failed = [o for o in outcomes if not o.passed]
    for check in domain_checks:
        outcome = check.evaluate(frame, warehouse)
        severity = dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN
        results.append(dg.AssetCheckResult(check_name=check.name, passed=outcome.passed, severity=severity,
                                           metadata=outcome.metadata))
        if check.blocking and not outcome.passed:
            failed.append(rules.RuleOutcome(check.name, False, check.description, outcome.metadata))
    if failed:
        yield from results
        detail = "; ".join(f"{o.name}: {_first_problem(o.metadata)}" for o in failed)
        raise dg.Failure(
            description=(f"{spec.qualified_name} blocked by failed checks ({detail}). Nothing was written; "
                         "the previous data stays."),
            metadata={"failed_checks": ", ".join(o.name for o in failed), "raw_sha256": ", ".join(shas)},
        )

    # The partition and its files' index commit together, so governance.raw_files.loaded_at (what
    # release_on_time judges) exists exactly when the rows do. It is stamped after the bulk write, as the last
    # step before the commit: the moment the rows become visible, give or take the commit itself.
    with warehouse.transaction() as con:
        current = current_rows(warehouse, con, spec, partition_values)
        written, superseded = revise(spec, current, frame)
        rows = warehouse.replace_rows(spec, written, partition_values, con=con)
        if len(superseded):
            warehouse.append_rows(spec.history_spec(), superseded, con=con)
        done = datetime.now(UTC)
        record_raw_files(warehouse, raw_files, scheduled_release, done, con)
    metadata: dict = {
        "dagster/row_count": rows,
        "dagster/table_name": spec.qualified_name,
        "warehouse_backend": warehouse.backend,
        "raw_sha256": ", ".join(shas),
        "raw_files": ", ".join(f.lake_path for f in raw_files),
        "raw_reused_from_lake": all(f.reused for f in raw_files),
        "loaded_at": done.isoformat(),
        "fetch_attempts": max((f.attempts for f in raw_files), default=0),
        # Point in time: rows whose content changed (their previous versions kept in <table>_history), rows the
        # new file no longer has (kept there too), rows carried over with their first version's available_at.
        "rows_revised": int(written.attrs.get("revised", 0)),
        "rows_dropped": int(written.attrs.get("dropped", 0)),
        "rows_unchanged": int(written.attrs.get("unchanged", 0)),
        "history_table": spec.history_spec().qualified_name,
        "available_at": pd.Timestamp(frame["available_at"].max()).isoformat(),
    }
    if scheduled_release:
        first = min(scheduled_release.values())
        last = max(scheduled_release.values())
        metadata["scheduled_release_at"] = first.astimezone(UTC).isoformat()
        metadata["release_to_loaded_seconds"] = round((done - last).total_seconds(), 3)
    first_seen = min((f.first_seen_at for f in raw_files), default=None)
    if first_seen:
        metadata["first_seen_at"] = first_seen.isoformat()
        metadata["seen_to_loaded_seconds"] = round((done - first_seen).total_seconds(), 3)
    metadata.update(extra_metadata or {})
    preview = frame.head(10).drop(columns=list(POINT_IN_TIME_COLUMNS), errors="ignore")
    metadata["preview"] = dg.MetadataValue.md(preview.to_markdown(index=False))
    yield dg.MaterializeResult(metadata=metadata, check_results=results)


def first_seen_times(warehouse: Warehouse, files: Sequence[RawFile]) -> dict[str, datetime]:
    """When the platform first saw each file (by sha256): the release sensor's first sight (run tag) or the
    download, or, for bytes indexed before (a reload from the archive, the same file downloaded again), the time
    governance.raw_files recorded then, whichever is earlier."""
    seen: dict[str, datetime] = {}
    for f in files:
        seen[f.sha256] = min(seen.get(f.sha256, f.first_seen_at), f.first_seen_at)
    if not seen:
        return seen
    try:
        indexed = warehouse.query_df("SELECT sha256, min(fetched_at) AS first_seen FROM governance.raw_files "
                                     "WHERE sha256 IN :shas GROUP BY sha256", {"shas": sorted(seen)})
    except Exception:  # noqa: BLE001 - a warehouse without the index yet: the files' own times stand
        return seen
    for sha, first in zip(indexed["sha256"], indexed["first_seen"], strict=True):
        if pd.notna(first):
            seen[sha] = min(seen[sha], pd.Timestamp(first).tz_convert(UTC) if pd.Timestamp(first).tzinfo
                            else pd.Timestamp(first).tz_localize(UTC))
    return seen


def stamp_point_in_time(spec: TableSpec, frame: pd.DataFrame, seen: dict[str, datetime],
                        scheduled: dict[str, datetime], loaded_at: pd.Timestamp) -> pd.DataFrame:
    """The parsed rows with the load columns: available_at (first sight of the row's file), scheduled_release_at
    (the partition's scheduled release, when the report has a calendar), valid_from (= available_at until
    revise() says otherwise) and loaded_at. A parser's own available_at (a scheduled time) is replaced."""
    out = frame.copy()
    out["loaded_at"] = loaded_at
    latest = max(seen.values()) if seen else loaded_at
    if "source_sha256" in out.columns:
        available = pd.to_datetime(out["source_sha256"].map(seen), utc=True)
        out["available_at"] = available.fillna(pd.Timestamp(latest))
    else:  # the schema check reports the missing column
        out["available_at"] = pd.Timestamp(latest)
    out["available_at"] = pd.to_datetime(out["available_at"], utc=True)
    release = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    if scheduled and spec.partition_column in out.columns:
        keys = _partition_keys(spec, out[spec.partition_column])
        release = pd.to_datetime(keys.map({k: v for k, v in scheduled.items() if v is not None}), utc=True)
    out["scheduled_release_at"] = release
    out[VALID_FROM] = out["available_at"]
    return out


def _partition_keys(spec: TableSpec, values: pd.Series) -> pd.Series:
    """Partition keys of a partition column's values (a date column's keys are YYYY-MM-DD)."""
    if spec.column(spec.partition_column).type == "date":
        return pd.to_datetime(values).dt.strftime("%Y-%m-%d")
    return values.astype(str)


def current_rows(warehouse: Warehouse, con, spec: TableSpec, partition_values: Sequence) -> pd.DataFrame:
    """The rows of the partitions as the table holds them now, read inside the publishing transaction."""
    cols = spec.column_names
    values = list(partition_values)
    if not values or not spec.partition_column:
        return pd.DataFrame(columns=cols)
    sql = (f"SELECT {', '.join(cols)} FROM {spec.qualified_name} "  # noqa: S608 - names from the spec
           f"WHERE {spec.partition_column} IN :values")
    if warehouse.backend == "duckdb":  # a partition of a history load can hold a million rows: no Python tuples
        text, args = warehouse.bind(sql, {"values": values})
        return con.execute(text, args).df()
    rows = warehouse.run(con, sql, {"values": values})
    return pd.DataFrame(rows or [], columns=cols)


def revise(spec: TableSpec, current: pd.DataFrame, incoming: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What publishing `incoming` over `current` (the same partitions) writes: the table's new rows, and the
    superseded versions for <table>_history.

    A key whose content (every column but the load columns) is unchanged keeps its first version: its
    available_at, valid_from, loaded_at and source file. A key whose content changed gets a new version from
    its file's available_at; the old one goes to history with superseded_at = the new valid_from. A key the
    new file no longer has goes to history too, superseded when the new file was seen. The counts are in the
    returned table's attrs (revised, dropped, unchanged).
    """
    new = incoming[spec.column_names].reset_index(drop=True).copy()
    new[VALID_FROM] = pd.to_datetime(new[VALID_FROM], utc=True)
    empty = pd.DataFrame(columns=[*spec.column_names, SUPERSEDED_AT])
    if current.empty:
        new.attrs.update(revised=0, dropped=0, unchanged=0)
        return new, empty
    old = current.reset_index(drop=True)
    keys = list(spec.primary_key)
    content = [c for c in spec.column_names if c not in POINT_IN_TIME_COLUMNS]
    pairs = pd.DataFrame({"key": _row_hashes(spec, new, keys).to_numpy(),
                          "content": _row_hashes(spec, new, content).to_numpy(), "i": range(len(new))}).merge(
        pd.DataFrame({"key": _row_hashes(spec, old, keys).to_numpy(),
                      "old_content": _row_hashes(spec, old, content).to_numpy(), "j": range(len(old))}),
        on="key", how="outer")
    both = pairs["i"].notna() & pairs["j"].notna()
    same = pairs[both & (pairs["content"] == pairs["old_content"])]
    changed = pairs[both & (pairs["content"] != pairs["old_content"])]
    dropped = pairs[pairs["i"].isna()]

    old_valid = _utc_ns(old[VALID_FROM])
    i, j = same["i"].astype(int).to_numpy(), same["j"].astype(int).to_numpy()
    for col in KEPT_FROM_FIRST_VERSION:
        if col == "source_sha256":
            values = new[col].astype(object).to_numpy(copy=True)
            values[i] = old[col].astype(object).to_numpy()[j]
        else:
            values = _utc_ns(new[col])
            values[i] = _utc_ns(old[col])[j]
            values = pd.DatetimeIndex(values).tz_localize(UTC)
        new[col] = values
    i, j = changed["i"].astype(int).to_numpy(), changed["j"].astype(int).to_numpy()
    valid = _utc_ns(new[VALID_FROM])
    starts = np.maximum(valid[i], old_valid[j] + VERSION_STEP.to_timedelta64())
    valid[i] = starts
    new[VALID_FROM] = pd.DatetimeIndex(valid).tz_localize(UTC)

    revised = old.iloc[j].copy()
    revised[SUPERSEDED_AT] = pd.DatetimeIndex(starts).tz_localize(UTC)
    j_dropped = dropped["j"].astype(int).to_numpy()
    gone = old.iloc[j_dropped].copy()
    seen_new = _utc_ns(new["available_at"]).max()
    gone[SUPERSEDED_AT] = pd.DatetimeIndex(np.maximum(seen_new, old_valid[j_dropped] + VERSION_STEP.to_timedelta64())
                                           ).tz_localize(UTC)
    superseded = pd.concat([f for f in (revised, gone) if len(f)], ignore_index=True) if len(j) or len(
        j_dropped) else empty
    new.attrs.update(revised=len(changed), dropped=len(dropped), unchanged=len(same))
    return new, superseded


def _utc_ns(values: pd.Series) -> np.ndarray:
    """Timestamps as UTC datetime64[ns] (NaT for nulls): one resolution, whatever the backend returned."""
    return pd.to_datetime(values, utc=True).dt.tz_convert(None).to_numpy(dtype="datetime64[ns]", copy=True)


def _row_hashes(spec: TableSpec, df: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """A 64-bit hash per row of `columns`, equal when the values are equal whichever backend or parser they came
    from (dates and timestamps at one resolution, integers nullable, text with nulls alike)."""
    typed = {}
    for name in columns:
        kind, s = spec.column(name).type, df[name]
        if kind == "date":
            typed[name] = pd.to_datetime(s).astype("datetime64[ns]")
        elif kind == "timestamptz":
            typed[name] = pd.to_datetime(s, utc=True).dt.tz_convert(None).astype("datetime64[ns]")
        elif kind in ("int", "bigint"):
            typed[name] = pd.array(pd.to_numeric(s), dtype="Int64")
        elif kind == "double":
            typed[name] = pd.to_numeric(s).astype("float64")
        elif kind == "bool":
            typed[name] = s.astype("boolean")
        else:
            # Python objects, not the string dtype: hashing factorizes them (most text repeats) without a copy.
            typed[name] = pd.Series(s.to_numpy(dtype=object, na_value=_NULL), index=df.index, dtype=object)
    frame = pd.DataFrame(typed, index=df.index)
    return pd.util.hash_pandas_object(frame, index=False)


def _first_problem(meta: dict) -> str:
    for k, v in meta.items():
        if v not in ("none", 0, "0") and k not in ("rows", "partitions", "expectations", "gx_version"):
            return f"{k}={v}"
    return "see check metadata"


