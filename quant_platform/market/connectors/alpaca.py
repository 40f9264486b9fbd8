"""Alpaca market data v2 adapter: wait for `connected`, authenticate, subscribe to trades and quotes.

Never take keys from anywhere but QP_ALPACA_KEY_ID/QP_ALPACA_SECRET_KEY, never log them, never retry bad ones.
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
    ConnectorError,
    HandshakeError,
    SubscriptionError,
    WebsocketConnector,
    decode_events,
    register,
)

ENV_KEY_ID = "QP_ALPACA_KEY_ID"
ENV_SECRET_KEY = "QP_ALPACA_SECRET_KEY"

# Alpaca error codes (docs "Real-time Stock Data", errors): what retrying can and cannot fix.
AUTH_FAILED = 402
FATAL_SUBSCRIPTION_CODES = {400, 405, 409, 410}  # invalid syntax, symbol limit, insufficient plan, bad action


@register
class AlpacaConnector(WebsocketConnector):
    """Handshake: server `[{"T":"success","msg":"connected"}]`; we send {"action":"auth","key":..,"secret":..};
    server `authenticated` (or error 402: AuthenticationError, fatal); we send
    {"action":"subscribe","trades":[..],"quotes":[..]}; server echoes `[{"T":"subscription",...}]`.
    Control frames are published like any other frame. Alpaca has no application-level heartbeat.
    """

    source = "alpaca"
    default_url = "wss://stream.data.alpaca.markets/v2/sip"
    url_env = "QP_ALPACA_WS_URL"

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        trades: Sequence[str] | None = None,
        quotes: Sequence[str] | None = None,
        bars: Sequence[str] | None = None,
        **opts: Any,
    ):
        super().__init__(symbols, **opts)
        self._key_id = os.environ.get(ENV_KEY_ID, "")
        self._secret_key = os.environ.get(ENV_SECRET_KEY, "")
        missing = [name for name, value in ((ENV_KEY_ID, self._key_id), (ENV_SECRET_KEY, self._secret_key))
                   if not value]
        if missing:
            raise ConfigError(f"alpaca connector: {' and '.join(missing)} not set")
        self.subscription: dict[str, list[str]] = {
            "trades": list(self.symbols if trades is None else trades),
            "quotes": list(self.symbols if quotes is None else quotes),
        }
        if bars:
            self.subscription["bars"] = list(bars)

    async def on_connect(self, ws: ClientConnection) -> None:
        await self._await(ws, lambda e: e.get("T") == "success" and e.get("msg") == "connected")
        await ws.send(json.dumps({"action": "auth", "key": self._key_id, "secret": self._secret_key}))
        await self._await(ws, lambda e: e.get("T") == "success" and e.get("msg") == "authenticated")
        await ws.send(json.dumps({"action": "subscribe", **self.subscription}))
        await self._await(ws, lambda e: e.get("T") == "subscription")

    async def _await(self, ws: ClientConnection, done) -> dict[str, Any]:
        """Read frames until an event satisfies `done`; an Alpaca error event raises a typed error."""
        while True:
            text = await self.receive(ws)
            for event in decode_events(text or ""):
                if event.get("T") == "error":
                    raise self._error(event)
                if done(event):
                    return event

    def _error(self, event: dict[str, Any]) -> ConnectorError:
        code, msg = event.get("code"), event.get("msg", "")
        if code == AUTH_FAILED:
            return AuthenticationError(self.source, f"{ENV_KEY_ID}/{ENV_SECRET_KEY} were rejected ({code} {msg})")
        if code in FATAL_SUBSCRIPTION_CODES:
            return SubscriptionError(self.source, f"subscription refused ({code} {msg})")
        # 401/403/404 auth sequencing, 406 connection limit (often our previous socket), 407 slow client, 500.
        return HandshakeError(self.source, f"vendor error {code} {msg}")
