"""The JetStream streams and durable consumers of the tick pipeline, declared in code and applied idempotently.

Never delete or purge a stream or consumer here, and never relax ack semantics: changes are create-or-update.

Durability: file storage everywhere; one replica locally (the embedded server fsyncs before it acks, see
nats_server.py), three on a cluster (acked once a quorum of two has the message).

Replicas: `ensure_streams(js, replicas=N)`, else the environment variable QP_NATS_REPLICAS (an integer from
1 to 5; QP_STREAM_REPLICAS, its earlier name, is still read; setting both to different values is an error),
else 1. The count applies to TICKS_RAW, TICKS, TICKS_DLQ and the normalizer/lander consumers. When neither
the argument nor the variable is given, a stream that already exists keeps its replica count (a process
started without the variable never scales a cluster's R3 streams down to R1); new streams get one replica.

Bounds: every stream has a `max_bytes` besides its `max_age` (QP_TICKS_RAW_MAX_BYTES, QP_TICKS_MAX_BYTES,
QP_TICKS_DLQ_MAX_BYTES: bytes, or a number with KiB/MiB/GiB/TiB, Ki/Mi/Gi/Ti, K/M/G/T or KB/MB/GB/TB, all powers of 1024).
What happens at the limit is decided per stream (DISCARD below): TICKS_RAW refuses new messages (`discard: new`:
the connector's publisher gets an error ack and keeps its batch, so nothing a connector sent is dropped);
TICKS and TICKS_DLQ drop their oldest messages (`discard: old`). The sum of the limits (times the replica count)
must fit the server's JetStream `max_file_store` (nats_server.py sizes the embedded one from them).

Redelivery: a message not acked within QP_NATS_ACK_WAIT_S (default 30 s) is delivered again, possibly to another
worker; duplicates are removed at compaction by event_id.

Poison messages: the pipeline consumers redeliver at most QP_NATS_MAX_DELIVER times (default 8). The workers
nak a failing message with a growing delay and, at its last delivery, dead-letter it (TICKS_DLQ, with the
reason) and `term()` it, so it never blocks the ack floor and later messages flow.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from nats.js import api
from nats.js.errors import APIError, NotFoundError

from quant_platform.errors import ConfigError, QuantPlatformError
from quant_platform.market.contracts import STREAM_DLQ, STREAM_NORM, STREAM_RAW

HOUR = 3600.0
DAY = 24 * HOUR
MAX_MSG_SIZE = 8 * 1024 * 1024
DUPLICATE_WINDOW_S = 120.0

# JetStream API error codes we act on.
ERR_STREAM_NAME_IN_USE = 10058  # "stream name already in use with a different configuration"
ERR_STREAM_NOT_FOUND = 10059
ERR_CONSUMER_NOT_FOUND = 10014


class StreamConfigError(QuantPlatformError):
    """The server refused a stream or consumer declaration (e.g. replicas > 1 on a single node, an
    immutable field changed); carries the server's description."""

    def __init__(self, what: str, description: str, err_code: int | None = None):
        self.what = what
        self.description = description
        self.err_code = err_code
        super().__init__(f"{what}: {description}" + (f" (err_code {err_code})" if err_code else ""))


# ------------------------------------------------------------------------------------------- settings
def _positive_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {raw!r}")
    return value


REPLICAS_ENV = "QP_NATS_REPLICAS"
REPLICAS_ENV_OLD = "QP_STREAM_REPLICAS"  # the earlier name, still honoured


def _replicas_from(name: str) -> int | None:
    if not os.environ.get(name, "").strip():
        return None
    value = _positive_env(name, 1)
    if value != int(value) or int(value) not in (1, 2, 3, 4, 5):
        raise ConfigError(f"{name} must be an integer from 1 to 5, got {value!r}")
    return int(value)


def configured_replicas() -> int | None:
    """The replica count from QP_NATS_REPLICAS (or the older QP_STREAM_REPLICAS), None when neither is set.

    1 on a single node (the default); 3 on a three-node cluster (odd numbers up to 5)."""
    new, old = _replicas_from(REPLICAS_ENV), _replicas_from(REPLICAS_ENV_OLD)
    if new is not None and old is not None and new != old:
        raise ConfigError(f"{REPLICAS_ENV}={new} and {REPLICAS_ENV_OLD}={old} disagree; set only {REPLICAS_ENV}")
    return new if new is not None else old


def stream_replicas() -> int:
    """QP_NATS_REPLICAS (or QP_STREAM_REPLICAS): 1 (default, single node) or 3 (cluster; odd numbers up to 5)."""
    return configured_replicas() or 1


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B|I)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str, name: str = "size") -> int:
    """'20GiB', '512MB', '64k' or '1048576' -> bytes (every unit a power of 1024, as nats-server reads them)."""
    m = _SIZE.match(str(text))
    if not m:
        raise ConfigError(f"{name} must be a byte count such as 1073741824, 512MiB or 20GiB, got {text!r}")
    value = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {text!r}")
    return value


def _size_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return parse_size(raw, name) if raw else default


# Defaults sized for one host (docker/compose.yaml; the embedded server): 36 GiB of JetStream file store in all.
GIB = 1024**3
MAX_BYTES_DEFAULTS = {STREAM_RAW: 16 * GIB, STREAM_NORM: 16 * GIB, STREAM_DLQ: 4 * GIB}
MAX_BYTES_ENV = {STREAM_RAW: "QP_TICKS_RAW_MAX_BYTES", STREAM_NORM: "QP_TICKS_MAX_BYTES",
                 STREAM_DLQ: "QP_TICKS_DLQ_MAX_BYTES"}
# What a full stream does. TICKS_RAW: refuse (the publisher keeps its batch and retries: a connector's frames are
# never dropped; the fill alert fires at 80%, before connectors block). TICKS: drop the oldest canonical ticks,
# normally landed long ago; if the lander were that far behind, the daily completeness check names the raw
# sequences that did not reach the lake (TICKS_RAW still holds them for replay). TICKS_DLQ: drop the oldest
# rejects rather than stall normalisation of good ticks behind a full DLQ (a vendor format change can reject
# everything at full rate); the rejected frames stay in TICKS_RAW for its max_age, and a DLQ record dropped
# before its day was compacted shows as a missing raw sequence in that day's completeness check, never silently.
DISCARD = {STREAM_RAW: "new", STREAM_NORM: "old", STREAM_DLQ: "old"}


def stream_max_bytes(stream: str) -> int:
    """The byte limit of a stream from its environment variable (QP_TICKS_RAW_MAX_BYTES etc.) or the default."""
    return _size_env(MAX_BYTES_ENV[stream], MAX_BYTES_DEFAULTS[stream])


MAX_DELIVER_ENV = "QP_NATS_MAX_DELIVER"
DEFAULT_MAX_DELIVER = 8


def configured_max_deliver() -> int:
    """QP_NATS_MAX_DELIVER (2-100, default 8): deliveries of a pipeline message before it is dead-lettered."""
    value = _positive_env(MAX_DELIVER_ENV, DEFAULT_MAX_DELIVER)
    if value != int(value) or not 2 <= value <= 100:
        raise ConfigError(f"{MAX_DELIVER_ENV} must be an integer from 2 to 100, got {value!r}")
    return int(value)


ACK_WAIT_ENV = "QP_NATS_ACK_WAIT_S"
DEFAULT_ACK_WAIT_S = 30.0


def configured_ack_wait() -> float:
    """QP_NATS_ACK_WAIT_S (1-3600, default 30): how long a pipeline consumer waits for an ack before it delivers the
    message again (to any worker). Every process that declares the consumers must see the same value."""
    value = _positive_env(ACK_WAIT_ENV, DEFAULT_ACK_WAIT_S)
    if not 1 <= value <= 3600:
        raise ConfigError(f"{ACK_WAIT_ENV} must be a number of seconds from 1 to 3600, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------- declarations
@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age_s: float
    duplicate_window_s: float = DUPLICATE_WINDOW_S
    replicas: int = 1
    storage: str = "file"
    discard: str = "old"
    max_msg_size: int = MAX_MSG_SIZE
    max_bytes: int = -1
    allow_direct: bool = True  # direct gets: the read-only `dagster` user reads messages without a consumer
    description: str = ""

    def to_config(self, replicas: int | None = None) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.name,
            description=self.description or None,
            subjects=list(self.subjects),
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType(self.storage),
            discard=api.DiscardPolicy(self.discard),
            max_age=self.max_age_s,
            max_bytes=self.max_bytes,
            duplicate_window=self.duplicate_window_s,
            num_replicas=replicas or self.replicas,
            max_msg_size=self.max_msg_size,
            allow_direct=self.allow_direct,
        )


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer with explicit acks (never AckAll: several workers share a consumer)."""

    durable: str
    stream: str
    filter_subject: str | None = None
    ack_wait_s: float | None = None  # None: QP_NATS_ACK_WAIT_S (default 30)
    max_ack_pending: int = 20_000  # the default 1000 starves several workers with micro-batches
    # Bounded: the worker dead-letters and term()s a message at its last delivery (never left to the server,
    # which would stop delivering it without moving the ack floor past it). None: QP_NATS_MAX_DELIVER.
    max_deliver: int | None = None
    deliver_policy: str = "all"
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def to_config(self, replicas: int | None = None) -> api.ConsumerConfig:
        """`replicas` None leaves num_replicas unset: the consumer follows its stream's replica count."""
        cfg = api.ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            description=self.description or None,
            deliver_policy=api.DeliverPolicy(self.deliver_policy),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s if self.ack_wait_s is not None else configured_ack_wait(),
            max_deliver=self.max_deliver if self.max_deliver is not None else configured_max_deliver(),
            max_ack_pending=self.max_ack_pending,
            filter_subject=self.filter_subject,
            replay_policy=api.ReplayPolicy.INSTANT,
            num_replicas=replicas,
        )
        return cfg.evolve(**self.extra) if self.extra else cfg


def stream_specs(replicas: int | None = None) -> tuple[StreamSpec, ...]:
    """The three streams, with the environment read now (QP_TICKS_RAW_MAX_AGE_HOURS default 7 days,
    QP_TICKS_MAX_AGE_HOURS default 3 days, QP_TICKS_DLQ_MAX_AGE_HOURS default 30 days; QP_TICKS_RAW_MAX_BYTES
    and QP_TICKS_MAX_BYTES default 16 GiB, QP_TICKS_DLQ_MAX_BYTES 4 GiB; QP_NATS_REPLICAS default 1)."""
    r = replicas or stream_replicas()
    return (
        StreamSpec(
            STREAM_RAW, ("ticks.raw.>",),
            max_age_s=_positive_env("QP_TICKS_RAW_MAX_AGE_HOURS", 7 * 24) * HOUR, replicas=r,
            max_bytes=stream_max_bytes(STREAM_RAW), discard=DISCARD[STREAM_RAW],
            description="vendor frames verbatim, batched by connectors (ticks.raw.<source>.batch)",
        ),
        StreamSpec(
            STREAM_NORM, ("ticks.norm.>",),
            max_age_s=_positive_env("QP_TICKS_MAX_AGE_HOURS", 3 * 24) * HOUR, replicas=r,
            max_bytes=stream_max_bytes(STREAM_NORM), discard=DISCARD[STREAM_NORM],
            description="canonical ticks (Arrow IPC), ticks.norm.<source>.batch",
        ),
        StreamSpec(
            STREAM_DLQ, ("ticks.dlq.>",),
            max_age_s=_positive_env("QP_TICKS_DLQ_MAX_AGE_HOURS", 30 * 24) * HOUR, replicas=r,
            max_bytes=stream_max_bytes(STREAM_DLQ), discard=DISCARD[STREAM_DLQ],
            description="one record per rejected raw message (every reason) or dead-lettered message, "
                        "ticks.dlq.<source>",
        ),
    )


def streams_max_bytes() -> int:
    """The JetStream file store the declared streams reserve on each server (their max_bytes summed; an R3 stream
    keeps one replica per server of a 3-node cluster)."""
    return sum(s.max_bytes for s in stream_specs(replicas=1) if s.max_bytes > 0)


# Declared at import with the environment of that moment; ensure_streams() re-reads the environment.
STREAMS: tuple[StreamSpec, ...] = stream_specs(replicas=1)

NORMALIZER = ConsumerSpec("normalizer", STREAM_RAW, filter_subject="ticks.raw.>",
                          description="normalizer workers: TICKS_RAW -> TICKS / TICKS_DLQ")
LANDER = ConsumerSpec("lander", STREAM_NORM, filter_subject="ticks.norm.>",
                      description="lake lander: TICKS -> lake/ticks/landing Parquet")
CONSUMERS: tuple[ConsumerSpec, ...] = (NORMALIZER, LANDER)


def fanout_consumer_spec(name: str, filter_subject: str, stream: str = STREAM_NORM) -> ConsumerSpec:
    """One durable consumer per destination (durable pull, explicit ack, deliver_policy all)."""
    return ConsumerSpec(name, stream, filter_subject=filter_subject, deliver_policy="all",
                        description=f"fan-out destination {name}")


async def fanout_consumer(js, name: str, filter_subject: str, stream: str = STREAM_NORM) -> str:
    """Declare (create or update) a fan-out destination's consumer; returns created/updated/unchanged. The
    `fanout` NATS user may not create consumers: on the production servers the admin declares them at deploy
    time (declare_streams.py with QP_FANOUT_FILE), and a fan-out worker finds its consumer unchanged."""
    return await ensure_consumer(js, stream, fanout_consumer_spec(name, filter_subject, stream))


# ------------------------------------------------------------------------------------------- apply
_REFUSED_HINT = ("no answer from the JetStream API: this NATS user may not be allowed to change streams or "
                 "consumers; declare them with the admin user first (docker/ingest/declare_streams.py), with the "
                 "same QP_TICKS_* / QP_NATS_* settings as this process")


def _is_request_timeout(exc: BaseException) -> bool:
    import nats.errors

    return isinstance(exc, (nats.errors.TimeoutError, TimeoutError))
_STREAM_FIELDS = ("subjects", "retention", "storage", "discard", "max_age", "max_bytes", "duplicate_window",
                  "num_replicas", "max_msg_size", "allow_direct", "description")
_CONSUMER_FIELDS = ("durable_name", "deliver_policy", "ack_policy", "ack_wait", "max_deliver",
                    "max_ack_pending", "filter_subject", "replay_policy", "description")


def _norm(value: object) -> object:
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if hasattr(value, "value"):  # str enums
        return value.value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _differences(want: object, have: object, names: tuple[str, ...]) -> dict[str, tuple[object, object]]:
    out = {}
    for n in names:
        w, h = _norm(getattr(want, n)), _norm(getattr(have, n))
        if w is None:
            continue
        if h is None and n == "description" and w == "":
            continue
        if w != h:
            out[n] = (h, w)
    return out


async def ensure_stream(js, spec: StreamSpec, replicas: int | None = None, *,
                        keep_replicas: bool = False) -> str:
    """Create the stream, or update it when its declared fields differ. Returns created/updated/unchanged.

    `keep_replicas`: an existing stream keeps its replica count (used when no count was configured)."""
    want = spec.to_config(replicas)
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        info = None
    try:
        if info is None:
            try:
                await js.add_stream(want)
                return "created"
            except APIError as exc:
                # Someone else created it meanwhile: the server answers "name in use", or, when the store
                # reservation is checked first, "insufficient storage resources" (the other's copy is counted).
                try:
                    info = await js.stream_info(spec.name)
                except NotFoundError:
                    raise exc from None
        if keep_replicas and info.config.num_replicas:
            want.num_replicas = info.config.num_replicas
        if not _differences(want, info.config, _STREAM_FIELDS):
            return "unchanged"
        await js.update_stream(want)
        return "updated"
    except APIError as exc:
        raise StreamConfigError(f"stream {spec.name}", exc.description or str(exc), exc.err_code) from exc
    except Exception as exc:
        if _is_request_timeout(exc):
            raise StreamConfigError(f"stream {spec.name}", _REFUSED_HINT) from exc
        raise


def _consumer_replicas(info) -> int:
    """A consumer's effective replica count: its own setting, or (0 = follow the stream) its raft group size."""
    if info.config.num_replicas:
        return info.config.num_replicas
    cluster = info.cluster
    return 1 + len(cluster.replicas or []) if cluster is not None else 1


async def ensure_consumer(js, stream: str, spec: ConsumerSpec, replicas: int | None = None) -> str:
    """Create the durable consumer, or update it when its declared fields differ (the server's
    CONSUMER.CREATE is create-or-update since 2.10). `replicas` None: the consumer follows its stream's
    replica count. Returns created/updated/unchanged."""
    want = spec.to_config(replicas)
    try:
        have = await js.consumer_info(stream, spec.durable)
    except NotFoundError:
        have = None
    if (have is not None and not _differences(want, have.config, _CONSUMER_FIELDS)
            and (replicas is None or _consumer_replicas(have) == replicas)):
        return "unchanged"
    try:
        await js.add_consumer(stream, config=want)
    except APIError as exc:
        raise StreamConfigError(f"consumer {stream}.{spec.durable}", exc.description or str(exc),
                                exc.err_code) from exc
    except Exception as exc:
        if _is_request_timeout(exc):
            raise StreamConfigError(f"consumer {stream}.{spec.durable}", _REFUSED_HINT) from exc
        raise
    return "created" if have is None else "updated"


async def ensure_streams(js, replicas: int | None = None, *, consumers: bool = True, fanouts=()) -> dict:
    """Apply the declared streams (and the normalizer/lander consumers unless `consumers=False`, and the
    consumer of each fan-out destination in `fanouts`, fanout.Destination objects: the admin's job).

    `replicas` (num_replicas of the three streams and of the consumers) defaults to the environment variable
    QP_NATS_REPLICAS (1 to 5; the older name QP_STREAM_REPLICAS is read too). With neither, new streams get
    one replica and existing ones keep theirs, so a process started without the variable never scales a
    cluster's streams down. A single node accepts only 1 (anything more raises StreamConfigError).

    Returns {"streams": {name: action}, "consumers": {"STREAM.durable": action}} with action one of
    created / updated / unchanged. `js` is a JetStreamContext or JetStreamManager."""
    if replicas is not None and replicas not in (1, 2, 3, 4, 5):
        raise ConfigError(f"replicas must be an integer from 1 to 5, got {replicas!r}")
    r = replicas if replicas is not None else configured_replicas()
    report: dict[str, dict[str, str]] = {"streams": {}, "consumers": {}}
    for spec in stream_specs(r or 1):
        report["streams"][spec.name] = await ensure_stream(js, spec, r, keep_replicas=r is None)
    if consumers:
        for c in CONSUMERS:
            report["consumers"][f"{c.stream}.{c.durable}"] = await ensure_consumer(js, c.stream, c, r)
    for dest in fanouts:
        spec = fanout_consumer_spec(dest.consumer, dest.consumer_filter)
        report["consumers"][f"{spec.stream}.{spec.durable}"] = await ensure_consumer(js, spec.stream, spec, r)
    return report


# ------------------------------------------------------------------------------------------- observe
async def stream_state(js, streams: tuple[str, ...] = (STREAM_RAW, STREAM_NORM, STREAM_DLQ)) -> dict:
    """Sequence numbers and consumer lag, as the Dagster ingest sensor and the autoscaler read them.

    {stream: {"exists", "first_seq", "last_seq", "messages", "bytes", "max_bytes", "discard", "fill",
              "consumers": {name: {"num_pending", "num_ack_pending", "lag", "num_redelivered",
                                   "num_waiting", "ack_floor_stream_seq", "delivered_stream_seq"}}}}
    `lag` = num_pending + num_ack_pending, the KEDA NATS JetStream scaler's signal. `fill` = bytes / max_bytes
    (None when the stream has no byte limit): the stream-fill alert fires above QP_STREAM_FILL_ALERT_PCT."""
    out: dict[str, dict] = {}
    for name in streams:
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            out[name] = {"exists": False, "first_seq": 0, "last_seq": 0, "messages": 0, "bytes": 0,
                         "max_bytes": -1, "discard": None, "fill": None, "consumers": {}}
            continue
        st = info.state
        consumers: dict[str, dict] = {}
        for ci in await js.consumers_info(name):
            pending = ci.num_pending or 0
            ack_pending = ci.num_ack_pending or 0
            consumers[ci.name] = {
                "num_pending": pending,
                "num_ack_pending": ack_pending,
                "lag": pending + ack_pending,
                "num_redelivered": ci.num_redelivered or 0,
                "num_waiting": ci.num_waiting or 0,
                "ack_floor_stream_seq": ci.ack_floor.stream_seq if ci.ack_floor else 0,
                "delivered_stream_seq": ci.delivered.stream_seq if ci.delivered else 0,
            }
        max_bytes = info.config.max_bytes or -1
        out[name] = {"exists": True, "first_seq": st.first_seq, "last_seq": st.last_seq,
                     "messages": st.messages, "bytes": st.bytes, "max_bytes": max_bytes,
                     "discard": getattr(info.config.discard, "value", info.config.discard),
                     "fill": round(st.bytes / max_bytes, 4) if max_bytes > 0 else None, "consumers": consumers}
    return out
