"""The websocket connector every vendor adapter builds on: connect, handshake, read, hand each frame verbatim
to a sink, reconnect with capped jittered backoff and resubscribe; plus the registry of adapters by name.

Never parse, filter, reorder or rewrite a vendor frame here, and never log a secret or a frame sent to a vendor.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from quant_platform.errors import ConfigError, QuantPlatformError
from quant_platform.market.contracts import RawFrame
from quant_platform.market.vendor_gaps import ConnectionLog

log = logging.getLogger(__name__)

FrameSink = Callable[[RawFrame], Awaitable[None]]
ControlSink = Callable[[dict], Awaitable[None]]


# ------------------------------------------------------------------------------------------------ errors
class ConnectorError(QuantPlatformError):
    """A vendor connection failed in a way the connector understands. `fatal` ones stop run(); others reconnect.
    `persistent` ones fail the same way on every retry with the same configuration (credentials, plan, URL):
    whoever restarts the connector must back off for long and tell a person (supervisor.FatalBackoff)."""

    fatal: ClassVar[bool] = False
    persistent: ClassVar[bool] = False

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source} connector: {reason}")


class HandshakeError(ConnectorError):
    """The vendor did not complete the connect/auth/subscribe exchange as expected (transient: reconnect)."""


class AuthenticationError(ConnectorError):
    """The vendor rejected our credentials. Retrying cannot help, so run() stops instead of looping."""

    fatal = True
    persistent = True


class SubscriptionError(ConnectorError):
    """The vendor refused the subscription (symbol limit, plan, syntax). Fatal: fix the config, then restart."""

    fatal = True
    persistent = True


class VendorRejectedError(ConnectorError):
    """The websocket upgrade was refused with an HTTP 4xx (bad path, geo-block, ...). Fatal."""

    fatal = True
    persistent = True


class SinkError(ConnectorError):
    """The sink raised. Fatal by design (see WebsocketConnector.run), not persistent: NATS comes back, so the
    supervisor restarts the worker at once."""

    fatal = True


# The supervisor names a file here per worker it starts; a connector that stops on a fatal error writes one JSON
# record there ({"source", "error", "reason", "persistent", "at"}), so the supervisor can tell a refused key
# (back off, alert) from a crash (restart at once) without parsing logs.
FATAL_REPORT_ENV = "QP_CONNECTOR_FATAL_FILE"


def report_fatal(source: str, error: str, reason: str, persistent: bool) -> None:
    """Write the fatal-stop record to $QP_CONNECTOR_FATAL_FILE when it is set (atomically; the reason
    redacted). A failure to write is logged, never raised: the error being reported matters more."""
    from quant_platform.platform.redaction import redact

    path = os.environ.get(FATAL_REPORT_ENV, "").strip()
    if not path:
        return
    record = {"source": source, "error": error, "reason": redact(reason)[:500], "persistent": persistent,
              "at": time.time()}
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("%s: cannot write the fatal-stop record to %s: %s", source, path, exc)


# ------------------------------------------------------------------------------------------------ backoff
@dataclass
class Backoff:
    """Exponential backoff with full jitter: attempt n sleeps uniform(0, min(max_delay, initial * factor**n)).

    The attempt count resets once a connection has stayed up `reset_after` seconds.
    """

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    reset_after: float = 30.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempt: int = 0

    def ceiling(self) -> float:
        return min(self.max_delay, self.initial * self.factor ** min(self.attempt, 64))

    def next_delay(self) -> float:
        delay = self.rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class _QuietWireLogger(logging.LoggerAdapter):
    """websockets logs every frame at DEBUG, our auth messages included: never let it, whatever the log level."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


WIRE_LOGGER = _QuietWireLogger(logging.getLogger("quant_platform.market.connectors.wire"), {})


def decode_events(text: str) -> list[dict[str, Any]]:
    """The JSON objects of a control frame (vendors send an array of them, or one); [] if it is not JSON."""
    try:
        doc = json.loads(text)
    except ValueError:
        return []
    items = doc if isinstance(doc, list) else [doc]
    return [e for e in items if isinstance(e, dict)]


# ------------------------------------------------------------------------------------------------ connector
class WebsocketConnector(abc.ABC):
    """One vendor websocket feed. Subclasses set `source`, `default_url`, `url_env` and implement on_connect.

    run(sink, stop) loops connect -> on_connect (auth + subscribe) -> read until the connection ends ->
    backoff -> reconnect (which resubscribes, on_connect runs on every connection) until `stop` is set.
    Every non-empty text frame the vendor sends, handshake frames included (the normaliser ignores control
    frames), reaches the sink as RawFrame(received_at_ns=time.time_ns() at receipt, payload=UTF-8 bytes).
    """

    source: ClassVar[str]
    default_url: ClassVar[str]
    url_env: ClassVar[str | None] = None
    # A vendor-level heartbeat (an application "ping" message), for vendors that require one. Binance,
    # Polygon and Alpaca rely on websocket ping/pong control frames only, so none of ours sets it.
    vendor_heartbeat_interval: ClassVar[float | None] = None

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        url: str | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float = 10.0,
        handshake_timeout: float = 10.0,
        idle_timeout: float | None = None,
        backoff: Backoff | None = None,
        proxy: str | Literal[True] | None = True,
        max_size: int = 2**22,
        max_queue: int = 1024,
        source: str | None = None,
        default_url: str | None = None,
    ):
        if source is not None and source != self.source:
            # A configured source in this vendor's format (instruments.yaml `sources:`): its own name for
            # subjects and records, and its own URL variable (QP_<SOURCE>_WS_URL), not this class's.
            self.source = source  # type: ignore[misc]
            self.url_env = f"QP_{source.upper()}_WS_URL"  # type: ignore[misc]
        self.symbols = [s for s in symbols if s]
        if not self.symbols:
            raise ConfigError(f"{self.source} connector: no symbols to subscribe to")
        env_url = os.environ.get(self.url_env) if self.url_env else None
        self.base_url = (url or env_url or default_url or self.default_url).rstrip("/")
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = open_timeout
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.backoff = backoff or Backoff()
        self.proxy = proxy
        self.max_size = max_size
        self.max_queue = max_queue
        # counters (plain ints, read by the worker's metrics loop)
        self.connects = 0  # websocket connections opened
        self.reconnects = 0  # connection attempts after the first one (each one follows a backoff sleep)
        self.frames = 0  # frames handed to the sink
        self.rejected = 0  # multi-line text frames refused (a raw frame must be one line)
        self.skipped = 0  # empty or binary frames
        self.last_frame_at: int | None = None  # time.time_ns() of the last frame handed to the sink
        self.backoff_delays: collections.deque[float] = collections.deque(maxlen=100)
        self.last_error: str | None = None
        self._sink: FrameSink | None = None
        # When the vendor was lost and regained: each (re)subscribed connection hands its window record to
        # `control_sink` (the worker stores it in TICKS_RAW: vendor_gaps.py). None: not recorded.
        self.control_sink: ControlSink | None = None
        self.connection_log = ConnectionLog()
        self.windows = 0  # window records handed to control_sink

    # -------------------------------------------------------------------------------------- adapter hooks
    @property
    def url(self) -> str:
        """The URL connected to (Binance puts its stream list here; others use the base URL)."""
        return self.base_url

    @abc.abstractmethod
    async def on_connect(self, ws: ClientConnection) -> None:
        """Authenticate and subscribe on a fresh connection; read replies with `await self.receive(ws)`."""

    async def vendor_heartbeat(self, ws: ClientConnection) -> None:
        """Send the vendor's application-level ping (only called when vendor_heartbeat_interval is set)."""
        raise NotImplementedError(f"{self.source} sets vendor_heartbeat_interval but no vendor_heartbeat()")

    def stats(self) -> dict[str, Any]:
        return {"source": self.source, "connects": self.connects, "reconnects": self.reconnects,
                "frames": self.frames, "rejected": self.rejected, "skipped": self.skipped,
                "last_frame_at": self.last_frame_at, "last_error": self.last_error, "windows": self.windows}

    async def report_window(self, **extra: Any) -> None:
        """The connection is subscribed (again): hand its window record (vendor_gaps.ConnectionLog) to
        control_sink. A sink that fails is logged, never fatal: the frames matter more than their bookkeeping."""
        record = self.connection_log.regained(**extra)
        if self.control_sink is None:
            return
        try:
            await self.control_sink(record)
            self.windows += 1
        except Exception as exc:  # noqa: BLE001
            log.error("%s: connection window not recorded (%s: %s)", self.source, type(exc).__name__, exc)

    def __repr__(self) -> str:  # never includes credentials
        return f"<{type(self).__name__} source={self.source} url={self.base_url} symbols={len(self.symbols)}>"

    # -------------------------------------------------------------------------------------- frames
    async def receive(self, ws: ClientConnection) -> str | None:
        """Read one frame, hand it to the sink (stamped at receipt) and return its text (None if binary)."""
        if self.idle_timeout is not None:
            async with asyncio.timeout(self.idle_timeout):
                message = await ws.recv()
        else:
            message = await ws.recv()
        received_at_ns = time.time_ns()
        if not isinstance(message, str):
            # None of our vendors sends binary frames; one would need its own adapter (compression, ...).
            self.skipped += 1
            log.warning("%s: skipped a binary frame of %d bytes", self.source, len(message))
            return None
        # Some feeds end frames with a newline: trimmed. A newline inside a frame cannot be stored as one
        # raw line (contracts.encode_batch), and rewriting it would break "verbatim": refused and counted.
        line = message.strip("\r\n")
        if not line:
            self.skipped += 1
            return message
        if "\n" in line:
            self.rejected += 1
            log.error("%s: refused a multi-line frame of %d chars (a raw frame must be one line)",
                      self.source, len(line))
            return message
        assert self._sink is not None
        try:
            await self._sink(RawFrame(received_at_ns=received_at_ns, payload=line.encode("utf-8")))
        except Exception as exc:
            raise SinkError(self.source, f"the sink raised {type(exc).__name__}: {exc}") from exc
        self.frames += 1
        self.last_frame_at = received_at_ns
        return message

    # -------------------------------------------------------------------------------------- the loop
    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
            "open_timeout": self.open_timeout,
            "close_timeout": 5,
            "max_size": self.max_size,
            "max_queue": self.max_queue,
            "proxy": self.proxy,
            "logger": WIRE_LOGGER,
        }

    async def run(self, sink: FrameSink, stop: asyncio.Event) -> None:
        """Stream until `stop` is set (returns) or a fatal error (raises a fatal ConnectorError).

        Disconnects, timeouts, refused connections and vendor hiccups reconnect with backoff. Bad credentials,
        a refused subscription or an HTTP 4xx upgrade refusal raise at once: retrying cannot fix them.
        A sink exception raises SinkError (logged first): the sink is the durability boundary, so carrying
        on would drop frames silently; stopping makes it visible and the supervisor restarts the worker.
        """
        self._sink = sink
        first = True
        while not stop.is_set():
            if not first:
                self.reconnects += 1
            first = False
            try:
                ws = await connect(self.url, **self._connect_kwargs())
            except InvalidURI as exc:
                report_fatal(self.source, "ConfigError", f"invalid websocket URL {self.base_url!r}", True)
                raise ConfigError(f"{self.source} connector: invalid websocket URL {self.base_url!r}") from exc
            except InvalidStatus as exc:
                status = exc.response.status_code
                if 400 <= status < 500 and status not in (408, 429):
                    err = VendorRejectedError(self.source, f"websocket upgrade refused with HTTP {status}")
                    self._fail(err)
                    raise err from exc
                self._note_error(f"websocket upgrade refused with HTTP {status}")
                if await self._sleep_backoff(stop):
                    return
                continue
            except (OSError, TimeoutError, WebSocketException) as exc:
                self._note_error(f"cannot connect: {type(exc).__name__}: {exc}")
                if await self._sleep_backoff(stop):
                    return
                continue

            self.connects += 1
            connected_at = time.monotonic()
            log.info("%s: connected to %s (connection %d)", self.source, self.base_url, self.connects)
            tasks = [asyncio.create_task(self._close_when_stopped(ws, stop))]
            if self.vendor_heartbeat_interval:
                tasks.append(asyncio.create_task(self._heartbeat(ws)))
            try:
                try:
                    async with asyncio.timeout(self.handshake_timeout):
                        await self.on_connect(ws)
                except TimeoutError:
                    raise HandshakeError(self.source, f"handshake not done within {self.handshake_timeout}s") from None
                await self.report_window()
                while True:
                    await self.receive(ws)
            except ConnectionClosed as exc:
                if stop.is_set():
                    return
                self._note_error(f"connection closed (code {exc.rcvd.code if exc.rcvd else 1006})")
            except TimeoutError:
                if stop.is_set():
                    return
                self._note_error(f"no frame for {self.idle_timeout}s")
            except ConnectorError as exc:
                if exc.fatal:
                    self._fail(exc)
                    raise
                if stop.is_set():
                    return
                self._note_error(exc.reason)
            finally:
                for task in tasks:
                    task.cancel()
                await ws.close()
            if stop.is_set():
                return
            if time.monotonic() - connected_at >= self.backoff.reset_after:
                self.backoff.reset()
            if await self._sleep_backoff(stop):
                return

    def _note_error(self, reason: str) -> None:
        self.last_error = reason
        if self.connection_log.connects:
            self.connection_log.lost(reason, last_frame_ns=self.last_frame_at)
        log.warning("%s: %s; reconnecting", self.source, reason)

    def _fail(self, exc: ConnectorError) -> None:
        self.last_error = exc.reason
        log.error("%s: stopping: %s", self.source, exc.reason)
        report_fatal(self.source, type(exc).__name__, exc.reason, exc.persistent)

    async def _sleep_backoff(self, stop: asyncio.Event) -> bool:
        """Sleep the next backoff delay; True if `stop` was set meanwhile."""
        delay = self.backoff.next_delay()
        self.backoff_delays.append(delay)
        log.info("%s: reconnecting in %.2fs (attempt %d)", self.source, delay, self.backoff.attempt)
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            return False
        return True

    @staticmethod
    async def _close_when_stopped(ws: ClientConnection, stop: asyncio.Event) -> None:
        await stop.wait()
        await ws.close()

    async def _heartbeat(self, ws: ClientConnection) -> None:
        assert self.vendor_heartbeat_interval
        while True:
            await asyncio.sleep(self.vendor_heartbeat_interval)
            try:
                await self.vendor_heartbeat(ws)
            except ConnectionClosed:
                return


# ------------------------------------------------------------------------------------------------ registry
CONNECTORS: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make an adapter buildable by its `source` name."""
    CONNECTORS[cls.source] = cls  # type: ignore[attr-defined]
    return cls


def build_connector(source: str, symbols: Sequence[str], **opts: Any) -> Any:
    """The connector registered as `source`, for `symbols` (venue symbols from the instrument master); a source
    configured in the instrument master's `sources:` gets the connector of its format with its options (url,
    channels, routes): a new feed in a known format is config only."""
    import quant_platform.market.connectors  # noqa: F401 - importing the package registers every adapter

    cls = CONNECTORS.get(source)
    if cls is None:
        from quant_platform.market.instruments import InstrumentMaster

        master = InstrumentMaster.load()
        cls = CONNECTORS.get(master.format_for(source))
        if cls is None or source not in master.sources():
            raise ConfigError(f"unknown market-data source {source!r}; known: "
                              f"{', '.join(sorted(set(CONNECTORS) | set(master.sources())))}")
        configured = master.connector_options(source)
        if "url" in configured:  # the configured host is a default: QP_<SOURCE>_WS_URL or an explicit url wins
            configured["default_url"] = configured.pop("url")
        opts = {**configured, **opts, "source": source}
    return cls(symbols, **opts)
