"""JetStream infrastructure of the market-data lane against a real nats-server: embedded server, stream and
consumer declarations, the pipelined raw publisher (batching, dedup, kill -9 and restart), stream state.

Never talk to the machine's server on 4222: every test starts its own on a free loopback port and temp store.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from quant_platform.market.contracts import (
    HDR_FORMAT,
    HDR_FRAMES,
    HDR_SOURCE,
    RAW_FORMAT,
    STREAM_DLQ,
    STREAM_NORM,
    STREAM_RAW,
    RawFrame,
    batch_msg_id,
    decode_batch,
    encode_batch,
    raw_subject,
)
from quant_platform.market.nats_server import (
    EmbeddedNats,
    NatsServerNotFoundError,
    find_nats_server_binary,
    nats_url_or_embedded,
)
from quant_platform.market.publisher import (
    LatencyHistogram,
    NoStreamForSubjectError,
    PublishError,
    RawPublisher,
    publish_frames,
)
from quant_platform.market.streams import (
    MAX_MSG_SIZE,
    ConsumerSpec,
    StreamConfigError,
    ensure_consumer,
    ensure_streams,
    fanout_consumer,
    stream_state,
)

pytestmark = pytest.mark.timeout(120)

STREAM_ENV = ("QP_STREAM_REPLICAS", "QP_NATS_REPLICAS", "QP_TICKS_MAX_AGE_HOURS", "QP_TICKS_RAW_MAX_AGE_HOURS",
              "QP_TICKS_DLQ_MAX_AGE_HOURS", "QP_NATS_URL", "QP_NATS_SERVER_BIN", "QP_TICKS_RAW_MAX_BYTES",
              "QP_TICKS_MAX_BYTES", "QP_TICKS_DLQ_MAX_BYTES", "QP_NATS_MAX_FILE_STORE", "QP_NATS_MAX_DELIVER",
              "QP_NATS_INBOX_PREFIX")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in STREAM_ENV:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server(tmp_path) -> EmbeddedNats:
    srv = EmbeddedNats(tmp_path / "nats").start()
    yield srv
    srv.kill()


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _v(x) -> str:
    """An enum's value (nats-py returns plain strings in configs read back from the server)."""
    return getattr(x, "value", x)


def make_frames(n: int, start: int = 0) -> list[RawFrame]:
    now = time.time_ns()
    return [
        RawFrame(now + i, json.dumps({"e": "trade", "s": "BTCUSDT", "p": "65000.5", "q": "0.01", "t": i},
                                     separators=(",", ":")).encode())
        for i in range(start, start + n)
    ]


async def connect(url: str):
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=2)


async def read_stream(js, stream: str) -> list:
    """Every stored message of a stream, once each, by sequence number."""
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            out.append(await js.get_msg(stream, seq))
        except NotFoundError:
            continue
    return out


# ------------------------------------------------------------------------------------------- server
def test_embedded_server_has_jetstream_with_fsync_before_ack(server):
    assert server.port != 4222 and server.url.startswith("nats://127.0.0.1:")
    varz = server.varz()
    assert varz["max_payload"] == 8 * 1024 * 1024
    js_cfg = varz["jetstream"]["config"]
    assert js_cfg["sync_always"] is True
    # A bounded store: the streams' max_bytes (16 + 16 + 4 GiB by default) plus 10%.
    assert js_cfg["max_storage"] == 36 * 1024**3 + 36 * 1024**3 // 10
    assert Path(js_cfg["store_dir"]).is_relative_to(server.store_dir)
    jsz = server.jsz()
    assert jsz["config"]["sync_always"] is True and jsz["streams"] == 0
    assert "sync_interval: always" in server.config_path.read_text()
    assert (server.store_dir / "nats.url").read_text().strip() == server.url

    old_pid, port = server.pid, server.port
    server.restart()
    assert server.pid != old_pid and server.port == port and server.varz()["jetstream"]["config"]["sync_always"]
    server.stop()
    assert not server.running and server.pid is None


def test_embedded_store_limit_covers_the_streams_limits(monkeypatch, tmp_path):
    from quant_platform.errors import ConfigError
    from quant_platform.market.nats_server import max_file_store_bytes

    monkeypatch.setenv("QP_TICKS_RAW_MAX_BYTES", "1GiB")
    monkeypatch.setenv("QP_TICKS_MAX_BYTES", "1GiB")
    monkeypatch.setenv("QP_TICKS_DLQ_MAX_BYTES", "512MiB")
    assert max_file_store_bytes() == int(2.5 * 1024**3) + int(2.5 * 1024**3) // 10
    monkeypatch.setenv("QP_NATS_MAX_FILE_STORE", "3GiB")
    assert max_file_store_bytes() == 3 * 1024**3
    monkeypatch.setenv("QP_NATS_MAX_FILE_STORE", "2GiB")  # the streams could not all be created
    with pytest.raises(ConfigError, match="QP_NATS_MAX_FILE_STORE"):
        EmbeddedNats(tmp_path / "small").start()


def test_binary_lookup_and_typed_error(monkeypatch, tmp_path):
    binary = find_nats_server_binary()
    assert binary.name.startswith("nats-server") and os.access(binary, os.X_OK)
    monkeypatch.setenv("QP_NATS_SERVER_BIN", str(tmp_path / "missing-nats-server"))
    with pytest.raises(NatsServerNotFoundError, match="QP_NATS_SERVER_BIN"):
        EmbeddedNats(tmp_path / "x").start()


def test_nats_url_or_embedded(monkeypatch, tmp_path):
    monkeypatch.setenv("QP_NATS_URL", "nats://10.0.0.9:4222")
    assert nats_url_or_embedded(tmp_path) == ("nats://10.0.0.9:4222", None)
    monkeypatch.delenv("QP_NATS_URL")
    url, srv = nats_url_or_embedded(tmp_path)
    try:
        assert srv is not None and url == srv.url and srv.store_dir == (tmp_path / "nats").resolve()
        assert srv.varz()["jetstream"]["config"]["sync_always"] is True
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------------- declarations
def test_ensure_streams_idempotent_and_updates_changed_max_age(server, monkeypatch):
    async def main():
        nc = await connect(server.url)
        js = nc.jetstream()
        try:
            first = await ensure_streams(js)
            assert first["streams"] == {STREAM_RAW: "created", STREAM_NORM: "created", STREAM_DLQ: "created"}
            assert set(first["consumers"].values()) == {"created"}
            second = await ensure_streams(js)
            assert set(second["streams"].values()) == {"unchanged"}
            assert set(second["consumers"].values()) == {"unchanged"}

            raw = (await js.stream_info(STREAM_RAW)).config
            assert raw.subjects == ["ticks.raw.>"] and _v(raw.storage) == "file"
            assert raw.max_age == 7 * 86400 and raw.duplicate_window == 120 and raw.num_replicas == 1
            # Bounded: a full TICKS_RAW refuses (the publisher keeps its batch), TICKS and the DLQ drop the oldest.
            assert _v(raw.discard) == "new" and raw.max_msg_size == MAX_MSG_SIZE
            assert raw.max_bytes == 16 * 1024**3 and raw.allow_direct
            ticks = (await js.stream_info(STREAM_NORM)).config
            assert ticks.subjects == ["ticks.norm.>"] and ticks.max_age == 3 * 86400
            assert ticks.duplicate_window == 120
            assert _v(ticks.discard) == "old" and ticks.max_bytes == 16 * 1024**3
            dlq = (await js.stream_info(STREAM_DLQ)).config
            assert dlq.subjects == ["ticks.dlq.>"] and dlq.max_age == 30 * 86400
            assert _v(dlq.discard) == "old" and dlq.max_bytes == 4 * 1024**3

            monkeypatch.setenv("QP_TICKS_MAX_AGE_HOURS", "12")
            third = await ensure_streams(js)
            assert third["streams"] == {STREAM_RAW: "unchanged", STREAM_NORM: "updated", STREAM_DLQ: "unchanged"}
            assert (await js.stream_info(STREAM_NORM)).config.max_age == 12 * 3600
            assert (await ensure_streams(js))["streams"][STREAM_NORM] == "unchanged"

            # One node cannot hold three replicas: a typed error with the server's reason.
            with pytest.raises(StreamConfigError, match="TICKS_RAW"):
                await ensure_streams(js, replicas=3)
        finally:
            await nc.close()

    run(main())


def test_consumers_have_declared_config(server):
    async def main():
        nc = await connect(server.url)
        js = nc.jetstream()
        try:
            await ensure_streams(js)
            for stream, name, filt in ((STREAM_RAW, "normalizer", "ticks.raw.>"),
                                       (STREAM_NORM, "lander", "ticks.norm.>")):
                cfg = (await js.consumer_info(stream, name)).config
                assert cfg.durable_name == name and _v(cfg.ack_policy) == "explicit"
                # Bounded redelivery: the worker dead-letters a message at its 8th delivery (QP_NATS_MAX_DELIVER).
                assert cfg.ack_wait == 30 and cfg.max_ack_pending == 20_000 and cfg.max_deliver == 8
                assert _v(cfg.deliver_policy) == "all" and cfg.filter_subject == filt
                assert not cfg.deliver_subject  # pull

            assert await fanout_consumer(js, "team_power", "ticks.norm.binance.>") == "created"
            assert await fanout_consumer(js, "team_power", "ticks.norm.binance.>") == "unchanged"
            cfg = (await js.consumer_info(STREAM_NORM, "team_power")).config
            assert cfg.durable_name == "team_power" and _v(cfg.ack_policy) == "explicit"
            assert _v(cfg.deliver_policy) == "all" and cfg.filter_subject == "ticks.norm.binance.>"

            changed = ConsumerSpec("normalizer", STREAM_RAW, filter_subject="ticks.raw.>", max_ack_pending=5000)
            assert await ensure_consumer(js, STREAM_RAW, changed) == "updated"
            assert (await js.consumer_info(STREAM_RAW, "normalizer")).config.max_ack_pending == 5000
            assert (await ensure_streams(js))["consumers"]["TICKS_RAW.normalizer"] == "updated"
        finally:
            await nc.close()

    run(main())


# ------------------------------------------------------------------------------------------- publisher
def test_publisher_refuses_without_stream_and_bad_input(server):
    async def main():
        nc = await connect(server.url)
        try:
            with pytest.raises(NoStreamForSubjectError):
                await RawPublisher(nc, "binance", "c1").start()
            with pytest.raises(PublishError):
                RawPublisher(nc, "bad.source", "c1")
            await ensure_streams(nc.jetstream())
            pub = await RawPublisher(nc, "binance", "c1").start()
            with pytest.raises(PublishError, match="single line"):
                await pub.add(RawFrame(1, b"a\nb"))
            await pub.close(timeout=5)
        finally:
            await nc.close()

    run(main())


def test_publish_20k_frames_read_back_exactly_once(server):
    frames = make_frames(20_000)

    async def main():
        nc = await connect(server.url)
        js = nc.jetstream()
        try:
            await ensure_streams(js)
            # Fixed batching (eager sends off): exactly max_frames per batch.
            pub = RawPublisher(js, "binance", "conn-a", max_frames=500, eager_inflight=0)
            t0 = time.perf_counter()
            async with pub:
                for f in frames:
                    await pub.add(f)
            elapsed = time.perf_counter() - t0
            print(f"\n20k frames, fsync always: {20_000 / elapsed:,.0f} frames/s, "
                  f"p50 {pub.latency.percentile(50) / 1e6:.2f} ms, p99 {pub.latency.percentile(99) / 1e6:.2f} ms")
            assert pub.batches_sent == 40 and pub.acks == 40 and pub.frames_sent == pub.frames_acked == 20_000
            assert pub.duplicates == 0 and pub.in_flight == 0 and pub.latency.count == 20_000

            # Read through a durable pull consumer: each message once, nothing left pending.
            await fanout_consumer(js, "readback", "ticks.raw.binance.>", stream=STREAM_RAW)
            sub = await js.pull_subscribe_bind("readback", stream=STREAM_RAW)
            msgs = []
            while len(msgs) < 40:
                try:
                    got = await sub.fetch(100, timeout=1)
                except TimeoutError:
                    break
                for m in got:
                    await m.ack()
                msgs.extend(got)
            await sub.unsubscribe()
            assert len(msgs) == 40
            ids = [m.headers["Nats-Msg-Id"] for m in msgs]
            assert sorted(ids) == sorted(batch_msg_id("binance", "conn-a", n) for n in range(40))
            decoded = []
            for m in msgs:
                assert m.subject == raw_subject("binance")
                assert m.headers[HDR_FORMAT] == RAW_FORMAT and m.headers[HDR_SOURCE] == "binance"
                batch = list(decode_batch(m.data))
                assert all(isinstance(f, RawFrame) for f in batch)
                assert int(m.headers[HDR_FRAMES]) == len(batch) == 500
                decoded.extend(batch)
            assert len(decoded) == 20_000 and set(decoded) == set(frames)

            state = await stream_state(js)
            assert state[STREAM_RAW]["messages"] == 40 and state[STREAM_RAW]["last_seq"] == 40
            rb = state[STREAM_RAW]["consumers"]["readback"]
            assert rb["num_pending"] == 0 and rb["ack_floor_stream_seq"] == 40
        finally:
            await nc.close()

    run(main())


def test_resend_with_same_msg_id_is_deduplicated(server):
    frames = make_frames(1_000)

    async def main():
        nc = await connect(server.url)
        js = nc.jetstream()
        try:
            await ensure_streams(js)
            first = RawPublisher(nc, "sim", "conn-dup", max_frames=100, eager_inflight=0)
            async with first:
                for f in frames:
                    await first.add(f)
            assert first.acks == 10 and first.duplicates == 0

            # The same batch resent by hand: same bytes, same Nats-Msg-Id -> ack with duplicate=true.
            hdrs = {"Nats-Msg-Id": batch_msg_id("sim", "conn-dup", 0), HDR_FORMAT: RAW_FORMAT,
                    HDR_SOURCE: "sim", HDR_FRAMES: "100"}
            ack = await js.publish(raw_subject("sim"), encode_batch(frames[:100]), headers=hdrs)
            assert ack.duplicate is True and ack.seq == 1

            # A publisher resending every batch under the same ids (e.g. after a lost ack) stores nothing new.
            again = RawPublisher(nc, "sim", "conn-dup", max_frames=100, eager_inflight=0)
            async with again:
                for f in frames:
                    await again.add(f)
            assert again.acks == 10 and again.duplicates == 10
            assert (await js.stream_info(STREAM_RAW)).state.messages == 10
        finally:
            await nc.close()

    run(main())


@pytest.mark.slow
def test_kill9_server_mid_publish_loses_nothing(server):
    total, kill_at = 30_000, 5_000
    frames = make_frames(total)

    async def main():
        nc = await connect(server.url)
        js = nc.jetstream()
        await ensure_streams(js)
        pub = RawPublisher(nc, "crash", "conn-crash", max_frames=100, window=64, ack_timeout_s=1.0)
        await pub.start()
        old_pid = server.pid

        async def restart_later():
            await asyncio.sleep(0.7)
            await asyncio.to_thread(server.start)

        restarter = None
        for i, f in enumerate(frames):
            if i == kill_at:
                acked_before, sent_before = pub.acks, pub.batches_sent
                server.kill()  # SIGKILL: no shutdown, in-flight batches and acks die with it
                restarter = asyncio.create_task(restart_later())
            await pub.add(f)
        await pub.close(timeout=40)
        await restarter
        assert server.pid != old_pid
        sent = pub.batches_sent  # adaptive batching: about total / max_frames, boundaries depend on timing
        assert acked_before < sent == pub.acks and 300 <= sent <= 330
        assert pub.frames_acked == total and pub.reconnects_seen >= 1 and pub.resends > 0

        js = nc.jetstream()
        msgs = await read_stream(js, STREAM_RAW)
        per_id = Counter(m.headers["Nats-Msg-Id"] for m in msgs)
        assert set(per_id) == {batch_msg_id("crash", "conn-crash", n) for n in range(sent)}
        stored: Counter = Counter()
        batch_frames = {}
        for m in msgs:
            batch = list(decode_batch(m.data))
            stored.update(batch)
            batch_frames[m.headers["Nats-Msg-Id"]] = len(batch)
        dup_frames = sum((per_id[i] - 1) * n for i, n in batch_frames.items())
        assert set(stored) == set(frames)  # every frame stored
        assert sum(stored.values()) == total + dup_frames  # exactly 30k, plus whole duplicate batches if any
        print(f"\nkill -9 at {kill_at} frames ({sent_before} batches sent, {acked_before} acked): resends {pub.resends}, duplicate acks {pub.duplicates}, "
              f"duplicate frames stored {dup_frames}")
        await nc.close()

    run(main(), timeout=90)


def test_stream_state_reports_pending_and_ack_floor(server):
    async def main():
        nc = await connect(server.url)
        js = nc.jetstream()
        try:
            await ensure_streams(js)
            out = await publish_frames(server.url, "poly", make_frames(100), max_frames=10, ensure=False)
            assert out["acks"] == 10 and out["frames_acked"] == 100 and out["last_seq"] == 10

            sub = await js.pull_subscribe_bind("normalizer", stream=STREAM_RAW)
            first = await sub.fetch(4, timeout=2)
            assert len(first) == 4
            for m in first:
                await m.ack_sync()
            second = await sub.fetch(3, timeout=2)  # delivered, not acked
            assert len(second) == 3

            state = await stream_state(js)
            raw = state[STREAM_RAW]
            assert raw["exists"] and raw["first_seq"] == 1 and raw["last_seq"] == 10 and raw["messages"] == 10
            assert raw["bytes"] > 0
            norm = raw["consumers"]["normalizer"]
            assert norm["num_pending"] == 3 and norm["num_ack_pending"] == 3 and norm["lag"] == 6
            assert norm["ack_floor_stream_seq"] == 4 and norm["delivered_stream_seq"] == 7
            assert state[STREAM_NORM]["consumers"]["lander"]["num_pending"] == 0
            assert state[STREAM_DLQ]["messages"] == 0

            for m in second:
                await m.ack_sync()
            norm = (await stream_state(js))[STREAM_RAW]["consumers"]["normalizer"]
            assert norm["ack_floor_stream_seq"] == 7 and norm["num_ack_pending"] == 0 and norm["num_pending"] == 3
            await sub.unsubscribe()  # never drain() with a pull subscription open
        finally:
            await nc.close()

    run(main())


def test_latency_histogram_percentiles():
    h = LatencyHistogram()
    for v in range(1, 100_001):
        h.record(v * 1000)
    assert h.count == 100_000 and h.max == 100_000_000
    for q, want in ((50, 50_000_000), (99, 99_000_000)):
        assert abs(h.percentile(q) - want) / want < 0.07
    h2 = LatencyHistogram()
    h2.record_since(10_000, [9_000, 5_000])
    assert h2.count == 2 and h2.max == 5_000
    # The vectorised record_since fills the same buckets as record(), one value at a time.
    rng = random.Random(3)
    values = [rng.choice((0, 1, 15, 16, 17, 1023, 1024)) for _ in range(50)] + [int(rng.lognormvariate(15, 3))
                                                                               for _ in range(5000)]
    one, many = LatencyHistogram(), LatencyHistogram()
    for v in values:
        one.record(v)
    many.record_since(10**15, [10**15 - v for v in values] + [10**15 + 5])  # a clock step back counts as 0
    one.record(0)
    assert many.counts == one.counts and (many.count, many.total, many.max) == (one.count, one.total, one.max)


def test_adaptive_batching_sends_at_once_when_idle_and_fills_batches_under_load(server):
    """eager_inflight=1 (off by default): with nothing awaiting an ack a frame goes out at once (no max_delay wait); frames that
    arrive while a batch is in flight go together when its ack comes; a burst still fills max_frames batches."""

    async def main():
        nc = await connect(server.url)
        try:
            await ensure_streams(nc.jetstream())
            slow = RawPublisher(nc, "simulator", "eager-idle", max_delay_s=0.5, eager_inflight=1)  # linger unused
            async with slow:
                for f in make_frames(20):
                    await slow.add(f)
                    await asyncio.sleep(0.02)  # 50 frames/s: every frame finds the pipe idle
            assert slow.batches_sent == 20 and slow.frames_acked == 20
            assert slow.latency.percentile(99) < 200_000_000  # far below the 500 ms linger

            lazy = RawPublisher(nc, "simulator", "lazy-idle", max_delay_s=0.2, eager_inflight=0)
            async with lazy:
                for f in make_frames(5):
                    await lazy.add(f)
                    await asyncio.sleep(0.02)
            assert lazy.batches_sent == 1  # without eager sends, the linger bundles them

            burst = RawPublisher(nc, "simulator", "eager-burst", max_frames=500, eager_inflight=1)
            async with burst:
                for f in make_frames(20_000):
                    await burst.add(f)
            # The first frame went alone; from then on batches fill while earlier ones are in flight.
            assert burst.frames_acked == 20_000 and burst.batches_sent <= 60
        finally:
            await nc.close()

    run(main())


def test_normalizer_fetch_set_lingers_for_more_messages(server, monkeypatch):
    """A fetch that finds one message waits up to the linger for more (one set instead of one per message);
    a full set returns at once."""
    from quant_platform.market.normalizer import fetch_set, linger_seconds

    monkeypatch.delenv("QP_NORMALIZER_LINGER_MS", raising=False)
    assert linger_seconds() == 0.05
    monkeypatch.setenv("QP_NORMALIZER_LINGER_MS", "2000")
    with pytest.raises(ValueError, match="QP_NORMALIZER_LINGER_MS"):
        linger_seconds()

    async def main():
        nc = await connect(server.url)
        js = nc.jetstream()
        try:
            await ensure_streams(js)
            await fanout_consumer(js, "linger", "ticks.raw.linger.>", stream=STREAM_RAW)
            sub = await js.pull_subscribe_bind("linger", stream=STREAM_RAW)

            async def trickle():
                for i in range(4):
                    await js.publish(raw_subject("linger"), b"%d {}" % i)
                    await asyncio.sleep(0.03)

            task = asyncio.create_task(trickle())
            t0 = time.monotonic()
            got = await fetch_set(sub, 64, timeout=2, linger_s=0.4)
            await task
            assert len(got) == 4 and time.monotonic() - t0 >= 0.09  # waited for the trickle, in one set
            for m in got:
                await m.ack()
            for i in range(8):
                await js.publish(raw_subject("linger"), b"%d {}" % i)
            t0 = time.monotonic()
            full = await fetch_set(sub, 8, timeout=2, linger_s=5)
            assert len(full) == 8 and time.monotonic() - t0 < 1  # a full set does not linger
            for m in full:
                await m.ack()
            await sub.unsubscribe()
        finally:
            await nc.close()

    run(main())


def test_server_start_retries_a_port_taken_meanwhile(tmp_path):
    """The port is held by another socket when the server starts (as a client's ephemeral port can be): the
    start retries and succeeds once the port is free; a port that stays taken fails with the server's reason."""
    import socket
    import threading

    from quant_platform.market.nats_server import NatsServerStartError

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    threading.Timer(0.5, holder.close).start()
    srv = EmbeddedNats(tmp_path / "a", port=port).start()
    try:
        assert srv.port == port and srv.running
    finally:
        srv.kill()

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        with pytest.raises(NatsServerStartError, match="address already in use"):
            EmbeddedNats(tmp_path / "b", port=blocker.getsockname()[1]).start()
    finally:
        blocker.close()
