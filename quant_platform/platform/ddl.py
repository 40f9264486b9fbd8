"""Renders the warehouse DDL in sql/ from the table declarations, so the two can never drift.

Never hand-edit sql/0*_tables_*.sql: run `quant-platform warehouse ddl --write` and commit the result.
"""

from __future__ import annotations

from pathlib import Path

from quant_platform.platform.tables import TableSpec

HEADER = "-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.\n"


def all_table_groups() -> dict[str, tuple[TableSpec, ...]]:
    from quant_platform.governance.tables import GOVERNANCE_TABLES
    from quant_platform.internal.tables import INTERNAL_TABLES
    from quant_platform.macro.tables import MACRO_TABLES
    from quant_platform.market.tables import MARKET_TABLES
    from quant_platform.marts.tables import MART_TABLES

    return {
        "010_tables_macro.sql": MACRO_TABLES,
        "015_tables_core.sql": INTERNAL_TABLES,
        "020_tables_marts.sql": MART_TABLES,
        "025_tables_market.sql": MARKET_TABLES,
        "030_tables_governance.sql": GOVERNANCE_TABLES,
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
        # row_hash digests PII columns too: analysts get no handle on it.
        shown = [c for c in t.columns if c.name != "row_hash"]
        cols = ",\n    ".join(f"{mask_expression(c)} AS {c.name}" if c.pii else c.name for c in shown)
        out.append(f"CREATE OR REPLACE VIEW analyst.{t.name} AS SELECT\n    {cols}\nFROM {t.qualified_name};\n")  # noqa: S608
    return "\n".join(out)


ROLES = ("qp_loader", "qp_engineer", "qp_analyst", "qp_auditor", "qp_pii_reader",
         *(f"qp_team_{team}" for team in TEAM_SCHEMAS))


def render_roles(tables: list[TableSpec]) -> str:
    """PostgreSQL grants to the platform's roles (who can do what: see the README). Idempotent.

    Runs as `warehouse init`'s login: in production the loader, which owns every object here but may not
    create roles. The roles are cluster-wide and made once by the superuser (docker/postgres-init.sh); missing
    ones stop init with one line naming them, unless the login may create roles (a developer's or a test's
    own server as superuser), which then creates them.
    """
    from quant_platform.platform.warehouse import vetted

    team_schemas = ", ".join(TEAM_SCHEMAS.values())
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
             "  END LOOP;"]
    lines += ["END $$;", "",
              "-- loader: the platform's writer (assets, warehouse init)",
              "GRANT USAGE, CREATE ON SCHEMA macro, core, market, marts, governance, analyst TO qp_loader;",
              "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA macro, core, market, marts, "
              "governance TO qp_loader;",
              "",
              "-- readers of the non-PII schemas",
              "GRANT USAGE ON SCHEMA macro, market, marts, analyst TO qp_analyst, qp_engineer, qp_auditor;",
              "GRANT SELECT ON ALL TABLES IN SCHEMA macro, market, marts, analyst TO qp_analyst, qp_engineer, "
              "qp_auditor;",
              "ALTER DEFAULT PRIVILEGES IN SCHEMA macro, market, marts, analyst GRANT SELECT ON TABLES TO "
              "qp_analyst, qp_engineer, qp_auditor;",
              "",
              "-- governance: engineers and auditors",
              "GRANT USAGE ON SCHEMA governance TO qp_engineer, qp_auditor;",
              "GRANT SELECT ON ALL TABLES IN SCHEMA governance TO qp_engineer, qp_auditor;",
              "ALTER DEFAULT PRIVILEGES IN SCHEMA governance GRANT SELECT ON TABLES TO qp_engineer, qp_auditor;",
              "",
              "-- core: engineers and auditors see every column but the PII ones; qp_pii_reader sees all",
              "GRANT USAGE ON SCHEMA core TO qp_engineer, qp_auditor, qp_pii_reader;",
              "GRANT SELECT ON ALL TABLES IN SCHEMA core TO qp_pii_reader;"]
    for t in tables:
        if t.schema != "core":
            continue
        plain = [c.name for c in t.columns if not c.pii]
        lines.append(f"REVOKE SELECT ON {t.qualified_name} FROM qp_engineer, qp_auditor;")  # noqa: S608
        lines.append(f"GRANT SELECT ({', '.join(plain)}) ON {t.qualified_name} TO qp_engineer, qp_auditor;")  # noqa: S608
    lines += ["", "-- analyst teams: each writes its own schema only"]
    for team, schema in TEAM_SCHEMAS.items():
        # No "ON ALL TABLES IN SCHEMA" here: members create the tables, and the loader may not grant on
        # tables it does not own (a second init would fail). Its own, if any, get the default privileges.
        lines += [f"GRANT USAGE, CREATE ON SCHEMA {schema} TO qp_team_{team};",
                  f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES "
                  f"TO qp_team_{team};",
                  f"GRANT USAGE ON SCHEMA {team_schemas} TO qp_engineer, qp_auditor;"]
    return "\n".join(lines) + "\n"


def generated_files() -> dict[str, str]:
    """Every generated file under sql/, relative path -> content."""
    tables = all_tables()
    files = {name: render(group) for name, group in all_table_groups().items()}
    files["040_views_analyst.sql"] = render_analyst_views(tables)
    files["postgres/090_roles.sql"] = render_roles(tables)
    return files


def all_tables() -> list[TableSpec]:
    return [t for group in all_table_groups().values() for t in group]


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
