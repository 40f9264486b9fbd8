"""Tick history in the warehouse: on DuckDB a view over the published daily Parquet files (years of history
without copying them), on PostgreSQL a table partitioned by trade_date, one partition per day, replaced in
one transaction and bulk loaded with COPY.

Never load a day that was not published (its blocking checks passed): the asset graph guarantees it.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from quant_platform.market.compaction import DAILY, TICKS_FILE
from quant_platform.market.contracts import TICK_SCHEMA
from quant_platform.market.lake_landing import sql_path
from quant_platform.market.tables import TICKS_HISTORY
from quant_platform.platform.warehouse import Warehouse

COPY_CHUNK_ROWS = 500_000


def duckdb_history_view(wh: Warehouse, lake_root: Path) -> str:
    """(Re)create market.ticks_history over every published day; new days appear without a reload."""
    glob = Path(lake_root).resolve() / DAILY / "date=*" / TICKS_FILE
    cols = ", ".join(c.name for c in TICKS_HISTORY.columns if c.name != "trade_date")
    sql = (f"CREATE OR REPLACE VIEW market.ticks_history AS SELECT CAST(date AS DATE) AS trade_date, {cols} "  # noqa: S608
           f"FROM read_parquet('{sql_path(glob)}', hive_partitioning = true, union_by_name = true)")
    with wh.transaction() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS market")
        con.execute(sql)
    return "view over " + str(glob)


def partition_name(day: str) -> str:
    return "ticks_history_" + date.fromisoformat(day).strftime("%Y%m%d")


def postgres_load_day(wh: Warehouse, day: str, daily_path: Path) -> int:
    """Replace day D's partition of market.ticks_history with the published daily file, in one transaction:
    create the partition if needed, TRUNCATE it, COPY the rows in chunks (CSV from Arrow, no pandas)."""
    d = date.fromisoformat(day)
    part = partition_name(day)  # built from a parsed date: a vetted identifier
    cols = [c.name for c in TICKS_HISTORY.columns]
    pf = pq.ParquetFile(daily_path)
    rows = 0
    with wh.transaction() as con, con.cursor() as cur:
        # The loader may not create tables: the owner's function makes the day's partition (090_roles.sql).
        cur.execute("SELECT market.ticks_history_partition(%s)", (d,))
        if cur.fetchone()[0] != f"market.{part}":
            raise RuntimeError(f"market.ticks_history_partition({d}) did not name market.{part}")
        cur.execute(f"TRUNCATE market.{part}")
        for batch in pf.iter_batches(batch_size=COPY_CHUNK_ROWS):
            table = pa.Table.from_batches([batch])
            for col in TICKS_HISTORY.columns:  # days compacted before a column existed carry it as NULL
                if col.name != "trade_date" and col.name not in table.column_names:
                    table = table.append_column(col.name, pa.nulls(table.num_rows, TICK_SCHEMA.field(col.name).type))
            table = table.add_column(0, "trade_date", pa.array([d] * table.num_rows, pa.date32()))
            for name in ("ts", "received_at"):  # microsecond text PostgreSQL parses; ns stay in the lake
                table = table.set_column(table.schema.get_field_index(name), name,
                                         pc.cast(table[name], pa.timestamp("us", tz="UTC"), safe=False))
            buf = io.BytesIO()
            pacsv.write_csv(table.select(cols), buf, pacsv.WriteOptions(include_header=False))
            buf.seek(0)
            cur.copy_expert(f"COPY market.{part} ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv)", buf)
            rows += table.num_rows
    return rows


def load_history(wh: Warehouse, lake_root: Path, day: str, daily_path: Path, published_rows: int) -> dict:
    if wh.backend == "duckdb":
        where = duckdb_history_view(wh, lake_root)
        rows = int(wh.scalar("SELECT count(*) FROM market.ticks_history WHERE trade_date = :day", {"day": day}))
        return {"storage": where, "rows": rows}
    rows = postgres_load_day(wh, day, daily_path)
    if rows != published_rows:
        raise RuntimeError(f"loaded {rows} rows of {day} but the published file has {published_rows}")
    return {"storage": f"market.{partition_name(day)} (partition of market.ticks_history)", "rows": rows}
