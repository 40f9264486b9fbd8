"""The macro lane's reports: one line per report folder under macro/reports/; everything else is derived from it.

Never declare a report's asset, sensor, job, release check, table list or simulator files anywhere else.

Onboarding a report is a folder macro/reports/<report>/ (see README "Onboarding a report") and its name below.
From this list come the Dagster definitions (macro/definitions.py: asset, job, release sensor, release_on_time
check), the warehouse DDL (platform/ddl.py), the data dictionary (it reads the Definitions) and the vendor
simulator's catalog (vendors/simulator.py). This module imports no Dagster: the simulator reads it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quant_platform.macro.declaration import MacroReport
    from quant_platform.platform.tables import TableSpec
    from quant_platform.vendors.core import CatalogSource

REPORTS_PACKAGE = "quant_platform.macro.reports"

# One line per report: its folder under macro/reports/, which is also its table's and asset key's name.
REPORT_FOLDERS: tuple[str, ...] = (
    "eia_wpsr",
    "eia_series",
    "cftc_cot_disaggregated",
    "cftc_cot_legacy",
    "eia_wpsr_tables",
    "eia_gas_storage",
    "eia_spot_prices",
    "cftc_cot_disaggregated_combined",
    "cftc_cot_legacy_combined",
)


def report_module(folder: str, part: str) -> ModuleType:
    """One module of a report folder: "table" (TABLE), "routes" (its URLs and SIMULATED files), "report" (REPORT)."""
    return importlib.import_module(f"{REPORTS_PACKAGE}.{folder}.{part}")


def registered_tables() -> tuple[TableSpec, ...]:
    """Every registered report's table, in registry order (the order of the generated DDL)."""
    return tuple(report_module(folder, "table").TABLE for folder in REPORT_FOLDERS)


def registered_reports() -> tuple[MacroReport, ...]:
    """Every registered report's declaration, in registry order; a folder must declare the table of its name."""
    from quant_platform.errors import ConfigError

    reports = tuple(report_module(folder, "report").REPORT for folder in REPORT_FOLDERS)
    for folder, report in zip(REPORT_FOLDERS, reports, strict=True):
        if (report.table.schema, report.table.name) != ("macro", folder):
            raise ConfigError(f"report folder {folder} declares table {report.table.qualified_name}; "
                              f"a report folder declares macro.{folder}")
    return reports


def registered_simulator_files() -> tuple[CatalogSource, ...]:
    """What the vendor simulator serves for the registered reports, from their routes.py (SIMULATED)."""
    return tuple(source for folder in REPORT_FOLDERS for source in report_module(folder, "routes").SIMULATED)
