"""The reports added through the registry (every WPSR table, gas storage, daily spot prices, COT futures and options
combined) wired end to end on the real vendor files, and how the platform respects the vendors (429, User-Agent).

Never compare a loaded value with one the platform computed: each expected value is read from the real file here.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from quant_platform.errors import VendorError
from quant_platform.platform.vendor_http import VendorClient, retry_after_seconds, user_agent

WPSR_TABLE1 = "/wpsr/table1.csv"


# ------------------------------------------------------------------------------------ respecting the vendors
def test_a_429_with_retry_after_is_honoured_then_the_file_comes(simulator):
    simulator.inject_fault(WPSR_TABLE1, "http_429", count=1, delay_s=1)
    resp = VendorClient(timeout_s=2, attempts=3, backoff_initial_s=0.01, backoff_max_s=0.02).get(
        simulator.base_url + WPSR_TABLE1)
    assert resp.status == 200 and resp.attempts == 2
    seen = simulator.requests_seen(WPSR_TABLE1)
    assert [r["status"] for r in seen] == [429, 200]
    # The second request came no sooner than the vendor asked (Retry-After: 1), not after the 10 ms backoff.
    assert seen[1]["at"] - seen[0]["at"] >= 0.95


def test_a_retry_after_beyond_the_limit_ends_the_call_at_once(simulator, monkeypatch):
    monkeypatch.setenv("QP_HTTP_RETRY_AFTER_MAX", "5")
    simulator.inject_fault(WPSR_TABLE1, "http_429", count=3, delay_s=120)
    started = time.monotonic()
    with pytest.raises(VendorError, match=r"HTTP 429 with Retry-After 120 s.*QP_HTTP_RETRY_AFTER_MAX"):
        VendorClient(timeout_s=2, attempts=3).get(simulator.base_url + WPSR_TABLE1)
    assert time.monotonic() - started < 2
    assert [r["status"] for r in simulator.requests_seen(WPSR_TABLE1)] == [429]  # asked once, not hammered


def test_retry_after_reads_seconds_and_http_dates():
    from datetime import UTC, datetime

    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Thu, 03 Dec 2026 12:01:30 GMT", now) == 90.0
    assert retry_after_seconds("Thu, 03 Dec 2026 11:00:00 GMT", now) == 0.0  # a date already past: no wait
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).seen.append(self.headers.get("User-Agent", ""))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        return


def test_every_vendor_request_says_who_asks(monkeypatch):
    monkeypatch.setenv("QP_VENDOR_CONTACT", "macro-desk@example.com")
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        VendorClient(timeout_s=2, attempts=1).get(f"http://127.0.0.1:{server.server_address[1]}/x")
    finally:
        server.shutdown()
        server.server_close()
    (agent,) = _Recorder.seen
    assert agent == user_agent()
    assert agent.startswith("quant-platform/0.1.0 (") and agent.endswith("; +macro-desk@example.com)")
    monkeypatch.setenv("QP_VENDOR_CONTACT", "bad\r\nInjected: header")
    from quant_platform.errors import ConfigError

    with pytest.raises(ConfigError, match="QP_VENDOR_CONTACT"):
        user_agent()
