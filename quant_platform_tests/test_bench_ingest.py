"""`quant-platform bench ingest` runs the whole tick path on a small load and prints JSON (figures are reported
by the command, not asserted here): nothing lost, every phase measured, the baseline from the same run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_ingest_benchmark_small_run():
    proc = subprocess.run([sys.executable, "-m", "quant_platform.cli", "bench", "ingest", "--ticks", "20000",
                           "--paced-seconds", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    try:
        e2e = out["end_to_end"]
        assert e2e["lost"] == 0 and e2e["ticks_per_s"] > 0 and e2e["landed_files"] >= 1
        assert set(e2e["cpu_seconds_per_million_ticks_by_process"]) == {"normalizer0", "lander", "nats_server",
                                                                          "publisher"}
        assert e2e["landed_parquet_bytes_per_tick"] > 0 and e2e["jetstream_store_bytes_per_tick"] > 0
        paced = out["paced_10k_ticks_per_s"]
        assert paced["ticks"] == 10_000 and paced["batches"] >= 1
        assert paced["publisher"] == {"eager_inflight": 1, "max_delay_ms": 1.0}
        for block in (paced, paced["ingest_path_alone"]):
            ack = block["receipt_to_durable_ack_ms"]
            assert 0 < ack["p50"] <= ack["p99"]
        assert 0 < paced["receipt_to_queryable_s"]["p50"] <= paced["receipt_to_queryable_s"]["p99"]
        assert out["baseline"]["ticks_per_s"] > 0 and out["baseline"]["publisher"]["batches_sent"] == 40
        assert set(out["met"]) >= set(out["goals"])
    finally:
        shutil.rmtree(out["qp_home"], ignore_errors=True)
