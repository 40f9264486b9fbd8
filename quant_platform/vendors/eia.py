"""The EIA side of the vendor simulator: the API v2 (recorded answers, one derived route) and synthetic WPSR weeks.

Never presents derived numbers as EIA's: a derived API answer says so in its description, a synthetic week in its docstring.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from quant_platform.vendors.core import (
    Answer,
    CatalogEntry,
    CatalogSource,
    Params,
    SimulatedSite,
    SyntheticWeekError,
    VendorFileFormatError,
    VendorSimulatorError,
    read_vendor_file,
    split_target,
)

EIA_API_PREFIX = "/v2/"  # api.eia.gov
EIA_API_MAX_LENGTH = 5000
EIA_API_VERSION = "2.1.8"

# Deterministic nudges used to synthesise a later WPSR week from a real one.
WPSR_STOCK_GROWTH_PER_WEEK = 0.003
WPSR_FLOW_GROWTH_PER_WEEK = 0.002

_EN_DASH = "\u2013"  # byte 0x96 in windows-1252; the WPSR writes "– –" for "not meaningful"


# --------------------------------------------------------------------------------------------------
# API v2: recorded answers, and one route derived from a dnav series file
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


def _read_api_recording(data_dir: Path, recording: ApiRecording) -> bytes:
    body = read_vendor_file(data_dir, recording.source)
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VendorFileFormatError(f"{recording.source}: not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("response"), dict):
        raise VendorFileFormatError(f"{recording.source}: no 'response' object, not an EIA API v2 answer")
    return body


def api_recordings(recordings: Iterable[ApiRecording]) -> CatalogSource:
    """Recorded API v2 answers, each served verbatim to the query it answered (however that query is spelled)."""

    def entries(data_dir: Path) -> list[CatalogEntry]:
        return [CatalogEntry(r.path, _read_api_recording(data_dir, r), "application/json",
                             f"{r.source} verbatim (a recorded EIA answer)") for r in recordings]

    return entries


def dnav_history_file(path: str, source: str) -> CatalogSource:
    """A dnav "Download Series History" CSV served verbatim, its layout checked when the catalog is built (the
    derived API route reads it)."""

    def entries(data_dir: Path) -> list[CatalogEntry]:
        body = read_vendor_file(data_dir, source)
        parse_dnav_rows(body)  # fail now, not on the first API request
        return [CatalogEntry(path, body, "text/csv", f"{source} verbatim")]

    return entries


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


def api_query_key(params: Iterable[tuple[str, str]]) -> tuple[Any, ...]:
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


def parse_dnav_rows(content: bytes) -> list[tuple[date, str]]:
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


def answer_eia_wstk(params: list[tuple[str, str]], dnav: bytes, route: str) -> tuple[int, dict[str, Any]]:
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
    for week, value in parse_dnav_rows(dnav):
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
        "request": {"command": route, "params": echo},
        "apiVersion": EIA_API_VERSION,
    }


def _api_sort_key(row: dict[str, str], column: str) -> Any:
    if column == "value":
        try:
            return float(row.get("value", "nan"))
        except ValueError:
            return float("nan")
    return row.get(column, "")


class EiaApiV2:
    """EIA API v2 under /v2/: 403 without an api_key; a recorded answer (real bytes) to the query it answered,
    however the query is spelled; any other query on `derived_route` gets an answer DERIVED from the dnav file
    served at `derived_from` (answer_eia_wstk); anything else a JSON 404."""

    prefix = EIA_API_PREFIX

    def __init__(self, derived_route: str, derived_from: str) -> None:
        self.derived_route = derived_route
        self.derived_from = derived_from

    def generated(self) -> list[dict[str, str]]:
        return [{"path": self.derived_route, "from": self.derived_from, "when": "no recorded answer matches"}]

    def release_time(self, site: SimulatedSite, path: str, params: Params, now: float) -> float | None:
        source = self._source(site, path, params, now)
        return source[1].at if source is not None else None

    def _source(self, site: SimulatedSite, path: str, params: Params, now: float):
        """("recorded", the answer's release) or ("derived", the dnav file's release) for an API query."""
        route = path.rstrip("/") + "/"
        wanted = api_query_key(params)
        recorded = site.latest_release_where(route, lambda published: api_query_key(published) == wanted, now)
        if recorded is not None:
            return "recorded", recorded
        if route == self.derived_route:
            dnav_path, dnav_params = split_target(self.derived_from)
            dnav = site.served_release(dnav_path, dnav_params, now)
            if dnav is not None:
                return "derived", dnav
        return None

    def answer(self, site: SimulatedSite, path: str, params: Params, now: float) -> Answer:
        if not any(key == "api_key" and value for key, value in params):
            status, document = _api_error(
                403,
                "No api_key was supplied.  Please register for one at https://www.eia.gov/opendata/register.php",
            )
            return Answer(status, json.dumps(document).encode(), "application/json")
        source = self._source(site, path, params, now)
        if source is None:
            route = path.rstrip("/") + "/"
            known = route in site.served_paths(route)
            reason = (
                f"the simulator holds no recorded answer for this query on {route}"
                if known
                else f"no data route {route} here (recorded routes: {', '.join(sorted(site.served_paths(self.prefix)))})"
            )
            return Answer(404, json.dumps({"error": reason, "code": 404}).encode(), "application/json")
        kind, release = source
        if kind == "recorded":
            return Answer(200, release.body, release.content_type, release.at)
        try:
            status, document = answer_eia_wstk(list(params), release.body, self.derived_route)
        except (VendorFileFormatError, UnicodeDecodeError) as exc:
            status, document = _api_error(500, f"source series file is unreadable: {exc}")
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        return Answer(status, body, "application/json", release.at if status == 200 else None)


# --------------------------------------------------------------------------------------------------
# Synthetic later WPSR weeks (derived from a real table1.csv, for demos and release tests)
# --------------------------------------------------------------------------------------------------


def release_next_wpsr_week(site: SimulatedSite, path: str, at: float | None = None, weeks: int = 1) -> bytes:
    """Derive the next (synthetic) week from the table1.csv served at `path` now and publish it there at `at`."""
    current = site.served_release(path, (), site._clock())
    if current is None:
        raise VendorSimulatorError(f"nothing is served at {path} to derive a next week from")
    derived = next_wpsr_week(current.body, weeks)
    site.publish(path, derived, at=at, content_type=current.content_type)
    return derived


def wpsr_header(table1: bytes) -> list[str]:
    """The first header row of a table1.csv (its dates say which week it is)."""
    first_line = table1.split(b"\n", 1)[0].decode("cp1252")
    return next(csv.reader([first_line.strip()]))


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

