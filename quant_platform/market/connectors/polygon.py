"""Massive (formerly Polygon.io) stocks websocket adapter: wait for `connected`, authenticate, subscribe to
T.<sym>/Q.<sym> and check the vendor's reply to every subscription.

Never take the API key from anywhere but QP_POLYGON_API_KEY, never log it, never retry a rejected key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection

from quant_platform.errors import ConfigError
from quant_platform.market.connectors.base import (
    AuthenticationError,
    HandshakeError,
    SubscriptionError,
    WebsocketConnector,
    decode_events,
    register,
)

ENV_API_KEY = "QP_POLYGON_API_KEY"
DEFAULT_CHANNELS = ("T", "Q")  # trades, quotes


# Statuses the vendor sends outside a subscription's answer (the handshake's, and its own notices).
_HANDSHAKE_STATUSES = {"connected", "auth_success"}


@register
class PolygonConnector(WebsocketConnector):
    """Handshake: server `[{"ev":"status","status":"connected"}]`; we send {"action":"auth","params":KEY};
    server `auth_success` (or `auth_failed`: AuthenticationError, fatal); we send
    {"action":"subscribe","params":"T.AAPL,Q.AAPL,..."}; server answers each param with
    `{"ev":"status","status":"success","message":"subscribed to: T.AAPL"}`: any other status before every param
    is confirmed (an `error`, a `subscribe_failed`, an `auth_failed`) is a refused subscription,
    SubscriptionError (fatal: a plan or symbol problem that retrying does not fix). Status frames are published
    like any other frame. Massive has no application-level heartbeat: websocket ping/pong only.

    Default host: Polygon.io became Massive on 2025-10-30 and the real-time stocks cluster is
    wss://socket.massive.com/stocks (massive.com/docs/websocket/stocks/trades, quotes: "Real-Time
    wss://socket.massive.com/stocks"; the official client's Feed.RealTime is socket.massive.com). The old host
    socket.polygon.io still answers: QP_POLYGON_WS_URL may point there.
    """

    source = "polygon"
    default_url = "wss://socket.massive.com/stocks"
    url_env = "QP_POLYGON_WS_URL"

    def __init__(self, symbols: Sequence[str], *, channels: Sequence[str] = DEFAULT_CHANNELS, **opts: Any):
        super().__init__(symbols, **opts)
        self._api_key = os.environ.get(ENV_API_KEY, "")
        if not self._api_key:
            raise ConfigError(f"{self.source} connector: {ENV_API_KEY} is not set")
        self.params = [f"{ch}.{sym.upper()}" for sym in self.symbols for ch in channels]
        self.subscription = ",".join(self.params)

    async def on_connect(self, ws: ClientConnection) -> None:
        await self._await_status(ws, {"connected"})
        await ws.send(json.dumps({"action": "auth", "params": self._api_key}))
        status, message = await self._await_status(ws, {"auth_success", "auth_failed"})
        if status == "auth_failed":
            raise AuthenticationError(self.source, f"{ENV_API_KEY} was rejected ({message or 'auth_failed'})")
        await ws.send(json.dumps({"action": "subscribe", "params": self.subscription}))
        await self._await_subscribed(ws)

    async def _await_subscribed(self, ws: ClientConnection) -> None:
        """Read frames until every subscribed param is confirmed; a status that is not a confirmation raises."""
        waiting = {p.upper() for p in self.params}
        while waiting:
            text = await self.receive(ws)
            for event in decode_events(text or ""):
                if event.get("ev") != "status":
                    continue
                status = str(event.get("status", ""))
                message = str(event.get("message", ""))
                if status == "success" and message.startswith("subscribed to:"):
                    waiting.discard(message.split(":", 1)[1].strip().upper())
                elif status == "max_connections":
                    raise HandshakeError(self.source, f"vendor refused: {message or status}")
                elif status not in _HANDSHAKE_STATUSES and status != "success":
                    raise SubscriptionError(self.source, f"subscription refused ({status}: {message[:200]})")

    async def _await_status(self, ws: ClientConnection, wanted: set[str]) -> tuple[str, str]:
        """Read frames until a status event in `wanted` arrives; returns (status, message)."""
        while True:
            text = await self.receive(ws)
            for event in decode_events(text or ""):
                if event.get("ev") != "status":
                    continue
                status = str(event.get("status", ""))
                if status in wanted:
                    return status, str(event.get("message", ""))
                if status == "max_connections":
                    # Too many sockets on this key (often our previous one, not yet reaped): transient.
                    raise HandshakeError(self.source, f"vendor refused: {event.get('message', status)}")
