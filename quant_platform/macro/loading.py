"""The one path every macro report takes into the warehouse: fetch (or reuse) the raw file, archive it
content-addressed, parse, validate with blocking checks, then replace the partition atomically.

Never write a frame that failed a blocking check: the previous good data must stay in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from quant_platform.errors import ReportParseError, VendorError
from quant_platform.governance.tables import RAW_FILES
from quant_platform.platform.lake import Lake
from quant_platform.platform.tables import TableSpec
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


def report_check_specs(spec: TableSpec) -> list[dg.AssetCheckSpec]:
    """Blocking checks evaluated inside the asset before anything is written (write-audit-publish)."""
    return [
        dg.AssetCheckSpec(name, asset=spec.asset_key, blocking=True, description=rules.RULE_DESCRIPTIONS[name])
        for name in BLOCKING_CHECKS
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
    if allow_tagged and tags.get(TAG_RAW_SHA) and tags.get(TAG_RAW_PATH) and lake.exists(tags[TAG_RAW_PATH]):
        body = lake.read(tags[TAG_RAW_PATH])
        first_seen = datetime.fromisoformat(tags.get(TAG_FIRST_SEEN, now.isoformat()))
        return RawFile(vendor, dataset, partition, body, tags[TAG_RAW_SHA], tags[TAG_RAW_PATH],
                       tags.get(TAG_URL, url), tags.get(TAG_ETAG), tags.get(TAG_LAST_MODIFIED), first_seen,
                       first_seen, 0, reused=True)
    try:
        resp = client.get(url, params=params)
    except VendorError as exc:
        raise dg.Failure(
            description=f"{dataset} {partition}: {exc}. Nothing was written; the previous data stays.",
            metadata={"url": exc.url, "reason": exc.reason},
        ) from exc
    archived = lake.archive_raw(vendor, dataset, partition, resp.body, ext)
    context.log.info(
        f"fetched {resp.url} ({len(resp.body)} bytes, sha256 {resp.sha256[:12]}, {resp.attempts} attempt(s)); "
        f"{'new revision' if archived.is_new else 'already archived'} at {archived.path}"
    )
    return RawFile(vendor, dataset, partition, resp.body, resp.sha256, archived.path, resp.url, resp.etag,
                   resp.last_modified, resp.fetched_at, resp.fetched_at, resp.attempts, reused=False)


def archived_raw(lake: Lake, vendor: str, dataset: str, partition: str) -> RawFile | None:
    """The newest archived revision of a partition (re-materializing an old week needs no download)."""
    revisions = lake.revisions(vendor, dataset, partition)
    if not revisions:
        return None
    path = revisions[-1]
    body = lake.read(path)
    sha = path.rsplit("/", 1)[-1].split(".")[0]
    now = datetime.now(UTC)
    return RawFile(vendor, dataset, partition, body, sha, path, f"lake://{path}", None, None, now, now, 0, True)


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
    frame = frame.copy()
    frame["loaded_at"] = loaded_at
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
        rows = warehouse.replace_rows(spec, frame, partition_values, con=con)
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
    preview = frame.head(10).drop(columns=["source_sha256", "loaded_at"], errors="ignore")
    metadata["preview"] = dg.MetadataValue.md(preview.to_markdown(index=False))
    yield dg.MaterializeResult(metadata=metadata, check_results=results)


def _first_problem(meta: dict) -> str:
    for k, v in meta.items():
        if v not in ("none", 0, "0") and k not in ("rows", "partitions", "expectations", "gx_version"):
            return f"{k}={v}"
    return "see check metadata"


