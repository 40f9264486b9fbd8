"""The report registry: every macro report is one folder plus one registry line, and everything else is derived.

Never declare a report's asset, job, sensor or check in a test: the test writes a folder and adds a registry line.

The registered reports must each yield an asset, a job, a release sensor, (for calendar reports) a release_on_time
check, their DDL, a data-dictionary entry and the simulator's files on their own routes, all taken from the
registry. A minimal report folder written here (into the macro/reports package, as a new report would be) and one
line added to REPORT_FOLDERS yield the same set, and its first release lands through its derived sensor and job.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import sys
import textwrap
from datetime import UTC, datetime

import dagster as dg
import pytest

import quant_platform.definitions  # noqa: F401  (the platform's lane is built before any registry is patched)
from quant_platform.macro import registry
from quant_platform.macro.definitions import MACRO_LANE, build_macro_lane
from quant_platform.platform import ddl
from quant_platform_tests.conftest import SAMPLE_DATA
from quant_platform_tests.release_helpers import check_results, evaluate_sensor, execute_requests

DEMO = "demo_weekly_storage"  # the report this test onboards

# The minimal folder of a weekly report: its table, its route and simulated file, its declaration. Nothing else.
DEMO_FOLDER = {
    "__init__.py": '''
        """A demo weekly storage report (test only): macro.demo_weekly_storage, one week per partition.

        Never import Dagster or pandas here: the vendor simulator imports this folder's routes.py.
        """
    ''',
    "table.py": '''
        """The demo report's table.

        Never rename a column: the checks and the test read them.
        """

        from quant_platform.macro.columns import LOAD_COLUMNS
        from quant_platform.platform.tables import Column, TableSpec

        TABLE = TableSpec(
            schema="macro",
            name="demo_weekly_storage",
            description="Demo weekly storage by region (test only).",
            columns=(
                Column("week_ending", "date", "Friday ending the week (the partition key).", nullable=False),
                Column("region", "text", "Storage region, or 'total'.", nullable=False,
                       allowed_values=("east", "west", "total")),
                Column("value", "double", "Working gas in storage.", unit="billion cubic feet", nullable=False,
                       min_value=0, max_value=10_000),
                *LOAD_COLUMNS,
            ),
            primary_key=("week_ending", "region"),
            partition_column="week_ending",
            rows_per_partition=(3, 3),
        )
    ''',
    "routes.py": '''
        """Where the demo report is published, and what the vendor simulator serves there.

        Never import Dagster or pandas here: the vendor simulator reads this module.
        """

        from datetime import UTC, datetime

        from quant_platform.macro.routes import EIA_IR, Route
        from quant_platform.platform.calendars import WeeklyReleaseCalendar
        from quant_platform.vendors.core import CatalogEntry

        # Thursdays 10:30 New York for the week ending the Friday before (a test's own calendar).
        CALENDAR = WeeklyReleaseCalendar(
            name="demo storage", reference_weekday=4, reference_rule="demo weeks end on a Friday",
            partition_label="week", release_after_days=6, release_time=datetime(2000, 1, 1, 10, 30).time(),
            holidays_from_day=3, partitions_start="2024-01-05", description="Thursdays 10:30 America/New_York.")
        # Documented nowhere: a test route on EIA's release host.
        WEEKLY = Route(EIA_IR, "/demo/storage.csv", dataset="demo_storage", ext="csv",
                       documented_at="quant_platform_tests/test_report_registry.py")


        def release_body(week: str, east: int = 10, west: int = 5, total: int = 15) -> bytes:
            return f"week_ending,region,value\\n{week},east,{east}\\n{week},west,{west}\\n{week},total,{total}\\n".encode()


        def _latest_release(_data_dir) -> list[CatalogEntry]:
            week = CALENDAR.latest_released(datetime.now(UTC)).isoformat()
            return [CatalogEntry(WEEKLY.path, release_body(week), "text/csv", "the test's release")]


        SIMULATED = (_latest_release,)
    ''',
    "report.py": '''
        """The demo report as one declaration: table, route, parser, calendar and a domain check.

        Never publish a week whose regions do not add up to its total.
        """

        import io
        from datetime import timedelta

        import pandas as pd

        from quant_platform.macro.declaration import MacroReport
        from quant_platform.macro.loading import DomainCheck
        from quant_platform.quality.rules import RuleOutcome

        from .routes import CALENDAR, WEEKLY
        from .table import TABLE


        def parse(files, keys):
            frames = []
            for raw in files:
                df = pd.read_csv(io.BytesIO(raw.body), parse_dates=["week_ending"])
                df["week_ending"] = df["week_ending"].dt.date
                df["value"] = df["value"].astype(float)
                df["source_sha256"] = raw.sha256
                frames.append(df)
            return pd.concat(frames, ignore_index=True)


        def regions_sum_to_total(frame, _warehouse):
            parts = frame[frame.region != "total"].groupby("week_ending")["value"].sum()
            total = frame[frame.region == "total"].set_index("week_ending")["value"]
            gap = (parts - total).abs()
            return RuleOutcome("regions_sum_to_total", bool((gap < 1e-9).all()), "",
                               {"largest_gap": float(gap.max()) if len(gap) else 0.0})


        REPORT = MacroReport(
            table=TABLE, vendor="eia", routes=(WEEKLY,), parse=parse, calendar=CALENDAR, release_route=WEEKLY,
            release_partition=lambda body: body.split(b"\\n")[1].split(b",")[0].decode(),
            domain_checks=(DomainCheck("regions_sum_to_total", "East + west = total, every week.",
                                       regions_sum_to_total),),
            # The test publishes a revision of the latest week whatever the weekday it runs on: with the default
            # window (36 h after Thursday's release) the sensor stopped polling from Friday night ET on, and the
            # test failed until the next Thursday.
            revision_window=timedelta(days=8),
        )
    ''',
}


@pytest.fixture
def registry_with_demo(tmp_path, monkeypatch):
    """The demo folder written into the macro/reports package, and its one line added to the registry."""
    import quant_platform.macro.reports as reports_package

    folder = tmp_path / "reports" / DEMO
    folder.mkdir(parents=True)
    for name, text in DEMO_FOLDER.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    monkeypatch.setattr(reports_package, "__path__", [*reports_package.__path__, str(folder.parent)])
    monkeypatch.setattr(registry, "REPORT_FOLDERS", (*registry.REPORT_FOLDERS, DEMO))  # the registry line
    importlib.invalidate_caches()
    yield registry
    for module in [m for m in sys.modules if m.startswith(f"{registry.REPORTS_PACKAGE}.{DEMO}")]:
        del sys.modules[module]


def _served_on_its_routes(report, entries) -> list[str]:
    """Simulated paths that match none of the report's route templates (query of a template included)."""
    patterns = []
    for route in report.routes:
        path, _, query = route.path.partition("?")
        pattern = re.escape(path) + (r"\?" + re.escape(query) if query else r"(\?.*)?")
        patterns.append(re.compile(re.sub(r"\\\{[a-z_]+\\\}", r"[^?&]+", pattern) + "$"))
    return [e.path for e in entries if not any(p.match(e.path) for p in patterns)]


def _dictionary(defs: dg.Definitions) -> dict:
    from quant_platform.governance.dictionary import build_dictionary

    return {e.key: e for e in build_dictionary(defs)}


def _check_report(defs: dg.Definitions, lane, report) -> None:
    """The whole derived set of one report, in `defs` and from `lane` (the registry's derivation)."""
    repo = defs.get_repository_def()
    key = report.table.asset_key
    assert key == dg.AssetKey(["macro", report.report_id])
    assert defs.get_assets_def(key) is lane.assets[report.report_id]
    job = defs.resolve_job_def(f"{report.report_id}_job")
    assert job.asset_layer.selected_asset_keys == {key}
    sensor = repo.get_sensor_def(report.sensor.name)
    assert job.name in {t.job_name for t in sensor.targets}
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    checks = {c.name for c in defs.get_assets_def(key).check_specs}
    assert {"schema_and_types", "primary_key_unique", "row_count_in_range"} <= checks
    assert {c.name for c in report.domain_checks} <= checks
    if report.on_calendar:
        on_time = dg.AssetCheckKey(key, "release_on_time")
        assert on_time in lane.release_checks[report.report_id].check_keys
        assert on_time in defs.resolve_job_def("release_watch_job").asset_layer.asset_graph.asset_check_keys
    macro_ddl = ddl.generated_files()["010_tables_macro.sql"]
    assert f"CREATE TABLE IF NOT EXISTS {report.table.qualified_name} (" in macro_ddl
    entry = _dictionary(defs)[key.to_user_string()]
    assert entry.schema_table == report.table.qualified_name
    assert [c.name for c in entry.columns] == report.table.column_names
    assert not entry.problems, entry.problems
    if report.on_calendar:
        assert "release_on_time" in {c.name for c in entry.checks}
    routes = registry.report_module(report.report_id, "routes")
    simulated = [e for source in routes.SIMULATED for e in source(SAMPLE_DATA)]
    # A report without a real sample says why (NO_SAMPLE) instead of serving made-up bytes.
    assert simulated or getattr(routes, "NO_SAMPLE", "")
    assert not _served_on_its_routes(report, simulated)


def test_every_registered_report_yields_its_whole_set_from_the_registry():
    from quant_platform.definitions import defs

    reports = registry.registered_reports()
    assert [r.report_id for r in reports] == list(registry.REPORT_FOLDERS)
    for folder, report in zip(registry.REPORT_FOLDERS, reports, strict=True):
        assert report.table is registry.report_module(folder, "table").TABLE
        _check_report(defs, MACRO_LANE, report)
    # The platform's macro lane is exactly the registry's: no report is listed anywhere else.
    repo = defs.get_repository_def()
    macro_keys = {k for k in repo.asset_graph.get_all_asset_keys() if k.path[0] == "macro"}
    assert macro_keys == {r.table.asset_key for r in reports}
    assert ddl.all_table_groups()["010_tables_macro.sql"] == registry.registered_tables()
    release_sensors = {s.name for s in repo.sensor_defs if s.name.endswith("_release_sensor")}
    assert release_sensors == {r.sensor.name for r in reports}


def test_the_public_names_of_the_registered_reports_are_unchanged():
    """Asset keys, jobs, sensors and checks are contracts (UI, tests, catalog snapshot): derived, yet the same."""
    lane = MACRO_LANE  # reports onboarded later add their own names; the first four keep theirs
    assert {"cftc_cot_disaggregated", "cftc_cot_legacy", "eia_series", "eia_wpsr"} <= set(lane.jobs)
    assert {"cftc_cot_disaggregated_job", "cftc_cot_legacy_job", "eia_series_job", "eia_wpsr_job"} <= {
        j.name for j in lane.jobs.values()}
    assert {"cftc_cot_release_sensor", "eia_series_release_sensor", "eia_wpsr_release_sensor"} <= set(lane.sensors)
    assert {"cftc_cot_disaggregated", "cftc_cot_legacy", "eia_wpsr"} <= set(lane.release_checks)
    assert lane.jobs["eia_wpsr"].name == "eia_wpsr_job" and lane.jobs["cftc_cot_legacy"].name == "cftc_cot_legacy_job"
    assert lane.release_watch_job.name == "release_watch_job"


def test_a_report_folder_and_one_registry_line_yield_the_whole_set(registry_with_demo):
    from quant_platform.resources import platform_resources

    lane = build_macro_lane(registry.registered_reports())
    demo = next(r for r in lane.reports if r.report_id == DEMO)
    defs = dg.Definitions.merge(lane.definitions, dg.Definitions(resources=platform_resources()))
    _check_report(defs, lane, demo)
    assert demo.sensor.name == f"{DEMO}_release_sensor"
    assert DEMO in [t.name for t in ddl.all_table_groups()["010_tables_macro.sql"]]
    entry = _dictionary(defs)[f"macro/{DEMO}"]
    assert next(c for c in entry.columns if c.name == "value").unit == "billion cubic feet"
    assert "regions_sum_to_total" in {c.name for c in entry.checks}
    assert entry.freshness and "30 11 * * 4" in entry.freshness  # an hour after Thursday 10:30
    from quant_platform.vendors.simulator import build_catalog

    assert "/demo/storage.csv" in {e.path for e in build_catalog(SAMPLE_DATA)}


def test_the_new_report_lands_through_its_derived_sensor_and_job(registry_with_demo, qp_home, monkeypatch,
                                                                  warehouse, instance):
    from quant_platform.macro.reports.demo_weekly_storage import routes

    from quant_platform.resources import platform_resources
    from quant_platform.vendors.simulator import VendorSimulator

    # The DDL the registry now derives, applied: the new table exists.
    sql = qp_home / "sql_demo"
    sql.mkdir()
    (sql / "010_tables_macro.sql").write_text(ddl.generated_files()["010_tables_macro.sql"])
    warehouse.apply_sql_dir(sql)

    sim = VendorSimulator(data_dir=SAMPLE_DATA, preload=True).start()  # serves the folder's SIMULATED file
    try:
        monkeypatch.setenv("QP_EIA_BASE_URL", sim.base_url)
        monkeypatch.setenv("QP_CFTC_BASE_URL", sim.base_url)
        lane = build_macro_lane(registry.registered_reports())
        defs = dg.Definitions.merge(lane.definitions, dg.Definitions(resources=platform_resources()))
        week = routes.CALENDAR.latest_released(datetime.now(UTC)).isoformat()
        body = routes.release_body(week)

        reqs, cursor, _ = evaluate_sensor(defs, f"{DEMO}_release_sensor", instance, None)
        assert [r.partition_key for r in reqs] == [week]
        assert reqs[0].run_key == f"{DEMO}:{week}:{hashlib.sha256(body).hexdigest()[:16]}"
        assert reqs[0].job_name == f"{DEMO}_job"
        result = execute_requests(defs, instance, reqs)[0]
        assert result.success
        checks = check_results(result)
        assert checks["regions_sum_to_total"] and all(checks.values()), checks
        rows = warehouse.query_df(f"SELECT region, value FROM macro.{DEMO} ORDER BY region")  # noqa: S608
        assert rows.values.tolist() == [["east", 10.0], ["total", 15.0], ["west", 5.0]]

        # A revised file whose regions no longer add up: the domain check blocks it, the week's rows stay.
        sim.publish(routes.WEEKLY.path, routes.release_body(week, east=11))
        reqs, cursor, _ = evaluate_sensor(defs, f"{DEMO}_release_sensor", instance, cursor)
        assert [r.partition_key for r in reqs] == [week]
        result = execute_requests(defs, instance, reqs)[0]
        assert not result.success
        assert check_results(result)["regions_sum_to_total"] is False
        again = warehouse.query_df(f"SELECT region, value FROM macro.{DEMO} ORDER BY region")  # noqa: S608
        assert again.values.tolist() == rows.values.tolist()
    finally:
        sim.stop()
