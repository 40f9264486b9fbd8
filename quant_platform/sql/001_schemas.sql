-- Warehouse schemas (ARCHITECTURE.md): the first element of an asset key is its schema.
CREATE SCHEMA IF NOT EXISTS macro;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS market;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS governance;
CREATE SCHEMA IF NOT EXISTS reports;
CREATE SCHEMA IF NOT EXISTS analyst;
-- Analyst team schemas: each team writes its own (grants in sql/postgres/090_roles.sql).
CREATE SCHEMA IF NOT EXISTS team_crude;
