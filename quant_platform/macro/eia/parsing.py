"""Parsers of EIA files (WPSR table1.csv, dnav history CSV, API v2 JSON) into macro.eia_* frames.

Never guess past a malformed file: raise ReportParseError, so nothing from it reaches the warehouse.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_platform.errors import ReportParseError
from quant_platform.macro.columns import LOAD_COLUMNS
from quant_platform.macro.reports.eia_series.table import TABLE as EIA_SERIES
from quant_platform.macro.reports.eia_wpsr.table import TABLE as EIA_WPSR

WPSR_REPORT = "eia_wpsr_table1"
DNAV_REPORT = "eia_dnav_history"
API_V2_REPORT = "eia_api_v2"

_LOAD_NAMES = {c.name for c in LOAD_COLUMNS}
WPSR_COLUMNS: tuple[str, ...] = tuple(c for c in EIA_WPSR.column_names if c not in _LOAD_NAMES)
SERIES_COLUMNS: tuple[str, ...] = tuple(c for c in EIA_SERIES.column_names if c not in _LOAD_NAMES)

# ---------------------------------------------------------------------------------------------------
# WPSR table1.csv
# ---------------------------------------------------------------------------------------------------

# Vendor quirk: EIA prints "not meaningful" as en dashes, byte 0x96 in Windows-1252, either a pair
# "– –" (0x96 0x20 0x96) or a lone "–". An empty cell is treated the same way.
_NOT_MEANINGFUL = re.compile(r"[\u2013\s]*")
# Vendor quirk: numbers carry thousands separators ("13,799", "-1,969").
_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_SUPPLY_STUB = re.compile(r"\((\d+)\)\s*(\S.*?)\s*")
_SLUG = re.compile(r"[^0-9a-z]+")

_CUR, _PRIOR, _YEAR_AGO = "current week", "prior week", "year ago"
_DIFF, _PCT = "Difference", "Percent Change"

# The printed columns after the stub columns, by position: (measure, header label, reference date).
# A label of None means the header prints the reference date itself in that position.
_STOCKS_LAYOUT = (
    ("level", None, _CUR),
    ("level_prior_week", None, _PRIOR),
    ("change_vs_prior_week", _DIFF, _PRIOR),
    ("pct_change_vs_prior_week", _PCT, _PRIOR),
    ("level_year_ago", None, _YEAR_AGO),
    ("change_vs_year_ago", _DIFF, _YEAR_AGO),
    ("pct_change_vs_year_ago", _PCT, _YEAR_AGO),
)
_SUPPLY_LAYOUT = (
    ("level", None, _CUR),
    ("level_prior_week", None, _PRIOR),
    ("change_vs_prior_week", _DIFF, _PRIOR),
    ("level_year_ago", None, _YEAR_AGO),
    ("change_vs_year_ago", _DIFF, _YEAR_AGO),
    ("four_week_avg", None, _CUR),
    ("four_week_avg_year_ago", None, _YEAR_AGO),
    ("four_week_avg_pct_change_vs_year_ago", _PCT, _YEAR_AGO),
    ("ytd_avg", None, _CUR),
    ("ytd_avg_year_ago", None, _YEAR_AGO),
    ("ytd_avg_pct_change_vs_year_ago", _PCT, _YEAR_AGO),
)

REQUIRED_STOCKS_SERIES = ("Crude Oil", "Commercial (Excluding SPR)", "Strategic Petroleum Reserve (SPR)")
REQUIRED_SUPPLY_LINES = (1, 7, 8, 12, 17)


@dataclass(frozen=True)
class _SubTable:
    name: str
    stubs: tuple[str, ...]
    layout: tuple[tuple[str, str | None, str], ...]
    unit: str


_STOCKS = _SubTable("stocks", ("STUB_1",), _STOCKS_LAYOUT, "million barrels")
_SUPPLY = _SubTable("supply", ("STUB_1", "STUB_2"), _SUPPLY_LAYOUT, "thousand barrels per day")


def _slug(text: str) -> str:
    return _SLUG.sub("_", text.lower()).strip("_")


def _decode_wpsr(content: bytes) -> str:
    """Check the bytes are Windows-1252 as EIA publishes them and return the text."""
    problem, line = None, None
    if content.startswith(codecs.BOM_UTF8):
        problem = "it starts with a UTF-8 byte-order mark"
    elif b"\x00" in content:
        problem = "it holds NUL bytes (UTF-16?)"
    elif (at := content.find(b"\xe2\x80\x93")) >= 0:
        problem, line = "it holds UTF-8 en dashes (bytes E2 80 93)", content.count(b"\n", 0, at) + 1
    if problem is None:
        # Vendor quirk: table1.csv ends with a DOS end-of-file byte (0x1A) after the last line.
        body = content.rstrip(b"\r\n\x1a")
        try:
            return body.decode("cp1252")
        except UnicodeDecodeError as exc:
            problem = f"byte 0x{body[exc.start]:02X} is undefined in Windows-1252"
            line = body.count(b"\n", 0, exc.start) + 1
    raise ReportParseError(WPSR_REPORT, line, f"file is not Windows-1252 as EIA publishes it: {problem}")


def _wpsr_rows(text: str):
    """Yield (1-based line, fields) of each CSV row; blank lines are skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            if row:
                yield reader.line_num, row
    except csv.Error as exc:
        raise ReportParseError(WPSR_REPORT, reader.line_num, f"malformed CSV ({exc}); truncated file?") from None


def _wpsr_date(cell: str, line: int) -> dt.date:
    # Vendor quirk: header dates are M/D/YY without zero padding ("4/24/26").
    try:
        return dt.datetime.strptime(cell.strip(), "%m/%d/%y").date()
    except ValueError:
        raise ReportParseError(WPSR_REPORT, line, f"header cell {cell!r} is not a M/D/YY date") from None


def _is_header(row: Sequence[str]) -> bool:
    return row[0].strip() == "STUB_1"


def _sub_table(row: Sequence[str]) -> _SubTable:
    return _SUPPLY if len(row) > 1 and row[1].strip() == "STUB_2" else _STOCKS


def _header_dates(row: Sequence[str], table: _SubTable, line: int) -> dict[str, dt.date]:
    """Check a sub-table header against its known layout; return its reference dates."""
    width = len(table.stubs) + len(table.layout)
    if len(row) != width:
        raise ReportParseError(WPSR_REPORT, line, f"{table.name} header has {len(row)} columns, expected "
                               f"{width}; EIA changed the layout")
    dates: dict[str, dt.date] = {}
    for (_measure, label, ref), cell in zip(table.layout, row[len(table.stubs):], strict=True):
        if label is not None:
            if cell.strip() != label:
                raise ReportParseError(WPSR_REPORT, line, f"{table.name} header has {cell!r} where "
                                       f"{label!r} was expected; EIA changed the layout")
            continue
        date = _wpsr_date(cell, line)
        if dates.setdefault(ref, date) != date:
            raise ReportParseError(WPSR_REPORT, line, f"{table.name} header prints two different "
                                   f"{ref} dates: {dates[ref]} and {date}")
    return dates


def _wpsr_value(cell: str, line: int) -> tuple[float, bool]:
    text = cell.strip()
    if _NOT_MEANINGFUL.fullmatch(text):
        return np.nan, True
    if not _NUMBER.fullmatch(text):
        raise ReportParseError(WPSR_REPORT, line, f"cell {cell!r} is neither a number nor the "
                               "'not meaningful' marker")
    return float(text.replace(",", "")), False


def _stub(row: Sequence[str], table: _SubTable, line: int) -> tuple[str, int | None, str, str]:
    """Return (section, line_no, series, series_key) of a data row."""
    if table is _STOCKS:
        series = row[0].strip()
        if not series:
            raise ReportParseError(WPSR_REPORT, line, "stocks row without a series label")
        return "Stocks", None, series, f"stocks.{_slug(series)}"
    section = row[0].strip()
    match = _SUPPLY_STUB.fullmatch(row[1].strip())
    if not section or match is None:
        raise ReportParseError(WPSR_REPORT, line, f"supply row stub {row[0]!r}, {row[1]!r} is not "
                               "'<section>', '(<line>) <series>'")
    series = match.group(2)
    # Vendor quirk: EIA numbers two different lines (33); the section slug keeps their keys apart.
    return section, int(match.group(1)), series, f"supply.{_slug(section)}.{_slug(series)}"


# Fields of one scanned WPSR value, in the order _scan_wpsr appends them.
_WPSR_RECORD = ("report_table", "section", "line_no", "series", "series_key", "measure", "reference_date",
                "value", "unit", "not_meaningful", "source_line")


def _scan_wpsr(content: bytes, *, headers_only: bool = False):
    """Walk table1.csv once; return ({table: (line, dates)}, records)."""
    headers: dict[str, tuple[int, dict[str, dt.date]]] = {}
    records: list[tuple] = []
    table: _SubTable | None = None
    dates: dict[str, dt.date] = {}
    header_line = 0
    for line, row in _wpsr_rows(_decode_wpsr(content)):
        if _is_header(row):
            table = _sub_table(row)
            if table.name in headers:
                raise ReportParseError(WPSR_REPORT, line, f"second {table.name} header (first on line "
                                       f"{headers[table.name][0]})")
            dates, header_line = _header_dates(row, table, line), line
            headers[table.name] = (line, dates)
            if headers_only and table is _STOCKS:
                break
            continue
        if table is None:
            raise ReportParseError(WPSR_REPORT, line, "data row before any table header")
        if headers_only:
            continue
        width = len(table.stubs) + len(table.layout)
        if len(row) != width:
            raise ReportParseError(WPSR_REPORT, line, f"row has {len(row)} fields, the {table.name} header "
                                   f"on line {header_line} has {width}; truncated or damaged file")
        section, line_no, series, key = _stub(row, table, line)
        for (measure, _label, ref), cell in zip(table.layout, row[len(table.stubs):], strict=True):
            value, not_meaningful = _wpsr_value(cell, line)
            unit = "percent" if "pct" in measure else table.unit
            records.append((table.name, section, line_no, series, key, measure, dates[ref], value, unit,
                            not_meaningful, line))
    return headers, records


def _week_ending(headers: dict[str, tuple[int, dict[str, dt.date]]]) -> dt.date:
    for table in (_STOCKS, _SUPPLY):
        if table.name not in headers:
            stubs = ",".join(f'"{s}"' for s in table.stubs)
            raise ReportParseError(WPSR_REPORT, None, f"no {table.name} table: its header ({stubs},...) "
                                   "is missing")
    stocks_line, stocks = headers[_STOCKS.name]
    supply_line, supply = headers[_SUPPLY.name]
    for ref in (_CUR, _PRIOR, _YEAR_AGO):
        if stocks[ref] != supply[ref]:
            raise ReportParseError(WPSR_REPORT, supply_line, f"supply header {ref} date {supply[ref]} "
                                   f"differs from the stocks header's {stocks[ref]} (line {stocks_line})")
    return stocks[_CUR]


def wpsr_week_ending(content: bytes) -> dt.date:
    """Week-ending date of a WPSR table1.csv, read from the stocks header only (cheap; for sensors)."""
    headers, _ = _scan_wpsr(content, headers_only=True)
    if _STOCKS.name not in headers:
        raise ReportParseError(WPSR_REPORT, None, 'no stocks table: its header ("STUB_1",...) is missing')
    return headers[_STOCKS.name][1][_CUR]


def parse_wpsr_table1(content: bytes) -> pd.DataFrame:
    """Both sub-tables of EIA WPSR table1.csv as macro.eia_wpsr rows (without the load columns)."""
    headers, records = _scan_wpsr(content)
    week_ending = _week_ending(headers)
    if not records:
        raise ReportParseError(WPSR_REPORT, None, "the file has table headers but no data rows")

    frame = pd.DataFrame.from_records(records, columns=_WPSR_RECORD)

    missing = [f"stocks {s!r}" for s in REQUIRED_STOCKS_SERIES
               if not ((frame["report_table"] == "stocks") & (frame["series"] == s)).any()]
    missing += [f"supply line ({n})" for n in REQUIRED_SUPPLY_LINES
                if not ((frame["report_table"] == "supply") & (frame["line_no"] == n)).any()]
    if missing:
        raise ReportParseError(WPSR_REPORT, None, f"required series missing: {', '.join(missing)}")

    duplicated = frame.duplicated(["series_key", "measure"])
    if duplicated.any():
        first = frame[duplicated].iloc[0]
        raise ReportParseError(WPSR_REPORT, int(first["source_line"]), f"series key {first['series_key']!r} "
                               "appears twice; primary key (week_ending, series_key, measure) not unique")

    frame["week_ending"] = pd.Series(pd.Timestamp(week_ending), index=frame.index, dtype="datetime64[ns]")
    frame["reference_date"] = pd.to_datetime(frame["reference_date"]).astype("datetime64[ns]")
    frame["line_no"] = frame["line_no"].astype("Int64")
    frame["value"] = frame["value"].astype("float64")
    frame["not_meaningful"] = frame["not_meaningful"].astype(bool)
    return frame.loc[:, list(WPSR_COLUMNS)]


# ---------------------------------------------------------------------------------------------------
# Series: dnav "Download Series History" CSV and API v2 JSON
# ---------------------------------------------------------------------------------------------------

# Unit phrases EIA appends to series names in dnav headers; matched as a suffix, longest first.
EIA_UNIT_PHRASES: tuple[str, ...] = tuple(sorted((
    "Thousand Barrels per Day", "Thousand Barrels", "Million Barrels per Day", "Million Barrels",
    "Barrels per Day", "Barrels", "Dollars per Barrel", "Dollars per Gallon", "Cents per Gallon",
    "Percent", "Thousand Cubic Feet", "Million Cubic Feet", "Billion Cubic Feet",
    "Dollars per Thousand Cubic Feet", "Dollars per Million Btu", "Number of Days", "Number of Elements",
), key=len, reverse=True))

_DNAV_LABELS = {"week of": "W", "day": "D", "month": "M", "year": "A"}
_DNAV_URL_FREQUENCY = re.compile(r"[?&]f=([WDMA])(?![A-Za-z])")
_DNAV_URL_SERIES = re.compile(r"[?&]s=([^&\s]+)")
_DNAV_HEADER_SEARCH = 10
# Vendor quirk: dnav dates drop the day's zero padding ("08/9/2021"); months come as "Jan-1986" or
# "01/1986", years as "1986". Periods are normalised to the start of the period.
_DNAV_FORMATS = {"W": ("%m/%d/%Y",), "D": ("%m/%d/%Y",), "M": ("%b-%Y", "%m/%Y"), "A": ("%Y",)}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

_API_FREQUENCIES = {"weekly": "W", "daily": "D", "monthly": "M", "annual": "A"}
_API_FORMATS = {"W": ("%Y-%m-%d",), "D": ("%Y-%m-%d",), "M": ("%Y-%m",), "A": ("%Y",)}
# API v2 unit codes, mapped to the unit phrases dnav prints, so both routes give identical rows.
API_V2_UNITS = {
    "MBBL": "thousand barrels",
    "MBBL/D": "thousand barrels per day",
    "$/BBL": "dollars per barrel",
    "$/GAL": "dollars per gallon",
    "MMBBL": "million barrels",
    "%": "percent",
}
# Vendor quirk: the API's series-description lacks the frequency word dnav puts first
# ("U.S. Ending Stocks ..." vs "Weekly U.S. Ending Stocks ..."); we prefix it to match dnav.
_NAME_PREFIX = {"W": "Weekly ", "D": "Daily ", "M": "Monthly "}


def _parse_periods(texts: pd.Series, formats: Sequence[str]) -> pd.Series:
    """Parse period strings trying each format in turn; NaT where none fits."""
    texts = texts.str.strip()
    periods = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[ns]")
    for fmt in formats:
        todo = periods.isna()
        if not todo.any():
            break
        periods[todo] = pd.to_datetime(texts[todo], format=fmt, errors="coerce")
    return periods


def _parse_values(texts: pd.Series) -> pd.Series:
    values = pd.to_numeric(texts.str.strip(), errors="coerce").astype("float64")
    return values.where(np.isfinite(values))


def _series_frame(report: str, series_id: str, periods: pd.Series, values: pd.Series, units: Sequence[str],
                  frequency: str, names: Sequence[str], source: str,
                  where: Sequence[tuple[int | None, str]]) -> pd.DataFrame:
    """Assemble macro.eia_series rows; `where` locates each row for error messages (line, label)."""
    if len(periods) == 0:
        raise ReportParseError(report, None, f"no observations for {series_id}")
    duplicated = periods.duplicated()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated.to_numpy())[0])
        line, label = where[i]
        raise ReportParseError(report, line, f"{label}period {periods.iloc[i].date()} appears twice")
    frame = pd.DataFrame({
        "series_id": series_id,
        "period": periods.to_numpy(dtype="datetime64[ns]"),
        "value": values.to_numpy(dtype="float64"),
        "unit": list(units),
        "frequency": frequency,
        "series_name": list(names),
        "source": source,
    })
    return frame.sort_values("period", kind="stable").reset_index(drop=True).loc[:, list(SERIES_COLUMNS)]


def _split_unit(label: str, line: int) -> tuple[str, str]:
    """Split a dnav header cell 'Weekly ... Thousand Barrels' into (series name, lowercase unit)."""
    lowered = label.lower()
    for phrase in EIA_UNIT_PHRASES:
        if lowered.endswith(" " + phrase.lower()):
            return label[: -len(phrase)].rstrip(), phrase.lower()
    raise ReportParseError(DNAV_REPORT, line, f"header {label!r} does not end with a known EIA unit "
                           f"({', '.join(EIA_UNIT_PHRASES)})")


def parse_dnav_history(content: bytes, series_id: str) -> pd.DataFrame:
    """An EIA dnav "Download Series History" CSV as macro.eia_series rows (source 'dnav')."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReportParseError(DNAV_REPORT, content.count(b"\n", 0, exc.start) + 1,
                               "file is not UTF-8/ASCII text") from None
    lines = _LINE_BREAK.split(text)

    header_at = next((i for i, ln in enumerate(lines[:_DNAV_HEADER_SEARCH])
                      if ln.partition(",")[0].strip().strip('"').lower() in _DNAV_LABELS), None)
    if header_at is None:
        raise ReportParseError(DNAV_REPORT, None, "no 'Week of,...' / 'Day,...' / 'Month,...' / 'Year,...' "
                               f"header in the first {_DNAV_HEADER_SEARCH} lines")
    header_line = header_at + 1
    label, _, series_label = lines[header_at].partition(",")
    frequency = _DNAV_LABELS[label.strip().strip('"').lower()]
    series_name, unit = _split_unit(series_label.strip().strip('"'), header_line)
    if not series_name:
        raise ReportParseError(DNAV_REPORT, header_line, f"header {series_label!r} holds no series name")

    preamble = "\n".join(lines[:header_at])
    url_frequency = _DNAV_URL_FREQUENCY.search(preamble)
    if url_frequency and url_frequency.group(1) != frequency:
        raise ReportParseError(DNAV_REPORT, header_line, f"header label {label!r} contradicts the URL's "
                               f"f={url_frequency.group(1)}")
    url_series = _DNAV_URL_SERIES.search(preamble)
    if url_series and url_series.group(1).upper() != series_id.upper():
        raise ReportParseError(DNAV_REPORT, None, f"file is for series {url_series.group(1)}, "
                               f"expected {series_id}")

    locations, dates, raw_values = [], [], []
    for i in range(header_at + 1, len(lines)):
        stripped = lines[i].strip()
        if not stripped:  # blank lines, typically trailing
            continue
        fields = stripped.split(",")
        if len(fields) != 2:
            raise ReportParseError(DNAV_REPORT, i + 1, f"row {stripped!r} has {len(fields)} fields, "
                                   "expected 2 (date,value)")
        if not fields[1].strip():  # EIA leaves gaps as empty value cells
            continue
        locations.append((i + 1, ""))
        dates.append(fields[0])
        raw_values.append(fields[1])

    periods = _parse_periods(pd.Series(dates, dtype="str"), _DNAV_FORMATS[frequency])
    values = _parse_values(pd.Series(raw_values, dtype="str"))
    for column, parsed, texts in (("date", periods, dates), ("value", values, raw_values)):
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if len(bad):
            raise ReportParseError(DNAV_REPORT, locations[bad[0]][0], f"{column} {texts[bad[0]]!r} does not "
                                   f"parse (frequency {frequency})")
    n = len(periods)
    return _series_frame(DNAV_REPORT, series_id, periods, values, [unit] * n, frequency,
                         [series_name] * n, "dnav", locations)


def _api_response(content: bytes) -> dict:
    try:
        document = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportParseError(API_V2_REPORT, None, f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ReportParseError(API_V2_REPORT, None, "top level is not a JSON object")
    if "error" in document:
        error = document["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise ReportParseError(API_V2_REPORT, None, f"EIA API error: {message}")
    response = document.get("response")
    if not isinstance(response, dict):
        raise ReportParseError(API_V2_REPORT, None, "no 'response' object in the JSON")
    return response


def api_v2_total(content: bytes) -> int:
    """response.total of an EIA API v2 answer: how many rows the query has across all pages."""
    total = _api_response(content).get("total")
    if isinstance(total, bool) or not isinstance(total, int | str) or not str(total).strip().isdigit():
        raise ReportParseError(API_V2_REPORT, None, f"response.total {total!r} is not a row count")
    return int(total)


def _api_series_name(description: str, unit: str, frequency: str) -> str:
    name = description.strip()
    # Drop the trailing " (Units)" the API appends, only when it names this row's unit.
    if name.endswith(")") and "(" in name:
        head, _, tail = name.rpartition("(")
        if tail[:-1].strip().lower() == unit:
            name = head.rstrip()
    prefix = _NAME_PREFIX.get(frequency, "")
    return name if name.startswith(prefix) else prefix + name


def parse_eia_api_v2(content: bytes, series_id: str) -> pd.DataFrame:
    """One page of an EIA API v2 series answer as macro.eia_series rows (source 'api_v2')."""
    response = _api_response(content)
    data = response.get("data")
    if not isinstance(data, list):
        raise ReportParseError(API_V2_REPORT, None, "response.data is missing or not a list")
    frequency = _API_FREQUENCIES.get(str(response.get("frequency", "")).lower())
    if frequency is None:
        raise ReportParseError(API_V2_REPORT, None, f"response.frequency {response.get('frequency')!r} is "
                               f"not one of {', '.join(_API_FREQUENCIES)}")

    locations, periods_text, raw_values, units, names = [], [], [], [], []
    name_cache: dict[tuple[str, str], str] = {}
    for i, item in enumerate(data):
        label = f"data[{i}]: "
        if not isinstance(item, dict):
            raise ReportParseError(API_V2_REPORT, None, f"{label}not an object")
        value = item.get("value")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        missing = [k for k in ("period", "series", "series-description", "units") if item.get(k) is None]
        if missing:
            raise ReportParseError(API_V2_REPORT, None, f"{label}lacks {', '.join(missing)}")
        if item["series"] != series_id:
            raise ReportParseError(API_V2_REPORT, None, f"{label}series {item['series']!r}, expected "
                                   f"{series_id!r}")
        unit = API_V2_UNITS.get(str(item["units"]).strip())
        if unit is None:
            raise ReportParseError(API_V2_REPORT, None, f"{label}unknown unit code {item['units']!r} "
                                   f"(known: {', '.join(API_V2_UNITS)})")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ReportParseError(API_V2_REPORT, None, f"{label}value {value!r} is not a number")
        key = (str(item["series-description"]), unit)
        if key not in name_cache:
            name_cache[key] = _api_series_name(key[0], unit, frequency)
        locations.append((None, label))
        periods_text.append(str(item["period"]))
        raw_values.append(str(value))
        units.append(unit)
        names.append(name_cache[key])

    periods = _parse_periods(pd.Series(periods_text, dtype="str"), _API_FORMATS[frequency])
    values = _parse_values(pd.Series(raw_values, dtype="str"))
    for column, parsed, texts in (("period", periods, periods_text), ("value", values, raw_values)):
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if len(bad):
            raise ReportParseError(API_V2_REPORT, None, f"{locations[bad[0]][1]}{column} {texts[bad[0]]!r} "
                                   f"does not parse (frequency {frequency})")
    return _series_frame(API_V2_REPORT, series_id, periods, values, units, frequency, names, "api_v2",
                         locations)
