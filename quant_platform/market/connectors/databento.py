"""Databento: the live connector (the vendor's Live client, GLBX.MDP3 `trades` + `mbp-1` by default, with an
intraday replay from the last record received after a lost session) and the DBN file reader behind
`ingest replay --source databento FILE.dbn[.zst]`; both cut the DBN stream into raw frames.

Never decode, filter or rewrite a record here (records travel as the vendor's bytes), never take the API key
from anywhere but QP_DATABENTO_API_KEY, never log it, and never retry a refused key.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quant_platform.errors import ConfigError, ReportParseError
from quant_platform.market.adapters.databento import dbn_parts, encode_frame
from quant_platform.market.connectors.base import (
    AuthenticationError,
    Backoff,
    ConnectorError,
    FrameSink,
    SinkError,
    register,
    report_fatal,
)
from quant_platform.market.contracts import RawFrame
from quant_platform.market.vendor_gaps import ConnectionLog

log = logging.getLogger(__name__)

ENV_API_KEY = "QP_DATABENTO_API_KEY"
ENV_GATEWAY = "QP_DATABENTO_GATEWAY"  # host[:port]: a local gateway in tests; unset = Databento's own for the dataset
DEFAULT_DATASET = "GLBX.MDP3"
# trades are the trades; mbp-1 the top of book (its trade actions are not counted again: adapters/databento.py).
DEFAULT_SCHEMAS = ("trades", "mbp-1")
FRAME_RECORDS = 256  # records per raw frame at most: a frame is all or nothing at the normaliser
_RTYPE_SYMBOL_MAPPING = 0x16
# Not market events: instrument definitions, errors, symbol mappings, system messages (heartbeats, acks). Their
# ts_event is the gateway's clock, so they never set where an intraday replay starts.
_RTYPE_NOT_EVENTS = (0x13, 0x15, 0x16, 0x17)
_HEAD = struct.Struct("<BBHI")  # record header: length/4, rtype, publisher_id, instrument_id
_TS_EVENT = struct.Struct("<Q")  # the header's ts_event, at offset 8 (a header field: the record is not decoded)
# Intraday replay (databento.Live.subscribe(start=...)): after a lost session the connector subscribes again from the
# ts_event of the last market record it received, so the records of the window are sent again (the first ones
# twice: the same event ids, removed by compaction). Databento replays up to 24 hours; older is not asked for.
DEFAULT_HEARTBEAT_S = 30  # the gateway's default heartbeat interval
ENV_REPLAY = "QP_DATABENTO_REPLAY_ON_RECONNECT"  # "0" turns it off
REPLAY_LIMIT_NS = 24 * 3600 * 10**9


# ------------------------------------------------------------------------------------------------ files
def read_dbn(path: Path) -> bytes:
    """The DBN bytes of a .dbn or .dbn.zst file (zstd frames decompressed; nothing else touched)."""
    data = Path(path).read_bytes()
    if data[:4] == b"\x28\xb5\x2f\xfd":  # the zstd frame magic
        import zstandard

        data = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()
    return data


def dbn_file_frames(path: Path, max_records: int = FRAME_RECORDS) -> list[bytes]:
    """Raw frame payloads of a DBN file: each the file's metadata followed by up to `max_records` of its
    records, in file order, base64 encoded (adapters/databento.py reads them back)."""
    try:
        meta, records = dbn_parts(read_dbn(path))
    except ValueError as exc:
        raise ReportParseError(str(path), 0, f"not a DBN file: {exc}") from None
    except Exception as exc:  # zstd errors
        raise ReportParseError(str(path), 0, f"cannot be decompressed: {type(exc).__name__}: {exc}") from None
    return [encode_frame(meta, records[i:i + max_records]) for i in range(0, len(records), max_records)]


# ------------------------------------------------------------------------------------------------ live
class _Tap(io.RawIOBase):
    """The writable stream handed to Live.add_stream: the client writes the session's metadata, then every record
    as bytes, from its own thread; each write lands in an asyncio queue of the connector's loop with its receipt
    time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue):
        super().__init__()
        self._loop, self._queue = loop, queue
        self.__name__ = "qp-databento-tap"

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (time.time_ns(), bytes(data)))
        return len(data)


@register
class DatabentoConnector:
    """Streams GLBX.MDP3 through databento.Live: one session, one subscription per schema and symbology
    (parent symbols such as CL.FUT for the master's futures roots, or raw symbols such as CLZ6), records cut into
    frames of the session's metadata + the symbol mappings the frame's instruments need + up to FRAME_RECORDS
    records, all as the vendor sent them. A closed session reconnects with backoff; a refused key stops."""

    source = "databento"

    def __init__(self, symbols: Sequence[str] = (), *, dataset: str = DEFAULT_DATASET,
                 schemas: Sequence[str] = DEFAULT_SCHEMAS, gateway: str | None = None,
                 backoff: Backoff | None = None, max_records: int = FRAME_RECORDS,
                 heartbeat_interval_s: int | None = None, master: Any = None, idle_timeout_s: float | None = None):
        self._api_key = os.environ.get(ENV_API_KEY, "")
        if not self._api_key:
            raise ConfigError(f"databento connector: {ENV_API_KEY} is not set")
        gateway = gateway or os.environ.get(ENV_GATEWAY, "").strip() or None
        self.gateway, self.port = None, 13000
        if gateway:
            host, _, port = gateway.rpartition(":") if ":" in gateway else (gateway, "", "13000")
            self.gateway, self.port = host, int(port)
        symbols = [s for s in symbols if s]
        if not symbols:
            if master is None:
                from quant_platform.market.instruments import InstrumentMaster

                master = InstrumentMaster.load()
            symbols = [f"{fr.root}.FUT" for fr in master.futures_roots(self.source)]
        self.symbols = symbols
        groups: dict[str, list[str]] = {}
        for sym in symbols:  # Databento's symbologies: parent (CL.FUT), continuous (CL.c.0), raw (CLZ6)
            stype = "parent" if sym.endswith((".FUT", ".OPT")) else "continuous" if ".c." in sym or ".n." in sym \
                else "raw_symbol"
            groups.setdefault(stype, []).append(sym)
        if not groups:
            raise ConfigError("databento connector: no symbols and no futures roots for source 'databento'")
        self.subscriptions = [(schema, stype, syms) for schema in schemas for stype, syms in groups.items()]
        self.dataset = dataset
        self.backoff = backoff or Backoff()
        self.max_records = max_records
        self.heartbeat_interval_s = heartbeat_interval_s
        # The gateway sends a heartbeat record after heartbeat_interval_s without data (its default is 30 s); the
        # Live client itself never times out on a silent socket, so a session with nothing for this long is ended
        # here and a new one started (with an intraday replay from where it stopped).
        self.idle_timeout_s = idle_timeout_s or 2 * (heartbeat_interval_s or DEFAULT_HEARTBEAT_S) + 10
        self.connects = self.reconnects = self.frames = self.records = 0
        self.rejected = self.skipped = 0
        self.last_error: str | None = None
        self.last_frame_at: int | None = None
        self.backoff_delays: list[float] = []
        self.control_sink = None  # see WebsocketConnector.control_sink
        self.connection_log = ConnectionLog()
        self.windows = 0
        self.replay = os.environ.get(ENV_REPLAY, "1").strip() != "0"
        self.last_ts_event: int | None = None  # of the last market record received (the replay point)
        self.replays = 0  # sessions started with an intraday replay
        self.replay_limit_ns = REPLAY_LIMIT_NS  # how far back the gateway replays
        self._replay_refused = False

    def stats(self) -> dict[str, Any]:
        return {"source": self.source, "connects": self.connects, "reconnects": self.reconnects,
                "frames": self.frames, "records": self.records, "last_error": self.last_error,
                "windows": self.windows, "replays": self.replays}

    def replay_from(self, now_ns: int | None = None) -> int | None:
        """Where the next session's intraday replay starts: the last market record's ts_event, when a session
        was lost (not at the process's first one), replay is on, and it is within Databento's 24 hours."""
        if not self.replay or self._replay_refused or not self.connects or self.last_ts_event is None:
            return None
        now = now_ns or time.time_ns()
        return self.last_ts_event if now - self.last_ts_event < self.replay_limit_ns else None

    def __repr__(self) -> str:  # never includes the key
        return f"<DatabentoConnector {self.dataset} subscriptions={len(self.subscriptions)}>"

    # ------------------------------------------------------------------------------------------ one session
    def _client(self):
        import databento as db

        kwargs: dict[str, Any] = {"key": self._api_key, "heartbeat_interval_s": self.heartbeat_interval_s}
        if self.gateway:
            kwargs.update(gateway=self.gateway, port=self.port)
        return db.Live(**kwargs)

    def _start(self, client, start: int | None = None) -> None:
        """Subscribe (from `start`, ns, for an intraday replay) and start (blocking: the client connects and
        authenticates on its own loop thread)."""
        for schema, stype, syms in self.subscriptions:
            client.subscribe(dataset=self.dataset, schema=schema, stype_in=stype, symbols=syms, start=start)
        client.start()

    async def _session(self, sink: FrameSink, stop: asyncio.Event) -> None:
        from databento.common.error import BentoError

        queue: asyncio.Queue = asyncio.Queue()
        client = self._client()
        client.add_stream(_Tap(asyncio.get_running_loop(), queue))
        start = self.replay_from()
        try:
            await asyncio.to_thread(self._start, client, start)
        except (BentoError, ValueError) as exc:
            text = str(exc)
            if "authentication failed" in text.lower() or "api key" in text.lower():
                raise AuthenticationError(self.source, f"{ENV_API_KEY} was rejected ({text[:200]})") from None
            if start is not None:  # the replay may be what was refused: the next session subscribes live only
                self._replay_refused = True
            raise ConnectorError(self.source, f"cannot start a session: {text[:200]}") from None
        self.connects += 1
        self._replay_refused = False
        if start is not None:
            self.replays += 1
        log.info("%s: session started (connection %d%s)", self.source, self.connects,
                 f", intraday replay from ts_event {start}" if start is not None else "")
        record = self.connection_log.regained(replay_from_ns=start)
        if self.control_sink is not None:
            try:
                await self.control_sink(record)
                self.windows += 1
            except Exception as exc:  # noqa: BLE001 - bookkeeping, never fatal
                log.error("%s: connection window not recorded (%s)", self.source, exc)
        closed = asyncio.ensure_future(client.wait_for_close())
        stopped = asyncio.ensure_future(stop.wait())
        meta: bytes | None = None
        mappings: dict[int, bytes] = {}
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, closed, stopped}, return_when=asyncio.FIRST_COMPLETED,
                                             timeout=self.idle_timeout_s)
                if not done:
                    getter.cancel()
                    raise ConnectorError(self.source, f"no record or heartbeat for {self.idle_timeout_s:.0f}s")
                if getter not in done:
                    getter.cancel()
                    break
                items = [getter.result()]
                while not queue.empty() and len(items) < self.max_records:
                    items.append(queue.get_nowait())
                meta = await self._emit(sink, items, meta, mappings)
            # what the client wrote before the session ended still goes out
            rest = []
            while not queue.empty():
                rest.append(queue.get_nowait())
            for i in range(0, len(rest), self.max_records):
                meta = await self._emit(sink, rest[i:i + self.max_records], meta, mappings)
        finally:
            stopped.cancel()
            if not closed.done():
                try:
                    client.stop()
                except Exception:  # noqa: BLE001 - already closing
                    pass
                try:
                    await asyncio.wait_for(asyncio.shield(closed), timeout=5)
                except (TimeoutError, Exception):  # noqa: BLE001
                    client.terminate()
            if closed.done() and not closed.cancelled() and closed.exception() is not None:
                self.last_error = f"session closed: {closed.exception()}"

    async def _emit(self, sink: FrameSink, items: list[tuple[int, bytes]], meta: bytes | None,
                    mappings: dict[int, bytes]) -> bytes | None:
        records: list[bytes] = []
        received = items[-1][0]
        for _, data in items:
            if data[:3] == b"DBN":
                meta = data  # a session's metadata header comes first
                continue
            records.append(data)
            length, rtype, _, iid = _HEAD.unpack_from(data)
            if rtype == _RTYPE_SYMBOL_MAPPING:
                mappings[iid] = data
            elif rtype not in _RTYPE_NOT_EVENTS and len(data) >= 16:
                ts_event = _TS_EVENT.unpack_from(data, 8)[0]
                if self.last_ts_event is None or ts_event > self.last_ts_event:
                    self.last_ts_event = ts_event
        if not records:
            return meta
        if meta is None:
            self.skipped += len(records)
            log.error("%s: %d records before any metadata: skipped", self.source, len(records))
            return meta
        # Each frame decodes alone (a normaliser sees one frame, the DLQ keeps one): the mapping records of its
        # instruments, sent once per session by the gateway, are repeated in front of the frame's records.
        in_frame = {_HEAD.unpack_from(r)[3] for r in records}
        own = {_HEAD.unpack_from(r)[3] for r in records if r[1] == _RTYPE_SYMBOL_MAPPING}
        prefix = [mappings[i] for i in sorted(in_frame - own) if i in mappings]
        try:
            await sink(RawFrame(received_at_ns=received, payload=encode_frame(meta, prefix + records)))
        except Exception as exc:
            raise SinkError(self.source, f"the sink raised {type(exc).__name__}: {exc}") from exc
        self.frames += 1
        self.records += len(records)
        self.last_frame_at = received
        return meta

    # ------------------------------------------------------------------------------------------ the loop
    async def run(self, sink: FrameSink, stop: asyncio.Event) -> None:
        """Stream until `stop` is set; reconnect with backoff when a session ends or cannot start; a refused key
        raises AuthenticationError (fatal, persistent) and a failing sink SinkError."""
        first = True
        while not stop.is_set():
            if not first:
                self.reconnects += 1
            first = False
            started = time.monotonic()
            try:
                await self._session(sink, stop)
            except ConnectorError as exc:
                if exc.fatal:
                    self.last_error = exc.reason
                    log.error("%s: stopping: %s", self.source, exc.reason)
                    report_fatal(self.source, type(exc).__name__, exc.reason, exc.persistent)
                    raise
                self.last_error = exc.reason
                log.warning("%s: %s; reconnecting", self.source, exc.reason)
            if stop.is_set():
                return
            if self.connects:
                self.connection_log.lost(self.last_error or "session ended", last_frame_ns=self.last_frame_at)
            if time.monotonic() - started >= self.backoff.reset_after:
                self.backoff.reset()
            delay = self.backoff.next_delay()
            self.backoff_delays.append(delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                continue
