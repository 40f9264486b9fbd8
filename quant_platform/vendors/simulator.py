"""Local stand-in for the EIA and CFTC sites: real vendor files under real URL paths, scheduled releases, faults.

Never writes to the shared vendor data or contacts a vendor; it serves only real files, documented derivations, or published bytes.

The site itself (releases, faults, admin API, HTTP) is vendors/core.py; what each vendor serves and how is
vendors/eia.py and vendors/cftc.py. This module assembles them into the VendorSimulator and keeps every public
name the simulator always had, so callers import from here.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quant_platform.macro.reports.cftc_cot_disaggregated import routes as cot_disaggregated_routes
from quant_platform.macro.reports.cftc_cot_legacy import routes as cot_legacy_routes
from quant_platform.macro.reports.eia_series import routes as eia_series_routes
from quant_platform.macro.reports.eia_wpsr import routes as eia_wpsr_routes
from quant_platform.vendors.cftc import (
    COT_MANAGED_MONEY_NUDGE_PER_WEEK,
    DISAGG_BLOCK_COLUMNS,
    DISAGG_CHANGES_ALL_COLUMN,
    DISAGG_DATE_COLUMN,
    DISAGG_PCT_ALL_COLUMN,
    DISAGG_PCT_OLD_COLUMN,
    DISAGG_POSITIONS_ALL_COLUMN,
    DISAGG_POSITIONS_OLD_COLUMN,
    DISAGG_REPORT_DATE_COLUMN,
    DISAGG_YYMMDD_COLUMN,
    LEGACY_DATE_COLUMN,
    deterministic_zip,
    next_cot_week,
)
from quant_platform.vendors.core import (
    ADMIN_PREFIX,
    DATA_DIR_ENV,
    AdminRequestError,
    CatalogEntry,
    FaultKindError,
    SimulatedSite,
    SimulatorNotRunningError,
    SyntheticWeekError,
    VendorDataDirNotFoundError,
    VendorFileFormatError,
    VendorSimulatorError,
    optional_epoch,
    resolve_data_dir,
)
from quant_platform.vendors.eia import (
    EIA_API_MAX_LENGTH,
    EIA_API_PREFIX,
    EIA_API_VERSION,
    WPSR_FLOW_GROWTH_PER_WEEK,
    WPSR_STOCK_GROWTH_PER_WEEK,
    ApiRecording,
    EiaApiV2,
    next_wpsr_week,
    release_next_wpsr_week,
    wpsr_header,
)
from quant_platform.vendors.faults import (
    BOMB_INFLATED_BYTES,
    BOMB_ZIP_MEMBER,
    FAULT_KINDS,
    gzip_bomb,
    zip_bomb,
)

# The paths and sample files of the reports the simulator always served, by their old names: each is declared in
# its report folder's routes.py (macro/reports/<report>/), beside the URL it stands in for.
WPSR_TABLE1_SOURCE = eia_wpsr_routes.TABLE1_SAMPLE
DNAV_WCESTUS1_SOURCE = eia_series_routes.DNAV_WCESTUS1_SAMPLE
CFTC_DISAGG_YEAR_SOURCE = cot_disaggregated_routes.YEAR_SAMPLE
CFTC_LEGACY_YEAR_SOURCE = cot_legacy_routes.YEAR_SAMPLE

WPSR_TABLE1_PATH = eia_wpsr_routes.TABLE1.path  # ir.eia.gov
DNAV_WCESTUS1_PATH = eia_series_routes.DNAV_WCESTUS1_PATH  # www.eia.gov
EIA_API_WSTK_PATH = eia_series_routes.API_WSTK_PATH  # api.eia.gov: recorded answers, else derived from the dnav file
CFTC_DISAGG_WEEKLY_PATH = cot_disaggregated_routes.WEEKLY.path  # www.cftc.gov
CFTC_LEGACY_WEEKLY_PATH = cot_legacy_routes.WEEKLY.path
CFTC_DISAGG_HISTORY_TEMPLATE = cot_disaggregated_routes.HISTORY.path
CFTC_LEGACY_HISTORY_TEMPLATE = cot_legacy_routes.HISTORY.path
EIA_API_RECORDINGS = eia_series_routes.EIA_API_RECORDINGS


def build_catalog(data_dir: Path) -> list[CatalogEntry]:
    """Everything served when preload=True, built from the real files under data_dir (read only).

    Every CFTC and EIA file is served as its vendor published it (the yearly files zipped, the weekly
    files as the latest week's rows of the yearly file). The EIA API v2 serves the recorded answers of
    EIA_API_RECORDINGS byte for byte to the queries they answered; any other query on the wstk route gets
    an answer DERIVED from the dnav WCESTUS1 file (see vendors/eia.py answer_eia_wstk).

    What is served comes from the registered reports' folders (their routes.py SIMULATED, macro/registry.py), so
    a new report brings its own sample files and routes without a change here.
    """
    from quant_platform.macro.registry import registered_simulator_files

    return [entry for source in registered_simulator_files() for entry in source(data_dir)]


class VendorSimulator(SimulatedSite):
    """EIA + CFTC download sites on one local port; the preloaded files are listed by build_catalog().

    Under /v2/ it answers as the EIA API v2: 403 without an api_key; a recorded answer (EIA_API_RECORDINGS,
    real bytes) to the query it answered, however the query is spelled; any other query on the wstk route
    gets an answer DERIVED from the dnav WCESTUS1 file; anything else a JSON 404.

    The preloaded catalog is released when the simulator is built (normally right before start()), so a
    publish() made afterwards with at=None supersedes it. All times come from `clock` (epoch seconds),
    which tests replace to move time without sleeping; the "timeout" fault sleeps in real time.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        preload: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            data_dir, host, port, preload, clock, catalog=build_catalog,
            generated_routes=(EiaApiV2(derived_route=EIA_API_WSTK_PATH, derived_from=DNAV_WCESTUS1_PATH),),
            admin_actions={"/_sim/release-next-wpsr-week": self._admin_release_next_wpsr_week},
        )

    def start(self) -> VendorSimulator:
        return super().start()

    def __enter__(self) -> VendorSimulator:
        return self.start()

    def release_next_wpsr_week(self, at: float | None = None, weeks: int = 1) -> bytes:
        """Derive the next (synthetic) week from the table1.csv served now and publish it at `at`."""
        return release_next_wpsr_week(self, WPSR_TABLE1_PATH, at=at, weeks=weeks)

    def _admin_release_next_wpsr_week(self, payload: dict[str, Any]) -> dict[str, Any]:
        at = optional_epoch(payload, "at")
        weeks = payload.get("weeks", 1)
        if isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 1:
            raise AdminRequestError("weeks must be a whole number of at least 1")
        derived = self.release_next_wpsr_week(at=at, weeks=weeks)
        return {
            "path": WPSR_TABLE1_PATH,
            "at": at if at is not None else self.release_time(WPSR_TABLE1_PATH),
            "sha256": hashlib.sha256(derived).hexdigest(),
            "header": wpsr_header(derived),
        }


# --------------------------------------------------------------------------------------------------
# Foreground server (the `quant-platform vendors serve` command)
# --------------------------------------------------------------------------------------------------


def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    release_next_wpsr_every_s: float | None = None,
) -> None:
    """Run the simulator in the foreground until Ctrl-C or SIGTERM; prints one line with the base URL.

    With release_next_wpsr_every_s, a derived (synthetic) next WPSR week is released every N seconds.
    """
    if release_next_wpsr_every_s is not None and release_next_wpsr_every_s <= 0:
        raise VendorSimulatorError(f"--release-next-wpsr-every must be positive, got {release_next_wpsr_every_s}")
    simulator = VendorSimulator(data_dir=data_dir, host=host, port=port)
    stop_requested = threading.Event()
    previous_handler: Any = None
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        previous_handler = signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.set())
    try:
        simulator.start()
    except OSError as exc:  # port taken, address not local: a user error, one line
        raise VendorSimulatorError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    try:
        print(f"vendor simulator serving at {simulator.base_url} (data: {simulator.data_dir})", flush=True)
        interval = release_next_wpsr_every_s
        next_release = time.monotonic() + interval if interval else None
        while not stop_requested.is_set():
            wait_s = 1.0 if next_release is None else max(0.0, min(1.0, next_release - time.monotonic()))
            stop_requested.wait(wait_s)
            if next_release is not None and interval and time.monotonic() >= next_release:
                simulator.release_next_wpsr_week()
                next_release += interval
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)


# URL paths served when preload=True ({year}: 2021 for the disaggregated sample, 2025 for the legacy one);
# the API routes hold the recorded answers of EIA_API_RECORDINGS, and wstk also the dnav derivation.
CATALOG_PATHS: tuple[str, ...] = (
    WPSR_TABLE1_PATH,
    DNAV_WCESTUS1_PATH,
    *sorted({recording.route for recording in EIA_API_RECORDINGS}),
    CFTC_DISAGG_HISTORY_TEMPLATE,
    CFTC_DISAGG_WEEKLY_PATH,
    CFTC_LEGACY_HISTORY_TEMPLATE,
    CFTC_LEGACY_WEEKLY_PATH,
)

# The simulator's public surface (unchanged by the split into core, eia, cftc and faults).
__all__ = [
    "ADMIN_PREFIX",
    "AdminRequestError",
    "ApiRecording",
    "BOMB_INFLATED_BYTES",
    "BOMB_ZIP_MEMBER",
    "CATALOG_PATHS",
    "CFTC_DISAGG_HISTORY_TEMPLATE",
    "CFTC_DISAGG_WEEKLY_PATH",
    "CFTC_DISAGG_YEAR_SOURCE",
    "CFTC_LEGACY_HISTORY_TEMPLATE",
    "CFTC_LEGACY_WEEKLY_PATH",
    "CFTC_LEGACY_YEAR_SOURCE",
    "COT_MANAGED_MONEY_NUDGE_PER_WEEK",
    "CatalogEntry",
    "DATA_DIR_ENV",
    "DISAGG_BLOCK_COLUMNS",
    "DISAGG_CHANGES_ALL_COLUMN",
    "DISAGG_DATE_COLUMN",
    "DISAGG_PCT_ALL_COLUMN",
    "DISAGG_PCT_OLD_COLUMN",
    "DISAGG_POSITIONS_ALL_COLUMN",
    "DISAGG_POSITIONS_OLD_COLUMN",
    "DISAGG_REPORT_DATE_COLUMN",
    "DISAGG_YYMMDD_COLUMN",
    "DNAV_WCESTUS1_PATH",
    "DNAV_WCESTUS1_SOURCE",
    "EIA_API_MAX_LENGTH",
    "EIA_API_PREFIX",
    "EIA_API_RECORDINGS",
    "EIA_API_VERSION",
    "EIA_API_WSTK_PATH",
    "FAULT_KINDS",
    "FaultKindError",
    "LEGACY_DATE_COLUMN",
    "SimulatorNotRunningError",
    "SyntheticWeekError",
    "VendorDataDirNotFoundError",
    "VendorFileFormatError",
    "VendorSimulator",
    "VendorSimulatorError",
    "WPSR_FLOW_GROWTH_PER_WEEK",
    "WPSR_STOCK_GROWTH_PER_WEEK",
    "WPSR_TABLE1_PATH",
    "WPSR_TABLE1_SOURCE",
    "build_catalog",
    "deterministic_zip",
    "gzip_bomb",
    "next_cot_week",
    "next_wpsr_week",
    "resolve_data_dir",
    "serve",
    "zip_bomb",
]
