"""Binance spot combined-stream adapter: the stream list lives in the URL, so reconnecting resubscribes.

Never send credentials to these public streams, and never build a Binance stream name anywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection

from quant_platform.errors import ConfigError
from quant_platform.market.connectors.base import WebsocketConnector, register

DEFAULT_CHANNELS = ("trade", "aggTrade", "bookTicker")
MAX_STREAMS = 1024  # Binance: at most 1024 streams per connection


@register
class BinanceConnector(WebsocketConnector):
    """`<base>/stream?streams=<sym>@<channel>/...`; frames arrive as {"stream": ..., "data": {...}}.

    No auth and no subscribe message. Binance sends websocket pings (and drops a connection that does not
    pong within a minute); the websockets library answers them. Binance also ends every connection after
    24 h: that is a normal close, followed by a reconnect like any other.
    """

    source = "binance"
    default_url = "wss://stream.binance.com:9443"
    url_env = "QP_BINANCE_WS_URL"

    def __init__(self, symbols: Sequence[str], *, channels: Sequence[str] = DEFAULT_CHANNELS, **opts: Any):
        super().__init__(symbols, **opts)
        if not channels:
            raise ConfigError("binance connector: no channels to subscribe to")
        # Binance stream names use lower-case symbols (BTCUSDT -> btcusdt@trade); channel names keep their case.
        self.streams = [f"{sym.lower()}@{ch}" for sym in self.symbols for ch in channels]
        if len(self.streams) > MAX_STREAMS:
            raise ConfigError(f"binance connector: {len(self.streams)} streams > {MAX_STREAMS} per connection")

    @property
    def url(self) -> str:
        return f"{self.base_url}/stream?streams={'/'.join(self.streams)}"

    async def on_connect(self, ws: ClientConnection) -> None:
        """Nothing to send: the URL carries the subscription."""
