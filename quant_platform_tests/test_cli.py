"""The installed `quant-platform` console script, run as a subprocess like an operator would.

Commands are discovered from build_parser(), so a new subcommand is covered by the --help test at once.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from pathlib import Path

import pytest

from quant_platform.cli import build_parser
from quant_platform.platform.warehouse import sql_files

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / ".venv" / "bin" / "quant-platform"
SQL_DIR = REPO_ROOT / "quant_platform" / "sql"
CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+([a-z_0-9]+)\.([a-z_0-9]+)", re.IGNORECASE)
CREATE_SCHEMA = re.compile(r"CREATE\s+SCHEMA\s+IF\s+NOT\s+EXISTS\s+([a-z_]+)", re.IGNORECASE)


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                paths += _command_paths(child, (*prefix, name))
    return paths


COMMAND_PATHS = _command_paths(build_parser())


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=str(REPO_ROOT))


@pytest.fixture
def cli_env(qp_home) -> dict[str, str]:
    """The test's environment (QP_* cleared by qp_home, QP_HOME in tmp_path) for the child process."""
    env = dict(os.environ)
    env["QP_HOME"] = str(qp_home)
    env["DAGSTER_HOME"] = str(qp_home / "dagster")
    return env


def test_script_is_installed():
    assert SCRIPT.exists() and os.access(SCRIPT, os.X_OK)


def test_discovery_finds_the_nested_commands():
    # Guards the discovery itself: if it found nothing, the --help test below would test nothing.
    assert () in COMMAND_PATHS
    for expected in [("up",), ("warehouse", "init"), ("warehouse", "ddl"), ("vendors", "serve"),
                     ("backfill",), ("bench", "release")]:
        assert expected in COMMAND_PATHS


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "<top>")
def test_help_exits_zero(path, cli_env):
    result = run_cli(*path, "--help", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: quant-platform"), result.stdout[:200]
    assert " ".join(("quant-platform", *path)) in result.stdout.splitlines()[0]
    assert "Traceback" not in result.stderr


def _assert_one_line_error(result: subprocess.CompletedProcess) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}:\n{result.stderr}"
    assert lines[0].startswith("quant-platform: error:"), lines[0]


def test_unknown_command_is_one_line(cli_env):
    result = run_cli("frobnicate", env=cli_env)
    _assert_one_line_error(result)
    assert "frobnicate" in result.stderr


def test_bad_warehouse_url_is_one_line(cli_env):
    result = run_cli("warehouse", "init", "--url", "foo:/bar", env=cli_env)
    _assert_one_line_error(result)
    assert "foo:/bar" in result.stderr


def test_unknown_backfill_asset_is_one_line(cli_env):
    result = run_cli("backfill", "macro/nope", "2021-01-05", "2021-01-12", env=cli_env)
    _assert_one_line_error(result)
    assert "macro/nope" in result.stderr


@pytest.mark.parametrize("var, value", [("QP_WAREHOUSE_URL", "mysql://db/warehouse"),
                                        ("QP_WAREHOUSE_URL", "warehouse.duckdb"),
                                        ("QP_HTTP_TIMEOUT", "soon")])
def test_malformed_environment_is_one_line(var, value, cli_env):
    cli_env[var] = value
    result = run_cli("warehouse", "init", env=cli_env)
    _assert_one_line_error(result)
    assert var in result.stderr


def test_missing_sample_folder_is_one_line_for_the_simulator_and_up(cli_env, tmp_path):
    cli_env["QP_SAMPLE_DATA"] = str(tmp_path / "nowhere")
    serve = run_cli("vendors", "serve", "--port", "0", env=cli_env)
    _assert_one_line_error(serve)
    assert "QP_SAMPLE_DATA" in serve.stderr and "nowhere" in serve.stderr
    # A folder that exists but lacks the vendor files: `up` says which file, before starting anything.
    cli_env["QP_SAMPLE_DATA"] = str(tmp_path)
    up = run_cli("up", "--headless", "--no-market", "--duration", "5", env=cli_env)
    _assert_one_line_error(up)
    assert "wpsr_table1" in up.stderr and "QP_SAMPLE_DATA" in up.stderr


def test_taken_simulator_port_is_one_line(cli_env):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        result = run_cli("vendors", "serve", "--port", str(taken.getsockname()[1]), env=cli_env)
    _assert_one_line_error(result)
    assert "cannot serve on" in result.stderr


@pytest.mark.parametrize("command", [("ingest", "status"),
                                     ("ingest", "replay", "--source", "polygon", "CAPTURE")])
def test_unreachable_nats_is_one_line_without_the_password(command, cli_env):
    from quant_platform_tests.conftest import SAMPLE_DATA, free_port

    cli_env["QP_NATS_URL"] = f"nats://qp:s3cret@127.0.0.1:{free_port()}"  # nothing listens there
    args = [str(SAMPLE_DATA / "ticks" / "polygon_stocks_trades.jsonl") if a == "CAPTURE" else a for a in command]
    result = run_cli(*args, env=cli_env, timeout=60)
    _assert_one_line_error(result)
    assert "no NATS server answers" in result.stderr
    assert "s3cret" not in result.stderr and "qp:***@" in result.stderr


def _expected_objects(backend: str) -> tuple[set[str], set[tuple[str, str]]]:
    files = sql_files(SQL_DIR, backend)
    text = "\n".join(p.read_text() for p in files)
    schemas = {m.group(1).lower() for m in CREATE_SCHEMA.finditer(text)}
    tables = {(m.group(1).lower(), m.group(2).lower()) for m in CREATE_TABLE.finditer(text)}
    return schemas, tables


def test_sql_dir_declares_tables():
    schemas, tables = _expected_objects("duckdb")
    assert {"macro", "marts", "governance"} <= schemas
    assert ("macro", "eia_wpsr") in tables and len(tables) >= 5


def test_warehouse_init_duckdb_is_idempotent(cli_env, qp_home: Path):
    import duckdb

    db = qp_home / "wh" / "warehouse.duckdb"
    url = f"duckdb:///{db}"
    for _ in range(2):
        result = run_cli("warehouse", "init", "--url", url, env=cli_env)
        assert result.returncode == 0, result.stderr
        assert "warehouse duckdb ready" in result.stdout
        assert "Traceback" not in result.stderr
    schemas, tables = _expected_objects("duckdb")
    con = duckdb.connect(str(db), read_only=True)
    try:
        found = {(s.lower(), t.lower()) for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
        found_schemas = {r[0].lower() for r in con.execute(
            "SELECT schema_name FROM information_schema.schemata").fetchall()}
    finally:
        con.close()
    assert tables <= found, f"missing: {sorted(tables - found)}"
    assert schemas <= found_schemas, f"missing schemas: {sorted(schemas - found_schemas)}"


def test_warehouse_init_from_environment_url(cli_env, qp_home: Path):
    import duckdb

    db = qp_home / "from_env.duckdb"
    cli_env["QP_WAREHOUSE_URL"] = f"duckdb:///{db}"
    result = run_cli("warehouse", "init", env=cli_env)
    assert result.returncode == 0, result.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'macro' "
                        "AND table_type = 'BASE TABLE'").fetchone()  # the <table>_versions views are not counted
    finally:
        con.close()
    assert n[0] == sum(1 for s, _ in _expected_objects("duckdb")[1] if s == "macro")


@pytest.mark.postgres
def test_warehouse_init_postgres_is_idempotent(cli_env, fresh_pg_database):
    import sqlalchemy as sa

    for _ in range(2):
        result = run_cli("warehouse", "init", "--url", fresh_pg_database, env=cli_env)
        assert result.returncode == 0, result.stderr
        assert "warehouse postgres ready" in result.stdout
    schemas, tables = _expected_objects("postgres")
    engine = sa.create_engine(fresh_pg_database.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as c:
            found = {(s, t) for s, t in c.execute(sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables"))}
            found_schemas = {r[0] for r in c.execute(sa.text(
                "SELECT schema_name FROM information_schema.schemata"))}
    finally:
        engine.dispose()
    assert tables <= found, f"missing: {sorted(tables - found)}"
    assert schemas <= found_schemas


def test_warehouse_ddl_matches_specs(cli_env):
    result = run_cli("warehouse", "ddl", env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "matches" in result.stdout
