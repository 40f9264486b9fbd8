"""Bounded streams on a real nats-server: each stream has a max_bytes; at the limit TICKS_RAW refuses new batches
(the publisher keeps them and delivers them once there is room), TICKS and TICKS_DLQ drop their oldest messages;
above 80% of max_bytes the fill signal names the stream and the alert sensor posts it.

Never use the machine's NATS on 4222: the module owns one embedded server; each test starts from no streams.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import nats
import pytest

from quant_platform.market.contracts import STREAM_DLQ, STREAM_NORM, STREAM_RAW, decode_batch
from quant_platform_tests.market_helpers import sim_frames, wait_for

pytestmark = pytest.mark.timeout(120)

LIMIT_ENV = ("QP_TICKS_RAW_MAX_BYTES", "QP_TICKS_MAX_BYTES", "QP_TICKS_DLQ_MAX_BYTES", "QP_NATS_REPLICAS",
             "QP_STREAM_REPLICAS", "QP_TICKS_RAW_MAX_AGE_HOURS", "QP_TICKS_MAX_AGE_HOURS",
             "QP_TICKS_DLQ_MAX_AGE_HOURS", "QP_STREAM_FILL_ALERT_PCT", "QP_NATS_MAX_FILE_STORE",
             "QP_NATS_MAX_DELIVER", "QP_NATS_INBOX_PREFIX")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from quant_platform.market.nats_server import EmbeddedNats

    srv = EmbeddedNats(tmp_path_factory.mktemp("nats")).start()
    yield srv
    srv.stop()


@pytest.fixture
def url(server, monkeypatch):
    """The module's server with none of the tick streams (each test declares its own limits)."""
    for var in LIMIT_ENV:
        monkeypatch.delenv(var, raising=False)

    async def drop():
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        for name in (STREAM_RAW, STREAM_NORM, STREAM_DLQ):
            try:
                await js.delete_stream(name)
            except Exception:  # noqa: S110 - not there
                pass
        await nc.close()

    asyncio.run(drop())
    return server.url


def run(coro, timeout: float = 90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_streams_are_declared_with_byte_limits_from_the_environment(url, monkeypatch):
    from quant_platform.market.streams import ensure_streams, parse_size

    monkeypatch.setenv("QP_TICKS_RAW_MAX_BYTES", "3MiB")
    monkeypatch.setenv("QP_TICKS_MAX_BYTES", "2MB")
    monkeypatch.setenv("QP_TICKS_DLQ_MAX_BYTES", "1048576")
    assert parse_size("20GiB") == 20 * 1024**3 and parse_size("64k") == 65536

    async def go():
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_streams(js)
        cfg = {n: (await js.stream_info(n)).config for n in (STREAM_RAW, STREAM_NORM, STREAM_DLQ)}
        again = await ensure_streams(js)
        await nc.close()
        return cfg, again

    cfg, again = run(go())
    assert {n: c.max_bytes for n, c in cfg.items()} == {STREAM_RAW: 3 * 1024**2, STREAM_NORM: 2 * 1024**2,
                                                       STREAM_DLQ: 1024**2}
    assert {n: getattr(c.discard, "value", c.discard) for n, c in cfg.items()} == {
        STREAM_RAW: "new", STREAM_NORM: "old", STREAM_DLQ: "old"}
    assert set(again["streams"].values()) == {"unchanged"}


def test_a_full_raw_stream_refuses_batches_the_publisher_keeps_and_delivers_later(url, monkeypatch):
    from quant_platform.market import observe
    from quant_platform.market.publisher import RawPublisher
    from quant_platform.market.streams import ensure_streams, stream_state

    monkeypatch.setenv("QP_TICKS_RAW_MAX_BYTES", "64KiB")
    frames = sim_frames(2000)  # ~190 KB of batches

    async def go():
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_streams(js)
        pub = RawPublisher(nc, "simulator", "limits-raw", max_frames=50, ack_timeout_s=0.5)
        await pub.start()
        for f in frames:
            if pub.stage(f):
                await pub.cut()
        await pub.flush()
        await wait_for(lambda: pub.stream_full > 0 and pub.in_flight > 0, timeout_s=20)
        full = await js.stream_info(STREAM_RAW)
        state = await stream_state(js)
        fills = observe.stream_fill(state)
        # Room again (an operator raises the limit): every kept batch is stored, none twice, none lost.
        monkeypatch.setenv("QP_TICKS_RAW_MAX_BYTES", "1MiB")
        report = await ensure_streams(js, consumers=False)
        await pub.close(timeout=30)
        stored = []
        info = await js.stream_info(STREAM_RAW)
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            stored += list(decode_batch((await js.get_msg(STREAM_RAW, seq)).data))
        await nc.close()
        return full, fills, report, pub.stats(), stored

    full, fills, report, stats, stored = run(go())
    assert full.state.bytes <= 64 * 1024 and full.state.first_seq == 1, "discard new: nothing dropped"
    assert full.state.messages < 40
    assert [f["stream"] for f in fills] == [STREAM_RAW] and fills[0]["fill"] > 0.8 and fills[0]["discard"] == "new"
    assert report["streams"][STREAM_RAW] == "updated"
    assert stats["stream_full"] > 0 and stats["frames_acked"] == 2000
    assert [f.payload for f in stored] == [f.payload for f in frames]


def test_ticks_and_dlq_drop_their_oldest_messages_at_the_limit(url, monkeypatch):
    from quant_platform.market.streams import ensure_streams

    monkeypatch.setenv("QP_TICKS_MAX_BYTES", "32KiB")
    monkeypatch.setenv("QP_TICKS_DLQ_MAX_BYTES", "32KiB")

    async def go():
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_streams(js, consumers=False)
        for i in range(100):
            await js.publish("ticks.norm.simulator.FUT_CL", b"t" * 1000, headers={"Nats-Msg-Id": f"n{i}"})
            await js.publish("ticks.dlq.simulator", b"d" * 1000, headers={"Nats-Msg-Id": f"d{i}"})
        out = {n: (await js.stream_info(n)).state for n in (STREAM_NORM, STREAM_DLQ)}
        await nc.close()
        return out

    for name, st in run(go()).items():
        assert st.last_seq == 100, name
        assert st.first_seq > 1 and st.bytes <= 32 * 1024, (name, st)


class _Webhook:
    def __init__(self):
        self.posts: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                hook.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_the_alert_sensor_posts_a_stream_above_80_percent_and_its_resolution(url, monkeypatch, instance):
    import dagster as dg

    from quant_platform.ops.alerts import alert_sensor

    monkeypatch.setenv("QP_TICKS_DLQ_MAX_BYTES", "16KiB")
    monkeypatch.setenv("QP_NATS_URL", url)
    hook = _Webhook()
    monkeypatch.setenv("QP_ALERT_WEBHOOK_URL", hook.url)

    async def fill(n: int, purge: bool = False):
        from quant_platform.market.streams import ensure_streams

        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_streams(js, consumers=False)
        if purge:
            await js.purge_stream(STREAM_DLQ)
        for i in range(n):
            await js.publish("ticks.dlq.simulator", b"d" * 1000, headers={"Nats-Msg-Id": f"a{i}"})
        await nc.close()

    defs = dg.Definitions(sensors=[alert_sensor])

    def tick(cursor):
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        data = defs.get_repository_def().get_sensor_def("alert_sensor").evaluate_tick(ctx)
        return data.cursor

    run(fill(8))  # ~50%: nothing to say
    cursor = tick(None)
    assert hook.posts == []
    run(fill(14))  # ~88%
    cursor = tick(cursor)
    cursor = tick(cursor)  # still full: the same incident, no second post
    assert len(hook.posts) == 1, hook.posts
    text = json.dumps(hook.posts[0])
    assert "stream_fill.TICKS_DLQ" in text and "market/tick_stream" in text and "discard old" in text
    run(fill(0, purge=True))
    tick(cursor)
    assert len(hook.posts) == 2 and "Resolved" in hook.posts[1]["text"], hook.posts
    hook.server.shutdown()
    logging.getLogger(__name__).info("alerts: %s", hook.posts)
