"""`quant-platform ingest run`: runs connectors, normalizers, landers and fan-out workers as processes,
restarts the ones that die, and scales normalizers and landers between a min and a max on consumer lag
(num_pending + num_ack_pending, the signal KEDA's JetStream scaler reads), logging every decision.

Never scale on anything the worker reports about itself: lag is read from JetStream, the source of truth. Never put
the NATS URL on a worker's command line (it carries a password, and /proc/<pid>/cmdline is world-readable): the
workers get it in QP_NATS_URL.
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

from quant_platform.market import metrics

log = logging.getLogger("quant_platform.market.supervisor")


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
    nats_url: str
    lake_root: Path
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

    # ----------------------------------------------------------------------------------- processes
    def _spawn(self, role: str) -> subprocess.Popen:
        port = 0
        if self.metrics_base_port:
            # the lowest port above the supervisor's own that no running worker holds: a replaced or scaled-in
            # worker's port is reused, so Prometheus keeps scraping a bounded set of targets
            used = {pt for pr, pt in self._ports if pr.poll() is None}
            port = next(self.metrics_base_port + k for k in range(1, 10_000) if self.metrics_base_port + k not in used)
        cmd = [sys.executable, "-m", "quant_platform.market.worker", "--role", role,
               "--lake", str(self.lake_root), "--metrics-port", str(port)]
        proc = subprocess.Popen(cmd, env={**os.environ, "QP_NATS_URL": self.nats_url}, start_new_session=True)
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
            log.info(json.dumps({"event": "stop", "role": role, "pid": p.pid}))
        self.procs[role] = alive
        metrics.WORKERS.labels(role=role).set(len(alive))

    def restart_dead(self) -> None:
        for role, plist in self.procs.items():
            for i, p in enumerate(plist):
                if p.poll() is not None:
                    log.warning(json.dumps({"event": "restart", "role": role, "pid": p.pid, "exit": p.returncode}))
                    plist[i] = self._spawn(role)

    def stop_all(self, timeout_s: float = 20) -> None:
        for plist in self.procs.values():
            for p in plist:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for plist in self.procs.values():
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
