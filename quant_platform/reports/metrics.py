"""Metric series of the reporting lane, computed from what the other lanes publish, and their store in the lake:
market metrics per instrument (daily and per minute), macro metrics per series (week-on-week change against
the same week's 5-year range, COT net positioning by trader category) and platform metrics (ingest lag,
release lateness, DLQ rate). Observations are written in chunks (a day, or a year of weekly data) under
reports/metrics/family=F/chunk=C/, each with a content hash the detectors use to notice changes.

Never modify an upstream table or file here, and never write a chunk partially: a chunk file is replaced whole.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

OBS_COLUMNS = ("series_id", "desk", "entity", "metric", "unit", "time", "value", "source_asset", "source_partition")
METRICS_DIR = "reports/metrics"
HASH_KEY = b"qp_content_sha256"

# (metric, unit, what it is) per family: the data dictionary of the series the detectors watch.
MARKET_DAILY_METRICS = {
    "volume": ("units of the instrument", "Traded volume of the UTC day (market/daily_stats.volume)."),
    "trades": ("trades", "Trades in the day (market/daily_stats.trades)."),
    "ticks": ("ticks", "Ticks in the day, trades and quotes (tick rate per day)."),
    "spread_bps": ("bp", "Mean quoted spread in basis points of the mid (market/daily_stats.spread_mean_bps)."),
    "range_bps": ("bp", "High minus low over VWAP, in basis points."),
    "realised_vol_bps": ("bp", "Realised volatility of the day from one-minute close-to-close log returns "
                                "(sqrt of their sum of squares), in basis points."),
    "feed_latency_ms": ("ms", "Median of received_at - ts over the day's ticks (feed latency)."),
}
MARKET_INTRADAY_METRICS = {
    "trades_per_min": ("trades", "Trades in the minute (market/bars_1m.trades)."),
    "volume_per_min": ("units of the instrument", "Volume in the minute (market/bars_1m.volume)."),
    "abs_return_bps": ("bp", "Absolute one-minute close-to-close log return, basis points."),
    "range_bps": ("bp", "High minus low of the minute over its close, basis points."),
}
WPSR_COLUMNS = {  # marts.us_crude_balance_weekly column -> unit
    "commercial_crude_stocks": "million barrels", "spr_crude_stocks": "million barrels",
    "crude_production": "thousand barrels per day", "crude_imports": "thousand barrels per day",
    "crude_exports": "thousand barrels per day", "refinery_crude_input": "thousand barrels per day",
}
COT_CATEGORIES = {  # trader category -> (report, long column, short column)
    "producer_merchant": ("disaggregated", "prod_merc_long", "prod_merc_short"),
    "swap_dealers": ("disaggregated", "swap_long", "swap_short"),
    "managed_money": ("disaggregated", "m_money_long", "m_money_short"),
    "other_reportables": ("disaggregated", "other_rept_long", "other_rept_short"),
    "non_commercial": ("legacy", "noncomm_long", "noncomm_short"),
    "commercial": ("legacy", "comm_long", "comm_short"),
}
PLATFORM_METRICS = {
    "ingest_lag_p95_ms": ("ms", "95th percentile of received_at - ts per feed and day (market/ticks_daily)."),
    "dlq_rate": ("fraction", "Raw messages of the day sent to TICKS_DLQ over raw messages of the day "
                              "(market/ticks_daily completeness check)."),
    "release_lateness_min": ("minutes", "Minutes from the vendor's scheduled release to the rows being in the "
                                        "warehouse (governance.raw_files.loaded_at - scheduled_release_at)."),
}


def desk_of(instrument_id: str, asset_class: str | None = None) -> str:
    """The desk an instrument's metrics go to: crude, gas, crypto or equities."""
    head = instrument_id.split(":", 1)[0].upper()
    if head == "CRYPTO" or asset_class == "crypto":
        return "crypto"
    if head == "EQ" or asset_class == "equity":
        return "equities"
    if head == "FUT":
        root = instrument_id.split(":")[1].upper() if ":" in instrument_id else ""
        return "gas" if root in {"NG", "TTF", "NBP"} else "crude"
    return "crude"


def _frame(rows: dict[str, list]) -> pd.DataFrame:
    df = pd.DataFrame({c: rows.get(c, []) for c in OBS_COLUMNS})
    df["time"] = pd.to_datetime(df["time"], utc=True).dt.as_unit("ns")
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype("float64")
    df = df[np.isfinite(df["value"])]
    return df.sort_values(["time", "series_id"], ignore_index=True)


def _long(frame: pd.DataFrame, entity_col: str, metrics: dict, desk, time_col: str, source_asset: str,
          source_partition) -> pd.DataFrame:
    """Wide per-entity columns -> observation rows."""
    parts = []
    for metric, (unit, _desc) in metrics.items():
        if metric not in frame.columns:
            continue
        ent = frame[entity_col].astype(str)
        parts.append(pd.DataFrame({
            "series_id": ent + "|" + metric, "desk": ent.map(desk) if callable(desk) else desk, "entity": ent,
            "metric": metric, "unit": unit, "time": frame[time_col], "value": frame[metric],
            "source_asset": source_asset,
            "source_partition": frame[source_partition] if source_partition in frame.columns else source_partition,
        }))
    if not parts:
        return _frame({})
    return _frame({c: pd.concat(parts, ignore_index=True)[c].tolist() for c in OBS_COLUMNS})


# ------------------------------------------------------------------------------------------- market
def market_daily(day: str, stats: pd.DataFrame, bars: pd.DataFrame, latency: pd.DataFrame,
                 asset_classes: dict[str, str]) -> pd.DataFrame:
    """One observation per instrument and metric for the UTC day (time = the day's midnight UTC)."""
    if stats.empty:
        return _frame({})
    f = stats.copy()
    f["spread_bps"] = f["spread_mean_bps"]
    f["range_bps"] = (f["high"] - f["low"]) / f["vwap"] * 1e4
    if not bars.empty:
        b = bars.sort_values(["instrument_id", "minute"])
        r = np.log(b["close"]).groupby(b["instrument_id"]).diff()
        rv = np.sqrt((r * r).groupby(b["instrument_id"]).sum(min_count=1)) * 1e4
        f["realised_vol_bps"] = f["instrument_id"].map(rv)
    if not latency.empty:
        f["feed_latency_ms"] = f["instrument_id"].map(latency.set_index("instrument_id")["latency_ms"])
    f["time"] = pd.Timestamp(day, tz="UTC")
    return _long(f, "instrument_id", MARKET_DAILY_METRICS, lambda i: desk_of(i, asset_classes.get(i)), "time",
                 "market/daily_stats", day)


def market_intraday(day: str, bars: pd.DataFrame, asset_classes: dict[str, str]) -> pd.DataFrame:
    """One observation per instrument, metric and minute with a trade (time = the minute's start)."""
    if bars.empty:
        return _frame({})
    b = bars.sort_values(["instrument_id", "minute"]).copy()
    b["trades_per_min"] = b["trades"]
    b["volume_per_min"] = b["volume"]
    b["abs_return_bps"] = np.abs(np.log(b["close"]).groupby(b["instrument_id"]).diff()) * 1e4
    b["range_bps"] = (b["high"] - b["low"]) / b["close"] * 1e4
    return _long(b, "instrument_id", MARKET_INTRADAY_METRICS, lambda i: desk_of(i, asset_classes.get(i)),
                 "minute", "market/bars_1m", day)


# ------------------------------------------------------------------------------------------- macro
def wpsr_week_on_week(balance: pd.DataFrame, years: int = 5, min_years: int = 3) -> pd.DataFrame:
    """Per balance series and week: the week-on-week change placed in the range of the same ISO week's changes
    over the previous `years` years: (change - their mean) / (their max - min). Needs `min_years` of them."""
    if balance.empty:
        return _frame({})
    f = balance.copy()
    f["week_ending"] = pd.to_datetime(f["week_ending"])
    f = f.sort_values("week_ending")
    iso = f["week_ending"].dt.isocalendar()
    f["iso_year"], f["iso_week"] = iso["year"].astype(int), iso["week"].astype(int)
    rows: dict[str, list] = {c: [] for c in OBS_COLUMNS}
    for col, unit in WPSR_COLUMNS.items():
        if col not in f.columns:
            continue
        consecutive = f["week_ending"].diff() == pd.Timedelta(days=7)
        wow = f[col].astype(float).diff().where(consecutive)
        table = pd.DataFrame({"y": f["iso_year"].to_numpy(), "w": f["iso_week"].to_numpy(), "wow": wow.to_numpy(),
                              "t": f["week_ending"].to_numpy()}).dropna(subset=["wow"])
        by_week = {w: g.set_index("y")["wow"] for w, g in table.groupby("w")}
        for y, w, change, t in table.itertuples(index=False):
            past = by_week[w]
            past = past[(past.index >= y - years) & (past.index < y)]
            if len(past) < min_years:
                continue
            span = float(past.max() - past.min())
            if not span > 0:
                continue
            rows["series_id"].append(f"US:{col}|wow_vs_5y_range")
            rows["desk"].append("crude")
            rows["entity"].append(f"US:{col}")
            rows["metric"].append("wow_vs_5y_range")
            rows["unit"].append(f"5-year ranges of the week's change ({unit})")
            rows["time"].append(pd.Timestamp(t, tz="UTC"))
            rows["value"].append((float(change) - float(past.mean())) / span)
            rows["source_asset"].append("marts/us_crude_balance_weekly")
            rows["source_partition"].append(pd.Timestamp(t).date().isoformat())
    return _frame(rows)


def cot_net_positioning(dis: pd.DataFrame, leg: pd.DataFrame, contracts: dict[str, str]) -> pd.DataFrame:
    """Net position (long - short) as a percentage of open interest, per contract and trader category."""
    rows: dict[str, list] = {c: [] for c in OBS_COLUMNS}
    for category, (report, long_col, short_col) in COT_CATEGORIES.items():
        df = dis if report == "disaggregated" else leg
        if df.empty or long_col not in df.columns:
            continue
        d = df[df["contract_code"].isin(list(contracts))]
        oi = d["open_interest"].astype(float)
        net = (d[long_col].astype(float) - d[short_col].astype(float)) / oi.where(oi > 0) * 100
        for code, as_of, value in zip(d["contract_code"], d["as_of"], net, strict=True):
            name = contracts[code]
            rows["series_id"].append(f"COT:{code}:{category}|net_pct_oi")
            rows["desk"].append("gas" if "natural gas" in name.lower() else "crude")
            rows["entity"].append(f"COT:{code}:{category}")
            rows["metric"].append("net_pct_oi")
            rows["unit"].append("percent of open interest")
            rows["time"].append(pd.Timestamp(as_of, tz="UTC"))
            rows["value"].append(value)
            rows["source_asset"].append(f"macro/cftc_cot_{report}")
            rows["source_partition"].append(pd.Timestamp(as_of).date().isoformat())
    return _frame(rows)


# ------------------------------------------------------------------------------------------- platform
def platform_day(day: str, lag_by_source: pd.DataFrame, dlq: dict | None, releases: pd.DataFrame) -> pd.DataFrame:
    """Ingest lag per feed and the DLQ rate of the UTC day; release lateness of each vendor release whose
    scheduled time falls in the day."""
    rows: dict[str, list] = {c: [] for c in OBS_COLUMNS}
    t = pd.Timestamp(day, tz="UTC")

    def add(entity, metric, time, value, asset, partition):
        rows["series_id"].append(f"{entity}|{metric}")
        rows["desk"].append("platform")
        rows["entity"].append(entity)
        rows["metric"].append(metric)
        rows["unit"].append(PLATFORM_METRICS[metric][0])
        rows["time"].append(time)
        rows["value"].append(value)
        rows["source_asset"].append(asset)
        rows["source_partition"].append(partition)

    for source, lag in zip(lag_by_source.get("source", []), lag_by_source.get("lag_p95_ms", []), strict=True):
        add(f"feed:{source}", "ingest_lag_p95_ms", t, lag, "market/ticks_daily", day)
    if dlq and dlq.get("expected"):
        add("stream:TICKS_RAW", "dlq_rate", t, dlq["in_dlq"] / dlq["expected"], "market/ticks_daily", day)
    for vendor, dataset, partition, sched, loaded in releases.itertuples(index=False):
        if pd.isna(sched) or pd.isna(loaded):
            continue
        minutes = (pd.Timestamp(loaded) - pd.Timestamp(sched)).total_seconds() / 60
        add(f"release:{vendor}/{dataset}", "release_lateness_min", pd.Timestamp(sched).tz_convert("UTC"), minutes,
            f"macro ({vendor}/{dataset})", str(partition))
    return _frame(rows)


# ------------------------------------------------------------------------------------------- the store
@dataclass(frozen=True)
class Chunk:
    family: str
    chunk: str
    path: Path
    content_hash: str
    min_time: int  # ns
    max_time: int
    rows: int


def chunk_dir(lake_root: Path, family: str) -> Path:
    return lake_root / METRICS_DIR / f"family={family}"


def content_hash(frame: pd.DataFrame) -> str:
    h = hashlib.sha256()
    f = frame[list(OBS_COLUMNS)].sort_values(["time", "series_id"], ignore_index=True)
    h.update(pd.util.hash_pandas_object(f, index=False).to_numpy().tobytes())
    return h.hexdigest()


def write_chunk(lake_root: Path, family: str, chunk: str, frame: pd.DataFrame) -> Chunk | None:
    """Replace chunk `chunk` of `family` by `frame` (an empty frame removes it); unchanged content is left as
    it is. Written to a temporary name and renamed."""
    folder = chunk_dir(lake_root, family) / f"chunk={chunk}"
    path = folder / "observations.parquet"
    if frame.empty:
        if path.exists():
            path.unlink()
        return None
    digest = content_hash(frame)
    old = read_chunk_meta(family, chunk, path) if path.exists() else None
    if old is not None and old.content_hash == digest:
        return old
    frame = frame.assign(time=pd.to_datetime(frame["time"], utc=True).dt.as_unit("ns"))
    table = pa.Table.from_pandas(frame[list(OBS_COLUMNS)].sort_values(["time", "series_id"], ignore_index=True),
                                 preserve_index=False)
    times = frame["time"].astype("int64")
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), HASH_KEY: digest.encode(),
                                           b"qp_min_time": str(int(times.min())).encode(),
                                           b"qp_max_time": str(int(times.max())).encode()})
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".observations.{digest[:12]}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return Chunk(family, chunk, path, digest, int(times.min()), int(times.max()), len(frame))


def read_chunk_meta(family: str, chunk: str, path: Path) -> Chunk:
    md = pq.read_metadata(path)
    meta = md.schema.to_arrow_schema().metadata or {}
    return Chunk(family, chunk, path, meta[HASH_KEY].decode(), int(meta[b"qp_min_time"]),
                 int(meta[b"qp_max_time"]), md.num_rows)


def list_chunks(lake_root: Path, family: str) -> list[Chunk]:
    folder = chunk_dir(lake_root, family)
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.glob("chunk=*/observations.parquet")):
        out.append(read_chunk_meta(family, p.parent.name.split("=", 1)[1], p))
    return out


def read_observations(chunks: list[Chunk], after_ns: int | None = None) -> pd.DataFrame:
    """Observations of the chunks with time > after_ns (all when None), sorted by (time, series_id)."""
    frames = []
    for c in chunks:
        if after_ns is not None and c.max_time <= after_ns:
            continue
        df = pq.read_table(c.path).to_pandas()
        df["time"] = df["time"].dt.as_unit("ns")
        if after_ns is not None:
            df = df[df["time"].astype("int64") > after_ns]
        frames.append(df)
    if not frames:
        return _frame({})
    return pd.concat(frames, ignore_index=True).sort_values(["time", "series_id"], ignore_index=True)


def year_chunks(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Weekly data in one chunk per calendar year."""
    if frame.empty:
        return {}
    years = frame["time"].dt.year
    return {str(y): g for y, g in frame.groupby(years)}


def finite(x) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x
