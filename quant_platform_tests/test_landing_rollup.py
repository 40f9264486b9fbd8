"""The lander's in-day rollup of its small landing files (market/landing_rollup.py), on real Parquet files and on
the S3 server's Iceberg tables: the rolled file holds exactly the rows and raw tick counts of the files it
replaces, the day compacts to the same content either way, a rollup half done by a killed lander is finished at
the next start, and a rollup that lost the race to the day's small-file compaction changes nothing.

Expected values are read from the files the lake holds before the rollup, with pyarrow, not from the rollup."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pyarrow.parquet as pq

from quant_platform_tests.s3_server import s3_server  # noqa: F401 - the session fixture
from quant_platform_tests.test_market_history_bounds import tick_table

DAY, NEXT = "2026-03-02", "2026-03-03"


def _day_files(lake: Path, day: str) -> list[Path]:
    return sorted((lake / "ticks" / "landing" / f"date={day}").glob("source=*/*.parquet"))


def _raw_counts(files) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in files:
        out.update(json.loads(pq.read_schema(f).metadata[b"qp.raw_ticks"]))
    return out


def test_the_rollup_replaces_small_files_by_one_with_the_same_rows_and_counts(tmp_path):
    from quant_platform.market import compaction as cp
    from quant_platform.market.lake_landing import finish_rollups
    from quant_platform.market.lander import landing_target, tracking_land
    from quant_platform.market.landing_rollup import PAST_DAY_IDLE_S, LandingRollup

    lake = tmp_path / "lake"
    target = landing_target(lake)
    rollup = LandingRollup(target.roll, max_rows=10**9, max_age_s=60.0)
    land = tracking_land(target, rollup)
    for n in range(1, 6):  # five micro-batches of DAY, one of them redelivered (the same file written again)
        seqs = range(10 * n, 10 * n + 4)
        land(tick_table(DAY, seqs, 3), n, n, {s: 3 for s in seqs}, f"d{n}")
    land(tick_table(DAY, range(30, 34), 3), 3, 3, {s: 3 for s in range(30, 34)}, "d3", True)
    land(tick_table(NEXT, range(90, 92), 2), 6, 6, {s: 2 for s in range(90, 92)}, "d6")
    small = _day_files(lake, DAY)
    assert len(small) == 5 and len(rollup.groups[(DAY, "simulator")].names) == 5
    before = tmp_path / "before"
    shutil.copytree(lake, before)
    rows = sorted(tuple(r.values()) for f in small
                  for r in pq.read_table(f, columns=["event_id", "stream_seq", "price"]).to_pylist())

    # not due: young, few rows, DAY not over; due at its age
    assert rollup.due(now=0.0, today=DAY) == []
    t = rollup.groups[(DAY, "simulator")].started
    assert rollup.due(now=t + 60.0, today=DAY) == [(DAY, "simulator")]
    replaced, written = rollup.roll((DAY, "simulator"))
    assert replaced == 5 and written is not None
    [rolled] = _day_files(lake, DAY)
    assert rolled == written.path and "-r" in rolled.name and rolled.name.startswith("1-5-r") and rolled.name.endswith("n5.parquet")
    got = pq.read_table(rolled)
    assert sorted(tuple(r.values()) for r in got.select(["event_id", "stream_seq", "price"]).to_pylist()) == rows
    assert json.loads(got.schema.metadata[b"qp.raw_ticks"]) == _raw_counts(small_before := _day_files(before, DAY))
    assert sorted(json.loads(got.schema.metadata[b"qp.replaces"])) == sorted(f.name for f in small_before)

    # the next day's single file: forgotten once that day is over and idle, never rolled alone
    g = rollup.groups[(NEXT, "simulator")]
    assert rollup.due(now=g.last + PAST_DAY_IDLE_S, today="2026-03-04") == [] and not rollup.groups

    # the same compaction either way: rows, duplicates removed, raw accounting, content hash
    a, b = cp.stage_day(before, DAY), cp.stage_day(lake, DAY)
    assert (a.rows_in, a.rows_out, a.raw_seq_count, a.content_hash) == (b.rows_in, b.rows_out, b.raw_seq_count,
                                                                        b.content_hash)
    assert a.rows_out == 5 * 4 * 3

    # a lander killed between writing the rolled file and removing the small ones: the next start removes them
    for f in small_before[:2]:
        shutil.copy(f, rolled.parent / f.name)
    assert finish_rollups(lake, [DAY]) == 2 and _day_files(lake, DAY) == [rolled]
    assert finish_rollups(lake, [DAY]) == 0

    # the ingest sensor's signature of the day is the same before and after the rollup: no second compaction
    assert cp.landing_signature(_day_files(before, DAY)) == cp.landing_signature([rolled])
    # a rollup after the day's compaction: the rolled file counts as covered (retention, not quarantine)
    from quant_platform.market.lake_landing import roll_local

    cp.publish_staged(before, a, {"published": True})
    names = [f.name for f in small_before]
    merged = got.replace_schema_metadata({**got.schema.metadata, b"qp.replaces": json.dumps(names).encode()})
    roll_local(before, DAY, "simulator", names, merged)
    assert cp.abandoned_reason(before, DAY, _day_files(before, DAY)) is None
    from quant_platform.market.lake_landing import land_batch

    land_batch(before, tick_table(DAY, [99], 1), 7, 7, {99: 1}, "d7")  # a late file: not covered
    assert cp.abandoned_reason(before, DAY, _day_files(before, DAY)) == cp.NOT_COVERED


def test_the_rollup_on_the_s3_lake_is_one_commit_and_loses_a_race_without_loss(s3_server, qp_home,  # noqa: F811
                                                                              monkeypatch):
    import pyarrow as pa
    import pyarrow.fs as pafs

    from quant_platform.market.lander import landing_target, tracking_land
    from quant_platform.market.landing_rollup import LandingRollup

    lake = s3_server.lake_env(monkeypatch, prefix=f"lake-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("QP_ICEBERG_CATALOG_URL", f"sqlite:///{qp_home / 'catalog.db'}")
    store = landing_target(lake)
    rollup = LandingRollup(store.roll, max_rows=20, max_age_s=3600.0)
    land = tracking_land(store, rollup)
    for n in range(1, 4):
        seqs = range(10 * n, 10 * n + 4)
        land(tick_table(DAY, seqs, 2), n, n, {s: 2 for s in seqs}, f"e{n}")
    small = store.landing_files(DAY)
    expected = sorted(e for f in small for e in pq.read_table(pa.BufferReader(store._get(f.path)))["event_id"]
                      .to_pylist())
    assert len(small) == 3 and rollup.due(now=0.0, today=DAY) == [(DAY, "simulator")]  # 24 rows >= 20
    snapshots = len(list(store.landing.snapshots()))
    replaced, written = rollup.roll((DAY, "simulator"))
    [rolled] = store.landing_files(DAY)
    assert replaced == 3 and rolled.path == written.path and rolled.rows == len(expected)
    assert len(list(store.landing.snapshots())) == snapshots + 1
    got = pq.read_table(pa.BufferReader(store._get(rolled.path)))
    assert sorted(got["event_id"].to_pylist()) == expected
    assert json.loads(got.schema.metadata[b"qp.raw_ticks"]) == {str(s): 2 for n in range(1, 4)
                                                                for s in range(10 * n, 10 * n + 4)}

    # two more files; the day's small-file compaction takes them before the lander's rollup does
    for n in (4, 5):
        seqs = range(10 * n, 10 * n + 4)
        land(tick_table(DAY, seqs, 2), n, n, {s: 2 for s in seqs}, f"e{n}")
    assert store.compact_landing(DAY) == {"simulator": 3}
    [compacted] = store.landing_files(DAY)
    replaced, written = rollup.roll((DAY, "simulator"))
    assert replaced == 2 and written is None  # nothing done
    assert store.landing_files(DAY) == [compacted] and compacted.rows == 5 * 8
    fs = s3_server.filesystem()
    folder = f"{lake.removeprefix('s3://')}/ticks/landing/date={DAY}/source=simulator"
    names = {i.path.rsplit("/", 1)[1] for i in fs.get_file_info(pafs.FileSelector(folder))}
    assert written is None and not any(n.startswith("4-5-r") for n in names)  # its object was deleted again
