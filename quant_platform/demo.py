"""The market lane of `quant-platform up`, and the headless summary: what `up --headless` waits for and prints
(every lane's assets, the reporting lane up to date with what it reads, today's report).

Never start a process here that `up` does not stop: every child is returned to the caller, which owns it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from quant_platform.errors import QuantPlatformError

CAPTURES = {  # source -> capture file under <sample data>/ticks
    "binance": "binance_spot_combined_stream_2021-10-12.txt",
    "polygon": "polygon_stocks_trades.jsonl",
    "alpaca": "alpaca_v2_sip_session.txt",
}

# The assets every lane must have materialized before the headless demo reports success. A reporting entry
# names a partition ("today": the UTC day of the check) and counts only once it is up to date: materialized,
# and nothing it depends on pending in the lane (reports.assets.pending_work).
EXPECTED = {
    "macro": ("macro/eia_wpsr", "macro/eia_series", "macro/cftc_cot_disaggregated", "marts/us_crude_balance_weekly"),
    "internal": ("core/dim_employee", "core/dim_client", "core/dim_supplier"),
    "market": ("market/ticks_daily", "market/bars_1m", "market/daily_stats", "market/ticks_history"),
    "reports": ("reports/macro_metrics[wpsr_week_on_week]", "reports/macro_metrics[cot_net_positioning]",
                "reports/findings[macro_wpsr]", "reports/findings[macro_cot]", "reports/daily_report[today]"),
}
# What else must be settled before a reporting entry counts ("*": anything pending in the lane).
REPORTS_DEPEND_ON = {
    "reports/findings[macro_wpsr]": ("reports/macro_metrics[wpsr_week_on_week]",),
    "reports/findings[macro_cot]": ("reports/macro_metrics[cot_net_positioning]",),
    "reports/daily_report[today]": ("*",),
}


def start_ingest(env: dict, home: Path, metrics_port: int = 0) -> subprocess.Popen:
    """`ingest run --simulator` (embedded NATS, normalizers, lander, market simulator); waits for NATS."""
    from quant_platform.market.observe import nats_url_file

    url_file = nats_url_file(home)
    url_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "quant_platform.cli", "ingest", "run", "--simulator", "--max-workers", "2",
           "--metrics-port", str(metrics_port)]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    if env.get("QP_NATS_URL"):  # an existing server: nothing embedded to wait for
        return proc
    deadline = time.monotonic() + 60
    while not url_file.exists():
        if proc.poll() is not None:
            raise QuantPlatformError(f"the ingest supervisor exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise QuantPlatformError("the embedded NATS server did not start within 60 s")
        time.sleep(0.2)
    return proc


def start_replays(env: dict) -> list[subprocess.Popen]:
    """Replay each real capture once (as fast as JetStream acks), in the background."""
    from quant_platform.platform.sample_data import sample_file

    procs = []
    for source, name in CAPTURES.items():
        path = sample_file(f"ticks/{name}")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "quant_platform.cli", "ingest", "replay", "--source", source, str(path)],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL))
    return procs


# ------------------------------------------------------------------------------------------- summary
def _latest_checks(instance) -> dict[tuple[str, str, str], tuple[bool, str]]:
    """{(asset, check, partition): (passed, severity)} of the latest evaluation of each."""
    from dagster import DagsterEventType, EventRecordsFilter

    out: dict[tuple[str, str, str], tuple[bool, str]] = {}
    records = instance.event_log_storage.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION), limit=100_000, ascending=True)
    runs: dict[str, str] = {}
    for rec in records:
        ev = rec.event_log_entry.dagster_event.event_specific_data
        run_id = rec.event_log_entry.run_id
        if run_id and run_id not in runs:
            run = instance.get_run_by_id(run_id)
            runs[run_id] = (run.tags.get("dagster/partition", "") if run else "")
        key = (ev.asset_key.to_user_string(), ev.check_name, runs.get(run_id, ""))
        out[key] = (bool(ev.passed), getattr(ev.severity, "value", str(ev.severity)))
    return out


def _reports_progress(instance) -> dict[str, bool]:
    """Per reporting entry of EXPECTED: materialized (that partition) and up to date."""
    from dagster import AssetKey, AssetRecordsFilter

    from quant_platform.reports.assets import lake_root, open_work, today_utc

    today = today_utc()
    pending = {p.asset for p in open_work(instance, lake_root(), today)}
    out = {}
    for entry in EXPECTED["reports"]:
        key, part = entry.rstrip("]").split("[")
        part = today if part == "today" else part
        resolved = f"{key}[{part}]"
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(key.split("/")), asset_partitions=[part]), limit=1).records
        deps = REPORTS_DEPEND_ON.get(entry, ())
        settled = resolved not in pending and not ("*" in deps and pending) and not (set(deps) & pending)
        out[entry] = bool(records) and settled
    return out


def progress(instance) -> dict:
    """What the instance knows: materialized assets (the reporting lane's: up to date), runs by status, check
    outcomes."""
    from dagster import AssetKey, DagsterRunStatus, RunsFilter

    materialized = {}
    for lane, keys in EXPECTED.items():
        if lane == "reports":
            materialized.update(_reports_progress(instance))
            continue
        for k in keys:
            rec = instance.get_latest_materialization_event(AssetKey(k.split("/")))
            materialized[k] = rec is not None
    statuses = {}
    for st in DagsterRunStatus:
        n = instance.get_runs_count(RunsFilter(statuses=[st]))
        if n:
            statuses[st.value] = n
    checks = _latest_checks(instance)
    failed_error = sorted(f"{a}:{c}{'[' + p + ']' if p else ''}" for (a, c, p), (ok, sev) in checks.items()
                          if not ok and sev == "ERROR")
    failed_warn = sorted(f"{a}:{c}{'[' + p + ']' if p else ''}" for (a, c, p), (ok, sev) in checks.items()
                         if not ok and sev != "ERROR")
    return {"materialized": materialized, "runs": statuses,
            "checks": {"evaluated": len(checks), "passed": sum(1 for ok, _ in checks.values() if ok),
                       "failed": failed_error, "warnings": failed_warn}}


def done(p: dict) -> bool:
    in_flight = sum(p["runs"].get(s, 0) for s in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED"))
    return all(p["materialized"].values()) and in_flight == 0


def tick_counts(lake_url: str, home: Path) -> tuple[int, dict[str, int]]:
    """(rows landed, rows per compacted day) of the lake: the folders of a local lake, or the Iceberg tables'
    metadata of an object-store lake (no data file is read)."""
    import pyarrow.parquet as pq

    from quant_platform.market.compaction import compacted_days, daily_file, landing_days
    from quant_platform.market.tick_store import TickStore, is_object_store

    if is_object_store(lake_url):
        store = TickStore(lake_url)
        return sum(f.rows for f in store.landing_files()), store.daily_rows()
    root = Path(lake_url)
    landed = sum(pq.ParquetFile(f).metadata.num_rows for files in landing_days(root).values() for f in files)
    return landed, {d: pq.ParquetFile(daily_file(root, d)).metadata.num_rows for d in compacted_days(root)}


def summary(instance, warehouse_url: str, lake_url: str, home: Path) -> dict:
    """The headless demo's report: per lane, tables and row counts; checks; ticks landed and compacted."""
    from quant_platform.market.tick_store import compute_root
    from quant_platform.platform.warehouse import Warehouse, vetted

    p = progress(instance)
    wh = Warehouse(warehouse_url)
    try:
        tables = wh.query_df(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN "
            "('macro', 'core', 'market', 'marts', 'governance', 'reports') ORDER BY 1, 2")
        counts = {}
        for schema, name in tables.itertuples(index=False):
            counts[f"{schema}.{name}"] = int(wh.scalar(f"SELECT count(*) FROM {vetted(schema)}.{vetted(name)}"))  # noqa: S608
        report = _todays_report(wh, compute_root(lake_url, home))
    finally:
        wh.dispose()
    landed, compacted = tick_counts(lake_url, home)
    lanes = {
        lane: {k: p["materialized"][k] for k in keys} for lane, keys in EXPECTED.items()
    }
    ok = (all(all(v.values()) for v in lanes.values()) and not p["checks"]["failed"]
          and not p["runs"].get("FAILURE") and landed > 0 and bool(compacted))
    return {"ok": ok, "lanes": lanes, "tables": counts, "checks": p["checks"], "runs": p["runs"],
            "ticks": {"landed_rows": landed, "compacted_days": compacted}, "report": report}


def _todays_report(wh, lake_root: Path) -> dict | None:
    """Today's daily report as the summary shows it: its files and its findings (from its JSON body)."""
    from datetime import date

    from quant_platform.reports.assets import today_utc

    today = today_utc()
    row = wh.query_df("SELECT * FROM reports.daily_reports WHERE report_date = :d", {"d": date.fromisoformat(today)})
    if row.empty:
        return None
    r = row.iloc[0]
    body = json.loads((lake_root / r["json_path"]).read_text(encoding="utf-8"))
    return {"date": today, "html": str(lake_root / r["html_path"]), "markdown": str(lake_root / r["markdown_path"]),
            "findings_shown": body["findings_shown"], "findings_recent": body["findings_recent_shown"],
            "findings_earlier": body["findings_earlier_shown"],
            "families": {f: v["shown"] for f, v in body["families"].items() if v["shown"]},
            "findings": [{k: f[k] for k in ("finding_id", "section", "family", "kind", "series_id", "occurred_at",
                                            "detected_at", "first_detected_at", "probability")}
                         for f in body["findings"]]}


def print_summary(s: dict) -> None:
    print("\n=== quant-platform headless summary ===")
    for lane, assets in s["lanes"].items():
        print(f"{lane:9} " + ", ".join(f"{k} {'ok' if v else 'MISSING'}" for k, v in assets.items()))
    print("tables:   " + ", ".join(f"{t} {n}" for t, n in s["tables"].items() if n))
    c = s["checks"]
    print(f"checks:   {c['passed']}/{c['evaluated']} passed; failed: {', '.join(c['failed']) or 'none'}; "
          f"warnings: {', '.join(c['warnings']) or 'none'}")
    print("runs:     " + ", ".join(f"{k} {v}" for k, v in s["runs"].items()))
    t = s["ticks"]
    print(f"ticks:    {t['landed_rows']} landed in the lake; compacted days: "
          + (", ".join(f"{d} ({n} ticks)" for d, n in t["compacted_days"].items()) or "none"))
    r = s.get("report")
    if r:
        fams = ", ".join(f"{f} {n}" for f, n in r["families"].items()) or "none"
        print(f"report:   {r['date']}: {r['findings_shown']} findings ({r['findings_recent']} recent, "
              f"{r['findings_earlier']} earlier; by family: {fams}); {r['html']}")
        for f in r["findings"][:6]:
            happened = f["occurred_at"][:16].replace("T00:00", "").replace("T", " ")
            print(f"          {f['section']:7} {f['kind']:12} {f['series_id']} happened {happened}, "
                  f"confirmed {f['detected_at'][:10]}, p={f['probability']:.3f}")
    else:
        print("report:   none for today")
    print("result:   " + ("every lane has data and every blocking check passed" if s["ok"] else "INCOMPLETE"))
    print(json.dumps(s, default=str), flush=True)
