"""Tests of the EIA and CFTC parsers on the real vendor files in quant_platform/sample_data and damaged copies.

Never edit the sample files: every malformed input is built in memory from their bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import zipfile

import pandas as pd
import pytest

from quant_platform.errors import ReportParseError
from quant_platform.macro.cftc.parsing import (
    DISAGGREGATED_COLUMNS,
    KEY_CONTRACTS,
    LEGACY_COLUMNS,
    extract_cot_zip,
    parse_cot_disaggregated,
    parse_cot_legacy,
)
from quant_platform.macro.eia.parsing import (
    api_v2_total,
    parse_dnav_history,
    parse_eia_api_v2,
    parse_wpsr_table1,
    wpsr_week_ending,
)
from quant_platform.macro.tables import (
    CFTC_COT_DISAGGREGATED,
    CFTC_COT_LEGACY,
    EIA_SERIES,
    EIA_WPSR,
    LOAD_COLUMNS,
    WPSR_MEASURES,
)
from quant_platform_tests.conftest import SAMPLE_DATA as DATA_DIR  # noqa: E402

WPSR_PATH = DATA_DIR / "eia" / "wpsr_table1_2026-05-01.csv"
DNAV_PATH = DATA_DIR / "eia" / "dnav_WCESTUS1_weekly.csv"
COT_PATH = DATA_DIR / "cftc" / "disaggregated_futures_only_2021_energy.txt"
LEGACY_PATH = DATA_DIR / "cftc" / "legacy_futures_only_2025_energy.txt"
LEGACY_CONSOLIDATED_PATH = DATA_DIR / "cftc" / "legacy_futures_only_2025_consolidated_indexes.txt"
API_V2_DIR = DATA_DIR / "eia" / "api_v2"
API_V2_PATHS = sorted(API_V2_DIR.glob("*.json"))
API_WCESTUS1_PATH = API_V2_DIR / "petroleum-stoc-wstk_WCESTUS1_weekly_period-desc_offset-0_length-5000.json"
API_V2_BRENT_MONTHLY_PATH = API_V2_DIR / "petroleum-pri-spt_EPCBRENT_monthly_2025-01_2025-03.json"

WEEK = pd.Timestamp("2026-04-24")
PRIOR_WEEK = pd.Timestamp("2026-04-17")
YEAR_AGO = pd.Timestamp("2025-04-25")
LOAD = {c.name for c in LOAD_COLUMNS}  # stamped by macro/loading.py, not by the parsers
SERIES_COMPARED = ["series_id", "period", "value", "unit", "frequency", "series_name"]


@pytest.fixture(scope="module")
def wpsr_bytes() -> bytes:
    return WPSR_PATH.read_bytes()


@pytest.fixture(scope="module")
def wpsr(wpsr_bytes: bytes) -> pd.DataFrame:
    return parse_wpsr_table1(wpsr_bytes)


@pytest.fixture(scope="module")
def dnav_bytes() -> bytes:
    return DNAV_PATH.read_bytes()


@pytest.fixture(scope="module")
def dnav(dnav_bytes: bytes) -> pd.DataFrame:
    return parse_dnav_history(dnav_bytes, "WCESTUS1")


@pytest.fixture(scope="module")
def cot_bytes() -> bytes:
    return COT_PATH.read_bytes()


@pytest.fixture(scope="module")
def cot(cot_bytes: bytes) -> pd.DataFrame:
    return parse_cot_disaggregated(cot_bytes)


@pytest.fixture(scope="module")
def cot_rows(cot_bytes: bytes) -> list[list[str]]:
    """The real COT file re-read with the csv module, header first."""
    return list(csv.reader(io.StringIO(cot_bytes.decode("latin-1"), newline="")))


def _wpsr_cells(content: bytes) -> list[tuple[str, list[str]]]:
    """(table, printed value cells) of each data row of table1.csv, read independently of the parser."""
    table, out = None, []
    for row in csv.reader(io.StringIO(content.rstrip(b"\x1a").decode("cp1252"), newline="")):
        if row and row[0] == "STUB_1":
            table = "supply" if row[1] == "STUB_2" else "stocks"
        elif row:
            out.append((table, row[2:] if table == "supply" else row[1:]))
    return out


def _replace_line(content: bytes, marker: bytes, new: bytes | None) -> bytes:
    """Replace (or drop, new=None) the one line holding marker."""
    lines = content.split(b"\n")
    hits = [i for i, line in enumerate(lines) if marker in line]
    assert len(hits) == 1, f"marker {marker!r} found {len(hits)} times"
    if new is None:
        del lines[hits[0]]
    else:
        lines[hits[0]] = new
    return b"\n".join(lines)


def _line_of(content: bytes, marker: bytes) -> int:
    return content[: content.index(marker)].count(b"\n") + 1


# --------------------------------------------------------------------------------------------------
# EIA WPSR table1.csv
# --------------------------------------------------------------------------------------------------


def test_wpsr_columns_and_dtypes_match_table_spec(wpsr: pd.DataFrame) -> None:
    expected = ["week_ending", "report_table", "section", "line_no", "series", "series_key", "measure",
                "reference_date", "value", "unit", "not_meaningful"]
    assert list(wpsr.columns) == expected
    assert [c for c in EIA_WPSR.column_names if c not in LOAD] == expected
    assert str(wpsr["week_ending"].dtype) == "datetime64[ns]"
    assert str(wpsr["reference_date"].dtype) == "datetime64[ns]"
    assert str(wpsr["line_no"].dtype) == "Int64"
    assert wpsr["value"].dtype == "float64"
    assert wpsr["not_meaningful"].dtype == bool
    assert all(isinstance(v, str) for v in wpsr["series_key"])
    assert set(wpsr["measure"]) <= set(WPSR_MEASURES)
    assert set(wpsr["unit"]) == {"million barrels", "thousand barrels per day", "percent"}
    assert (wpsr["week_ending"] == WEEK).all()
    assert not wpsr.duplicated(["week_ending", "series_key", "measure"]).any()


def test_wpsr_every_value_matches_the_file(wpsr_bytes: bytes, wpsr: pd.DataFrame) -> None:
    cells = _wpsr_cells(wpsr_bytes)
    assert len(wpsr) == sum(len(c) for _, c in cells) == 19 * 7 + 37 * 11
    flat = [cell for _, row in cells for cell in row]
    for cell, value, not_meaningful in zip(flat, wpsr["value"], wpsr["not_meaningful"], strict=True):
        if "\u2013" in cell:
            assert not_meaningful and math.isnan(value)
        else:
            assert not not_meaningful and value == float(cell.replace(",", ""))
    assert wpsr["not_meaningful"].sum() == sum("\u2013" in c for c in flat) == 15


def test_wpsr_sanity_numbers(wpsr: pd.DataFrame) -> None:
    def cell(key: str, measure: str) -> pd.Series:
        hit = wpsr[(wpsr["series_key"] == key) & (wpsr["measure"] == measure)]
        assert len(hit) == 1
        return hit.iloc[0]

    commercial = cell("stocks.commercial_excluding_spr", "level")
    assert (commercial["value"], commercial["reference_date"]) == (459.495, WEEK)
    assert commercial["unit"] == "million barrels" and commercial["section"] == "Stocks"
    assert pd.isna(commercial["line_no"])
    prior = cell("stocks.commercial_excluding_spr", "level_prior_week")
    assert (prior["value"], prior["reference_date"]) == (465.729, PRIOR_WEEK)
    assert cell("stocks.commercial_excluding_spr", "pct_change_vs_year_ago")["reference_date"] == YEAR_AGO
    assert cell("stocks.commercial_excluding_spr", "pct_change_vs_year_ago")["unit"] == "percent"

    production = cell("supply.crude_oil_supply.domestic_production", "level")
    assert (production["value"], production["line_no"]) == (13586.0, 1)
    assert production["unit"] == "thousand barrels per day"
    assert production["section"] == "Crude Oil Supply" and production["series"] == "Domestic Production"
    assert cell("supply.crude_oil_supply.net_imports_including_spr", "level")["value"] == -688.0
    assert cell("supply.crude_oil_supply.crude_oil_input_to_refineries", "level")["line_no"] == 17

    net_imports = wpsr[(wpsr["line_no"] == 24) & wpsr["measure"].str.contains("pct")]
    assert len(net_imports) == 2 and net_imports["not_meaningful"].all()
    assert net_imports["value"].isna().all()
    transfers = wpsr[(wpsr["line_no"] == 29)].set_index("measure")
    assert transfers.loc["ytd_avg_pct_change_vs_year_ago", "not_meaningful"]
    assert transfers.loc["four_week_avg_pct_change_vs_year_ago", "value"] == 11.4


def test_wpsr_keeps_the_two_lines_33_apart(wpsr: pd.DataFrame) -> None:
    line_33 = wpsr[wpsr["line_no"] == 33]
    assert set(line_33["series_key"]) == {
        "supply.products_supplied.distillate_fuel_oil",
        "supply.net_imports_of_crude_and_petroleum_products.total",
    }
    assert len(line_33) == 2 * 11


def test_wpsr_week_ending_is_the_stocks_header_date(wpsr_bytes: bytes) -> None:
    assert wpsr_week_ending(wpsr_bytes) == dt.date(2026, 4, 24)


@pytest.mark.parametrize("variant", ["crlf", "no_dos_eof"])
def test_wpsr_line_endings_and_missing_eof_byte_parse_the_same(wpsr_bytes: bytes, wpsr: pd.DataFrame,
                                                                variant: str) -> None:
    assert b"\r" not in wpsr_bytes and wpsr_bytes.endswith(b"\n\x1a")  # as stored here: LF, then 0x1A
    content = wpsr_bytes.replace(b"\n", b"\r\n") if variant == "crlf" else wpsr_bytes[:-1]
    pd.testing.assert_frame_equal(parse_wpsr_table1(content), wpsr)


@pytest.mark.parametrize("variant", ["utf8", "bom", "utf16"])
def test_wpsr_rejects_files_not_in_windows_1252(wpsr_bytes: bytes, variant: str) -> None:
    text = wpsr_bytes.decode("cp1252")
    content = {
        "utf8": text.encode("utf-8"),
        "bom": b"\xef\xbb\xbf" + wpsr_bytes,
        "utf16": text.encode("utf-16"),
    }[variant]
    for parse in (parse_wpsr_table1, wpsr_week_ending):
        with pytest.raises(ReportParseError, match="not Windows-1252 as EIA publishes it") as err:
            parse(content)
        if variant == "utf8":
            assert err.value.line == _line_of(wpsr_bytes, b"\x96")


def test_wpsr_truncated_in_the_middle_fails_at_the_cut(wpsr_bytes: bytes) -> None:
    cut = wpsr_bytes[: len(wpsr_bytes) // 2]
    with pytest.raises(ReportParseError, match="truncated") as err:
        parse_wpsr_table1(cut)
    assert err.value.line == cut.count(b"\n") + 1


def test_wpsr_row_with_a_missing_field_fails(wpsr_bytes: bytes) -> None:
    content = wpsr_bytes.replace(b'"13,586","13,585",', b'"13,586",', 1)
    with pytest.raises(ReportParseError, match="12 fields") as err:
        parse_wpsr_table1(content)
    assert err.value.line == _line_of(wpsr_bytes, b'"13,586"')


@pytest.mark.parametrize(("marker", "named"), [
    (b"(17)   Crude Oil Input to Refineries", "(17)"),
    (b'"Commercial (Excluding SPR)"', "Commercial (Excluding SPR)"),
    (b"(7)     Net Imports (Including SPR)", "(7)"),
])
def test_wpsr_missing_required_series_is_named(wpsr_bytes: bytes, marker: bytes, named: str) -> None:
    with pytest.raises(ReportParseError, match="required series missing") as err:
        parse_wpsr_table1(_replace_line(wpsr_bytes, marker, None))
    assert named in err.value.reason


def test_wpsr_bad_number_names_line_and_text(wpsr_bytes: bytes) -> None:
    content = wpsr_bytes.replace(b'"13,586"', b'"13,5x6"', 1)
    with pytest.raises(ReportParseError, match="13,5x6") as err:
        parse_wpsr_table1(content)
    assert err.value.line == _line_of(wpsr_bytes, b'"13,586"') == 22


def test_wpsr_duplicate_series_breaks_the_primary_key(wpsr_bytes: bytes) -> None:
    line = wpsr_bytes.split(b"\n")[37]  # (17) Crude Oil Input to Refineries
    assert b"(17)" in line
    content = _replace_line(wpsr_bytes, b"(17)   Crude", line + b"\n" + line)
    with pytest.raises(ReportParseError, match="twice") as err:
        parse_wpsr_table1(content)
    assert err.value.line == 39


def test_wpsr_headers_must_agree_on_the_week(wpsr_bytes: bytes) -> None:
    supply_header = wpsr_bytes.split(b"\n")[20]
    assert supply_header.startswith(b'"STUB_1","STUB_2"')
    shifted = supply_header.replace(b"4/24/26", b"5/1/26").replace(b"4/17/26", b"4/24/26")
    shifted = shifted.replace(b"4/25/25", b"5/2/25")
    with pytest.raises(ReportParseError, match="differs from the stocks header"):
        parse_wpsr_table1(_replace_line(wpsr_bytes, b'"STUB_1","STUB_2"', shifted))


def test_wpsr_missing_table_or_rows_fail(wpsr_bytes: bytes) -> None:
    lines = wpsr_bytes.split(b"\n")
    with pytest.raises(ReportParseError, match="no supply table"):
        parse_wpsr_table1(b"\n".join(lines[:20]))
    with pytest.raises(ReportParseError, match="no stocks table"):
        parse_wpsr_table1(b"\n".join(lines[20:]))
    with pytest.raises(ReportParseError, match="no data rows"):
        parse_wpsr_table1(lines[0] + b"\n" + lines[20] + b"\n")


# --------------------------------------------------------------------------------------------------
# EIA series: dnav CSV and API v2 JSON
# --------------------------------------------------------------------------------------------------


def _dnav_cells(content: bytes) -> dict[pd.Timestamp, float]:
    lines = content.decode().splitlines()[5:]
    return {pd.Timestamp(dt.datetime.strptime(d, "%m/%d/%Y")): float(v)
            for d, v in (line.split(",") for line in lines if line)}


def test_dnav_real_file(dnav_bytes: bytes, dnav: pd.DataFrame) -> None:
    assert list(dnav.columns) == [c for c in EIA_SERIES.column_names if c not in LOAD]
    assert str(dnav["period"].dtype) == "datetime64[ns]" and dnav["value"].dtype == "float64"
    expected = _dnav_cells(dnav_bytes)
    assert len(dnav) == len(expected) == 2188
    assert dict(zip(dnav["period"], dnav["value"], strict=True)) == expected
    assert dnav["period"].is_monotonic_increasing and dnav["period"].is_unique
    first, last = dnav.iloc[0], dnav.iloc[-1]
    assert (first["period"], first["value"]) == (pd.Timestamp("1982-08-20"), 338764.0)
    assert (last["period"], last["value"]) == (pd.Timestamp("2024-08-30"), 418310.0)
    assert dnav.loc[dnav["period"] == "2024-08-09", "value"].item() == 430678.0  # "08/9/2024"
    assert set(dnav["unit"]) == {"thousand barrels"}
    assert set(dnav["series_name"]) == {"Weekly U.S. Ending Stocks excluding SPR of Crude Oil"}
    assert set(dnav["frequency"]) == {"W"} and set(dnav["source"]) == {"dnav"}
    assert set(dnav["series_id"]) == {"WCESTUS1"}


@pytest.mark.parametrize("variant", ["crlf", "cr", "trailing_blank_lines"])
def test_dnav_line_endings_do_not_matter(dnav_bytes: bytes, dnav: pd.DataFrame, variant: str) -> None:
    assert b"\r" not in dnav_bytes and not dnav_bytes.endswith(b"\n")  # as stored: LF, no final newline
    content = {
        "crlf": dnav_bytes.replace(b"\n", b"\r\n"),
        "cr": dnav_bytes.replace(b"\n", b"\r"),
        "trailing_blank_lines": dnav_bytes + b"\r\n\r\n\n",
    }[variant]
    pd.testing.assert_frame_equal(parse_dnav_history(content, "WCESTUS1"), dnav)


def test_dnav_empty_value_cells_are_skipped(dnav_bytes: bytes, dnav: pd.DataFrame) -> None:
    content = dnav_bytes.replace(b"\n08/9/2024,430678\n", b"\n08/9/2024,\n")
    parsed = parse_dnav_history(content, "WCESTUS1")
    assert len(parsed) == len(dnav) - 1
    assert pd.Timestamp("2024-08-09") not in set(parsed["period"])


def test_dnav_duplicate_period_fails(dnav_bytes: bytes) -> None:
    content = dnav_bytes.replace(b"\n08/2/2024,", b"\n08/9/2024,")
    with pytest.raises(ReportParseError, match="2024-08-09 appears twice") as err:
        parse_dnav_history(content, "WCESTUS1")
    assert err.value.line == _line_of(content, b"\n08/9/2024,429321") + 1


@pytest.mark.parametrize(("old", "new", "match"), [
    (b"\n08/9/2024,430678", b"\n08/9/2024,43O678", "value '43O678'"),
    (b"\n08/9/2024,430678", b"\n2024-08-09,430678", "date '2024-08-09'"),
    (b"\n08/9/2024,430678", b"\n08/9/2024,430678,1", "3 fields"),
    (b"Crude Oil Thousand Barrels", b"Crude Oil Thousand Widgets", "known EIA unit"),
    (b"s=WCESTUS1", b"s=WCRFPUS2", "WCRFPUS2"),
    (b"&f=W", b"&f=D", "contradicts"),
])
def test_dnav_malformed_inputs_fail(dnav_bytes: bytes, old: bytes, new: bytes, match: str) -> None:
    assert old in dnav_bytes
    with pytest.raises(ReportParseError, match=match):
        parse_dnav_history(dnav_bytes.replace(old, new, 1), "WCESTUS1")


@pytest.mark.parametrize(("label", "flag", "rows", "frequency", "periods"), [
    ("Month", "M", "Feb-1986,2\r\nJan-1986,1", "M", ["1986-01-01", "1986-02-01"]),
    ("Month", "M", "02/1986,2\r\n01/1986,1", "M", ["1986-01-01", "1986-02-01"]),
    ("Year", "A", "1987,2\r\n1986,1", "A", ["1986-01-01", "1987-01-01"]),
    ("Day", "D", "01/3/2024,72.5\r\n01/2/2024,70.38", "D", ["2024-01-02", "2024-01-03"]),
])
def test_dnav_other_frequencies_start_the_period(label: str, flag: str, rows: str, frequency: str,
                                                 periods: list[str]) -> None:
    content = (
        "Cushing OK WTI Spot Price FOB\r\n"
        f"https://www.eia.gov/dnav/pet/hist/LeafHandler.ashx?n=PET&s=RWTC&f={flag}\r\n"
        "10:00:00 GMT+0000\r\nData source: U.S. Energy Information Administration\r\n"
        f"{label},Cushing OK WTI Spot Price FOB Dollars per Barrel\r\n{rows}"
    ).encode()
    parsed = parse_dnav_history(content, "RWTC")
    assert list(parsed["period"]) == [pd.Timestamp(p) for p in periods]
    assert set(parsed["frequency"]) == {frequency}
    assert set(parsed["unit"]) == {"dollars per barrel"}
    assert set(parsed["series_name"]) == {"Cushing OK WTI Spot Price FOB"}


# Real EIA API v2 answers (see SOURCES.md): the expected values are read from the JSON with the json module.
API_V2_UNITS_EXPECTED = {"MBBL": "thousand barrels", "MBBL/D": "thousand barrels per day",
                         "$/BBL": "dollars per barrel"}
API_V2_FREQUENCY = {"weekly": "W", "monthly": "M"}


def _api_period(text: str, frequency: str) -> pd.Timestamp:
    return pd.Timestamp(text if frequency == "weekly" else f"{text}-01")


@pytest.fixture(scope="module")
def api_bytes() -> bytes:
    return API_WCESTUS1_PATH.read_bytes()


@pytest.mark.parametrize("path", API_V2_PATHS, ids=lambda p: p.stem)
def test_api_v2_real_answers_parse_to_their_rows(path) -> None:
    content = path.read_bytes()
    document = json.loads(content)
    response = document["response"]
    series_id = response["data"][0]["series"]
    parsed = parse_eia_api_v2(content, series_id)
    assert len(parsed) == len(response["data"]) == int(response["total"]) == api_v2_total(content)
    frequency = response["frequency"]
    expected = {_api_period(row["period"], frequency): float(row["value"]) for row in response["data"]}
    assert dict(zip(parsed["period"], parsed["value"], strict=True)) == expected
    assert parsed["period"].is_monotonic_increasing
    assert set(parsed["unit"]) == {API_V2_UNITS_EXPECTED[row["units"]] for row in response["data"]}
    assert set(parsed["frequency"]) == {API_V2_FREQUENCY[frequency]}
    assert set(parsed["series_id"]) == {series_id} and set(parsed["source"]) == {"api_v2"}
    description = response["data"][0]["series-description"]
    assert parsed["series_name"].iloc[0] == {"weekly": "Weekly ", "monthly": "Monthly "}[frequency] + (
        description.rsplit(" (", 1)[0])


def test_api_v2_wcestus1_answer(api_bytes: bytes, dnav: pd.DataFrame) -> None:
    data = json.loads(api_bytes)["response"]["data"]
    parsed = parse_eia_api_v2(api_bytes, "WCESTUS1")
    assert all(isinstance(row["value"], str) for row in data)  # vendor quirk: numbers sent as strings
    assert [row["period"] for row in data] == sorted((row["period"] for row in data), reverse=True)
    newest, oldest = data[0], data[-1]
    assert (parsed["period"].iloc[-1], parsed["value"].iloc[-1]) == (pd.Timestamp(newest["period"]),
                                                                     float(newest["value"]))
    assert (parsed["period"].iloc[0], parsed["value"].iloc[0]) == (pd.Timestamp(oldest["period"]),
                                                                   float(oldest["value"]))
    assert set(parsed["unit"]) == {"thousand barrels"}
    # Two real files from two EIA routes agree on every week both hold, and name the series alike.
    both = parsed.merge(dnav, on="period", suffixes=("_api", "_dnav"))
    assert len(both) == len(dnav) and (both["value_api"] == both["value_dnav"]).all()
    assert set(parsed["series_name"]) == set(dnav["series_name"])


def test_api_v2_monthly_periods_start_the_month() -> None:
    content = API_V2_BRENT_MONTHLY_PATH.read_bytes()
    assert b'"units":"$\\/BBL"' in content  # vendor quirk: the API escapes '/' in JSON strings
    response = json.loads(content)["response"]
    parsed = parse_eia_api_v2(content, "RBRTE")
    assert list(parsed["period"]) == [pd.Timestamp(f"{row['period']}-01") for row in response["data"]]
    assert set(parsed["frequency"]) == {"M"} and set(parsed["unit"]) == {"dollars per barrel"}


def test_api_v2_skips_null_values(api_bytes: bytes) -> None:
    document = json.loads(api_bytes)
    dropped = document["response"]["data"][0]
    dropped["value"] = None
    parsed = parse_eia_api_v2(json.dumps(document).encode(), "WCESTUS1")
    assert len(parsed) == len(document["response"]["data"]) - 1
    assert pd.Timestamp(dropped["period"]) not in set(parsed["period"])


def _mutated(content: bytes, change) -> bytes:
    document = json.loads(content)
    change(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize(("change", "match"), [
    (lambda d: d.update(error="API_KEY_INVALID"), "EIA API error: API_KEY_INVALID"),
    (lambda d: d["response"].pop("data"), "response.data"),
    (lambda d: d["response"].update(frequency="hourly"), "hourly"),
    (lambda d: d["response"]["data"][3].pop("series-description"), r"data\[3\]: lacks series-description"),
    (lambda d: d["response"]["data"][1].update(units="BBL/FORTNIGHT"), "unknown unit code 'BBL/FORTNIGHT'"),
    (lambda d: d["response"]["data"][2].update(period="10/4/2024"), r"data\[2\]: period '10/4/2024'"),
    (lambda d: d["response"]["data"][2].update(value="4x2"), r"data\[2\]: value '4x2'"),
])
def test_api_v2_damaged_answers_fail(api_bytes: bytes, change, match: str) -> None:
    with pytest.raises(ReportParseError, match=match):
        parse_eia_api_v2(_mutated(api_bytes, change), "WCESTUS1")


def test_api_v2_other_failures(api_bytes: bytes) -> None:
    with pytest.raises(ReportParseError, match="not JSON"):
        parse_eia_api_v2(api_bytes[: len(api_bytes) // 2], "WCESTUS1")
    with pytest.raises(ReportParseError, match="expected 'WCRFPUS2'"):
        parse_eia_api_v2(api_bytes, "WCRFPUS2")
    with pytest.raises(ReportParseError, match="total"):
        api_v2_total(_mutated(api_bytes, lambda d: d["response"].pop("total")))


# --------------------------------------------------------------------------------------------------
# CFTC Commitments of Traders
# --------------------------------------------------------------------------------------------------

DISAGG_VENDOR = {
    "open_interest": "Open_Interest_All", "prod_merc_long": "Prod_Merc_Positions_Long_All",
    "prod_merc_short": "Prod_Merc_Positions_Short_All", "swap_long": "Swap_Positions_Long_All",
    "swap_short": "Swap__Positions_Short_All", "swap_spread": "Swap__Positions_Spread_All",
    "m_money_long": "M_Money_Positions_Long_All", "m_money_short": "M_Money_Positions_Short_All",
    "m_money_spread": "M_Money_Positions_Spread_All", "other_rept_long": "Other_Rept_Positions_Long_All",
    "other_rept_short": "Other_Rept_Positions_Short_All",
    "other_rept_spread": "Other_Rept_Positions_Spread_All", "tot_rept_long": "Tot_Rept_Positions_Long_All",
    "tot_rept_short": "Tot_Rept_Positions_Short_All", "nonrept_long": "NonRept_Positions_Long_All",
    "nonrept_short": "NonRept_Positions_Short_All",
}


def test_cot_disaggregated_columns_and_dtypes(cot: pd.DataFrame, cot_rows: list[list[str]]) -> None:
    expected = [c for c in CFTC_COT_DISAGGREGATED.column_names if c not in LOAD]
    assert list(cot.columns) == expected
    assert str(cot["as_of"].dtype) == "datetime64[ns]"
    assert all(str(cot[c].dtype) == "Int64" for c in DISAGG_VENDOR)
    assert tuple(cot_rows[0]) == DISAGGREGATED_COLUMNS and len(DISAGGREGATED_COLUMNS) == 191
    assert len(cot) == len(cot_rows) - 1 == 77
    assert cot["as_of"].nunique() == 11 and set(cot["as_of"].dt.day_of_week) == {1}  # Tuesdays


def test_cot_disaggregated_values_match_the_file(cot: pd.DataFrame, cot_rows: list[list[str]]) -> None:
    header = cot_rows[0]
    for parsed, raw in zip(cot.itertuples(index=False), cot_rows[1:], strict=True):
        cell = dict(zip(header, raw, strict=True))
        assert parsed.as_of == pd.Timestamp(cell["Report_Date_as_YYYY-MM-DD"])
        assert parsed.contract_code == cell["CFTC_Contract_Market_Code"]
        assert parsed.commodity_code == cell["CFTC_Commodity_Code"].strip()
        assert parsed.market_name == cell["Market_and_Exchange_Names"]
        assert parsed.contract_units == cell["Contract_Units"]
        for column, vendor in DISAGG_VENDOR.items():
            assert getattr(parsed, column) == int(cell[vendor]), (column, raw[:4])


def test_cot_disaggregated_codes_keep_leading_zeros_and_lose_padding(cot: pd.DataFrame) -> None:
    assert {"022651", "067651", "06765A", "06765T", "0676A5", "067411", "111659"} == set(cot["contract_code"])
    assert set(cot["commodity_code"]) == {"022", "067", "111"}
    assert set(cot["exchange_code"]) == {"NYME", "ICEU"}
    wti = cot[(cot["contract_code"] == "067651") & (cot["as_of"] == "2021-03-16")].iloc[0]
    assert wti["market_name"] == "CRUDE OIL, LIGHT SWEET - NEW YORK MERCANTILE EXCHANGE"
    assert wti["contract_units"] == "(CONTRACTS OF 1,000 BARRELS)"


def test_cot_disaggregated_positions_add_up(cot: pd.DataFrame) -> None:
    assert (cot["tot_rept_long"] + cot["nonrept_long"] == cot["open_interest"]).all()
    assert (cot["tot_rept_short"] + cot["nonrept_short"] == cot["open_interest"]).all()
    long_sum = cot[["prod_merc_long", "swap_long", "swap_spread", "m_money_long", "m_money_spread",
                    "other_rept_long", "other_rept_spread"]].sum(axis=1)
    assert (long_sum == cot["tot_rept_long"]).all()


def test_cot_weekly_file_without_header(cot_bytes: bytes, cot: pd.DataFrame) -> None:
    lines = cot_bytes.split(b"\r\n")
    weekly = b"\r\n".join(line for line in lines[1:] if b",2021-03-16," in line) + b"\r\n"
    parsed = parse_cot_disaggregated(weekly)
    expected = cot[cot["as_of"] == "2021-03-16"].reset_index(drop=True)
    assert len(parsed) == 7
    pd.testing.assert_frame_equal(parsed, expected)


def _cot_line(cot_bytes: bytes, n: int) -> bytes:
    return cot_bytes.split(b"\r\n")[n - 1]


def test_cot_wrong_field_count_names_the_line(cot_bytes: bytes) -> None:
    line = _cot_line(cot_bytes, 5)
    content = cot_bytes.replace(line, line.rsplit(b",", 1)[0], 1)
    with pytest.raises(ReportParseError, match="190 fields, expected 191") as err:
        parse_cot_disaggregated(content)
    assert err.value.line == 5


def test_cot_non_numeric_position_names_column_and_line(cot_bytes: bytes, cot_rows: list[list[str]]) -> None:
    row = list(cot_rows[6])
    at = DISAGGREGATED_COLUMNS.index("M_Money_Positions_Long_All")
    row[at] = "   12x45"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(row)
    content = cot_bytes.replace(_cot_line(cot_bytes, 7) + b"\r\n", buffer.getvalue().encode(), 1)
    with pytest.raises(ReportParseError, match="M_Money_Positions_Long_All: '12x45'") as err:
        parse_cot_disaggregated(content)
    assert err.value.line == 7


def test_cot_lone_dot_is_missing(cot_bytes: bytes, cot: pd.DataFrame) -> None:
    line = _cot_line(cot_bytes, 2)
    fields = line.split(b",")
    at = DISAGGREGATED_COLUMNS.index("Swap__Positions_Spread_All")
    assert fields[at] == b"   14007"
    fields[at] = b"."
    parsed = parse_cot_disaggregated(cot_bytes.replace(line, b",".join(fields), 1))
    assert pd.isna(parsed.loc[0, "swap_spread"]) and cot.loc[0, "swap_spread"] == 14007
    assert parsed.loc[1:, "swap_spread"].equals(cot.loc[1:, "swap_spread"])


def test_cot_dates_must_agree(cot_bytes: bytes) -> None:
    line = _cot_line(cot_bytes, 3)
    assert b",210309,2021-03-09," in line
    content = cot_bytes.replace(line, line.replace(b",210309,", b",210310,"), 1)
    with pytest.raises(ReportParseError, match="disagrees") as err:
        parse_cot_disaggregated(content)
    assert err.value.line == 3


def test_cot_duplicate_contract_week_fails(cot_bytes: bytes) -> None:
    line = _cot_line(cot_bytes, 4)
    content = cot_bytes.replace(line, line + b"\r\n" + line, 1)
    with pytest.raises(ReportParseError, match="appears twice") as err:
        parse_cot_disaggregated(content)
    assert err.value.line == 5


def test_cot_zip_extraction() -> None:
    def archive(members: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for name, body in members.items():
                z.writestr(name, body)
        return buffer.getvalue()

    assert extract_cot_zip(archive({"f_year.txt": b"abc\r\n"})) == b"abc\r\n"
    assert extract_cot_zip(archive({"annual.txt": b"x", "readme.pdf": b"y"})) == b"x"
    with pytest.raises(ReportParseError, match="found 0"):
        extract_cot_zip(archive({"readme.pdf": b"y"}))
    with pytest.raises(ReportParseError, match="found 2"):
        extract_cot_zip(archive({"a.txt": b"x", "b.txt": b"y"}))
    good = archive({"f_year.txt": b"payload " * 100})
    with pytest.raises(ReportParseError, match="corrupt"):
        extract_cot_zip(good[: len(good) // 2])
    with pytest.raises(ReportParseError, match="corrupt"):
        extract_cot_zip(b"<html>not found</html>")


def test_key_contracts() -> None:
    assert KEY_CONTRACTS["067651"] == "NYMEX WTI crude oil (CL)"
    assert KEY_CONTRACTS["022651"] == "NYMEX NY Harbor ULSD (HO)"
    assert len(KEY_CONTRACTS) == 6 and all(len(code) == 6 for code in KEY_CONTRACTS)


# Legacy: the real yearly annual.txt of 2025 (weeks to 2025-03-18), header and the six key contracts' rows;
# and the rows of the three "Consolidated" index markets, whose codes end in '+'.

LEGACY_VENDOR = {
    "open_interest": "Open Interest (All)", "noncomm_long": "Noncommercial Positions-Long (All)",
    "noncomm_short": "Noncommercial Positions-Short (All)",
    "noncomm_spread": "Noncommercial Positions-Spreading (All)", "comm_long": "Commercial Positions-Long (All)",
    "comm_short": "Commercial Positions-Short (All)",
    "tot_rept_long": " Total Reportable Positions-Long (All)",  # the vendor's leading space
    "tot_rept_short": "Total Reportable Positions-Short (All)",
    "nonrept_long": "Nonreportable Positions-Long (All)", "nonrept_short": "Nonreportable Positions-Short (All)",
}


@pytest.fixture(scope="module")
def legacy_bytes() -> bytes:
    return LEGACY_PATH.read_bytes()


@pytest.fixture(scope="module")
def legacy(legacy_bytes: bytes) -> pd.DataFrame:
    return parse_cot_legacy(legacy_bytes)


@pytest.fixture(scope="module")
def legacy_rows(legacy_bytes: bytes) -> list[list[str]]:
    """The real legacy file re-read with the csv module, header first."""
    return list(csv.reader(io.StringIO(legacy_bytes.decode("latin-1"), newline="")))


def _cells(rows: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_cot_legacy_columns_and_dtypes(legacy: pd.DataFrame, legacy_rows: list[list[str]]) -> None:
    assert list(legacy.columns) == [c for c in CFTC_COT_LEGACY.column_names if c not in LOAD]
    assert str(legacy["as_of"].dtype) == "datetime64[ns]"
    assert all(str(legacy[c].dtype) == "Int64" for c in LEGACY_VENDOR)
    assert tuple(legacy_rows[0]) == LEGACY_COLUMNS and len(LEGACY_COLUMNS) == 129  # the real header
    assert len(legacy) == len(legacy_rows) - 1 == 66
    weeks = {cell["As of Date in Form YYYY-MM-DD"] for cell in _cells(legacy_rows)}
    assert legacy["as_of"].nunique() == len(weeks) == 11 and set(legacy["as_of"].dt.day_of_week) == {1}


def test_cot_legacy_values_match_the_file(legacy: pd.DataFrame, legacy_rows: list[list[str]]) -> None:
    for parsed, cell in zip(legacy.itertuples(index=False), _cells(legacy_rows), strict=True):
        assert parsed.as_of == pd.Timestamp(cell["As of Date in Form YYYY-MM-DD"])
        assert parsed.as_of == pd.Timestamp(dt.datetime.strptime(cell["As of Date in Form YYMMDD"], "%y%m%d"))
        assert parsed.contract_code == cell["CFTC Contract Market Code"]
        assert parsed.market_name == cell["Market and Exchange Names"]
        assert parsed.exchange_code == cell["CFTC Market Code in Initials"].strip()
        assert parsed.commodity_code == cell["CFTC Commodity Code"].strip()
        assert parsed.contract_units == cell["Contract Units"]
        for column, vendor in LEGACY_VENDOR.items():
            assert getattr(parsed, column) == int(cell[vendor]), (column, cell["CFTC Contract Market Code"])


def test_cot_legacy_wti_is_keyed_on_its_code(legacy: pd.DataFrame, legacy_rows: list[list[str]]) -> None:
    cell = next(c for c in _cells(legacy_rows) if c["CFTC Contract Market Code"] == "067651"
                and c["As of Date in Form YYYY-MM-DD"] == "2025-03-18")
    wti = legacy[(legacy["contract_code"] == "067651") & (legacy["as_of"] == "2025-03-18")]
    assert len(wti) == 1
    wti = wti.iloc[0]
    # Renamed in 2022 from 'CRUDE OIL, LIGHT SWEET - NEW YORK MERCANTILE EXCHANGE': the code is the key.
    assert wti["market_name"] == cell["Market and Exchange Names"] == "WTI-PHYSICAL - NEW YORK MERCANTILE EXCHANGE"
    assert wti["open_interest"] == int(cell["Open Interest (All)"])
    assert wti["noncomm_long"] == int(cell["Noncommercial Positions-Long (All)"])
    assert wti["noncomm_short"] == int(cell["Noncommercial Positions-Short (All)"])
    assert wti["contract_units"] == "(CONTRACTS OF 1,000 BARRELS)"


def test_cot_legacy_codes_keep_leading_zeros_and_lose_padding(legacy: pd.DataFrame,
                                                              legacy_rows: list[list[str]]) -> None:
    cells = _cells(legacy_rows)
    assert set(legacy["contract_code"]) == {c["CFTC Contract Market Code"] for c in cells} == set(KEY_CONTRACTS)
    assert any(c["CFTC Commodity Code"].endswith(" ") for c in cells)  # the vendor pads '022 '
    assert any(c["Open Interest (All)"].startswith(" ") for c in cells)  # and right-aligns numbers
    assert set(legacy["commodity_code"]) == {c["CFTC Commodity Code"].strip() for c in cells}
    assert set(legacy["commodity_code"]) == {"022", "023", "067", "111"}
    assert set(legacy["exchange_code"]) == {"NYME", "ICEU"}


def test_cot_legacy_positions_add_up(legacy: pd.DataFrame) -> None:
    for side in ("long", "short"):
        assert (legacy[f"tot_rept_{side}"] + legacy[f"nonrept_{side}"] == legacy["open_interest"]).all()
        total = legacy[f"noncomm_{side}"] + legacy["noncomm_spread"] + legacy[f"comm_{side}"]
        assert (total == legacy[f"tot_rept_{side}"]).all()


def test_cot_legacy_weekly_file_without_header(legacy_bytes: bytes, legacy: pd.DataFrame) -> None:
    lines = legacy_bytes.split(b"\r\n")
    weekly = b"\r\n".join(line for line in lines[1:] if b",2025-03-18," in line) + b"\r\n"
    parsed = parse_cot_legacy(weekly)
    expected = legacy[legacy["as_of"] == "2025-03-18"].reset_index(drop=True)
    assert len(parsed) == 6
    pd.testing.assert_frame_equal(parsed, expected)


def test_cot_legacy_header_maps_by_name(legacy_bytes: bytes, legacy_rows: list[list[str]]) -> None:
    # Swap two position columns, in the header and in every row: mapping by name must follow them.
    rows = [list(row) for row in legacy_rows]
    a, b = LEGACY_COLUMNS.index("Noncommercial Positions-Long (All)"), LEGACY_COLUMNS.index(
        "Commercial Positions-Short (All)")
    for row in rows:
        row[a], row[b] = row[b], row[a]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    parsed = parse_cot_legacy(buffer.getvalue().encode("latin-1"))
    pd.testing.assert_frame_equal(parsed, parse_cot_legacy(legacy_bytes))


def test_cot_legacy_lone_dot_is_missing(legacy_bytes: bytes, legacy: pd.DataFrame) -> None:
    line = legacy_bytes.split(b"\r\n")[1]
    fields = line.split(b",")
    at = LEGACY_COLUMNS.index("Noncommercial Positions-Spreading (All)")
    assert fields[at].strip().isdigit()
    fields[at] = b"."
    parsed = parse_cot_legacy(legacy_bytes.replace(line, b",".join(fields), 1))
    assert pd.isna(parsed.loc[0, "noncomm_spread"]) and not pd.isna(legacy.loc[0, "noncomm_spread"])
    assert parsed.loc[1:, "noncomm_spread"].equals(legacy.loc[1:, "noncomm_spread"])


def test_cot_legacy_consolidated_codes_end_in_plus() -> None:
    content = LEGACY_CONSOLIDATED_PATH.read_bytes()
    rows = list(csv.reader(io.StringIO(content.decode("latin-1"), newline="")))
    codes = {cell["CFTC Contract Market Code"] for cell in _cells(rows)}
    assert codes == {"12460+", "13874+", "20974+"}
    parsed = parse_cot_legacy(content)
    assert len(parsed) == len(rows) - 1 == 33 and set(parsed["contract_code"]) == codes
    for parsed_row, cell in zip(parsed.itertuples(index=False), _cells(rows), strict=True):
        assert parsed_row.open_interest == int(cell["Open Interest (All)"])
    # A '+' anywhere but last is still not a CFTC code.
    line = content.split(b"\r\n")[1]
    assert b",12460+," in line
    with pytest.raises(ReportParseError, match="'1246\\+0' is not 6 letters or digits") as err:
        parse_cot_legacy(content.replace(line, line.replace(b",12460+,", b",1246+0,"), 1))
    assert err.value.line == 2


def test_cot_flavours_are_not_mixed_up(cot_bytes: bytes, legacy_bytes: bytes) -> None:
    with pytest.raises(ReportParseError, match="other COT report") as err:
        parse_cot_disaggregated(legacy_bytes)
    assert err.value.line == 1
    with pytest.raises(ReportParseError, match="other COT report"):
        parse_cot_legacy(cot_bytes)
    headerless = legacy_bytes.split(b"\r\n", 1)[1]
    with pytest.raises(ReportParseError, match="129 fields, expected 191"):
        parse_cot_disaggregated(headerless)
