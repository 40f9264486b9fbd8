"""The object-store lake's Iceberg catalog: an unreachable one is a one-line configuration error. (The whole tick
lane on the S3 lake, with a killed lander, is test_tick_lane_lakes.py.)"""

from __future__ import annotations

import uuid

import pytest

from quant_platform_tests.s3_server import s3_server  # noqa: F401 - the session fixture


def test_a_lake_url_with_an_unreachable_catalog_is_one_line(s3_server, monkeypatch, tmp_path):  # noqa: F811
    from quant_platform.errors import ConfigError
    from quant_platform.market.tick_store import TickStore

    lake_url = s3_server.lake_env(monkeypatch, prefix=f"lake-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigError) as err:
        TickStore(lake_url, catalog_uri="postgresql+psycopg2://postgres@127.0.0.1:1/none")
    assert "\n" not in str(err.value) and "Iceberg catalog" in str(err.value)


@pytest.mark.timeout(180)
def test_retention_quarantine_and_orphans_on_the_s3_lake(s3_server, qp_home, instance, monkeypatch):  # noqa: F811
    """The retention job on an object-store lake: a covered published day leaves ticks_landing, a never-published
    day and a day with a late file go to quarantine objects (WARN check per day), the quarantine is deleted after
    its keep days (check resolved), objects no snapshot references are deleted, and a restored batch is back."""
    import json
    from datetime import UTC, datetime, timedelta

    import pyarrow.fs as pafs

    from quant_platform.market import compaction as cp
    from quant_platform.market.assets import market_retention_job
    from quant_platform.market.tick_store import TickStore, working_copy
    from quant_platform_tests.test_market_history_bounds import tick_table

    lake = s3_server.lake_env(monkeypatch)
    monkeypatch.setenv("QP_ICEBERG_CATALOG_URL", f"sqlite:///{qp_home / 'catalog.db'}")
    monkeypatch.setenv("QP_OLAP_RETENTION_DAYS", "3")
    monkeypatch.setenv("QP_TICK_QUARANTINE_AFTER_DAYS", "7")
    monkeypatch.setenv("QP_TICK_QUARANTINE_KEEP_DAYS", "30")
    store = TickStore(lake)
    today = datetime.now(UTC).date()
    published, failed, late, young = ((today - timedelta(days=n)).isoformat() for n in (10, 9, 8, 5))
    seq = iter(range(1, 100))

    def land(day: str, seqs) -> None:
        n = next(seq)
        store.land(tick_table(day, seqs, 2), n, n, {s: 2 for s in seqs})

    land(published, range(1, 5))
    land(published, range(5, 7))  # two files: the small-file compaction leaves the first two unreferenced
    land(failed, range(7, 11))
    land(late, range(11, 15))
    land(young, range(15, 19))
    root = working_copy(lake, qp_home)
    for day in (published, late):
        store.compact_landing(day)
        store.pull_landing(root, day)
        cp.publish_staged(root, cp.stage_day(root, day), {"published": True})
        store.publish_daily(root, day)
    land(late, [99])  # a late file its compaction never covered
    assert store.abandoned_reason(published) is None and store.abandoned_reason(late) == cp.NOT_COVERED

    run = market_retention_job.execute_in_process(instance=instance)
    assert run.success
    assert sorted(store.landing_days()) == [young]
    fs = s3_server.filesystem()
    records = {}
    for day in (failed, late):
        infos = fs.get_file_info(pafs.FileSelector(f"{lake.removeprefix('s3://')}/ticks/quarantine/date={day}",
                                                   recursive=True))
        names = sorted(i.path.rsplit("/", 1)[1] for i in infos if i.type == pafs.FileType.File)
        [rec_path] = [i.path for i in infos if i.path.endswith("/_quarantine.json")]
        with fs.open_input_stream(rec_path) as f:
            records[day] = json.loads(f.read())
        assert len(names) == len(records[day]["files"]) + 1  # each landing file copied, and the record
        assert records[day]["rows"] == (8 if day == failed else 10)
    assert records[failed]["reason"] == cp.NOT_PUBLISHED and records[late]["reason"] == cp.NOT_COVERED
    warned = {e.asset_check_evaluation_data.partition for e in run.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed}
    assert warned == {failed, late}

    # objects no retained snapshot references (the compacted small files once their snapshots expire) go
    store.expire_snapshots(older_than_s=0)
    deleted = store.delete_orphans(older_than_s=0)
    assert deleted["landing"] >= 2  # the published day's two small files (its compacted file left the table too)
    bucket_keys = {i.path for i in fs.get_file_info(pafs.FileSelector(
        f"{lake.removeprefix('s3://')}/ticks/landing", recursive=True)) if i.type == pafs.FileType.File}
    assert bucket_keys == {f.path.removeprefix("s3://") for f in store.landing_files()}
    assert store.daily_rows() == {published: 12, late: 8}  # published days untouched

    # a quarantined batch restored is back in the table; after the keep days the rest is deleted
    batch = records[failed]["path"].rsplit("/", 1)[1]
    assert store.restore_quarantine(failed, batch) == len(records[failed]["files"])
    assert sum(f.rows for f in store.landing_files(failed)) == 8
    monkeypatch.setenv("QP_TICK_QUARANTINE_KEEP_DAYS", "0")
    monkeypatch.setenv("QP_TICK_QUARANTINE_AFTER_DAYS", "30")  # the restored day is left alone this time
    run2 = market_retention_job.execute_in_process(instance=instance)
    assert run2.success
    resolved = {e.asset_check_evaluation_data.partition for e in run2.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.asset_check_evaluation_data.passed}
    assert resolved == {late}
    left = fs.get_file_info(pafs.FileSelector(f"{lake.removeprefix('s3://')}/ticks/quarantine", recursive=True,
                                              allow_not_found=True))
    assert [i.path for i in left if i.type == pafs.FileType.File] == []
