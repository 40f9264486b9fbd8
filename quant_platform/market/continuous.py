"""The continuous front-month futures series: per futures root of the instrument master and UTC day, the one-minute
bars of the contract the roll rule names for that day (futures.front_contract), as FUT:<root>:C1.

Never splice two contracts into one minute or back-adjust prices: each row says which contract it is, unadjusted.
"""

from datetime import date

import dagster as dg
import pandas as pd

from quant_platform.market import futures as fut
from quant_platform.market.tables import BARS_1M
from quant_platform.platform.tables import Column, TableSpec

# The same values as market/assets.py (asserted by the test): this module is imported by it, so it cannot import it.
PARTITIONS = dg.DailyPartitionsDefinition(start_date="2020-01-01", timezone="UTC")
GROUP = "market"
OWNER = "team:market-data"
LAKE_DIR = "bars/continuous_1m"

ROLL_RULE = (f"Calendar roll: on UTC day D the series of a root uses the nearest listed contract whose roll date is "
             f"after D; a contract's roll date is {fut.ROLL_BDAYS} CME trade dates before its last trade date (the "
             f"exchange's rule on the CME_TradeDate calendar). Known in advance, the same on every re-run of a day, "
             f"and clear of the thin, delivery-driven last week of physically delivered contracts. Prices are not "
             f"back-adjusted.")

_PRICE = "quote currency of the contract"
CONTINUOUS_1M = TableSpec(
    schema="market",
    name="futures_continuous_1m",
    description=("Continuous front-month futures series (FUT:<root>:C1): for each futures root of the instrument "
                 "master and UTC day, the one-minute bars of market.bars_1m of the contract the roll rule names for "
                 "that day, unadjusted, with the contract, its last trade date and its roll date on every row. "
                 + ROLL_RULE + " Lake only: bars/continuous_1m/date=D/bars.parquet."),
    columns=(
        Column("trade_date", "date", "UTC day (the partition).", nullable=False),
        Column("series_id", "text", "The continuous series: FUT:<root>:C1.", nullable=False),
        Column("root", "text", "Futures root (CL, BZ, NG, HO, RB, ...).", nullable=False),
        Column("contract_id", "text", "The contract the series uses on this day, e.g. FUT:CL:2027-01.", nullable=False),
        Column("contract_symbol", "text", "Its exchange symbol, e.g. CLF7.", nullable=False),
        Column("last_trade_date", "date", "The contract's last trade date (exchange rule).", nullable=False),
        Column("roll_date", "date", "First day the series no longer uses the contract.", nullable=False),
        Column("minute", "timestamptz", "Start of the minute (UTC).", nullable=False),
        Column("open", "double", "First trade price in the minute.", unit=_PRICE, nullable=False, min_value=0),
        Column("high", "double", "Highest trade price.", unit=_PRICE, nullable=False, min_value=0),
        Column("low", "double", "Lowest trade price.", unit=_PRICE, nullable=False, min_value=0),
        Column("close", "double", "Last trade price in the minute.", unit=_PRICE, nullable=False, min_value=0),
        Column("volume", "double", "Sum of trade sizes.", unit="contracts", min_value=0),
        Column("vwap", "double", "Volume-weighted average price.", unit=_PRICE),
        Column("trades", "bigint", "Number of trades.", nullable=False, min_value=1),
    ),
    primary_key=("series_id", "minute"),
    partition_column="trade_date",
)

_BAR_COLUMNS = ["minute", "open", "high", "low", "close", "volume", "vwap", "trades"]


def continuous_bars(bars: pd.DataFrame, day: date, roots: list[str], roll_bdays: int = fut.ROLL_BDAYS) -> pd.DataFrame:
    """The rows of the continuous series for `day` out of that day's bars_1m frame (columns of BARS_1M)."""
    frames = []
    for root in roots:
        c = fut.front_contract(root, day, roll_bdays)
        rows = bars.loc[bars["instrument_id"] == c.instrument_id, _BAR_COLUMNS].copy()
        rows.insert(0, "trade_date", day)
        rows.insert(1, "series_id", fut.continuous_id(root))
        rows.insert(2, "root", root)
        rows.insert(3, "contract_id", c.instrument_id)
        rows.insert(4, "contract_symbol", c.exchange_symbol)
        rows.insert(5, "last_trade_date", c.last_trade_date)
        rows.insert(6, "roll_date", fut.roll_date(c, roll_bdays))
        frames.append(rows)
    columns = [c.name for c in CONTINUOUS_1M.columns]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return out[columns].sort_values(["series_id", "minute"], ignore_index=True)


def _lineage() -> dg.TableColumnLineage:
    bars = BARS_1M.asset_key
    deps = {"trade_date": ["trade_date"], "series_id": ["instrument_id"], "root": ["instrument_id"],
            "contract_id": ["instrument_id"], "contract_symbol": ["instrument_id"],
            "last_trade_date": ["instrument_id"], "roll_date": ["instrument_id"],
            **{c: [c] for c in _BAR_COLUMNS}}
    return dg.TableColumnLineage(deps_by_column={
        col: [dg.TableColumnDep(asset_key=bars, column_name=src) for src in srcs] for col, srcs in deps.items()})


@dg.asset(
    key=CONTINUOUS_1M.asset_key,
    description=CONTINUOUS_1M.description,
    partitions_def=PARTITIONS,
    deps=[BARS_1M.asset_key],
    group_name=GROUP,
    owners=[OWNER],
    kinds={"parquet", "duckdb"},
    tags={"layer": "market"},
    metadata={**CONTINUOUS_1M.catalog_metadata(), "dagster/column_lineage": _lineage(), "roll_rule": ROLL_RULE},
    code_version=f"futures_continuous_1m.v1.roll{fut.ROLL_BDAYS}",
)
def futures_continuous_1m(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    import pyarrow as pa

    from quant_platform.market.assets import lake_root
    from quant_platform.market.compaction import BARS
    from quant_platform.market.instruments import InstrumentMaster
    from quant_platform.market.lake_landing import write_parquet_atomic

    day = date.fromisoformat(context.partition_key)
    src = lake_root() / BARS / f"date={day}" / "bars.parquet"
    if not src.exists():
        raise dg.Failure(f"market/bars_1m {day} has no lake file ({src}): materialize it first")
    roots = [fr.root for fr in InstrumentMaster.load().futures_roots()]
    out = continuous_bars(pd.read_parquet(src), day, roots)
    dest = lake_root() / LAKE_DIR / f"date={day}" / "bars.parquet"
    write_parquet_atomic(pa.Table.from_pandas(out, preserve_index=False), dest)
    used = {root: fut.front_contract(root, day) for root in roots}
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(out), "lake_path": str(dest),
        "contracts": ", ".join(f"{fut.continuous_id(r)}={c.exchange_symbol} (roll {fut.roll_date(c)})"
                               for r, c in used.items()),
        "series_with_bars": int(out["series_id"].nunique()) if len(out) else 0})
