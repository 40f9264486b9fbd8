"""Every WPSR table as one declaration: the workbook routes, the release polled on table 1, history in one run.

Never load a workbook as another table's (its Contents must name it), nor a week the workbooks do not hold.

A release run loads the week the sensor saw from every table's workbook; a backfill of any weeks (one run,
single-run policy) reads each workbook once, since each holds its table's whole history. A table the vendor does not
serve (HTTP 404: discontinued, or no sample in the simulator) is named in the run's metadata, and the others load.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from quant_platform.errors import ConfigError
from quant_platform.macro.declaration import TAG_REFETCH, MacroReport, ReportRun
from quant_platform.macro.formats.wpsr_xls import parse_wpsr_xls, wpsr_xls_week_ending
from quant_platform.macro.history import download_history_file, mark_vendor_missing
from quant_platform.macro.loading import TAG_RAW_SHA, RawFile
from quant_platform.macro.reports.eia_wpsr_tables.routes import RELEASE, TABLES, WORKBOOKS
from quant_platform.macro.reports.eia_wpsr_tables.table import TABLE
from quant_platform.platform.calendars import WPSR_RELEASE_CALENDAR

VENDOR = "eia"
TABLES_ENV = "QP_WPSR_TABLES"  # comma-separated tables to load ("01,04"); default every table
# The WPSR calendar, with partitions from the first week of the workbooks' history sheets.
CALENDAR = dataclasses.replace(WPSR_RELEASE_CALENDAR, partitions_start="1982-08-20")
FREQUENCIES = ("W", "4W", "D")  # a monthly or annual sheet (none seen) is not a weekly table's
COLUMNS = ("week_ending", "wpsr_table", "series_id", "frequency", "period", "value", "unit", "series_name", "sheet")


def configured_tables() -> list[str]:
    """The tables this deployment loads: QP_WPSR_TABLES or every table."""
    raw = os.environ.get(TABLES_ENV, "").strip()
    tables = [t.strip().lower() for t in raw.split(",") if t.strip()] if raw else list(TABLES)
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise ConfigError(f"{TABLES_ENV} names unknown WPSR tables {unknown}; known: {', '.join(TABLES)}")
    return tables


def fetch_workbooks(run: ReportRun) -> list[RawFile]:
    """Every configured table's workbook: the psw01 the sensor saw (a release run), else the newest release's
    archived workbook when the lake has it (no download), else a download."""
    keys = run.keys
    release_run = bool(run.tags.get(TAG_RAW_SHA)) and len(keys) == 1
    refetch = release_run or run.tags.get(TAG_REFETCH) == "true"
    newest = CALENDAR.latest_released(datetime.now(UTC)).isoformat()
    files, not_served = [], []
    for table in configured_tables():
        route = WORKBOOKS[table]
        if release_run and route is RELEASE:
            files.append(run.fetch(route, keys[0]))
            continue
        raw = None if refetch else run.archived(route, newest)
        raw = raw or download_history_file(run, route, lambda body, t=table: wpsr_xls_week_ending(body, t).isoformat(),
                                           keys[-1])
        if raw is None:
            not_served.append(table)
        else:
            files.append(raw)
    if not files:
        raise dg.Failure(description=f"no WPSR workbook was served ({', '.join(f'psw{t}.xls' for t in not_served)}: "
                         "HTTP 404). Nothing was written.")
    run.extra_metadata.update({
        "wpsr_tables_loaded": ", ".join(f.dataset.removeprefix("wpsr_psw") for f in files),
        "wpsr_tables_not_served": ", ".join(not_served) + " (HTTP 404)" if not_served else "none",
        "workbook_weeks": ", ".join(f"psw{f.dataset.removeprefix('wpsr_psw')}.xls {f.partition}" for f in files),
    })
    return files


def week_ending(period: pd.Series, frequency: pd.Series) -> pd.Series:
    """The WPSR week each observation was published for: a daily value in the week (Saturday to Friday) it falls
    in, a weekly value dated on a Friday in that week, one dated another day (retail prices: Mondays) in the
    week that ended the Friday before."""
    weekday = period.dt.day_of_week
    daily = frequency == "D"
    forward = pd.to_timedelta((4 - weekday) % 7, unit="D")
    back = pd.to_timedelta((weekday - 4) % 7, unit="D")
    return (period + forward).where(daily, period - back)


def parse_workbooks(files: Sequence[RawFile], keys: Sequence[str]) -> pd.DataFrame:
    """The requested weeks' rows of every workbook; the weeks no workbook holds are named vendor_missing."""
    frames, newest, oldest = [], [], []
    for f in files:
        table = f.dataset.removeprefix("wpsr_psw")
        df = parse_wpsr_xls(f.body, table)
        df = df[df["frequency"].isin(FREQUENCIES)].copy()
        df["week_ending"] = week_ending(df["period"], df["frequency"])
        if len(df):
            newest.append((df["week_ending"].max().date(), f"psw{table}.xls"))
            oldest.append(df["week_ending"].min().date())
        wanted = df["week_ending"].isin(pd.to_datetime(pd.Series(list(keys))))
        df = df.loc[wanted, list(COLUMNS)]
        df["source_sha256"] = f.sha256
        frames.append(df)
    out = pd.concat(frames, ignore_index=True).sort_values(["week_ending", "wpsr_table", "series_id", "frequency",
                                                            "period"], ignore_index=True)
    last, name = max(newest) if newest else (None, "the workbooks")
    first = min(oldest) if oldest else None
    reasons = {}
    for key in keys:
        if last is None or key > last.isoformat():
            reasons[key] = f"not published yet: the newest week in {name} is {last}"
        elif first is not None and key < first.isoformat():
            reasons[key] = f"before the first week of the workbooks ({first})"
        else:
            reasons[key] = "no workbook holds a row for this week"
    return mark_vendor_missing(out, keys, "week_ending", reasons)


REPORT = MacroReport(
    table=TABLE,
    vendor=VENDOR,
    routes=tuple(WORKBOOKS.values()),
    fetch=fetch_workbooks,
    parse=parse_workbooks,
    calendar=CALENDAR,
    freshness=CALENDAR.freshness_policy,
    release_route=RELEASE,
    release_partition=lambda body: wpsr_xls_week_ending(body, "01").isoformat(),
    job_description="Load WPSR weeks from every table's workbook (a range of weeks in one run).",
    catalog_metadata={
        "vendor_url": "https://ir.eia.gov/wpsr/psw01.xls .. psw14.xls (and psw05a.xls), one workbook per table",
        "release_calendar": CALENDAR.description,
        "partition_key": "week ending (Friday), YYYY-MM-DD, from 1982-08-20; a backfill of many weeks runs once",
        "tables": ", ".join(TABLES),
    },
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds=frozenset({"pandas", "excel"}),
)
