"""EIA Weekly Natural Gas Storage Report history workbook (`ir.eia.gov/ngs/ngshistory.xls`) as long rows in Bcf.

Never map a column by position: regions are recognised by EIA's header names, and an unknown one is refused.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import xlrd

from quant_platform.errors import ReportParseError
from quant_platform.macro.formats.eia_workbook import open_workbook

NGS_REPORT = "eia_ngs_history"
NGS_HISTORY_URL = "https://ir.eia.gov/ngs/ngshistory.xls"
NGS_UNIT = "billion cubic feet"

NGS_COLUMNS: tuple[str, ...] = (
    "week_ending", "region", "series_id", "measure", "value", "unit", "source", "as_of",
)

# Header name in the workbook -> (region, EIA series id of the region's working gas on API v2 route
# natural-gas/stor/wkly). Salt and NonSalt are the two parts of South Central (five-region structure,
# introduced for the week ending 2015-11-06; weeks from 2010 are EIA's derived estimates).
NGS_REGIONS: dict[str, tuple[str, str]] = {
    "East Region": ("East", "NW2_EPG0_SWO_R31_BCF"),
    "Midwest Region": ("Midwest", "NW2_EPG0_SWO_R32_BCF"),
    "Mountain Region": ("Mountain", "NW2_EPG0_SWO_R34_BCF"),
    "Pacific Region": ("Pacific", "NW2_EPG0_SWO_R35_BCF"),
    "South Central Region": ("South Central", "NW2_EPG0_SWO_R33_BCF"),
    "Salt": ("South Central Salt", "NW2_EPG0_SSO_R33_BCF"),
    "NonSalt": ("South Central Nonsalt", "NW2_EPG0_SNO_R33_BCF"),
    "Total Lower 48": ("Lower 48", "NW2_EPG0_SWO_R48_BCF"),
}
# Sheet -> measure. The first holds stock levels, the second the week-on-week net change (negative = withdrawal).
NGS_SHEETS = {"html_report_history": "working_gas", "weekly_net_changes": "net_change"}
NGS_SOURCES = ("EIA-912", "Derived EIA Weekly Estimates")

_AS_OF = re.compile(r".*\(Bcf\)\s+AS OF\s+(?P<date>[A-Z]+ \d{1,2}, \d{4})\s*", re.IGNORECASE)
_NOTES_MAX = 20


def _title(sheet, name: str) -> tuple[int, dt.date]:
    """Row index and date of the sheet's '... (Bcf) AS OF MONTH D, YYYY' line (after EIA's notes)."""
    for row in range(min(sheet.nrows, _NOTES_MAX)):
        value = sheet.cell_value(row, 0)
        match = _AS_OF.fullmatch(value) if isinstance(value, str) else None
        if match:
            return row, dt.datetime.strptime(match.group("date").title(), "%B %d, %Y").date()
    raise ReportParseError(NGS_REPORT, None, f"sheet {name!r}: no '(Bcf) AS OF <date>' line in the first "
                           f"{_NOTES_MAX} rows")


def _sheet_rows(book, name: str) -> tuple[pd.DataFrame, dt.date, list[str]]:
    if name not in book.sheet_names():
        raise ReportParseError(NGS_REPORT, None, f"no sheet {name!r} (sheets: {', '.join(book.sheet_names())})")
    sheet = book.sheet_by_name(name)
    title_row, as_of = _title(sheet, name)
    header_row = title_row + 1
    header = [str(sheet.cell_value(header_row, c)).strip() for c in range(sheet.ncols)]
    # Vendor quirk: the weekly_net_changes sheet leaves "Source" (and in some releases "Week ending") blank.
    if header[0] not in ("Week ending", "") or header[1] not in ("Source", ""):
        raise ReportParseError(NGS_REPORT, header_row + 1, f"sheet {name!r}: header starts {header[:2]}, "
                               "expected 'Week ending', 'Source'")
    regions = [h for h in header[2:] if h]
    unknown = [h for h in regions if h not in NGS_REGIONS]
    if unknown or sorted(regions) != sorted(NGS_REGIONS) or len(regions) != len(header) - 2:
        raise ReportParseError(NGS_REPORT, header_row + 1, f"sheet {name!r}: region columns {header[2:]} are "
                               f"not EIA's {list(NGS_REGIONS)}")
    first = header_row + 1
    types = np.array(sheet.col_types(0, start_rowx=first))
    dated = np.flatnonzero(types == xlrd.XL_CELL_DATE)
    last = first + (int(dated[-1]) + 1 if len(dated) else 0)
    if last == first:
        raise ReportParseError(NGS_REPORT, None, f"sheet {name!r} has no dated rows")
    if (bad := np.flatnonzero(types[: last - first] != xlrd.XL_CELL_DATE)).size:
        row = first + int(bad[0]) + 1
        raise ReportParseError(NGS_REPORT, row, f"sheet {name!r} row {row}: column A is not an Excel date")
    serials = np.array(sheet.col_values(0, first, last), dtype="float64")
    base = np.datetime64("1899-12-30") if book.datemode == 0 else np.datetime64("1904-01-01")
    weeks = (base + serials.astype("int64").astype("timedelta64[D]")).astype("datetime64[ns]")
    out = {"week_ending": weeks, "source": [str(v).strip() for v in sheet.col_values(1, first, last)]}
    for col, region in enumerate(header[2:], start=2):
        col_types = np.array(sheet.col_types(col, first, last))
        values = sheet.col_values(col, first, last)
        if (odd := np.flatnonzero(~np.isin(col_types, (xlrd.XL_CELL_NUMBER, xlrd.XL_CELL_EMPTY,
                                                        xlrd.XL_CELL_BLANK)))).size:
            row = first + int(odd[0]) + 1
            raise ReportParseError(NGS_REPORT, row, f"sheet {name!r} {region} row {row}: "
                                   f"{values[odd[0]]!r} is not a number")
        out[region] = np.where(col_types == xlrd.XL_CELL_NUMBER, np.asarray(values, dtype="object"),
                               np.nan).astype("float64")
    frame = pd.DataFrame(out)
    if (dup := np.flatnonzero(frame["week_ending"].duplicated().to_numpy())).size:
        raise ReportParseError(NGS_REPORT, first + int(dup[0]) + 1, f"sheet {name!r}: week "
                               f"{frame['week_ending'][dup[0]].date()} appears twice")
    return frame, as_of, regions


def parse_ngs_history(content: bytes) -> pd.DataFrame:
    """Both sheets of ngshistory.xls as long rows (NGS_COLUMNS): working gas and net change per region and
    week, in Bcf, with the survey source of the week ('EIA-912' or 'Derived EIA Weekly Estimates') and the
    file's own 'AS OF' date. Empty cells (the first week's net change) are left out."""
    book = open_workbook(content, NGS_REPORT)
    levels, as_of, regions = _sheet_rows(book, "html_report_history")
    changes, changes_as_of, _ = _sheet_rows(book, "weekly_net_changes")
    if changes_as_of != as_of:
        raise ReportParseError(NGS_REPORT, None, f"the sheets are AS OF {as_of} and {changes_as_of}")
    unknown = sorted(set(levels["source"]) - set(NGS_SOURCES))
    if unknown:
        raise ReportParseError(NGS_REPORT, None, f"unknown Source values {unknown} (known: {NGS_SOURCES})")
    if not levels["week_ending"].equals(changes["week_ending"]):
        raise ReportParseError(NGS_REPORT, None, "the two sheets do not list the same weeks")
    # The net-change sheet has no Source column of its own: a week's change takes its level's source.
    changes["source"] = levels["source"]
    parts = []
    for frame, measure in ((levels, "working_gas"), (changes, "net_change")):
        long = frame.melt(id_vars=["week_ending", "source"], value_vars=regions, var_name="header",
                          value_name="value").dropna(subset=["value"])
        long["region"] = long["header"].map(lambda h: NGS_REGIONS[h][0])
        long["series_id"] = long["header"].map(lambda h: NGS_REGIONS[h][1])
        long["measure"] = measure
        parts.append(long)
    out = pd.concat(parts, ignore_index=True)
    out["unit"] = NGS_UNIT
    out["as_of"] = pd.Timestamp(as_of)
    out["as_of"] = out["as_of"].astype("datetime64[ns]")
    out = out.sort_values(["measure", "week_ending", "region"], kind="stable", ignore_index=True)
    return out.loc[:, list(NGS_COLUMNS)]


def ngs_history_as_of(content: bytes) -> dt.date:
    """The 'AS OF' date EIA prints above the history (the release day of the latest report it holds)."""
    book = open_workbook(content, NGS_REPORT)
    return _title(book.sheet_by_name("html_report_history"), "html_report_history")[1]


def ngs_latest_week(content: bytes) -> dt.date:
    """The latest week ending in the history workbook."""
    book = open_workbook(content, NGS_REPORT)
    frame, _, _ = _sheet_rows(book, "html_report_history")
    return frame["week_ending"].max().date()
