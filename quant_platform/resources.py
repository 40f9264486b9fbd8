"""Dagster resources, declared once: the environment decides what they point at, never the asset code.

Never read a secret here from anything but the environment (see platform/settings.py).
"""

from __future__ import annotations

import dagster as dg

from quant_platform.platform.lake import Lake
from quant_platform.platform.settings import Settings, load_settings
from quant_platform.platform.vendor_http import VendorClient
from quant_platform.platform.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: QP_WAREHOUSE_URL (DuckDB file by default, PostgreSQL in production)."""

    url: str | None = None

    def open(self) -> Warehouse:
        return Warehouse(self.url or load_settings().warehouse_url)


class LakeResource(dg.ConfigurableResource):
    """The lake: QP_LAKE_URL (a local folder by default, an object store in production)."""

    url: str | None = None

    def open(self) -> Lake:
        return Lake(self.url or load_settings().lake_url)


class VendorResource(dg.ConfigurableResource):
    """Vendor endpoints and the HTTP client (timeouts, retries with backoff and jitter)."""

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
