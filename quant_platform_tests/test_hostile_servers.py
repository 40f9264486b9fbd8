"""Hostile servers against the platform's HTTP client and zip reader: a gzip bomb (memory measured in a child
process), a CFTC zip bomb through the real asset, a slow drip, a body over its route's cap, redirects elsewhere.

Never mock a server: the simulator's faults, or a small http.server on loopback started by the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from quant_platform.errors import ReportParseError, VendorError
from quant_platform.platform.vendor_http import VendorClient
from quant_platform_tests.conftest import REPO_ROOT
from quant_platform_tests.release_helpers import check_results, failure_messages

WPSR = "/wpsr/table1.csv"
DISAGG_ZIP = "/files/dea/history/fut_disagg_txt_2021.zip"
RSS_BOUND_KB = 300 * 1024  # the client may grow at most 300 MB above a plain fetch while refusing a bomb


def _client(**kw) -> VendorClient:
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("attempts", 1)
    kw.setdefault("backoff_initial_s", 0.01)
    return VendorClient(**kw)


@contextmanager
def serve(handle: Callable[[BaseHTTPRequestHandler], None], host: str = "127.0.0.1") -> Iterator[str]:
    """A real HTTP server on a free port of `host` whose GET and POST call `handle`; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            handle(self)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------ gzip bomb

_CHILD = """
import sys
from quant_platform.errors import VendorError
from quant_platform.platform.vendor_http import VendorClient
try:
    resp = VendorClient(timeout_s=10, attempts=1).get(sys.argv[1])
    print(f"fetched {len(resp.body)} bytes")
except VendorError as exc:
    print(f"{type(exc).__name__}: {exc}")
"""

_DRIVER = """
import json, resource, subprocess, sys
child = [sys.executable, "-c", sys.argv[1]]
plain = subprocess.run([*child, sys.argv[2]], capture_output=True, text=True, timeout=120)
baseline = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
bomb = subprocess.run([*child, sys.argv[3]], capture_output=True, text=True, timeout=120)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"plain": plain.stdout + plain.stderr, "bomb": bomb.stdout + bomb.stderr,
                  "baseline_kb": baseline, "peak_kb": peak}))
"""


def test_a_gzip_bomb_is_refused_without_the_client_growing_past_its_bound(simulator):
    simulator.inject_fault(WPSR, "gzip_bomb")
    plain, url = simulator.base_url + "/dea/newcot/f_disagg.txt", simulator.base_url + WPSR
    started = time.monotonic()
    # A driver process fetches the real file (baseline), then the 2 GiB bomb, each in a child of its own;
    # RUSAGE_CHILDREN of the driver then holds exactly these two children's peak RSS.
    out = subprocess.run([sys.executable, "-c", _DRIVER, _CHILD, plain, url], capture_output=True, text=True,
                         timeout=300, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["plain"].startswith("fetched "), report  # the real weekly COT file
    assert report["bomb"].startswith("ResponseTooLargeError:"), report
    assert "QP_HTTP_MAX_BYTES" in report["bomb"], report  # the message names the setting to raise
    growth = report["peak_kb"] - report["baseline_kb"]
    assert growth < RSS_BOUND_KB, f"the client grew {growth / 1024:.0f} MB refusing the bomb"
    assert time.monotonic() - started < 60


def test_a_body_over_its_routes_cap_is_refused(simulator, monkeypatch):
    monkeypatch.setenv("QP_HTTP_MAX_BYTES_EIA_WPSR", "1000")  # the real table1.csv is ~6.5 kB
    with pytest.raises(VendorError) as info:
        _client(attempts=3).get(simulator.base_url + WPSR)
    assert type(info.value).__name__ == "ResponseTooLargeError"
    assert "QP_HTTP_MAX_BYTES_EIA_WPSR" in str(info.value)
    assert len(simulator.requests_seen(WPSR)) == 1, "a body over the cap is not retried"
    # Other routes keep their own cap.
    assert _client().get(simulator.base_url + "/dea/newcot/f_disagg.txt").status == 200


# ------------------------------------------------------------------------------------------- zip bomb


def test_a_zip_bomb_member_is_refused_before_inflation():
    from quant_platform.macro.cftc.parsing import extract_cot_zip
    from quant_platform.vendors.simulator import zip_bomb

    started = time.monotonic()
    with pytest.raises(ReportParseError, match="declares"):
        extract_cot_zip(zip_bomb())
    assert time.monotonic() - started < 1.0, "refused from the header, without inflating"


def test_a_zip_member_lying_about_its_size_is_read_no_further_than_declared():
    import struct

    from quant_platform.macro.cftc.parsing import extract_cot_zip
    from quant_platform.vendors.simulator import BOMB_INFLATED_BYTES, zip_bomb

    # The same bomb with both headers claiming 1 MiB: the checks pass, the bounded read stops at 1 MiB.
    honest = struct.pack("<I", BOMB_INFLATED_BYTES)
    lying = zip_bomb().replace(honest, struct.pack("<I", 1024 * 1024))
    assert lying.count(struct.pack("<I", 1024 * 1024)) == 2
    started = time.monotonic()
    with pytest.raises(ReportParseError):
        extract_cot_zip(lying)
    assert time.monotonic() - started < 1.0


def test_a_zip_bomb_from_the_vendor_fails_the_cot_load_cleanly(simulator, qp_home, instance):
    from quant_platform.definitions import defs
    from quant_platform.platform.settings import load_settings
    from quant_platform.platform.warehouse import Warehouse

    wh = Warehouse(load_settings().warehouse_url)
    wh.apply_sql_dir(REPO_ROOT / "quant_platform" / "sql")
    simulator.inject_fault(DISAGG_ZIP, "zip_bomb")
    started = time.monotonic()
    job = defs.resolve_job_def("cftc_cot_disaggregated_job")
    result = job.execute_in_process(instance=instance, partition_key="2021-03-16", raise_on_error=False)
    assert not result.success
    assert check_results(result) == {"schema_and_types": False}
    msg = " ".join(failure_messages(result))
    assert "declares" in msg and "QP_ZIP_MAX_" in msg, msg
    assert int(wh.scalar("SELECT count(*) FROM macro.cftc_cot_disaggregated")) == 0
    wh.dispose()
    assert time.monotonic() - started < 30


# ----------------------------------------------------------------------------------------- slow drip


def _drip(phase: str) -> Callable[[BaseHTTPRequestHandler], None]:
    """One byte a second, never finishing (the server gives up after 20 s so a broken client cannot hang)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 1000000\r\n\r\n"

    def handle(h: BaseHTTPRequestHandler) -> None:
        payload = head + b"x" * 100 if phase == "headers" else b"x" * 100
        if phase == "body":
            h.wfile.write(head)
            h.wfile.flush()
        try:
            for i in range(20):
                h.wfile.write(payload[i : i + 1])
                h.wfile.flush()
                time.sleep(1)
        except OSError:
            pass
        h.close_connection = True

    return handle


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_a_slow_drip_server_hits_the_overall_deadline(phase, monkeypatch):
    monkeypatch.setenv("QP_HTTP_DEADLINE", "2")
    with serve(_drip(phase)) as base:
        started = time.monotonic()
        with pytest.raises(VendorError) as info:
            _client(timeout_s=5.0, attempts=3).get(base + WPSR)  # each byte arrives well within 5 s
        took = time.monotonic() - started
    assert type(info.value).__name__ == "DeadlineExceededError", info.value
    assert "QP_HTTP_DEADLINE" in str(info.value)
    assert 1.8 < took < 4, took


# ------------------------------------------------------------------------------------------ redirects


def _redirect_to(location: str, status: int = 302) -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return handle


def _record(seen: list[str], body: bytes = b"week,value\n") -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(h: BaseHTTPRequestHandler) -> None:
        seen.append(h.path)
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


def test_a_vendor_redirect_to_another_host_is_not_followed():
    seen: list[str] = []
    with serve(_record(seen), host="127.0.0.2") as elsewhere, serve(_redirect_to(elsewhere + "/loot")) as base:
        with pytest.raises(VendorError) as info:
            _client(attempts=3).get(base + WPSR)
    assert type(info.value).__name__ == "RedirectRefusedError", info.value
    assert seen == [], "the other host was never contacted"


def test_a_vendor_redirect_on_the_same_host_is_followed():
    seen: list[str] = []
    with serve(_record(seen)) as target:
        with serve(_redirect_to(target + "/moved.csv", 301), host="127.0.0.1") as base:
            # Same host (127.0.0.1), another port: a different origin, so refused too.
            with pytest.raises(VendorError):
                _client().get(base + WPSR)
    seen.clear()
    state = {"n": 0}

    def moved_then_file(h: BaseHTTPRequestHandler) -> None:
        state["n"] += 1
        (_redirect_to("/moved.csv", 301) if h.path == WPSR else _record(seen))(h)

    with serve(moved_then_file) as base:
        resp = _client().get(base + WPSR)
    assert resp.status == 200 and resp.body == b"week,value\n" and seen == ["/moved.csv"]
    assert resp.url == base + "/moved.csv"
