"""Market-data connectors: one small adapter per vendor websocket (plus capture replay and the simulator),
each handing every frame verbatim to an async sink; adapters are registered by source name.

Never parse or normalise a frame in a connector: that is the normaliser's job, downstream of TICKS_RAW.
"""

from quant_platform.market.connectors.alpaca import AlpacaConnector
from quant_platform.market.connectors.base import (
    CONNECTORS,
    AuthenticationError,
    Backoff,
    ConnectorError,
    FrameSink,
    HandshakeError,
    SinkError,
    SubscriptionError,
    VendorRejectedError,
    WebsocketConnector,
    build_connector,
    register,
)
from quant_platform.market.connectors.binance import BinanceConnector
from quant_platform.market.connectors.databento import DatabentoConnector
from quant_platform.market.connectors.polygon import PolygonConnector
from quant_platform.market.connectors.replay import read_capture, replay_capture
from quant_platform.market.connectors.simulator import MarketSimulator

__all__ = [
    "CONNECTORS",
    "AlpacaConnector",
    "AuthenticationError",
    "Backoff",
    "BinanceConnector",
    "ConnectorError",
    "DatabentoConnector",
    "FrameSink",
    "HandshakeError",
    "MarketSimulator",
    "PolygonConnector",
    "SinkError",
    "SubscriptionError",
    "VendorRejectedError",
    "WebsocketConnector",
    "build_connector",
    "read_capture",
    "register",
    "replay_capture",
]
