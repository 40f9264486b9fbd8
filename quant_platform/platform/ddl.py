"""Renders the warehouse DDL in sql/ from the table declarations, so the two can never drift.

Never hand-edit sql/0*_tables_*.sql: run `quant-platform warehouse ddl --write` and commit the result.
"""

from __future__ import annotations

from pathlib import Path

from quant_platform.platform.tables import TableSpec

HEADER = "-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.\n"


def all_table_groups() -> dict[str, tuple[TableSpec, ...]]:
    from quant_platform.governance.tables import GOVERNANCE_TABLES
    from quant_platform.macro.tables import MACRO_TABLES
    from quant_platform.marts.tables import MART_TABLES

    return {
        "010_tables_macro.sql": MACRO_TABLES,
        "020_tables_marts.sql": MART_TABLES,
        "030_tables_governance.sql": GOVERNANCE_TABLES,
    }


def all_tables() -> list[TableSpec]:
    return [t for group in all_table_groups().values() for t in group]


def render(tables: tuple[TableSpec, ...]) -> str:
    return HEADER + "\n\n".join(t.ddl() for t in tables) + "\n"


def write_sql_dir(sql_dir: Path) -> list[Path]:
    written = []
    for name, tables in all_table_groups().items():
        path = sql_dir / name
        path.write_text(render(tables))
        written.append(path)
    return written


def stale_files(sql_dir: Path) -> list[str]:
    return [n for n, t in all_table_groups().items() if not (sql_dir / n).exists() or
            (sql_dir / n).read_text() != render(t)]
