"""Release sensor for the CFTC Commitments of Traders: the weekly files around Friday 15:30 New York.

Never request a week twice for the same file: the run key carries the file's sha256.
"""


from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd

from quant_platform.errors import ReportParseError
from quant_platform.macro.cftc.assets import COT_REPORTS, CotReport, cftc_cot_disaggregated, cftc_cot_legacy
from quant_platform.macro.release_sensing import CursorState, due_to_poll, poll_release
from quant_platform.platform.calendars import (
    COT_WEEKLY_PARTITIONS,
    cot_release_at,
    latest_cot_week_released,
)
from quant_platform.platform.settings import load_settings
from quant_platform.resources import LakeResource, VendorResource

REVISION_WINDOW = timedelta(days=3)

cot_jobs = {
    "disaggregated": dg.define_asset_job("cftc_cot_disaggregated_job", selection=[cftc_cot_disaggregated],
                                         description="Load COT disaggregated weeks."),
    "legacy": dg.define_asset_job("cftc_cot_legacy_job", selection=[cftc_cot_legacy],
                                  description="Load COT legacy weeks."),
}


def weekly_file_as_of(report: CotReport, body: bytes) -> str:
    df = report.parse(body)
    weeks = sorted(pd.to_datetime(df["as_of"]).dt.date.unique())
    if not weeks:
        raise ReportParseError(f"cftc {report.name} weekly", None, "no rows")
    return weeks[-1].isoformat()


def cot_should_poll(state: dict, now: datetime) -> tuple[bool, str]:
    return due_to_poll(state, now, latest_due=latest_cot_week_released, release_at=cot_release_at,
                       revision_window=REVISION_WINDOW, label="as-of")


@dg.sensor(
    name="cftc_cot_release_sensor",
    jobs=list(cot_jobs.values()),
    minimum_interval_seconds=load_settings().release_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls the CFTC's current weekly COT files (disaggregated f_disagg.txt, legacy deafut.txt) "
    "around the Friday 15:30 release and requests the as-of week when a file with a new sha256 appears.",
)
def cftc_cot_release_sensor(context: dg.SensorEvaluationContext, vendor: VendorResource, lake: LakeResource):
    cursor = CursorState.load(context.cursor)
    now = datetime.now(UTC)
    base = vendor.settings().cftc_base_url
    client = vendor.client()
    client.attempts = min(client.attempts, 3)
    lk = lake.open()
    requests, skipped = [], []
    for report in COT_REPORTS:
        state = cursor.get(f"cot:{report.name}")
        poll, why = cot_should_poll(state, now)
        if not poll:
            skipped.append(why)
            continue
        found = poll_release(
            name=f"cftc_cot_{report.name}", url=base + report.weekly_path, params=None, client=client, lake=lk,
            state=state, vendor="cftc", dataset=report.weekly_dataset,
            partition_of=lambda body, r=report: weekly_file_as_of(r, body),
            fallback_partition=latest_cot_week_released(now).isoformat(), job_name=cot_jobs[report.name].name,
            valid_partition=COT_WEEKLY_PARTITIONS.has_partition_key,
            scheduled_release=lambda k: cot_release_at(date.fromisoformat(k)), log=context.log,
        )
        if found and found.run_request:
            requests.append(found.run_request)
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(skipped) or "no new COT file", cursor=cursor.dump())
    return dg.SensorResult(run_requests=requests, cursor=cursor.dump())


