"""The compaction benchmark runs end to end on a small day: duplicates are removed, every raw message is
accounted for, the query answers per minute. Counts are read back here from the files the run left (landing
and compacted day); the timing goals are the README's and, at this size, are not judged (`goals_apply`)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quant_platform.bench.compaction import INSTRUMENTS, run_compaction_benchmark
from quant_platform_tests.market_helpers import landed_table

GOALS = {"compaction_with_checks_s_10m": 30.0, "vwap_1m_query_s_10m": 1.0}  # the README's benchmark table


def test_compaction_benchmark_small_day(tmp_path):
    work = tmp_path / "b"
    out = run_compaction_benchmark(ticks=30_000, workdir=str(work), keep=True)

    landed = landed_table(work / "lake")
    distinct = pc.count_distinct(landed["event_id"]).as_py()
    assert (out["rows_landed"], out["duplicates_landed"]) == (landed.num_rows, landed.num_rows - distinct)
    assert distinct == 30_000 and out["duplicates_landed"] == 600
    assert out["rows_out"] == distinct and out["duplicates_removed"] == landed.num_rows - distinct
    daily = pq.read_table(next((work / "lake" / "ticks" / "daily").glob("date=*/ticks.parquet")))
    assert daily.num_rows == pc.count_distinct(daily["event_id"]).as_py() == distinct
    assert out["checks_passed"] is True
    assert out["raw_messages_accounted"] == pc.count_distinct(landed["stream_seq"]).as_py() == 30_000 // 200

    # One VWAP row per instrument and minute with a trade (the same minutes in the landing and compacted files).
    def trade_minutes(table) -> set:
        trades = table.filter(pc.equal(table["event"], "trade"))
        ns = trades["ts"].cast(pa.int64()).to_pylist()
        return {(i, t // 60_000_000_000) for i, t in zip(trades["instrument_id"].to_pylist(), ns, strict=True)}

    minutes = trade_minutes(daily)
    assert minutes == trade_minutes(landed) and {i for i, _ in minutes} <= set(INSTRUMENTS)
    assert out["vwap_rows"] == len(minutes)

    assert out["goals"] == GOALS and out["goals_apply"] is False
    assert out["goals_met"] == {
        "compaction_with_checks_s_10m": out["compaction_with_checks_s"] <= GOALS["compaction_with_checks_s_10m"],
        "vwap_1m_query_s_10m": out["vwap_1m_query_s"] <= GOALS["vwap_1m_query_s_10m"]}
