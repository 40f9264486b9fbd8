"""The Dagster instance files: the production dagster.yaml on the machine's real PostgreSQL, the embedded
SQLite instance written by quant_platform.instance, and the workspace.yaml code location.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from quant_platform.instance import EMBEDDED_DAGSTER_YAML, ensure_embedded_instance, prepare_embedded_instance

REPO_ROOT = Path(__file__).resolve().parents[1]


@dg.asset
def trivial_number() -> int:
    return 42


# ------------------------------------------------------------------------------------------- (a) production


@pytest.fixture
def pg_dagster_home(tmp_path, monkeypatch, fresh_pg_database) -> Path:
    """The repository's dagster.yaml, unmodified, in a DAGSTER_HOME of its own, on a fresh PG database."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", "5432")
    monkeypatch.setenv("DAGSTER_PG_DB", fresh_pg_database.rsplit("/", 1)[1])
    monkeypatch.setenv("DAGSTER_PG_USER", "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    return home


def test_repository_dagster_yaml_has_no_credentials():
    text = (REPO_ROOT / "dagster.yaml").read_text()
    cfg = yaml.safe_load(text)
    pg = cfg["storage"]["postgres"]["postgres_db"]
    for field in ("hostname", "port", "db_name", "username", "password"):
        assert isinstance(pg[field], dict) and set(pg[field]) == {"env"}, field


@pytest.mark.postgres
def test_production_instance_uses_postgres_storage(pg_dagster_home):
    with dg.DagsterInstance.from_config(str(pg_dagster_home)) as inst:
        assert "Postgres" in type(inst.run_storage).__name__
        assert "Postgres" in type(inst.event_log_storage).__name__
        assert inst.telemetry_enabled is False
        pools = inst.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1
        assert pools.pool_granularity is not None and pools.pool_granularity.value == "op"


@pytest.mark.postgres
def test_production_instance_caps_concurrent_runs(pg_dagster_home):
    # dagster.yaml intends 8 concurrent runs on the production queue.
    with dg.DagsterInstance.from_config(str(pg_dagster_home)) as inst:
        run_queue = inst.get_concurrency_config().run_queue_config
        assert run_queue is not None
        assert run_queue.max_concurrent_runs == 8
        assert run_queue.op_concurrency_slot_buffer == 1  # a run may start while its steps wait for the writer


@pytest.mark.postgres
def test_production_instance_materializes_and_reads_run_back(pg_dagster_home, fresh_pg_database):
    import sqlalchemy as sa

    with dg.DagsterInstance.from_config(str(pg_dagster_home)) as inst:
        result = dg.materialize([trivial_number], instance=inst)
        assert result.success
        run = inst.get_run_by_id(result.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        event = inst.get_latest_materialization_event(dg.AssetKey("trivial_number"))
        assert event is not None and event.run_id == result.run_id
    # The run really is in PostgreSQL, not in a local file.
    engine = sa.create_engine(fresh_pg_database.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as c:
            n = c.execute(sa.text("SELECT count(*) FROM runs WHERE run_id = :r"), {"r": result.run_id}).scalar()
    finally:
        engine.dispose()
    assert n == 1
    assert not list(pg_dagster_home.rglob("*.db"))


# ------------------------------------------------------------------------------------------- (b) embedded


def test_embedded_instance_is_sqlite_with_telemetry_off(tmp_path):
    home = tmp_path / "embedded"
    cfg = ensure_embedded_instance(home)
    expected = EMBEDDED_DAGSTER_YAML.format(history_dir=home.resolve() / "history")
    assert cfg == home / "dagster.yaml" and cfg.read_text() == expected
    with dg.DagsterInstance.from_config(str(home)) as inst:
        assert "Sqlite" in type(inst.run_storage).__name__
        # One consolidated event log, which the governance audit sensor reads in storage-id order.
        assert type(inst.event_log_storage).__name__ == "ConsolidatedSqliteEventLogStorage"
        assert inst.telemetry_enabled is False
        assert inst.get_concurrency_config().pool_config.default_pool_limit == 1
        result = dg.materialize([trivial_number], instance=inst)
        assert result.success
        assert inst.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert list(home.rglob("*.db")), "SQLite storage files are written under DAGSTER_HOME"


def _version_rows(home) -> list[int]:
    import sqlite3

    rows = []
    for db in ("schedules/schedules.db", "history/runs.db"):
        con = sqlite3.connect(str(home / db))
        rows.append(len(con.execute("SELECT * FROM alembic_version").fetchall()))
        con.close()
    return rows


def test_prepared_instance_survives_processes_that_open_it_at_once(tmp_path):
    """`up` starts the webserver, the daemon and their code servers together on a new DAGSTER_HOME. Each one
    that created the SQLite storage itself could stamp its version table, after which every process failed to
    open the instance ("more than one head") and the daemon ticked no sensor. `up` prepares the storage first."""
    import subprocess
    import sys

    home = tmp_path / "fresh"
    prepare_embedded_instance(home)
    assert _version_rows(home) == [1, 1]
    opener = f"import dagster as dg\nwith dg.DagsterInstance.from_config({str(home)!r}): pass"
    procs = [subprocess.Popen([sys.executable, "-c", opener], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert _version_rows(home) == [1, 1]
    prepare_embedded_instance(home)  # again on a prepared home: a no-op
    assert _version_rows(home) == [1, 1]


def test_embedded_instance_file_is_valid_yaml_without_secrets():
    cfg = yaml.safe_load(EMBEDDED_DAGSTER_YAML.format(history_dir="/x/history"))
    assert cfg["telemetry"]["enabled"] is False
    assert "storage" not in cfg  # default storage: SQLite in DAGSTER_HOME
    assert "password" not in EMBEDDED_DAGSTER_YAML.lower()


def test_ensure_embedded_instance_does_not_overwrite(tmp_path):
    home = tmp_path / "embedded"
    cfg = ensure_embedded_instance(home)
    edited = cfg.read_text() + "# operator edit: keep me\n"
    cfg.write_text(edited)
    again = ensure_embedded_instance(home)
    assert again == cfg
    assert cfg.read_text() == edited


def test_ensure_embedded_instance_keeps_a_foreign_file(tmp_path):
    home = tmp_path / "existing"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    ensure_embedded_instance(home)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


# ------------------------------------------------------------------------------------------- (c) workspace


def test_workspace_yaml_names_the_definitions_module():
    cfg = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    modules = [entry["python_module"]["module_name"] for entry in cfg["load_from"] if "python_module" in entry]
    assert modules == ["quant_platform.definitions"]
    for name in modules:  # each names a module that imports and holds the code location's Definitions
        assert isinstance(getattr(importlib.import_module(name), "defs", None), dg.Definitions), name


def test_definitions_repository_has_assets():
    from quant_platform.definitions import defs

    assert isinstance(defs, dg.Definitions)
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys, "the code location has no assets"
    assert "macro/eia_wpsr" in keys
    assert repo.assets_defs_by_key
