"""Repeatable validations of a frame against its TableSpec (PUDL-style named checks).

A rule returns an outcome; it never writes anything and never raises for bad data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from quant_platform.platform.tables import TableSpec

SCHEMA_AND_TYPES = "schema_and_types"
PRIMARY_KEY_UNIQUE = "primary_key_unique"
UNITS_AND_CODES = "units_and_codes_valid"
PLAUSIBLE_RANGES = "values_in_plausible_range"
ROW_COUNT = "row_count_in_range"
GX_SUITE = "great_expectations_suite"
RELEASE_ON_TIME = "release_on_time"

BLOCKING_RULES = (SCHEMA_AND_TYPES, PRIMARY_KEY_UNIQUE, UNITS_AND_CODES, PLAUSIBLE_RANGES, ROW_COUNT)

RULE_DESCRIPTIONS = {
    SCHEMA_AND_TYPES: "Every declared column is present with the declared type; required columns have no nulls.",
    PRIMARY_KEY_UNIQUE: "The primary key identifies exactly one row.",
    UNITS_AND_CODES: "Unit and code columns only hold the declared values.",
    PLAUSIBLE_RANGES: "Numeric columns lie inside their declared plausible range.",
    ROW_COUNT: "Each partition holds a plausible number of rows.",
    GX_SUITE: "The table's Great Expectations suite passes.",
    RELEASE_ON_TIME: "Every scheduled release of the last weeks was loaded, within an hour of its release.",
}

_KIND = {"date": "datetime", "timestamptz": "datetime", "text": "string", "int": "integer",
         "bigint": "integer", "double": "float", "bool": "bool"}


@dataclass
class RuleOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def _dtype_ok(series: pd.Series, logical: str) -> bool:
    kind = _KIND[logical]
    s = series.dropna()
    if s.empty:
        return True
    if kind == "datetime":
        return pd.api.types.is_datetime64_any_dtype(series) or all(hasattr(v, "year") for v in s.head(50))
    if kind == "integer":
        return pd.api.types.is_integer_dtype(series) or (
            pd.api.types.is_float_dtype(series) and bool((s == s.round()).all())
        )
    if kind == "float":
        return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if kind == "bool":
        return pd.api.types.is_bool_dtype(series)
    return bool(s.map(lambda v: isinstance(v, str)).all())


def check_schema(spec: TableSpec, df: pd.DataFrame) -> RuleOutcome:
    missing = [c for c in spec.column_names if c not in df.columns]
    extra = [c for c in df.columns if c not in spec.column_names]
    bad_types = [c.name for c in spec.columns if c.name in df.columns and not _dtype_ok(df[c.name], c.type)]
    nulls = {c.name: int(df[c.name].isna().sum()) for c in spec.columns
             if c.name in df.columns and not c.nullable and df[c.name].isna().any()}
    passed = not (missing or extra or bad_types or nulls)
    return RuleOutcome(SCHEMA_AND_TYPES, passed, RULE_DESCRIPTIONS[SCHEMA_AND_TYPES], {
        "missing_columns": ", ".join(missing) or "none",
        "unexpected_columns": ", ".join(extra) or "none",
        "wrong_types": ", ".join(bad_types) or "none",
        "nulls_in_required_columns": str(nulls) if nulls else "none",
    })


def check_primary_key(spec: TableSpec, df: pd.DataFrame) -> RuleOutcome:
    keys = [k for k in spec.primary_key if k in df.columns]
    dup = df[df.duplicated(keys, keep=False)] if keys else df.iloc[0:0]
    sample = dup[keys].head(5).astype(str).to_dict("records")
    return RuleOutcome(PRIMARY_KEY_UNIQUE, dup.empty and len(keys) == len(spec.primary_key),
                       RULE_DESCRIPTIONS[PRIMARY_KEY_UNIQUE],
                       {"duplicate_rows": len(dup), "sample": str(sample) if sample else "none"})


def check_allowed_values(spec: TableSpec, df: pd.DataFrame) -> RuleOutcome:
    bad: dict[str, list[str]] = {}
    for c in spec.columns:
        if c.allowed_values and c.name in df.columns:
            vals = set(df[c.name].dropna().unique()) - set(c.allowed_values)
            if vals:
                bad[c.name] = sorted(map(str, vals))[:5]
    return RuleOutcome(UNITS_AND_CODES, not bad, RULE_DESCRIPTIONS[UNITS_AND_CODES],
                       {"unexpected_values": str(bad) if bad else "none"})


def check_ranges(spec: TableSpec, df: pd.DataFrame) -> RuleOutcome:
    out_of_range: dict[str, int] = {}
    worst: dict[str, str] = {}
    for c in spec.columns:
        if c.name not in df.columns or (c.min_value is None and c.max_value is None):
            continue
        s = pd.to_numeric(df[c.name], errors="coerce")
        mask = pd.Series(False, index=s.index)
        if c.min_value is not None:
            mask |= s < c.min_value
        if c.max_value is not None:
            mask |= s > c.max_value
        if mask.any():
            out_of_range[c.name] = int(mask.sum())
            worst[c.name] = f"{s[mask].iloc[0]} not in [{c.min_value}, {c.max_value}]"
    return RuleOutcome(PLAUSIBLE_RANGES, not out_of_range, RULE_DESCRIPTIONS[PLAUSIBLE_RANGES],
                       {"out_of_range_counts": str(out_of_range) if out_of_range else "none",
                        "examples": str(worst) if worst else "none"})


def check_row_counts(spec: TableSpec, df: pd.DataFrame, expected_partitions=None) -> RuleOutcome:
    """Rows per partition inside the declared range, and every expected partition present."""
    if not spec.rows_per_partition or not spec.partition_column:
        return RuleOutcome(ROW_COUNT, len(df) > 0, RULE_DESCRIPTIONS[ROW_COUNT], {"rows": len(df)})
    lo, hi = spec.rows_per_partition
    keys = df[spec.partition_column].astype(str).str[:10] if len(df) else pd.Series(dtype=str)
    counts = keys.value_counts().sort_index()
    bad = {str(k): int(v) for k, v in counts.items() if not lo <= v <= hi}
    missing = sorted(set(map(str, expected_partitions or [])) - set(counts.index))
    return RuleOutcome(ROW_COUNT, len(counts) > 0 and not bad and not missing, RULE_DESCRIPTIONS[ROW_COUNT], {
        "rows": len(df), "partitions": len(counts), "expected_rows_per_partition": f"{lo}..{hi}",
        "partitions_out_of_range": str(dict(list(bad.items())[:10])) if bad else "none",
        "missing_partitions": ", ".join(missing[:20]) or "none",
    })


def validate_frame(spec: TableSpec, df: pd.DataFrame, expected_partitions=None) -> list[RuleOutcome]:
    """The blocking rules, in a fixed order, each evaluated on `df`."""
    return [
        check_schema(spec, df),
        check_primary_key(spec, df),
        check_allowed_values(spec, df),
        check_ranges(spec, df),
        check_row_counts(spec, df, expected_partitions),
    ]
