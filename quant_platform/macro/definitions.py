"""The macro lane's Dagster definitions, all derived from the report registry (macro/registry.py).

Never declare a report's asset, job, sensor or check here: each comes from its folder's declaration.

Per report: its asset (macro/assets.py), a job "<report>_job", its release sensor (release_sensing.py; reports
that name the same sensor share it) and, for a calendar report, a release_on_time check (release_checks.py),
all evaluated by release_watch_job every 30 minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from quant_platform.errors import ConfigError
from quant_platform.macro.assets import report_asset
from quant_platform.macro.declaration import MacroReport, ReleaseSensor
from quant_platform.macro.registry import registered_reports
from quant_platform.macro.release_checks import release_on_time_check, release_watch
from quant_platform.macro.release_sensing import release_sensor

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


@dataclass(frozen=True)
class MacroLane:
    """What the registry's reports yield, by report id (sensors by name)."""

    reports: tuple[MacroReport, ...]
    assets: dict[str, dg.AssetsDefinition]
    jobs: dict[str, UnresolvedAssetJobDefinition]
    sensors: dict[str, dg.SensorDefinition]
    release_checks: dict[str, dg.AssetChecksDefinition]
    release_watch_job: UnresolvedAssetJobDefinition
    release_watch_schedule: dg.ScheduleDefinition

    @property
    def definitions(self) -> dg.Definitions:
        return dg.Definitions(
            assets=list(self.assets.values()),
            asset_checks=list(self.release_checks.values()),
            jobs=[*self.jobs.values(), self.release_watch_job],
            sensors=list(self.sensors.values()),
            schedules=[self.release_watch_schedule],
        )


def build_macro_lane(reports: Sequence[MacroReport]) -> MacroLane:
    """Asset, job, release sensor and release check of every report; refuses two reports with one name, or two
    declarations of one sensor name."""
    ids = [r.report_id for r in reports]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"two macro reports share a name: {sorted(i for i in ids if ids.count(i) > 1)}")
    assets = {r.report_id: report_asset(r) for r in reports}
    jobs = {r.report_id: dg.define_asset_job(r.job_name, selection=[assets[r.report_id]],
                                             description=r.job_text) for r in reports}
    by_sensor: dict[str, tuple[ReleaseSensor, list[MacroReport]]] = {}
    for r in reports:
        sensor, members = by_sensor.setdefault(r.sensor.name, (r.sensor, []))
        if sensor != r.sensor:
            raise ConfigError(f"reports {members[0].report_id} and {r.report_id} declare sensor {sensor.name} "
                              "differently; declare it once and share it")
        members.append(r)
    sensors = {name: release_sensor(sensor, members, jobs) for name, (sensor, members) in by_sensor.items()}
    checks = {r.report_id: release_on_time_check(r) for r in reports if r.on_calendar and r.release_route}
    watch_job, watch_schedule = release_watch(list(checks.values()))
    return MacroLane(tuple(reports), assets, jobs, sensors, checks, watch_job, watch_schedule)


MACRO_LANE = build_macro_lane(registered_reports())
defs = MACRO_LANE.definitions
