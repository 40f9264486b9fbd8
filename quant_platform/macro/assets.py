"""A report's asset, derived from its declaration: the same catalog entry, checks and load for every macro table.

Never write a report's rows except through loading.publish_partition: parsed, checked, then published atomically.
"""

from datetime import date

import dagster as dg

from quant_platform.macro.declaration import MacroReport, ReportRun
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
        wh = warehouse.open()
        try:
            yield from publish_partition(
                context, wh, spec, parse=lambda: report.parse(files, keys),
                partition_values=[partition_value(spec, k) for k in keys], raw_files=files,
                scheduled_release={k: report.scheduled_release(k) for k in keys} if report.on_calendar else None,
                expected_partitions=keys, extra_metadata=run.extra_metadata or None,
                domain_checks=report.domain_checks,
            )
        finally:
            wh.dispose()

    return _report_asset
