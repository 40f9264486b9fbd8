"""Tests of the EIA Weekly Natural Gas Storage Report history parser on the real ngshistory.xls in sample_data.

Never compute an expected value with the parser under test: every one is read here with xlrd directly.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import xlrd

from quant_platform.errors import ReportParseError
from quant_platform.macro.formats.ngs_history import (
    NGS_COLUMNS,
    NGS_REGIONS,
    ngs_history_as_of,
    ngs_latest_week,
    parse_ngs_history,
)
from quant_platform_tests.conftest import SAMPLE_DATA

NGS = SAMPLE_DATA / "eia" / "ngs" / "ngshistory_2021-11-10.xls"
PSW01 = SAMPLE_DATA / "eia" / "wpsr" / "psw01_2026-02-11.xls"
FIVE_REGIONS = ["East", "Midwest", "Mountain", "Pacific", "South Central"]


def _sheet(name: str) -> dict[dt.date, dict[str, object]]:
    """week -> {header: cell} of one sheet, read with xlrd (header on row 7, data from row 8)."""
    book = xlrd.open_workbook(str(NGS))
    sheet = book.sheet_by_name(name)
    header = sheet.row_values(6)
    out = {}
    for row in range(7, sheet.nrows):
        week = xlrd.xldate_as_datetime(sheet.cell_value(row, 0), book.datemode).date()
        out[week] = dict(zip(header[1:], sheet.row_values(row)[1:], strict=True))
    return out


@pytest.fixture(scope="module")
def ngs() -> pd.DataFrame:
    return parse_ngs_history(NGS.read_bytes())


def test_every_region_and_week_in_bcf(ngs: pd.DataFrame) -> None:
    assert list(ngs.columns) == list(NGS_COLUMNS)
    assert set(ngs["unit"]) == {"billion cubic feet"}
    assert set(ngs["region"]) == {"Lower 48", *FIVE_REGIONS, "South Central Salt", "South Central Nonsalt"}
    levels = _sheet("html_report_history")
    working = ngs[ngs["measure"] == "working_gas"]
    assert len(working) == 8 * len(levels)
    for header, (region, series_id) in NGS_REGIONS.items():
        rows = working[working["region"] == region]
        assert set(rows["series_id"]) == {series_id}
        assert dict(zip(rows["week_ending"].dt.date, rows["value"], strict=True)) == {
            week: cells[header] for week, cells in levels.items()}


def test_latest_week_values_and_dates(ngs: pd.DataFrame) -> None:
    levels = _sheet("html_report_history")
    last = max(levels)
    assert ngs_latest_week(NGS.read_bytes()) == last == dt.date(2021, 11, 5)
    title = xlrd.open_workbook(str(NGS)).sheet_by_name("html_report_history").cell_value(5, 0)
    assert title == "LATEST ESTIMATES (Bcf) AS OF NOVEMBER 10, 2021"
    assert ngs_history_as_of(NGS.read_bytes()) == dt.date(2021, 11, 10)
    assert set(ngs["as_of"]) == {pd.Timestamp("2021-11-10")}
    week = ngs[(ngs["week_ending"] == pd.Timestamp(last)) & (ngs["measure"] == "working_gas")]
    assert dict(zip(week["region"], week["value"], strict=True))["Lower 48"] == levels[last]["Total Lower 48"]


def test_net_changes_and_sources(ngs: pd.DataFrame) -> None:
    changes = _sheet("weekly_net_changes")
    levels = _sheet("html_report_history")
    net = ngs[ngs["measure"] == "net_change"]
    first = min(changes)
    # Vendor quirk: the first week has no net change (empty cells), so it has no rows.
    assert changes[first]["Total Lower 48"] == "" and first not in set(net["week_ending"].dt.date)
    lower48 = net[net["region"] == "Lower 48"]
    assert dict(zip(lower48["week_ending"].dt.date, lower48["value"], strict=True)) == {
        w: c["Total Lower 48"] for w, c in changes.items() if c["Total Lower 48"] != ""}
    # The net-change sheet has no Source column: each week carries the source of its level.
    sources = {w: c["Source"] for w, c in levels.items()}
    assert dict(zip(lower48["week_ending"].dt.date, lower48["source"], strict=True)) == {
        w: sources[w] for w in lower48["week_ending"].dt.date}
    assert sources[dt.date(2015, 6, 12)] == "Derived EIA Weekly Estimates"
    assert sources[dt.date(2015, 6, 19)] == "EIA-912"


def test_regions_add_up_to_lower_48_within_rounding(ngs: pd.DataFrame) -> None:
    """Domain check on the real file: five regions sum to the Lower 48 and Salt + Nonsalt to South
    Central, up to EIA's independent rounding of each published figure (at most 2 Bcf here)."""
    wide = ngs[ngs["measure"] == "working_gas"].pivot(index="week_ending", columns="region", values="value")
    assert (wide[FIVE_REGIONS].sum(axis=1) - wide["Lower 48"]).abs().max() <= 2
    parts = wide["South Central Salt"] + wide["South Central Nonsalt"] - wide["South Central"]
    assert parts.abs().max() <= 1


def test_other_workbooks_are_refused() -> None:
    with pytest.raises(ReportParseError, match="html_report_history"):
        parse_ngs_history(PSW01.read_bytes())
    with pytest.raises(ReportParseError, match="OLE2"):
        parse_ngs_history(b"<html>Service Unavailable</html>")
