"""release_on_time judges when a week's rows were committed to the warehouse, against the real release
calendars and a fixed `now`: on time, late (fetched on time and loaded hours later, or published late by the
vendor) and missing weeks.

Never judge with the wall clock here: every instant is fixed, and the calendar's holidays are the real ones.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from quant_platform.platform.calendars import NEW_YORK

# WPSR weeks of May 2026: released Wednesdays 10:30 New York, except the Memorial Day week (Monday 25 May),
# released Thursday 28 May at 11:00.
BEFORE_START, W1, W2, HOLIDAY_WEEK = date(2026, 5, 1), date(2026, 5, 8), date(2026, 5, 15), date(2026, 5, 22)


def _loaded(wh, week: date, fetched_after: timedelta, loaded_after: timedelta) -> None:
    """The governance.raw_files row a WPSR load writes with its rows (loading.record_raw_files)."""
    from quant_platform.governance.tables import RAW_FILES
    from quant_platform.platform.calendars import wpsr_release_at

    release = wpsr_release_at(week)
    wh.append_rows(RAW_FILES, pd.DataFrame([{
        "vendor": "eia", "dataset": "wpsr_table1", "partition_key": week.isoformat(), "sha256": f"{week:%Y%m%d}" * 8,
        "lake_path": f"raw/eia/wpsr_table1/{week}/x.csv", "size_bytes": 100, "url": "https://ir.eia.gov/wpsr/table1.csv",
        "etag": None, "last_modified": None, "fetched_at": release + fetched_after, "scheduled_release_at": release,
        "revision": 1, "loaded_at": release + loaded_after,
    }]))


def _judge(wh, now: datetime):
    from quant_platform.macro.release_checks import _result, release_lateness
    from quant_platform.platform.calendars import latest_wpsr_week_released, wpsr_release_at

    outcome = release_lateness(wh, vendor="eia", datasets=("wpsr_table1",), latest_due=latest_wpsr_week_released,
                               release_at=wpsr_release_at, now=now)
    result = _result(outcome)
    assert result.severity.value == "WARN"
    return outcome, result


def test_weeks_in_the_warehouse_within_the_hour_pass(warehouse):
    _loaded(warehouse, W1, timedelta(minutes=2), timedelta(minutes=6))
    _loaded(warehouse, W2, timedelta(minutes=1), timedelta(minutes=58))
    # Loaded 25 hours after the usual Wednesday slot: on time only because the calendar knows the holiday.
    _loaded(warehouse, HOLIDAY_WEEK, timedelta(minutes=3), timedelta(minutes=20))
    outcome, result = _judge(warehouse, datetime(2026, 5, 28, 12, 30, tzinfo=NEW_YORK))
    assert result.passed, result.metadata
    # W1's release came before the platform's first fetch (W1's file): only W2 and the holiday week are judged.
    assert outcome["judged"] == 2
    assert result.metadata["late_partitions"].value == "none"
    assert result.metadata["missing_partitions"].value == "none"


def test_a_week_fetched_on_time_but_loaded_three_hours_later_is_late(warehouse):
    _loaded(warehouse, W1, timedelta(minutes=2), timedelta(minutes=6))
    _loaded(warehouse, W2, timedelta(minutes=2), timedelta(hours=3, minutes=2))
    outcome, result = _judge(warehouse, datetime(2026, 5, 20, 16, 0, tzinfo=NEW_YORK))
    assert not result.passed
    late = "2026-05-15 (loaded 3.0 h after release, first seen 0.0 h after: the load was late)"
    assert outcome["late"] == [late] and outcome["missing"] == []
    assert result.metadata["late_partitions"].value == late
    assert result.metadata["releases_judged"].value == 1  # W1 was released before the platform's first fetch


def test_a_week_the_vendor_published_late_says_so(warehouse):
    """The platform saw the file only 3 hours after the scheduled release and loaded it at once: late, and the
    lateness is the vendor's (its first sight is the rows' available_at)."""
    _loaded(warehouse, W1, timedelta(minutes=2), timedelta(minutes=6))
    _loaded(warehouse, W2, timedelta(hours=3), timedelta(hours=3, minutes=1))
    outcome, _ = _judge(warehouse, datetime(2026, 5, 20, 16, 0, tzinfo=NEW_YORK))
    assert outcome["late"] == ["2026-05-15 (loaded 3.0 h after release, first seen 3.0 h after: the vendor was "
                               "late)"]


def test_a_week_never_loaded_is_missing(warehouse):
    _loaded(warehouse, W1, timedelta(minutes=2), timedelta(minutes=6))
    # W2 was never loaded (e.g. its file failed a blocking check: no rows, so no raw_files row either).
    _loaded(warehouse, HOLIDAY_WEEK, timedelta(minutes=3), timedelta(minutes=20))
    outcome, result = _judge(warehouse, datetime(2026, 5, 28, 12, 30, tzinfo=NEW_YORK))
    assert not result.passed
    assert outcome["missing"] == ["2026-05-15 (due 2026-05-20 10:30 EDT)"] and outcome["late"] == []
    assert result.metadata["missing_partitions"].value == "2026-05-15 (due 2026-05-20 10:30 EDT)"
    assert BEFORE_START.isoformat() not in result.metadata["missing_partitions"].value


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_a_load_commits_its_rows_and_their_loaded_at_together(simulator, warehouse, instance):
    """The real load path: with governance.raw_files unwritable the load writes no rows either; once it is
    back, the retry's raw_files.loaded_at is the commit stamp the materialization reports."""
    from quant_platform.definitions import defs
    from quant_platform_tests.release_helpers import evaluate_sensor, execute_requests

    def rows() -> int:
        return int(warehouse.scalar("SELECT count(*) FROM macro.eia_wpsr WHERE week_ending = :w",
                                    {"w": date(2026, 4, 24)}))

    reqs, _, _ = evaluate_sensor(defs, "eia_wpsr_release_sensor", instance, None)
    assert [r.partition_key for r in reqs] == ["2026-04-24"]
    warehouse.execute("ALTER TABLE governance.raw_files RENAME TO raw_files_away")
    try:
        failed = execute_requests(defs, instance, reqs)[0]
    finally:
        warehouse.execute("ALTER TABLE governance.raw_files_away RENAME TO raw_files")
    assert not failed.success
    assert rows() == 0, "rows committed without their raw_files entry"
    assert execute_requests(defs, instance, reqs)[0].success
    assert rows() == 540
    meta = instance.get_latest_materialization_event(defs.get_assets_def(["macro", "eia_wpsr"]).key)
    stamp = pd.Timestamp(meta.asset_materialization.metadata["loaded_at"].value)
    got = warehouse.query_df("SELECT fetched_at, loaded_at FROM governance.raw_files").iloc[0]
    assert pd.Timestamp(got["loaded_at"]).tz_convert("UTC") == stamp
    assert pd.Timestamp(got["fetched_at"]) <= pd.Timestamp(got["loaded_at"])
