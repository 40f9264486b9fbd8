"""Catalog conventions shared by every asset: owners, pools, kinds, freshness helpers.

Never hard-code a storage kind in an asset: it follows the configured warehouse backend.
"""

from __future__ import annotations

from quant_platform.platform.settings import load_settings

# DuckDB allows one writing process per file: every asset that writes the warehouse runs in this pool.
WAREHOUSE_POOL = "warehouse_writer"

OWNER_MACRO = "team:macro-data"
OWNER_CRUDE_ANALYSTS = "team:crude-analysts"


def warehouse_kind() -> str:
    return "postgres" if load_settings().warehouse_backend == "postgres" else "duckdb"
