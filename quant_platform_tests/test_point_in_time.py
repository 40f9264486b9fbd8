"""Point in time: available_at is the platform's first sight of a file, a revision keeps what was known before,
and the marts never look ahead (DuckDB and PostgreSQL).

Never compare with numbers this test made up where the real file has them: the revisions change real rows.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd
import pytest

from quant_platform_tests.conftest import REPO_ROOT, SAMPLE_DATA
from quant_platform_tests.release_helpers import check_results, evaluate_sensor, execute_requests

WPSR_FILE = SAMPLE_DATA / "eia" / "wpsr_table1_2026-05-01.csv"
LEGACY_FILE = SAMPLE_DATA / "cftc" / "legacy_futures_only_2025_energy.txt"
LEGACY_RANGE_TAGS = {"dagster/asset_partition_range_start": "2025-01-07",
                     "dagster/asset_partition_range_end": "2025-03-18"}
WTI = "067651"
# The one line an analyst runs: every row of the table as the platform knew it at :t.
AS_KNOWN_AT = ("SELECT * FROM macro.eia_wpsr_versions WHERE valid_from <= :t "
               "AND (superseded_at IS NULL OR superseded_at > :t)")


def _defs():
    from quant_platform.definitions import defs

    return defs


def _level(frame: pd.DataFrame, key: str) -> float:
    row = frame[(frame.series_key == key) & (frame.measure == "level")]
    assert len(row) == 1, row
    return float(row["value"].iloc[0])


def test_a_revised_wpsr_week_stays_queryable_as_known_before(simulator, warehouse, instance):
    defs = _defs()
    real = WPSR_FILE.read_bytes()
    week = date(2026, 4, 24)

    reqs, cursor, _ = evaluate_sensor(defs, "eia_wpsr_release_sensor", instance, None)
    first_seen = pd.Timestamp(reqs[0].tags["qp/first_seen_at"])
    assert execute_requests(defs, instance, reqs)[0].success
    loaded = warehouse.query_df("SELECT * FROM macro.eia_wpsr WHERE week_ending = :w", {"w": week})
    assert len(loaded) == 540
    # available_at is the sensor's first sight of the file; the scheduled release (Wed 2026-04-29 10:30 New York)
    # is kept beside it; valid_from starts the version.
    assert set(pd.to_datetime(loaded["available_at"], utc=True)) == {first_seen}
    assert set(pd.to_datetime(loaded["scheduled_release_at"], utc=True)) == {pd.Timestamp("2026-04-29 14:30",
                                                                                        tz="UTC")}
    assert set(pd.to_datetime(loaded["valid_from"], utc=True)) == {first_seen}
    between = datetime.now(UTC)

    # EIA revises the week: commercial stocks and, consistently, total crude (commercial + SPR = total).
    revised = real.replace(b'"459.495"', b'"459.501"', 1).replace(b'"857.419"', b'"857.425"', 1)
    simulator.publish("/wpsr/table1.csv", revised)
    reqs, cursor, _ = evaluate_sensor(defs, "eia_wpsr_release_sensor", instance, cursor)
    assert [r.partition_key for r in reqs] == ["2026-04-24"]
    revision_seen = pd.Timestamp(reqs[0].tags["qp/first_seen_at"])
    result = execute_requests(defs, instance, reqs)[0]
    assert result.success and all(check_results(result).values()), check_results(result)
    meta = result.asset_materializations_for_node("macro__eia_wpsr")[0].metadata
    assert (meta["rows_revised"].value, meta["rows_dropped"].value, meta["rows_unchanged"].value) == (2, 0, 538)

    # The table is current; the two replaced rows are in the history, superseded when the revision was seen.
    current = warehouse.query_df("SELECT * FROM macro.eia_wpsr WHERE week_ending = :w", {"w": week})
    assert len(current) == 540
    assert _level(current, "stocks.commercial_excluding_spr") == 459.501
    assert _level(current, "stocks.crude_oil") == 857.425
    history = warehouse.query_df("SELECT series_key, value, valid_from, superseded_at FROM macro.eia_wpsr_history")
    assert sorted(zip(history.series_key, history.value, strict=True)) == [
        ("stocks.commercial_excluding_spr", 459.495), ("stocks.crude_oil", 857.419)]
    assert set(pd.to_datetime(history["superseded_at"], utc=True)) == {revision_seen}
    unchanged = current[current.series_key == "stocks.strategic_petroleum_reserve_spr"]
    assert set(pd.to_datetime(unchanged["valid_from"], utc=True)) == {first_seen}  # carried over, same version

    # As known at a time between the two files: the first release, whole; after the revision: the revised one.
    before = warehouse.query_df(AS_KNOWN_AT, {"t": between})
    assert len(before) == 540
    assert _level(before, "stocks.commercial_excluding_spr") == 459.495
    assert _level(before, "stocks.crude_oil") == 857.419
    after = warehouse.query_df(AS_KNOWN_AT, {"t": datetime.now(UTC)})
    assert len(after) == 540 and _level(after, "stocks.commercial_excluding_spr") == 459.501
    assert warehouse.query_df(AS_KNOWN_AT, {"t": first_seen - pd.Timedelta(seconds=1)}).empty

    # The README's one line, as an analyst types it (a literal time), on this backend.
    readme = next(line.strip() for line in (REPO_ROOT / "README.md").read_text().splitlines()
                  if line.strip().startswith("SELECT * FROM macro.eia_wpsr_versions WHERE valid_from <="))
    typed = readme.replace("2026-04-29 15:00:00+00", f"{between:%Y-%m-%d %H:%M:%S.%f}+00").rstrip(";")
    assert _level(warehouse.query_df(typed), "stocks.commercial_excluding_spr") == 459.495


def test_revise_drops_and_orders_versions():
    """A key the new file no longer has is superseded, not lost; a file older than the current version (loaded
    out of order) starts its version just after the one it replaces, so versions never overlap."""
    from quant_platform.macro.loading import revise
    from quant_platform.macro.reports.eia_series.table import TABLE

    t1, t0 = pd.Timestamp("2026-05-06 15:00", tz="UTC"), pd.Timestamp("2026-05-06 14:00", tz="UTC")

    def rows(values: dict[str, float], seen: pd.Timestamp, sha: str) -> pd.DataFrame:
        return pd.DataFrame({
            "series_id": "WCESTUS1", "period": [date.fromisoformat(p) for p in values], "value": list(values.values()),
            "unit": "thousand barrels", "frequency": "W", "series_name": "stocks", "source": "dnav",
            "source_sha256": sha, "loaded_at": seen, "available_at": seen, "scheduled_release_at": pd.NaT,
            "valid_from": seen})

    current = rows({"2026-04-24": 459495.0, "2026-05-01": 460000.0}, t1, "a")
    written, superseded = revise(TABLE, current, rows({"2026-04-24": 459495.0, "2026-05-01": 461000.0}, t0, "b")
                                 .iloc[[1]])
    assert written["value"].tolist() == [461000.0]
    assert pd.Timestamp(written["valid_from"].iloc[0]) == t1 + pd.Timedelta(microseconds=1)
    assert pd.Timestamp(written["available_at"].iloc[0]) == t0  # the file's own first sight stays
    by_period = superseded.set_index(pd.to_datetime(superseded["period"]).dt.strftime("%Y-%m-%d"))
    assert by_period.loc["2026-05-01", "value"] == 460000.0
    assert by_period.loc["2026-04-24", "value"] == 459495.0  # dropped by the new file: kept as superseded
    assert (pd.to_datetime(by_period["superseded_at"], utc=True) > t1).all()


def _legacy_weekly_file(as_of: str, wti_shift: int) -> bytes:
    """The CFTC's header-less weekly file of one week, cut from the real yearly file, with WTI's non-commercial
    longs revised by `wti_shift` contracts and commercial longs by the opposite (open interest unchanged)."""
    text = LEGACY_FILE.read_text(encoding="latin-1")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader)]
    at = {name: header.index(name) for name in ("As of Date in Form YYYY-MM-DD", "CFTC Contract Market Code",
                                                 "Noncommercial Positions-Long (All)",
                                                 "Commercial Positions-Long (All)")}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in reader:
        if row and row[at["As of Date in Form YYYY-MM-DD"]].strip() == as_of:
            if row[at["CFTC Contract Market Code"]].strip() == WTI:
                row[at["Noncommercial Positions-Long (All)"]] = str(
                    int(row[at["Noncommercial Positions-Long (All)"]]) + wti_shift)
                row[at["Commercial Positions-Long (All)"]] = str(
                    int(row[at["Commercial Positions-Long (All)"]]) - wti_shift)
            writer.writerow(row)
    return out.getvalue().encode("latin-1")


def _wti_noncommercial(warehouse) -> pd.DataFrame:
    pos = warehouse.query_df("SELECT as_of, net_contracts, net_change_wow, net_zscore_3y, available_at "
                             "FROM marts.cot_positioning WHERE contract_code = :c AND trader_group = :g "
                             "ORDER BY as_of", {"c": WTI, "g": "non_commercial"})
    pos["as_of"] = pd.to_datetime(pos["as_of"]).dt.strftime("%Y-%m-%d")
    return pos.set_index("as_of")


def test_cot_zscores_do_not_see_a_revision_loaded_later(simulator, warehouse, instance, monkeypatch):
    import quant_platform.marts.assets as marts

    monkeypatch.setattr(marts, "ZSCORE_MIN_WEEKS", 4)  # the real quarter has 11 weeks; a z-score from week 4 on
    defs = _defs()
    mart_job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(["marts", "cot_positioning"])})
    assert defs.resolve_job_def("cftc_cot_legacy_job").execute_in_process(instance=instance,
                                                                          tags=LEGACY_RANGE_TAGS).success
    assert mart_job.execute_in_process(instance=instance).success
    known_then = _wti_noncommercial(warehouse)
    assert known_then["net_zscore_3y"].notna().sum() == 11 - 3

    # The CFTC revises the week of 2025-01-28 (4th of the quarter) after the whole quarter was loaded.
    simulator.publish("/dea/newcot/deafut.txt", _legacy_weekly_file("2025-01-28", wti_shift=40_000))
    reqs, _, _ = evaluate_sensor(defs, "cftc_cot_release_sensor", instance, None)
    legacy = [r for r in reqs if r.job_name == "cftc_cot_legacy_job"]
    assert [r.partition_key for r in legacy] == ["2025-01-28"]
    result = execute_requests(defs, instance, legacy)[0]
    assert result.success and all(check_results(result).values()), check_results(result)
    assert mart_job.execute_in_process(instance=instance).success
    now = _wti_noncommercial(warehouse)

    # The revised week shows its revised net position, as of the revision's first sight...
    assert now.at["2025-01-28", "net_contracts"] == known_then.at["2025-01-28", "net_contracts"] + 40_000
    assert now.at["2025-01-28", "available_at"] > known_then.at["2025-03-18", "available_at"]
    assert now.at["2025-01-28", "net_zscore_3y"] != known_then.at["2025-01-28", "net_zscore_3y"]
    # ...and every later week keeps the change and z-score computed from what was known at its own time.
    later = known_then.index > "2025-01-28"
    pd.testing.assert_frame_equal(now.loc[later], known_then.loc[later])
    # Not a vacuous equality: from today's numbers, the later z-scores and the next week's change would differ.
    current = warehouse.query_df("SELECT as_of, noncomm_long - noncomm_short AS net FROM macro.cftc_cot_legacy "
                                 "WHERE contract_code = :c ORDER BY as_of", {"c": WTI})["net"].astype(float)
    naive = ((current - current.rolling(156, min_periods=4).mean()) / current.rolling(156, min_periods=4).std())
    assert round(naive.iloc[-1], 4) != known_then["net_zscore_3y"].iloc[-1]
    assert now.at["2025-02-04", "net_change_wow"] == known_then.at["2025-02-04", "net_change_wow"]


@pytest.mark.parametrize("report", ["eia_wpsr", "cftc_cot_legacy"])
def test_warehouse_init_adds_the_point_in_time_columns_to_an_older_table(report, warehouse_url, qp_home):
    """A table created by the release before point in time gets available_at, scheduled_release_at and valid_from
    (old rows take loaded_at, or for COT their scheduled available_at), its history table and its view."""
    from quant_platform.cli import init_warehouse
    from quant_platform.macro.registry import report_module
    from quant_platform.platform.tables import TableSpec
    from quant_platform.platform.warehouse import Warehouse

    spec = report_module(report, "table").TABLE
    new = {"scheduled_release_at", "valid_from"} | ({"available_at"} if report == "eia_wpsr" else set())
    old = TableSpec(spec.schema, spec.name, spec.description, tuple(c for c in spec.columns if c.name not in new),
                    spec.primary_key, spec.partition_column)
    wh = Warehouse(warehouse_url)
    try:
        wh.execute("CREATE SCHEMA IF NOT EXISTS macro")
        wh.execute(old.ddl())
        cols = {c.name: c for c in old.columns}
        row = {name: (date(2025, 1, 28) if c.type == "date" else pd.Timestamp("2025-01-31 20:30", tz="UTC")
                      if c.type == "timestamptz" else 1 if c.type in ("int", "bigint") else 1.0
                      if c.type == "double" else False if c.type == "bool" else
                      (c.allowed_values[0] if c.allowed_values else "x")) for name, c in cols.items()}
        row["loaded_at"] = pd.Timestamp("2025-02-01 09:00", tz="UTC")
        wh.append_rows(old, pd.DataFrame([row]))
        _, _, added = init_warehouse(warehouse_url)
        assert {f"{spec.qualified_name}.{c}" for c in new} <= set(added)
        got = wh.query_df(f"SELECT available_at, valid_from, scheduled_release_at FROM {spec.versions_view}")  # noqa: S608
        expected = row["available_at"] if "available_at" in row else row["loaded_at"]
        assert pd.Timestamp(got["available_at"].iloc[0]) == pd.Timestamp(got["valid_from"].iloc[0]) == expected
        assert got["scheduled_release_at"].isna().all()
        assert wh.scalar(f"SELECT count(*) FROM {spec.history_spec().qualified_name}") == 0  # noqa: S608
    finally:
        wh.dispose()
