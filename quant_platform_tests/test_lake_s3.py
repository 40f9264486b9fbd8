"""The lake on object storage: QP_LAKE_URL=s3://bucket/prefix against a real S3 HTTP API (moto's server, one per
session, see s3_server.py), with the endpoint and keys from the environment only.

Never patch the S3 client: every byte goes over HTTP to the server, and the test looks at the bucket through a
pyarrow client of its own, not through the Lake it checks.
"""

from __future__ import annotations

import hashlib
import time
import urllib.request
from datetime import date

import pyarrow.fs as pafs
import pytest

from quant_platform_tests.conftest import free_port

WEEK = "2026-04-24"  # the week of the real WPSR file the simulator serves
WPSR_ROUTE = "/wpsr/table1.csv"


def _objects(s3_server, lake_url: str) -> dict[str, bytes]:
    """Every object under the lake's prefix (key relative to the prefix -> bytes), read independently."""
    fs = s3_server.filesystem()
    root = lake_url.removeprefix("s3://")
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    out = {}
    for info in infos:
        if info.type == pafs.FileType.File:
            with fs.open_input_stream(info.path) as f:
                out[info.path[len(root) + 1:]] = f.read()
    return out


def _requests(s3_server, lake_url: str, method: str) -> list[str]:
    """The requests of `method` the server logged on objects under the lake's prefix (werkzeug's access log)."""
    path = "/" + lake_url.removeprefix("s3://") + "/"
    lines = s3_server.log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if f'"{method} {path}' in line]


@pytest.fixture
def s3_lake(s3_server, monkeypatch):
    """A Lake on a fresh prefix of the moto bucket, built from the environment as the platform builds it."""
    from quant_platform.platform.lake import Lake

    for var in ("QP_LAKE_URL", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(var, raising=False)
    url = s3_server.lake_env(monkeypatch)
    return Lake(url)


def test_archive_exists_read_find_on_s3(s3_server, s3_lake):
    from quant_platform.platform.lake import Lake

    body = b"week,value\n2026-04-24,459.495\n"
    sha = hashlib.sha256(body).hexdigest()
    first = s3_lake.archive_raw("eia", "wpsr_table1", WEEK, body, "csv")
    assert (first.path, first.sha256, first.size, first.is_new) == (
        f"raw/eia/wpsr_table1/{WEEK}/{sha}.csv", sha, len(body), True)
    # In the bucket, under the prefix, exactly the object: no temp name, no directory marker, and it went up in
    # one PUT (no multipart upload).
    assert _objects(s3_server, s3_lake.url) == {first.path: body}
    deadline = time.monotonic() + 5
    while not _requests(s3_server, s3_lake.url, "PUT") and time.monotonic() < deadline:
        time.sleep(0.05)  # the access log line is written as the answer goes out
    assert [line.split('"')[1] for line in _requests(s3_server, s3_lake.url, "PUT")] == [
        f"PUT /{s3_lake.root}/{first.path} HTTP/1.1"]
    assert _requests(s3_server, s3_lake.url, "POST") == []

    # The same bytes again: nothing written (content-addressed, never overwritten).
    mtime = s3_server.filesystem().get_file_info(f"{s3_lake.root}/{first.path}").mtime_ns
    again = Lake(s3_lake.url).archive_raw("eia", "wpsr_table1", WEEK, body, "csv")
    assert (again.path, again.is_new) == (first.path, False)
    assert s3_server.filesystem().get_file_info(f"{s3_lake.root}/{first.path}").mtime_ns == mtime
    assert len(_requests(s3_server, s3_lake.url, "PUT")) == 1

    assert s3_lake.exists(first.path) and not s3_lake.exists(f"raw/eia/wpsr_table1/{WEEK}/{'0' * 64}.csv")
    assert s3_lake.read(first.path) == body
    ref, read_back = s3_lake.read_raw(first.path, expected_sha256=sha)
    assert (ref.partition, ref.sha256, read_back) == (WEEK, sha, body)
    assert s3_lake.find_raw("eia", "wpsr_table1", sha) == first.path
    assert s3_lake.find_raw("eia", "wpsr_table1", "f" * 64) is None
    assert s3_lake.revisions("eia", "wpsr_table1", "2026-05-01") == []
    with pytest.raises(FileNotFoundError):
        s3_lake.read(f"raw/eia/wpsr_table1/{WEEK}/{'0' * 64}.csv")


def test_revisions_are_ordered_by_time_then_name_on_s3(s3_server, s3_lake):
    """S3 keeps whole seconds: revisions of the same second come by name, a later second after an earlier one
    whatever the names."""
    fs = s3_server.filesystem()

    def archive_with_name(first_hex: str) -> str:
        n = 0
        while True:  # bytes whose sha256 starts with the wanted digit, so the name order is known
            body = f"rev {first_hex} {n}\n".encode()
            if hashlib.sha256(body).hexdigest().startswith(first_hex):
                return s3_lake.archive_raw("eia", "wpsr_table1", WEEK, body, "csv").path
            n += 1

    late_name = archive_with_name("f")
    start = fs.get_file_info(f"{s3_lake.root}/{late_name}").mtime_ns
    time.sleep(max(0.0, (start + 1_000_000_000 - time.time_ns()) / 1e9) + 0.05)  # into the next second
    early_name = archive_with_name("0")
    same_second = archive_with_name("1")
    infos = {p: fs.get_file_info(f"{s3_lake.root}/{p}").mtime_ns for p in (late_name, early_name, same_second)}
    assert infos[late_name] < infos[early_name]
    expected = sorted(infos, key=lambda p: (infos[p], p.rsplit("/", 1)[1]))
    assert expected[0] == late_name  # the older revision first although its name sorts last
    assert s3_lake.revisions("eia", "wpsr_table1", WEEK) == expected
    assert s3_lake.revisions("eia", "wpsr_table1", WEEK) == expected  # the same order every time


def test_read_raw_refuses_an_object_changed_behind_the_lake(s3_server, s3_lake):
    from quant_platform.errors import LakeIntegrityError

    body = b"the archived bytes\n"
    archived = s3_lake.archive_raw("cftc", "legacy_futures", "2025", body, "txt")
    with pytest.raises(LakeIntegrityError, match="expected|lineage"):
        s3_lake.read_raw(archived.path, expected_sha256="a" * 64)
    # Someone with write access to the bucket replaces the object with other bytes, under the same name.
    with s3_server.filesystem().open_output_stream(f"{s3_lake.root}/{archived.path}") as f:
        f.write(b"the archived bytes, quietly edited\n")
    with pytest.raises(LakeIntegrityError, match="sha256 mismatch"):
        s3_lake.read_raw(archived.path)


def test_path_checks_hold_on_s3(s3_server, s3_lake):
    from quant_platform.errors import LakePathError

    s3_lake.archive_raw("eia", "wpsr_table1", WEEK, b"inside\n", "csv")
    for hostile in ("../other-prefix/raw/eia/x/2026-04-24/" + "a" * 64 + ".csv", "/etc/passwd",
                    f"s3://{s3_server.bucket}/other/raw/eia/wpsr_table1/{WEEK}/{'a' * 64}.csv",
                    f"raw/eia/wpsr_table1/{WEEK}/../../../../{'a' * 64}.csv", "raw\\eia", ""):
        with pytest.raises(LakePathError):
            s3_lake.read_raw(hostile)
    for relative in ("../escape", "raw/./x", "/abs"):
        with pytest.raises(LakePathError):
            s3_lake.read(relative)
        with pytest.raises(LakePathError):
            s3_lake.exists(relative)
    for args in (("eia", "../x", WEEK), ("eia", "wpsr_table1", "2026-02-30"), ("e/ia", "wpsr_table1", WEEK)):
        with pytest.raises(LakePathError):
            s3_lake.archive_raw(*args, b"x", "csv")
    with pytest.raises(LakePathError):
        s3_lake.archive_raw("eia", "wpsr_table1", WEEK, b"x", "c/sv")
    # Nothing was written beside the one file, and nothing outside the prefix.
    assert len(_objects(s3_server, s3_lake.url)) == 1
    listed = s3_server.filesystem().get_file_info(pafs.FileSelector(s3_server.bucket))
    assert all(not i.base_name.startswith(("..", "etc", "other")) for i in listed)


def test_configuration_comes_from_the_environment_and_fails_in_one_line(s3_server, s3_lake, monkeypatch):
    from quant_platform.errors import ConfigError
    from quant_platform.platform.lake import Lake

    url = s3_lake.url
    # QP_S3_ENDPOINT_URL overrides AWS_ENDPOINT_URL (here: a port nobody listens on).
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("QP_S3_ENDPOINT_URL", s3_server.endpoint_url)
    assert Lake(url).archive_raw("eia", "wpsr_table1", WEEK, b"via the override\n", "csv").is_new
    monkeypatch.delenv("AWS_REGION")  # us-east-1 by default
    assert Lake(url).revisions("eia", "wpsr_table1", WEEK)

    # An endpoint that does not answer: one line naming the lake and the endpoint, never the secret.
    monkeypatch.delenv("QP_S3_ENDPOINT_URL")
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        Lake(url).exists(f"raw/eia/wpsr_table1/{WEEK}/{'a' * 64}.csv")
    text = str(caught.value)
    assert "\n" not in text and url in text and "AWS_ENDPOINT_URL" in text and caught.value.__cause__ is None
    assert s3_server.secret_key not in text and time.monotonic() - started < 15

    for endpoint in ("ftp://127.0.0.1:9000", "127.0.0.1:9000", "http://127.0.0.1:9000/bucket",
                     f"http://user:{s3_server.secret_key}@127.0.0.1:9000", "http://127.0.0.1:port"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        with pytest.raises(ConfigError, match="not an object-store endpoint") as caught:
            Lake(url)
        assert s3_server.secret_key not in str(caught.value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)

    for bad_url, message in ((f"s3://key:{s3_server.secret_key}@{s3_server.bucket}/p", "must not carry"),
                             (f"s3://{s3_server.bucket}/p?region=eu-west-1", "from the environment"),
                             ("s3://Not_A_Bucket/p", "not an S3 bucket name"),
                             (f"s3://{s3_server.bucket}/a/../b", "prefix"),
                             (f"s3://{s3_server.bucket}/a//b", "prefix")):
        with pytest.raises(ConfigError, match=message) as caught:
            Lake(bad_url)
        assert s3_server.secret_key not in str(caught.value)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match="come together"):
        Lake(url)


def test_a_release_loads_end_to_end_with_the_lake_on_s3(s3_server, simulator, duck, instance, monkeypatch):
    """The real WPSR release sensor and its run, with QP_LAKE_URL=s3://...: the raw file the simulator served is
    in the bucket under its sha256, the rows are in the warehouse; a rerun writes no object and no row."""
    from dagster._serdes import serialize_value

    from quant_platform.definitions import defs
    from quant_platform_tests.release_helpers import evaluate_sensor, execute_requests

    lake_url = s3_server.lake_env(monkeypatch)
    with urllib.request.urlopen(simulator.base_url + WPSR_ROUTE, timeout=5) as resp:
        served = resp.read()
    sha = hashlib.sha256(served).hexdigest()

    reqs, cursor, _ = evaluate_sensor(defs, "eia_wpsr_release_sensor", instance, None)
    reqs = [r for r in reqs if r.job_name == "eia_wpsr_job"]
    assert [r.partition_key for r in reqs] == [WEEK]
    assert reqs[0].tags["qp/raw_sha256"] == sha
    results = execute_requests(defs, instance, reqs)
    assert results[0].success

    raw_key = f"raw/eia/wpsr_table1/{WEEK}/{sha}.csv"
    objects = _objects(s3_server, lake_url)
    assert list(objects) == [raw_key]
    assert hashlib.sha256(objects[raw_key]).hexdigest() == sha and objects[raw_key] == served

    def rows():
        return duck.query_df("SELECT series_key, measure, value, source_sha256 FROM macro.eia_wpsr "
                             "WHERE week_ending = :w ORDER BY series_key, measure", {"w": date.fromisoformat(WEEK)})

    loaded = rows()
    assert len(loaded) == 540 and set(loaded["source_sha256"]) == {sha}

    # Again: the sensor sees nothing new, and the same run once more reuses the archived object (read back from
    # S3 and re-hashed): no new object, the same rows.
    again, _, _ = evaluate_sensor(defs, "eia_wpsr_release_sensor", instance, cursor)
    assert [r for r in again if r.job_name == "eia_wpsr_job"] == []
    rerun = execute_requests(defs, instance, reqs)[0]
    assert rerun.success
    meta = rerun.asset_materializations_for_node("macro__eia_wpsr")[0].metadata
    assert meta["raw_reused_from_lake"].value is True
    assert _objects(s3_server, lake_url) == objects
    assert rows().equals(loaded)

    stored = "\n".join(serialize_value(e) for r in (*results, rerun) for e in instance.all_logs(r.run_id))
    assert s3_server.secret_key not in stored


_RUN_REQUEST = """
import sys, json
import dagster as dg
from quant_platform.definitions import defs
req = json.loads(sys.argv[1])
with dg.DagsterInstance.get() as instance:
    defs.resolve_job_def(req["job"]).execute_in_process(instance=instance, partition_key=req["partition"],
                                                       tags=req["tags"], raise_on_error=False)
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("lake_kind", ["local", "s3"])
def test_a_release_run_killed_after_archiving_reruns_to_the_same_object_and_rows(lake_kind, request, simulator, duck,
                                                                                 instance, monkeypatch, qp_home):
    """The macro raw archive on either lake: the release sensor's run is SIGKILLed (its whole process) as soon as
    its raw file is in the lake; the re-run of the same request reuses that object (read back and re-hashed), writes
    no other, and loads every row once."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from quant_platform.definitions import defs
    from quant_platform_tests.release_helpers import evaluate_sensor, execute_requests

    if lake_kind == "s3":
        s3 = request.getfixturevalue("s3_server")
        lake_url = s3.lake_env(monkeypatch)

        def objects() -> dict[str, bytes]:
            return _objects(s3, lake_url)
    else:
        lake_url = str(qp_home / "lake")
        monkeypatch.setenv("QP_LAKE_URL", lake_url)

        def objects() -> dict[str, bytes]:
            root = qp_home / "lake"
            return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with urllib.request.urlopen(simulator.base_url + WPSR_ROUTE, timeout=5) as resp:
        sha = hashlib.sha256(resp.read()).hexdigest()
    reqs, _, _ = evaluate_sensor(defs, "eia_wpsr_release_sensor", instance, None)
    reqs = [r for r in reqs if r.job_name == "eia_wpsr_job"]
    assert [r.partition_key for r in reqs] == [WEEK]

    raw_key = f"raw/eia/wpsr_table1/{WEEK}/{sha}.csv"
    spec = json.dumps({"job": reqs[0].job_name, "partition": WEEK, "tags": dict(reqs[0].tags)})
    proc = subprocess.Popen([sys.executable, "-c", _RUN_REQUEST, spec], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while raw_key not in objects():
            assert proc.poll() is None, "the run ended before its raw file was archived"
            assert time.monotonic() < deadline, "no raw file archived in 120 s"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-run: archived, the load maybe not done
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    archived = objects()
    assert list(archived) == [raw_key] and hashlib.sha256(archived[raw_key]).hexdigest() == sha

    rerun = execute_requests(defs, instance, reqs)[0]
    assert rerun.success
    assert rerun.asset_materializations_for_node("macro__eia_wpsr")[0].metadata["raw_reused_from_lake"].value is True
    assert objects() == archived
    loaded = duck.query_df("SELECT count(*) AS n, count(DISTINCT (series_key, measure)) AS k, min(source_sha256) AS a,"
                           " max(source_sha256) AS b FROM macro.eia_wpsr WHERE week_ending = :w",
                           {"w": date.fromisoformat(WEEK)}).iloc[0]
    assert (loaded["n"], loaded["k"], loaded["a"], loaded["b"]) == (540, 540, sha, sha)
