"""The WPSR table 1 report as one declaration: its route, parser, release calendar, freshness and sensor.

Never publish a WPSR week other than the partition's: a file for another week fails its checks.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from quant_platform.errors import ReportParseError
from quant_platform.macro.declaration import MacroReport, ReleaseSensor
from quant_platform.macro.eia.parsing import parse_wpsr_table1, wpsr_week_ending
from quant_platform.macro.loading import RawFile
from quant_platform.macro.reports.eia_wpsr.checks import DOMAIN_CHECKS
from quant_platform.macro.reports.eia_wpsr.routes import TABLE1
from quant_platform.macro.reports.eia_wpsr.table import TABLE
from quant_platform.platform.calendars import WPSR_RELEASE_CALENDAR


def parse_week(files: Sequence[RawFile], keys: Sequence[str]) -> pd.DataFrame:
    """The week's rows; a file for another week is refused (table1.csv only ever holds the latest week)."""
    (raw,), (week,) = files, keys
    file_week = wpsr_week_ending(raw.body)
    if file_week.isoformat() != week:
        raise ReportParseError(
            "eia_wpsr table1.csv", None,
            f"the file is for week ending {file_week}, not partition {week} (table1.csv only carries the "
            "latest week; older weeks reload from the raw archive, earlier history is in macro.eia_series)",
        )
    df = parse_wpsr_table1(raw.body)
    df["source_sha256"] = raw.sha256
    return df


REPORT = MacroReport(
    table=TABLE,
    vendor="eia",
    routes=(TABLE1,),
    parse=parse_week,  # a run's file: the one its sensor saw, else the archived one, else a download (the default)
    calendar=WPSR_RELEASE_CALENDAR,
    freshness=WPSR_RELEASE_CALENDAR.freshness_policy,
    release_route=TABLE1,
    release_partition=lambda body: wpsr_week_ending(body).isoformat(),
    release_sensor=ReleaseSensor(
        "eia_wpsr_release_sensor",
        description="Polls ir.eia.gov/wpsr/table1.csv (conditional GET) around each scheduled WPSR release and "
        "requests the week's partition when a new file (new sha256) appears; the run key carries the sha256, "
        "so a revised file loads again and the same file never does.",
    ),
    job_description="Load one WPSR week.",
    on_time_description="Each WPSR release of the last 8 weeks (holiday calendar applied) was loaded within one "
    "hour; late or missing weeks are listed.",
    catalog_metadata={
        "vendor_url": TABLE1.vendor_url,
        "release_calendar": WPSR_RELEASE_CALENDAR.description,
        "partition_key": "week ending (Friday), YYYY-MM-DD",
    },
    code_version="eia_wpsr.v1",
    domain_checks=DOMAIN_CHECKS,  # stocks add up (blocking), prior week as loaded and plausible changes (WARN)
)

# Whether the sensor polls table1.csv now (the calendar rule; tests call it with a cursor state and a time).
wpsr_should_poll = REPORT.should_poll
