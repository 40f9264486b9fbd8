-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.
CREATE TABLE IF NOT EXISTS macro.eia_wpsr (
    week_ending DATE NOT NULL,
    report_table TEXT NOT NULL,
    section TEXT NOT NULL,
    line_no INTEGER,
    series TEXT NOT NULL,
    series_key TEXT NOT NULL,
    measure TEXT NOT NULL,
    reference_date DATE NOT NULL,
    value DOUBLE PRECISION,
    unit TEXT NOT NULL,
    not_meaningful BOOLEAN NOT NULL,
    source_sha256 TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (week_ending, series_key, measure)
);

CREATE TABLE IF NOT EXISTS macro.eia_series (
    series_id TEXT NOT NULL,
    period DATE NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    unit TEXT NOT NULL,
    frequency TEXT NOT NULL,
    series_name TEXT NOT NULL,
    source TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (series_id, period)
);

CREATE TABLE IF NOT EXISTS macro.cftc_cot_disaggregated (
    as_of DATE NOT NULL,
    available_at TIMESTAMPTZ NOT NULL,
    contract_code TEXT NOT NULL,
    market_name TEXT NOT NULL,
    exchange_code TEXT NOT NULL,
    commodity_code TEXT NOT NULL,
    open_interest BIGINT NOT NULL,
    prod_merc_long BIGINT,
    prod_merc_short BIGINT,
    swap_long BIGINT,
    swap_short BIGINT,
    swap_spread BIGINT,
    m_money_long BIGINT,
    m_money_short BIGINT,
    m_money_spread BIGINT,
    other_rept_long BIGINT,
    other_rept_short BIGINT,
    other_rept_spread BIGINT,
    tot_rept_long BIGINT,
    tot_rept_short BIGINT,
    nonrept_long BIGINT,
    nonrept_short BIGINT,
    contract_units TEXT,
    source_sha256 TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of, contract_code)
);

CREATE TABLE IF NOT EXISTS macro.cftc_cot_legacy (
    as_of DATE NOT NULL,
    available_at TIMESTAMPTZ NOT NULL,
    contract_code TEXT NOT NULL,
    market_name TEXT NOT NULL,
    exchange_code TEXT NOT NULL,
    commodity_code TEXT NOT NULL,
    open_interest BIGINT NOT NULL,
    noncomm_long BIGINT,
    noncomm_short BIGINT,
    noncomm_spread BIGINT,
    comm_long BIGINT,
    comm_short BIGINT,
    tot_rept_long BIGINT,
    tot_rept_short BIGINT,
    nonrept_long BIGINT,
    nonrept_short BIGINT,
    contract_units TEXT,
    source_sha256 TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of, contract_code)
);

CREATE TABLE IF NOT EXISTS macro.eia_wpsr_tables (
    week_ending DATE NOT NULL,
    wpsr_table TEXT NOT NULL,
    series_id TEXT NOT NULL,
    frequency TEXT NOT NULL,
    period DATE NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    unit TEXT NOT NULL,
    series_name TEXT NOT NULL,
    sheet TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (week_ending, wpsr_table, series_id, frequency, period)
);

CREATE TABLE IF NOT EXISTS macro.eia_gas_storage (
    week_ending DATE NOT NULL,
    region TEXT NOT NULL,
    series_id TEXT NOT NULL,
    measure TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    unit TEXT NOT NULL,
    survey TEXT NOT NULL,
    file_as_of DATE NOT NULL,
    source_sha256 TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (week_ending, series_id, measure)
);

CREATE TABLE IF NOT EXISTS macro.eia_spot_prices (
    series_id TEXT NOT NULL,
    period DATE NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    unit TEXT NOT NULL,
    series_name TEXT NOT NULL,
    frequency TEXT NOT NULL,
    release_date DATE NOT NULL,
    source_sha256 TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (series_id, period)
);

CREATE TABLE IF NOT EXISTS macro.cftc_cot_disaggregated_combined (
    as_of DATE NOT NULL,
    available_at TIMESTAMPTZ NOT NULL,
    contract_code TEXT NOT NULL,
    market_name TEXT NOT NULL,
    exchange_code TEXT NOT NULL,
    commodity_code TEXT NOT NULL,
    open_interest BIGINT NOT NULL,
    prod_merc_long BIGINT,
    prod_merc_short BIGINT,
    swap_long BIGINT,
    swap_short BIGINT,
    swap_spread BIGINT,
    m_money_long BIGINT,
    m_money_short BIGINT,
    m_money_spread BIGINT,
    other_rept_long BIGINT,
    other_rept_short BIGINT,
    other_rept_spread BIGINT,
    tot_rept_long BIGINT,
    tot_rept_short BIGINT,
    nonrept_long BIGINT,
    nonrept_short BIGINT,
    contract_units TEXT,
    source_sha256 TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of, contract_code)
);

CREATE TABLE IF NOT EXISTS macro.cftc_cot_legacy_combined (
    as_of DATE NOT NULL,
    available_at TIMESTAMPTZ NOT NULL,
    contract_code TEXT NOT NULL,
    market_name TEXT NOT NULL,
    exchange_code TEXT NOT NULL,
    commodity_code TEXT NOT NULL,
    open_interest BIGINT NOT NULL,
    noncomm_long BIGINT,
    noncomm_short BIGINT,
    noncomm_spread BIGINT,
    comm_long BIGINT,
    comm_short BIGINT,
    tot_rept_long BIGINT,
    tot_rept_short BIGINT,
    nonrept_long BIGINT,
    nonrept_short BIGINT,
    contract_units TEXT,
    source_sha256 TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of, contract_code)
);
