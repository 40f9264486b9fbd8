"""Renders the warehouse DDL in sql/ from the table declarations, so the two can never drift.

Never hand-edit sql/0*_tables_*.sql: run `quant-platform warehouse ddl --write` and commit the result.
"""

from __future__ import annotations

from pathlib import Path

from quant_platform.platform.tables import TableSpec

HISTORY_FILE = "011_tables_macro_history.sql"
HEADER = "-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.\n"


def all_table_groups() -> dict[str, tuple[TableSpec, ...]]:
    from quant_platform.governance.tables import GOVERNANCE_TABLES
    from quant_platform.internal.tables import INTERNAL_TABLES
    from quant_platform.macro.registry import registered_tables
    from quant_platform.market.tables import MARKET_TABLES
    from quant_platform.marts.tables import MART_TABLES
    from quant_platform.reports.tables import REPORTS_TABLES

    return {
        "010_tables_macro.sql": registered_tables(),  # one per report folder listed in macro/registry.py
        # each report table's superseded versions, and (after them, in the same file) its <table>_versions view
        HISTORY_FILE: tuple(t.history_spec() for t in registered_tables()),
        "015_tables_core.sql": INTERNAL_TABLES,
        "020_tables_marts.sql": MART_TABLES,
        "025_tables_market.sql": MARKET_TABLES,
        "030_tables_governance.sql": GOVERNANCE_TABLES,
        "035_tables_reports.sql": REPORTS_TABLES,
    }


# How each PII category is shown to analysts. Portable SQL (DuckDB and PostgreSQL); NULL stays NULL.
MASKS = {
    "name": "left({c}, 1) || '***'",
    "email": "'***@' || split_part({c}, '@', 2)",
    "phone": "'***' || right({c}, 2)",
    "birth_date": "CAST(date_trunc('year', {c}) AS DATE)",
    "compensation": "CAST(NULL AS DOUBLE PRECISION)",
    "bank_account": "left({c}, 2) || '***' || right({c}, 4)",
}

TEAM_SCHEMAS = {"crude": "team_crude"}  # analyst team -> the one schema its members may write

# Columns computed from PII columns (row_hash digests every business column): whoever may not read the PII
# itself gets neither these (the masked views leave them out, the column grants too).
PII_DERIVED = frozenset({"row_hash"})


def mask_expression(column) -> str:
    from quant_platform.platform.warehouse import vetted

    if column.pii_category not in MASKS:
        raise ValueError(f"no mask for PII category {column.pii_category!r} of {column.name}")
    return MASKS[column.pii_category].format(c=vetted(column.name))


def render_analyst_views(tables: list[TableSpec]) -> str:
    """`analyst.<table>` for every table with PII: the same rows, PII masked per category."""
    out = [HEADER, "-- Analysts read PII only through these views, masked as declared in the TableSpecs.\n"]
    for t in tables:
        if not any(c.pii for c in t.columns):
            continue
        shown = [c for c in t.columns if c.name not in PII_DERIVED]
        cols = ",\n    ".join(f"{mask_expression(c)} AS {c.name}" if c.pii else c.name for c in shown)
        out.append(f"CREATE OR REPLACE VIEW analyst.{t.name} AS SELECT\n    {cols}\nFROM {t.qualified_name};\n")  # noqa: S608
    return "\n".join(out)


OWNER = "qp_owner"  # owns the warehouse database, its schemas, tables, views and functions; nobody logs in as it
ROLES = (OWNER, "qp_loader", "qp_engineer", "qp_analyst", "qp_auditor", "qp_pii_reader",
         *(f"qp_team_{team}" for team in TEAM_SCHEMAS))
WRITTEN_SCHEMAS = ("macro", "core", "market", "marts", "governance", "reports")  # the loader's: rows only
READ_SCHEMAS = ("macro", "market", "marts", "reports", "analyst")  # analysts, engineers and auditors read every table


def _ticks_history_partitions() -> list[str]:
    """PostgreSQL's market.ticks_history (DuckDB's is a view over the lake): a table partitioned by day, and
    the one function through which the loader, which may not create tables, gets a day's partition."""
    from quant_platform.market.tables import TICKS_HISTORY
    from quant_platform.platform.warehouse import vetted

    cols = ",\n  ".join(f"{vetted(c.name)} {c.ddl_type}{'' if c.nullable else ' NOT NULL'}"
                        for c in TICKS_HISTORY.columns)
    return [
        "-- market.ticks_history: one partition per trade_date. The partitions are made by this function, which",
        "-- runs as its owner (SECURITY DEFINER) and does nothing else: a date in, the partition's name out.",
        f"CREATE TABLE IF NOT EXISTS market.ticks_history (\n  {cols}\n) PARTITION BY RANGE (trade_date);",
        "CREATE OR REPLACE FUNCTION market.ticks_history_partition(day date) RETURNS text",
        "  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$",
        "DECLARE",
        "  part text := 'ticks_history_' || to_char(day, 'YYYYMMDD');",
        "BEGIN",
        "  EXECUTE format('CREATE TABLE IF NOT EXISTS market.%I PARTITION OF market.ticks_history '",
        "                 'FOR VALUES FROM (%L) TO (%L)', part, day, day + 1);",
        "  RETURN 'market.' || part;",
        "END $fn$;",
        "REVOKE ALL ON FUNCTION market.ticks_history_partition(date) FROM PUBLIC;",
        "GRANT EXECUTE ON FUNCTION market.ticks_history_partition(date) TO qp_loader;",
    ]


def render_roles(tables: list[TableSpec]) -> str:
    """PostgreSQL grants to the platform's roles (who can do what: see the README). Idempotent.

    Runs as qp_owner, which owns every object here: `warehouse init` logs in as the migration login, whose
    sessions in the warehouse act as qp_owner (docker/postgres-init.sh); or as a superuser (a developer's or
    a test's own server). The roles are cluster-wide and made once by the superuser; missing ones stop init
    with one line naming them, unless the login may create roles, which then creates them. Default
    privileges are those of qp_owner, so a table it creates later is granted like the ones here.
    """
    from quant_platform.platform.warehouse import vetted

    team_schemas = ", ".join(TEAM_SCHEMAS.values())
    written = ", ".join(WRITTEN_SCHEMAS)
    read = ", ".join(READ_SCHEMAS)
    names = ", ".join(f"'{vetted(r)}'" for r in ROLES)
    lines = [HEADER, "-- Roles are cluster-wide and NOLOGIN: people and services log in as members of them.",
             "DO $$", "DECLARE", "  missing text[];", "  r text;", "BEGIN",
             f"  SELECT array_agg(n ORDER BY n) INTO missing FROM unnest(ARRAY[{names}]) AS n",  # noqa: S608 - vetted
             "    WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = n);",
             "  IF missing IS NULL THEN",
             "    RETURN;",
             "  END IF;",
             "  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN",
             "    RAISE EXCEPTION 'roles % missing: a superuser creates them once, before warehouse init "
             "(docker/postgres-init.sh)', array_to_string(missing, ', ');",
             "  END IF;",
             "  FOREACH r IN ARRAY missing LOOP",
             "    EXECUTE format('CREATE ROLE %I NOLOGIN', r);",
             "  END LOOP;",
             "END $$;",
             "",
             f"-- The objects belong to {OWNER} (or, on a developer's server, to the superuser): a login that owned",
             "-- them could drop them, and its grants would not bind it.",
             "DO $$",
             "BEGIN",
             f"  IF current_user <> '{vetted(OWNER)}' AND NOT (SELECT rolsuper FROM pg_roles "  # noqa: S608 - vetted
             "WHERE rolname = current_user) THEN",
             f"    RAISE EXCEPTION 'warehouse init runs as {OWNER} (the migration login; docker/README.md), not as %',",
             "      current_user;",
             "  END IF;",
             "END $$;",
             "",
             *_ticks_history_partitions(),
             "",
             "-- loader: the platform's writer (assets, sensors): rows only. It owns nothing, so it can neither drop",
             "-- nor alter a table; CREATE is revoked from releases that granted it.",
             f"REVOKE CREATE ON SCHEMA {written}, analyst, {team_schemas} FROM qp_loader;",
             f"GRANT USAGE ON SCHEMA {written} TO qp_loader;",
             f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {written} TO qp_loader;",
             f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA {written} GRANT SELECT, INSERT, UPDATE, DELETE, "
             "TRUNCATE ON TABLES TO qp_loader;",
             "",
             "-- readers of the non-PII schemas",
             f"GRANT USAGE ON SCHEMA {read} TO qp_analyst, qp_engineer, qp_auditor;",
             f"GRANT SELECT ON ALL TABLES IN SCHEMA {read} TO qp_analyst, qp_engineer, qp_auditor;",
             f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA {read} GRANT SELECT ON TABLES TO "
             "qp_analyst, qp_engineer, qp_auditor;",
             "",
             "-- governance: engineers and auditors",
             "GRANT USAGE ON SCHEMA governance TO qp_engineer, qp_auditor;",
             "GRANT SELECT ON ALL TABLES IN SCHEMA governance TO qp_engineer, qp_auditor;",
             f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA governance GRANT SELECT ON TABLES TO "
             "qp_engineer, qp_auditor;",
             "",
             "-- core: engineers and auditors see every column but the PII ones and row_hash (a digest of them);",
             "-- qp_pii_reader sees all. A core table created later is the PII readers' only, until the next init",
             "-- grants its columns.",
             "GRANT USAGE ON SCHEMA core TO qp_engineer, qp_auditor, qp_pii_reader;",
             "GRANT SELECT ON ALL TABLES IN SCHEMA core TO qp_pii_reader;",
             f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA core GRANT SELECT ON TABLES TO qp_pii_reader;"]
    for t in tables:
        if t.schema != "core":
            continue
        plain = [c.name for c in t.columns if not c.pii and c.name not in PII_DERIVED]
        lines.append(f"REVOKE SELECT ON {t.qualified_name} FROM qp_engineer, qp_auditor;")  # noqa: S608
        lines.append(f"GRANT SELECT ({', '.join(plain)}) ON {t.qualified_name} TO qp_engineer, qp_auditor;")  # noqa: S608
    lines += ["", "-- analyst teams: each writes its own schema only. A table belongs to the member who creates it;",
              "-- to share one with the team, create it after SET ROLE qp_team_<team>."]
    for team, schema in TEAM_SCHEMAS.items():
        # No "ON ALL TABLES IN SCHEMA" here: members create the tables, and the owner may not grant on
        # tables it does not own (a second init would fail).
        lines += [f"GRANT USAGE, CREATE ON SCHEMA {schema} TO qp_team_{team};",
                  f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, "
                  f"DELETE ON TABLES TO qp_team_{team};",
                  f"GRANT USAGE ON SCHEMA {team_schemas} TO qp_engineer, qp_auditor;"]
    return "\n".join(lines) + "\n"


def generated_files() -> dict[str, str]:
    """Every generated file under sql/, relative path -> content."""
    tables = all_tables()
    files = {name: render(group) for name, group in all_table_groups().items()}
    from quant_platform.macro.registry import registered_tables

    files[HISTORY_FILE] += render_versions_views(list(registered_tables()))
    files["040_views_analyst.sql"] = render_analyst_views(tables)
    files["postgres/090_roles.sql"] = render_roles(tables)
    return files


def all_tables() -> list[TableSpec]:
    return [t for group in all_table_groups().values() for t in group]


def render_versions_views(tables: list[TableSpec]) -> str:
    """<table>_versions for every table that keeps history: current rows and superseded ones, one view."""
    if not tables:
        return ""
    return ("\n-- Every version of every row: the current ones (superseded_at NULL) and the superseded ones.\n"
            "-- As known at T: WHERE valid_from <= T AND (superseded_at IS NULL OR superseded_at > T).\n"
            + "\n\n".join(t.versions_view_ddl() for t in tables) + "\n")


def render(tables: tuple[TableSpec, ...]) -> str:
    return HEADER + "\n\n".join(t.ddl() for t in tables) + "\n"


def write_sql_dir(sql_dir: Path) -> list[Path]:
    written = []
    for name, content in generated_files().items():
        path = sql_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written


def stale_files(sql_dir: Path) -> list[str]:
    return [n for n, content in generated_files().items()
            if not (sql_dir / n).exists() or (sql_dir / n).read_text() != content]
