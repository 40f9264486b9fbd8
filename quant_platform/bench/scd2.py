"""`quant-platform bench scd2`: the set-based SCD2 merge of N changed rows (close N current versions, insert N
new ones) with its blocking audit, on a DuckDB file (or a PostgreSQL URL), against a baseline measured in the
same run: a plain INSERT of the same N new-version rows into an empty copy of the table (no compare, no close).

Never report a figure that was not measured here, on this run; never touch the platform's own tables (the
benchmark works in a schema of its own, dropped at the end).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

GOALS = {"merge_s_200k": 5.0}
SCHEMA = "qp_bench_scd2"


def _clients(n: int, updated_at: datetime, credit_factor: float, managers: int, mail: str) -> pd.DataFrame:
    """N synthetic CRM rows (declared columns and dtypes, as read_changes returns them)."""
    ids = np.arange(1, n + 1, dtype=np.int64)
    text = pd.Series(ids).astype(str)
    return pd.DataFrame({
        "client_id": pd.array(ids, dtype="Int64"),
        "name": ("Bench Client " + text).astype(object),
        "email": ("c" + text + f"@{mail}.example").astype(object),
        "phone": pd.Series(np.where(ids % 7 == 0, None, "+41 22 555 " + text.str.zfill(4)), dtype=object),
        "country": np.array(["CH", "GB", "US", "SG", "NO"], dtype=object)[ids % 5],
        "segment": np.array(["producer", "refiner", "utility", "hedge_fund", "bank", "trading_house"],
                            dtype=object)[ids % 6],
        "credit_limit_usd": np.where(ids % 11 == 0, np.nan, (ids % 97 + 1) * 1e5 * credit_factor),
        "account_manager_id": pd.array(ids % managers + 1 if managers else [None] * n, dtype="Int64"),
        "updated_at": pd.Series(pd.Timestamp(updated_at) + pd.to_timedelta(ids % 3600, unit="s")),
    })


def run_scd2_benchmark(rows: int = 200_000, url: str | None = None, workdir: str | None = None,
                       keep: bool = False) -> dict:
    from quant_platform.errors import ConfigError
    from quant_platform.internal import scd2
    from quant_platform.internal.tables import CRM_CLIENTS, DIM_CLIENT, DIM_EMPLOYEE
    from quant_platform.internal.wap import audit
    from quant_platform.platform.warehouse import Warehouse

    folder = Path(workdir or tempfile.mkdtemp(prefix="qp-bench-scd2-"))
    folder.mkdir(parents=True, exist_ok=True)
    wh = Warehouse(url or f"duckdb:///{folder / 'warehouse.duckdb'}")
    spec = dataclasses.replace(DIM_CLIENT, schema=SCHEMA, name="dim_client")
    plain = dataclasses.replace(DIM_CLIENT, schema=SCHEMA, name="dim_client_plain")
    t0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    out: dict = {"rows": rows, "backend": wh.backend, "goals": GOALS}
    try:
        wh.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        wh.execute(f"CREATE SCHEMA {SCHEMA}")
        wh.execute(spec.ddl())
        wh.execute(plain.ddl())
        managers = 0  # account managers: checked against core.dim_employee by the referential integrity check
        if url is None:  # our own file: give it employees, so the check joins real rows
            managers = 500
            wh.execute("CREATE SCHEMA IF NOT EXISTS core")
            wh.execute(DIM_EMPLOYEE.ddl())
            wh.execute("INSERT INTO core.dim_employee (employee_id, first_name, last_name, email, hire_date, "
                       "department, title, source_updated_at, valid_from, is_current, is_deleted, version, row_hash, "
                       "loaded_at) SELECT i, 'A', 'B', 'e' || i || '@firm.example', DATE '2020-01-01', 'trading', "
                       "'Trader', TIMESTAMPTZ '2020-01-01 00:00:00+00', TIMESTAMPTZ '2020-01-01 00:00:00+00', true, "
                       "false, 1, 'x', now() FROM range(1, :n) t(i)", {"n": managers + 1})
        elif not wh.table_exists(DIM_EMPLOYEE.qualified_name):
            raise ConfigError(f"{url}: run `quant-platform warehouse init` first (the audit reads core.dim_employee)")
        out["account_managers"] = managers
        first = _clients(rows, t0, 1.0, managers, "bench")
        changed = _clients(rows, t0 + timedelta(days=1), 2.0, managers, "moved")  # every row changes

        started = time.perf_counter()
        scd2.row_hashes(changed, scd2.business_columns(CRM_CLIENTS))
        out["row_hash_s"] = round(time.perf_counter() - started, 3)

        def merge(changes: pd.DataFrame, loaded_at: datetime) -> tuple[scd2.MergeCounts, float, float, int]:
            with wh.transaction() as con:
                a = time.perf_counter()
                counts = scd2.stage_changes(wh, con, CRM_CLIENTS, spec, changes, loaded_at=loaded_at)
                b = time.perf_counter()
                checks = audit(wh, con, CRM_CLIENTS, spec, source_rows=rows, source_rows_before=rows)
                c = time.perf_counter()
                failed = [x.name for x in checks if not x.passed]
                if failed:
                    raise RuntimeError(f"benchmark data failed its checks: {failed}")
                written = scd2.publish(wh, con, CRM_CLIENTS, spec)
                d = time.perf_counter()
            return counts, (b - a) + (d - c), c - b, written

        counts, merge_s, audit_s, written = merge(first, t0 + timedelta(hours=1))
        out["first_load"] = {"new_versions": counts.new_versions, "merge_s": round(merge_s, 3),
                             "audit_s": round(audit_s, 3)}
        counts, merge_s, audit_s, written = merge(changed, t0 + timedelta(days=1, hours=1))
        out["changed_rows"] = {"closed_versions": counts.closed_versions, "new_versions": counts.new_versions,
                               "rows_written": written, "merge_s": round(merge_s, 3), "audit_s": round(audit_s, 3),
                               "us_per_changed_row": round(merge_s / max(rows, 1) * 1e6, 2)}
        counts, merge_s, _, written = merge(changed, t0 + timedelta(days=1, hours=2))
        out["rerun_same_changes"] = {"unchanged": counts.unchanged, "rows_written": written,
                                     "merge_s": round(merge_s, 3)}

        # Baseline: the same N new-version rows, bulk-inserted as they are (same loader) into an empty table.
        new_versions = spec.typed(wh.query_df(f"SELECT * FROM {SCHEMA}.dim_client WHERE version = 2"))  # noqa: S608
        with wh.transaction() as con:
            started = time.perf_counter()
            wh.insert_frame(con, plain.qualified_name, list(plain.columns), new_versions)
            out["baseline_plain_insert_s"] = round(time.perf_counter() - started, 3)
        out["merge_vs_plain_insert"] = round(out["changed_rows"]["merge_s"] / max(out["baseline_plain_insert_s"],
                                                                                  1e-9), 2)
        scale = rows / 200_000
        out["goal_met"] = out["changed_rows"]["merge_s"] <= GOALS["merge_s_200k"] * max(scale, 1e-9)
    finally:
        try:
            wh.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        finally:
            wh.dispose()
            if not keep and not workdir:
                shutil.rmtree(folder, ignore_errors=True)
    return out
