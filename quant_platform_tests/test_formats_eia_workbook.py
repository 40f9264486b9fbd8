"""Tests of the EIA workbook parsers (WPSR psw01.xls, dnav hist_xls) on the real vendor files in sample_data.

Never compute an expected value with the parser under test: every one is read here with xlrd or csv directly.
"""

from __future__ import annotations

import csv
import datetime as dt

import pandas as pd
import pytest
import xlrd

from quant_platform.errors import ReportParseError
from quant_platform.macro.formats.dnav_xls import dnav_xls_latest_period, dnav_xls_url, parse_dnav_xls
from quant_platform.macro.formats.eia_workbook import WORKBOOK_COLUMNS, parse_eia_workbook, read_contents
from quant_platform.macro.formats.wpsr_xls import (
    WPSR_XLS_COLUMNS,
    parse_wpsr_xls,
    wpsr_xls_release_date,
    wpsr_xls_url,
    wpsr_xls_week_ending,
)
from quant_platform_tests.conftest import SAMPLE_DATA

PSW01 = SAMPLE_DATA / "eia" / "wpsr" / "psw01_2026-02-11.xls"
DNAV = SAMPLE_DATA / "eia" / "dnav"
DNAV_FILES = {  # series -> (file, frequency, unit as the workbook prints it)
    "WCESTUS1": ("WCESTUS1w_2026-05-13.xls", "W", "Thousand Barrels"),
    "RWTC": ("RWTCd_2025-01-23.xls", "D", "Dollars per Barrel"),
    "RBRTE": ("RBRTEd_2025-01-23.xls", "D", "Dollars per Barrel"),
    "RNGWHHD": ("RNGWHHDd_2019-10-23.xls", "D", "Dollars per Million Btu"),
}
DNAV_CSV = SAMPLE_DATA / "eia" / "dnav_WCESTUS1_weekly.csv"


def _column(path, sheet: str, key: str) -> dict[dt.date, float]:
    """(date -> value) of one Sourcekey column, read with xlrd: row 2 keys, data from row 4, empty cells skipped."""
    book = xlrd.open_workbook(str(path))
    data = book.sheet_by_name(sheet)
    col = data.row_values(1).index(key)
    out = {}
    for row in range(3, data.nrows):
        if data.cell_type(row, col) == xlrd.XL_CELL_NUMBER:
            out[xlrd.xldate_as_datetime(data.cell_value(row, 0), book.datemode).date()] = data.cell_value(row, col)
    return out


@pytest.fixture(scope="module")
def psw01_bytes() -> bytes:
    return PSW01.read_bytes()


@pytest.fixture(scope="module")
def psw01(psw01_bytes: bytes) -> pd.DataFrame:
    return parse_wpsr_xls(psw01_bytes, "01")


def _series(frame: pd.DataFrame, key: str, frequency: str) -> dict[dt.date, float]:
    rows = frame[(frame["series_id"] == key) & (frame["frequency"] == frequency)]
    return dict(zip(rows["period"].dt.date, rows["value"], strict=True))


def test_psw01_every_sheet_and_series_as_long_rows(psw01: pd.DataFrame) -> None:
    assert list(psw01.columns) == list(WPSR_XLS_COLUMNS)
    book = xlrd.open_workbook(str(PSW01))
    for sheet, frequency in (("Data 1", "W"), ("Data 2", "W"), ("Data 3", "4W")):
        keys = [k for k in book.sheet_by_name(sheet).row_values(1)[1:] if k]
        rows = psw01[psw01["sheet"] == sheet]
        assert sorted(rows["series_id"].unique()) == sorted(keys)
        assert set(rows["frequency"]) == {frequency}
        # Empty cells (weeks before a series began) are not rows; every number cell is one.
        data = book.sheet_by_name(sheet)
        numbers = sum(data.cell_type(r, c) == xlrd.XL_CELL_NUMBER
                      for r in range(3, data.nrows) for c in range(1, data.ncols))
        assert len(rows) == numbers
    assert not psw01.duplicated(["series_id", "frequency", "period"]).any()


def test_psw01_values_units_and_names_match_the_cells(psw01: pd.DataFrame) -> None:
    for key in ("WCESTUS1", "WCRSTUS1", "WCSSTUS1"):
        assert _series(psw01, key, "W") == _column(PSW01, "Data 1", key)
    stocks = psw01[psw01["series_id"] == "WCESTUS1"].iloc[-1]
    assert stocks["period"] == pd.Timestamp("2026-02-06")
    assert stocks["unit"] == "thousand barrels"
    # Vendor quirk: two spaces before the unit; the name keeps the words, the unit its own column.
    assert stocks["series_name"] == "Weekly U.S. Ending Stocks excluding SPR of Crude Oil"
    assert set(psw01.loc[psw01["sheet"] == "Data 2", "unit"]) == {"thousand barrels per day"}


def test_psw01_commercial_plus_spr_is_total_crude_every_week(psw01: pd.DataFrame) -> None:
    wide = psw01[psw01["sheet"] == "Data 1"].pivot(index="period", columns="series_id", values="value")
    both = wide[["WCRSTUS1", "WCESTUS1", "WCSSTUS1"]].dropna()
    assert len(both) > 2200
    assert (both["WCRSTUS1"] == both["WCESTUS1"] + both["WCSSTUS1"]).all()


def test_psw01_four_week_sheet_reuses_sourcekeys(psw01: pd.DataFrame) -> None:
    """Vendor quirk: "Data 3" holds 4-week averages under the same Sourcekeys as the weekly "Data 2"."""
    weekly, four_week = _series(psw01, "WCRFPUS2", "W"), _series(psw01, "WCRFPUS2", "4W")
    assert weekly == _column(PSW01, "Data 2", "WCRFPUS2")
    assert four_week == _column(PSW01, "Data 3", "WCRFPUS2")
    assert weekly[dt.date(2026, 2, 6)] != four_week[dt.date(2026, 2, 6)]
    names = psw01.loc[psw01["frequency"] == "4W", "series_name"]
    assert names.str.startswith("4-Week Avg ").all()


def test_psw01_contents_gives_week_release_and_file_name(psw01_bytes: bytes) -> None:
    sheet = xlrd.open_workbook(str(PSW01)).sheet_by_name("Contents")
    cells = {sheet.cell_value(r, 1): sheet.cell_value(r, 2) for r in range(sheet.nrows)}
    assert wpsr_xls_release_date(psw01_bytes, "01") == dt.datetime.strptime(cells["Release Date:"], "%m/%d/%Y").date()
    assert wpsr_xls_week_ending(psw01_bytes, "01") == dt.date(2026, 2, 6) == max(_column(PSW01, "Data 1", "WCESTUS1"))
    with pytest.raises(ReportParseError, match="psw04.xls"):
        parse_wpsr_xls(psw01_bytes, "04")
    assert wpsr_xls_url("01") == "https://ir.eia.gov/wpsr/psw01.xls"
    assert wpsr_xls_url("05a") == "https://ir.eia.gov/wpsr/psw05a.xls"


@pytest.mark.parametrize("series_id", sorted(DNAV_FILES))
def test_dnav_workbook_is_one_series_read_cell_for_cell(series_id: str) -> None:
    name, frequency, unit = DNAV_FILES[series_id]
    content = (DNAV / name).read_bytes()
    frame = parse_dnav_xls(content, series_id, frequency)
    assert list(frame.columns) == [c for c in WORKBOOK_COLUMNS if c != "sheet"]
    assert dict(zip(frame["period"].dt.date, frame["value"], strict=True)) == _column(DNAV / name, "Data 1", series_id)
    header = xlrd.open_workbook(str(DNAV / name)).sheet_by_name("Data 1").cell_value(2, 1)
    assert header.endswith(f"({unit})")
    assert set(frame["unit"]) == {unit.lower()}
    assert frame["period"].is_monotonic_increasing
    assert dnav_xls_latest_period(content) == frame["period"].iloc[-1].date()
    with pytest.raises(ReportParseError, match="expected"):
        parse_dnav_xls(content, "WCRSTUS1")


def test_dnav_wti_keeps_the_negative_price_of_2020_04_20() -> None:
    """Real market fact, not damage: WTI Cushing settled below zero once; the parser must not refuse it."""
    frame = parse_dnav_xls((DNAV / DNAV_FILES["RWTC"][0]).read_bytes(), "RWTC", "D")
    day = frame.loc[frame["period"] == pd.Timestamp("2020-04-20"), "value"]
    assert day.tolist() == [_column(DNAV / DNAV_FILES["RWTC"][0], "Data 1", "RWTC")[dt.date(2020, 4, 20)]]
    assert day.iloc[0] < 0


def test_dnav_xls_agrees_with_the_series_csv_on_shared_weeks() -> None:
    """Two real EIA files of WCESTUS1 (the workbook of 2026 and the browser CSV of 2024) agree on every
    week both hold."""
    xls = parse_dnav_xls((DNAV / DNAV_FILES["WCESTUS1"][0]).read_bytes(), "WCESTUS1", "W")
    lines = DNAV_CSV.read_text(encoding="utf-8-sig").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Week of"))
    csv_values = {dt.datetime.strptime(d, "%m/%d/%Y").date(): float(v)
                  for d, v in csv.reader(lines[at + 1:]) if v}
    xls_values = dict(zip(xls["period"].dt.date, xls["value"], strict=True))
    shared = set(csv_values) & set(xls_values)
    assert len(shared) > 2000
    assert {d: xls_values[d] for d in shared} == {d: csv_values[d] for d in shared}


def test_dnav_urls() -> None:
    assert dnav_xls_url("WCESTUS1", "W") == "https://www.eia.gov/dnav/pet/hist_xls/WCESTUS1w.xls"
    assert dnav_xls_url("RBRTE", "D") == "https://www.eia.gov/dnav/pet/hist_xls/RBRTEd.xls"
    assert dnav_xls_url("RNGWHHD", "D") == "https://www.eia.gov/dnav/ng/hist_xls/RNGWHHDd.xls"
    contents = read_contents(xlrd.open_workbook(str(DNAV / DNAV_FILES["RBRTE"][0]), on_demand=True))
    assert contents.file_name == "rbrted.xls"
    assert contents.web_page == "https://www.eia.gov/dnav/pet/hist/LeafHandler.ashx?n=PET&s=RBRTE&f=D"


def test_not_a_workbook_is_refused(psw01_bytes: bytes) -> None:
    with pytest.raises(ReportParseError, match="OLE2"):
        parse_eia_workbook(DNAV_CSV.read_bytes())
    with pytest.raises(ReportParseError, match="unreadable"):
        parse_eia_workbook(psw01_bytes[: len(psw01_bytes) // 3])
