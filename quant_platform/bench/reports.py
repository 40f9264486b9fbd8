"""`quant-platform bench reports`: online detector updates per second across 1,000 metric series on one core,
and a whole daily report for 1,000 instruments x 20 metrics (observations in the lake, detector runs per family,
findings in the warehouse, the report with its plots) built in a temporary folder, timed stage by stage.

Never report a figure not measured in this run, and never touch the platform's own warehouse or lake.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

GOALS = {"updates_per_s_1000_series": 100_000, "daily_report_1000x20_s": 60.0}


def measure_updates(series: int = 1000, steps: int = 400, seed: int = 1) -> dict:
    """Updates/s of one DetectorBank over `series` series, one observation each per step (after warm-up)."""
    from quant_platform.reports.detectors import DetectorBank

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(series, steps))
    x[: series // 10, steps // 2:] += 3.0  # some change points, so the finding path is exercised too
    bank = DetectorBank()
    rows = bank.rows([f"s{i}" for i in range(series)])
    warm = bank.params.warmup + 2
    for t in range(warm):
        bank.update(rows, x[:, t], np.full(series, t))
    found = 0
    t0 = time.perf_counter()
    for t in range(warm, steps):
        found += len(bank.update(rows, x[:, t], np.full(series, t)))
    elapsed = time.perf_counter() - t0
    n = series * (steps - warm)
    return {"series": series, "updates": n, "seconds": round(elapsed, 3), "updates_per_s": round(n / elapsed),
            "findings": found, "max_run_length": bank.params.max_run_length}


def build_large_report(instruments: int = 1000, metrics: int = 20, days: int = 120, workdir: str | None = None,
                       keep: bool = False, seed: int = 2) -> dict:
    """`instruments` x `metrics` daily series over `days` days -> findings -> the last day's report."""
    from quant_platform.platform.warehouse import Warehouse, sql_dir
    from quant_platform.reports import metrics as mt
    from quant_platform.reports.findings import run_family
    from quant_platform.reports.report import build_report

    root = Path(workdir or tempfile.mkdtemp(prefix="qp-bench-reports-"))
    root.mkdir(parents=True, exist_ok=True)
    lake = root / "lake"
    wh = Warehouse(f"duckdb:///{root / 'warehouse.duckdb'}")
    try:
        wh.apply_sql_dir(sql_dir())
        rng = np.random.default_rng(seed)
        desks = ["crude", "gas", "crypto", "equities"]
        ent = np.array([f"BENCH:{i:04d}" for i in range(instruments)], dtype=object)
        desk = np.array([desks[i % 4] for i in range(instruments)], dtype=object)
        t0 = time.perf_counter()
        n_series = instruments * metrics
        shift_at = rng.integers(days // 3, days, size=n_series)
        shift = np.where(rng.random(n_series) < 0.05, rng.choice([-4.0, 4.0], size=n_series), 0.0)
        base = rng.uniform(10, 1000, size=n_series)
        noise = base * 0.02
        sid = np.array([f"{e}|m{m:02d}" for e in ent for m in range(metrics)], dtype=object)
        ents = np.repeat(ent, metrics)
        dks = np.repeat(desk, metrics)
        mets = np.array([f"m{m:02d}" for _ in range(instruments) for m in range(metrics)], dtype=object)
        day0 = pd.Timestamp("2025-01-01", tz="UTC")
        for d in range(days):
            v = base + noise * (rng.normal(size=n_series) + np.where(d >= shift_at, shift, 0.0))
            day = (day0 + pd.Timedelta(days=d)).date().isoformat()
            frame = pd.DataFrame({"series_id": sid, "desk": dks, "entity": ents, "metric": mets, "unit": "units",
                                  "time": day0 + pd.Timedelta(days=d), "value": v, "source_asset": "bench",
                                  "source_partition": day})
            mt.write_chunk(lake, "market_daily", day, frame)
        t_obs = time.perf_counter() - t0
        t1 = time.perf_counter()
        run = run_family(lake, "market_daily", wh)
        t_detect = time.perf_counter() - t1
        t2 = time.perf_counter()
        last = (day0 + pd.Timedelta(days=days - 1)).date().isoformat()
        built = build_report(lake, wh, last)
        t_report = time.perf_counter() - t2
        return {"instruments": instruments, "metrics": metrics, "series": n_series, "days": days,
                "observations": run.observations, "findings": len(run.findings),
                "report_findings_shown": built.findings_shown, "report_findings_in_window": built.findings_in_window,
                "report_html_bytes": built.html_path.stat().st_size,
                "seconds": {"write_observations": round(t_obs, 3), "detectors": round(t_detect, 3),
                            "report": round(t_report, 3), "detectors_and_report": round(t_detect + t_report, 3)},
                "workdir": str(root) if keep else None}
    finally:
        wh.dispose()
        if not keep and workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def run_reports_benchmark(series: int = 1000, steps: int = 400, instruments: int = 1000, metrics: int = 20,
                          days: int = 120, workdir: str | None = None, keep: bool = False) -> dict:
    updates = measure_updates(series, steps)
    report = build_large_report(instruments, metrics, days, workdir, keep)
    big = instruments >= 1000 and metrics >= 20 and series >= 1000
    return {
        "benchmark": "reports",
        "cpu": os.cpu_count(), "single_core": True,
        "online_updates": updates,
        "daily_report": report,
        "goals": {"updates_per_s_1000_series": f">= {GOALS['updates_per_s_1000_series']:,}",
                  "daily_report_1000x20_s": f"<= {GOALS['daily_report_1000x20_s']:.0f} (detectors and report)"},
        "goals_apply": big,
        "goals_met": big and updates["updates_per_s"] >= GOALS["updates_per_s_1000_series"]
        and report["seconds"]["detectors_and_report"] <= GOALS["daily_report_1000x20_s"],
    }
