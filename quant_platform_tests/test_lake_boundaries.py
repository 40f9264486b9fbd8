"""Run tags and run config cannot point a run outside its lake and warehouse: real runs of the WPSR job on a
real Dagster instance, with hostile tags, a tampered archived file and a run config repointing a resource.

Never fake the lake or the run: the files are real files, the runs real in-process Dagster runs.
"""

from __future__ import annotations

import hashlib
import os
from datetime import date

import pytest

from quant_platform_tests.conftest import REPO_ROOT, SAMPLE_DATA

WEEK = "2026-04-24"  # the week of the real WPSR file the simulator serves
REAL_WPSR = SAMPLE_DATA / "eia" / "wpsr_table1_2026-05-01.csv"
# The real file with commercial crude stocks changed: loaded, it would show up in the warehouse.
TAMPERED = REAL_WPSR.read_bytes().replace(b'"459.495"', b'"999.999"', 1)


def _run(instance, tags: dict | None = None, run_config: dict | None = None):
    from quant_platform.definitions import defs

    job = defs.resolve_job_def("eia_wpsr_job")
    return job.execute_in_process(instance=instance, partition_key=WEEK, tags=tags or {},
                                  run_config=run_config or {}, raise_on_error=False)


def _stored_text(instance, result) -> str:
    """Everything the instance stored about the run, serialized (messages, errors and their causes)."""
    from dagster._serdes import serialize_value

    return "\n".join(serialize_value(e) for e in instance.all_logs(result.run_id))


def _rows(wh) -> int:
    return int(wh.scalar("SELECT count(*) FROM macro.eia_wpsr WHERE week_ending = :week",
                         {"week": date.fromisoformat(WEEK)}))


def _lake():
    from quant_platform.platform.lake import Lake
    from quant_platform.platform.settings import load_settings

    return Lake(load_settings().lake_url)


@pytest.mark.parametrize("how", ["dotdot", "inner_dotdot", "absolute", "symlink"])
def test_a_run_tagged_with_a_path_outside_the_lake_is_refused(how, simulator, duck, instance, tmp_path):
    outside = tmp_path / "outside" / "table1.csv"
    outside.parent.mkdir()
    outside.write_bytes(TAMPERED)
    sha = hashlib.sha256(TAMPERED).hexdigest()
    lake = _lake()
    inside = f"raw/eia/wpsr_table1/{WEEK}/{sha}.csv"
    path = {
        "dotdot": os.path.relpath(outside, lake.root),  # ../../outside/table1.csv
        "inner_dotdot": f"raw/eia/wpsr_table1/{WEEK}/" + os.path.relpath(outside, f"{lake.root}/raw/eia/"
                                                                          f"wpsr_table1/{WEEK}"),
        "absolute": str(outside),
        "symlink": inside,
    }[how]
    if how == "symlink":  # a lake entry of the right shape that leads out of the lake
        link = os.path.join(lake.root, inside)
        os.makedirs(os.path.dirname(link))
        os.symlink(outside, link)
    result = _run(instance, tags={"qp/raw_sha256": sha, "qp/raw_path": path})
    assert not result.success
    stored = _stored_text(instance, result)
    assert "qp/raw_path" in stored and "refused" in stored, stored[-2000:]
    assert _rows(duck) == 0, "nothing from outside the lake may be loaded"
    assert not simulator.requests_seen("/wpsr/"), "a refused tag is not silently replaced by a download"


@pytest.mark.parametrize("how", ["tagged", "archived", "forged_tag"])
def test_a_tampered_archived_file_is_refused_by_the_sha_check(how, simulator, duck, instance):
    lake = _lake()
    archived = lake.archive_raw("eia", "wpsr_table1", WEEK, REAL_WPSR.read_bytes(), "csv")
    full = lake.full_path(archived.path)
    tags = {"qp/raw_sha256": archived.sha256, "qp/raw_path": archived.path}
    if how == "forged_tag":  # the file is intact, the lineage the tag claims is not
        tags["qp/raw_sha256"] = hashlib.sha256(TAMPERED).hexdigest()
    else:  # bytes changed on disk after archiving (the file is read-only: someone made it writable)
        os.chmod(full, 0o644)
        with open(full, "wb") as f:
            f.write(TAMPERED)
    result = _run(instance, tags=tags if how != "archived" else {})
    assert not result.success
    stored = _stored_text(instance, result)
    assert "sha256" in stored and "mismatch" in stored, stored[-2000:]
    assert _rows(duck) == 0


@pytest.mark.parametrize("resource", ["warehouse", "lake"])
def test_a_run_config_repointing_a_resource_url_is_refused(resource, simulator, duck, instance, tmp_path):
    from quant_platform.platform.warehouse import Warehouse

    # A working warehouse (or lake) somewhere else: the run would happily write there if allowed to.
    other = Warehouse(f"duckdb:///{tmp_path / 'elsewhere.duckdb'}")
    other.apply_sql_dir(REPO_ROOT / "quant_platform" / "sql")
    other.dispose()
    url = other.url if resource == "warehouse" else str(tmp_path / "elsewhere_lake")
    result = _run(instance, tags={"qp/refetch": "true"},
                  run_config={"resources": {resource: {"config": {"url": url}}}})
    assert not result.success
    stored = _stored_text(instance, result)
    env = "QP_WAREHOUSE_URL" if resource == "warehouse" else "QP_LAKE_URL"
    assert env in stored and "run config" in stored, stored[-2000:]
    other = Warehouse(url if resource == "warehouse" else other.url)
    assert int(other.scalar("SELECT count(*) FROM macro.eia_wpsr")) == 0
    other.dispose()
    assert not (tmp_path / "elsewhere_lake").exists()
    assert _rows(duck) == 0
