-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.
CREATE TABLE IF NOT EXISTS marts.us_crude_balance_weekly (
    week_ending DATE NOT NULL,
    commercial_crude_stocks DOUBLE PRECISION,
    spr_crude_stocks DOUBLE PRECISION,
    crude_production DOUBLE PRECISION,
    crude_imports DOUBLE PRECISION,
    crude_exports DOUBLE PRECISION,
    crude_net_imports DOUBLE PRECISION,
    refinery_crude_input DOUBLE PRECISION,
    commercial_crude_stocks_wow DOUBLE PRECISION,
    spr_crude_stocks_wow DOUBLE PRECISION,
    crude_production_wow DOUBLE PRECISION,
    crude_imports_wow DOUBLE PRECISION,
    refinery_crude_input_wow DOUBLE PRECISION,
    source TEXT NOT NULL,
    available_at TIMESTAMPTZ NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (week_ending)
);

CREATE TABLE IF NOT EXISTS marts.cot_positioning (
    as_of DATE NOT NULL,
    available_at TIMESTAMPTZ NOT NULL,
    contract_code TEXT NOT NULL,
    instrument TEXT NOT NULL,
    trader_group TEXT NOT NULL,
    long_contracts BIGINT NOT NULL,
    short_contracts BIGINT NOT NULL,
    net_contracts BIGINT NOT NULL,
    open_interest BIGINT NOT NULL,
    net_pct_open_interest DOUBLE PRECISION NOT NULL,
    net_change_wow BIGINT,
    net_zscore_3y DOUBLE PRECISION,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of, contract_code, trader_group)
);
