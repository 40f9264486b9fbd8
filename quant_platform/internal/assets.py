"""Internal dimensions as assets: incremental extraction by watermark (updated_at) from the operational
databases, deletions detected by a key scan, history kept as SCD type 2, checked after every merge.

Never expose PII beyond core: analysts read the masked views in schema analyst.
"""

import os
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from quant_platform.internal.scd2 import merge
from quant_platform.internal.sources import count_rows, read_changes, read_keys
from quant_platform.internal.tables import (
    CRM_CLIENTS,
    DIM_CLIENT,
    DIM_EMPLOYEE,
    DIM_SUPPLIER,
    ERP_SUPPLIERS,
    HR_EMPLOYEES,
    SourceTable,
)
from quant_platform.platform.dagster_common import WAREHOUSE_POOL, warehouse_kind
from quant_platform.platform.tables import TableSpec
from quant_platform.platform.warehouse import Warehouse, vetted
from quant_platform.quality import rules
from quant_platform.resources import WarehouseResource

OWNER_INTERNAL = "team:data-engineering"

KEYS_UNIQUE_PER_VERSION = "scd2_keys_unique_per_version"
NO_OVERLAPPING_VALIDITY = "scd2_no_overlapping_validity"
REFERENTIAL_INTEGRITY = "referential_integrity"
ROW_COUNT_RECONCILED = "row_count_reconciled_with_source"

DIM_CHECKS = {
    rules.SCHEMA_AND_TYPES: rules.RULE_DESCRIPTIONS[rules.SCHEMA_AND_TYPES],
    rules.UNITS_AND_CODES: rules.RULE_DESCRIPTIONS[rules.UNITS_AND_CODES],
    rules.PLAUSIBLE_RANGES: rules.RULE_DESCRIPTIONS[rules.PLAUSIBLE_RANGES],
    KEYS_UNIQUE_PER_VERSION: "Each key has one row per valid_from and at most one current version.",
    NO_OVERLAPPING_VALIDITY: "The versions of a key never overlap in time.",
    REFERENTIAL_INTEGRITY: "Employee references (account manager, buyer, manager) point to known employees.",
    ROW_COUNT_RECONCILED: "Current versions equal the rows in the source table right now.",
}

# column -> the employee dimension it must point into
EMPLOYEE_REFERENCES = {
    "dim_client": ("account_manager_id",),
    "dim_supplier": ("buyer_employee_id",),
    "dim_employee": ("manager_id",),
}

internal_daily_partitions = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)


class ExtractConfig(dg.Config):
    full_reload: bool = False
    """Compare every source row (not only those updated in the partition's window) with the dimension."""


def _fail(name: str, passed: bool, metadata: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=name, passed=bool(passed), severity=dg.AssetCheckSeverity.ERROR,
                               metadata=metadata)


def scd2_integrity(wh: Warehouse, spec: TableSpec, key: str) -> list[dg.AssetCheckResult]:
    versions = wh.query_df(
        f"SELECT {vetted(key)} AS k, valid_from, valid_to, is_current FROM {vetted(spec.qualified_name)}")  # noqa: S608
    dup = versions.duplicated(["k", "valid_from"]).sum()
    multi_current = (versions[versions["is_current"].astype(bool)].groupby("k").size() > 1).sum()
    v = versions.assign(valid_from=pd.to_datetime(versions["valid_from"], utc=True),
                        valid_to=pd.to_datetime(versions["valid_to"], utc=True)).sort_values(["k", "valid_from"])
    nxt = v.groupby("k")["valid_from"].shift(-1)
    open_ended = v["valid_to"].isna() & nxt.notna()
    overlap = (v["valid_to"] > nxt) | open_ended
    bad_keys = sorted(v.loc[overlap, "k"].astype(int).unique().tolist())[:10]
    return [
        _fail(KEYS_UNIQUE_PER_VERSION, dup == 0 and multi_current == 0,
              {"duplicate_versions": int(dup), "keys_with_several_current": int(multi_current),
               "versions": len(versions)}),
        _fail(NO_OVERLAPPING_VALIDITY, not bad_keys,
              {"overlapping_keys": len(bad_keys), "sample": str(bad_keys) if bad_keys else "none"}),
    ]


def referential_integrity(wh: Warehouse, spec: TableSpec) -> dg.AssetCheckResult:
    cols = EMPLOYEE_REFERENCES.get(spec.name, ())
    employees = set(wh.query_df("SELECT DISTINCT employee_id FROM core.dim_employee")["employee_id"].astype(int))
    missing: dict[str, list[int]] = {}
    for col in cols:
        refs = wh.query_df(f"SELECT DISTINCT {vetted(col)} AS r FROM {vetted(spec.qualified_name)} "  # noqa: S608
                           f"WHERE is_current AND {vetted(col)} IS NOT NULL")
        gone = sorted(set(refs["r"].astype(int)) - employees)
        if gone:
            missing[col] = gone[:10]
    return _fail(REFERENTIAL_INTEGRITY, not missing, {
        "references": ", ".join(f"{c} -> core.dim_employee.employee_id" for c in cols) or "none",
        "dangling": str(missing) if missing else "none"})


def build_dim_asset(source: SourceTable, spec: TableSpec, deps: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.asset_key,
        description=spec.description,
        partitions_def=internal_daily_partitions,
        deps=deps,
        group_name="internal",
        owners=[OWNER_INTERNAL],
        kinds={"sqlalchemy", "pandas", warehouse_kind()},
        tags={"system": source.system, "layer": "core", "contains_pii": "true"},
        metadata={
            **spec.catalog_metadata(),
            "source": f"{source.system}.{source.table} (SQLAlchemy URL from {source.url_env})",
            "history": "SCD type 2: valid_from, valid_to, is_current, is_deleted, version",
            "partition_key": "UTC day of the source changes (updated_at) the run extracts",
            "pii_columns": ", ".join(f"{c.name} ({c.pii_category})" for c in spec.columns if c.pii),
        },
        check_specs=[dg.AssetCheckSpec(n, asset=spec.asset_key, blocking=True, description=d)
                     for n, d in DIM_CHECKS.items()],
        pool=WAREHOUSE_POOL,
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2)),
        code_version=f"{spec.name}.v1",
    )
    def _dim(context: dg.AssetExecutionContext, config: ExtractConfig, warehouse: WarehouseResource):
        window = context.partition_time_window
        since, until = (None, None) if config.full_reload else (window.start, window.end)
        changes = read_changes(source, since, until)
        keys = read_keys(source)
        now = datetime.now(UTC)
        key = vetted(source.key)
        wh = warehouse.open()
        try:
            cols = ", ".join(vetted(c) for c in spec.column_names)
            current = wh.query_df(f"SELECT {cols} FROM {vetted(spec.qualified_name)} WHERE is_current")  # noqa: S608
            maxv = wh.query_df(f"SELECT {key} AS k, max(version) AS v FROM {vetted(spec.qualified_name)} "  # noqa: S608
                               "GROUP BY 1")
            result = merge(source, spec, current=current, max_versions=dict(zip(maxv["k"].astype(int),
                           maxv["v"].astype(int), strict=True)), changes=changes, source_keys=keys,
                           deleted_at=min(pd.Timestamp(window.end), pd.Timestamp(now)), loaded_at=now)
            # Audit the new versions before writing them (write-audit-publish).
            pre = {o.name: o for o in (rules.check_schema(spec, result.rows), rules.check_allowed_values(
                spec, result.rows), rules.check_ranges(spec, result.rows))}
            pre_results = [_fail(n, o.passed, o.metadata) for n, o in pre.items()]
            if not all(o.passed for o in pre.values()):
                yield from pre_results
                bad = {n: o.metadata for n, o in pre.items() if not o.passed}
                raise dg.Failure(description=f"{spec.qualified_name}: new versions fail {bad}; nothing written, "
                                 "the previous versions stay.")
            written = wh.upsert_rows(spec, result.rows)
            post = [*scd2_integrity(wh, spec, source.key), referential_integrity(wh, spec)]
            current_n = int(wh.scalar(f"SELECT count(*) FROM {vetted(spec.qualified_name)} WHERE is_current"))  # noqa: S608
            source_n = count_rows(source)
            post.append(_fail(ROW_COUNT_RECONCILED, current_n == source_n,
                              {"current_versions": current_n, "source_rows": source_n}))
        finally:
            wh.dispose()
        watermark = "full reload" if config.full_reload else f"{since.isoformat()}..{until.isoformat()}"
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": written, "watermark_range": watermark, "extracted_rows": len(changes),
                "new_versions": result.new_versions, "closed_versions": result.closed_versions,
                "deleted_keys": result.deleted_keys, "unchanged_rows": result.unchanged,
                "stale_rows_skipped": result.stale, "source_rows": source_n,
                "dagster/table_name": spec.qualified_name,
            },
            check_results=[*pre_results, *post],
        )

    return _dim


dim_employee = build_dim_asset(HR_EMPLOYEES, DIM_EMPLOYEE, deps=[])
dim_client = build_dim_asset(CRM_CLIENTS, DIM_CLIENT, deps=[DIM_EMPLOYEE.asset_key])
dim_supplier = build_dim_asset(ERP_SUPPLIERS, DIM_SUPPLIER, deps=[DIM_EMPLOYEE.asset_key])
INTERNAL_ASSETS = [dim_employee, dim_client, dim_supplier]

internal_extract_job = dg.define_asset_job(
    "internal_extract_job", selection=INTERNAL_ASSETS,
    description="Extract today's changes from CRM, HR and ERP into the SCD2 dimensions.")


EXTRACT_INTERVAL_S = int(os.environ.get("QP_INTERNAL_EXTRACT_INTERVAL", "300"))


def _extract_config(full_reload: bool) -> dict:
    return {"ops": {a.node_def.name: {"config": {"full_reload": full_reload}} for a in INTERNAL_ASSETS}}


@dg.sensor(job=internal_extract_job, minimum_interval_seconds=EXTRACT_INTERVAL_S,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Every few minutes (QP_INTERNAL_EXTRACT_INTERVAL, default 300 s): extract today's source "
           "changes into the SCD2 dimensions; the first load is a full reload, and the previous day is extracted "
           "once more after midnight so no late change of the day is missed.")
def internal_extract_sensor(context: dg.SensorEvaluationContext):
    now = datetime.now(UTC)
    today = now.date().isoformat()
    slot = int(now.timestamp()) // max(EXTRACT_INTERVAL_S, 1)
    first_load = context.instance.get_latest_materialization_event(DIM_EMPLOYEE.asset_key) is None
    requests = []
    last_day = context.cursor
    if last_day and last_day < today:
        requests.append(dg.RunRequest(partition_key=last_day, run_key=f"internal:{last_day}:final",
                                      run_config=_extract_config(False),
                                      tags={"qp/triggered_by": "sensor:internal_extract_sensor"}))
    requests.append(dg.RunRequest(partition_key=today, run_key=f"internal:{today}:{slot}",
                                  run_config=_extract_config(first_load),
                                  tags={"qp/triggered_by": "sensor:internal_extract_sensor"}))
    return dg.SensorResult(run_requests=requests, cursor=today)
