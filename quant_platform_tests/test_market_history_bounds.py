"""Work proportional to new data, not history: compacting a day reads only its neighbouring days, the DLQ is
read from the previous day's position, the ingest sensor does not list known days again, abandoned landing
days are quarantined with a warning and deleted later. Real Parquet, real Dagster runs, a real nats-server.

Never build history by hand-writing tick files: landing files come from land_batch; the far days' ledgers are
deliberately unreadable, so a compaction that opens one fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from quant_platform.market.contracts import TICK_SCHEMA

pytestmark = pytest.mark.timeout(240)

UNREADABLE = b"not a parquet file: a compaction of another day must never open this"


def tick_table(day: str, seqs, per_seq: int = 2, source: str = "simulator") -> pa.Table:
    """`per_seq` ticks per raw sequence, inside `day`, valid quotes and trades."""
    base = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(hours=12)
    rows = []
    for seq in seqs:
        for k in range(per_seq):
            ts = base + timedelta(seconds=seq % 3600, milliseconds=k)
            trade = k % 2 == 1
            rows.append({"ts": ts, "received_at": ts, "source": source, "instrument_id": "CL", "venue_symbol": "CL",
                         "exchange": None, "event": "trade" if trade else "quote",
                         "price": 70.0 if trade else None, "size": 1.0 if trade else None,
                         "bid": None if trade else 69.9, "bid_size": None if trade else 1.0,
                         "ask": None if trade else 70.1, "ask_size": None if trade else 1.0,
                         "vendor_seq": seq, "event_id": f"{day}-{seq}-{k}", "stream_seq": seq})
    return pa.Table.from_pylist(rows, schema=TICK_SCHEMA)


_TICKS_SEQ = [0]


def land(lake: Path, day: str, seqs, per_seq: int = 2) -> None:
    from quant_platform.market.lake_landing import land_batch

    _TICKS_SEQ[0] += 1
    n = _TICKS_SEQ[0]
    land_batch(lake, tick_table(day, seqs, per_seq), n, n, {s: per_seq for s in seqs})


def far_day(lake: Path, day: str, lo: int, hi: int) -> None:
    """A published day whose files cannot be read: its manifest holds its raw sequence range."""
    d = lake / "ticks" / "daily" / f"date={day}"
    d.mkdir(parents=True)
    (d / "ticks.parquet").write_bytes(UNREADABLE)
    (d / "raw_seqs.parquet").write_bytes(UNREADABLE)
    (d / "_manifest.json").write_text(json.dumps({
        "day": day, "published": True, "inputs": [], "raw_seq_min": lo, "raw_seq_max": hi, "raw_seq_count": hi - lo + 1,
        "raw_seq_window": [lo, hi], "rows_out": 2 * (hi - lo + 1), "content_hash": f"h{day}"}))


def materialize_day(instance, day: str, tags: dict | None = None):
    import dagster as dg

    from quant_platform.market.assets import ticks_daily

    return dg.materialize([ticks_daily], partition_key=day, instance=instance, tags=tags or {},
                          raise_on_error=False)


def checks_of(result) -> dict:
    return {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def mat_md(result) -> dict:
    mat = result.asset_materializations_for_node("market__ticks_daily")[-1]
    return {k: v.value for k, v in mat.metadata.items()}


def _days(start: date, n: int) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


# ------------------------------------------------------------------------------------------- 1. compaction
def test_compacting_a_day_reads_only_its_neighbours_in_a_long_lake(qp_home, instance, monkeypatch):
    """150 published days before, 20 after: compacting P and D opens no ledger of theirs. A raw message in D's
    window carrying a late tick of an older (readable) day is still found on that day."""
    lake = qp_home / "lake"
    monkeypatch.setenv("QP_LAKE_URL", str(lake))
    monkeypatch.setenv("QP_TICK_LATENESS_MINUTES", "0")
    before = _days(date(2025, 1, 1), 150)  # 2025-01-01 .. 2025-05-30
    for i, day in enumerate(before[:-1]):
        far_day(lake, day, 1000 + 10 * i, 1000 + 10 * i + 9)
    # the last day before P is readable and received a late tick in D's window (raw seq 2560)
    older = before[-1]
    land(lake, older, range(2490, 2501))
    land(lake, older, [2560])
    p_day, d_day, n_day = "2025-06-01", "2025-06-02", "2025-06-03"
    land(lake, p_day, range(2501, 2541))
    land(lake, d_day, [s for s in range(2541, 2581) if s != 2560])
    land(lake, n_day, range(2581, 2591))
    for i, day in enumerate(_days(date(2025, 6, 10), 20)):
        far_day(lake, day, 20_000 + 10 * i, 20_000 + 10 * i + 9)

    older_run = materialize_day(instance, older, {"qp/raw_drained_seq": "2590"})
    assert older_run.success and checks_of(older_run)["complete_by_sequence"].passed
    tags = {"qp/raw_drained_seq": "2590"}
    p_run = materialize_day(instance, p_day, tags)
    assert p_run.success, "compacting P opened the ledger of a day it does not border"
    p_checks = checks_of(p_run)
    assert all(c.passed for c in p_checks.values()), {n: c.metadata for n, c in p_checks.items() if not c.passed}
    d_run = materialize_day(instance, d_day, tags)
    assert d_run.success
    comp = checks_of(d_run)["complete_by_sequence"].metadata
    assert comp["raw_seq_window"].value == "2541-2580"
    assert comp["raw_messages_missing"].value == 0
    assert comp["raw_messages_on_other_days"].value == 1  # 2560: the older day's late tick
    md = mat_md(d_run)
    # what D's accounting opened: its next day's landing files, and the older day only to place 2560
    assert json.loads(md["lake_days_read"]) == sorted([n_day, older])  # P's manifest range answered for P
    # P's previous day holds a late tick (2560) past P's first sequence: its ledger is read, as is D's landing
    assert json.loads(mat_md(p_run)["lake_days_read"]) == sorted([older, d_day])


# ------------------------------------------------------------------------------------------- 2. the DLQ
def test_the_dlq_is_read_from_the_previous_days_position(qp_home, instance, monkeypatch, tmp_path):
    """12 MB of old DLQ records (raw messages dead-lettered whole, long before P): compacting P reads them
    once; compacting D starts after them (the server sends D's run less than a tenth of it)."""
    import nats

    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.streams import ensure_streams

    lake = qp_home / "lake"
    monkeypatch.setenv("QP_LAKE_URL", str(lake))
    p_day, d_day = "2025-06-01", "2025-06-02"
    land(lake, p_day, [s for s in range(10_001, 10_041) if s not in (10_010, 10_020)])
    land(lake, d_day, [s for s in range(10_041, 10_081) if s != 10_050])
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        monkeypatch.setenv("QP_NATS_URL", srv.url)

        async def fill():
            nc = await nats.connect(srv.url)
            js = nc.jetstream()
            await ensure_streams(js)
            big = b"x" * 100_000
            for seq in range(1, 121):  # dead-lettered whole, days before P
                await js.publish("ticks.dlq.simulator", big, stream="TICKS_DLQ",
                                 headers={"Qp-Raw-Seq": str(seq), "Qp-Reason": "old", "Nats-Msg-Id": f"dlq:{seq}"})
            for seq in (10_010, 10_020, 10_050):
                await js.publish("ticks.dlq.simulator", b"{}", stream="TICKS_DLQ",
                                 headers={"Qp-Raw-Seq": str(seq), "Qp-Reason": "control frames only",
                                          "Nats-Msg-Id": f"dlq:{seq}"})
            await nc.close()

        asyncio.run(fill())
        tags = {"qp/raw_drained_seq": "10080"}
        p_run = materialize_day(instance, p_day, tags)
        assert p_run.success and checks_of(p_run)["complete_by_sequence"].passed
        sent = srv.varz()["out_bytes"]
        d_run = materialize_day(instance, d_day, tags)
        sent = srv.varz()["out_bytes"] - sent
    assert d_run.success
    comp = checks_of(d_run)["complete_by_sequence"].metadata
    assert comp["raw_messages_in_dlq"].value == 1 and comp["raw_messages_missing"].value == 0
    assert sent < 1_200_000, f"the server sent {sent:,} bytes for D's compaction: the old DLQ was read again"
    md = mat_md(d_run)
    assert md["dlq_records_read"] <= 3


# ------------------------------------------------------------------------------------------- 3. the sensor
def test_the_ingest_sensor_does_not_list_known_days_again(qp_home, instance, monkeypatch, tmp_path):
    import dagster as dg
    import nats

    from quant_platform.market.assets import market_ingest_sensor
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.streams import ensure_streams

    lake = qp_home / "lake"
    monkeypatch.setenv("QP_LAKE_URL", str(lake))
    monkeypatch.setenv("QP_TICK_LATENESS_MINUTES", "0")
    days = _days(datetime.now(UTC).date() - timedelta(days=61), 60)
    for i, day in enumerate(days):
        land(lake, day, range(100 * i + 1, 100 * i + 4), per_seq=1)
    hour_ago = time.time() - 3600  # the days landed long ago
    for d in (lake / "ticks" / "landing").rglob("*"):
        os.utime(d, (hour_ago, hour_ago))
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        monkeypatch.setenv("QP_NATS_URL", srv.url)

        async def declare():
            nc = await nats.connect(srv.url)
            await ensure_streams(nc.jetstream())
            await nc.close()

        asyncio.run(declare())
        first = market_ingest_sensor(dg.build_sensor_context(instance=instance))
        assert sorted(r.partition_key for r in first.run_requests) == days
        second = market_ingest_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert len(second.run_requests) == 0, "known days were listed and requested again"
        assert json.loads(first.cursor)["landing_listed"] == 60
        assert json.loads(second.cursor)["landing_listed"] == 0
        # a late tick lands in one known day: only that day is listed again, under a new run key
        land(lake, days[10], [100 * 10 + 50], per_seq=1)
        third = market_ingest_sensor(dg.build_sensor_context(instance=instance, cursor=second.cursor))
        assert [r.partition_key for r in third.run_requests] == [days[10]]
        old_key = next(r.run_key for r in first.run_requests if r.partition_key == days[10])
        assert third.run_requests[0].run_key != old_key
        assert json.loads(third.cursor)["landing_listed"] == 1


# ------------------------------------------------------------------------------------------- 4. retention
def test_abandoned_landing_days_are_quarantined_with_a_warning_then_deleted(qp_home, instance, monkeypatch):
    from quant_platform.market import compaction as cp
    from quant_platform.market.assets import market_retention_job

    lake = qp_home / "lake"
    monkeypatch.setenv("QP_LAKE_URL", str(lake))
    monkeypatch.setenv("QP_OLAP_RETENTION_DAYS", "3")
    monkeypatch.setenv("QP_TICK_QUARANTINE_AFTER_DAYS", "7")
    monkeypatch.setenv("QP_TICK_QUARANTINE_KEEP_DAYS", "30")
    today = datetime.now(UTC).date()
    published, failed, late, young = (_days(today - timedelta(days=n), 1)[0] for n in (10, 9, 8, 5))
    land(lake, published, range(1, 5))
    land(lake, failed, range(5, 9))  # its compaction never published (say, a blocking check failed)
    land(lake, late, range(9, 13))
    land(lake, young, range(13, 17))  # unpublished too, but not old enough to give up on
    for day in (published, late):
        staged = cp.stage_day(lake, day)
        cp.publish_staged(lake, staged, {"published": True})
    land(lake, late, [99])  # a late file its compaction never covered

    run = market_retention_job.execute_in_process(instance=instance)
    assert run.success
    landing = lake / "ticks" / "landing"
    assert not (landing / f"date={published}").exists()  # published and covered: deleted, as before
    assert (landing / f"date={young}").exists()
    for day in (failed, late):
        assert not (landing / f"date={day}").exists(), f"abandoned landing day {day} left in place"
        [batch] = (lake / "ticks" / "quarantine" / f"date={day}").iterdir()
        record = json.loads((batch / "_quarantine.json").read_text())
        assert record["day"] == day and record["files"] and record["bytes"] > 0
        assert record["reason"] == ("not published" if day == failed else "landing files not covered by the "
                                                                          "published compaction")
        assert record["rows"] == (8 if day == failed else 10)  # the landing files' rows, late file included
    evaluations = [e.asset_check_evaluation_data for e in run.all_events
                   if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    warned = {e.partition: e for e in evaluations if not e.passed}
    assert set(warned) == {failed, late}
    assert all(e.severity.value == "WARN" and e.check_name == "landing_not_abandoned" for e in warned.values())

    # Quarantine is kept QP_TICK_QUARANTINE_KEEP_DAYS, then deleted (and the warning resolved).
    monkeypatch.setenv("QP_TICK_QUARANTINE_KEEP_DAYS", "0")
    run2 = market_retention_job.execute_in_process(instance=instance)
    assert run2.success
    assert not any((lake / "ticks" / "quarantine").glob("date=*/*"))
    resolved = {e.asset_check_evaluation_data.partition for e in run2.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.asset_check_evaluation_data.passed}
    assert resolved == {failed, late}
