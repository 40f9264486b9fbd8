"""COT backfill and release sensor, EIA series by both routes, and the analyst marts, on both backends."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import dagster as dg
import pandas as pd
import pytest

from quant_platform.macro.cftc.parsing import KEY_CONTRACTS
from quant_platform_tests.conftest import SAMPLE_DATA
from quant_platform_tests.release_helpers import check_results, evaluate_sensor, execute_requests

COT_FILE = SAMPLE_DATA / "cftc" / "disaggregated_futures_only_2021_energy.txt"
RANGE_TAGS = {"dagster/asset_partition_range_start": "2021-01-05",
              "dagster/asset_partition_range_end": "2021-03-16"}
# The real legacy sample is another year's file (2025, weeks 2025-01-07 .. 2025-03-18): see SOURCES.md.
LEGACY_FILE = SAMPLE_DATA / "cftc" / "legacy_futures_only_2025_energy.txt"
LEGACY_RANGE_TAGS = {"dagster/asset_partition_range_start": "2025-01-07",
                     "dagster/asset_partition_range_end": "2025-03-18"}
DNAV_FILE = SAMPLE_DATA / "eia" / "dnav_WCESTUS1_weekly.csv"
API_WCESTUS1_FILE = SAMPLE_DATA / "eia" / "api_v2" / (
    "petroleum-stoc-wstk_WCESTUS1_weekly_period-desc_offset-0_length-5000.json")


def _defs():
    from quant_platform.definitions import defs

    return defs


def _cot_file_rows() -> list[dict]:
    return list(csv.DictReader(io.StringIO(COT_FILE.read_text())))


def _legacy_file_rows() -> list[dict]:
    return list(csv.DictReader(io.StringIO(LEGACY_FILE.read_text(encoding="latin-1"))))


def _dnav_file_values() -> dict[pd.Timestamp, float]:
    lines = DNAV_FILE.read_text(encoding="cp1252").splitlines()[5:]
    return {pd.to_datetime(day, format="%m/%d/%Y"): float(value) for day, value in
            (line.split(",") for line in lines if line.strip())}


def _api_file_values() -> dict[pd.Timestamp, float]:
    data = json.loads(API_WCESTUS1_FILE.read_bytes())["response"]["data"]
    return {pd.Timestamp(row["period"]): float(row["value"]) for row in data}


def test_cot_backfill_of_a_quarter_runs_once_and_loads_every_week(simulator, warehouse, instance):
    defs = _defs()
    started = pd.Timestamp.now(tz="UTC")
    for name, tags in (("cftc_cot_disaggregated_job", RANGE_TAGS), ("cftc_cot_legacy_job", LEGACY_RANGE_TAGS)):
        result = defs.resolve_job_def(name).execute_in_process(instance=instance, tags=tags)
        assert result.success
        assert all(check_results(result).values())
    rows = _cot_file_rows()
    dis = warehouse.query_df("SELECT * FROM macro.cftc_cot_disaggregated ORDER BY as_of, contract_code")
    assert len(dis) == len(rows) == 77
    assert dis["as_of"].nunique() == 11
    wti_src = next(r for r in rows if r["CFTC_Contract_Market_Code"] == "067651"
                   and r["Report_Date_as_YYYY-MM-DD"] == "2021-03-16")
    wti = dis[(dis.contract_code == "067651") & (pd.to_datetime(dis.as_of) == "2021-03-16")].iloc[0]
    assert int(wti["m_money_long"]) == int(wti_src["M_Money_Positions_Long_All"])
    assert int(wti["swap_short"]) == int(wti_src["Swap__Positions_Short_All"])  # the vendor's typo column
    # Point in time: available_at is when the platform first saw the file (this run's download of the history
    # zip), the CFTC's schedule is kept beside it.
    assert pd.Timestamp(wti["scheduled_release_at"]).tz_convert("UTC") == pd.Timestamp("2021-03-19 19:30", tz="UTC")
    assert started <= pd.Timestamp(wti["available_at"]) <= pd.Timestamp(wti["loaded_at"])
    assert pd.Timestamp(wti["valid_from"]) == pd.Timestamp(wti["available_at"])
    legacy_rows = _legacy_file_rows()
    leg = warehouse.query_df("SELECT * FROM macro.cftc_cot_legacy ORDER BY as_of, contract_code")
    assert len(leg) == len(legacy_rows) == 66
    assert leg["as_of"].nunique() == len({r["As of Date in Form YYYY-MM-DD"] for r in legacy_rows}) == 11
    wti_leg_src = next(r for r in legacy_rows if r["CFTC Contract Market Code"] == "067651"
                       and r["As of Date in Form YYYY-MM-DD"] == "2025-03-18")
    wti_leg = leg[(leg.contract_code == "067651") & (pd.to_datetime(leg.as_of) == "2025-03-18")].iloc[0]
    assert wti_leg["market_name"] == wti_leg_src["Market and Exchange Names"]  # renamed in 2022; keyed on code
    assert int(wti_leg["noncomm_long"]) == int(wti_leg_src["Noncommercial Positions-Long (All)"])
    assert int(wti_leg["tot_rept_long"]) == int(wti_leg_src[" Total Reportable Positions-Long (All)"])
    # Friday 2025-03-21 15:30 New York (daylight saving time) is 19:30 UTC.
    assert pd.Timestamp(wti_leg["scheduled_release_at"]).tz_convert("UTC") == pd.Timestamp("2025-03-21 19:30",
                                                                                        tz="UTC")
    # One run for the whole quarter (single-run backfill policy), not eleven.
    for job_name in ("cftc_cot_disaggregated_job", "cftc_cot_legacy_job"):
        assert len(instance.get_runs(filters=dg.RunsFilter(job_name=job_name))) == 1

    # The mart: managed money and non-commercial net positions of the key contracts, point-in-time.
    mart = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(["marts", "cot_positioning"])})
    res = mart.execute_in_process(instance=instance)
    assert res.success
    pos = warehouse.query_df("SELECT * FROM marts.cot_positioning")
    assert set(pos["trader_group"]) == {"managed_money", "non_commercial"}
    key_disaggregated = sum(r["CFTC_Contract_Market_Code"] in KEY_CONTRACTS for r in rows)
    key_legacy = sum(r["CFTC Contract Market Code"] in KEY_CONTRACTS for r in legacy_rows)
    assert len(pos) == key_disaggregated + key_legacy == 5 * 11 + 6 * 11  # key contracts x weeks, per file
    w = pos[(pos.contract_code == "067651") & (pos.trader_group == "managed_money")
            & (pd.to_datetime(pos.as_of) == "2021-03-16")].iloc[0]
    expected_net = int(wti_src["M_Money_Positions_Long_All"]) - int(wti_src["M_Money_Positions_Short_All"])
    assert int(w["net_contracts"]) == expected_net
    assert w["instrument"] == "NYMEX WTI crude oil (CL)"
    nc = pos[(pos.contract_code == "067651") & (pos.trader_group == "non_commercial")
             & (pd.to_datetime(pos.as_of) == "2025-03-18")].iloc[0]
    assert int(nc["net_contracts"]) == int(wti_leg_src["Noncommercial Positions-Long (All)"]) - int(
        wti_leg_src["Noncommercial Positions-Short (All)"])
    assert pos["net_zscore_3y"].isna().all()  # 11 weeks < the 26 a z-score needs


def test_cot_release_sensor_requests_the_weekly_files(simulator, warehouse, instance):
    defs = _defs()
    reqs, cursor, _ = evaluate_sensor(defs, "cftc_cot_release_sensor", instance, None)
    # The futures-only weekly files (the sensor polls the combined ones too: test_macro_new_reports).
    reqs = [r for r in reqs if r.job_name in ("cftc_cot_disaggregated_job", "cftc_cot_legacy_job")]
    # Each weekly file's own latest week: the disaggregated sample is 2021's, the legacy one 2025's.
    assert sorted((r.job_name, r.partition_key) for r in reqs) == [
        ("cftc_cot_disaggregated_job", "2021-03-16"), ("cftc_cot_legacy_job", "2025-03-18")]
    results = execute_requests(defs, instance, reqs)
    assert all(r.success for r in results)
    latest_legacy = [r for r in _legacy_file_rows() if r["As of Date in Form YYYY-MM-DD"] == "2025-03-18"]
    n_legacy = warehouse.scalar("SELECT count(*) FROM macro.cftc_cot_legacy WHERE as_of = :as_of",
                                {"as_of": date(2025, 3, 18)})
    assert int(n_legacy) == len(latest_legacy) == 6
    n = warehouse.scalar("SELECT count(*) FROM macro.cftc_cot_disaggregated WHERE as_of = :as_of",
                         {"as_of": date(2021, 3, 16)})
    assert int(n) == 7
    reqs, _, _ = evaluate_sensor(defs, "cftc_cot_release_sensor", instance, cursor)
    assert [r for r in reqs if r.job_name in ("cftc_cot_disaggregated_job", "cftc_cot_legacy_job")] == []


@pytest.mark.parametrize("route", ["dnav", "api_v2"])
def test_eia_series_lands_the_same_rows_by_either_route(route, simulator, warehouse, instance, monkeypatch):
    if route == "api_v2":
        monkeypatch.setenv("QP_EIA_API_KEY", "test-key-not-a-secret")
    defs = _defs()
    reqs, _, _ = evaluate_sensor(defs, "eia_series_release_sensor", instance, None)
    assert [r.partition_key for r in reqs] == ["WCESTUS1"]
    results = execute_requests(defs, instance, reqs)
    assert results[0].success
    rows = warehouse.query_df("SELECT period, value, unit, frequency, series_name, source FROM macro.eia_series "
                              "WHERE series_id = :series ORDER BY period", {"series": "WCESTUS1"})
    loaded = dict(zip(pd.to_datetime(rows["period"]), rows["value"].astype(float), strict=True))
    assert set(rows["source"]) == {route}
    assert set(rows["unit"]) == {"thousand barrels"}
    assert rows.iloc[0]["series_name"] == "Weekly U.S. Ending Stocks excluding SPR of Crude Oil"
    last = rows.iloc[-1]
    if route == "dnav":
        assert len(rows) == 2188
        assert pd.Timestamp(last["period"]) == pd.Timestamp("2024-08-30") and float(last["value"]) == 418310.0
    else:
        # The recorded real API answer (2,193 weeks to 2024-10-04), not the dnav file: every week as sent, and
        # the weeks both real files hold have the same values.
        expected = _api_file_values()
        assert loaded == expected and len(rows) == len(expected) == 2193
        assert (pd.Timestamp(last["period"]), float(last["value"])) == max(expected.items())
        dnav = _dnav_file_values()
        assert {period: loaded[period] for period in dnav} == dnav


def test_crude_balance_mart_joins_wpsr_and_series_history(simulator, warehouse, instance):
    defs = _defs()
    for sensor in ("eia_wpsr_release_sensor", "eia_series_release_sensor"):
        reqs, _, _ = evaluate_sensor(defs, sensor, instance, None)
        assert all(r.success for r in execute_requests(defs, instance, reqs))
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(["marts", "us_crude_balance_weekly"])})
    res = job.execute_in_process(instance=instance)
    assert res.success
    mart = warehouse.query_df("SELECT * FROM marts.us_crude_balance_weekly ORDER BY week_ending")
    assert len(mart) == 2188 + 1
    newest = mart.iloc[-1]
    assert newest["source"] == "wpsr" and float(newest["commercial_crude_stocks"]) == 459.495
    assert float(newest["crude_production"]) == 13586.0
    hist = mart[pd.to_datetime(mart.week_ending) == "2024-08-30"].iloc[0]
    assert hist["source"] == "eia_series"
    assert float(hist["commercial_crude_stocks"]) == pytest.approx(418.310)  # thousand -> million barrels
    prev = mart[pd.to_datetime(mart.week_ending) == "2024-08-23"].iloc[0]
    assert float(hist["commercial_crude_stocks_wow"]) == pytest.approx(418.310 - float(prev["commercial_crude_stocks"]))
    lineage = res.asset_materializations_for_node("marts__us_crude_balance_weekly")[0].metadata[
        "dagster/column_lineage"].value
    deps = lineage.deps_by_column["commercial_crude_stocks"]
    assert {d.asset_key for d in deps} == {dg.AssetKey(["macro", "eia_wpsr"]), dg.AssetKey(["macro", "eia_series"])}
