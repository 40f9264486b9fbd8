"""Release sensors for EIA: the WPSR on its Wednesday calendar, and the EIA series after each WPSR.

Never poll outside the release window once the due week is loaded: the vendor's servers are not ours.
"""


from datetime import UTC, date, datetime, timedelta

import dagster as dg

from quant_platform.macro.eia.assets import WPSR_PATH, eia_series, eia_wpsr
from quant_platform.macro.eia.parsing import wpsr_week_ending
from quant_platform.macro.eia.series import SERIES, api_v2_request, configured_series, dnav_url
from quant_platform.macro.release_sensing import CursorState, due_to_poll, poll_release
from quant_platform.platform.calendars import (
    WPSR_WEEKLY_PARTITIONS,
    latest_wpsr_week_released,
    wpsr_release_at,
)
from quant_platform.platform.settings import load_settings
from quant_platform.resources import LakeResource, VendorResource

# After a scheduled release, keep polling this long for late files and revisions.
REVISION_WINDOW = timedelta(hours=36)

eia_wpsr_job = dg.define_asset_job("eia_wpsr_job", selection=[eia_wpsr], description="Load one WPSR week.")
eia_series_job = dg.define_asset_job("eia_series_job", selection=[eia_series],
                                     description="Load the history of one EIA series.")


def _sensor_client(vendor: VendorResource):
    client = vendor.client()
    client.attempts = min(client.attempts, 3)  # sensors stay light: the next tick tries again
    return client


def _valid_week(key: str) -> bool:
    try:
        return WPSR_WEEKLY_PARTITIONS.has_partition_key(key)
    except Exception:
        return False


def wpsr_should_poll(state: dict, now: datetime) -> tuple[bool, str]:
    return due_to_poll(state, now, latest_due=latest_wpsr_week_released, release_at=wpsr_release_at,
                       revision_window=REVISION_WINDOW, label="week")


@dg.sensor(
    name="eia_wpsr_release_sensor",
    job=eia_wpsr_job,
    minimum_interval_seconds=load_settings().release_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls ir.eia.gov/wpsr/table1.csv (conditional GET) around each scheduled WPSR release and "
    "requests the week's partition when a new file (new sha256) appears; the run key carries the sha256, "
    "so a revised file loads again and the same file never does.",
)
def eia_wpsr_release_sensor(context: dg.SensorEvaluationContext, vendor: VendorResource, lake: LakeResource):
    cursor = CursorState.load(context.cursor)
    state = cursor.get("eia_wpsr")
    now = datetime.now(UTC)
    poll, why = wpsr_should_poll(state, now)
    if not poll:
        return dg.SensorResult(skip_reason=why, cursor=cursor.dump())
    due = latest_wpsr_week_released(now).isoformat()
    found = poll_release(
        name="eia_wpsr", url=vendor.settings().eia_ir_base_url + WPSR_PATH, params=None,
        client=_sensor_client(vendor), lake=lake.open(), state=state, vendor="eia", dataset="wpsr_table1",
        partition_of=lambda body: wpsr_week_ending(body).isoformat(), fallback_partition=due,
        job_name=eia_wpsr_job.name, valid_partition=_valid_week,
        scheduled_release=lambda k: wpsr_release_at(date.fromisoformat(k)), log=context.log,
    )
    if found is None or found.run_request is None:
        return dg.SensorResult(skip_reason=f"no new file ({why})", cursor=cursor.dump())
    return dg.SensorResult(run_requests=[found.run_request], cursor=cursor.dump())


@dg.sensor(
    name="eia_series_release_sensor",
    job=eia_series_job,
    minimum_interval_seconds=max(60, load_settings().release_sensor_interval_s),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls each configured EIA series (dnav history CSV, or API v2 when QP_EIA_API_KEY is set) "
    "after each WPSR release, daily series once an hour, and requests the series partition when it changed.",
)
def eia_series_release_sensor(context: dg.SensorEvaluationContext, vendor: VendorResource, lake: LakeResource):
    cursor = CursorState.load(context.cursor)
    settings = vendor.settings()
    now = datetime.now(UTC)
    due_release = wpsr_release_at(latest_wpsr_week_released(now))
    client = _sensor_client(vendor)
    lk = lake.open()
    requests, notes = [], []
    for series_id in configured_series():
        state = cursor.get(f"eia_series:{series_id}")
        checked = datetime.fromisoformat(state["checked_at"]) if state.get("checked_at") else None
        daily = SERIES[series_id].frequency == "D"
        due = (
            checked is None
            or "sha256" not in state
            or (checked < due_release + REVISION_WINDOW and now >= due_release)
            or (daily and now - checked >= timedelta(hours=1))
        )
        if not due:
            continue
        if settings.eia_api_key:
            url, params = api_v2_request(settings.eia_api_base_url, series_id, settings.eia_api_key, 0)
            dataset = "series_api_v2"
        else:
            url, params = dnav_url(settings.eia_base_url, series_id), None
            dataset = "series_dnav"
        found = poll_release(
            name=f"eia_series:{series_id}", url=url, params=params, client=client, lake=lk, state=state,
            vendor="eia", dataset=dataset, partition_of=lambda _b, s=series_id: s, fallback_partition=series_id,
            job_name=eia_series_job.name, valid_partition=lambda _k: True, scheduled_release=lambda _k: None,
            log=context.log,
        )
        if found and found.run_request:
            requests.append(found.run_request)
            notes.append(series_id)
    if not requests:
        return dg.SensorResult(skip_reason="no series changed", cursor=cursor.dump())
    return dg.SensorResult(run_requests=requests, cursor=cursor.dump())
