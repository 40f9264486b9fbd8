"""Internal lane end to end on both warehouse backends: seeded operational databases, a full load, then an
update and a delete in the source produce a new SCD2 version and a closed one; re-running the same
partition changes nothing; every load and check lands in the governance audit tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from quant_platform_tests.release_helpers import check_results, evaluate_sensor

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
DIMS = ("core__dim_employee", "core__dim_client", "core__dim_supplier")


def _run(instance, partition: str, full_reload: bool = False):
    from quant_platform.definitions import defs

    config = {"ops": {op: {"config": {"full_reload": full_reload}} for op in DIMS}}
    return defs.resolve_job_def("internal_extract_job").execute_in_process(
        instance=instance, partition_key=partition, run_config=config, raise_on_error=False)


def _dim(warehouse, name: str) -> pd.DataFrame:
    from quant_platform.internal.tables import INTERNAL_TABLES

    spec = next(t for t in INTERNAL_TABLES if t.name == name)
    return warehouse.read_table(spec)


def test_update_and_delete_become_scd2_versions_and_reruns_change_nothing(qp_home, warehouse, instance):
    from quant_platform.internal.sources import churn_sources, seed_sources

    seed_sources(clients=300, employees=80, suppliers=120, seed=3, now=T0)
    first = _run(instance, "2026-11-02", full_reload=True)
    assert first.success
    assert all(check_results(first).values()), check_results(first)
    emp = _dim(warehouse, "dim_employee")
    assert len(emp) == 80 and emp["is_current"].all() and (emp["version"] == 1).all()
    assert len(_dim(warehouse, "dim_client")) == 300

    changed = churn_sources(updates=12, deletes=4, seed=5, now=T1)
    second = _run(instance, "2026-11-03")
    assert second.success
    assert all(check_results(second).values()), check_results(second)

    for table, dim in (("employees", "dim_employee"), ("clients", "dim_client"), ("suppliers", "dim_supplier")):
        df = _dim(warehouse, dim)
        key = df.columns[0]
        for k in changed["updated"].get(table, []):
            versions = df[df[key] == k].sort_values("version")
            assert len(versions) == 2, (dim, k)
            old, new = versions.iloc[0], versions.iloc[1]
            assert not old["is_current"] and new["is_current"]
            assert pd.Timestamp(old["valid_to"]) == pd.Timestamp(T1) == pd.Timestamp(new["valid_from"])
            assert old["row_hash"] != new["row_hash"]
        for k in changed["deleted"].get(table, []):
            versions = df[df[key] == k]
            assert len(versions) == 1
            gone = versions.iloc[0]
            assert not gone["is_current"] and gone["is_deleted"] and pd.notna(gone["valid_to"])
    assert sum(len(v) for v in changed["updated"].values()) == 12
    assert sum(len(v) for v in changed["deleted"].values()) == 4

    before = {d: _dim(warehouse, d) for d in ("dim_employee", "dim_client", "dim_supplier")}
    again = _run(instance, "2026-11-03")
    assert again.success
    for node in DIMS:
        mat = again.asset_materializations_for_node(node)[0]
        assert mat.metadata["dagster/row_count"].value == 0
        assert mat.metadata["new_versions"].value == 0
    for d, frame in before.items():
        pd.testing.assert_frame_equal(_dim(warehouse, d), frame)

    # The analyst view shows the same versions, masked.
    view = warehouse.query_df("SELECT email, salary_usd FROM analyst.dim_employee")
    assert len(view) == len(before["dim_employee"])
    assert view["email"].str.startswith("***@").all() and view["salary_usd"].isna().all()

    # Every load and every check outcome is in the governance tables, once.
    from quant_platform.definitions import defs

    reqs, cursor, skip = evaluate_sensor(defs, "governance_audit_sensor", instance, None)
    audit = warehouse.query_df("SELECT * FROM governance.load_audit ORDER BY event_id")
    assert len(audit) == 9  # three dimensions, three runs
    assert set(audit["source_kind"]) == {"watermark"}
    assert "full reload" in set(audit["source_ref"])
    assert "2026-11-03T00:00:00+00:00..2026-11-04T00:00:00+00:00" in set(audit["source_ref"])
    assert set(audit["partition_key"]) == {"2026-11-02", "2026-11-03"}
    checks = warehouse.query_df("SELECT * FROM governance.check_results")
    assert len(checks) == 9 * 7 and checks["passed"].all()
    assert set(checks["check_name"]) >= {"scd2_no_overlapping_validity", "referential_integrity",
                                         "row_count_reconciled_with_source"}
    _, cursor2, _ = evaluate_sensor(defs, "governance_audit_sensor", instance, cursor)
    assert int(warehouse.scalar("SELECT count(*) FROM governance.load_audit")) == 9
    assert cursor2 == cursor


def test_dangling_reference_fails_referential_integrity(qp_home, warehouse, instance):
    from quant_platform.internal.sources import seed_sources, source_engine
    from quant_platform.internal.tables import CRM_CLIENTS

    seed_sources(clients=50, employees=20, suppliers=20, seed=4, now=T0)
    import sqlalchemy as sa

    with source_engine(CRM_CLIENTS).begin() as c:
        c.execute(sa.text("UPDATE clients SET account_manager_id = 999999 WHERE client_id = "
                          "(SELECT min(client_id) FROM clients)"))
    result = _run(instance, "2026-11-02", full_reload=True)
    assert not result.success
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    client_ri = evaluations[("core/dim_client", "referential_integrity")]
    assert client_ri.passed is False
    assert "999999" in client_ri.metadata["dangling"].value
    assert evaluations[("core/dim_employee", "referential_integrity")].passed is True
    assert result.get_step_success_events() and "core__dim_client" not in {
        e.step_key for e in result.get_step_success_events()}


def test_extract_sensor_does_a_full_first_load_then_increments(qp_home, warehouse, instance):
    from quant_platform.definitions import defs
    from quant_platform.internal.sources import seed_sources

    seed_sources(clients=40, employees=20, suppliers=20, seed=9)
    reqs, cursor, _ = evaluate_sensor(defs, "internal_extract_sensor", instance, None)
    assert len(reqs) == 1
    ops = reqs[0].run_config["ops"]
    assert all(op["config"]["full_reload"] for op in ops.values())
    results = []
    for req in reqs:
        job = defs.resolve_job_def(req.job_name or "internal_extract_job")
        results.append(job.execute_in_process(instance=instance, partition_key=req.partition_key,
                                              run_config=req.run_config, tags=dict(req.tags)))
    assert all(r.success for r in results)
    assert int(warehouse.scalar("SELECT count(*) FROM core.dim_employee WHERE is_current")) == 20
    reqs, _, _ = evaluate_sensor(defs, "internal_extract_sensor", instance, cursor)
    assert not any(op["config"]["full_reload"] for op in reqs[-1].run_config["ops"].values())
    # After midnight the previous day is extracted once more, then today.
    reqs, _, _ = evaluate_sensor(defs, "internal_extract_sensor", instance, "2026-01-01")
    assert [r.partition_key for r in reqs][0] == "2026-01-01" and reqs[0].run_key == "internal:2026-01-01:final"


# ------------------------------------------------------------------------------------------ row hash keying
KEY_A = "a" * 16 + "0123456789abcdef0123456789abcdef"
KEY_B = "b" * 16 + "fedcba9876543210fedcba9876543210"


def _merge(warehouse, changes: pd.DataFrame, at: datetime, secret: str):
    from quant_platform.internal import scd2
    from quant_platform.internal.tables import DIM_EMPLOYEE, HR_EMPLOYEES
    from quant_platform.platform.settings import RowHashKey

    with warehouse.transaction() as con:
        scd2.lock_dimension(warehouse, con, DIM_EMPLOYEE)
        counts = scd2.stage_changes(warehouse, con, HR_EMPLOYEES, DIM_EMPLOYEE, changes, loaded_at=at,
                                    key=RowHashKey(secret.encode(), "test"))
        scd2.publish(warehouse, con, HR_EMPLOYEES, DIM_EMPLOYEE)
    return counts


def test_row_hash_is_keyed_and_names_its_key(qp_home, monkeypatch):
    from quant_platform.internal.scd2 import business_columns, keyed_row_hashes, row_hashes
    from quant_platform.internal.sources import read_changes, seed_sources
    from quant_platform.internal.tables import HR_EMPLOYEES
    from quant_platform.platform.settings import RowHashKey

    seed_sources(clients=5, employees=20, suppliers=5, seed=2, now=T0)
    df = read_changes(HR_EMPLOYEES, None, None)
    biz = business_columns(HR_EMPLOYEES)
    a, b = RowHashKey(KEY_A.encode(), "a"), RowHashKey(KEY_B.encode(), "b")
    ha, hb, plain = keyed_row_hashes(df, biz, a), keyed_row_hashes(df, biz, b), row_hashes(df, biz)
    assert ha.str.fullmatch(a.key_id + r":[0-9a-f]{64}").all() and a.key_id != b.key_id
    assert list(ha) == list(keyed_row_hashes(df.copy(), biz, a))  # deterministic for one key
    assert not set(ha.str[9:]) & set(hb.str[9:]) and not set(ha.str[9:]) & set(plain)
    assert KEY_A not in repr(a) and KEY_A.encode() not in repr(a).encode()


def test_a_new_key_or_legacy_hashes_create_no_versions_and_changes_still_do(warehouse, qp_home):
    """Rotation: the same source rows under a new key (or over hashes written before keying) are unchanged;
    their current versions are re-hashed in place under the new key; a real change still makes a version."""
    from quant_platform.internal.scd2 import business_columns, row_hashes
    from quant_platform.internal.sources import read_changes, seed_sources
    from quant_platform.internal.tables import HR_EMPLOYEES
    from quant_platform.platform.settings import RowHashKey

    seed_sources(clients=5, employees=25, suppliers=5, seed=2, now=T0)
    df = read_changes(HR_EMPLOYEES, None, None)
    first = _merge(warehouse, df, T0, KEY_A)
    assert first.new_versions == 25
    before = _dim(warehouse, "dim_employee")
    a_id, b_id = RowHashKey(KEY_A.encode(), "a").key_id, RowHashKey(KEY_B.encode(), "b").key_id
    assert before["row_hash"].str.startswith(a_id + ":").all()

    rotated = _merge(warehouse, df, T1, KEY_B)
    assert (rotated.new_versions, rotated.closed_versions, rotated.unchanged, rotated.rekeyed) == (0, 0, 25, 25)
    after = _dim(warehouse, "dim_employee")
    assert after["row_hash"].str.startswith(b_id + ":").all() and len(after) == 25
    pd.testing.assert_frame_equal(after.drop(columns="row_hash"), before.drop(columns="row_hash"))
    again = _merge(warehouse, df, T1, KEY_B)  # nothing left to re-key
    assert (again.new_versions, again.rekeyed, again.unchanged) == (0, 0, 25)

    # Hashes written before keying (plain sha256, no key id) compare the same way.
    legacy = dict(zip(df["employee_id"], row_hashes(df, business_columns(HR_EMPLOYEES)), strict=True))
    for emp, digest in legacy.items():
        warehouse.execute("UPDATE core.dim_employee SET row_hash = :h WHERE employee_id = :k",
                          {"h": digest, "k": int(emp)})
    upgraded = _merge(warehouse, df, T1, KEY_B)
    assert (upgraded.new_versions, upgraded.rekeyed) == (0, 25)

    # A real change under a key the current version was not hashed with still closes it and makes version 2.
    changed = df.copy()
    emp = int(changed["employee_id"].iloc[0])
    changed.loc[changed.index[0], ["salary_usd", "updated_at"]] = [123456.0, pd.Timestamp(T1)]
    moved = _merge(warehouse, changed, T1, KEY_A)
    assert (moved.new_versions, moved.closed_versions, moved.rekeyed) == (1, 1, 24)
    versions = _dim(warehouse, "dim_employee").query("employee_id == @emp").sort_values("version")
    assert list(versions["version"]) == [1, 2] and versions["row_hash"].iloc[1].startswith(a_id + ":")
    assert versions["row_hash"].iloc[0].startswith(b_id + ":")  # the closed version is never touched


def test_row_hash_key_from_the_environment_or_a_private_file(tmp_path, monkeypatch):
    import os
    import stat

    from quant_platform.platform.settings import RowHashKeyError, row_hash_key

    monkeypatch.setenv("QP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("QP_ROW_HASH_KEY", raising=False)
    made = row_hash_key()  # the embedded demo: made once, kept under QP_HOME, owner-only
    path = tmp_path / "home" / "row_hash.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and made.origin == str(path)
    assert row_hash_key().secret == made.secret and len(made.secret) == 64
    assert not [p for p in path.parent.iterdir() if p.name != "row_hash.key"]  # no temporary file left
    os.chmod(path, 0o644)
    with pytest.raises(RowHashKeyError, match="chmod 600"):
        row_hash_key()
    monkeypatch.setenv("QP_ROW_HASH_KEY", "short")
    with pytest.raises(RowHashKeyError, match="at least 32") as err:
        row_hash_key()
    assert "short" not in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("QP_ROW_HASH_KEY", KEY_B)
    env_key = row_hash_key()  # production: the environment wins, and no file is read
    assert env_key.secret == KEY_B.encode() and env_key.origin == "QP_ROW_HASH_KEY"
