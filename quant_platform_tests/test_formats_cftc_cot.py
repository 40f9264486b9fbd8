"""Tests of the CFTC archive helpers (futures-and-options files, yearly and history zips) on real COT files.

Never compute an expected value with the parser under test: rows are read here with the csv module.
"""

from __future__ import annotations

import csv
import io
import zipfile

import pandas as pd
import pytest

from quant_platform.errors import ReportParseError
from quant_platform.macro.cftc.parsing import KEY_CONTRACTS
from quant_platform.macro.formats.cftc_cot import (
    COMBINED_SUM_TOLERANCE,
    COT_HISTORY,
    COT_YEARLY,
    disaggregated_futures_and_options,
    extract_cot_member,
    parse_cot,
)
from quant_platform_tests.conftest import SAMPLE_DATA

LEGACY_FO = SAMPLE_DATA / "cftc" / "legacy_futures_and_options_2026_energy.txt"
LEGACY_FUT = SAMPLE_DATA / "cftc" / "legacy_futures_only_2025_energy.txt"
DISAGG_FUT = SAMPLE_DATA / "cftc" / "disaggregated_futures_only_2021_energy.txt"


def _rows(path) -> list[dict[str, str]]:
    with open(path, encoding="latin-1", newline="") as handle:
        reader = csv.reader(handle)
        header = [c.strip() for c in next(reader)]
        return [dict(zip(header, row, strict=True)) for row in reader if row]


def test_legacy_futures_and_options_file_parses_with_the_futures_only_layout() -> None:
    """annualof.txt (deahistfo zip) has exactly the columns of annual.txt (deacot zip): one parser serves both."""
    header_fo = LEGACY_FO.read_bytes().split(b"\r\n", 1)[0]
    header_fut = LEGACY_FUT.read_bytes().split(b"\r\n", 1)[0]
    assert header_fo == header_fut
    frame = parse_cot(LEGACY_FO.read_bytes(), "legacy", futures_and_options=True)
    rows = _rows(LEGACY_FO)
    assert len(frame) == len(rows) == 54
    assert frame["futures_and_options"].all()
    assert set(frame["contract_code"]) == set(KEY_CONTRACTS)
    expected = pd.DataFrame({
        "as_of": pd.to_datetime([r["As of Date in Form YYYY-MM-DD"] for r in rows]),
        "contract_code": [r["CFTC Contract Market Code"].strip() for r in rows],
        "open_interest": [int(r["Open Interest (All)"]) for r in rows],
        "noncomm_long": [int(r["Noncommercial Positions-Long (All)"]) for r in rows],
        "comm_short": [int(r["Commercial Positions-Short (All)"]) for r in rows],
        "nonrept_long": [int(r["Nonreportable Positions-Long (All)"]) for r in rows],
    })
    got = frame[expected.columns].astype({c: "int64" for c in expected.columns[2:]})
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)
    wti = frame[(frame["contract_code"] == "067651") & (frame["as_of"] == pd.Timestamp("2026-03-03"))]
    row = next(r for r in rows if r["CFTC Contract Market Code"] == "067651" and r["As of Date in Form YYMMDD"] == "260303")
    assert wti["open_interest"].tolist() == [int(row["Open Interest (All)"])]


def test_categories_sum_to_open_interest_within_one_contract_when_options_are_combined() -> None:
    """Domain check on the real files. Vendor quirk: in futures-and-options files options enter as
    delta-weighted futures equivalents, each category rounded on its own, so the parts miss open interest
    by up to one contract; in futures-only files they add up exactly."""
    combined = parse_cot(LEGACY_FO.read_bytes(), "legacy", futures_and_options=True)
    futures = parse_cot(LEGACY_FUT.read_bytes(), "legacy", futures_and_options=False)
    for frame, tolerance in ((combined, COMBINED_SUM_TOLERANCE), (futures, 0)):
        for side in ("long", "short"):
            gap = (frame[f"tot_rept_{side}"] + frame[f"nonrept_{side}"] - frame["open_interest"]).abs()
            assert gap.max() == tolerance
    # 16 of the 54 combined rows miss by one contract on the long side (read from the file itself).
    rows = _rows(LEGACY_FO)
    misses = sum(int(r["Total Reportable Positions-Long (All)"]) + int(r["Nonreportable Positions-Long (All)"])
                 != int(r["Open Interest (All)"]) for r in rows)
    assert misses == 16


def test_disaggregated_flag_column_decides_futures_only_vs_combined() -> None:
    content = DISAGG_FUT.read_bytes()
    assert {r["FutOnly_or_Combined"] for r in _rows(DISAGG_FUT)} == {"FutOnly"}
    assert disaggregated_futures_and_options(content) is False
    frame = parse_cot(content, "disaggregated", futures_and_options=False)
    assert len(frame) == len(_rows(DISAGG_FUT)) and not frame["futures_and_options"].any()
    # The same bytes served on the combined route (com_disagg_txt zip) are refused.
    with pytest.raises(ReportParseError, match="futures only"):
        parse_cot(content, "disaggregated", futures_and_options=True)
    # The weekly file has no header: the flag is found by position.
    headerless = content.split(b"\r\n", 1)[1]
    assert disaggregated_futures_and_options(headerless) is False


def _zip(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return buffer.getvalue()


def test_zip_member_name_tells_the_flavour() -> None:
    """The real file packed as the CFTC packs it (one member): deahistfo holds annualof.txt, deacot annual.txt."""
    data = LEGACY_FO.read_bytes()
    packed = _zip("annualof.txt", data)
    assert extract_cot_member(packed, COT_YEARLY[("legacy", True)]) == data
    with pytest.raises(ReportParseError, match="annual.txt"):
        extract_cot_member(packed, COT_YEARLY[("legacy", False)])
    with pytest.raises(ReportParseError, match="not a zip"):
        extract_cot_member(data, COT_YEARLY[("legacy", True)])


def test_archive_names_and_urls() -> None:
    assert COT_YEARLY[("disaggregated", True)].url(2024) == (
        "https://www.cftc.gov/files/dea/history/com_disagg_txt_2024.zip")
    assert COT_YEARLY[("disaggregated", True)].member == "c_year.txt"
    assert COT_YEARLY[("legacy", True)].url(2026) == "https://www.cftc.gov/files/dea/history/deahistfo2026.zip"
    history = {k: (a.zip_name, a.member, a.years) for k, a in COT_HISTORY.items()}
    assert history == {
        ("disaggregated", False): ("fut_disagg_txt_hist_2006_2016.zip", "F_Disagg06_16.txt", (2006, 2016)),
        ("disaggregated", True): ("com_disagg_txt_hist_2006_2016.zip", "C_Disagg06_16.txt", (2006, 2016)),
        ("legacy", False): ("deacot1986_2016.zip", "FUT86_16.txt", (1986, 2016)),
        ("legacy", True): ("deahistfo_1995_2016.zip", "Com95_16.txt", (1995, 2016)),
    }
    sources = (SAMPLE_DATA / "SOURCES.md").read_text(encoding="utf-8")
    for archive in COT_HISTORY.values():  # every member named in the code is documented with its origin
        assert archive.member in sources and archive.zip_name in sources
        if archive.member_bytes is not None:
            assert f"{archive.member_bytes:,}" in sources
