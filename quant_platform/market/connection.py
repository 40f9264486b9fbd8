"""How a long-running tick worker connects to NATS: reconnect forever, one log line per connection event.

Never give up on the server in a worker (the supervisor or the orchestrator decides when it stops), and never
log a traceback per failed attempt: a server that is down for a minute would write hundreds.
"""

from __future__ import annotations

import logging

from quant_platform.market.contracts import server_list

log = logging.getLogger("quant_platform.market.connection")
_connected_once = False


def has_connected() -> bool:
    """True once this process has reached a server: until then a worker has nothing in flight to finish."""
    return _connected_once


async def connect_worker(url: str, name: str, reconnect_wait_s: float = 0.5):
    """A nats-py client for `url` (comma-separated servers of a cluster allowed) that retries the first
    connection and every later one without limit."""
    import nats

    async def on_error(exc: Exception) -> None:
        log.warning("%s: NATS error: %s", name, exc or type(exc).__name__)

    client: list = []

    async def on_disconnected() -> None:
        if client and client[0].is_closed:
            return  # our own close() also reports a disconnect
        log.warning("%s: disconnected from NATS; reconnecting", name)

    async def on_reconnected() -> None:
        log.info("%s: reconnected to NATS", name)

    global _connected_once
    nc = await nats.connect(server_list(url), name=name, max_reconnect_attempts=-1,
                            reconnect_time_wait=reconnect_wait_s, error_cb=on_error,
                            disconnected_cb=on_disconnected, reconnected_cb=on_reconnected)
    client.append(nc)
    _connected_once = True
    return nc
