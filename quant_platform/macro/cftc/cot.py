"""What every Commitments of Traders report shares: the weekly file and yearly history zips, available_at, one sensor.

Never key a contract on its market name: the CFTC renames markets (NYMEX WTI 067651 in 2022).

A COT report folder declares its table, its two routes (the current weekly file, the yearly history zip) and its
parser, and calls cot_report(); the files, the calendar, the polling and the release sensor are the same for all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from quant_platform.errors import ReportParseError
from quant_platform.macro.cftc.parsing import extract_cot_zip
from quant_platform.macro.declaration import MacroReport, ReleaseSensor, ReportRun
from quant_platform.macro.loading import TAG_RAW_SHA, RawFile
from quant_platform.macro.release_sensing import due_to_poll
from quant_platform.macro.routes import Route
from quant_platform.platform.calendars import COT_RELEASE_CALENDAR
from quant_platform.platform.tables import TableSpec

VENDOR = "cftc"
# After a scheduled release, keep polling the weekly files this long for late files and revisions.
REVISION_WINDOW = timedelta(days=3)

# One sensor polls the weekly file of every COT report.
COT_RELEASE_SENSOR = ReleaseSensor(
    "cftc_cot_release_sensor",
    description="Polls the CFTC's current weekly COT files (disaggregated f_disagg.txt, legacy deafut.txt) "
    "around the Friday 15:30 release and requests the as-of week when a file with a new sha256 appears.",
)


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


def fetch_cot_files(run: ReportRun, weekly: Route, history: Route) -> list[RawFile]:
    """The weekly file the sensor saw, or the yearly history files covering the requested weeks."""
    keys = run.keys
    run.extra_metadata.update({"weeks": len(keys), "first_week": keys[0], "last_week": keys[-1]})
    if run.tags.get(TAG_RAW_SHA) and len(keys) == 1:
        return [run.fetch(weekly, keys[0])]
    files = []
    this_year = datetime.now(UTC).year
    for year in sorted({k[:4] for k in keys}):
        # Past years are final: reuse the archived file. The current year's file grows every week.
        raw = run.archived(history, year) if int(year) < this_year else None
        if raw is None:
            raw = run.fetch(history, year, allow_tagged=False, year=year)
        files.append(raw)
    return files


def parse_cot_files(files: Sequence[RawFile], keys: Sequence[str],
                    parse: Callable[[bytes], pd.DataFrame]) -> pd.DataFrame:
    """The requested weeks' rows of the files (zips unpacked), with available_at, in (as_of, contract) order."""
    frames = []
    for f in files:
        text = extract_cot_zip(f.body) if f.lake_path.endswith(".zip") else f.body
        df = parse(text)
        df["source_sha256"] = f.sha256
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    wanted = pd.to_datetime(pd.Series(keys))
    df = df[pd.to_datetime(df["as_of"]).isin(wanted)]
    return with_available_at(df).sort_values(["as_of", "contract_code"], ignore_index=True)


def cot_report(*, table: TableSpec, name: str, weekly: Route, history: Route,
               parse: Callable[[bytes], pd.DataFrame], job_description: str) -> MacroReport:
    """A COT report: weekly partitions on the COT calendar, loaded from the weekly file or the yearly history zips
    (a backfill of many weeks runs once, one file per year), polled by the one COT release sensor."""
    return MacroReport(
        table=table,
        vendor=VENDOR,
        routes=(weekly, history),
        fetch=lambda run: fetch_cot_files(run, weekly, history),
        parse=lambda files, keys: parse_cot_files(files, keys, parse),
        calendar=COT_RELEASE_CALENDAR,
        freshness=COT_RELEASE_CALENDAR.freshness_policy,
        release_route=weekly,
        release_partition=lambda body: weekly_file_as_of(name, parse, body),
        revision_window=REVISION_WINDOW,
        cursor_key=f"cot:{name}",
        release_sensor=COT_RELEASE_SENSOR,
        job_description=job_description,
        on_time_description="Each COT release of the last 8 weeks was loaded within one hour of Friday 15:30 New "
        "York (holidays applied); late or missing weeks are listed.",
        catalog_metadata={
            "vendor_url": f"{weekly.vendor_url} (current week), {history.vendor_url} (history)",
            "release_calendar": COT_RELEASE_CALENDAR.description,
            "partition_key": "as-of Tuesday, YYYY-MM-DD; a backfill of many weeks runs once per year file",
        },
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=f"cftc_cot_{name}.v1",
    )
