"""The one Dagster code location of the platform: assembles every domain's definitions.

Never define an asset here: each domain folder owns its assets, checks, sensors and jobs.
"""

from __future__ import annotations

import functools

import dagster as dg

from quant_platform.governance.audit import governance_audit_sensor_factory
from quant_platform.internal.assets import INTERNAL_ASSETS, internal_extract_job, internal_extract_sensor
from quant_platform.macro.definitions import MACRO_LANE  # the lane, not its Definitions: one Definitions here
from quant_platform.market.assets import (
    MARKET_ASSETS,
    market_ingest_sensor,
    market_retention_job,
    market_retention_schedule,
    stream_progressing,
    ticks_daily_job,
)
from quant_platform.marts.assets import cot_positioning, us_crude_balance_weekly
from quant_platform.ops.alerts import alert_sensor
from quant_platform.platform.settings import bounded_env
from quant_platform.reports.assets import REPORTING_ASSETS, REPORTING_JOBS, reports_sensor
from quant_platform.resources import platform_resources

marts_automation_sensor = dg.AutomationConditionSensorDefinition(
    "marts_automation_sensor",
    target=dg.AssetSelection.groups("marts"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    # QP_MARTS_SENSOR_INTERVAL (default 30 s, 5..3600): the headless demo and the tests tick faster.
    minimum_interval_seconds=int(bounded_env("QP_MARTS_SENSOR_INTERVAL", 30, 5, 3600, integer=True)),
    description="Rebuilds the marts when a report partition they read from lands (every "
    "QP_MARTS_SENSOR_INTERVAL seconds, default 30).",
)

ASSETS = [us_crude_balance_weekly, cot_positioning, *INTERNAL_ASSETS, *MARKET_ASSETS, *REPORTING_ASSETS]


@functools.cache
def _asset_graph():
    return defs.resolve_asset_graph()


def _upstream_of(key: dg.AssetKey) -> str:
    """Upstream assets of a derived table, for its load-audit row (from the asset graph, which also holds
    AssetSpecs such as the observed tick stream)."""
    graph = _asset_graph()
    if not graph.has(key):
        return ""
    return ", ".join(sorted(k.to_user_string() for k in graph.get(key).parent_keys))


governance_audit_sensor = governance_audit_sensor_factory(_upstream_of)

# Every macro report, from macro/registry.py. Dagster's module loader (dagster dev -m, the daemon) refuses a module
# with two Definitions objects at module scope, so the lane's is built here, not imported.
defs = dg.Definitions.merge(MACRO_LANE.definitions, dg.Definitions(
    assets=ASSETS,
    asset_checks=[stream_progressing],
    jobs=[internal_extract_job, ticks_daily_job, market_retention_job, *REPORTING_JOBS],
    sensors=[marts_automation_sensor, governance_audit_sensor, internal_extract_sensor, market_ingest_sensor,
             alert_sensor, reports_sensor],
    schedules=[market_retention_schedule],
    resources=platform_resources(),
    # Each run is already its own process (the run launcher's). The default multiprocess executor started
    # one more process per step, and each paid 3-5 s of Python start and code import, for steps that wait
    # for the single warehouse-writer slot one after another anyway: a day of ticks (4 steps) took 30-40 s
    # of which most was start-up.
    executor=dg.in_process_executor,
))
