"""Roles and masking on the machine's real PostgreSQL, set up as production runs it: the superuser's one-time
docker/postgres-init.sh creates the databases, the group roles and the logins, then `quant-platform warehouse
init` runs as the migration login (its sessions act as qp_owner, which owns every object) and the assets write
as the loader (rows only). Analysts see PII only masked and write only their team's schema; auditors read
governance but no raw PII; engineers see core without PII columns; nobody but PII readers reads row_hash.
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
# make test's `--dist loadfile` keeps this file in one test process: its module fixture runs the superuser script,
# which creates and grants the cluster-wide group roles, once.
QP_CLI = Path(sys.executable).with_name("quant-platform")


@dataclass(frozen=True)
class ProductionWarehouse:
    loader: str  # the login the assets run as: rows only
    loader_url: str  # QP_WAREHOUSE_URL as compose builds it (password from the environment)
    migrator: str  # the login `warehouse init` runs as; its sessions in the warehouse act as qp_owner
    migrator_url: str
    admin_url: str  # the superuser in the same database: test setup and cleanup only
    env: dict  # the environment the platform's processes get (the loader's URL)


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
             "QP_LOADER_USER": f"qp_t_loader_{tag}", "QP_MIGRATOR_USER": f"qp_t_migrator_{tag}",
             "QP_WAREHOUSE_DB": f"qp_t_wh_{tag}"}
    secrets = {"DAGSTER_PG_PASSWORD": f"dagster-{tag}", "QP_LOADER_PASSWORD": f"loader-{tag}",
               "QP_MIGRATOR_PASSWORD": f"migrator-{tag}"}
    host, port = admin.host or "127.0.0.1", admin.port or 5432
    base_env = {k: v for k, v in os.environ.items() if k not in QP_ENV_VARS and k != "QP_SQL_DIR"}
    base_env["QP_HOME"] = str(tmp_path_factory.mktemp("qp_roles"))
    loader_url = (f"postgresql://{names['QP_LOADER_USER']}:{secrets['QP_LOADER_PASSWORD']}@{host}:{port}/"
                  f"{names['QP_WAREHOUSE_DB']}")
    migrator_url = (f"postgresql://{names['QP_MIGRATOR_USER']}:{secrets['QP_MIGRATOR_PASSWORD']}@{host}:{port}/"
                    f"{names['QP_WAREHOUSE_DB']}")
    pw = ProductionWarehouse(
        loader=names["QP_LOADER_USER"], loader_url=loader_url,
        migrator=names["QP_MIGRATOR_USER"], migrator_url=migrator_url,
        admin_url=admin.set(database=names["QP_WAREHOUSE_DB"]).render_as_string(hide_password=False),
        env={**base_env, "QP_WAREHOUSE_URL": loader_url})
    engine = sa.create_engine(_sa(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        # The superuser's one-time init, as the postgres image runs it: psql, passwords in the environment.
        init = subprocess.run(["bash", str(INIT_SCRIPT)], capture_output=True, text=True, timeout=60, env={
            **base_env, **names, **secrets, "POSTGRES_USER": admin.username or "postgres", "PGHOST": host,
            "PGPORT": str(port), "PGDATABASE": admin.database or "postgres"})
        assert init.returncode == 0, init.stderr
        # `warehouse init` as compose runs it: the CLI, as the migration login, its URL from the environment.
        done = _cli(pw, "warehouse", "init", QP_WAREHOUSE_URL=migrator_url)
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
            for user in (names["QP_LOADER_USER"], names["QP_MIGRATOR_USER"], names["DAGSTER_PG_USER"]):
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


def test_the_superuser_script_makes_the_roles_and_qp_owner_owns_the_warehouse(pg_warehouse):
    from quant_platform.platform.ddl import ROLES

    script = INIT_SCRIPT.read_text()
    created = re.search(r"FOREACH r IN ARRAY ARRAY\[(.*?)\] LOOP", script, flags=re.S)
    assert created and re.findall(r"'(\w+)'", created.group(1)) == list(ROLES)
    admin = sa.create_engine(_sa(pg_warehouse.admin_url), poolclass=sa.pool.NullPool)
    login_sql = sa.text(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolinherit, rolpassword IS NOT NULL AS has_password, "
        "pg_has_role(rolname, 'qp_loader', 'MEMBER') AS in_qp_loader, "
        "pg_has_role(rolname, 'qp_owner', 'MEMBER') AS in_qp_owner FROM pg_authid WHERE rolname = :u")
    with admin.connect() as c:
        roles = dict(c.execute(sa.text("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN :r").bindparams(
            sa.bindparam("r", expanding=True)), {"r": list(ROLES)}).all())
        loader = c.execute(login_sql, {"u": pg_warehouse.loader}).one()
        migrator = c.execute(login_sql, {"u": pg_warehouse.migrator}).one()
        settings = c.execute(sa.text(
            "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
            "JOIN pg_database d ON d.oid = s.setdatabase WHERE r.rolname = :u AND d.datname = current_database()"),
            {"u": pg_warehouse.migrator}).scalar()
        owner = c.execute(sa.text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = "
                                  "current_database()")).scalar()
        table_owners = set(c.execute(sa.text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname IN "
                                             "('macro', 'core', 'market', 'marts', 'governance')")).scalars())
        schema_owners = set(c.execute(sa.text(
            "SELECT DISTINCT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname IN ('macro', 'core', "
            "'market', 'marts', 'governance', 'analyst', 'team_crude')")).scalars())
    admin.dispose()
    assert roles == dict.fromkeys(ROLES, False), "group roles are NOLOGIN"
    assert tuple(loader) == (False, False, False, True, True, True, False), "loader: rows only, owns nothing"
    assert tuple(migrator) == (False, False, False, False, True, False, True), "migrator: NOINHERIT qp_owner"
    assert settings == ["role=qp_owner"], "the migrator's sessions in the warehouse act as qp_owner"
    assert owner == "qp_owner" and table_owners == {"qp_owner"} and schema_owners == {"qp_owner"}


def test_init_without_the_roles_fails_in_one_line_naming_them(pg_warehouse, tmp_path):
    """A role `warehouse init` grants to is missing (here: a team the superuser never created)."""
    sql = tmp_path / "sql"
    shutil.copytree(REPO_ROOT / "quant_platform" / "sql", sql)
    gone = f"qp_team_gone_{uuid.uuid4().hex[:8]}"
    roles_sql = sql / "postgres" / "090_roles.sql"
    roles_sql.write_text(roles_sql.read_text().replace("qp_team_crude", gone))
    done = _cli(pg_warehouse, "warehouse", "init", QP_SQL_DIR=str(sql), QP_WAREHOUSE_URL=pg_warehouse.migrator_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr and "CONTEXT" not in done.stderr
    assert gone in done.stderr and "postgres-init.sh" in done.stderr, done.stderr


def test_roles_are_idempotent_and_follow_the_declarations(pg_warehouse, login):
    from quant_platform.internal.tables import DIM_EMPLOYEE
    from quant_platform.platform.warehouse import Warehouse, sql_dir

    analyst = login("qp_analyst", "qp_team_crude")
    with analyst.begin() as c:  # a table qp_owner does not own, in a schema init grants on
        c.execute(sa.text("CREATE TABLE team_crude.scratch_idem (x int)"))
    wh = Warehouse(pg_warehouse.migrator_url)
    wh.apply_sql_dir(sql_dir())  # a second init, as the migration login, changes nothing and does not fail
    grants = wh.query_df(
        "SELECT column_name FROM information_schema.column_privileges WHERE table_schema = 'core' "
        "AND table_name = 'dim_employee' AND grantee = 'qp_auditor' AND privilege_type = 'SELECT'")
    granted = set(grants["column_name"])
    pii = {c.name for c in DIM_EMPLOYEE.columns if c.pii}
    assert granted == {c.name for c in DIM_EMPLOYEE.columns} - pii - {"row_hash"}
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


# ------------------------------------------------------------------------------ roles that hold (owner, loader)
def _denied(engine: sa.Engine, sql: str) -> str:
    """Refused for lack of a privilege or of ownership (SQLSTATE 42501: 'permission denied', 'must be owner')."""
    with pytest.raises(sa.exc.ProgrammingError) as err, engine.begin() as c:
        c.execute(sa.text(sql))
    assert getattr(err.value.orig, "pgcode", None) == "42501", err.value
    return str(err.value)


def test_auditors_and_engineers_cannot_read_the_row_hash(login):
    """row_hash digests PII columns: whoever may not read them gets no handle on them either."""
    for role in ("qp_auditor", "qp_engineer"):
        reader = login(role)
        with reader.connect() as c:
            row = c.execute(sa.text("SELECT employee_id, department, version, valid_from FROM core.dim_employee "
                                    "WHERE employee_id = 7")).one()
        assert row.department == "trading" and row.version == 1
        assert "permission denied" in _denied(reader, "SELECT row_hash FROM core.dim_employee")
        _denied(reader, "SELECT row_hash FROM core.dim_client")
        _denied(reader, "SELECT row_hash FROM core.dim_supplier")


def test_the_loader_writes_rows_but_cannot_drop_alter_or_create_tables(pg_warehouse):
    loader = sa.create_engine(_sa(pg_warehouse.loader_url), poolclass=sa.pool.NullPool)
    try:
        with loader.begin() as c:  # its job: rows
            c.execute(sa.text("UPDATE core.dim_employee SET loaded_at = loaded_at WHERE employee_id = 7"))
            c.execute(sa.text("DELETE FROM macro.eia_wpsr WHERE false"))
        _denied(loader, "DROP TABLE core.dim_employee")
        _denied(loader, "ALTER TABLE core.dim_employee ADD COLUMN note text")
        _denied(loader, "ALTER TABLE macro.eia_wpsr DROP COLUMN value")
        _denied(loader, "DROP VIEW analyst.dim_employee")
        _denied(loader, "CREATE TABLE marts.loader_scratch (x int)")
        _denied(loader, "CREATE SCHEMA loader_scratch")
        with loader.begin() as c:  # no grant option: PostgreSQL only warns, and nothing is granted
            c.execute(sa.text("GRANT SELECT ON core.dim_employee TO qp_analyst"))
            assert c.execute(sa.text("SELECT has_table_privilege('qp_analyst', 'core.dim_employee', 'SELECT')")
                             ).scalar() is False
    finally:
        loader.dispose()


def test_warehouse_init_as_the_loader_is_refused_in_one_line(pg_warehouse):
    done = _cli(pg_warehouse, "warehouse", "init")  # QP_WAREHOUSE_URL: the loader's, as the assets get it
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "permission denied" in done.stderr


def test_tables_the_owner_creates_later_follow_the_default_privileges(pg_warehouse, login):
    """A table made after init, by the migration login (whose sessions act as qp_owner), is readable by the
    roles of its schema and writable by the loader without another init; core stays closed but to PII readers."""
    migrator = sa.create_engine(_sa(pg_warehouse.migrator_url), poolclass=sa.pool.NullPool)
    tables = ("marts.later_spread", "governance.later_review", "core.later_contact")
    try:
        with migrator.begin() as c:
            for t in tables:
                c.execute(sa.text(f"CREATE TABLE {t} (id int, note text)"))
            owners = set(c.execute(sa.text("SELECT tableowner FROM pg_tables WHERE tablename LIKE 'later_%'"))
                         .scalars())
        assert owners == {"qp_owner"}
        loader = sa.create_engine(_sa(pg_warehouse.loader_url), poolclass=sa.pool.NullPool)
        with loader.begin() as c:
            for t in tables:
                c.execute(sa.text(f"INSERT INTO {t} VALUES (1, 'x')"))  # noqa: S608 - constants
        loader.dispose()
        analyst, engineer, auditor, pii = (login("qp_analyst"), login("qp_engineer"), login("qp_auditor"),
                                           login("qp_pii_reader"))
        with analyst.connect() as c:
            assert c.execute(sa.text("SELECT note FROM marts.later_spread")).scalar() == "x"
        for reader in (engineer, auditor):
            with reader.connect() as c:
                assert c.execute(sa.text("SELECT count(*) FROM governance.later_review")).scalar() == 1
            _denied(reader, "SELECT note FROM core.later_contact")
        _denied(analyst, "SELECT note FROM governance.later_review")
        with pii.connect() as c:
            assert c.execute(sa.text("SELECT note FROM core.later_contact")).scalar() == "x"
    finally:
        with migrator.begin() as c:
            for t in tables:
                c.execute(sa.text(f"DROP TABLE IF EXISTS {t}"))
        migrator.dispose()


def test_a_salary_guess_no_longer_reproduces_the_stored_row_hash(pg_warehouse, login, monkeypatch):
    """The loader merges an employee as the assets do; someone who reads row_hash (here a PII reader) and
    guesses the salary right cannot confirm the guess without the key, which only the platform holds."""
    from quant_platform.internal import scd2
    from quant_platform.internal.tables import DIM_EMPLOYEE, HR_EMPLOYEES
    from quant_platform.platform.warehouse import Warehouse

    key = "k" * 8 + uuid.uuid4().hex  # 40 characters, as `openssl rand -hex 20` gives
    monkeypatch.setenv("QP_ROW_HASH_KEY", key)
    at = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)
    source = pd.DataFrame([{
        "employee_id": 8, "first_name": "Aksel", "last_name": "Berg", "email": "aksel.berg@firm.example",
        "phone": None, "date_of_birth": pd.Timestamp("1990-02-01"), "hire_date": pd.Timestamp("2020-09-01"),
        "department": "risk", "title": "Risk Analyst", "desk": None, "salary_usd": 185000.0, "manager_id": 7,
        "updated_at": pd.Timestamp(at)}]).astype({"employee_id": "Int64", "manager_id": "Int64"})
    wh = Warehouse(pg_warehouse.loader_url)
    try:
        with wh.transaction() as con:
            scd2.lock_dimension(wh, con, DIM_EMPLOYEE)
            counts = scd2.stage_changes(wh, con, HR_EMPLOYEES, DIM_EMPLOYEE, source, loaded_at=at)
            scd2.publish(wh, con, HR_EMPLOYEES, DIM_EMPLOYEE)
    finally:
        wh.dispose()
    assert counts.new_versions == 1
    with login("qp_pii_reader").connect() as c:
        stored = c.execute(sa.text("SELECT row_hash FROM core.dim_employee WHERE employee_id = 8")).scalar()
    biz = scd2.business_columns(HR_EMPLOYEES)
    for salary in (185000.0, 150000.0):  # the right guess and a wrong one
        guess = source.assign(salary_usd=salary)
        unkeyed = scd2.row_hashes(guess, biz).iloc[0]  # sha256 of the canonical row, as the hash once was
        assert unkeyed not in stored
    # With the key the right guess matches: what was stored is the same row, keyed.
    from quant_platform.platform.settings import row_hash_key

    assert scd2.keyed_row_hashes(source, biz, row_hash_key()).iloc[0] == stored
    assert scd2.keyed_row_hashes(source.assign(salary_usd=150000.0), biz, row_hash_key()).iloc[0] != stored


def test_the_loader_gets_tick_history_partitions_only_through_the_owners_function(pg_warehouse, login):
    """The loader may not create tables, so a day's partition of market.ticks_history comes from the owner's
    SECURITY DEFINER function; the loader then replaces its rows, and readers see them through the parent."""
    loader = sa.create_engine(_sa(pg_warehouse.loader_url), poolclass=sa.pool.NullPool)
    try:
        _denied(loader, "CREATE TABLE market.ticks_history_20261102 PARTITION OF market.ticks_history "
                        "FOR VALUES FROM ('2026-11-02') TO ('2026-11-03')")
        with loader.begin() as c:
            part = c.execute(sa.text("SELECT market.ticks_history_partition(:d)"), {"d": date(2026, 11, 2)}).scalar()
            assert part == "market.ticks_history_20261102"
            assert c.execute(sa.text("SELECT market.ticks_history_partition(:d)"), {"d": date(2026, 11, 2)}
                             ).scalar() == part  # idempotent
            c.execute(sa.text(f"TRUNCATE {part}"))
            c.execute(sa.text(
                f"INSERT INTO {part} (trade_date, ts, received_at, source, instrument_id, venue_symbol, event, "  # noqa: S608
                "event_id, stream_seq) VALUES ('2026-11-02', now(), now(), 'binance', 'BTC-USDT', 'BTCUSDT', "
                "'trade', 'e1', 1)"))
            owner = c.execute(sa.text("SELECT tableowner FROM pg_tables WHERE tablename = 'ticks_history_20261102'")
                              ).scalar()
        assert owner == "qp_owner"
        with login("qp_analyst").connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM market.ticks_history WHERE trade_date = '2026-11-02'")
                             ).scalar() == 1
        _denied(login("qp_analyst"), "SELECT market.ticks_history_partition(DATE '2026-11-03')")
    finally:
        loader.dispose()
