"""Local stand-in for the EIA and CFTC sites: real vendor files under real URL paths, scheduled releases, faults.

Never writes to the shared vendor data or contacts a vendor; it serves only real files, documented derivations, or published bytes.
"""

from __future__ import annotations

import base64
import binascii
import csv
import functools
import hashlib
import io
import itertools
import json
import re
import signal
import struct
import threading
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from quant_platform.errors import QuantPlatformError

# --------------------------------------------------------------------------------------------------
# Public constants
# --------------------------------------------------------------------------------------------------

FAULT_KINDS: tuple[str, ...] = (
    "http_500",
    "http_503",
    "timeout",
    "truncated",
    "short_body",
    "wrong_encoding",
    "gzip_bomb",
    "zip_bomb",
)
# What the two bomb faults inflate to: 2 GiB of zero bytes from a body of about 2 MB.
BOMB_INFLATED_BYTES = 2 * 1024**3
BOMB_ZIP_MEMBER = "f_year.txt"

DATA_DIR_ENV = "QP_SAMPLE_DATA"  # one variable for every sample file (platform/sample_data.py)

# Real files (relative to the data dir) the catalog is built from; see SOURCES.md next to them.
WPSR_TABLE1_SOURCE = "eia/wpsr_table1_2026-05-01.csv"
DNAV_WCESTUS1_SOURCE = "eia/dnav_WCESTUS1_weekly.csv"
CFTC_DISAGG_YEAR_SOURCE = "cftc/disaggregated_futures_only_2021_energy.txt"
CFTC_LEGACY_YEAR_SOURCE = "cftc/legacy_futures_only_2025_energy.txt"
# Real EIA API v2 answers are listed in EIA_API_RECORDINGS (files under eia/api_v2/).

# URL paths, as the vendors publish them (host names differ by vendor; the simulator serves them all).
WPSR_TABLE1_PATH = "/wpsr/table1.csv"  # ir.eia.gov
DNAV_WCESTUS1_PATH = "/dnav/pet/hist/LeafHandler.ashx?n=PET&s=WCESTUS1&f=W"  # www.eia.gov
EIA_API_PREFIX = "/v2/"  # api.eia.gov
EIA_API_WSTK_PATH = "/v2/petroleum/stoc/wstk/data/"  # recorded answers, else derived from the dnav file
CFTC_DISAGG_WEEKLY_PATH = "/dea/newcot/f_disagg.txt"  # www.cftc.gov
CFTC_LEGACY_WEEKLY_PATH = "/dea/newcot/deafut.txt"
CFTC_DISAGG_HISTORY_TEMPLATE = "/files/dea/history/fut_disagg_txt_{year}.zip"
CFTC_LEGACY_HISTORY_TEMPLATE = "/files/dea/history/deacot{year}.zip"
ADMIN_PREFIX = "/_sim/"

EIA_API_MAX_LENGTH = 5000
EIA_API_VERSION = "2.1.8"

# Columns holding the as-of date as YYYY-MM-DD in the yearly COT files (disaggregated, legacy).
DISAGG_DATE_COLUMN = "Report_Date_as_YYYY-MM-DD"
LEGACY_DATE_COLUMN = "As of Date in Form YYYY-MM-DD"

# Column positions in the CFTC disaggregated futures-only layout (the weekly file has no header).
DISAGG_YYMMDD_COLUMN = 1
DISAGG_REPORT_DATE_COLUMN = 2
DISAGG_POSITIONS_ALL_COLUMN = 7  # Open_Interest_All, then the 15 position columns in vendor order
DISAGG_POSITIONS_OLD_COLUMN = 23
DISAGG_CHANGES_ALL_COLUMN = 55
DISAGG_PCT_ALL_COLUMN = 71
DISAGG_PCT_OLD_COLUMN = 87
DISAGG_BLOCK_COLUMNS = (
    "Open_Interest",
    "Prod_Merc_Positions_Long",
    "Prod_Merc_Positions_Short",
    "Swap_Positions_Long",
    "Swap__Positions_Short",
    "Swap__Positions_Spread",
    "M_Money_Positions_Long",
    "M_Money_Positions_Short",
    "M_Money_Positions_Spread",
    "Other_Rept_Positions_Long",
    "Other_Rept_Positions_Short",
    "Other_Rept_Positions_Spread",
    "Tot_Rept_Positions_Long",
    "Tot_Rept_Positions_Short",
    "NonRept_Positions_Long",
    "NonRept_Positions_Short",
)
(
    _OI,
    _PM_LONG,
    _PM_SHORT,
    _SWAP_LONG,
    _SWAP_SHORT,
    _SWAP_SPREAD,
    _MM_LONG,
    _MM_SHORT,
    _MM_SPREAD,
    _OTHER_LONG,
    _OTHER_SHORT,
    _OTHER_SPREAD,
    _TOT_LONG,
    _TOT_SHORT,
    _NONREPT_LONG,
    _NONREPT_SHORT,
) = range(16)

# Deterministic nudges used to synthesise a later week from a real one.
WPSR_STOCK_GROWTH_PER_WEEK = 0.003
WPSR_FLOW_GROWTH_PER_WEEK = 0.002
COT_MANAGED_MONEY_NUDGE_PER_WEEK = 0.02

_EN_DASH = "\u2013"  # byte 0x96 in windows-1252; the WPSR writes "– –" for "not meaningful"
_HTML_PAGES = {
    404: b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>",
    405: b"<html><head><title>405 Method Not Allowed</title></head><body><h1>Method Not Allowed</h1></body></html>",
    500: b"<html><head><title>500 Internal Server Error</title></head>"
    b"<body><h1>Internal Server Error</h1></body></html>",
    503: b"<html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1></body></html>",
}
_CONTENT_TYPES_BY_SUFFIX = {
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".zip": "application/zip",
    ".json": "application/json",
    ".xls": "application/vnd.ms-excel",
    ".ashx": "text/csv",
}


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class VendorSimulatorError(QuantPlatformError):
    """Base class of every failure raised by the vendor simulator (the CLI prints it as one line)."""


class VendorDataDirNotFoundError(VendorSimulatorError, FileNotFoundError):
    """The folder with the real vendor files (eia/, cftc/) or one of its files is missing."""


class VendorFileFormatError(VendorSimulatorError, ValueError):
    """A real vendor file does not have the layout the simulator derives its catalog from."""


class FaultKindError(VendorSimulatorError, ValueError):
    """inject_fault was given a kind that is not in FAULT_KINDS."""


class SyntheticWeekError(VendorSimulatorError, ValueError):
    """A later vendor week cannot be derived from the given file."""


class AdminRequestError(VendorSimulatorError, ValueError):
    """A request to the /_sim/ admin API is malformed (answered with HTTP 400)."""


class SimulatorNotRunningError(VendorSimulatorError, RuntimeError):
    """The simulator has to be started before it has a base URL."""


# --------------------------------------------------------------------------------------------------
# Data directory and catalog
# --------------------------------------------------------------------------------------------------


def resolve_data_dir(data_dir: Path | str | None = None) -> Path:
    """Folder holding eia/ and cftc/: the argument, else $QP_SAMPLE_DATA, else the packaged sample data."""
    from quant_platform.platform.sample_data import SampleDataNotFoundError, sample_data_dir

    try:
        return sample_data_dir(data_dir)
    except SampleDataNotFoundError as exc:
        raise VendorDataDirNotFoundError(str(exc)) from None


@dataclass(frozen=True)
class CatalogEntry:
    """One file the simulator serves from the start, and where its bytes come from."""

    path: str
    body: bytes
    content_type: str
    origin: str


def _read_vendor_file(data_dir: Path, relative: str) -> bytes:
    location = data_dir / relative
    try:
        return location.read_bytes()
    except FileNotFoundError as exc:
        raise VendorDataDirNotFoundError(
            f"vendor file {location} is missing; {DATA_DIR_ENV} must point at the folder with eia/ and "
            "cftc/ described in SOURCES.md"
        ) from exc


def build_catalog(data_dir: Path) -> list[CatalogEntry]:
    """Everything served when preload=True, built from the real files under data_dir (read only).

    Every CFTC and EIA file is served as its vendor published it (the yearly files zipped, the weekly
    files as the latest week's rows of the yearly file). The EIA API v2 serves the recorded answers of
    EIA_API_RECORDINGS byte for byte to the queries they answered; any other query on the wstk route gets
    an answer DERIVED from the dnav WCESTUS1 file (see _answer_eia_wstk).
    """
    wpsr = _read_vendor_file(data_dir, WPSR_TABLE1_SOURCE)
    dnav = _read_vendor_file(data_dir, DNAV_WCESTUS1_SOURCE)
    disagg = _read_vendor_file(data_dir, CFTC_DISAGG_YEAR_SOURCE)
    legacy = _read_vendor_file(data_dir, CFTC_LEGACY_YEAR_SOURCE)
    _parse_dnav_rows(dnav)  # fail now, not on the first API request
    year_file = _CftcYearFile.parse(disagg, CFTC_DISAGG_YEAR_SOURCE, DISAGG_DATE_COLUMN)
    year_file.check_disaggregated_layout(CFTC_DISAGG_YEAR_SOURCE)
    legacy_file = _CftcYearFile.parse(legacy, CFTC_LEGACY_YEAR_SOURCE, LEGACY_DATE_COLUMN)
    recorded = [
        CatalogEntry(
            recording.path,
            _read_api_recording(data_dir, recording),
            "application/json",
            f"{recording.source} verbatim (a recorded EIA answer)",
        )
        for recording in EIA_API_RECORDINGS
    ]
    return [
        CatalogEntry(WPSR_TABLE1_PATH, wpsr, "text/csv", f"{WPSR_TABLE1_SOURCE} verbatim"),
        CatalogEntry(DNAV_WCESTUS1_PATH, dnav, "text/csv", f"{DNAV_WCESTUS1_SOURCE} verbatim"),
        CatalogEntry(
            CFTC_DISAGG_HISTORY_TEMPLATE.format(year=year_file.latest.year),
            deterministic_zip("f_year.txt", disagg, year_file.release_stamp()),
            "application/zip",
            f"zip of {CFTC_DISAGG_YEAR_SOURCE} as f_year.txt",
        ),
        CatalogEntry(
            CFTC_DISAGG_WEEKLY_PATH,
            year_file.latest_week_rows(),
            "text/plain",
            f"rows of {year_file.latest.isoformat()} from {CFTC_DISAGG_YEAR_SOURCE}, no header",
        ),
        CatalogEntry(
            CFTC_LEGACY_HISTORY_TEMPLATE.format(year=legacy_file.latest.year),
            deterministic_zip("annual.txt", legacy, legacy_file.release_stamp()),
            "application/zip",
            f"zip of {CFTC_LEGACY_YEAR_SOURCE} as annual.txt",
        ),
        CatalogEntry(
            CFTC_LEGACY_WEEKLY_PATH,
            legacy_file.latest_week_rows(),
            "text/plain",
            f"rows of {legacy_file.latest.isoformat()} from {CFTC_LEGACY_YEAR_SOURCE}, no header",
        ),
        *recorded,
    ]


def deterministic_zip(member: str, data: bytes, date_time: tuple[int, int, int, int, int, int]) -> bytes:
    """A one-member deflated zip whose bytes depend only on the arguments (so its sha256 is stable)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(member, date_time=date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = 0
        info.external_attr = 0
        archive.writestr(info, data, compresslevel=6)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# EIA: API v2 recorded answers, and the wstk route derived from the dnav series file
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRecording:
    """A real EIA API v2 answer kept verbatim under eia/api_v2/, and the query it is served for."""

    source: str  # file, relative to the data dir
    route: str  # URL path on api.eia.gov
    query: str  # the query it answered, without api_key (parameter spelling and order do not matter)

    @property
    def path(self) -> str:
        return f"{self.route}?{self.query}"


# Where each answer was recorded, and how, is in SOURCES.md. The OpenBB cassettes' queries are given as
# recorded; myeia's WCESTUS1 query carried start=1954-10-14&end=2029-10-14, a window wider than the series
# (1982-08-20 on), so its answer is the answer to the same query without start/end: the query the platform
# sends (macro.eia.series.api_v2_request), which is the one listed.
EIA_API_RECORDINGS: tuple[ApiRecording, ...] = (
    ApiRecording(
        "eia/api_v2/petroleum-stoc-wstk_WCESTUS1_weekly_period-desc_offset-0_length-5000.json",
        EIA_API_WSTK_PATH,
        "frequency=weekly&data[0]=value&facets[series][]=WCESTUS1&sort[0][column]=period"
        "&sort[0][direction]=desc&offset=0&length=5000",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-stoc-wstk_WCRSTUS1_weekly_1982-08-20.json",
        EIA_API_WSTK_PATH,
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS&facets[process][]=SAE&facets[product][]=EPC0"
        "&facets[series][]=WCRSTUS1&frequency=weekly&length=5000&offset=0&sort[0][column]=period"
        "&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-pnp-wiup_WCRRIUS2_weekly_1982-08-20.json",
        "/v2/petroleum/pnp/wiup/data/",
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS&facets[process][]=YIY&facets[product][]=EPC0"
        "&facets[series][]=WCRRIUS2&frequency=weekly&length=5000&offset=0&sort[0][column]=period"
        "&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-sum-sndw_WCRRIUS2_weekly_1982-08-20.json",
        "/v2/petroleum/sum/sndw/data/",
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS&facets[duoarea][]=NUS-Z00&facets[process][]=YIY"
        "&facets[product][]=EPC0&facets[series][]=WCRRIUS2&frequency=weekly&length=5000&offset=0"
        "&sort[0][column]=period&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-move-wkly_WDIIMUS2_weekly_1982-08-20.json",
        "/v2/petroleum/move/wkly/data/",
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS-Z00&facets[process][]=IM0&facets[product][]=EPD0"
        "&facets[series][]=WDIIMUS2&frequency=weekly&length=5000&offset=0&sort[0][column]=period"
        "&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-pri-spt_RWTC_weekly_1986-01-03.json",
        "/v2/petroleum/pri/spt/data/",
        "data[0]=value&end=1986-01-03&facets[duoarea][]=RGC&facets[duoarea][]=Y44MB&facets[duoarea][]=YCUOK"
        "&facets[duoarea][]=ZEU&facets[process][]=PF4&facets[product][]=EPCWTI&facets[series][]=RWTC"
        "&frequency=weekly&length=5000&offset=0&sort[0][column]=period&sort[0][direction]=asc"
        "&start=1986-01-03",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-pri-spt_EPCBRENT_monthly_2025-01_2025-03.json",
        "/v2/petroleum/pri/spt/data/",
        "data[0]=value&end=2025-03&facets[product][]=EPCBRENT&frequency=monthly&length=5000&offset=0"
        "&sort[0][column]=period&sort[0][direction]=asc&start=2025-01",
    ),
)


def _read_api_recording(data_dir: Path, recording: ApiRecording) -> bytes:
    body = _read_vendor_file(data_dir, recording.source)
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VendorFileFormatError(f"{recording.source}: not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("response"), dict):
        raise VendorFileFormatError(f"{recording.source}: no 'response' object, not an EIA API v2 answer")
    return body


def _split_api_params(
    params: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], list[str], dict[str, list[str]], dict[int, dict[str, str]]]:
    """(single parameters, data columns, facets, sort specs) of an API v2 query string."""
    single: dict[str, str] = {}
    data_columns: list[str] = []
    facets: dict[str, list[str]] = {}
    sort_specs: dict[int, dict[str, str]] = {}
    for key, value in params:
        if re.fullmatch(r"data\[\d*\]", key):
            data_columns.append(value)
        elif match := re.fullmatch(r"facets\[([^\]]+)\]\[\d*\]", key):
            facets.setdefault(match.group(1), []).append(value)
        elif match := re.fullmatch(r"sort\[(\d+)\]\[(column|direction)\]", key):
            sort_specs.setdefault(int(match.group(1)), {})[match.group(2)] = value
        else:
            single[key] = value
    return single, data_columns, facets, sort_specs


def _api_query_key(params: Iterable[tuple[str, str]]) -> tuple[Any, ...]:
    """What an API v2 query asks for, so that equivalent spellings compare equal; api_key is left out.

    data[]=value and data[0]=value name the same column; the order of parameters and of facet values does
    not matter; offset and length default to 0 and 5000 as on api.eia.gov.
    """
    single, data_columns, facets, sort_specs = _split_api_params(params)
    single.pop("api_key", None)
    sorts = tuple(
        (spec.get("column", ""), spec.get("direction", "asc").lower()) for _, spec in sorted(sort_specs.items())
    )
    return (
        tuple(sorted(data_columns)),
        tuple(sorted((name, tuple(sorted(values))) for name, values in facets.items())),
        sorts,
        single.pop("offset", "0").strip() or "0",
        single.pop("length", str(EIA_API_MAX_LENGTH)).strip() or str(EIA_API_MAX_LENGTH),
        tuple(sorted(single.items())),
    )


_WCESTUS1_API_FIELDS = {
    "duoarea": "NUS",
    "area-name": "U.S.",
    "product": "EPC0",
    "product-name": "Crude Oil",
    "process": "SAX",
    "process-name": "Ending Stocks Excluding SPR",
    "series": "WCESTUS1",
    "series-description": "U.S. Ending Stocks excluding SPR of Crude Oil (Thousand Barrels)",
}
_API_FACETS = ("duoarea", "product", "process", "series")
_API_SORTABLE = ("period", "value", *_API_FACETS)


def _parse_dnav_rows(content: bytes) -> list[tuple[date, str]]:
    """(week, value) pairs of a dnav "Download Series History" CSV: 4 preamble lines, a header, rows."""
    text = content.decode("cp1252")
    lines = text.splitlines()  # the vendor mixes line endings
    if len(lines) < 5 or not lines[4].startswith("Week of,"):
        raise VendorFileFormatError("dnav CSV: expected 4 preamble lines and a 'Week of,...' header")
    rows: list[tuple[date, str]] = []
    for number, line in enumerate(lines[5:], start=6):
        if not line.strip():
            continue
        day_text, _, value = line.partition(",")
        try:
            month, day, year = (int(part) for part in day_text.split("/"))
            week = date(year, month, day)
        except ValueError as exc:
            raise VendorFileFormatError(f"dnav CSV line {number}: bad date {day_text!r}") from exc
        value = value.strip()
        if value:
            rows.append((week, value))
    return rows


def _api_error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": message, "code": status}


def _answer_eia_wstk(params: list[tuple[str, str]], dnav: bytes) -> tuple[int, dict[str, Any]]:
    """Status and JSON document for a wstk query no recorded answer matches: a DERIVATION, not vendor bytes.

    The rows are the dnav WCESTUS1 history file's (real values), laid out as API v2 rows with the field
    names and codes of the recorded wstk answer; filters, sorting and paging follow the API's rules.
    """
    single, data_columns, facets, sort_specs = _split_api_params(params)
    frequency = single.get("frequency", "weekly")
    if frequency != "weekly":
        return _api_error(
            400, f"Invalid frequency '{frequency}' provided. The only valid frequency is 'weekly'."
        )
    unknown_data = [column for column in data_columns if column != "value"]
    if unknown_data:
        return _api_error(400, f"Invalid data column(s) provided: {', '.join(unknown_data)}")
    unknown_facets = [name for name in facets if name not in _API_FACETS]
    if unknown_facets:
        return _api_error(400, f"Invalid facet(s) provided: {', '.join(unknown_facets)}")
    sorts: list[tuple[str, str]] = []
    for index in sorted(sort_specs):
        column = sort_specs[index].get("column", "")
        direction = sort_specs[index].get("direction", "asc").lower()
        if column not in _API_SORTABLE or direction not in ("asc", "desc"):
            return _api_error(400, f"Invalid sort[{index}]: column {column!r}, direction {direction!r}")
        sorts.append((column, direction))
    try:
        offset = int(single.get("offset", "0"))
        length = int(single.get("length", str(EIA_API_MAX_LENGTH)))
    except ValueError:
        return _api_error(400, "offset and length must be whole numbers")
    if offset < 0 or length < 0:
        return _api_error(400, "offset and length must not be negative")
    start, end = single.get("start"), single.get("end")

    rows: list[dict[str, str]] = []
    for week, value in _parse_dnav_rows(dnav):
        period = week.isoformat()
        if (start and period < start) or (end and period > end):
            continue
        row: dict[str, str] = {"period": period, **_WCESTUS1_API_FIELDS}
        if "value" in data_columns:
            row["value"] = value
            row["units"] = "MBBL"
        if all(row.get(name) in wanted for name, wanted in facets.items()):
            rows.append(row)
    for column, direction in reversed(sorts):  # stable sorts, last key first
        rows.sort(key=lambda r, c=column: _api_sort_key(r, c), reverse=direction == "desc")

    total = len(rows)
    warnings = []
    if length > EIA_API_MAX_LENGTH or ("length" not in single and total - offset > EIA_API_MAX_LENGTH):
        warnings.append(
            {
                "warning": "incomplete return",
                "description": "The API can only return 5000 rows in JSON format.  Please consider "
                "constraining your query with facet, start, or end, or using offset to paginate results.",
            }
        )
    length = min(length, EIA_API_MAX_LENGTH)
    page = rows[offset : offset + length]
    response: dict[str, Any] = {}
    if warnings:
        response["warnings"] = warnings
    response.update(
        {
            "total": str(total),
            "dateFormat": "YYYY-MM-DD",
            "frequency": "weekly",
            "data": page,
            "description": "Weekly petroleum stocks (DERIVED by the simulator from the EIA dnav WCESTUS1 "
            "history file; no recorded answer matches this query)",
        }
    )
    echo = {
        "frequency": frequency,
        "data": data_columns,
        "facets": facets,
        "start": start,
        "end": end,
        "sort": [{"column": c, "direction": d} for c, d in sorts],
        "offset": offset,
        "length": length,
    }
    return 200, {
        "response": response,
        "request": {"command": EIA_API_WSTK_PATH, "params": echo},
        "apiVersion": EIA_API_VERSION,
    }


def _api_sort_key(row: dict[str, str], column: str) -> Any:
    if column == "value":
        try:
            return float(row.get("value", "nan"))
        except ValueError:
            return float("nan")
    return row.get(column, "")


# --------------------------------------------------------------------------------------------------
# CFTC: yearly files (disaggregated, legacy) and the weekly files cut from them
# --------------------------------------------------------------------------------------------------


def _cftc_fields(line: str) -> list[str]:
    """Split one COT line on commas outside quotes, keeping each field's raw text (padding, quotes)."""
    fields: list[str] = []
    start = 0
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append(line[start:index])
            start = index + 1
    fields.append(line[start:])
    return fields


def _cftc_value(raw: str) -> str:
    return raw.strip().strip('"').strip()


def _cftc_int(raw: str) -> int | None:
    value = _cftc_value(raw)
    if value in ("", "."):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _pad_like(old: str, new: str) -> str:
    """Write `new` with the vendor padding of `old` (numbers right-aligned, codes left-aligned)."""
    if old.startswith(" "):
        return new.rjust(len(old))
    if old.endswith(" "):
        return new.ljust(len(old))
    return new


def _split_line_ending(raw_line: bytes) -> tuple[str, bytes]:
    body = raw_line.rstrip(b"\r\n")
    return body.decode("latin-1"), raw_line[len(body) :]


class _CftcYearFile:
    """A COT futures-only yearly file (header + rows), kept as raw lines for byte fidelity."""

    def __init__(self, header: list[str], header_line: bytes, lines: list[bytes], dates: list[date]):
        self.header = header
        self.header_line = header_line
        self.lines = lines
        self.row_dates = dates
        self.latest = max(dates)

    @classmethod
    def parse(cls, content: bytes, source: str, date_column: str) -> _CftcYearFile:
        """Split a yearly file into its header and rows; `date_column` holds each row's as-of date."""
        raw_lines = [line for line in content.splitlines(keepends=True) if line.strip()]
        if len(raw_lines) < 2:
            raise VendorFileFormatError(f"{source}: expected a header and at least one row")
        header_text, _ = _split_line_ending(raw_lines[0])
        header = [_cftc_value(field) for field in _cftc_fields(header_text)]
        if date_column not in header:
            raise VendorFileFormatError(f"{source}: no {date_column} column in the header")
        date_index = header.index(date_column)
        dates: list[date] = []
        for number, raw in enumerate(raw_lines[1:], start=2):
            text, _ = _split_line_ending(raw)
            fields = _cftc_fields(text)
            if len(fields) != len(header):
                raise VendorFileFormatError(
                    f"{source} line {number}: {len(fields)} fields, header has {len(header)}"
                )
            try:
                dates.append(date.fromisoformat(_cftc_value(fields[date_index])))
            except ValueError as exc:
                raise VendorFileFormatError(f"{source} line {number}: bad report date") from exc
        return cls(header, raw_lines[0], raw_lines[1:], dates)

    def check_disaggregated_layout(self, source: str) -> None:
        """The position columns sit where next_cot_week expects them (DISAGG_POSITIONS_ALL_COLUMN on)."""
        for offset, name in enumerate(DISAGG_BLOCK_COLUMNS):
            at = DISAGG_POSITIONS_ALL_COLUMN + offset
            if at >= len(self.header) or self.header[at] != f"{name}_All":
                raise VendorFileFormatError(f"{source}: unexpected column order near {name}_All")

    def latest_week_rows(self) -> bytes:
        """The weekly file (f_disagg.txt, deafut.txt): the latest report date's rows, byte for byte, no header."""
        return b"".join(
            line for line, day in zip(self.lines, self.row_dates, strict=True) if day == self.latest
        )

    def release_stamp(self) -> tuple[int, int, int, int, int, int]:
        """Zip timestamp: the Friday 15:30 after the latest Tuesday, when the CFTC would publish."""
        friday = self.latest + timedelta(days=(4 - self.latest.weekday()) % 7)
        return (friday.year, friday.month, friday.day, 15, 30, 0)


# --------------------------------------------------------------------------------------------------
# Synthetic later weeks (derived from real files, for demos and release tests)
# --------------------------------------------------------------------------------------------------

_WPSR_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2})$")


def next_wpsr_week(content: bytes, weeks: int = 1) -> bytes:
    """A SYNTHETIC later WPSR table1.csv derived from a real one, in the vendor's exact byte format.

    Every M/D/YY date in both header rows moves by 7*weeks days; each week stocks grow by 0.3% and flows
    by 0.2%, last week's level becomes the previous-week column, 'Difference' and 'Percent Change'
    columns are recomputed (year-ago columns are kept), four-week and year-to-date averages are rolled
    forward approximately. Windows-1252, the input's line endings, quoting of every field, thousands
    separators, the '– –' markers and the trailing 0x1A byte are kept. The numbers are NOT real EIA data.
    """
    if weeks < 0:
        raise SyntheticWeekError(f"weeks must be 0 or more, got {weeks}")
    for _ in range(weeks):
        content = _advance_wpsr_one_week(content)
    return content


def _parse_wpsr_date(text: str) -> date | None:
    match = _WPSR_DATE.match(text)
    if not match:
        return None
    month, day, short_year = (int(part) for part in match.groups())
    year = short_year + (1900 if short_year >= 69 else 2000)  # same pivot as strptime's %y
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _format_wpsr_date(day: date) -> str:
    return f"{day.month}/{day.day}/{day.year % 100:02d}"


def _wpsr_number(text: str) -> float | None:
    cleaned = text.strip().replace(",", "")
    if not cleaned or _EN_DASH in cleaned:
        return None
    try:
        return float(cleaned)
    except ValueError:
        return None


def _wpsr_thousandths(value: float) -> str:
    value = round(value, 3)
    return f"{0.0 if value == 0 else value:,.3f}"


def _wpsr_whole(value: float) -> str:
    return f"{int(round(value)):,d}"


def _percent_change(new: float, base: float) -> float:
    change = round((new - base) / base * 100.0, 1) if base else 0.0
    return 0.0 if change == 0 else change


def _keep_marker(original: str, replacement: str) -> str:
    return original if _EN_DASH in original else replacement


def _wpsr_fields(line: str, number: int) -> list[str]:
    if not (line.startswith('"') and line.endswith('"')):
        raise SyntheticWeekError(f"WPSR line {number} is not fully quoted: {line[:40]!r}")
    return next(csv.reader([line]))


def _advance_wpsr_one_week(content: bytes) -> bytes:
    try:
        text = content.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise SyntheticWeekError(f"WPSR file is not windows-1252: {exc}") from exc
    body = text.rstrip("\x1a")
    trailer = text[len(body) :]
    newline = "\r\n" if "\r\n" in body else "\n"
    table: str | None = None
    week_ending: date | None = None
    out_lines: list[str] = []
    for number, line in enumerate(body.split(newline), start=1):
        if not line:
            out_lines.append(line)
            continue
        fields = _wpsr_fields(line, number)
        if fields[0] == "STUB_1":
            table = "flows" if len(fields) > 1 and fields[1] == "STUB_2" else "stocks"
            expected = 13 if table == "flows" else 8
            if len(fields) != expected:
                raise SyntheticWeekError(f"WPSR line {number}: {table} header has {len(fields)} fields")
            dates = [_parse_wpsr_date(field) for field in fields]
            week_ending = next((day for day in dates if day is not None), None)
            if week_ending is None:
                raise SyntheticWeekError(f"WPSR line {number}: header without a M/D/YY date")
            fields = [
                _format_wpsr_date(day + timedelta(days=7)) if day is not None else field
                for field, day in zip(fields, dates, strict=True)
            ]
        elif table == "stocks":
            fields = _advance_stock_row(fields, number)
        elif table == "flows" and week_ending is not None:
            fields = _advance_flow_row(fields, number, week_ending)
        else:
            raise SyntheticWeekError(f"WPSR line {number}: data row before any STUB_1 header")
        out_lines.append(",".join('"' + field.replace('"', '""') + '"' for field in fields))
    return (newline.join(out_lines) + trailer).encode("cp1252")


def _advance_stock_row(fields: list[str], number: int) -> list[str]:
    # "STUB_1", this week, last week, Difference, Percent Change, year ago, Difference, Percent Change
    if len(fields) != 8:
        raise SyntheticWeekError(f"WPSR line {number}: stocks row has {len(fields)} fields, expected 8")
    current, year_ago = _wpsr_number(fields[1]), _wpsr_number(fields[5])
    if current is None:
        return fields
    level = round(current * (1.0 + WPSR_STOCK_GROWTH_PER_WEEK), 3)
    out = list(fields)
    out[1] = _wpsr_thousandths(level)
    out[2] = fields[1]
    out[3] = _keep_marker(fields[3], _wpsr_thousandths(level - current))
    out[4] = _keep_marker(fields[4], f"{_percent_change(level, current):.3f}")
    if year_ago is not None:
        out[6] = _keep_marker(fields[6], _wpsr_thousandths(level - year_ago))
        out[7] = _keep_marker(fields[7], f"{_percent_change(level, year_ago):.3f}")
    return out


def _advance_flow_row(fields: list[str], number: int, week_ending: date) -> list[str]:
    # STUB_1, STUB_2, this week, last week, Difference, year ago, Difference,
    # four-week average (this year, year ago, Percent Change), year to date (this year, year ago, Percent Change)
    if len(fields) != 13:
        raise SyntheticWeekError(f"WPSR line {number}: flows row has {len(fields)} fields, expected 13")
    current = _wpsr_number(fields[2])
    if current is None:
        return fields
    level = current + round(current * WPSR_FLOW_GROWTH_PER_WEEK)
    out = list(fields)
    out[2] = _wpsr_whole(level)
    out[3] = fields[2]
    out[4] = _keep_marker(fields[4], _wpsr_whole(level - current))
    year_ago = _wpsr_number(fields[5])
    if year_ago is not None:
        out[6] = _keep_marker(fields[6], _wpsr_whole(level - year_ago))
    four_week, four_week_year_ago = _wpsr_number(fields[7]), _wpsr_number(fields[8])
    if four_week is not None:
        # The week that drops out of the average is unknown; the old average stands in for it.
        rolled = round(four_week + (level - four_week) / 4.0)
        out[7] = _wpsr_whole(rolled)
        if four_week_year_ago is not None:
            out[9] = _keep_marker(fields[9], f"{_percent_change(rolled, four_week_year_ago):.1f}")
    to_date, to_date_year_ago = _wpsr_number(fields[10]), _wpsr_number(fields[11])
    if to_date is not None:
        next_week = week_ending + timedelta(days=7)
        if next_week.year != week_ending.year:
            averaged = level
        else:
            weeks_so_far = (week_ending.timetuple().tm_yday + 6) // 7
            averaged = round((to_date * weeks_so_far + level) / (weeks_so_far + 1))
        out[10] = _wpsr_whole(averaged)
        if to_date_year_ago is not None:
            out[12] = _keep_marker(fields[12], f"{_percent_change(averaged, to_date_year_ago):.1f}")
    return out


def next_cot_week(content: bytes, weeks: int = 1) -> bytes:
    """A SYNTHETIC later weekly f_disagg.txt (header-less) derived from a real one, byte format kept.

    Both date fields move by 7*weeks days. Each week managed money adds 2% longs taken from producers'
    shorts: M_Money long, Prod_Merc short, open interest and total reportable long/short grow by the same
    amount in the All and Old blocks (so open interest = reportable + nonreportable still holds), the
    change columns show the last week's move and the percent-of-open-interest columns are recomputed.
    Trader counts and concentration ratios are kept. The numbers are NOT real CFTC data.
    """
    if weeks < 0:
        raise SyntheticWeekError(f"weeks must be 0 or more, got {weeks}")
    if weeks == 0:
        return content
    out: list[bytes] = []
    for number, raw_line in enumerate(content.splitlines(keepends=True), start=1):
        text, ending = _split_line_ending(raw_line)
        if not text.strip():
            out.append(raw_line)
            continue
        fields = _cftc_fields(text)
        if _cftc_value(fields[0]) == "Market_and_Exchange_Names":
            raise SyntheticWeekError("the weekly COT file has no header line; this one does")
        if len(fields) < DISAGG_PCT_OLD_COLUMN + len(DISAGG_BLOCK_COLUMNS):
            raise SyntheticWeekError(f"COT line {number}: {len(fields)} fields is too few for the layout")
        _advance_cot_fields(fields, weeks, number)
        out.append(",".join(fields).encode("latin-1") + ending)
    return b"".join(out)


def _advance_cot_fields(fields: list[str], weeks: int, number: int) -> None:
    try:
        report_day = date.fromisoformat(_cftc_value(fields[DISAGG_REPORT_DATE_COLUMN]))
    except ValueError as exc:
        raise SyntheticWeekError(f"COT line {number}: bad report date") from exc
    new_day = report_day + timedelta(days=7 * weeks)
    fields[DISAGG_YYMMDD_COLUMN] = _pad_like(fields[DISAGG_YYMMDD_COLUMN], new_day.strftime("%y%m%d"))
    fields[DISAGG_REPORT_DATE_COLUMN] = _pad_like(fields[DISAGG_REPORT_DATE_COLUMN], new_day.isoformat())

    width = len(DISAGG_BLOCK_COLUMNS)
    blocks = {
        start: [_cftc_int(fields[start + offset]) for offset in range(width)]
        for start in (DISAGG_POSITIONS_ALL_COLUMN, DISAGG_POSITIONS_OLD_COLUMN)
    }
    moved = (_OI, _MM_LONG, _PM_SHORT, _TOT_LONG, _TOT_SHORT)
    all_block = blocks[DISAGG_POSITIONS_ALL_COLUMN]
    if any(all_block[offset] is None for offset in moved):
        return
    last_delta = 0
    for _ in range(weeks):
        managed_long = all_block[_MM_LONG] or 0
        last_delta = max(1, round(managed_long * COT_MANAGED_MONEY_NUDGE_PER_WEEK)) if managed_long else 0
        for block in blocks.values():
            if all(block[offset] is not None for offset in moved):
                for offset in moved:
                    block[offset] = (block[offset] or 0) + last_delta
    for start, pct_start in (
        (DISAGG_POSITIONS_ALL_COLUMN, DISAGG_PCT_ALL_COLUMN),
        (DISAGG_POSITIONS_OLD_COLUMN, DISAGG_PCT_OLD_COLUMN),
    ):
        block = blocks[start]
        for offset, value in enumerate(block):
            if value is not None:
                fields[start + offset] = _pad_like(fields[start + offset], str(value))
        open_interest = block[_OI]
        for offset in range(1, width):
            value = block[offset]
            if value is not None and open_interest is not None:
                share = 100.0 * value / open_interest if open_interest else 0.0
                fields[pct_start + offset] = _pad_like(fields[pct_start + offset], f"{share:.1f}")
    for offset in range(width):
        column = DISAGG_CHANGES_ALL_COLUMN + offset
        if _cftc_int(fields[column]) is not None:
            change = last_delta if offset in moved else 0
            fields[column] = _pad_like(fields[column], str(change))


# --------------------------------------------------------------------------------------------------
# Releases, faults and the request log
# --------------------------------------------------------------------------------------------------

_Params = tuple[tuple[str, str], ...]


def _split_target(target: str) -> tuple[str, _Params]:
    """URL path (percent-decoded) and its query parameters in a canonical (sorted) order."""
    parts = urlsplit(target)
    path = unquote(parts.path) or "/"
    return path, tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))


def _params_within(required: _Params, offered: _Params) -> bool:
    needed = Counter(required)
    have = Counter(offered)
    return all(have[item] >= count for item, count in needed.items())


@dataclass(frozen=True)
class _Release:
    at: float
    sequence: int
    body: bytes
    content_type: str
    sha256: str


@dataclass
class _PendingFault:
    path_prefix: str
    kind: str
    remaining: int
    delay_s: float


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str
    released_at: float | None = None  # set for cacheable 200 answers


def _etag_of(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def _http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


def _guess_content_type(path: str) -> str:
    suffix = Path(urlsplit(path).path).suffix.lower()
    return _CONTENT_TYPES_BY_SUFFIX.get(suffix, "application/octet-stream")


_BOMB_BLOCK = 1024 * 1024


@functools.cache
def _deflate_bomb() -> tuple[bytes, int]:
    """A raw deflate stream of BOMB_INFLATED_BYTES zero bytes, built without ever holding them: after a full
    flush the compressor starts afresh, so each 1 MiB of zeros compresses to the same ~1 KB block and the
    stream is that block repeated, then the final (empty) block. Returns the stream and its CRC-32."""
    zeros = bytes(_BOMB_BLOCK)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    repeats = BOMB_INFLATED_BYTES // _BOMB_BLOCK
    crc = 0
    for _ in range(repeats):
        crc = zlib.crc32(zeros, crc)
    return block * repeats + tail, crc


@functools.cache
def gzip_bomb() -> bytes:
    """The "gzip_bomb" body: one gzip member (served with Content-Encoding: gzip) inflating to 2 GiB."""
    stream, crc = _deflate_bomb()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + stream + struct.pack("<II", crc, BOMB_INFLATED_BYTES & 0xFFFFFFFF)


@functools.cache
def zip_bomb() -> bytes:
    """The "zip_bomb" body: a valid zip whose one .txt member declares and inflates to 2 GiB."""
    stream, crc = _deflate_bomb()
    name = BOMB_ZIP_MEMBER.encode()
    dos_time, dos_date = 0, (2021 - 1980) << 9 | 1 << 5 | 1
    sizes = (crc, len(stream), BOMB_INFLATED_BYTES)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, dos_time, dos_date, *sizes, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, dos_time, dos_date, *sizes, len(name),
                          0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    return local + stream + central + end


def _misencode(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The "wrong_encoding" fault: text re-encoded from windows-1252 to UTF-8, zips corrupted."""
    base_type = content_type.split(";")[0].strip().lower()
    if base_type in ("application/zip", "application/x-zip-compressed") or body[:2] == b"PK":
        corrupted = bytearray(body)
        start = len(corrupted) // 3
        for index in range(start, min(start + 16, len(corrupted))):
            corrupted[index] ^= 0xFF
        return bytes(corrupted), content_type
    if base_type.startswith("text/"):
        return body.decode("cp1252", errors="replace").encode("utf-8"), f"{base_type}; charset=utf-8"
    return body, content_type


# --------------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------------


class VendorSimulator:
    """EIA + CFTC download sites on one local port; the preloaded files are listed by build_catalog().

    Under /v2/ it answers as the EIA API v2: 403 without an api_key; a recorded answer (EIA_API_RECORDINGS,
    real bytes) to the query it answered, however the query is spelled; any other query on the wstk route
    gets an answer DERIVED from the dnav WCESTUS1 file (_answer_eia_wstk); anything else a JSON 404.

    The preloaded catalog is released when the simulator is built (normally right before start()), so a
    publish() made afterwards with at=None supersedes it. All times come from `clock` (epoch seconds),
    which tests replace to move time without sleeping; the "timeout" fault sleeps in real time.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        preload: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self._releases: dict[str, dict[_Params, list[_Release]]] = {}
        self._display_paths: dict[tuple[str, _Params], str] = {}
        self._faults: list[_PendingFault] = []
        self._seen: list[dict[str, Any]] = []
        self._server: _SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.data_dir: Path | None = resolve_data_dir(data_dir) if (preload or data_dir is not None) else None
        self.catalog: list[CatalogEntry] = []
        if preload and self.data_dir is not None:
            self.catalog = build_catalog(self.data_dir)
            released_at = self._clock()
            for entry in self.catalog:
                self.publish(entry.path, entry.body, at=released_at, content_type=entry.content_type)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> VendorSimulator:
        """Serve in a daemon thread; returns self. Starting a running simulator does nothing."""
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        server = _SimulatorHTTPServer((self._host, self._port), _VendorRequestHandler)
        server.simulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="vendor-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> VendorSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise SimulatorNotRunningError("the vendor simulator has no base URL until start() is called")
        host, port = self._server.server_address[:2]
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    # -- releases ----------------------------------------------------------------------------------

    def publish(
        self, path: str, body: bytes, *, at: float | None = None, content_type: str = "text/csv"
    ) -> None:
        """Release `body` at URL `path` (query allowed, matched order-insensitively) from time `at` on.

        Every release is kept: requests get the release with the latest `at` not after now (the later
        publish wins a tie), or 404 if there is none yet.
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if path.startswith(ADMIN_PREFIX):
            raise ValueError(f"paths under {ADMIN_PREFIX} belong to the admin API")
        if not isinstance(body, (bytes, bytearray)):
            raise TypeError(f"body must be bytes, got {type(body).__name__}")
        if at is not None and (isinstance(at, bool) or not isinstance(at, (int, float))):
            raise TypeError(f"at must be epoch seconds or None, got {at!r}")
        resource_path, params = _split_target(path)
        data = bytes(body)
        release = _Release(
            at=self._clock() if at is None else float(at),
            sequence=next(self._sequence),
            body=data,
            content_type=content_type,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        with self._lock:
            self._releases.setdefault(resource_path, {}).setdefault(params, []).append(release)
            self._display_paths.setdefault((resource_path, params), path)

    def release_time(self, path: str) -> float | None:
        """When the body a request to `path` would get now was released (None if it would get 404)."""
        resource_path, params = _split_target(path)
        now = self._clock()
        if resource_path.startswith(EIA_API_PREFIX):
            source = self._api_source(resource_path, params, now)
            return source[1].at if source is not None else None
        release = self._served_release(resource_path, params, now)
        return release.at if release is not None else None

    def release_next_wpsr_week(self, at: float | None = None, weeks: int = 1) -> bytes:
        """Derive the next (synthetic) week from the table1.csv served now and publish it at `at`."""
        current = self._served_release(WPSR_TABLE1_PATH, (), self._clock())
        if current is None:
            raise VendorSimulatorError(f"nothing is served at {WPSR_TABLE1_PATH} to derive a next week from")
        derived = next_wpsr_week(current.body, weeks)
        self.publish(WPSR_TABLE1_PATH, derived, at=at, content_type=current.content_type)
        return derived

    def _served_release(self, path: str, params: _Params, now: float) -> _Release | None:
        with self._lock:
            by_params = self._releases.get(path)
            if not by_params:
                return None
            best: tuple[int, _Release] | None = None
            for required, history in by_params.items():
                if not _params_within(required, params):
                    continue
                live = [release for release in history if release.at <= now]
                if not live:
                    continue
                current = max(live, key=lambda release: (release.at, release.sequence))
                if best is None or len(required) > best[0]:
                    best = (len(required), current)
            return best[1] if best else None

    # -- faults and log ----------------------------------------------------------------------------

    def inject_fault(self, path: str, kind: str, count: int = 1, delay_s: float = 5.0) -> None:
        """Make the next `count` requests whose path starts with `path` (query ignored) fail as `kind`."""
        if kind not in FAULT_KINDS:
            raise FaultKindError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a whole number of at least 1, got {count!r}")
        if isinstance(delay_s, bool) or not isinstance(delay_s, (int, float)) or delay_s < 0:
            raise ValueError(f"delay_s must be a number of seconds >= 0, got {delay_s!r}")
        prefix, _ = _split_target(path)
        with self._lock:
            self._faults.append(_PendingFault(prefix, kind, count, float(delay_s)))

    def requests_seen(self, path_prefix: str = "") -> list[dict[str, Any]]:
        """Vendor requests answered so far (not the admin API): method, path, status, at, fault."""
        with self._lock:
            return [dict(entry) for entry in self._seen if entry["path"].startswith(path_prefix)]

    def state(self) -> dict[str, Any]:
        """What /_sim/state reports: served paths with release time and sha256, schedule, pending faults."""
        now = self._clock()
        with self._lock:
            keys = [(path, params) for path, by_params in self._releases.items() for params in by_params]
            histories = {key: list(self._releases[key[0]][key[1]]) for key in keys}
            faults = [
                {"path": f.path_prefix, "kind": f.kind, "remaining": f.remaining, "delay_s": f.delay_s}
                for f in self._faults
            ]
        resources = []
        for key in sorted(keys):
            history = histories[key]
            live = [release for release in history if release.at <= now]
            current = max(live, key=lambda release: (release.at, release.sequence)) if live else None
            resources.append(
                {
                    "path": self._display_paths.get(key, key[0]),
                    "release_time": current.at if current else None,
                    "sha256": current.sha256 if current else None,
                    "bytes": len(current.body) if current else None,
                    "content_type": current.content_type if current else None,
                    "releases": len(history),
                    "scheduled": [
                        {"at": release.at, "sha256": release.sha256}
                        for release in sorted(history, key=lambda r: (r.at, r.sequence))
                        if release.at > now
                    ],
                }
            )
        return {
            "now": now,
            "resources": resources,
            "generated": [
                {"path": EIA_API_WSTK_PATH, "from": DNAV_WCESTUS1_PATH, "when": "no recorded answer matches"}
            ],
            "faults": faults,
        }

    def _take_fault(self, path: str) -> _PendingFault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return _PendingFault(fault.path_prefix, fault.kind, 1, fault.delay_s)
        return None

    def _record(self, method: str, target: str, status: int, at: float, fault: str | None) -> None:
        with self._lock:
            self._seen.append({"method": method, "path": target, "status": status, "at": at, "fault": fault})

    # -- answering ---------------------------------------------------------------------------------

    def _answer(self, path: str, params: _Params, now: float) -> _Answer:
        if path.startswith(EIA_API_PREFIX):
            return self._answer_api(path, params, now)
        release = self._served_release(path, params, now)
        if release is None:
            return _Answer(404, _HTML_PAGES[404], "text/html")
        return _Answer(200, release.body, release.content_type, release.at)

    def _recorded_api_release(self, route: str, params: _Params, now: float) -> _Release | None:
        """The live release published on `route` for a query equivalent to `params` (see _api_query_key)."""
        wanted = _api_query_key(params)
        with self._lock:
            histories = [
                history
                for published, history in self._releases.get(route, {}).items()
                if _api_query_key(published) == wanted
            ]
            live = [release for history in histories for release in history if release.at <= now]
        return max(live, key=lambda release: (release.at, release.sequence)) if live else None

    def _api_source(self, path: str, params: _Params, now: float) -> tuple[str, _Release] | None:
        """("recorded", the answer's release) or ("derived", the dnav file's release) for an API query."""
        route = path.rstrip("/") + "/"
        recorded = self._recorded_api_release(route, params, now)
        if recorded is not None:
            return "recorded", recorded
        if route == EIA_API_WSTK_PATH:
            dnav_path, dnav_params = _split_target(DNAV_WCESTUS1_PATH)
            dnav = self._served_release(dnav_path, dnav_params, now)
            if dnav is not None:
                return "derived", dnav
        return None

    def _answer_api(self, path: str, params: _Params, now: float) -> _Answer:
        """EIA API v2: 403 without api_key, a recorded answer verbatim, the wstk derivation, else 404."""
        if not any(key == "api_key" and value for key, value in params):
            status, document = _api_error(
                403,
                "No api_key was supplied.  Please register for one at https://www.eia.gov/opendata/register.php",
            )
            return _Answer(status, json.dumps(document).encode(), "application/json")
        source = self._api_source(path, params, now)
        if source is None:
            route = path.rstrip("/") + "/"
            with self._lock:
                known = route in self._releases
            reason = (
                f"the simulator holds no recorded answer for this query on {route}"
                if known
                else f"no data route {route} here (recorded routes: {', '.join(sorted(self._api_routes()))})"
            )
            return _Answer(404, json.dumps({"error": reason, "code": 404}).encode(), "application/json")
        kind, release = source
        if kind == "recorded":
            return _Answer(200, release.body, release.content_type, release.at)
        try:
            status, document = _answer_eia_wstk(list(params), release.body)
        except (VendorFileFormatError, UnicodeDecodeError) as exc:
            status, document = _api_error(500, f"source series file is unreadable: {exc}")
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        return _Answer(status, body, "application/json", release.at if status == 200 else None)

    def _api_routes(self) -> list[str]:
        with self._lock:
            return [path for path in self._releases if path.startswith(EIA_API_PREFIX)]

    def _admin_release(self, payload: dict[str, Any]) -> dict[str, Any]:
        path = _required_text(payload, "path")
        has_file, has_body = payload.get("file") is not None, payload.get("body_b64") is not None
        if has_file == has_body:
            raise AdminRequestError("give exactly one of 'file' (a server-local path) or 'body_b64'")
        if has_file:
            location = Path(_required_text(payload, "file")).expanduser()
            try:
                body = location.read_bytes()
            except OSError as exc:
                raise AdminRequestError(f"cannot read file {str(location)!r}: {exc.strerror or exc}") from exc
        else:
            try:
                body = base64.b64decode(_required_text(payload, "body_b64"), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise AdminRequestError("body_b64 is not valid base64") from exc
        at = _optional_epoch(payload, "at")
        content_type = payload.get("content_type") or _guess_content_type(path)
        if not isinstance(content_type, str):
            raise AdminRequestError("content_type must be a string")
        self.publish(path, body, at=at, content_type=content_type)
        return {
            "path": path,
            "at": at if at is not None else self.release_time(path),
            "sha256": hashlib.sha256(body).hexdigest(),
            "bytes": len(body),
        }

    def _admin_release_next_wpsr_week(self, payload: dict[str, Any]) -> dict[str, Any]:
        at = _optional_epoch(payload, "at")
        weeks = payload.get("weeks", 1)
        if isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 1:
            raise AdminRequestError("weeks must be a whole number of at least 1")
        derived = self.release_next_wpsr_week(at=at, weeks=weeks)
        first_line = derived.split(b"\n", 1)[0].decode("cp1252")
        return {
            "path": WPSR_TABLE1_PATH,
            "at": at if at is not None else self.release_time(WPSR_TABLE1_PATH),
            "sha256": hashlib.sha256(derived).hexdigest(),
            "header": next(csv.reader([first_line.strip()])),
        }

    def _admin_fault(self, payload: dict[str, Any]) -> dict[str, Any]:
        path = _required_text(payload, "path")
        kind = _required_text(payload, "kind")
        count = payload.get("count", 1)
        delay_s = payload.get("delay_s", 5.0)
        self.inject_fault(path, kind, count=count, delay_s=delay_s)
        return {"path": path, "kind": kind, "count": count, "delay_s": delay_s}


def _required_text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise AdminRequestError(f"'{name}' is required and must be a non-empty string")
    return value


def _optional_epoch(payload: dict[str, Any], name: str) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AdminRequestError(f"'{name}' must be epoch seconds or null")
    return float(value)


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------


class _SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    simulator: VendorSimulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (timeouts, truncated bodies) are part of the game, not server errors.
        return


class _VendorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "VendorSimulator/1.0"
    timeout = 30
    server: _SimulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def version_string(self) -> str:
        return self.server_version

    def handle(self) -> None:
        try:
            super().handle()
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_POST(self) -> None:
        path, _ = _split_target(self.path)
        if path.startswith(ADMIN_PREFIX):
            self._handle_admin("POST", path)
            return
        self._discard_body()
        self._send(405, [("Content-Type", "text/html"), ("Allow", "GET, HEAD")], _HTML_PAGES[405], head=False)

    # -- vendor side -------------------------------------------------------------------------------

    def _dispatch(self, head: bool) -> None:
        path, params = _split_target(self.path)
        if path.startswith(ADMIN_PREFIX):
            self._handle_admin("GET", path, head=head)
            return
        simulator = self.server.simulator
        arrived = simulator._clock()
        method = "HEAD" if head else "GET"
        fault = simulator._take_fault(path)
        kind = fault.kind if fault else None
        if fault is not None and kind == "timeout" and simulator._stopping.wait(fault.delay_s):
            self.close_connection = True
            return
        if kind in ("gzip_bomb", "zip_bomb"):
            simulator._record(method, self.path, 200, arrived, kind)
            if kind == "gzip_bomb":
                headers = [("Content-Type", _guess_content_type(path)), ("Content-Encoding", "gzip")]
                self._send(200, headers, gzip_bomb(), head=head)
            else:
                self._send(200, [("Content-Type", "application/zip")], zip_bomb(), head=head)
            return
        if kind in ("http_500", "http_503"):
            status = 500 if kind == "http_500" else 503
            headers = [("Content-Type", "text/html")]
            if status == 503:
                headers.append(("Retry-After", "1"))
            simulator._record(method, self.path, status, arrived, kind)
            self._send(status, headers, _HTML_PAGES[status], head=head)
            return

        answer = simulator._answer(path, params, simulator._clock())
        body, content_type = answer.body, answer.content_type
        headers = [("Content-Type", content_type)]
        if answer.status != 200 or answer.released_at is None:
            simulator._record(method, self.path, answer.status, arrived, kind)
            self._send(answer.status, headers, body, head=head)
            return

        last_modified = ("Last-Modified", _http_date(answer.released_at))
        if kind == "truncated":
            simulator._record(method, self.path, 200, arrived, kind)
            self._send(
                200,
                [*headers, ("ETag", _etag_of(body)), last_modified],
                body,
                head=head,
                cut_after=len(body) // 2,
            )
            self.close_connection = True
            return
        if kind == "short_body":
            body = body[: int(len(body) * 0.4)]
        elif kind == "wrong_encoding":
            body, content_type = _misencode(body, content_type)
            headers = [("Content-Type", content_type)]
        etag = _etag_of(body)
        validators = [("ETag", etag), last_modified]
        if kind in (None, "timeout") and self._not_modified(etag, answer.released_at):
            simulator._record(method, self.path, 304, arrived, kind)
            self._send(304, validators, b"", head=True)
            return
        simulator._record(method, self.path, 200, arrived, kind)
        self._send(200, [*headers, *validators], body, head=head)

    def _not_modified(self, etag: str, released_at: float) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            offered = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
            return "*" in offered or etag in offered
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since:
            try:
                since = parsedate_to_datetime(if_modified_since)
            except (TypeError, ValueError):
                return False
            if since.tzinfo is None:
                return False
            return int(released_at) <= since.timestamp()
        return False

    def _send(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        head: bool,
        cut_after: int | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body if cut_after is None else body[:cut_after])
        self.wfile.flush()

    # -- admin side --------------------------------------------------------------------------------

    def _discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0") or "0")
        except ValueError:
            self.close_connection = True
            return
        if length > 0:
            self.rfile.read(length)

    def _read_json(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0") or "0")
        except ValueError as exc:
            raise AdminRequestError("Content-Length is not a number") from exc
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return {}
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AdminRequestError(f"body is not valid JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise AdminRequestError("body must be a JSON object")
        return payload

    def _handle_admin(self, method: str, path: str, head: bool = False) -> None:
        simulator = self.server.simulator
        status = 200
        try:
            payload = self._read_json() if method == "POST" else {}
            if method == "GET" and path == "/_sim/state":
                document: dict[str, Any] = simulator.state()
            elif method == "POST" and path == "/_sim/release":
                document = simulator._admin_release(payload)
            elif method == "POST" and path == "/_sim/release-next-wpsr-week":
                document = simulator._admin_release_next_wpsr_week(payload)
            elif method == "POST" and path == "/_sim/fault":
                document = simulator._admin_fault(payload)
            else:
                status, document = 404, {"error": f"no admin endpoint {method} {path}"}
        except (VendorSimulatorError, ValueError, TypeError) as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            status, document = 400, {"error": message}
        body = json.dumps(document).encode("utf-8")
        self._send(status, [("Content-Type", "application/json")], body, head=head)


# --------------------------------------------------------------------------------------------------
# Foreground server (the `quant-platform vendors serve` command)
# --------------------------------------------------------------------------------------------------


def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    release_next_wpsr_every_s: float | None = None,
) -> None:
    """Run the simulator in the foreground until Ctrl-C or SIGTERM; prints one line with the base URL.

    With release_next_wpsr_every_s, a derived (synthetic) next WPSR week is released every N seconds.
    """
    if release_next_wpsr_every_s is not None and release_next_wpsr_every_s <= 0:
        raise VendorSimulatorError(f"--release-next-wpsr-every must be positive, got {release_next_wpsr_every_s}")
    simulator = VendorSimulator(data_dir=data_dir, host=host, port=port)
    stop_requested = threading.Event()
    previous_handler: Any = None
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        previous_handler = signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.set())
    try:
        simulator.start()
    except OSError as exc:  # port taken, address not local: a user error, one line
        raise VendorSimulatorError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    try:
        print(f"vendor simulator serving at {simulator.base_url} (data: {simulator.data_dir})", flush=True)
        interval = release_next_wpsr_every_s
        next_release = time.monotonic() + interval if interval else None
        while not stop_requested.is_set():
            wait_s = 1.0 if next_release is None else max(0.0, min(1.0, next_release - time.monotonic()))
            stop_requested.wait(wait_s)
            if next_release is not None and interval and time.monotonic() >= next_release:
                simulator.release_next_wpsr_week()
                next_release += interval
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)


# URL paths served when preload=True ({year}: 2021 for the disaggregated sample, 2025 for the legacy one);
# the API routes hold the recorded answers of EIA_API_RECORDINGS, and wstk also the dnav derivation.
CATALOG_PATHS: tuple[str, ...] = (
    WPSR_TABLE1_PATH,
    DNAV_WCESTUS1_PATH,
    *sorted({recording.route for recording in EIA_API_RECORDINGS}),
    CFTC_DISAGG_HISTORY_TEMPLATE,
    CFTC_DISAGG_WEEKLY_PATH,
    CFTC_LEGACY_HISTORY_TEMPLATE,
    CFTC_LEGACY_WEEKLY_PATH,
)

__all__ = [
    "CATALOG_PATHS",
    "DATA_DIR_ENV",
    "EIA_API_RECORDINGS",
    "BOMB_INFLATED_BYTES",
    "FAULT_KINDS",
    "AdminRequestError",
    "ApiRecording",
    "CatalogEntry",
    "FaultKindError",
    "SimulatorNotRunningError",
    "SyntheticWeekError",
    "VendorDataDirNotFoundError",
    "VendorFileFormatError",
    "VendorSimulator",
    "VendorSimulatorError",
    "build_catalog",
    "deterministic_zip",
    "gzip_bomb",
    "next_cot_week",
    "next_wpsr_week",
    "resolve_data_dir",
    "serve",
    "zip_bomb",
]
