"""The compaction benchmark runs end to end on a small day (figures are reported by the command, not
asserted here): duplicates are removed, every raw message is accounted for, the query answers per minute."""

from __future__ import annotations

from quant_platform.bench.compaction import INSTRUMENTS, run_compaction_benchmark


def test_compaction_benchmark_small_day(tmp_path):
    out = run_compaction_benchmark(ticks=30_000, workdir=str(tmp_path / "b"))
    assert out["rows_out"] == 30_000
    assert out["duplicates_removed"] == out["duplicates_landed"] == 600
    assert out["checks_passed"] is True
    assert out["raw_messages_accounted"] == 30_000 // 200
    trades_minutes = out["vwap_rows"]
    assert len(INSTRUMENTS) <= trades_minutes <= len(INSTRUMENTS) * 1440
    assert out["baseline"]["seconds"] > 0 and "goals" in out
