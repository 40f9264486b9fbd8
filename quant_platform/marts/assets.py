"""Marts of the crude-oil analyst team: the weekly U.S. crude balance and COT positioning.

Never read a vendor file here, and never look ahead: every row uses only data published by then.
"""


from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd

from quant_platform.macro.cftc.parsing import KEY_CONTRACTS
from quant_platform.macro.tables import CFTC_COT_DISAGGREGATED, CFTC_COT_LEGACY, EIA_SERIES, EIA_WPSR
from quant_platform.marts.point_in_time import (
    current_versions,
    revised_keys,
    value_known_at,
    with_version_times,
)
from quant_platform.marts.tables import COT_POSITIONING, US_CRUDE_BALANCE_WEEKLY
from quant_platform.platform.calendars import COT_FRESHNESS, WPSR_FRESHNESS
from quant_platform.platform.dagster_common import OWNER_CRUDE_ANALYSTS, WAREHOUSE_POOL, warehouse_kind
from quant_platform.platform.tables import TableSpec
from quant_platform.quality import rules
from quant_platform.quality.gx_suites import run_suite
from quant_platform.resources import WarehouseResource

# Rebuild when any report partition lands; unlike eager(), do not wait for every historical partition.
MART_AUTOMATION = (
    (dg.AutomationCondition.missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("rebuild when a report partition lands")

# WPSR series_key (measure 'level') and the EIA series that carries the same number historically,
# with the factor that converts the series' unit to the mart's unit.
BALANCE_SOURCES = {
    "commercial_crude_stocks": ("stocks.commercial_excluding_spr", "WCESTUS1", 1e-3),
    "spr_crude_stocks": ("stocks.strategic_petroleum_reserve_spr", "WCSSTUS1", 1e-3),
    "crude_production": ("supply.crude_oil_supply.domestic_production", "WCRFPUS2", 1.0),
    "crude_imports": ("supply.crude_oil_supply.imports", "WCRIMUS2", 1.0),
    "crude_exports": ("supply.crude_oil_supply.exports", "WCREXUS2", 1.0),
    "crude_net_imports": ("supply.crude_oil_supply.net_imports_including_spr", None, 1.0),
    "refinery_crude_input": ("supply.crude_oil_supply.crude_oil_input_to_refineries", "WCRRIUS2", 1.0),
}
WOW_COLUMNS = {
    "commercial_crude_stocks_wow": "commercial_crude_stocks",
    "spr_crude_stocks_wow": "spr_crude_stocks",
    "crude_production_wow": "crude_production",
    "crude_imports_wow": "crude_imports",
    "refinery_crude_input_wow": "refinery_crude_input",
}

MART_CHECKS = (rules.SCHEMA_AND_TYPES, rules.PRIMARY_KEY_UNIQUE, rules.UNITS_AND_CODES, rules.PLAUSIBLE_RANGES,
               rules.GX_SUITE)


def _lineage_balance() -> dg.TableColumnLineage:
    deps: dict[str, list[dg.TableColumnDep]] = {"week_ending": [
        dg.TableColumnDep(asset_key=EIA_WPSR.asset_key, column_name="week_ending"),
        dg.TableColumnDep(asset_key=EIA_SERIES.asset_key, column_name="period"),
    ]}
    for col, (_key, series, _f) in BALANCE_SOURCES.items():
        d = [dg.TableColumnDep(asset_key=EIA_WPSR.asset_key, column_name="value")]
        if series:
            d.append(dg.TableColumnDep(asset_key=EIA_SERIES.asset_key, column_name="value"))
        deps[col] = d
    for wow, base in WOW_COLUMNS.items():
        deps[wow] = deps[base]
    return dg.TableColumnLineage(deps_by_column=deps)


def _lineage_cot() -> dg.TableColumnLineage:
    def both(dis: str, leg: str) -> list[dg.TableColumnDep]:
        return [dg.TableColumnDep(asset_key=CFTC_COT_DISAGGREGATED.asset_key, column_name=dis),
                dg.TableColumnDep(asset_key=CFTC_COT_LEGACY.asset_key, column_name=leg)]

    return dg.TableColumnLineage(deps_by_column={
        "as_of": both("as_of", "as_of"),
        "available_at": both("available_at", "available_at"),
        "contract_code": both("contract_code", "contract_code"),
        "long_contracts": both("m_money_long", "noncomm_long"),
        "short_contracts": both("m_money_short", "noncomm_short"),
        "net_contracts": both("m_money_long", "noncomm_long") + both("m_money_short", "noncomm_short"),
        "open_interest": both("open_interest", "open_interest"),
        "net_pct_open_interest": both("m_money_long", "noncomm_long") + both("open_interest", "open_interest"),
        "net_change_wow": both("m_money_long", "noncomm_long") + both("m_money_short", "noncomm_short"),
        "net_zscore_3y": both("m_money_long", "noncomm_long") + both("m_money_short", "noncomm_short"),
    })


def _mart_checks(spec: TableSpec) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(n, asset=spec.asset_key, blocking=True, description=rules.RULE_DESCRIPTIONS[n])
            for n in MART_CHECKS]


def _publish(context, warehouse: WarehouseResource, spec: TableSpec, frame: pd.DataFrame, lineage, extra: dict):
    frame = frame.copy()
    frame["loaded_at"] = pd.Timestamp(datetime.now(UTC))
    frame = frame[spec.column_names]
    outcomes = [o for o in rules.validate_frame(spec, frame) if o.name in MART_CHECKS]
    outcomes.append(run_suite(spec, frame))
    results = [dg.AssetCheckResult(check_name=o.name, passed=o.passed, severity=dg.AssetCheckSeverity.ERROR,
                                   metadata=o.metadata) for o in outcomes]
    failed = [o.name for o in outcomes if not o.passed]
    if failed:
        yield from results
        raise dg.Failure(description=f"{spec.qualified_name} blocked by failed checks {failed}; previous rows "
                         "kept.")
    wh = warehouse.open()
    try:
        rows = wh.replace_rows(spec, frame, None)
    finally:
        wh.dispose()
    yield dg.MaterializeResult(
        metadata={"dagster/row_count": rows, "dagster/table_name": spec.qualified_name,
                  "dagster/column_lineage": lineage, **extra},
        check_results=results,
    )


@dg.asset(
    key=US_CRUDE_BALANCE_WEEKLY.asset_key,
    description=US_CRUDE_BALANCE_WEEKLY.description,
    deps=[EIA_WPSR.asset_key, EIA_SERIES.asset_key],
    group_name="marts",
    owners=[OWNER_CRUDE_ANALYSTS],
    kinds={"pandas", warehouse_kind()},
    tags={"layer": "mart", "team": "crude-analysts"},
    metadata={**US_CRUDE_BALANCE_WEEKLY.catalog_metadata(), "dagster/column_lineage": _lineage_balance()},
    check_specs=_mart_checks(US_CRUDE_BALANCE_WEEKLY),
    automation_condition=MART_AUTOMATION,
    pool=WAREHOUSE_POOL,
    freshness_policy=WPSR_FRESHNESS,
    code_version="us_crude_balance_weekly.v1",
)
def us_crude_balance_weekly(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.open()
    try:
        # Every version (<table>_versions): a week's change reads the week before as known at the week's time.
        wpsr = wh.query_df(
            "SELECT week_ending, series_key, value, valid_from, superseded_at FROM macro.eia_wpsr_versions "
            "WHERE measure = :measure AND series_key IN :keys",
            {"measure": "level", "keys": [v[0] for v in BALANCE_SOURCES.values()]},
        )
        series_ids = [v[1] for v in BALANCE_SOURCES.values() if v[1]]
        hist = wh.query_df(
            "SELECT series_id, period, value, valid_from, superseded_at FROM macro.eia_series_versions "
            "WHERE series_id IN :ids", {"ids": series_ids},
        )
    finally:
        wh.dispose()
    frame = build_crude_balance(wpsr, hist)
    yield from _publish(context, warehouse, US_CRUDE_BALANCE_WEEKLY, frame, _lineage_balance(), {
        "weeks_from_wpsr": int((frame["source"] == "wpsr").sum()) if len(frame) else 0,
        "weeks_from_eia_series": int((frame["source"] == "eia_series").sum()) if len(frame) else 0,
        "latest_week": str(frame["week_ending"].max()) if len(frame) else "none",
        "rows_recomputed_as_known_then": int(frame.attrs.get("recomputed", 0)),
    })


def _balance_versions(wpsr: pd.DataFrame, hist: pd.DataFrame) -> pd.DataFrame:
    """Both inputs as one long frame of versions: source, week_ending, col, value (the mart's unit), valid_from,
    superseded_at."""
    key_to_col = {v[0]: k for k, v in BALANCE_SOURCES.items()}
    series_to_col = {v[1]: (k, v[2]) for k, v in BALANCE_SOURCES.items() if v[1]}
    parts = []
    if len(wpsr):
        parts.append(pd.DataFrame({
            "source": "wpsr", "week_ending": pd.to_datetime(wpsr["week_ending"]),
            "col": wpsr["series_key"].map(key_to_col), "value": pd.to_numeric(wpsr["value"]).astype(float),
            "valid_from": wpsr["valid_from"], "superseded_at": wpsr["superseded_at"]}))
    if len(hist):
        factor = hist["series_id"].map(lambda s: series_to_col[s][1]).astype(float)
        parts.append(pd.DataFrame({
            "source": "eia_series", "week_ending": pd.to_datetime(hist["period"]),
            "col": hist["series_id"].map(lambda s: series_to_col[s][0]),
            "value": pd.to_numeric(hist["value"]).astype(float) * factor,
            "valid_from": hist["valid_from"], "superseded_at": hist["superseded_at"]}))
    if not parts:
        return pd.DataFrame(columns=["source", "week_ending", "col", "value", "valid_from", "superseded_at"])
    return with_version_times(pd.concat(parts, ignore_index=True))


def build_crude_balance(wpsr: pd.DataFrame, hist: pd.DataFrame) -> pd.DataFrame:
    """Weekly balance: WPSR weeks win; other weeks come from the series history (unit-converted). Inputs are the
    <table>_versions rows; a row holds the current numbers of its week, available_at is when the platform had
    them all, and its week-on-week changes read the week before as known then."""
    cols = list(BALANCE_SOURCES)
    versions = _balance_versions(wpsr, hist)
    current = current_versions(versions)
    if current.empty:
        return pd.DataFrame(columns=[c for c in US_CRUDE_BALANCE_WEEKLY.column_names if c != "loaded_at"])
    wide = current.pivot_table(index=["week_ending", "source"], columns="col", values="value", aggfunc="first")
    wide = wide.reindex(columns=cols)
    known = current.groupby(["week_ending", "source"])["valid_from"].max().rename("available_at")
    wide = wide.join(known).reset_index()
    series_rows = wide["source"] == "eia_series"
    wide.loc[series_rows, "crude_net_imports"] = (wide.loc[series_rows, "crude_imports"]
                                                  - wide.loc[series_rows, "crude_exports"])
    wide["priority"] = (wide["source"] != "wpsr").astype(int)
    frame = wide.sort_values(["week_ending", "priority"]).drop_duplicates("week_ending", keep="first")
    frame = frame.drop(columns="priority").sort_values("week_ending", ignore_index=True)
    consecutive = frame["week_ending"].diff() == pd.Timedelta(days=7)
    for wow, base in WOW_COLUMNS.items():
        frame[wow] = frame[base].diff().where(consecutive)
    frame[cols + list(WOW_COLUMNS)] = frame[cols + list(WOW_COLUMNS)].astype(float)
    frame.attrs["recomputed"] = _balance_as_known_then(frame, versions, consecutive)
    return frame


def _balance_as_known_then(frame: pd.DataFrame, versions: pd.DataFrame, consecutive: pd.Series) -> int:
    """Recompute, in place, the week-on-week changes of the weeks whose previous week has more than one version,
    with the previous week as known at the week's available_at. Returns how many rows were recomputed."""
    revised = revised_keys(versions, ["source", "week_ending"])
    if revised.empty:
        return 0
    prev = frame[["week_ending", "source"]].shift(1)
    rows = frame.index[consecutive & prev.merge(revised, on=["source", "week_ending"], how="left",
                                                indicator=True)["_merge"].eq("both").to_numpy()]
    if rows.empty:
        return 0
    requests = pd.DataFrame([
        {"row": idx, "source": prev.at[idx, "source"], "week_ending": prev.at[idx, "week_ending"], "col": base,
         "wow": wow, "at": frame.at[idx, "available_at"]}
        for idx in rows for wow, base in WOW_COLUMNS.items()])
    requests["value"] = value_known_at(versions, ["source", "week_ending", "col"], "value", requests)
    for r in requests.itertuples():
        frame.at[r.row, r.wow] = float(frame.at[r.row, r.col] - r.value)
    return len(rows)


@dg.asset(
    key=COT_POSITIONING.asset_key,
    description=COT_POSITIONING.description,
    deps=[CFTC_COT_DISAGGREGATED.asset_key, CFTC_COT_LEGACY.asset_key],
    group_name="marts",
    owners=[OWNER_CRUDE_ANALYSTS],
    kinds={"pandas", warehouse_kind()},
    tags={"layer": "mart", "team": "crude-analysts"},
    metadata={**COT_POSITIONING.catalog_metadata(), "dagster/column_lineage": _lineage_cot(),
              "key_contracts": ", ".join(f"{k}: {v}" for k, v in KEY_CONTRACTS.items())},
    check_specs=_mart_checks(COT_POSITIONING),
    automation_condition=MART_AUTOMATION,
    pool=WAREHOUSE_POOL,
    freshness_policy=COT_FRESHNESS,
    code_version="cot_positioning.v1",
)
def cot_positioning(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    codes = list(KEY_CONTRACTS)
    wh = warehouse.open()
    try:
        # Every version of every week (<table>_versions): each row's z-score reads the weeks as known at its time.
        dis = wh.query_df(
            "SELECT as_of, contract_code, m_money_long AS long_contracts, m_money_short AS short_contracts, "
            "open_interest, valid_from, superseded_at FROM macro.cftc_cot_disaggregated_versions "
            "WHERE contract_code IN :codes", {"codes": codes})
        leg = wh.query_df(
            "SELECT as_of, contract_code, noncomm_long AS long_contracts, noncomm_short AS short_contracts, "
            "open_interest, valid_from, superseded_at FROM macro.cftc_cot_legacy_versions "
            "WHERE contract_code IN :codes", {"codes": codes})
    finally:
        wh.dispose()
    frame = build_cot_positioning(dis, leg)
    yield from _publish(context, warehouse, COT_POSITIONING, frame, _lineage_cot(), {
        "contracts": int(frame["contract_code"].nunique()) if len(frame) else 0,
        "latest_as_of": str(frame["as_of"].max()) if len(frame) else "none",
        "rows_recomputed_as_known_then": int(frame.attrs.get("recomputed", 0)),
    })


ZSCORE_WINDOW = 156
ZSCORE_MIN_WEEKS = 26
COT_GROUP = ("contract_code", "trader_group")


def build_cot_positioning(dis: pd.DataFrame, leg: pd.DataFrame) -> pd.DataFrame:
    """Net positions with a trailing z-score, point in time: a row is the current version of its week, and its
    week-on-week change and z-score read the weeks up to its own as_of as known at its valid_from (a revision
    loaded later changes the revised week's row, never the rows computed before it). Inputs are the
    <table>_versions rows: as_of, contract_code, long/short contracts, open_interest, valid_from, superseded_at."""
    parts = []
    for df, group in ((dis, "managed_money"), (leg, "non_commercial")):
        if len(df):
            parts.append(df.assign(trader_group=group))
    if not parts:
        return pd.DataFrame(columns=[c for c in COT_POSITIONING.column_names if c != "loaded_at"])
    versions = with_version_times(pd.concat(parts, ignore_index=True))
    versions["as_of"] = pd.to_datetime(versions["as_of"])
    for c in ("long_contracts", "short_contracts", "open_interest"):
        versions[c] = pd.to_numeric(versions[c]).astype("Int64")
    versions["net"] = (versions["long_contracts"] - versions["short_contracts"]).astype(float)
    f = current_versions(versions)
    f["available_at"] = f["valid_from"]  # when the platform had this row's numbers
    f["instrument"] = f["contract_code"].map(KEY_CONTRACTS)
    f["net_contracts"] = f["long_contracts"] - f["short_contracts"]
    f["net_pct_open_interest"] = (f["net_contracts"].astype(float) / f["open_interest"].astype(float) * 100).round(4)
    f = f.sort_values([*COT_GROUP, "as_of"], ignore_index=True)
    g = f.groupby(list(COT_GROUP), sort=False)["net_contracts"]
    f["net_change_wow"] = g.diff().astype("Int64")
    net = f["net_contracts"].astype(float)
    mean = net.groupby([f[c] for c in COT_GROUP]).transform(
        lambda s: s.rolling(ZSCORE_WINDOW, min_periods=ZSCORE_MIN_WEEKS).mean())
    std = net.groupby([f[c] for c in COT_GROUP]).transform(
        lambda s: s.rolling(ZSCORE_WINDOW, min_periods=ZSCORE_MIN_WEEKS).std())
    f["net_zscore_3y"] = ((net - mean) / std.replace(0, np.nan)).round(4)
    recomputed = _cot_as_known_then(f, versions)
    f = f.drop(columns=["net", "valid_from", "superseded_at"])
    f.attrs["recomputed"] = recomputed
    return f


def _cot_as_known_then(f: pd.DataFrame, versions: pd.DataFrame) -> int:
    """Recompute, in place, the change and z-score of the rows whose window holds a week with more than one
    version, each with the weeks as known at the row's valid_from. Returns how many rows were recomputed."""
    revised = revised_keys(versions, [*COT_GROUP, "as_of"])
    if revised.empty:
        return 0
    f["_pos"] = f.groupby(list(COT_GROUP), sort=False).cumcount()
    hit = f.merge(revised, on=[*COT_GROUP, "as_of"])[[*COT_GROUP, "_pos"]]
    first_hit = hit.groupby(list(COT_GROUP))["_pos"].min().rename("_first_revised")
    f2 = f.join(first_hit, on=list(COT_GROUP))
    rows = f2.index[f2["_first_revised"].notna() & (f2["_pos"] >= f2["_first_revised"])]
    # Requests: for each affected row, every week of its window (and the week before it), as known at its time.
    windows = []
    for idx in rows:
        row = f.loc[idx]
        lo = max(0, int(row["_pos"]) - ZSCORE_WINDOW + 1)
        span = f[(f["contract_code"] == row["contract_code"]) & (f["trader_group"] == row["trader_group"])
                 & (f["_pos"] >= lo) & (f["_pos"] <= row["_pos"])]
        windows.append(span[[*COT_GROUP, "as_of", "_pos"]].assign(row=idx, at=row["valid_from"]))
    requests = pd.concat(windows, ignore_index=True)
    requests["net"] = value_known_at(versions, [*COT_GROUP, "as_of"], "net", requests)
    for idx, window in requests.groupby("row", sort=False):
        nets = window.sort_values("_pos")["net"].astype(float)
        own = float(f.at[idx, "net_contracts"])
        if len(nets) >= 2:
            previous = nets.iloc[-2]
            f.at[idx, "net_change_wow"] = int(round(own - previous)) if pd.notna(previous) else pd.NA
        valid = nets.dropna()
        if len(valid) >= ZSCORE_MIN_WEEKS:
            sd = valid.std()
            f.at[idx, "net_zscore_3y"] = round((own - valid.mean()) / sd, 4) if sd else np.nan
    f.drop(columns="_pos", inplace=True)
    return len(rows)
