"""EIA Weekly Petroleum Status Report workbooks `psw01.xls`..`psw14.xls`: each table's full weekly history.

Never take a workbook for another table's: the file name EIA writes in its Contents sheet must match.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from quant_platform.errors import ReportParseError
from quant_platform.macro.formats.eia_workbook import (
    WORKBOOK_COLUMNS,
    latest_periods,
    open_workbook,
    parse_eia_workbook,
    read_contents,
)

WPSR_XLS_REPORT = "eia_wpsr_xls"
WPSR_BASE_URL = "https://ir.eia.gov/wpsr"

# The WPSR tables, as EIA's release page lists them (https://www.eia.gov/petroleum/supply/weekly/):
# table -> title. Table 10 ("U.S. World Crude Oil Prices") is discontinued; 5A has no PDF.
WPSR_TABLES: dict[str, str] = {
    "01": "U.S. Petroleum Balance Sheet",
    "02": "U.S. Inputs and Production by PAD District",
    "03": "Refiner and Blender Net Production",
    "04": "Stocks of Crude Oil by PAD District, and Stocks of Petroleum Products, U.S. Totals",
    "05": "Stocks of Total Motor Gasoline and Fuel Ethanol by PAD District",
    "05a": "Stocks of Total Motor Gasoline and Fuel Ethanol by PAD District with Total Gasoline by Sub-PADD",
    "06": "Stocks of Distillate, Kerosene-Type Jet Fuel, Residual Fuel Oil, and Propane/Propylene by PAD District",
    "07": "Imports of Crude Oil and Total Products by PAD District",
    "08": "Preliminary Crude Imports by Country of Origin",
    "09": "U.S. and PAD District Weekly Estimates",
    "11": "Spot Prices of Crude Oil, Motor Gasoline, and Heating Oil",
    "12": "Spot Prices of Ultra-Low Sulfur Diesel Fuel, Kerosene-Type Jet Fuel, and Propane",
    "13": "NYMEX Futures Prices of Crude Oil, Motor Gasoline, and No. 2 Heating Oil",
    "14": "U.S. Retail Motor Gasoline and On-Highway Diesel Fuel Prices",
}

WPSR_XLS_COLUMNS: tuple[str, ...] = ("wpsr_table", *WORKBOOK_COLUMNS)


def wpsr_xls_url(table: str) -> str:
    """Download URL of one WPSR table workbook: https://ir.eia.gov/wpsr/psw01.xls etc."""
    if table not in WPSR_TABLES:
        raise ValueError(f"unknown WPSR table {table!r} (known: {', '.join(WPSR_TABLES)})")
    return f"{WPSR_BASE_URL}/psw{table}.xls"


def _check_file_name(content: bytes, table: str):
    book = open_workbook(content, WPSR_XLS_REPORT)
    contents = read_contents(book, WPSR_XLS_REPORT)
    expected = f"psw{table}.xls"
    if (contents.file_name or "").lower() != expected:
        raise ReportParseError(WPSR_XLS_REPORT, None, f"Contents names the file {contents.file_name!r}, "
                               f"expected {expected!r}: the workbook of another table?")
    return contents


def parse_wpsr_xls(content: bytes, table: str) -> pd.DataFrame:
    """Every sheet of one WPSR table workbook, long format keyed on EIA's Sourcekeys (WCESTUS1,
    W_EPC0_SAX_YCUOK_MBBL, ...), with units; `wpsr_table` says which workbook the row came from."""
    wpsr_xls_url(table)  # validates the table id
    _check_file_name(content, table)
    frame = parse_eia_workbook(content, WPSR_XLS_REPORT)
    frame.insert(0, "wpsr_table", table)
    return frame.loc[:, list(WPSR_XLS_COLUMNS)]


def wpsr_xls_week_ending(content: bytes, table: str) -> dt.date:
    """The latest week in a WPSR workbook, from its Contents sheet (cheap: no data sheet is read).
    Every weekly sheet must agree; a workbook whose sheets end on different weeks is refused."""
    contents = _check_file_name(content, table)
    latest = latest_periods(content, WPSR_XLS_REPORT)
    weeks = {latest[e.sheet] for e in contents.sheets if e.frequency in ("W", "4W")}
    if len(weeks) != 1:
        raise ReportParseError(WPSR_XLS_REPORT, None, f"weekly sheets end on different weeks: {sorted(weeks)}")
    return weeks.pop()


def wpsr_xls_release_date(content: bytes, table: str) -> dt.date | None:
    """The release date EIA wrote into the workbook's Contents sheet (the Wednesday of the report)."""
    return _check_file_name(content, table).release_date
