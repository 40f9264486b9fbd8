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
    CotYearFile,
    cot_year_file,
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
    served_verbatim,
)
from quant_platform.vendors.eia import (
    EIA_API_MAX_LENGTH,
    EIA_API_PREFIX,
    EIA_API_VERSION,
    WPSR_FLOW_GROWTH_PER_WEEK,
    WPSR_STOCK_GROWTH_PER_WEEK,
    ApiRecording,
    EiaApiV2,
    api_recordings,
    dnav_history_file,
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

# Real files (relative to the data dir) the catalog is built from; see SOURCES.md next to them.
WPSR_TABLE1_SOURCE = "eia/wpsr_table1_2026-05-01.csv"
DNAV_WCESTUS1_SOURCE = "eia/dnav_WCESTUS1_weekly.csv"
CFTC_DISAGG_YEAR_SOURCE = "cftc/disaggregated_futures_only_2021_energy.txt"
CFTC_LEGACY_YEAR_SOURCE = "cftc/legacy_futures_only_2025_energy.txt"

# URL paths, as the vendors publish them (host names differ by vendor; the simulator serves them all).
WPSR_TABLE1_PATH = "/wpsr/table1.csv"  # ir.eia.gov
DNAV_WCESTUS1_PATH = "/dnav/pet/hist/LeafHandler.ashx?n=PET&s=WCESTUS1&f=W"  # www.eia.gov
EIA_API_WSTK_PATH = "/v2/petroleum/stoc/wstk/data/"  # recorded answers, else derived from the dnav file
CFTC_DISAGG_WEEKLY_PATH = "/dea/newcot/f_disagg.txt"  # www.cftc.gov
CFTC_LEGACY_WEEKLY_PATH = "/dea/newcot/deafut.txt"
CFTC_DISAGG_HISTORY_TEMPLATE = "/files/dea/history/fut_disagg_txt_{year}.zip"
CFTC_LEGACY_HISTORY_TEMPLATE = "/files/dea/history/deacot{year}.zip"


# Where each answer was recorded, and how, is in SOURCES.md. The OpenBB cassettes' queries are given as
# recorded; myeia's WCESTUS1 query carried start=1954-10-14&end=2029-10-14, a window wider than the series
# (1982-08-20 on), so its answer is the answer to the same query without start/end: the query the platform
# sends (macro.eia.series.api_v2_request), which is the one listed.
EIA_API_RECORDINGS: tuple[ApiRecording, ...] = (
    ApiRecording(
        "eia/api_v2/petroleum-stoc-wstk_WCESTUS1_weekly_period-desc_offset-0_length-5000.json",
        EIA_API_WSTK_PATH,
        "frequency=weekly&data[0]=value&facets[series][]=WCESTUS1&sort[0][column]=period"
        "&sort[0][direction]=desc&offset=0&length=5000",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-stoc-wstk_WCRSTUS1_weekly_1982-08-20.json",
        EIA_API_WSTK_PATH,
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS&facets[process][]=SAE&facets[product][]=EPC0"
        "&facets[series][]=WCRSTUS1&frequency=weekly&length=5000&offset=0&sort[0][column]=period"
        "&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-pnp-wiup_WCRRIUS2_weekly_1982-08-20.json",
        "/v2/petroleum/pnp/wiup/data/",
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS&facets[process][]=YIY&facets[product][]=EPC0"
        "&facets[series][]=WCRRIUS2&frequency=weekly&length=5000&offset=0&sort[0][column]=period"
        "&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-sum-sndw_WCRRIUS2_weekly_1982-08-20.json",
        "/v2/petroleum/sum/sndw/data/",
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS&facets[duoarea][]=NUS-Z00&facets[process][]=YIY"
        "&facets[product][]=EPC0&facets[series][]=WCRRIUS2&frequency=weekly&length=5000&offset=0"
        "&sort[0][column]=period&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-move-wkly_WDIIMUS2_weekly_1982-08-20.json",
        "/v2/petroleum/move/wkly/data/",
        "data[0]=value&end=1982-08-20&facets[duoarea][]=NUS-Z00&facets[process][]=IM0&facets[product][]=EPD0"
        "&facets[series][]=WDIIMUS2&frequency=weekly&length=5000&offset=0&sort[0][column]=period"
        "&sort[0][direction]=asc&start=1982-08-20",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-pri-spt_RWTC_weekly_1986-01-03.json",
        "/v2/petroleum/pri/spt/data/",
        "data[0]=value&end=1986-01-03&facets[duoarea][]=RGC&facets[duoarea][]=Y44MB&facets[duoarea][]=YCUOK"
        "&facets[duoarea][]=ZEU&facets[process][]=PF4&facets[product][]=EPCWTI&facets[series][]=RWTC"
        "&frequency=weekly&length=5000&offset=0&sort[0][column]=period&sort[0][direction]=asc"
        "&start=1986-01-03",
    ),
    ApiRecording(
        "eia/api_v2/petroleum-pri-spt_EPCBRENT_monthly_2025-01_2025-03.json",
        "/v2/petroleum/pri/spt/data/",
        "data[0]=value&end=2025-03&facets[product][]=EPCBRENT&frequency=monthly&length=5000&offset=0"
        "&sort[0][column]=period&sort[0][direction]=asc&start=2025-01",
    ),
)

# What is served from the start (preload=True), from the real files under the sample-data folder (read only).
CATALOG_SOURCES: tuple[Callable[[Path], list[CatalogEntry]], ...] = (
    served_verbatim(WPSR_TABLE1_PATH, WPSR_TABLE1_SOURCE, "text/csv"),
    dnav_history_file(DNAV_WCESTUS1_PATH, DNAV_WCESTUS1_SOURCE),
    cot_year_file(CotYearFile(CFTC_DISAGG_YEAR_SOURCE, DISAGG_DATE_COLUMN, "f_year.txt", CFTC_DISAGG_HISTORY_TEMPLATE,
                              CFTC_DISAGG_WEEKLY_PATH, disaggregated_layout=True)),
    cot_year_file(CotYearFile(CFTC_LEGACY_YEAR_SOURCE, LEGACY_DATE_COLUMN, "annual.txt", CFTC_LEGACY_HISTORY_TEMPLATE,
                              CFTC_LEGACY_WEEKLY_PATH)),
    api_recordings(EIA_API_RECORDINGS),
)


def build_catalog(data_dir: Path) -> list[CatalogEntry]:
    """Everything served when preload=True, built from the real files under data_dir (read only).

    Every CFTC and EIA file is served as its vendor published it (the yearly files zipped, the weekly
    files as the latest week's rows of the yearly file). The EIA API v2 serves the recorded answers of
    EIA_API_RECORDINGS byte for byte to the queries they answered; any other query on the wstk route gets
    an answer DERIVED from the dnav WCESTUS1 file (see vendors/eia.py answer_eia_wstk).
    """
    return [entry for source in CATALOG_SOURCES for entry in source(data_dir)]


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
