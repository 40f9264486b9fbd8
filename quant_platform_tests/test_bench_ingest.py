"""`quant-platform bench ingest` runs the whole tick path on a small load of the realistic mix (real-capture frames
of six sources with rewritten ids and times) and prints JSON.

What a small run can hold on a shared 2-core machine whose speed varies ~2x: nothing lost, nothing doubled and
nothing made up (the event ids the adapters make of the published frames against those landed, in the unpaced and
the paced run; read back from the landed Parquet files here too), the goals as the README states them, receipt ->
queryable measured by DuckDB queries over the OLAP views that saw every marker frame, `met` agreeing with the
figures, and the speed-dependent figures compared with the raw-publish baseline of the same run, within bounds a
broken pipeline breaks (a goal missed by far), not the goals themselves: at 20k ticks the lander's 0.5 s flush
age is most of the end-to-end time, and a 1 s paced run's p99 is one scheduler stall.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

from quant_platform_tests.market_helpers import landed_table

TICKS, PACED_SECONDS = 20_000, 1
SOURCES = {"binance", "binance_futures", "polygon", "alpaca", "alpaca_crypto", "databento"}
# The goals the README's benchmark table states; the benchmark must not move them.
GOALS = {"ticks_per_s_end_to_end": 200_000, "p99_receipt_to_durable_ms_at_10k": 5.0,
         "p99_receipt_to_queryable_s": 2.0}
RATIO_GOALS = {"throughput_vs_raw_publish": 0.5, "p99_durable_ack_vs_disk_fsync_p99": 2.0}  # issue 15
# Bounds against the same run's baseline. The realistic mix costs the normalizer more than simulator frames did:
# healthy runs of this size on the loaded machine measured 0.07-0.13 of the raw publish's ticks/s and 6-9x its CPU
# per tick with every vendor on a vectorised path (0.03-0.06 and 7-12x with Massive, Alpaca and Databento frame by
# frame).
MIN_THROUGHPUT_VS_BASELINE = 0.01
MAX_CPU_PER_TICK_VS_BASELINE = 25.0
# Receipt -> durable ack with six connectors at 10k ticks/s (the deployment's batching): on this shared disk the
# median measured 5-500 ms in a 1 s run. A publisher that does not work never acks (a timeout) or takes seconds.
MAX_ACK_P50_MS = 2000.0


def _assert_every_event_landed_once(lake: Path, ticks: int) -> dict:
    """Independently of the benchmark's own id comparison: every landed row is a distinct event of the mix, as
    many as the benchmark says were published, from every source."""
    table = landed_table(lake)
    assert table is not None, f"nothing landed under {lake}"
    distinct = pc.count_distinct(table["event_id"]).as_py()
    assert distinct == ticks, f"{ticks - distinct} ticks lost"
    assert table.num_rows == ticks, f"{table.num_rows - ticks} duplicate rows landed"
    assert set(pc.unique(table["source"]).to_pylist()) == SOURCES
    files = [p for p in (lake / "ticks" / "landing").rglob("*.parquet") if "source=_schema" not in str(p)]
    return {"rows": table.num_rows, "files": len(files)}


def _assert_latency_block(block: dict) -> None:
    for name, pct in block.items():
        if name.endswith("_ms") or name.endswith("_s"):
            assert all(pct[k] is not None and math.isfinite(pct[k]) for k in ("p50", "p99")), (name, pct)
            assert 0 < pct["p50"] <= pct["p99"], (name, pct)


@pytest.mark.slow
def test_ingest_benchmark_small_run():
    proc = subprocess.run([sys.executable, "-m", "quant_platform.cli", "bench", "ingest", "--ticks", str(TICKS),
                           "--paced-seconds", str(PACED_SECONDS), "--keep"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    home = Path(out["qp_home"])
    try:
        print(json.dumps(out, indent=1))
        assert out["goals"] == GOALS and out["ratio_goals"] == RATIO_GOALS
        e2e, base, paced = out["end_to_end"], out["baseline"], out["paced_10k_ticks_per_s"]
        # The mix: every source's real-capture frames, about the ticks asked for.
        assert set(out["mix"]["frame_share"]) == SOURCES and abs(out["ticks"] - TICKS) <= 0.01 * TICKS

        # Nothing lost, nothing landed twice, nothing made up: by event ids, then from the files.
        assert (e2e["lost"], e2e["unexpected"], e2e["duplicates"]) == (0, 0, 0)
        landed = _assert_every_event_landed_once(home / "lake", out["ticks"])
        assert e2e["landed_files"] == landed["files"]
        assert (paced["lost"], paced["unexpected"], paced["duplicates"]) == (0, 0, 0)
        _assert_every_event_landed_once(home / "lake-paced", paced["ticks"])
        assert base["publisher"]["resends"] == 0 and base["publisher"]["frames_acked"] == out["frames"]

        # Throughput and CPU cost, against the raw publish of the same frames in the same run.
        assert 0 < base["ticks_per_s"] and e2e["ticks_per_s"] > 0
        ratio = e2e["ticks_per_s"] / base["ticks_per_s"]
        assert ratio >= MIN_THROUGHPUT_VS_BASELINE, f"end to end at {ratio:.3f}x the raw publish's ticks/s"
        assert out["end_to_end_vs_baseline"]["throughput"] == pytest.approx(ratio, rel=0.01, abs=0.002)
        assert set(e2e["cpu_seconds_per_million_ticks_by_process"]) == {"normalizer0", "lander", "nats_server",
                                                                          "publisher"}
        assert set(base["cpu_seconds_per_million_ticks_by_process"]) == {"nats_server", "publisher"}
        assert base["cpu_seconds_per_million_ticks"] > 0
        cpu_ratio = e2e["cpu_seconds_per_million_ticks"] / base["cpu_seconds_per_million_ticks"]
        assert cpu_ratio <= MAX_CPU_PER_TICK_VS_BASELINE, f"{cpu_ratio:.1f}x the raw publish's CPU per tick"
        assert e2e["landed_parquet_bytes_per_tick"] > 0 and e2e["jetstream_store_bytes_per_tick"] > 0

        # Paced at ~10k ticks/s: every figure measured; the ack not missed by far; receipt -> queryable measured by
        # DuckDB queries over the OLAP views that saw every marker, within twice the goal on a loaded machine.
        assert abs(paced["ticks"] - 10_000 * PACED_SECONDS) <= 0.02 * 10_000 * PACED_SECONDS and paced["batches"] >= 1
        assert paced["publisher"] == {"eager_inflight": 0, "max_delay_ms": 5.0}  # the deployment defaults
        for block in (paced, paced["ingest_path_alone"]):
            _assert_latency_block(block)
            # The disk's own fsync, measured in this run on the NATS store's disk, and the ack's p99 against it.
            fsync = block["disk_fsync_ms"]
            assert fsync["count"] >= 2000 and 0 < fsync["p50"] <= fsync["p99"] <= fsync["max"], fsync
            assert fsync["p99_before"] > 0 and fsync["p99_after"] > 0, fsync
            ack_p99 = block["receipt_to_durable_ack_ms"]["p99"]
            assert block["p99_durable_ack_vs_disk_fsync_p99"] == pytest.approx(ack_p99 / fsync["p99"], rel=0.01)
        # JetStream's own floor (one awaited publish at a time, nothing else running), against the same disk's fsync.
        floor = paced["jetstream_publish_ack_floor_ms"]
        assert floor["count"] == 2000 and 0 < floor["p50"] <= floor["p99"], floor
        assert floor["p99_vs_disk_fsync_p99"] == pytest.approx(
            floor["p99"] / paced["ingest_path_alone"]["disk_fsync_ms"]["p99"], rel=0.01)
        ack = paced["receipt_to_durable_ack_ms"]
        assert ack["p50"] <= MAX_ACK_P50_MS, f"median receipt -> durable ack {ack['p50']} ms"
        queryable = paced["receipt_to_queryable_s"]
        assert queryable["markers"] > 0 and queryable["markers_seen"] == queryable["markers"], queryable
        assert queryable["queries"] >= 2 and queryable["p99"] <= 2 * GOALS["p99_receipt_to_queryable_s"], queryable

        # `met` says what the figures say.
        assert out["met"] == {
            "ticks_per_s_end_to_end": e2e["ticks_per_s"] >= GOALS["ticks_per_s_end_to_end"],
            "p99_receipt_to_durable_ms_at_10k": ack["p99"] <= GOALS["p99_receipt_to_durable_ms_at_10k"],
            "p99_receipt_to_durable_ms_at_10k_ingest_path_alone":
                paced["ingest_path_alone"]["receipt_to_durable_ack_ms"]["p99"]
                <= GOALS["p99_receipt_to_durable_ms_at_10k"],
            "p99_receipt_to_queryable_s": queryable["p99"] <= GOALS["p99_receipt_to_queryable_s"],
            "throughput_vs_raw_publish": out["end_to_end_vs_baseline"]["throughput"]
            >= RATIO_GOALS["throughput_vs_raw_publish"],
            "p99_durable_ack_vs_disk_fsync_p99": paced["p99_durable_ack_vs_disk_fsync_p99"]
            <= RATIO_GOALS["p99_durable_ack_vs_disk_fsync_p99"],
            "p99_durable_ack_vs_disk_fsync_p99_ingest_path_alone":
                paced["ingest_path_alone"]["p99_durable_ack_vs_disk_fsync_p99"]
                <= RATIO_GOALS["p99_durable_ack_vs_disk_fsync_p99"],
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)
