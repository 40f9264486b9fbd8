-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.
CREATE TABLE IF NOT EXISTS macro.eia_wpsr_history (
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
    available_at TIMESTAMPTZ NOT NULL,
    scheduled_release_at TIMESTAMPTZ,
    valid_from TIMESTAMPTZ NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (week_ending, series_key, measure, valid_from)
);

CREATE TABLE IF NOT EXISTS macro.eia_series_history (
    series_id TEXT NOT NULL,
    period DATE NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    unit TEXT NOT NULL,
    frequency TEXT NOT NULL,
    series_name TEXT NOT NULL,
    source TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    available_at TIMESTAMPTZ NOT NULL,
    scheduled_release_at TIMESTAMPTZ,
    valid_from TIMESTAMPTZ NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (series_id, period, valid_from)
);

CREATE TABLE IF NOT EXISTS macro.cftc_cot_disaggregated_history (
    as_of DATE NOT NULL,
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
    available_at TIMESTAMPTZ NOT NULL,
    scheduled_release_at TIMESTAMPTZ,
    valid_from TIMESTAMPTZ NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of, contract_code, valid_from)
);

CREATE TABLE IF NOT EXISTS macro.cftc_cot_legacy_history (
    as_of DATE NOT NULL,
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
    available_at TIMESTAMPTZ NOT NULL,
    scheduled_release_at TIMESTAMPTZ,
    valid_from TIMESTAMPTZ NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of, contract_code, valid_from)
);

CREATE TABLE IF NOT EXISTS macro.eia_wpsr_tables_history (
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
    available_at TIMESTAMPTZ NOT NULL,
    scheduled_release_at TIMESTAMPTZ,
    valid_from TIMESTAMPTZ NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (week_ending, wpsr_table, series_id, frequency, period, valid_from)
);

CREATE TABLE IF NOT EXISTS macro.eia_gas_storage_history (
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
    available_at TIMESTAMPTZ NOT NULL,
    scheduled_release_at TIMESTAMPTZ,
    valid_from TIMESTAMPTZ NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (week_ending, series_id, measure, valid_from)
);

CREATE TABLE IF NOT EXISTS macro.eia_spot_prices_history (
    series_id TEXT NOT NULL,
    period DATE NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    unit TEXT NOT NULL,
    series_name TEXT NOT NULL,
    frequency TEXT NOT NULL,
    release_date DATE NOT NULL,
    source_sha256 TEXT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    available_at TIMESTAMPTZ NOT NULL,
    scheduled_release_at TIMESTAMPTZ,
    valid_from TIMESTAMPTZ NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (series_id, period, valid_from)
);

CREATE TABLE IF NOT EXISTS macro.cftc_cot_disaggregated_combined_history (
    as_of DATE NOT NULL,
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
    available_at TIMESTAMPTZ NOT NULL,
    scheduled_release_at TIMESTAMPTZ,
    valid_from TIMESTAMPTZ NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of, contract_code, valid_from)
);

CREATE TABLE IF NOT EXISTS macro.cftc_cot_legacy_combined_history (
    as_of DATE NOT NULL,
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
    available_at TIMESTAMPTZ NOT NULL,
    scheduled_release_at TIMESTAMPTZ,
    valid_from TIMESTAMPTZ NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of, contract_code, valid_from)
);

-- Every version of every row: the current ones (superseded_at NULL) and the superseded ones.
-- As known at T: WHERE valid_from <= T AND (superseded_at IS NULL OR superseded_at > T).
CREATE OR REPLACE VIEW macro.eia_wpsr_versions AS
SELECT week_ending, report_table, section, line_no, series, series_key, measure, reference_date, value, unit, not_meaningful, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, CAST(NULL AS TIMESTAMPTZ) AS superseded_at FROM macro.eia_wpsr
UNION ALL
SELECT week_ending, report_table, section, line_no, series, series_key, measure, reference_date, value, unit, not_meaningful, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, superseded_at FROM macro.eia_wpsr_history;

CREATE OR REPLACE VIEW macro.eia_series_versions AS
SELECT series_id, period, value, unit, frequency, series_name, source, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, CAST(NULL AS TIMESTAMPTZ) AS superseded_at FROM macro.eia_series
UNION ALL
SELECT series_id, period, value, unit, frequency, series_name, source, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, superseded_at FROM macro.eia_series_history;

CREATE OR REPLACE VIEW macro.cftc_cot_disaggregated_versions AS
SELECT as_of, contract_code, market_name, exchange_code, commodity_code, open_interest, prod_merc_long, prod_merc_short, swap_long, swap_short, swap_spread, m_money_long, m_money_short, m_money_spread, other_rept_long, other_rept_short, other_rept_spread, tot_rept_long, tot_rept_short, nonrept_long, nonrept_short, contract_units, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, CAST(NULL AS TIMESTAMPTZ) AS superseded_at FROM macro.cftc_cot_disaggregated
UNION ALL
SELECT as_of, contract_code, market_name, exchange_code, commodity_code, open_interest, prod_merc_long, prod_merc_short, swap_long, swap_short, swap_spread, m_money_long, m_money_short, m_money_spread, other_rept_long, other_rept_short, other_rept_spread, tot_rept_long, tot_rept_short, nonrept_long, nonrept_short, contract_units, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, superseded_at FROM macro.cftc_cot_disaggregated_history;

CREATE OR REPLACE VIEW macro.cftc_cot_legacy_versions AS
SELECT as_of, contract_code, market_name, exchange_code, commodity_code, open_interest, noncomm_long, noncomm_short, noncomm_spread, comm_long, comm_short, tot_rept_long, tot_rept_short, nonrept_long, nonrept_short, contract_units, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, CAST(NULL AS TIMESTAMPTZ) AS superseded_at FROM macro.cftc_cot_legacy
UNION ALL
SELECT as_of, contract_code, market_name, exchange_code, commodity_code, open_interest, noncomm_long, noncomm_short, noncomm_spread, comm_long, comm_short, tot_rept_long, tot_rept_short, nonrept_long, nonrept_short, contract_units, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, superseded_at FROM macro.cftc_cot_legacy_history;

CREATE OR REPLACE VIEW macro.eia_wpsr_tables_versions AS
SELECT week_ending, wpsr_table, series_id, frequency, period, value, unit, series_name, sheet, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, CAST(NULL AS TIMESTAMPTZ) AS superseded_at FROM macro.eia_wpsr_tables
UNION ALL
SELECT week_ending, wpsr_table, series_id, frequency, period, value, unit, series_name, sheet, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, superseded_at FROM macro.eia_wpsr_tables_history;

CREATE OR REPLACE VIEW macro.eia_gas_storage_versions AS
SELECT week_ending, region, series_id, measure, value, unit, survey, file_as_of, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, CAST(NULL AS TIMESTAMPTZ) AS superseded_at FROM macro.eia_gas_storage
UNION ALL
SELECT week_ending, region, series_id, measure, value, unit, survey, file_as_of, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, superseded_at FROM macro.eia_gas_storage_history;

CREATE OR REPLACE VIEW macro.eia_spot_prices_versions AS
SELECT series_id, period, value, unit, series_name, frequency, release_date, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, CAST(NULL AS TIMESTAMPTZ) AS superseded_at FROM macro.eia_spot_prices
UNION ALL
SELECT series_id, period, value, unit, series_name, frequency, release_date, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, superseded_at FROM macro.eia_spot_prices_history;

CREATE OR REPLACE VIEW macro.cftc_cot_disaggregated_combined_versions AS
SELECT as_of, contract_code, market_name, exchange_code, commodity_code, open_interest, prod_merc_long, prod_merc_short, swap_long, swap_short, swap_spread, m_money_long, m_money_short, m_money_spread, other_rept_long, other_rept_short, other_rept_spread, tot_rept_long, tot_rept_short, nonrept_long, nonrept_short, contract_units, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, CAST(NULL AS TIMESTAMPTZ) AS superseded_at FROM macro.cftc_cot_disaggregated_combined
UNION ALL
SELECT as_of, contract_code, market_name, exchange_code, commodity_code, open_interest, prod_merc_long, prod_merc_short, swap_long, swap_short, swap_spread, m_money_long, m_money_short, m_money_spread, other_rept_long, other_rept_short, other_rept_spread, tot_rept_long, tot_rept_short, nonrept_long, nonrept_short, contract_units, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, superseded_at FROM macro.cftc_cot_disaggregated_combined_history;

CREATE OR REPLACE VIEW macro.cftc_cot_legacy_combined_versions AS
SELECT as_of, contract_code, market_name, exchange_code, commodity_code, open_interest, noncomm_long, noncomm_short, noncomm_spread, comm_long, comm_short, tot_rept_long, tot_rept_short, nonrept_long, nonrept_short, contract_units, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, CAST(NULL AS TIMESTAMPTZ) AS superseded_at FROM macro.cftc_cot_legacy_combined
UNION ALL
SELECT as_of, contract_code, market_name, exchange_code, commodity_code, open_interest, noncomm_long, noncomm_short, noncomm_spread, comm_long, comm_short, tot_rept_long, tot_rept_short, nonrept_long, nonrept_short, contract_units, source_sha256, loaded_at, available_at, scheduled_release_at, valid_from, superseded_at FROM macro.cftc_cot_legacy_combined_history;
