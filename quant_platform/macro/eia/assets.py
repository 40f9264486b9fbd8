"""EIA reports as assets: the Weekly Petroleum Status Report (table 1) and EIA series history.

Never publish a WPSR week other than the partition's: a file for another week fails its checks.
"""


from datetime import UTC, date

import dagster as dg
import pandas as pd

from quant_platform.errors import ReportParseError
from quant_platform.macro.eia.parsing import (
    api_v2_total,
    parse_dnav_history,
    parse_eia_api_v2,
    parse_wpsr_table1,
    wpsr_week_ending,
)
from quant_platform.macro.eia.series import SERIES, api_v2_request, configured_series, dnav_url
from quant_platform.macro.loading import (
    archived_raw,
    fetch_raw,
    publish_partition,
    report_check_specs,
)
from quant_platform.macro.tables import EIA_SERIES, EIA_WPSR
from quant_platform.platform.calendars import WPSR_FRESHNESS, WPSR_WEEKLY_PARTITIONS, wpsr_release_at
from quant_platform.platform.dagster_common import OWNER_MACRO, WAREHOUSE_POOL, warehouse_kind
from quant_platform.resources import LakeResource, VendorResource, WarehouseResource

VENDOR = "eia"
WPSR_DATASET = "wpsr_table1"
WPSR_PATH = "/wpsr/table1.csv"
TAG_REFETCH = "qp/refetch"

series_partitions = dg.StaticPartitionsDefinition(configured_series())


@dg.asset(
    key=EIA_WPSR.asset_key,
    description=EIA_WPSR.description,
    partitions_def=WPSR_WEEKLY_PARTITIONS,
    group_name="macro",
    owners=[OWNER_MACRO],
    kinds={"pandas", "csv", warehouse_kind()},
    tags={"vendor": "eia", "layer": "core"},
    metadata={
        **EIA_WPSR.catalog_metadata(),
        "vendor_url": "https://ir.eia.gov/wpsr/table1.csv",
        "release_calendar": "Wednesdays 10:30 America/New_York for the week ending the previous Friday; "
        "a federal holiday Monday-Wednesday moves it one business day later, at 11:00.",
        "partition_key": "week ending (Friday), YYYY-MM-DD",
    },
    check_specs=report_check_specs(EIA_WPSR),
    pool=WAREHOUSE_POOL,
    freshness_policy=WPSR_FRESHNESS,
    code_version="eia_wpsr.v1",
)
def eia_wpsr(context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource,
             vendor: VendorResource):
    """Load one WPSR week: the file the release sensor saw, else the archived one, else a download."""
    week = context.partition_key
    lk = lake.open()
    tags = context.run.tags if context.run else {}
    raw = None
    if not tags.get("qp/raw_sha256") and tags.get(TAG_REFETCH) != "true":
        raw = archived_raw(lk, VENDOR, WPSR_DATASET, week)
    if raw is None:
        url = vendor.settings().eia_ir_base_url + WPSR_PATH
        raw = fetch_raw(context, vendor.client(), lk, vendor=VENDOR, dataset=WPSR_DATASET, partition=week,
                        url=url, ext="csv")

    def parse() -> pd.DataFrame:
        file_week = wpsr_week_ending(raw.body)
        if file_week.isoformat() != week:
            raise ReportParseError(
                "eia_wpsr table1.csv", None,
                f"the file is for week ending {file_week}, not partition {week} (table1.csv only carries the "
                "latest week; older weeks reload from the raw archive, earlier history is in macro.eia_series)",
            )
        df = parse_wpsr_table1(raw.body)
        df["source_sha256"] = raw.sha256
        return df

    wh = warehouse.open()
    try:
        yield from publish_partition(
            context, wh, EIA_WPSR, parse=parse, partition_values=[date.fromisoformat(week)],
            raw_files=[raw], scheduled_release={week: wpsr_release_at(date.fromisoformat(week))},
            expected_partitions=[week],
        )
    finally:
        wh.dispose()


@dg.asset(
    key=EIA_SERIES.asset_key,
    description=EIA_SERIES.description,
    partitions_def=series_partitions,
    group_name="macro",
    owners=[OWNER_MACRO],
    kinds={"pandas", "csv", warehouse_kind()},
    tags={"vendor": "eia", "layer": "core"},
    metadata={
        **EIA_SERIES.catalog_metadata(),
        "series": ", ".join(f"{s.series_id}: {s.label}" for s in SERIES.values()),
        "partition_key": "EIA series id; each load replaces the whole history of the series",
        "routes": "dnav LeafHandler.ashx history CSV, or EIA API v2 when QP_EIA_API_KEY is set",
    },
    check_specs=report_check_specs(EIA_SERIES),
    pool=WAREHOUSE_POOL,
    freshness_policy=WPSR_FRESHNESS,
    code_version="eia_series.v1",
)
def eia_series(context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource,
               vendor: VendorResource):
    """Load the full history of one EIA series, from dnav or API v2 (same rows either way)."""
    series_id = context.partition_key
    settings = vendor.settings()
    lk = lake.open()
    client = vendor.client()
    raws = []
    if settings.eia_api_key:
        offset, total = 0, None
        while total is None or offset < total:
            url, params = api_v2_request(settings.eia_api_base_url, series_id, settings.eia_api_key, offset)
            page = fetch_raw(context, client, lk, vendor=VENDOR, dataset="series_api_v2", partition=series_id,
                             url=url, ext="json", params=params, allow_tagged=False)
            raws.append(page)
            total = api_v2_total(page.body)
            offset += 5000
            if offset > 200_000:
                raise ReportParseError("eia api v2", None, f"{series_id}: more than 200k rows, refusing")

        def parse() -> pd.DataFrame:
            frames = []
            for page in raws:
                df = parse_eia_api_v2(page.body, series_id)
                df["source_sha256"] = page.sha256
                frames.append(df)
            return pd.concat(frames, ignore_index=True).sort_values("period", ignore_index=True)
    else:
        raw = fetch_raw(context, client, lk, vendor=VENDOR, dataset="series_dnav", partition=series_id,
                        url=dnav_url(settings.eia_base_url, series_id), ext="csv")
        raws.append(raw)

        def parse() -> pd.DataFrame:
            df = parse_dnav_history(raw.body, series_id)
            df["source_sha256"] = raw.sha256
            return df

    wh = warehouse.open()
    try:
        yield from publish_partition(
            context, wh, EIA_SERIES, parse=parse, partition_values=[series_id], raw_files=raws,
            expected_partitions=[series_id],
            extra_metadata={"route": "api_v2" if settings.eia_api_key else "dnav",
                            "fetched_at": pd.Timestamp.now(tz=UTC).isoformat()},
        )
    finally:
        wh.dispose()
