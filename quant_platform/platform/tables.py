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

    def ddl(self) -> str:
        lines = []
        for c in self.columns:
            null = "" if c.nullable else " NOT NULL"
            lines.append(f"    {c.name} {c.ddl_type}{null}")
        lines.append(f"    PRIMARY KEY ({', '.join(self.primary_key)})")
        body = ",\n".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {self.qualified_name} (\n{body}\n);"
