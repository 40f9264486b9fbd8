"""The warehouse's statements on both real backends: named parameters compiled into each driver's own style.

Never build SQL from values here either: every value below travels as a bound parameter.
"""

from __future__ import annotations

from datetime import date

import pytest

from quant_platform.errors import WarehouseError


def test_literal_question_marks_and_percents_survive_binding(warehouse):
    # A literal `?` or `%` in SQL text used to be rewritten into a placeholder on PostgreSQL.
    row = warehouse.query_df(
        "SELECT '50% done?' AS lit, CAST(:n AS INTEGER) + 1 AS n, :s AS s, 'a%b' LIKE 'a%' AS liked",
        {"n": 41, "s": "what? 100%"})
    assert row.to_dict("records") == [{"lit": "50% done?", "n": 42, "s": "what? 100%", "liked": True}]


def test_a_list_expands_into_one_placeholder_per_value_and_a_name_binds_twice(warehouse):
    warehouse.execute("CREATE TABLE governance.qp_bind_probe (d DATE, k TEXT)")
    for day, key in [(date(2026, 1, 1), "a"), (date(2026, 1, 2), "b"), (date(2026, 1, 3), "c")]:
        warehouse.execute("INSERT INTO governance.qp_bind_probe VALUES (:d, :k)", {"d": day, "k": key})
    got = warehouse.query_df(
        "SELECT k FROM governance.qp_bind_probe WHERE k IN :keys AND d >= :since AND d <> :since ORDER BY k",
        {"keys": ["a", "b", "c"], "since": date(2026, 1, 1)})
    assert got["k"].tolist() == ["b", "c"]
    # An injection attempt stays a value.
    assert warehouse.scalar("SELECT count(*) FROM governance.qp_bind_probe WHERE k = :k",
                            {"k": "a' OR '1'='1"}) == 0


def test_statements_in_one_transaction_roll_back_together(warehouse):
    warehouse.execute("CREATE TABLE governance.qp_tx_probe (k INTEGER PRIMARY KEY)")
    with pytest.raises(Exception, match="(?i)duplicate|unique|primary key"):
        with warehouse.transaction() as con:
            warehouse.run(con, "INSERT INTO governance.qp_tx_probe VALUES (:k)", {"k": 1})
            warehouse.run(con, "INSERT INTO governance.qp_tx_probe VALUES (:k)", {"k": 1})
    assert warehouse.scalar("SELECT count(*) FROM governance.qp_tx_probe") == 0


def test_errors_are_one_line_warehouse_errors(warehouse):
    with pytest.raises(WarehouseError) as info:
        warehouse.query_df("SELECT * FROM macro.no_such_table WHERE x = :x", {"x": 1})
    assert "\n" not in str(info.value) and "no_such_table" in str(info.value)


def test_init_adds_a_column_an_older_release_lacked_and_backfills_it(warehouse, warehouse_url):
    from datetime import UTC, datetime

    from quant_platform.cli import init_warehouse

    # A warehouse created before governance.raw_files had loaded_at, holding one indexed file.
    warehouse.execute("ALTER TABLE governance.raw_files DROP COLUMN loaded_at")
    fetched = datetime(2026, 4, 29, 14, 31, tzinfo=UTC)
    warehouse.execute(
        "INSERT INTO governance.raw_files (vendor, dataset, partition_key, sha256, lake_path, size_bytes, url, "
        "fetched_at, revision) VALUES ('eia', 'wpsr_table1', '2026-04-24', :sha, 'raw/x', 1, 'u', :at, 1)",
        {"sha": "ab" * 32, "at": fetched})
    _, _, added = init_warehouse(warehouse_url)
    assert added == ["governance.raw_files.loaded_at"]
    loaded = warehouse.scalar("SELECT loaded_at FROM governance.raw_files")
    assert str(loaded)[:16] == "2026-04-29 14:31"  # backfilled from fetched_at
    with pytest.raises(WarehouseError, match="(?i)null"):  # and NOT NULL, as declared
        warehouse.execute(
            "INSERT INTO governance.raw_files (vendor, dataset, partition_key, sha256, lake_path, size_bytes, "
            "url, fetched_at, revision) VALUES ('eia', 'w', 'p', 'cd', 'raw/y', 1, 'u', :at, 1)", {"at": fetched})
    # A second init finds nothing to add.
    assert init_warehouse(warehouse_url)[2] == []


def test_bulk_writes_keep_null_empty_and_backslash_n_apart(warehouse):
    # COPY's old text marker for NULL was an unquoted \N: a real text value "\N" loaded as NULL.
    from datetime import UTC, datetime

    import pandas as pd

    from quant_platform.governance.tables import RAW_FILES

    at = datetime(2026, 4, 29, 14, 31, tzinfo=UTC)
    rows = pd.DataFrame([{
        "vendor": "eia", "dataset": "wpsr_table1", "partition_key": p, "sha256": p * 8, "lake_path": "raw/x",
        "size_bytes": 1, "url": "u", "etag": etag, "last_modified": None, "fetched_at": at,
        "scheduled_release_at": None, "revision": 1, "loaded_at": at,
    } for p, etag in [("a", "\\N"), ("b", ""), ("c", None), ("d", 'quote " and, comma')]])
    warehouse.append_rows(RAW_FILES, rows[RAW_FILES.column_names])
    got = warehouse.query_df("SELECT partition_key, etag, last_modified FROM governance.raw_files ORDER BY 1")
    etags = [None if pd.isna(v) else v for v in got["etag"]]
    assert etags == ["\\N", "", None, 'quote " and, comma']
    assert got["last_modified"].isna().all()
