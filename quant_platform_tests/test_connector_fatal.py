"""A connector that stops on a fatal vendor error (refused credentials) is restarted with exponential backoff
(QP_CONNECTOR_FATAL_BACKOFF_S doubling to QP_CONNECTOR_FATAL_BACKOFF_MAX_S) and raises one alert per incident;
a worker that dies for any other reason is restarted at once. Real worker processes, a real nats-server, a
real websocket server that refuses the key.

Never let a test hammer the vendor emulation: the counts asserted are the server's own connection counts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time

import pytest

from quant_platform_tests.ws_replay_server import ReplayServer

pytestmark = pytest.mark.timeout(120)
ROLE = "connector:polygon"


class ServerThread:
    """A ReplayServer on its own event loop in a thread (the supervisor loop under test is synchronous)."""

    def __init__(self, **kwargs):
        self.loop = asyncio.new_event_loop()
        self.server = ReplayServer("polygon", **kwargs)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self.server

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def events(caplog, name: str) -> list[dict]:
    out = []
    for r in caplog.records:
        if r.name == "quant_platform.market.supervisor":
            try:
                doc = json.loads(r.getMessage())
            except ValueError:
                continue
            if doc.get("event") == name:
                out.append({**doc, "_level": r.levelno})
    return out


def drive(sup, seconds: float, until=None) -> None:
    """The supervisor's restart step every 0.2 s (what its control loop does each interval)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sup.restart_dead()
        if until is not None and until():
            return
        time.sleep(0.2)


@pytest.fixture
def polygon_env(qp_home, monkeypatch, caplog):
    monkeypatch.setenv("QP_POLYGON_API_KEY", "pk_wrong_key_for_the_test")
    caplog.set_level(logging.INFO, logger="quant_platform.market.supervisor")
    return qp_home


def test_refused_credentials_are_not_retried_every_interval_and_raise_one_alert(polygon_env, monkeypatch, caplog,
                                                                                  tmp_path):
    from quant_platform.market import metrics
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.supervisor import Supervisor, read_connector_incidents
    from quant_platform.ops.alerts import AlertCursor, apply_connector_fatal

    with EmbeddedNats(tmp_path / "nats").start() as srv, ServerThread(refuse_auth=True) as vendor:
        monkeypatch.setenv("QP_POLYGON_WS_URL", vendor.url)
        sup = Supervisor(nats_url=srv.url, lake_root=tmp_path / "lake", connectors=[ROLE])
        try:
            sup.scale_to(ROLE, 1)
            drive(sup, 5)
            incidents = read_connector_incidents(polygon_env / "ingest")
            held = metrics.REGISTRY.get_sample_value("qp_connector_fatal", {"role": ROLE})
        finally:
            sup.stop_all()
    assert vendor.connections == 1, f"the vendor was asked {vendor.connections} times in 5 s"
    assert events(caplog, "restart") == []
    [fatal] = events(caplog, "connector_fatal")
    assert fatal["_level"] == logging.ERROR and fatal["role"] == ROLE and fatal["error"] == "AuthenticationError"
    assert fatal["restart_in_s"] == 30 and "QP_POLYGON_API_KEY" in fatal["reason"]
    assert "pk_wrong_key" not in json.dumps(fatal)
    assert held == 1
    assert metrics.REGISTRY.get_sample_value("qp_connector_fatal_stops_total",
                                             {"role": ROLE, "error": "AuthenticationError"}) >= 1

    # The alert sensor's view: one incident, opened once, resolved when the supervisor no longer reports it.
    assert list(incidents) == [ROLE] and incidents[ROLE]["restart_in_s"] == 30
    cursor = AlertCursor(caught_up=True)
    apply_connector_fatal(cursor, incidents, time.time())
    apply_connector_fatal(cursor, incidents, time.time())
    assert [a["kind"] for a in cursor.pending] == ["opened"]
    assert "AuthenticationError" in cursor.pending[0]["summary"]
    assert read_connector_incidents(polygon_env / "ingest") == {}  # ingest stopped: nothing held back
    assert metrics.REGISTRY.get_sample_value("qp_connector_fatal", {"role": ROLE}) == 0
    apply_connector_fatal(cursor, {}, time.time())
    assert [a["kind"] for a in cursor.pending] == ["opened", "resolved"]

def test_fatal_backoff_doubles_to_a_cap_ends_once_running_and_crashes_restart_at_once(polygon_env, monkeypatch,
                                                                                     caplog, tmp_path):
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.supervisor import FatalBackoff, Supervisor

    monkeypatch.delenv("QP_CONNECTOR_FATAL_BACKOFF_S", raising=False)
    monkeypatch.delenv("QP_CONNECTOR_FATAL_BACKOFF_MAX_S", raising=False)
    policy = FatalBackoff.from_env()
    assert [policy.delay(n) for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    monkeypatch.setenv("QP_CONNECTOR_FATAL_BACKOFF_S", "0")
    with pytest.raises(SystemExit, match="QP_CONNECTOR_FATAL_BACKOFF_S"):
        FatalBackoff.from_env()
    monkeypatch.setenv("QP_CONNECTOR_FATAL_BACKOFF_S", "1")
    monkeypatch.setenv("QP_CONNECTOR_FATAL_BACKOFF_MAX_S", "2")
    assert [FatalBackoff.from_env().delay(n) for n in (1, 2, 3)] == [1, 2, 2]

    # Refused, held back 1 s, restarted with the key fixed, up for a while: the incident ends. Then a kill -9 of
    # the running connector: restarted at the next step, no new incident.
    with EmbeddedNats(tmp_path / "nats").start() as srv, ServerThread(api_key="pk_the_right_key") as vendor:
        monkeypatch.setenv("QP_POLYGON_WS_URL", vendor.url)
        sup = Supervisor(nats_url=srv.url, lake_root=tmp_path / "lake", connectors=[ROLE], healthy_after_s=1.0)
        try:
            sup.scale_to(ROLE, 1)
            drive(sup, 30, until=lambda: ROLE in sup.incidents)
            assert sup.incidents[ROLE].delay_s == 1
            monkeypatch.setenv("QP_POLYGON_API_KEY", "pk_the_right_key")
            # The incident ends once the restarted connector has run for healthy_after_s; on a loaded machine its
            # connection can reach the vendor just after that: wait for both.
            drive(sup, 30, until=lambda: ROLE not in sup.incidents and vendor.connections == 2)
            assert ROLE not in sup.incidents and vendor.connections == 2
            victim = sup.procs[ROLE][0]
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            t0 = time.monotonic()
            drive(sup, 5, until=lambda: sup.count(ROLE) == 1)
            assert time.monotonic() - t0 < 1.0
        finally:
            sup.stop_all()
    assert len(events(caplog, "connector_fatal")) == 1
    assert [e["why"] for e in events(caplog, "connector_fatal_resolved")] == ["running again"]
    after_fatal, killed = events(caplog, "restart")
    assert after_fatal["after_fatal_stops"] == 1
    assert killed["role"] == ROLE and killed["exit"] == -signal.SIGKILL and "after_fatal_stops" not in killed
