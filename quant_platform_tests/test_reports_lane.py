"""The reporting lane end to end on a real DuckDB warehouse and lake: metric chunks -> reports/findings (one
family) -> reports/daily_report, then the REST API over real HTTP (the same findings as the table, read only,
OpenAPI), the report in headless Chromium with its plots, finding alerts once each, and the two benchmark
commands on tiny inputs.

Never start a browser of Playwright's own: Debian's /usr/bin/chromium, as in test_ui_browser.py.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import requests

from quant_platform_tests.conftest import REPO_ROOT, free_port, port_open

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--disable-component-update", "--disable-sync"]
DAY = "2024-03-01"


def _observations(days: int = 70) -> dict[str, pd.DataFrame]:
    """Daily series of four desks: a level shift (crude), an outlier (crypto), a trend (equities), flat (gas)."""
    rng = np.random.default_rng(21)
    day0 = pd.Timestamp(DAY, tz="UTC") - pd.Timedelta(days=days - 1)
    spec = {"FUT:CL|volume": ("crude", "FUT:CL", "volume"), "CRYPTO:BTC-USDT|spread_bps": ("crypto", "CRYPTO:BTC-USDT",
            "spread_bps"), "EQ:AAPL|trades": ("equities", "EQ:AAPL", "trades"), "FUT:NG|volume": ("gas", "FUT:NG",
            "volume")}
    out = {}
    for d in range(days):
        t = day0 + pd.Timedelta(days=d)
        rows = []
        for sid, (desk, ent, metric) in spec.items():
            v = 100 + rng.normal()
            if ent == "FUT:CL" and d >= days - 7:
                v += 8
            if ent == "CRYPTO:BTC-USDT" and d == days - 5:
                v += 15
            if ent == "EQ:AAPL" and d >= days - 35:
                v += 0.4 * (d - (days - 35))
            rows.append({"series_id": sid, "desk": desk, "entity": ent, "metric": metric, "unit": "units", "time": t,
                         "value": v, "source_asset": "market/daily_stats", "source_partition": t.date().isoformat()})
        out[t.date().isoformat()] = pd.DataFrame(rows)
    return out


@pytest.fixture
def lane(qp_home, monkeypatch):
    from quant_platform.platform.warehouse import Warehouse
    from quant_platform.reports import metrics as mt
    from quant_platform.reports.assets import daily_report, findings
    from quant_platform.resources import WarehouseResource

    url = f"duckdb:///{qp_home / 'warehouse.duckdb'}"
    monkeypatch.setenv("QP_WAREHOUSE_URL", url)
    lake = qp_home / "lake"
    wh = Warehouse(url)
    wh.apply_sql_dir(REPO_ROOT / "quant_platform" / "sql")
    for day, frame in _observations().items():
        mt.write_chunk(lake, "market_daily", day, frame)
    resources = {"warehouse": WarehouseResource(url=url)}
    with dg.DagsterInstance.from_config(str(qp_home / "dagster")) as instance:
        res = dg.materialize([findings], partition_key="market_daily", resources=resources, instance=instance)
        assert res.success
        res = dg.materialize([daily_report], partition_key=DAY, resources=resources, instance=instance)
        assert res.success
        yield {"wh": wh, "lake": lake, "instance": instance}
    wh.dispose()


@pytest.fixture
def api(lane):
    import uvicorn

    from quant_platform.reports.api import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(lane["wh"], lane["lake"]), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not port_open(port):
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_findings_and_report_from_metric_chunks(lane):
    wh = lane["wh"]
    f = wh.query_df("SELECT * FROM reports.findings ORDER BY occurred_at")
    kinds = {(r.entity, r.kind) for r in f.itertuples()}
    assert ("FUT:CL", "change_point") in kinds and ("CRYPTO:BTC-USDT", "outlier") in kinds
    assert ("EQ:AAPL", "trend") in kinds or ("EQ:AAPL", "change_point") in kinds
    assert "FUT:NG" not in set(f["entity"])  # the flat series raises nothing
    cp = f[(f["entity"] == "FUT:CL") & (f["kind"] == "change_point")].iloc[0]
    assert pd.Timestamp(cp["occurred_at"]).date().isoformat() in {"2024-02-23", "2024-02-24", "2024-02-25"}
    assert cp["probability"] >= 0.9 and 6 < cp["magnitude"] < 10 and cp["source_asset"] == "market/daily_stats"
    assert cp["source_partition"] == pd.Timestamp(cp["occurred_at"]).date().isoformat()
    row = wh.query_df("SELECT * FROM reports.daily_reports").iloc[0]
    in_window = f[pd.to_datetime(f["detected_at"], utc=True) >= pd.Timestamp(DAY, tz="UTC") - pd.Timedelta(days=6)]
    assert str(row["report_date"])[:10] == DAY and row["findings_in_window"] == len(in_window)
    assert row["findings_shown"] == in_window["series_id"].nunique() >= 2
    html = (lane["lake"] / row["html_path"]).read_text()
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="plot"') == row["findings_shown"]
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    md = (lane["lake"] / row["markdown_path"]).read_text()
    assert "## Crude" in md and "Change point" in md


def _weekly_with_outlier(last: str, weeks: int = 260, outlier_weeks_before_last: int = 150) -> pd.DataFrame:
    """A WPSR-like weekly series (Fridays) ending `last`, one wild week `outlier_weeks_before_last` before it."""
    rng = np.random.default_rng(5)
    times = pd.date_range(end=pd.Timestamp(last, tz="UTC"), periods=weeks, freq="7D")
    values = rng.normal(0, 0.2, size=weeks)
    values[weeks - 1 - outlier_weeks_before_last] += 6.0
    return pd.DataFrame({"series_id": "US:commercial_crude_stocks|wow_vs_5y_range", "desk": "crude",
                         "entity": "US:commercial_crude_stocks", "metric": "wow_vs_5y_range", "unit": "5y ranges",
                         "time": times, "value": values, "source_asset": "marts/us_crude_balance_weekly",
                         "source_partition": [t.date().isoformat() for t in times]})


def test_report_shows_what_is_recent_per_family_and_the_latest_earlier_findings(lane):
    from quant_platform.reports import metrics as mt
    from quant_platform.reports.findings import run_family
    from quant_platform.reports.report import build_report

    wh, lake = lane["wh"], lane["lake"]
    weekly = _weekly_with_outlier("2023-12-29")
    for year, chunk in mt.year_chunks(weekly).items():
        mt.write_chunk(lake, "macro_wpsr", year, chunk)
    run_family(lake, "macro_wpsr", wh)
    wk = wh.query_df("SELECT * FROM reports.findings WHERE family = 'macro_wpsr'")
    assert len(wk) >= 1 and pd.Timestamp(wk["detected_at"].max()) < pd.Timestamp("2023-12-01", tz="UTC")
    first = dict(zip(wk["finding_id"], wk["recorded_at"], strict=True))
    run_family(lake, "macro_wpsr", wh, replay=True)  # found again: first detected stays the first recording
    again = wh.query_df("SELECT finding_id, recorded_at FROM reports.findings WHERE family = 'macro_wpsr'")
    assert dict(zip(again["finding_id"], again["recorded_at"], strict=True)) == first

    built = build_report(lake, wh, DAY)
    body = json.loads(built.json_path.read_text())
    fams = body["families"]
    # the weekly family's window: its last 4 weekly observations up to its latest (2023-12-29), not DAY's week
    assert fams["macro_wpsr"]["latest_observation"].startswith("2023-12-29")
    assert fams["macro_wpsr"]["window_start"].startswith("2023-12-02") and fams["macro_wpsr"]["recent"] == 0
    assert fams["market_daily"]["window_start"].startswith("2024-02-24") and fams["market_daily"]["recent"] > 0
    earlier = [f for f in body["findings"] if f["section"] == "earlier"]
    recent = [f for f in body["findings"] if f["section"] == "recent"]
    # nothing recent for the weekly family: its latest findings are shown, as earlier ones, with their dates
    latest = wk.sort_values("detected_at", ascending=False).head(3)
    assert [f["finding_id"] for f in earlier] == list(latest["finding_id"])
    assert all(f["family"] == "market_daily" for f in recent) and recent
    for f in earlier:
        row = wk.set_index("finding_id").loc[f["finding_id"]]
        assert pd.Timestamp(f["occurred_at"]) == pd.Timestamp(row["occurred_at"])
        assert pd.Timestamp(f["first_detected_at"]) == pd.Timestamp(row["recorded_at"])
        assert f["age_days"] > 60 and len(f["series"]) > 20
        # the plot is around the finding, not the last 90 weeks before the report date
        times = [pd.Timestamp(p["time"]) for p in f["series"]]
        assert times[0] <= pd.Timestamp(f["occurred_at"]) <= times[-1]
    page = built.html_path.read_text()
    assert "Earlier findings (not new)" in page and "first detected by the platform" in page
    assert page.count("<svg") == body["findings_shown"] == len(recent) + len(earlier)
    assert "4 weeks to 2023-12-29" in page and "days before 2024-03-01" in page

    # a report of an earlier day never shows a finding confirmed after it
    early = json.loads(build_report(lake, wh, "2024-02-20").json_path.read_text())
    assert all(pd.Timestamp(f["detected_at"]) < pd.Timestamp("2024-02-21", tz="UTC") for f in early["findings"])
    assert all(pd.Timestamp(p["time"]) < pd.Timestamp("2024-02-21", tz="UTC")
               for f in early["findings"] for p in f["series"])


def test_api_serves_the_same_findings_over_http_read_only(lane, api):
    wh = lane["wh"]
    health = requests.get(f"{api}/health", timeout=10).json()
    assert health["status"] == "ok" and health["reports"] == 1 and health["findings"] > 0
    listed = requests.get(f"{api}/reports", timeout=10).json()
    assert [r["report_date"] for r in listed] == [DAY] and listed[0]["links"]["html"] == f"/reports/{DAY}.html"
    body = requests.get(f"{api}/reports/{DAY}", timeout=10).json()
    page = requests.get(f"{api}/reports/{DAY}.html", timeout=10)
    assert page.headers["content-type"].startswith("text/html") and body["findings_shown"] >= 2
    everything = requests.get(f"{api}/findings", params={"limit": 1000}, timeout=10).json()
    table = wh.query_df("SELECT finding_id, probability FROM reports.findings")
    assert sorted(f["finding_id"] for f in everything) == sorted(table["finding_id"])
    cps = requests.get(f"{api}/findings", params={"kind": "change_point", "desk": "crude", "min_probability": 0.9},
                       timeout=10).json()
    want = wh.query_df("SELECT finding_id FROM reports.findings WHERE kind = 'change_point' AND desk = 'crude' "
                       "AND probability >= 0.9")
    assert sorted(f["finding_id"] for f in cps) == sorted(want["finding_id"]) and cps
    assert requests.get(f"{api}/findings", params={"kind": "nonsense"}, timeout=10).status_code == 422
    assert requests.get(f"{api}/reports/1999-01-01", timeout=10).status_code == 404
    assert requests.post(f"{api}/findings", json={}, timeout=10).status_code == 405
    spec = requests.get(f"{api}/openapi.json", timeout=10).json()
    assert {"/health", "/reports", "/reports/{day}", "/findings"} <= set(spec["paths"])
    assert all(set(ops) == {"get"} for ops in spec["paths"].values())


def test_report_renders_in_headless_chromium_with_its_plots(lane, api, tmp_path):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    shown = requests.get(f"{api}/reports/{DAY}", timeout=10).json()["findings_shown"]
    shot = tmp_path / "report.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"{api}/reports/{DAY}.html", wait_until="load")
            plots = page.locator("svg.plot")
            assert plots.count() == shown
            for i in range(shown):
                box = plots.nth(i).bounding_box()
                assert box and box["width"] > 300 and box["height"] > 100
                points = plots.nth(i).locator("polyline.series").get_attribute("points")
                assert len(points.split()) >= 20
            assert page.locator("svg.plot polygon.band").count() == shown
            assert page.locator("svg.plot line.changepoint").count() >= 1
            assert page.locator("svg.plot circle.outlier").count() >= 1
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_finding_alerts_are_queued_once_each(lane, monkeypatch):
    from quant_platform.ops.alerts import AlertCursor
    from quant_platform.reports.alerting import apply_findings, finding_payload

    wh = lane["wh"]
    want = wh.query_df("SELECT finding_id FROM reports.findings WHERE probability >= 0.99")
    cursor = AlertCursor(caught_up=True)
    assert apply_findings(cursor, lane["instance"]) == len(want) > 0
    assert sorted(a["finding_id"] for a in cursor.pending) == sorted(want["finding_id"])
    assert apply_findings(cursor, lane["instance"]) == 0  # nothing new: nothing again
    again = AlertCursor.parse(cursor.dump(), None)
    assert again.posted_findings == cursor.posted_findings and again.findings_after == cursor.findings_after
    msg = finding_payload(cursor.pending[0], "http://127.0.0.1:3000")
    assert cursor.pending[0]["series_id"] in msg["text"] and msg["blocks"][0]["type"] == "header"


def _platform_chunk(day: str, value: float) -> pd.DataFrame:
    return pd.DataFrame([{
        "series_id": "feed:simulator|ingest_lag_p95_ms", "desk": "platform", "entity": "feed:simulator",
        "metric": "ingest_lag_p95_ms", "unit": "ms", "time": pd.Timestamp(day, tz="UTC"), "value": value,
        "source_asset": "market/ticks_daily", "source_partition": day}])


def _add_run(instance, job_name: str, status, tags: dict) -> None:
    from dagster._core.storage.dagster_run import DagsterRun

    instance.add_run(DagsterRun(job_name=job_name, status=status, tags=tags))


def test_reports_sensor_runs_metrics_then_findings_then_the_report_without_a_cursor(lane):
    from quant_platform.reports import metrics as mt
    from quant_platform.reports.assets import (
        daily_report,
        evaluate_reports_sensor,
        findings,
        macro_metrics,
        today_utc,
    )
    from quant_platform.resources import WarehouseResource

    inst, lake = lane["instance"], lane["lake"]
    resources = {"warehouse": WarehouseResource(url=lane["wh"].url)}

    def keys(today: str = DAY) -> tuple[list[str], list[str]]:
        requested, waiting = evaluate_reports_sensor(inst, lake, today)
        return [r.run_key.rsplit(":", 1)[0] for r in requested], [p.asset for p in waiting]

    # Every request names a partition its job has: today's report included (the report's days end today).
    requested, _ = evaluate_reports_sensor(inst, lake)
    assert [r.partition_key for r in requested] == [today_utc()]
    assert "dagster/priority" not in requested[0].tags  # a priority would starve the loads the lane waits for
    asset_of = {"reports_macro_metrics_job": macro_metrics, "reports_findings_job": findings,
                "reports_daily_report_job": daily_report}
    for r in requested:
        assert asset_of[r.job_name].partitions_def.has_partition_key(r.partition_key)

    # The fixture ran findings[market_daily] and the report of DAY: each recorded what it read, nothing is due.
    assert keys() == ([], [])
    assert keys("2024-03-02") == (["daily_report:2024-03-02"], [])  # a new day gets its report
    res = dg.materialize([macro_metrics], partition_key="cot_net_positioning", instance=inst, resources=resources)
    assert res.success and keys() == ([], [])  # no mart or COT report has landed: nothing for the macro lane

    mt.write_chunk(lake, "platform", DAY, _platform_chunk(DAY, 3.0))
    # The tick lane (which writes the platform chunks) is still running: findings wait for it, so does the report.
    _add_run(inst, "ticks_daily_job", dg.DagsterRunStatus.STARTED, {"dagster/partition": DAY})
    assert keys() == ([], ["reports/findings[platform]"])
    for run in inst.get_runs(dg.RunsFilter(job_name="ticks_daily_job")):
        inst.report_run_canceled(run)
    assert keys() == (["findings:platform"], [])

    # findings ran: the report of the day is due, and only once nothing upstream of it is pending.
    assert dg.materialize([findings], partition_key="platform", instance=inst, resources=resources).success
    assert keys() == ([f"daily_report:{DAY}"], [])
    mt.write_chunk(lake, "market_daily", DAY, mt.read_observations(mt.list_chunks(lake, "market_daily")[-1:])
                   .assign(value=lambda f: f["value"] + 1.0))
    assert keys() == (["findings:market_daily"], [f"reports/daily_report[{DAY}]"])
    # A findings step whose run failed is not asked again and does not hold the report back.
    requested, _ = evaluate_reports_sensor(inst, lake, DAY)
    _add_run(inst, "reports_findings_job", dg.DagsterRunStatus.FAILURE,
             {"dagster/run_key": requested[0].run_key, "dagster/partition": "market_daily"})
    assert keys() == ([f"daily_report:{DAY}"], [])


def test_benchmark_commands_on_tiny_inputs():
    from quant_platform.bench.changepoints import run_changepoint_benchmark
    from quant_platform.bench.reports import run_reports_benchmark

    cp = run_changepoint_benchmark(names=["bank", "businv", "well_log"])
    assert set(cp["mean"]) == {"online_bayesian", "zero", "binseg"} and cp["series"] == 3
    assert cp["per_series"]["bank"]["zero"]["f1"] == 1.0  # its annotators marked no change
    rep = run_reports_benchmark(series=50, steps=40, instruments=6, metrics=2, days=30)
    assert rep["online_updates"]["updates"] == 50 * (40 - 10) and rep["daily_report"]["observations"] == 6 * 2 * 30
    assert rep["goals_apply"] is False and rep["goals_met"] is False
