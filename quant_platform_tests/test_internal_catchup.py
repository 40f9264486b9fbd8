"""No missed days: after the daemon was down, internal_extract_sensor requests every day since its cursor
(oldest first, a bounded number per tick, deterministic run keys), and the changes made on those days land in
the dimensions when its requests are executed.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pandas as pd
import pytest

from quant_platform_tests.release_helpers import evaluate_sensor
from quant_platform_tests.test_internal_scd2 import _dim, _run

SENSOR = "internal_extract_sensor"


def test_sensor_requests_each_missed_day_then_today_bounded_per_tick(qp_home, instance, monkeypatch):
    from quant_platform.definitions import defs

    # No operational database configured nor seeded: nothing to extract, a skip that says why (no failing run).
    reqs, _, skipped = evaluate_sensor(defs, SENSOR, instance, None)
    assert reqs == [] and "no operational database for crm, erp, hr" in skipped and "QP_HR_URL" in skipped
    for var, system in (("QP_CRM_URL", "crm"), ("QP_HR_URL", "hr"), ("QP_ERP_URL", "erp")):
        monkeypatch.setenv(var, f"sqlite:///{qp_home}/elsewhere/{system}.db")  # configured (the sensor reads none)

    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(4, 0, -1)]
    reqs, cursor, _ = evaluate_sensor(defs, SENSOR, instance, days[0])  # last tick on day -4, down since
    assert [r.partition_key for r in reqs] == [*days, today.isoformat()]
    assert [r.run_key for r in reqs[:-1]] == [f"internal:{d}:final" for d in days]
    assert reqs[-1].run_key.startswith(f"internal:{today.isoformat()}:")
    assert cursor == today.isoformat()
    again, _, _ = evaluate_sensor(defs, SENSOR, instance, days[0])
    assert [r.run_key for r in again[:-1]] == [r.run_key for r in reqs[:-1]]  # deterministic

    # A long outage is caught up over several ticks, oldest days first, never more per tick than the bound.
    from quant_platform.internal.assets import CATCHUP_DAYS_PER_TICK

    assert CATCHUP_DAYS_PER_TICK == 7
    cursor, seen = (today - timedelta(days=20)).isoformat(), []
    for _ in range(3):
        reqs, cursor, _ = evaluate_sensor(defs, SENSOR, instance, cursor)
        assert len(reqs) <= CATCHUP_DAYS_PER_TICK + 1 and reqs[-1].partition_key == today.isoformat()
        seen += [r.partition_key for r in reqs[:-1]]
    assert seen == [(today - timedelta(days=n)).isoformat() for n in range(20, 0, -1)]
    assert cursor == today.isoformat()
    reqs, _, _ = evaluate_sensor(defs, SENSOR, instance, cursor)
    assert [r.partition_key for r in reqs] == [today.isoformat()]


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)  # the sensor's logic is backend-free
def test_changes_of_days_the_daemon_missed_land_in_the_dimensions(qp_home, warehouse, instance):
    from quant_platform.definitions import defs
    from quant_platform.internal.sources import churn_sources, seed_sources

    today = datetime.now(UTC).date()

    def at(days_ago: int, hour: int) -> datetime:
        return datetime.combine(today - timedelta(days=days_ago), time(hour), tzinfo=UTC)

    seed_sources(clients=50, employees=30, suppliers=20, seed=2, now=at(3, 12), history_days=3)
    assert _run(instance, (today - timedelta(days=3)).isoformat(), full_reload=True).success
    tuesday = churn_sources(updates=8, deletes=3, inserts=4, seed=21, now=at(2, 9))
    wednesday = churn_sources(updates=6, deletes=0, inserts=2, seed=22, now=at(1, 15))

    # The daemon's last tick was two days ago, before the changes of that day and the next.
    reqs, _, _ = evaluate_sensor(defs, SENSOR, instance, (today - timedelta(days=2)).isoformat())
    job = defs.resolve_job_def("internal_extract_job")
    results = [job.execute_in_process(instance=instance, partition_key=r.partition_key, run_config=r.run_config,
                                      tags=dict(r.tags), raise_on_error=False) for r in reqs]
    assert all(r.success for r in results)

    for table, dim in (("employees", "dim_employee"), ("clients", "dim_client"), ("suppliers", "dim_supplier")):
        df = _dim(warehouse, dim)
        key = df.columns[0]
        current = df[df["is_current"]].set_index(key)
        expected = {k: when for report, when in ((tuesday, at(2, 9)), (wednesday, at(1, 15)))
                    for k in report["updated"][table] + report["inserted"][table]}
        assert expected
        for k, when in expected.items():  # the latest change of each key is its current version
            assert pd.Timestamp(current.loc[k, "valid_from"]) == pd.Timestamp(when), (dim, k)
        for k in tuesday["deleted"][table]:
            assert k not in current.index and df.loc[df[key] == k, "is_deleted"].any(), (dim, k)
    # Each missed day's run scanned the keys (its window is over); today's found the key aggregates equal.
    scans = [r.asset_materializations_for_node("core__dim_client")[0].metadata["delete_scan"].value
             for r in results]
    assert scans == ["full key scan (final extraction of the day)"] * 2 + ["skipped (counts equal)"]
