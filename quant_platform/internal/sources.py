"""Operational source databases (CRM, HR, ERP): where they live, their schema, demo seeding and churn, reads.

Never build SQL from values: values are bound, identifiers come only from the SourceTable declarations.
"""

from __future__ import annotations

import os
import random
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from quant_platform.errors import ConfigError, QuantPlatformError
from quant_platform.internal.tables import (
    CRM_CLIENTS,
    ERP_SUPPLIERS,
    HR_EMPLOYEES,
    SOURCE_TABLES,
    SourceTable,
)
from quant_platform.platform.redaction import redact
from quant_platform.platform.settings import load_settings
from quant_platform.platform.warehouse import vetted


class SourceDatabaseError(QuantPlatformError):
    """An operational source database refused a statement, is unreachable or lacks its table."""


# ------------------------------------------------------------------------------------------- location
_SUPPORTED_BACKENDS = ("sqlite", "postgresql")


_redact = redact  # the one redaction rule (platform/redaction.py): no password of a URL in a message


def source_url(source: SourceTable) -> str:
    """The SQLAlchemy URL of the source's database: its QP_*_URL, else a SQLite file under $QP_HOME/sources."""
    raw = (os.environ.get(source.url_env) or "").strip()
    if not raw:
        folder = load_settings().home / "sources"
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder / f'{source.system}.db'}"
    url = re.sub(r"^postgres(?:ql)?://", "postgresql+psycopg2://", raw)
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"{source.url_env} is not a SQLAlchemy URL: {_redact(raw)!r}") from exc
    if parsed.get_backend_name() not in _SUPPORTED_BACKENDS:
        raise ConfigError(
            f"{source.url_env} must point at PostgreSQL (postgresql://...) or SQLite (sqlite:///...), "
            f"got {_redact(raw)!r}"
        )
    return url


def unconfigured_sources() -> list[str]:
    """The operational systems with neither a QP_*_URL nor a database under $QP_HOME/sources (seeded by `up`):
    nothing to extract from them, so the extract sensor skips instead of failing a run on a missing table."""
    home = load_settings().home / "sources"
    return sorted({s.system for s in SOURCE_TABLES if not (os.environ.get(s.url_env) or "").strip()
                   and not (home / f"{s.system}.db").exists()})


def source_engine(source: SourceTable) -> sa.Engine:
    """A new engine on the source's database (the caller disposes of it)."""
    url = source_url(source)
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ConfigError(f"{source.url_env}: cannot open {_redact(url)!r}: {exc}") from exc


@contextmanager
def _begin(source: SourceTable, *, snapshot: bool = False) -> Iterator[sa.Connection]:
    """One transaction on the source's database; database failures become SourceDatabaseError.

    snapshot: every statement sees the same state (REPEATABLE READ on PostgreSQL; on SQLite an explicit
    BEGIN, since the driver opens no transaction for reads and each SELECT would see the latest state).
    """
    engine = source_engine(source)
    try:
        isolated = engine.execution_options(isolation_level="REPEATABLE READ") \
            if snapshot and engine.dialect.name == "postgresql" else engine
        with isolated.begin() as conn:
            if snapshot and engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")
            yield conn
    except sa.exc.DBAPIError as exc:
        raise SourceDatabaseError(
            f"{source.system} database ({source.url_env}={_redact(str(engine.url))}), table {source.table}: "
            f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}"
        ) from exc
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------- schema
class UtcDateTime(sa.types.TypeDecorator):
    """TIMESTAMPTZ on PostgreSQL; on SQLite an ISO string in UTC. Always binds UTC and reads aware UTC.

    SQLite's DATETIME drops the offset, so values are converted to UTC before they are written or compared.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_SA_TYPES: dict[str, Callable[[], sa.types.TypeEngine]] = {
    "date": sa.Date,
    "timestamptz": UtcDateTime,
    "text": sa.Text,
    "int": sa.Integer,
    "bigint": sa.BigInteger,
    "double": sa.Double,
    "bool": sa.Boolean,
}


@cache
def _table(source: SourceTable) -> sa.Table:
    """The sqlalchemy Table of a source, built from its declaration only."""
    columns = [
        sa.Column(
            vetted(c.name),
            _SA_TYPES[c.type](),
            primary_key=c.name == source.key,
            autoincrement=False,
            nullable=c.nullable and c.name != source.key,
        )
        for c in source.columns
    ]
    table = sa.Table(vetted(source.table), sa.MetaData(), *columns)
    sa.Index(vetted(f"ix_{source.table}_updated_at"), table.c.updated_at)
    return table


def create_source_schema(engine: sa.Engine, source: SourceTable) -> None:
    """Create the source table (primary key on the key, index on updated_at) unless it exists."""
    table = _table(source)
    table.metadata.create_all(engine, tables=[table], checkfirst=True)
    existing = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
    if existing != set(source.column_names):
        raise ConfigError(
            f"{source.url_env}: table {source.table} exists with columns {sorted(existing)}, "
            f"expected {sorted(source.column_names)}; reseed the operational databases"
        )


# ------------------------------------------------------------------------------------------- reading
def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _to_series(values: list[Any], logical: str) -> pd.Series:
    if logical == "timestamptz":
        return pd.Series(pd.to_datetime(values, utc=True), dtype="datetime64[ns, UTC]")
    if logical == "date":
        return pd.Series(pd.to_datetime(values), dtype="datetime64[ns]")
    if logical in ("int", "bigint"):
        return pd.Series(pd.array(values, dtype="Int64"))
    if logical == "double":
        return pd.Series([float("nan") if v is None else v for v in values], dtype="float64")
    if logical == "bool":
        return pd.Series(pd.array(values, dtype="boolean"))
    return pd.Series(values, dtype="str")


def read_changes(source: SourceTable, since: datetime | None, until: datetime | None) -> pd.DataFrame:
    """Rows with since <= updated_at < until (either bound optional), ordered by updated_at then key.

    Columns are exactly the declared ones: updated_at tz-aware UTC, dates datetime64, integers Int64.
    """
    since, until = _aware(since, "since"), _aware(until, "until")
    with _begin(source) as conn:
        rows = conn.execute(_changes_stmt(source, since, until)).all()
    return _frame(source, rows)


def read_keys(source: SourceTable) -> set[int]:
    """Every key currently in the source (deleted rows are the keys the dimension has and this lacks)."""
    table = _table(source)
    with _begin(source) as conn:
        return {int(k) for k in conn.execute(sa.select(table.c[source.key])).scalars()}


@dataclass(frozen=True)
class SourceSnapshot:
    """What one extraction read from a source table, all in one transaction."""

    changes: pd.DataFrame  # rows with since <= updated_at < until (see read_changes)
    rows: int  # rows in the table
    rows_before: int  # rows with updated_at < `before`: those the dimension must already hold
    key_sum: int
    key_mix: int  # sum of (key % a) * (key % b) for KEY_MIX = (a, b): see scd2.KEY_MIX
    keys: np.ndarray | None  # every key (int64), when a key scan was asked for


def _changes_stmt(source: SourceTable, since: datetime | None, until: datetime | None) -> sa.Select:
    table = _table(source)
    stmt = sa.select(*[table.c[name] for name in source.column_names])
    if since is not None:
        stmt = stmt.where(table.c.updated_at >= since)
    if until is not None:
        stmt = stmt.where(table.c.updated_at < until)
    return stmt.order_by(table.c.updated_at, table.c[source.key])


def _frame(source: SourceTable, rows: Sequence[Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {c.name: _to_series([r[i] for r in rows], c.type) for i, c in enumerate(source.columns)}
    )


def read_snapshot(source: SourceTable, since: datetime | None, until: datetime | None, *, before: datetime,
                  keys: bool, changes: bool = True) -> SourceSnapshot:
    """The changes of a window, the table's size and key aggregates, and every key if `keys`, from one
    consistent snapshot. The aggregates are computed by the source database (one row comes back), so deciding
    whether a key scan is needed costs one aggregate query inside the source database, not a transfer of every
    key."""
    from quant_platform.internal.scd2 import KEY_MIX

    since, until, before = _aware(since, "since"), _aware(until, "until"), _aware(before, "before")
    table = _table(source)
    k = table.c[source.key]
    a, b = KEY_MIX
    stats = sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(k), 0),
        sa.func.coalesce(sa.func.sum((k % a) * (k % b)), 0),
        sa.func.coalesce(sa.func.sum(sa.case((table.c.updated_at < before, 1), else_=0)), 0),
    ).select_from(table)
    with _begin(source, snapshot=True) as conn:
        rows = conn.execute(_changes_stmt(source, since, until)).all() if changes else []
        n, key_sum, key_mix, n_before = conn.execute(stats).one()
        all_keys = np.fromiter(conn.execute(sa.select(k)).scalars(), dtype=np.int64) if keys else None
    return SourceSnapshot(_frame(source, rows), int(n), int(n_before), int(key_sum), int(key_mix), all_keys)


def count_rows(source: SourceTable) -> int:
    table = _table(source)
    with _begin(source) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _read_rows(source: SourceTable) -> list[dict[str, Any]]:
    table = _table(source)
    with _begin(source) as conn:
        result = conn.execute(sa.select(table).order_by(table.c[source.key]))
        return [dict(r._mapping) for r in result]


# ------------------------------------------------------------------------------------ reference data
DEPARTMENTS = ("trading", "operations", "finance", "risk", "research", "technology", "compliance")
_DEPARTMENT_WEIGHTS = (30, 22, 10, 12, 10, 11, 5)
DESKS = ("crude", "products", "gas", "power", "freight")
_DESK_WEIGHTS = (30, 25, 20, 15, 10)


@dataclass(frozen=True)
class _Title:
    name: str
    department: str
    level: int  # 0 chief executive, 1 head of department, 2 lead / desk head, 3 senior staff, 4 staff
    salary: tuple[int, int]
    on_desk: bool = False
    weight: int = 1  # how common among staff of its level


_TITLE_LIST = (
    _Title("Chief Executive Officer", "trading", 0, (1_200_000, 2_500_000)),
    _Title("Head of Trading", "trading", 1, (600_000, 1_200_000)),
    _Title("Chief Operating Officer", "operations", 1, (350_000, 550_000)),
    _Title("Chief Financial Officer", "finance", 1, (350_000, 600_000)),
    _Title("Chief Risk Officer", "risk", 1, (350_000, 550_000)),
    _Title("Head of Research", "research", 1, (300_000, 450_000)),
    _Title("Chief Technology Officer", "technology", 1, (300_000, 500_000)),
    _Title("Chief Compliance Officer", "compliance", 1, (250_000, 400_000)),
    _Title("Desk Head", "trading", 2, (400_000, 900_000), on_desk=True),
    _Title("Operations Manager", "operations", 2, (150_000, 220_000)),
    _Title("Finance Manager", "finance", 2, (150_000, 220_000)),
    _Title("Risk Manager", "risk", 2, (180_000, 260_000)),
    _Title("Research Lead", "research", 2, (180_000, 260_000)),
    _Title("Engineering Manager", "technology", 2, (180_000, 260_000)),
    _Title("Compliance Manager", "compliance", 2, (150_000, 220_000)),
    _Title("Senior Trader", "trading", 3, (250_000, 600_000), on_desk=True),
    _Title("Senior Scheduler", "operations", 3, (110_000, 150_000)),
    _Title("Financial Controller", "finance", 3, (120_000, 170_000)),
    _Title("Senior Risk Analyst", "risk", 3, (130_000, 180_000)),
    _Title("Senior Analyst", "research", 3, (140_000, 200_000)),
    _Title("Senior Software Engineer", "technology", 3, (150_000, 210_000)),
    _Title("Senior Compliance Officer", "compliance", 3, (120_000, 170_000)),
    _Title("Trader", "trading", 4, (150_000, 300_000), on_desk=True, weight=4),
    _Title("Sales Trader", "trading", 4, (140_000, 280_000), on_desk=True, weight=3),
    _Title("Junior Trader", "trading", 4, (90_000, 140_000), on_desk=True, weight=2),
    _Title("Trading Assistant", "trading", 4, (70_000, 100_000), on_desk=True, weight=2),
    _Title("Scheduler", "operations", 4, (75_000, 110_000), weight=3),
    _Title("Settlements Analyst", "operations", 4, (70_000, 100_000), weight=2),
    _Title("Logistics Coordinator", "operations", 4, (70_000, 105_000), weight=2),
    _Title("Chartering Analyst", "operations", 4, (80_000, 120_000)),
    _Title("Accountant", "finance", 4, (70_000, 100_000), weight=2),
    _Title("Treasury Analyst", "finance", 4, (80_000, 120_000)),
    _Title("Tax Specialist", "finance", 4, (85_000, 125_000)),
    _Title("Risk Analyst", "risk", 4, (90_000, 130_000), weight=2),
    _Title("Credit Analyst", "risk", 4, (90_000, 130_000)),
    _Title("Analyst", "research", 4, (100_000, 150_000), weight=2),
    _Title("Quantitative Analyst", "research", 4, (120_000, 180_000)),
    _Title("Meteorologist", "research", 4, (100_000, 150_000)),
    _Title("Software Engineer", "technology", 4, (110_000, 160_000), weight=3),
    _Title("Data Engineer", "technology", 4, (110_000, 160_000), weight=2),
    _Title("Site Reliability Engineer", "technology", 4, (110_000, 160_000)),
    _Title("Compliance Analyst", "compliance", 4, (80_000, 120_000), weight=2),
    _Title("KYC Analyst", "compliance", 4, (70_000, 100_000)),
)
TITLES = {t.name: t for t in _TITLE_LIST}
_HEAD = {t.department: t for t in _TITLE_LIST if t.level == 1}
_LEAD = {t.department: t for t in _TITLE_LIST if t.level == 2}
_SENIOR = {t.department: t for t in _TITLE_LIST if t.level == 3}
_STAFF = {d: [t for t in _TITLE_LIST if t.level == 4 and t.department == d] for d in DEPARTMENTS}
_PROMOTION = {
    "Trading Assistant": "Junior Trader", "Junior Trader": "Trader", "Trader": "Senior Trader",
    "Sales Trader": "Senior Trader", "Scheduler": "Senior Scheduler", "Settlements Analyst": "Senior Scheduler",
    "Accountant": "Financial Controller", "Treasury Analyst": "Financial Controller",
    "Risk Analyst": "Senior Risk Analyst", "Credit Analyst": "Senior Risk Analyst", "Analyst": "Senior Analyst",
    "Quantitative Analyst": "Senior Analyst", "Software Engineer": "Senior Software Engineer",
    "Data Engineer": "Senior Software Engineer", "Compliance Analyst": "Senior Compliance Officer",
}
# Titles that manage client relationships: account managers are drawn from these trading employees.
_ACCOUNT_MANAGER_TITLES = ("Desk Head", "Senior Trader", "Sales Trader", "Trader")

_FIRST_NAMES = (
    "Anna", "Lukas", "Sophie", "Jonas", "Elena", "Marco", "Chiara", "Luca", "Camille", "Julien", "Chloé",
    "François", "Léa", "Nicolas", "Hannah", "Felix", "Katharina", "Jürgen", "Sarah", "James", "Oliver",
    "Emily", "Charlotte", "Thomas", "William", "Olivia", "Henry", "Amelia", "George", "Isabella", "Ingrid",
    "Søren", "Astrid", "Lars", "Björn", "Freya", "Erik", "Sigrid", "Maarten", "Sanne", "Pieter", "Femke",
    "Carlos", "Lucía", "José", "Marta", "Javier", "Inês", "João", "Beatriz", "Rafael", "Priya", "Arjun",
    "Ananya", "Rohan", "Kavya", "Vikram", "Wei", "Mei", "Jun", "Hao", "Yuki", "Kenji", "Haruka", "Min-jun",
    "Ji-woo", "Omar", "Layla", "Karim", "Yasmin", "Tariq", "Nour", "Chinedu", "Amara", "Tunde", "Zainab",
    "Kwame", "Ama", "Dmitri", "Olga", "Andrei", "Katarzyna", "Piotr", "Agnieszka", "Nikos", "Eleni",
    "Giorgos", "Michael", "Laura", "David", "Rachel", "Daniel", "Natalie", "Alexander", "Victoria",
    "Benjamin", "Grace", "Samuel", "Zoë", "Patrick", "Siobhan", "Connor", "Aisling",
)
_LAST_NAMES = (
    "Müller", "Schneider", "Meier", "Keller", "Weber", "Fischer", "Baumann", "Huber", "Rossi", "Bianchi",
    "Ferrari", "Romano", "Dubois", "Martin", "Lefèvre", "Moreau", "Girard", "Bonnet", "Smith", "Jones",
    "Taylor", "Brown", "Wilson", "Davies", "Evans", "Clarke", "Hughes", "Wright", "O'Brien", "Murphy",
    "Kelly", "Walsh", "Hansen", "Johansen", "Larsen", "Nilsson", "Lindqvist", "Andersson", "Berg",
    "Jensen", "van Dijk", "de Vries", "Bakker", "Visser", "Janssen", "García", "Fernández", "López",
    "Martínez", "Silva", "Santos", "Costa", "Pereira", "Sharma", "Patel", "Iyer", "Reddy", "Gupta",
    "Mehta", "Wang", "Li", "Zhang", "Chen", "Liu", "Tanaka", "Sato", "Suzuki", "Kim", "Park", "Lee",
    "Al-Farsi", "Haddad", "Nasser", "Khalil", "Mansour", "Okafor", "Adeyemi", "Mensah", "Boateng",
    "Ivanov", "Petrova", "Kowalski", "Nowak", "Wiśniewski", "Papadopoulos", "Georgiou", "Anderson",
    "Thompson", "Robinson", "Cohen", "Levy", "Friedman", "Novak", "Horvat", "Dumont", "Marchetti",
)
# Where employees sit: the office decides the phone number.
_OFFICES = {
    "geneva": ("+41 22 ### ## ##",),
    "london": ("+44 20 #### ####",),
    "singapore": ("+65 6### ####",),
    "houston": ("+1 713 ### ####", "+1 832 ### ####"),
}
_OFFICE_PREFIX = (("+41 22", "geneva"), ("+44 20", "london"), ("+65", "singapore"), ("+1", "houston"))
_TRADING_OFFICE_WEIGHTS = (45, 35, 15, 5)
_OTHER_OFFICE_WEIGHTS = (60, 30, 8, 2)


@dataclass(frozen=True)
class _Country:
    phones: tuple[str, ...]  # patterns, '#' is a digit
    legal: tuple[str, ...]  # company name suffixes
    iban_length: int | None  # None: the country does not use IBANs


_COUNTRIES = {
    "CH": _Country(("+41 22 ### ## ##", "+41 44 ### ## ##", "+41 91 ### ## ##"), ("AG", "SA"), 21),
    "GB": _Country(("+44 20 #### ####",), ("Ltd", "plc", "LLP"), 22),
    "US": _Country(("+1 713 ### ####", "+1 212 ### ####", "+1 203 ### ####"), ("LLC", "Inc.", "LP", "Corp."), None),
    "NL": _Country(("+31 10 ### ####", "+31 20 ### ####"), ("B.V.", "N.V."), 18),
    "NO": _Country(("+47 ## ## ## ##",), ("AS", "ASA"), 15),
    "DE": _Country(("+49 40 #### ####", "+49 69 #### ####"), ("GmbH", "AG"), 22),
    "FR": _Country(("+33 1 ## ## ## ##", "+33 4 ## ## ## ##"), ("SA", "SAS"), 27),
    "IT": _Country(("+39 02 #### ####", "+39 010 ### ####"), ("S.p.A.", "S.r.l."), 27),
    "ES": _Country(("+34 91 ### ## ##",), ("S.A.", "S.L."), 24),
    "PT": _Country(("+351 21 ### ####",), ("S.A.",), 25),
    "BE": _Country(("+32 3 ### ## ##",), ("NV", "SA"), 16),
    "DK": _Country(("+45 ## ## ## ##",), ("A/S",), 18),
    "PL": _Country(("+48 58 ### ## ##",), ("S.A.", "Sp. z o.o."), 28),
    "GR": _Country(("+30 210 ### ####",), ("S.A.",), 27),
    "CY": _Country(("+357 25 ######",), ("Ltd",), 28),
    "MT": _Country(("+356 21## ####",), ("Ltd",), 31),
    "AE": _Country(("+971 4 ### ####", "+971 9 ### ####"), ("LLC", "FZE", "DMCC"), 23),
    "SA": _Country(("+966 13 ### ####",), ("Co.",), 24),
    "QA": _Country(("+974 4### ####",), ("QSC", "LLC"), 29),
    "SG": _Country(("+65 6### ####",), ("Pte Ltd",), None),
    "HK": _Country(("+852 #### ####",), ("Ltd",), None),
    "JP": _Country(("+81 3 #### ####",), ("K.K.", "Corporation"), None),
    "KR": _Country(("+82 52 ### ####", "+82 2 #### ####"), ("Co., Ltd.",), None),
    "CN": _Country(("+86 21 #### ####",), ("Co., Ltd.",), None),
    "IN": _Country(("+91 22 #### ####",), ("Ltd", "Pvt Ltd"), None),
    "BR": _Country(("+55 21 #### ####",), ("S.A.", "Ltda"), 29),
    "NG": _Country(("+234 1 ### ####",), ("Ltd", "Plc"), None),
    "ZA": _Country(("+27 21 ### ####",), ("(Pty) Ltd",), None),
    "CA": _Country(("+1 403 ### ####",), ("Inc.", "Ltd"), None),
    "AU": _Country(("+61 2 #### ####",), ("Pty Ltd",), None),
    "MX": _Country(("+52 55 #### ####",), ("S.A. de C.V.",), None),
}
_CLIENT_COUNTRIES = (
    ("US", 14), ("GB", 10), ("CH", 8), ("SG", 8), ("DE", 6), ("AE", 6), ("NL", 5), ("NO", 5), ("FR", 5),
    ("JP", 4), ("IT", 3), ("ES", 3), ("SA", 3), ("KR", 3), ("CN", 3), ("IN", 3), ("BR", 3), ("CA", 3),
    ("QA", 2), ("NG", 2), ("ZA", 2), ("AU", 2), ("MX", 2), ("DK", 2), ("BE", 2),
)
SEGMENTS = ("producer", "refiner", "utility", "hedge_fund", "bank", "trading_house")
_SEGMENT_WEIGHTS = (18, 18, 20, 16, 10, 18)
_SEGMENT_NOUNS = {
    "producer": ("Petroleum", "Oil & Gas", "Exploration", "Resources", "Energy", "Hydrocarbons"),
    "refiner": ("Refining", "Refinery", "Downstream", "Petrochemicals", "Fuels"),
    "utility": ("Utilities", "Power", "Electric", "Gas Distribution", "Energy Supply", "Generation"),
    "hedge_fund": ("Capital", "Capital Partners", "Asset Management", "Macro Fund", "Investments"),
    "bank": ("Bank", "Banking Corporation", "Merchant Bank", "Commodity Finance"),
    "trading_house": ("Trading", "Commodities", "Resources Trading", "Energy Trading", "Marketing"),
}
_CREDIT_USD = {  # credit limit range by segment, before rounding to 100k
    "producer": (10e6, 300e6), "refiner": (10e6, 250e6), "utility": (5e6, 150e6),
    "hedge_fund": (5e6, 100e6), "bank": (50e6, 500e6), "trading_house": (10e6, 200e6),
}
_PLACES = (
    "Nordic", "Gulf Coast", "Baltic", "Atlantic", "Pacific", "Meridian", "Alpine", "Iberian", "Caspian",
    "Levant", "Sahel", "Andean", "Danube", "Rhine", "Aurora", "Polar", "Highland", "Delta", "Savanna",
    "Zenith", "Horizon", "Summit", "Harbour", "Cape", "Coral", "Granite", "Silverline", "Bluewater",
    "Redstone", "Northstar", "Southern Cross", "Eastern", "Western", "Continental", "Coastal", "Prairie",
    "Lakeshore", "Riverbend", "Sunrise", "Evergreen", "Orion", "Vega", "Helios", "Boreal", "Tasman",
    "Biscay", "Adriatic", "Aegean", "Anatolian", "Bosphorus", "Cascade", "Sierra", "Mesa", "Frontier",
    "Pioneer", "Keystone", "Lighthouse", "Compass", "Anchor", "Tidewater",
)
_QUALIFIERS = ("", "", "", "", " International", " Holdings", " Group", " Global")
_CONTACT_MAILBOXES = ("trading", "ops", "contracts", "credit", "confirmations", "info")

CATEGORIES = ("storage", "shipping", "inspection", "broker", "market_data", "pipeline")
_CATEGORY_WEIGHTS = (25, 25, 15, 15, 10, 10)
_PORTS = (
    ("Rotterdam", "NL"), ("Amsterdam", "NL"), ("Antwerp", "BE"), ("Fujairah", "AE"), ("Jurong", "SG"),
    ("Singapore", "SG"), ("Houston", "US"), ("Corpus Christi", "US"), ("Cushing", "US"), ("Algeciras", "ES"),
    ("Sines", "PT"), ("Gdansk", "PL"), ("Ulsan", "KR"), ("Saldanha Bay", "ZA"), ("Hamburg", "DE"),
    ("Marseille", "FR"), ("Trieste", "IT"), ("Genoa", "IT"), ("Ras Tanura", "SA"), ("Mongstad", "NO"),
    ("Milford Haven", "GB"), ("Immingham", "GB"), ("Teesside", "GB"), ("Marsaxlokk", "MT"),
)
_PIPELINE_REGIONS = (
    ("Permian", "US"), ("Gulf Coast", "US"), ("Midcontinent", "US"), ("Alberta", "CA"), ("North Sea", "NO"),
    ("Transalpine", "DE"), ("Adriatic", "IT"), ("Baltic", "PL"), ("Iberian", "ES"), ("Rhine Valley", "DE"),
)
_SUPPLIER_WORDS = (
    "Argo", "Poseidon", "Triton", "Nereus", "Thalassa", "Hellenic", "Skagen", "Kattegat", "Malacca", "Sunda",
    "Meridian", "Compass", "Anchor", "Beacon", "Harbor", "Tidewater", "Bluewater", "Northstar", "Polaris",
    "Sextant", "Capstan", "Halyard", "Windward", "Leeward", "Albatross", "Petrel", "Cormorant", "Osprey",
    "Kestrel", "Heron", "Atlas", "Orion", "Sirius", "Lyra", "Quantum", "Vector", "Apex", "Pinnacle", "Ledger",
    "Prism", "Signal", "Clarity", "Precision", "Sterling", "Marlow", "Ashford", "Kingsley", "Whitmore",
    "Hartley", "Brennan",
)
_SUPPLIER_NOUNS = {
    "storage": ("Tank Terminals", "Oil Terminal", "Tank Storage", "Bulk Liquids", "Terminal Services"),
    "shipping": ("Shipping", "Tankers", "Maritime", "Navigation", "Shipmanagement", "Seaways"),
    "inspection": ("Inspection Services", "Marine Surveyors", "Cargo Inspection", "Petroleum Laboratories"),
    "broker": ("Energy Brokers", "Futures", "Shipbroking", "Commodity Brokers", "Tanker Brokers"),
    "market_data": ("Analytics", "Market Data", "Pricing Services", "Weather Services", "Price Reporting"),
    "pipeline": ("Pipeline Company", "Midstream", "Gas Transmission", "Crude Pipeline"),
}
_SUPPLIER_COUNTRIES = {
    "shipping": ("GR", "GR", "NO", "DK", "SG", "CY", "MT", "HK", "GB"),
    "inspection": ("NL", "BE", "GB", "SG", "US", "CH", "AE"),
    "broker": ("GB", "GB", "US", "SG", "CH", "NO"),
    "market_data": ("GB", "US", "US", "CH", "NL"),
}
_PAYMENT_TERMS = {  # (days, weight) by category
    "storage": ((15, 2), (30, 5), (45, 2), (60, 1)),
    "shipping": ((0, 2), (5, 2), (10, 1), (15, 2), (30, 3)),
    "inspection": ((14, 2), (30, 5), (45, 2), (60, 1)),
    "broker": ((7, 1), (14, 2), (30, 5)),
    "market_data": ((30, 5), (45, 1), (60, 2), (90, 1)),
    "pipeline": ((10, 2), (20, 2), (30, 4)),
}
_ALL_TERMS = (0, 5, 7, 10, 14, 15, 20, 30, 45, 60, 90)
_BUYER_DEPARTMENT = {"broker": "finance", "market_data": "finance"}  # the rest: operations

_MIN_EMPLOYEES = 20  # a chief executive, seven department heads, five desk heads and some staff
_ASCII = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "Ae", "ß": "ss", "ł": "l", "Ł": "L", "đ": "d"})


def _slug(text: str, sep: str = "") -> str:
    """Lowercase ASCII for e-mail local parts and domains ("Lefèvre" -> "lefevre", "van Dijk" -> "vandijk")."""
    plain = unicodedata.normalize("NFKD", text.translate(_ASCII)).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", plain.lower())
    return sep.join(words)


def _iban(rng: random.Random, country: str) -> str:
    """An IBAN of the country's length with a numeric BBAN and correct ISO 7064 check digits."""
    length = _COUNTRIES[country].iban_length or 22
    bban = "".join(str(rng.randrange(10)) for _ in range(length - 4))
    letters = "".join(str(ord(ch) - 55) for ch in country)
    check = 98 - int(bban + letters + "00") % 97
    return f"{country}{check:02d}{bban}"


def _rounded(value: float, step: float) -> float:
    return float(round(value / step) * step)


# -------------------------------------------------------------------------------------------- generator
class _Generator:
    """Draws every value from one random.Random, in a fixed order: same seed and state, same rows."""

    def __init__(self, rng: random.Random, *, emails: Sequence[str] = (), client_names: Sequence[str] = (),
                 supplier_names: Sequence[str] = ()):
        self.rng = rng
        self.emails = set(emails)
        self.client_names = set(client_names)
        self.supplier_names = set(supplier_names)

    # -- small pieces
    def pattern(self, patterns: Sequence[str]) -> str:
        pattern = self.rng.choice(patterns)
        return "".join(str(self.rng.randrange(10)) if ch == "#" else ch for ch in pattern)

    def person(self) -> tuple[str, str]:
        return self.rng.choice(_FIRST_NAMES), self.rng.choice(_LAST_NAMES)

    def office_phone(self, department: str) -> str:
        weights = _TRADING_OFFICE_WEIGHTS if department == "trading" else _OTHER_OFFICE_WEIGHTS
        office = self.rng.choices(list(_OFFICES), weights=weights)[0]
        return self.pattern(_OFFICES[office])

    def work_email(self, first: str, last: str) -> str:
        base = f"{_slug(first)}.{_slug(last)}"
        candidate, n = f"{base}@firm.example", 2
        while candidate in self.emails:
            candidate, n = f"{base}{n}@firm.example", n + 1
        self.emails.add(candidate)
        return candidate

    def unique(self, taken: set[str], make: Callable[[], str]) -> str:
        candidate = make()
        for _ in range(30):
            if candidate not in taken:
                break
            candidate = make()
        base, n = candidate, 2
        while candidate in taken:
            candidate, n = f"{base} ({n})", n + 1
        taken.add(candidate)
        return candidate

    def day_between(self, lo: date, hi: date) -> date:
        if hi <= lo:
            return hi
        return lo + timedelta(days=self.rng.randrange((hi - lo).days + 1))

    def salary(self, title: _Title) -> float:
        return _rounded(self.rng.uniform(*title.salary), 500)

    def history_stamp(self, now: datetime, history_days: float) -> datetime:
        return now - timedelta(seconds=self.rng.uniform(0, history_days * 86400))

    # -- rows
    def employee(self, employee_id: int, title: _Title, desk: str | None, manager_id: int | None, *,
                 hire_by: date, updated_at: datetime, hire_from: date | None = None) -> dict[str, Any]:
        rng = self.rng
        first, last = self.person()
        if title.level <= 1:
            dob = self.day_between(date(1960, 1, 1), date(1978, 12, 31))
        elif title.level == 2:
            dob = self.day_between(date(1965, 1, 1), date(1988, 12, 31))
        else:
            dob = self.day_between(date(1960, 1, 1), date(2000, 12, 31))
        earliest = max(date(2000, 1, 1), date(dob.year + 22, dob.month, min(dob.day, 28)))
        hire = self.day_between(max(earliest, hire_from or earliest), hire_by)
        return {
            "employee_id": employee_id,
            "first_name": first,
            "last_name": last,
            "email": self.work_email(first, last),
            "phone": None if rng.random() < 0.03 else self.office_phone(title.department),
            "date_of_birth": None if rng.random() < 0.02 else dob,
            "hire_date": hire,
            "department": title.department,
            "title": title.name,
            "desk": desk if title.on_desk else None,
            "salary_usd": self.salary(title),
            "manager_id": manager_id,
            "updated_at": updated_at,
        }

    def organisation(self, n: int, now: datetime, history_days: float) -> list[dict[str, Any]]:
        """A firm of n employees: chief executive, department heads, desk heads, then leads and staff."""
        rng = self.rng
        hire_by = (now - timedelta(days=history_days + 1)).date()
        rows: list[dict[str, Any]] = []

        def add(title: _Title, desk: str | None, manager_id: int | None) -> int:
            employee_id = len(rows) + 1
            rows.append(self.employee(employee_id, title, desk, manager_id, hire_by=hire_by,
                                      updated_at=self.history_stamp(now, history_days)))
            return employee_id

        ceo = add(TITLES["Chief Executive Officer"], None, None)
        heads = {d: add(_HEAD[d], None, ceo) for d in DEPARTMENTS}
        desk_heads = {desk: add(_LEAD["trading"], desk, heads["trading"]) for desk in DESKS}
        leads: dict[str, list[int]] = {d: [] for d in DEPARTMENTS}
        reports: dict[str, int] = dict.fromkeys(DEPARTMENTS, 0)
        seniors: dict[str, list[int]] = {desk: [] for desk in DESKS}
        while len(rows) < n:
            dept = rng.choices(DEPARTMENTS, weights=_DEPARTMENT_WEIGHTS)[0]
            if dept == "trading":
                desk = rng.choices(DESKS, weights=_DESK_WEIGHTS)[0]
                if rng.random() < 0.25:
                    seniors[desk].append(add(_SENIOR["trading"], desk, desk_heads[desk]))
                    continue
                title = self.staff_title("trading")
                manager = rng.choice(seniors[desk]) if seniors[desk] and rng.random() < 0.6 else desk_heads[desk]
                add(title, desk, manager)
            elif not leads[dept] or reports[dept] >= 8 * len(leads[dept]):
                leads[dept].append(add(_LEAD[dept], None, heads[dept]))
            else:
                title = _SENIOR[dept] if rng.random() < 0.3 else self.staff_title(dept)
                add(title, None, rng.choice(leads[dept]))
                reports[dept] += 1
        return rows

    def staff_title(self, department: str) -> _Title:
        options = _STAFF[department]
        return self.rng.choices(options, weights=[t.weight for t in options])[0]

    def client(self, client_id: int, account_managers: Sequence[int], updated_at: datetime) -> dict[str, Any]:
        rng = self.rng
        segment = rng.choices(SEGMENTS, weights=_SEGMENT_WEIGHTS)[0]
        country = rng.choices([c for c, _ in _CLIENT_COUNTRIES], weights=[w for _, w in _CLIENT_COUNTRIES])[0]
        individual = segment == "hedge_fund" and rng.random() < 0.08
        if individual:  # a person trading on own account
            name = self.unique(self.client_names, lambda: " ".join(self.person()))
            domain = "mail.example"
            mailbox = _slug(name, ".")
            credit = _rounded(rng.uniform(250e3, 2e6), 50e3)
        else:
            parts: dict[str, str] = {}

            def make() -> str:
                parts["base"] = f"{rng.choice(_PLACES)} {rng.choice(_SEGMENT_NOUNS[segment])}"
                return f"{parts['base']}{rng.choice(_QUALIFIERS)} {rng.choice(_COUNTRIES[country].legal)}"

            name = self.unique(self.client_names, make)
            domain = f"{_slug(parts['base'], '-')}.example"
            mailbox = rng.choice(_CONTACT_MAILBOXES)
            credit = _rounded(rng.uniform(*_CREDIT_USD[segment]), 100e3)
        return {
            "client_id": client_id,
            "name": name,
            "email": None if rng.random() < 0.05 else f"{mailbox}@{domain}",
            "phone": None if rng.random() < 0.05 else self.pattern(_COUNTRIES[country].phones),
            "country": country,
            "segment": segment,
            "credit_limit_usd": None if rng.random() < 0.03 else credit,
            "account_manager_id": rng.choice(account_managers) if account_managers else None,
            "updated_at": updated_at,
        }

    def supplier_name(self, category: str) -> tuple[str, str]:
        rng = self.rng
        if category in ("storage", "pipeline"):
            place, country = rng.choice(_PORTS if category == "storage" else _PIPELINE_REGIONS)
        else:
            place, country = "", rng.choice(_SUPPLIER_COUNTRIES[category])
        legal = _COUNTRIES[country].legal

        def make() -> str:
            noun = rng.choice(_SUPPLIER_NOUNS[category])
            if place and rng.random() < 0.5:
                return f"{place} {noun} {rng.choice(legal)}"
            word = rng.choice(_SUPPLIER_WORDS)
            return f"{word} {place} {noun} {rng.choice(legal)}" if place else f"{word} {noun} {rng.choice(legal)}"

        return self.unique(self.supplier_names, make), country

    def contact(self, domain: str, country: str) -> dict[str, Any]:
        first, last = self.person()
        return {
            "contact_name": f"{first} {last}",
            "contact_email": f"{_slug(first)}.{_slug(last)}@{domain}",
            "phone": None if self.rng.random() < 0.04 else self.pattern(_COUNTRIES[country].phones),
        }

    def iban(self, country: str) -> str | None:
        return _iban(self.rng, country) if _COUNTRIES[country].iban_length else None

    def supplier(self, supplier_id: int, buyers: dict[str, list[int]], updated_at: datetime) -> dict[str, Any]:
        rng = self.rng
        category = rng.choices(CATEGORIES, weights=_CATEGORY_WEIGHTS)[0]
        name, country = self.supplier_name(category)
        domain = f"{_slug(' '.join(name.split()[:2]), '-')}.example"
        contact = self.contact(domain, country)
        if rng.random() < 0.05:
            contact = {"contact_name": None, "contact_email": f"accounts@{domain}", "phone": contact["phone"]}
        terms = _PAYMENT_TERMS[category]
        pool = buyers.get(_BUYER_DEPARTMENT.get(category, "operations")) or buyers.get("operations") or \
            buyers.get("finance") or []
        return {
            "supplier_id": supplier_id,
            "name": name,
            **contact,
            "country": country,
            "category": category,
            "iban": None if rng.random() < 0.03 else self.iban(country),
            "payment_terms_days": rng.choices([d for d, _ in terms], weights=[w for _, w in terms])[0],
            "buyer_employee_id": rng.choice(pool) if pool else None,
            "updated_at": updated_at,
        }


def _account_managers(employees: Sequence[dict[str, Any]]) -> list[int]:
    trading = [e for e in employees if e["department"] == "trading"]
    preferred = [e["employee_id"] for e in trading if e["title"] in _ACCOUNT_MANAGER_TITLES]
    return preferred or [e["employee_id"] for e in trading]


def _buyers(employees: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    return {d: [e["employee_id"] for e in employees if e["department"] == d] for d in ("operations", "finance")}


# -------------------------------------------------------------------------------------------- seeding
def _write(source: SourceTable, *, recreate: bool = False, rows: Sequence[dict[str, Any]] = (),
           updates: Sequence[dict[str, Any]] = (), deletes: Sequence[int] = ()) -> None:
    """Apply inserts, full-row updates and deletes to one source table in one transaction."""
    table = _table(source)
    engine = source_engine(source)
    try:
        if recreate:
            table.drop(engine, checkfirst=True)
        create_source_schema(engine, source)
        with engine.begin() as conn:
            if updates:
                others = [c for c in source.column_names if c != source.key]
                stmt = (table.update().where(table.c[source.key] == sa.bindparam("k_key"))
                        .values({c: sa.bindparam(f"v_{c}") for c in others}))
                conn.execute(stmt, [{"k_key": r[source.key], **{f"v_{c}": r[c] for c in others}} for r in updates])
            if rows:
                conn.execute(table.insert(), list(rows))
            if deletes:
                conn.execute(table.delete().where(table.c[source.key].in_(list(deletes))))
    except sa.exc.DBAPIError as exc:
        raise SourceDatabaseError(f"{source.system} database ({source.url_env}), table {source.table}: "
                                  f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}") from exc
    finally:
        engine.dispose()


def seed_sources(*, clients: int = 3000, employees: int = 800, suppliers: int = 1200, seed: int = 7,
                 now: datetime | None = None, history_days: float = 30) -> dict[str, int]:
    """Drop, recreate and fill the CRM, HR and ERP tables with a deterministic, realistic firm.

    updated_at lies in [now - history_days, now]. Returns the row count per table name.
    """
    now = _aware(now, "now") or datetime.now(UTC)
    if employees < _MIN_EMPLOYEES:
        raise ValueError(f"seed at least {_MIN_EMPLOYEES} employees (every department and desk needs a head)")
    if clients < 0 or suppliers < 0:
        raise ValueError("row counts cannot be negative")
    if history_days <= 0:
        raise ValueError("history_days must be positive")
    gen = _Generator(random.Random(seed))
    staff = gen.organisation(employees, now, history_days)
    managers, buyers = _account_managers(staff), _buyers(staff)
    client_rows = [gen.client(i, managers, gen.history_stamp(now, history_days)) for i in range(1, clients + 1)]
    supplier_rows = [gen.supplier(i, buyers, gen.history_stamp(now, history_days))
                     for i in range(1, suppliers + 1)]
    for source, rows in ((HR_EMPLOYEES, staff), (CRM_CLIENTS, client_rows), (ERP_SUPPLIERS, supplier_rows)):
        _write(source, recreate=True, rows=rows)
    return {HR_EMPLOYEES.table: len(staff), CRM_CLIENTS.table: len(client_rows),
            ERP_SUPPLIERS.table: len(supplier_rows)}


# --------------------------------------------------------------------------------------------- churn
def _office_of(phone: str | None) -> str | None:
    for prefix, office in _OFFICE_PREFIX:
        if phone and phone.startswith(prefix):
            return office
    return None


def _manager_for(staff: dict[int, dict[str, Any]], department: str, desk: str | None, exclude: int,
                 rng: random.Random) -> int | None:
    """A manager for a (new or moved) staff member: desk head or lead, else head of department, else the top."""
    def pick(match: Callable[[dict[str, Any]], bool]) -> int | None:
        ids = [i for i, e in staff.items() if i != exclude and match(e)]
        return rng.choice(sorted(ids)) if ids else None

    if department == "trading" and desk:
        found = pick(lambda e: e["title"] == _LEAD["trading"].name and e["desk"] == desk)
    else:
        found = pick(lambda e: e["title"] == _LEAD[department].name)
    return (found or pick(lambda e: e["title"] == _HEAD[department].name)
            or pick(lambda e: e["manager_id"] is None))


def _change_employee(gen: _Generator, row: dict[str, Any], staff: dict[int, dict[str, Any]],
                     referenced: set[int], managing: set[int]) -> dict[str, Any]:
    """A new version of an employee: promotion, desk move, transfer, salary or phone change."""
    rng = gen.rng
    new = dict(row)
    title = TITLES.get(row["title"])
    options, weights = ["salary", "phone"], [3, 1]
    if row["title"] in _PROMOTION:
        options.append("promotion")
        weights.append(3)
    if title is not None and title.level >= 3 and row["employee_id"] not in managing and title.on_desk:
        options.append("desk")
        weights.append(2)
    if title is not None and title.level >= 3 and row["employee_id"] not in referenced:
        options.append("transfer")
        weights.append(1)
    kind = rng.choices(options, weights=weights)[0]
    if kind == "promotion":
        promoted = TITLES[_PROMOTION[row["title"]]]
        new["title"] = promoted.name
        floor = promoted.salary[0]
        new["salary_usd"] = min(5e6, max(floor, _rounded((row["salary_usd"] or floor) * rng.uniform(1.08, 1.2), 500)))
    elif kind == "desk":
        new["desk"] = rng.choice([d for d in DESKS if d != row["desk"]])
        new["manager_id"] = _manager_for(staff, "trading", new["desk"], row["employee_id"], rng)
    elif kind == "transfer":
        department = rng.choice([d for d in DEPARTMENTS if d != row["department"]])
        moved = gen.staff_title(department)
        new.update(department=department, title=moved.name, desk=rng.choice(DESKS) if moved.on_desk else None,
                   salary_usd=gen.salary(moved))
        new["manager_id"] = _manager_for(staff, department, new["desk"], row["employee_id"], rng)
    elif kind == "salary":
        base = row["salary_usd"] or (title.salary[0] if title else 100_000)
        new["salary_usd"] = min(5e6, _rounded(base * rng.uniform(1.02, 1.12), 500))
        if new["salary_usd"] == row["salary_usd"]:
            new["salary_usd"] = base + 500 if base + 500 <= 5e6 else base - 500
    else:
        office = _office_of(row["phone"]) or rng.choice(list(_OFFICES))
        phone = gen.pattern(_OFFICES[office])
        while phone == row["phone"]:
            phone = gen.pattern(_OFFICES[office])
        new["phone"] = phone
    return new


def _change_client(gen: _Generator, row: dict[str, Any], managers: Sequence[int]) -> dict[str, Any]:
    """A new version of a client: new segment, new credit limit or a new account manager."""
    rng = gen.rng
    new = dict(row)
    others = [m for m in managers if m != row["account_manager_id"]]
    kind = rng.choices(["segment", "credit", "manager"], weights=[1, 3, 2 if others else 0])[0]
    if kind == "segment":
        new["segment"] = rng.choice([s for s in SEGMENTS if s != row["segment"]])
    elif kind == "credit":
        old = row["credit_limit_usd"]
        if old is None:
            new["credit_limit_usd"] = _rounded(rng.uniform(*_CREDIT_USD[row["segment"]]), 100e3)
        else:
            new["credit_limit_usd"] = min(1e10, _rounded(old * rng.choice((0.5, 0.75, 1.25, 1.5, 2.0)), 100e3))
            if new["credit_limit_usd"] == old:
                new["credit_limit_usd"] = old + 100e3 if old + 100e3 <= 1e10 else old - 100e3
    else:
        new["account_manager_id"] = rng.choice(others)
    return new


def _change_supplier(gen: _Generator, row: dict[str, Any]) -> dict[str, Any]:
    """A new version of a supplier: renegotiated payment terms, a new contact person or a new bank account."""
    rng = gen.rng
    new = dict(row)
    has_iban = _COUNTRIES.get(row["country"], _COUNTRIES["US"]).iban_length is not None
    kind = rng.choices(["terms", "contact", "iban"], weights=[3, 2, 1 if has_iban else 0])[0]
    if kind == "terms":
        new["payment_terms_days"] = rng.choice([d for d in _ALL_TERMS if d != row["payment_terms_days"]])
    elif kind == "contact":
        email = row["contact_email"] or ""
        domain = email.split("@", 1)[1] if "@" in email else f"{_slug(' '.join(row['name'].split()[:2]), '-')}.example"
        country = row["country"] if row["country"] in _COUNTRIES else "GB"
        contact = gen.contact(domain, country)
        while contact["contact_name"] == row["contact_name"]:
            contact = gen.contact(domain, country)
        new.update(contact)
    else:
        iban = gen.iban(row["country"])
        while iban == row["iban"]:
            iban = gen.iban(row["country"])
        new["iban"] = iban
    return new


def churn_sources(*, updates: int, deletes: int, inserts: int = 0, seed: int,
                  now: datetime | None = None) -> dict[str, dict[str, list[int]]]:
    """Let time pass in the operational systems: update, hard-delete and insert random rows at `now`.

    Employees still referenced (as manager, account manager or buyer) are never deleted, and the highest key
    of a table is kept so that new keys are never reused. Deterministic for a seed and database state.
    Returns {"updated"|"deleted"|"inserted": {table: sorted keys}}.
    """
    now = _aware(now, "now") or datetime.now(UTC)
    if min(updates, deletes, inserts) < 0:
        raise ValueError("updates, deletes and inserts cannot be negative")
    rng = random.Random(seed)
    rows = {s.table: _read_rows(s) for s in SOURCE_TABLES}
    emp_t, cli_t, sup_t = HR_EMPLOYEES.table, CRM_CLIENTS.table, ERP_SUPPLIERS.table
    staff = {r["employee_id"]: r for r in rows[emp_t]}
    managing = {r["manager_id"] for r in rows[emp_t] if r["manager_id"] is not None}
    referenced = (managing | {r["account_manager_id"] for r in rows[cli_t]}
                  | {r["buyer_employee_id"] for r in rows[sup_t]})
    keys = {s.table: [r[s.key] for r in rows[s.table]] for s in SOURCE_TABLES}

    # Deletes first: clients and suppliers freely, employees only when nobody points at them.
    deletable = {t: ks[:-1] for t, ks in keys.items()}
    deletable[emp_t] = [k for k in deletable[emp_t] if k not in referenced and staff[k]["manager_id"] is not None]
    pool = [(t, k) for t in (cli_t, emp_t, sup_t) for k in deletable[t]]
    gone = rng.sample(pool, min(deletes, len(pool)))
    deleted = {t: sorted(k for tt, k in gone if tt == t) for t in keys}
    gone_keys = {t: set(ks) for t, ks in deleted.items()}

    # Updates of surviving rows; employees first so clients and suppliers see the new organisation.
    pool = [(t, k) for t in (cli_t, emp_t, sup_t) for k in keys[t] if k not in gone_keys[t]]
    picked = rng.sample(pool, min(updates, len(pool)))
    updated = {t: sorted(k for tt, k in picked if tt == t) for t in keys}
    for k in gone_keys[emp_t]:
        del staff[k]
    gen = _Generator(rng, emails=[r["email"] for r in rows[emp_t]], client_names=[r["name"] for r in rows[cli_t]],
                     supplier_names=[r["name"] for r in rows[sup_t]])
    changed: dict[str, list[dict[str, Any]]] = {t: [] for t in keys}
    for k in updated[emp_t]:
        new = _change_employee(gen, staff[k], staff, referenced, managing)
        new["updated_at"] = now
        staff[k] = new
        changed[emp_t].append(new)
    current_staff = [staff[k] for k in sorted(staff)]
    managers = _account_managers(current_staff)
    by_key = {s.table: {r[s.key]: r for r in rows[s.table]} for s in SOURCE_TABLES}
    for k in updated[cli_t]:
        changed[cli_t].append({**_change_client(gen, by_key[cli_t][k], managers), "updated_at": now})
    for k in updated[sup_t]:
        changed[sup_t].append({**_change_supplier(gen, by_key[sup_t][k]), "updated_at": now})

    # Inserts: new keys above the highest ever seen (the highest key is never deleted).
    weights = [max(len(keys[t]), 1) for t in (cli_t, emp_t, sup_t)]
    targets = rng.choices((cli_t, emp_t, sup_t), weights=weights, k=inserts) if inserts else []
    new_rows: dict[str, list[dict[str, Any]]] = {t: [] for t in keys}
    next_key = {t: (ks[-1] if ks else 0) + 1 for t, ks in keys.items()}
    for t in (emp_t, cli_t, sup_t):  # employees first: new clients may be given a new account manager
        for _ in range(targets.count(t)):
            key = next_key[t]
            next_key[t] += 1
            if t == emp_t:
                department = rng.choices(DEPARTMENTS, weights=_DEPARTMENT_WEIGHTS)[0]
                title = gen.staff_title(department)
                desk = rng.choice(DESKS) if title.on_desk else None
                row = gen.employee(key, title, desk, _manager_for(staff, department, desk, key, rng),
                                   hire_by=now.date(), hire_from=now.date() - timedelta(days=21), updated_at=now)
                staff[key] = row
            elif t == cli_t:
                managers = _account_managers([staff[i] for i in sorted(staff)])
                row = gen.client(key, managers, now)
            else:
                row = gen.supplier(key, _buyers([staff[i] for i in sorted(staff)]), now)
            new_rows[t].append(row)

    for source in (HR_EMPLOYEES, CRM_CLIENTS, ERP_SUPPLIERS):
        t = source.table
        _write(source, rows=new_rows[t], updates=changed[t], deletes=deleted[t])
    return {
        "updated": updated,
        "deleted": deleted,
        "inserted": {s.table: [r[s.key] for r in new_rows[s.table]] for s in SOURCE_TABLES},
    }
