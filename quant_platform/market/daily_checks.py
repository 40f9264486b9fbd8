"""Quality rules of a compacted tick day, evaluated in DuckDB on the staged Parquet before it is published,
and the trading-hours calendar the gap rule uses.

Never make a rule that cannot fail: each counts offending rows and passes only at zero (gaps warn).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from quant_platform.market.lake_landing import sql_path

COMPLETENESS = "complete_by_sequence"
NO_DUPLICATES = "no_duplicate_event_id"
BID_LE_ASK = "quotes_bid_le_ask"
TS_IN_DAY = "timestamps_inside_day"
PRICES_POSITIVE = "prices_positive"
NO_LONG_GAPS = "no_long_gaps_in_trading_hours"

CHECK_DESCRIPTIONS = {
    COMPLETENESS: "Every raw message TICKS_RAW accepted in the day's sequence window is in the day's ticks or in "
                  "TICKS_DLQ (or carries ticks of another day); missing sequence ranges are listed. Blocking.",
    NO_DUPLICATES: "No event_id appears twice after compaction. Blocking.",
    BID_LE_ASK: "Quotes with both sides have bid <= ask. Blocking.",
    TS_IN_DAY: "Every tick's ts lies inside the UTC day of the partition. Blocking.",
    PRICES_POSITIVE: "Trade prices are > 0 and quoted bid/ask are > 0 where present. Blocking.",
    NO_LONG_GAPS: "No instrument goes longer than QP_TICK_GAP_MINUTES (default 15) without a tick during its "
                  "trading hours (crypto 24/7; US equities 09:30-16:00 New York; futures Sunday 18:00 - Friday 17:00 "
                  "New York with the daily 17:00-18:00 break). Warning only.",
}
BLOCKING = (COMPLETENESS, NO_DUPLICATES, BID_LE_ASK, TS_IN_DAY, PRICES_POSITIVE)

NEW_YORK = ZoneInfo("America/New_York")


def gap_threshold() -> timedelta:
    return timedelta(minutes=float(os.environ.get("QP_TICK_GAP_MINUTES", "15")))


def in_trading_hours(asset_class: str, at: datetime) -> bool:
    if asset_class == "crypto":
        return True
    local = at.astimezone(NEW_YORK)
    minutes = local.hour * 60 + local.minute
    wd = local.weekday()  # Monday 0
    if asset_class == "equity":
        return wd < 5 and 9 * 60 + 30 <= minutes < 16 * 60
    if asset_class == "future":
        if wd == 5 or (wd == 4 and minutes >= 17 * 60) or (wd == 6 and minutes < 18 * 60):
            return False
        return not (17 * 60 <= minutes < 18 * 60)
    return True  # an unknown class is watched around the clock


def trading_minutes(asset_class: str, start: datetime, end: datetime) -> float:
    """Minutes of [start, end) inside trading hours (minute resolution)."""
    t, total = start, 0.0
    step = timedelta(minutes=1)
    while t < end:
        nxt = min(t + step, end)
        if in_trading_hours(asset_class, t):
            total += (nxt - t).total_seconds() / 60
        t = nxt
    return total


@dataclass
class RuleResult:
    name: str
    passed: bool
    metadata: dict


def day_bounds(day: str) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return start, start + timedelta(days=1)


def evaluate_rules(con, path: Path, day: str, asset_classes: dict[str, str]) -> list[RuleResult]:
    """The row-level rules (all but completeness) on a tick file."""
    src = f"read_parquet('{sql_path(path)}')"
    start, end = day_bounds(day)
    dup = con.execute(f"SELECT count(*) - count(DISTINCT event_id) FROM {src}").fetchone()[0]  # noqa: S608
    crossed, crossed_sample = con.execute(
        f"SELECT count(*), list(DISTINCT instrument_id)[:5] FROM {src} WHERE event = 'quote' "  # noqa: S608
        "AND bid IS NOT NULL AND ask IS NOT NULL AND bid > ask").fetchone()
    outside, ts_min, ts_max = con.execute(
        f"SELECT count(*) FILTER (WHERE epoch_ns(ts) < ? OR epoch_ns(ts) >= ?), "  # noqa: S608
        f"min(ts)::VARCHAR, max(ts)::VARCHAR FROM {src}",
        [int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9]).fetchone()
    bad_price = con.execute(
        f"SELECT count(*) FROM {src} WHERE (event = 'trade' AND (price IS NULL OR NOT price > 0)) "  # noqa: S608
        "OR (event = 'quote' AND (bid <= 0 OR ask <= 0))").fetchone()[0]
    threshold = gap_threshold()
    gaps = con.execute(
        f"SELECT instrument_id, prev_ns, t_ns FROM (SELECT instrument_id, epoch_ns(ts) AS t_ns, "  # noqa: S608
        f"lag(epoch_ns(ts)) OVER w AS prev_ns FROM {src} WINDOW w AS (PARTITION BY instrument_id ORDER BY ts)) "
        "WHERE t_ns - prev_ns > ? ORDER BY instrument_id, prev_ns",
        [int(threshold.total_seconds() * 1e9)]).fetchall()
    flagged = []
    for inst, a_ns, b_ns in gaps:
        ac = asset_classes.get(inst, "unknown")
        a, b = datetime.fromtimestamp(a_ns / 1e9, UTC), datetime.fromtimestamp(b_ns / 1e9, UTC)
        mins = trading_minutes(ac, a, b)
        if mins > threshold.total_seconds() / 60:
            flagged.append(f"{inst} {a.astimezone(UTC):%H:%M:%S}-{b.astimezone(UTC):%H:%M:%S} ({mins:.0f} trading min)")
    return [
        RuleResult(NO_DUPLICATES, dup == 0, {"duplicate_rows": int(dup)}),
        RuleResult(BID_LE_ASK, crossed == 0, {"crossed_quotes": int(crossed),
                                              "instruments": ", ".join(crossed_sample or []) or "none"}),
        RuleResult(TS_IN_DAY, outside == 0, {"outside_day": int(outside), "first_ts": str(ts_min),
                                             "last_ts": str(ts_max), "day": day}),
        RuleResult(PRICES_POSITIVE, bad_price == 0, {"non_positive_prices": int(bad_price)}),
        RuleResult(NO_LONG_GAPS, not flagged, {"gaps": len(flagged), "threshold_minutes": threshold.total_seconds() / 60,
                                               "sample": "; ".join(flagged[:10]) or "none"}),
    ]


# ------------------------------------------------------------------------------------------- derived tables
BARS_SQL = """
SELECT CAST(? AS DATE) AS trade_date, instrument_id,
       date_trunc('minute', CAST(ts AS TIMESTAMPTZ)) AS minute,
       arg_min(price, ts) AS open, max(price) AS high, min(price) AS low, arg_max(price, ts) AS close,
       sum(size) AS volume, sum(price * size) / nullif(sum(size), 0) AS vwap, count(*) AS trades
FROM {src} WHERE event = 'trade' AND price IS NOT NULL
GROUP BY instrument_id, minute ORDER BY instrument_id, minute
"""

DAILY_STATS_SQL = """
SELECT CAST(? AS DATE) AS trade_date, instrument_id,
       string_agg(DISTINCT source, ',' ORDER BY source) AS sources,
       count(*) AS ticks,
       count(*) FILTER (WHERE event = 'trade') AS trades,
       count(*) FILTER (WHERE event = 'quote') AS quotes,
       sum(size) FILTER (WHERE event = 'trade') AS volume,
       sum(price * size) FILTER (WHERE event = 'trade') / nullif(sum(size) FILTER (WHERE event = 'trade'), 0) AS vwap,
       CAST(min(ts) AS TIMESTAMPTZ) AS first_ts, CAST(max(ts) AS TIMESTAMPTZ) AS last_ts,
       arg_min(price, ts) FILTER (WHERE event = 'trade') AS first_price,
       arg_max(price, ts) FILTER (WHERE event = 'trade') AS last_price,
       max(price) FILTER (WHERE event = 'trade') AS high,
       min(price) FILTER (WHERE event = 'trade') AS low,
       avg(ask - bid) FILTER (WHERE event = 'quote') AS spread_mean,
       median(ask - bid) FILTER (WHERE event = 'quote') AS spread_median,
       max(ask - bid) FILTER (WHERE event = 'quote') AS spread_max,
       avg(1e4 * (ask - bid) / ((ask + bid) / 2)) FILTER (WHERE event = 'quote' AND ask + bid > 0) AS spread_mean_bps
FROM {src} GROUP BY instrument_id ORDER BY instrument_id
"""


def bars_1m(con, path: Path, day: str):
    """One-minute bars of a tick file as a pandas DataFrame."""
    return con.execute(BARS_SQL.format(src=f"read_parquet('{sql_path(path)}')"), [day]).df()


def daily_stats(con, path: Path, day: str):
    return con.execute(DAILY_STATS_SQL.format(src=f"read_parquet('{sql_path(path)}')"), [day]).df()
