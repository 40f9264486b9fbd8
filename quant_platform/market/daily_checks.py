"""Quality rules of a compacted tick day, evaluated in DuckDB on the staged Parquet before it is published, the
trading-hours calendar the gap rule uses, and the SQL of the bars and daily statistics derived from the day.

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
CROSSED_QUOTES = "quotes_not_crossed_or_locked"
TS_IN_DAY = "timestamps_inside_day"
PRICES_POSITIVE = "prices_positive"
NO_LONG_GAPS = "no_long_gaps_in_trading_hours"
VENDOR_SEQUENCE = "vendor_sequence_complete"

CHECK_DESCRIPTIONS = {
    COMPLETENESS: "Every raw message TICKS_RAW accepted in the day's sequence window is in the day's ticks or in "
                  "TICKS_DLQ (or carries ticks of another day); missing sequence ranges are listed. Blocking.",
    NO_DUPLICATES: "No event_id appears twice after compaction. Blocking.",
    CROSSED_QUOTES: "Quotes with bid > ask (crossed) or bid = ask (locked), counted per instrument with samples. "
                    "Normal on consolidated US equity feeds (NBBO from several venues) and in fast markets: a "
                    "warning, never a block (the quotes are kept as the vendor sent them).",
    TS_IN_DAY: "Every tick's ts lies inside the UTC day of the partition. Blocking.",
    PRICES_POSITIVE: "Trade prices are > 0 and quoted bid/ask are > 0 where present. Blocking.",
    NO_LONG_GAPS: "No instrument goes longer than QP_TICK_GAP_MINUTES (default 15) without a tick during its "
                  "trading hours (crypto 24/7; US equities 09:30-16:00 New York; futures Sunday 18:00 - Friday 17:00 "
                  "New York with the daily 17:00-18:00 break). Warning only.",
    VENDOR_SEQUENCE: "Nothing is missing by the vendors' own account: no jump in a sequence the vendor documents as "
                     "contiguous (Binance aggTrade ids per symbol in the day's ticks; depth update ids, seen live by "
                     "the connector), no connection window (the connector lost the vendor, or its process started "
                     "after the source's last tick), and no events of the day's raw messages in TICKS_DLQ that were "
                     "not redriven (a DLQ'd raw message counts as complete by stream sequence, not for the vendor). "
                     "Counts by kind and source with samples; every gap is a row of market.vendor_gaps. Warning only "
                     "(the stream-sequence completeness above stays blocking).",
}
BLOCKING = (COMPLETENESS, NO_DUPLICATES, TS_IN_DAY, PRICES_POSITIVE)
CROSSED_SAMPLE = 10

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


def evaluate_rules(con, path: Path, day: str, asset_classes: dict[str, str], *,
                   id_hashes: tuple[int, int] | None = None) -> list[RuleResult]:
    """The row-level rules (all but completeness) on a tick file. `id_hashes`: (rows, distinct hashes of the
    event_ids) of this same file when a scan of it has counted them already (compaction.describe_ticks)."""
    src = f"read_parquet('{sql_path(path)}')"
    start, end = day_bounds(day)
    # Distinct 64-bit hashes as many as rows proves every id distinct (the day's usual answer, at half the CPU of
    # counting distinct strings); otherwise the strings are counted (a duplicate, or two ids sharing a hash).
    if id_hashes is None:
        dup = con.execute(f"SELECT count(*) - count(DISTINCT hash(event_id)) FROM {src}").fetchone()[0]  # noqa: S608
    else:
        dup = id_hashes[0] - id_hashes[1]
    if dup:
        dup = con.execute(f"SELECT count(*) - count(DISTINCT event_id) FROM {src}").fetchone()[0]  # noqa: S608
    crossed_by = con.execute(
        f"SELECT instrument_id, count(*) FILTER (WHERE bid > ask), count(*) FILTER (WHERE bid = ask), count(*) "  # noqa: S608
        f"FROM {src} WHERE event = 'quote' AND bid IS NOT NULL AND ask IS NOT NULL "
        "GROUP BY instrument_id HAVING count(*) FILTER (WHERE bid >= ask) > 0 ORDER BY instrument_id").fetchall()
    crossed_rows = con.execute(
        f"SELECT instrument_id, ts::VARCHAR, exchange, bid, ask FROM {src} WHERE event = 'quote' "  # noqa: S608
        f"AND bid >= ask ORDER BY ts, instrument_id LIMIT {CROSSED_SAMPLE}").fetchall() if crossed_by else []
    crossed = sum(int(r[1]) for r in crossed_by)
    locked = sum(int(r[2]) for r in crossed_by)
    # One scan for the counts of the other rules (they were a scan of the day each).
    two_sided, outside, ts_min, ts_max, bad_price = con.execute(
        "SELECT count(*) FILTER (WHERE event = 'quote' AND bid IS NOT NULL AND ask IS NOT NULL), "  # noqa: S608
        "count(*) FILTER (WHERE epoch_ns(ts) < ? OR epoch_ns(ts) >= ?), min(ts)::VARCHAR, max(ts)::VARCHAR, "
        "count(*) FILTER (WHERE (event = 'trade' AND (price IS NULL OR NOT price > 0)) "
        f"OR (event = 'quote' AND (bid <= 0 OR ask <= 0))) FROM {src}",
        [int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9]).fetchone()
    threshold = gap_threshold()
    # Gaps longer than the threshold, found without ordering the day's rows: in buckets of the threshold's width,
    # two ticks of one bucket are closer than the threshold, so every longer gap runs from the last tick of a
    # bucket with ticks to the first tick of the instrument's next bucket with ticks. The window runs over the
    # (instrument, bucket) minima and maxima only (measured at 10M ticks: 0.09 s against 0.73 s over every row).
    width = max(1, int(threshold.total_seconds() * 1e9))
    gaps = con.execute(
        "SELECT instrument_id, prev_ns, t_ns FROM (SELECT instrument_id, lo AS t_ns, "  # noqa: S608
        "lag(hi) OVER (PARTITION BY instrument_id ORDER BY b) AS prev_ns FROM (SELECT instrument_id, "
        f"epoch_ns(ts) // ? AS b, min(epoch_ns(ts)) AS lo, max(epoch_ns(ts)) AS hi FROM {src} GROUP BY ALL)) "
        "WHERE t_ns - prev_ns > ? ORDER BY instrument_id, prev_ns", [width, width]).fetchall()
    flagged = []
    for inst, a_ns, b_ns in gaps:
        ac = asset_classes.get(inst, "unknown")
        a, b = datetime.fromtimestamp(a_ns / 1e9, UTC), datetime.fromtimestamp(b_ns / 1e9, UTC)
        mins = trading_minutes(ac, a, b)
        if mins > threshold.total_seconds() / 60:
            flagged.append(f"{inst} {a.astimezone(UTC):%H:%M:%S}-{b.astimezone(UTC):%H:%M:%S} ({mins:.0f} trading min)")
    return [
        RuleResult(NO_DUPLICATES, dup == 0, {"duplicate_rows": int(dup)}),
        RuleResult(CROSSED_QUOTES, crossed + locked == 0, {
            "crossed_quotes": crossed, "locked_quotes": locked, "two_sided_quotes": int(two_sided),
            "by_instrument": "; ".join(f"{i} crossed {c} locked {lk} of {n}" for i, c, lk, n in crossed_by) or "none",
            "sample": "; ".join(f"{i} {ts} {x or '-'} bid {b} ask {a}" for i, ts, x, b, a in crossed_rows) or "none"}),
        RuleResult(TS_IN_DAY, outside == 0, {"outside_day": int(outside), "first_ts": str(ts_min),
                                             "last_ts": str(ts_max), "day": day}),
        RuleResult(PRICES_POSITIVE, bad_price == 0, {"non_positive_prices": int(bad_price)}),
        RuleResult(NO_LONG_GAPS, not flagged, {"gaps": len(flagged), "threshold_minutes": threshold.total_seconds() / 60,
                                               "sample": "; ".join(flagged[:10]) or "none"}),
    ]


# ------------------------------------------------------------------------------------------- derived tables
# Only event = 'trade' makes bars and statistics (quotes, marks, funding rates, cancels and corrections do not:
# compaction has already applied the cancels and corrections to the trades). A trade whose vendor conditions say
# it does not set the consolidated high/low, open/close or volume (Massive's update rules: adapters/polygon.py
# CONDITION_RULES, e.g. odd lots, average-price and Form T trades) is left out of that part of the bar; a minute
# with no trade eligible for both its open/close and its high/low has no bar (as the vendor's own aggregates).
BARS_SQL = """
SELECT * FROM (
SELECT CAST(? AS DATE) AS trade_date, instrument_id,
       date_trunc('minute', CAST(ts AS TIMESTAMPTZ)) AS minute,
       arg_min(price, ts) FILTER (WHERE oc_ok) AS open, max(price) FILTER (WHERE hl_ok) AS high,
       min(price) FILTER (WHERE hl_ok) AS low, arg_max(price, ts) FILTER (WHERE oc_ok) AS close,
       sum(size) FILTER (WHERE vol_ok) AS volume,
       sum(price * size) FILTER (WHERE vol_ok) / nullif(sum(size) FILTER (WHERE vol_ok), 0) AS vwap,
       count(*) AS trades
FROM {trades}
GROUP BY instrument_id, minute) WHERE open IS NOT NULL AND high IS NOT NULL ORDER BY instrument_id, minute
"""

DAILY_STATS_SQL = """
WITH t AS (SELECT *, {flags} FROM {src})
SELECT CAST(? AS DATE) AS trade_date, instrument_id,
       string_agg(DISTINCT source, ',' ORDER BY source) AS sources,
       count(*) AS ticks,
       count(*) FILTER (WHERE event = 'trade') AS trades,
       count(*) FILTER (WHERE event = 'quote') AS quotes,
       sum(size) FILTER (WHERE event = 'trade' AND vol_ok) AS volume,
       sum(price * size) FILTER (WHERE event = 'trade' AND vol_ok)
           / nullif(sum(size) FILTER (WHERE event = 'trade' AND vol_ok), 0) AS vwap,
       CAST(min(ts) AS TIMESTAMPTZ) AS first_ts, CAST(max(ts) AS TIMESTAMPTZ) AS last_ts,
       arg_min(price, ts) FILTER (WHERE event = 'trade' AND oc_ok) AS first_price,
       arg_max(price, ts) FILTER (WHERE event = 'trade' AND oc_ok) AS last_price,
       max(price) FILTER (WHERE event = 'trade' AND hl_ok) AS high,
       min(price) FILTER (WHERE event = 'trade' AND hl_ok) AS low,
       avg(ask - bid) FILTER (WHERE event = 'quote') AS spread_mean,
       median(ask - bid) FILTER (WHERE event = 'quote') AS spread_median,
       max(ask - bid) FILTER (WHERE event = 'quote') AS spread_max,
       avg(1e4 * (ask - bid) / ((ask + bid) / 2)) FILTER (WHERE event = 'quote' AND ask + bid > 0) AS spread_mean_bps
FROM t GROUP BY instrument_id ORDER BY instrument_id
"""


def _sql_text_list(values) -> str:
    return "[" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) + "]"


def eligibility_flags(has_conditions: bool = True) -> str:
    """SQL select items hl_ok, oc_ok, vol_ok for tick rows: false where a source's vendor conditions exclude the
    trade from that part of a bar (the adapter format's bar_exclusions, for every source of that format in the
    instrument master); true everywhere else, and for every row of a file without a conditions column."""
    from quant_platform.market.adapters import ADAPTER_FORMATS
    from quant_platform.market.instruments import InstrumentMaster

    parts: dict[str, list[str]] = {"high_low": [], "open_close": [], "volume": []}
    if has_conditions:
        try:
            master = InstrumentMaster.load()
            sources = set(master.sources())
        except Exception:  # noqa: BLE001 - without a master, the formats' own source names still apply
            master, sources = None, set()
        for fmt, cls in ADAPTER_FORMATS.items():
            rules = getattr(cls, "bar_exclusions", None)
            if not rules:
                continue
            names = sorted({fmt} | {s for s in sources if master is not None and master.format_for(s) == fmt})
            for part, codes in rules.items():
                if codes:
                    parts[part].append(f"(source IN {_sql_text_list(names).replace('[', '(').replace(']', ')')} "
                                       f"AND list_has_any(string_split(conditions, ','), {_sql_text_list(codes)}))")
    flag = {p: ("NOT coalesce(" + " OR ".join(exprs) + ", false)") if exprs else "true" for p, exprs in parts.items()}
    return f"{flag['high_low']} AS hl_ok, {flag['open_close']} AS oc_ok, {flag['volume']} AS vol_ok"


def _source(con, path: Path) -> tuple[str, bool]:
    src = f"read_parquet('{sql_path(path)}')"
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}  # noqa: S608 - vetted path
    return src, "conditions" in cols


def bars_1m(con, path: Path, day: str):
    """One-minute bars of a tick file as a pandas DataFrame."""
    src, has_conditions = _source(con, path)
    trades = (f"(SELECT ts, instrument_id, price, size, {eligibility_flags(has_conditions)} "  # noqa: S608
              f"FROM {src} WHERE event = 'trade' AND price IS NOT NULL)")
    return con.execute(BARS_SQL.format(trades=trades), [day]).df()


def daily_stats(con, path: Path, day: str):
    src, has_conditions = _source(con, path)
    return con.execute(DAILY_STATS_SQL.format(src=src, flags=eligibility_flags(has_conditions)), [day]).df()
