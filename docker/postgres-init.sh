#!/usr/bin/env bash
# Once, as the superuser, on a new cluster: the Dagster instance database, the warehouse database owned by its
# `loader` login, and the platform's group roles (cluster-wide, NOLOGIN) that `quant-platform warehouse init`
# grants to. The loader may not create roles, so they are made here, and the loader joins qp_loader.
# Passwords come from the container environment, never from this file; the names default to the stack's.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" \
  -v dagster_pw="$DAGSTER_PG_PASSWORD" -v loader_pw="$QP_LOADER_PASSWORD" \
  -v dagster_user="${DAGSTER_PG_USER:-dagster}" -v dagster_db="${DAGSTER_PG_DB:-dagster}" \
  -v loader_user="${QP_LOADER_USER:-loader}" -v warehouse_db="${QP_WAREHOUSE_DB:-warehouse}" <<'SQL'
CREATE ROLE :"dagster_user" LOGIN PASSWORD :'dagster_pw';
CREATE DATABASE :"dagster_db" OWNER :"dagster_user";
CREATE ROLE :"loader_user" LOGIN PASSWORD :'loader_pw';
CREATE DATABASE :"warehouse_db" OWNER :"loader_user";
-- The group roles of quant_platform/platform/ddl.py (ROLES); idempotent, as they are cluster-wide.
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['qp_loader', 'qp_engineer', 'qp_analyst', 'qp_auditor', 'qp_pii_reader',
                           'qp_team_crude'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
END $$;
GRANT qp_loader TO :"loader_user";
SQL
