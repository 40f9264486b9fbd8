"""Roles and masking on the machine's real PostgreSQL, set up as production runs it: the superuser's one-time
docker/postgres-init.sh creates the databases, the loader login and the group roles, then `quant-platform
warehouse init` runs as the loader. Analysts see PII only masked and write only their team's schema; auditors
read governance but no raw PII; engineers see core without PII columns.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from quant_platform_tests.conftest import PG_ADMIN_URL, QP_ENV_VARS, REPO_ROOT

INIT_SCRIPT = REPO_ROOT / "docker" / "postgres-init.sh"
QP_CLI = Path(sys.executable).with_name("quant-platform")


@dataclass(frozen=True)
class ProductionWarehouse:
    loader: str  # the login `warehouse init` and the assets run as
    loader_url: str  # QP_WAREHOUSE_URL as compose builds it (password from the environment)
    admin_url: str  # the superuser in the same database: test setup and cleanup only
    env: dict  # the environment the platform's processes get


def _sa(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def _cli(pw: ProductionWarehouse, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(QP_CLI), *args], env={**pw.env, **env}, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def pg_warehouse(tmp_path_factory):
    """A warehouse set up as in production (names unique to this run, dropped afterwards; the NOLOGIN group
    roles are cluster-wide and stay)."""
    from quant_platform.internal.tables import DIM_EMPLOYEE
    from quant_platform.platform.warehouse import Warehouse

    admin = sa.make_url(PG_ADMIN_URL)
    tag = uuid.uuid4().hex[:10]
    names = {"DAGSTER_PG_USER": f"qp_t_dagster_{tag}", "DAGSTER_PG_DB": f"qp_t_dagster_{tag}",
             "QP_LOADER_USER": f"qp_t_loader_{tag}", "QP_WAREHOUSE_DB": f"qp_t_wh_{tag}"}
    secrets = {"DAGSTER_PG_PASSWORD": f"dagster-{tag}", "QP_LOADER_PASSWORD": f"loader-{tag}"}
    host, port = admin.host or "127.0.0.1", admin.port or 5432
    base_env = {k: v for k, v in os.environ.items() if k not in QP_ENV_VARS and k != "QP_SQL_DIR"}
    base_env["QP_HOME"] = str(tmp_path_factory.mktemp("qp_roles"))
    loader_url = (f"postgresql://{names['QP_LOADER_USER']}:{secrets['QP_LOADER_PASSWORD']}@{host}:{port}/"
                  f"{names['QP_WAREHOUSE_DB']}")
    pw = ProductionWarehouse(
        loader=names["QP_LOADER_USER"], loader_url=loader_url,
        admin_url=admin.set(database=names["QP_WAREHOUSE_DB"]).render_as_string(hide_password=False),
        env={**base_env, "QP_WAREHOUSE_URL": loader_url})
    engine = sa.create_engine(_sa(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        # The superuser's one-time init, as the postgres image runs it: psql, passwords in the environment.
        init = subprocess.run(["bash", str(INIT_SCRIPT)], capture_output=True, text=True, timeout=60, env={
            **base_env, **names, **secrets, "POSTGRES_USER": admin.username or "postgres", "PGHOST": host,
            "PGPORT": str(port), "PGDATABASE": admin.database or "postgres"})
        assert init.returncode == 0, init.stderr
        # `warehouse init` as compose runs it: the CLI, as the loader, its URL from the environment.
        done = _cli(pw, "warehouse", "init")
        assert done.returncode == 0, done.stderr
        assert "090_roles.sql" in done.stdout
        now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        row = {
            "employee_id": 7, "first_name": "Ingrid", "last_name": "Solberg",
            "email": "ingrid.solberg@firm.example", "phone": "+41 22 555 01 77", "date_of_birth": date(1984, 6, 13),
            "hire_date": date(2015, 3, 1), "department": "trading", "title": "Senior Trader", "desk": "crude",
            "salary_usd": 310000.0, "manager_id": None, "source_updated_at": now, "valid_from": now,
            "valid_to": None, "is_current": True, "is_deleted": False, "version": 1, "row_hash": "x" * 64,
            "loaded_at": now,
        }
        wh = Warehouse(loader_url)  # the loader writes, as the assets do
        wh.append_rows(DIM_EMPLOYEE, pd.DataFrame([row]))
        wh.dispose()
        yield pw
    finally:
        with engine.connect() as c:
            for db in (names["QP_WAREHOUSE_DB"], names["DAGSTER_PG_DB"]):
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            for user in (names["QP_LOADER_USER"], names["DAGSTER_PG_USER"]):
                c.execute(sa.text(f'DROP ROLE IF EXISTS "{user}"'))
        engine.dispose()


@pytest.fixture
def login(pg_warehouse):
    """Creates login users that are members of the platform roles (as a DBA does); dropped afterwards."""
    admin = sa.create_engine(_sa(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make(*roles: str) -> sa.Engine:
        user = f"qp_t_{uuid.uuid4().hex[:10]}"
        with admin.connect() as c:
            c.execute(sa.text(f"CREATE ROLE {user} LOGIN IN ROLE {', '.join(roles)}"))
        made.append(user)
        url = sa.make_url(_sa(pg_warehouse.admin_url)).set(username=user, password=None)
        return sa.create_engine(url, poolclass=sa.pool.NullPool)

    yield make
    in_db = sa.create_engine(_sa(pg_warehouse.admin_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with in_db.connect() as db, admin.connect() as c:
        for user in made:
            db.execute(sa.text(f"DROP OWNED BY {user} CASCADE"))  # objects and grants in the test database
            c.execute(sa.text(f"DROP ROLE IF EXISTS {user}"))
    in_db.dispose()
    admin.dispose()


def _refused(engine: sa.Engine, sql: str) -> str:
    with pytest.raises(sa.exc.ProgrammingError) as err, engine.begin() as c:
        c.execute(sa.text(sql))
    assert "permission denied" in str(err.value)
    return str(err.value)


def test_analyst_sees_pii_only_masked_and_writes_only_the_team_mart(login):
    analyst = login("qp_analyst", "qp_team_crude")
    _refused(analyst, "SELECT last_name FROM core.dim_employee")
    _refused(analyst, "SELECT employee_id FROM core.dim_employee")
    with analyst.connect() as c:
        row = c.execute(sa.text("SELECT first_name, last_name, email, phone, date_of_birth, salary_usd, desk "
                                "FROM analyst.dim_employee WHERE employee_id = 7")).one()
    assert row.first_name == "I***" and row.last_name == "S***"
    assert row.email == "***@firm.example"
    assert row.phone == "***77"
    assert row.date_of_birth == date(1984, 1, 1)
    assert row.salary_usd is None
    assert row.desk == "crude"  # not PII: shown as is
    _refused(analyst, "INSERT INTO core.dim_employee (employee_id) VALUES (99)")
    _refused(analyst, "CREATE TABLE core.scratch (x int)")
    _refused(analyst, "CREATE TABLE marts.scratch (x int)")
    with analyst.begin() as c:
        c.execute(sa.text("CREATE TABLE team_crude.desk_notes (week date, note text)"))
        c.execute(sa.text("INSERT INTO team_crude.desk_notes VALUES ('2026-04-24', 'draw bigger than expected')"))
    with analyst.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM team_crude.desk_notes")).scalar() == 1
        assert c.execute(sa.text("SELECT count(*) FROM macro.eia_wpsr")).scalar() == 0  # macro readable


def test_auditor_reads_governance_but_no_raw_pii(login):
    auditor = login("qp_auditor")
    with auditor.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM governance.load_audit")).scalar() == 0
        assert c.execute(sa.text("SELECT count(*) FROM governance.check_results")).scalar() == 0
        assert c.execute(sa.text("SELECT department FROM core.dim_employee")).scalar() == "trading"
    _refused(auditor, "SELECT salary_usd FROM core.dim_employee")
    _refused(auditor, "SELECT * FROM core.dim_employee")
    _refused(auditor, "DELETE FROM governance.load_audit")


def test_engineer_reads_core_without_pii_and_the_pii_reader_with(login):
    engineer = login("qp_engineer")
    with engineer.connect() as c:
        assert c.execute(sa.text("SELECT title FROM core.dim_employee")).scalar() == "Senior Trader"
    _refused(engineer, "SELECT email FROM core.dim_employee")
    pii = login("qp_pii_reader")
    with pii.connect() as c:
        assert c.execute(sa.text("SELECT email FROM core.dim_employee")).scalar() == "ingrid.solberg@firm.example"


def test_the_superuser_script_makes_the_roles_and_the_loader_only_owns_its_database(pg_warehouse):
    from quant_platform.platform.ddl import ROLES

    script = INIT_SCRIPT.read_text()
    created = re.search(r"FOREACH r IN ARRAY ARRAY\[(.*?)\] LOOP", script, flags=re.S)
    assert created and re.findall(r"'(\w+)'", created.group(1)) == list(ROLES)
    admin = sa.create_engine(_sa(pg_warehouse.admin_url), poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        roles = dict(c.execute(sa.text("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN :r").bindparams(
            sa.bindparam("r", expanding=True)), {"r": list(ROLES)}).all())
        loader = c.execute(sa.text(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolpassword IS NOT NULL AS has_password, "
            "pg_has_role(rolname, 'qp_loader', 'MEMBER') AS in_qp_loader FROM pg_authid WHERE rolname = :u"),
            {"u": pg_warehouse.loader}).one()
        owner = c.execute(sa.text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = "
                                  "current_database()")).scalar()
        table_owners = set(c.execute(sa.text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname IN "
                                             "('macro', 'core', 'governance')")).scalars())
    admin.dispose()
    assert roles == dict.fromkeys(ROLES, False), "group roles are NOLOGIN"
    assert tuple(loader) == (False, False, False, True, True), "loader: no CREATEROLE, a password, in qp_loader"
    assert owner == pg_warehouse.loader and table_owners == {pg_warehouse.loader}


def test_init_without_the_roles_fails_in_one_line_naming_them(pg_warehouse, tmp_path):
    """A role `warehouse init` grants to is missing (here: a team the superuser never created)."""
    sql = tmp_path / "sql"
    shutil.copytree(REPO_ROOT / "quant_platform" / "sql", sql)
    gone = f"qp_team_gone_{uuid.uuid4().hex[:8]}"
    roles_sql = sql / "postgres" / "090_roles.sql"
    roles_sql.write_text(roles_sql.read_text().replace("qp_team_crude", gone))
    done = _cli(pg_warehouse, "warehouse", "init", QP_SQL_DIR=str(sql))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr and "CONTEXT" not in done.stderr
    assert gone in done.stderr and "postgres-init.sh" in done.stderr, done.stderr


def test_roles_are_idempotent_and_follow_the_declarations(pg_warehouse, login):
    from quant_platform.internal.tables import DIM_EMPLOYEE
    from quant_platform.platform.warehouse import Warehouse, sql_dir

    analyst = login("qp_analyst", "qp_team_crude")
    with analyst.begin() as c:  # a table the loader does not own, in a schema init grants on
        c.execute(sa.text("CREATE TABLE team_crude.scratch_idem (x int)"))
    wh = Warehouse(pg_warehouse.loader_url)
    wh.apply_sql_dir(sql_dir())  # a second init, as the loader, changes nothing and does not fail
    grants = wh.query_df(
        "SELECT column_name FROM information_schema.column_privileges WHERE table_schema = 'core' "
        "AND table_name = 'dim_employee' AND grantee = 'qp_auditor' AND privilege_type = 'SELECT'")
    granted = set(grants["column_name"])
    pii = {c.name for c in DIM_EMPLOYEE.columns if c.pii}
    assert granted == {c.name for c in DIM_EMPLOYEE.columns} - pii
    wh.dispose()


def test_init_as_a_superuser_creates_missing_roles(fresh_pg_database, tmp_path):
    """A developer's or a test's own server (conftest applies sql/ as the superuser) needs no separate step."""
    from quant_platform.platform.warehouse import Warehouse

    sql = tmp_path / "sql"
    shutil.copytree(REPO_ROOT / "quant_platform" / "sql", sql)
    made = f"qp_team_new_{uuid.uuid4().hex[:8]}"
    roles_sql = sql / "postgres" / "090_roles.sql"
    roles_sql.write_text(roles_sql.read_text().replace("qp_team_crude", made))
    wh = Warehouse(fresh_pg_database)
    admin = sa.create_engine(_sa(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        wh.apply_sql_dir(sql)
        login = wh.query_df("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r", {"r": made})["rolcanlogin"]
        assert login.tolist() == [False]
    finally:
        if wh.scalar("SELECT count(*) FROM pg_roles WHERE rolname = :r", {"r": made}):
            wh.execute(f"DROP OWNED BY {made}")  # its grants in this database, before the role goes
        wh.dispose()
        with admin.connect() as c:
            c.execute(sa.text(f"DROP ROLE IF EXISTS {made}"))
        admin.dispose()
