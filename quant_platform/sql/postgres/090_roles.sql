-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.

-- Roles are cluster-wide and NOLOGIN: people and services log in as members of them.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qp_loader') THEN CREATE ROLE qp_loader NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qp_engineer') THEN CREATE ROLE qp_engineer NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qp_analyst') THEN CREATE ROLE qp_analyst NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qp_auditor') THEN CREATE ROLE qp_auditor NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qp_pii_reader') THEN CREATE ROLE qp_pii_reader NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qp_team_crude') THEN CREATE ROLE qp_team_crude NOLOGIN; END IF;
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
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA team_crude TO qp_team_crude;
ALTER DEFAULT PRIVILEGES IN SCHEMA team_crude GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO qp_team_crude;
GRANT USAGE ON SCHEMA team_crude TO qp_engineer, qp_auditor;
