"""A local websocket server that replays the real vendor captures behind each vendor's own handshake, with
faults on demand (dropped connections, refused credentials, delays), for connector tests and demos.

Never invent market data: every data frame it sends is a frame of a real capture, byte for byte.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from quant_platform.market.connectors.replay import read_capture

TICKS_DIR = Path(__file__).resolve().parents[1] / "quant_platform" / "sample_data" / "ticks"  # packaged captures
DEFAULT_CAPTURES = {
    "binance": TICKS_DIR / "binance_spot_combined_stream_2021-10-12.txt",
    "polygon": TICKS_DIR / "polygon_stocks_trades.jsonl",
    "alpaca": TICKS_DIR / "alpaca_v2_sip_session.txt",
}
PATHS = {"binance": "", "polygon": "/stocks", "alpaca": "/v2/sip"}

POLYGON_AUTH_FAILED = '[{"ev":"status","status":"auth_failed","message":"authentication failed"}]'
ALPACA_AUTH_FAILED = '[{"T":"error","code":402,"msg":"auth failed"}]'
ALPACA_CHANNEL_EVENTS = {"trades": "t", "quotes": "q", "bars": "b", "dailyBars": "d", "updatedBars": "u",
                         "statuses": "s", "lulds": "l"}

log = logging.getLogger(__name__)
Matcher = Callable[[bytes], bool]


class _QuietWireLogger(logging.LoggerAdapter):
    """websockets logs every received frame at DEBUG; the client's auth message carries secrets."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


def _events(frame: bytes | str) -> list[dict[str, Any]]:
    doc = json.loads(frame)
    return [e for e in (doc if isinstance(doc, list) else [doc]) if isinstance(e, dict)]


class ReplayServer:
    """Serves one source's capture on a loopback port; `url` is what the connector's base URL should be.

    Binance: the combined-stream path `/stream?streams=a/b/...`; only frames of the requested streams are sent.
    Polygon: sends the capture's `connected` frame, checks {"action":"auth","params":KEY}, answers the
    capture's `auth_success` frame or `auth_failed` (then closes), then on {"action":"subscribe"} answers each
    param `{"ev":"status","status":"success","message":"subscribed to: <param>"}` as the vendor's own mock server
    does (massive-com/client-python test_websocket/mock_server.py), or with `refuse_subscription` a status
    `error` for the params it refuses, then sends the capture's other frames whose T.<sym>/Q.<sym> was subscribed.
    Alpaca: sends the capture's `connected`, checks {"action":"auth","key","secret"}, answers `authenticated` or
    error 402 (then closes), then on subscribe sends the capture's subscription echo and the data frames of
    the subscribed trades/quotes.

    Data frames are sent once across connections (a shared cursor, as a live feed goes on while a client is
    away): after a drop, a reconnected client gets the frames it had not received. `drop_after=N` aborts
    the TCP connection (no close frame) after N data frames on each of the first `drop_connections`
    connections; `refuse_auth` answers every auth with the vendor's failure; `delay` sleeps before each data
    frame, `handshake_delay` before each handshake reply. After the last frame the connection stays open.
    """

    def __init__(
        self,
        source: str,
        capture: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        drop_after: int | None = None,
        drop_connections: int = 1,
        refuse_auth: bool = False,
        api_key: str | None = None,
        key_id: str | None = None,
        secret_key: str | None = None,
        delay: float = 0.0,
        handshake_delay: float = 0.0,
        refuse_subscription: str | None = None,
        routes: dict[str, set[str]] | None = None,
    ):
        if source not in PATHS:
            raise ValueError(f"no vendor emulation for {source!r}")
        self.source = source
        self.capture = Path(capture or DEFAULT_CAPTURES[source])
        self.host, self.port = host, port
        self.drop_after, self.drop_connections = drop_after, drop_connections
        self.refuse_auth = refuse_auth
        self.api_key, self.key_id, self.secret_key = api_key, key_id, secret_key
        self.delay, self.handshake_delay = delay, handshake_delay
        self.refuse_subscription = refuse_subscription  # Polygon: this message answers every subscribe param
        # Binance USD-M: route -> the stream kinds served on /<route>/stream; a stream asked on another route (or
        # on the unrouted root, which keeps only the "public" kinds) gets no data, as since 2026-04-23.
        self.routes = routes
        self.frames = read_capture(source, self.capture)
        self._split_capture()
        self._cursor = 0
        self._route_cursors: dict[str, int] = {}
        self._server: Server | None = None
        # what the server saw (auth messages hold secrets: for assertions, never printed)
        self.connections = 0
        self.paths: list[str] = []
        self.auth_messages: list[dict[str, Any]] = []
        self.subscriptions: list[Any] = []
        self.data_sent = 0
        self.drops = 0

    # ------------------------------------------------------------------------------------------- capture
    def _split_capture(self) -> None:
        """Handshake frames (sent during the vendor's handshake) apart from data frames (sent after subscribe)."""
        self.connected_frame = self.auth_ok_frame = self.subscribed_frame = None
        data = []
        for frame in self.frames:
            events = _events(frame)
            if self.source == "polygon" and events and all(e.get("ev") == "status" for e in events):
                statuses = {e.get("status") for e in events}
                if "connected" in statuses and self.connected_frame is None:
                    self.connected_frame = frame.decode()
                    continue
                if "auth_success" in statuses and self.auth_ok_frame is None:
                    self.auth_ok_frame = frame.decode()
                    continue
            if self.source == "alpaca" and len(events) == 1:
                e = events[0]
                if e.get("T") == "success" and e.get("msg") == "connected" and self.connected_frame is None:
                    self.connected_frame = frame.decode()
                    continue
                if e.get("T") == "success" and e.get("msg") == "authenticated" and self.auth_ok_frame is None:
                    self.auth_ok_frame = frame.decode()
                    continue
                if e.get("T") == "subscription" and self.subscribed_frame is None:
                    self.subscribed_frame = frame.decode()
                    continue
            data.append(frame)
        self.data_frames = data
        if self.source == "polygon":
            self.connected_frame = self.connected_frame or \
                '[{"ev":"status","status":"connected","message":"Connected Successfully"}]'
            self.auth_ok_frame = self.auth_ok_frame or \
                '[{"ev":"status","status":"auth_success","message":"authenticated"}]'
        if self.source == "alpaca":
            self.connected_frame = self.connected_frame or '[{"T":"success","msg":"connected"}]'
            self.auth_ok_frame = self.auth_ok_frame or '[{"T":"success","msg":"authenticated"}]'

    # ------------------------------------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{PATHS[self.source]}"

    async def start(self) -> ReplayServer:
        self._server = await serve(self._handle, self.host, self.port, logger=_QuietWireLogger(log, {}))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ReplayServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------------------- handshakes
    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        conn_no = self.connections
        path = ws.request.path if ws.request else ""
        self.paths.append(path)
        try:
            handshake = {"binance": self._binance, "polygon": self._polygon, "alpaca": self._alpaca}[self.source]
            matcher = await handshake(ws, path)
            if matcher is None:
                return
            if not await self._stream(ws, matcher, conn_no):
                return
            async for _ in ws:  # stay open like a quiet live feed; ignore later client messages
                pass
        except ConnectionClosed:
            pass

    async def _recv_json(self, ws: ServerConnection) -> dict[str, Any]:
        async with asyncio.timeout(10):  # vendors drop clients that do not authenticate in time
            msg = json.loads(await ws.recv())
        return msg if isinstance(msg, dict) else {}

    async def _reply(self, ws: ServerConnection, frame: str) -> None:
        if self.handshake_delay:
            await asyncio.sleep(self.handshake_delay)
        await ws.send(frame)

    async def _binance(self, ws: ServerConnection, path: str) -> Matcher | None:
        parts = urlsplit(path)
        streams = [s for q in parse_qs(parts.query).get("streams", []) for s in q.split("/") if s]
        route, _, tail = parts.path.strip("/").rpartition("/")
        if tail != "stream" or not streams or (route and (not self.routes or route not in self.routes)):
            await ws.close(1008, "expected /stream?streams=...")
            return None
        self.subscriptions.append(streams)
        wanted = set(streams)
        if self.routes is not None:
            served = self.routes.get(route or "public", set())
            wanted = {s for s in streams if s.split("@")[1] in served}

            def routed(frame: bytes) -> bool:
                return json.loads(frame).get("stream") in wanted

            routed.cursor_key = route or "/"  # each route (and the unrouted root) is its own feed: its own cursor
            return routed
        return lambda frame: json.loads(frame).get("stream") in wanted

    async def _polygon(self, ws: ServerConnection, path: str) -> Matcher | None:
        await self._reply(ws, self.connected_frame)
        msg = await self._recv_json(ws)
        key = msg.get("params") if msg.get("action") == "auth" else None
        self.auth_messages.append(msg)
        if self.refuse_auth or not isinstance(key, str) or not key or (self.api_key and key != self.api_key):
            await self._reply(ws, POLYGON_AUTH_FAILED)
            await ws.close()
            return None
        await self._reply(ws, self.auth_ok_frame)
        msg = await self._recv_json(ws)
        if msg.get("action") != "subscribe":
            await ws.close(1008, "expected a subscribe message")
            return None
        self.subscriptions.append(msg.get("params"))
        params = [p.strip() for p in str(msg.get("params", "")).split(",") if p.strip()]
        for p in params:
            if self.refuse_subscription:
                await self._reply(ws, json.dumps([{"ev": "status", "status": "error",
                                                   "message": self.refuse_subscription}]))
                await ws.close()
                return None
            await self._reply(ws, json.dumps([{"ev": "status", "status": "success", "message": f"subscribed to: {p}"}]))
        wanted = {tuple(p.split(".", 1)) for p in params if "." in p}

        def match(frame: bytes) -> bool:
            return any(e.get("ev") == "status" or (e.get("ev"), e.get("sym")) in wanted
                       or (e.get("ev"), "*") in wanted for e in _events(frame))

        return match

    async def _alpaca(self, ws: ServerConnection, path: str) -> Matcher | None:
        await self._reply(ws, self.connected_frame)
        msg = await self._recv_json(ws)
        self.auth_messages.append(msg)
        key, secret = msg.get("key"), msg.get("secret")
        ok = (msg.get("action") == "auth" and isinstance(key, str) and key and isinstance(secret, str) and secret
              and (self.key_id is None or key == self.key_id) and (self.secret_key is None or secret == self.secret_key))
        if self.refuse_auth or not ok:
            await self._reply(ws, ALPACA_AUTH_FAILED)
            await ws.close()
            return None
        await self._reply(ws, self.auth_ok_frame)
        msg = await self._recv_json(ws)
        if msg.get("action") != "subscribe":
            await ws.close(1008, "expected a subscribe message")
            return None
        self.subscriptions.append(msg)
        echo = self.subscribed_frame or json.dumps(
            [{"T": "subscription", **{k: v for k, v in msg.items() if k in ALPACA_CHANNEL_EVENTS}}])
        await self._reply(ws, echo)
        wanted = {(ALPACA_CHANNEL_EVENTS[ch], sym) for ch, syms in msg.items() if ch in ALPACA_CHANNEL_EVENTS
                  for sym in (syms if isinstance(syms, list) else [])}

        def match(frame: bytes) -> bool:
            return any(e.get("T") not in ALPACA_CHANNEL_EVENTS.values() or (e.get("T"), e.get("S")) in wanted
                       or (e.get("T"), "*") in wanted for e in _events(frame))

        return match

    # ------------------------------------------------------------------------------------------- data
    async def _stream(self, ws: ServerConnection, match: Matcher, conn_no: int) -> bool:
        """Send the remaining matching data frames; False if the connection was dropped on purpose."""
        drop = self.drop_after is not None and conn_no <= self.drop_connections
        sent = 0
        key = getattr(match, "cursor_key", None)
        if key is not None:  # a routed feed: the shared cursor stays for the unrouted ones
            return await self._stream_routed(ws, match, key)
        while self._cursor < len(self.data_frames):
            frame = self.data_frames[self._cursor]
            if not match(frame):
                self._cursor += 1
                continue
            if drop and sent >= self.drop_after:
                await self._drop(ws)
                return False
            if self.delay:
                await asyncio.sleep(self.delay)
            await ws.send(frame.decode())
            self._cursor += 1
            sent += 1
            self.data_sent += 1
        return True

    async def _stream_routed(self, ws: ServerConnection, match: Matcher, key: str) -> bool:
        cursor = self._route_cursors.get(key, 0)
        while cursor < len(self.data_frames):
            frame = self.data_frames[cursor]
            cursor += 1
            self._route_cursors[key] = cursor
            if match(frame):
                await ws.send(frame.decode())
                self.data_sent += 1
        return True

    async def _drop(self, ws: ServerConnection) -> None:
        """Let the frames already sent leave, then cut the TCP connection without a close frame."""
        for _ in range(200):
            if not ws.transport.get_write_buffer_size():
                break
            await asyncio.sleep(0.005)
        self.drops += 1
        ws.transport.abort()


async def _serve_forever(args: argparse.Namespace) -> None:
    server = ReplayServer(args.source, args.capture, host=args.host, port=args.port, drop_after=args.drop_after,
                          refuse_auth=args.refuse_auth, delay=args.delay)
    async with server:
        print(f"replaying {server.capture.name} as {args.source} at {server.url}", flush=True)
        await asyncio.Future()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Replay a real vendor capture behind the vendor's websocket handshake.")
    p.add_argument("--source", required=True, choices=sorted(PATHS))
    p.add_argument("--capture", type=Path, default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--drop-after", type=int, default=None)
    p.add_argument("--refuse-auth", action="store_true")
    p.add_argument("--delay", type=float, default=0.0)
    try:
        asyncio.run(_serve_forever(p.parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
