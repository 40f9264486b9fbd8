"""`quant-platform up` end to end: the UI serves the macro catalog, a release lands with nobody clicking,
and SIGTERM stops every process it started, Dagster's cleanly, even when `up` was started the way a script's
background job under nohup is (SIGINT and SIGHUP ignored): a hangup leaves it running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from quant_platform_tests.conftest import REPO_ROOT, free_port, port_open

CATALOG_QUERY = """
{ assetNodes { assetKey { path } description groupName owners { ... on TeamAssetOwner { team } } } }
"""


def _like_a_background_job_under_nohup() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a non-interactive shell does for `cmd &`
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does


@pytest.mark.slow
# Collected as a test in test_daemons.py, with the suite's other Dagster daemons and webservers: one file, so
# `--dist loadfile` runs them one after another in one test process.
def _test_up_serves_the_catalog_and_loads_a_release_without_clicks(tmp_path):
    ui_port, sim_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QP_") and k != "DAGSTER_HOME"}
    # No first-start history (test_macro_history runs it): its runs would take the cores from this one.
    env.update(QP_HOME=str(tmp_path / "qp"), QP_RELEASE_SENSOR_INTERVAL="5", QP_FIRST_START_HISTORY_YEARS="0")
    # The market lane (its own processes, on the same two cores) is the headless demo's to test.
    # Its output goes to a file: a pipe read only at the end fills up (64 KiB of the processes' logs) and then
    # blocks every process that writes to it, run processes included (a run hung after its last step).
    log = tmp_path / "up.log"
    with log.open("w") as out_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "quant_platform.cli", "up", "--no-market", "--port", str(ui_port),
             "--simulator-port", str(sim_port)], env=env, cwd=str(tmp_path), stdout=out_file,
            stderr=subprocess.STDOUT, text=True, preexec_fn=_like_a_background_job_under_nohup,  # noqa: PLW1509
        )
    stop_s = None
    try:
        deadline = time.time() + 120
        nodes = None
        while time.time() < deadline:
            try:
                r = requests.post(f"http://127.0.0.1:{ui_port}/graphql", json={"query": CATALOG_QUERY}, timeout=5)
                if r.ok and r.json().get("data", {}).get("assetNodes"):
                    nodes = r.json()["data"]["assetNodes"]
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        assert nodes, "the Dagster UI did not serve the catalog"
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert {"macro/eia_wpsr", "macro/cftc_cot_disaggregated", "marts/us_crude_balance_weekly"} <= set(by_key)
        assert "Weekly Petroleum Status Report" in by_key["macro/eia_wpsr"]["description"]
        assert by_key["macro/eia_wpsr"]["groupName"] == "macro"

        import duckdb

        db = tmp_path / "qp" / "warehouse.duckdb"
        rows = 0
        while time.time() < deadline + 240 and rows == 0:
            time.sleep(2)
            try:
                con = duckdb.connect(str(db), read_only=True)
                rows = con.execute("SELECT count(*) FROM macro.eia_wpsr").fetchone()[0]
                con.close()
            except duckdb.Error:
                continue  # a run holds the write lock for a moment
        assert rows == 540, "the simulator's WPSR release did not land by itself"
        proc.send_signal(signal.SIGHUP)  # ignored, as nohup asked
        time.sleep(1)
        assert proc.poll() is None and requests.get(f"http://127.0.0.1:{ui_port}/server_info", timeout=5).ok
    finally:
        t_stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
            stop_s = time.monotonic() - t_stop
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out = log.read_text(errors="replace")
    # Every process it started is gone: the UI and the simulator ports are closed.
    for _ in range(30):
        if not port_open(ui_port) and not port_open(sim_port):
            break
        time.sleep(1)
    assert not port_open(ui_port) and not port_open(sim_port), out[-2000:]
    assert "Dagster UI:" in out
    # `dagster dev` shut its services down itself, well within the 30 s `up` gives its children before it sweeps
    # their process groups (inheriting SIGINT ignored, it used to ignore SIGTERM too: 36 s and no shutdown)
    assert "Dagster services shut down." in out and "did not terminate cleanly" not in out, out[-2000:]
    assert stop_s is not None and stop_s < 25, stop_s
    # the vendor simulator stopped after Dagster: no sensor or run found it gone
    refused = [ln for ln in out.splitlines() if "vendor request failed" in ln and "ConnectionError" in ln]
    assert refused == [], refused[:3]


def test_repo_root_is_where_sql_lives():
    assert (REPO_ROOT / "quant_platform" / "sql" / "001_schemas.sql").is_file()
