#!/usr/bin/env bash
# Creates the Dagster instance database and the warehouse database with its loader login.
# Passwords come from the container environment, never from this file.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username postgres \
  -v dagster_pw="$DAGSTER_PG_PASSWORD" -v loader_pw="$QP_LOADER_PASSWORD" <<'SQL'
CREATE ROLE dagster LOGIN PASSWORD :'dagster_pw';
CREATE DATABASE dagster OWNER dagster;
CREATE ROLE loader LOGIN PASSWORD :'loader_pw';
CREATE DATABASE warehouse OWNER loader;
SQL
