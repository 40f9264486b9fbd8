"""Fault injection on the vendor path: transient faults are retried and the load succeeds; bad files fail
a blocking check with a clear message and the previous good data stays in the warehouse.
"""

from __future__ import annotations

import time
from datetime import date

import pytest

from quant_platform_tests.conftest import SAMPLE_DATA
from quant_platform_tests.release_helpers import check_results, failure_messages

WEEK = "2026-04-24"
WPSR = "/wpsr/table1.csv"
REAL_WPSR = SAMPLE_DATA / "eia" / "wpsr_table1_2026-05-01.csv"  # read by the test that damages it


def _load_week(instance, *, refetch: bool = True):
    from quant_platform.definitions import defs

    job = defs.resolve_job_def("eia_wpsr_job")
    tags = {"qp/refetch": "true"} if refetch else {}
    return job.execute_in_process(instance=instance, partition_key=WEEK, tags=tags, raise_on_error=False)


def _snapshot(warehouse):
    return warehouse.query_df(
        "SELECT series_key, measure, value, source_sha256 FROM macro.eia_wpsr WHERE week_ending = :week "
        "ORDER BY series_key, measure", {"week": date.fromisoformat(WEEK)})


def _attempts(result) -> int:
    mats = result.asset_materializations_for_node("macro__eia_wpsr")
    return int(mats[-1].metadata["fetch_attempts"].value)


@pytest.fixture
def loaded(simulator, warehouse, instance, monkeypatch):
    """A warehouse holding a good WPSR week, loaded from the simulator."""
    monkeypatch.setenv("QP_HTTP_TIMEOUT", "0.5")
    monkeypatch.setenv("QP_HTTP_RETRIES", "4")
    first = _load_week(instance)
    assert first.success
    before = _snapshot(warehouse)
    assert len(before) == 540
    return before


@pytest.mark.parametrize("kind", ["http_500", "http_503", "timeout", "truncated"])
def test_transient_faults_are_retried_and_the_load_succeeds(kind, loaded, simulator, warehouse, instance):
    simulator.inject_fault(WPSR, kind, count=2, delay_s=1.5)
    result = _load_week(instance)
    assert result.success, failure_messages(result)
    assert _attempts(result) == 3
    # A timed-out request is logged by the simulator once its delay has elapsed: give it that long.
    deadline = time.monotonic() + 5
    while True:
        faults = [r["fault"] for r in simulator.requests_seen(WPSR) if r.get("fault")]
        if faults.count(kind) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert faults.count(kind) == 2
    assert _snapshot(warehouse).equals(loaded)


def test_fault_beyond_the_retry_budget_fails_cleanly_and_keeps_data(loaded, simulator, warehouse, instance):
    simulator.inject_fault(WPSR, "http_500", count=10)
    result = _load_week(instance)
    assert not result.success
    msg = " ".join(failure_messages(result))
    assert "gave up after 4 attempts" in msg and "/wpsr/table1.csv" in msg
    assert _snapshot(warehouse).equals(loaded)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("wrong_encoding", "Windows-1252"), ("short_body", "eia_wpsr_table1")],
)
def test_bad_files_fail_a_blocking_check_and_previous_data_stays(kind, expected, loaded, simulator, warehouse,
                                                                 instance):
    simulator.inject_fault(WPSR, kind, count=1)
    result = _load_week(instance)
    assert not result.success
    checks = check_results(result)
    assert checks == {"schema_and_types": False}
    msg = " ".join(failure_messages(result))
    assert expected in msg, msg
    assert "Nothing was written; the previous data stays" in msg
    assert _snapshot(warehouse).equals(loaded)
    # The bad file is archived as evidence beside the good one.
    from quant_platform.platform.lake import Lake
    from quant_platform.platform.settings import load_settings

    assert len(Lake(load_settings().lake_url).revisions("eia", "wpsr_table1", WEEK)) == 2


def test_implausible_value_fails_the_range_check_and_names_the_column(loaded, simulator, warehouse, instance):
    # A well-formed file whose commercial crude stocks read 459,495 million barrels (a unit slip).
    bad = REAL_WPSR.read_bytes().replace(b'"459.495"', b'"459,495"', 1)
    simulator.publish(WPSR, bad)
    result = _load_week(instance)
    assert not result.success
    checks = check_results(result)
    assert checks["values_in_plausible_range"] is False
    assert checks["schema_and_types"] is True
    msg = " ".join(failure_messages(result))
    assert "values_in_plausible_range" in msg and "value" in msg
    assert _snapshot(warehouse).equals(loaded)


def test_corrupt_cot_history_zip_fails_cleanly(simulator, warehouse, instance):
    from quant_platform.definitions import defs

    simulator.inject_fault("/files/dea/history/fut_disagg_txt_2021.zip", "wrong_encoding", count=1)
    job = defs.resolve_job_def("cftc_cot_disaggregated_job")
    result = job.execute_in_process(instance=instance, partition_key="2021-03-16", raise_on_error=False)
    assert not result.success
    assert check_results(result) == {"schema_and_types": False}
    assert "zip" in " ".join(failure_messages(result)).lower()
    assert int(warehouse.scalar("SELECT count(*) FROM macro.cftc_cot_disaggregated")) == 0
