"""Slowly changing dimensions, type 2, set-based: source changes and deletions become closed and new versions
through a few SQL statements over staging tables, the same on DuckDB and PostgreSQL.

Never modify a closed version again, and never create a version for a row that did not change: running
the same extraction twice must change nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from quant_platform.errors import WarehouseError
from quant_platform.internal.tables import SourceTable
from quant_platform.platform.settings import RowHashKey, row_hash_key
from quant_platform.platform.tables import Column, TableSpec
from quant_platform.platform.warehouse import Warehouse, vetted

# Staging tables live for one transaction only (DuckDB: the connection closes; PostgreSQL: ON COMMIT DROP),
# so their fixed names never collide between runs.
CHANGES = "qp_scd2_changes"  # the extracted source rows, one per key, with their row_hash
PLAN = "qp_scd2_plan"  # each change classified against the dimension: new, changed, unchanged, stale
VERSIONS = "qp_scd2_versions"  # what this run writes: closed and deleted versions, new versions
SOURCE_KEYS = "qp_scd2_source_keys"  # every key in the source, when a key scan was needed
ACTION = "qp_action"  # VERSIONS column: 'close' or 'delete' (an update of a current row) or 'insert'

# Two cheap aggregates of a key set besides its size. Equal count and sum of keys can hide an insert plus a
# delete (delete 5 and 10, insert 7 and 8); the sum of a product of two residues catches that too. Factors
# stay below 1e5 so the sum fits a 64-bit integer on SQLite for up to ~1e8 keys.
KEY_MIX = (100_003, 99_991)

_NULL = "\x00"  # stands for NULL in the canonical text a row hash is computed from
_SEP = "\x1f"


@dataclass(frozen=True)
class MergeCounts:
    new_versions: int  # versions inserted (first versions, next versions of changed rows, restored keys)
    closed_versions: int  # current versions closed because their source row changed
    unchanged: int
    stale: int  # changes older than the version we hold (an earlier window re-run)
    extracted: int
    rekeyed: int = 0  # unchanged current versions whose stored hash was made under another key (or none)


def business_columns(source: SourceTable) -> list[str]:
    return [c for c in source.column_names if c != "updated_at"]


# ------------------------------------------------------------------------------------------ row hash
def _canonical(s: pd.Series) -> pd.Series:
    """Each value as the text the row hash is computed from, vectorised per column (by dtype).

    The definition is that of the per-row version this replaced, so hashes already stored stay comparable:
    NULL -> \\x00, integral floats as integers, other floats as Python's shortest repr, timestamps as
    pandas isoformat() (UTC for tz-aware ones), everything else str(value).
    """
    missing = s.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(s):
        tz = getattr(s.dt, "tz", None)
        local = s.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else s
        values = local.to_numpy(dtype="datetime64[ns]")
        secs = np.datetime_as_string(values.astype("datetime64[s]"), unit="s").astype(object)
        ns = (values - values.astype("datetime64[s]")).astype("int64")
        frac = np.where(ns % 1000 != 0, pd.Series(ns).astype(str).str.zfill(9).radd(".").to_numpy(),
                        np.where(ns != 0, pd.Series(ns // 1000).astype(str).str.zfill(6).radd(".").to_numpy(), ""))
        text = pd.Series(secs, index=s.index) + pd.Series(frac, index=s.index).astype(object)
        if tz is not None:
            text = text + "+00:00"
    elif pd.api.types.is_bool_dtype(s):
        text = s.map({True: "True", False: "False"})
    elif pd.api.types.is_integer_dtype(s):
        text = s.astype("Int64").astype(str)
    elif pd.api.types.is_float_dtype(s):
        v = s.to_numpy(dtype="float64", na_value=np.nan)
        integral = np.isfinite(v) & (np.floor(v) == v)
        small = integral & (np.abs(v) < 2**62)
        out = np.where(small, np.where(small, v, 0).astype("int64").astype(str).astype(object),
                       v.astype(str).astype(object))
        huge = integral & ~small  # beyond int64: Python's int() of the float, as the per-row definition
        out[huge] = [str(int(x)) for x in v[huge]]
        text = pd.Series(out, index=s.index)
    else:
        text = s.astype(object).where(~missing, "").astype(str)
    return text.where(~missing, _NULL).astype(object)


def _canonical_rows(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Each row's canonical text: its columns' canonical values joined by \\x1f, built column by column."""
    joined = _canonical(df[columns[0]])
    for c in columns[1:]:
        joined = joined + _SEP + _canonical(df[c])
    return joined.to_numpy()


def row_hashes(df: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Unkeyed sha256 of the canonical text: the row hash as first defined, never stored any more (anyone
    could confirm a guess of a PII value with it). It pins the canonical text, and it is what hashes written
    before keying hold; the merge stores keyed_row_hashes."""
    if not len(df):
        return pd.Series([], dtype=object, index=df.index)
    digests = [hashlib.sha256(t.encode()).hexdigest() for t in _canonical_rows(df, columns)]
    return pd.Series(digests, index=df.index, dtype=object)


_KEY_ID = re.compile(r"^[0-9a-f]{8}$")


def hash_prefix(key: RowHashKey) -> str:
    """What every hash made under `key` starts with: its key id and a colon (unkeyed hashes have no colon)."""
    if not _KEY_ID.match(key.key_id):
        raise WarehouseError(f"row-hash key id {key.key_id!r} is not 8 hex digits")
    return key.key_id + ":"


def keyed_row_hashes(df: pd.DataFrame, columns: list[str], key: RowHashKey) -> pd.Series:
    """`<key id>:<HMAC-SHA256 of the canonical text under the key>`: the same values give the same hash on
    any backend and pandas version for one key, and nothing can be confirmed from it without the key."""
    if not len(df):
        return pd.Series([], dtype=object, index=df.index)
    prefix = hash_prefix(key)
    base = hmac.new(key.secret, digestmod=hashlib.sha256)  # keyed once; copied per row
    digests = []
    for t in _canonical_rows(df, columns):
        h = base.copy()
        h.update(t.encode())
        digests.append(prefix + h.hexdigest())
    return pd.Series(digests, index=df.index, dtype=object)


# -------------------------------------------------------------------------------------------- staging
def _count(wh: Warehouse, con: Any, sql: str, params: dict | None = None) -> int:
    """Run a DML statement on the transaction's connection and return the number of rows it touched."""
    text, args = wh.bind(sql, params)
    if wh.backend == "duckdb":
        row = con.execute(text, args).fetchone()
        return int(row[0]) if row else 0
    with con.cursor() as cur:
        cur.execute(text, args)
        return int(cur.rowcount)


def create_staging(wh: Warehouse, con: Any, name: str, columns: list[Column], extra: str = "") -> None:
    """A temporary table for this transaction only, typed like the declared columns."""
    body = ", ".join(f"{vetted(c.name)} {c.ddl_type}" for c in columns) + (f", {extra}" if extra else "")
    drop = " ON COMMIT DROP" if wh.backend == "postgres" else ""
    wh.run(con, f"CREATE TEMP TABLE {vetted(name)} ({body}){drop}")


def load_staging(wh: Warehouse, con: Any, name: str, columns: list[Column], frame: pd.DataFrame) -> None:
    """Create the staging table and bulk-load the frame into it."""
    create_staging(wh, con, name, columns)
    wh.insert_frame(con, name, columns, frame)


# ------------------------------------------------------------------------------------------ the merge
def _spec_columns(spec: TableSpec, source: SourceTable) -> tuple[list[Column], list[Column]]:
    biz = business_columns(source)
    staged = [c for c in spec.columns if c.name in biz] + [spec.column("source_updated_at"), spec.column("row_hash")]
    return staged, list(spec.columns)


def stage_changes(wh: Warehouse, con: Any, source: SourceTable, spec: TableSpec, changes: pd.DataFrame,
                  loaded_at: datetime, key: RowHashKey | None = None) -> MergeCounts:
    """Load `changes` (source rows, declared columns) and stage the versions they imply in VERSIONS.

    Per key, against the dimension's current version: same row_hash -> unchanged; a current version whose
    hash was made under another row-hash key (or none: written before keying) and whose business columns
    all equal the change's -> unchanged too ('rekey': publish() rewrites its hash under the current key);
    older than or as old as the current version's valid_from -> stale (an earlier window re-run); otherwise
    the current version is closed at the change's updated_at and version max+1 starts there. A key without a
    current version gets a new version; a key that was deleted and came back starts no earlier than its
    deletion was recorded, so versions never overlap. `key`: the row-hash key (default: row_hash_key()).
    """
    hash_key = key or row_hash_key()
    key = vetted(source.key)
    dim = vetted(spec.qualified_name)
    biz = business_columns(source)
    staged_cols, all_cols = _spec_columns(spec, source)
    changes = changes.sort_values([source.key, "updated_at"]).drop_duplicates(source.key, keep="last")
    frame = changes[biz].assign(source_updated_at=changes["updated_at"],
                                row_hash=keyed_row_hashes(changes, biz, hash_key))
    load_staging(wh, con, CHANGES, staged_cols, frame)

    chg = ", ".join(f"c.{vetted(c.name)}" for c in staged_cols)
    same_values = " AND ".join(f"cur.{vetted(c)} IS NOT DISTINCT FROM c.{vetted(c)}" for c in biz)
    prefix = hash_prefix(hash_key)
    wh.run(con, f"""
        CREATE TEMP TABLE {PLAN}{' ON COMMIT DROP' if wh.backend == 'postgres' else ''} AS
        SELECT {chg}, cur.valid_from AS cur_valid_from, h.max_version, h.last_valid_to,
               CASE WHEN cur.{key} IS NULL THEN 'new'
                    WHEN cur.row_hash = c.row_hash THEN 'unchanged'
                    WHEN substr(cur.row_hash, 1, {len(prefix)}) <> '{prefix}' AND {same_values} THEN 'rekey'
                    WHEN c.source_updated_at <= cur.valid_from THEN 'stale'
                    ELSE 'changed' END AS status
        FROM {CHANGES} c
        LEFT JOIN {dim} cur ON cur.{key} = c.{key} AND cur.is_current
        LEFT JOIN (SELECT d.{key}, max(d.version) AS max_version, max(d.valid_to) AS last_valid_to
                   FROM {dim} d JOIN {CHANGES} k ON k.{key} = d.{key} GROUP BY d.{key}) h ON h.{key} = c.{key}
    """)  # noqa: S608 - vetted identifiers; the prefix is 8 hex digits and a colon (hash_prefix checks it)
    create_staging(wh, con, VERSIONS, all_cols, extra=f"{ACTION} TEXT NOT NULL")
    names = [vetted(c.name) for c in all_cols]
    col_list = ", ".join(names)
    closing = ", ".join("p.source_updated_at" if n == "valid_to" else "false" if n == "is_current"
                        else "CAST(:loaded_at AS TIMESTAMPTZ)" if n == "loaded_at" else f"d.{n}"
                        for n in names)
    wh.run(con, f"""
        INSERT INTO {VERSIONS} ({col_list}, {ACTION})
        SELECT {closing}, 'close' FROM {dim} d JOIN {PLAN} p ON p.{key} = d.{key}
        WHERE d.is_current AND p.status = 'changed'
    """, {"loaded_at": loaded_at})  # noqa: S608
    new_values = {
        "valid_from": "CASE WHEN p.last_valid_to > p.source_updated_at THEN p.last_valid_to "
                      "ELSE p.source_updated_at END",
        "valid_to": "CAST(NULL AS TIMESTAMPTZ)", "is_current": "true", "is_deleted": "false",
        "version": "COALESCE(p.max_version, 0) + 1", "loaded_at": "CAST(:loaded_at AS TIMESTAMPTZ)",
    }
    inserting = ", ".join(new_values.get(n, f"p.{n}") for n in names)
    wh.run(con, f"""
        INSERT INTO {VERSIONS} ({col_list}, {ACTION})
        SELECT {inserting}, 'insert' FROM {PLAN} p WHERE p.status IN ('new', 'changed')
    """, {"loaded_at": loaded_at})  # noqa: S608
    counts = dict(wh.run(con, f"SELECT status, count(*) FROM {PLAN} GROUP BY status") or [])  # noqa: S608
    new = int(counts.get("new", 0)) + int(counts.get("changed", 0))
    rekeyed = int(counts.get("rekey", 0))
    return MergeCounts(new_versions=new, closed_versions=int(counts.get("changed", 0)),
                       unchanged=int(counts.get("unchanged", 0)) + rekeyed, stale=int(counts.get("stale", 0)),
                       extracted=len(frame), rekeyed=rekeyed)


def would_be_key_aggregates(wh: Warehouse, con: Any, source: SourceTable, spec: TableSpec) -> tuple[int, int, int]:
    """(count, sum, mixed sum) of the keys that would be current after the staged changes, before deletes."""
    key = vetted(source.key)
    a, b = KEY_MIX
    row = wh.run(con, f"""
        SELECT count(*), COALESCE(sum(k), 0), COALESCE(sum((k % {a}) * (k % {b})), 0) FROM (
            SELECT {key} AS k FROM {vetted(spec.qualified_name)} WHERE is_current
            UNION SELECT {key} FROM {VERSIONS} WHERE {ACTION} = 'insert') w
    """)  # noqa: S608 - vetted identifiers and integer constants
    n, s, m = row[0]
    return int(n), int(s), int(m)


def stage_deletes(wh: Warehouse, con: Any, source: SourceTable, spec: TableSpec, source_keys: np.ndarray,
                  deleted_at: datetime, loaded_at: datetime) -> int:
    """Close, as deleted, every current version whose key is not among `source_keys` (nor re-created in this
    run). Their valid_to is when the deletion was observed (never before the version started)."""
    key = vetted(source.key)
    key_col = spec.column(source.key)
    load_staging(wh, con, SOURCE_KEYS, [key_col], pd.DataFrame({source.key: pd.array(source_keys, dtype="Int64")}))
    names = [vetted(c.name) for c in spec.columns]
    values = {
        "valid_to": "CASE WHEN d.valid_from > CAST(:deleted_at AS TIMESTAMPTZ) THEN d.valid_from "
                    "ELSE CAST(:deleted_at AS TIMESTAMPTZ) END",
        "is_current": "false", "is_deleted": "true", "loaded_at": "CAST(:loaded_at AS TIMESTAMPTZ)",
    }
    select = ", ".join(values.get(n, f"d.{n}") for n in names)
    wh.run(con, f"""
        INSERT INTO {VERSIONS} ({', '.join(names)}, {ACTION})
        SELECT {select}, 'delete' FROM {vetted(spec.qualified_name)} d
        WHERE d.is_current
          AND NOT EXISTS (SELECT 1 FROM {SOURCE_KEYS} s WHERE s.{key} = d.{key})
          AND NOT EXISTS (SELECT 1 FROM {VERSIONS} v WHERE v.{key} = d.{key})
    """, {"deleted_at": deleted_at, "loaded_at": loaded_at})  # noqa: S608
    return int(wh.run(con, f"SELECT count(*) FROM {VERSIONS} WHERE {ACTION} = 'delete'")[0][0])  # noqa: S608


def would_be_sql(spec: TableSpec, key: str) -> str:
    """A subquery: the dimension as it would be once published, for the keys this run touches (published
    versions of those keys, with the staged closed/deleted versions in place of the current ones, plus the
    staged new versions)."""
    k = vetted(key)
    dim = vetted(spec.qualified_name)
    cols = ", ".join(vetted(c) for c in spec.column_names)
    return f"""(
        SELECT {cols} FROM {dim} d
        WHERE d.{k} IN (SELECT {k} FROM {VERSIONS})
          AND NOT EXISTS (SELECT 1 FROM {VERSIONS} v WHERE v.{ACTION} <> 'insert' AND v.{k} = d.{k}
                          AND v.valid_from = d.valid_from)
        UNION ALL SELECT {cols} FROM {VERSIONS})"""  # noqa: S608 - vetted identifiers


def publish(wh: Warehouse, con: Any, source: SourceTable, spec: TableSpec) -> int:
    """Apply the staged versions to the dimension: close current versions in place, insert new ones, and
    rewrite under the current key the hash of unchanged current versions that were hashed under another.

    Only rows that are current can be updated, so a closed version is never modified; if fewer rows were
    closed than staged (someone else changed the dimension meanwhile) the transaction is refused. Re-keyed
    hashes are not new versions: they are not counted, and loaded_at stays.
    """
    key = vetted(source.key)
    dim = vetted(spec.qualified_name)
    staged_closes = int(wh.run(con, f"SELECT count(*) FROM {VERSIONS} WHERE {ACTION} <> 'insert'")[0][0])  # noqa: S608
    closed = _count(wh, con, f"""
        UPDATE {dim} AS d SET valid_to = v.valid_to, is_current = v.is_current, is_deleted = v.is_deleted,
               loaded_at = v.loaded_at
        FROM {VERSIONS} v
        WHERE v.{ACTION} <> 'insert' AND d.{key} = v.{key} AND d.valid_from = v.valid_from AND d.is_current
    """)  # noqa: S608
    if closed != staged_closes:
        raise WarehouseError(f"{spec.qualified_name}: {staged_closes} current versions to close but {closed} "
                             "found current; the dimension changed during the merge, nothing published")
    cols = ", ".join(vetted(c) for c in spec.column_names)
    inserted = _count(wh, con, f"INSERT INTO {dim} ({cols}) SELECT {cols} FROM {VERSIONS} "  # noqa: S608
                      f"WHERE {ACTION} = 'insert'")
    if int(wh.run(con, f"SELECT count(*) FROM {PLAN} WHERE status = 'rekey'")[0][0]):  # noqa: S608
        wh.run(con, f"""
            UPDATE {dim} AS d SET row_hash = p.row_hash FROM {PLAN} p
            WHERE p.status = 'rekey' AND d.{key} = p.{key} AND d.is_current
        """)  # noqa: S608 - vetted identifiers
    return closed + inserted


def lock_dimension(wh: Warehouse, con: Any, spec: TableSpec) -> None:
    """PostgreSQL: one merge of a dimension at a time (readers are not blocked). DuckDB has one writer."""
    if wh.backend == "postgres":
        wh.run(con, f"LOCK TABLE {vetted(spec.qualified_name)} IN SHARE ROW EXCLUSIVE MODE")
