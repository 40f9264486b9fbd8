"""`quant-platform ingest run`: runs connectors, normalizers, landers and fan-out workers as processes,
restarts the ones that die (at once; a connector stopped by a persistent fatal error - refused credentials -
only after an exponential backoff, with an alert), and scales normalizers and landers between a min and a max on
consumer lag (num_pending + num_ack_pending, the signal KEDA's JetStream scaler reads), logging every decision.

Never scale on anything the worker reports about itself: lag is read from JetStream, the source of truth. Never put
the NATS URL on a worker's command line (it carries a password, and /proc/<pid>/cmdline is world-readable): the
workers get it in QP_NATS_URL. Never knock on a vendor's door every interval with credentials it refused (it can
lock the account).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter, Gauge

from quant_platform.market import metrics

log = logging.getLogger("quant_platform.market.supervisor")

FATAL_BACKOFF_ENV = "QP_CONNECTOR_FATAL_BACKOFF_S"
FATAL_BACKOFF_MAX_ENV = "QP_CONNECTOR_FATAL_BACKOFF_MAX_S"
INCIDENTS_FILE = "connector_fatal.json"

CONNECTOR_FATAL = Gauge("qp_connector_fatal", "1 while a worker is held back after a persistent fatal error "
                        "(e.g. refused credentials)", ["role"], registry=metrics.REGISTRY)
CONNECTOR_FATAL_STOPS = Counter("qp_connector_fatal_stops", "Worker stops on a persistent fatal error",
                                ["role", "error"], registry=metrics.REGISTRY)


@dataclass(frozen=True)
class FatalBackoff:
    """Restart delay after a persistent fatal stop: `initial_s` doubling per consecutive stop, at most `max_s`."""

    initial_s: float = 30.0
    max_s: float = 3600.0

    def delay(self, stops: int) -> float:
        return min(self.max_s, self.initial_s * 2 ** min(max(stops, 1) - 1, 32))

    @classmethod
    def from_env(cls) -> FatalBackoff:
        """QP_CONNECTOR_FATAL_BACKOFF_S (default 30) and QP_CONNECTOR_FATAL_BACKOFF_MAX_S (default 3600)."""
        from quant_platform.platform.settings import SettingError, bounded_env

        try:
            initial = bounded_env(FATAL_BACKOFF_ENV, 30.0, 1, 86_400)
            most = bounded_env(FATAL_BACKOFF_MAX_ENV, 3600.0, 1, 7 * 86_400)
        except SettingError as exc:
            raise SystemExit(str(exc)) from None
        return cls(initial, max(initial, most))


@dataclass
class FatalIncident:
    """A role held back after persistent fatal stops; open until a restarted worker stays up."""

    role: str
    source: str
    error: str
    reason: str
    since: float
    stops: int = 1
    restart_at: float = 0.0  # time.monotonic()
    delay_s: float = 0.0
    next_restart: float = 0.0  # epoch seconds, for people and the alert
    waiting_pid: int | None = None  # the dead worker whose restart is held back

    def as_dict(self) -> dict:
        return {"role": self.role, "source": self.source, "error": self.error, "reason": self.reason,
                "since": self.since, "stops": self.stops, "restart_in_s": self.delay_s,
                "next_restart": self.next_restart}


def _state_dir(state_dir: Path | None) -> Path:
    if state_dir is not None:
        return Path(state_dir)
    from quant_platform.platform.settings import load_settings

    return load_settings().home / "ingest"


def read_connector_incidents(state_dir: Path | None = None) -> dict[str, dict]:
    """{role: incident} the running supervisor reports (<QP_HOME>/ingest/connector_fatal.json); {} when none."""
    path = _state_dir(state_dir) / INCIDENTS_FILE
    try:
        return dict(json.loads(path.read_text()).get("incidents", {}))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as exc:
        log.warning(json.dumps({"event": "incidents_unreadable", "path": str(path), "error": str(exc)[:200]}))
        return {}


@dataclass
class ScalePolicy:
    consumer: str
    min_workers: int = 1
    max_workers: int = 4
    lag_per_worker: int = 20_000  # one more worker per this many unprocessed messages
    cooldown_ticks: int = 5  # consecutive low readings before removing a worker

    def desired(self, lag: int, current: int, low_streak: int) -> tuple[int, int]:
        want = max(self.min_workers, min(self.max_workers, math.ceil(lag / self.lag_per_worker) or 1))
        if want > current:
            return want, 0
        if want < current:
            low_streak += 1
            if low_streak >= self.cooldown_ticks:
                return current - 1, 0  # step down one at a time
            return current, low_streak
        return current, 0


@dataclass
class Decision:
    at: float
    role: str
    lag: int
    before: int
    after: int

    def as_json(self) -> str:
        return json.dumps({"event": "autoscale", "role": self.role, "lag": self.lag, "from": self.before,
                           "to": self.after, "at": round(self.at, 3)})


@dataclass
class Supervisor:
    nats_url: str  # the supervisor's own connection (lag reads); the workers' too unless role_urls names theirs
    lake_root: Path | str  # a folder, or an object-store URL (s3://...) passed to the workers as it is
    connectors: list[str] = field(default_factory=list)  # roles such as connector:binance, simulator
    fanouts: list[str] = field(default_factory=list)
    normalizer_policy: ScalePolicy = field(default_factory=lambda: ScalePolicy("normalizer"))
    lander_policy: ScalePolicy = field(default_factory=lambda: ScalePolicy("lander", 1, 2, 200_000))
    interval_s: float = 2.0
    metrics_base_port: int = 0
    decisions: list[Decision] = field(default_factory=list)
    procs: dict[str, list[subprocess.Popen]] = field(default_factory=dict)
    _ports: list = field(default_factory=list)  # (process, metrics port) of every worker started
    _fill_logged: dict = field(default_factory=dict)  # stream -> when its fill was last logged
    fatal_backoff: FatalBackoff = field(default_factory=FatalBackoff.from_env)
    state_dir: Path | None = None  # default <QP_HOME>/ingest: fatal-stop records and the incidents file
    healthy_after_s: float = 60.0  # a worker restarted after a fatal stop and up this long ends the incident
    incidents: dict[str, FatalIncident] = field(default_factory=dict)
    _reports: dict = field(default_factory=dict)  # pid -> the fatal-stop record file its worker may write
    _started: dict = field(default_factory=dict)  # pid -> time.monotonic() at start
    _spawned: int = 0
    # role ("normalizer", "lander", ...) -> the NATS URL its workers get (their own NATS user), e.g. compose's
    # QP_NATS_URL_NORMALIZER / QP_NATS_URL_LANDER; roles not named get nats_url
    role_urls: dict[str, str] = field(default_factory=dict)
    declare: bool = True  # declare the streams at start (False: a read-only user; the streams exist already)
    leaving_kill_after_s: float = 40.0  # a scaled-in worker still alive this long after its SIGTERM is killed
    _leaving: list = field(default_factory=list)  # (process, role, kill deadline) of scaled-in workers

    # ----------------------------------------------------------------------------------- processes
    def _spawn(self, role: str) -> subprocess.Popen:
        port = 0
        if self.metrics_base_port:
            # the lowest port above the supervisor's own that no running worker holds: a replaced or scaled-in
            # worker's port is reused, so Prometheus keeps scraping a bounded set of targets
            used = {pt for pr, pt in self._ports if pr.poll() is None}
            port = next(self.metrics_base_port + k for k in range(1, 10_000) if self.metrics_base_port + k not in used)
        from quant_platform.market.connectors.base import FATAL_REPORT_ENV

        cmd = [sys.executable, "-m", "quant_platform.market.worker", "--role", role,
               "--lake", str(self.lake_root), "--metrics-port", str(port)]
        self._spawned += 1
        reports = _state_dir(self.state_dir) / "fatal-reports"
        reports.mkdir(parents=True, exist_ok=True)
        report = reports / f"{os.getpid()}-{self._spawned}.json"
        report.unlink(missing_ok=True)
        url = self.role_urls.get(role.split(":", 1)[0], self.nats_url)
        proc = subprocess.Popen(cmd, env={**os.environ, "QP_NATS_URL": url, FATAL_REPORT_ENV: str(report)},
                                start_new_session=True)
        self._reports[proc.pid] = report
        self._started[proc.pid] = time.monotonic()
        if port:
            self._ports = [(pr, pt) for pr, pt in self._ports if pr.poll() is None] + [(proc, port)]
        log.info(json.dumps({"event": "start", "role": role, "pid": proc.pid, "metrics_port": port}))
        return proc

    def count(self, role: str) -> int:
        return len([p for p in self.procs.get(role, []) if p.poll() is None])

    def scale_to(self, role: str, n: int) -> None:
        alive = [p for p in self.procs.get(role, []) if p.poll() is None]
        while len(alive) < n:
            alive.append(self._spawn(role))
        while len(alive) > n:
            p = alive.pop()
            p.send_signal(signal.SIGTERM)  # graceful: unacked messages are redelivered to the others
            self._leaving.append((p, role, time.monotonic() + self.leaving_kill_after_s))
            self._started.pop(p.pid, None)
            report = self._reports.pop(p.pid, None)
            if report is not None:
                report.unlink(missing_ok=True)
            log.info(json.dumps({"event": "stop", "role": role, "pid": p.pid}))
        self.procs[role] = alive
        metrics.WORKERS.labels(role=role).set(len(alive))

    def reap_leaving(self) -> None:
        """Collect the scaled-in workers that exited; kill (and log) one that outlived its stop deadline."""
        now, keep = time.monotonic(), []
        for p, role, deadline in self._leaving:
            if p.poll() is not None:
                continue
            if now >= deadline:
                log.warning(json.dumps({"event": "kill", "role": role, "pid": p.pid,
                                        "reason": f"still running {self.leaving_kill_after_s:.0f}s after SIGTERM"}))
                p.kill()
                p.wait()
                continue
            keep.append((p, role, deadline))
        self._leaving = keep

    def restart_dead(self) -> None:
        """Restart dead workers at once, except one that stopped on a persistent fatal error (its record says
        so): that one waits FatalBackoff's delay, doubling per consecutive stop, and its incident is logged,
        counted in qp_connector_fatal and written for the alert sensor."""
        now = time.monotonic()
        for role, plist in self.procs.items():
            for i, p in enumerate(plist):
                incident = self.incidents.get(role)
                if p.poll() is None:
                    if (incident is not None and incident.waiting_pid is None
                            and now - self._started.get(p.pid, now) >= self.healthy_after_s):
                        self._close_incident(role, "running again")
                    continue
                if incident is not None and incident.waiting_pid == p.pid:
                    if now < incident.restart_at:
                        continue  # held back
                    incident.waiting_pid = None
                    log.warning(json.dumps({"event": "restart", "role": role, "pid": p.pid, "exit": p.returncode,
                                            "after_fatal_stops": incident.stops}))
                    plist[i] = self._spawn(role)
                    continue
                report = self._take_report(p.pid)
                if report is not None and report.get("persistent"):
                    self._hold_back(role, p, report, now)
                    continue
                log.warning(json.dumps({"event": "restart", "role": role, "pid": p.pid, "exit": p.returncode}))
                plist[i] = self._spawn(role)

    def _take_report(self, pid: int) -> dict | None:
        self._started.pop(pid, None)
        path = self._reports.pop(pid, None)
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        finally:
            path.unlink(missing_ok=True)

    def _hold_back(self, role: str, proc: subprocess.Popen, report: dict, now: float) -> None:
        incident = self.incidents.get(role)
        if incident is None:
            incident = self.incidents[role] = FatalIncident(
                role, str(report.get("source", role)), str(report.get("error", "")), str(report.get("reason", "")),
                since=float(report.get("at") or time.time()), stops=0)
        incident.stops += 1
        incident.error, incident.reason = str(report.get("error", "")), str(report.get("reason", ""))
        delay = self.fatal_backoff.delay(incident.stops)
        incident.restart_at, incident.waiting_pid = now + delay, proc.pid
        incident.delay_s, incident.next_restart = delay, time.time() + delay
        CONNECTOR_FATAL.labels(role=role).set(1)
        CONNECTOR_FATAL_STOPS.labels(role=role, error=incident.error).inc()
        log.error(json.dumps({"event": "connector_fatal", "role": role, "source": incident.source,
                              "error": incident.error, "reason": incident.reason, "pid": proc.pid,
                              "exit": proc.returncode, "stops": incident.stops, "restart_in_s": delay}))
        self._write_incidents()

    def _close_incident(self, role: str, why: str) -> None:
        incident = self.incidents.pop(role, None)
        if incident is None:
            return
        CONNECTOR_FATAL.labels(role=role).set(0)
        log.info(json.dumps({"event": "connector_fatal_resolved", "role": role, "stops": incident.stops,
                             "why": why}))
        self._write_incidents()

    def _write_incidents(self) -> None:
        """<state dir>/connector_fatal.json: the incidents open now (read by the alert sensor), atomically."""
        path = _state_dir(self.state_dir) / INCIDENTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{INCIDENTS_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"updated_at": time.time(), "supervisor_pid": os.getpid(),
                                   "incidents": {r: i.as_dict() for r, i in self.incidents.items()}}))
        os.replace(tmp, path)

    def stop_all(self, timeout_s: float = 20) -> None:
        for role in list(self.incidents):  # nothing is held back once ingest stops
            self._close_incident(role, "ingest stopped")
        for plist in self.procs.values():
            for p in plist:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        leaving = [p for p, _role, _deadline in self._leaving]
        self._leaving = []
        for plist in [*self.procs.values(), leaving]:
            for p in plist:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    # ----------------------------------------------------------------------------------- control loop
    async def read_lag(self, js) -> dict[str, int]:
        from quant_platform.market.streams import stream_state

        state = await stream_state(js)
        self._warn_full_streams(state)
        lags = {}
        for stream in state.values():
            for name, c in stream.get("consumers", {}).items():
                lags[name] = int(c.get("lag", 0))
        for name, lag in lags.items():
            metrics.CONSUMER_LAG.labels(consumer=name).set(lag)
        return lags

    def _warn_full_streams(self, state: dict) -> None:
        """One log line a minute per stream above QP_STREAM_FILL_ALERT_PCT of its max_bytes (the alert sensor
        posts the same signal from Dagster)."""
        from quant_platform.market.observe import stream_fill

        now = time.monotonic()
        for f in stream_fill(state):
            if now - self._fill_logged.get(f["stream"], -1e9) >= 60:
                self._fill_logged[f["stream"]] = now
                log.warning(json.dumps({"event": "stream_fill", **f}))

    def decide(self, role: str, policy: ScalePolicy, lag: int, streaks: dict[str, int]) -> None:
        current = self.count(role)
        target, streaks[role] = policy.desired(lag, current, streaks.get(role, 0))
        if target != current:
            d = Decision(time.time(), role, lag, current, target)
            self.decisions.append(d)
            log.info(d.as_json())
            self.scale_to(role, target)

    async def run(self, stop: asyncio.Event) -> None:
        import nats

        from quant_platform.market.connection import connect_options
        from quant_platform.market.streams import ensure_streams

        nc = await nats.connect(**connect_options(self.nats_url), max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                name="qp-supervisor")
        js = nc.jetstream()
        if self.declare:
            await ensure_streams(js)
        if self.metrics_base_port:  # the supervisor's own gauges: consumer lag and worker counts
            metrics.serve_metrics(self.metrics_base_port)
        for role in self.connectors + [f"fanout:{f}" for f in self.fanouts]:
            self.scale_to(role, 1)
        self.scale_to("normalizer", self.normalizer_policy.min_workers)
        self.scale_to("lander", self.lander_policy.min_workers)
        streaks: dict[str, int] = {}
        try:
            while not stop.is_set():
                try:
                    lags = await self.read_lag(js)
                    self.decide("normalizer", self.normalizer_policy, lags.get("normalizer", 0), streaks)
                    self.decide("lander", self.lander_policy, lags.get("lander", 0), streaks)
                except Exception as exc:  # NATS restarting: keep the workers, try again next tick
                    log.warning(json.dumps({"event": "lag_unavailable", "error": str(exc)[:200]}))
                self.restart_dead()
                self.reap_leaving()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
                except TimeoutError:
                    pass
        finally:
            self.stop_all()
            await nc.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
