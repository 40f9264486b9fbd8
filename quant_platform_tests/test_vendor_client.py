"""VendorClient against the real vendor simulator over loopback HTTP: hashes, validators, retries, redaction.

Faults are injected through the simulator; nothing in the client is mocked or patched.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime

import pytest

from quant_platform.errors import VendorError
from quant_platform.platform.vendor_http import VendorClient, VendorResponse
from quant_platform.vendors.simulator import (
    EIA_API_WSTK_PATH,
    FAULT_KINDS,
    WPSR_TABLE1_PATH,
    WPSR_TABLE1_SOURCE,
    VendorSimulator,
)

SECRET = "s3cr3t-key-value"


def fast_client(**kw) -> VendorClient:
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("attempts", 4)
    kw.setdefault("backoff_initial_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    return VendorClient(**kw)


@pytest.fixture
def wpsr_bytes(simulator) -> bytes:
    return (simulator.data_dir / WPSR_TABLE1_SOURCE).read_bytes()


def test_body_and_sha256_match_the_real_file(simulator, wpsr_bytes):
    before, t0 = datetime.now(UTC), time.monotonic()
    resp = fast_client().get(simulator.base_url + WPSR_TABLE1_PATH)
    took, after = time.monotonic() - t0, datetime.now(UTC)
    assert isinstance(resp, VendorResponse)
    assert resp.status == 200 and not resp.not_modified
    assert resp.body == wpsr_bytes
    assert resp.sha256 == hashlib.sha256(wpsr_bytes).hexdigest()
    assert resp.attempts == 1
    assert resp.etag and resp.last_modified
    assert resp.content_type and resp.content_type.startswith("text/csv")
    assert resp.url == simulator.base_url + WPSR_TABLE1_PATH
    # The request's own timing: stamped within the call, its duration within the call's.
    assert resp.fetched_at.tzinfo is not None and before <= resp.fetched_at <= after
    assert 0 < resp.elapsed_s <= took


def test_conditional_get_with_etag_is_304_with_empty_body(simulator, wpsr_bytes):
    client = fast_client()
    url = simulator.base_url + WPSR_TABLE1_PATH
    first = client.get(url)
    again = client.get(url, etag=first.etag)
    assert again.status == 304 and again.not_modified
    assert again.body == b""
    assert again.sha256 == hashlib.sha256(b"").hexdigest()
    assert [r["status"] for r in simulator.requests_seen(WPSR_TABLE1_PATH)] == [200, 304]
    # A stale validator gets the full body again.
    stale = client.get(url, etag='"not-the-current-etag"')
    assert stale.status == 200 and stale.body == wpsr_bytes


def test_conditional_get_with_last_modified_is_304(simulator):
    client = fast_client()
    url = simulator.base_url + WPSR_TABLE1_PATH
    first = client.get(url)
    again = client.get(url, last_modified=first.last_modified)
    assert again.status == 304 and again.body == b""


def test_http_500_twice_is_retried_and_succeeds_on_third_attempt(simulator, wpsr_bytes):
    simulator.inject_fault(WPSR_TABLE1_PATH, "http_500", count=2)
    resp = fast_client(attempts=4).get(simulator.base_url + WPSR_TABLE1_PATH)
    assert resp.status == 200 and resp.body == wpsr_bytes
    assert resp.attempts == 3
    seen = simulator.requests_seen(WPSR_TABLE1_PATH)
    assert [r["status"] for r in seen] == [500, 500, 200]


def test_http_503_is_retried(simulator, wpsr_bytes):
    simulator.inject_fault(WPSR_TABLE1_PATH, "http_503", count=1)
    resp = fast_client().get(simulator.base_url + WPSR_TABLE1_PATH)
    assert resp.status == 200 and resp.body == wpsr_bytes
    assert resp.attempts == 2
    assert [r["fault"] for r in simulator.requests_seen(WPSR_TABLE1_PATH)] == ["http_503", None]


def test_timeout_is_retried(simulator, wpsr_bytes):
    simulator.inject_fault(WPSR_TABLE1_PATH, "timeout", count=1, delay_s=1.5)
    resp = fast_client(timeout_s=0.5).get(simulator.base_url + WPSR_TABLE1_PATH)
    assert resp.status == 200 and resp.body == wpsr_bytes
    assert resp.attempts == 2
    assert resp.elapsed_s >= 0.5  # the first try really waited for its timeout
    assert resp.elapsed_s < 1.5  # and the client did not wait for the stalled server


def test_truncated_body_is_retried(simulator, wpsr_bytes):
    simulator.inject_fault(WPSR_TABLE1_PATH, "truncated", count=1)
    resp = fast_client().get(simulator.base_url + WPSR_TABLE1_PATH)
    assert resp.attempts == 2
    assert resp.body == wpsr_bytes
    assert resp.sha256 == hashlib.sha256(wpsr_bytes).hexdigest()
    assert [r["fault"] for r in simulator.requests_seen(WPSR_TABLE1_PATH)] == ["truncated", None]


@pytest.mark.parametrize("kind", ["http_500", "http_503", "truncated"])
def test_faults_beyond_the_attempts_give_up_with_vendor_error(simulator, kind):
    assert kind in FAULT_KINDS
    simulator.inject_fault(WPSR_TABLE1_PATH, kind, count=10)
    url = simulator.base_url + WPSR_TABLE1_PATH
    with pytest.raises(VendorError) as info:
        fast_client(attempts=3).get(url)
    message = str(info.value)
    assert url in message
    assert "gave up" in message and "3 attempts" in message
    assert info.value.url == url
    assert len(simulator.requests_seen(WPSR_TABLE1_PATH)) == 3


def test_timeouts_beyond_the_attempts_give_up(simulator):
    simulator.inject_fault(WPSR_TABLE1_PATH, "timeout", count=5, delay_s=1.5)
    url = simulator.base_url + WPSR_TABLE1_PATH
    with pytest.raises(VendorError, match="gave up") as info:
        fast_client(attempts=2, timeout_s=0.3).get(url)
    assert url in str(info.value)


def test_404_is_not_retried(simulator):
    url = simulator.base_url + "/wpsr/no_such_table.csv"
    with pytest.raises(VendorError) as info:
        fast_client(attempts=4).get(url)
    assert "404" in str(info.value)
    assert url in str(info.value)
    assert "gave up" not in str(info.value)
    seen = simulator.requests_seen("/wpsr/no_such_table.csv")
    assert len(seen) == 1 and seen[0]["status"] == 404


def test_403_from_the_api_is_not_retried(simulator):
    # The EIA API answers 403 without an api_key: a 4xx, so exactly one request.
    with pytest.raises(VendorError, match="403"):
        fast_client().get(simulator.base_url + EIA_API_WSTK_PATH, params={"frequency": "weekly"})
    assert len(simulator.requests_seen(EIA_API_WSTK_PATH)) == 1


# ------------------------------------------------------------------------------------------- redaction


def _api_params() -> dict[str, str]:
    return {"api_key": SECRET, "frequency": "weekly", "data[0]": "value", "length": "5"}


def test_api_key_is_redacted_in_response_url(simulator):
    resp = fast_client().get(simulator.base_url + EIA_API_WSTK_PATH, params=_api_params())
    assert resp.status == 200
    assert b"WCESTUS1" in resp.body
    assert SECRET not in resp.url
    assert "api_key=***" in resp.url
    assert "frequency=weekly" in resp.url  # the rest of the query is kept


def test_api_key_in_url_is_redacted_in_response_url(simulator):
    url = f"{simulator.base_url}{EIA_API_WSTK_PATH}?api_key={SECRET}&frequency=weekly&data[0]=value&length=2"
    resp = fast_client().get(url)
    assert resp.status == 200
    assert SECRET not in resp.url and "api_key=***" in resp.url


def test_api_key_is_redacted_in_4xx_error(simulator):
    url = f"{simulator.base_url}/v2/no/such/route/?api_key={SECRET}"
    with pytest.raises(VendorError) as info:
        fast_client().get(url)
    assert SECRET not in str(info.value)
    assert SECRET not in info.value.url
    assert "api_key=***" in str(info.value)
    with pytest.raises(VendorError) as info:
        fast_client().get(simulator.base_url + "/v2/no/such/route/", params=_api_params())
    assert SECRET not in str(info.value)


def test_api_key_is_redacted_after_retries_give_up(simulator):
    simulator.inject_fault(EIA_API_WSTK_PATH, "http_503", count=10)
    with pytest.raises(VendorError, match="gave up") as info:
        fast_client(attempts=2).get(simulator.base_url + EIA_API_WSTK_PATH, params=_api_params())
    assert SECRET not in str(info.value)


def test_api_key_is_redacted_when_the_vendor_is_unreachable():
    # A real simulator that has been stopped: its port now refuses connections.
    sim = VendorSimulator(preload=False).start()
    base = sim.base_url
    sim.stop()
    client = fast_client(attempts=2, timeout_s=1.0)
    with pytest.raises(VendorError, match="gave up") as info:
        client.get(base + EIA_API_WSTK_PATH, params=_api_params())
    assert SECRET not in str(info.value), str(info.value)
    with pytest.raises(VendorError, match="gave up") as info:
        client.get(f"{base}{EIA_API_WSTK_PATH}?api_key={SECRET}&frequency=weekly")
    assert SECRET not in str(info.value), str(info.value)


def test_api_key_is_redacted_in_retry_logs(caplog):
    # vendor_http's _redact docstring: secrets are hidden from logs, errors and metadata.
    sim2 = VendorSimulator(preload=False).start()
    dead = sim2.base_url
    sim2.stop()
    with caplog.at_level(logging.WARNING, logger="quant_platform.platform.vendor_http"):
        with pytest.raises(VendorError):
            fast_client(attempts=2, timeout_s=1.0).get(dead + EIA_API_WSTK_PATH, params=_api_params())
    assert caplog.records, "a retried call logs a warning"
    assert all(SECRET not in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
