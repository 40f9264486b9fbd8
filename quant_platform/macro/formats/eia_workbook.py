"""EIA's Excel 97 workbooks (WPSR `psw01.xls`..`psw14.xls`, dnav `hist_xls/<SERIES><w|d|m>.xls`) as long frames.

Never guess a cell: a sheet whose header rows, dates, numbers or Contents entry differ from EIA's layout
raises ReportParseError, so nothing from it is loaded.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xlrd

from quant_platform.errors import ReportParseError

WORKBOOK_REPORT = "eia_workbook"

# Long-format output of every EIA workbook: one row per (sheet, series_id, period).
WORKBOOK_COLUMNS: tuple[str, ...] = (
    "series_id", "period", "value", "unit", "series_name", "frequency", "sheet",
)

# The "Frequency" words of the Contents sheet, mapped to short codes. "4-Week" is a sheet of
# four-week averages (psw01 "Data 3"): same Sourcekeys as the weekly sheet, other numbers.
FREQUENCIES = {"Weekly": "W", "4-Week": "4W", "Daily": "D", "Monthly": "M", "Annual": "A"}

# Vendor quirk: the unit is the last parenthesised part of the name, after two spaces on weekly and
# daily sheets ("...of Crude Oil  (Thousand Barrels)") and one on monthly ones.
_NAME_UNIT = re.compile(r"(?P<name>.*\S)\s+\((?P<unit>[^()]+)\)\s*")
_HEADER = ("Back to Contents", "Sourcekey", "Date")
_CONTENTS_HEADER = ("Worksheet Name", "Description", "# Of Series", "Frequency", "Latest Data for")
_EMPTY_TYPES = (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK)


@dataclass(frozen=True)
class SheetEntry:
    """One line of the workbook's Contents sheet."""

    sheet: str
    description: str
    series_count: int
    frequency: str  # code from FREQUENCIES
    latest: str  # "Latest Data for" as EIA prints it: "2/6/2026" (W, D) or "8/2016" (M)


@dataclass(frozen=True)
class WorkbookContents:
    """What the Contents sheet says about the workbook (EIA writes it with every release)."""

    title: str
    sheets: tuple[SheetEntry, ...]
    release_date: dt.date | None
    next_release_date: dt.date | None
    file_name: str | None  # "psw01.xls", "rwtcd.xls" (lower case for dnav files)
    web_page: str | None


def open_workbook(content: bytes, report: str = WORKBOOK_REPORT) -> xlrd.book.Book:
    """The workbook, loaded sheet by sheet on demand; anything xlrd cannot read is a ReportParseError."""
    if not content.startswith(b"\xd0\xcf\x11\xe0"):
        raise ReportParseError(report, None, "not an Excel 97 (.xls) file: no OLE2 signature "
                               "(an HTML error page or an .xlsx?)")
    try:
        # xlrd writes its warnings to a log file; keep them out of the platform's stdout.
        return xlrd.open_workbook(file_contents=content, on_demand=True, logfile=io.StringIO())
    except Exception as exc:  # xlrd raises XLRDError, CompDocError, struct.error, IndexError ...
        raise ReportParseError(report, None, f"unreadable .xls: {type(exc).__name__}: {exc}") from None


def _text(sheet, row: int, col: int) -> str:
    if row >= sheet.nrows or col >= sheet.ncols:
        return ""
    value = sheet.cell_value(row, col)
    return value.strip() if isinstance(value, str) else ""


def _us_date(text: str, report: str, what: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%m/%d/%Y").date()
    except ValueError:
        raise ReportParseError(report, None, f"Contents {what} {text!r} is not a M/D/YYYY date") from None


def read_contents(book: xlrd.book.Book, report: str = WORKBOOK_REPORT) -> WorkbookContents:
    """Parse the Contents sheet: the data sheets with their frequency, and the release dates."""
    if "Contents" not in book.sheet_names():
        raise ReportParseError(report, None, f"no Contents sheet (sheets: {', '.join(book.sheet_names())}); "
                               "EIA's workbooks always open with one: a re-saved copy?")
    sheet = book.sheet_by_name("Contents")
    # Vendor quirk: Contents is laid out from column B (column A of its table is empty).
    at = next((r for r in range(sheet.nrows) if _text(sheet, r, 1) == _CONTENTS_HEADER[0]), None)
    if at is None:
        raise ReportParseError(report, None, "Contents sheet has no 'Worksheet Name' header")
    found = tuple(_text(sheet, at, 1 + i) for i in range(len(_CONTENTS_HEADER)))
    if found != _CONTENTS_HEADER:
        raise ReportParseError(report, at + 1, f"Contents header is {found}, expected {_CONTENTS_HEADER}")
    entries = []
    row = at + 1
    while row < sheet.nrows and _text(sheet, row, 1).startswith("Data "):
        name, frequency = _text(sheet, row, 1), _text(sheet, row, 4)
        if frequency not in FREQUENCIES:
            raise ReportParseError(report, row + 1, f"Contents gives {name} the frequency {frequency!r}, "
                                   f"not one of {', '.join(FREQUENCIES)}")
        count = sheet.cell_value(row, 3)
        if not isinstance(count, float) or count != int(count) or count < 1:
            raise ReportParseError(report, row + 1, f"Contents '# Of Series' of {name} is {count!r}")
        entries.append(SheetEntry(name, _text(sheet, row, 2), int(count), FREQUENCIES[frequency],
                                  _text(sheet, row, 5)))
        row += 1
    if not entries:
        raise ReportParseError(report, at + 2, "Contents lists no 'Data N' sheet")
    labels = {_text(sheet, r, 1): _text(sheet, r, 2) for r in range(row, sheet.nrows)}
    return WorkbookContents(
        title=_text(sheet, 2, 1),
        sheets=tuple(entries),
        release_date=_us_date(labels.get("Release Date:", ""), report, "Release Date"),
        next_release_date=_us_date(labels.get("Next Release Date:", ""), report, "Next Release Date"),
        file_name=labels.get("Excel File Name:") or None,
        web_page=labels.get("Available from Web Page:") or None,
    )


def _excel_days(serials: np.ndarray, datemode: int) -> np.ndarray:
    """Excel date serials as datetime64[ns] (1900 system: day 0 = 1899-12-30; 1904 system: 1904-01-01)."""
    base = np.datetime64("1899-12-30") if datemode == 0 else np.datetime64("1904-01-01")
    return (base + serials.astype("int64").astype("timedelta64[D]")).astype("datetime64[ns]")


def _split_name(label: str, report: str, sheet: str, col: int) -> tuple[str, str]:
    match = _NAME_UNIT.fullmatch(label)
    if match is None:
        raise ReportParseError(report, 3, f"{sheet} column {col + 1}: series name {label!r} does not end "
                               "with a unit in parentheses")
    return match.group("name"), match.group("unit").lower()


def _parse_sheet(book: xlrd.book.Book, entry: SheetEntry, report: str) -> pd.DataFrame:
    sheet = book.sheet_by_name(entry.sheet)
    where = f"sheet {entry.sheet!r}"
    header = tuple(_text(sheet, r, 0) for r in range(3))
    if header != _HEADER:
        raise ReportParseError(report, None, f"{where} starts {header}, expected {_HEADER} in column A "
                               "(a copy re-saved without EIA's header rows?)")
    if sheet.ncols < 2 or sheet.nrows < 4:
        raise ReportParseError(report, None, f"{where} has no data ({sheet.nrows} rows, {sheet.ncols} columns)")
    keys = [_text(sheet, 1, c) for c in range(1, sheet.ncols)]
    if not keys or "" in keys:
        raise ReportParseError(report, 2, f"{where}: a Sourcekey cell in row 2 is empty")
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ReportParseError(report, 2, f"{where}: Sourcekey {dup} appears twice")
    if len(keys) != entry.series_count:
        raise ReportParseError(report, 2, f"{where} has {len(keys)} Sourcekeys, Contents says "
                               f"{entry.series_count}")

    types = np.array(sheet.col_types(0, start_rowx=3))
    data_rows = np.flatnonzero(~np.isin(types, _EMPTY_TYPES))
    last = int(data_rows[-1]) + 1 if len(data_rows) else 0
    types = types[:last]
    if last == 0:
        raise ReportParseError(report, None, f"{where} has no dated rows")
    bad = np.flatnonzero(types != xlrd.XL_CELL_DATE)
    if len(bad):
        row = int(bad[0]) + 4
        raise ReportParseError(report, row, f"{where} column A row {row}: "
                               f"{sheet.cell_value(row - 1, 0)!r} is not an Excel date")
    serials = np.array(sheet.col_values(0, start_rowx=3, end_rowx=3 + last), dtype="float64")
    if (i := np.flatnonzero(serials != np.floor(serials))).size:
        raise ReportParseError(report, int(i[0]) + 4, f"{where}: date serial {serials[i[0]]} has a time of day")
    periods = _excel_days(serials, book.datemode)
    if (dup := np.flatnonzero(pd.Series(periods).duplicated().to_numpy())).size:
        raise ReportParseError(report, int(dup[0]) + 4, f"{where}: period "
                               f"{pd.Timestamp(periods[dup[0]]).date()} appears twice")

    frames = []
    for offset, key in enumerate(keys):
        col = offset + 1
        name, unit = _split_name(_text(sheet, 2, col), report, entry.sheet, col)
        col_types = np.array(sheet.col_types(col, start_rowx=3, end_rowx=3 + last))
        values = sheet.col_values(col, start_rowx=3, end_rowx=3 + last)
        numeric = col_types == xlrd.XL_CELL_NUMBER
        # Vendor quirk: weeks before a series began are empty cells (not zero, not "NA").
        empty = np.isin(col_types, _EMPTY_TYPES)
        if (odd := np.flatnonzero(~(numeric | empty))).size:
            row = int(odd[0]) + 4
            raise ReportParseError(report, row, f"{where} {key} row {row}: {values[odd[0]]!r} is not a number")
        keep = np.flatnonzero(numeric)
        frames.append(pd.DataFrame({
            "series_id": key,
            "period": periods[keep],
            "value": np.asarray(values, dtype="object")[keep].astype("float64"),
            "unit": unit,
            "series_name": name,
            "frequency": entry.frequency,
            "sheet": entry.sheet,
        }))
    return pd.concat(frames, ignore_index=True)


def parse_eia_workbook(content: bytes, report: str = WORKBOOK_REPORT) -> pd.DataFrame:
    """Every data sheet of an EIA workbook as long rows (WORKBOOK_COLUMNS), sorted by sheet, series, period.

    A workbook's sheets may repeat a Sourcekey under another frequency (psw01: "Data 2" weekly and "Data 3"
    4-week averages of the same series), so rows are unique on (series_id, frequency, period)."""
    book = open_workbook(content, report)
    contents = read_contents(book, report)
    missing = [e.sheet for e in contents.sheets if e.sheet not in book.sheet_names()]
    if missing:
        raise ReportParseError(report, None, f"Contents lists {', '.join(missing)}, the workbook lacks them")
    frame = pd.concat([_parse_sheet(book, e, report) for e in contents.sheets], ignore_index=True)
    if (dup := frame.duplicated(["series_id", "frequency", "period"])).any():
        first = frame[dup].iloc[0]
        raise ReportParseError(report, None, f"{first['series_id']} ({first['frequency']}) has two values for "
                               f"{first['period'].date()} in different sheets")
    frame["period"] = frame["period"].astype("datetime64[ns]")
    return frame.loc[:, list(WORKBOOK_COLUMNS)]


def latest_periods(content: bytes, report: str = WORKBOOK_REPORT) -> dict[str, dt.date]:
    """Latest period of each data sheet, from the Contents sheet only (cheap: no data sheet is read)."""
    contents = read_contents(open_workbook(content, report), report)
    out = {}
    for entry in contents.sheets:
        for fmt in ("%m/%d/%Y", "%m/%Y", "%Y"):
            try:
                out[entry.sheet] = dt.datetime.strptime(entry.latest, fmt).date()
                break
            except ValueError:
                continue
        else:
            raise ReportParseError(report, None, f"Contents 'Latest Data for' of {entry.sheet} is "
                                   f"{entry.latest!r}, not a date")
    return out
