"""The CFTC side of the vendor simulator: COT yearly files zipped as history, weekly files cut from them, synthetic weeks.

Never alters a real row it serves: the weekly file is the latest week's lines of the yearly file, byte for byte.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from quant_platform.vendors.core import (
    CatalogEntry,
    CatalogSource,
    SyntheticWeekError,
    VendorFileFormatError,
    read_vendor_file,
)

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
# Deterministic nudge used to synthesise a later COT week from a real one.
COT_MANAGED_MONEY_NUDGE_PER_WEEK = 0.02


@dataclass(frozen=True)
class CotYearFile:
    """Where a COT report's yearly sample file is served: zipped as the year's history file, and its latest week's
    rows as the current weekly file (no header), as the CFTC publishes both."""

    source: str  # sample file (header + rows), relative to the data dir
    date_column: str  # header of the column holding each row's as-of date as YYYY-MM-DD
    zip_member: str  # name of the one member of the CFTC's yearly zip ("f_year.txt", "annual.txt")
    history_path: str  # URL path template with {year}
    weekly_path: str
    disaggregated_layout: bool = False  # check the layout next_cot_week relies on


def cot_year_file(year_file: CotYearFile) -> CatalogSource:
    """The history zip of the sample's year and the weekly file of its latest week."""

    def entries(data_dir: Path) -> list[CatalogEntry]:
        body = read_vendor_file(data_dir, year_file.source)
        parsed = CftcYearFile.parse(body, year_file.source, year_file.date_column)
        if year_file.disaggregated_layout:
            parsed.check_disaggregated_layout(year_file.source)
        return [
            CatalogEntry(
                year_file.history_path.format(year=parsed.latest.year),
                deterministic_zip(year_file.zip_member, body, parsed.release_stamp()),
                "application/zip",
                f"zip of {year_file.source} as {year_file.zip_member}",
            ),
            CatalogEntry(
                year_file.weekly_path,
                parsed.latest_week_rows(),
                "text/plain",
                f"rows of {parsed.latest.isoformat()} from {year_file.source}, no header",
            ),
        ]

    return entries


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


class CftcYearFile:
    """A COT futures-only yearly file (header + rows), kept as raw lines for byte fidelity."""

    def __init__(self, header: list[str], header_line: bytes, lines: list[bytes], dates: list[date]):
        self.header = header
        self.header_line = header_line
        self.lines = lines
        self.row_dates = dates
        self.latest = max(dates)

    @classmethod
    def parse(cls, content: bytes, source: str, date_column: str) -> CftcYearFile:
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

