"""Warehouse tables of the market lane, declared once: tick history, one-minute bars, daily statistics, vendor gaps.

Never describe a tick column here differently from contracts.TICK_SCHEMA: the history is the same ticks.
"""

from __future__ import annotations

from quant_platform.market.contracts import EVENTS, SIZE_UNITS
from quant_platform.platform.tables import Column, TableSpec

_PRICE = "quote currency of the instrument"

TICK_COLUMNS = (
    Column("ts", "timestamptz", "Exchange event time (UTC, nanoseconds in the lake).", nullable=False),
    Column("received_at", "timestamptz", "When the connector received the frame (UTC).", nullable=False),
    Column("source", "text", "Feed the tick came from: binance, polygon, alpaca, simulator, ...", nullable=False),
    Column("instrument_id", "text", "The firm's instrument id from the instrument master, e.g. CRYPTO:BTC-USDT.",
           nullable=False),
    Column("venue_symbol", "text", "The symbol as the vendor sent it.", nullable=False),
    Column("exchange", "text", "Exchange or venue code where the vendor gives one."),
    Column("event", "text", "trade, quote, mark (a mark price), funding (a funding rate, in price), cancel or "
           "correction (of the trade ref_seq names). Bars and statistics count trades only.", nullable=False,
           allowed_values=EVENTS),
    Column("price", "double", "Trade price (trades only).", unit=_PRICE),
    Column("size", "double", "Trade size (trades only).", unit="units of the instrument"),
    Column("bid", "double", "Best bid (quotes only).", unit=_PRICE),
    Column("bid_size", "double", "Size at the best bid (quotes only).", unit="units of the instrument"),
    Column("ask", "double", "Best ask (quotes only).", unit=_PRICE),
    Column("ask_size", "double", "Size at the best ask (quotes only).", unit="units of the instrument"),
    Column("vendor_seq", "bigint", "The vendor's own trade id or sequence number, where it sends one."),
    Column("event_id", "text", "Deterministic id of the vendor event: the deduplication key.", nullable=False),
    Column("stream_seq", "bigint", "JetStream sequence of the raw TICKS_RAW message that carried the tick "
           "(the completeness check accounts for every one).", nullable=False),
    Column("conditions", "text", "Trade conditions as the vendor sent them, comma-joined (Massive/Polygon codes, "
           "Alpaca letters); bars leave out trades whose conditions make them ineligible."),
    Column("size_unit", "text", "Unit of size, bid_size and ask_size where the vendor states one (Massive's US "
           "equity quotes: round lots before 2025-11-03, shares from then on).", allowed_values=SIZE_UNITS),
    Column("ref_seq", "bigint", "Cancel or correction: the vendor_seq of the trade it cancels or corrects."),
)

TICKS_HISTORY = TableSpec(
    schema="market",
    name="ticks_history",
    description=(
        "Every canonical tick of every closed and checked UTC day, deduplicated by event_id and sorted by "
        "(instrument_id, ts). DuckDB: a view over the daily Parquet files of the lake; PostgreSQL: a table "
        "partitioned by trade_date, one partition per day, bulk loaded with COPY. The last few days are also in "
        "the OLAP views market.ticks_recent (before compaction)."
    ),
    columns=(Column("trade_date", "date", "UTC day of ts (the partition).", nullable=False), *TICK_COLUMNS),
    primary_key=("trade_date", "event_id"),
    partition_column="trade_date",
)

BARS_1M = TableSpec(
    schema="market",
    name="bars_1m",
    description=(
        "One-minute OHLCV bars per instrument from the trades of a compacted tick day: open/high/low/close, "
        "volume, VWAP and trade count. Minutes without a trade have no row. Quotes do not make bars."
    ),
    columns=(
        Column("trade_date", "date", "UTC day (the partition).", nullable=False),
        Column("instrument_id", "text", "The firm's instrument id.", nullable=False),
        Column("minute", "timestamptz", "Start of the minute (UTC).", nullable=False),
        Column("open", "double", "First trade price in the minute.", unit=_PRICE, nullable=False, min_value=0),
        Column("high", "double", "Highest trade price.", unit=_PRICE, nullable=False, min_value=0),
        Column("low", "double", "Lowest trade price.", unit=_PRICE, nullable=False, min_value=0),
        Column("close", "double", "Last trade price in the minute.", unit=_PRICE, nullable=False, min_value=0),
        Column("volume", "double", "Sum of trade sizes.", unit="units of the instrument", min_value=0),
        Column("vwap", "double", "Volume-weighted average price (null if the volume is 0).", unit=_PRICE),
        Column("trades", "bigint", "Number of trades.", nullable=False, min_value=1),
    ),
    primary_key=("instrument_id", "minute"),
    partition_column="trade_date",
)

DAILY_STATS = TableSpec(
    schema="market",
    name="daily_stats",
    description=(
        "Per instrument and UTC day: tick, trade and quote counts, volume and VWAP, first/last/high/low trade "
        "price with their times, and quoted spread statistics (mean, median, max, in price units and basis "
        "points of the mid)."
    ),
    columns=(
        Column("trade_date", "date", "UTC day (the partition).", nullable=False),
        Column("instrument_id", "text", "The firm's instrument id.", nullable=False),
        Column("sources", "text", "Feeds that delivered ticks for the instrument, comma-separated.", nullable=False),
        Column("ticks", "bigint", "Ticks of the day (trades + quotes).", nullable=False, min_value=1),
        Column("trades", "bigint", "Trades.", nullable=False, min_value=0),
        Column("quotes", "bigint", "Quotes.", nullable=False, min_value=0),
        Column("volume", "double", "Sum of trade sizes.", unit="units of the instrument", min_value=0),
        Column("vwap", "double", "Volume-weighted average trade price.", unit=_PRICE),
        Column("first_ts", "timestamptz", "First tick of the day."),
        Column("last_ts", "timestamptz", "Last tick of the day."),
        Column("first_price", "double", "First trade price.", unit=_PRICE),
        Column("last_price", "double", "Last trade price.", unit=_PRICE),
        Column("high", "double", "Highest trade price.", unit=_PRICE),
        Column("low", "double", "Lowest trade price.", unit=_PRICE),
        Column("spread_mean", "double", "Mean quoted spread (ask - bid).", unit=_PRICE),
        Column("spread_median", "double", "Median quoted spread.", unit=_PRICE),
        Column("spread_max", "double", "Widest quoted spread.", unit=_PRICE),
        Column("spread_mean_bps", "double", "Mean quoted spread in basis points of the mid.", unit="bp"),
    ),
    primary_key=("trade_date", "instrument_id"),
    partition_column="trade_date",
)

VENDOR_GAPS = TableSpec(
    schema="market",
    name="vendor_gaps",
    description=(
        "What the vendors' own sequence numbers and the connectors' connection records say is missing from a UTC "
        "tick day, one row per gap: a jump in a sequence the vendor documents as contiguous (Binance aggTrade ids "
        "in the compacted ticks; depth update ids found live by the connector), a connection window (the connector "
        "lost the vendor and regained it, or its process started), or events the normalizer rejected to TICKS_DLQ "
        "that were not redriven (their raw message counts as complete for the stream-sequence check, but its "
        "events are not in the day). Written with each compaction of the day (a redrive or a late tick followed "
        "by a new compaction replaces the day's rows). Massive's `q` and Databento's `sequence` are not contiguous "
        "per instrument, so for those sources only windows and rejects appear."
    ),
    columns=(
        Column("trade_date", "date", "UTC day of the compacted ticks (the partition).", nullable=False),
        Column("gap_id", "text", "Deterministic id of the gap (kind, source, instrument, range, times).",
               nullable=False),
        Column("source", "text", "Feed the gap is in.", nullable=False),
        Column("kind", "text", "sequence (a jump in a contiguous vendor sequence), disconnect (the connector lost "
               "and regained the vendor), restart (a connector process started: lost since the source's last tick "
               "of the day, if any), rejected (events in TICKS_DLQ, not redriven).", nullable=False,
               allowed_values=("sequence", "disconnect", "restart", "rejected")),
        Column("channel", "text", "The vendor channel whose sequence jumped (aggTrade, depthUpdate), or the "
               "connection (route) of a window."),
        Column("instrument_id", "text", "The firm's instrument id (sequence gaps found in the ticks)."),
        Column("venue_symbol", "text", "The symbol as the vendor sent it (sequence gaps)."),
        Column("from_seq", "bigint", "First missing vendor sequence number (sequence gaps)."),
        Column("to_seq", "bigint", "Last missing vendor sequence number (sequence gaps)."),
        Column("missing", "bigint", "Events missing: vendor ids in the jump, or rejected frames/events; null when "
               "the vendor's ids do not tell (a window, USD-M depth).", min_value=0),
        Column("gap_start", "timestamptz", "Exchange time of the last event before the jump, or when the "
               "connection was lost (its last frame)."),
        Column("gap_end", "timestamptz", "Exchange time of the first event after the jump, or when the vendor was "
               "regained (subscribed again)."),
        Column("seconds", "double", "gap_end - gap_start.", unit="s"),
        Column("raw_seq_before", "bigint", "TICKS_RAW sequence of the raw message before the gap (the connector's "
               "record or the DLQ'd message for windows and rejects)."),
        Column("raw_seq_after", "bigint", "TICKS_RAW sequence of the raw message after the gap."),
        Column("detected", "text", "compaction (the day's ticks), connector (its live records) or dlq.",
               nullable=False),
        Column("detail", "text", "Cause where one is known (DLQ'd raw messages, a window in between, an intraday "
               "replay requested) and how to fill it."),
    ),
    primary_key=("trade_date", "gap_id"),
    partition_column="trade_date",
)

# Tables created by `warehouse init` from the generated DDL (ticks_history is backend-specific: history.py).
MARKET_TABLES = (BARS_1M, DAILY_STATS, VENDOR_GAPS)
