"""Release lateness: flags report partitions whose release is late or missing (partition-level freshness).

Never judge weeks before the platform started loading a dataset: only releases it could have seen count.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

from quant_platform.macro.declaration import MacroReport
from quant_platform.platform.warehouse import Warehouse
from quant_platform.quality.rules import RELEASE_ON_TIME, RULE_DESCRIPTIONS
from quant_platform.resources import WarehouseResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

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
    judged. A late week says when its file was first seen (its rows' available_at), so a vendor that published
    late (the CFTC during the Oct-Nov 2025 shutdown) is told from a load that came late.
    """
    seen = wh.query_df(
        "SELECT partition_key, min(fetched_at) AS first_fetched, min(loaded_at) AS first_loaded "
        "FROM governance.raw_files WHERE vendor = :vendor AND dataset IN :datasets GROUP BY partition_key",
        {"vendor": vendor, "datasets": list(datasets)},
    )
    if seen.empty:
        return {"judged": 0, "late": [], "missing": [], "note": "nothing loaded yet"}
    loaded = {str(k)[:10]: _utc(v) for k, v in zip(seen["partition_key"], seen["first_loaded"], strict=True)}
    fetched = {str(k)[:10]: _utc(v) for k, v in zip(seen["partition_key"], seen["first_fetched"], strict=True)}
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
                # First sight (the file's available_at) tells a late vendor from a late load.
                first = fetched.get(week.isoformat(), got)
                who = "the vendor was late" if first - scheduled > DUE_WITHIN else "the load was late"
                late.append(f"{week} (loaded {_hours(got - scheduled)} h after release, first seen "
                            f"{_hours(first - scheduled)} h after: {who})")
        week -= timedelta(days=7)
    return {"judged": judged, "late": late, "missing": missing, "platform_started": started.isoformat()}


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f}"


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


def release_on_time_check(report: MacroReport) -> dg.AssetChecksDefinition:
    """The release_on_time check of a calendar report: its releases of the last weeks, judged on its calendar."""
    calendar, route = report.calendar, report.release_route
    if calendar is None or route is None:
        raise ValueError(f"report {report.report_id} has no release calendar and route to judge lateness by")

    @dg.asset_check(asset=report.asset_key, name=RELEASE_ON_TIME, blocking=False,
                    description=report.on_time_text)
    def _release_on_time(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        wh = warehouse.open()
        try:
            return _result(release_lateness(wh, vendor=report.vendor, datasets=(route.dataset,),
                                            latest_due=calendar.latest_released, release_at=calendar.release_at,
                                            now=datetime.now(UTC)))
        finally:
            wh.dispose()

    return _release_on_time


def release_watch(checks: Sequence[dg.AssetChecksDefinition]) -> tuple["UnresolvedAssetJobDefinition",
                                                                      dg.ScheduleDefinition]:
    """The job that evaluates every report's release_on_time check, and its schedule."""
    job = dg.define_asset_job(
        "release_watch_job",
        selection=dg.AssetSelection.checks(*checks),
        description="Evaluates the release-lateness checks of every report.",
    )
    # At :15 and :45, never on the hour or half hour when the reports are released (WPSR and gas storage 10:30,
    # COT 15:30, delayed releases 11:00 or 12:00): a release's run does not queue behind it, and every load
    # evaluates these checks anyway.
    schedule = dg.ScheduleDefinition(
        job=job, cron_schedule="15,45 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every 30 minutes (at :15 and :45, between releases): flag report weeks that are late or "
        "missing.",
    )
    return job, schedule
