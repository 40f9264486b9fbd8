"""CFTC Commitments of Traders archives: yearly and multi-year history zips, futures-only and futures-and-options.

Never let a futures-and-options file pass for a futures-only one: both have identical headers, so the route
(zip and member name) and, for the disaggregated report, the file's own FutOnly_or_Combined column decide.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass

import pandas as pd

from quant_platform.errors import ReportParseError

# The column layouts and the row parsers live in the futures-only module (same columns in every file).
from quant_platform.macro.cftc.parsing import (
    DISAGGREGATED_COLUMNS,
    extract_cot_zip,
    parse_cot_disaggregated,
    parse_cot_legacy,
)

COT_ARCHIVE_REPORT = "cftc_cot_archive"
CFTC_HISTORY_URL = "https://www.cftc.gov/files/dea/history/"
FLAG_COLUMN = "FutOnly_or_Combined"
FLAG_VALUES = {"FutOnly": False, "Combined": True}
# Vendor quirk: futures-and-options files count options as delta-weighted futures equivalents and round
# each trader category on its own, so long (or short) categories miss open interest by up to one contract
# (16 of 54 energy rows of the 2026 legacy file); futures-only files add up exactly. A sum-of-parts check
# must allow this much on combined files.
COMBINED_SUM_TOLERANCE = 1


@dataclass(frozen=True)
class CotArchive:
    """One kind of CFTC zip: its file name (with `{year}` for the yearly ones) and its single member."""

    report: str  # "disaggregated" or "legacy"
    futures_and_options: bool
    zip_name: str
    member: str
    years: tuple[int, int] | None = None  # the years a multi-year history zip covers
    member_bytes: int | None = None  # size of the member where a public copy established it

    def url(self, year: int | None = None) -> str:
        if "{year}" in self.zip_name:
            if year is None:
                raise ValueError(f"{self.zip_name} needs a year")
            return CFTC_HISTORY_URL + self.zip_name.format(year=year)
        return CFTC_HISTORY_URL + self.zip_name


# Yearly zips (the current year's is rewritten every Friday): (report, futures_and_options) -> archive.
COT_YEARLY: dict[tuple[str, bool], CotArchive] = {
    ("disaggregated", False): CotArchive("disaggregated", False, "fut_disagg_txt_{year}.zip", "f_year.txt"),
    ("disaggregated", True): CotArchive("disaggregated", True, "com_disagg_txt_{year}.zip", "c_year.txt"),
    ("legacy", False): CotArchive("legacy", False, "deacot{year}.zip", "annual.txt"),
    ("legacy", True): CotArchive("legacy", True, "deahistfo{year}.zip", "annualof.txt"),
}

# Multi-year history zips. Member names as the cot_reports library (github.com/NDelventhal/cot_reports)
# extracts them; sizes from the Git LFS pointers of public copies (see sample_data/SOURCES.md).
COT_HISTORY: dict[tuple[str, bool], CotArchive] = {
    ("disaggregated", False): CotArchive("disaggregated", False, "fut_disagg_txt_hist_2006_2016.zip",
                                         "F_Disagg06_16.txt", (2006, 2016), 114_020_196),
    ("disaggregated", True): CotArchive("disaggregated", True, "com_disagg_txt_hist_2006_2016.zip",
                                        "C_Disagg06_16.txt", (2006, 2016)),
    ("legacy", False): CotArchive("legacy", False, "deacot1986_2016.zip", "FUT86_16.txt", (1986, 2016),
                                  168_185_690),
    ("legacy", True): CotArchive("legacy", True, "deahistfo_1995_2016.zip", "Com95_16.txt", (1995, 2016)),
}


def zip_members(content: bytes) -> list[str]:
    """Names of a zip's files, read from its central directory only (nothing is inflated)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return [m.filename for m in archive.infolist() if not m.is_dir()]
    except zipfile.BadZipFile as exc:
        raise ReportParseError(COT_ARCHIVE_REPORT, None, f"not a zip: {exc}") from None


def extract_cot_member(content: bytes, archive: CotArchive) -> bytes:
    """The member `archive.member` of a CFTC zip, inflated under the platform's zip limits. A zip whose
    single member has another name (the other report, or the other futures/options flavour) is refused."""
    members = zip_members(content)
    if members != [archive.member]:
        raise ReportParseError(COT_ARCHIVE_REPORT, None, f"zip holds {members}, expected [{archive.member!r}] "
                               f"({archive.zip_name}): another report or futures/options flavour?")
    return extract_cot_zip(content)


def disaggregated_futures_and_options(content: bytes) -> bool:
    """True for a disaggregated futures-and-options file, False for futures only, from the file's own
    FutOnly_or_Combined column (with or without the yearly files' header row)."""
    reader = csv.reader(io.StringIO(content.decode("latin-1"), newline=""))
    flags: set[str] = set()
    at = DISAGGREGATED_COLUMNS.index(FLAG_COLUMN)
    first_line = True
    for row in reader:
        if not row:
            continue
        if first_line:
            first_line = False
            if row[0].strip() == DISAGGREGATED_COLUMNS[0]:
                names = [c.strip() for c in row]
                if FLAG_COLUMN not in names:
                    raise ReportParseError(COT_ARCHIVE_REPORT, 1, f"header has no {FLAG_COLUMN} column")
                at = names.index(FLAG_COLUMN)
                continue
        if at >= len(row):
            raise ReportParseError(COT_ARCHIVE_REPORT, reader.line_num, f"row has {len(row)} fields, no "
                                   f"{FLAG_COLUMN}")
        flags.add(row[at].strip())
    unknown = flags - set(FLAG_VALUES)
    if unknown or len(flags) != 1:
        raise ReportParseError(COT_ARCHIVE_REPORT, None, f"{FLAG_COLUMN} holds {sorted(flags)}; expected "
                               "one of FutOnly or Combined throughout the file")
    return FLAG_VALUES[flags.pop()]


def parse_cot(content: bytes, report: str, futures_and_options: bool) -> pd.DataFrame:
    """A COT text file (yearly, weekly or history member) as the futures-only parser's rows plus a
    `futures_and_options` column. The legacy files carry no flag, so the route's word is taken; a
    disaggregated file's FutOnly_or_Combined column must agree with it."""
    if report == "disaggregated":
        frame = parse_cot_disaggregated(content)
        found = disaggregated_futures_and_options(content)
        if found != futures_and_options:
            said = "futures and options" if found else "futures only"
            raise ReportParseError(COT_ARCHIVE_REPORT, None, f"the file says {said} ({FLAG_COLUMN}), the route "
                                   f"expected {'futures and options' if futures_and_options else 'futures only'}")
    elif report == "legacy":
        frame = parse_cot_legacy(content)
    else:
        raise ValueError(f"unknown COT report {report!r} (disaggregated, legacy)")
    frame["futures_and_options"] = futures_and_options
    return frame
