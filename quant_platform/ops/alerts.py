"""The alert sensor: turns failed asset checks, freshness violations, tick streams filling up (above
QP_STREAM_FILL_ALERT_PCT, default 80%, of their max_bytes), a tick source stopped while others flow and connectors
held back after a fatal error (refused credentials) into one webhook post per incident (Slack-compatible JSON
with a link to the asset), and one more post when the incident is resolved.

Never post an incident twice and never drop one silently: open incidents and undelivered posts live in the
sensor cursor, and the event-log position only moves past events whose alerts are already in it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster import DagsterEventType, EventRecordsFilter

from quant_platform.errors import ConfigError
from quant_platform.ops.webhook import Delivery, WebhookPoster, slack_payload
from quant_platform.platform.settings import load_settings

ENV_WEBHOOK_URL = "QP_ALERT_WEBHOOK_URL"
ENV_DAGSTER_URL = "QP_DAGSTER_URL"
ENV_INTERVAL = "QP_ALERT_INTERVAL"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
DEFAULT_INTERVAL_S = 60

# The "check name" of a freshness incident: an incident is (asset key, check name or this, partition).
FRESHNESS = "freshness"
# Freshness states that open (or keep open) an incident; FreshnessState is a str enum, so values compare.
ALERTING_FRESHNESS = ("FAIL", "WARN")

BATCH = 500
# Bounds on the cursor: beyond them the oldest open incident is forgotten (a later failure re-opens it)
# and the oldest undelivered alert is dropped and counted (the count itself is posted).
MAX_OPEN = 200
MAX_PENDING = 100
SUMMARY_MAX = 400
# A tick stops posting after this long and leaves the rest for the next tick: the sensor has 60 s in all.
POST_BUDGET_S = 20.0
# Webhooks answer fast; a slow one must not use the whole tick on one message.
WEBHOOK_TIMEOUT_MAX_S = 10.0
# A stream above the fill threshold is an incident of the asset the ingest sensor observes, one per stream.
TICK_STREAM_PATH = ["market", "tick_stream"]
STREAM_FILL_CHECK = "stream_fill"
STREAM_STATE_TIMEOUT_S = 3.0
# A connector held back after a persistent fatal error: one incident per connector role.
CONNECTOR_FATAL_CHECK = "connector_fatal"
# A source that stopped while others flow: one incident per source (the ingest sensor's check sources_progressing
# is one check for all sources, so its evaluations are not turned into incidents: a second source stopping while
# the first is still down would go unposted).
SOURCE_STALLED_CHECK = "source_stalled"
SOURCES_PROGRESS_CHECK = "sources_progressing"
FATAL_BACKOFF_HINT = "QP_CONNECTOR_FATAL_BACKOFF_MAX_S (1 h)"


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


def alert_interval_s() -> int:
    """Minimum seconds between ticks, from QP_ALERT_INTERVAL (read when the code location loads)."""
    raw = _env(ENV_INTERVAL)
    if raw is None:
        return DEFAULT_INTERVAL_S
    try:
        value = int(float(raw))
    except ValueError as exc:
        raise ConfigError(f"{ENV_INTERVAL} must be a number of seconds, got {raw!r}") from exc
    if value < 1:
        raise ConfigError(f"{ENV_INTERVAL} must be at least 1 second, got {raw!r}")
    return value


@dataclass(frozen=True)
class AlertSettings:
    webhook_url: str | None = field(repr=False)  # a secret: never in a repr, a log line or the cursor
    dagster_url: str
    timeout_s: float
    attempts: int


def load_alert_settings() -> AlertSettings:
    """Read now, on every tick: changing the webhook needs no code-location reload."""
    base = load_settings()
    return AlertSettings(
        webhook_url=_env(ENV_WEBHOOK_URL),
        dagster_url=(_env(ENV_DAGSTER_URL) or DEFAULT_DAGSTER_URL).rstrip("/"),
        timeout_s=min(base.http_timeout_s, WEBHOOK_TIMEOUT_MAX_S),
        attempts=max(1, base.http_retries),
    )


def incident_id(path: list[str], check: str, partition: str | None) -> str:
    # Asset key parts and check names cannot contain "|"; the partition (which can) comes last.
    return f"{'/'.join(path)}|{check}|{partition or ''}"


@dataclass
class AlertCursor:
    """Everything the sensor remembers between ticks, serialised as its cursor (bounded JSON)."""

    after: int = 0  # event-log storage id: every event up to here is reflected in `open` and `pending`
    # False until the history that predates the sensor has been read; that history is replayed silently
    # and only the incidents still open at its end are posted, so turning the sensor on does not flood.
    caught_up: bool = False
    open: dict[str, dict] = field(default_factory=dict)  # incident id -> incident
    pending: list[dict] = field(default_factory=list)  # alerts not delivered yet, oldest first
    dropped: int = 0  # alerts dropped to keep the cursor bounded, not reported yet
    findings_after: int = 0  # reports/findings materializations up to here are read (reports/alerting.py)
    posted_findings: list[str] = field(default_factory=list)  # finding ids already alerted (bounded)

    VERSION = 1

    @classmethod
    def parse(cls, raw: str | None, log: logging.Logger) -> AlertCursor:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            if data.get("v") != cls.VERSION:
                raise ValueError(f"cursor version {data.get('v')!r}")
            return cls(after=int(data["after"]), caught_up=bool(data["caught_up"]), open=dict(data["open"]),
                       pending=list(data["pending"]), dropped=int(data.get("dropped", 0)),
                       findings_after=int(data.get("findings_after", 0)),
                       posted_findings=list(data.get("posted_findings", [])))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning(f"alert cursor unreadable ({exc}); re-reading the event log from the start "
                        "(only the incidents still open are posted)")
            return cls()

    def dump(self) -> str:
        return json.dumps({"v": self.VERSION, "after": self.after, "caught_up": self.caught_up,
                           "open": self.open, "pending": self.pending, "dropped": self.dropped,
                           "findings_after": self.findings_after, "posted_findings": self.posted_findings},
                          separators=(",", ":"), sort_keys=True)

    def queue(self, kind: str, incident: dict, **extra) -> None:
        if not self.caught_up:
            return
        self.pending.append({**incident, "kind": kind, **extra})
        excess = len(self.pending) - MAX_PENDING
        if excess > 0:
            del self.pending[:excess]
            self.dropped += excess

    def open_incident(self, iid: str, incident: dict) -> None:
        self.open[iid] = incident
        self.queue("opened", incident, at=incident["opened_at"])
        if len(self.open) > MAX_OPEN:
            oldest = sorted(self.open, key=lambda k: self.open[k]["opened_at"])[: len(self.open) - MAX_OPEN]
            for k in oldest:
                del self.open[k]

    def close_incident(self, iid: str, at: float, now: str, run_id: str | None = None) -> None:
        incident = self.open.pop(iid, None)
        if incident is not None:  # the resolution links the run that resolved it, not the failing one
            self.queue("resolved", incident, at=at, now=now, run_id=run_id)


def _meta_text(value) -> str:
    value = getattr(value, "value", value)
    if isinstance(value, float):
        return f"{value:.6g}"
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= 80 else text[:79] + "…"


def check_summary(description: str | None, metadata: dict) -> str:
    """The check's description, then its metadata as `key=value` pairs, cut to SUMMARY_MAX characters."""
    parts = [description.strip()] if description and description.strip() else []
    pairs = [f"{k}={_meta_text(v)}" for k, v in sorted(metadata.items()) if not k.startswith("dagster/")]
    if pairs:
        parts.append(", ".join(pairs))
    text = " — ".join(parts)
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def _fmt_delta(td: timedelta) -> str:
    """1d 2h, 1h 5m, 30m, 90s: the units a policy is written in."""
    seconds = int(td.total_seconds())
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    parts = []
    for name, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{name}")
    return " ".join(parts) or "0s"


def describe_freshness_policy(policy) -> str | None:
    # Duck-typed: the policy classes are not exported from the dagster package.
    if policy is None:
        return None
    if getattr(policy, "deadline_cron", None):
        return (f"due by each `{policy.deadline_cron}` ({policy.timezone}) deadline, materialized at most "
                f"{_fmt_delta(policy.lower_bound_delta)} before it")
    fail = getattr(policy, "fail_window", None)
    if fail is not None:
        text = f"materialized at least every {_fmt_delta(fail.to_timedelta())}"
        if policy.warn_window:
            text += f" (warn after {_fmt_delta(policy.warn_window.to_timedelta())})"
        return text
    return None


class _AssetFacts:
    """Owners and freshness policy of the assets in this code location; run partitions; each read once."""

    def __init__(self, instance: dg.DagsterInstance, repository_def: dg.RepositoryDefinition | None):
        self._instance = instance
        self._graph = repository_def.asset_graph if repository_def is not None else None
        self._run_partitions: dict[str, str | None] = {}

    def _node(self, key: dg.AssetKey):
        return self._graph.get(key) if self._graph is not None and self._graph.has(key) else None

    def owners(self, key: dg.AssetKey) -> list[str]:
        node = self._node(key)
        return list(node.owners) if node is not None else []

    def freshness_policy(self, key: dg.AssetKey):
        node = self._node(key)
        return node.freshness_policy if node is not None else None

    def run_partition(self, run_id: str) -> str | None:
        """A check evaluation of a partitioned asset does not carry its partition: the run's tag does."""
        if not run_id:
            return None
        if run_id not in self._run_partitions:
            run = self._instance.get_run_by_id(run_id)
            self._run_partitions[run_id] = run.tags.get("dagster/partition") if run else None
        return self._run_partitions[run_id]

    def last_materialized(self, key: dg.AssetKey) -> float | None:
        entry = self._instance.get_latest_materialization_event(key)
        return entry.timestamp if entry else None


def read_events(instance: dg.DagsterInstance, after: int) -> tuple[list[dg.EventLogRecord], int, bool]:
    """Check evaluations and freshness state changes with storage id > `after`, in storage-id order.

    Returns (records, new position, caught up). Two queries, one per event type, like the governance audit
    sensor: a full batch of one type may stop short of the other's events, so the position only advances
    as far as both are read. The storage's get_event_records takes the same EventRecordsFilter as the
    instance's (deprecated) one and has no fetch_* equivalent for these two event types.
    """
    storage = instance.event_log_storage
    fetched = [
        storage.get_event_records(EventRecordsFilter(event_type=t, after_cursor=after), limit=BATCH,
                                  ascending=True)
        for t in (DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.FRESHNESS_STATE_CHANGE)
    ]
    full = [recs[-1].storage_id for recs in fetched if len(recs) == BATCH]
    every = sorted((r for recs in fetched for r in recs), key=lambda r: r.storage_id)
    upto = min(full) if full else max((r.storage_id for r in every), default=after)
    return [r for r in every if r.storage_id <= upto], upto, not full


def apply_check_evaluation(cursor: AlertCursor, record: dg.EventLogRecord, facts: _AssetFacts) -> None:
    entry = record.event_log_entry
    ev = entry.dagster_event.event_specific_data  # AssetCheckEvaluation
    if list(ev.asset_key.path) == TICK_STREAM_PATH and ev.check_name == SOURCES_PROGRESS_CHECK:
        return  # posted per source by apply_source_liveness
    partition = ev.partition or facts.run_partition(entry.run_id)
    iid = incident_id(list(ev.asset_key.path), ev.check_name, partition)
    if ev.passed:
        cursor.close_incident(iid, at=entry.timestamp, now="check passed", run_id=entry.run_id or None)
        return
    incident = cursor.open.get(iid)
    if incident is not None:  # still failing: the same incident, no new post
        incident["count"] += 1
        return
    cursor.open_incident(iid, {
        "path": list(ev.asset_key.path), "check": ev.check_name, "partition": partition,
        "severity": ev.severity.value, "summary": check_summary(ev.description, dict(ev.metadata)),
        "run_id": entry.run_id or None, "owners": facts.owners(ev.asset_key), "opened_at": entry.timestamp,
        "count": 1,
    })


def apply_freshness_change(cursor: AlertCursor, record: dg.EventLogRecord, facts: _AssetFacts) -> None:
    change = record.event_log_entry.dagster_event.event_specific_data  # FreshnessStateChange
    state = change.new_state.value
    iid = incident_id(list(change.key.path), FRESHNESS, None)
    incident = cursor.open.get(iid)
    if state not in ALERTING_FRESHNESS:  # PASS, or UNKNOWN / NOT_APPLICABLE (wiped, policy removed)
        cursor.close_incident(iid, at=change.state_change_timestamp, now=f"freshness {state}")
        return
    if incident is not None:
        if incident["severity"] == "WARN" and state == "FAIL":
            incident["severity"] = "FAIL"
            cursor.queue("escalated", incident, at=change.state_change_timestamp)
        else:
            incident["severity"] = state
        return
    details = []
    last = facts.last_materialized(change.key)
    details.append(f"last materialized {datetime.fromtimestamp(last, UTC):%Y-%m-%d %H:%M UTC}" if last
                   else "never materialized")
    policy = describe_freshness_policy(facts.freshness_policy(change.key))
    if policy:
        details.append(f"policy: {policy}")
    cursor.open_incident(iid, {
        "path": list(change.key.path), "check": FRESHNESS, "partition": None, "severity": state,
        "summary": "; ".join(details), "run_id": None, "owners": facts.owners(change.key),
        "opened_at": change.state_change_timestamp, "count": 1,
    })


def apply_stream_fill(cursor: AlertCursor, state: dict, now: float) -> None:
    """Open an incident per tick stream above the fill threshold (observe.stream_fill), resolve it once the
    stream is below again. `state` is streams.stream_state() as the ingest sensor reads it."""
    from quant_platform.market import observe

    full = {f["stream"]: f for f in observe.stream_fill(state)}
    for name, st in sorted(state.items()):
        if not st.get("exists") or int(st.get("max_bytes") or -1) <= 0:
            continue
        iid = incident_id(TICK_STREAM_PATH, f"{STREAM_FILL_CHECK}.{name}", None)
        f = full.get(name)
        if f is None:
            pct = 100 * int(st.get("bytes", 0)) / int(st["max_bytes"])
            cursor.close_incident(iid, at=now, now=f"{name} holds {pct:.0f}% of its max_bytes")
            continue
        if iid in cursor.open:
            cursor.open[iid]["count"] += 1
            continue
        effect = ("connectors' batches are refused (kept and retried) once it is full" if f["discard"] == "new"
                  else "its oldest messages are dropped once it is full")
        cursor.open_incident(iid, {
            "path": list(TICK_STREAM_PATH), "check": f"{STREAM_FILL_CHECK}.{name}", "partition": None,
            "severity": "WARN", "run_id": None, "owners": ["team:market-data"], "opened_at": now, "count": 1,
            "summary": (f"JetStream stream {name} holds {f['fill']:.0%} of its max_bytes ({f['bytes']:,} of "
                        f"{f['max_bytes']:,} bytes, discard {f['discard']}): {effect}. Raise its "
                        "QP_TICKS_*_MAX_BYTES (and the server's max_file_store) or shorten its max age."),
        })


def apply_connector_fatal(cursor: AlertCursor, incidents: dict[str, dict], now: float) -> None:
    """One incident per connector the supervisor holds back after a persistent fatal error (refused credentials,
    a refused subscription: supervisor.read_connector_incidents()), resolved once it no longer reports it."""
    prefix = f"{'/'.join(TICK_STREAM_PATH)}|{CONNECTOR_FATAL_CHECK}."
    current = set()
    for role, inc in sorted(incidents.items()):
        iid = incident_id(TICK_STREAM_PATH, f"{CONNECTOR_FATAL_CHECK}.{role}", None)
        current.add(iid)
        if iid in cursor.open:
            cursor.open[iid]["count"] = int(inc.get("stops", 1))
            continue
        cursor.open_incident(iid, {
            "path": list(TICK_STREAM_PATH), "check": f"{CONNECTOR_FATAL_CHECK}.{role}", "partition": None,
            "severity": "ERROR", "run_id": None, "owners": ["team:market-data"],
            "opened_at": float(inc.get("since") or now), "count": int(inc.get("stops", 1)),
            "summary": (f"{role} stopped on {inc.get('error')}: {inc.get('reason')}. Retrying cannot fix this (the "
                        f"vendor may lock the account): restarts back off, next in {inc.get('restart_in_s')} s, "
                        f"doubling up to {FATAL_BACKOFF_HINT}. Fix the credentials or subscription, then restart "
                        "ingest.")[:SUMMARY_MAX],
        })
    for iid in [i for i in cursor.open if i.startswith(prefix) and i not in current]:
        cursor.close_incident(iid, at=now, now="the connector is running again (or ingest stopped)")


def apply_source_liveness(cursor: AlertCursor, state: dict, now: float, classes: dict[str, set[str]] | None = None
                          ) -> None:
    """One incident per source that stopped while others flow (observe.source_liveness on the tick streams'
    state), posted once; resolved when the source flows again, leaves its trading hours or leaves the stream. While
    every source is stopped an open incident stays open (stream_progressing tells that story)."""
    from quant_platform.market import observe

    if classes is None:
        from quant_platform.market.instruments import InstrumentMaster

        classes = observe.source_classes(InstrumentMaster.load())
    rows = {r["source"]: r for r in observe.source_liveness(state, now, classes)}
    prefix = f"{'/'.join(TICK_STREAM_PATH)}|{SOURCE_STALLED_CHECK}."
    for src, r in sorted(rows.items()):
        iid = incident_id(TICK_STREAM_PATH, f"{SOURCE_STALLED_CHECK}.{src}", None)
        if r["stalled"]:
            if iid in cursor.open:
                cursor.open[iid]["count"] += 1
                continue
            last = (datetime.fromtimestamp(r["last_time"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                    if r["last_time"] else "never")
            flowing = ", ".join(s for s, x in sorted(rows.items()) if x["fresh"])
            cursor.open_incident(iid, {
                "path": list(TICK_STREAM_PATH), "check": f"{SOURCE_STALLED_CHECK}.{src}", "partition": None,
                "severity": "WARN", "run_id": None, "owners": ["team:market-data"], "opened_at": now, "count": 1,
                "summary": (f"Source {src} stopped: its last raw message (TICKS_RAW seq {r['last_seq']}) was stored "
                            f"{last}, {r['age_s'] / 60:.0f} min ago, during its trading hours, while {flowing} "
                            "kept flowing. Look at its connector (logs, qp_connector_reconnects_total, "
                            "`quant-platform ingest status`) and the vendor's status page.")[:SUMMARY_MAX],
            })
        elif iid in cursor.open and (r["fresh"] or not r["expected"]):
            cursor.close_incident(iid, at=now, now=f"{src} flowing again" if r["fresh"]
                                  else f"{src} outside its trading hours")
    for iid in [i for i in cursor.open if i.startswith(prefix) and i[len(prefix):].split("|")[0] not in rows]:
        cursor.close_incident(iid, at=now, now="the source is no longer in the stream")


def read_stream_state_for_alerts(log: logging.Logger) -> dict | None:
    """The tick streams' state when a NATS server is known (QP_NATS_URL or a running `ingest run`), else None;
    an unreachable server is logged and skipped (its incidents stay as they are)."""
    from quant_platform.market import observe

    url = observe.running_nats_url(load_settings().home)
    if not url:
        return None
    try:
        return observe.stream_state_now(url, timeout=STREAM_STATE_TIMEOUT_S)
    except Exception as exc:  # the stream being down is the ingest sensor's business, not a failed alert tick
        log.warning(f"tick stream state unavailable for the fill alert ({type(exc).__name__}: {exc})")
        return None


def deliver(cursor: AlertCursor, poster: WebhookPoster, dagster_url: str, log: logging.Logger,
            budget_s: float = POST_BUDGET_S) -> tuple[int, str | None]:
    """Post pending alerts oldest first until one cannot be delivered. Returns (posted, problem)."""
    deadline = time.monotonic() + budget_s
    posted = 0
    while cursor.pending or cursor.dropped:
        if time.monotonic() >= deadline:
            return posted, "out of time for this tick"
        alert = cursor.pending[0] if not cursor.dropped else {"kind": "dropped", "count": cursor.dropped}
        if alert["kind"] == "finding":
            from quant_platform.reports.alerting import finding_payload

            payload = finding_payload(alert, dagster_url)
        else:
            payload = slack_payload(alert, dagster_url)
        outcome = poster.post(payload, deadline=deadline)
        if outcome.result is Delivery.UNAVAILABLE:
            log.warning(f"alert webhook unavailable ({outcome.reason}, {outcome.attempts} attempt(s)); "
                        f"{len(cursor.pending)} alert(s) kept for the next tick")
            return posted, f"webhook unavailable: {outcome.reason}"
        if outcome.result is Delivery.REJECTED:
            log.error(f"alert webhook rejected a {alert['kind']} alert ({outcome.reason}); dropping it")
        else:
            posted += 1
        if alert["kind"] == "dropped":
            cursor.dropped = 0
        else:
            cursor.pending.pop(0)
    return posted, None


def evaluate_alerts(instance: dg.DagsterInstance, raw_cursor: str | None, settings: AlertSettings,
                    repository_def: dg.RepositoryDefinition | None, log: logging.Logger, *,
                    stream_state: dict | None = None) -> tuple[str, str]:
    """One tick: fold new events (and, given `stream_state`, the tick streams' fill) into the incidents, post
    what is new. Returns (cursor, summary)."""
    cursor = AlertCursor.parse(raw_cursor, log)
    facts = _AssetFacts(instance, repository_def)
    records, upto, caught_up = read_events(instance, cursor.after)
    replaying = not cursor.caught_up
    for record in records:
        if record.event_log_entry.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            apply_check_evaluation(cursor, record, facts)
        else:
            apply_freshness_change(cursor, record, facts)
    cursor.after = upto
    if replaying and caught_up:
        cursor.caught_up = True
        for incident in sorted(cursor.open.values(), key=lambda i: i["opened_at"]):
            cursor.queue("opened", incident, at=incident["opened_at"])
    if stream_state is not None and cursor.caught_up:
        apply_stream_fill(cursor, stream_state, time.time())
        apply_source_liveness(cursor, stream_state, time.time())
    if cursor.caught_up:
        from quant_platform.market.supervisor import read_connector_incidents

        apply_connector_fatal(cursor, read_connector_incidents(), time.time())
    from quant_platform.reports.alerting import apply_findings

    apply_findings(cursor, instance)  # findings at or above QP_FINDING_ALERT_PROBABILITY, once each
    poster = WebhookPoster(settings.webhook_url or "", timeout_s=settings.timeout_s, attempts=settings.attempts)
    try:
        posted, problem = deliver(cursor, poster, settings.dagster_url, log)
    finally:
        poster.close()
    summary = (f"{len(records)} new event(s), {posted} alert(s) posted, {len(cursor.open)} open incident(s)"
               + (f", {len(cursor.pending)} pending ({problem})" if cursor.pending else "")
               + ("" if cursor.caught_up else ", still reading history"))
    return cursor.dump(), summary


@dg.sensor(
    name="alert_sensor",
    minimum_interval_seconds=alert_interval_s(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts failed asset checks, freshness violations (FAIL or WARN, as recorded by the "
    "freshness daemon), tick streams above QP_STREAM_FILL_ALERT_PCT (default 80%) of their max_bytes, a tick source "
    "that stopped while others flow (one incident per source) and connectors "
    "held back after a fatal error (refused credentials) to the "
    "webhook in QP_ALERT_WEBHOOK_URL, once per incident, and again when resolved.",
)
def alert_sensor(context: dg.SensorEvaluationContext):
    settings = load_alert_settings()
    if not settings.webhook_url:
        return dg.SkipReason(f"{ENV_WEBHOOK_URL} is not set: alerting is off (no incident is tracked)")
    try:
        cursor, summary = evaluate_alerts(context.instance, context.cursor, settings, context.repository_def,
                                          context.log, stream_state=read_stream_state_for_alerts(context.log))
    except Exception as exc:
        if "run-sharded" in str(exc):
            return dg.SkipReason("the instance's event log is run-sharded SQLite: use the platform's instance "
                                 "config (ConsolidatedSqliteEventLogStorage) or PostgreSQL")
        raise
    context.log.info(summary)
    return dg.SensorResult(skip_reason=summary, cursor=cursor)
