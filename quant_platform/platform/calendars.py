"""Release calendars of the vendors: when each report partition is due, holidays included.

Holidays come from pandas' USFederalHolidayCalendar; never hand-write a list of dates here.

A weekly report's calendar is one WeeklyReleaseCalendar: the weekday of its reference date (the partition key),
how many days later it is released and at what New York time, and which days' federal holidays delay it. The
WPSR and COT calendars below are shared by every report of the same release; a report with its own release
declares its calendar in its folder (macro/reports/<report>/) with the same class.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo

import dagster as dg
from pandas.tseries.holiday import USFederalHolidayCalendar

NEW_YORK = ZoneInfo("America/New_York")

WPSR_RELEASE_TIME = time(10, 30)
# When a federal holiday delays the WPSR, EIA publishes the next business day at 11:00.
WPSR_DELAYED_RELEASE_TIME = time(11, 0)
COT_RELEASE_TIME = time(15, 30)

# Freshness: due one hour after the normal scheduled release (holiday weeks are judged by the release_on_time
# checks, which apply the holiday calendar).
FRESHNESS_DUE_AFTER_RELEASE = timedelta(hours=1)
FRESHNESS_LOWER_BOUND = timedelta(hours=1, minutes=5)


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


@dataclass(frozen=True)
class WeeklyReleaseCalendar:
    """A report released once a week for a reference date (its partition key), at a New York time.

    The release is `release_after_days` after the reference date at `release_time`. Each federal holiday from
    `holidays_from_day` (days after the reference date, negative for before) to the scheduled release day moves
    it one business day later, at `delayed_release_time` when the vendor publishes delayed releases at another
    time.
    """

    name: str  # "WPSR": how messages and the catalog name the release
    reference_weekday: int  # of the partition key, Monday = 0: 4 (Friday) ends a WPSR week, 1 (Tuesday) a COT as-of
    reference_rule: str  # said when a key is not on reference_weekday, e.g. "WPSR weeks end on a Friday"
    partition_label: str  # how a partition is named in messages: "week", "as-of"
    release_after_days: int
    release_time: time
    holidays_from_day: int
    partitions_start: str  # first partition key, YYYY-MM-DD
    description: str  # the release rule in words, for the catalog
    delayed_release_time: time | None = None  # None: a delayed release keeps release_time
    # A vendor that publishes the business day before when its release day is a federal holiday (EIA's gas storage
    # report: Thanksgiving Thursday -> Wednesday), at early_release_time (None: release_time).
    holiday_on_release_day_moves_earlier: bool = False
    early_release_time: time | None = None

    def release_at(self, reference: date) -> datetime:
        """Scheduled release of the partition whose reference date is `reference`, holidays applied."""
        if reference.weekday() != self.reference_weekday:
            raise ValueError(f"{self.reference_rule}, {reference} is a {reference:%A}")
        release = reference + timedelta(days=self.release_after_days)
        if self.holiday_on_release_day_moves_earlier and not is_business_day(release):
            release -= timedelta(days=1)
            while not is_business_day(release):
                release -= timedelta(days=1)
            return datetime.combine(release, self.early_release_time or self.release_time, tzinfo=NEW_YORK)
        delays = _holidays_between(reference + timedelta(days=self.holidays_from_day), release)
        for _ in range(delays):
            release = _next_business_day(release)
        at = self.delayed_release_time if delays and self.delayed_release_time else self.release_time
        return datetime.combine(release, at, tzinfo=NEW_YORK)

    def latest_released(self, now: datetime) -> date:
        """The newest reference date whose release is scheduled at or before `now`."""
        d = now.astimezone(NEW_YORK).date()
        reference = d - timedelta(days=(d.weekday() - self.reference_weekday) % 7)
        while self.release_at(reference) > now:
            reference -= timedelta(days=7)
        return reference

    @cached_property
    def partitions(self) -> dg.WeeklyPartitionsDefinition:
        """Partition keys are the reference dates. end_offset=1 opens the current week's partition as soon as its
        key date starts, because the report is released inside the week that follows its key date."""
        return dg.WeeklyPartitionsDefinition(start_date=self.partitions_start,
                                             day_offset=(self.reference_weekday + 1) % 7, end_offset=1,
                                             timezone="America/New_York")

    @cached_property
    def freshness_policy(self) -> dg.FreshnessPolicy:
        """Due one hour after the normal (holiday-free) release; holiday weeks are judged by release_on_time."""
        due = datetime.combine(date(2000, 1, 3), self.release_time) + FRESHNESS_DUE_AFTER_RELEASE
        cron_weekday = (self.reference_weekday + self.release_after_days + 1) % 7  # cron: Sunday = 0
        return dg.FreshnessPolicy.cron(deadline_cron=f"{due.minute} {due.hour} * * {cron_weekday}",
                                       lower_bound_delta=FRESHNESS_LOWER_BOUND, timezone="America/New_York")


# The WPSR: Wednesday 10:30 New York for the week ending the previous Friday. Each federal holiday from the
# Monday to the Wednesday of the release week pushes it one business day later, at 11:00.
WPSR_RELEASE_CALENDAR = WeeklyReleaseCalendar(
    name="WPSR", reference_weekday=4, reference_rule="WPSR weeks end on a Friday", partition_label="week",
    release_after_days=5, release_time=WPSR_RELEASE_TIME, holidays_from_day=3,
    delayed_release_time=WPSR_DELAYED_RELEASE_TIME, partitions_start="2010-01-01",
    description="Wednesdays 10:30 America/New_York for the week ending the previous Friday; a federal holiday "
    "Monday-Wednesday moves it one business day later, at 11:00.",
)
# The COT reports: Friday 15:30 New York for positions as of the Tuesday before; each federal holiday in the
# as-of week (Monday to Friday) pushes it one business day later.
COT_RELEASE_CALENDAR = WeeklyReleaseCalendar(
    name="COT", reference_weekday=1, reference_rule="COT reports are as of a Tuesday", partition_label="as-of",
    release_after_days=3, release_time=COT_RELEASE_TIME, holidays_from_day=-1, partitions_start="2006-06-13",
    description="Fridays 15:30 America/New_York for positions as of the Tuesday before; each federal holiday "
    "that week moves it one business day later.",
)

WPSR_WEEKLY_PARTITIONS = WPSR_RELEASE_CALENDAR.partitions
COT_WEEKLY_PARTITIONS = COT_RELEASE_CALENDAR.partitions
WPSR_FRESHNESS = WPSR_RELEASE_CALENDAR.freshness_policy
COT_FRESHNESS = COT_RELEASE_CALENDAR.freshness_policy


def wpsr_release_at(week_ending: date) -> datetime:
    """Scheduled release of the WPSR for the week ending `week_ending` (a Friday)."""
    return WPSR_RELEASE_CALENDAR.release_at(week_ending)


def cot_release_at(as_of: date) -> datetime:
    """Scheduled release of the COT report for positions as of `as_of` (a Tuesday)."""
    return COT_RELEASE_CALENDAR.release_at(as_of)


def latest_wpsr_week_released(now: datetime) -> date:
    """The newest week ending whose WPSR is scheduled at or before `now`."""
    return WPSR_RELEASE_CALENDAR.latest_released(now)


def latest_cot_week_released(now: datetime) -> date:
    return COT_RELEASE_CALENDAR.latest_released(now)


def release_window_open(scheduled: datetime, now: datetime, early: timedelta = timedelta(minutes=5)) -> bool:
    """Whether a release sensor should poll now: from a few minutes before the scheduled release on."""
    return now >= scheduled - early
