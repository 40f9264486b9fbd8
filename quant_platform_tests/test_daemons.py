"""The suite's tests that start a Dagster daemon or webserver, collected here so that they run one after another.

`make test` runs pytest in two processes with `--dist loadfile`: the tests of one file go to one process. These four
take minutes each and load both cores; two of them at once slowed each other past their own deadlines. They are
written beside the code they prove (their modules keep them under a leading underscore, so they are collected once,
here) and this file is collected first (conftest.py), so the other process runs the rest of the suite beside them.
(pytest-xdist's `xdist_group` would do this, but under pytest 9 it has no effect: it renames `item._nodeid`, which
pytest no longer reads.)
"""

from quant_platform_tests.test_demo_headless import (
    _test_clean_clone_installs_and_runs_the_headless_demo_to_a_complete_summary,
)
from quant_platform_tests.test_release_flow import _test_bench_release_smoke_one_release_through_the_daemon
from quant_platform_tests.test_ui_browser import _test_dagster_ui_shows_catalog_lineage_checks_and_freshness
from quant_platform_tests.test_up_smoke import _test_up_serves_the_catalog_and_loads_a_release_without_clicks

test_clean_clone_installs_and_runs_the_headless_demo_to_a_complete_summary = (
    _test_clean_clone_installs_and_runs_the_headless_demo_to_a_complete_summary)
test_bench_release_smoke_one_release_through_the_daemon = _test_bench_release_smoke_one_release_through_the_daemon
test_dagster_ui_shows_catalog_lineage_checks_and_freshness = _test_dagster_ui_shows_catalog_lineage_checks_and_freshness
test_up_serves_the_catalog_and_loads_a_release_without_clicks = (
    _test_up_serves_the_catalog_and_loads_a_release_without_clicks)
