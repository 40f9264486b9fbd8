"""The compaction benchmark runs end to end on a small day: the landing files are cut as the lander cuts them (one
per source per flush), duplicates are removed, every raw message is accounted for, the query answers per minute.
Counts are read back here from the files the run left (landing and compacted day); the goals are the README's and,
at this size, are not judged (`goals_apply`), but `goals_met` must follow from the figures."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quant_platform.bench.compaction import INSTRUMENTS, run_compaction_benchmark
from quant_platform.bench.ingest import MIX
from quant_platform_tests.market_helpers import landed_table

# The README's benchmark table (issue 15's goals for a 10M-tick day).
GOALS = {"compaction_vs_copy_ratio": 2.0, "vwap_1m_query_s": 0.25, "bytes_per_tick": 16.0, "cpu_s_per_m_ticks": 4.0}


def test_compaction_benchmark_small_day(tmp_path):
    work = tmp_path / "b"
    out = run_compaction_benchmark(ticks=30_000, workdir=str(work), keep=True, tick_rate=4_000)

    # The lander's defaults (50,000 rows or 0.5 s) at 4,000 ticks/s: flushes of 2,000 ticks, one file per source
    # of the six-source mix per flush: 15 flushes x 6 files, plus the 2% redelivered (one flush, 6 files).
    landing = sorted(p for p in (work / "lake" / "ticks" / "landing").rglob("*.parquet")
                     if "source=_schema" not in str(p))
    assert len(landing) == out["files"] == 15 * 6 + 6
    by_source = Counter(p.parent.name.removeprefix("source=") for p in landing)
    assert by_source == {source: 16 for source, *_ in MIX}
    rows = {p: pq.ParquetFile(p).metadata.num_rows for p in landing}
    shares = {source: w / sum(w for *_, w in MIX) for source, *_, w in MIX}
    for p, n in rows.items():  # each file holds its source's share of a 2,000-tick flush
        assert abs(n - 2_000 * shares[p.parent.name.removeprefix("source=")]) <= 1, (p, n)
    assert sum(rows.values()) == out["rows_landed"] == 32_000

    landed = landed_table(work / "lake")
    distinct = pc.count_distinct(landed["event_id"]).as_py()
    assert (out["rows_landed"], out["duplicates_landed"]) == (landed.num_rows, landed.num_rows - distinct)
    assert distinct == 30_000 and out["duplicates_landed"] == 2_000
    assert out["rows_out"] == distinct and out["duplicates_removed"] == landed.num_rows - distinct

    # Raw messages: each within one file, its tick count in that file's metadata, as the lander writes it.
    raw = {}
    for p in landing:
        held = json.loads(pq.read_schema(p).metadata[b"qp.raw_ticks"])
        seqs = Counter(pq.read_table(p, columns=["stream_seq"])["stream_seq"].to_pylist())
        assert {str(k): v for k, v in seqs.items()} == held
        raw.update(held)
    assert sum(raw.values()) == distinct and max(raw.values()) <= 200
    assert out["raw_messages_accounted"] == len(raw) == pc.count_distinct(landed["stream_seq"]).as_py()

    daily_path = next((work / "lake" / "ticks" / "daily").glob("date=*/ticks.parquet"))
    daily = pq.read_table(daily_path)
    assert daily.num_rows == pc.count_distinct(daily["event_id"]).as_py() == distinct
    assert out["checks_passed"] is True
    order = list(zip(daily["instrument_id"].to_pylist(), daily["ts"].cast(pa.int64()).to_pylist(), strict=True))
    assert order == sorted(order)  # sorted by (instrument_id, ts)
    assert round(daily_path.stat().st_size / distinct, 2) == out["figures"]["bytes_per_tick"]

    # One VWAP row per instrument and minute with a trade (the same minutes in the landing and compacted files).
    def trade_minutes(table) -> set:
        trades = table.filter(pc.equal(table["event"], "trade"))
        ns = trades["ts"].cast(pa.int64()).to_pylist()
        return {(i, t // 60_000_000_000) for i, t in zip(trades["instrument_id"].to_pylist(), ns, strict=True)}

    minutes = trade_minutes(daily)
    assert minutes == trade_minutes(landed) and {i for i, _ in minutes} <= set(INSTRUMENTS)
    assert out["vwap_rows"] == len(minutes)

    figures = out["figures"]
    assert out["goals"] == GOALS and out["goals_apply"] is False
    assert figures["compaction_vs_copy_ratio"] == round(out["compaction_with_checks_s"] / out["baseline"]["seconds"], 2)
    assert figures["cpu_s_per_m_ticks"] == round(out["compaction_cpu_s"] / 0.03, 2)
    assert out["baseline"]["cpu_s_per_m_ticks"] > 0
    assert out["goals_met"] == {k: figures[k] <= GOALS[k] for k in GOALS}
