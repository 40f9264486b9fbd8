-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.
CREATE TABLE IF NOT EXISTS market.bars_1m (
    trade_date DATE NOT NULL,
    instrument_id TEXT NOT NULL,
    minute TIMESTAMPTZ NOT NULL,
    open DOUBLE PRECISION NOT NULL,
    high DOUBLE PRECISION NOT NULL,
    low DOUBLE PRECISION NOT NULL,
    close DOUBLE PRECISION NOT NULL,
    volume DOUBLE PRECISION,
    vwap DOUBLE PRECISION,
    trades BIGINT NOT NULL,
    PRIMARY KEY (instrument_id, minute)
);

CREATE TABLE IF NOT EXISTS market.daily_stats (
    trade_date DATE NOT NULL,
    instrument_id TEXT NOT NULL,
    sources TEXT NOT NULL,
    ticks BIGINT NOT NULL,
    trades BIGINT NOT NULL,
    quotes BIGINT NOT NULL,
    volume DOUBLE PRECISION,
    vwap DOUBLE PRECISION,
    first_ts TIMESTAMPTZ,
    last_ts TIMESTAMPTZ,
    first_price DOUBLE PRECISION,
    last_price DOUBLE PRECISION,
    high DOUBLE PRECISION,
    low DOUBLE PRECISION,
    spread_mean DOUBLE PRECISION,
    spread_median DOUBLE PRECISION,
    spread_max DOUBLE PRECISION,
    spread_mean_bps DOUBLE PRECISION,
    PRIMARY KEY (trade_date, instrument_id)
);

CREATE TABLE IF NOT EXISTS market.vendor_gaps (
    trade_date DATE NOT NULL,
    gap_id TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT,
    instrument_id TEXT,
    venue_symbol TEXT,
    from_seq BIGINT,
    to_seq BIGINT,
    missing BIGINT,
    gap_start TIMESTAMPTZ,
    gap_end TIMESTAMPTZ,
    seconds DOUBLE PRECISION,
    raw_seq_before BIGINT,
    raw_seq_after BIGINT,
    detected TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (trade_date, gap_id)
);
