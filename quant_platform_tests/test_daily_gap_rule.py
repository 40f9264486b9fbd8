"""The daily rule no_long_gaps_in_trading_hours finds its gaps from per-bucket minima and maxima, not from every
row in order: the gaps it reports are exactly the gaps between consecutive ticks, computed here in Python."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quant_platform.market import compaction as cp
from quant_platform.market import daily_checks as dc
from quant_platform.market.contracts import TICK_SCHEMA

DAY = "2026-03-02"
T_NS = 15 * 60 * 10**9  # the default threshold (QP_TICK_GAP_MINUTES unset in tests)


def _ticks(times: dict[str, list[int]]) -> pa.Table:
    rows = [(inst, t) for inst, ts in times.items() for t in ts]
    rng = np.random.default_rng(3)
    rows = [rows[i] for i in rng.permutation(len(rows))]  # in no order, as a file need not be
    n = len(rows)
    cols = {f.name: pa.nulls(n, f.type) for f in TICK_SCHEMA}
    cols.update(ts=pa.array([t for _, t in rows], pa.int64()).cast(TICK_SCHEMA.field("ts").type),
                received_at=pa.array([t for _, t in rows], pa.int64()).cast(TICK_SCHEMA.field("ts").type),
                source=pa.array(["binance"] * n), instrument_id=pa.array([i for i, _ in rows]),
                venue_symbol=pa.array([i for i, _ in rows]), event=pa.array(["trade"] * n),
                price=pa.array([1.0] * n), size=pa.array([1.0] * n),
                event_id=pa.array([f"e{k}" for k in range(n)]), stream_seq=pa.array(range(1, n + 1), pa.int64()))
    return pa.table(cols, schema=TICK_SCHEMA)


def test_gaps_are_those_between_consecutive_ticks(tmp_path):
    start = int(datetime.fromisoformat(f"{DAY}T00:00:00+00:00").timestamp()) * 10**9
    m = 60 * 10**9
    times = {
        # a gap of exactly the threshold (not flagged), one a second longer, both starting mid-bucket
        "CRYPTO:BTC-USDT": [start + 7 * m, start + 22 * m, start + 37 * m + 10**9, start + 40 * m],
        # a long gap over several empty buckets, then ticks in one bucket close together
        "CRYPTO:ETH-USDT": [start + m, start + 14 * m, start + 200 * m, start + 201 * m, start + 202 * m],
        # a bucket's first nanosecond to the next bucket's last: 2T - 1 ns, flagged; then exactly T, not
        "CRYPTO:LRC-BTC": [start + 300 * m, start + 330 * m - 1, start + 345 * m - 1],
    }
    path = tmp_path / "ticks.parquet"
    pq.write_table(_ticks(times), path)
    expected = []
    for inst, ts in sorted(times.items()):
        s = sorted(ts)
        expected += [(inst, a, b) for a, b in zip(s, s[1:], strict=False) if b - a > T_NS]
    con = cp.duck()
    try:
        rule = {r.name: r for r in dc.evaluate_rules(con, path, DAY, {i: "crypto" for i in times})}[dc.NO_LONG_GAPS]
    finally:
        con.close()
    assert len(expected) == 3 and rule.metadata["gaps"] == len(expected) and not rule.passed
    for inst, a, b in expected:
        span = (f"{inst} {datetime.fromtimestamp(a / 1e9, UTC):%H:%M:%S}-"
                f"{datetime.fromtimestamp(b / 1e9, UTC):%H:%M:%S}")
        assert span in rule.metadata["sample"]
