#!/usr/bin/env bash
# Once, as the superuser, on a new cluster: the platform's group roles (cluster-wide, NOLOGIN), the Dagster
# instance database, the warehouse database owned by the NOLOGIN role qp_owner, the migration login that
# `quant-platform warehouse init` runs as (a NOINHERIT member of qp_owner whose sessions in the warehouse act
# as qp_owner, so every schema, table and view it creates belongs to qp_owner), and the loader login the
# Dagster processes run as (a member of qp_loader: it reads and writes rows and owns nothing).
# Never put a password in this file: they come from the container environment; the names default to the stack's.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" \
  -v dagster_pw="$DAGSTER_PG_PASSWORD" -v loader_pw="$QP_LOADER_PASSWORD" -v migrator_pw="$QP_MIGRATOR_PASSWORD" \
  -v dagster_user="${DAGSTER_PG_USER:-dagster}" -v dagster_db="${DAGSTER_PG_DB:-dagster}" \
  -v loader_user="${QP_LOADER_USER:-loader}" -v migrator_user="${QP_MIGRATOR_USER:-migrator}" \
  -v warehouse_db="${QP_WAREHOUSE_DB:-warehouse}" <<'SQL'
-- The group roles of quant_platform/platform/ddl.py (ROLES); idempotent, as they are cluster-wide.
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['qp_owner', 'qp_loader', 'qp_engineer', 'qp_analyst', 'qp_auditor', 'qp_pii_reader',
                           'qp_team_crude'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
END $$;
CREATE ROLE :"dagster_user" LOGIN PASSWORD :'dagster_pw';
CREATE DATABASE :"dagster_db" OWNER :"dagster_user";
CREATE DATABASE :"warehouse_db" OWNER qp_owner;
-- Only the platform's roles (and the people in them) may connect to the warehouse, or make temporary tables.
REVOKE ALL ON DATABASE :"warehouse_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"warehouse_db" TO qp_loader, qp_engineer, qp_analyst, qp_auditor,
  qp_pii_reader, qp_team_crude;
-- NOINHERIT: without acting as qp_owner it can do nothing, so it never creates an object of its own.
CREATE ROLE :"migrator_user" LOGIN NOINHERIT PASSWORD :'migrator_pw' IN ROLE qp_owner;
GRANT CONNECT ON DATABASE :"warehouse_db" TO :"migrator_user";
ALTER ROLE :"migrator_user" IN DATABASE :"warehouse_db" SET role = 'qp_owner';
CREATE ROLE :"loader_user" LOGIN PASSWORD :'loader_pw' IN ROLE qp_loader;
SQL
