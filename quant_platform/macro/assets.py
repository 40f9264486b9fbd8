"""A report's asset, derived from its declaration: the same catalog entry, checks and load for every macro table.

Never write a report's rows except through loading.publish_partition: parsed, checked, then published atomically.
"""

from datetime import date

import dagster as dg

from quant_platform.errors import ReportParseError
from quant_platform.macro.declaration import MacroReport, ReportRun
from quant_platform.macro.history import shown, summarize_missing, vendor_missing
from quant_platform.macro.loading import publish_partition, report_check_specs
from quant_platform.platform.dagster_common import OWNER_MACRO, WAREHOUSE_POOL, warehouse_kind
from quant_platform.platform.tables import TableSpec
from quant_platform.resources import LakeResource, VendorResource, WarehouseResource


def partition_value(spec: TableSpec, key: str):
    """The value of the table's partition column for a partition key (a date column holds dates)."""
    return date.fromisoformat(key) if spec.column(spec.partition_column).type == "date" else key


def report_asset(report: MacroReport) -> dg.AssetsDefinition:
    """The asset of `report`: table macro.<report>, its partitions, freshness, checks; a run fetches the files of
    its partition keys (report.fetch_files), and publish_partition parses (report.parse), checks and publishes them."""
    spec = report.table
    optional = {"backfill_policy": report.backfill_policy} if report.backfill_policy else {}

    @dg.asset(
        key=spec.asset_key,
        description=spec.description,
        partitions_def=report.partitions_def,
        group_name="macro",
        owners=[OWNER_MACRO],
        kinds={*report.kinds, warehouse_kind()},
        tags={"vendor": report.vendor, "layer": "core"},
        metadata={**spec.catalog_metadata(), **report.catalog_entries},
        check_specs=report_check_specs(spec, report.domain_checks),
        pool=WAREHOUSE_POOL,
        freshness_policy=report.freshness_policy,
        code_version=report.code_version or f"{report.report_id}.v1",
        **optional,
    )
    def _report_asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource,
                      vendor: VendorResource):
        keys = list(context.partition_keys)
        run = ReportRun(context, report, keys, vendor, lake.open())
        files = list(report.fetch_files(run))
        frame, error = _parse(report, files, keys)
        missing = vendor_missing(frame)  # partitions the vendor never published (macro/history.py)
        loaded = [k for k in keys if k not in missing]
        if missing:
            _report_missing(context, spec, missing, loaded, run.extra_metadata)
        if not loaded:
            yield _nothing_published(report, missing, files, run.extra_metadata)
            return
        wh = warehouse.open()
        try:
            yield from publish_partition(
                context, wh, spec, parse=lambda: _parsed(frame, error),
                partition_values=[partition_value(spec, k) for k in loaded], raw_files=files,
                scheduled_release={k: report.scheduled_release(k) for k in loaded} if report.on_calendar else None,
                expected_partitions=loaded, extra_metadata=run.extra_metadata or None,
                domain_checks=report.domain_checks,
            )
        finally:
            wh.dispose()

    return _report_asset


def _parse(report: MacroReport, files, keys):
    """The run's rows, parsed once (a parse error is raised later, inside publish_partition, which records it)."""
    try:
        return report.parse(files, keys), None
    except ReportParseError as exc:
        return None, exc


def _parsed(frame, error):
    if error is not None:
        raise error
    return frame


def _report_missing(context: dg.AssetExecutionContext, spec: TableSpec, missing: dict[str, str], loaded: list[str],
                    extra: dict) -> None:
    """Each partition the vendor never published, recorded on that partition's materialization (`vendor_missing`:
    why) and summarized on every partition's."""
    for key, why in sorted(missing.items()):
        context.add_asset_metadata({"vendor_missing": why}, partition_key=key)
    lines = summarize_missing(missing)
    extra.update({"partitions_vendor_missing": len(missing), "vendor_missing_partitions": shown(lines),
                  "partitions_loaded": len(loaded)})
    context.log.warning(f"{spec.qualified_name}: {len(missing)} of {len(missing) + len(loaded)} partitions were "
                        f"never published by the vendor (left empty, not retried): {shown(lines, 3)}")


def _nothing_published(report: MacroReport, missing: dict[str, str], files, extra: dict) -> dg.MaterializeResult:
    """No requested partition has rows: nothing is written, and every check says why it had nothing to check."""
    note = "nothing to check: the vendor published none of the run's partitions (vendor_missing), nothing written"
    results = [dg.AssetCheckResult(check_name=c.name, passed=True, severity=dg.AssetCheckSeverity.ERROR if c.blocking
                                   else dg.AssetCheckSeverity.WARN, metadata={"rows": 0, "note": note})
               for c in report_check_specs(report.table, report.domain_checks)]
    metadata = {**extra, "dagster/row_count": 0, "dagster/table_name": report.table.qualified_name,
                "raw_files": ", ".join(f.lake_path for f in files), "raw_sha256": ", ".join(sorted({f.sha256
                                                                                                     for f in files}))}
    return dg.MaterializeResult(metadata=metadata, check_results=results)
