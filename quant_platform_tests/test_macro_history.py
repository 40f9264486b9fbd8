"""History backfills (issue 12, "Must show"): a range of weeks served by the simulator from real history files lands
completely, a rerun of the same files is a no-op, and a week the vendor never published is reported, not retried.

Never compare a loaded value with one the platform computed: expected values are read from the real files here.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta

import dagster as dg
import pytest
import xlrd

from quant_platform.cli import main
from quant_platform_tests.conftest import REPO_ROOT, SAMPLE_DATA

PSW01 = SAMPLE_DATA / "eia" / "wpsr" / "psw01_2026-02-11.xls"
LEGACY_FO_2026 = SAMPLE_DATA / "cftc" / "legacy_futures_and_options_2026_energy.txt"
DISAGG_2021 = SAMPLE_DATA / "cftc" / "disaggregated_futures_only_2021_energy.txt"


@pytest.fixture
def duck(qp_home, monkeypatch):
    """A DuckDB warehouse with the packaged DDL (the PostgreSQL path is the same publish_partition)."""
    from quant_platform.platform.warehouse import Warehouse

    url = f"duckdb:///{qp_home / 'warehouse.duckdb'}"
    monkeypatch.setenv("QP_WAREHOUSE_URL", url)
    wh = Warehouse(url)
    wh.apply_sql_dir(REPO_ROOT / "quant_platform" / "sql")
    yield wh
    wh.dispose()


def _xls_weekly(path, sheets=("Data 1", "Data 2")) -> dict[tuple[str, str], float]:
    """{(week, series id): value} of a WPSR workbook's weekly sheets, read cell by cell with xlrd."""
    book = xlrd.open_workbook(str(path))
    out = {}
    for name in sheets:
        sheet = book.sheet_by_name(name)
        ids = sheet.row_values(1)
        for r in range(3, sheet.nrows):
            day = xlrd.xldate_as_datetime(sheet.cell_value(r, 0), book.datemode).date().isoformat()
            for c in range(1, sheet.ncols):
                if sheet.cell_type(r, c) == xlrd.XL_CELL_NUMBER:
                    out[(day, ids[c])] = sheet.cell_value(r, c)
    return out


def test_a_range_of_wpsr_history_weeks_lands_completely_and_a_rerun_is_a_no_op(simulator, duck, qp_home, capsys):
    expected = _xls_weekly(PSW01)
    newest = max(day for day, _ in expected)
    weeks = [(date.fromisoformat(newest) - timedelta(days=7 * n)).isoformat() for n in range(12, -2, -1)]
    assert newest == "2026-02-06" and weeks[-1] == "2026-02-13"  # one week past the workbook's newest

    assert main(["backfill", "macro/eia_wpsr_tables", weeks[0], weeks[-1]]) == 0
    out = capsys.readouterr().out
    assert f"macro/eia_wpsr_tables {weeks[0]}..{weeks[-1]}: ok (14 partitions" in out
    assert ("1 of 14 partitions vendor_missing (never published by the vendor; recorded, left empty, not retried): "
            "2026-02-13 (1): not published yet: the newest week in psw01.xls is 2026-02-06") in out
    loaded = duck.query_df("SELECT week_ending, series_id, value, source_sha256 FROM macro.eia_wpsr_tables "
                           "WHERE frequency = 'W'")
    got = {(str(w)[:10], s): v for w, s, v, _ in loaded.itertuples(index=False)}
    want = {k: v for k, v in expected.items() if weeks[0] <= k[0] <= weeks[-1]}
    assert got == want and len(got) == 13 * 56  # every weekly value of 13 weeks (19 stock + 37 supply series)
    assert got[(newest, "WCESTUS1")] == 428829.0 and got[(newest, "WCRSTUS1")] == 844041.0

    # The same files again: the same rows, the same lineage, no new raw revision.
    raw_before = duck.query_df("SELECT sha256, revision FROM governance.raw_files ORDER BY 1")
    lake_before = sorted(p.name for p in (qp_home / "lake" / "raw").rglob("*.xls"))
    assert main(["backfill", "macro/eia_wpsr_tables", weeks[0], weeks[-1]]) == 0
    again = duck.query_df("SELECT week_ending, series_id, value, source_sha256 FROM macro.eia_wpsr_tables "
                          "WHERE frequency = 'W'")
    assert sorted(map(tuple, again.values.tolist())) == sorted(map(tuple, loaded.values.tolist()))
    assert duck.query_df("SELECT sha256, revision FROM governance.raw_files ORDER BY 1").equals(raw_before)
    assert sorted(p.name for p in (qp_home / "lake" / "raw").rglob("*.xls")) == lake_before

    # Each backfill was one run over all 14 weeks; the missing week is recorded on its partition and counts as
    # done, so a "missing partitions" backfill never asks for it again.
    key = dg.AssetKey(["macro", "eia_wpsr_tables"])
    with dg.DagsterInstance.from_config(str(qp_home / "dagster")) as inst:
        assert len(inst.get_runs()) == 2
        assert set(weeks) <= inst.get_materialized_partitions(key)
        mats = [r.asset_materialization for r in inst.fetch_materializations(key, limit=200).records]
        flagged = {m.partition: m.metadata["vendor_missing"].value for m in mats if "vendor_missing" in m.metadata}
        assert flagged == {"2026-02-13": "not published yet: the newest week in psw01.xls is 2026-02-06"}
        assert {m.metadata["partitions_vendor_missing"].value for m in mats} == {1}


def _ngs_lower_48(sheet_name: str) -> dict[str, float]:
    book = xlrd.open_workbook(str(SAMPLE_DATA / "eia" / "ngs" / "ngshistory_2021-11-10.xls"))
    sheet = book.sheet_by_name(sheet_name)
    col = sheet.row_values(6).index("Total Lower 48")
    return {xlrd.xldate_as_datetime(sheet.cell_value(r, 0), book.datemode).date().isoformat(): sheet.cell_value(r, col)
            for r in range(7, sheet.nrows) if sheet.cell_type(r, col) == xlrd.XL_CELL_NUMBER}


def test_gas_storage_history_lands_from_the_real_workbook(simulator, duck, capsys):
    levels, changes = _ngs_lower_48("html_report_history"), _ngs_lower_48("weekly_net_changes")
    assert main(["backfill", "macro/eia_gas_storage", "2009-12-25", "2011-01-07"]) == 1  # not a partition
    assert "is not a partition of macro/eia_gas_storage (first 2010-01-01" in capsys.readouterr().err
    assert main(["backfill", "macro/eia_gas_storage", "2010-01-01", "2011-01-07"]) == 0
    rows = duck.query_df("SELECT week_ending, measure, value FROM macro.eia_gas_storage WHERE region = 'Lower 48'")
    got = {(str(w)[:10], m): v for w, m, v in rows.itertuples(index=False)}
    weeks = sorted(k for k in levels if k <= "2011-01-07")
    assert len(weeks) == 54 and weeks[0] == "2010-01-01"
    assert got == {**{(w, "working_gas"): levels[w] for w in weeks},
                   **{(w, "net_change"): changes[w] for w in weeks if w in changes}}
    assert (weeks[0], "net_change") not in got  # the first week has no change in the file


def test_cot_history_a_year_the_cftc_does_not_serve_and_a_week_not_yet_published_are_reported(simulator, duck,
                                                                                               capsys):
    with LEGACY_FO_2026.open(newline="", encoding="latin-1") as f:
        rows = list(csv.DictReader(f))
    want = {(r["As of Date in Form YYYY-MM-DD"], r["CFTC Contract Market Code"].strip()): int(r["Open Interest (All)"])
            for r in rows}
    assert main(["backfill", "macro/cftc_cot_legacy_combined", "2025-12-23", "2026-03-10"]) == 0
    out = capsys.readouterr().out
    assert "3 of 12 partitions vendor_missing" in out
    assert "2025-12-23..2025-12-30 (2): no CFTC history file for 2025" in out  # deahistfo2025.zip: HTTP 404
    assert "2026-03-10 (1): not published yet: the newest week in deahistfo2026.zip is 2026-03-03" in out
    got = duck.query_df("SELECT as_of, contract_code, open_interest FROM macro.cftc_cot_legacy_combined")
    assert {(str(a)[:10], c): v for a, c, v in got.itertuples(index=False)} == want
    assert len(want) == 54


def test_years_up_to_2016_come_from_the_multi_year_history_zip_read_once(simulator, duck, capsys):
    # No public copy of F_Disagg06_16.txt exists (SOURCES.md): the real 2021 yearly rows, zipped under a member name,
    # stand in for its bytes (a deterministic zip of a real file). What is tested is the route (one request covers
    # 2015 and 2016) and the member check; the 2021 rows are no week of the range, so each week is vendor_missing.
    from quant_platform.vendors.cftc import deterministic_zip

    path = "/files/dea/history/fut_disagg_txt_hist_2006_2016.zip"
    stamp = (2017, 1, 6, 15, 30, 0)
    simulator.publish(path, deterministic_zip("f_year.txt", DISAGG_2021.read_bytes(), stamp),
                      content_type="application/zip")
    assert main(["backfill", "macro/cftc_cot_disaggregated", "2015-12-22", "2016-01-05"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "zip holds ['f_year.txt'], expected ['F_Disagg06_16.txt']" in out  # another report's

    simulator.publish(path, deterministic_zip("F_Disagg06_16.txt", DISAGG_2021.read_bytes(), stamp),
                      content_type="application/zip")
    assert main(["backfill", "macro/cftc_cot_disaggregated", "2015-12-22", "2016-01-05", "--refetch"]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 partitions vendor_missing" in out and "before the first week in fut_disagg_txt_hist_2006_2016.zip" \
        in out
    assert [r["path"] for r in simulator.requests_seen("/files/dea/history/")] == [path, path]  # once per run
    assert int(duck.scalar("SELECT count(*) FROM macro.cftc_cot_disaggregated")) == 0


def test_why_a_cot_week_is_missing():
    from quant_platform.macro.cftc.cot import _missing_reasons

    spans = [("deacot2025.zip", (2025, 2025), date(2025, 1, 7), date(2025, 12, 30))]
    reasons = _missing_reasons(["2025-11-11", "2025-10-14", "2024-12-31", "2026-01-06"], spans, [date(2025, 11, 10)])
    assert reasons["2025-11-11"].startswith("the CFTC's report that week is as of 2025-11-10 (a Monday)")
    assert reasons["2025-10-14"] == "the CFTC published no report as of this Tuesday"
    assert reasons["2024-12-31"].startswith("no CFTC history file for 2024")
    assert reasons["2026-01-06"].startswith("no CFTC history file for 2026")


def test_history_reports_load_a_range_in_one_run():
    from quant_platform.macro.registry import registered_reports

    single = {r.report_id for r in registered_reports() if r.backfill_policy == dg.BackfillPolicy.single_run()}
    assert {"eia_wpsr_tables", "eia_gas_storage", "cftc_cot_disaggregated", "cftc_cot_legacy",
            "cftc_cot_disaggregated_combined", "cftc_cot_legacy_combined"} <= single
    starts = {r.report_id: r.partitions_def.get_first_partition_key() for r in registered_reports()
              if r.report_id.startswith(("cftc", "eia_wpsr_tables", "eia_gas"))}
    assert starts == {"cftc_cot_disaggregated": "2006-06-13", "cftc_cot_legacy": "1986-01-07",
                      "cftc_cot_disaggregated_combined": "2006-06-13", "cftc_cot_legacy_combined": "1995-01-03",
                      "eia_wpsr_tables": "1982-08-20", "eia_gas_storage": "2010-01-01"}


def test_bench_backfill_smoke(tmp_path):
    from quant_platform.bench.backfill import REPORTS, run_backfill_benchmark
    from quant_platform.platform.warehouse import Warehouse

    out = run_backfill_benchmark(weeks=1, workdir=str(tmp_path / "b"), keep=True)
    assert list(out["reports"]) == list(REPORTS) and all(r["success"] for r in out["reports"].values())
    wpsr = out["reports"]["eia_wpsr_tables"]
    assert (wpsr["partitions"], wpsr["partitions_loaded"], wpsr["last_week"]) == (1, 1, "2026-02-06")
    assert wpsr["rows"] == wpsr["baseline_rows"] == 93  # the parse alone yields the rows the backfill wrote
    wh = Warehouse(f"duckdb:///{tmp_path / 'b' / 'warehouse.duckdb'}")
    try:
        assert int(wh.scalar("SELECT count(*) FROM macro.eia_wpsr_tables")) == out["total"]["rows"] == 93
    finally:
        wh.dispose()
    assert out["total"]["partitions"] == 4 and out["total"]["rows_per_s"] > 0


def test_first_start_history_ends_at_the_newest_week_the_vendor_serves():
    from datetime import UTC, datetime

    from quant_platform.first_start import ranges

    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    got = ranges(now, 1, {"macro/eia_wpsr_tables": "2026-02-06", "macro/cftc_cot_legacy": "2025-03-18",
                          "macro/eia_gas_storage": "2030-01-04"})
    assert got == [("macro/eia_wpsr_tables", "2025-02-14", "2026-02-06"),  # 52 weeks to the workbook's newest
                   ("macro/cftc_cot_legacy", "2024-03-26", "2025-03-18"),
                   # never past the newest scheduled release: 2026-11-27's is Thursday 10:30, still ahead at 07:00 ET
                   ("macro/eia_gas_storage", "2025-11-28", "2026-11-20")]
    assert ranges(now, 3)[0] == ("macro/eia_wpsr_tables", "2023-12-08", "2026-11-27")


def test_first_start_loads_a_year_of_each_history_report_up_to_the_newest_served_week(simulator, duck, qp_home,
                                                                                    monkeypatch, capsys):
    """What `up` starts in the background on its first start (quant_platform.first_start), run to its end: every
    history report served is backfilled up to its newest served week, then the marker says it is done."""
    from datetime import UTC, datetime

    from quant_platform import first_start

    monkeypatch.setenv(first_start.YEARS_ENV, "1")
    assert first_start.main() == 0
    out = capsys.readouterr().out
    assert (qp_home / first_start.MARKER).is_file() and "first-start history: done" in out
    for asset, first, last in first_start.ranges(datetime.now(UTC), 1, first_start.newest_served()):
        assert f"{asset} {first}..{last}: ok (" in out, (asset, out[-2000:])
    # The WPSR workbook's weeks within the year up to its newest week (2026-02-06), read with xlrd here.
    weeks = {day for day, _ in _xls_weekly(PSW01) if "2025-02-14" <= day <= "2026-02-06"}
    assert len(weeks) == 52
    loaded = {str(d) for (d,) in duck.query_df("SELECT DISTINCT week_ending FROM macro.eia_wpsr_tables")
              .astype(str).itertuples(index=False)}
    assert {w[:10] for w in loaded} == weeks
    # The others loaded too, each within its own year.
    for table in ("cftc_cot_legacy", "cftc_cot_disaggregated", "eia_gas_storage"):
        assert int(duck.scalar(f"SELECT count(*) FROM macro.{table}")) > 0, table  # noqa: S608 - constant names
