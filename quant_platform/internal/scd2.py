"""Slowly changing dimensions, type 2: turns source changes and deletions into closed and new versions.

Never modify a closed version again, and never create a version for a row that did not change: running
the same extraction twice must change nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from quant_platform.internal.tables import SourceTable
from quant_platform.platform.tables import TableSpec


@dataclass(frozen=True)
class MergeResult:
    rows: pd.DataFrame  # versions to upsert (closed ones and new ones), in the dimension's columns
    new_versions: int
    closed_versions: int
    deleted_keys: int
    unchanged: int
    stale: int


def business_columns(source: SourceTable) -> list[str]:
    return [c for c in source.column_names if c != "updated_at"]


def row_hashes(df: pd.DataFrame, columns: list[str]) -> pd.Series:
    """A stable digest of the business columns (same values -> same hash on any backend)."""
    def norm(v) -> str:
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            return "\x00"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if hasattr(v, "isoformat"):
            return pd.Timestamp(v).isoformat()
        return str(v)

    joined = df[columns].apply(lambda r: "\x1f".join(norm(v) for v in r), axis=1) if len(df) else pd.Series(
        dtype=str)
    return joined.map(lambda s: hashlib.sha256(s.encode()).hexdigest())


def merge(
    source: SourceTable,
    spec: TableSpec,
    *,
    current: pd.DataFrame,
    max_versions: dict[int, int],
    changes: pd.DataFrame,
    source_keys: set[int] | None,
    deleted_at: datetime,
    loaded_at: datetime,
) -> MergeResult:
    """Versions to write for `changes` (source rows) and deletions (current keys missing from the source)."""
    key = source.key
    biz = business_columns(source)
    cur = current.set_index(key) if len(current) else pd.DataFrame(columns=spec.column_names).set_index(key)
    out: list[dict] = []
    new = closed = unchanged = stale = 0
    changes = changes.sort_values([key, "updated_at"]).drop_duplicates(key, keep="last")
    hashes = row_hashes(changes, biz)
    for (_, row), h in zip(changes.iterrows(), hashes, strict=True):
        k = int(row[key])
        ts = pd.Timestamp(row["updated_at"])
        if k in cur.index:
            c = cur.loc[k]
            if c["row_hash"] == h:
                unchanged += 1
                continue
            if ts <= pd.Timestamp(c["valid_from"]):
                stale += 1  # older than the version we hold: an earlier window re-run
                continue
            closed_row = {key: k, **{col: c[col] for col in spec.column_names if col != key}}
            closed_row.update(valid_to=ts, is_current=False, loaded_at=loaded_at)
            out.append(closed_row)
            closed += 1
            version = int(c["version"]) + 1
        else:
            version = max_versions.get(k, 0) + 1
        out.append({**{col: row[col] for col in biz}, "source_updated_at": ts, "valid_from": ts, "valid_to": None,
                    "is_current": True, "is_deleted": False, "version": version, "row_hash": h,
                    "loaded_at": loaded_at})
        new += 1
    deleted = 0
    if source_keys is not None and len(cur):
        changed_keys = {int(r[key]) for r in out}
        for k in sorted(set(cur.index.astype(int)) - set(source_keys) - changed_keys):
            c = cur.loc[k]
            row = {key: k, **{col: c[col] for col in spec.column_names if col != key}}
            row.update(valid_to=max(pd.Timestamp(deleted_at), pd.Timestamp(c["valid_from"])), is_current=False,
                       is_deleted=True, loaded_at=loaded_at)
            out.append(row)
            deleted += 1
    rows = spec.typed(pd.DataFrame(out, columns=spec.column_names))
    return MergeResult(rows, new, closed, deleted, unchanged, stale)
