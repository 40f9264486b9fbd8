"""A JetStream cluster of nats-server processes on loopback, for local runs and tests of replicated streams.

Never touch a server this module did not start, and never leave one running: every node is an EmbeddedNats
child (same binary lookup, config writer, fsync-before-ack, SIGTERM-then-SIGKILL stop and exit-time cleanup).

Each node has its own store dir and `server_name`, JetStream with `sync_interval: always`, free loopback
ports (client, cluster routes, monitoring) and routes to every other node. With streams at three replicas
(`ensure_streams(js, replicas=3)` or QP_NATS_REPLICAS=3) an ack means a quorum of two nodes has the message
on disk, so one node can be killed at any instant without losing anything acknowledged.

Clients should connect with every node's URL (`NatsCluster.urls`, a list for `nats.connect`); a client given
one URL also learns the others from the cluster's INFO gossip and fails over to them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from quant_platform.market.nats_server import (
    EmbeddedNats,
    NatsServerError,
    NatsServerStartError,
    find_nats_server_binary,
    free_loopback_port,
)

DEFAULT_CLUSTER_NAME = "qp"


class ClusterNode(EmbeddedNats):
    """One cluster member: an EmbeddedNats with a server_name and a `cluster {}` block routing to its peers.

    start() returns once the client port accepts connections: a lone node is never healthy (no meta leader
    without a quorum), so readiness of the whole cluster is NatsCluster.wait_ready()'s job."""

    def __init__(self, store_dir: Path, server_name: str, cluster_name: str, cluster_port: int,
                 peer_cluster_ports: list[int], *, port: int, monitor_port: int | None,
                 sync_always: bool = True, binary: Path | None = None):
        super().__init__(store_dir, port=port, sync_always=sync_always, monitor_port=monitor_port, binary=binary)
        self.server_name = server_name
        self.cluster_name = cluster_name
        self.cluster_port = cluster_port
        self.peer_cluster_ports = list(peer_cluster_ports)

    def _extra_config_lines(self) -> list[str]:
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.peer_cluster_ports)
        return [
            f"server_name: {self.server_name}",
            "cluster {",
            f"  name: {self.cluster_name}",
            f"  listen: 127.0.0.1:{self.cluster_port}",
            f"  routes: [{routes}]",
            "}",
        ]

    def _healthy(self) -> bool:
        return True  # the listening client port is enough here; see the class docstring

    def terminate(self) -> None:
        """Send SIGTERM without waiting (stop() then reaps), so a whole cluster shuts down in parallel."""
        if self.running:
            assert self._proc is not None
            self._proc.terminate()

    def __repr__(self) -> str:
        return f"ClusterNode({self.server_name!r}, url={self.url!r}, pid={self.pid})"


class NatsCluster:
    """`size` nats-server processes forming a JetStream cluster named `name` on loopback.

    Node i has server_name `<name>-n<i>` and its store under `base_dir/<server_name>`. `monitor=False`
    turns the monitoring ports off (readiness is then checked through `$JS.API.INFO` alone).

        with NatsCluster(tmp_path / "cluster", size=3) as cluster:
            nc = await nats.connect(cluster.urls)
            await ensure_streams(nc.jetstream(), replicas=3)
            cluster.kill("qp-n2"); ...; cluster.restart("qp-n2")
    """

    def __init__(self, base_dir: Path, size: int = 3, name: str = DEFAULT_CLUSTER_NAME, *,
                 monitor: bool = True, sync_always: bool = True, binary: Path | None = None):
        if size < 1:
            raise NatsServerError(f"a cluster needs at least one node, got size={size}")
        self.base_dir = Path(base_dir).expanduser().resolve()
        self.size = size
        self.name = name
        self.monitor = monitor
        self.sync_always = sync_always
        self._binary = binary
        self.nodes: list[ClusterNode] = []

    # ------------------------------------------------------------------ addresses
    @property
    def urls(self) -> list[str]:
        """Every node's client URL (pass the list to nats.connect)."""
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        """The client URLs joined by commas (the usual way to write a cluster's URL in one setting)."""
        return ",".join(self.urls)

    def node(self, which: int | str | ClusterNode) -> ClusterNode:
        """A node by index, server_name or itself."""
        if isinstance(which, ClusterNode):
            return which
        if isinstance(which, int):
            return self.nodes[which]
        for n in self.nodes:
            if n.server_name == which:
                return n
        raise NatsServerError(f"no node named {which!r} in cluster {self.name} ({[n.server_name for n in self.nodes]})")

    @property
    def running_nodes(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.running]

    # ------------------------------------------------------------------ lifecycle
    def _allocate(self) -> None:
        used: set[int] = set()

        def port() -> int:
            while True:
                p = free_loopback_port()
                if p not in used:
                    used.add(p)
                    return p

        binary = self._binary or find_nats_server_binary()
        specs = [(f"{self.name}-n{i + 1}", port(), port(), port() if self.monitor else None)
                 for i in range(self.size)]
        cluster_ports = [s[2] for s in specs]
        self.nodes = [
            ClusterNode(self.base_dir / server_name, server_name, self.name, cport,
                        [p for p in cluster_ports if p != cport], port=cli, monitor_port=mon,
                        sync_always=self.sync_always, binary=binary)
            for server_name, cli, cport, mon in specs
        ]

    def start(self, timeout: float = 30) -> NatsCluster:
        """Start every node, then wait until the cluster has a meta leader and every node is current."""
        if not self.nodes:
            self._allocate()
        try:
            for n in self.nodes:
                n.start(timeout)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM to every node at once, then reap each one (SIGKILL after `timeout`)."""
        for n in self.nodes:
            n.terminate()
        for n in self.nodes:
            n.stop(timeout)

    close = stop

    def kill(self, which: int | str | ClusterNode) -> ClusterNode:
        """SIGKILL one node (no shutdown at all); the others elect new leaders for what it led."""
        n = self.node(which)
        n.kill()
        return n

    def restart(self, which: int | str | ClusterNode, timeout: float = 30) -> ClusterNode:
        """Start a stopped or killed node again (same ports, store and name) and wait until it is current."""
        n = self.node(which)
        if n.running:
            n.stop()
        n.start(timeout)
        self.wait_ready(timeout)
        return n

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"NatsCluster({self.name!r}, nodes={self.nodes!r})"

    # ------------------------------------------------------------------ readiness
    def meta_leader(self) -> str | None:
        """The server_name of the JetStream meta leader, when all running nodes agree on one (needs monitoring)."""
        leaders = set()
        for n in self.running_nodes:
            try:
                leaders.add((n.jsz().get("meta_cluster") or {}).get("leader") or None)
            except (urllib.error.URLError, OSError, ValueError):
                return None
        return leaders.pop() if len(leaders) == 1 else None

    def _ready_problem(self) -> str | None:
        """Why the cluster is not ready yet, or None when it is."""
        running = self.running_nodes
        if not running:
            return "no node is running"
        if self.monitor:
            leader = self.meta_leader()
            if leader is None:
                return "no JetStream meta leader agreed by every running node"
            meta = self.node(leader).jsz().get("meta_cluster") or {}
            if meta.get("cluster_size") != self.size:
                return f"meta group size {meta.get('cluster_size')} != {self.size}"
            current = {r.get("name") for r in meta.get("replicas") or [] if r.get("current")} | {leader}
            behind = [n.server_name for n in running if n.server_name not in current]
            if behind:
                return f"nodes not current with meta leader {leader}: {behind}"
            for n in running:
                if not _healthz_ok(n):
                    return f"{n.server_name} /healthz not ok"
        for n in running:
            problem = _js_api_info_problem(n.url)
            if problem:
                return f"{n.server_name}: $JS.API.INFO {problem}"
        return None

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until a meta leader is elected, every running node is current and answers the JetStream API."""
        deadline = time.monotonic() + timeout
        while True:
            for n in self.nodes:
                if n._proc is not None and not n.running:
                    raise NatsServerStartError(f"{n.server_name} exited:\n{n._log_tail()}")
            problem = self._ready_problem()
            if problem is None:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n.server_name}\n{n._log_tail(5)}" for n in self.running_nodes)
                raise NatsServerStartError(f"cluster {self.name} not ready within {timeout:.0f}s: {problem}\n{tails}")
            time.sleep(0.1)


def _healthz_ok(node: EmbeddedNats) -> bool:
    try:
        with urllib.request.urlopen(f"{node.monitor_url}/healthz", timeout=2) as r:  # noqa: S310 - loopback
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _js_api_info_problem(url: str, timeout: float = 2.0) -> str | None:
    """Ask one node for the JetStream account info (`$JS.API.INFO`): None when it answers without error.

    Runs its own event loop in a thread, so it works from sync code and from inside a running loop alike."""

    async def ask() -> str | None:
        import nats

        async def quiet(_exc: Exception) -> None:
            return None

        nc = await nats.connect(url, connect_timeout=timeout, allow_reconnect=False, max_reconnect_attempts=0,
                                error_cb=quiet)
        try:
            msg = await nc.request("$JS.API.INFO", b"", timeout=timeout)
            err = json.loads(msg.data or b"{}").get("error") if msg.data else "no data (no responders?)"
            return None if not err else str(err)
        finally:
            await nc.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
        try:
            return ex.submit(lambda: asyncio.run(ask())).result(timeout=timeout * 3)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            return f"{type(exc).__name__}: {exc}"
