"""docker/ is validated statically (no Docker engine here): files parse, every referenced file, service,
port and environment variable exists, and the Dagster workspace matches the code server.
"""

from __future__ import annotations

import re

import yaml

from quant_platform_tests.conftest import REPO_ROOT

DOCKER = REPO_ROOT / "docker"


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_references_exist():
    compose = _compose()
    services = compose["services"]
    for name, svc in services.items():
        for dep in (svc.get("depends_on") or []):
            assert dep in services, f"{name} depends on unknown service {dep}"
        build = svc.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).resolve().is_file()
        for vol in svc.get("volumes") or []:
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (DOCKER / src).exists(), f"{name}: {src} missing"
            else:
                assert src in compose["volumes"], f"{name}: volume {src} not declared"


def test_dockerfile_copies_existing_paths_and_serves_the_code_location():
    text = (DOCKER / "Dockerfile").read_text()
    for src in re.findall(r"^COPY\s+(.+?)\s+\S+$", text, flags=re.M):
        for part in src.split():
            assert (REPO_ROOT / part).exists(), f"Dockerfile copies missing {part}"
    assert "quant_platform.definitions" in text and '"4000"' in text


def test_workspace_matches_the_code_server():
    ws = yaml.safe_load((DOCKER / "workspace.docker.yaml").read_text())
    grpc = ws["load_from"][0]["grpc_server"]
    compose = _compose()
    assert grpc["host"] in compose["services"]
    assert str(grpc["port"]) in compose["services"][grpc["host"]]["expose"]
    root_ws = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    assert grpc["location_name"] == root_ws["load_from"][0]["python_module"]["location_name"]


def test_env_vars_match_the_instance_and_settings():
    compose_text = (DOCKER / "compose.yaml").read_text()
    instance_vars = set(re.findall(r"env: (\w+)", (REPO_ROOT / "dagster.yaml").read_text()))
    assert instance_vars
    for var in instance_vars:
        assert var in compose_text, f"{var} used by dagster.yaml but not set in compose"
    settings_src = (REPO_ROOT / "quant_platform" / "platform" / "settings.py").read_text()
    platform_env = _compose()["x-platform-env"]
    for var in (v for v in platform_env if v.startswith("QP_")):
        assert var in settings_src, f"compose sets {var}, which the platform does not read"
    # No secret literal in the stack: every password is an environment reference.
    assert not re.search(r"_PASSWORD:\s+(?!\$\{)", compose_text)
