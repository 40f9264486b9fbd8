"""The EIA series report as one declaration: dnav or API v2 routes, parsers, the polling rule and freshness.

Never mix routes in one load: a series' whole history comes from dnav or from API v2 (QP_EIA_API_KEY), never both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from quant_platform.errors import ReportParseError
from quant_platform.macro.declaration import MacroReport, ReleaseSensor, ReleaseWatch, ReportRun
from quant_platform.macro.eia.parsing import api_v2_total, parse_dnav_history, parse_eia_api_v2
from quant_platform.macro.loading import RawFile
from quant_platform.macro.reports.eia_series.routes import API_V2, DNAV_HISTORY
from quant_platform.macro.reports.eia_series.series import SERIES, api_v2_request, configured_series, dnav_url
from quant_platform.macro.reports.eia_series.table import TABLE
from quant_platform.platform.calendars import WPSR_RELEASE_CALENDAR
from quant_platform.platform.settings import Settings

API_PAGE_ROWS = 5000
API_MAX_ROWS = 200_000
# Series are polled after each WPSR release, for this long (late files and revisions), and daily ones hourly.
REVISION_WINDOW = timedelta(hours=36)
DAILY_POLL_EVERY = timedelta(hours=1)


def fetch_history(run: ReportRun) -> list[RawFile]:
    """Every page of the series from API v2 when QP_EIA_API_KEY is set, else its dnav history file."""
    series_id = run.keys[0]
    settings = run.settings
    if settings.eia_api_key:
        pages, offset, total = [], 0, None
        while total is None or offset < total:
            _, params = api_v2_request(settings.eia_api_base_url, series_id, settings.eia_api_key, offset)
            page = run.fetch(API_V2, series_id, params=params, allow_tagged=False,
                             api_route=SERIES[series_id].api_route)
            pages.append(page)
            total = api_v2_total(page.body)
            offset += API_PAGE_ROWS
            if offset > API_MAX_ROWS:
                raise ReportParseError("eia api v2", None, f"{series_id}: more than 200k rows, refusing")
        files = pages
    else:
        files = [run.fetch(DNAV_HISTORY, series_id, series_id=series_id, frequency=SERIES[series_id].frequency)]
    run.extra_metadata.update({"route": "api_v2" if settings.eia_api_key else "dnav",
                               "fetched_at": pd.Timestamp.now(tz=UTC).isoformat()})
    return files


def parse_history(files: Sequence[RawFile], keys: Sequence[str]) -> pd.DataFrame:
    """The same rows from either route (see source)."""
    (series_id,) = keys
    if files[0].dataset == API_V2.dataset:
        frames = []
        for page in files:
            df = parse_eia_api_v2(page.body, series_id)
            df["source_sha256"] = page.sha256
            frames.append(df)
        return pd.concat(frames, ignore_index=True).sort_values("period", ignore_index=True)
    (raw,) = files
    df = parse_dnav_history(raw.body, series_id)
    df["source_sha256"] = raw.sha256
    return df


def series_watches(settings: Settings, now: datetime) -> list[ReleaseWatch]:
    """One watch per configured series (first page on API v2, or the dnav file), due after each WPSR release."""
    due_release = WPSR_RELEASE_CALENDAR.release_at(WPSR_RELEASE_CALENDAR.latest_released(now))
    watches = []
    for series_id in configured_series():
        daily = SERIES[series_id].frequency == "D"

        def due(state: dict, at: datetime, daily: bool = daily) -> tuple[bool, str]:
            checked = datetime.fromisoformat(state["checked_at"]) if state.get("checked_at") else None
            poll = (
                checked is None
                or "sha256" not in state
                or (checked < due_release + REVISION_WINDOW and at >= due_release)
                or (daily and at - checked >= DAILY_POLL_EVERY)
            )
            return poll, ""

        if settings.eia_api_key:
            url, params = api_v2_request(settings.eia_api_base_url, series_id, settings.eia_api_key, 0)
            dataset = API_V2.dataset
        else:
            url, params = dnav_url(settings.eia_base_url, series_id), None
            dataset = DNAV_HISTORY.dataset
        watches.append(ReleaseWatch(
            name=f"eia_series:{series_id}", cursor_key=f"eia_series:{series_id}", url=url, params=params,
            dataset=dataset, partition_of=lambda _body, s=series_id: s, fallback_partition=series_id,
            valid_partition=lambda _key: True, scheduled_release=lambda _key: None, due=due,
        ))
    return watches


REPORT = MacroReport(
    table=TABLE,
    vendor="eia",
    routes=(DNAV_HISTORY, API_V2),
    partitions=dg.StaticPartitionsDefinition(configured_series()),
    fetch=fetch_history,
    parse=parse_history,
    freshness=WPSR_RELEASE_CALENDAR.freshness_policy,
    release_watches=series_watches,
    release_sensor=ReleaseSensor(
        "eia_series_release_sensor",
        description="Polls each configured EIA series (dnav history CSV, or API v2 when QP_EIA_API_KEY is set) "
        "after each WPSR release, daily series once an hour, and requests the series partition when it changed.",
        minimum_interval_floor_s=60,
    ),
    job_description="Load the history of one EIA series.",
    catalog_metadata={
        "series": ", ".join(f"{s.series_id}: {s.label}" for s in SERIES.values()),
        "partition_key": "EIA series id; each load replaces the whole history of the series",
        "routes": "dnav LeafHandler.ashx history CSV, or EIA API v2 when QP_EIA_API_KEY is set",
    },
    code_version="eia_series.v1",
)
