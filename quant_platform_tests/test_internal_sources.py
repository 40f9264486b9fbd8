"""Operational source databases: seeding, declared constraints, change windows, churn and determinism.

Never mock a database: every test runs on SQLite files in QP_HOME and on a fresh PostgreSQL database.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from quant_platform.errors import ConfigError
from quant_platform.internal import sources
from quant_platform.internal.sources import (
    DESKS,
    TITLES,
    churn_sources,
    count_rows,
    create_source_schema,
    read_changes,
    read_keys,
    seed_sources,
    source_engine,
    source_url,
)
from quant_platform.internal.tables import CRM_CLIENTS, ERP_SUPPLIERS, HR_EMPLOYEES, SOURCE_TABLES

URL_VARS = tuple(s.url_env for s in SOURCE_TABLES)
NOW = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)
LATER = NOW + timedelta(hours=1, microseconds=7)
SMALL = {"clients": 400, "employees": 120, "suppliers": 200, "seed": 11, "now": NOW}
BY_TABLE = {s.table: s for s in SOURCE_TABLES}


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, qp_home, monkeypatch) -> str:
    """The three sources on SQLite files under QP_HOME, or all three in one fresh PostgreSQL database."""
    for var in URL_VARS:
        monkeypatch.delenv(var, raising=False)
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_pg_database")
        for var in URL_VARS:
            monkeypatch.setenv(var, url)
    return request.param


def frames() -> dict[str, pd.DataFrame]:
    """Every row of every source, ordered by key."""
    return {s.table: read_changes(s, None, None).sort_values(s.key).reset_index(drop=True) for s in SOURCE_TABLES}


def assert_integrity(data: dict[str, pd.DataFrame]) -> None:
    emp = data["employees"].set_index("employee_id")
    ids = set(emp.index)
    managers = data["clients"]["account_manager_id"].dropna()
    assert set(managers) <= ids, "account manager missing from HR"
    assert (emp.loc[list(managers), "department"] == "trading").all()
    buyers = data["suppliers"]["buyer_employee_id"].dropna()
    assert set(buyers) <= ids, "buyer missing from HR"
    assert emp.loc[list(buyers), "department"].isin(["operations", "finance"]).all()
    assert set(emp["manager_id"].dropna()) <= ids, "manager missing from HR"
    assert emp["manager_id"].isna().sum() == 1, "exactly one top manager"
    parent = emp["manager_id"].to_dict()
    for start in ids:  # every chain reaches the top without a cycle
        node, steps = start, 0
        while not pd.isna(parent[node]):
            node, steps = int(parent[node]), steps + 1
            assert steps <= len(ids), f"manager cycle through employee {start}"


# ------------------------------------------------------------------------------------------------ URLs
def test_default_urls_are_sqlite_files_under_qp_home(qp_home, monkeypatch):
    for var in URL_VARS:
        monkeypatch.delenv(var, raising=False)
    urls = {s.system: source_url(s) for s in SOURCE_TABLES}
    assert urls == {system: f"sqlite:///{qp_home / 'sources' / f'{system}.db'}" for system in ("crm", "hr", "erp")}
    assert (qp_home / "sources").is_dir()


def test_environment_urls_are_normalised_and_checked(qp_home, monkeypatch):
    monkeypatch.setenv("QP_HR_URL", "postgresql://etl:s3cret@db.internal:5432/hr")
    assert source_url(HR_EMPLOYEES) == "postgresql+psycopg2://etl:s3cret@db.internal:5432/hr"
    monkeypatch.setenv("QP_HR_URL", "postgres://etl@db.internal/hr")
    assert source_url(HR_EMPLOYEES) == "postgresql+psycopg2://etl@db.internal/hr"
    for bad in ("mysql://etl:s3cret@db.internal/hr", "not a url at all"):
        monkeypatch.setenv("QP_HR_URL", bad)
        with pytest.raises(ConfigError, match="QP_HR_URL") as info:
            source_url(HR_EMPLOYEES)
        assert "s3cret" not in str(info.value)
    nested = qp_home / "elsewhere" / "deeper" / "erp.db"
    monkeypatch.setenv("QP_ERP_URL", f"sqlite:///{nested}")
    engine = source_engine(ERP_SUPPLIERS)
    try:
        create_source_schema(engine, ERP_SUPPLIERS)
    finally:
        engine.dispose()
    assert nested.is_file()


# ----------------------------------------------------------------------------------------- seeding
def test_seeding_defaults_gives_counts_fast(backend):
    started = time.perf_counter()
    counts = seed_sources(now=NOW)
    elapsed = time.perf_counter() - started
    assert counts == {"clients": 3000, "employees": 800, "suppliers": 1200}
    assert elapsed < 5, f"seeding the defaults took {elapsed:.1f}s on {backend}"
    for source in SOURCE_TABLES:
        assert count_rows(source) == counts[source.table]
        assert read_keys(source) == set(range(1, counts[source.table] + 1))


def test_reseeding_replaces_rows_and_default_now_is_not_in_the_future(backend):
    seed_sources(**SMALL)
    before = datetime.now(UTC)
    seed_sources(clients=50, employees=30, suppliers=40)
    after = datetime.now(UTC)
    assert [count_rows(s) for s in SOURCE_TABLES] == [50, 30, 40]
    for source in SOURCE_TABLES:
        stamps = read_changes(source, None, None)["updated_at"]
        assert stamps.max() <= after
        assert stamps.min() >= before - timedelta(days=30)


def test_schema_has_key_index_and_timezone_aware_watermark(backend):
    seed_sources(**SMALL)
    for source in SOURCE_TABLES:
        engine = source_engine(source)
        try:
            inspector = sa.inspect(engine)
            assert inspector.get_pk_constraint(source.table)["constrained_columns"] == [source.key]
            indexed = [ix["column_names"] for ix in inspector.get_indexes(source.table)]
            assert ["updated_at"] in indexed
            columns = {c["name"]: c for c in inspector.get_columns(source.table)}
            assert {n: c["nullable"] for n, c in columns.items()} == {
                c.name: c.nullable and c.name != source.key for c in source.columns}
            if backend == "postgres":
                assert columns["updated_at"]["type"].timezone is True
        finally:
            engine.dispose()
    engine = source_engine(CRM_CLIENTS)
    try:
        create_source_schema(engine, CRM_CLIENTS)  # idempotent: the table and its rows stay
        assert count_rows(CRM_CLIENTS) == SMALL["clients"]
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE clients"))
            sa.Table("clients", sa.MetaData(), sa.Column("client_id", sa.BigInteger), sa.Column("nickname", sa.Text)
                     ).create(conn)
        with pytest.raises(ConfigError, match="nickname"):
            create_source_schema(engine, CRM_CLIENTS)
    finally:
        engine.dispose()


def test_values_respect_the_declarations(backend):
    counts = seed_sources(**SMALL)
    for source in SOURCE_TABLES:
        df = read_changes(source, None, None)
        assert list(df.columns) == source.column_names
        assert len(df) == counts[source.table]
        assert df[source.key].is_unique
        for col in source.columns:
            s = df[col.name]
            if not col.nullable:
                assert s.notna().all(), f"{source.table}.{col.name} has nulls"
            if col.allowed_values:
                assert set(s.dropna()) <= set(col.allowed_values), f"{source.table}.{col.name}"
            if col.min_value is not None:
                assert (s.dropna() >= col.min_value).all(), f"{source.table}.{col.name} below minimum"
            if col.max_value is not None:
                assert (s.dropna() <= col.max_value).all(), f"{source.table}.{col.name} above maximum"
            if col.type in ("int", "bigint"):
                assert str(s.dtype) == "Int64"
            elif col.type == "date":
                assert pd.api.types.is_datetime64_dtype(s) and getattr(s.dt, "tz", None) is None
            elif col.type == "timestamptz":
                assert str(s.dt.tz) == "UTC"
            elif col.type == "text":
                assert pd.api.types.is_string_dtype(s)
        stamps = df["updated_at"]
        assert stamps.max() <= NOW, "updated_at in the future"
        assert stamps.min() >= NOW - timedelta(days=30)
        assert stamps.max() - stamps.min() > timedelta(days=25), "updated_at is not spread over the history"
    # Nullable columns really do hold some nulls, so consumers' null handling gets exercised.
    assert read_changes(CRM_CLIENTS, None, None)["credit_limit_usd"].isna().any()
    assert read_changes(HR_EMPLOYEES, None, None)["desk"].isna().any()


def test_seeded_firm_looks_like_a_commodity_trading_firm(backend):
    seed_sources(**SMALL)
    data = frames()
    emp = data["employees"]
    assert emp["email"].is_unique
    assert emp["email"].str.fullmatch(r"[a-z]+\.[a-z]+\d*@firm\.example").all()
    assert emp["phone"].dropna().str.fullmatch(r"\+(41 22|44 20|65 6|1 713|1 832)[ \d]+").all()
    dob, hired = emp["date_of_birth"].dropna(), emp["hire_date"]
    assert dob.min() >= pd.Timestamp("1960-01-01") and dob.max() <= pd.Timestamp("2000-12-31")
    assert (hired.loc[dob.index] >= dob + pd.DateOffset(years=21)).all()
    assert hired.max() < pd.Timestamp(NOW.date())
    on_desk = emp["title"].map(lambda t: TITLES[t].on_desk)
    assert emp.loc[on_desk, "desk"].isin(DESKS).all(), "traders sit on a desk"
    assert emp.loc[~on_desk, "desk"].isna().all(), "nobody else has a desk"
    assert (emp.loc[on_desk, "department"] == "trading").all()
    assert set(emp.loc[on_desk, "desk"]) == set(DESKS)
    assert (emp["manager_id"].dropna() < emp.loc[emp["manager_id"].notna(), "employee_id"]).all()
    level = emp["title"].map(lambda t: TITLES[t].level)
    medians = emp.groupby(level)["salary_usd"].median()
    assert list(medians.index) == [0, 1, 2, 3, 4]
    assert medians.is_monotonic_decreasing, "salaries follow seniority"
    for title in emp["title"].unique():
        lo, hi = TITLES[title].salary
        paid = emp.loc[emp["title"] == title, "salary_usd"]
        assert paid.between(lo - 500, hi + 500).all(), title

    clients = data["clients"]
    assert clients["name"].is_unique
    companies = clients["name"].str.contains(r" (?:AS|ASA|LLC|Inc\.|Ltd|plc|AG|SA|GmbH|B\.V\.|N\.V\.|Pte Ltd|LP)$")
    assert companies.mean() > 0.5
    assert clients["email"].dropna().str.fullmatch(r"[a-z.]+@[a-z0-9-]+\.example").all()
    assert clients["country"].str.fullmatch(r"[A-Z]{2}").all()
    assert clients["segment"].nunique() == 6

    suppliers = data["suppliers"]
    assert suppliers["category"].nunique() == 6
    ibans = suppliers["iban"].dropna()
    assert len(ibans) > len(suppliers) / 3
    assert ibans.str.fullmatch(r"[A-Z]{2}\d{2}\d{10,30}").all()
    assert (ibans.str[:2] == suppliers.loc[ibans.index, "country"]).all()
    for iban in ibans:  # ISO 13616 / ISO 7064 mod 97-10
        moved = iban[4:] + "".join(str(ord(ch) - 55) for ch in iban[:2]) + iban[2:4]
        assert int(moved) % 97 == 1, iban
    named = suppliers.dropna(subset=["contact_name"])
    local = named["contact_email"].str.split("@").str[0]
    expected = named["contact_name"].map(lambda n: ".".join(sources._slug(p) for p in n.split(" ", 1)))
    assert (local == expected).all()


# ------------------------------------------------------------------------------------------- windows
def test_read_changes_windows_partition_the_rows(backend):
    seed_sources(**SMALL)
    t1, t2, t3 = NOW - timedelta(days=20), NOW - timedelta(days=7, microseconds=-123), NOW + timedelta(seconds=1)
    for source in SOURCE_TABLES:
        first, second = read_changes(source, t1, t2), read_changes(source, t2, t3)
        both = read_changes(source, t1, t3)
        assert len(first) and len(second)
        assert first["updated_at"].between(t1, t2, inclusive="left").all()
        pd.testing.assert_frame_equal(pd.concat([first, second], ignore_index=True), both)
        head, tail = read_changes(source, None, t2), read_changes(source, t2, None)
        assert not set(head[source.key]) & set(tail[source.key])
        assert len(head) + len(tail) == count_rows(source)
        # The same instants written in another offset select the same rows (SQLite stores naive UTC text).
        zurich = timezone(timedelta(hours=1))
        pd.testing.assert_frame_equal(read_changes(source, t1.astimezone(zurich), t2.astimezone(zurich)), first)
        # A row's exact watermark belongs to the window that starts there, not to the one that ends there.
        edge = both["updated_at"].iloc[len(both) // 2].to_pydatetime()
        edge_key = both[source.key].iloc[len(both) // 2]
        assert edge_key not in set(read_changes(source, None, edge)[source.key])
        assert edge_key in set(read_changes(source, edge, None)[source.key])
    with pytest.raises(ValueError, match="timezone-aware"):
        read_changes(CRM_CLIENTS, datetime(2026, 1, 1), None)


def test_snapshot_reads_changes_counts_and_key_aggregates_together(backend):
    from quant_platform.internal.scd2 import KEY_MIX
    from quant_platform.internal.sources import read_snapshot

    seed_sources(**SMALL)
    since, until = NOW - timedelta(days=3), NOW - timedelta(days=1)
    for source in SOURCE_TABLES:
        everything = read_changes(source, None, None)
        snap = read_snapshot(source, since, until, before=until, keys=True)
        pd.testing.assert_frame_equal(snap.changes, read_changes(source, since, until))
        keys = everything[source.key].astype("int64")
        a, b = KEY_MIX
        assert (snap.rows, snap.key_sum, snap.key_mix) == (len(keys), int(keys.sum()),
                                                           int(((keys % a) * (keys % b)).sum()))
        assert snap.rows_before == int((everything["updated_at"] < until).sum())
        assert sorted(snap.keys.tolist()) == sorted(read_keys(source))
        light = read_snapshot(source, None, None, before=NOW, keys=False, changes=False)
        assert light.keys is None and light.changes.empty and light.rows == len(keys)


# --------------------------------------------------------------------------------------------- churn
def test_churn_reports_exactly_what_changed(backend):
    seed_sources(**SMALL)
    before = frames()
    report = churn_sources(updates=45, deletes=25, inserts=15, seed=3, now=LATER)
    after = frames()
    assert set(report) == {"updated", "deleted", "inserted"}
    assert sum(len(v) for v in report["updated"].values()) == 45
    assert sum(len(v) for v in report["deleted"].values()) == 25
    assert sum(len(v) for v in report["inserted"].values()) == 15
    assert all(report["updated"][t] for t in BY_TABLE), "updates are spread across the three systems"
    for table, source in BY_TABLE.items():
        old, new = before[table].set_index(source.key), after[table].set_index(source.key)
        updated, deleted = report["updated"][table], report["deleted"][table]
        inserted = report["inserted"][table]
        business = [c for c in source.column_names if c not in (source.key, "updated_at")]
        assert (new.loc[updated, "updated_at"] == LATER).all()
        for key in updated:
            assert not old.loc[key, business].equals(new.loc[key, business]), f"{table} {key} did not change"
        assert set(deleted) <= set(old.index)
        assert not set(deleted) & read_keys(source)
        assert not set(deleted) & set(updated)
        assert not set(inserted) & set(old.index)
        assert min(inserted, default=old.index.max() + 1) > old.index.max()
        assert (new.loc[inserted, "updated_at"] == LATER).all()
        untouched = sorted(set(old.index) - set(updated) - set(deleted))
        pd.testing.assert_frame_equal(new.loc[untouched], old.loc[untouched])
        assert set(new.index) == set(old.index) - set(deleted) | set(inserted)
        changed = read_changes(source, LATER, None)
        assert set(changed[source.key]) == set(updated) | set(inserted)
    assert_integrity(after)


def test_referential_integrity_holds_after_seeding_and_heavy_churn(backend):
    seed_sources(**SMALL)
    assert_integrity(frames())
    first = churn_sources(updates=120, deletes=60, inserts=30, seed=5, now=LATER)
    assert_integrity(frames())
    ever = {t: set(range(1, SMALL[t] + 1)) | set(first["inserted"][t]) for t in BY_TABLE}
    report = churn_sources(updates=200, deletes=400, inserts=30, seed=6, now=LATER + timedelta(hours=1))
    data = frames()
    assert_integrity(data)
    assert report["deleted"]["employees"], "leaf employees are deleted too"
    assert len(data["employees"]) >= 1 + 7 + len(DESKS), "the heads are never deleted"
    for table in BY_TABLE:
        assert not set(report["inserted"][table]) & ever[table], f"{table}: a key was reused"


def test_same_seed_gives_identical_frames_on_fresh_databases(qp_home, tmp_path, monkeypatch, fresh_pg_database):
    def run(pg: bool, home) -> tuple[dict, dict[str, pd.DataFrame]]:
        monkeypatch.setenv("QP_HOME", str(home))
        for var in URL_VARS:
            if pg:
                monkeypatch.setenv(var, fresh_pg_database)
            else:
                monkeypatch.delenv(var, raising=False)
        seed_sources(**SMALL)
        report = churn_sources(updates=30, deletes=10, inserts=10, seed=9, now=LATER)
        return report, frames()

    first = run(False, tmp_path / "a")
    for other in (run(False, tmp_path / "b"), run(True, tmp_path / "c")):
        assert other[0] == first[0]
        for table in BY_TABLE:
            pd.testing.assert_frame_equal(other[1][table], first[1][table])
    monkeypatch.setenv("QP_HOME", str(tmp_path / "d"))
    for var in URL_VARS:
        monkeypatch.delenv(var, raising=False)
    seed_sources(**{**SMALL, "seed": 12})
    assert not frames()["employees"].equals(first[1]["employees"])


def test_seeding_refuses_too_small_a_firm(qp_home):
    with pytest.raises(ValueError, match="employees"):
        seed_sources(employees=5, now=NOW)
    assert not (qp_home / "sources").exists(), "nothing is written before the arguments are checked"
