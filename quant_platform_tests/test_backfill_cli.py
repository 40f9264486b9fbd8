"""Backfill from the command line: a quarter of COT weeks loads in one run on the DAGSTER_HOME instance."""

from __future__ import annotations

import csv

import dagster as dg

from quant_platform.cli import main
from quant_platform_tests.conftest import SAMPLE_DATA

LEGACY_2025 = SAMPLE_DATA / "cftc" / "legacy_futures_only_2025_energy.txt"  # the real annual.txt rows


def test_cli_backfill_loads_a_range_in_one_run(simulator, warehouse, qp_home, capsys):
    with LEGACY_2025.open(newline="", encoding="latin-1") as f:
        weeks = {row["As of Date in Form YYYY-MM-DD"] for row in csv.DictReader(f)}
    rc = main(["backfill", "macro/cftc_cot_legacy", min(weeks), max(weeks)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"macro/cftc_cot_legacy {min(weeks)}..{max(weeks)}: ok" in out
    assert int(warehouse.scalar("SELECT count(DISTINCT as_of) FROM macro.cftc_cot_legacy")) == len(weeks) == 11
    with dg.DagsterInstance.from_config(str(qp_home / "dagster")) as inst:
        runs = inst.get_runs()
        assert len(runs) == 1 and runs[0].tags["qp/triggered_by"] == "cli-backfill"


def test_cli_backfill_of_weeks_the_vendor_never_published_says_so_and_writes_nothing(simulator, warehouse, capsys):
    # The served 2021 history holds Jan-Mar only: April's weeks are vendor_missing, reported, nothing written.
    rc = main(["backfill", "macro/cftc_cot_disaggregated", "2021-04-06", "2021-04-13"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "macro/cftc_cot_disaggregated: 2 of 2 partitions vendor_missing" in out
    assert "2021-04-06..2021-04-13 (2): not published yet: the newest week in fut_disagg_txt_2021.zip is 2021-03-16" \
        in out
    assert int(warehouse.scalar("SELECT count(*) FROM macro.cftc_cot_disaggregated")) == 0
