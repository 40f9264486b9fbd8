"""How a tick-pipeline process connects to NATS: reconnect forever, one log line per connection event, and the
reply-inbox prefix of its NATS user, so the server can confine each user to its own inboxes.

Never give up on the server in a worker (the supervisor or the orchestrator decides when it stops), never log a
traceback per failed attempt (a server down for a minute would write hundreds), and never log a URL with its
password.

Inbox prefix: QP_NATS_INBOX_PREFIX when set, else `_INBOX_<user>` for a URL with a user
(nats://normalizer:...@host -> `_INBOX_normalizer`), else nats-py's `_INBOX`. The production servers
(docker/nats/nats-server.conf) let each user subscribe only to `_INBOX_<user>.>`.

TLS: a `tls://` URL (or a server that requires TLS) is verified against the system's CAs, or against a private CA
given as QP_NATS_CA_FILE (a PEM file) or QP_NATS_CA_PEM (the PEM text, e.g. from a Kubernetes Secret key).
"""

from __future__ import annotations

import logging
import os
import re
import ssl
from urllib.parse import unquote, urlsplit

from quant_platform.errors import ConfigError
from quant_platform.market.contracts import server_list

log = logging.getLogger("quant_platform.market.connection")
_connected_once = False
INBOX_PREFIX_ENV = "QP_NATS_INBOX_PREFIX"
CA_FILE_ENV = "QP_NATS_CA_FILE"
CA_PEM_ENV = "QP_NATS_CA_PEM"
DEFAULT_INBOX_PREFIX = "_INBOX"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def has_connected() -> bool:
    """True once this process has reached a server: until then a worker has nothing in flight to finish."""
    return _connected_once


def url_user(url: str) -> str | None:
    """The user name in the first server URL of `url` (None without one)."""
    first = server_list(url)[0]
    parts = urlsplit(first if "://" in first else f"nats://{first}")
    return unquote(parts.username) if parts.username else None


def inbox_prefix(url: str) -> str:
    """QP_NATS_INBOX_PREFIX, else `_INBOX_<user of the URL>`, else `_INBOX`. ConfigError when the prefix would
    not be a subject token (a user name with dots or spaces needs QP_NATS_INBOX_PREFIX)."""
    prefix = os.environ.get(INBOX_PREFIX_ENV, "").strip()
    if not prefix:
        user = url_user(url)
        if not user:
            return DEFAULT_INBOX_PREFIX
        prefix = f"{DEFAULT_INBOX_PREFIX}_{user}"
    if not _TOKEN.match(prefix):
        raise ConfigError(f"NATS inbox prefix {prefix!r} is not one subject token of [A-Za-z0-9_-]; set "
                          f"{INBOX_PREFIX_ENV}")
    return prefix


def tls_context() -> ssl.SSLContext | None:
    """A client TLS context trusting QP_NATS_CA_FILE / QP_NATS_CA_PEM, None when neither is set (nats-py then uses
    the system's CAs for a tls:// URL)."""
    cafile = os.environ.get(CA_FILE_ENV, "").strip() or None
    cadata = os.environ.get(CA_PEM_ENV, "").strip() or None
    if not cafile and not cadata:
        return None
    try:
        return ssl.create_default_context(cafile=cafile, cadata=cadata)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"NATS CA from {CA_FILE_ENV if cafile else CA_PEM_ENV} is unusable: {exc}") from None


def connect_options(url: str) -> dict:
    """Keyword arguments every quant_platform NATS client passes to nats.connect: the servers, the inbox prefix
    and, with a private CA configured, the TLS context."""
    opts: dict = {"servers": server_list(url), "inbox_prefix": inbox_prefix(url)}
    ctx = tls_context()
    if ctx is not None:
        opts["tls"] = ctx
    return opts


# The client's idle heartbeat: a PING every PING_INTERVAL_S, and the connection is declared dead (then reconnected)
# when MAX_OUTSTANDING_PINGS go unanswered: a worker whose server vanished without a FIN (a host gone, a network
# partition) notices within ~30 s instead of nats-py's default 2 min x 2 pings, while its pull fetches time out.
PING_INTERVAL_S = 10
MAX_OUTSTANDING_PINGS = 3


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
    nc = await nats.connect(**connect_options(url), name=name, max_reconnect_attempts=-1,
                            reconnect_time_wait=reconnect_wait_s, error_cb=on_error,
                            disconnected_cb=on_disconnected, reconnected_cb=on_reconnected,
                            ping_interval=PING_INTERVAL_S, max_outstanding_pings=MAX_OUTSTANDING_PINGS)
    client.append(nc)
    _connected_once = True
    return nc


# A pull consumer whose leader was on a server that died answers every fetch with 503 (no responders) until its
# remaining replicas elect another leader: nats-server's followers wait 4-9 s before they campaign, and a split
# vote costs another round. Fetches that keep failing longer than RESUBSCRIBE_AFTER_S are no election any more (the
# consumer was deleted, or the subscription's inbox was lost): the worker declares its consumer again and makes a
# new pull subscription, and does so again every RESUBSCRIBE_AFTER_S while fetches fail.
RESUBSCRIBE_AFTER_S = 20.0
FAILURE_LOG_EVERY_S = 10.0


def fetch_failure_reason(exc: BaseException) -> str:
    """Why a fetch failed, in words an operator can act on."""
    import nats.errors
    from nats.js.errors import ServiceUnavailableError

    if isinstance(exc, ServiceUnavailableError):
        return ("no server answers for the consumer (503): the server that led it is gone and its replicas are "
                "electing another leader, or the consumer was deleted")
    if isinstance(exc, (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                        nats.errors.StaleConnectionError)):
        return f"the connection to NATS is down ({type(exc).__name__})"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


# What one pull of TICKS may bring into memory. A TICKS message holds a fetched set of a source (up to 4 MiB,
# normalizer.MAX_TICKS_MESSAGE_BYTES): 512 of them at once would be 2 GiB. nats-py's fetch takes a count only.
FETCH_MAX_BYTES = 64 * 1024 * 1024


class FetchSizer:
    """How many messages to ask for in the next fetch: at most `batch`, and about `max_bytes` at the mean size
    of the messages seen lately (a moving average, so a burst of large messages lowers it within a few fetches)."""

    def __init__(self, batch: int, max_bytes: int = FETCH_MAX_BYTES):
        self.batch, self.max_bytes = batch, max_bytes
        self.mean_bytes = 0.0

    def count(self) -> int:
        if self.mean_bytes <= 0:
            return self.batch
        return max(1, min(self.batch, int(self.max_bytes // self.mean_bytes)))

    def seen(self, msgs: list) -> None:
        if msgs:
            size = sum(len(m.data) for m in msgs) / len(msgs)
            self.mean_bytes = size if self.mean_bytes <= 0 else 0.5 * self.mean_bytes + 0.5 * size


class FetchHealth:
    """The fetch loop's failure bookkeeping: one warning with the reason when fetches start failing, one every
    FAILURE_LOG_EVERY_S while they keep failing, one line when they work again, and `failed()` returns True
    every `resubscribe_after_s` of continuous failure (the caller then re-creates its pull subscription)."""

    def __init__(self, name: str, consumer: str, resubscribe_after_s: float = RESUBSCRIBE_AFTER_S):
        self.name, self.consumer, self.resubscribe_after_s = name, consumer, resubscribe_after_s
        self.failing_since: float | None = None
        self.failures = 0
        self.resubscribes = 0  # in this process's life
        self._last_log = self._last_resubscribe = 0.0

    def failed(self, exc: BaseException) -> bool:
        import time

        now = time.monotonic()
        reason = fetch_failure_reason(exc)
        if self.failing_since is None:
            self.failing_since = self._last_log = self._last_resubscribe = now
            self.failures = 0
            log.warning("%s: fetch from consumer %s failed: %s; retrying", self.name, self.consumer, reason)
        elif now - self._last_log >= FAILURE_LOG_EVERY_S:
            self._last_log = now
            log.warning("%s: fetch from consumer %s still failing after %.1fs (%d attempts): %s", self.name,
                        self.consumer, now - self.failing_since, self.failures + 1, reason)
        self.failures += 1
        if now - self._last_resubscribe >= self.resubscribe_after_s:
            self._last_resubscribe = now
            return True
        return False

    def ok(self) -> None:
        """A fetch got an answer (messages, or an idle timeout on a connected client)."""
        if self.failing_since is None:
            return
        import time

        log.info("%s: fetch from consumer %s answered again after %.1fs (%d failed attempts)", self.name,
                    self.consumer, time.monotonic() - self.failing_since, self.failures)
        self.failing_since = None


async def replace_subscription(sub, health: FetchHealth, make):
    """The new pull subscription `await make()` returns, the old one unsubscribed; the old one (and a log line) when
    making it fails, so the fetch loop goes on and tries again after the next bound."""
    try:
        new = await make()
    except Exception as exc:
        log.warning("%s: re-creating the pull subscription on %s failed (%s); retrying later", health.name,
                    health.consumer, fetch_failure_reason(exc))
        return sub
    health.resubscribes += 1
    try:
        await sub.unsubscribe()
    except Exception:  # noqa: S110 - the old inbox may be gone with its connection already
        pass
    return new


async def resubscribe(js, sub, subject: str, durable: str, stream: str, health: FetchHealth):
    """Declare the streams and consumers again (a deleted consumer comes back with its declared settings) and
    return a new pull subscription on `durable`, the old one unsubscribed; the old one when that fails."""
    from quant_platform.market.streams import ensure_streams

    log.warning("%s: fetches from consumer %s have failed for %.1fs; declaring it again and re-creating the pull "
                "subscription", health.name, durable, health.resubscribe_after_s)

    async def make():
        await ensure_streams(js)
        return await js.pull_subscribe(subject, durable=durable, stream=stream)

    return await replace_subscription(sub, health, make)
