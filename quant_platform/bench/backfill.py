"""History backfill throughput: years of WPSR weeks (every table) and COT weeks loaded through the simulator, one
single-run backfill per report, against the same files parsed alone in the same run (the baseline).

Never count a week the vendor never published as loaded: partitions, partitions loaded and rows are reported apart.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

# Reports backfilled, in order: the WPSR tables (window ending at the newest week of the served workbook) and the
# COT reports (window ending at the newest released as-of week).
REPORTS = ("eia_wpsr_tables", "cftc_cot_legacy", "cftc_cot_disaggregated", "cftc_cot_legacy_combined")


def _window(report, end: date, weeks: int) -> list[str]:
    first = (end - timedelta(days=7 * (weeks - 1))).isoformat()
    return report.partitions_def.get_partition_keys_in_range(_range(first, end.isoformat()))


def _range(first: str, last: str):
    import dagster as dg

    return dg.PartitionKeyRange(first, last)


def _baseline(report, keys: list[str], files) -> tuple[float, int]:
    """The parse alone: the same files (already in memory) turned into the same rows."""
    started = time.perf_counter()
    frame = report.parse(files, keys)
    return time.perf_counter() - started, len(frame)


def _rate(n: float, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def run_backfill_benchmark(years: int = 10, weeks: int | None = None, workdir: str | None = None,
                           keep: bool = False) -> dict:
    """Backfill `years` of weeks (or `weeks`) of each report in REPORTS through the simulator into a DuckDB
    warehouse on a fresh Dagster instance; returns the figures as a dict (the CLI prints it as JSON)."""
    import dagster as dg

    from quant_platform.instance import ensure_embedded_instance
    from quant_platform.macro.formats.wpsr_xls import wpsr_xls_week_ending
    from quant_platform.platform.warehouse import Warehouse, sql_dir
    from quant_platform.vendors.simulator import VendorSimulator, resolve_data_dir

    home = Path(workdir or tempfile.mkdtemp(prefix="qp-bench-backfill-"))
    home.mkdir(parents=True, exist_ok=True)
    sim = VendorSimulator(preload=True).start()
    env = {"QP_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "QP_EIA_BASE_URL": sim.base_url,
           "QP_CFTC_BASE_URL": sim.base_url, "QP_WAREHOUSE_URL": f"duckdb:///{home / 'warehouse.duckdb'}",
           "QP_LAKE_URL": str(home / "lake")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        ensure_embedded_instance(home / "dagster")
        wh = Warehouse(env["QP_WAREHOUSE_URL"])
        wh.apply_sql_dir(sql_dir())
        wh.dispose()
        from quant_platform.definitions import defs
        from quant_platform.macro.definitions import MACRO_LANE

        psw01 = (resolve_data_dir() / "eia" / "wpsr" / "psw01_2026-02-11.xls").read_bytes()
        ends = {"eia_wpsr_tables": wpsr_xls_week_ending(psw01, "01")}
        n_weeks = weeks or years * 52
        out: dict = {"years": years if weeks is None else round(weeks / 52, 2), "weeks_per_report": n_weeks,
                     "warehouse": "duckdb", "reports": {}}
        total = {"partitions": 0, "partitions_loaded": 0, "rows": 0, "seconds": 0.0, "baseline_parse_s": 0.0,
                 "baseline_rows": 0}
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            for report_id in REPORTS:
                report = next(r for r in MACRO_LANE.reports if r.report_id == report_id)
                end = ends.get(report_id) or report.calendar.latest_released(datetime.now(UTC))
                keys = _window(report, end, n_weeks)
                job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={report.asset_key})
                started = time.perf_counter()
                result = job.execute_in_process(instance=instance, raise_on_error=False, tags={
                    "qp/triggered_by": "bench-backfill", "dagster/asset_partition_range_start": keys[0],
                    "dagster/asset_partition_range_end": keys[-1]})
                seconds = time.perf_counter() - started
                mats = result.asset_materializations_for_node("__".join(report.asset_key.path))
                meta = {k: getattr(v, "value", v) for k, v in (mats[-1].metadata if mats else {}).items()}
                rows = int(meta.get("dagster/row_count", 0))
                missing = int(meta.get("partitions_vendor_missing", 0))
                files = _files_of(meta, home)
                parse_s, parse_rows = _baseline(report, keys, files)
                entry = {
                    "success": result.success, "first_week": keys[0], "last_week": keys[-1],
                    "partitions": len(keys), "partitions_loaded": len(keys) - missing, "vendor_missing": missing,
                    "rows": rows, "seconds": round(seconds, 3),
                    "partitions_per_s": _rate(len(keys), seconds), "rows_per_s": _rate(rows, seconds),
                    "baseline_parse_s": round(parse_s, 3), "baseline_rows": parse_rows,
                    "baseline_rows_per_s": _rate(parse_rows, parse_s),
                    "files": [f"{f.dataset}/{f.partition}" for f in files],
                }
                for extra in ("wpsr_tables_not_served", "history_files_not_served"):
                    if extra in meta:
                        entry[extra] = meta[extra]
                out["reports"][report_id] = entry
                total["partitions"] += len(keys)
                total["partitions_loaded"] += entry["partitions_loaded"]
                total["rows"] += rows
                total["seconds"] += seconds
                total["baseline_parse_s"] += parse_s
                total["baseline_rows"] += parse_rows
        total.update(partitions_per_s=_rate(total["partitions"], total["seconds"]),
                     rows_per_s=_rate(total["rows"], total["seconds"]),
                     baseline_rows_per_s=_rate(total["baseline_rows"], total["baseline_parse_s"]),
                     seconds=round(total["seconds"], 3), baseline_parse_s=round(total["baseline_parse_s"], 3))
        out["total"] = total
        out["notes"] = ("Real files only: the simulator serves psw01.xls (the other WPSR tables have no real sample "
                        "and answer 404) and the CFTC years it has samples of (disaggregated 2021, legacy 2025, "
                        "legacy futures-and-options 2026); every other week is vendor_missing, counted in partitions "
                        "but not in partitions_loaded. Seconds: fetch, parse, checks, write and Dagster's events of "
                        "one single-run backfill; the baseline parses the same bytes in memory.")
        return out
    finally:
        sim.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not keep and workdir is None:
            shutil.rmtree(home, ignore_errors=True)


def _files_of(meta: dict, home: Path):
    """The raw files a run loaded, read back from the lake (for the parse-alone baseline)."""
    from quant_platform.macro.loading import archived_raw
    from quant_platform.platform.lake import Lake, parse_raw_path

    lake = Lake(str(home / "lake"))
    refs = [parse_raw_path(p.strip()) for p in str(meta.get("raw_files", "")).split(",") if p.strip()]
    return [archived_raw(lake, ref.vendor, ref.dataset, ref.partition) for ref in refs]
