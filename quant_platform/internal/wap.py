"""Write-audit-publish of one SCD2 dimension: extract a window of source changes, stage the versions they
imply, run every blocking check against what the dimension would be, and publish in the same transaction.

Never let a version that fails a blocking check become visible: a failed audit leaves the dimension exactly
as it was, and the next run (after the source is fixed) stages the same changes again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from quant_platform.errors import QuantPlatformError, WarehouseError
from quant_platform.internal import scd2
from quant_platform.internal.sources import SourceSnapshot, read_snapshot
from quant_platform.internal.tables import DIM_EMPLOYEE, SourceTable
from quant_platform.platform.tables import TableSpec
from quant_platform.platform.warehouse import Warehouse, vetted
from quant_platform.quality import rules

KEYS_UNIQUE_PER_VERSION = "scd2_keys_unique_per_version"
NO_OVERLAPPING_VALIDITY = "scd2_no_overlapping_validity"
REFERENTIAL_INTEGRITY = "referential_integrity"
ROW_COUNT_RECONCILED = "row_count_reconciled_with_source"

CHECK_DESCRIPTIONS = {
    rules.SCHEMA_AND_TYPES: rules.RULE_DESCRIPTIONS[rules.SCHEMA_AND_TYPES] + " (the new versions of the run)",
    rules.UNITS_AND_CODES: rules.RULE_DESCRIPTIONS[rules.UNITS_AND_CODES] + " (the new versions of the run)",
    rules.PLAUSIBLE_RANGES: rules.RULE_DESCRIPTIONS[rules.PLAUSIBLE_RANGES] + " (the new versions of the run)",
    KEYS_UNIQUE_PER_VERSION: "Each key has one row per valid_from and at most one current version (every key the "
                             "run touches, as the dimension would be once published).",
    NO_OVERLAPPING_VALIDITY: "The versions of a key never overlap in time and never end before they start "
                             "(every key the run touches, as the dimension would be once published).",
    REFERENTIAL_INTEGRITY: "Employee references (account manager, buyer, manager) of the new versions point to "
                           "known employees (core.dim_employee, or new employees of the same run).",
    ROW_COUNT_RECONCILED: "Current versions after the run equal the source's rows: at least every source row "
                          "changed before the window's end (or before the run, if earlier), at most all of them.",
}

# column -> the employee dimension it must point into
EMPLOYEE_REFERENCES = {
    "dim_client": ("account_manager_id",),
    "dim_supplier": ("buyer_employee_id",),
    "dim_employee": ("manager_id",),
}

SCAN_SKIPPED = "skipped (counts equal)"


class AuditFailed(QuantPlatformError):
    """A blocking check failed on the staged versions; nothing was published."""


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    metadata: dict = field(default_factory=dict)


@dataclass
class ExtractOutcome:
    published: bool
    checks: list[CheckOutcome]
    counts: scd2.MergeCounts
    deleted_keys: int
    written: int
    delete_scan: str
    source_rows: int
    seconds: float

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.passed]

    def failure_message(self, spec: TableSpec) -> str:
        """One line for the operator: which checks failed and why; the dimension is untouched."""
        parts = []
        for c in self.failed_checks:
            detail = "; ".join(f"{k}={v}" for k, v in c.metadata.items() if v not in ("none", 0, "0"))
            parts.append(f"{c.name} ({detail})")
        return (f"{spec.qualified_name}: nothing published, the dimension is unchanged; blocking checks failed: "
                + ", ".join(parts))


# ------------------------------------------------------------------------------------------- helpers
def _rows(wh: Warehouse, con: Any, sql: str, params: dict | None = None) -> list[tuple]:
    return wh.run(con, sql, params) or []


def _frame(wh: Warehouse, con: Any, sql: str, columns: list[str]) -> pd.DataFrame:
    if wh.backend == "duckdb":
        return con.execute(sql).df()
    return pd.DataFrame(_rows(wh, con, sql), columns=columns)


# -------------------------------------------------------------------------------------------- checks
def _value_rules(wh: Warehouse, con: Any, spec: TableSpec) -> list[CheckOutcome]:
    """Schema, codes and ranges of the new versions (closed ones are published versions whose SCD2 columns
    alone were recomputed in SQL)."""
    cols = ", ".join(vetted(c) for c in spec.column_names)
    new = spec.typed(_frame(wh, con, f"SELECT {cols} FROM {scd2.VERSIONS} WHERE {scd2.ACTION} = 'insert'",  # noqa: S608
                            spec.column_names))
    return [CheckOutcome(o.name, o.passed, {**o.metadata, "rows_checked": len(new)}) for o in (
        rules.check_schema(spec, new), rules.check_allowed_values(spec, new), rules.check_ranges(spec, new))]


def _shape(wh: Warehouse, con: Any, spec: TableSpec, key: str) -> list[CheckOutcome]:
    """Keys unique per version and no overlapping validity, in one pass of window functions over the keys
    the run touches (the other keys' versions are unchanged and passed when they were published)."""
    k = vetted(key)
    flagged = f"""
        WITH w AS {scd2.would_be_sql(spec, key)}, s AS (
            SELECT {k} AS k, valid_from, valid_to, is_current,
                   lead(valid_from) OVER (PARTITION BY {k} ORDER BY valid_from) AS nxt,
                   count(*) OVER (PARTITION BY {k}, valid_from) AS same_start,
                   sum(CASE WHEN is_current THEN 1 ELSE 0 END) OVER (PARTITION BY {k}) AS currents
            FROM w)
        SELECT k, same_start > 1 AS dup, currents > 1 AS multi,
               (nxt IS NOT NULL AND (valid_to IS NULL OR valid_to > nxt)) OR valid_to < valid_from AS overlap
        FROM s"""  # noqa: S608 - vetted identifiers
    versions, keys, dup, multi, overlapping = _rows(wh, con, f"""
        SELECT count(*), count(DISTINCT k), COALESCE(sum(CASE WHEN dup THEN 1 ELSE 0 END), 0),
               count(DISTINCT CASE WHEN multi THEN k END), count(DISTINCT CASE WHEN overlap THEN k END)
        FROM ({flagged}) f""")[0]  # noqa: S608
    sample = [int(r[0]) for r in _rows(wh, con, f"SELECT DISTINCT k FROM ({flagged}) f WHERE overlap "  # noqa: S608
                                               "ORDER BY k LIMIT 10")] if overlapping else []
    return [
        CheckOutcome(KEYS_UNIQUE_PER_VERSION, int(dup) == 0 and int(multi) == 0,
                     {"duplicate_versions": int(dup), "keys_with_several_current": int(multi),
                      "versions_checked": int(versions), "keys_checked": int(keys)}),
        CheckOutcome(NO_OVERLAPPING_VALIDITY, int(overlapping) == 0,
                     {"overlapping_keys": int(overlapping), "sample": str(sample) if sample else "none"}),
    ]


def _referential(wh: Warehouse, con: Any, spec: TableSpec) -> CheckOutcome:
    cols = EMPLOYEE_REFERENCES.get(spec.name, ())
    emp_key = vetted(DIM_EMPLOYEE.primary_key[0])
    missing: dict[str, list[int]] = {}
    dangling = 0
    for col in cols:
        c = vetted(col)
        also_staged = (f" AND NOT EXISTS (SELECT 1 FROM {scd2.VERSIONS} s WHERE s.{emp_key} = v.{c})"  # noqa: S608
                       if spec.name == DIM_EMPLOYEE.name else "")
        refs = f"""
            SELECT DISTINCT v.{c} AS r FROM {scd2.VERSIONS} v
            WHERE v.{scd2.ACTION} = 'insert' AND v.{c} IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM {vetted(DIM_EMPLOYEE.qualified_name)} e WHERE e.{emp_key} = v.{c})
              {also_staged}"""  # noqa: S608 - vetted identifiers
        n = int(_rows(wh, con, f"SELECT count(*) FROM ({refs}) x")[0][0])  # noqa: S608
        if n:
            dangling += n
            missing[col] = [int(r[0]) for r in _rows(wh, con, f"{refs} ORDER BY r LIMIT 10")]
    return CheckOutcome(REFERENTIAL_INTEGRITY, not missing, {
        "references": ", ".join(f"{c} -> {DIM_EMPLOYEE.qualified_name}.{DIM_EMPLOYEE.primary_key[0]}"
                                for c in cols) or "none",
        "dangling_ids": dangling, "dangling": str(missing) if missing else "none"})


def _reconciled(wh: Warehouse, con: Any, spec: TableSpec, rows: int, rows_before: int) -> CheckOutcome:
    """Current versions after the run against the source. A window of an earlier day (a catch-up) cannot know
    rows changed after it, hence a range: at least the rows changed before the window's end, at most all."""
    published = int(_rows(wh, con, f"SELECT count(*) FROM {vetted(spec.qualified_name)} WHERE is_current")[0][0])  # noqa: S608
    staged = dict(_rows(wh, con, f"SELECT {scd2.ACTION}, count(*) FROM {scd2.VERSIONS} GROUP BY 1"))  # noqa: S608
    after = (published + int(staged.get("insert", 0)) - int(staged.get("close", 0))
             - int(staged.get("delete", 0)))
    meta = {"current_versions": after, "source_rows": rows, "source_rows_before_window_end": rows_before}
    if after < rows_before:
        meta["hint"] = (f"{rows_before - after} source rows changed before this window are missing: a window "
                        "was not extracted; run a full reload")
    return CheckOutcome(ROW_COUNT_RECONCILED, rows_before <= after <= rows, meta)


def audit(wh: Warehouse, con: Any, source: SourceTable, spec: TableSpec, *, source_rows: int,
          source_rows_before: int) -> list[CheckOutcome]:
    """Every blocking check of the dimension, on the staged versions and the dimension as it would be."""
    return [*_value_rules(wh, con, spec), *_shape(wh, con, spec, source.key), _referential(wh, con, spec),
            _reconciled(wh, con, spec, source_rows, source_rows_before)]


# ------------------------------------------------------------------------------------------ the run
def extract_and_publish(wh: Warehouse, source: SourceTable, spec: TableSpec, *, since: datetime | None,
                        until: datetime | None, now: datetime, full_reload: bool = False) -> ExtractOutcome:
    """Extract [since, until) (everything when full_reload), merge, audit, publish if every check passes.

    Deletions: the keys of the source are scanned on a full reload and on a window that is over (the day's
    final extraction); otherwise only when the source's key count and key sums differ from those the
    dimension would hold (one aggregate query on each side instead of moving every key, 288 times a day).
    """
    if full_reload:
        since = until = None
    closed_window = until is None or until <= now
    scan = "full key scan (full reload)" if full_reload else (
        "full key scan (final extraction of the day)" if closed_window else None)
    before = now if until is None else min(until, now)
    snap: SourceSnapshot = read_snapshot(source, since, until, before=before, keys=scan is not None)
    started = time.perf_counter()
    checks: list[CheckOutcome] = []
    written = deleted = 0
    counts = scd2.MergeCounts(0, 0, 0, 0, len(snap.changes))
    rows, rows_before = snap.rows, snap.rows_before
    try:
        with wh.transaction() as con:
            scd2.lock_dimension(wh, con, spec)
            counts = scd2.stage_changes(wh, con, source, spec, snap.changes, loaded_at=now)
            keys = snap.keys
            if scan is None:
                if scd2.would_be_key_aggregates(wh, con, source, spec) == (snap.rows, snap.key_sum, snap.key_mix):
                    scan = SCAN_SKIPPED
                else:
                    # Something was deleted (or rows outside the window are new): scan the keys now, with the
                    # source's counts of that same read for the reconciliation.
                    scan = "full key scan (key count or key sums differ)"
                    rescan = read_snapshot(source, None, None, before=before, keys=True, changes=False)
                    keys, rows, rows_before = rescan.keys, rescan.rows, rescan.rows_before
            if keys is not None:
                deleted = scd2.stage_deletes(wh, con, source, spec, keys, deleted_at=now, loaded_at=now)
            checks = audit(wh, con, source, spec, source_rows=rows, source_rows_before=rows_before)
            if not all(c.passed for c in checks):
                raise AuditFailed(spec.qualified_name)  # rolls the transaction back: nothing published
            written = scd2.publish(wh, con, source, spec)
    except AuditFailed:
        written = 0
    except QuantPlatformError:
        raise
    except Exception as exc:  # a driver error: say which dimension and step, keep the cause chained
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WarehouseError(f"{spec.qualified_name}: merge failed, nothing published: {first}") from exc
    return ExtractOutcome(published=all(c.passed for c in checks) and bool(checks), checks=checks, counts=counts,
                          deleted_keys=deleted, written=written, delete_scan=scan, source_rows=rows,
                          seconds=time.perf_counter() - started)
