"""Roles and masking on the machine's real PostgreSQL: analysts see PII only masked and write only their
team's schema; auditors read governance but no raw PII; engineers see core without PII columns.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from quant_platform_tests.conftest import PG_ADMIN_URL, REPO_ROOT


@pytest.fixture
def pg_warehouse(fresh_pg_database, qp_home, monkeypatch):
    from quant_platform.internal.tables import DIM_EMPLOYEE
    from quant_platform.platform.warehouse import Warehouse

    monkeypatch.setenv("QP_WAREHOUSE_URL", fresh_pg_database)
    wh = Warehouse(fresh_pg_database)
    wh.apply_sql_dir(REPO_ROOT / "quant_platform" / "sql")
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    row = {
        "employee_id": 7, "first_name": "Ingrid", "last_name": "Solberg", "email": "ingrid.solberg@firm.example",
        "phone": "+41 22 555 01 77", "date_of_birth": date(1984, 6, 13), "hire_date": date(2015, 3, 1),
        "department": "trading", "title": "Senior Trader", "desk": "crude", "salary_usd": 310000.0,
        "manager_id": None, "source_updated_at": now, "valid_from": now, "valid_to": None, "is_current": True,
        "is_deleted": False, "version": 1, "row_hash": "x" * 64, "loaded_at": now,
    }
    wh.append_rows(DIM_EMPLOYEE, pd.DataFrame([row]))
    yield fresh_pg_database
    wh.dispose()


@pytest.fixture
def login(pg_warehouse):
    """Creates login users that are members of the platform roles; dropped afterwards."""
    admin = sa.create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg2://"),
                             isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make(*roles: str) -> sa.Engine:
        user = f"qp_t_{uuid.uuid4().hex[:10]}"
        with admin.connect() as c:
            c.execute(sa.text(f"CREATE ROLE {user} LOGIN IN ROLE {', '.join(roles)}"))
        made.append(user)
        url = pg_warehouse.replace("postgres@", f"{user}@", 1).replace("postgresql://", "postgresql+psycopg2://")
        return sa.create_engine(url, poolclass=sa.pool.NullPool)

    yield make
    in_db = sa.create_engine(pg_warehouse.replace("postgresql://", "postgresql+psycopg2://"),
                             isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
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


def test_roles_are_idempotent_and_follow_the_declarations(pg_warehouse):
    from quant_platform.internal.tables import DIM_EMPLOYEE
    from quant_platform.platform.warehouse import Warehouse

    wh = Warehouse(pg_warehouse)
    wh.apply_sql_dir(REPO_ROOT / "quant_platform" / "sql")  # a second init changes nothing and does not fail
    grants = wh.query_df(
        "SELECT column_name FROM information_schema.column_privileges WHERE table_schema = 'core' "
        "AND table_name = 'dim_employee' AND grantee = 'qp_auditor' AND privilege_type = 'SELECT'")
    granted = set(grants["column_name"])
    pii = {c.name for c in DIM_EMPLOYEE.columns if c.pii}
    assert granted == {c.name for c in DIM_EMPLOYEE.columns} - pii
    wh.dispose()
