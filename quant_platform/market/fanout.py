"""Fan-out to other teams' destinations, declared in a config file: each destination has its own durable
consumer, subject filter and position, so a slow or failing destination never slows the others.

Never ack a message before the destination has it durably (row committed, file renamed, 2xx answer,
publish acknowledged) or it is parked in TICKS_DLQ with the reason; a destination that is down (5xx, timeouts,
connection errors) is retried with backoff and catches up from its own position. Only a message the fan-out
cannot decode, or one a webhook refuses for good (4xx other than 408/429), is parked: then the next one goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import yaml

from quant_platform.errors import ConfigError
from quant_platform.market import metrics
from quant_platform.market.connection import (
    RESUBSCRIBE_AFTER_S,
    FetchHealth,
    FetchSizer,
    connect_worker,
    fetch_failure_reason,
    replace_subscription,
)
from quant_platform.market.contracts import (
    STREAM_NORM,
    TICK_COLUMNS,
    TICK_SCHEMA,
    dlq_subject,
    instrument_token,
)
from quant_platform.market.lake_landing import write_parquet_atomic
from quant_platform.market.normalizer import (
    ARROW_FORMAT,
    HDR_FORMAT,
    HDR_HTTP_STATUS,
    HDR_REASON,
    HDR_STAGE,
    HDR_TICKS_SEQ,
    REASON_MAX,
    dead_letter,
    ipc_to_table,
)

log = logging.getLogger(__name__)

KINDS = ("postgres", "files", "webhook", "republish")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


@dataclass(frozen=True)
class Destination:
    name: str
    kind: str
    filter_subject: str = "ticks.norm.>"
    options: dict = field(default_factory=dict)

    @property
    def consumer(self) -> str:
        return f"fanout_{self.name}"

    def _instrument_token(self) -> str | None:
        tokens = self.filter_subject.split(".")  # ticks.norm.<source>.<token>; "batch" is every instrument's subject
        return tokens[3] if len(tokens) == 4 and tokens[3] not in (">", "*", "batch") else None

    @property
    def consumer_filter(self) -> str:
        """Its consumer's subject filter. An instrument's filter (ticks.norm.<source>.<token>) becomes its
        source's: normalizers publish all instruments of a fetched set in one message, ticks.norm.<source>.batch
        (contracts.norm_batch_subject), and the rows are filtered here (keep_rows)."""
        token = self._instrument_token()
        return self.filter_subject if token is None else self.filter_subject.rsplit(".", 1)[0] + ".>"

    def keep_rows(self, table: pa.Table) -> pa.Table:
        """The rows of a TICKS message this destination asked for: all of them, or the instrument's named by the
        filter's last token (contracts.instrument_token of instrument_id), whatever the message's subject."""
        token = self._instrument_token()
        if token is None or not table.num_rows:
            return table
        ids = table["instrument_id"]
        wanted = [i for i in pc.unique(ids).to_pylist() if i is not None and instrument_token(i) == token]
        return table.filter(pc.is_in(ids, pa.array(wanted, pa.string())))


def load_destinations(path: Path | None = None) -> list[Destination]:
    """Destinations from QP_FANOUT_FILE (or `path`); none configured means no fan-out."""
    path = path or (Path(os.environ["QP_FANOUT_FILE"]) if os.environ.get("QP_FANOUT_FILE") else None)
    if path is None:
        return []
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"fan-out config {path}: {exc}") from exc
    out = []
    for i, d in enumerate(doc.get("destinations") or []):
        name, kind = d.get("name"), d.get("kind")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"fan-out destination #{i + 1}: name must match {_NAME.pattern}, got {name!r}")
        if kind not in KINDS:
            raise ConfigError(f"fan-out destination {name}: kind must be one of {KINDS}, got {kind!r}")
        subject = d.get("filter_subject", "ticks.norm.>")
        if not str(subject).startswith("ticks.norm."):
            raise ConfigError(f"fan-out destination {name}: filter_subject must be under ticks.norm.")
        out.append(Destination(name, kind, subject, {k: v for k, v in d.items()
                                                     if k not in ("name", "kind", "filter_subject")}))
    names = [d.name for d in out]
    if len(set(names)) != len(names):
        raise ConfigError("fan-out destinations must have distinct names")
    return out


# ----------------------------------------------------------------------------------------------- sinks
class PermanentDeliveryError(Exception):
    """The destination refused the data for good (e.g. HTTP 400): retrying the same bytes cannot succeed."""

    def __init__(self, reason: str, http_status: int | None = None):
        self.reason = reason
        self.http_status = http_status
        super().__init__(reason)


# 4xx answers a retry may cure: request timeout, too many requests (rate limit).
RETRYABLE_4XX = (408, 429)


class Sink:
    async def deliver(self, table: pa.Table, first_seq: int, last_seq: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class FilesSink(Sink):
    """Parquet or CSV files in a folder, one per delivered batch, named by the TICKS sequence range."""

    def __init__(self, dest: Destination):
        self.root = Path(os.path.expandvars(dest.options.get("path", ""))).expanduser()
        self.format = dest.options.get("format", "parquet")
        if not str(self.root) or self.format not in ("parquet", "csv"):
            raise ConfigError(f"fan-out {dest.name}: files needs a path and format parquet|csv")

    async def deliver(self, table, first_seq, last_seq):
        final = self.root / f"{first_seq}-{last_seq}.{self.format}"
        if self.format == "parquet":
            await asyncio.to_thread(write_parquet_atomic, table, final)
        else:
            await asyncio.to_thread(_write_csv_atomic, table, final)


def _write_csv_atomic(table: pa.Table, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp"
    pacsv.write_csv(table, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


class PostgresSink(Sink):
    """Rows COPYed into a PostgreSQL table (created if missing); committed before the ack."""

    def __init__(self, dest: Destination):
        import sqlalchemy as sa

        url = os.environ.get(dest.options.get("url_env", ""), dest.options.get("url", ""))
        table = dest.options.get("table", "")
        if not url or not re.match(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$", table):
            raise ConfigError(f"fan-out {dest.name}: postgres needs url (or url_env) and schema.table")
        self.table = table
        self.engine = sa.create_engine(re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", url),
                                       pool_pre_ping=True)
        self._ready = False

    def _ensure(self, con) -> None:
        schema = self.table.split(".")[0]
        with con.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (ts timestamptz NOT NULL, received_at timestamptz NOT NULL, "
                "source text NOT NULL, instrument_id text NOT NULL, venue_symbol text, exchange text, event text, "
                "price double precision, size double precision, bid double precision, bid_size double precision, "
                "ask double precision, ask_size double precision, vendor_seq bigint, event_id text NOT NULL, "
                "stream_seq bigint NOT NULL, PRIMARY KEY (event_id))")
        self._ready = True

    def _copy(self, table: pa.Table) -> None:
        import io

        raw = self.engine.raw_connection()
        try:
            if not self._ready:
                self._ensure(raw)
            buf = io.BytesIO()
            pacsv.write_csv(table.select(TICK_COLUMNS), buf, pacsv.WriteOptions(include_header=False))
            buf.seek(0)
            with raw.cursor() as cur:
                # Redelivery must not fail the batch: stage, then insert what is new.
                cur.execute(f"CREATE TEMP TABLE qp_in (LIKE {self.table}) ON COMMIT DROP")
                cur.copy_expert("COPY qp_in FROM STDIN WITH (FORMAT csv)", buf)
                cur.execute(f"INSERT INTO {self.table} SELECT * FROM qp_in "  # noqa: S608 - validated name
                            "ON CONFLICT (event_id) DO NOTHING")
            raw.commit()
        except Exception:
            raw.rollback()
            raise
        finally:
            raw.close()

    async def deliver(self, table, first_seq, last_seq):
        await asyncio.to_thread(self._copy, table)

    async def close(self):
        self.engine.dispose()


class WebhookSink(Sink):
    """HTTP POST of JSON lines (one canonical tick per line); any 2xx is a delivery."""

    def __init__(self, dest: Destination):
        self.url = dest.options.get("url") or os.environ.get(dest.options.get("url_env", ""), "")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"fan-out {dest.name}: webhook needs an http(s) url")
        self.timeout = float(dest.options.get("timeout_s", 5))

    def _post(self, body: bytes, first_seq: int, last_seq: int) -> None:
        """One POST through the platform's bounded client: a capped answer, a deadline for the whole request,
        no redirect to another host. A refused redirect or an oversized answer is permanent (parked), like a 4xx."""
        from quant_platform.errors import HttpLimitError
        from quant_platform.platform.vendor_http import bounded_request, webhook_cap

        try:
            r = bounded_request("POST", self.url, data=body, timeout_s=self.timeout, deadline_s=4 * self.timeout,
                                max_bytes=webhook_cap()[0], cap_setting="QP_HTTP_MAX_BYTES_WEBHOOK", headers={
                                    "Content-Type": "application/x-ndjson", "Qp-First-Seq": str(first_seq),
                                    "Qp-Last-Seq": str(last_seq)})
        except HttpLimitError as exc:
            raise PermanentDeliveryError(f"webhook refused: {exc}") from None
        if 400 <= r.status < 500 and r.status not in RETRYABLE_4XX:
            text = r.body[:200].decode("utf-8", "replace")
            raise PermanentDeliveryError(f"webhook answered HTTP {r.status}: {text}", r.status)
        if not 200 <= r.status < 300:
            raise RuntimeError(f"webhook answered HTTP {r.status}")

    async def deliver(self, table, first_seq, last_seq):
        rows = table.to_pylist()
        body = "\n".join(json.dumps(r, default=str) for r in rows).encode()
        await asyncio.to_thread(self._post, body, first_seq, last_seq)


class RepublishSink(Sink):
    """Re-publish each batch (Arrow IPC, as on TICKS) to another subject, acknowledged by JetStream when a
    stream captures that subject."""

    def __init__(self, dest: Destination, js, nc):
        self.subject = dest.options.get("subject", "")
        if not self.subject or self.subject.startswith("ticks."):
            raise ConfigError(f"fan-out {dest.name}: republish needs a subject outside ticks.>")
        self.jetstream = bool(dest.options.get("jetstream", True))
        self.js, self.nc = js, nc

    async def deliver(self, table, first_seq, last_seq):
        from quant_platform.market.normalizer import table_to_ipc

        data = table_to_ipc(table)
        if self.jetstream:
            await self.js.publish(self.subject, data, timeout=10,
                                  headers={"Nats-Msg-Id": f"{self.subject}:{first_seq}-{last_seq}"})
        else:
            await self.nc.publish(self.subject, data)
            await self.nc.flush(timeout=10)


def build_sink(dest: Destination, js=None, nc=None) -> Sink:
    if dest.kind == "files":
        return FilesSink(dest)
    if dest.kind == "postgres":
        return PostgresSink(dest)
    if dest.kind == "webhook":
        return WebhookSink(dest)
    return RepublishSink(dest, js, nc)


@dataclass
class FanoutStats:
    delivered_batches: int = 0
    delivered_rows: int = 0
    failures: int = 0
    parked: int = 0  # messages parked in TICKS_DLQ (undecodable, or refused for good by the destination)
    last_error: str | None = None


def _source(msg) -> str:
    parts = msg.subject.split(".")
    return parts[2] if len(parts) > 2 else "unknown"


def decode(msg) -> pa.Table:
    """A TICKS message as a canonical tick table; raises when it is not Arrow IPC of the tick schema."""
    return ipc_to_table(msg.data).cast(TICK_SCHEMA)


async def park(js, dest: Destination, msg, reason: str, stats: FanoutStats, http_status: int | None = None) -> None:
    """Store a message this destination cannot take in TICKS_DLQ (subject ticks.dlq.<source>, Qp-Stage
    fanout:<name>, the reason and the HTTP status), then ack it. When the record cannot be stored the message
    is left unacknowledged (redelivered after ack_wait) and this is logged: never acked unparked."""
    seq = msg.metadata.sequence.stream
    headers = {"Nats-Msg-Id": f"dlq:{dest.consumer}:{seq}", HDR_STAGE: f"fanout:{dest.name}",
               HDR_FORMAT: (msg.headers or {}).get(HDR_FORMAT, ARROW_FORMAT), HDR_REASON: reason[:REASON_MAX],
               HDR_TICKS_SEQ: str(seq)}
    if http_status is not None:
        headers[HDR_HTTP_STATUS] = str(http_status)
    try:
        await dead_letter(js, dlq_subject(_source(msg)), msg.data, headers)
    except Exception as exc:
        log.error("fan-out %s: parking TICKS seq %s failed (%s); left for redelivery", dest.name, seq, exc)
        return
    await msg.ack()
    stats.parked += 1
    metrics.FANOUT_FAILURES.labels(destination=dest.name).inc()
    log.error("fan-out %s: TICKS seq %s parked in TICKS_DLQ: %s", dest.name, seq, reason)


async def _deliver_retrying(sink: Sink, dest: Destination, msgs: list, table: pa.Table, stop: asyncio.Event,
                            stats: FanoutStats, max_backoff_s: float) -> bool:
    """Deliver until it succeeds (True) or `stop` is set (False), keeping the messages in progress meanwhile.
    A PermanentDeliveryError is raised at once."""
    seqs = [m.metadata.sequence.stream for m in msgs]
    backoff = 0.2
    while not stop.is_set():
        try:
            await sink.deliver(table, min(seqs), max(seqs))
            return True
        except PermanentDeliveryError:
            raise
        except Exception as exc:
            stats.failures += 1
            metrics.FANOUT_FAILURES.labels(destination=dest.name).inc()
            stats.last_error = str(exc)[:200]
            log.warning("fan-out %s: delivery failed (%s); retrying in %.1fs", dest.name, exc, backoff)
            for m in msgs:  # keep the messages ours while we retry
                try:
                    await m.in_progress()
                except Exception:  # noqa: S110 - the connection may be down: redelivery covers it
                    pass
            await asyncio.sleep(random.uniform(0, backoff))  # noqa: S311 - jitter, not crypto
            backoff = min(backoff * 2, max_backoff_s)
    return False


async def deliver_batch(js, sink: Sink, dest: Destination, msgs: list, tables: list[pa.Table],
                        stop: asyncio.Event, stats: FanoutStats, max_backoff_s: float) -> bool:
    """Deliver and ack a batch; on a permanent refusal, deliver its messages one at a time and park each one
    the destination refuses on its own. False when stopped before the batch was done (unacked messages are
    redelivered to the next run)."""
    table = pa.concat_tables(tables)
    try:
        if not await _deliver_retrying(sink, dest, msgs, table, stop, stats, max_backoff_s):
            return False
    except PermanentDeliveryError as exc:
        stats.last_error = str(exc)[:200]
        if len(msgs) == 1:
            await park(js, dest, msgs[0], f"refused by {dest.kind} destination {dest.name}: {exc.reason}", stats,
                       exc.http_status)
            return True
        log.warning("fan-out %s: batch of %d messages refused (%s); delivering them one by one", dest.name,
                    len(msgs), exc)
        for m, t in zip(msgs, tables, strict=True):
            if not await deliver_batch(js, sink, dest, [m], [t], stop, stats, max_backoff_s):
                return False
        return True
    for m in msgs:
        await m.ack()
    stats.delivered_batches += 1
    stats.delivered_rows += table.num_rows
    metrics.FANOUT_DELIVERED.labels(destination=dest.name).inc(table.num_rows)
    return True


async def _rebind(js, sub, dest: Destination, health: FetchHealth):
    """After `resubscribe_after_s` of failing fetches: declare the destination's consumer again (where this user
    may; the admin declares it in production) and bind a new pull subscription to it; the old one when that fails."""
    from quant_platform.market.streams import fanout_consumer

    log.warning("%s: fetches from consumer %s have failed for %.1fs; binding the pull subscription again",
                health.name, dest.consumer, health.resubscribe_after_s)

    async def make():
        try:
            await fanout_consumer(js, dest.consumer, dest.consumer_filter)
        except Exception as exc:  # a user that may not declare it: bind to what the admin declared
            log.warning("%s: could not declare consumer %s (%s)", health.name, dest.consumer, fetch_failure_reason(exc))
        return await js.pull_subscribe_bind(dest.consumer, stream=STREAM_NORM)

    return await replace_subscription(sub, health, make)


async def run_destination(url: str, dest: Destination, stop: asyncio.Event, *, fetch_batch: int = 256,
                          max_backoff_s: float = 30.0, stats: FanoutStats | None = None,
                          resubscribe_after_s: float = RESUBSCRIBE_AFTER_S) -> None:
    """One destination's loop: fetch from its own consumer, deliver, ack; on failure keep the batch and
    retry with jittered backoff (extending the ack deadline), so nothing is skipped and nothing blocks
    other destinations. Messages it cannot decode, and messages the destination refuses for good, are parked
    in TICKS_DLQ with the reason.

    The consumer must exist or be creatable: on the production servers the admin declares it at deploy time
    (declare_streams.py reads QP_FANOUT_FILE) and the `fanout` user may only read it."""

    from quant_platform.market.streams import ensure_streams, fanout_consumer

    stats = stats or FanoutStats()
    nc = await connect_worker(url, f"qp-{dest.consumer}")
    js = nc.jetstream()
    await ensure_streams(js)
    await fanout_consumer(js, dest.consumer, dest.consumer_filter)
    sub = await js.pull_subscribe_bind(dest.consumer, stream=STREAM_NORM)
    sink = build_sink(dest, js, nc)
    health = FetchHealth(f"fan-out {dest.name}", dest.consumer, resubscribe_after_s)
    sizer = FetchSizer(fetch_batch)
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(sizer.count(), timeout=0.5)
                sizer.seen(msgs)
                health.ok()
            except TimeoutError:
                if nc.is_connected:
                    health.ok()
                continue
            except Exception as exc:  # e.g. 503 while the consumer's replicas elect a leader: connection.py
                if health.failed(exc):
                    sub = await _rebind(js, sub, dest, health)
                await asyncio.sleep(0.5)
                continue
            if not msgs:  # an idle fetch may return an empty list instead of timing out
                continue
            good, tables, none_wanted = [], [], []
            for m in msgs:
                try:
                    table = dest.keep_rows(decode(m))
                except Exception as exc:  # not canonical ticks: it never will be
                    await park(js, dest, m, f"not an Arrow IPC batch of canonical ticks ({type(exc).__name__}: "
                                            f"{str(exc)[:300]})", stats)
                    continue
                if table.num_rows:
                    good.append(m)
                    tables.append(table)
                else:  # only other instruments' ticks: nothing for this destination
                    none_wanted.append(m)
            if good and not await deliver_batch(js, sink, dest, good, tables, stop, stats, max_backoff_s):
                return  # stopping: unacked messages are redelivered to the next run
            for m in none_wanted:
                await m.ack()
    finally:
        await sink.close()
        try:
            await sub.unsubscribe()
        except Exception:  # noqa: S110
            pass
        await nc.close()
