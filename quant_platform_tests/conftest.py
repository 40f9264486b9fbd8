"""Shared fixtures: a fresh QP_HOME per test, both warehouse backends on real servers, the simulator.

Never mock a service here: PostgreSQL is the machine's real server, one database per test run.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from quant_platform_tests.s3_server import s3_server  # noqa: F401  (a real S3 API, moto's server)

warnings.filterwarnings("ignore", category=DeprecationWarning)
try:
    from dagster import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)
except ImportError:  # pragma: no cover
    pass

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO_ROOT / "quant_platform" / "sample_data"  # the packaged real vendor files
PG_ADMIN_URL = os.environ.get("QP_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

QP_ENV_VARS = ("QP_HOME", "QP_WAREHOUSE_URL", "QP_LAKE_URL", "DAGSTER_HOME", "QP_EIA_BASE_URL",
               "QP_EIA_IR_BASE_URL", "QP_EIA_API_BASE_URL", "QP_CFTC_BASE_URL", "QP_EIA_API_KEY",
               "QP_EIA_SERIES", "QP_HTTP_TIMEOUT", "QP_HTTP_RETRIES", "QP_RELEASE_SENSOR_INTERVAL",
               "QP_NATS_URL", "QP_NATS_REPLICAS", "QP_STREAM_REPLICAS", "QP_TICK_LATENESS_MINUTES",
               "QP_TICK_GAP_MINUTES", "QP_STREAM_STALE_MINUTES", "QP_OLAP_RETENTION_DAYS",
               "QP_ALERT_WEBHOOK_URL", "QP_DAGSTER_URL", "QP_ALERT_INTERVAL")



def free_port() -> int:
    """A free TCP port on loopback, for a server a test starts."""
    from quant_platform.market.nats_server import free_loopback_port

    return free_loopback_port()


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0

def _pg_admin():
    import sqlalchemy as sa

    return sa.create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg2://"),
                            isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own for this test run on the machine's PostgreSQL; dropped at the end."""
    import sqlalchemy as sa

    name = f"qp_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = _pg_admin()
    try:
        with engine.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - the machine's server is part of the test contract
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required for these tests: {exc}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with engine.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def fresh_pg_database() -> Iterator[str]:
    """A database for one test (when tests must not see each other's rows)."""
    import sqlalchemy as sa

    name = f"qp_t_{uuid.uuid4().hex[:12]}"
    engine = _pg_admin()
    with engine.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with engine.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def qp_home(tmp_path, monkeypatch) -> Path:
    """A clean QP_HOME and DAGSTER_HOME; every QP_* variable reset so tests never see the developer's."""
    for var in QP_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "qp"
    home.mkdir()
    monkeypatch.setenv("QP_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("QP_HTTP_TIMEOUT", "2")
    from quant_platform.instance import ensure_embedded_instance

    ensure_embedded_instance(home / "dagster")  # the same instance config `quant-platform up` writes
    return home


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request, qp_home, monkeypatch) -> str:
    """Both backends: the same test runs on a DuckDB file and on a fresh PostgreSQL database."""
    if request.param == "duckdb":
        url = f"duckdb:///{qp_home / 'warehouse.duckdb'}"
    else:
        url = request.getfixturevalue("fresh_pg_database")
    monkeypatch.setenv("QP_WAREHOUSE_URL", url)
    return url


@pytest.fixture
def warehouse(warehouse_url):
    from quant_platform.platform.warehouse import Warehouse

    wh = Warehouse(warehouse_url)
    wh.apply_sql_dir(REPO_ROOT / "quant_platform" / "sql")
    yield wh
    wh.dispose()


@pytest.fixture
def duck(qp_home):
    """The default DuckDB warehouse of QP_HOME (no QP_WAREHOUSE_URL), with the platform's tables. A test module
    that needs another set-up defines its own `duck`."""
    from quant_platform.platform.settings import load_settings
    from quant_platform.platform.warehouse import Warehouse

    wh = Warehouse(load_settings().warehouse_url)
    wh.apply_sql_dir(REPO_ROOT / "quant_platform" / "sql")
    yield wh
    wh.dispose()


@pytest.fixture
def simulator(qp_home, monkeypatch):
    """The vendor simulator on a free loopback port, with every vendor URL pointed at it."""
    from quant_platform.vendors.simulator import VendorSimulator

    sim = VendorSimulator(data_dir=SAMPLE_DATA, preload=True).start()
    monkeypatch.setenv("QP_EIA_BASE_URL", sim.base_url)
    monkeypatch.setenv("QP_CFTC_BASE_URL", sim.base_url)
    monkeypatch.setenv("QP_EIA_SERIES", "WCESTUS1")
    yield sim
    sim.stop()


@pytest.fixture
def instance(qp_home):
    """A real persistent Dagster instance in the test's DAGSTER_HOME (SQLite storage)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(qp_home / "dagster")) as inst:
        yield inst


def pytest_collection_modifyitems(config, items):
    """test_daemons.py (the tests that start a Dagster daemon or webserver, minutes in all, one after another in one
    test process) goes first, so the other process runs the rest beside them instead of after them."""
    first = [i for i in items if i.path.name == "test_daemons.py"]
    if first:
        rest = [i for i in items if i.path.name != "test_daemons.py"]
        items[:] = first + rest
