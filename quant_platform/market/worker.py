"""One pipeline process: a connector, a replay, the simulator, a normalizer, a lander or a fan-out
destination, with its own /metrics; the supervisor starts, scales and restarts these.

Never share state between workers except through JetStream: each one can be killed at any instant.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import time
from pathlib import Path

from quant_platform.market import metrics
from quant_platform.market.connection import connect_worker, has_connected
from quant_platform.platform.settings import SettingError, bounded_env

log = logging.getLogger("quant_platform.market.worker")
STOP_GRACE_S = 10.0
# Connectors sit on the receipt -> durable-ack path, workers behind JetStream only add lag they catch up on:
# on shared cores the workers run at a lower priority so a busy normalizer cannot delay an ack.
NICE_ENV = "QP_WORKER_NICE"
DEFAULT_NICE = 10
BACKGROUND_ROLES = ("normalizer", "lander", "fanout:")


EAGER_ENV = "QP_PUBLISH_EAGER"
MAX_DELAY_ENV = "QP_PUBLISH_MAX_DELAY_MS"


def publisher_options() -> dict:
    """Connector batching from the environment: QP_PUBLISH_MAX_DELAY_MS (default 5) bounds how long a frame
    waits for its batch; QP_PUBLISH_EAGER=1 sends a frame at once when no batch awaits its ack (lower latency
    at low rates, more and smaller messages, so more CPU)."""
    try:
        eager = bounded_env(EAGER_ENV, 0, 0, 1, integer=True)
        delay_ms = bounded_env(MAX_DELAY_ENV, 5, 0.001, 10_000)
    except SettingError as exc:
        raise SystemExit(str(exc)) from None
    return {"eager_inflight": int(eager), "max_delay_s": delay_ms / 1000}


ROLLUP_AGE_ENV, ROLLUP_ROWS_ENV = "QP_LANDING_ROLLUP_S", "QP_LANDING_ROLLUP_ROWS"


def lander_options() -> dict:
    """The lander's in-day rollup from the environment (market/landing_rollup.py): QP_LANDING_ROLLUP_S
    (default 300; 0 turns the rollup off) and QP_LANDING_ROLLUP_ROWS (default 250,000)."""
    from quant_platform.market.landing_rollup import ROLLUP_MAX_AGE_S, ROLLUP_MAX_ROWS

    try:
        age = bounded_env(ROLLUP_AGE_ENV, ROLLUP_MAX_AGE_S, 0, 86_400)
        rows = bounded_env(ROLLUP_ROWS_ENV, ROLLUP_MAX_ROWS, 1_000, 10_000_000, integer=True)
    except SettingError as exc:
        raise SystemExit(str(exc)) from None
    return {"rollup_age_s": float(age), "rollup_rows": int(rows)}


# The cyclic garbage collector in normalizers, landers and fan-outs: a collection every 100,000 net allocations
# instead of Python's 700. These processes allocate a Python wrapper per Arrow array, chunk and message, and a
# lander holds the tables of its rollup groups (thousands of objects each collection walks); almost everything is
# freed by reference counting, not by the collector. Measured: concatenating a rollup group's 600 flush tables cost
# 0.32 CPU-s per million rows with the default thresholds and 0.09 with collection off; with these, the lander's
# rollup of bench compaction's 2M-tick day 2.51 -> 2.40 CPU-s (two runs each; 10M: 12.6-12.8 -> 12.5) and the
# normalizer's in-process cost of the mix 3.18 -> 3.15 CPU-s per million ticks: small, not nothing.
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc(role: str) -> bool:
    """GC_THRESHOLDS for the background roles (normalizer, lander, fan-out); connectors keep Python's defaults
    (their latency, not their throughput, matters). True when set."""
    if not role.startswith(BACKGROUND_ROLES):
        return False
    gc.set_threshold(*GC_THRESHOLDS)
    return True


def worker_niceness(role: str) -> int:
    """The nice increment for a role: QP_WORKER_NICE (default 10) for normalizers, landers and fan-out
    destinations, 0 for connectors, replays and the simulator."""
    if not role.startswith(BACKGROUND_ROLES):
        return 0
    try:
        return int(bounded_env(NICE_ENV, DEFAULT_NICE, 0, 19, integer=True))
    except SettingError as exc:
        raise SystemExit(str(exc)) from None


async def _stats_to_metrics(role: str, stats, stop: asyncio.Event, source: str = "all") -> None:
    """Mirror a worker's plain counters into Prometheus every second."""
    last: dict[str, int] = {}
    while not stop.is_set():
        await asyncio.sleep(1)
        for attr, counter in (("frames", metrics.TICKS_IN), ("ticks", metrics.TICKS_OUT), ("rows", metrics.TICKS_OUT),
                              ("rejected", None)):
            value = getattr(stats, attr, None)
            if value is None:
                continue
            delta = value - last.get(attr, 0)
            last[attr] = value
            if delta > 0:
                if counter is None:
                    metrics.DLQ.labels(source=source).inc(delta)
                else:
                    counter.labels(source=source, role=role).inc(delta)


def _probed(probe, sink):
    """The connector's sink with the vendor-sequence probe reading each frame first (never altering it)."""
    observe = probe.observe

    async def add(frame) -> None:
        observe(frame)
        await sink(frame)

    return add


def _counting_control(source: str, control):
    """control_sink that also counts lost connections and their seconds in Prometheus."""

    async def record(rec: dict) -> None:
        if rec.get("cause") == "reconnect":
            metrics.VENDOR_GAPS.labels(source=source, kind="disconnect").inc()
            if rec.get("lost_ns") is not None:
                metrics.CONNECTOR_DISCONNECTED_SECONDS.labels(source=source).inc(
                    max(0, rec["regained_ns"] - rec["lost_ns"]) / 1e9)
        await control(rec)

    return record


async def _connector_metrics(source: str, connector, probe, control, stop: asyncio.Event) -> None:
    """Every second: reconnects, the last frame's time and the probe's sequence gaps into Prometheus, and the
    depth gaps the probe found (no ticks carry them) into a control record."""
    from quant_platform.market.vendor_gaps import SEQUENCE_GAPS

    last = {"reconnects": 0, "gaps": 0, "missing": 0}
    while not stop.is_set():
        await asyncio.sleep(1)
        st = connector.stats()
        delta = st.get("reconnects", 0) - last["reconnects"]
        last["reconnects"] = st.get("reconnects", 0)
        if delta > 0:
            metrics.CONNECTOR_RECONNECTS.labels(source=source).inc(delta)
        if st.get("last_frame_at"):
            metrics.CONNECTOR_LAST_FRAME.labels(source=source).set(st["last_frame_at"] / 1e9)
        if probe is None:
            continue
        for attr, counter in (("gaps", metrics.VENDOR_GAPS.labels(source=source, kind="sequence")),
                              ("missing", metrics.VENDOR_GAP_EVENTS.labels(source=source))):
            value = getattr(probe, attr)
            if value > last[attr]:
                counter.inc(value - last[attr])
            last[attr] = value
        if probe.pending:
            await control({"kind": SEQUENCE_GAPS, "gaps": probe.take_pending()})


def _ack_observer(source: str):
    hist = metrics.PUBLISH_ACK_SECONDS.labels(source=source)
    frames_in = metrics.TICKS_IN.labels(source=source, role="connector")

    def observe(seconds: float, frames: int) -> None:
        hist.observe(seconds)
        frames_in.inc(frames)

    return observe


async def run_role(role: str, url: str, stop: asyncio.Event, lake_root: Path | str) -> None:
    """`lake_root`: a local folder, or an object-store URL (s3://...) whose landing goes through Iceberg."""
    if role == "normalizer":
        from quant_platform.market.normalizer import NormalizerStats, run_normalizer

        stats = NormalizerStats()
        await asyncio.gather(run_normalizer(url, stop, stats=stats), _stats_to_metrics(role, stats, stop))
    elif role == "lander":
        from quant_platform.market.lander import LanderStats, run_lander

        stats = LanderStats()
        await asyncio.gather(run_lander(url, lake_root, stop, stats=stats, **lander_options()),
                             _stats_to_metrics(role, stats, stop))
    elif role.startswith("fanout:"):
        from quant_platform.market.fanout import load_destinations, run_destination

        name = role.split(":", 1)[1]
        dest = next((d for d in load_destinations() if d.name == name), None)
        if dest is None:
            raise SystemExit(f"no fan-out destination named {name!r} in QP_FANOUT_FILE")
        await run_destination(url, dest, stop)
    elif role.startswith("connector:"):
        from quant_platform.market.connectors import build_connector
        from quant_platform.market.instruments import InstrumentMaster
        from quant_platform.market.publisher import RawPublisher

        source = role.split(":", 1)[1]
        from quant_platform.market.streams import ensure_streams
        from quant_platform.market.vendor_gaps import ControlPublisher, SequenceProbe

        nc = await connect_worker(url, f"qp-connector-{source}")
        await ensure_streams(nc.jetstream())
        connection_id = f"{os.getpid()}-{time.time_ns()}"
        pub = RawPublisher(nc.jetstream(), source=source, connection_id=connection_id, **publisher_options())
        pub.ack_observer = _ack_observer(source)
        master = InstrumentMaster.load()
        connector = build_connector(source, master.symbols_for(source))
        control = ControlPublisher(nc.jetstream(), source, connection_id)
        connector.control_sink = _counting_control(source, control)
        probe = SequenceProbe(source) if master.format_for(source) == "binance" else None
        sink = pub.add if probe is None else _probed(probe, pub.add)
        watch = asyncio.create_task(_connector_metrics(source, connector, probe, control, stop))
        try:
            await connector.run(sink, stop)
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            await pub.close()
            await control.close()
            await nc.close()
    elif role == "simulator":
        from quant_platform.market.connectors.simulator import MarketSimulator
        from quant_platform.market.publisher import RawPublisher
        from quant_platform.market.streams import ensure_streams

        rate = float(os.environ.get("QP_SIM_RATE", "2000"))
        nc = await connect_worker(url, "qp-simulator")
        await ensure_streams(nc.jetstream())
        pub = RawPublisher(nc.jetstream(), source="simulator", connection_id=f"sim{os.getpid()}-{time.time_ns()}",
                           **publisher_options())
        pub.ack_observer = _ack_observer("simulator")
        try:
            await MarketSimulator(rate=rate).run(pub.add, stop)
        finally:
            await pub.close()
            await nc.close()
    else:
        raise SystemExit(f"unknown role {role!r}")


EXIT_WATCHDOG_S = 10.0  # beyond the role's grace: time for the event loop's own shutdown


def _exit_if_stuck(after_s: float) -> None:
    """A worker asked to stop must exit: a daemon thread ends the process `after_s` from now if it is still alive
    (a client task that ignored its cancellation, a thread the event loop's shutdown waits for), after logging
    every thread's stack and the pending tasks. Its unacked messages are redelivered to the other workers."""
    import faulthandler
    import threading

    def fire() -> None:
        log.error("still running %.0fs after the stop request; exiting (stacks follow)", after_s)
        try:
            faulthandler.dump_traceback(all_threads=True)
        finally:
            os._exit(0)

    timer = threading.Timer(after_s, fire)
    timer.daemon = True
    timer.start()


def _default_stop_signals() -> None:
    """SIGTERM and SIGINT unblocked and at their default action, whatever the parent left us: a blocked mask and an
    ignored disposition are inherited across exec (a test runner's thread, a shell's `nohup`-like wrapper), and a
    worker that cannot be stopped holds its messages until the ack wait. A SIGTERM already pending is delivered
    here and ends the process, as it would have at once."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    for sig, default in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler)):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, default)


def main(argv: list[str] | None = None) -> int:
    _default_stop_signals()
    p = argparse.ArgumentParser(prog="quant-platform-worker", description="One tick-pipeline worker process.")
    p.add_argument("--role", required=True)
    p.add_argument("--nats", default=None,
                   help="NATS URL; default QP_NATS_URL. Prefer the variable: a password on the command line is "
                        "visible to every user of the machine (/proc/<pid>/cmdline)")
    p.add_argument("--lake", required=True)
    p.add_argument("--metrics-port", type=int, default=0)
    args = p.parse_args(argv)
    nats_url = args.nats or os.environ.get("QP_NATS_URL", "").strip()
    if not nats_url:
        p.error("set QP_NATS_URL (or --nats)")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.role} pid={os.getpid()} %(levelname)s %(message)s")
    metrics.serve_metrics(args.metrics_port)
    nice = worker_niceness(args.role)
    if nice:
        os.nice(nice)
    tune_gc(args.role)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass

    parent = os.getppid()

    async def _orphan_watch(stop: asyncio.Event) -> None:
        # If whoever started us is gone (reparented), stop: a supervisor that died must leave no workers.
        while not stop.is_set():
            if os.getppid() != parent:
                log.warning("parent process %s is gone; stopping", parent)
                stop.set()
                return
            await asyncio.sleep(1)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watch = asyncio.create_task(_orphan_watch(stop))
        role = asyncio.create_task(run_role(args.role, nats_url, stop, args.lake))
        stopped = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({role, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if stopped in done:
                _exit_if_stuck(STOP_GRACE_S + EXIT_WATCHDOG_S)
            if role in done:
                role.result()  # a role that ends by itself: surface its error, if any
            elif not has_connected():
                role.cancel()  # never reached a server: nothing in flight to finish
                await asyncio.gather(role, return_exceptions=True)
            else:
                # Asked to stop: the role finishes its batch and closes; one stuck (e.g. reconnecting to a
                # server that is gone) is cancelled after a grace period. Unacked messages are redelivered.
                try:
                    await asyncio.wait_for(role, timeout=STOP_GRACE_S)
                except TimeoutError:
                    log.warning("role did not stop within %ss; cancelled", STOP_GRACE_S)
        finally:
            watch.cancel()
            stopped.cancel()

    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
