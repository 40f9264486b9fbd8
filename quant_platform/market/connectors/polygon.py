"""Polygon.io stocks websocket adapter: wait for `connected`, authenticate, subscribe to T.<sym>/Q.<sym>.

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
    WebsocketConnector,
    decode_events,
    register,
)

ENV_API_KEY = "QP_POLYGON_API_KEY"
DEFAULT_CHANNELS = ("T", "Q")  # trades, quotes


@register
class PolygonConnector(WebsocketConnector):
    """Handshake: server `[{"ev":"status","status":"connected"}]`; we send {"action":"auth","params":KEY};
    server `auth_success` (or `auth_failed`: AuthenticationError, fatal); we send
    {"action":"subscribe","params":"T.AAPL,Q.AAPL,..."}. Status frames are published like any other frame.
    Polygon has no application-level heartbeat: websocket ping/pong only.
    """

    source = "polygon"
    default_url = "wss://socket.polygon.io/stocks"
    url_env = "QP_POLYGON_WS_URL"

    def __init__(self, symbols: Sequence[str], *, channels: Sequence[str] = DEFAULT_CHANNELS, **opts: Any):
        super().__init__(symbols, **opts)
        self._api_key = os.environ.get(ENV_API_KEY, "")
        if not self._api_key:
            raise ConfigError(f"polygon connector: {ENV_API_KEY} is not set")
        self.subscription = ",".join(f"{ch}.{sym.upper()}" for sym in self.symbols for ch in channels)

    async def on_connect(self, ws: ClientConnection) -> None:
        await self._await_status(ws, {"connected"})
        await ws.send(json.dumps({"action": "auth", "params": self._api_key}))
        status, message = await self._await_status(ws, {"auth_success", "auth_failed"})
        if status == "auth_failed":
            raise AuthenticationError(self.source, f"{ENV_API_KEY} was rejected ({message or 'auth_failed'})")
        await ws.send(json.dumps({"action": "subscribe", "params": self.subscription}))

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
