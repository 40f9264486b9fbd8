"""The governance audit sensor on both backends, fed by a real Dagster instance: a database error between
its two tables' writes leaves no half-written tick, and the retry records every event exactly once.

Never fake the failure: the second table is really missing for one tick, and nothing is monkeypatched.
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster import DagsterEventType, EventRecordsFilter


@dg.asset(check_specs=[dg.AssetCheckSpec("rows_positive", asset="audited")])
def audited():
    return dg.MaterializeResult(metadata={"dagster/row_count": 3},
                                check_results=[dg.AssetCheckResult(check_name="rows_positive", passed=True)])


def _event_ids(instance, event_type) -> set[int]:
    return {r.storage_id for r in instance.get_event_records(EventRecordsFilter(event_type=event_type))}


def _audited_ids(wh, table: str) -> list[int]:
    return sorted(int(v) for v in wh.query_df(f"SELECT event_id FROM governance.{table}")["event_id"])  # noqa: S608


def test_a_failed_tick_writes_nothing_and_its_retry_records_each_event_once(warehouse, instance):
    from quant_platform.governance.audit import governance_audit_sensor_factory, mirror_events
    from quant_platform.resources import WarehouseResource

    for _ in range(2):
        assert dg.materialize([audited], instance=instance).success
    mats = _event_ids(instance, DagsterEventType.ASSET_MATERIALIZATION)
    checks = _event_ids(instance, DagsterEventType.ASSET_CHECK_EVALUATION)
    assert len(mats) == 2 and len(checks) == 2

    sensor = governance_audit_sensor_factory(None)
    resources = {"warehouse": WarehouseResource(url=warehouse.url)}

    # Tick 1: governance.check_results is gone while the sensor writes (a real error from the database).
    warehouse.execute("ALTER TABLE governance.check_results RENAME TO check_results_away")
    ctx = dg.build_sensor_context(instance=instance, cursor=None, resources=resources)
    with pytest.raises(Exception, match="check_results"):
        sensor(ctx)
    assert ctx.cursor is None, "a failed tick must not advance the cursor"
    assert _audited_ids(warehouse, "load_audit") == [], "a failed tick must not leave half its rows"
    warehouse.execute("ALTER TABLE governance.check_results_away RENAME TO check_results")

    # Tick 2 (the retry, same cursor): succeeds, every event once.
    ctx = dg.build_sensor_context(instance=instance, cursor=None, resources=resources)
    sensor(ctx)
    assert int(ctx.cursor) == max(mats | checks)
    assert _audited_ids(warehouse, "load_audit") == sorted(mats)
    assert _audited_ids(warehouse, "check_results") == sorted(checks)

    # A lost cursor replays the whole log: nothing is duplicated and nothing fails.
    cursor, counts = mirror_events(instance, warehouse, 0)
    assert cursor == max(mats | checks) and counts == {"load_audit": 0, "check_results": 0}
    assert _audited_ids(warehouse, "load_audit") == sorted(mats)
    assert _audited_ids(warehouse, "check_results") == sorted(checks)
    row = warehouse.query_df("SELECT asset_key, row_count, source_kind FROM governance.load_audit").iloc[0]
    assert (row["asset_key"], int(row["row_count"]), row["source_kind"]) == ("audited", 3, "unknown")
