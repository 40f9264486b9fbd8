"""Binance combined-stream adapter (spot, and any Binance-format source such as USD-M futures): the stream list
lives in the URL, so reconnecting resubscribes; a feed split over URL routes gets one connection per route.

Never send credentials to these public streams, and never build a Binance stream name anywhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection

from quant_platform.errors import ConfigError
from quant_platform.market.connectors.base import FrameSink, WebsocketConnector, register

# aggTrade, not trade: both streams carry the same fills, and subscribing both would count every fill twice
# (the adapter ignores raw `trade` events anyway: adapters/binance.py TRADE_KIND).
DEFAULT_CHANNELS = ("aggTrade", "bookTicker")
MAX_STREAMS = 1024  # Binance: at most 1024 streams per connection


def channel_kind(channel: str) -> str:
    """'markPrice@1s' -> 'markPrice', 'depth@100ms' -> 'depth': the stream kind a route serves."""
    return channel.split("@", 1)[0]


@register
class BinanceConnector(WebsocketConnector):
    """`<base>/stream?streams=<sym>@<channel>/...`; frames arrive as {"stream": ..., "data": {...}}.

    No auth and no subscribe message. Binance sends websocket pings (and drops a connection that does not
    pong within a minute); the websockets library answers them. Binance also ends every connection after
    24 h: that is a normal close, followed by a reconnect like any other.

    `routes` (route -> channel kinds) splits the streams over `<base>/<route>/stream?streams=...`, one connection
    per route, each reconnecting on its own: Binance USD-M serves bookTicker and depth only on /public and
    aggTrade, markPrice and kline only on /market since the legacy root was retired on 2026-04-23.
    """

    source = "binance"
    default_url = "wss://stream.binance.com:9443"
    url_env = "QP_BINANCE_WS_URL"

    def __init__(self, symbols: Sequence[str], *, channels: Sequence[str] = DEFAULT_CHANNELS,
                 routes: Mapping[str, Sequence[str]] | None = None, route: str | None = None, **opts: Any):
        super().__init__(symbols, **opts)
        if not channels:
            raise ConfigError(f"{self.source} connector: no channels to subscribe to")
        self.route = route
        self.channels = tuple(channels)
        self.routes = {r: tuple(kinds) for r, kinds in (routes or {}).items()}
        by_route: dict[str | None, list[str]] = {}
        for ch in self.channels:
            target = None
            if self.routes:
                target = next((r for r, kinds in self.routes.items() if channel_kind(ch) in kinds), None)
                if target is None:
                    raise ConfigError(f"{self.source} connector: channel {ch!r} is on none of the routes "
                                      f"{', '.join(self.routes)}")
            by_route.setdefault(target, []).append(ch)
        self.route_channels = by_route
        # Binance stream names use lower-case symbols (BTCUSDT -> btcusdt@trade); channel names keep their case.
        self.streams = [f"{sym.lower()}@{ch}" for sym in self.symbols for ch in self.channels]
        for r, chans in by_route.items():
            n = len(self.symbols) * len(chans)
            if n > MAX_STREAMS:
                raise ConfigError(f"{self.source} connector: {n} streams > {MAX_STREAMS} per connection"
                                  + (f" on route {r}" if r else ""))
        self._parts: list[BinanceConnector] = []

    @property
    def url(self) -> str:
        prefix = f"{self.base_url}/{self.route}" if self.route else self.base_url
        return f"{prefix}/stream?streams={'/'.join(self.streams)}"

    async def on_connect(self, ws: ClientConnection) -> None:
        """Nothing to send: the URL carries the subscription."""

    def route_connectors(self) -> list[BinanceConnector]:
        """One connector per route (each its own connection, backoff and counters), same symbols and source."""
        return [BinanceConnector(self.symbols, channels=chans, route=r, url=self.base_url, source=self.source,
                                 ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
                                 open_timeout=self.open_timeout, handshake_timeout=self.handshake_timeout,
                                 idle_timeout=self.idle_timeout, proxy=self.proxy, max_size=self.max_size,
                                 max_queue=self.max_queue)
                for r, chans in self.route_channels.items()]

    async def run(self, sink: FrameSink, stop: asyncio.Event) -> None:
        if not self.routes:
            return await super().run(sink, stop)
        self._parts = self.route_connectors()
        for p in self._parts:  # each route's connection records its own windows
            p.control_sink = self.control_sink
            p.connection_log.connection = p.route
        tasks = [asyncio.create_task(p.run(sink, stop)) for p in self._parts]
        try:
            # A fatal error on one route stops them all (the supervisor restarts the whole source).
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        if not self._parts:
            return super().stats()
        parts = [p.stats() for p in self._parts]
        out = {k: sum(p[k] for p in parts) for k in ("connects", "reconnects", "frames", "rejected", "skipped",
                                                     "windows")}
        last = [p["last_frame_at"] for p in parts if p["last_frame_at"] is not None]
        errors = [p["last_error"] for p in parts if p["last_error"]]
        return {"source": self.source, **out, "last_frame_at": max(last, default=None),
                "last_error": errors[-1] if errors else None, "routes": {p.route: s for p, s in zip(self._parts, parts, strict=True)}}
