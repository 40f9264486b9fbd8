"""Release lateness: flags report partitions whose release is late or missing (partition-level freshness).

Never judge weeks before the platform started loading a dataset: only releases it could have seen count.
"""


from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd

from quant_platform.macro.tables import CFTC_COT_DISAGGREGATED, CFTC_COT_LEGACY, EIA_WPSR
from quant_platform.platform.calendars import (
    cot_release_at,
    latest_cot_week_released,
    latest_wpsr_week_released,
    wpsr_release_at,
)
from quant_platform.platform.warehouse import Warehouse
from quant_platform.quality.rules import RELEASE_ON_TIME, RULE_DESCRIPTIONS
from quant_platform.resources import WarehouseResource

DUE_WITHIN = timedelta(hours=1)
LOOKBACK_WEEKS = 8


def release_lateness(
    wh: Warehouse,
    *,
    vendor: str,
    datasets: tuple[str, ...],
    latest_due: Callable[[datetime], date],
    release_at: Callable[[date], datetime],
    now: datetime,
) -> dict:
    """Compare when each due partition's rows were first committed to the warehouse with its scheduled release.

    The load time is governance.raw_files.loaded_at: publish_partition (loading.py), the one path a report
    takes into the warehouse, writes it in the same transaction as the partition's rows, stamped just before
    the commit, and never rewrites it. The alternatives are not commit times: load_audit is mirrored later by
    a sensor (and only while it runs), and a macro row's loaded_at is overwritten by every reload. A file
    fetched on time but loaded late is late; a week with no loaded file is missing. The platform started
    watching at its first fetch (not its first load, which may itself be late): releases before it are not
    judged.
    """
    seen = wh.query_df(
        "SELECT partition_key, min(fetched_at) AS first_fetched, min(loaded_at) AS first_loaded "
        "FROM governance.raw_files WHERE vendor = :vendor AND dataset IN :datasets GROUP BY partition_key",
        {"vendor": vendor, "datasets": list(datasets)},
    )
    if seen.empty:
        return {"judged": 0, "late": [], "missing": [], "note": "nothing loaded yet"}
    loaded = {str(k)[:10]: _utc(v) for k, v in zip(seen["partition_key"], seen["first_loaded"], strict=True)}
    started = min(_utc(v) for v in seen["first_fetched"])
    late, missing, judged = [], [], 0
    week = latest_due(now - DUE_WITHIN)
    for _ in range(LOOKBACK_WEEKS):
        scheduled = release_at(week)
        if scheduled + DUE_WITHIN <= now and scheduled >= started:
            judged += 1
            got = loaded.get(week.isoformat())
            if got is None:
                missing.append(f"{week} (due {scheduled:%Y-%m-%d %H:%M %Z})")
            elif got - scheduled > DUE_WITHIN:
                late.append(f"{week} (loaded {(got - scheduled).total_seconds() / 3600:.1f} h after release)")
        week -= timedelta(days=7)
    return {"judged": judged, "late": late, "missing": missing, "platform_started": started.isoformat()}


def _utc(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _result(outcome: dict) -> dg.AssetCheckResult:
    ok = not outcome["late"] and not outcome["missing"]
    return dg.AssetCheckResult(
        passed=ok,
        severity=dg.AssetCheckSeverity.WARN,
        description=RULE_DESCRIPTIONS[RELEASE_ON_TIME],
        metadata={
            "releases_judged": outcome["judged"],
            "late_partitions": ", ".join(outcome["late"]) or "none",
            "missing_partitions": ", ".join(outcome["missing"]) or "none",
            "platform_started": outcome.get("platform_started", outcome.get("note", "")),
            "due_within": "in the warehouse (rows committed) within 1 hour of the scheduled release",
        },
    )


@dg.asset_check(asset=EIA_WPSR.asset_key, name=RELEASE_ON_TIME, blocking=False,
                description="Each WPSR release of the last 8 weeks (holiday calendar applied) was loaded "
                "within one hour; late or missing weeks are listed.")
def eia_wpsr_release_on_time(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.open()
    try:
        return _result(release_lateness(wh, vendor="eia", datasets=("wpsr_table1",),
                                        latest_due=latest_wpsr_week_released, release_at=wpsr_release_at,
                                        now=datetime.now(UTC)))
    finally:
        wh.dispose()


def _cot_check(spec, dataset: str):
    @dg.asset_check(asset=spec.asset_key, name=RELEASE_ON_TIME, blocking=False,
                    description="Each COT release of the last 8 weeks was loaded within one hour of Friday "
                    "15:30 New York (holidays applied); late or missing weeks are listed.")
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        wh = warehouse.open()
        try:
            return _result(release_lateness(wh, vendor="cftc", datasets=(dataset,),
                                            latest_due=latest_cot_week_released, release_at=cot_release_at,
                                            now=datetime.now(UTC)))
        finally:
            wh.dispose()

    return _check


cot_disaggregated_release_on_time = _cot_check(CFTC_COT_DISAGGREGATED, "cot_disaggregated_weekly")
cot_legacy_release_on_time = _cot_check(CFTC_COT_LEGACY, "cot_legacy_weekly")

RELEASE_CHECKS = [eia_wpsr_release_on_time, cot_disaggregated_release_on_time, cot_legacy_release_on_time]

release_watch_job = dg.define_asset_job(
    "release_watch_job",
    selection=dg.AssetSelection.checks(*RELEASE_CHECKS),
    description="Evaluates the release-lateness checks of every report.",
)
release_watch_schedule = dg.ScheduleDefinition(
    job=release_watch_job, cron_schedule="*/30 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 30 minutes: flag report weeks that are late or missing.",
)
