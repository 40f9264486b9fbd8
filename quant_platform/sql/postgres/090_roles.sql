-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.

-- Roles are cluster-wide and NOLOGIN: people and services log in as members of them.
DO $$
DECLARE
  missing text[];
  r text;
BEGIN
  SELECT array_agg(n ORDER BY n) INTO missing FROM unnest(ARRAY['qp_loader', 'qp_engineer', 'qp_analyst', 'qp_auditor', 'qp_pii_reader', 'qp_team_crude']) AS n
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

-- loader: the platform's writer (assets, warehouse init)
GRANT USAGE, CREATE ON SCHEMA macro, core, market, marts, governance, analyst TO qp_loader;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA macro, core, market, marts, governance TO qp_loader;

-- readers of the non-PII schemas
GRANT USAGE ON SCHEMA macro, market, marts, analyst TO qp_analyst, qp_engineer, qp_auditor;
GRANT SELECT ON ALL TABLES IN SCHEMA macro, market, marts, analyst TO qp_analyst, qp_engineer, qp_auditor;
ALTER DEFAULT PRIVILEGES IN SCHEMA macro, market, marts, analyst GRANT SELECT ON TABLES TO qp_analyst, qp_engineer, qp_auditor;

-- governance: engineers and auditors
GRANT USAGE ON SCHEMA governance TO qp_engineer, qp_auditor;
GRANT SELECT ON ALL TABLES IN SCHEMA governance TO qp_engineer, qp_auditor;
ALTER DEFAULT PRIVILEGES IN SCHEMA governance GRANT SELECT ON TABLES TO qp_engineer, qp_auditor;

-- core: engineers and auditors see every column but the PII ones; qp_pii_reader sees all
GRANT USAGE ON SCHEMA core TO qp_engineer, qp_auditor, qp_pii_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA core TO qp_pii_reader;
REVOKE SELECT ON core.dim_client FROM qp_engineer, qp_auditor;
GRANT SELECT (client_id, country, segment, credit_limit_usd, account_manager_id, source_updated_at, valid_from, valid_to, is_current, is_deleted, version, row_hash, loaded_at) ON core.dim_client TO qp_engineer, qp_auditor;
REVOKE SELECT ON core.dim_employee FROM qp_engineer, qp_auditor;
GRANT SELECT (employee_id, hire_date, department, title, desk, manager_id, source_updated_at, valid_from, valid_to, is_current, is_deleted, version, row_hash, loaded_at) ON core.dim_employee TO qp_engineer, qp_auditor;
REVOKE SELECT ON core.dim_supplier FROM qp_engineer, qp_auditor;
GRANT SELECT (supplier_id, name, country, category, payment_terms_days, buyer_employee_id, source_updated_at, valid_from, valid_to, is_current, is_deleted, version, row_hash, loaded_at) ON core.dim_supplier TO qp_engineer, qp_auditor;

-- analyst teams: each writes its own schema only
GRANT USAGE, CREATE ON SCHEMA team_crude TO qp_team_crude;
ALTER DEFAULT PRIVILEGES IN SCHEMA team_crude GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO qp_team_crude;
GRANT USAGE ON SCHEMA team_crude TO qp_engineer, qp_auditor;
