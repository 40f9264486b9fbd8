"""Release calendars of the vendors: when each report partition is due, holidays included.

Holidays come from pandas' USFederalHolidayCalendar; never hand-write a list of dates here.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import dagster as dg
from pandas.tseries.holiday import USFederalHolidayCalendar

NEW_YORK = ZoneInfo("America/New_York")

WPSR_RELEASE_TIME = time(10, 30)
# When a federal holiday delays the WPSR, EIA publishes the next business day at 11:00.
WPSR_DELAYED_RELEASE_TIME = time(11, 0)
COT_RELEASE_TIME = time(15, 30)

# Partition keys are the report's own reference date: the Friday ending the WPSR week, the Tuesday a
# COT report measures. end_offset=1 opens the current week's partition as soon as its key date starts,
# because both reports are released inside the week that follows their key date.
WPSR_WEEKLY_PARTITIONS = dg.WeeklyPartitionsDefinition(
    start_date="2010-01-01", day_offset=5, end_offset=1, timezone="America/New_York"
)
COT_WEEKLY_PARTITIONS = dg.WeeklyPartitionsDefinition(
    start_date="2006-06-13", day_offset=2, end_offset=1, timezone="America/New_York"
)


# Freshness: due one hour after the normal scheduled release (holiday weeks are judged by the
# release_on_time checks, which apply the holiday calendar).
WPSR_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="30 11 * * 3", lower_bound_delta=timedelta(hours=1, minutes=5), timezone="America/New_York"
)
COT_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="30 16 * * 5", lower_bound_delta=timedelta(hours=1, minutes=5), timezone="America/New_York"
)


@lru_cache(maxsize=64)
def federal_holidays(year: int) -> frozenset[date]:
    cal = USFederalHolidayCalendar()
    days = cal.holidays(start=f"{year - 1}-12-01", end=f"{year + 1}-01-31")
    return frozenset(d.date() for d in days)


def is_business_day(d: date) -> bool:
    return d.weekday() < 5 and d not in federal_holidays(d.year)


def _next_business_day(d: date) -> date:
    d += timedelta(days=1)
    while not is_business_day(d):
        d += timedelta(days=1)
    return d


def _holidays_between(first: date, last: date) -> int:
    return sum(1 for n in range((last - first).days + 1) if (first + timedelta(days=n)) in federal_holidays(
        (first + timedelta(days=n)).year))


def wpsr_release_at(week_ending: date) -> datetime:
    """Scheduled release of the WPSR for the week ending `week_ending` (a Friday).

    Normally the following Wednesday 10:30 New York time. Each federal holiday from the Monday to the
    Wednesday of the release week pushes the release one business day later, at 11:00.
    """
    if week_ending.weekday() != 4:
        raise ValueError(f"WPSR weeks end on a Friday, {week_ending} is a {week_ending:%A}")
    monday = week_ending + timedelta(days=3)
    release = week_ending + timedelta(days=5)
    delays = _holidays_between(monday, release)
    for _ in range(delays):
        release = _next_business_day(release)
    at = WPSR_DELAYED_RELEASE_TIME if delays else WPSR_RELEASE_TIME
    return datetime.combine(release, at, tzinfo=NEW_YORK)


def cot_release_at(as_of: date) -> datetime:
    """Scheduled release of the COT report for positions as of `as_of` (a Tuesday).

    Normally the Friday after, 15:30 New York time; each federal holiday in the week (Monday to Friday)
    pushes it one business day later.
    """
    if as_of.weekday() != 1:
        raise ValueError(f"COT reports are as of a Tuesday, {as_of} is a {as_of:%A}")
    monday = as_of - timedelta(days=1)
    release = as_of + timedelta(days=3)
    for _ in range(_holidays_between(monday, release)):
        release = _next_business_day(release)
    return datetime.combine(release, COT_RELEASE_TIME, tzinfo=NEW_YORK)


def latest_wpsr_week_released(now: datetime) -> date:
    """The newest week ending whose WPSR is scheduled at or before `now`."""
    d = now.astimezone(NEW_YORK).date()
    friday = d - timedelta(days=(d.weekday() - 4) % 7)
    while wpsr_release_at(friday) > now:
        friday -= timedelta(days=7)
    return friday


def latest_cot_week_released(now: datetime) -> date:
    d = now.astimezone(NEW_YORK).date()
    tuesday = d - timedelta(days=(d.weekday() - 1) % 7)
    while cot_release_at(tuesday) > now:
        tuesday -= timedelta(days=7)
    return tuesday


def release_window_open(scheduled: datetime, now: datetime, early: timedelta = timedelta(minutes=5)) -> bool:
    """Whether a release sensor should poll now: from a few minutes before the scheduled release on."""
    return now >= scheduled - early
