"""The README's run command in headless mode is the end-to-end smoke test: vendor simulator, operational
databases, embedded NATS with the ingest supervisor and market simulator, replays of the real captures, and
the Dagster daemon, all started together; it ends with a summary where every lane has data and every check
passed, and leaves no process behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quant_platform_tests.conftest import free_port


def _processes_with(marker: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if marker.encode() in (p / "environ").read_bytes():
                out.append(int(p.name))
        except OSError:
            continue
    return out


@pytest.mark.slow
def test_headless_demo_fills_every_lane_and_passes_every_check(tmp_path):
    home = tmp_path / "qp"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QP_") and k != "DAGSTER_HOME"}
    env.update(QP_HOME=str(home), QP_RELEASE_SENSOR_INTERVAL="5", QP_INGEST_SENSOR_INTERVAL="5",
               QP_TICK_LATENESS_MINUTES="0",
               # The market simulator at a tenth of its default rate: the lane still lands thousands of ticks,
               # and the two cores stay free for the Dagster runs the test waits for.
               QP_SIM_RATE="200")
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "quant_platform.cli", "up", "--headless", "--duration", "420",
         "--simulator-port", str(free_port())],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=540)
    elapsed = time.monotonic() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{"ok"')]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(lines[-1])
    assert proc.returncode == 0 and report["ok"], report
    assert all(all(lane.values()) for lane in report["lanes"].values())
    assert report["checks"]["failed"] == [] and report["checks"]["evaluated"] >= 20
    assert report["tables"]["macro.eia_wpsr"] > 0 and report["tables"]["core.dim_employee"] > 0
    assert report["tables"]["market.bars_1m"] > 0 and report["tables"]["market.ticks_history"] > 0
    assert report["ticks"]["landed_rows"] > 1000  # the market simulator ran
    assert "2021-10-12" in report["ticks"]["compacted_days"]  # the real Binance capture's trades, compacted
    assert "every lane has data" in proc.stdout
    time.sleep(1)
    assert _processes_with(f"QP_HOME={home}") == [], "a process of the demo outlived it"
    print(f"headless demo finished in {elapsed:.0f} s")
