"""The catalog is the data dictionary: every asset carries a description, owner, group, kinds and a
column schema, and a snapshot of every asset spec makes any catalog change a visible diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from quant_platform_tests.conftest import REPO_ROOT

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_specs.json"


def _repo():
    from quant_platform.definitions import defs

    return defs.get_repository_def()


def _spec_snapshot() -> dict:
    repo = _repo()
    out = {}
    for key in sorted(repo.asset_graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = repo.asset_graph.get(key)
        checks = sorted(c.name for c in repo.asset_graph.get_check_keys_for_assets([key]))
        pdef = node.partitions_def
        out[key.to_user_string()] = {
            "group": node.group_name,
            "owners": list(node.owners),
            "kinds": sorted(k for k in node.kinds if k not in ("duckdb", "postgres")),
            "partitions": type(pdef).__name__ if pdef else None,
            "automation_condition": node.automation_condition.get_label() if node.automation_condition else None,
            "freshness_policy": type(node.freshness_policy).__name__ if node.freshness_policy else None,
            "pool": sorted(node.pools) if node.pools else None,
            "checks": checks,
            "columns": [c.name for c in node.metadata["dagster/column_schema"].columns],
            "deps": sorted(d.to_user_string() for d in node.parent_keys),
        }
    return out


def test_every_asset_is_documented_for_analysts():
    # The schemas the DDL creates (quant_platform/sql/001_schemas.sql), read from the file itself.
    import re

    from quant_platform.platform.warehouse import PACKAGED_SQL_DIR

    warehouse_schemas = set(re.findall(r"CREATE SCHEMA IF NOT EXISTS (\w+);",
                                       (PACKAGED_SQL_DIR / "001_schemas.sql").read_text()))
    assert {"macro", "core", "market", "marts", "governance", "reports", "analyst"} <= warehouse_schemas
    repo = _repo()
    missing = []
    for key in repo.asset_graph.get_all_asset_keys():
        node = repo.asset_graph.get(key)
        name = key.to_user_string()
        if not node.description or len(node.description) < 60:
            missing.append(f"{name}: description")
        if not node.owners:
            missing.append(f"{name}: owner")
        if not node.group_name or node.group_name == "default":
            missing.append(f"{name}: group")
        if not node.kinds:
            missing.append(f"{name}: kinds")
        schema = node.metadata.get("dagster/column_schema")
        if schema is None or not schema.columns:
            missing.append(f"{name}: column schema")
        else:
            for col in schema.columns:
                if not col.description:
                    missing.append(f"{name}.{col.name}: column description")
        if key.path[0] not in warehouse_schemas:
            missing.append(f"{name}: first key element must be a warehouse schema")
    assert missing == []


def test_numeric_columns_carry_units():
    from quant_platform.platform.ddl import all_tables

    lacking = [f"{t.qualified_name}.{c.name}" for t in all_tables() for c in t.columns
               if c.type in ("double",) and not c.unit]
    assert lacking == []


def test_asset_spec_snapshot():
    """Regenerate with UPDATE_SNAPSHOTS=1 after an intended catalog change, and commit the diff."""
    current = _spec_snapshot()
    how = (f"run `UPDATE_SNAPSHOTS=1 pytest {Path(__file__).relative_to(REPO_ROOT)} -k snapshot` and commit "
           f"{SNAPSHOT.relative_to(REPO_ROOT)}")
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert SNAPSHOT.is_file(), f"{SNAPSHOT} is missing: {how}"
    committed = json.loads(SNAPSHOT.read_text())
    changed = sorted(k for k in committed.keys() | current.keys() if committed.get(k) != current.get(k))
    assert committed == current, f"the asset specs differ from {SNAPSHOT.name} for {changed}: if intended, {how}"


def test_sql_matches_the_table_specs():
    from quant_platform.platform.ddl import stale_files

    assert stale_files(REPO_ROOT / "quant_platform" / "sql") == []


def test_schedules_and_sensors_are_on_by_default():
    from quant_platform.definitions import defs

    repo = defs.get_repository_def()
    sensors = {s.name: s.default_status for s in repo.sensor_defs}
    assert set(sensors) >= {"eia_wpsr_release_sensor", "eia_series_release_sensor", "cftc_cot_release_sensor",
                            "marts_automation_sensor"}
    assert all(s == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    assert {s.name for s in repo.schedule_defs} >= {"market_retention_job_schedule", "release_watch_job_schedule"}
    assert all(s.default_status == dg.DefaultScheduleStatus.RUNNING for s in repo.schedule_defs)
