"""Vendor-sequence completeness on real Binance USD-M and spot captures: the live probe finds no jump in the real
streams and exactly the removed aggTrade ids and depth updates; a replay through a real nats-server with a removed
stretch (a lost connection, recorded by the connector) and a stretch the normalizer rejected is reported by
ticks_daily's WARN check and in market.vendor_gaps with the right instrument and sequence range, while the
stream-sequence completeness passes; after the master learns the symbol, a redrive brings the rejected events back
and the next compaction reports only the real loss.

Never hand the pipeline vendor bytes it did not get from the sample files: stretches are left out, never edited.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from quant_platform.market.contracts import RawFrame
from quant_platform.market.instruments import InstrumentMaster
from quant_platform.market.vendor_gaps import SequenceProbe
from quant_platform_tests.conftest import SAMPLE_DATA
from quant_platform_tests.market_helpers import wait_for

USDM = SAMPLE_DATA / "ticks" / "binance_usdm_combined_stream_2021-07-22.txt"
SPOT = SAMPLE_DATA / "ticks" / "binance_spot_combined_stream_2021-10-12.txt"
DAY = "2021-07-22"


def capture(path: Path) -> list[RawFrame]:
    """The capture's frames (cryptofeed's `<receipt unix ts>: <frame>` lines after the URL line), verbatim."""
    out = []
    for line in path.read_bytes().splitlines()[1:]:
        if line.strip():
            ts, _, frame = line.partition(b": ")
            out.append(RawFrame(round(float(ts) * 1e9), frame))
    return out


def data(frame: RawFrame) -> dict:
    return json.loads(frame.payload)["data"]


def is_agg(frame: RawFrame, sym: str, ids) -> bool:
    d = data(frame)
    return d.get("e") == "aggTrade" and d["s"] == sym and d["a"] in ids


def probe(frames) -> tuple[SequenceProbe, list]:
    p = SequenceProbe("binance_futures")
    gaps = [g for f in frames for g in p.observe(f)]
    return p, gaps


def test_probe_finds_no_jump_in_the_real_streams_and_exactly_the_removed_ids():
    usdm, spot = capture(USDM), capture(SPOT)
    # The real captures: aggTrade ids and depth updates follow each other without a hole.
    for frames in (usdm, spot):
        p, gaps = probe(frames)
        assert gaps == [] and p.gaps == 0 and p.last
    # USD-M: three CTKUSDT aggTrades and one SUSHIUSDT depth update left out.
    ctk = {16599296, 16599297, 16599298}
    depth = next(i for i, f in enumerate(usdm) if data(f).get("e") == "depthUpdate" and data(f)["s"] == "SUSHIUSDT"
                 and i > 50)
    removed = usdm[depth]
    kept = [f for i, f in enumerate(usdm) if i != depth and not is_agg(f, "CTKUSDT", ctk)]
    p, gaps = probe(kept)
    agg = [g for g in gaps if g.channel == "aggTrade"]
    assert [(g.symbol, g.from_seq, g.to_seq, g.missing) for g in agg] == [("CTKUSDT", 16599296, 16599298, 3)]
    [dg] = [g for g in gaps if g.channel == "depthUpdate"]
    # USD-M update ids are shared by all symbols: pu says an update is missing, not how many.
    assert (dg.symbol, dg.from_seq, dg.to_seq, dg.missing) == ("SUSHIUSDT", data(removed)["pu"] + 1,
                                                                data(removed)["u"], None)
    assert p.gaps == 2 and p.missing == 3 and [g["channel"] for g in p.take_pending()] == ["depthUpdate"]
    # Spot: U = previous u + 1, so the update ids of a removed depth event are counted exactly.
    i = next(i for i, f in enumerate(spot) if data(f).get("e") == "depthUpdate" and i > 20)
    _, gaps = probe(spot[:i] + spot[i + 1:])
    d = data(spot[i])
    assert [(g.symbol, g.from_seq, g.to_seq, g.missing) for g in gaps] == [(d["s"], d["U"], d["u"], d["u"] - d["U"] + 1)]


def _master_without(symbol: str) -> InstrumentMaster:
    from quant_platform.market.instruments import PACKAGED_INSTRUMENTS_FILE

    text = Path(PACKAGED_INSTRUMENTS_FILE).read_text()
    assert f"[{symbol}]" in text
    return InstrumentMaster.from_yaml(text.replace(f"[{symbol}]", f"[{symbol}_NOT_LISTED]"))


async def _drained(js) -> bool:
    raw, norm = await js.stream_info("TICKS_RAW"), await js.stream_info("TICKS")
    n, la = await js.consumer_info("TICKS_RAW", "normalizer"), await js.consumer_info("TICKS", "lander")
    return (n.ack_floor.stream_seq >= raw.state.last_seq and la.ack_floor.stream_seq >= norm.state.last_seq
            and not la.num_ack_pending)


def _job(instance):
    from quant_platform.definitions import defs

    result = defs.resolve_job_def("ticks_daily_job").execute_in_process(partition_key=DAY, instance=instance,
                                                                         raise_on_error=False)
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    return result, checks


@pytest.mark.slow
def test_removed_and_rejected_stretches_are_vendor_gaps_and_a_redrive_closes_the_rejected_one(qp_home, instance,
                                                                                               monkeypatch):
    import nats

    from quant_platform.cli import sql_dir
    from quant_platform.market.lander import LanderStats, run_lander
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.normalizer import NormalizerStats, run_normalizer
    from quant_platform.market.publisher import publish_frames
    from quant_platform.market.redrive import redrive
    from quant_platform.market.streams import ensure_streams
    from quant_platform.market.vendor_gaps import ConnectionLog, ControlPublisher
    from quant_platform.platform.warehouse import Warehouse

    frames = capture(USDM)
    lake = qp_home / "lake"
    monkeypatch.setenv("QP_LAKE_URL", str(lake))
    monkeypatch.setenv("QP_WAREHOUSE_URL", f"duckdb:///{qp_home / 'warehouse.duckdb'}")
    Warehouse(f"duckdb:///{qp_home / 'warehouse.duckdb'}").apply_sql_dir(sql_dir())
    rejected_ids, lost_ids = {16599297, 16599298, 16599299}, {87353232, 87353233}
    first = next(i for i, f in enumerate(frames) if is_agg(f, "CTKUSDT", rejected_ids))
    last = max(i for i, f in enumerate(frames) if is_agg(f, "CTKUSDT", rejected_ids))
    part1, part2 = frames[:first], frames[first:last + 1]
    part3 = [f for f in frames[last + 1:] if not is_agg(f, "SUSHIUSDT", lost_ids)]
    lost = [f for f in frames if is_agg(f, "SUSHIUSDT", lost_ids)]
    assert len(lost) == 2 and all(f in frames[last + 1:] for f in lost)
    # The connector lost the vendor just after the frame before the first lost trade, regained it before the next.
    i_before = frames.index(lost[0]) - 1
    i_after = frames.index(lost[-1]) + 1
    window = ConnectionLog()
    window.regained(frames[0].received_at_ns - 1)  # the process's first connection
    window.lost("connection closed (code 1006)", frames[i_before].received_at_ns + 1,
                last_frame_ns=frames[i_before].received_at_ns)
    record = window.regained(frames[i_after].received_at_ns - 1)
    full, without_ctk = InstrumentMaster.load(), _master_without("CTKUSDT")

    with EmbeddedNats(qp_home / "nats").start() as srv:
        monkeypatch.setenv("QP_NATS_URL", srv.url)

        async def run():
            nc = await nats.connect(srv.url)
            js = nc.jetstream()
            await ensure_streams(js)
            lstop = asyncio.Event()
            lander = asyncio.create_task(run_lander(srv.url, lake, lstop, max_age_s=0.1, stats=LanderStats()))

            async def normalize(master, publish):
                stop = asyncio.Event()
                task = asyncio.create_task(run_normalizer(srv.url, stop, master=master, stats=NormalizerStats(),
                                                          linger_s=0.0))
                await publish()
                await wait_for(lambda: _drained(js), timeout_s=60)
                stop.set()
                await task

            async def part3_and_window():
                await publish_frames(srv.url, "binance_futures", part3, connection_id="c3")
                control = ControlPublisher(js, "binance_futures", "c3")
                await control(record)
                await control.close()

            await normalize(full, lambda: publish_frames(srv.url, "binance_futures", part1, connection_id="c1"))
            await normalize(without_ctk, lambda: publish_frames(srv.url, "binance_futures", part2, connection_id="c2"))
            await normalize(full, part3_and_window)
            lstop.set()
            await lander
            await nc.close()

        asyncio.run(run())
        before, checks = _job(instance)
        assert before.success
        complete, vendor = checks["complete_by_sequence"], checks["vendor_sequence_complete"]
        assert complete.passed and complete.metadata["raw_messages_missing"].value == 0  # by stream sequence
        assert not vendor.passed
        md = {k: v.value for k, v in vendor.metadata.items()}
        assert (md["sequence_gaps"], md["disconnect_gaps"], md["rejected_gaps"]) == (2, 1, 1), md
        # two lost trades; the rejected raw message's three trades (a jump) and five events (its rejects: the
        # trades and two CTKUSDT book tickers)
        assert md["events_missing"] == 2 + 3 + 5
        assert md["sequences_checked"] == "binance_futures (aggTrade)"

        wh = Warehouse(f"duckdb:///{qp_home / 'warehouse.duckdb'}")
        rows = {(r["kind"], r["instrument_id"] if isinstance(r["instrument_id"], str) else None): r for r in wh.query_df(
            "SELECT * FROM market.vendor_gaps WHERE trade_date = :d", {"d": DAY}).to_dict("records")}
        seq = rows[("sequence", "CRYPTO:SUSHI-USDT-PERP")]
        assert (seq["from_seq"], seq["to_seq"], seq["missing"], seq["channel"]) == (87353232, 87353233, 2, "aggTrade")
        assert "connector lost the vendor" in seq["detail"]
        ctk = rows[("sequence", "CRYPTO:CTK-USDT-PERP")]
        assert (ctk["from_seq"], ctk["to_seq"], ctk["missing"]) == (16599297, 16599299, 3)
        assert "TICKS_DLQ" in ctk["detail"]
        disconnect = rows[("disconnect", None)]
        assert disconnect["gap_start"].value == frames[i_before].received_at_ns // 1000 * 1000  # its last frame
        assert disconnect["seconds"] > 0 and "1006" in disconnect["detail"]
        assert rows[("rejected", None)]["missing"] == 5

        # The master learns CTKUSDT; a redrive brings the rejected events back and the day is compacted again.
        async def fix():
            stop = asyncio.Event()
            tasks = [asyncio.create_task(run_normalizer(srv.url, stop, master=full, stats=NormalizerStats(),
                                                        linger_s=0.0)),
                     asyncio.create_task(run_lander(srv.url, lake, stop, max_age_s=0.1, stats=LanderStats()))]
            out = await redrive(srv.url, source="binance_futures")
            nc = await nats.connect(srv.url)
            await wait_for(lambda: _drained(nc.jetstream()), timeout_s=60)
            await nc.close()
            stop.set()
            await asyncio.gather(*tasks)
            return out

        assert asyncio.run(fix())["frames"] == 5  # Binance frames are one event each: rejected whole
        after, checks = _job(instance)
        assert after.success
        md = {k: v.value for k, v in checks["vendor_sequence_complete"].metadata.items()}
        assert (md["sequence_gaps"], md["disconnect_gaps"], md["rejected_gaps"], md["events_missing"]) == (1, 1, 0, 2)
        kinds = sorted(wh.query_df("SELECT kind FROM market.vendor_gaps WHERE trade_date = :d",
                                   {"d": DAY})["kind"].tolist())
        assert kinds == ["disconnect", "sequence"]
        wh.dispose()
