"""Write-audit-publish and delete detection of the SCD2 dimensions, on both warehouse backends: a failed
blocking check leaves the published dimension byte-identical and fails the run with one message; deletions
are found by comparing key aggregates (a key scan only when they differ), including a swap that keeps the
key count and key sum equal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from quant_platform_tests.release_helpers import failure_messages
from quant_platform_tests.test_internal_scd2 import DIMS, _dim, _run

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def _evaluations(result) -> dict[tuple[str, str], object]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def _client_run(instance, partition: str, full_reload: bool = False):
    """Only core/dim_client (its employees are already loaded): one step per run keeps the test fast."""
    from quant_platform.definitions import defs
    from quant_platform.internal.tables import DIM_CLIENT

    config = {"ops": {op: {"config": {"full_reload": full_reload}} for op in DIMS}}
    return defs.resolve_job_def("internal_extract_job").execute_in_process(
        instance=instance, partition_key=partition, run_config=config, raise_on_error=False,
        asset_selection=[DIM_CLIENT.asset_key])


def _row(frame: pd.DataFrame, key: int, **changes) -> dict:
    """One source row as plain Python values (what the source tables bind), with `changes` applied."""
    def plain(v):
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            return None
        return v.item() if hasattr(v, "item") and not isinstance(v, pd.Timestamp) else v

    return {frame.index.name: key, **{c: plain(v) for c, v in frame.loc[key].items()}, **changes}


def _meta(result, name: str):
    return result.asset_materializations_for_node("core__dim_client")[0].metadata[name].value


def test_failed_check_publishes_nothing_and_a_fixed_source_publishes(qp_home, warehouse, instance):
    from quant_platform.internal import sources
    from quant_platform.internal.sources import read_changes, seed_sources
    from quant_platform.internal.tables import CRM_CLIENTS

    seed_sources(clients=60, employees=25, suppliers=20, seed=4, now=T0)
    assert _run(instance, "2026-11-02", full_reload=True).success
    before = _dim(warehouse, "dim_client")

    # One client gets an account manager HR does not know, another a legitimate new credit limit.
    clients = read_changes(CRM_CLIENTS, None, None).set_index("client_id")
    good_manager = int(clients["account_manager_id"].dropna().loc[
        lambda m: m != clients.loc[1, "account_manager_id"]].iloc[0])  # a known employee, not client 1's own
    sources._write(CRM_CLIENTS, updates=[_row(clients, 1, account_manager_id=999999, updated_at=T1),
                                         _row(clients, 2, credit_limit_usd=123400000.0, updated_at=T1)])
    bad = _run(instance, "2026-11-03")
    assert not bad.success
    pd.testing.assert_frame_equal(_dim(warehouse, "dim_client"), before)  # nothing of the run is visible
    evaluations = _evaluations(bad)
    ri = evaluations[("core/dim_client", "referential_integrity")]
    assert ri.passed is False and "999999" in ri.metadata["dangling"].value
    assert ri.severity.value == "ERROR"
    assert all(e.passed for (asset, name), e in evaluations.items() if name != "referential_integrity")
    messages = failure_messages(bad)
    assert len(messages) == 1, messages
    assert "core.dim_client: nothing published" in messages[0] and "999999" in messages[0]
    assert not bad.asset_materializations_for_node("core__dim_client")

    # The source is fixed (a later change of the same row); re-running the day publishes both changes.
    sources._write(CRM_CLIENTS, updates=[_row(clients, 1, account_manager_id=good_manager,
                                                updated_at=T1 + timedelta(hours=1))])
    fixed = _run(instance, "2026-11-03")
    assert fixed.success and all(e.passed for e in fixed.get_asset_check_evaluations())
    after = _dim(warehouse, "dim_client")
    assert len(after) == len(before) + 2
    one = after[after["client_id"] == 1].sort_values("version")
    assert list(one["version"]) == [1, 2] and int(one.iloc[1]["account_manager_id"]) == good_manager
    assert pd.Timestamp(one.iloc[0]["valid_to"]) == pd.Timestamp(T1 + timedelta(hours=1))
    two = after[(after["client_id"] == 2) & after["is_current"]].iloc[0]
    assert two["credit_limit_usd"] == 123400000 and two["version"] == 2


def test_deletes_are_found_by_key_aggregates_and_a_scan_only_when_they_differ(qp_home, warehouse, instance):
    from quant_platform.internal import sources
    from quant_platform.internal.sources import read_changes, seed_sources
    from quant_platform.internal.tables import CRM_CLIENTS

    now = datetime.now(UTC)
    today = now.date().isoformat()  # today's window is open: no daily scan is due
    seed_sources(clients=40, employees=20, suppliers=10, seed=8, now=now - timedelta(minutes=5))
    assert _run(instance, today, full_reload=True).success

    quiet = _client_run(instance, today)
    assert quiet.success and _meta(quiet, "delete_scan") == "skipped (counts equal)"
    assert _meta(quiet, "deleted_keys") == 0

    saved = read_changes(CRM_CLIENTS, None, None).set_index("client_id")
    sources._write(CRM_CLIENTS, deletes=[4, 6])
    found = _client_run(instance, today)
    assert found.success, failure_messages(found)
    assert _meta(found, "delete_scan") == "full key scan (key count or key sums differ)"
    assert _meta(found, "deleted_keys") == 2
    after_delete = _dim(warehouse, "dim_client")

    # 4 and 6 come back from a backup with their old updated_at (outside the window) while 2 and 8 are
    # deleted: the key count and the key sum stay equal (4 + 6 == 2 + 8), only the mixed sum differs.
    restored = [_row(saved, k) for k in (4, 6)]
    sources._write(CRM_CLIENTS, deletes=[2, 8], rows=restored)
    swapped = _client_run(instance, today)
    assert not swapped.success
    recon = _evaluations(swapped)[("core/dim_client", "row_count_reconciled_with_source")]
    assert recon.passed is False and "full reload" in recon.metadata["hint"].value
    messages = failure_messages(swapped)
    assert len(messages) == 1 and "row_count_reconciled_with_source" in messages[0]
    pd.testing.assert_frame_equal(_dim(warehouse, "dim_client"), after_delete)

    reload = _client_run(instance, today, full_reload=True)
    assert reload.success, failure_messages(reload)
    assert _meta(reload, "delete_scan") == "full key scan (full reload)" and _meta(reload, "deleted_keys") == 2
    dim = _dim(warehouse, "dim_client")
    # The deleted versions are never modified; the restored ones start when the deletion was recorded.
    pd.testing.assert_frame_equal(dim[dim["client_id"].isin([4, 6]) & (dim["version"] == 1)].reset_index(drop=True),
                                  after_delete[after_delete["client_id"].isin([4, 6])].reset_index(drop=True))
    for k in (4, 6):
        versions = dim[dim["client_id"] == k].sort_values("version")
        assert list(versions["version"]) == [1, 2]
        assert versions.iloc[1]["is_current"] and versions.iloc[1]["valid_from"] == versions.iloc[0]["valid_to"]
    for k in (2, 8):
        gone = dim[dim["client_id"] == k]
        assert len(gone) == 1 and gone.iloc[0]["is_deleted"] and not gone.iloc[0]["is_current"]
    assert int(dim["is_current"].sum()) == len(saved) - 2
