"""Helpers for tests that drive sensors and runs on a real Dagster instance.

Never fake a sensor result: evaluate the real sensor, then execute exactly what it requested.
"""

from __future__ import annotations

import dagster as dg


def evaluate_sensor(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.get_repository_def().get_sensor_def(name)
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources)
    data = sensor.evaluate_tick(ctx)
    return data.run_requests or [], data.cursor, data.skip_message


def execute_requests(defs: dg.Definitions, instance: dg.DagsterInstance, requests) -> list:
    results = []
    for req in requests:
        job = defs.resolve_job_def(req.job_name)
        results.append(job.execute_in_process(instance=instance, partition_key=req.partition_key,
                                              tags=dict(req.tags), raise_on_error=False))
    return results


def check_results(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def failure_messages(result) -> list[str]:
    out = []
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE" and e.event_specific_data.error:
            out.append(e.event_specific_data.error.message)
    return out
