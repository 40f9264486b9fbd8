"""Settings read from the environment, each with an embedded default (see ARCHITECTURE.md).

Secrets are read here from the environment only; never from files in the repository.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
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


# ------------------------------------------------------------------------------------------ row-hash key
ROW_HASH_KEY_ENV = "QP_ROW_HASH_KEY"
ROW_HASH_KEY_FILE = "row_hash.key"  # under $QP_HOME: the embedded demo's own key, made once
ROW_HASH_KEY_MIN_CHARS = 32


class RowHashKeyError(ConfigError):
    """The row-hash key is too short, or kept in a file others may read."""


@dataclass(frozen=True)
class RowHashKey:
    """The secret the SCD2 row hashes are keyed with (HMAC-SHA256), and its public id, stored with each hash
    so that a hash made under another key is recognised as such (internal/scd2.py)."""

    secret: bytes = field(repr=False)
    origin: str  # where it came from: the variable's name or the file's path, never the value

    @property
    def key_id(self) -> str:
        """8 hex digits that name the key without revealing it (an HMAC of a constant under the key)."""
        return hmac.new(self.secret, b"quant_platform row_hash key id", hashlib.sha256).hexdigest()[:8]


def _checked_key(value: str, origin: str) -> RowHashKey:
    if len(value) < ROW_HASH_KEY_MIN_CHARS:
        raise RowHashKeyError(f"{origin}: the row-hash key must have at least {ROW_HASH_KEY_MIN_CHARS} characters "
                              f"(got {len(value)}; make one with `openssl rand -hex 32`)")
    return RowHashKey(value.encode(), origin)


def row_hash_key(home: Path | None = None) -> RowHashKey:
    """$QP_ROW_HASH_KEY (production sets it: compose and the Helm values require it); without it, the key kept
    in $QP_HOME/row_hash.key, made on first use with mode 0600 (the embedded demo). A key file others may read
    is refused. Read on every call: nothing is cached, so a rotated key applies to the next merge."""
    value = _env(ROW_HASH_KEY_ENV)
    if value is not None:
        return _checked_key(value, ROW_HASH_KEY_ENV)
    home = home or load_settings().home
    path = home / ROW_HASH_KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        # Written whole to a private temporary file, then linked into place: two processes starting at once
        # both end up with the first one's key, and nobody ever reads a half-written file.
        tmp = home / f".{ROW_HASH_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            tmp.unlink(missing_ok=True)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise RowHashKeyError(f"{path} may be read by others (mode {mode:o}): chmod 600 it, or set "
                              f"{ROW_HASH_KEY_ENV}")
    return _checked_key(path.read_text().strip(), str(path))
