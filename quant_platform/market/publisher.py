"""Connectors' path into JetStream: vendor frames batched into TICKS_RAW, each batch kept until the server acks it.

Never drop or forget a batch before its ack (resend the same bytes with the same Nats-Msg-Id instead), and never
hold nats-py publish_async futures (they never resolve on error acks and cause GC pauses; NATS_NOTES.md).

Pipelining: one wildcard reply-inbox subscription, replies `<inbox>.<batch_no>`, a bounded window of in-flight
batches and our own per-batch deadline. On timeout, error ack, no responders or a failed publish the batch is
resent unchanged; JetStream's duplicate window (2 min, streams.py) turns a resend of a stored batch into an ack
with duplicate=true, so retrying is safe. After a reconnect, batches sent on the old connection are resent at
once. The server acks only after fsync (`sync_interval: always`, nats_server.py) or an R3 quorum.

A full TICKS_RAW (`discard: new` at its max_bytes, streams.py) answers "maximum bytes exceeded" (503): the batch is
kept and resent with backoff until the stream has room (counted in `stream_full`, logged at most every 10 s),
so a connector's frames are never dropped; add() blocks once the window is full.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass

import nats.errors
import numpy as np
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError, ServiceUnavailableError
from nats.js.manager import JetStreamManager

from quant_platform.errors import QuantPlatformError
from quant_platform.market.contracts import (
    HDR_FORMAT,
    HDR_FRAMES,
    HDR_SOURCE,
    RAW_FORMAT,
    RawFrame,
    batch_msg_id,
    encode_batch,
    raw_subject,
)

log = logging.getLogger(__name__)
MSG_ID = "Nats-Msg-Id"
ERR_STREAM_FULL = 10077  # JetStream: "maximum bytes exceeded" (a discard-new stream at its max_bytes)
STREAM_FULL_LOG_EVERY_S = 10.0
_SOURCE_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class PublishError(QuantPlatformError):
    """A batch could not be stored (a permanent error ack, a closed connection, a bad argument)."""


class NoStreamForSubjectError(PublishError):
    """No JetStream stream captures the subject: declare the streams first (streams.ensure_streams)."""


class PublishTimeoutError(PublishError):
    """close()/wait_acked() gave up with batches still unacknowledged; they were not confirmed stored."""

    def __init__(self, pending_batches: int, pending_frames: int, timeout: float):
        self.pending_batches = pending_batches
        self.pending_frames = pending_frames
        super().__init__(f"{pending_batches} batches ({pending_frames} frames) still unacknowledged "
                         f"after {timeout:.1f}s")


# ------------------------------------------------------------------------------------------- latency
class LatencyHistogram:
    """Fixed-size log-linear histogram of non-negative ns values (8 sub-buckets per power of two, so a
    percentile is within 6.25% of the truth); O(1) memory whatever the number of samples."""

    SUB_BITS = 3
    SUB = 1 << SUB_BITS  # 8

    def __init__(self) -> None:
        self.counts = [0] * (64 * self.SUB)
        self.count = 0
        self.total = 0
        self.max = 0

    @classmethod
    def _index(cls, v: int) -> int:
        if v < 2 * cls.SUB:
            return v if v > 0 else 0
        shift = v.bit_length() - cls.SUB_BITS - 1
        return shift * cls.SUB + (v >> shift)

    @classmethod
    def _bounds(cls, i: int) -> tuple[int, int]:
        if i < 2 * cls.SUB:
            return i, i
        shift = i // cls.SUB - 1
        m = i % cls.SUB + cls.SUB
        return m << shift, ((m + 1) << shift) - 1

    def record(self, v: int) -> None:
        self.counts[self._index(v)] += 1
        self.count += 1
        self.total += v
        if v > self.max:
            self.max = v

    def record_since(self, now: int, starts: Iterable[int]) -> None:
        """Record now - t for every t (negative -> 0), vectorised: one call per acked batch."""
        v = now - np.fromiter(starts, dtype=np.int64)
        if not v.size:
            return
        np.maximum(v, 0, out=v)
        idx = v.copy()
        big = v >= 2 * self.SUB
        if big.any():
            b = v[big]
            # bit_length of each value (exact below 2**53 ns, i.e. 104 days): frexp's exponent
            shift = np.frexp(b.astype(np.float64))[1].astype(np.int64) - self.SUB_BITS - 1
            idx[big] = shift * self.SUB + (b >> shift)
        counts = np.bincount(idx, minlength=len(self.counts))
        for i in np.flatnonzero(counts):
            self.counts[i] += int(counts[i])
        self.count += int(v.size)
        self.total += int(v.sum())
        top = int(v.max())
        if top > self.max:
            self.max = top

    def percentile(self, q: float) -> int:
        """The q-th percentile (0-100) in ns: the midpoint of its bucket, capped at the maximum seen."""
        if not self.count:
            return 0
        rank = max(1, math.ceil(q / 100 * self.count))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                lo, hi = self._bounds(i)
                return min((lo + hi) // 2, self.max)
        return self.max

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def merge(self, other: LatencyHistogram) -> None:
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def summary(self) -> dict[str, float]:
        return {"count": self.count, "p50_ns": self.percentile(50), "p90_ns": self.percentile(90),
                "p99_ns": self.percentile(99), "max_ns": self.max, "mean_ns": round(self.mean)}


# ------------------------------------------------------------------------------------------- publisher
@dataclass(slots=True)
class _Batch:
    no: int
    reply: str
    data: bytes
    headers: dict[str, str]
    frames: int
    added_ns: list[int]  # perf_counter_ns when each frame reached add(): receipt -> ack latency
    deadline: float = 0.0
    sends: int = 0
    error_acks: int = 0
    epoch: int = -1  # the connection (reconnect count) of the last send made while connected


class RawPublisher:
    """Batches RawFrames to contracts.raw_subject(source) with Nats-Msg-Id = batch_msg_id(source,
    connection_id, batch_no). `connection_id` must be unique per publisher lifetime (batch numbers restart at
    `first_batch_no`): reusing one within the 2-minute duplicate window would drop new batches as duplicates.

    Every batch stays in memory until JetStream acks it (durable on disk), at most `window` batches in flight;
    add() waits when the window is full (backpressure to the connector). Counters are plain attributes;
    `latency` is a LatencyHistogram of add() -> ack per frame in ns.
    """

    def __init__(self, conn: NATS | JetStreamManager, source: str, connection_id: str, max_frames: int = 500,
                 max_delay_s: float = 0.005, window: int = 256, ack_timeout_s: float = 2.0, *,
                 max_batch_bytes: int = 1024 * 1024, max_error_acks: int = 10, first_batch_no: int = 0,
                 check_stream: bool = True, eager_inflight: int = 0):
        if not _SOURCE_RE.match(source):
            raise PublishError(f"source must be one subject token of [A-Za-z0-9_-], got {source!r}")
        if not connection_id or any(c in connection_id for c in " \r\n\t"):
            raise PublishError(f"connection_id must be a non-empty token, got {connection_id!r}")
        if max_frames < 1 or window < 1 or max_delay_s <= 0 or ack_timeout_s <= 0:
            raise PublishError("max_frames and window must be >= 1, max_delay_s and ack_timeout_s > 0")
        if eager_inflight < 0:
            raise PublishError("eager_inflight must be >= 0")
        self._nc: NATS = conn if isinstance(conn, NATS) else conn._nc
        self.source = source
        self.connection_id = connection_id
        self.subject = raw_subject(source)
        self.max_frames = max_frames
        self.max_delay_s = max_delay_s
        self.window = window
        self.ack_timeout_s = ack_timeout_s
        self.max_batch_bytes = max_batch_bytes
        self.max_error_acks = max_error_acks
        self.check_stream = check_stream
        # Adaptive batching: while fewer than `eager_inflight` batches await their ack, a frame goes out at once
        # (and an ack that leaves the pipe idle sends what waited meanwhile), so at low rates a frame waits one
        # round trip at most instead of max_delay_s; under load batches fill up as before. It trades CPU for
        # latency: at moderate rates it sends several times more (smaller) messages. 0 (default) turns it off.
        self.eager_inflight = eager_inflight
        self._eager_task: asyncio.Task | None = None

        # metrics
        self.batches_sent = 0  # distinct batches published (resends not counted)
        self.frames_sent = 0
        self.bytes_sent = 0
        self.acks = 0  # batches confirmed stored (each batch once)
        self.frames_acked = 0
        self.resends = 0  # every re-publication of an already sent batch
        self.timeouts = 0  # resends caused by the ack deadline
        self.error_acks = 0  # error replies (JetStream error JSON or 503 no responders)
        self.duplicates = 0  # acks with duplicate=true (the stored copy was an earlier send)
        self.late_acks = 0  # replies for batches already acked (the answer to a resend)
        self.stream_full = 0  # error acks "maximum bytes exceeded": the stream is full, the batch is kept
        self._stream_full_logged = 0.0
        self.reconnects_seen = 0
        self.last_seq = 0
        self.latency = LatencyHistogram()
        # Optional callback(seconds, frames) per acked batch, with the latency of the batch's oldest frame
        # (an upper bound for its frames): one call per batch keeps Prometheus off the per-frame path.
        self.ack_observer: Callable[[float, int], None] | None = None

        self._next_no = first_batch_no
        self._buf: list[RawFrame] = []
        self._buf_ns: list[int] = []
        self._buf_bytes = 0
        self._buf_t0 = 0.0
        self._buf_event = asyncio.Event()
        self._inflight: dict[int, _Batch] = {}
        self._space = asyncio.Event()
        self._space.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._lock = asyncio.Lock()
        self._error: BaseException | None = None
        self._inbox = ""
        self._sub = None
        self._tasks: list[asyncio.Task] = []
        self._started = False
        self._closed = False
        self._epoch = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> RawPublisher:
        if self._started:
            return self
        if self._closed:
            raise PublishError("publisher is closed")
        if self.check_stream:
            try:
                await JetStreamManager(self._nc).find_stream_name_by_subject(self.subject)
            except NotFoundError as exc:
                raise NoStreamForSubjectError(
                    f"no JetStream stream captures {self.subject}; run streams.ensure_streams first") from exc
            except ServiceUnavailableError as exc:
                raise PublishError(f"JetStream is not enabled on {self._nc.connected_url}") from exc
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)
        self._epoch = self._nc.stats["reconnects"]
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._delay_flusher(), name=f"qp-pub-flush-{self.source}"),
                       loop.create_task(self._resender(), name=f"qp-pub-resend-{self.source}")]
        self._started = True
        return self

    async def __aenter__(self) -> RawPublisher:
        return await self.start()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.abort()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def in_flight_frames(self) -> int:
        return sum(b.frames for b in self._inflight.values())

    @property
    def buffered(self) -> int:
        return len(self._buf)

    # ------------------------------------------------------------------ producer API
    def stage(self, frame: RawFrame) -> bool:
        """Buffer one frame without awaiting; True when the batch is due (max_frames / max_batch_bytes) and the
        caller must `await cut()`. add() is stage() + cut(); a producer loop calling stage() saves a coroutine
        per frame."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise PublishError("publisher is closed")
        payload = frame.payload
        if b"\n" in payload:
            raise PublishError(f"{self.source}: a vendor frame must be a single line")
        buf = self._buf
        if not buf:
            self._buf_t0 = time.monotonic()
            self._buf_event.set()
        buf.append(frame)
        self._buf_ns.append(time.perf_counter_ns())
        self._buf_bytes += len(payload) + 21
        return (len(buf) >= self.max_frames or self._buf_bytes >= self.max_batch_bytes
                or len(self._inflight) < self.eager_inflight)

    async def cut(self) -> None:
        """Send the buffered frames as one batch now (waits while the window is full)."""
        await self._cut()

    async def add(self, frame: RawFrame) -> None:
        """Buffer one frame; the batch goes out at max_frames / max_batch_bytes or after max_delay_s."""
        if not self._started and self._error is None and not self._closed:
            await self.start()  # else stage() raises the error
        if self.stage(frame):
            await self._cut()

    async def add_many(self, frames: Iterable[RawFrame] | AsyncIterable[RawFrame]) -> int:
        n = 0
        if isinstance(frames, AsyncIterable):
            async for f in frames:
                await self.add(f)
                n += 1
        else:
            for f in frames:
                await self.add(f)
                n += 1
        return n

    async def flush(self) -> None:
        """Send what is buffered now (does not wait for the ack; see wait_acked/close)."""
        if self._error is not None:
            raise self._error
        if self._buf:
            await self._cut()

    async def wait_acked(self, timeout: float | None = None) -> None:
        """Wait until every sent batch is acknowledged (stored); raises PublishTimeoutError on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._inflight and self._error is None:
            left = None if deadline is None else deadline - time.monotonic()
            try:
                if left is not None and left <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self._idle.wait(), left)
            except TimeoutError:
                raise PublishTimeoutError(len(self._inflight), self.in_flight_frames, timeout or 0) from None
        if self._error is not None:
            raise self._error

    async def close(self, timeout: float | None = None) -> None:
        """Flush, wait until every batch is acked, then stop the background tasks and the inbox. On a
        timeout the publisher stays open (batches kept, resends continue) and PublishTimeoutError is raised."""
        if self._closed:
            return
        if not self._started:
            if not self._buf:
                self._closed = True
                return
            await self.start()
        try:
            await self.flush()
            await self.wait_acked(timeout)
        except PublishTimeoutError:
            raise
        except BaseException:
            await self._shutdown()
            raise
        await self._shutdown()

    async def abort(self) -> None:
        """Stop without waiting: unacked batches are abandoned (the connector must not ack its source)."""
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._closed = True
        if self._eager_task is not None and not self._eager_task.done():
            self._tasks.append(self._eager_task)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: S110 - stopping our own tasks
                pass
        self._tasks = []
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except nats.errors.Error:
                pass
            self._sub = None

    def stats(self) -> dict:
        return {
            "source": self.source, "connection_id": self.connection_id,
            "batches_sent": self.batches_sent, "frames_sent": self.frames_sent, "bytes_sent": self.bytes_sent,
            "acks": self.acks, "frames_acked": self.frames_acked, "resends": self.resends,
            "timeouts": self.timeouts, "error_acks": self.error_acks, "duplicates": self.duplicates,
            "late_acks": self.late_acks, "stream_full": self.stream_full, "reconnects_seen": self.reconnects_seen, "in_flight": self.in_flight,
            "last_seq": self.last_seq, "latency": self.latency.summary(),
        }

    # ------------------------------------------------------------------ internals
    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._space.set()
        self._idle.set()

    async def _cut(self) -> None:
        async with self._lock:
            while len(self._inflight) >= self.window and self._error is None:
                self._space.clear()
                await self._space.wait()
            if self._error is not None:
                raise self._error
            if not self._buf:
                return
            frames, added = self._buf, self._buf_ns
            self._buf, self._buf_ns, self._buf_bytes = [], [], 0
            self._buf_event.clear()
            try:
                data = encode_batch(frames)
            except ValueError as exc:
                raise PublishError(f"{self.source}: {exc}") from exc
            no = self._next_no
            self._next_no += 1
            b = _Batch(no=no, reply=f"{self._inbox}.{no}", data=data, frames=len(frames), added_ns=added,
                       headers={MSG_ID: batch_msg_id(self.source, self.connection_id, no), HDR_FORMAT: RAW_FORMAT,
                                HDR_SOURCE: self.source, HDR_FRAMES: str(len(frames))})
            self._inflight[no] = b
            self._idle.clear()
            self.batches_sent += 1
            self.frames_sent += b.frames
            self.bytes_sent += len(data)
            await self._send(b)
        await asyncio.sleep(0)  # let the socket flusher and the ack callback run between batches

    async def _send(self, b: _Batch) -> None:
        nc = self._nc
        connected = nc.is_connected
        b.sends += 1
        b.deadline = time.monotonic() + self.ack_timeout_s * min(2 ** (b.sends - 1), 8)
        try:
            await nc.publish(self.subject, b.data, reply=b.reply, headers=b.headers)
        except nats.errors.MaxPayloadError as exc:
            self._fail(PublishError(f"batch {b.no} of {len(b.data)} bytes exceeds the server's max_payload "
                                    f"({nc.max_payload}); lower max_batch_bytes"))
            raise self._error from exc  # type: ignore[misc]
        except nats.errors.ConnectionClosedError as exc:
            self._fail(PublishError(f"connection closed with {len(self._inflight)} batches unacknowledged"))
            raise self._error from exc  # type: ignore[misc]
        except (nats.errors.Error, OSError):
            # Disconnected with a full reconnect buffer, or the socket broke: keep it, retry soon.
            b.deadline = time.monotonic() + min(0.1, self.ack_timeout_s)
            return
        if connected:
            b.epoch = nc.stats["reconnects"]

    def _retry_soon(self, b: _Batch, delay: float) -> None:
        b.deadline = min(b.deadline, time.monotonic() + delay)

    async def _on_reply(self, msg: Msg) -> None:
        try:
            no = int(msg.subject[len(self._inbox) + 1:])
        except ValueError:
            return
        b = self._inflight.get(no)
        if b is None:
            self.late_acks += 1
            return
        hdrs = msg.headers
        if hdrs and hdrs.get("Status") and not msg.data:  # 503 no responders: stream not (yet) available
            self.error_acks += 1
            self._retry_soon(b, min(0.05 * 2 ** min(b.error_acks, 5), 1.0))
            b.error_acks += 1
            return
        try:
            resp = json.loads(msg.data)
        except ValueError:
            self.error_acks += 1
            self._retry_soon(b, 0.05)
            return
        err = resp.get("error")
        if err:
            self.error_acks += 1
            b.error_acks += 1
            if err.get("err_code") == ERR_STREAM_FULL:
                self.stream_full += 1
                now = time.monotonic()
                if now - self._stream_full_logged >= STREAM_FULL_LOG_EVERY_S:
                    self._stream_full_logged = now
                    log.warning("%s: the stream is full (%s); %d batches kept and retried until it has room",
                                self.subject, err.get("description"), len(self._inflight))
            if err.get("code") == 503 or b.error_acks < self.max_error_acks:
                self._retry_soon(b, min(0.05 * 2 ** min(b.error_acks, 5), 1.0))
            else:
                self._fail(PublishError(
                    f"{self.subject} batch {b.no} rejected {b.error_acks} times: {err.get('description')} "
                    f"(code {err.get('code')}, err_code {err.get('err_code')})"))
            return
        del self._inflight[no]
        self.acks += 1
        self.frames_acked += b.frames
        if resp.get("duplicate"):
            self.duplicates += 1
        seq = resp.get("seq") or 0
        if seq > self.last_seq:
            self.last_seq = seq
        now_ns = time.perf_counter_ns()
        self.latency.record_since(now_ns, b.added_ns)
        if self.ack_observer is not None and b.added_ns:
            self.ack_observer((now_ns - min(b.added_ns)) / 1e9, b.frames)
        if len(self._inflight) < self.window:
            self._space.set()
        if not self._inflight:
            self._idle.set()
        if self._buf and len(self._inflight) < self.eager_inflight and not self._closed and (
                self._eager_task is None or self._eager_task.done()):
            self._eager_task = asyncio.get_running_loop().create_task(self._cut_quietly())

    async def _cut_quietly(self) -> None:
        try:
            await self._cut()
        except PublishError:
            pass  # kept in self._error: add()/flush()/close() raise it to the producer

    async def _delay_flusher(self) -> None:
        """Cuts a partial batch once its first frame has waited max_delay_s."""
        while True:
            await self._buf_event.wait()
            delay = self._buf_t0 + self.max_delay_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if self._buf:
                try:
                    await self._cut()
                except PublishError:
                    return  # surfaced to the producer by add()/flush()/close()
            else:
                self._buf_event.clear()

    async def _resender(self) -> None:
        """Resends batches past their deadline, and at once after a reconnect those sent on the old
        connection (their acks, or the batches themselves, may have died with it)."""
        tick = min(0.05, self.ack_timeout_s / 4)
        nc = self._nc
        while True:
            await asyncio.sleep(tick)
            if nc.is_closed:
                if self._inflight:
                    self._fail(PublishError(
                        f"connection closed with {len(self._inflight)} batches unacknowledged"))
                return
            if not nc.is_connected or not self._inflight:
                continue
            reconnects = nc.stats["reconnects"]
            reconnected = reconnects != self._epoch
            if reconnected:
                self._epoch = reconnects
                self.reconnects_seen += 1
            now = time.monotonic()
            for b in list(self._inflight.values()):
                if self._inflight.get(b.no) is not b:
                    continue  # acked meanwhile
                stale = reconnected and 0 <= b.epoch < reconnects
                if stale or b.deadline <= now:
                    if not stale and b.error_acks == 0:
                        self.timeouts += 1
                    self.resends += 1
                    try:
                        await self._send(b)
                    except PublishError:
                        return
                    if not nc.is_connected:
                        break


# ------------------------------------------------------------------------------------------- convenience
async def publish_frames(url: str, source: str, frames: Iterable[RawFrame] | AsyncIterable[RawFrame],
                         rate: float | None = None, connection_id: str | None = None, *,
                         max_frames: int = 500, max_delay_s: float = 0.005, window: int = 256,
                         ack_timeout_s: float = 2.0, ensure: bool = True,
                         close_timeout: float | None = None, eager_inflight: int = 0) -> dict:
    """Publish frames (optionally paced at `rate` frames/s) and wait until all are stored; used by
    `ingest replay`. Declares the streams first unless `ensure=False`. Returns the publisher's counters
    plus elapsed_s and frames_per_s. Batches are cut by max_frames / max_delay_s only (reproducible for a
    replay) unless `eager_inflight` > 0 (see RawPublisher)."""
    if rate is not None and rate <= 0:
        raise PublishError(f"rate must be > 0 frames/s, got {rate}")
    connection_id = connection_id or f"replay-{uuid.uuid4().hex[:12]}"
    from quant_platform.market.connection import connect_options

    nc = await nats.connect(**connect_options(url), max_reconnect_attempts=-1, reconnect_time_wait=0.25,
                            name=f"qp-publish-{source}")
    try:
        if ensure:
            from quant_platform.market.streams import ensure_streams

            await ensure_streams(nc.jetstream())
        pub = RawPublisher(nc, source, connection_id, max_frames=max_frames, max_delay_s=max_delay_s,
                           window=window, ack_timeout_s=ack_timeout_s, eager_inflight=eager_inflight)
        await pub.start()
        t0 = time.monotonic()
        i = 0
        try:
            if isinstance(frames, AsyncIterable):
                async for f in frames:
                    if rate:
                        await _pace(t0, i, rate)
                    await pub.add(f)
                    i += 1
            elif rate:
                for f in frames:
                    await _pace(t0, i, rate)
                    await pub.add(f)
                    i += 1
            else:
                stage = pub.stage
                for f in frames:
                    if stage(f):
                        await pub.cut()
            await pub.close(timeout=close_timeout)
        except BaseException:
            await pub.abort()
            raise
        elapsed = time.monotonic() - t0
        out = pub.stats()
        out["elapsed_s"] = round(elapsed, 4)
        out["frames_per_s"] = round(pub.frames_acked / elapsed, 1) if elapsed > 0 else 0.0
        return out
    finally:
        await nc.close()


async def _pace(t0: float, i: int, rate: float) -> None:
    delay = t0 + i / rate - time.monotonic()
    if delay > 0.001:
        await asyncio.sleep(delay)
