"""Least privilege as the server enforces it, on a real nats-server with the stack's own config
(docker/nats/nats-server.conf): only `admin` creates consumers (a push consumer's deliver_subject is not checked
against its creator's publish rights), every user has its own reply inboxes, connectors publish only their batch
subject; the supervisor keeps the NATS password off its workers' command lines; clients verify a private CA.

Never mock the server: one nats-server per module, started here on free loopback ports.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import nats
import pytest
from nats.js import api

from quant_platform_tests.conftest import free_port
from quant_platform_tests.market_helpers import wait_for
from quant_platform_tests.test_docker_static import (
    NATS_CONF,
    _load_declare_streams,
    _nats_binary,
    _nats_conf,
    _nats_users,
    _password_env,
)

pytestmark = pytest.mark.timeout(120)
STREAM_ENV = ("QP_NATS_URL", "QP_STREAM_REPLICAS", "QP_TICKS_RAW_MAX_AGE_HOURS", "QP_TICKS_MAX_AGE_HOURS",
              "QP_TICKS_DLQ_MAX_AGE_HOURS", "QP_FANOUT_FILE", "QP_TICKS_RAW_MAX_BYTES", "QP_TICKS_MAX_BYTES",
              "QP_TICKS_DLQ_MAX_BYTES", "QP_NATS_MAX_DELIVER", "QP_NATS_INBOX_PREFIX", "QP_NATS_CA_FILE",
              "QP_NATS_CA_PEM")


def _wait_healthy(mport: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{mport}/healthz?js-enabled-only=true", timeout=1)
            return
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def stack_server(tmp_path_factory):
    """The stack's nats-server.conf on loopback, streams declared by `admin`; yields url(user)."""
    tmp = tmp_path_factory.mktemp("stack-nats")
    passwords = _password_env()
    conf = re.sub(r'store_dir: "[^"]*"', f'store_dir: "{tmp / "js"}"', NATS_CONF.read_text())
    (tmp / "nats.conf").write_text(conf)
    port, mport = free_port(), free_port()
    proc = subprocess.Popen([str(_nats_binary()), "-c", str(tmp / "nats.conf"), "-a", "127.0.0.1", "-p", str(port),
                             "-m", str(mport)], env={**os.environ, **passwords},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    users = {u["user"]: passwords[u["password"]] for u in _nats_conf()["authorization"]["users"]}

    def url(user: str) -> str:
        return f"nats://{user}:{users[user]}@127.0.0.1:{port}"

    saved = {k: os.environ.pop(k) for k in STREAM_ENV if k in os.environ}
    try:
        _wait_healthy(mport, proc)
        asyncio.run(_load_declare_streams().declare(url("admin")))
        yield url
    finally:
        os.environ.update(saved)
        proc.terminate()
        proc.wait(timeout=20)


async def _connect(user: str, url: str, errors: list[str]):
    """A client of `user` with the inbox prefix its permissions allow (as connection.inbox_prefix derives it)."""
    inbox = _nats_users()[user]["permissions"]["subscribe"]["allow"][0]

    async def on_error(exc):
        errors.append(str(exc).lower())

    return await nats.connect(url, inbox_prefix=inbox.removesuffix(".>"), error_cb=on_error, max_reconnect_attempts=0)


def _push_into_raw(stream: str, name: str, filter_subject: str) -> api.ConsumerConfig:
    """A push consumer whose deliveries the server would publish on Binance's raw subject."""
    return api.ConsumerConfig(name=name, durable_name=name, deliver_subject="ticks.raw.binance.batch",
                              filter_subject=filter_subject, ack_policy=api.AckPolicy.NONE)


@pytest.mark.parametrize(("user", "stream", "filter_subject"), [
    ("fanout", "TICKS", "ticks.norm.>"),  # canonical ticks delivered as if Binance had sent them
    ("dagster", "TICKS_DLQ", "ticks.dlq.>"),  # the DLQ looped back into the raw stream
])
def test_only_admin_may_create_a_push_consumer_into_a_source_subject(stack_server, user, stream, filter_subject):
    async def go():
        errors: list[str] = []
        nc = await _connect(user, stack_server(user), errors)
        js = nc.jetstream(timeout=2)
        try:
            with pytest.raises(nats.errors.TimeoutError):  # the server drops the request: no answer
                await js.add_consumer(stream, config=_push_into_raw(stream, f"evil_{user}", filter_subject))
            await wait_for(lambda: errors, timeout_s=5)
        finally:
            await nc.close()
        admin_errors: list[str] = []
        nc = await _connect("admin", stack_server("admin"), admin_errors)
        js = nc.jetstream(timeout=5)
        try:
            info = await js.add_consumer(stream, config=_push_into_raw(stream, f"deploy_{user}", filter_subject))
            await js.delete_consumer(stream, f"deploy_{user}")
            names = [c.name for c in await js.consumers_info(stream)]
        finally:
            await nc.close()
        return errors, info, names, admin_errors

    errors, info, names, admin_errors = asyncio.run(asyncio.wait_for(go(), 30))
    assert any("permissions violation" in e and "$js.api.consumer.create." in e for e in errors), errors
    assert info.config.deliver_subject == "ticks.raw.binance.batch" and not admin_errors
    assert f"evil_{user}" not in names and f"deploy_{user}" not in names


def test_each_user_reads_replies_only_on_its_own_inbox(stack_server):
    async def go():
        errors: list[str] = []
        nc = await nats.connect(stack_server("normalizer"), error_cb=_append(errors), max_reconnect_attempts=0)
        try:
            for subject in ("_INBOX.>", "_INBOX_lander.>", "_INBOX_normalizer.>"):
                await nc.subscribe(subject)
            await nc.flush()
            await wait_for(lambda: len(errors) >= 2, timeout_s=5)
            await asyncio.sleep(0.3)
        finally:
            await nc.close()
        return errors

    errors = asyncio.run(asyncio.wait_for(go(), 30))
    assert any("subscription" in e and "_inbox.>" in e for e in errors), errors
    assert any("subscription" in e and "_inbox_lander.>" in e for e in errors), errors
    assert not any("_inbox_normalizer" in e for e in errors), errors
    from quant_platform.market.connection import inbox_prefix

    assert inbox_prefix(stack_server("normalizer")) == "_INBOX_normalizer"
    assert inbox_prefix("nats://127.0.0.1:4222") == "_INBOX"


def test_a_connector_publishes_only_its_own_batch_subject(stack_server):
    async def go():
        errors: list[str] = []
        nc = await nats.connect(stack_server("binance"), error_cb=_append(errors), max_reconnect_attempts=0)
        try:
            for subject in ("ticks.raw.binance.batch", "ticks.raw.binance.other", "ticks.raw.polygon.batch"):
                await nc.publish(subject, b"1 {}")
            await nc.flush()
            await wait_for(lambda: len(errors) >= 2, timeout_s=5)
            await asyncio.sleep(0.3)
        finally:
            await nc.close()
        return errors

    errors = asyncio.run(asyncio.wait_for(go(), 30))
    assert sorted(re.findall(r"publish to \"?([\w.]+)", " ".join(errors))) == [
        "ticks.raw.binance.other", "ticks.raw.polygon.batch"], errors


def _append(errors: list[str]):
    async def on_error(exc):
        errors.append(str(exc).lower())

    return on_error


# ----------------------------------------------------------------------------------------------- supervisor
def test_the_supervisor_keeps_the_nats_password_off_its_workers_command_lines(tmp_path, monkeypatch):
    from quant_platform.market.supervisor import ScalePolicy, Supervisor

    for var in STREAM_ENV:
        monkeypatch.delenv(var, raising=False)
    password = "s3cret-0f-the-supervisor-test"
    port, mport = free_port(), free_port()
    (tmp_path / "nats.conf").write_text(
        f'listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{mport}\njetstream {{ store_dir: "{tmp_path / "js"}"\n'
        f'  max_file_store: 64GB }}\nauthorization {{ users: [ {{ user: qp, password: "{password}" }} ] }}\n')
    proc = subprocess.Popen([str(_nats_binary()), "-c", str(tmp_path / "nats.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    sup = Supervisor(nats_url=f"nats://qp:{password}@127.0.0.1:{port}", lake_root=tmp_path / "lake",
                     connectors=["simulator"], normalizer_policy=ScalePolicy("normalizer", 1, 1),
                     lander_policy=ScalePolicy("lander", 1, 1), interval_s=0.5)

    def connection_names() -> set[str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/connz", timeout=2) as r:  # noqa: S310 - loopback
            import json

            return {c.get("name", "") for c in json.loads(r.read()).get("connections", [])}

    async def go():
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        try:
            # The workers reached the server with the URL from their environment (a wrong one never would).
            await wait_for(lambda: {"qp-normalizer", "qp-lander", "qp-simulator"} <= connection_names() or task.done(),
                           timeout_s=60, interval_s=0.5)
            cmdlines = {}
            for plist in sup.procs.values():
                for p in plist:
                    cmdlines[p.pid] = Path(f"/proc/{p.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            return cmdlines, connection_names()
        finally:
            stop.set()
            await task

    try:
        _wait_healthy(mport, proc)
        cmdlines, names = asyncio.run(asyncio.wait_for(go(), 90))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert len(cmdlines) == 3 and {"qp-normalizer", "qp-lander", "qp-simulator"} <= names
    for pid, cmd in cmdlines.items():
        assert "quant_platform.market.worker" in cmd, cmd
        assert password not in cmd and "--nats" not in cmd, f"pid {pid}: {cmd}"


# ----------------------------------------------------------------------------------------------- TLS
def _certs(tmp: Path) -> tuple[Path, Path, str]:
    """A private CA and a loopback server certificate it signs: (cert file, key file, CA PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qp-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nats")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return tmp / "server.crt", tmp / "server.key", ca.public_bytes(serialization.Encoding.PEM).decode()


def test_clients_verify_the_server_against_the_private_ca_from_the_environment(tmp_path, monkeypatch):
    from quant_platform.market.connection import connect_worker

    for var in STREAM_ENV:
        monkeypatch.delenv(var, raising=False)
    cert, key, ca_pem = _certs(tmp_path)
    port, mport = free_port(), free_port()
    (tmp_path / "tls.conf").write_text(
        f'listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{mport}\njetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
        f'tls {{ cert_file: "{cert}", key_file: "{key}" }}\n')
    proc = subprocess.Popen([str(_nats_binary()), "-c", str(tmp_path / "tls.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    async def untrusted():
        try:
            nc = await nats.connect(f"tls://127.0.0.1:{port}", max_reconnect_attempts=0, connect_timeout=3,
                                    allow_reconnect=False)
        except Exception as exc:
            return exc
        await nc.close()
        return None

    async def trusted():
        nc = await connect_worker(f"tls://127.0.0.1:{port}", "qp-tls-test")
        try:
            reply = await nc.request("$JS.API.INFO", b"", timeout=5)
            return nc.connected_url.scheme, reply.data
        finally:
            await nc.close()

    try:
        _wait_healthy(mport, proc)
        refused = asyncio.run(asyncio.wait_for(untrusted(), 30))
        monkeypatch.setenv("QP_NATS_CA_PEM", ca_pem)
        scheme, data = asyncio.run(asyncio.wait_for(trusted(), 30))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert refused is not None, "the server's certificate must not verify without the private CA"
    assert scheme == "tls" and b"memory" in data
    monkeypatch.setenv("QP_NATS_CA_PEM", "not a certificate")
    from quant_platform.errors import ConfigError
    from quant_platform.market.connection import connect_options

    with pytest.raises(ConfigError, match="QP_NATS_CA_PEM"):
        connect_options("tls://127.0.0.1:1")
