"""The gas storage report as one declaration: its route, parser, Thursday calendar, freshness and a sum-of-parts check.

Never publish a week whose regions do not add up to the Lower 48 beyond EIA's rounding.

The history workbook holds every week, rewritten with each release: a release run loads the week the sensor saw, a
backfill of any weeks (one run) reads the workbook once; weeks it does not hold are vendor_missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time

import dagster as dg
import pandas as pd

from quant_platform.macro.declaration import TAG_REFETCH, MacroReport, ReportRun
from quant_platform.macro.formats.ngs_history import ngs_latest_week, parse_ngs_history
from quant_platform.macro.history import download_history_file, mark_vendor_missing
from quant_platform.macro.loading import TAG_RAW_SHA, DomainCheck, RawFile
from quant_platform.macro.reports.eia_gas_storage.routes import HISTORY
from quant_platform.macro.reports.eia_gas_storage.table import TABLE
from quant_platform.platform.calendars import WeeklyReleaseCalendar
from quant_platform.quality.rules import RuleOutcome

# Thursday 10:30 New York for the week ending the Friday before. A federal holiday on the Thursday moves it to the
# Wednesday before (the sample workbook is "AS OF NOVEMBER 10, 2021": Veterans Day fell on Thursday 2021-11-11;
# Thanksgiving weeks likewise, at 12:00), and one from Monday to Wednesday a business day later (the week ending
# 2015-11-06, Veterans Day on a Wednesday, was published on Friday 2015-11-13: ir.eia.gov/ngs/notice.html).
CALENDAR = WeeklyReleaseCalendar(
    name="gas storage", reference_weekday=4, reference_rule="gas storage weeks end on a Friday",
    partition_label="week", release_after_days=6, release_time=time(10, 30), holidays_from_day=3,
    partitions_start="2010-01-01", holiday_on_release_day_moves_earlier=True, early_release_time=time(12, 0),
    description="Thursdays 10:30 America/New_York for the week ending the previous Friday; a federal holiday on "
    "the Thursday moves it to the Wednesday before (12:00), one Monday-Wednesday one business day later.",
)
PARTS = ("East", "Midwest", "Mountain", "Pacific", "South Central")


def fetch_history(run: ReportRun) -> list[RawFile]:
    """The workbook the sensor saw (a release run), else the newest release's archived one, else a download."""
    keys = run.keys
    if run.tags.get(TAG_RAW_SHA) and len(keys) == 1:
        return [run.fetch(HISTORY, keys[0])]
    newest = CALENDAR.latest_released(datetime.now(UTC)).isoformat()
    raw = None if run.tags.get(TAG_REFETCH) == "true" else run.archived(HISTORY, newest)
    raw = raw or download_history_file(run, HISTORY, lambda body: ngs_latest_week(body).isoformat(), keys[-1])
    if raw is None:
        raise dg.Failure(description="the vendor does not serve ngshistory.xls (HTTP 404). Nothing was written.")
    return [raw]


def parse_weeks(files: Sequence[RawFile], keys: Sequence[str]) -> pd.DataFrame:
    """The requested weeks' rows; the weeks the workbook does not hold are named vendor_missing."""
    (raw,) = files
    df = parse_ngs_history(raw.body).rename(columns={"source": "survey", "as_of": "file_as_of"})
    first, last = df["week_ending"].min().date(), df["week_ending"].max().date()
    out = df[df["week_ending"].isin(pd.to_datetime(pd.Series(list(keys))))].reset_index(drop=True)
    out["source_sha256"] = raw.sha256
    as_of = df["file_as_of"].iloc[0].date()
    reasons = {k: (f"not published yet: the newest week in ngshistory.xls (AS OF {as_of}) is {last}" if k > str(last)
                   else f"before the first week of the history workbook ({first})" if k < str(first)
                   else "the history workbook holds no row for this week") for k in keys}
    return mark_vendor_missing(out, keys, "week_ending", reasons)


def regions_sum_to_lower_48(frame: pd.DataFrame, _warehouse) -> RuleOutcome:
    """East + Midwest + Mountain + Pacific + South Central = Lower 48, and salt + nonsalt = South Central, each
    within EIA's rounding: half a Bcf per printed level, a Bcf per net change (a difference of two levels)."""
    worst: dict[str, float] = {}
    bad = []
    for measure, per_figure in (("working_gas", 0.5), ("net_change", 1.0)):
        wide = frame[frame["measure"] == measure].pivot_table(index="week_ending", columns="region", values="value")
        if wide.empty:
            continue
        for name, parts, total in (("regions", list(PARTS), "Lower 48"),
                                   ("south_central", ["South Central Salt", "South Central Nonsalt"], "South Central")):
            gap = (wide[parts].sum(axis=1, min_count=len(parts)) - wide[total]).abs()
            tolerance = per_figure * (len(parts) + 1)
            worst[f"{measure}.{name}"] = float(gap.max()) if gap.notna().any() else 0.0
            bad += [f"{str(w)[:10]} {measure} {name} off by {g:g} Bcf" for w, g in gap[gap > tolerance].items()]
    return RuleOutcome("regions_sum_to_lower_48", not bad, "", {
        "largest_gaps_bcf": ", ".join(f"{k} {v:g}" for k, v in worst.items()) or "none",
        "weeks_off": ", ".join(bad[:10]) or "none"})


REPORT = MacroReport(
    table=TABLE,
    vendor="eia",
    routes=(HISTORY,),
    fetch=fetch_history,
    parse=parse_weeks,
    calendar=CALENDAR,
    release_route=HISTORY,
    release_partition=lambda body: ngs_latest_week(body).isoformat(),
    domain_checks=(DomainCheck("regions_sum_to_lower_48", "The five regions add up to the Lower 48 and salt + "
                               "nonsalt to South Central, each within EIA's rounding of the printed figures.",
                               regions_sum_to_lower_48),),
    job_description="Load gas storage weeks (a range of weeks in one run).",
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds=frozenset({"pandas", "excel"}),
)
