"""`quant-platform bench compaction`: compaction of a synthetic N-tick UTC day (dedup, sort, Parquet, checks)
and the analyst's one-minute VWAP query over the result, with a baseline measured in the same run (a plain
DuckDB copy of the same landing files: no dedup, no sort, no checks).

Never report a figure that was not measured here, on this run; goals are printed beside the figures.
"""

from __future__ import annotations

import calendar
import gc
import os
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

# The figures' goals (issue 15, for a 10M-tick day); the README's benchmark table states the same.
GOALS = {"compaction_vs_copy_ratio": 2.0, "vwap_1m_query_s": 0.25, "bytes_per_tick": 16.0,
         "cpu_s_per_m_ticks": 4.0}
GOALS_AT_TICKS = 10_000_000

INSTRUMENTS = ("CRYPTO:BTC-USDT", "CRYPTO:ETH-USDT", "CRYPTO:NKN-USDT", "CRYPTO:BLZ-ETH", "CRYPTO:LRC-BTC",
               "FUT:CL", "FUT:BZ", "FUT:NG", "FUT:HO", "FUT:RB", "EQ:XOM", "EQ:CVX", "EQ:AAPL", "EQ:SPY", "EQ:QQQ")
TICKS_PER_RAW = 200  # at most this many ticks per raw message (a raw message's ticks land in one file)
# The simulator worker's default rate (QP_SIM_RATE in market/worker.py): ticks/s while the day's ticks flow.
DEFAULT_TICK_RATE = 2_000.0


# The analyst's 1-minute VWAP per instrument over the compacted day, in two forms with the same result (UTC
# minutes): DuckDB's time_bucket, and date_trunc on a TIMESTAMPTZ, as the OLAP views write it.
VWAP_SQL = {
    "time_bucket": "SELECT instrument_id, time_bucket(INTERVAL '1 minute', ts) AS minute, "
                   "sum(price * size) / sum(size) AS vwap FROM read_parquet(?) WHERE event = 'trade' GROUP BY ALL",
    "date_trunc_timestamptz": "SELECT instrument_id, date_trunc('minute', CAST(ts AS TIMESTAMPTZ)) AS minute, "
                              "sum(price * size) / sum(size) AS vwap FROM read_parquet(?) WHERE event = 'trade' "
                              "GROUP BY ALL",
}


def lander_defaults() -> dict:
    """The lander's flush thresholds, read from run_lander's signature (the worker runs it with these)."""
    import inspect

    from quant_platform.market.lander import run_lander

    params = inspect.signature(run_lander).parameters
    return {"max_rows": int(params["max_rows"].default), "max_age_s": float(params["max_age_s"].default)}


def source_mix() -> dict[str, float]:
    """The six sources of `bench ingest`'s realistic mix with their shares of the traffic."""
    from quant_platform.bench.ingest import MIX

    total = sum(w for *_, w in MIX)
    return {source: w / total for source, *_, w in MIX}


def landing_layout(ticks: int, tick_rate: float, sources: dict[str, float], max_rows: int, max_age_s: float,
                   dup_fraction: float) -> dict:
    """How the lander cuts a day into files: it flushes when a batch holds `max_rows` rows or is `max_age_s`
    old, so at `tick_rate` ticks/s a flush holds min(max_rows, tick_rate * max_age_s) ticks, and it writes one
    file per source in the batch (land_batch splits by day and source)."""
    rows_per_flush = max(1, min(max_rows, int(tick_rate * max_age_s)))
    flushes = -(-ticks // rows_per_flush)
    bounds, acc = [0], 0.0
    for share in sources.values():
        acc += share
        bounds.append(round(rows_per_flush * acc))
    parts = [(s, bounds[k], bounds[k + 1]) for k, s in enumerate(sources) if bounds[k + 1] > bounds[k]]
    dup_flushes = min(flushes, -(-int(ticks * dup_fraction) // rows_per_flush)) if dup_fraction > 0 else 0
    return {"rows_per_flush": rows_per_flush, "flushes": flushes, "parts": parts, "dup_flushes": dup_flushes,
            "derivation": (f"the lander flushes at max_rows={max_rows} rows or max_age_s={max_age_s} s "
                           f"(run_lander's defaults); at {tick_rate:g} ticks/s a flush holds "
                           f"min({max_rows}, {tick_rate:g} x {max_age_s:g}) = {rows_per_flush} ticks; "
                           f"{ticks} ticks -> {flushes} flushes x {len(parts)} sources (one file per source "
                           f"per flush) = {flushes * len(parts)} files, plus {dup_flushes} redelivered "
                           f"flushes landed again ({dup_flushes * len(parts)} files)")}


def generate_day(lake_root: Path, day: str, ticks: int, *, tick_rate: float = DEFAULT_TICK_RATE,
                 dup_fraction: float = 0.02, seed: int = 7, rollup: bool = True) -> dict:
    """Landing files of one synthetic day cut as the lander cuts them (landing_layout): per flush, one file per
    source of `bench ingest`'s mix at its share; raw messages of up to TICKS_PER_RAW ticks, each within one
    file, with the per-raw-message tick counts in each file's key-value metadata as the lander writes them;
    trades and quotes of 15 instruments, times spread evenly over the UTC day, prices a random walk of one
    cent per event per instrument (quotes one to three cents wide). `dup_fraction` of the ticks (whole
    flushes from mid-day) land a second time in other files, as after a redelivery.

    With `rollup` the lander's own rollup (market/landing_rollup.py, with the deployed defaults) runs on the files
    as they land, on a clock that advances by the flush interval per flush, and rolls the rest once the day is
    over: the day then holds what the lander leaves. Its wall and CPU seconds are measured (they are the lander's,
    but part of what compacting a day costs end to end)."""
    import hashlib
    import json

    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from quant_platform.market.contracts import TICK_SCHEMA
    from quant_platform.market.lake_landing import (
        DICTIONARY_COLUMNS,
        RAW_TICKS_KEY,
        LandedFile,
        landing_path,
        roll_local,
    )
    from quant_platform.market.landing_rollup import PAST_DAY_IDLE_S, LandingRollup

    lander = lander_defaults()
    mix = source_mix()
    lay = landing_layout(ticks, tick_rate, mix, lander["max_rows"], lander["max_age_s"], dup_fraction)
    rpf, parts = lay["rows_per_flush"], lay["parts"]
    dup_from = lay["flushes"] // 2
    dup_set = set(range(dup_from, min(lay["flushes"], dup_from + lay["dup_flushes"])))
    con = duckdb.connect()
    rng = np.random.default_rng(seed)
    n_inst = len(INSTRUMENTS)
    cents = np.full(n_inst, 10_000, dtype=np.int64)  # every instrument starts at 100.00
    start_ns = calendar.timegm(time.strptime(day, "%Y-%m-%d")) * 10**9
    step = (86_400 * 10**9) // ticks
    insts = "[" + ", ".join(f"'{i}'" for i in INSTRUMENTS) + "]"
    dictionary = [c for c in DICTIONARY_COLUMNS if c in TICK_SCHEMA.names]
    chunk_flushes = max(1, 200_000 // rpf)
    t0 = time.monotonic()
    files = written = dups = 0
    stream_seq = ticks_seq = 0
    extra_ticks_seq = 10 * lay["flushes"] * len(parts) + 1_000  # TICKS sequences of the redelivered copies

    lander_rollup = LandingRollup(partial(roll_local, lake_root)) if rollup else None
    roll = {"rollups": 0, "files_replaced": 0, "seconds": 0.0, "cpu_s": 0.0}
    clock = 0.0  # the lander's monotonic clock: one flush interval per flush

    def write(part: pa.Table, source: str, meta: dict, first: int, last: int) -> None:
        nonlocal files
        table = part.replace_schema_metadata({RAW_TICKS_KEY: json.dumps(meta, separators=(",", ":")).encode()})
        digest = hashlib.blake2b(f"{first}-{last}".encode(), digest_size=8).hexdigest()
        path = landing_path(lake_root, day, source, first, last, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd", compression_level=1, use_dictionary=dictionary)
        files += 1
        if lander_rollup is not None:
            lander_rollup.add([LandedFile(path, 0, day, source, path.name, table)], clock)

    def roll_due(today: str) -> None:
        c0, t0 = time.process_time(), time.monotonic()
        for key in lander_rollup.due(clock, today):
            replaced, _ = lander_rollup.roll(key)
            roll["rollups"] += 1
            roll["files_replaced"] += replaced
        roll["cpu_s"] += time.process_time() - c0
        roll["seconds"] += time.monotonic() - t0

    for f0 in range(0, lay["flushes"], chunk_flushes):
        a, b = f0 * rpf, min(ticks, (f0 + chunk_flushes) * rpf)
        n = b - a
        i = np.arange(a, b, dtype=np.int64)
        inst = i % n_inst
        moves = rng.integers(-1, 2, size=n)
        walk = np.empty(n, dtype=np.int64)
        for k in range(n_inst):
            sel = inst == k
            walk[sel] = cents[k] + np.cumsum(moves[sel])
            if sel.any():
                cents[k] = walk[sel][-1]
        is_trade = i % 3 == 0
        spread = 1 + rng.integers(0, 3, size=n)
        price = np.where(is_trade, walk / 100.0, np.nan)
        bid = np.where(is_trade, np.nan, walk / 100.0)
        ask = np.where(is_trade, np.nan, (walk + spread) / 100.0)
        size = np.where(is_trade, rng.integers(1, 51, size=n).astype(np.float64), np.nan)
        bid_size = np.where(is_trade, np.nan, rng.integers(1, 21, size=n).astype(np.float64))
        ask_size = np.where(is_trade, np.nan, rng.integers(1, 21, size=n).astype(np.float64))
        base = con.sql(
            f"SELECT {insts}[1 + (i % {n_inst})] AS instrument_id, 'SYM' || (i % {n_inst}) AS venue_symbol, "  # noqa: S608
            f"md5(i::VARCHAR)[:24] AS event_id FROM range({int(a)}, {int(b)}) t(i)").to_arrow_table()
        ts = pa.array(start_ns + i * step, pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
        received = pa.array(start_ns + i * step + 1_500_000, pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
        for fl in range(f0, min(lay["flushes"], f0 + chunk_flushes)):
            fa = fl * rpf - a
            for source, pa_, pb_ in parts:
                lo, hi = fa + pa_, min(fa + pb_, n)
                if lo >= hi:
                    continue
                ticks_seq += 1
                first = ticks_seq
                k = hi - lo
                seqs = stream_seq + 1 + np.arange(k) // TICKS_PER_RAW
                counts = np.bincount(np.arange(k) // TICKS_PER_RAW).tolist()
                meta = {str(stream_seq + 1 + j): c for j, c in enumerate(counts)}
                stream_seq += len(counts)
                null_s = pa.nulls(k, pa.string())
                sl = slice(lo, hi)
                part = pa.table({
                    "ts": ts[lo:hi], "received_at": received[lo:hi], "source": pa.array([source] * k),
                    "instrument_id": base["instrument_id"][lo:hi], "venue_symbol": base["venue_symbol"][lo:hi],
                    "exchange": null_s,
                    "event": pa.array(np.where(is_trade[sl], "trade", "quote").tolist(), pa.string()),
                    "price": pa.array(price[sl], from_pandas=True), "size": pa.array(size[sl], from_pandas=True),
                    "bid": pa.array(bid[sl], from_pandas=True), "bid_size": pa.array(bid_size[sl], from_pandas=True),
                    "ask": pa.array(ask[sl], from_pandas=True), "ask_size": pa.array(ask_size[sl], from_pandas=True),
                    "vendor_seq": pa.array(i[sl]), "event_id": base["event_id"][lo:hi], "stream_seq": pa.array(seqs),
                    "conditions": null_s, "size_unit": null_s, "ref_seq": pa.nulls(k, pa.int64()),
                }).cast(TICK_SCHEMA)
                write(part, source, meta, first, first)
                written += k
                if fl in dup_set:
                    extra_ticks_seq += 1
                    write(part, source, meta, extra_ticks_seq, extra_ticks_seq)
                    written += k
                    dups += k
            clock = (fl + 1) * lander["max_age_s"]
            if lander_rollup is not None:
                roll_due(day)
    if lander_rollup is not None:  # the day is over: the lander rolls what is left once the day is idle
        clock += PAST_DAY_IDLE_S
        roll_due("9999-12-31")
    con.close()
    left = sum(1 for _ in (lake_root / "ticks" / "landing" / f"date={day}").glob("source=*/*.parquet"))
    rolled = {"what": "the lander's rollup (landing_rollup, deployed defaults: "
                      f"{lander_rollup.max_rows} rows or {lander_rollup.max_age_s:g} s per (day, source))",
              "files_after": left, "rollups": roll["rollups"], "files_replaced": roll["files_replaced"],
              "seconds": round(roll["seconds"], 3), "cpu_s": round(roll["cpu_s"], 3)} if lander_rollup else None
    return {"rows_landed": written, "duplicates_landed": dups, "files": files, "rows_per_flush": rpf,
            "files_compacted": left, "lander_rollup": rolled,
            "flushes": lay["flushes"], "sources": {s: round(w, 3) for s, w in mix.items()},
            "ticks_per_file_mean": round(written / max(1, files), 1),
            "file_count_derivation": lay["derivation"], "lander_defaults": lander, "tick_rate_per_s": tick_rate,
            "generate_s": round(time.monotonic() - t0, 2)}


def column_bytes(path: Path) -> dict[str, int]:
    """Compressed bytes of each column of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    out: dict[str, int] = {}
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for c in range(rg.num_columns):
            col = rg.column(c)
            out[col.path_in_schema] = out.get(col.path_in_schema, 0) + col.total_compressed_size
    return out


def run_compaction_benchmark(ticks: int = 10_000_000, workdir: str | None = None, keep: bool = False, *,
                             tick_rate: float = DEFAULT_TICK_RATE, rollup: bool = True) -> dict:
    """Generate the day, copy its landing files into one Parquet file (the baseline), then compact it with
    every check (stage, completeness, rules, publish) and time the 1-minute VWAP over the result. Wall and
    process CPU seconds of both are measured here, in this run."""
    from quant_platform.market import compaction as cp
    from quant_platform.market import daily_checks as dc
    from quant_platform.market.instruments import InstrumentMaster
    from quant_platform.market.lake_landing import sql_path

    base = Path(workdir or tempfile.mkdtemp(prefix="qp-bench-compaction-"))
    lake = base / "lake"
    day = "2026-01-15"
    try:
        # The rollup runs here as in a lander process, with the collector settings the worker gives a lander.
        from quant_platform.market.worker import GC_THRESHOLDS

        thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            gen = generate_day(lake, day, ticks, tick_rate=tick_rate, rollup=rollup)
        finally:
            gc.set_threshold(*thresholds)
        # The generated day's writes (and the rollup's removal of 60k small files) reach the disk before anything is
        # timed: otherwise the kernel's writeback of them runs beside whichever timed step comes first.
        os.sync()
        files = cp.landing_files(lake, day)
        master = InstrumentMaster.load()
        classes = {i.instrument_id: i.asset_class for i in master.instruments()}

        # Baseline: the same landing files copied into one Parquet file, nothing else; once before and once
        # after the compaction (the faster copy is the baseline: the host's speed varies with other work).
        def copy() -> tuple[float, float]:
            con = cp.duck()
            c0, t0 = time.process_time(), time.monotonic()
            con.execute(f"COPY (SELECT * FROM read_parquet({cp.parquet_list(files)})) "  # noqa: S608
                        f"TO '{sql_path(base / 'baseline.parquet')}' "
                        "(FORMAT parquet, COMPRESSION zstd)")
            out = time.monotonic() - t0, time.process_time() - c0
            con.close()
            return out

        copies = [copy()]
        baseline_bytes = (base / "baseline.parquet").stat().st_size

        c0, t0 = time.process_time(), time.monotonic()
        staged = cp.stage_day(lake, day)
        t_stage = time.monotonic() - t0
        acc = cp.account_sequences(lake, day, staged.seqs_path, set(), stream_first_seq=1, drained_raw_seq=None)
        t_acc = time.monotonic() - t0 - t_stage
        con = cp.duck()
        rules = dc.evaluate_rules(con, staged.ticks_path, day, classes, id_hashes=staged.id_hashes)
        con.close()
        t_rules = time.monotonic() - t0 - t_stage - t_acc
        cp.publish_staged(lake, staged, {"published": True})
        total, cpu = time.monotonic() - t0, time.process_time() - c0
        copies.append(copy())
        baseline_s, baseline_cpu = min(c[0] for c in copies), min(c[1] for c in copies)

        daily = cp.daily_file(lake, day)
        con = cp.duck()
        times: dict[str, list[float]] = {}
        results = {}
        for name, sql in VWAP_SQL.items():
            for _ in range(3):
                t = time.monotonic()
                results[name] = con.execute(sql, [str(daily)]).fetchall()
                times.setdefault(name, []).append(time.monotonic() - t)
        # Rows out of (instrument_id, ts, event_id) order in the written file (not timed).
        unsorted = con.execute(
            "SELECT count(*) FILTER (WHERE pi > instrument_id OR (pi = instrument_id AND (pt > ts "
            "OR (pt = ts AND pe > event_id)))) FROM (SELECT instrument_id, ts, event_id, lag(instrument_id) OVER w AS pi, "
            "lag(ts) OVER w AS pt, lag(event_id) OVER w AS pe FROM read_parquet(?, file_row_number = true) "
            "WINDOW w AS (ORDER BY file_row_number))", [str(daily)]).fetchone()[0]
        con.close()
        same = {name: sorted((i, str(m), round(v, 9)) for i, m, v in rows) for name, rows in results.items()}
        rows = len(results["time_bucket"])
        size = daily.stat().st_size
        per_col = column_bytes(daily)
        m = ticks / 1e6
        total, baseline_s, cpu = round(total, 3), round(baseline_s, 3), round(cpu, 3)  # the ratios are of these
        roll_cpu = gen["lander_rollup"]["cpu_s"] if gen["lander_rollup"] else 0.0
        figures = {"compaction_vs_copy_ratio": round(total / baseline_s, 2) if baseline_s > 0 else None,
                   "vwap_1m_query_s": round(min(times["time_bucket"]), 3),
                   "bytes_per_tick": round(size / max(1, staged.rows_out), 2),
                   # end to end: the daily compaction with its checks, plus the lander's rollup of the day
                   "cpu_s_per_m_ticks": round((cpu + roll_cpu) / m, 2)}
        return {
            "benchmark": "compaction",
            "cpu_count": os.cpu_count(),
            "ticks": ticks,
            **gen,
            "rows_out": staged.rows_out,
            "duplicates_removed": staged.duplicates_removed,
            "duplicates_apart": staged.duplicates_apart,  # found by the whole-day group, the day written twice
            "compaction_s": round(t_stage, 3),
            "completeness_s": round(t_acc, 3),
            "rules_s": round(t_rules, 3),
            "compaction_with_checks_s": total,
            "compaction_cpu_s": cpu,
            "compaction_cpu_s_per_m_ticks": round(cpu / m, 2),
            "cpu_s_per_m_ticks_what": "compaction with checks, plus the lander's rollup of the day (lander_rollup) "
                                      "when it ran",
            "rows_out_of_order": int(unsorted),
            "checks_passed": bool(acc.passed and all(r.passed for r in rules if r.name in dc.BLOCKING)),
            "raw_messages_accounted": acc.in_ticks,
            "daily_file_mb": round(size / 1e6, 2),
            "bytes_per_tick_by_column": {k: round(v / max(1, staged.rows_out), 2)
                                         for k, v in sorted(per_col.items(), key=lambda kv: -kv[1])},
            "vwap_1m_query": {name: {"sql": VWAP_SQL[name], "seconds_3_runs": [round(x, 3) for x in ts]}
                              for name, ts in times.items()},
            "vwap_1m_query_note": ("the figure is the time_bucket form's fastest of 3 runs; date_trunc on a "
                                   "TIMESTAMPTZ (the form the OLAP views use) goes through DuckDB's ICU calendar "
                                   "for every row and is reported beside it; both give the same rows"),
            "vwap_forms_same_result": same["time_bucket"] == same["date_trunc_timestamptz"],
            "vwap_rows": rows,
            "baseline": {"what": "plain DuckDB copy of the same landing files into one zstd Parquet file "
                                 "(no dedup, sort or checks), run before and after the compaction; the lower "
                                 "seconds and the lower CPU seconds of the two",
                         "seconds": baseline_s, "cpu_s": round(baseline_cpu, 3),
                         "seconds_before_and_after": [round(c[0], 3) for c in copies],
                         "cpu_s_before_and_after": [round(c[1], 3) for c in copies],
                         "cpu_s_per_m_ticks": round(baseline_cpu / m, 2),
                         "bytes_per_tick": round(baseline_bytes / max(1, gen["rows_landed"]), 2)},
            "figures": figures,
            "goals": GOALS,
            "goals_stated_for_ticks": GOALS_AT_TICKS,
            "goals_apply": ticks >= GOALS_AT_TICKS,
            "goals_met": {k: figures[k] is not None and figures[k] <= GOALS[k] for k in GOALS},
        }
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
