"""Release calendars against pandas' USFederalHolidayCalendar.

Holiday facts are computed here from pandas (an independent oracle using CustomBusinessDay), never only
read back from calendars.py, so a wrong holiday window or a wrong roll shows up as a mismatch.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import pytest
from pandas.tseries.holiday import USFederalHolidayCalendar
from pandas.tseries.offsets import CustomBusinessDay

from quant_platform.platform.calendars import (
    COT_WEEKLY_PARTITIONS,
    NEW_YORK,
    WPSR_WEEKLY_PARTITIONS,
    cot_release_at,
    is_business_day,
    latest_cot_week_released,
    latest_wpsr_week_released,
    wpsr_release_at,
)

CAL = USFederalHolidayCalendar()
BDAY = CustomBusinessDay(calendar=CAL)


def pandas_holidays(first: date, last: date) -> list[date]:
    return [d.date() for d in CAL.holidays(start=first.isoformat(), end=last.isoformat())]


def pandas_is_business_day(d: date) -> bool:
    return d.weekday() < 5 and not pandas_holidays(d, d)


def expected_wpsr(week_ending: date) -> datetime:
    """Oracle: Wednesday 10:30; each holiday Mon..Wed of the release week rolls one business day, at 11:00."""
    monday, wednesday = week_ending + timedelta(days=3), week_ending + timedelta(days=5)
    n = len(pandas_holidays(monday, wednesday))
    if n == 0:
        return datetime.combine(wednesday, time(10, 30), tzinfo=NEW_YORK)
    day = (pd.Timestamp(wednesday) + n * BDAY).date()
    return datetime.combine(day, time(11, 0), tzinfo=NEW_YORK)


def expected_cot(as_of: date) -> datetime:
    """Oracle: Friday 15:30; each holiday Mon..Fri of the as-of week rolls one business day."""
    monday, friday = as_of - timedelta(days=1), as_of + timedelta(days=3)
    n = len(pandas_holidays(monday, friday))
    day = (pd.Timestamp(friday) + n * BDAY).date() if n else friday
    return datetime.combine(day, time(15, 30), tzinfo=NEW_YORK)


# ------------------------------------------------------------------------------------------- WPSR


def test_normal_week_is_wednesday_1030_new_york():
    week = date(2026, 4, 24)
    assert pandas_holidays(week + timedelta(days=3), week + timedelta(days=5)) == []
    got = wpsr_release_at(week)
    assert got == datetime(2026, 4, 29, 10, 30, tzinfo=NEW_YORK)
    assert got == expected_wpsr(week)
    assert got.tzinfo is not None and got.utcoffset() == timedelta(hours=-4)  # EDT
    assert got.weekday() == 2


def test_memorial_day_week_is_thursday_1100():
    week = date(2025, 5, 23)
    holidays = pandas_holidays(week + timedelta(days=3), week + timedelta(days=5))
    assert holidays == [date(2025, 5, 26)]  # pandas: Memorial Day, the Monday of the release week
    assert holidays[0].weekday() == 0
    got = wpsr_release_at(week)
    assert got == datetime(2025, 5, 29, 11, 0, tzinfo=NEW_YORK)
    assert got == expected_wpsr(week)


def test_christmas_on_wednesday_week_is_thursday_1100():
    week = date(2024, 12, 20)
    holidays = pandas_holidays(week + timedelta(days=3), week + timedelta(days=5))
    assert holidays == [date(2024, 12, 25)]
    assert holidays[0].weekday() == 2  # Christmas falls on the usual release day
    got = wpsr_release_at(week)
    assert got == datetime(2024, 12, 26, 11, 0, tzinfo=NEW_YORK)
    assert got == expected_wpsr(week)
    assert got.utcoffset() == timedelta(hours=-5)  # EST


def test_wpsr_matches_pandas_oracle_for_every_week_2015_to_2030():
    week = date(2015, 1, 2)
    delayed = 0
    while week <= date(2030, 12, 27):
        got = wpsr_release_at(week)
        assert got == expected_wpsr(week), week
        assert pandas_is_business_day(got.date()), week
        assert got.date() > week
        delayed += got.time() == time(11, 0)
        week += timedelta(days=7)
    assert delayed > 30  # the holiday path was exercised many times, not only the normal one


@pytest.mark.parametrize("day", [date(2026, 4, 23), date(2026, 4, 25), date(2026, 4, 21), date(2026, 4, 20)])
def test_wpsr_rejects_non_friday(day):
    with pytest.raises(ValueError, match="Friday"):
        wpsr_release_at(day)


# ------------------------------------------------------------------------------------------- COT


def test_thanksgiving_week_cot_is_next_business_day_after_friday_1530():
    as_of = date(2025, 11, 25)
    friday = date(2025, 11, 28)
    holidays = pandas_holidays(as_of - timedelta(days=1), friday)
    assert holidays == [date(2025, 11, 27)]  # pandas: Thanksgiving Thursday; Friday after is not federal
    got = cot_release_at(as_of)
    assert got == expected_cot(as_of)
    assert got.date() > friday
    assert pandas_is_business_day(got.date())
    assert got.date() == (pd.Timestamp(friday) + BDAY).date()  # Monday 2025-12-01
    assert got.time() == time(15, 30)
    assert got.tzinfo is not None and got.utcoffset() == timedelta(hours=-5)


def test_normal_cot_week_is_friday_1530():
    as_of = date(2026, 4, 21)
    assert pandas_holidays(as_of - timedelta(days=1), as_of + timedelta(days=3)) == []
    assert cot_release_at(as_of) == datetime(2026, 4, 24, 15, 30, tzinfo=NEW_YORK)


def test_cot_matches_pandas_oracle_for_every_week_2015_to_2030():
    as_of = date(2015, 1, 6)
    while as_of <= date(2030, 12, 31):
        got = cot_release_at(as_of)
        assert got == expected_cot(as_of), as_of
        assert pandas_is_business_day(got.date()), as_of
        as_of += timedelta(days=7)


@pytest.mark.parametrize("day", [date(2025, 11, 24), date(2025, 11, 26), date(2025, 11, 28), date(2025, 11, 30)])
def test_cot_rejects_non_tuesday(day):
    with pytest.raises(ValueError, match="Tuesday"):
        cot_release_at(day)


def test_is_business_day_agrees_with_pandas_over_three_years():
    d = date(2024, 1, 1)
    while d <= date(2026, 12, 31):
        assert is_business_day(d) == pandas_is_business_day(d), d
        d += timedelta(days=1)


# ------------------------------------------------------------------------------------------- latest released


def test_latest_wpsr_week_released_around_the_release_instant():
    release = wpsr_release_at(date(2026, 4, 24))
    assert latest_wpsr_week_released(release - timedelta(seconds=1)) == date(2026, 4, 17)
    assert latest_wpsr_week_released(release) == date(2026, 4, 24)
    assert latest_wpsr_week_released(release + timedelta(seconds=1)) == date(2026, 4, 24)
    # The same instants expressed in UTC give the same answers.
    utc = release.astimezone(UTC)
    assert latest_wpsr_week_released(utc - timedelta(seconds=1)) == date(2026, 4, 17)
    assert latest_wpsr_week_released(utc) == date(2026, 4, 24)


def test_latest_wpsr_week_released_waits_for_a_holiday_delay():
    # Memorial Day week: the usual Wednesday 10:30 slot passes without a release.
    usual_slot = datetime(2025, 5, 28, 10, 30, tzinfo=NEW_YORK)
    assert latest_wpsr_week_released(usual_slot + timedelta(hours=1)) == date(2025, 5, 16)
    delayed = wpsr_release_at(date(2025, 5, 23))
    assert latest_wpsr_week_released(delayed - timedelta(seconds=1)) == date(2025, 5, 16)
    assert latest_wpsr_week_released(delayed + timedelta(seconds=1)) == date(2025, 5, 23)


def test_latest_cot_week_released_around_thanksgiving():
    release = cot_release_at(date(2025, 11, 25))
    assert latest_cot_week_released(datetime(2025, 11, 28, 16, 0, tzinfo=NEW_YORK)) == date(2025, 11, 18)
    assert latest_cot_week_released(release - timedelta(seconds=1)) == date(2025, 11, 18)
    assert latest_cot_week_released(release) == date(2025, 11, 25)


# ------------------------------------------------------------------------------------------- partitions


def _keys(pdef, current_time: datetime) -> list[date]:
    return [date.fromisoformat(k) for k in pdef.get_partition_keys(current_time=current_time)]


def test_wpsr_partition_keys_are_fridays():
    keys = _keys(WPSR_WEEKLY_PARTITIONS, datetime(2026, 5, 1, 12, tzinfo=NEW_YORK))
    assert len(keys) > 800
    assert keys[0] == date(2010, 1, 1)
    sample = keys[:60] + keys[400:460] + keys[-60:]
    assert all(k.weekday() == 4 for k in sample), [k for k in sample if k.weekday() != 4]
    assert all(b - a == timedelta(days=7) for a, b in zip(keys, keys[1:], strict=False))
    # Every key has a release time (wpsr_release_at accepts it).
    for k in keys[-60:]:
        assert wpsr_release_at(k).date() > k


def test_cot_partition_keys_are_tuesdays():
    keys = _keys(COT_WEEKLY_PARTITIONS, datetime(2026, 5, 1, 12, tzinfo=NEW_YORK))
    assert len(keys) > 1000
    assert keys[0] == date(2006, 6, 13)
    sample = keys[:60] + keys[500:560] + keys[-60:]
    assert all(k.weekday() == 1 for k in sample), [k for k in sample if k.weekday() != 1]
    assert all(b - a == timedelta(days=7) for a, b in zip(keys, keys[1:], strict=False))
    for k in keys[-60:]:
        assert cot_release_at(k).date() > k


def test_wpsr_partition_exists_on_its_key_date():
    key = date(2026, 4, 24)
    on_key = _keys(WPSR_WEEKLY_PARTITIONS, datetime(2026, 4, 24, 0, 1, tzinfo=NEW_YORK))
    assert on_key[-1] == key
    before = _keys(WPSR_WEEKLY_PARTITIONS, datetime(2026, 4, 23, 23, 59, tzinfo=NEW_YORK))
    assert before[-1] == key - timedelta(days=7)
    # By the time the report is released the partition is there.
    at_release = _keys(WPSR_WEEKLY_PARTITIONS, wpsr_release_at(key))
    assert key in at_release


def test_cot_partition_exists_on_its_key_date():
    key = date(2025, 11, 25)
    on_key = _keys(COT_WEEKLY_PARTITIONS, datetime(2025, 11, 25, 0, 1, tzinfo=NEW_YORK))
    assert on_key[-1] == key
    before = _keys(COT_WEEKLY_PARTITIONS, datetime(2025, 11, 24, 23, 59, tzinfo=NEW_YORK))
    assert before[-1] == key - timedelta(days=7)
    assert key in _keys(COT_WEEKLY_PARTITIONS, cot_release_at(key))
