"""Per-source liveness on a real nats-server: with one source stopped while another flows, the whole-stream check
stream_progressing still passes (the newest message is the live source's) while sources_progressing fails naming
the stopped one; the ingest sensor reports both; the alert sensor posts one incident for the stopped source, not
again while it stays down, and resolves it when it flows again. Trading hours: an equity source silent on a
weekend is not stalled. The connector's reconnects, lost seconds and vendor gaps reach Prometheus.

Never fake the stream state where a server can give it: the states here are read from TICKS_RAW.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from quant_platform.market import metrics, observe
from quant_platform.market.contracts import RawFrame
from quant_platform_tests.conftest import SAMPLE_DATA

BINANCE = SAMPLE_DATA / "ticks" / "binance_spot_combined_stream_2021-10-12.txt"
ALPACA_CRYPTO = SAMPLE_DATA / "ticks" / "alpaca_v1beta3_crypto_us_session.txt"
STALE_S = 1.5


def _frames(source: str, path, n: int) -> list[RawFrame]:
    from quant_platform.market.connectors.replay import read_capture

    now = time.time_ns()
    return [RawFrame(now + i, f) for i, f in enumerate(read_capture(source, path)[:n])]


@pytest.fixture
def nats_server(tmp_path):
    from quant_platform.market.nats_server import EmbeddedNats

    with EmbeddedNats(tmp_path / "nats").start() as srv:
        yield srv


def test_a_stopped_source_behind_a_live_one_fails_its_check_and_alerts_once(nats_server, qp_home, instance,
                                                                            monkeypatch):
    import dagster as dg

    from quant_platform.definitions import defs
    from quant_platform.market.assets import _progress_check, _sources_check, market_ingest_sensor
    from quant_platform.market.publisher import publish_frames
    from quant_platform.ops.alerts import AlertCursor, apply_source_liveness

    monkeypatch.setenv("QP_NATS_URL", nats_server.url)
    monkeypatch.setenv(observe.SOURCE_STALE_ENV, str(STALE_S / 60))

    async def publish(source, path, n):
        await publish_frames(nats_server.url, source, _frames(source, path, n))

    asyncio.run(publish("alpaca_crypto", ALPACA_CRYPTO, 3))
    asyncio.run(publish("binance", BINANCE, 20))
    time.sleep(STALE_S + 0.3)
    asyncio.run(publish("binance", BINANCE, 20))  # binance flows on, alpaca_crypto has stopped
    state = observe.stream_state_now(nats_server.url)
    last = state["TICKS_RAW"]["sources_last"]
    assert set(last) == {"binance", "alpaca_crypto"} and last["binance"]["time"] > last["alpaca_crypto"]["time"]
    assert last["binance"]["seq"] == state["TICKS_RAW"]["last_seq"]

    # The whole-stream check sees the newest message (binance's) and passes: the dead source hides behind it.
    assert _progress_check(state, None).passed
    check = _sources_check(state)
    assert not check.passed and check.metadata["stalled_sources"].value == "alpaca_crypto"
    assert check.metadata["flowing_sources"].value == "binance"
    assert check.metadata["last_message_age_s.alpaca_crypto"].value > STALE_S

    # The ingest sensor reports both checks on its evaluation.
    result = market_ingest_sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    evals = {e.check_name: e.passed for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)}
    assert evals == {"stream_progressing": True, "sources_progressing": False}

    # One incident per stopped source, posted once, kept while it stays down, resolved when it flows again.
    cursor = AlertCursor(caught_up=True)
    apply_source_liveness(cursor, state, time.time())
    apply_source_liveness(cursor, observe.stream_state_now(nats_server.url), time.time())
    assert [(a["kind"], a["check"]) for a in cursor.pending] == [("opened", "source_stalled.alpaca_crypto")]
    [incident] = cursor.open.values()
    assert incident["count"] == 2 and "alpaca_crypto stopped" in incident["summary"] and "binance" in incident["summary"]
    asyncio.run(publish("alpaca_crypto", ALPACA_CRYPTO, 3))
    apply_source_liveness(cursor, observe.stream_state_now(nats_server.url), time.time())
    assert [a["kind"] for a in cursor.pending] == ["opened", "resolved"] and not cursor.open


def test_trading_hours_decide_whether_a_silent_source_is_stalled():
    saturday = datetime(2026, 11, 14, 15, 0, tzinfo=UTC).timestamp()
    tuesday_open = datetime(2026, 11, 17, 15, 0, tzinfo=UTC).timestamp()  # 10:00 New York
    classes = {"binance": {"crypto"}, "polygon": {"equity"}}

    def state(now):
        return {"TICKS_RAW": {"sources_last": {"binance": {"seq": 9, "time": now - 1},
                                               "polygon": {"seq": 5, "time": now - 3600}}}}

    def stalled(now):
        return [r["source"] for r in observe.source_liveness(state(now), now, classes, stale_s=600) if r["stalled"]]

    assert stalled(saturday) == []  # US equities do not trade: silence is expected
    assert stalled(tuesday_open) == ["polygon"]
    # Everything silent: no source is singled out (the whole stream's check fails instead).
    quiet = {"TICKS_RAW": {"sources_last": {s: {"seq": 1, "time": tuesday_open - 3600} for s in classes}}}
    assert [r for r in observe.source_liveness(quiet, tuesday_open, classes, stale_s=600) if r["stalled"]] == []


def _sample(name: str, **labels) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_reconnects_lost_seconds_and_vendor_gaps_reach_prometheus():
    from quant_platform.market.vendor_gaps import SequenceProbe
    from quant_platform.market.worker import _connector_metrics, _counting_control, _probed

    source = "liveness_test"
    records: list[dict] = []

    async def control(record: dict) -> None:
        records.append(record)

    class Connector:
        def __init__(self):
            self.reconnects, self.last_frame_at = 0, None

        def stats(self):
            return {"reconnects": self.reconnects, "last_frame_at": self.last_frame_at}

    async def run():
        conn, probe = Connector(), SequenceProbe(source)
        sink_frames: list[RawFrame] = []

        async def sink(frame):
            sink_frames.append(frame)

        add = _probed(probe, sink)
        stop = asyncio.Event()
        task = asyncio.create_task(_connector_metrics(source, conn, probe, control, stop))
        for a in (10, 11, 14):  # aggTrade ids 12 and 13 never arrived
            await add(RawFrame(time.time_ns(), b'{"stream":"x@aggTrade","data":{"e":"aggTrade","s":"X","a":%d}}' % a))
        for u in ((1, 2), (3, 4), (8, 9)):  # depth update ids 5..7 missing
            await add(RawFrame(time.time_ns(), b'{"stream":"x@depth","data":{"e":"depthUpdate","s":"X","U":%d,"u":%d}}'
                               % u))
        conn.reconnects, conn.last_frame_at = 2, 1_700_000_000 * 10**9
        counting = _counting_control(source, control)
        await counting({"kind": "window", "cause": "start", "lost_ns": None, "regained_ns": 5})
        await counting({"kind": "window", "cause": "reconnect", "lost_ns": 1_000_000_000, "regained_ns": 3_500_000_000})
        await asyncio.sleep(1.3)
        stop.set()
        await task
        return sink_frames

    assert len(asyncio.run(run())) == 6  # every frame went on
    assert _sample("qp_connector_reconnects_total", source=source) == 2
    assert _sample("qp_connector_disconnected_seconds_total", source=source) == 2.5
    assert _sample("qp_connector_last_frame_timestamp_seconds", source=source) == 1_700_000_000
    assert _sample("qp_vendor_gaps_total", source=source, kind="sequence") == 2
    assert _sample("qp_vendor_gaps_total", source=source, kind="disconnect") == 1
    assert _sample("qp_vendor_gap_events_total", source=source) == 2 + 3
    # the depth gap (no tick carries its ids) went into a control record for the day's table
    gaps = [r for r in records if r.get("kind") == "sequence_gaps"]
    assert [(g["channel"], g["from_seq"], g["to_seq"]) for r in gaps for g in r["gaps"]] == [("depthUpdate", 5, 7)]
