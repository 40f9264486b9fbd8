"""Table metadata: one declaration per warehouse table drives the column schema in the catalog,
the schema checks, the DDL consistency test and (later) the data dictionary and masked views.

Never describe a column anywhere else; add it here and let the rest be derived.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

# Logical types, portable across DuckDB and PostgreSQL. Values are (DDL type, pandas dtype family).
LOGICAL_TYPES: dict[str, tuple[str, str]] = {
    "date": ("DATE", "datetime"),
    "timestamptz": ("TIMESTAMPTZ", "datetime"),
    "text": ("TEXT", "string"),
    "int": ("INTEGER", "integer"),
    "bigint": ("BIGINT", "integer"),
    "double": ("DOUBLE PRECISION", "float"),
    "bool": ("BOOLEAN", "bool"),
}

# Point in time (every macro report table, macro/loading.py): the table holds the current version of each row,
# <table>_history the superseded ones (with superseded_at), the view <table>_versions both.
VALID_FROM = "valid_from"
SUPERSEDED_AT = "superseded_at"
HISTORY_SUFFIX = "_history"
VERSIONS_SUFFIX = "_versions"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    unit: str | None = None
    nullable: bool = True
    pii: bool = False
    pii_category: str | None = None
    # Plausible range for numeric columns: values outside fail the blocking range check.
    min_value: float | None = None
    max_value: float | None = None
    allowed_values: tuple[str, ...] | None = None
    # Schema evolution: when `warehouse init` adds this column to an existing table, the rows already there
    # take the value of this other column (so a NOT NULL column can be added to a table that has rows).
    backfill_from: str | None = None

    def __post_init__(self) -> None:
        if self.type not in LOGICAL_TYPES:
            raise ValueError(f"column {self.name}: unknown logical type {self.type!r}")
        if self.pii and not self.pii_category:
            raise ValueError(f"column {self.name}: a PII column needs a pii_category")

    @property
    def ddl_type(self) -> str:
        return LOGICAL_TYPES[self.type][0]


@dataclass(frozen=True)
class TableSpec:
    schema: str
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    partition_column: str | None = None
    # Range of rows a single partition must hold; outside it the row-count check fails.
    rows_per_partition: tuple[int, int] | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        missing = [k for k in self.primary_key if k not in names]
        if missing:
            raise ValueError(f"{self.qualified_name}: primary key columns {missing} are not columns")
        if self.partition_column and self.partition_column not in names:
            raise ValueError(f"{self.qualified_name}: partition column {self.partition_column} missing")

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def asset_key(self) -> dg.AssetKey:
        return dg.AssetKey([self.schema, self.name])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.qualified_name} has no column {name}")

    def column_schema(self) -> dg.TableSchema:
        """The `dagster/column_schema` shown in the catalog: type, description, unit and PII flag."""
        cols = []
        for c in self.columns:
            desc = c.description
            if c.unit:
                desc = f"{desc} Unit: {c.unit}."
            if c.pii:
                desc = f"{desc} PII ({c.pii_category})."
            constraints = dg.TableColumnConstraints(
                nullable=c.nullable,
                unique=self.primary_key == (c.name,),
                other=[f"pii:{c.pii_category}"] if c.pii else [],
            )
            cols.append(
                dg.TableColumn(
                    name=c.name,
                    type=c.ddl_type.lower(),
                    description=desc,
                    constraints=constraints,
                    tags={k: v for k, v in {"unit": c.unit, "pii": "true" if c.pii else None}.items() if v},
                )
            )
        return dg.TableSchema(
            columns=cols,
            constraints=dg.TableConstraints(other=[f"primary key ({', '.join(self.primary_key)})"]),
        )

    def catalog_metadata(self) -> dict:
        return {
            "dagster/column_schema": self.column_schema(),
            "dagster/table_name": self.qualified_name,
            "primary_key": ", ".join(self.primary_key),
        }

    def typed(self, df):
        """`df` with each column converted to the dtype of its logical type (nullable where needed)."""
        import pandas as pd

        out = df.copy()
        for c in self.columns:
            if c.name not in out.columns:
                continue
            s = out[c.name]
            if c.type == "date":
                out[c.name] = pd.to_datetime(s)
            elif c.type == "timestamptz":
                out[c.name] = pd.to_datetime(s, utc=True)
            elif c.type in ("int", "bigint"):
                out[c.name] = pd.array(pd.to_numeric(s), dtype="Int64")
            elif c.type == "double":
                out[c.name] = pd.to_numeric(s).astype("float64")
            elif c.type == "bool":
                out[c.name] = s.astype("boolean")
            else:
                out[c.name] = s.astype("object").where(s.notna(), None)
        return out

    def history_spec(self) -> TableSpec:
        """<table>_history: the table's columns plus superseded_at, keyed on the table's key and valid_from."""
        if VALID_FROM not in self.column_names:
            raise ValueError(f"{self.qualified_name} has no {VALID_FROM} column: it cannot keep versions")
        return TableSpec(
            schema=self.schema,
            name=f"{self.name}{HISTORY_SUFFIX}",
            description=(f"Superseded versions of {self.qualified_name}'s rows: a row moves here, unchanged, when a "
                         f"revised vendor file changes or drops it. {self.qualified_name}{VERSIONS_SUFFIX} shows "
                         "current and superseded versions together."),
            columns=(*self.columns, Column(
                SUPERSEDED_AT, "timestamptz", "When a later version replaced this row, or a revised file dropped "
                "it (UTC): the valid_from of what replaced it. The row was the platform's knowledge from "
                f"{VALID_FROM} until then.", nullable=False)),
            primary_key=(*self.primary_key, VALID_FROM),
            partition_column=self.partition_column,
            tags={**self.tags, "history_of": self.qualified_name},
        )

    @property
    def versions_view(self) -> str:
        return f"{self.qualified_name}{VERSIONS_SUFFIX}"

    def versions_view_ddl(self) -> str:
        """Every version of every row: current ones (superseded_at NULL) and superseded ones. As known at T:
        WHERE valid_from <= T AND (superseded_at IS NULL OR superseded_at > T)."""
        cols = ", ".join(self.column_names)
        history = self.history_spec().qualified_name
        return (f"CREATE OR REPLACE VIEW {self.versions_view} AS\n"
                f"SELECT {cols}, CAST(NULL AS TIMESTAMPTZ) AS {SUPERSEDED_AT} FROM {self.qualified_name}\n"
                f"UNION ALL\nSELECT {cols}, {SUPERSEDED_AT} FROM {history};")

    def ddl(self) -> str:
        lines = []
        for c in self.columns:
            null = "" if c.nullable else " NOT NULL"
            lines.append(f"    {c.name} {c.ddl_type}{null}")
        lines.append(f"    PRIMARY KEY ({', '.join(self.primary_key)})")
        body = ",\n".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {self.qualified_name} (\n{body}\n);"
