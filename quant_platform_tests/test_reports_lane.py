"""The reporting lane end to end on a real DuckDB warehouse and lake: metric chunks -> reports/findings (one
family) -> reports/daily_report, then the REST API over real HTTP (the same findings as the table, read only,
OpenAPI), the report in headless Chromium with its plots, finding alerts once each, and the two benchmark
commands on tiny inputs.

Never start a browser of Playwright's own: Debian's /usr/bin/chromium, as in test_ui_browser.py.
"""

from __future__ import annotations

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


def test_reports_sensor_requests_changed_families_and_the_latest_report_day(lane):
    from quant_platform.reports import metrics as mt
    from quant_platform.reports.assets import evaluate_reports_sensor, macro_metrics
    from quant_platform.resources import WarehouseResource

    requests_, cursor = evaluate_reports_sensor(lane["instance"], {}, lane["lake"])
    keys = {r.run_key.rsplit(":", 1)[0] for r in requests_}
    assert "findings:market_daily" in keys and f"daily_report:{DAY}" in keys
    assert not any(k.startswith("macro_metrics") for k in keys)  # no mart or COT report has landed
    again, cursor = evaluate_reports_sensor(lane["instance"], cursor, lane["lake"])
    assert again == []  # nothing changed since
    mt.write_chunk(lane["lake"], "platform", DAY, pd.DataFrame([{
        "series_id": "feed:simulator|ingest_lag_p95_ms", "desk": "platform", "entity": "feed:simulator",
        "metric": "ingest_lag_p95_ms", "unit": "ms", "time": pd.Timestamp(DAY, tz="UTC"), "value": 3.0,
        "source_asset": "market/ticks_daily", "source_partition": DAY}]))
    res = dg.materialize([macro_metrics], partition_key="cot_net_positioning", instance=lane["instance"],
                         resources={"warehouse": WarehouseResource(url=lane["wh"].url)})
    assert res.success
    third, _ = evaluate_reports_sensor(lane["instance"], cursor, lane["lake"])
    assert {r.partition_key for r in third} == {"platform"}  # COT tables empty: no macro chunk, no change


def test_benchmark_commands_on_tiny_inputs():
    from quant_platform.bench.changepoints import run_changepoint_benchmark
    from quant_platform.bench.reports import run_reports_benchmark

    cp = run_changepoint_benchmark(names=["bank", "businv", "well_log"])
    assert set(cp["mean"]) == {"online_bayesian", "zero", "binseg"} and cp["series"] == 3
    assert cp["per_series"]["bank"]["zero"]["f1"] == 1.0  # its annotators marked no change
    rep = run_reports_benchmark(series=50, steps=40, instruments=6, metrics=2, days=30)
    assert rep["online_updates"]["updates"] == 50 * (40 - 10) and rep["daily_report"]["observations"] == 6 * 2 * 30
    assert rep["goals_apply"] is False and rep["goals_met"] is False
