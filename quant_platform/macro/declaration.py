"""What a report folder declares (MacroReport), and what its fetch sees of a run (ReportRun).

Never load or poll here: the one path into the warehouse is loading.py, the polling rule release_sensing.py.

A report is one table loaded from one vendor: its routes, how a run gets its files (fetch) and turns them into
rows (parse), when it is released (a WeeklyReleaseCalendar, or its own release watches), its freshness and its
domain checks. macro/definitions.py derives the asset, job, release sensor and release_on_time check from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

import dagster as dg

from quant_platform.macro.loading import TAG_RAW_SHA, DomainCheck, RawFile, archived_raw, fetch_raw
from quant_platform.macro.release_sensing import DENSE_WINDOW, due_to_poll
from quant_platform.macro.routes import Route
from quant_platform.platform.calendars import WeeklyReleaseCalendar
from quant_platform.platform.tables import TableSpec

if TYPE_CHECKING:
    import pandas as pd

    from quant_platform.platform.lake import Lake
    from quant_platform.platform.settings import Settings
    from quant_platform.platform.vendor_http import VendorClient
    from quant_platform.resources import VendorResource

# After a scheduled release, a calendar report's sensor keeps polling this long for late files and revisions.
DEFAULT_REVISION_WINDOW = timedelta(hours=36)
TAG_REFETCH = "qp/refetch"  # run tag: "true" downloads the partition's file again instead of reusing the archive


@dataclass(frozen=True)
class ReleaseSensor:
    """A release sensor. Reports that name the same one are polled by one sensor (both COT reports share one)."""

    name: str
    description: str
    minimum_interval_floor_s: int = 0  # it ticks every QP_RELEASE_SENSOR_INTERVAL seconds, and never more often


@dataclass(frozen=True)
class ReleaseWatch:
    """One URL a release sensor polls for a report: when it is due, and how a new file there becomes a run."""

    name: str  # names the file in logs and starts its run key: "<name>:<partition>:<sha256[:16]>"
    cursor_key: str  # where the sensor keeps this URL's validators and last file
    url: str
    dataset: str  # the lake dataset a new file is archived under
    partition_of: Callable[[bytes], str]  # which partition a file is for (may raise: then fallback_partition)
    fallback_partition: str
    valid_partition: Callable[[str], bool]
    scheduled_release: Callable[[str], datetime | None]
    due: Callable[[dict, datetime], tuple[bool, str]]  # (poll now?, why) from the cursor state and the time
    params: dict | None = None
    # The scheduled release to poll densely for (its first minute, or up to `lead` before it), from the cursor
    # state, the time and the lead; None outside such a window or once its file is in (release_sensing.py).
    dense_release: Callable[[dict, datetime, timedelta], datetime | None] | None = None


@dataclass
class ReportRun:
    """What a report's fetch sees of one run: its partition keys, the vendor and the lake. fetch may add to
    extra_metadata, which lands on the materialization."""

    context: dg.AssetExecutionContext
    report: MacroReport
    keys: list[str]
    vendor: VendorResource
    lake: Lake
    extra_metadata: dict = field(default_factory=dict)

    @cached_property
    def settings(self) -> Settings:
        return self.vendor.settings()

    @cached_property
    def client(self) -> VendorClient:
        return self.vendor.client()

    @property
    def tags(self) -> Mapping[str, str]:
        return self.context.run.tags if self.context.run else {}

    def fetch(self, route: Route, partition: str, *, params: dict | None = None, allow_tagged: bool = True,
              **values) -> RawFile:
        """The raw file of `partition` at `route`: the one the sensor archived (run tags), else a download."""
        return fetch_raw(self.context, self.client, self.lake, vendor=self.report.vendor, dataset=route.dataset,
                         partition=partition, url=route.url(self.settings, **values), ext=route.ext, params=params,
                         allow_tagged=allow_tagged)

    def archived(self, route: Route, partition: str) -> RawFile | None:
        """The newest archived revision of `partition` from `route` (re-materializing needs no download)."""
        return archived_raw(self.lake, self.report.vendor, route.dataset, partition)


def fetch_release_file(run: ReportRun) -> list[RawFile]:
    """The default fetch (one file per partition, at release_route): the file the release sensor saw (run tags),
    else the archived one, else a download."""
    route, key = run.report.release_route, run.keys[0]
    if route is None:
        raise ValueError(f"report {run.report.report_id} has no release_route: declare its fetch")
    raw = None
    if not run.tags.get(TAG_RAW_SHA) and run.tags.get(TAG_REFETCH) != "true":
        raw = run.archived(route, key)
    if raw is None:
        raw = run.fetch(route, key)
    return [raw]


@dataclass(frozen=True)
class MacroReport:
    """One report of the macro lane, as its folder declares it (macro/reports/<report>/report.py: REPORT).

    The minimum is a table, a vendor, its routes and a parser, plus either a release calendar with the route its
    sensor polls (a weekly report: partitions, fetch, sensor, freshness and release check follow from them) or
    its own partitions, fetch and release watches. Everything else has a default derived from those.
    """

    table: TableSpec  # the folder's table.py; its name is the report id, the folder name and the asset key's
    vendor: str  # lake folder raw/<vendor>/ and the asset's vendor tag
    routes: tuple[Route, ...]  # every URL the report reads
    parse: Callable[[Sequence[RawFile], Sequence[str]], pd.DataFrame]  # files, partition keys -> the table's rows
    # A calendar report: partitions are the calendar's reference dates, each with a scheduled release; the sensor
    # polls release_route around it, and a release_on_time check judges lateness.
    calendar: WeeklyReleaseCalendar | None = None
    release_route: Route | None = None
    release_partition: Callable[[bytes], str] | None = None  # the partition a file at release_route is for
    fetch: Callable[[ReportRun], Sequence[RawFile]] | None = None  # default: fetch_release_file
    freshness: dg.FreshnessPolicy | None = None  # default: the calendar's (due an hour after the release)
    release_sensor: ReleaseSensor | None = None  # default: "<report>_release_sensor" of its own
    job_description: str | None = None
    on_time_description: str | None = None
    catalog_metadata: Mapping[str, str] | None = None  # default: vendor_url and release_calendar
    revision_window: timedelta = DEFAULT_REVISION_WINDOW
    cursor_key: str | None = None  # the sensor cursor's key for release_route (default: the report id)
    # Otherwise (or as well): its own partitions and release watches.
    partitions: dg.PartitionsDefinition | None = None
    release_watches: Callable[[Settings, datetime], Iterable[ReleaseWatch]] | None = None
    domain_checks: tuple[DomainCheck, ...] = ()
    backfill_policy: dg.BackfillPolicy | None = None
    code_version: str | None = None  # default "<report>.v1"
    kinds: frozenset[str] = frozenset({"pandas", "csv"})

    @property
    def report_id(self) -> str:
        return self.table.name

    @property
    def asset_key(self) -> dg.AssetKey:
        return self.table.asset_key

    @property
    def job_name(self) -> str:
        return f"{self.report_id}_job"

    @property
    def fetch_files(self) -> Callable[[ReportRun], Sequence[RawFile]]:
        return self.fetch or fetch_release_file

    @property
    def freshness_policy(self) -> dg.FreshnessPolicy | None:
        return self.freshness or (self.calendar.freshness_policy if self.calendar else None)

    @property
    def sensor(self) -> ReleaseSensor:
        if self.release_sensor is not None:
            return self.release_sensor
        polled = self.release_route.vendor_url if self.release_route else "the report's URLs"
        return ReleaseSensor(f"{self.report_id}_release_sensor",
                             f"Polls {polled} (conditional GET) around each scheduled release and requests the "
                             "partition when a new file (new sha256) appears.")

    @property
    def job_text(self) -> str:
        return self.job_description or f"Load one partition of {self.table.qualified_name}."

    @property
    def on_time_text(self) -> str:
        name = self.calendar.name if self.calendar else self.report_id
        return self.on_time_description or (f"Each {name} release of the last 8 weeks (holiday calendar applied) "
                                            "was loaded within one hour; late or missing weeks are listed.")

    @property
    def catalog_entries(self) -> Mapping[str, str]:
        if self.catalog_metadata is not None:
            return self.catalog_metadata
        entries = {"vendor_url": ", ".join(r.vendor_url for r in self.routes)}
        if self.calendar:
            entries["release_calendar"] = self.calendar.description
        return entries

    @property
    def on_calendar(self) -> bool:
        """Whether its partitions are its calendar's weeks (then each has a scheduled release and lateness)."""
        return self.calendar is not None and self.partitions is None

    @property
    def partitions_def(self) -> dg.PartitionsDefinition:
        if self.partitions is not None:
            return self.partitions
        if self.calendar is None:
            raise ValueError(f"report {self.report_id} declares neither partitions nor a release calendar")
        return self.calendar.partitions

    def scheduled_release(self, key: str) -> datetime | None:
        """When the vendor is scheduled to release partition `key` (calendar reports only)."""
        return self.calendar.release_at(date.fromisoformat(key)) if self.on_calendar else None

    def should_poll(self, state: dict, now: datetime) -> tuple[bool, str]:
        """Calendar-aware polling of release_route (release_sensing.due_to_poll with this report's calendar)."""
        if self.calendar is None:
            raise ValueError(f"report {self.report_id} has no release calendar")
        return due_to_poll(state, now, latest_due=self.calendar.latest_released, release_at=self.calendar.release_at,
                           revision_window=self.revision_window, label=self.calendar.partition_label)

    def dense_release(self, state: dict, now: datetime, lead: timedelta) -> datetime | None:
        """The scheduled release whose first minute `now` is in, or at most `lead` before, while the sensor has
        not yet seen a file of its week (then the sensor polls release_route once a second)."""
        if self.calendar is None:
            return None
        week = self.calendar.latest_released(now + lead)
        release = self.calendar.release_at(week)
        if not release - lead <= now <= release + DENSE_WINDOW:
            return None
        have = state.get("partition")
        return None if have and have >= week.isoformat() else release

    def watches(self, settings: Settings, now: datetime) -> list[ReleaseWatch]:
        """The URLs the release sensor polls for this report now."""
        watches = list(self.release_watches(settings, now)) if self.release_watches else []
        if self.on_calendar and self.release_route is not None:
            watches.insert(0, ReleaseWatch(
                name=self.report_id, cursor_key=self.cursor_key or self.report_id,
                url=self.release_route.url(settings), dataset=self.release_route.dataset,
                partition_of=self.release_partition or (lambda _body: self.calendar.latest_released(now).isoformat()),
                fallback_partition=self.calendar.latest_released(now).isoformat(),
                valid_partition=self.has_partition, scheduled_release=self.scheduled_release, due=self.should_poll,
                dense_release=self.dense_release,
            ))
        return watches

    def has_partition(self, key: str) -> bool:
        try:
            return self.partitions_def.has_partition_key(key)
        except Exception:  # a key that is no date at all is simply not a partition
            return False
