"""Market-data connectors against real vendor captures replayed by a local websocket server: frames verbatim,
reconnect with backoff and resubscribe, typed auth failures, capture replay pacing, the simulator.

Never mock the websocket: every connector test talks to ws_replay_server over loopback with real frames.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import socket
import time
from collections import Counter

import pytest
from websockets.asyncio.server import serve

from quant_platform.errors import ConfigError, ReportParseError
from quant_platform.market.connectors import (
    CONNECTORS,
    AuthenticationError,
    Backoff,
    MarketSimulator,
    SinkError,
    build_connector,
    read_capture,
    replay_capture,
)
from quant_platform.market.contracts import RawFrame
from quant_platform_tests.ws_replay_server import DEFAULT_CAPTURES, ReplayServer

pytestmark = pytest.mark.timeout(60)

POLYGON_KEY = "pk_live_T0pS3cr3tPolygon"
ALPACA_KEY_ID = "AKID_S3cr3tAlpacaKey"
ALPACA_SECRET = "sk_S3cr3tAlpacaSecret"
SECRETS = (POLYGON_KEY, ALPACA_KEY_ID, ALPACA_SECRET)

# What each connector subscribes to so that the whole capture is served.
VENDORS = {
    "binance": (["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"],
                {"channels": ["depth@100ms", "bookTicker", "kline_1m", "aggTrade"]}),
    "polygon": (["AAPL"], {}),
    "alpaca": (["AAPL"], {"quotes": ["AMD", "CLDR"]}),
}
SOURCES = sorted(VENDORS)


@pytest.fixture
def vendor_env(monkeypatch, caplog):
    """Credentials in the environment (the only place connectors read them); every log record captured."""
    for var in ("QP_BINANCE_WS_URL", "QP_POLYGON_WS_URL", "QP_ALPACA_WS_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("QP_POLYGON_API_KEY", POLYGON_KEY)
    monkeypatch.setenv("QP_ALPACA_KEY_ID", ALPACA_KEY_ID)
    monkeypatch.setenv("QP_ALPACA_SECRET_KEY", ALPACA_SECRET)
    caplog.set_level(logging.DEBUG)
    yield
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    text = "\n".join(formatter.format(r) for phase in ("setup", "call") for r in caplog.get_records(phase))
    for secret in SECRETS:
        assert secret not in text, "a secret reached the logs"


def connector_for(source: str, url: str, **extra):
    symbols, opts = VENDORS[source]
    return build_connector(source, symbols, url=url, proxy=None, **{**opts, **extra})


async def run_until(connector, done, timeout: float = 15.0) -> list[RawFrame]:
    """Run `connector` until done(frames) is true; returns the frames its sink received."""
    got: list[RawFrame] = []
    stop = asyncio.Event()

    async def sink(frame: RawFrame) -> None:
        got.append(frame)
        if done(got):
            stop.set()

    await asyncio.wait_for(connector.run(sink, stop), timeout)
    return got


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ read_capture
def test_read_capture_counts_every_frame_of_the_real_files():
    binance_text = DEFAULT_CAPTURES["binance"].read_text()
    polygon_text = DEFAULT_CAPTURES["polygon"].read_text()
    alpaca_text = DEFAULT_CAPTURES["alpaca"].read_text()
    # Counted independently of replay.py: timestamped lines, non-blank JSON lines, wscat server lines.
    expected = {
        "binance": len(re.findall(r"^\d+\.\d+: \{", binance_text, flags=re.M)),
        "polygon": sum(1 for line in polygon_text.splitlines() if line.strip()),
        "alpaca": len(re.findall(r"^< ", alpaca_text, flags=re.M)),
    }
    assert expected == {"binance": 265, "polygon": 4, "alpaca": 6}
    for source, count in expected.items():
        frames = read_capture(source, DEFAULT_CAPTURES[source])
        assert len(frames) == count, source
        for frame in frames:
            assert b"\n" not in frame and b"\r" not in frame
            json.loads(frame)
    binance = read_capture("binance", DEFAULT_CAPTURES["binance"])
    assert not any(f.startswith(b"wss://") for f in binance)  # the `<url> <-> <ts>` header is skipped
    assert Counter(json.loads(f)["stream"] for f in binance)["nknusdt@bookTicker"] == 74
    assert binance[0] in binance_text.splitlines()[1].encode()
    polygon = read_capture("polygon", DEFAULT_CAPTURES["polygon"])
    assert json.loads(polygon[0])[0]["status"] == "connected"
    assert sum(len(json.loads(f)) for f in polygon[2:]) == 3  # three AAPL trades in two frames
    alpaca = read_capture("alpaca", DEFAULT_CAPTURES["alpaca"])
    assert json.loads(alpaca[0]) == [{"T": "success", "msg": "connected"}]
    assert not any(b'"action"' in f for f in alpaca)  # `> ` client lines are not vendor frames


def test_read_capture_rejects_malformed_captures(tmp_path):
    bad = tmp_path / "binance.txt"
    bad.write_text('1633998512.06: {"stream":"x","data":{}}\nnot a frame line\n')
    with pytest.raises(ReportParseError) as err:
        read_capture("binance", bad)
    assert err.value.line == 2
    bad_json = tmp_path / "polygon.jsonl"
    bad_json.write_text('[{"ev":"T"}]\n[{"ev":"T",\n')
    with pytest.raises(ReportParseError) as err:
        read_capture("polygon", bad_json)
    assert err.value.line == 2
    with pytest.raises(ConfigError):
        read_capture("nasdaq_itch", bad)


# ------------------------------------------------------------------------------------------ connectors
@pytest.mark.parametrize("source", SOURCES)
def test_connector_receives_exactly_the_capture_frames(source, vendor_env, caplog):
    expected = read_capture(source, DEFAULT_CAPTURES[source])

    async def scenario():
        async with ReplayServer(source, api_key=POLYGON_KEY, key_id=ALPACA_KEY_ID,
                                secret_key=ALPACA_SECRET) as server:
            connector = connector_for(source, server.url)
            # Massive answers each subscribed param with a status frame, published like every other frame.
            acks = len(connector.params) if source == "polygon" else 0
            before = time.time_ns()
            got = await run_until(connector, lambda frames: len(frames) == len(expected) + acks)
            return server, connector, got, before, time.time_ns()

    server, connector, got, before, after = asyncio.run(scenario())
    acked = [f for f in got if b'"subscribed to: ' in f.payload]
    assert [f.payload for f in got if f not in acked] == expected
    if source == "polygon":
        assert sorted(json.loads(f.payload)[0]["message"] for f in acked) == sorted(
            f"subscribed to: {p}" for p in connector.params)
        got = [f for f in got if f not in acked]
    stamps = [f.received_at_ns for f in got]
    assert before <= stamps[0] and stamps[-1] <= after
    assert all(b >= a - 1_000_000 for a, b in zip(stamps, stamps[1:], strict=False))  # monotonic-ish (1 ms)
    assert (connector.connects, connector.reconnects, connector.frames) == (1, 0, len(expected) + len(acked))
    assert connector.last_frame_at == stamps[-1]
    assert any(f"{source}: connected to" in r.getMessage() for r in caplog.records)  # logs are captured
    assert server.connections == 1 and len(server.subscriptions) == 1
    if source == "binance":
        assert server.subscriptions[0] == connector.streams
        assert set(connector.streams) >= {json.loads(f)["stream"] for f in expected}
    elif source == "polygon":
        assert server.auth_messages == [{"action": "auth", "params": POLYGON_KEY}]
        assert server.subscriptions == ["T.AAPL,Q.AAPL"]
    else:
        assert server.auth_messages == [{"action": "auth", "key": ALPACA_KEY_ID, "secret": ALPACA_SECRET}]
        assert server.subscriptions == [{"action": "subscribe", "trades": ["AAPL"], "quotes": ["AMD", "CLDR"]}]


def test_binance_gets_only_the_streams_in_its_url(vendor_env):
    expected = [f for f in read_capture("binance", DEFAULT_CAPTURES["binance"])
                if json.loads(f)["stream"] == "nknusdt@bookTicker"]

    async def scenario():
        async with ReplayServer("binance") as server:
            connector = build_connector("binance", ["NKNUSDT"], channels=["bookTicker"], url=server.url, proxy=None)
            assert connector.url == f"{server.url}/stream?streams=nknusdt@bookTicker"
            return await run_until(connector, lambda frames: len(frames) == len(expected))

    assert [f.payload for f in asyncio.run(scenario())] == expected


@pytest.mark.parametrize(("source", "drop_after"), [("binance", 100), ("polygon", 1), ("alpaca", 1)])
def test_dropped_connection_reconnects_with_backoff_and_resubscribes(source, drop_after, vendor_env):
    async def scenario():
        async with ReplayServer(source, drop_after=drop_after) as server:
            connector = connector_for(source, server.url)

            async def control(record: dict) -> None:
                windows.append(record)

            connector.control_sink = control
            last = server.data_frames[-1]
            got = await run_until(connector, lambda frames: frames[-1].payload == last)
            return server, connector, got

    windows: list[dict] = []
    server, connector, got = asyncio.run(scenario())
    assert server.drops == 1 and server.connections == 2
    # Each subscribed connection recorded its window: the process's start, then the reconnect, from the last frame
    # received before the drop to the moment the vendor was subscribed again (before the first frame after it).
    assert [w["cause"] for w in windows] == ["start", "reconnect"] and connector.windows == 2
    w = windows[1]
    last_before_drop = next(f for f in got if f.payload == server.data_frames[drop_after - 1])
    assert w["lost_ns"] == last_before_drop.received_at_ns
    assert w["lost_ns"] < w["noticed_ns"] <= w["regained_ns"] and "connection closed" in w["reason"]
    after = [f.received_at_ns for f in got if f.received_at_ns > w["regained_ns"]]
    assert after and w["regained_ns"] - w["lost_ns"] >= connector.backoff_delays[0] * 1e9
    assert (connector.connects, connector.reconnects) == (2, 1)
    # resubscribed: the second connection asked for exactly what the first one did
    assert len(server.subscriptions) == 2 and server.subscriptions[0] == server.subscriptions[1]
    if source != "binance":
        assert len(server.auth_messages) == 2
    # every data frame arrives once, in order, the ones after the drop included
    data = set(server.data_frames)
    assert [f.payload for f in got if f.payload in data] == server.data_frames
    handshake = [f.payload for f in got if f.payload not in data]
    acks = [f for f in handshake if b'"subscribed to: ' in f]  # Massive confirms each param on each connection
    assert len(acks) == (2 * len(connector.params) if source == "polygon" else 0)
    handshake = [f for f in handshake if f not in acks]
    assert handshake == 2 * [f for f in read_capture(source, DEFAULT_CAPTURES[source]) if f not in data]
    # the reconnect waited a full-jitter backoff delay of the first attempt: uniform(0, 0.5 s)
    assert len(connector.backoff_delays) == 1 and 0 <= connector.backoff_delays[0] <= 0.5
    idx = [f.payload for f in got].index(server.data_frames[drop_after])  # first data frame after the drop
    assert got[idx].received_at_ns - got[idx - 1 - (len(handshake) + len(acks)) // 2].received_at_ns >= \
        connector.backoff_delays[0] * 1e9
    assert connector.last_error.startswith("connection closed")


@pytest.mark.parametrize(("drops_stable", "expected_attempt"), [(False, 3), (True, 1)])
def test_backoff_grows_on_quick_drops_and_resets_after_a_stable_connection(drops_stable, expected_attempt,
                                                                           vendor_env):
    # Quick drops (right after connecting) escalate the backoff; connections that stayed up longer than
    # `reset_after` reset it, so each reconnect starts again from the initial delay.
    async def scenario():
        server = ReplayServer("binance", drop_after=20 if drops_stable else 0, drop_connections=3,
                              delay=0.01 if drops_stable else 0.0)
        async with server:
            backoff = Backoff(initial=0.05, reset_after=0.15, rng=random.Random(3))
            connector = connector_for("binance", server.url, backoff=backoff)
            attempts: list[int] = []

            async def sink(frame: RawFrame) -> None:
                attempts.append(backoff.attempt)
                if connector.connects == 4:  # the first frame after the third drop
                    stop.set()

            stop = asyncio.Event()
            await asyncio.wait_for(connector.run(sink, stop), 20)
            return server, connector, attempts

    server, connector, attempts = asyncio.run(scenario())
    assert server.drops == 3 and connector.connects == 4
    assert attempts[-1] == expected_attempt
    if not drops_stable:
        assert list(connector.backoff_delays) and max(connector.backoff_delays) <= 0.05 * 2**2
    else:
        assert all(d <= 0.05 for d in connector.backoff_delays)


@pytest.mark.parametrize(("source", "how"), [("polygon", "refused"), ("polygon", "wrong_key"),
                                             ("alpaca", "refused"), ("alpaca", "wrong_key")])
def test_bad_credentials_stop_with_a_typed_error_and_no_reconnect_loop(source, how, vendor_env, caplog):
    async def scenario():
        server = ReplayServer(source, refuse_auth=how == "refused", api_key="another-key",
                              key_id="another-id", secret_key="another-secret")
        async with server:
            connector = connector_for(source, server.url)
            started = time.monotonic()
            with pytest.raises(AuthenticationError) as err:
                await run_until(connector, lambda frames: False, timeout=5)
            elapsed = time.monotonic() - started
            await asyncio.sleep(0.3)  # nothing keeps knocking on the vendor's door
            return server, connector, err.value, elapsed

    server, connector, err, elapsed = asyncio.run(scenario())
    assert elapsed < 3
    assert server.connections == 1 and len(server.auth_messages) == 1 and not server.subscriptions
    assert (connector.connects, connector.reconnects, len(connector.backoff_delays)) == (1, 0, 0)
    assert err.source == source and err.fatal
    assert ("QP_POLYGON_API_KEY" if source == "polygon" else "QP_ALPACA_KEY_ID") in str(err)
    assert not any(secret in str(err) for secret in SECRETS)
    assert any(r.levelno == logging.ERROR and "rejected" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("source", "variables"), [("polygon", ["QP_POLYGON_API_KEY"]),
                                                   ("alpaca", ["QP_ALPACA_KEY_ID", "QP_ALPACA_SECRET_KEY"])])
def test_missing_credentials_are_a_config_error_naming_the_variable(source, variables, monkeypatch):
    for var in variables:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match=variables[0]):
        build_connector(source, ["AAPL"])


def test_a_failing_sink_stops_the_connector_with_the_error(vendor_env, caplog):
    async def scenario():
        async with ReplayServer("polygon") as server:
            connector = connector_for("polygon", server.url)
            calls = 0

            async def sink(frame: RawFrame) -> None:
                nonlocal calls
                calls += 1
                if calls == 3:
                    raise RuntimeError("NATS unavailable")

            with pytest.raises(SinkError) as err:
                await asyncio.wait_for(connector.run(sink, asyncio.Event()), 5)
            return server, connector, err.value

    server, connector, err = asyncio.run(scenario())
    assert isinstance(err.__cause__, RuntimeError) and "NATS unavailable" in str(err)
    assert connector.frames == 2 and connector.connects == 1 and server.connections == 1
    assert any(r.levelno == logging.ERROR and "NATS unavailable" in r.getMessage() for r in caplog.records)


def test_a_fatal_stop_leaves_a_typed_record_for_the_supervisor(vendor_env, monkeypatch, tmp_path):
    """Refused credentials are persistent (the supervisor backs off and alerts); a failing sink is not."""
    record = tmp_path / "fatal.json"
    monkeypatch.setenv("QP_CONNECTOR_FATAL_FILE", str(record))

    async def scenario(server_kwargs, sink_fails: bool):
        async with ReplayServer("polygon", **server_kwargs) as server:
            connector = connector_for("polygon", server.url)

            async def sink(frame: RawFrame) -> None:
                if sink_fails:
                    raise RuntimeError("NATS unavailable")

            with pytest.raises((AuthenticationError, SinkError)):
                await asyncio.wait_for(connector.run(sink, asyncio.Event()), 5)

    asyncio.run(scenario({"refuse_auth": True}, False))
    auth = json.loads(record.read_text())
    assert (auth["source"], auth["error"], auth["persistent"]) == ("polygon", "AuthenticationError", True)
    assert "QP_POLYGON_API_KEY" in auth["reason"] and POLYGON_KEY not in record.read_text()
    asyncio.run(scenario({}, True))
    sink = json.loads(record.read_text())
    assert (sink["error"], sink["persistent"]) == ("SinkError", False)


def test_frames_are_single_lines_and_empty_or_binary_frames_are_skipped(vendor_env):
    sent = ['{"a":1}\n', "", "\r\n", b"\x00\x01", '{"a":\n2}', '{"b":3}']

    async def handler(ws):
        for message in sent:
            await ws.send(message)
        await ws.wait_closed()

    async def scenario():
        async with serve(handler, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            connector = build_connector("binance", ["BTCUSDT"], url=url, proxy=None)
            got = await run_until(connector, lambda frames: frames[-1].payload == b'{"b":3}')
            return connector, got

    connector, got = asyncio.run(scenario())
    assert [f.payload for f in got] == [b'{"a":1}', b'{"b":3}']
    assert (connector.rejected, connector.skipped) == (1, 3)


def test_unreachable_vendor_is_retried_with_backoff_until_stopped(vendor_env):
    async def scenario():
        connector = build_connector("binance", ["BTCUSDT"], url=f"ws://127.0.0.1:{free_port()}", proxy=None,
                                    backoff=Backoff(initial=0.02, max_delay=0.1))
        stop = asyncio.Event()

        async def sink(frame: RawFrame) -> None:  # pragma: no cover - nothing to receive
            raise AssertionError("no frames expected")

        task = asyncio.create_task(connector.run(sink, stop))
        await asyncio.sleep(0.6)
        stop.set()
        started = time.monotonic()
        await asyncio.wait_for(task, 2)
        return connector, time.monotonic() - started

    connector, stop_latency = asyncio.run(scenario())
    assert connector.connects == 0 and connector.reconnects >= 3
    assert all(d <= 0.1 for d in connector.backoff_delays)
    assert stop_latency < 0.5
    assert connector.last_error.startswith("cannot connect")


@pytest.mark.parametrize("kind", ["handshake", "idle"])
def test_a_silent_vendor_times_out_and_reconnects(kind, vendor_env):
    # handshake: the vendor answers too slowly for handshake_timeout; idle: the feed goes quiet for idle_timeout.
    async def scenario():
        if kind == "handshake":
            server = ReplayServer("polygon", handshake_delay=0.5)
            opts = {"handshake_timeout": 0.2}
        else:
            server = ReplayServer("polygon")
            opts = {"idle_timeout": 0.2}
        async with server:
            connector = connector_for("polygon", server.url, backoff=Backoff(initial=0.02), **opts)
            stop = asyncio.Event()
            got: list[RawFrame] = []

            async def sink(frame: RawFrame) -> None:
                got.append(frame)

            task = asyncio.create_task(connector.run(sink, stop))
            while connector.connects < 3:
                await asyncio.sleep(0.02)
            stop.set()
            await asyncio.wait_for(task, 2)
            return connector, got

    connector, got = asyncio.run(scenario())
    assert connector.reconnects >= 2
    if kind == "handshake":
        assert connector.last_error == "handshake not done within 0.2s"
    else:
        assert connector.last_error == "no frame for 0.2s"
        assert len(got) >= 4  # the whole capture came first, then silence


def test_backoff_is_exponential_full_jitter_capped_and_resettable():
    backoff = Backoff(rng=random.Random(11))
    ceilings, delays = [], []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        delays.append(backoff.next_delay())
    assert ceilings == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert backoff.ceiling() == 0.5
    first = [Backoff(rng=random.Random(seed)).next_delay() for seed in range(400)]
    assert 0.2 < sum(first) / len(first) < 0.3  # full jitter: uniform over [0, 0.5]
    assert len(set(first)) > 390


def test_registry_urls_and_no_secret_in_repr(vendor_env, monkeypatch):
    assert {"binance", "polygon", "alpaca", "simulator"} <= set(CONNECTORS)
    binance = build_connector("binance", ["BTCUSDT", "ETHUSDT"])
    # aggTrade only, not trade too: both carry the same fills (adapters/binance.py TRADE_KIND).
    assert binance.url == ("wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker/"
                           "ethusdt@aggTrade/ethusdt@bookTicker")
    monkeypatch.setenv("QP_BINANCE_WS_URL", "ws://127.0.0.1:9/")
    assert build_connector("binance", ["BTCUSDT"], channels=["trade"]).url == \
        "ws://127.0.0.1:9/stream?streams=btcusdt@trade"
    polygon = build_connector("polygon", ["AAPL", "XOM"])
    assert polygon.url == "wss://socket.massive.com/stocks"  # Massive's real-time cluster (formerly Polygon)
    assert polygon.subscription == "T.AAPL,Q.AAPL,T.XOM,Q.XOM"
    alpaca = build_connector("alpaca", ["AAPL"])
    assert alpaca.url == "wss://stream.data.alpaca.markets/v2/sip"
    for connector in (polygon, alpaca):
        assert not any(s in repr(connector) or s in str(connector.stats()) for s in SECRETS)
    assert build_connector("simulator", ["CL", "NG"], seed=1).symbols == ["CL", "NG"]
    with pytest.raises(ConfigError, match="unknown market-data source"):
        build_connector("bloomberg", ["CL1"])
    with pytest.raises(ConfigError):
        build_connector("binance", [])


# ------------------------------------------------------------------------------------------ replay
def test_replay_capture_is_paced_at_the_requested_rate():
    frames = read_capture("binance", DEFAULT_CAPTURES["binance"])
    got: list[RawFrame] = []

    async def sink(frame: RawFrame) -> None:
        got.append(frame)

    started = time.monotonic()
    emitted = asyncio.run(replay_capture("binance", DEFAULT_CAPTURES["binance"], sink, rate=2000, loop_count=2))
    elapsed = time.monotonic() - started
    assert emitted == len(got) == 2 * len(frames)
    assert elapsed >= 0.5 * (2 * len(frames) / 2000)
    assert [f.payload for f in got] == frames * 2
    stamps = [f.received_at_ns for f in got]
    assert all(b >= a - 1_000_000 for a, b in zip(stamps, stamps[1:], strict=False))
    assert abs(stamps[-1] - time.time_ns()) < 5e9

    got.clear()
    assert asyncio.run(replay_capture("alpaca", DEFAULT_CAPTURES["alpaca"], sink)) == 6
    assert [f.payload for f in got] == read_capture("alpaca", DEFAULT_CAPTURES["alpaca"])


# ------------------------------------------------------------------------------------------ simulator
def _without_t(frames: list[bytes]) -> list[dict]:
    return [{k: v for k, v in json.loads(f).items() if k != "t"} for f in frames]


def test_simulator_is_deterministic_with_a_seed():
    assert MarketSimulator(seed=42).frames_at(2000) == MarketSimulator(seed=42).frames_at(2000)
    assert MarketSimulator(seed=42).frames_at(200) != MarketSimulator(seed=43).frames_at(200)

    async def run(seed: int) -> list[bytes]:
        got: list[RawFrame] = []

        async def sink(frame: RawFrame) -> None:
            got.append(frame)

        await MarketSimulator(rate=5000, seed=seed).run(sink, asyncio.Event(), total=300)
        return [f.payload for f in got]

    first, second = asyncio.run(run(7)), asyncio.run(run(7))
    assert len(first) == 300 and _without_t(first) == _without_t(second)


def test_simulator_frames_are_plausible_quotes_and_trades():
    ticks = {"CL": 0.01, "BZ": 0.01, "NG": 0.001, "HO": 0.0001, "RB": 0.0001}
    levels = {"CL": (40, 130), "BZ": (40, 140), "NG": (1, 10), "HO": (1, 5), "RB": (1, 5)}
    events = [json.loads(f) for f in MarketSimulator(seed=5, trade_ratio=0.3).frames_at(20_000, start_ns=10**18)]
    assert {e["sym"] for e in events} == set(ticks)
    seqs: dict[str, list[int]] = {}
    for e in events:
        seqs.setdefault(e["sym"], []).append(e["seq"])
        lo, hi = levels[e["sym"]]
        prices = [e["p"]] if e["ev"] == "T" else [e["bp"], e["ap"]]
        if e["ev"] == "Q":
            assert e["bp"] < e["ap"] and e["bs"] >= 1 and e["as"] >= 1
        else:
            assert e["ev"] == "T" and e["s"] >= 1
        for p in prices:
            assert lo <= p <= hi
            assert abs(p / ticks[e["sym"]] - round(p / ticks[e["sym"]])) < 1e-6  # on the tick grid
    assert all(s == list(range(1, len(s) + 1)) for s in seqs.values())
    trades = sum(e["ev"] == "T" for e in events) / len(events)
    assert 0.27 < trades < 0.33
    ts = [e["t"] for e in events]
    assert ts == sorted(ts) and ts[0] == 10**18


def _timed_run(sim: MarketSimulator, **kwargs) -> tuple[list[RawFrame], float]:
    got: list[RawFrame] = []

    async def sink(frame: RawFrame) -> None:
        got.append(frame)

    started = time.monotonic()
    asyncio.run(sim.run(sink, asyncio.Event(), **kwargs))
    return got, time.monotonic() - started


def test_simulator_respects_its_rate():
    got, elapsed = _timed_run(MarketSimulator(rate=400, seed=1), total=240)
    assert len(got) == 240
    assert 0.6 * 400 <= len(got) / elapsed <= 1.4 * 400


def test_simulator_bursts_raise_the_rate():
    sim = MarketSimulator(rate=200, burst_every_s=0.4, burst_factor=5, burst_duration_s=0.2, seed=2)
    assert sim.rate_at(0.1) == 200 and sim.rate_at(0.5) == 1000 and sim.rate_at(0.7) == 200
    got, elapsed = _timed_run(sim, duration_s=1.0)
    assert 440 <= len(got) <= 600  # 0.6 s at 200/s + 0.4 s at 1000/s = 520, versus 200 without bursts
    start = got[0].received_at_ns

    def observed_rate(lo: float, hi: float) -> float:
        return sum(lo <= (f.received_at_ns - start) / 1e9 < hi for f in got) / (hi - lo)

    assert observed_rate(0.45, 0.6) > 2.5 * observed_rate(0.05, 0.35)
