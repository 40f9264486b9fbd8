"""The reports added through the registry (every WPSR table, gas storage, daily spot prices, COT futures and options
combined) wired end to end on the real vendor files, and how the platform respects the vendors (429, User-Agent).

Never compare a loaded value with one the platform computed: each expected value is read from the real file here.
"""

from __future__ import annotations

import csv
import hashlib
import threading
import time
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import xlrd

from quant_platform.errors import VendorError
from quant_platform.platform.vendor_http import VendorClient, retry_after_seconds, user_agent
from quant_platform_tests.conftest import REPO_ROOT, SAMPLE_DATA
from quant_platform_tests.release_helpers import check_results, evaluate_sensor, execute_requests

WPSR_TABLE1 = "/wpsr/table1.csv"
PSW01 = SAMPLE_DATA / "eia" / "wpsr" / "psw01_2026-02-11.xls"
NGS = SAMPLE_DATA / "eia" / "ngs" / "ngshistory_2021-11-10.xls"
LEGACY_FO_2026 = SAMPLE_DATA / "cftc" / "legacy_futures_and_options_2026_energy.txt"
DISAGG_2021 = SAMPLE_DATA / "cftc" / "disaggregated_futures_only_2021_energy.txt"


@pytest.fixture
def duck(qp_home, monkeypatch):
    """A DuckDB warehouse with the packaged DDL (publish_partition is the same on PostgreSQL)."""
    from quant_platform.platform.warehouse import Warehouse

    url = f"duckdb:///{qp_home / 'warehouse.duckdb'}"
    monkeypatch.setenv("QP_WAREHOUSE_URL", url)
    wh = Warehouse(url)
    wh.apply_sql_dir(REPO_ROOT / "quant_platform" / "sql")
    yield wh
    wh.dispose()


@pytest.fixture
def defs():
    from quant_platform.definitions import defs

    return defs


def _day(book, value) -> str:
    return xlrd.xldate_as_datetime(value, book.datemode).date().isoformat()


# ------------------------------------------------------------------------------------ every WPSR table
def test_the_wpsr_tables_release_loads_the_week_the_sensor_saw_from_every_workbook(simulator, duck, instance, defs):
    book = xlrd.open_workbook(str(PSW01))
    want = {}
    for name, freq in (("Data 1", "W"), ("Data 2", "W"), ("Data 3", "4W")):
        sheet = book.sheet_by_name(name)
        last = sheet.nrows - 1
        week = _day(book, sheet.cell_value(last, 0))
        for c in range(1, sheet.ncols):
            if sheet.cell_type(last, c) == xlrd.XL_CELL_NUMBER:
                want[(sheet.cell_value(1, c), freq)] = sheet.cell_value(last, c)
    assert week == "2026-02-06" and len(want) == 93

    reqs, _, _ = evaluate_sensor(defs, "eia_wpsr_tables_release_sensor", instance, None)
    sha = hashlib.sha256(PSW01.read_bytes()).hexdigest()
    assert [(r.partition_key, r.run_key) for r in reqs] == [(week, f"eia_wpsr_tables:{week}:{sha[:16]}")]
    (result,) = execute_requests(defs, instance, reqs)
    assert result.success and all(check_results(result).values())
    rows = duck.query_df("SELECT series_id, frequency, value, unit, source_sha256 FROM macro.eia_wpsr_tables")
    assert {(s, f): v for s, f, v, _, _ in rows.itertuples(index=False)} == want
    assert set(rows["source_sha256"]) == {sha}
    assert set(rows["unit"]) == {"thousand barrels", "thousand barrels per day"}
    meta = result.asset_materializations_for_node("macro__eia_wpsr_tables")[-1].metadata
    # The simulator has no real bytes of the other tables: each was asked once, and the run says it was not served.
    assert meta["wpsr_tables_not_served"].value == "02, 03, 04, 05, 05a, 06, 07, 08, 09, 11, 12, 13, 14 (HTTP 404)"
    assert len(simulator.requests_seen("/wpsr/psw04.xls")) == 1


# ------------------------------------------------------------------------------------ gas storage
def test_the_gas_storage_calendar_moves_with_holidays_as_the_vendor_did():
    from quant_platform.macro.reports.eia_gas_storage.report import CALENDAR

    book = xlrd.open_workbook(str(NGS))
    title = book.sheet_by_name("html_report_history").cell_value(5, 0)
    as_of = datetime.strptime(title.split("AS OF ")[1].title(), "%B %d, %Y").date()
    assert as_of == date(2021, 11, 10)  # the file of the week ending 2021-11-05: Veterans Day was the Thursday
    assert CALENDAR.release_at(date(2021, 11, 5)).date() == as_of
    assert CALENDAR.release_at(date(2021, 10, 29)).strftime("%a %Y-%m-%d %H:%M") == "Thu 2021-11-04 10:30"
    # Veterans Day on the Wednesday of 2015: EIA published the week ending 2015-11-06 on Friday 2015-11-13.
    assert CALENDAR.release_at(date(2015, 11, 6)).date() == date(2015, 11, 13)


def test_gas_storage_lands_through_its_derived_sensor_and_job(simulator, duck, instance, defs):
    book = xlrd.open_workbook(str(NGS))
    levels, changes = book.sheet_by_name("html_report_history"), book.sheet_by_name("weekly_net_changes")
    last = levels.nrows - 1
    header = levels.row_values(6)
    want = {}
    for c in range(2, levels.ncols):
        want[(header[c], "working_gas")] = levels.cell_value(last, c)
        want[(header[c], "net_change")] = changes.cell_value(last, c)
    week = _day(book, levels.cell_value(last, 0))

    reqs, _, _ = evaluate_sensor(defs, "eia_gas_storage_release_sensor", instance, None)
    assert [r.partition_key for r in reqs] == [week] == ["2021-11-05"]
    (result,) = execute_requests(defs, instance, reqs)
    assert result.success and check_results(result)["regions_sum_to_lower_48"]
    rows = duck.query_df("SELECT series_id, region, measure, value, survey FROM macro.eia_gas_storage")
    names = {"East": "East Region", "Midwest": "Midwest Region", "Mountain": "Mountain Region",
             "Pacific": "Pacific Region", "South Central": "South Central Region", "South Central Salt": "Salt",
             "South Central Nonsalt": "NonSalt", "Lower 48": "Total Lower 48"}
    assert {(names[r], m): v for _, r, m, v, _ in rows.itertuples(index=False)} == want
    assert set(rows["survey"]) == {levels.cell_value(last, 1)} == {"EIA-912"}
    assert "NW2_EPG0_SWO_R48_BCF" in set(rows["series_id"])


# ------------------------------------------------------------------------------------ daily spot prices
def test_daily_spot_prices_load_each_series_whole_history(simulator, duck, instance, defs):
    job = defs.resolve_job_def("eia_spot_prices_job")
    for series, sample in (("RBRTE", "RBRTEd_2025-01-23.xls"), ("RNGWHHD", "RNGWHHDd_2019-10-23.xls")):
        book = xlrd.open_workbook(str(SAMPLE_DATA / "eia" / "dnav" / sample))
        sheet = book.sheet_by_name("Data 1")
        want = {_day(book, sheet.cell_value(r, 0)): sheet.cell_value(r, 1) for r in range(3, sheet.nrows)
                if sheet.cell_type(r, 1) == xlrd.XL_CELL_NUMBER}
        result = job.execute_in_process(instance=instance, partition_key=series, raise_on_error=False)
        assert result.success and all(check_results(result).values())
        got = duck.query_df("SELECT period, value FROM macro.eia_spot_prices WHERE series_id = :s", {"s": series})
        assert {str(p)[:10]: v for p, v in got.itertuples(index=False)} == want
    assert int(duck.scalar("SELECT count(DISTINCT series_id) FROM macro.eia_spot_prices")) == 2


def test_spot_prices_are_polled_only_around_each_scheduled_release():
    from quant_platform.macro.reports.eia_spot_prices.report import spot_watches
    from quant_platform.platform.calendars import NEW_YORK
    from quant_platform.platform.settings import load_settings

    def due(checked: datetime, at: datetime) -> bool:
        (watch, *_) = spot_watches(load_settings(), at)
        return watch.due({"checked_at": checked.isoformat(), "sha256": "x"}, at)[0]

    released = datetime(2026, 11, 25, 10, 30, tzinfo=NEW_YORK)  # a Wednesday WPSR release
    assert due(released.replace(hour=9), released.replace(minute=31))  # the first tick after it
    assert not due(released.replace(minute=31), released.replace(minute=35))  # not again within 15 minutes
    assert due(released.replace(minute=31), released.replace(minute=50))  # late files: every 15 minutes
    assert not due(datetime(2026, 11, 27, 10, tzinfo=UTC), datetime(2026, 11, 28, 12, tzinfo=UTC))  # in between


# ------------------------------------------------------------------------------------ COT futures and options
def test_cot_futures_and_options_combined_lands_beside_futures_only(simulator, duck, instance, defs):
    with LEGACY_FO_2026.open(newline="", encoding="latin-1") as f:
        rows = list(csv.DictReader(f))
    week = max(r["As of Date in Form YYYY-MM-DD"] for r in rows)
    want = {(r["CFTC Contract Market Code"].strip(), "open_interest"): int(r["Open Interest (All)"])
            for r in rows if r["As of Date in Form YYYY-MM-DD"] == week}
    want.update({(r["CFTC Contract Market Code"].strip(), "comm_long"): int(r["Commercial Positions-Long (All)"])
                 for r in rows if r["As of Date in Form YYYY-MM-DD"] == week})

    reqs, _, _ = evaluate_sensor(defs, "cftc_cot_release_sensor", instance, None)
    combined = [r for r in reqs if r.job_name == "cftc_cot_legacy_combined_job"]
    assert [r.partition_key for r in combined] == [week] == ["2026-03-03"]
    assert "cftc_cot_disaggregated_combined_job" not in {r.job_name for r in reqs}  # no sample: nothing served
    (result,) = execute_requests(defs, instance, combined)
    assert result.success
    got = duck.query_df("SELECT contract_code, open_interest, comm_long FROM macro.cftc_cot_legacy_combined")
    loaded = {(c, "open_interest"): oi for c, oi, _ in got.itertuples(index=False)}
    loaded.update({(c, "comm_long"): cl for c, _, cl in got.itertuples(index=False)})
    assert loaded == want and len(got) == 6


def test_a_futures_only_file_on_the_combined_route_is_refused(simulator, duck, capsys):
    from quant_platform.cli import main
    from quant_platform.vendors.cftc import deterministic_zip

    # The real futures-only f_year.txt, zipped as the combined c_year.txt: its own FutOnly_or_Combined column says
    # FutOnly, so nothing of it loads as futures and options.
    simulator.publish("/files/dea/history/com_disagg_txt_2021.zip",
                      deterministic_zip("c_year.txt", DISAGG_2021.read_bytes(), (2021, 3, 19, 15, 30, 0)),
                      content_type="application/zip")
    assert main(["backfill", "macro/cftc_cot_disaggregated_combined", "2021-03-09", "2021-03-16"]) == 1
    out = capsys.readouterr().out
    assert "the file says futures only (FutOnly_or_Combined), the route expected futures and options" in out
    assert int(duck.scalar("SELECT count(*) FROM macro.cftc_cot_disaggregated_combined")) == 0


# ------------------------------------------------------------------------------------ respecting the vendors
def test_a_429_with_retry_after_is_honoured_then_the_file_comes(simulator):
    simulator.inject_fault(WPSR_TABLE1, "http_429", count=1, delay_s=1)
    resp = VendorClient(timeout_s=2, attempts=3, backoff_initial_s=0.01, backoff_max_s=0.02).get(
        simulator.base_url + WPSR_TABLE1)
    assert resp.status == 200 and resp.attempts == 2
    seen = simulator.requests_seen(WPSR_TABLE1)
    assert [r["status"] for r in seen] == [429, 200]
    # The second request came no sooner than the vendor asked (Retry-After: 1), not after the 10 ms backoff.
    assert seen[1]["at"] - seen[0]["at"] >= 0.95


def test_a_retry_after_beyond_the_limit_ends_the_call_at_once(simulator, monkeypatch):
    monkeypatch.setenv("QP_HTTP_RETRY_AFTER_MAX", "5")
    simulator.inject_fault(WPSR_TABLE1, "http_429", count=3, delay_s=120)
    started = time.monotonic()
    with pytest.raises(VendorError, match=r"HTTP 429 with Retry-After 120 s.*QP_HTTP_RETRY_AFTER_MAX"):
        VendorClient(timeout_s=2, attempts=3).get(simulator.base_url + WPSR_TABLE1)
    assert time.monotonic() - started < 2
    assert [r["status"] for r in simulator.requests_seen(WPSR_TABLE1)] == [429]  # asked once, not hammered


def test_retry_after_reads_seconds_and_http_dates():
    from datetime import UTC, datetime

    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Thu, 03 Dec 2026 12:01:30 GMT", now) == 90.0
    assert retry_after_seconds("Thu, 03 Dec 2026 11:00:00 GMT", now) == 0.0  # a date already past: no wait
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).seen.append(self.headers.get("User-Agent", ""))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        return


def test_every_vendor_request_says_who_asks(monkeypatch):
    monkeypatch.setenv("QP_VENDOR_CONTACT", "macro-desk@example.com")
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        VendorClient(timeout_s=2, attempts=1).get(f"http://127.0.0.1:{server.server_address[1]}/x")
    finally:
        server.shutdown()
        server.server_close()
    (agent,) = _Recorder.seen
    assert agent == user_agent()
    assert agent.startswith("quant-platform/0.1.0 (") and agent.endswith("; +macro-desk@example.com)")
    monkeypatch.setenv("QP_VENDOR_CONTACT", "bad\r\nInjected: header")
    from quant_platform.errors import ConfigError

    with pytest.raises(ConfigError, match="QP_VENDOR_CONTACT"):
        user_agent()
