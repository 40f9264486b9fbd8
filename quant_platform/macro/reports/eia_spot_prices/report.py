"""The daily spot prices as one declaration: dnav hist_xls route per series, weekly release, daily freshness rules.

Never mix series in one load, nor accept a workbook of another series or frequency (the parser checks both).

The series are daily but EIA publishes them once a week with the WPSR (the workbooks' Contents give "Release Date"
and "Next Release Date": Wednesday 2019-10-23 then 2019-10-30; Thursday 2025-01-23 after Martin Luther King Day,
then Wednesday 2025-01-29). So the sensor polls each workbook after each scheduled WPSR release (and through its
revision window), never in between, and the asset is fresh when it was loaded in the last eight days.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd

from quant_platform.macro.declaration import MacroReport, ReleaseSensor, ReleaseWatch, ReportRun
from quant_platform.macro.formats.dnav_xls import parse_dnav_xls
from quant_platform.macro.formats.eia_workbook import open_workbook, read_contents
from quant_platform.macro.loading import DomainCheck, RawFile
from quant_platform.macro.reports.eia_spot_prices.routes import DAILY_WORKBOOK, SERIES
from quant_platform.macro.reports.eia_spot_prices.table import TABLE
from quant_platform.platform.calendars import WPSR_RELEASE_CALENDAR
from quant_platform.platform.settings import Settings
from quant_platform.quality.rules import RuleOutcome

REVISION_WINDOW = timedelta(hours=36)  # after a release, late files and revisions are still looked for
LATE_POLL_EVERY = timedelta(minutes=15)  # inside that window, at most this often
FRESH_WITHIN = timedelta(days=8)  # a weekly release, one holiday's delay, and an hour
NEWEST_DAY_WITHIN = timedelta(days=10)  # of the workbook's release date: older means a stale series


def fetch_workbook(run: ReportRun) -> list[RawFile]:
    """The series' workbook: the one the release sensor saw (run tags), else a download."""
    (series_id,) = run.keys
    return [run.fetch(DAILY_WORKBOOK, series_id, area=SERIES[series_id][0], series_id=series_id)]


def parse_workbook(files: Sequence[RawFile], keys: Sequence[str]) -> pd.DataFrame:
    """The series' whole daily history, with the release date its workbook prints."""
    (raw,), (series_id,) = files, keys
    df = parse_dnav_xls(raw.body, series_id, "D")
    df["release_date"] = pd.Timestamp(read_contents(open_workbook(raw.body)).release_date)
    df["source_sha256"] = raw.sha256
    return df


def newest_day_recent(frame: pd.DataFrame, _warehouse) -> RuleOutcome:
    """The newest trading day is at most ten days before the workbook's release date (else the series is stale)."""
    lag = (pd.to_datetime(frame["release_date"]) - pd.to_datetime(frame["period"])).groupby(frame["series_id"]).min()
    stale = {s: int(d.days) for s, d in lag.items() if d > NEWEST_DAY_WITHIN}
    return RuleOutcome("newest_day_recent", not stale, "", {
        "days_from_newest_day_to_release": ", ".join(f"{s} {int(d.days)}" for s, d in lag.items()) or "none",
        "stale_series": ", ".join(stale) or "none"})


def spot_watches(settings: Settings, now: datetime) -> list[ReleaseWatch]:
    """One watch per series, due at the first tick after each scheduled release and at most every 15 minutes in
    its revision window; quiet otherwise."""
    release = WPSR_RELEASE_CALENDAR.release_at(WPSR_RELEASE_CALENDAR.latest_released(now))
    nxt = WPSR_RELEASE_CALENDAR.release_at(WPSR_RELEASE_CALENDAR.latest_released(now) + timedelta(days=7))

    def due(state: dict, at: datetime) -> tuple[bool, str]:
        checked = datetime.fromisoformat(state["checked_at"]) if state.get("checked_at") else None
        if checked is None or "sha256" not in state:
            return True, "no workbook seen yet"
        if checked < release <= at:
            return True, f"release of {release:%a %Y-%m-%d %H:%M %Z} is due"
        if at <= release + REVISION_WINDOW and at - checked >= LATE_POLL_EVERY:
            return True, "inside the release's revision window"
        return False, f"next release {nxt:%a %Y-%m-%d %H:%M %Z}"

    return [ReleaseWatch(
        name=f"eia_spot_prices:{s}", cursor_key=f"eia_spot_prices:{s}",
        url=DAILY_WORKBOOK.url(settings, area=area, series_id=s), dataset=DAILY_WORKBOOK.dataset,
        partition_of=lambda _body, s=s: s, fallback_partition=s, valid_partition=lambda key: key in SERIES,
        scheduled_release=lambda _key: None, due=due,
    ) for s, (area, _) in SERIES.items()]


REPORT = MacroReport(
    table=TABLE,
    vendor="eia",
    routes=(DAILY_WORKBOOK,),
    partitions=dg.StaticPartitionsDefinition(list(SERIES)),
    fetch=fetch_workbook,
    parse=parse_workbook,
    freshness=dg.FreshnessPolicy.time_window(fail_window=FRESH_WITHIN, warn_window=timedelta(days=7, hours=2)),
    release_watches=spot_watches,
    release_sensor=ReleaseSensor(
        "eia_spot_prices_release_sensor",
        description="Polls each daily spot price workbook (dnav hist_xls, conditional GET) at the first tick after "
        "each scheduled WPSR release and through its revision window, and requests the series partition when the "
        "workbook changed.",
    ),
    domain_checks=(DomainCheck("newest_day_recent", "The newest trading day in a workbook is at most ten days "
                               "before its release date (WARN: a stale series).", newest_day_recent, blocking=False),),
    job_description="Load the whole daily history of one spot price series.",
    catalog_metadata={
        "vendor_url": DAILY_WORKBOOK.vendor_url,
        "series": ", ".join(f"{s}: {label}" for s, (_, label) in SERIES.items()),
        "partition_key": "EIA series id; each load replaces the series' whole daily history",
        "release_calendar": "daily observations published weekly with the WPSR: "
        + WPSR_RELEASE_CALENDAR.description,
    },
    kinds=frozenset({"pandas", "excel"}),
)
