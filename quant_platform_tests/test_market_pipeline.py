"""The tick pipeline on a real nats-server: frames published -> normalizer -> TICKS -> lander -> Parquet in
the lake, queryable in the OLAP views; malformed frames end in TICKS_DLQ with the reason; nothing lost.
"""

from __future__ import annotations

import asyncio

import pyarrow.compute as pc
import pytest

from quant_platform.market.contracts import RawFrame
from quant_platform_tests.market_helpers import dlq_messages, landed_table, sim_frames, wait_for


@pytest.fixture
def nats_server(tmp_path):
    from quant_platform.market.nats_server import EmbeddedNats

    with EmbeddedNats(tmp_path / "nats").start() as srv:
        yield srv


async def _pipeline(url, lake, frames_by_source, workers=1):
    from quant_platform.market.lander import LanderStats, run_lander
    from quant_platform.market.normalizer import NormalizerStats, run_normalizer
    from quant_platform.market.publisher import publish_frames

    stop = asyncio.Event()
    nstats, lstats = NormalizerStats(), LanderStats()
    tasks = [asyncio.create_task(run_normalizer(url, stop, stats=nstats)) for _ in range(workers)]
    tasks.append(asyncio.create_task(run_lander(url, lake, stop, max_age_s=0.2, stats=lstats)))
    results = {}
    for source, frames in frames_by_source.items():
        results[source] = await publish_frames(url, source, frames)
    return stop, tasks, nstats, lstats, results


def test_frames_land_as_canonical_ticks_and_rejects_go_to_the_dlq(nats_server, tmp_path):
    import nats

    lake = tmp_path / "lake"
    good = sim_frames(3000)
    bad = [RawFrame(1, b'{"sym":"CL","ev":"T","t":1,"seq":1,"p":"NaN","s":1}'),
           RawFrame(2, b'{"sym":"ZZ","ev":"T","t":1700000000000000000,"seq":2,"p":1,"s":1}'),
           RawFrame(3, b'{not json'),
           RawFrame(4, bytes(range(1, 9)).replace(b"\n", b" "))]

    async def run():
        stop, tasks, nstats, lstats, results = await _pipeline(
            nats_server.url, lake, {"simulator": good[:1500] + bad + good[1500:]})
        await wait_for(lambda: lstats.rows >= 3000, timeout_s=60)
        nc = await nats.connect(nats_server.url)
        dlq = await dlq_messages(nc.jetstream())
        await nc.close()
        stop.set()
        await asyncio.gather(*tasks)
        return nstats, lstats, dlq

    nstats, lstats, dlq = asyncio.run(run())
    table = landed_table(lake)
    assert table.num_rows == 3000
    assert pc.count_distinct(table["event_id"]).as_py() == 3000
    assert set(table["instrument_id"].to_pylist()) == {"FUT:CL", "FUT:BZ", "FUT:NG"}
    assert set(table["event"].to_pylist()) == {"trade", "quote"}
    trades = table.filter(pc.equal(table["event"], "trade"))
    assert pc.min(trades["price"]).as_py() >= 70.0
    reasons = [m.headers.get("Qp-Reason", "") for m in dlq]
    assert len(dlq) == 4
    assert any("unknown symbol" in r for r in reasons)
    assert all(r for r in reasons)
    assert {m.data for m in dlq} == {f.payload for f in bad}
    assert nstats.failures == 0


def test_olap_views_query_landed_ticks(nats_server, tmp_path):
    import duckdb

    from quant_platform.market.lake_landing import ensure_olap_views

    lake = tmp_path / "lake"
    olap = tmp_path / "olap.duckdb"
    ensure_olap_views(olap, lake, retention_days=3)
    con = duckdb.connect(str(olap), read_only=True)
    assert con.execute("SELECT count(*) FROM market.ticks_recent").fetchone()[0] == 0
    con.close()

    async def run():
        stop, tasks, _, lstats, _ = await _pipeline(nats_server.url, lake, {"simulator": sim_frames(2000)})
        await wait_for(lambda: lstats.rows >= 2000, timeout_s=60)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    con = duckdb.connect(str(olap), read_only=True)
    assert con.execute("SELECT count(*) FROM market.ticks_recent").fetchone()[0] == 2000
    trades = con.execute("SELECT count(*) FROM market.trades_recent").fetchone()[0]
    assert trades == 1000
    bars = con.execute("SELECT instrument_id, sum(trades) FROM market.bars_1m_recent GROUP BY 1 ORDER BY 1").fetchall()
    assert sum(n for _, n in bars) == 1000
    con.close()
