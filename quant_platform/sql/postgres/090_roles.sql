-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.

-- Roles are cluster-wide and NOLOGIN: people and services log in as members of them.
DO $$
DECLARE
  missing text[];
  r text;
BEGIN
  SELECT array_agg(n ORDER BY n) INTO missing FROM unnest(ARRAY['qp_owner', 'qp_loader', 'qp_engineer', 'qp_analyst', 'qp_auditor', 'qp_pii_reader', 'qp_team_crude']) AS n
    WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = n);
  IF missing IS NULL THEN
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
    RAISE EXCEPTION 'roles % missing: a superuser creates them once, before warehouse init (docker/postgres-init.sh)', array_to_string(missing, ', ');
  END IF;
  FOREACH r IN ARRAY missing LOOP
    EXECUTE format('CREATE ROLE %I NOLOGIN', r);
  END LOOP;
END $$;

-- The objects belong to qp_owner (or, on a developer's server, to the superuser): a login that owned
-- them could drop them, and its grants would not bind it.
DO $$
BEGIN
  IF current_user <> 'qp_owner' AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'warehouse init runs as qp_owner (the migration login; docker/README.md), not as %',
      current_user;
  END IF;
END $$;

-- market.ticks_history: one partition per trade_date. The partitions are made by this function, which
-- runs as its owner (SECURITY DEFINER) and does nothing else: a date in, the partition's name out.
CREATE TABLE IF NOT EXISTS market.ticks_history (
  trade_date DATE NOT NULL,
  ts TIMESTAMPTZ NOT NULL,
  received_at TIMESTAMPTZ NOT NULL,
  source TEXT NOT NULL,
  instrument_id TEXT NOT NULL,
  venue_symbol TEXT NOT NULL,
  exchange TEXT,
  event TEXT NOT NULL,
  price DOUBLE PRECISION,
  size DOUBLE PRECISION,
  bid DOUBLE PRECISION,
  bid_size DOUBLE PRECISION,
  ask DOUBLE PRECISION,
  ask_size DOUBLE PRECISION,
  vendor_seq BIGINT,
  event_id TEXT NOT NULL,
  stream_seq BIGINT NOT NULL,
  conditions TEXT,
  size_unit TEXT,
  ref_seq BIGINT
) PARTITION BY RANGE (trade_date);
CREATE OR REPLACE FUNCTION market.ticks_history_partition(day date) RETURNS text
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  part text := 'ticks_history_' || to_char(day, 'YYYYMMDD');
BEGIN
  EXECUTE format('CREATE TABLE IF NOT EXISTS market.%I PARTITION OF market.ticks_history '
                 'FOR VALUES FROM (%L) TO (%L)', part, day, day + 1);
  RETURN 'market.' || part;
END $fn$;
REVOKE ALL ON FUNCTION market.ticks_history_partition(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION market.ticks_history_partition(date) TO qp_loader;

-- loader: the platform's writer (assets, sensors): rows only. It owns nothing, so it can neither drop
-- nor alter a table; CREATE is revoked from releases that granted it.
REVOKE CREATE ON SCHEMA macro, core, market, marts, governance, reports, analyst, team_crude FROM qp_loader;
GRANT USAGE ON SCHEMA macro, core, market, marts, governance, reports TO qp_loader;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA macro, core, market, marts, governance, reports TO qp_loader;
ALTER DEFAULT PRIVILEGES FOR ROLE qp_owner IN SCHEMA macro, core, market, marts, governance, reports GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO qp_loader;

-- readers of the non-PII schemas
GRANT USAGE ON SCHEMA macro, market, marts, reports, analyst TO qp_analyst, qp_engineer, qp_auditor;
GRANT SELECT ON ALL TABLES IN SCHEMA macro, market, marts, reports, analyst TO qp_analyst, qp_engineer, qp_auditor;
ALTER DEFAULT PRIVILEGES FOR ROLE qp_owner IN SCHEMA macro, market, marts, reports, analyst GRANT SELECT ON TABLES TO qp_analyst, qp_engineer, qp_auditor;

-- governance: engineers and auditors
GRANT USAGE ON SCHEMA governance TO qp_engineer, qp_auditor;
GRANT SELECT ON ALL TABLES IN SCHEMA governance TO qp_engineer, qp_auditor;
ALTER DEFAULT PRIVILEGES FOR ROLE qp_owner IN SCHEMA governance GRANT SELECT ON TABLES TO qp_engineer, qp_auditor;

-- core: engineers and auditors see every column but the PII ones and row_hash (a digest of them);
-- qp_pii_reader sees all. A core table created later is the PII readers' only, until the next init
-- grants its columns.
GRANT USAGE ON SCHEMA core TO qp_engineer, qp_auditor, qp_pii_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA core TO qp_pii_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE qp_owner IN SCHEMA core GRANT SELECT ON TABLES TO qp_pii_reader;
REVOKE SELECT ON core.dim_client FROM qp_engineer, qp_auditor;
GRANT SELECT (client_id, country, segment, credit_limit_usd, account_manager_id, source_updated_at, valid_from, valid_to, is_current, is_deleted, version, loaded_at) ON core.dim_client TO qp_engineer, qp_auditor;
REVOKE SELECT ON core.dim_employee FROM qp_engineer, qp_auditor;
GRANT SELECT (employee_id, hire_date, department, title, desk, manager_id, source_updated_at, valid_from, valid_to, is_current, is_deleted, version, loaded_at) ON core.dim_employee TO qp_engineer, qp_auditor;
REVOKE SELECT ON core.dim_supplier FROM qp_engineer, qp_auditor;
GRANT SELECT (supplier_id, name, country, category, payment_terms_days, buyer_employee_id, source_updated_at, valid_from, valid_to, is_current, is_deleted, version, loaded_at) ON core.dim_supplier TO qp_engineer, qp_auditor;

-- analyst teams: each writes its own schema only. A table belongs to the member who creates it;
-- to share one with the team, create it after SET ROLE qp_team_<team>.
GRANT USAGE, CREATE ON SCHEMA team_crude TO qp_team_crude;
ALTER DEFAULT PRIVILEGES FOR ROLE qp_owner IN SCHEMA team_crude GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO qp_team_crude;
GRANT USAGE ON SCHEMA team_crude TO qp_engineer, qp_auditor;
