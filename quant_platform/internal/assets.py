"""Internal dimensions as assets: incremental extraction by watermark (updated_at) from the operational
databases, cheap delete detection, history kept as SCD type 2 by set-based SQL, write-audit-publish.

Never expose PII beyond core: analysts read the masked views in schema analyst.
"""

import os
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from quant_platform.internal.tables import (
    CRM_CLIENTS,
    DIM_CLIENT,
    DIM_EMPLOYEE,
    DIM_SUPPLIER,
    ERP_SUPPLIERS,
    HR_EMPLOYEES,
    SourceTable,
)
from quant_platform.internal.wap import (
    CHECK_DESCRIPTIONS,
    EMPLOYEE_REFERENCES,
    KEYS_UNIQUE_PER_VERSION,
    NO_OVERLAPPING_VALIDITY,
    REFERENTIAL_INTEGRITY,
    ROW_COUNT_RECONCILED,
    CheckOutcome,
    extract_and_publish,
)
from quant_platform.platform.dagster_common import WAREHOUSE_POOL, warehouse_kind
from quant_platform.platform.tables import TableSpec
from quant_platform.resources import WarehouseResource

OWNER_INTERNAL = "team:data-engineering"

__all__ = ["DIM_CHECKS", "EMPLOYEE_REFERENCES", "INTERNAL_ASSETS", "KEYS_UNIQUE_PER_VERSION",
           "NO_OVERLAPPING_VALIDITY", "REFERENTIAL_INTEGRITY", "ROW_COUNT_RECONCILED", "internal_extract_job",
           "internal_extract_sensor"]

DIM_CHECKS = CHECK_DESCRIPTIONS

internal_daily_partitions = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)


class ExtractConfig(dg.Config):
    full_reload: bool = False
    """Compare every source row (not only those updated in the partition's window) with the dimension."""


def _check(o: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=o.name, passed=bool(o.passed), severity=dg.AssetCheckSeverity.ERROR,
                               metadata=o.metadata)


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
            "publishing": "write-audit-publish: new and closed versions are staged, every blocking check runs on "
                          "the dimension as it would be, and they are published in the same transaction only "
                          "if all pass; a failed check leaves the dimension unchanged",
            "delete_detection": "source key count and key sums compared with the current versions on every run; "
                                "a full key scan only when they differ, on the day's final extraction and on "
                                "full reloads (run metadata delete_scan says which)",
            "deleted_versions": "a deleted source row closes its current version with is_deleted and valid_to = "
                                "when the deletion was observed",
            "pii_columns": ", ".join(f"{c.name} ({c.pii_category})" for c in spec.columns if c.pii),
        },
        check_specs=[dg.AssetCheckSpec(n, asset=spec.asset_key, blocking=True, description=d)
                     for n, d in DIM_CHECKS.items()],
        pool=WAREHOUSE_POOL,
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2)),
        code_version=f"{spec.name}.v2",
    )
    def _dim(context: dg.AssetExecutionContext, config: ExtractConfig, warehouse: WarehouseResource):
        window = context.partition_time_window
        now = datetime.now(UTC)
        wh = warehouse.open()
        try:
            out = extract_and_publish(wh, source, spec, since=window.start, until=window.end, now=now,
                                      full_reload=config.full_reload)
        finally:
            wh.dispose()
        checks = [_check(c) for c in out.checks]
        counts = out.counts
        metadata = {
            "watermark_range": "full reload" if config.full_reload
            else f"{window.start.isoformat()}..{window.end.isoformat()}",
            "extracted_rows": counts.extracted, "new_versions": counts.new_versions,
            "closed_versions": counts.closed_versions, "deleted_keys": out.deleted_keys,
            "unchanged_rows": counts.unchanged, "stale_rows_skipped": counts.stale, "source_rows": out.source_rows,
            "delete_scan": out.delete_scan, "merge_audit_publish_s": round(out.seconds, 3),
        }
        if not out.published:
            # Blocking checks: their results are recorded, the dimension is as it was, the run fails once.
            yield from checks
            raise dg.Failure(description=out.failure_message(spec), metadata=metadata)
        yield dg.MaterializeResult(
            metadata={"dagster/row_count": out.written, **metadata, "dagster/table_name": spec.qualified_name},
            check_results=checks,
        )

    return _dim


dim_employee = build_dim_asset(HR_EMPLOYEES, DIM_EMPLOYEE, deps=[])
dim_client = build_dim_asset(CRM_CLIENTS, DIM_CLIENT, deps=[DIM_EMPLOYEE.asset_key])
dim_supplier = build_dim_asset(ERP_SUPPLIERS, DIM_SUPPLIER, deps=[DIM_EMPLOYEE.asset_key])
INTERNAL_ASSETS = [dim_employee, dim_client, dim_supplier]

internal_extract_job = dg.define_asset_job(
    "internal_extract_job", selection=INTERNAL_ASSETS,
    description="Extract one day's changes from CRM, HR and ERP into the SCD2 dimensions.")


EXTRACT_INTERVAL_S = int(os.environ.get("QP_INTERNAL_EXTRACT_INTERVAL", "300"))
# Missed days the sensor requests per tick (oldest first); a longer backlog continues on the next ticks.
CATCHUP_DAYS_PER_TICK = max(1, int(os.environ.get("QP_INTERNAL_CATCHUP_DAYS_PER_TICK", "7")))
_SENSOR_TAGS = {"qp/triggered_by": "sensor:internal_extract_sensor"}


def _extract_config(full_reload: bool) -> dict:
    return {"ops": {a.node_def.name: {"config": {"full_reload": full_reload}} for a in INTERNAL_ASSETS}}


def _first_pending_day(context: dg.SensorEvaluationContext, today: date) -> date:
    """The earliest day whose final extraction (a run after the day ended) has not been requested yet.

    The cursor holds it. Without a cursor (a reset sensor) it is the day of the last extraction on record, so
    that day is extracted again once complete; with no extraction at all, today (the first load is a full
    reload, which covers every earlier day).
    """
    if context.cursor:
        try:
            return date.fromisoformat(context.cursor.strip())
        except ValueError:
            context.log.warning(f"ignoring unreadable cursor {context.cursor!r}")
    event = context.instance.get_latest_materialization_event(DIM_EMPLOYEE.asset_key)
    partition = event.asset_materialization.partition if event and event.asset_materialization else None
    return date.fromisoformat(partition) if partition else today


@dg.sensor(job=internal_extract_job, minimum_interval_seconds=EXTRACT_INTERVAL_S,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Every few minutes (QP_INTERNAL_EXTRACT_INTERVAL, default 300 s): extract today's source "
           "changes into the SCD2 dimensions; the first load is a full reload. Every day since the last one "
           "extracted after its end is extracted once more, oldest first (at most "
           "QP_INTERNAL_CATCHUP_DAYS_PER_TICK days per tick, default 7), so a daemon that was down misses no day.")
def internal_extract_sensor(context: dg.SensorEvaluationContext):
    from quant_platform.internal.sources import unconfigured_sources

    missing = unconfigured_sources()
    if missing:
        return dg.SkipReason(f"no operational database for {', '.join(missing)}: set QP_CRM_URL, QP_HR_URL and "
                             "QP_ERP_URL, or run `quant-platform up`, which seeds demo databases under QP_HOME")
    now = datetime.now(UTC)
    today = now.date()
    slot = int(now.timestamp()) // max(EXTRACT_INTERVAL_S, 1)
    first_load = context.instance.get_latest_materialization_event(DIM_EMPLOYEE.asset_key) is None
    start = internal_daily_partitions.start.date()
    pending = max(_first_pending_day(context, today), start)
    missed = [pending + timedelta(days=i) for i in range(max((today - pending).days, 0))]
    finals = missed[:CATCHUP_DAYS_PER_TICK]
    # One final run per missed day, keyed by the day: deterministic, and never requested twice.
    requests = [dg.RunRequest(partition_key=d.isoformat(), run_key=f"internal:{d.isoformat()}:final",
                              run_config=_extract_config(False), tags={**_SENSOR_TAGS, "qp/extract": "final"})
                for d in finals]
    requests.append(dg.RunRequest(partition_key=today.isoformat(), run_key=f"internal:{today.isoformat()}:{slot}",
                                  run_config=_extract_config(first_load), tags={**_SENSOR_TAGS, "qp/extract": "slot"}))
    cursor = finals[-1] + timedelta(days=1) if finals else max(pending, today)
    return dg.SensorResult(run_requests=requests, cursor=cursor.isoformat())
