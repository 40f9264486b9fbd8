"""The alert sensor on a real Dagster instance, posting to a real local HTTP receiver: one post per incident,
a post when it resolves, retries when the webhook fails, and freshness violations recorded by Dagster's own
freshness daemon code.

Never fake the event log or the webhook: checks run in real materializations and posts go over HTTP.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from quant_platform.ops.alerts import AlertCursor, alert_sensor
from quant_platform_tests.conftest import REPO_ROOT

SECRET_PATH = "/services/T0ALERTS/B0TEST/s3cr3t-webhook-token"
DAGSTER_URL = "http://dagster.example:3000"
PARTITION = "2026-05-01"
DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01")


@dg.asset(key=["alerts_test", "prices"], partitions_def=DAYS, owners=["team:macro-data"],
          check_specs=[dg.AssetCheckSpec("prices_positive", asset=["alerts_test", "prices"], blocking=True,
                                         description="Prices are positive.")])
def prices(context) -> dg.MaterializeResult:
    price = int(context.run.tags.get("test/price", "1"))
    return dg.MaterializeResult(metadata={"price": price}, check_results=[
        dg.AssetCheckResult(check_name="prices_positive", passed=price > 0, severity=dg.AssetCheckSeverity.ERROR,
                            description=f"price is {price}", metadata={"price": price, "floor": 0}),
    ])


@dg.asset(key=["alerts_test", "quotes"],
          freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=1),
                                                           warn_window=timedelta(minutes=30)))
def quotes() -> int:
    return 1


ALERT_DEFS = dg.Definitions(assets=[prices, quotes], sensors=[alert_sensor])


class Receiver:
    """A webhook on a free loopback port: records every POST (path and JSON) and answers with the next
    queued status (200 once the queue is empty)."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.paths.append(self.path)
                    if status == 200:
                        receiver.posts.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(qp_home, monkeypatch) -> Iterator[Receiver]:
    with Receiver() as r:
        monkeypatch.setenv("QP_ALERT_WEBHOOK_URL", r.url)
        monkeypatch.setenv("QP_DAGSTER_URL", DAGSTER_URL)
        monkeypatch.setenv("QP_HTTP_RETRIES", "2")
        yield r


def tick(instance: dg.DagsterInstance, cursor: str | None) -> tuple[str | None, str | None]:
    sensor = ALERT_DEFS.get_repository_def().get_sensor_def("alert_sensor")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=ALERT_DEFS)
    data = sensor.evaluate_tick(ctx)
    assert not data.run_requests
    return data.cursor, data.skip_message


def materialize_prices(instance: dg.DagsterInstance, price: int) -> None:
    result = dg.materialize([prices], instance=instance, partition_key=PARTITION,
                            tags={"test/price": str(price)}, raise_on_error=False)
    # A failing blocking check fails the run; the materialization and the evaluation are both recorded.
    assert [e.passed for e in result.get_asset_check_evaluations()] == [price > 0]


def pending(cursor: str | None) -> list[dict]:
    return AlertCursor.parse(cursor, logging.getLogger(__name__)).pending


def test_failed_check_is_posted_once_per_incident_and_resolved(receiver, instance, caplog):
    caplog.set_level(logging.DEBUG)
    materialize_prices(instance, -3)

    cursor, skip = tick(instance, None)
    assert len(receiver.posts) == 1
    assert receiver.paths == [SECRET_PATH]
    msg = receiver.posts[0]
    link = f"{DAGSTER_URL}/assets/alerts_test/prices?partition={PARTITION}"
    # Slack's incoming-webhook shape: fallback text plus blocks (header, mrkdwn section, context).
    assert set(msg) == {"text", "blocks"}
    assert link in msg["text"]
    assert [b["type"] for b in msg["blocks"]] == ["header", "section", "context"]
    assert msg["blocks"][0]["text"]["type"] == "plain_text"
    assert "Asset check failed (ERROR)" in msg["blocks"][0]["text"]["text"]
    section = msg["blocks"][1]["text"]
    assert section["type"] == "mrkdwn"
    assert f"<{link}|alerts_test/prices>" in section["text"]
    assert "*Check:* `prices_positive`" in section["text"]
    assert f"*Partition:* `{PARTITION}`" in section["text"]
    assert "*Severity:* ERROR" in section["text"]
    assert "price is -3 — floor=0, price=-3" in section["text"]
    assert "team:macro-data" in section["text"]
    assert f"{DAGSTER_URL}/runs/" in msg["blocks"][2]["elements"][0]["text"]

    # The same incident on later ticks, and while the check keeps failing: no new post.
    cursor, _ = tick(instance, cursor)
    materialize_prices(instance, -4)
    cursor, skip = tick(instance, cursor)
    assert len(receiver.posts) == 1
    assert "1 open incident(s)" in skip

    # The check passes again: one "resolved" post, then quiet.
    materialize_prices(instance, 5)
    cursor, _ = tick(instance, cursor)
    cursor, skip = tick(instance, cursor)
    assert len(receiver.posts) == 2
    resolved = receiver.posts[1]
    assert resolved["text"].startswith(":large_green_circle: Resolved: asset check passes again")
    assert link in resolved["text"]
    assert "(2 failing evaluation(s))" in resolved["blocks"][1]["text"]["text"]
    assert "0 open incident(s)" in skip

    # A new failure after the resolution is a new incident.
    materialize_prices(instance, -1)
    cursor, _ = tick(instance, cursor)
    cursor, _ = tick(instance, cursor)
    assert len(receiver.posts) == 3
    assert "price is -1" in receiver.posts[2]["blocks"][1]["text"]["text"]

    # The webhook URL is a secret: not in the cursor, the tick's message or any log line (urllib3's included).
    token = SECRET_PATH.rsplit("/", 1)[1]
    assert token not in cursor and token not in skip
    assert token not in caplog.text
    assert "<webhook path redacted>" in caplog.text  # urllib3 did log the request, redacted


def test_history_before_the_first_tick_is_read_without_replaying_it(receiver, instance):
    other = "2026-05-02"
    for partition, price in ((other, -1), (other, 2), (PARTITION, -7)):
        dg.materialize([prices], instance=instance, partition_key=partition,
                       tags={"test/price": str(price)}, raise_on_error=False)
    # The incident on `other` opened and closed before the sensor ran: not posted. The open one is.
    tick(instance, None)
    assert len(receiver.posts) == 1
    assert f"?partition={PARTITION}" in receiver.posts[0]["text"]


def test_a_500_is_retried_within_the_tick(receiver, instance):
    materialize_prices(instance, -3)
    receiver.statuses = [500]
    cursor, _ = tick(instance, None)
    assert len(receiver.paths) == 2  # the 500, then the retry
    assert len(receiver.posts) == 1
    assert pending(cursor) == []
    tick(instance, cursor)
    assert len(receiver.posts) == 1


def test_an_unreachable_webhook_keeps_the_incident_for_the_next_tick(receiver, instance, monkeypatch):
    materialize_prices(instance, -3)
    # Down (500 on every attempt): nothing posted, the alert waits in the cursor.
    receiver.statuses = [500, 500]
    cursor, skip = tick(instance, None)
    assert receiver.posts == []
    assert len(receiver.paths) == 2
    assert [a["kind"] for a in pending(cursor)] == ["opened"]
    assert "webhook unavailable: HTTP 500" in skip

    # Nothing listening at all (connection refused): still kept; the reason names no URL.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    monkeypatch.setenv("QP_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{dead_port}{SECRET_PATH}")
    cursor, skip = tick(instance, cursor)
    assert "webhook unavailable: ConnectionError" in skip
    assert SECRET_PATH not in skip
    assert len(pending(cursor)) == 1

    # Back up: delivered exactly once, and the check passing later still resolves it.
    monkeypatch.setenv("QP_ALERT_WEBHOOK_URL", receiver.url)
    cursor, _ = tick(instance, cursor)
    cursor, _ = tick(instance, cursor)
    assert len(receiver.posts) == 1
    assert pending(cursor) == []
    materialize_prices(instance, 1)
    tick(instance, cursor)
    assert [p["text"].split(":", 2)[1] for p in receiver.posts] == ["red_circle", "large_green_circle"]


def test_a_message_the_webhook_rejects_is_dropped_not_retried_forever(receiver, instance):
    materialize_prices(instance, -3)
    receiver.statuses = [400]
    cursor, _ = tick(instance, None)
    assert receiver.posts == [] and len(receiver.paths) == 1
    assert pending(cursor) == []
    materialize_prices(instance, 2)
    tick(instance, cursor)
    assert len(receiver.posts) == 1  # the resolution of the same incident still goes out


def test_the_cursor_stays_bounded_and_reports_what_it_dropped(receiver, instance, monkeypatch):
    from quant_platform.ops import alerts

    monkeypatch.setattr(alerts, "MAX_PENDING", 1)
    cursor, _ = tick(instance, None)
    receiver.statuses = [503, 503]  # both attempts of the one tick
    for partition in ("2026-05-02", "2026-05-03"):
        dg.materialize([prices], instance=instance, partition_key=partition, tags={"test/price": "-1"},
                       raise_on_error=False)
    cursor, _ = tick(instance, cursor)
    state = AlertCursor.parse(cursor, logging.getLogger(__name__))
    assert (len(state.open), len(state.pending), state.dropped) == (2, 1, 1)

    # Back up: first the count of what was dropped, then the alert that was kept.
    cursor, _ = tick(instance, cursor)
    assert len(receiver.posts) == 2
    assert receiver.posts[0]["text"].startswith(":warning: 1 alert(s) were dropped")
    assert "?partition=2026-05-03" in receiver.posts[1]["text"]
    assert AlertCursor.parse(cursor, logging.getLogger(__name__)).dropped == 0


def test_without_a_webhook_url_the_sensor_skips(qp_home, instance, monkeypatch):
    monkeypatch.delenv("QP_ALERT_WEBHOOK_URL", raising=False)
    cursor, skip = tick(instance, "previous")
    assert cursor == "previous"
    assert "QP_ALERT_WEBHOOK_URL is not set" in skip


@contextmanager
def freshness_daemon_workspace(instance: dg.DagsterInstance):
    """The freshness daemon's own iteration over an in-process code location holding ALERT_DEFS.

    Open-source Dagster records freshness state only in the freshness daemon (part of `dagster dev` and
    `dagster-daemon run`), which emits a FRESHNESS_STATE_CHANGE event whenever an asset's state changes.
    Tests call its `run_iteration` directly (as Dagster's own tests do), under dagster's freeze_time, so
    the state is the one Dagster itself computes from the policy and the last materialization.
    """
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.freshness import FreshnessDaemon

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name=__name__, attribute="ALERT_DEFS", working_directory=str(REPO_ROOT)),
        location_name="alerts_test",
    )
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace:
        daemon = FreshnessDaemon()

        def evaluate(at: datetime) -> None:
            from dagster._core.test_utils import freeze_time

            with freeze_time(at):
                list(daemon.run_iteration(workspace))

        yield evaluate


def freshness_state(instance: dg.DagsterInstance, key: dg.AssetKey) -> str:
    return instance.get_freshness_state_records([key])[key].freshness_state.value


def test_freshness_violation_is_posted_escalated_and_resolved(receiver, instance):
    key = dg.AssetKey(["alerts_test", "quotes"])
    assert dg.materialize([quotes], instance=instance).success
    materialized_at = instance.get_latest_materialization_event(key).timestamp
    start = datetime.fromtimestamp(materialized_at).astimezone()

    with freshness_daemon_workspace(instance) as evaluate_freshness:
        evaluate_freshness(start + timedelta(seconds=5))
        assert freshness_state(instance, key) == "PASS"
        cursor, _ = tick(instance, None)
        assert receiver.posts == []

        # 45 minutes without a materialization: WARN (warn window 30 min) -> one post.
        evaluate_freshness(start + timedelta(minutes=45))
        assert freshness_state(instance, key) == "WARN"
        cursor, _ = tick(instance, cursor)
        cursor, _ = tick(instance, cursor)
        assert len(receiver.posts) == 1
        warn = receiver.posts[0]
        link = f"{DAGSTER_URL}/assets/alerts_test/quotes"
        assert f"<{link}|alerts_test/quotes>" in warn["blocks"][1]["text"]["text"]
        assert "?partition=" not in warn["text"]
        assert warn["blocks"][0]["text"]["text"].startswith("Freshness WARN: asset is close to stale")
        assert "policy: materialized at least every 1h (warn after 30m)" in warn["blocks"][1]["text"]["text"]

        # Two hours: FAIL. The same incident, escalated once; evaluating again changes nothing.
        evaluate_freshness(start + timedelta(hours=2))
        evaluate_freshness(start + timedelta(hours=2, minutes=1))
        assert freshness_state(instance, key) == "FAIL"
        cursor, _ = tick(instance, cursor)
        cursor, _ = tick(instance, cursor)
        assert len(receiver.posts) == 2
        assert receiver.posts[1]["text"].startswith(":red_circle: Freshness escalated to FAIL")
        assert link in receiver.posts[1]["text"]

        # Materialized again: PASS -> resolved.
        assert dg.materialize([quotes], instance=instance).success
        evaluate_freshness(datetime.now().astimezone())
        assert freshness_state(instance, key) == "PASS"
        cursor, skip = tick(instance, cursor)
        assert len(receiver.posts) == 3
        assert receiver.posts[2]["text"].startswith(":large_green_circle: Resolved: asset is fresh again")
        assert "0 open incident(s)" in skip

        # Stale again, straight to FAIL: a new incident.
        evaluate_freshness(datetime.now().astimezone() + timedelta(hours=3))
        tick(instance, cursor)
        assert len(receiver.posts) == 4
        assert receiver.posts[3]["blocks"][0]["text"]["text"].startswith("Freshness FAIL: asset is stale")


def test_a_webhook_answering_302_to_another_host_is_not_followed(qp_home):
    from quant_platform.ops.webhook import Delivery, WebhookPoster

    hits: list[str] = []

    class Elsewhere(BaseHTTPRequestHandler):  # an internal address the webhook must never be steered to
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args) -> None:
            pass

    class Redirector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{other.server_address[1]}/internal/admin")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.2", 0), Elsewhere)
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    for server in (other, hook):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        poster = WebhookPoster(f"http://127.0.0.1:{hook.server_address[1]}{SECRET_PATH}", attempts=3, backoff_s=0.01)
        outcome = poster.post({"text": "hello"})
    finally:
        for server in (other, hook):
            server.shutdown()
            server.server_close()
    assert hits == [], "the redirect to another host was followed"
    assert outcome.result is Delivery.UNAVAILABLE and outcome.attempts == 1
    assert "302" in outcome.reason and "redirect" in outcome.reason
    assert "127.0.0.2" not in outcome.reason and SECRET_PATH not in outcome.reason
