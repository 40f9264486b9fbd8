"""Tests of the local EIA/CFTC simulator over real HTTP on a free loopback port, against the real files.

These tests must never edit the sample vendor files or reach the internet; time moves via a fake clock.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
import zlib
from datetime import date, timedelta
from email.utils import formatdate
from pathlib import Path

import pytest
import requests

from quant_platform.macro.cftc.parsing import LEGACY_COLUMNS
from quant_platform.macro.reports.eia_series.series import api_v2_request
from quant_platform.vendors.simulator import (
    BOMB_INFLATED_BYTES,
    CFTC_DISAGG_WEEKLY_PATH,
    CFTC_LEGACY_WEEKLY_PATH,
    DATA_DIR_ENV,
    DISAGG_BLOCK_COLUMNS,
    DISAGG_CHANGES_ALL_COLUMN,
    DISAGG_PCT_ALL_COLUMN,
    DISAGG_PCT_OLD_COLUMN,
    DISAGG_POSITIONS_ALL_COLUMN,
    DISAGG_POSITIONS_OLD_COLUMN,
    DNAV_WCESTUS1_PATH,
    EIA_API_RECORDINGS,
    EIA_API_WSTK_PATH,
    FAULT_KINDS,
    WPSR_TABLE1_PATH,
    FaultKindError,
    VendorDataDirNotFoundError,
    VendorSimulator,
    next_cot_week,
    next_wpsr_week,
    resolve_data_dir,
)

DATA_DIR = resolve_data_dir()
WPSR_FILE = DATA_DIR / "eia" / "wpsr_table1_2026-05-01.csv"
DNAV_FILE = DATA_DIR / "eia" / "dnav_WCESTUS1_weekly.csv"
DISAGG_FILE = DATA_DIR / "cftc" / "disaggregated_futures_only_2021_energy.txt"
DISAGG_ZIP_PATH = "/files/dea/history/fut_disagg_txt_2021.zip"
LEGACY_FILE = DATA_DIR / "cftc" / "legacy_futures_only_2025_energy.txt"
LEGACY_ZIP_PATH = "/files/dea/history/deacot2025.zip"
API_WCESTUS1_FILE = DATA_DIR / "eia" / "api_v2" / (
    "petroleum-stoc-wstk_WCESTUS1_weekly_period-desc_offset-0_length-5000.json")
T0 = 1_777_000_000.0
TIMEOUT = 5


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def shared_sim():
    """Read-only simulator shared by the tests that neither publish nor inject faults."""
    with VendorSimulator(DATA_DIR) as simulator:
        yield simulator


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def sim(clock: FakeClock):
    with VendorSimulator(DATA_DIR, clock=clock) as simulator:
        yield simulator


def get(simulator: VendorSimulator, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("timeout", TIMEOUT)
    return requests.get(simulator.base_url + path, **kwargs)


def api_get(simulator: VendorSimulator, **params) -> requests.Response:
    return get(simulator, EIA_API_WSTK_PATH, params=params)


def csv_rows(content: bytes, encoding: str = "latin-1") -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode(encoding))))


# -- catalog ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "source"), [(WPSR_TABLE1_PATH, WPSR_FILE), (DNAV_WCESTUS1_PATH, DNAV_FILE)])
def test_eia_files_are_served_verbatim_as_csv_without_charset(shared_sim, path, source):
    response = get(shared_sim, path)
    assert response.status_code == 200
    assert response.content == source.read_bytes()
    assert response.headers["Content-Type"] == "text/csv"
    assert int(response.headers["Content-Length"]) == source.stat().st_size


def test_dnav_query_parameters_match_in_any_order(shared_sim):
    response = get(shared_sim, "/dnav/pet/hist/LeafHandler.ashx?f=W&s=WCESTUS1&n=PET")
    assert response.status_code == 200
    assert response.content == DNAV_FILE.read_bytes()
    assert get(shared_sim, "/dnav/pet/hist/LeafHandler.ashx?n=PET&s=WCRSTUS1&f=W").status_code == 404


def test_unknown_path_is_404(shared_sim):
    response = get(shared_sim, "/wpsr/table9.csv")
    assert response.status_code == 404
    assert shared_sim.requests_seen("/wpsr/table9.csv")[-1]["status"] == 404


def test_disaggregated_history_zip_holds_the_real_file_and_is_deterministic(shared_sim):
    response = get(shared_sim, DISAGG_ZIP_PATH)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == ["f_year.txt"]
    assert archive.read("f_year.txt") == DISAGG_FILE.read_bytes()
    with VendorSimulator(DATA_DIR) as other:
        again = get(other, DISAGG_ZIP_PATH).content
    assert hashlib.sha256(again).hexdigest() == hashlib.sha256(response.content).hexdigest()


def test_weekly_disaggregated_file_is_latest_week_without_header(shared_sim):
    real = DISAGG_FILE.read_bytes()
    body = get(shared_sim, CFTC_DISAGG_WEEKLY_PATH).content
    lines = body.splitlines(keepends=True)
    assert not body.startswith(b'"Market_and_Exchange_Names"')
    assert len(lines) == 7
    real_lines = set(real.splitlines(keepends=True))
    assert all(line in real_lines for line in lines)  # byte-identical rows, CRLF kept
    assert {row[2] for row in csv_rows(body)} == {"2021-03-16"}


def test_legacy_history_zip_holds_the_real_file_and_is_deterministic(shared_sim):
    response = get(shared_sim, LEGACY_ZIP_PATH)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == ["annual.txt"]
    real = LEGACY_FILE.read_bytes()
    assert archive.read("annual.txt") == real
    rows = csv_rows(real)
    assert tuple(rows[0]) == LEGACY_COLUMNS  # the vendor's header, as the parser names it
    latest = max(date.fromisoformat(row[2]) for row in rows[1:])
    assert latest == date(2025, 3, 18)
    assert archive.getinfo("annual.txt").date_time == (2025, 3, 21, 15, 30, 0)  # the Friday release after it
    with VendorSimulator(DATA_DIR) as other:
        assert get(other, LEGACY_ZIP_PATH).content == response.content
    assert get(shared_sim, "/files/dea/history/deacot2021.zip").status_code == 404  # no real 2021 legacy file


def test_legacy_weekly_file_is_the_latest_real_week_without_header(shared_sim):
    real = LEGACY_FILE.read_bytes()
    body = get(shared_sim, CFTC_LEGACY_WEEKLY_PATH).content
    assert not body.startswith(b'"Market and Exchange Names"')
    latest_rows = [line for line in real.splitlines(keepends=True)[1:] if b",2025-03-18," in line]
    assert body == b"".join(latest_rows)  # byte-identical rows, CRLF kept, file order kept
    rows = csv_rows(body)
    assert len(rows) == 6 and {row[2] for row in rows} == {"2025-03-18"}
    assert {len(row) for row in rows} == {len(LEGACY_COLUMNS)}


# -- EIA API v2 ------------------------------------------------------------------------------------


def _dnav_observations() -> list[tuple[str, str]]:
    lines = DNAV_FILE.read_text(encoding="cp1252").splitlines()[5:]
    out = []
    for line in lines:
        day, value = line.split(",")
        month, dom, year = (int(part) for part in day.split("/"))
        out.append((date(year, month, dom).isoformat(), value))
    return out


def test_api_requires_an_api_key(shared_sim):
    response = api_get(shared_sim, frequency="weekly")
    assert response.status_code == 403
    assert response.json()["error"].startswith("No api_key was supplied")
    recorded = EIA_API_RECORDINGS[-1]
    assert get(shared_sim, recorded.path).status_code == 403


@pytest.mark.parametrize("recording", EIA_API_RECORDINGS, ids=lambda r: Path(r.source).stem)
def test_api_serves_each_recorded_answer_verbatim(shared_sim, recording):
    response = get(shared_sim, f"{recording.path}&api_key=test")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.content == (DATA_DIR / recording.source).read_bytes()
    assert shared_sim.release_time(f"{recording.path}&api_key=test") is not None


def test_api_answers_the_platforms_query_with_the_recorded_wcestus1_answer(shared_sim):
    real = API_WCESTUS1_FILE.read_bytes()
    url, params = api_v2_request(shared_sim.base_url, "WCESTUS1", "test-key", 0)
    assert url == shared_sim.base_url + EIA_API_WSTK_PATH
    response = requests.get(url, params=params, timeout=TIMEOUT)
    assert response.status_code == 200 and response.content == real
    # The same query spelled otherwise (data[] for data[0], defaults left out, no trailing slash).
    respelled = {key: value for key, value in params.items() if key not in ("data[0]", "offset", "length")}
    again = get(shared_sim, EIA_API_WSTK_PATH.rstrip("/"), params={**respelled, "data[]": "value"})
    assert again.content == real
    document = json.loads(real)
    assert document["response"]["total"] == str(len(document["response"]["data"])) == "2193"


def test_api_answers_other_wstk_queries_by_a_derivation_from_dnav(shared_sim):
    observations = _dnav_observations()
    params = {
        "api_key": "test",
        "frequency": "weekly",
        "data[0]": "value",
        "facets[series][]": "WCESTUS1",
        "sort[0][column]": "period",
        "sort[0][direction]": "desc",
    }
    first = api_get(shared_sim, **params, offset=0, length=3).json()
    second = api_get(shared_sim, **params, offset=3, length=3).json()
    assert "DERIVED" in first["response"]["description"]
    assert first["response"]["total"] == str(len(observations))
    periods = [row["period"] for row in first["response"]["data"] + second["response"]["data"]]
    assert periods == [period for period, _ in observations[:6]]
    top = first["response"]["data"][0]
    assert top["period"] == "2024-08-30" and top["value"] == "418310" and top["units"] == "MBBL"
    assert top["series"] == "WCESTUS1" and top["duoarea"] == "NUS"
    # The derived rows carry the field names and codes of the recorded answer's rows.
    recorded_row = json.loads(API_WCESTUS1_FILE.read_bytes())["response"]["data"][0]
    assert set(top) == set(recorded_row)
    assert {key: top[key] for key in top if key not in ("period", "value")} == {
        key: recorded_row[key] for key in recorded_row if key not in ("period", "value")
    }
    assert first["request"]["params"]["offset"] == 0 and first["apiVersion"] == "2.1.8"

    ascending = api_get(shared_sim, **{**params, "sort[0][direction]": "asc"}, length=1).json()
    assert ascending["response"]["data"][0]["period"] == "1982-08-20"
    capped = api_get(shared_sim, **params, length=9000).json()
    assert len(capped["response"]["data"]) == min(5000, len(observations))
    assert capped["response"]["warnings"]


def test_api_facet_for_another_series_is_empty(shared_sim):
    body = api_get(shared_sim, api_key="k", frequency="weekly", **{"facets[series][]": "WGTSTUS1"}).json()
    assert body["response"]["total"] == "0" and body["response"]["data"] == []
    assert api_get(shared_sim, api_key="k", frequency="monthly").status_code == 400


def test_api_unknown_route_or_unrecorded_query_is_404(shared_sim):
    unknown = get(shared_sim, "/v2/petroleum/crd/wkly/data/", params={"api_key": "k", "frequency": "weekly"})
    assert unknown.status_code == 404 and "no data route" in unknown.json()["error"]
    unrecorded = get(shared_sim, "/v2/petroleum/pnp/wiup/data/", params={"api_key": "k", "frequency": "weekly"})
    assert unrecorded.status_code == 404 and "no recorded answer" in unrecorded.json()["error"]
    assert shared_sim.release_time("/v2/petroleum/pnp/wiup/data/?api_key=k&frequency=weekly") is None


# -- conditional requests --------------------------------------------------------------------------


def test_etag_and_last_modified_give_304(shared_sim):
    first = get(shared_sim, WPSR_TABLE1_PATH)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag.startswith('"') and etag.endswith('"')
    assert etag.strip('"') == hashlib.sha256(first.content).hexdigest()[: len(etag) - 2]
    assert shared_sim.release_time(WPSR_TABLE1_PATH) is not None

    by_etag = get(shared_sim, WPSR_TABLE1_PATH, headers={"If-None-Match": etag})
    assert by_etag.status_code == 304 and by_etag.content == b""
    assert get(shared_sim, WPSR_TABLE1_PATH, headers={"If-None-Match": '"other"'}).status_code == 200

    by_date = get(shared_sim, WPSR_TABLE1_PATH, headers={"If-Modified-Since": last_modified})
    assert by_date.status_code == 304
    long_ago = formatdate(T0 - 10 * 365 * 86400, usegmt=True)
    assert get(shared_sim, WPSR_TABLE1_PATH, headers={"If-Modified-Since": long_ago}).status_code == 200


def test_api_answers_are_cacheable_too(shared_sim):
    recorded = get(shared_sim, f"{EIA_API_RECORDINGS[0].path}&api_key=k")
    assert recorded.headers["ETag"].strip('"') == hashlib.sha256(recorded.content).hexdigest()[:32]
    assert get(
        shared_sim, f"{EIA_API_RECORDINGS[0].path}&api_key=k", headers={"If-None-Match": recorded.headers["ETag"]}
    ).status_code == 304
    response = api_get(shared_sim, api_key="k", length=1)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert response.headers["ETag"] == api_get(shared_sim, api_key="k", length=1).headers["ETag"]
    assert response.headers["ETag"] != api_get(shared_sim, api_key="k", length=2).headers["ETag"]
    not_modified = get(
        shared_sim,
        EIA_API_WSTK_PATH,
        params={"api_key": "k", "length": 1},
        headers={"If-None-Match": response.headers["ETag"]},
    )
    assert not_modified.status_code == 304


def test_head_returns_headers_without_body(shared_sim):
    response = requests.head(shared_sim.base_url + DISAGG_ZIP_PATH, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["Content-Length"]) == len(get(shared_sim, DISAGG_ZIP_PATH).content)


# -- scheduled releases ----------------------------------------------------------------------------


def test_future_release_is_served_only_from_its_time(sim, clock):
    old = WPSR_FILE.read_bytes()
    newer = next_wpsr_week(old)
    sim.publish(WPSR_TABLE1_PATH, newer, at=T0 + 100)
    assert get(sim, WPSR_TABLE1_PATH).content == old
    assert sim.release_time(WPSR_TABLE1_PATH) == T0
    clock.now = T0 + 100
    response = get(sim, WPSR_TABLE1_PATH)
    assert response.content == newer
    assert sim.release_time(WPSR_TABLE1_PATH) == T0 + 100
    assert response.headers["Last-Modified"] == formatdate(T0 + 100, usegmt=True)


def test_later_publish_keeps_earlier_scheduled_release(sim, clock):
    sim.publish("/x/report.csv", b"first", at=T0 + 10)
    sim.publish("/x/report.csv", b"third", at=T0 + 30)
    assert get(sim, "/x/report.csv").status_code == 404
    assert sim.release_time("/x/report.csv") is None
    clock.now = T0 + 20
    assert get(sim, "/x/report.csv").content == b"first"
    clock.now = T0 + 31
    assert get(sim, "/x/report.csv").content == b"third"


def test_api_follows_a_republished_dnav_file(sim, clock):
    lines = DNAV_FILE.read_bytes().split(b"\n")
    newer = b"\n".join([*lines[:5], b"09/6/2024,417000", *lines[5:]])
    sim.publish(DNAV_WCESTUS1_PATH, newer, at=T0 + 5)
    assert (
        api_get(sim, api_key="k", length=1, **{"data[0]": "value"}).json()["response"]["data"][0]["period"]
        == "2024-08-30"
    )
    clock.now = T0 + 5
    top = api_get(sim, api_key="k", length=1, **{"data[0]": "value"}).json()["response"]["data"][0]
    assert (top["period"], top["value"]) == ("2024-09-06", "417000")


# -- faults ----------------------------------------------------------------------------------------


def test_http_500_fault_hits_the_next_count_requests(sim):
    sim.inject_fault("/wpsr/", "http_500", count=2)
    assert get(sim, WPSR_TABLE1_PATH).status_code == 500
    assert get(sim, WPSR_TABLE1_PATH + "?cache=1").status_code == 500
    assert get(sim, WPSR_TABLE1_PATH).status_code == 200
    assert [entry["fault"] for entry in sim.requests_seen(WPSR_TABLE1_PATH)] == ["http_500", "http_500", None]


def test_http_503_fault_sends_retry_after(sim):
    sim.inject_fault(CFTC_DISAGG_WEEKLY_PATH, "http_503")
    response = get(sim, CFTC_DISAGG_WEEKLY_PATH)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert get(sim, CFTC_DISAGG_WEEKLY_PATH).status_code == 200


def test_timeout_fault_trips_the_client_read_timeout(sim):
    sim.inject_fault(WPSR_TABLE1_PATH, "timeout", delay_s=1.5)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        requests.get(sim.base_url + WPSR_TABLE1_PATH, timeout=0.5)
    assert time.monotonic() - started < 1.4
    assert get(sim, WPSR_TABLE1_PATH).content == WPSR_FILE.read_bytes()


def test_truncated_fault_is_a_transport_error(sim):
    sim.inject_fault(DISAGG_ZIP_PATH, "truncated")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        get(sim, DISAGG_ZIP_PATH)
    assert zipfile.ZipFile(io.BytesIO(get(sim, DISAGG_ZIP_PATH).content)).testzip() is None


def test_short_body_fault_is_a_well_formed_bad_file(sim):
    real = WPSR_FILE.read_bytes()
    sim.inject_fault(WPSR_TABLE1_PATH, "short_body")
    response = get(sim, WPSR_TABLE1_PATH)
    assert response.status_code == 200
    assert response.content == real[: int(len(real) * 0.4)]
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert not response.content.endswith(b"\x1a")


def test_wrong_encoding_fault_reencodes_text_as_utf8(sim):
    real = WPSR_FILE.read_bytes()
    sim.inject_fault(WPSR_TABLE1_PATH, "wrong_encoding")
    response = get(sim, WPSR_TABLE1_PATH)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.content == real.decode("cp1252").encode("utf-8")
    assert b"\x96" not in response.content and "\u2013".encode() in response.content


def test_wrong_encoding_fault_corrupts_zips(sim):
    sim.inject_fault(DISAGG_ZIP_PATH, "wrong_encoding")
    response = get(sim, DISAGG_ZIP_PATH)
    assert response.status_code == 200
    with pytest.raises((zipfile.BadZipFile, zlib.error)):
        zipfile.ZipFile(io.BytesIO(response.content)).read("f_year.txt")


def test_gzip_bomb_fault_is_a_small_gzip_body_inflating_to_2_gib(sim):
    sim.inject_fault(WPSR_TABLE1_PATH, "gzip_bomb")
    with get(sim, WPSR_TABLE1_PATH, stream=True) as response:
        assert response.status_code == 200 and response.headers["Content-Encoding"] == "gzip"
        body = response.raw.read(decode_content=False)  # the bytes on the wire, not inflated
    assert len(body) < 3_000_000
    inflated = zlib.decompressobj(31).decompress(body, 16 * 1024 * 1024)  # bounded: the first 16 MiB only
    assert inflated == bytes(16 * 1024 * 1024)
    assert int.from_bytes(body[-4:], "little") == BOMB_INFLATED_BYTES % 2**32  # gzip's ISIZE trailer
    assert [r["fault"] for r in sim.requests_seen(WPSR_TABLE1_PATH)] == ["gzip_bomb"]
    assert get(sim, WPSR_TABLE1_PATH).content == WPSR_FILE.read_bytes()


def test_zip_bomb_fault_is_a_valid_zip_whose_member_declares_2_gib(sim):
    sim.inject_fault(DISAGG_ZIP_PATH, "zip_bomb")
    response = get(sim, DISAGG_ZIP_PATH)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    assert len(response.content) < 3_000_000
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        (member,) = archive.infolist()
        assert member.filename.endswith(".txt") and member.file_size == BOMB_INFLATED_BYTES
        assert member.file_size / member.compress_size > 1000
        with archive.open(member) as stream:
            assert stream.read(1024 * 1024) == bytes(1024 * 1024)
    assert zipfile.ZipFile(io.BytesIO(get(sim, DISAGG_ZIP_PATH).content)).testzip() is None


def test_unknown_fault_kind_is_rejected(sim):
    assert set(FAULT_KINDS) == {
        "http_500",
        "http_503",
        "http_429",
        "timeout",
        "truncated",
        "short_body",
        "wrong_encoding",
        "gzip_bomb",
        "zip_bomb",
    }
    with pytest.raises(ValueError):
        sim.inject_fault(WPSR_TABLE1_PATH, "slow_loris")
    with pytest.raises(FaultKindError):
        sim.inject_fault(WPSR_TABLE1_PATH, "HTTP_500")


# -- admin API -------------------------------------------------------------------------------------


def test_admin_release_fault_and_state(sim, clock):
    url = sim.base_url
    released = requests.post(
        url + "/_sim/release",
        json={"path": "/custom/file.txt", "body_b64": base64.b64encode(b"hello").decode(), "at": T0 + 50},
        timeout=TIMEOUT,
    )
    assert released.status_code == 200, released.text
    assert get(sim, "/custom/file.txt").status_code == 404
    clock.now = T0 + 50
    answer = get(sim, "/custom/file.txt")
    assert answer.content == b"hello" and answer.headers["Content-Type"] == "text/plain"

    from_file = requests.post(
        url + "/_sim/release", json={"path": "/copy/table1.csv", "file": str(WPSR_FILE)}, timeout=TIMEOUT
    )
    assert from_file.status_code == 200
    assert get(sim, "/copy/table1.csv").content == WPSR_FILE.read_bytes()

    fault = requests.post(url + "/_sim/fault", json={"path": "/custom/", "kind": "http_503"}, timeout=TIMEOUT)
    assert fault.status_code == 200
    state = requests.get(url + "/_sim/state", timeout=TIMEOUT).json()
    assert state["faults"] == [{"path": "/custom/", "kind": "http_503", "remaining": 1, "delay_s": 5.0}]
    by_path = {entry["path"]: entry for entry in state["resources"]}
    assert by_path["/custom/file.txt"]["sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert by_path[WPSR_TABLE1_PATH]["release_time"] == T0
    assert get(sim, "/custom/file.txt").status_code == 503
    assert sim.requests_seen("/_sim/") == []  # the admin API is not logged as vendor traffic


@pytest.mark.parametrize(
    ("endpoint", "payload"),
    [
        ("/_sim/release", {"path": "/a.csv"}),
        ("/_sim/release", {"path": "/a.csv", "body_b64": "!!!not base64"}),
        ("/_sim/release", {"path": "/a.csv", "file": "/nonexistent/file.csv"}),
        ("/_sim/release", {"path": "/a.csv", "body_b64": "aGk=", "at": "tomorrow"}),
        ("/_sim/fault", {"path": "/wpsr/", "kind": "meteor_strike"}),
        ("/_sim/fault", {"path": "/wpsr/", "kind": "http_500", "count": 0}),
    ],
)
def test_admin_rejects_bad_input_with_one_line_json(sim, endpoint, payload):
    response = requests.post(sim.base_url + endpoint, json=payload, timeout=TIMEOUT)
    assert response.status_code == 400
    assert "\n" not in response.text.strip()
    assert json.loads(response.text)["error"]


def test_admin_rejects_non_json_body(sim):
    response = requests.post(sim.base_url + "/_sim/release", data=b"not json", timeout=TIMEOUT)
    assert response.status_code == 400 and "error" in response.json()


def test_admin_release_next_wpsr_week(sim):
    response = requests.post(sim.base_url + "/_sim/release-next-wpsr-week", json={}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.json()["header"][1] == "5/1/26"
    served = get(sim, WPSR_TABLE1_PATH).content
    assert served == next_wpsr_week(WPSR_FILE.read_bytes())


# -- synthetic weeks -------------------------------------------------------------------------------


def _header_dates(text: str) -> list[date]:
    found = []
    for row in csv.reader(io.StringIO(text)):
        if row and row[0] == "STUB_1":
            for cell in row:
                parts = cell.split("/")
                if len(parts) == 3:
                    month, day, year = (int(part) for part in parts)
                    found.append(date(2000 + year, month, day))
    return found


def _as_number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_next_wpsr_week_keeps_the_vendor_byte_format():
    real = WPSR_FILE.read_bytes()
    derived = next_wpsr_week(real)
    text = derived.decode("cp1252")
    assert derived.endswith(b"\x1a")
    assert derived.count(b"\n") == real.count(b"\n")
    assert derived.count(b"\r\n") == real.count(b"\r\n")  # the sample uses the vendor's line ending as found
    assert derived.count("– –".encode("cp1252")) == real.count("– –".encode("cp1252"))
    shifted = [day + timedelta(days=7) for day in _header_dates(real.decode("cp1252"))]
    assert _header_dates(text) == shifted and shifted[0] == date(2026, 5, 1)
    for line in text.rstrip("\x1a").splitlines():
        assert line.startswith('"') and line.endswith('"')
    assert '"1,' in text  # thousands separators survive
    assert derived != real


def test_next_wpsr_week_writes_crlf_when_the_input_has_crlf():
    real = WPSR_FILE.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    derived = next_wpsr_week(real)
    assert derived.count(b"\r\n") == derived.count(b"\n") == real.count(b"\r\n")
    assert derived.endswith(b"\r\n\x1a")
    assert len(derived.split(b"\r\n")) == len(real.split(b"\r\n"))


def test_next_wpsr_week_keeps_differences_consistent():
    rows = list(
        csv.reader(io.StringIO(next_wpsr_week(WPSR_FILE.read_bytes()).decode("cp1252").rstrip("\x1a")))
    )
    previous = list(csv.reader(io.StringIO(WPSR_FILE.read_text(encoding="cp1252").rstrip("\x1a"))))
    assert rows[1][0] == "Crude Oil" and rows[1][2] == previous[1][1]  # last week = the real week
    stock_rows = [row for row in rows[1:] if len(row) == 8 and row[0] != "STUB_1"]
    flow_rows = [row for row in rows if len(row) == 13 and row[0] != "STUB_1"]
    assert stock_rows and flow_rows
    for row in stock_rows:
        assert abs(_as_number(row[3]) - (_as_number(row[1]) - _as_number(row[2]))) < 0.0015
        assert abs(_as_number(row[6]) - (_as_number(row[1]) - _as_number(row[5]))) < 0.0015
    for row in flow_rows:
        assert _as_number(row[4]) == _as_number(row[2]) - _as_number(row[3])
        assert _as_number(row[6]) == _as_number(row[2]) - _as_number(row[5])


def test_next_wpsr_week_for_several_weeks_equals_repeated_single_weeks():
    real = WPSR_FILE.read_bytes()
    assert next_wpsr_week(real, weeks=2) == next_wpsr_week(next_wpsr_week(real))
    assert next_wpsr_week(real, weeks=0) == real


def test_next_cot_week_shifts_dates_and_keeps_identities(shared_sim):
    weekly = get(shared_sim, CFTC_DISAGG_WEEKLY_PATH).content
    derived = next_cot_week(weekly)
    before, after = csv_rows(weekly), csv_rows(derived)
    assert len(derived.splitlines()) == len(weekly.splitlines())
    assert derived.count(b"\r\n") == weekly.count(b"\r\n")
    assert {row[1] for row in after} == {"210323"} and {row[2] for row in after} == {"2021-03-23"}
    for old, new in zip(before, after, strict=True):
        assert len(old) == len(new)
        assert [len(cell) for cell in old[7:23]] == [len(cell) for cell in new[7:23]]  # padding kept
        oi, tot_long, nonrept_long = (int(new[7 + offset]) for offset in (0, 12, 14))
        assert oi == tot_long + nonrept_long
        assert int(new[13]) >= int(old[13])  # managed money long nudged up
    assert next_cot_week(weekly, weeks=2) != derived


def test_disaggregated_column_positions_match_the_vendor_header():
    header = csv_rows(DISAGG_FILE.read_bytes())[0]
    for offset, name in enumerate(DISAGG_BLOCK_COLUMNS):
        assert header[DISAGG_POSITIONS_ALL_COLUMN + offset] == f"{name}_All"
        assert header[DISAGG_POSITIONS_OLD_COLUMN + offset] == f"{name}_Old"
    assert header[DISAGG_CHANGES_ALL_COLUMN] == "Change_in_Open_Interest_All"
    assert header[DISAGG_PCT_ALL_COLUMN] == "Pct_of_Open_Interest_All"
    assert header[DISAGG_PCT_OLD_COLUMN] == "Pct_of_Open_Interest_Old"


# -- data dir and foreground server ----------------------------------------------------------------


def test_missing_data_dir_names_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=DATA_DIR_ENV):
        VendorSimulator()
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))  # exists but has no vendor files
    with pytest.raises(VendorDataDirNotFoundError, match=DATA_DIR_ENV):
        VendorSimulator()


def test_serve_prints_base_url_and_stops_on_sigterm():
    code = (
        "from pathlib import Path; from quant_platform.vendors.simulator import serve; "
        f"serve('127.0.0.1', 0, Path({str(DATA_DIR)!r}))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).resolve().parents[1]),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = line.split(" at ", 1)[1].split()[0]
        assert base_url.startswith("http://127.0.0.1:")
        assert requests.get(base_url + WPSR_TABLE1_PATH, timeout=TIMEOUT).content == WPSR_FILE.read_bytes()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
