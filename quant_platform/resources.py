"""Dagster resources, declared once: the environment decides what they point at, never the asset code.
Never read a secret or a location here from anything but the environment (see platform/settings.py).

The warehouse and lake URLs come from QP_WAREHOUSE_URL and QP_LAKE_URL only. Their `url` field remains so
code can state the URL it expects (tests do), but a value that differs from the environment (a run config
repointing a run at another database or folder) is refused before the run's first step.
"""

from __future__ import annotations

import dagster as dg

from quant_platform.errors import ConfigError
from quant_platform.platform.lake import Lake
from quant_platform.platform.redaction import redact
from quant_platform.platform.settings import Settings, load_settings
from quant_platform.platform.vendor_http import VendorClient
from quant_platform.platform.warehouse import Warehouse


def _environment_only(resource: str, variable: str, configured: str | None, from_env: str) -> str:
    if configured is not None and configured.strip() != from_env:
        raise ConfigError(
            f"resources.{resource}.url {redact(configured)!r} (from run config or code) differs from {variable} "
            f"({redact(from_env)!r}): the {resource} is set by the environment only; refused"
        )
    return from_env


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: QP_WAREHOUSE_URL (DuckDB file by default, PostgreSQL in production), never run config."""

    url: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.checked_url()

    def checked_url(self) -> str:
        return _environment_only("warehouse", "QP_WAREHOUSE_URL", self.url, load_settings().warehouse_url)

    def open(self) -> Warehouse:
        return Warehouse(self.checked_url())


class LakeResource(dg.ConfigurableResource):
    """The lake: QP_LAKE_URL (a local folder by default, an object store in production), never run config."""

    url: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.checked_url()

    def checked_url(self) -> str:
        return _environment_only("lake", "QP_LAKE_URL", self.url, load_settings().lake_url)

    def open(self) -> Lake:
        return Lake(self.checked_url())


class VendorResource(dg.ConfigurableResource):
    """Vendor endpoints (from the environment) and the HTTP client (timeouts, retries with backoff and jitter,
    body caps and the overall deadline of platform/vendor_http.py)."""

    timeout_s: float | None = None
    attempts: int | None = None
    backoff_initial_s: float = 0.5

    def settings(self) -> Settings:
        return load_settings()

    def client(self) -> VendorClient:
        s = load_settings()
        return VendorClient(
            timeout_s=self.timeout_s or s.http_timeout_s,
            attempts=self.attempts or s.http_retries,
            backoff_initial_s=self.backoff_initial_s,
        )


def platform_resources() -> dict[str, dg.ConfigurableResource]:
    return {"warehouse": WarehouseResource(), "lake": LakeResource(), "vendor": VendorResource()}
