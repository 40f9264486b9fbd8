"""Settings read from the environment, each with an embedded default (see ARCHITECTURE.md).

Secrets are read here from the environment only; never from files in the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from quant_platform.errors import ConfigError


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _float_env(name: str, default: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


class SettingError(ConfigError, ValueError):
    """An environment setting that is not a number inside its allowed range."""


def bounded_env(name: str, default: float, low: float, high: float, *, integer: bool = False) -> float:
    """A number from the environment variable `name` (blank or unset: `default`), within [low, high]."""
    raw = _env(name)
    if raw is None:
        return default
    try:
        value: float | None = int(raw) if integer else float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:  # NaN fails the range test too
        kind = "an integer" if integer else "a number"
        raise SettingError(f"{name} must be {kind} from {low:g} to {high:g}, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse_url: str
    lake_url: str
    dagster_home: Path
    eia_base_url: str
    eia_ir_base_url: str
    eia_api_base_url: str
    cftc_base_url: str
    eia_api_key: str | None
    release_sensor_interval_s: int
    http_timeout_s: float
    http_retries: int

    @property
    def warehouse_backend(self) -> str:
        return "postgres" if self.warehouse_url.startswith(("postgresql", "postgres:")) else "duckdb"


def load_settings() -> Settings:
    """Read the settings now (tests change the environment between calls, so nothing is cached)."""
    home = Path(_env("QP_HOME", str(Path.cwd() / ".qp"))).expanduser().resolve()
    warehouse_url = _env("QP_WAREHOUSE_URL", f"duckdb:///{home / 'warehouse.duckdb'}")
    if not warehouse_url.startswith(("duckdb:///", "postgresql", "postgres:")):
        raise ConfigError(
            f"QP_WAREHOUSE_URL must start with duckdb:/// or postgresql://, got {warehouse_url!r}"
        )
    eia_base = _env("QP_EIA_BASE_URL")
    return Settings(
        home=home,
        warehouse_url=warehouse_url,
        lake_url=_env("QP_LAKE_URL", str(home / "lake")),
        dagster_home=Path(_env("DAGSTER_HOME", str(home / "dagster"))).expanduser().resolve(),
        eia_base_url=(eia_base or "https://www.eia.gov").rstrip("/"),
        # The WPSR lives on ir.eia.gov and the API on api.eia.gov; one simulator serves all three paths,
        # so pointing QP_EIA_BASE_URL at it redirects all of them unless set one by one.
        eia_ir_base_url=(_env("QP_EIA_IR_BASE_URL", eia_base) or "https://ir.eia.gov").rstrip("/"),
        eia_api_base_url=(_env("QP_EIA_API_BASE_URL", eia_base) or "https://api.eia.gov").rstrip("/"),
        cftc_base_url=(_env("QP_CFTC_BASE_URL") or "https://www.cftc.gov").rstrip("/"),
        eia_api_key=_env("QP_EIA_API_KEY"),
        release_sensor_interval_s=int(_float_env("QP_RELEASE_SENSOR_INTERVAL", 30)),
        http_timeout_s=_float_env("QP_HTTP_TIMEOUT", 20.0),
        http_retries=int(_float_env("QP_HTTP_RETRIES", 4)),
    )
