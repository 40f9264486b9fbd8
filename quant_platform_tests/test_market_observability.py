"""Observability: worker processes serve Prometheus /metrics; `ingest status` shows rates and lag; the
`ingest replay` command publishes a capture into TICKS_RAW on a running server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from quant_platform_tests.conftest import SAMPLE_DATA, free_port
from quant_platform_tests.market_helpers import sim_frames


def test_worker_metrics_and_status_table(tmp_path, capsys):
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.publisher import publish_frames
    from quant_platform.market.status import print_status

    port = free_port()
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        asyncio.run(publish_frames(srv.url, "simulator", sim_frames(3000)))
        worker = subprocess.Popen([sys.executable, "-m", "quant_platform.market.worker", "--role", "normalizer",
                                   "--nats", srv.url, "--lake", str(tmp_path / "lake"), "--metrics-port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            body = ""
            deadline = time.time() + 30
            while time.time() < deadline and 'qp_ticks_out_total{role="normalizer",source="all"} 3000.0' not in body:
                try:
                    body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except requests.RequestException:
                    pass
                time.sleep(0.3)
            assert 'qp_ticks_out_total{role="normalizer",source="all"} 3000.0' in body
            assert 'qp_ticks_in_total{role="normalizer",source="all"} 3000.0' in body
            assert "# TYPE qp_publish_ack_seconds histogram" in body and "# TYPE qp_consumer_lag gauge" in body
            asyncio.run(print_status(srv.url))
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    out = capsys.readouterr().out
    assert "TICKS_RAW" in out and "normalizer" in out and "lander" in out
    raw_line = next(line for line in out.splitlines() if line.startswith("normalizer"))
    assert raw_line.split()[-1] == "0"  # lag drained


def test_ingest_replay_command_publishes_a_capture(tmp_path, monkeypatch):
    from quant_platform.market.nats_server import EmbeddedNats

    capture = SAMPLE_DATA / "ticks" / "polygon_stocks_trades.jsonl"
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        monkeypatch.setenv("QP_NATS_URL", srv.url)
        monkeypatch.setenv("QP_HOME", str(tmp_path / "qp"))
        out = subprocess.run([sys.executable, "-m", "quant_platform.cli", "ingest", "replay", "--source", "polygon",
                              str(capture), "--rate", "100"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["frames"] == 4 and result["frames_acked"] == 4

        async def count():
            import nats

            nc = await nats.connect(srv.url)
            info = await nc.jetstream().stream_info("TICKS_RAW")
            await nc.close()
            return info.state.messages

        # One raw message per batch the publisher sent (a resend is deduplicated by the stream).
        assert result["batches_sent"] >= 1 and asyncio.run(count()) == result["batches_sent"]
    missing = subprocess.run([sys.executable, "-m", "quant_platform.cli", "ingest", "replay", "--source", "polygon",
                              str(tmp_path / "nope.txt")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "not found" in missing.stderr


def test_simulator_process_exports_publish_to_ack_latency(tmp_path):
    from quant_platform.market.nats_server import EmbeddedNats

    port = free_port()
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        import os

        env = dict(os.environ, QP_SIM_RATE="2000")
        sim = subprocess.Popen([sys.executable, "-m", "quant_platform.market.worker", "--role", "simulator",
                                "--nats", srv.url, "--lake", str(tmp_path / "lake"), "--metrics-port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            count = 0.0
            deadline = time.time() + 30
            while time.time() < deadline and count < 5:
                try:
                    body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                    line = next((x for x in body.splitlines()
                                 if x.startswith('qp_publish_ack_seconds_count{source="simulator"}')), None)
                    count = float(line.split()[-1]) if line else 0.0
                except requests.RequestException:
                    pass
                time.sleep(0.3)
            assert count >= 5, "acked batches are observed in the publish->ack histogram"
            assert 'qp_ticks_in_total{role="connector",source="simulator"}' in body
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=30)


def test_a_worker_whose_parent_dies_stops_by_itself(tmp_path):
    """No orphan workers: kill -9 the process that started a worker; the worker exits on its own."""
    import os

    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-m', 'quant_platform.market.worker', '--role', 'lander', "
        f"'--nats', 'nats://127.0.0.1:1', '--lake', {str(tmp_path / 'lake')!r}])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(1.5)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 20
    alive = True
    while time.time() < deadline and alive:
        try:
            os.kill(child, 0)
            with open(f"/proc/{child}/stat") as f:
                alive = f.read().split(")")[1].split()[0] != "Z"
        except (ProcessLookupError, FileNotFoundError):
            alive = False
        time.sleep(0.3)
    assert not alive, "the orphaned worker did not stop"


def test_supervisor_reuses_the_metrics_ports_of_workers_it_replaced(tmp_path, monkeypatch):
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.supervisor import Supervisor

    # This test is about ports, not priority (test_workers_run_below_connectors_priority is): normal priority.
    monkeypatch.setenv("QP_WORKER_NICE", "0")
    base = _free_port_run(3)  # the supervisor's port and the next two, all free now
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        # a scaled-in worker is gone within leaving_kill_after_s, stopped or killed (its port is free then)
        sup = Supervisor(nats_url=srv.url, lake_root=tmp_path / "lake", metrics_base_port=base,
                         leaving_kill_after_s=20)
        try:
            sup.scale_to("lander", 2)
            first = {pt for _, pt in sup._ports}
            assert first == {base + 1, base + 2}
            _serving(base + 2)  # a running worker is scaled in, not one still starting
            leaving = sup.procs["lander"][-1]
            sup.scale_to("lander", 1)
            deadline = time.monotonic() + 40
            while leaving.poll() is None:  # what the supervisor's control loop does every interval
                sup.reap_leaving()
                assert time.monotonic() < deadline, "the scaled-in worker was neither stopped nor killed"
                time.sleep(0.2)
            sup.scale_to("lander", 2)
            assert {pt for pr, pt in sup._ports if pr.poll() is None} == first  # the freed port is reused
            _serving(base + 2)
        finally:
            sup.stop_all()


def _free_port_run(n: int) -> int:
    """A port p with p .. p+n-1 all free at the moment (free_port() checks only one)."""
    import socket

    for _ in range(50):
        base = free_port()
        socks = []
        try:
            for k in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + k))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no run of {n} free ports found")


def _serving(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if "qp_" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"no worker serves /metrics on {port}"
        time.sleep(0.3)


def test_a_scaled_in_worker_that_ignores_its_sigterm_is_killed_after_the_deadline(tmp_path, caplog):
    import logging
    import subprocess
    import sys

    from quant_platform.market.supervisor import Supervisor

    sup = Supervisor(nats_url="nats://127.0.0.1:1", lake_root=tmp_path / "lake", leaving_kill_after_s=0.5)
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"],
                                stdout=subprocess.PIPE, text=True)
    # (both set their own signal state: a test runner's process may hand its children a blocked SIGTERM)
    quitter = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.pthread_sigmask(signal.SIG_UNBLOCK, "
                                "{signal.SIGTERM}); signal.signal(signal.SIGTERM, signal.SIG_DFL); print('ready', "
                                "flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    assert quitter.stdout.readline().strip() == "ready"
    assert stubborn.stdout.readline().strip() == "ready"  # its SIGTERM is ignored from here on
    sup.procs["lander"] = [quitter, stubborn]
    caplog.set_level(logging.INFO, logger="quant_platform.market.supervisor")
    sup.scale_to("lander", 0)  # SIGTERM to both
    quitter.wait(timeout=30)
    sup.reap_leaving()
    assert stubborn.poll() is None and [p for p, _, _ in sup._leaving] == [stubborn]  # not before its deadline
    time.sleep(0.6)
    sup.reap_leaving()
    assert stubborn.poll() == -9 and sup._leaving == []
    assert '"event": "kill", "role": "lander"' in caplog.text


def _nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_workers_run_below_connectors_priority(tmp_path, monkeypatch):
    """Normalizers and landers run at QP_WORKER_NICE (default 10): on shared cores they must not delay the
    connectors' durable acks. Connector-side roles keep the normal priority."""
    from quant_platform.market.worker import worker_niceness

    monkeypatch.delenv("QP_WORKER_NICE", raising=False)
    assert [worker_niceness(r) for r in ("normalizer", "lander", "fanout:pg", "simulator", "connector:binance")] \
        == [10, 10, 10, 0, 0]
    monkeypatch.setenv("QP_WORKER_NICE", "20")
    try:
        worker_niceness("lander")
    except SystemExit as exc:
        assert "QP_WORKER_NICE" in str(exc)
    else:
        raise AssertionError("an out-of-range QP_WORKER_NICE was accepted")

    base = _nice_of(os.getpid())
    procs = {}
    for role, nice in (("lander", "7"), ("simulator", "7")):
        env = {**os.environ, "QP_WORKER_NICE": nice}
        # An unreachable server: the process starts, sets its priority and keeps reconnecting until stopped.
        procs[role] = subprocess.Popen([sys.executable, "-m", "quant_platform.market.worker", "--role", role,
                                        "--nats", f"nats://127.0.0.1:{free_port()}", "--lake", str(tmp_path)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        time.sleep(3)
        assert _nice_of(procs["lander"].pid) == base + 7
        assert _nice_of(procs["simulator"].pid) == base
        # A worker that never reached a server has nothing in flight: SIGTERM stops it at once, not after the
        # grace period (10 s) that lets a connected worker finish its batch.
        t0 = time.monotonic()
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        assert [p.wait(timeout=30) for p in procs.values()] == [0, 0]
        assert time.monotonic() - t0 < 5
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def test_connector_batching_options_from_the_environment(monkeypatch):
    from quant_platform.market.worker import publisher_options

    monkeypatch.delenv("QP_PUBLISH_EAGER", raising=False)
    monkeypatch.delenv("QP_PUBLISH_MAX_DELAY_MS", raising=False)
    assert publisher_options() == {"eager_inflight": 0, "max_delay_s": 0.005}
    monkeypatch.setenv("QP_PUBLISH_EAGER", "1")
    monkeypatch.setenv("QP_PUBLISH_MAX_DELAY_MS", "1")
    assert publisher_options() == {"eager_inflight": 1, "max_delay_s": 0.001}
    for name, bad in (("QP_PUBLISH_EAGER", "yes"), ("QP_PUBLISH_MAX_DELAY_MS", "0"), ("QP_PUBLISH_MAX_DELAY_MS", "x")):
        monkeypatch.setenv(name, bad)
        try:
            publisher_options()
        except SystemExit as exc:
            assert name in str(exc)
        else:
            raise AssertionError(f"{name}={bad} was accepted")
        monkeypatch.setenv(name, "1")


def test_worker_connection_logs_a_lost_server_but_not_its_own_close(tmp_path, caplog):
    import logging

    from quant_platform.market.connection import connect_worker, has_connected
    from quant_platform.market.nats_server import EmbeddedNats

    async def scenario(srv) -> None:
        nc = await connect_worker(srv.url, "qp-test")
        assert has_connected() and nc.is_connected
        await nc.close()
        assert not [r for r in caplog.records if "disconnected" in r.getMessage()]
        nc = await connect_worker(srv.url, "qp-test")
        srv.kill()
        for _ in range(50):
            if any("qp-test: disconnected from NATS" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.1)
        await nc.close()

    caplog.set_level(logging.INFO, logger="quant_platform.market.connection")
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        asyncio.run(scenario(srv))
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("qp-test: disconnected from NATS; reconnecting") == 1, messages


def test_background_workers_collect_cyclic_garbage_less_often():
    """Normalizers, landers and fan-outs raise the collector's thresholds (their objects are freed by reference
    counting; each collection walks the lander's held rollup tables); connectors keep Python's defaults."""
    import gc

    from quant_platform.market.worker import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        assert tune_gc("connector:binance") is False and gc.get_threshold() == before
        assert tune_gc("lander") is True and gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0]
    finally:
        gc.set_threshold(*before)
