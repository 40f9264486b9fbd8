"""History loads: which partitions of a run the vendor never published (vendor_missing), said once and kept.

Never invent rows for a missing partition, nor fail a history load for it: it is reported and left empty.

A report whose files hold many partitions (a WPSR workbook's whole history, a CFTC history zip, the gas storage
history workbook) loads a range of partitions in one run. A requested partition with no rows in the vendor's files
is not an error of the load: the vendor never published it (the CFTC skipped weeks in the 2025 shutdown, reported
other days than Tuesday before 1992 and on holidays, a series begins after the range starts). The report's parse
names those partitions with a reason (mark_vendor_missing); macro/assets.py then writes the partitions that have
rows, records `vendor_missing: <why>` on each missing partition's materialization and a summary on every
partition's, so a rerun of the same file is the same load (nothing is retried forever).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from quant_platform.macro.declaration import ReportRun
    from quant_platform.macro.loading import RawFile
    from quant_platform.macro.routes import Route

NOT_SERVED = ("HTTP 404", "HTTP 410")  # the vendor has no such file (never published, or discontinued)
VENDOR_MISSING = "vendor_missing"  # DataFrame.attrs key a parse sets: {partition key: why the vendor has no rows}
SHOWN_RANGES = 12  # ranges of missing partitions named in metadata and on the CLI


def mark_vendor_missing(frame: pd.DataFrame, keys: Sequence[str], partition_column: str,
                        why: str | Mapping[str, str]) -> pd.DataFrame:
    """Keep the rows of `keys` and name the keys without rows as vendor_missing, with `why` (one reason, or a
    reason per key; keys it lacks get the first reason)."""
    present = set(pd.to_datetime(frame[partition_column]).dt.date.astype(str)) if len(frame) else set()
    missing = [k for k in keys if k not in present]
    if isinstance(why, str):
        reasons = dict.fromkeys(missing, why)
    else:
        default = next(iter(why.values()), "no rows in the vendor's files")
        reasons = {k: why.get(k, default) for k in missing}
    frame.attrs[VENDOR_MISSING] = reasons
    return frame


def vendor_missing(frame: pd.DataFrame | None) -> dict[str, str]:
    """The partitions a parse named as never published, with their reason."""
    if frame is None:
        return {}
    return dict(frame.attrs.get(VENDOR_MISSING) or {})


def summarize_missing(missing: Mapping[str, str], step_days: int = 7) -> list[str]:
    """Missing partitions as runs of consecutive keys with one reason: '2024-01-05..2024-03-29 (13): <why>'.
    Keys that are not dates (series ids) are listed one by one."""
    lines: list[str] = []
    run: list[str] = []
    reason = None

    def flush() -> None:
        if run:
            span = run[0] if len(run) == 1 else f"{run[0]}..{run[-1]}"
            lines.append(f"{span} ({len(run)}): {reason}")

    for key in sorted(missing):
        follows = False
        if run and missing[key] == reason:
            try:
                follows = date.fromisoformat(key) - date.fromisoformat(run[-1]) == timedelta(days=step_days)
            except ValueError:
                follows = False
        if follows:
            run.append(key)
        else:
            flush()
            run, reason = [key], missing[key]
    flush()
    return lines


def shown(lines: Iterable[str], limit: int = SHOWN_RANGES) -> str:
    """The first `limit` summary lines, and how many more there are."""
    lines = list(lines)
    more = f"; and {len(lines) - limit} more ranges" if len(lines) > limit else ""
    return "; ".join(lines[:limit]) + more


def download_history_file(run: ReportRun, route: Route, partition_of: Callable[[bytes], str], fallback: str,
                          **values) -> RawFile | None:
    """A file that holds many partitions (a workbook's whole history), downloaded now and archived under the
    partition it is the release of (`partition_of` its bytes; `fallback` when they cannot say, and the parse will
    report why). None when the vendor does not serve it (HTTP 404/410); any other failure fails the run."""
    import dagster as dg

    from quant_platform.errors import QuantPlatformError, VendorError
    from quant_platform.macro.loading import RawFile

    try:
        resp = run.client.get(route.url(run.settings, **values))
    except VendorError as exc:
        if exc.reason.startswith(NOT_SERVED):
            run.context.log.warning(f"{route.dataset}: the vendor does not serve {exc.url} ({exc.reason[:8]})")
            return None
        raise dg.Failure(description=f"{route.dataset}: {exc}. Nothing was written; the previous data stays.",
                         metadata={"url": exc.url, "reason": exc.reason}) from None
    try:
        partition = partition_of(resp.body)
    except QuantPlatformError:
        partition = fallback
    archived = run.lake.archive_raw(run.report.vendor, route.dataset, partition, resp.body, route.ext)
    run.context.log.info(f"fetched {resp.url} ({len(resp.body)} bytes, sha256 {resp.sha256[:12]}) for {partition}; "
                         f"{'new revision' if archived.is_new else 'already archived'} at {archived.path}")
    return RawFile(run.report.vendor, route.dataset, partition, resp.body, resp.sha256, archived.path, resp.url,
                   resp.etag, resp.last_modified, resp.fetched_at, resp.fetched_at, resp.attempts, reused=False)
