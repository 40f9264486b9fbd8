"""The WPSR table 1 report's domain checks: stocks add up, the printed prior week matches the loaded one, no jumps.

Never block on what a vendor may legitimately print: only parts that do not add up stop a load; a revision or a
large change is a WARN that names the series and both values.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from quant_platform.macro.loading import DomainCheck
from quant_platform.platform.warehouse import Warehouse
from quant_platform.quality.rules import RuleOutcome

# Stocks that EIA prints as the sum of two others (million barrels): total = part + part.
STOCK_SUMS = (
    ("stocks.crude_oil", ("stocks.commercial_excluding_spr", "stocks.strategic_petroleum_reserve_spr")),
    ("stocks.total_stocks_including_spr", ("stocks.total_stocks_excluding_spr",
                                           "stocks.strategic_petroleum_reserve_spr")),
)
LEVEL_MEASURES = ("level", "level_prior_week", "level_year_ago")  # the printed columns that are stock levels
# Three printed decimals: each part and the total are rounded to the thousandth, so the sum may miss the total by
# up to 0.0015 million barrels (1,500 barrels).
SUM_TOLERANCE = 0.002
# A printed number is a revision of the loaded one when they differ by more than this (both printed to 0.001).
PRIOR_WEEK_TOLERANCE = 0.0005
# A week-on-week change is implausible when it exceeds both bounds (unit -> (absolute, relative to last week)).
# No week of table 1's own history since 1982 trips them (psw01.xls, every weekly series; the test shows it): the
# largest real changes are 21.6 million barrels of commercial crude (4.7 %) and 3,414 kb/d of crude stock change.
JUMP_LIMITS = {"million barrels": (20.0, 0.08), "thousand barrels per day": (4000.0, 0.60)}
SHOWN = 12  # series named in a check's metadata at most


def _levels(frame: pd.DataFrame, measure: str) -> pd.DataFrame:
    rows = frame[frame["measure"] == measure]
    return rows.assign(week_ending=pd.to_datetime(rows["week_ending"]))[["week_ending", "series_key", "value"]]


def stocks_sum_of_parts(frame: pd.DataFrame, _warehouse: Warehouse) -> RuleOutcome:
    """Commercial + SPR = total crude oil stocks, and total excluding SPR + SPR = total including SPR, in every
    printed level column (this week, prior week, a year ago), within rounding."""
    problems, compared, worst = [], 0, 0.0
    for measure in LEVEL_MEASURES:
        wide = _levels(frame, measure).pivot_table(index="week_ending", columns="series_key", values="value",
                                                   aggfunc="first")
        for total, parts in STOCK_SUMS:
            if total not in wide or any(p not in wide for p in parts):
                problems.append(f"{measure}: {total} or its parts {', '.join(parts)} missing")
                continue
            for week, row in wide.iterrows():
                if row[[total, *parts]].isna().any():
                    continue
                compared += 1
                gap = abs(float(row[list(parts)].sum()) - float(row[total]))
                worst = max(worst, gap)
                if gap > SUM_TOLERANCE:
                    problems.append(f"{week:%Y-%m-%d} {measure}: {' + '.join(f'{row[p]:g}' for p in parts)} = "
                                    f"{float(row[list(parts)].sum()):.3f}, {total} printed {row[total]:g}")
    return RuleOutcome("stocks_sum_of_parts", not problems and compared > 0, "", {
        "sums_compared": compared, "largest_gap_million_barrels": round(worst, 6),
        "tolerance_million_barrels": SUM_TOLERANCE,
        "problems": "; ".join(problems[:SHOWN]) or "none"})


def prior_week_matches_loaded(frame: pd.DataFrame, warehouse: Warehouse) -> RuleOutcome:
    """The file's printed previous-week column against the previous week's levels as loaded: a difference is a
    vendor revision of last week (WARN, each series with both values; the file of last week stays as loaded)."""
    printed = _levels(frame, "level_prior_week")
    revised, compared, weeks = [], 0, []
    for week, rows in printed.groupby("week_ending"):
        prev = week - timedelta(days=7)
        loaded = _levels(frame, "level")
        loaded = loaded[loaded["week_ending"] == prev]
        source = "this load"
        if loaded.empty:
            loaded = warehouse.query_df(
                "SELECT series_key, value FROM macro.eia_wpsr WHERE week_ending = :week AND measure = 'level'",
                {"week": prev.date()})
            source = "the warehouse"
        if loaded.empty:
            weeks.append(f"{prev:%Y-%m-%d} not loaded")
            continue
        weeks.append(f"{prev:%Y-%m-%d} from {source}")
        both = rows.merge(loaded[["series_key", "value"]], on="series_key", suffixes=("_printed", "_loaded"))
        both = both.dropna(subset=["value_printed", "value_loaded"])
        compared += len(both)
        diff = both[(both["value_printed"] - both["value_loaded"]).abs() > PRIOR_WEEK_TOLERANCE]
        revised += [f"{r.series_key}: printed for {prev:%Y-%m-%d} {r.value_printed:g}, loaded {r.value_loaded:g}"
                    for r in diff.itertuples()]
    return RuleOutcome("prior_week_matches_loaded", not revised, "", {
        "previous_weeks": ", ".join(weeks) or "none", "series_compared": compared, "revised_series": len(revised),
        "revisions": "; ".join(revised[:SHOWN]) or "none"})


def implausible_jumps(level: pd.Series, prior: pd.Series, unit: pd.Series) -> pd.Series:
    """True where this week's level moved from last week's by more than both bounds of its unit (JUMP_LIMITS)."""
    limits = unit.map(JUMP_LIMITS)
    absolute = limits.map(lambda lim: lim[0] if isinstance(lim, tuple) else float("inf"))
    relative = limits.map(lambda lim: lim[1] if isinstance(lim, tuple) else float("inf"))
    change = (level - prior).abs()
    return (change > absolute) & (change > relative * prior.abs())


def week_on_week_plausible(frame: pd.DataFrame, _warehouse: Warehouse) -> RuleOutcome:
    """Each series' level against the previous week printed beside it: a move beyond both bounds of its unit (a
    decimal slip, a misread line) is a WARN naming the series and both values."""
    level = frame[frame["measure"] == "level"][["week_ending", "series_key", "value", "unit"]]
    prior = _levels(frame, "level_prior_week").rename(columns={"value": "prior"})
    both = level.assign(week_ending=pd.to_datetime(level["week_ending"])).merge(
        prior, on=["week_ending", "series_key"]).dropna(subset=["value", "prior"])
    jumps = both[implausible_jumps(both["value"], both["prior"], both["unit"])]
    return RuleOutcome("week_on_week_plausible", jumps.empty, "", {
        "series_compared": len(both), "implausible_changes": len(jumps),
        "limits": ", ".join(f"{u}: {a:g} and {r:.0%}" for u, (a, r) in JUMP_LIMITS.items()),
        "jumps": "; ".join(f"{r.series_key}: {r.prior:g} -> {r.value:g} {r.unit}" for r in jumps.head(SHOWN)
                           .itertuples()) or "none"})


DOMAIN_CHECKS = (
    DomainCheck("stocks_sum_of_parts", "Commercial + SPR = total crude oil stocks, and total stocks excluding SPR "
                "+ SPR = including SPR, in every printed level column, within rounding (0.002 million barrels).",
                stocks_sum_of_parts),
    DomainCheck("prior_week_matches_loaded", "The previous-week column EIA prints equals the previous week's "
                "level as loaded; a difference is a vendor revision of that week, named with both values (WARN).",
                prior_week_matches_loaded, blocking=False),
    DomainCheck("week_on_week_plausible", "No level moved from the previous week by more than 20 million barrels "
                "and 8 % (stocks) or 4,000 kb/d and 60 % (flows), bounds no week since 1982 has reached (WARN).",
                week_on_week_plausible, blocking=False),
)
