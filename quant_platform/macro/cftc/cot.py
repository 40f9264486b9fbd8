"""What every Commitments of Traders report shares: the weekly file, the history zips, available_at, one sensor.

Never key a contract on its market name: the CFTC renames markets (NYMEX WTI 067651 in 2022).

A COT report folder declares its table, its two routes (the current weekly file, the yearly history zip) and its
parser, and calls cot_report(); the files, the calendar, the polling and the release sensor are the same for all.
History: the CFTC keeps the years up to 2016 in one multi-year zip per report (legacy futures-only from 1986,
futures-and-options from 1995, disaggregated from 2006; macro/formats/cftc_cot.py COT_HISTORY) and each later year
in a yearly zip; a backfill reads each file once, whatever the number of weeks. A week with no report in the files
is named vendor_missing (macro/history.py), with the reason: no file for its year, after the newest week the CFTC
has published, or a week the CFTC did not report on a Tuesday (holidays, the shutdown, the twice-monthly years).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd

from quant_platform.errors import ReportParseError
from quant_platform.macro.declaration import TAG_REFETCH, MacroReport, ReleaseSensor, ReportRun
from quant_platform.macro.formats.cftc_cot import (
    COT_HISTORY,
    COT_YEARLY,
    CotArchive,
    extract_cot_member,
    parse_cot,
)
from quant_platform.macro.history import mark_vendor_missing
from quant_platform.macro.loading import TAG_RAW_SHA, RawFile
from quant_platform.macro.release_sensing import due_to_poll
from quant_platform.macro.routes import CFTC_WWW, Route
from quant_platform.platform.calendars import COT_RELEASE_CALENDAR, WeeklyReleaseCalendar
from quant_platform.platform.tables import TableSpec

VENDOR = "cftc"
# After a scheduled release, keep polling the weekly files this long for late files and revisions.
REVISION_WINDOW = timedelta(days=3)

# One sensor polls the weekly file of every COT report.
COT_RELEASE_SENSOR = ReleaseSensor(
    "cftc_cot_release_sensor",
    description="Polls the CFTC's current weekly COT files (disaggregated f_disagg.txt and c_disagg.txt, legacy "
    "deafut.txt and deacom.txt: futures only and futures-and-options combined) around the Friday 15:30 release and "
    "requests the as-of week when a file with a new sha256 appears.",
)
# The first as-of Tuesday of each report's partitions: the first year of the CFTC's history zip of the report
# (formats/cftc_cot.py COT_HISTORY; the disaggregated reports begin with the as-of week of 2006-06-13).
PARTITIONS_START = {
    ("legacy", False): "1986-01-07",
    ("legacy", True): "1995-01-03",
    ("disaggregated", False): COT_RELEASE_CALENDAR.partitions_start,
    ("disaggregated", True): COT_RELEASE_CALENDAR.partitions_start,
}
HTTP_NOT_PUBLISHED = ("HTTP 404", "HTTP 410")  # the vendor has no such file: its weeks are vendor_missing


def with_available_at(df: pd.DataFrame) -> pd.DataFrame:
    """Add when each row became public, from the release calendar (point-in-time joins need it)."""
    out = df.copy()
    release = {d: COT_RELEASE_CALENDAR.release_at(d.date()).astimezone(UTC)
               for d in pd.to_datetime(out["as_of"]).unique()}
    out.insert(1, "available_at", pd.to_datetime(out["as_of"]).map(release))
    out["available_at"] = pd.to_datetime(out["available_at"], utc=True)
    return out


def weekly_file_as_of(name: str, parse: Callable[[bytes], pd.DataFrame], body: bytes) -> str:
    """The as-of week a weekly file is for: its newest week."""
    df = parse(body)
    weeks = sorted(pd.to_datetime(df["as_of"]).dt.date.unique())
    if not weeks:
        raise ReportParseError(f"cftc {name} weekly", None, "no rows")
    return weeks[-1].isoformat()


def cot_should_poll(state: dict, now: datetime) -> tuple[bool, str]:
    """Calendar-aware polling of a COT weekly file (every COT report polls by this rule)."""
    return due_to_poll(state, now, latest_due=COT_RELEASE_CALENDAR.latest_released,
                       release_at=COT_RELEASE_CALENDAR.release_at, revision_window=REVISION_WINDOW, label="as-of")


def history_route(history: Route, archive: CotArchive) -> Route:
    """The multi-year history zip of a report (e.g. deacot1986_2016.zip), archived beside its yearly zips."""
    return Route(CFTC_WWW, "/files/dea/history/" + archive.zip_name, dataset=history.dataset, ext="zip",
                 documented_at=history.documented_at)


def _archive_partition(archive: CotArchive) -> str:
    first, last = archive.years or (0, 0)
    return f"years_{first}_{last}"


def fetch_cot_files(run: ReportRun, weekly: Route, history: Route, kind: str = "disaggregated",
                    futures_and_options: bool = False) -> list[RawFile]:
    """The weekly file the sensor saw, or the history files covering the requested weeks: the multi-year zip for
    the years it holds (read once), one yearly zip for each later year. A year whose file the CFTC does not serve
    (HTTP 404) is noted (its weeks become vendor_missing); any other failure fails the run."""
    keys = run.keys
    run.extra_metadata.update({"weeks": len(keys), "first_week": keys[0], "last_week": keys[-1]})
    if run.tags.get(TAG_RAW_SHA) and len(keys) == 1:
        return [run.fetch(weekly, keys[0])]
    multi = COT_HISTORY.get((kind, futures_and_options))
    multi_route = history_route(history, multi) if multi and multi.years else None
    files, not_served = [], []
    this_year = datetime.now(UTC).year
    wanted: dict[str, tuple[Route, str, dict]] = {}
    for year in sorted({int(k[:4]) for k in keys}):
        if multi_route is not None and multi.years[0] <= year <= multi.years[1]:
            wanted[_archive_partition(multi)] = (multi_route, _archive_partition(multi), {})
        else:
            wanted[str(year)] = (history, str(year), {"year": year})
    refetch = run.tags.get(TAG_REFETCH) == "true"
    for partition, (route, _, values) in wanted.items():
        # Past years are final: reuse the archived file (unless qp/refetch). The current year's file grows weekly.
        final = (not values or values["year"] < this_year) and not refetch
        raw = run.archived(route, partition) if final else None
        if raw is None:
            try:
                raw = run.fetch(route, partition, allow_tagged=False, **values)
            except dg.Failure as exc:
                meta = (exc.metadata or {}).get("reason")
                reason = str(getattr(meta, "value", meta) or "")
                if not reason.startswith(HTTP_NOT_PUBLISHED):
                    raise
                not_served.append(f"{route.path_for(**values)} ({reason[:8]})")
                continue
        files.append(raw)
    if not_served:
        run.extra_metadata["history_files_not_served"] = ", ".join(not_served)
    run.extra_metadata["history_files"] = ", ".join(f.url.rsplit("/", 1)[-1] for f in files) or "none"
    return files


def _archive_of(f: RawFile, kind: str, futures_and_options: bool) -> CotArchive:
    """Which CFTC archive a downloaded zip is (its member name is checked against it)."""
    multi = COT_HISTORY.get((kind, futures_and_options))
    if multi is not None and f.partition == _archive_partition(multi):
        return multi
    return COT_YEARLY[(kind, futures_and_options)]


def _week_tuesday(day: date) -> date:
    """The Tuesday partition of the week (Monday to Sunday) of an as-of date."""
    return day - timedelta(days=day.weekday() - 1)


def parse_cot_files(files: Sequence[RawFile], keys: Sequence[str], kind: str,
                    futures_and_options: bool = False) -> pd.DataFrame:
    """The requested weeks' rows of the files (each zip's member checked to be the report's), with available_at,
    in (as_of, contract) order; the requested weeks without rows are named vendor_missing, with the reason."""
    frames, spans = [], []
    for f in files:
        text = extract_cot_member(f.body, _archive_of(f, kind, futures_and_options)) \
            if f.lake_path.endswith(".zip") else f.body
        df = parse_cot(text, kind, futures_and_options).drop(columns="futures_and_options")
        df["source_sha256"] = f.sha256
        frames.append(df)
        days = pd.to_datetime(df["as_of"]).dt.date
        archive = _archive_of(f, kind, futures_and_options) if f.lake_path.endswith(".zip") else None
        years = (archive and archive.years) or (int(f.partition[:4]), int(f.partition[:4]))
        spans.append((f.url.rsplit("/", 1)[-1], years, days.min() if len(df) else None, days.max() if len(df) else None))
    if not frames:
        empty = pd.DataFrame({"as_of": pd.Series(dtype="datetime64[ns]")})
        return mark_vendor_missing(empty, keys, "as_of", _missing_reasons(keys, spans, []))
    df = pd.concat(frames, ignore_index=True)
    as_of = pd.to_datetime(df["as_of"])
    requested = set(keys)
    off_tuesday = sorted(d for d in as_of.dt.date.unique()
                         if d.weekday() != 1 and _week_tuesday(d).isoformat() in requested)
    df = df[as_of.isin(pd.to_datetime(pd.Series(list(keys))))]
    out = with_available_at(df).sort_values(["as_of", "contract_code"], ignore_index=True)
    return mark_vendor_missing(out, keys, "as_of", _missing_reasons(keys, spans, off_tuesday))


def _missing_reasons(keys: Sequence[str], spans: list[tuple[str, tuple[int, int], date | None, date | None]],
                     off_tuesday: list[date]) -> dict[str, str]:
    """Why each week could be absent from the files (file name, the years it stands for, its first and last as-of):
    no file for its year, the CFTC's newest week is older, the CFTC reported that week on another day, or the CFTC
    published no report as of that Tuesday."""
    reasons: dict[str, str] = {}
    off = {_week_tuesday(d).isoformat(): d for d in off_tuesday}
    for key in keys:
        day = date.fromisoformat(key)
        covering = [(name, lo, hi) for name, (first, last), lo, hi in spans if first <= day.year <= last]
        if key in off:
            d = off[key]
            reasons[key] = (f"the CFTC's report that week is as of {d} (a {d:%A}), not the Tuesday partition "
                            "(not loaded)")
        elif not covering:
            reasons[key] = f"no CFTC history file for {day.year} (the CFTC does not serve it)"
        elif all(lo is None for _, lo, _ in covering):
            reasons[key] = f"{covering[0][0]} holds no rows"
        elif all(hi is not None and day > hi for _, _, hi in covering):
            name, _, hi = max(covering, key=lambda c: c[2])
            reasons[key] = f"not published yet: the newest week in {name} is {hi}"
        elif all(lo is not None and day < lo for _, lo, _ in covering):
            name, lo, _ = min(covering, key=lambda c: c[1])
            reasons[key] = f"before the first week in {name} ({lo})"
        else:
            reasons[key] = "the CFTC published no report as of this Tuesday"
    return reasons


def cot_calendar(kind: str, futures_and_options: bool) -> WeeklyReleaseCalendar:
    """The COT release calendar with the report's own first partition (its history zip's first year)."""
    start = PARTITIONS_START[(kind, futures_and_options)]
    if start == COT_RELEASE_CALENDAR.partitions_start:
        return COT_RELEASE_CALENDAR
    return dataclasses.replace(COT_RELEASE_CALENDAR, partitions_start=start)


def cot_report(*, table: TableSpec, name: str, weekly: Route, history: Route,
               parse: Callable[[bytes], pd.DataFrame], job_description: str,
               futures_and_options: bool = False) -> MacroReport:
    """A COT report: weekly partitions on the COT calendar, loaded from the weekly file or the history zips (a
    backfill of many weeks runs once, one file per year or one multi-year zip), polled by the one COT release
    sensor. `name` is "disaggregated" or "legacy", with futures_and_options for the combined reports."""
    kind = name
    calendar = cot_calendar(kind, futures_and_options)
    multi = COT_HISTORY.get((kind, futures_and_options))
    routes = (weekly, history, *((history_route(history, multi),) if multi and multi.years else ()))
    label = f"{name}_combined" if futures_and_options else name
    return MacroReport(
        table=table,
        vendor=VENDOR,
        routes=routes,
        fetch=lambda run: fetch_cot_files(run, weekly, history, kind, futures_and_options),
        parse=lambda files, keys: parse_cot_files(files, keys, kind, futures_and_options),
        calendar=calendar,
        freshness=calendar.freshness_policy,
        release_route=weekly,
        release_partition=lambda body: weekly_file_as_of(label, parse, body),
        revision_window=REVISION_WINDOW,
        cursor_key=f"cot:{label}",
        release_sensor=COT_RELEASE_SENSOR,
        job_description=job_description,
        on_time_description="Each COT release of the last 8 weeks was loaded within one hour of Friday 15:30 New "
        "York (holidays applied); late or missing weeks are listed.",
        catalog_metadata={
            "vendor_url": f"{weekly.vendor_url} (current week), {history.vendor_url} (yearly history)"
            + (f", {routes[2].vendor_url} ({multi.years[0]}-{multi.years[1]})" if len(routes) > 2 else ""),
            "release_calendar": calendar.description,
            "partition_key": "as-of Tuesday, YYYY-MM-DD; a backfill of many weeks runs once and reads each history "
            "file once",
            "history_from": calendar.partitions_start,
        },
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=f"cftc_cot_{label}.v1",
    )
