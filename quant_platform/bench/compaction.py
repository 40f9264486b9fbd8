"""`quant-platform bench compaction`: compaction of a synthetic N-tick UTC day (dedup, sort, Parquet, checks)
and the analyst's one-minute VWAP query over the result, with a baseline measured in the same run (a plain
DuckDB copy of the same landing files: no dedup, no sort, no checks).

Never report a figure that was not measured here, on this run; goals are printed beside the figures.
"""

from __future__ import annotations

import calendar
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

GOALS = {"compaction_with_checks_s_10m": 30.0, "vwap_1m_query_s_10m": 1.0}

INSTRUMENTS = ("CRYPTO:BTC-USDT", "CRYPTO:ETH-USDT", "CRYPTO:NKN-USDT", "CRYPTO:BLZ-ETH", "CRYPTO:LRC-BTC",
               "FUT:CL", "FUT:BZ", "FUT:NG", "FUT:HO", "FUT:RB", "EQ:XOM", "EQ:CVX", "EQ:AAPL", "EQ:SPY", "EQ:QQQ")
TICKS_PER_RAW = 200


def generate_day(lake_root: Path, day: str, ticks: int, *, files: int = 200, dup_fraction: float = 0.02) -> dict:
    """Landing files of one synthetic day shaped like the lander's: `files` micro-batches in sequence order,
    TICKS_PER_RAW ticks per raw message, trades and quotes over the whole day for 15 instruments, plus
    `dup_fraction` of the rows landed a second time in extra files (a redelivery), with the per-raw-message
    tick counts in each file's metadata, as the lander writes them."""
    import duckdb
    import pyarrow as pa

    from quant_platform.market.contracts import TICK_SCHEMA
    from quant_platform.market.lake_landing import RAW_TICKS_KEY, landing_path, write_parquet_atomic

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    start_ns = calendar.timegm(time.strptime(day, "%Y-%m-%d")) * 10**9
    step = (86_400 * 10**9) // ticks
    insts = "[" + ", ".join(f"'{i}'" for i in INSTRUMENTS) + "]"
    per_file = -(-ticks // files)
    written = 0
    t0 = time.monotonic()

    def chunk(a: int, b: int) -> pa.Table:
        sql = f"""
            SELECT ? + i * ? AS ts, ? + i * ? + 1500000 AS received_at, 'simulator' AS source,
                   {insts}[1 + (i % {len(INSTRUMENTS)})] AS instrument_id,
                   'SYM' || (i % {len(INSTRUMENTS)}) AS venue_symbol, NULL::VARCHAR AS exchange,
                   CASE WHEN i % 3 = 0 THEN 'trade' ELSE 'quote' END AS event,
                   CASE WHEN i % 3 = 0 THEN 100 + (hash(i) % 1000) / 100.0 END AS price,
                   CASE WHEN i % 3 = 0 THEN 1 + hash(i + 1) % 50 END::DOUBLE AS size,
                   CASE WHEN i % 3 <> 0 THEN 100 + (hash(i) % 1000) / 100.0 END AS bid,
                   CASE WHEN i % 3 <> 0 THEN 1 + hash(i + 2) % 20 END::DOUBLE AS bid_size,
                   CASE WHEN i % 3 <> 0 THEN 100.01 + (hash(i) % 1000) / 100.0 END AS ask,
                   CASE WHEN i % 3 <> 0 THEN 1 + hash(i + 3) % 20 END::DOUBLE AS ask_size,
                   i AS vendor_seq, md5(i::VARCHAR)[:24] AS event_id, 1 + i // {TICKS_PER_RAW} AS stream_seq,
                   NULL::VARCHAR AS conditions, NULL::VARCHAR AS size_unit, NULL::BIGINT AS ref_seq
            FROM range(?, ?) t(i)"""  # noqa: S608 - constants only
        with warnings.catch_warnings():  # the extra copy DuckDB warns about is generation time, not measured
            warnings.simplefilter("ignore")
            table = con.execute(sql, [start_ns, step, start_ns, step, a, b]).to_arrow_reader().read_all()
        for name in ("ts", "received_at"):
            idx = table.schema.get_field_index(name)
            table = table.set_column(idx, name, table[name].cast(pa.int64()).cast(pa.timestamp("ns", tz="UTC")))
        return table.cast(TICK_SCHEMA)

    def raw_meta(a: int, b: int) -> dict:
        first, last = 1 + a // TICKS_PER_RAW, 1 + (b - 1) // TICKS_PER_RAW
        return {str(s): min(TICKS_PER_RAW, ticks - (s - 1) * TICKS_PER_RAW) for s in range(first, last + 1)}

    import json

    for n in range(files):
        a, b = n * per_file, min(ticks, (n + 1) * per_file)
        if a >= b:
            break
        table = chunk(a, b).replace_schema_metadata({RAW_TICKS_KEY: json.dumps(raw_meta(a, b)).encode()})
        write_parquet_atomic(table, landing_path(lake_root, day, "simulator", 10 * n + 1, 10 * n + 9))
        written += table.num_rows
    dups = int(ticks * dup_fraction)
    if dups:
        a = ticks // 2
        table = chunk(a, a + dups).replace_schema_metadata({RAW_TICKS_KEY: json.dumps(raw_meta(a, a + dups)).encode()})
        write_parquet_atomic(table, landing_path(lake_root, day, "simulator", 10 * files + 1, 10 * files + 9))
        written += table.num_rows
    con.close()
    return {"rows_landed": written, "duplicates_landed": dups, "files": files + (1 if dups else 0),
            "generate_s": round(time.monotonic() - t0, 2)}


def run_compaction_benchmark(ticks: int = 10_000_000, workdir: str | None = None, keep: bool = False) -> dict:
    from quant_platform.market import compaction as cp
    from quant_platform.market import daily_checks as dc
    from quant_platform.market.instruments import InstrumentMaster
    from quant_platform.market.lake_landing import sql_path

    base = Path(workdir or tempfile.mkdtemp(prefix="qp-bench-compaction-"))
    lake = base / "lake"
    day = "2026-01-15"
    try:
        gen = generate_day(lake, day, ticks)
        files = cp.landing_files(lake, day)

        # Baseline: the same landing files copied into one Parquet file, nothing else.
        con = cp.duck()
        t0 = time.monotonic()
        con.execute(f"COPY (SELECT * FROM read_parquet({cp.parquet_list(files)})) "  # noqa: S608
                    f"TO '{sql_path(base / 'baseline.parquet')}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
        baseline_s = time.monotonic() - t0
        con.close()

        t0 = time.monotonic()
        staged = cp.stage_day(lake, day)
        t_stage = time.monotonic() - t0
        acc = cp.account_sequences(lake, day, staged.seqs_path, set(), stream_first_seq=1, drained_raw_seq=None)
        t_acc = time.monotonic() - t0 - t_stage
        master = InstrumentMaster.load()
        classes = {i.instrument_id: i.asset_class for i in master.instruments()}
        con = cp.duck()
        rules = dc.evaluate_rules(con, staged.ticks_path, day, classes)
        con.close()
        t_rules = time.monotonic() - t0 - t_stage - t_acc
        cp.publish_staged(lake, staged, {"published": True})
        total = time.monotonic() - t0

        daily = cp.daily_file(lake, day)
        con = cp.duck()
        vwap_sql = ("SELECT instrument_id, date_trunc('minute', CAST(ts AS TIMESTAMPTZ)) AS minute, "
                    "sum(price * size) / sum(size) AS vwap FROM read_parquet(?) WHERE event = 'trade' "
                    "GROUP BY ALL")
        times = []
        rows = 0
        for _ in range(3):
            t = time.monotonic()
            rows = len(con.execute(vwap_sql, [str(daily)]).fetchall())
            times.append(time.monotonic() - t)
        con.close()
        return {
            "benchmark": "compaction",
            "cpu_count": os.cpu_count(),
            "ticks": ticks,
            **gen,
            "rows_out": staged.rows_out,
            "duplicates_removed": staged.duplicates_removed,
            "compaction_s": round(t_stage, 2),
            "completeness_s": round(t_acc, 2),
            "rules_s": round(t_rules, 2),
            "compaction_with_checks_s": round(total, 2),
            "checks_passed": bool(acc.passed and all(r.passed for r in rules if r.name in dc.BLOCKING)),
            "raw_messages_accounted": acc.in_ticks,
            "daily_file_mb": round(daily.stat().st_size / 1e6, 1),
            "bytes_per_tick": round(daily.stat().st_size / max(1, staged.rows_out), 1),
            "vwap_1m_query_s": round(min(times), 3),
            "vwap_1m_query_s_all": [round(x, 3) for x in times],
            "vwap_rows": rows,
            "baseline": {"what": "plain DuckDB copy of the same landing files (no dedup, sort or checks)",
                         "seconds": round(baseline_s, 2)},
            "goals": GOALS,
            "goals_apply": ticks >= 10_000_000,
            "goals_met": {"compaction_with_checks_s_10m": total <= GOALS["compaction_with_checks_s_10m"],
                          "vwap_1m_query_s_10m": min(times) <= GOALS["vwap_1m_query_s_10m"]},
        }
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
