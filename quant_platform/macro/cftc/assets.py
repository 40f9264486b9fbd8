"""CFTC Commitments of Traders (disaggregated and legacy, futures only) as weekly-partitioned assets.

Never key a contract on its market name: the CFTC renames markets (NYMEX WTI 067651 in 2022).
"""


from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd

from quant_platform.macro.cftc.parsing import extract_cot_zip, parse_cot_disaggregated, parse_cot_legacy
from quant_platform.macro.loading import (
    TAG_RAW_SHA,
    RawFile,
    archived_raw,
    fetch_raw,
    publish_partition,
    report_check_specs,
)
from quant_platform.macro.tables import CFTC_COT_DISAGGREGATED, CFTC_COT_LEGACY
from quant_platform.platform.calendars import COT_FRESHNESS, COT_WEEKLY_PARTITIONS, cot_release_at
from quant_platform.platform.dagster_common import OWNER_MACRO, WAREHOUSE_POOL, warehouse_kind
from quant_platform.platform.tables import TableSpec
from quant_platform.resources import LakeResource, VendorResource, WarehouseResource

VENDOR = "cftc"


@dataclass(frozen=True)
class CotReport:
    name: str
    spec: TableSpec
    history_path: str  # with {year}
    weekly_path: str
    parse: Callable[[bytes], pd.DataFrame]

    @property
    def history_dataset(self) -> str:
        return f"cot_{self.name}_history"

    @property
    def weekly_dataset(self) -> str:
        return f"cot_{self.name}_weekly"


DISAGGREGATED = CotReport("disaggregated", CFTC_COT_DISAGGREGATED, "/files/dea/history/fut_disagg_txt_{year}.zip",
                          "/dea/newcot/f_disagg.txt", parse_cot_disaggregated)
LEGACY = CotReport("legacy", CFTC_COT_LEGACY, "/files/dea/history/deacot{year}.zip", "/dea/newcot/deafut.txt",
                   parse_cot_legacy)
COT_REPORTS = (DISAGGREGATED, LEGACY)


def with_available_at(df: pd.DataFrame) -> pd.DataFrame:
    """Add when each row became public, from the release calendar (point-in-time joins need it)."""
    out = df.copy()
    release = {d: cot_release_at(d.date()).astimezone(UTC) for d in pd.to_datetime(out["as_of"]).unique()}
    out.insert(1, "available_at", pd.to_datetime(out["as_of"]).map(release))
    out["available_at"] = pd.to_datetime(out["available_at"], utc=True)
    return out


def _gather_files(context, report: CotReport, keys: list[str], vendor: VendorResource, lake) -> list[RawFile]:
    """The weekly file the sensor saw, or the yearly history files covering the requested weeks."""
    base = vendor.settings().cftc_base_url
    client = vendor.client()
    tags = context.run.tags if context.run else {}
    if tags.get(TAG_RAW_SHA) and len(keys) == 1:
        return [fetch_raw(context, client, lake, vendor=VENDOR, dataset=report.weekly_dataset, partition=keys[0],
                          url=base + report.weekly_path, ext="txt")]
    files = []
    this_year = datetime.now(UTC).year
    for year in sorted({k[:4] for k in keys}):
        # Past years are final: reuse the archived file. The current year's file grows every week.
        raw = archived_raw(lake, VENDOR, report.history_dataset, year) if int(year) < this_year else None
        if raw is None:
            raw = fetch_raw(context, client, lake, vendor=VENDOR, dataset=report.history_dataset,
                            partition=year, url=base + report.history_path.format(year=year), ext="zip",
                            allow_tagged=False)
        files.append(raw)
    return files


def build_cot_asset(report: CotReport) -> dg.AssetsDefinition:
    spec = report.spec

    @dg.asset(
        key=spec.asset_key,
        description=spec.description,
        partitions_def=COT_WEEKLY_PARTITIONS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="macro",
        owners=[OWNER_MACRO],
        kinds={"pandas", "csv", warehouse_kind()},
        tags={"vendor": "cftc", "layer": "core"},
        metadata={
            **spec.catalog_metadata(),
            "vendor_url": f"https://www.cftc.gov{report.weekly_path} (current week), "
            f"https://www.cftc.gov{report.history_path} (history)",
            "release_calendar": "Fridays 15:30 America/New_York for positions as of the Tuesday before; each "
            "federal holiday that week moves it one business day later.",
            "partition_key": "as-of Tuesday, YYYY-MM-DD; a backfill of many weeks runs once per year file",
        },
        check_specs=report_check_specs(spec),
        pool=WAREHOUSE_POOL,
        freshness_policy=COT_FRESHNESS,
        code_version=f"cftc_cot_{report.name}.v1",
    )
    def _cot(context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource,
             vendor: VendorResource):
        keys = list(context.partition_keys)
        lk = lake.open()
        files = _gather_files(context, report, keys, vendor, lk)

        def parse() -> pd.DataFrame:
            frames = []
            for f in files:
                text = extract_cot_zip(f.body) if f.lake_path.endswith(".zip") else f.body
                df = report.parse(text)
                df["source_sha256"] = f.sha256
                frames.append(df)
            df = pd.concat(frames, ignore_index=True)
            wanted = pd.to_datetime(pd.Series(keys))
            df = df[pd.to_datetime(df["as_of"]).isin(wanted)]
            return with_available_at(df).sort_values(["as_of", "contract_code"], ignore_index=True)

        wh = warehouse.open()
        try:
            yield from publish_partition(
                context, wh, spec, parse=parse, partition_values=[date.fromisoformat(k) for k in keys],
                raw_files=files, expected_partitions=keys,
                scheduled_release={k: cot_release_at(date.fromisoformat(k)) for k in keys},
                extra_metadata={"weeks": len(keys), "first_week": keys[0], "last_week": keys[-1]},
            )
        finally:
            wh.dispose()

    return _cot


cftc_cot_disaggregated = build_cot_asset(DISAGGREGATED)
cftc_cot_legacy = build_cot_asset(LEGACY)
