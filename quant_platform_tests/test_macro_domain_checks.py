"""The report folders' domain checks on real vendor files: they pass on the files as published and fail on copies
damaged in memory (a misprinted stock, a category off by a contract, a decimal slip, a revised week).

Never take an expected value from the code under test: sums and printed values are read from the files here.
"""

from __future__ import annotations

import csv
import io
from datetime import date

import pandas as pd
import pytest

from quant_platform_tests.conftest import REPO_ROOT, SAMPLE_DATA

WPSR_FILE = SAMPLE_DATA / "eia" / "wpsr_table1_2026-05-01.csv"
PSW01_FILE = SAMPLE_DATA / "eia" / "wpsr" / "psw01_2026-02-11.xls"
COT = SAMPLE_DATA / "cftc"
# (file, report, futures and options): every real COT sample the project holds.
COT_FILES = (("disaggregated_futures_only_2021_energy.txt", "disaggregated", False),
             ("legacy_futures_only_2025_energy.txt", "legacy", False),
             ("legacy_futures_only_2025_consolidated_indexes.txt", "legacy", False),
             ("legacy_futures_and_options_2026_energy.txt", "legacy", True))
OI_LEGACY = "Open Interest (All)"
NONCOMM_LONG = "Noncommercial Positions-Long (All)"


@pytest.fixture
def wh(tmp_path):
    """A DuckDB warehouse with the platform's DDL (the checks read earlier weeks from it)."""
    from quant_platform.platform.warehouse import Warehouse

    warehouse = Warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    warehouse.apply_sql_dir(REPO_ROOT / "quant_platform" / "sql")
    yield warehouse
    warehouse.dispose()


def _wpsr(body: bytes) -> pd.DataFrame:
    from quant_platform.macro.eia.parsing import parse_wpsr_table1

    return parse_wpsr_table1(body)


def _printed(label: str) -> list[float]:
    """A stocks line of table1.csv as printed: this week, prior week, a year ago (read with csv, not the parser)."""
    text = WPSR_FILE.read_bytes().decode("cp1252")
    for row in csv.reader(io.StringIO(text)):
        if row and row[0].strip() == label:
            return [float(row[i].replace(",", "")) for i in (1, 2, 5)]
    raise AssertionError(f"{label} not in {WPSR_FILE.name}")


def _outcome(check_name: str, frame: pd.DataFrame, warehouse):
    from quant_platform.macro.reports.eia_wpsr.report import REPORT

    check = next(c for c in REPORT.domain_checks if c.name == check_name)
    return check.evaluate(frame, warehouse)


def test_wpsr_stocks_add_up_in_the_real_file_and_not_in_a_damaged_copy(wh):
    commercial, spr, crude = (_printed(n) for n in ("Commercial (Excluding SPR)", "Strategic Petroleum Reserve (SPR)",
                                                     "Crude Oil"))
    assert all(abs(c + s - t) <= 0.002 for c, s, t in zip(commercial, spr, crude, strict=True))
    real = _outcome("stocks_sum_of_parts", _wpsr(WPSR_FILE.read_bytes()), wh)
    assert real.passed and real.metadata["sums_compared"] == 6, real.metadata

    damaged = WPSR_FILE.read_bytes().replace(b'"459.495"', b'"459.595"', 1)  # commercial misprinted by 0.1
    bad = _outcome("stocks_sum_of_parts", _wpsr(damaged), wh)
    assert not bad.passed
    assert "459.595 + 397.924 = 857.519, stocks.crude_oil printed 857.419" in bad.metadata["problems"]


def test_wpsr_prior_week_column_detects_a_revision_of_the_loaded_week(wh):
    from quant_platform.macro.reports.eia_wpsr.table import TABLE

    frame = _wpsr(WPSR_FILE.read_bytes())
    # Nothing loaded for the week before: nothing to compare, no warning.
    first = _outcome("prior_week_matches_loaded", frame, wh)
    assert first.passed and first.metadata["previous_weeks"] == "2026-04-17 not loaded"

    # The week before as it was loaded: the levels this file prints as its previous week (the file's own numbers).
    prior = frame[frame.measure == "level_prior_week"].assign(measure="level", week_ending=pd.Timestamp("2026-04-17"))
    now = pd.Timestamp.now(tz="UTC")
    loaded = prior.assign(source_sha256="0" * 64, loaded_at=now, available_at=now, scheduled_release_at=pd.NaT,
                          valid_from=now)
    wh.append_rows(TABLE, loaded)
    same = _outcome("prior_week_matches_loaded", frame, wh)
    assert same.passed and same.metadata["series_compared"] == len(prior.dropna(subset=["value"])), same.metadata

    # EIA revised last week's commercial stocks: this week's file prints another prior-week number than loaded.
    revised = _wpsr(WPSR_FILE.read_bytes().replace(b'"465.729"', b'"465.829"', 1))
    warn = _outcome("prior_week_matches_loaded", revised, wh)
    assert not warn.passed and warn.metadata["revised_series"] == 1
    assert warn.metadata["revisions"] == ("stocks.commercial_excluding_spr: printed for 2026-04-17 465.829, "
                                          "loaded 465.729")


def test_wpsr_week_on_week_jump_warns_on_a_decimal_slip(wh):
    real = _outcome("week_on_week_plausible", _wpsr(WPSR_FILE.read_bytes()), wh)
    assert real.passed and real.metadata["series_compared"] > 40, real.metadata
    slipped = _wpsr(WPSR_FILE.read_bytes().replace(b'"397.924"', b'"39.792"', 1))  # SPR, one digit lost
    warn = _outcome("week_on_week_plausible", slipped, wh)
    assert not warn.passed
    assert "stocks.strategic_petroleum_reserve_spr: 405.045 -> 39.792 million barrels" in warn.metadata["jumps"]


def test_wpsr_jump_bounds_hold_on_every_week_since_1982():
    """The bounds are plausible, not tight: no weekly series of table 1's real history trips them."""
    from quant_platform.macro.formats.wpsr_xls import parse_wpsr_xls
    from quant_platform.macro.reports.eia_wpsr.checks import implausible_jumps

    hist = parse_wpsr_xls(PSW01_FILE.read_bytes(), "01")
    hist = hist[hist["frequency"] == "W"].sort_values(["series_id", "period"])
    stocks = hist["unit"] == "thousand barrels"
    value = hist["value"].astype(float).where(~stocks, hist["value"].astype(float) / 1000)  # table 1's units
    unit = hist["unit"].where(~stocks, "million barrels")
    prior = value.groupby(hist["series_id"]).shift()
    compared = prior.notna()
    assert compared.sum() > 80_000 and set(unit) == {"million barrels", "thousand barrels per day"}
    assert not implausible_jumps(value[compared], prior[compared], unit[compared]).any()


def _cot_frame(body: bytes, report: str) -> pd.DataFrame:
    from quant_platform.macro.cftc.parsing import parse_cot_disaggregated, parse_cot_legacy

    return (parse_cot_disaggregated if report == "disaggregated" else parse_cot_legacy)(body)


def _sum_check(report: str, futures_and_options: bool):
    from quant_platform.macro.cftc.checks import (
        DISAGGREGATED_SUMS,
        LEGACY_SUMS,
        categories_sum_to_open_interest,
    )

    return categories_sum_to_open_interest(DISAGGREGATED_SUMS if report == "disaggregated" else LEGACY_SUMS,
                                           futures_and_options)


@pytest.mark.parametrize(("name", "report", "fo"), COT_FILES)
def test_cot_categories_add_up_in_every_real_file(name, report, fo, wh):
    body = (COT / name).read_bytes()
    outcome = _sum_check(report, fo)(_cot_frame(body, report), wh)
    assert outcome.passed, outcome.metadata
    rows = list(csv.DictReader(io.StringIO(body.decode("latin-1"))))
    assert outcome.metadata["sums_checked"] == 4 * len(rows)
    if report == "legacy":  # read independently: how far the file's own categories miss open interest
        gaps = [abs(sum(int(r[k]) for k in (NONCOMM_LONG, "Noncommercial Positions-Spreading (All)",
                                            "Commercial Positions-Long (All)", "Nonreportable Positions-Long (All)"))
                    - int(r[OI_LEGACY])) for r in rows]
        assert max(gaps) == outcome.metadata["largest_gap_contracts"] == (1 if fo or "indexes" in name else 0)


def _damaged_legacy(name: str, column: str, code: str, as_of: str, change) -> bytes:
    """A copy of a real legacy file with one field of one row changed."""
    text = (COT / name).read_bytes().decode("latin-1")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    names = [h.strip() for h in header]
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(header)
    hit = 0
    for row in reader:
        if row[names.index("CFTC Contract Market Code")].strip() == code and \
                row[names.index("As of Date in Form YYYY-MM-DD")].strip() == as_of:
            row[names.index(column)] = str(change(int(row[names.index(column)])))
            hit += 1
        writer.writerow(row)
    assert hit == 1
    return out.getvalue().encode("latin-1")


def test_cot_sum_of_parts_fails_on_a_category_off_by_one_contract(wh):
    body = _damaged_legacy("legacy_futures_only_2025_energy.txt", NONCOMM_LONG, "067651", "2025-02-11",
                           lambda v: v + 1)
    outcome = _sum_check("legacy", False)(_cot_frame(body, "legacy"), wh)
    assert not outcome.passed and outcome.metadata["sums_off"] == 1  # the long side; reportable total as printed
    assert "067651 2025-02-11 long categories: off by 1" in outcome.metadata["problems"]
    # The futures-and-options file rounds each category: one contract is its vendor's own rounding; three more
    # than printed (off by 2 to 4, whatever the row's own rounding) is not.
    fo = "legacy_futures_and_options_2026_energy.txt"
    first_week = next(csv.DictReader(io.StringIO((COT / fo).read_text(encoding="latin-1"))))
    code, week = first_week["CFTC Contract Market Code"].strip(), first_week["As of Date in Form YYYY-MM-DD"]
    worse = _damaged_legacy(fo, NONCOMM_LONG, code, week, lambda v: v + 3)
    assert not _sum_check("legacy", True)(_cot_frame(worse, "legacy"), wh).passed


def test_cot_open_interest_jump_warns_and_reads_the_previous_week_from_the_warehouse(wh):
    from quant_platform.macro.cftc.checks import open_interest_plausible
    from quant_platform.macro.reports.cftc_cot_legacy.table import TABLE

    check = open_interest_plausible(TABLE.qualified_name)
    name = "legacy_futures_only_2025_energy.txt"
    frame = _cot_frame((COT / name).read_bytes(), "legacy")
    real = check(frame, wh)
    assert real.passed and real.metadata["week_pairs_compared"] == 6 * 10, real.metadata
    doubled = _cot_frame(_damaged_legacy(name, OI_LEGACY, "067651", "2025-02-11", lambda v: v * 10), "legacy")
    warn = check(doubled, wh)
    assert not warn.passed and warn.metadata["implausible_changes"] == 2  # up that week, and down the next
    assert "067651 2025-02-11" in warn.metadata["jumps"]

    # One week alone: its previous week is read from the table as loaded.
    now = pd.Timestamp.now(tz="UTC")
    earlier = frame[pd.to_datetime(frame.as_of) == pd.Timestamp("2025-02-04")]
    wh.append_rows(TABLE, earlier.assign(source_sha256="0" * 64, loaded_at=now, available_at=now,
                                         scheduled_release_at=pd.NaT, valid_from=now))
    week = doubled[pd.to_datetime(doubled.as_of) == pd.Timestamp("2025-02-11")]
    alone = check(week, wh)
    assert not alone.passed and alone.metadata["week_pairs_compared"] == 6
    wti_before = int(earlier[earlier.contract_code == "067651"]["open_interest"].iloc[0])
    assert f"067651 2025-02-11: {wti_before:,} -> " in alone.metadata["jumps"]
    assert check(frame[pd.to_datetime(frame.as_of) == pd.Timestamp("2025-02-11")], wh).passed
    assert date(2025, 2, 4) in set(pd.to_datetime(wh.query_df("SELECT as_of FROM macro.cftc_cot_legacy")
                                                  ["as_of"]).dt.date)
