"""EIA "Download Series History" workbooks `dnav/<pet|ng>/hist_xls/<SERIES><w|d|m>.xls`: one series' history.

Never accept a workbook of another series or frequency than the one asked for: Sourcekey and Contents must match.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from quant_platform.errors import ReportParseError
from quant_platform.macro.formats.eia_workbook import (
    WORKBOOK_COLUMNS,
    latest_periods,
    parse_eia_workbook,
)

DNAV_XLS_REPORT = "eia_dnav_xls"

# Letter that ends the file name -> frequency code of the workbook's Contents sheet.
DNAV_FREQUENCY_LETTERS = {"w": "W", "d": "D", "m": "M", "a": "A"}
# Where each series the firm tracks lives on dnav ("pet" petroleum, "ng" natural gas).
DNAV_AREAS = {"WCESTUS1": "pet", "RWTC": "pet", "RBRTE": "pet", "RNGWHHD": "ng"}

DNAV_XLS_COLUMNS: tuple[str, ...] = tuple(c for c in WORKBOOK_COLUMNS if c != "sheet")


def dnav_xls_url(series_id: str, frequency: str, area: str | None = None) -> str:
    """https://www.eia.gov/dnav/pet/hist_xls/WCESTUS1w.xls (weekly), .../RBRTEd.xls (daily), .../ng/..."""
    letter = {v: k for k, v in DNAV_FREQUENCY_LETTERS.items()}.get(frequency)
    if letter is None:
        raise ValueError(f"frequency {frequency!r} is not one of {', '.join(DNAV_FREQUENCY_LETTERS.values())}")
    area = area or DNAV_AREAS.get(series_id)
    if area not in ("pet", "ng"):
        raise ValueError(f"no dnav area known for {series_id}; pass area='pet' or 'ng'")
    return f"https://www.eia.gov/dnav/{area}/hist_xls/{series_id}{letter}.xls"


def parse_dnav_xls(content: bytes, series_id: str, frequency: str | None = None) -> pd.DataFrame:
    """The single series of a dnav history workbook (DNAV_XLS_COLUMNS), checked to be `series_id`
    (and `frequency`, "W"/"D"/"M", when given), oldest period first."""
    frame = parse_eia_workbook(content, DNAV_XLS_REPORT)
    found = sorted(frame["series_id"].unique())
    if found != [series_id]:
        raise ReportParseError(DNAV_XLS_REPORT, 2, f"workbook holds series {found}, expected [{series_id!r}]")
    frequencies = sorted(frame["frequency"].unique())
    if frequency is not None and frequencies != [frequency]:
        raise ReportParseError(DNAV_XLS_REPORT, None, f"workbook frequency {frequencies}, expected {frequency}")
    return frame.sort_values("period", kind="stable").reset_index(drop=True).loc[:, list(DNAV_XLS_COLUMNS)]


def dnav_xls_latest_period(content: bytes) -> dt.date:
    """Latest period of a dnav workbook, from its Contents sheet only (cheap; for sensors)."""
    latest = latest_periods(content, DNAV_XLS_REPORT)
    if len(latest) != 1:
        raise ReportParseError(DNAV_XLS_REPORT, None, f"expected one data sheet, Contents lists {sorted(latest)}")
    return next(iter(latest.values()))
