"""Polling a vendor URL for a new release: conditional GET, archive the new file, build the run request.
Never load data in a sensor (it notices, archives as evidence, asks for a run), nor keep a secret in its cursor.

release_sensor() is the one release sensor every report gets: it polls each of its reports' release watches
(macro/declaration.py) when they are due, with the calendar-aware rule due_to_poll for calendar reports.

In the minute after a scheduled release (and from one sensor interval before it) a tick polls densely: once a
second, until the new file is there, the minute is over or the tick has used its budget; the next tick goes on.
So a file is seen about a second after the vendor posts it, while the sensor ticks every QP_RELEASE_SENSOR_INTERVAL
seconds and asks the vendor nothing between releases.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from quant_platform.errors import QuantPlatformError, VendorError
from quant_platform.macro.loading import (
    TAG_ETAG,
    TAG_FIRST_SEEN,
    TAG_LAST_MODIFIED,
    TAG_RAW_PATH,
    TAG_RAW_SHA,
    TAG_URL,
)
from quant_platform.platform.calendars import release_window_open
from quant_platform.platform.lake import Lake, check_name
from quant_platform.platform.redaction import redact
from quant_platform.platform.settings import load_settings
from quant_platform.platform.vendor_http import VendorClient
from quant_platform.resources import LakeResource, VendorResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

    from quant_platform.macro.declaration import MacroReport, ReleaseSensor, ReleaseWatch

SENSOR_ATTEMPTS = 3  # sensors stay light: the next tick tries again
TAG_SCHEDULED_RELEASE = "qp/scheduled_release_at"

# Dense polling around a scheduled release (see the module docstring).
DENSE_WINDOW = timedelta(seconds=60)  # after the scheduled release
DENSE_POLL_EVERY_S = 1.0
# A tick polls densely for at most this long: Dagster times a sensor evaluation out after 60 s.
DENSE_TICK_BUDGET_S = 45.0
# A tick that starts this long before a release waits for it (at least one tick starts in any sensor interval; the
# daemon checks sensors every 5 s). Capped so that tick still polls the first 15 s after the release.
DENSE_LEAD_MAX = timedelta(seconds=30)
# Rehearsal only (bench release): the release calendars are judged as if it were this many seconds later; "@<file>"
# reads the seconds from that file at each tick, so a running daemon can be moved from one release to the next.
# Never set in production; recorded times (first sight, loads) are real times either way.
CLOCK_SHIFT_ENV = "QP_RELEASE_CLOCK_SHIFT_S"
# A release's run goes before derived work (marts, reports, audits) in the run queue and for the warehouse writer.
PRIORITY_TAG = "dagster/priority"
RELEASE_RUN_PRIORITY = "10"


def calendar_now() -> datetime:
    """Now, for judging release calendars: the real time, shifted by QP_RELEASE_CLOCK_SHIFT_S in a rehearsal."""
    shift = os.environ.get(CLOCK_SHIFT_ENV) or "0"
    if shift.startswith("@"):
        try:
            with open(shift[1:]) as f:
                shift = f.read().strip() or "0"
        except OSError:
            shift = "0"
    return datetime.now(UTC) + timedelta(seconds=float(shift))


def dense_lead(sensor_interval_s: float) -> timedelta:
    """How long before a scheduled release a tick starts waiting for it: a sensor interval and the daemon's 5 s."""
    return min(timedelta(seconds=sensor_interval_s + 5), DENSE_LEAD_MAX)


@dataclass
class CursorState:
    """Per-URL memory of the sensor: validators of the last response and what it last requested."""

    entries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, raw: str | None) -> CursorState:
        try:
            data = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            data = {}
        return cls(entries=data if isinstance(data, dict) else {})

    def dump(self) -> str:
        return json.dumps(self.entries, sort_keys=True)

    def get(self, name: str) -> dict:
        return self.entries.setdefault(name, {})


@dataclass(frozen=True)
class NewRelease:
    name: str
    partition_key: str | None
    sha256: str
    run_request: dg.RunRequest | None
    note: str


def poll_release(
    *,
    name: str,
    url: str,
    params: dict | None,
    client: VendorClient,
    lake: Lake,
    state: dict,
    vendor: str,
    dataset: str,
    partition_of: Callable[[bytes], str],
    fallback_partition: str,
    job_name: str,
    valid_partition: Callable[[str], bool],
    scheduled_release: Callable[[str], datetime | None],
    log,
) -> NewRelease | None:
    """One conditional GET. Returns a NewRelease when the vendor serves bytes we have not requested yet."""
    now = datetime.now(UTC)
    state["checked_at"] = now.isoformat()
    try:
        resp = client.get(url, params=params, etag=state.get("etag"), last_modified=state.get("last_modified"))
    except VendorError as exc:
        state["last_error"] = redact(str(exc))  # the cursor is stored by Dagster: never a key in it
        log.warning(f"{name}: {state['last_error']}")
        return None
    state.pop("last_error", None)
    if resp.not_modified or resp.sha256 == state.get("sha256"):
        return None
    try:
        partition = check_name("partition", partition_of(resp.body))  # a name the lake accepts, or refused
        note = "new file"
    except QuantPlatformError as exc:
        # A malformed file still gets a run: its blocking checks fail with the reason, visibly.
        partition = fallback_partition
        note = f"unreadable header ({exc}); requesting the due partition so the checks report it"
    archived = lake.archive_raw(vendor, dataset, partition, resp.body, url_ext(url))
    state.update({"etag": resp.etag, "last_modified": resp.last_modified, "sha256": resp.sha256,
                  "partition": partition, "seen_at": now.isoformat()})
    if not valid_partition(partition):
        log.warning(f"{name}: file for partition {partition} is outside the partitions; not requested")
        return NewRelease(name, partition, resp.sha256, None, "outside partitions")
    tags = {
        TAG_RAW_SHA: resp.sha256, TAG_RAW_PATH: archived.path, TAG_FIRST_SEEN: now.isoformat(),
        TAG_URL: resp.url[:250], TAG_ETAG: resp.etag or "", TAG_LAST_MODIFIED: resp.last_modified or "",
        PRIORITY_TAG: RELEASE_RUN_PRIORITY,
    }
    sched = scheduled_release(partition)
    if sched:
        tags[TAG_SCHEDULED_RELEASE] = sched.astimezone(UTC).isoformat()
    request = dg.RunRequest(
        run_key=f"{name}:{partition}:{resp.sha256[:16]}", partition_key=partition, job_name=job_name, tags=tags,
    )
    log.info(f"{name}: {note}: partition {partition}, sha256 {resp.sha256[:12]} -> run requested")
    return NewRelease(name, partition, resp.sha256, request, note)


def due_to_poll(
    state: dict,
    now: datetime,
    *,
    latest_due: Callable[[datetime], date],
    release_at: Callable[[date], datetime],
    revision_window: timedelta,
    label: str,
) -> tuple[bool, str]:
    """Calendar-aware polling: poll while the due release is missing, inside its revision window, or when
    the next release is about to be due; otherwise stay quiet until the next scheduled release."""
    due = latest_due(now)
    due_release = release_at(due)
    have = state.get("partition")
    if not have or have < due.isoformat():
        return True, f"{label} {due} was due {due_release:%a %Y-%m-%d %H:%M %Z} and is not loaded yet"
    if release_window_open(due_release, now) and now <= due_release + revision_window:
        return True, f"inside the release window of {label} {due}"
    nxt = release_at(due + timedelta(days=7))
    if release_window_open(nxt, now):
        return True, f"release of {label} {due + timedelta(days=7)} is due"
    return False, f"{label} {have} is loaded; next release {nxt:%a %Y-%m-%d %H:%M %Z}"


def url_ext(url: str) -> str:
    path = url.split("?", 1)[0]
    tail = path.rsplit("/", 1)[-1]
    if tail.endswith(".ashx"):
        return "csv"
    if tail.endswith("/") or "." not in tail:
        return "json"
    return tail.rsplit(".", 1)[-1].lower()


def release_sensor(sensor: ReleaseSensor, reports: Sequence[MacroReport],
                   jobs: dict[str, UnresolvedAssetJobDefinition]) -> dg.SensorDefinition:
    """The release sensor `sensor` of `reports`: each tick polls every due release watch of every report once
    (conditional GET) and requests a run of the report's job for each new file."""
    targets = [jobs[r.report_id] for r in reports]
    target = {"job": targets[0]} if len(targets) == 1 else {"jobs": targets}
    interval = max(sensor.minimum_interval_floor_s, load_settings().release_sensor_interval_s)

    @dg.sensor(
        name=sensor.name,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=sensor.description,
        **target,
    )
    def _release_sensor(context: dg.SensorEvaluationContext, vendor: VendorResource, lake: LakeResource):
        started = time.monotonic()
        cursor = CursorState.load(context.cursor)
        now = calendar_now()
        settings = vendor.settings()
        client = vendor.client()
        client.attempts = min(client.attempts, SENSOR_ATTEMPTS)
        lk = lake.open()
        lead = dense_lead(interval)
        requests, notes, dense = [], [], []

        def poll(report: MacroReport, watch: ReleaseWatch, state: dict) -> NewRelease | None:
            return poll_release(
                name=watch.name, url=watch.url, params=watch.params, client=client, lake=lk, state=state,
                vendor=report.vendor, dataset=watch.dataset, partition_of=watch.partition_of,
                fallback_partition=watch.fallback_partition, job_name=jobs[report.report_id].name,
                valid_partition=watch.valid_partition, scheduled_release=watch.scheduled_release,
                log=context.log,
            )

        for report in reports:
            for watch in report.watches(settings, now):
                state = cursor.get(watch.cursor_key)
                release = watch.dense_release(state, now, lead) if watch.dense_release else None
                poll_now, why = watch.due(state, now)
                if not poll_now and release is None:
                    notes.append(why)
                    continue
                found = poll(report, watch, state) if poll_now else None
                if found and found.run_request:
                    requests.append(found.run_request)
                else:
                    notes.append(f"{watch.name}: no new file" + (f" ({why})" if why else ""))
                    if release is not None:
                        dense.append((report, watch, state, release))
        # The minute after a scheduled release: poll the due files once a second until one is new.
        polls = 0
        while dense and not requests and time.monotonic() - started + DENSE_POLL_EVERY_S < DENSE_TICK_BUDGET_S:
            now = calendar_now()
            first = min(release for *_, release in dense)
            time.sleep(min(max((first - now).total_seconds(), DENSE_POLL_EVERY_S),
                           DENSE_TICK_BUDGET_S - (time.monotonic() - started)))
            now = calendar_now()
            for item in list(dense):
                report, watch, state, release = item
                if now > release + DENSE_WINDOW:
                    dense.remove(item)
                    continue
                if now < release:
                    continue
                polls += 1
                found = poll(report, watch, state)
                if found and found.run_request:
                    requests.append(found.run_request)
                    dense.remove(item)
        if polls:
            notes.append(f"polled {polls} times in the minute after a scheduled release")
        if not requests:
            return dg.SensorResult(skip_reason="; ".join(n for n in notes if n) or "no new file", cursor=cursor.dump())
        return dg.SensorResult(run_requests=requests, cursor=cursor.dump())

    return _release_sensor
