"""`quant-platform ingest scale` (compose's `stream-workers` service): the normalizer and lander pools of an existing
NATS, under the lag autoscaler, each role's workers connected as their own NATS user; the ticks published while it
runs land; SIGTERM stops the workers with it. Its settings errors are one line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quant_platform_tests.market_helpers import landed_table, sim_frames


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in raw if b"=" in e)


@pytest.mark.timeout(120)
def test_ingest_scale_runs_each_role_as_its_own_user_and_lands_what_is_published(qp_home, tmp_path):
    from quant_platform.market.nats_server import EmbeddedNats
    from quant_platform.market.publisher import publish_frames
    from quant_platform.market.streams import ensure_streams

    lake = tmp_path / "lake"
    with EmbeddedNats(tmp_path / "nats").start() as srv:
        async def declare() -> None:
            import nats

            nc = await nats.connect(srv.url)
            await ensure_streams(nc.jetstream())  # as compose's streams-init does, before the workers start
            await nc.close()

        asyncio.run(declare())
        host_port = srv.url.split("://", 1)[1]
        # the embedded server has no users: it takes any; the workers' environment shows which one each was given
        env = {**os.environ, "QP_LAKE_URL": str(lake), "QP_NATS_URL": f"nats://scaler:s@{host_port}",
               "QP_NATS_URL_NORMALIZER": f"nats://normalizer:n@{host_port}",
               "QP_NATS_URL_LANDER": f"nats://lander:l@{host_port}"}
        proc = subprocess.Popen([sys.executable, "-m", "quant_platform.cli", "ingest", "scale", "--max-workers", "2",
                                 "--max-landers", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            roles: dict[str, str] = {}
            while len(roles) < 2:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, f"workers not started: {roles}"
                for child in _children(proc.pid):
                    try:
                        cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                        role = cmd[cmd.index(b"--role") + 1].decode()
                        roles[role] = _environ(child)["QP_NATS_URL"]
                    except (OSError, ValueError, KeyError):
                        continue
                time.sleep(0.2)
            assert roles == {"normalizer": env["QP_NATS_URL_NORMALIZER"], "lander": env["QP_NATS_URL_LANDER"]}

            asyncio.run(publish_frames(srv.url, "simulator", sim_frames(600), max_frames=50))
            while True:
                table = landed_table(lake)
                if table is not None and table.num_rows >= 600:
                    break
                assert time.monotonic() < deadline + 30, "the published ticks did not land"
                time.sleep(0.3)
            workers = _children(proc.pid)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out = proc.stdout.read()
        assert proc.returncode == 0, out
        assert "n@" not in out and "l@" not in out and ":s@" not in out  # passwords are redacted in its log line
        assert table.num_rows == 600
        for pid in workers:  # its workers stopped with it
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_ingest_scale_settings_errors_are_one_line(qp_home):
    base = {k: v for k, v in os.environ.items() if not k.startswith("QP_NATS_URL")}
    env = {"QP_NATS_URL": "nats://a:b@127.0.0.1:1", "QP_NATS_URL_LANDER": "http://x"}
    res = subprocess.run([sys.executable, "-m", "quant_platform.cli", "ingest", "scale"], env={**base, **env},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "QP_NATS_URL_LANDER must be a nats:// or tls:// URL" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
