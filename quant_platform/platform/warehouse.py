"""The warehouse: a DuckDB file by default, PostgreSQL when QP_WAREHOUSE_URL says so; same tables,
same SQL, same calls. Writes replace one partition inside one transaction.

Never build SQL from values: values are bound parameters, identifiers come only from TableSpecs.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from quant_platform.errors import ConfigError, WarehouseError
from quant_platform.platform.tables import Column, TableSpec

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def vetted(identifier: str) -> str:
    """An identifier we generated ourselves, checked against a strict pattern before it enters SQL."""
    parts = identifier.split(".")
    if not parts or any(not _IDENT.match(p) for p in parts):
        raise WarehouseError(f"refusing unsafe SQL identifier {identifier!r}")
    return identifier


PACKAGED_SQL_DIR = Path(__file__).resolve().parents[1] / "sql"  # package data: a wheel carries it too


def sql_dir() -> Path:
    """The warehouse DDL applied by `warehouse init`: the packaged sql/ folder, or $QP_SQL_DIR."""
    import os

    d = Path(os.environ.get("QP_SQL_DIR") or PACKAGED_SQL_DIR)
    if not d.is_dir():
        raise ConfigError(f"SQL folder {d} not found (unset QP_SQL_DIR to use the packaged one)")
    return d


def sql_files(sql_dir: Path, backend: str) -> list[Path]:
    """Files applied by `warehouse init`: sql/*.sql for both backends, then sql/<backend>/*.sql."""
    files = sorted(sql_dir.glob("*.sql"))
    files += sorted((sql_dir / backend).glob("*.sql"))
    return files


class Warehouse:
    def __init__(self, url: str):
        self.url = url
        if url.startswith("duckdb:///"):
            self.backend = "duckdb"
            # duckdb:///abs/path and duckdb:////abs/path both name /abs/path
            self.path = Path("/" + url[len("duckdb:///") :].lstrip("/"))
            self._engine = None
            from sqlalchemy.engine.default import DefaultDialect

            self._dialect = DefaultDialect(paramstyle="qmark")  # DuckDB's own positional style
        elif url.startswith(("postgresql", "postgres:")):
            import sqlalchemy as sa

            self.backend = "postgres"
            sa_url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg2://", url)
            self._engine = sa.create_engine(sa_url, pool_pre_ping=True, pool_size=2, max_overflow=2)
            self._dialect = self._engine.dialect  # psycopg2: pyformat
        else:
            raise ConfigError(f"unsupported warehouse URL {url!r}")

    # ---------------------------------------------------------------- connections
    @contextmanager
    def _dbapi(self) -> Iterator[Any]:
        """A DB-API connection in a transaction: committed on success, rolled back on error."""
        if self.backend == "duckdb":
            import duckdb

            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = _connect_duckdb(duckdb, self.path)
            try:
                con.execute("BEGIN TRANSACTION")
                yield con
                con.execute("COMMIT")
            except Exception:
                try:
                    con.execute("ROLLBACK")
                except Exception:  # noqa: S110 - the original error matters, not the rollback's
                    pass
                raise
            finally:
                con.close()
        else:
            raw = self._engine.raw_connection()
            try:
                yield raw
                raw.commit()
            except Exception:
                raw.rollback()
                raise
            finally:
                raw.close()

    def transaction(self):
        """A DB-API connection in one transaction (DuckDB or psycopg2); pass it as `con=` to the write helpers
        to make several writes one commit."""
        return self._dbapi()

    @contextmanager
    def _on(self, con: Any = None) -> Iterator[Any]:
        """The caller's connection from `transaction()` when given (its commit is the caller's), else our own."""
        if con is not None:
            yield con
            return
        with self._dbapi() as own:
            yield own

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # ---------------------------------------------------------------- DDL
    def apply_sql_dir(self, sql_dir: Path) -> list[str]:
        """Apply sql/ idempotently (every statement is CREATE ... IF NOT EXISTS or equivalent)."""
        applied = []
        for f in sql_files(sql_dir, self.backend):
            script = f.read_text()
            try:
                with self._dbapi() as con:
                    if self.backend == "duckdb":
                        con.execute(script)
                    else:
                        with con.cursor() as cur:
                            cur.execute(script)
            except Exception as exc:
                raise WarehouseError(f"applying {f.name} failed: {_one_line(exc)}") from exc
            applied.append(f.name)
        return applied

    def add_missing_columns(self, specs: Sequence[TableSpec]) -> list[str]:
        """Schema evolution for tables created by an older release: add each declared column a table lacks.

        `CREATE TABLE IF NOT EXISTS` never changes an existing table, so `warehouse init` calls this before the
        DDL. A new column is backfilled from its `backfill_from` column, then made NOT NULL if declared so
        (a separate transaction: DuckDB cannot add the constraint over updates it has not committed; a rerun
        finishes a column left nullable). Without a backfill a NOT NULL column is added nullable, since old
        rows cannot have a value. Returns "schema.table.column" for each column added.
        """
        added: list[str] = []
        for spec in specs:
            schema, name = vetted(spec.qualified_name).split(".")
            present = self.query_df(
                "SELECT column_name, is_nullable FROM information_schema.columns "
                "WHERE table_schema = :s AND table_name = :t", {"s": schema, "t": name})
            if present.empty:
                continue  # no such table yet: the DDL creates it whole
            nullable = dict(zip(present["column_name"].str.lower(), present["is_nullable"] == "YES", strict=True))
            table = vetted(spec.qualified_name)
            for col in spec.columns:
                column = vetted(col.name)
                try:
                    if col.name not in nullable:
                        with self._dbapi() as con:
                            self.run(con, f"ALTER TABLE {table} ADD COLUMN {column} {col.ddl_type}")
                            if col.backfill_from:
                                self.run(con, f"UPDATE {table} SET {column} = {vetted(col.backfill_from)}")  # noqa: S608
                        added.append(f"{spec.qualified_name}.{col.name}")
                    elif not (col.backfill_from and not col.nullable and nullable[col.name]):
                        continue
                    if col.backfill_from and not col.nullable:
                        with self._dbapi() as con:
                            self.run(con, f"UPDATE {table} SET {column} = {vetted(col.backfill_from)} "  # noqa: S608
                                     f"WHERE {column} IS NULL")
                        with self._dbapi() as con:
                            self.run(con, f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL")
                except Exception as exc:
                    raise WarehouseError(f"adding column {col.name} to {table} failed: {_one_line(exc)}") from exc
        return added

    # ---------------------------------------------------------------- statements
    def bind(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[str, Any]:
        """SQL with named `:name` placeholders, compiled by SQLAlchemy into this driver's own style.

        DuckDB gets `?` and a list, psycopg2 `%(name)s` and a dict (literal `%` doubled); a list or tuple value
        expands into one placeholder per element (`x IN :ids`). SQL text is never built from values.
        """
        import sqlalchemy as sa

        if params is not None and not isinstance(params, Mapping):
            raise WarehouseError(f"bound parameters must be a mapping of :name to value, got {type(params).__name__}")
        values = dict(params or {})
        binds = [sa.bindparam(k, v, expanding=isinstance(v, list | tuple)) for k, v in values.items()]
        compiled = sa.text(sql).bindparams(*binds).compile(dialect=self._dialect,
                                                             compile_kwargs={"render_postcompile": True})
        if self.backend == "duckdb":
            return str(compiled), [compiled.params[name] for name in compiled.positiontup or ()]
        return str(compiled), dict(compiled.params)

    def run(self, con: Any, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple] | None:
        """Execute one statement on a connection from `transaction()`; its rows when it returns any."""
        text, args = self.bind(sql, params)
        if self.backend == "duckdb":
            con.execute(text, args)
            return con.fetchall() if con.description else None
        with con.cursor() as cur:
            cur.execute(text, args)
            return cur.fetchall() if cur.description else None

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """One statement in its own transaction (DDL or DML without a result)."""
        try:
            with self._dbapi() as con:
                self.run(con, sql, params)
        except WarehouseError:
            raise
        except Exception as exc:
            raise WarehouseError(_one_line(exc)) from exc

    # ---------------------------------------------------------------- reads
    def query_df(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a query with named bound parameters (`:name` placeholders on both backends)."""
        text, args = self.bind(sql, params)
        try:
            with self._dbapi() as con:
                if self.backend == "duckdb":
                    return con.execute(text, args).df()
                with con.cursor() as cur:
                    cur.execute(text, args)
                    cols = [d[0] for d in cur.description]
                    return pd.DataFrame(cur.fetchall(), columns=cols)
        except WarehouseError:
            raise
        except Exception as exc:
            raise WarehouseError(_one_line(exc)) from exc

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        df = self.query_df(sql, params)
        return None if df.empty else df.iat[0, 0]

    def table_exists(self, qualified: str) -> bool:
        schema, name = vetted(qualified).split(".")
        n = self.scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = :schema AND table_name = :name",
            {"schema": schema, "name": name},
        )
        return bool(n)

    def read_table(self, spec: TableSpec, where_partition: Any = None) -> pd.DataFrame:
        cols = ", ".join(vetted(c) for c in spec.column_names)
        sql = f"SELECT {cols} FROM {vetted(spec.qualified_name)}"  # noqa: S608 - vetted identifiers
        params: dict[str, Any] = {}
        if where_partition is not None and spec.partition_column:
            sql += f" WHERE {vetted(spec.partition_column)} = :partition"
            params["partition"] = where_partition
        sql += " ORDER BY " + ", ".join(vetted(c) for c in spec.primary_key)
        return self.query_df(sql, params)

    # ---------------------------------------------------------------- writes
    def replace_rows(self, spec: TableSpec, df: pd.DataFrame, partition_values: Sequence[Any] | None,
                     con: Any = None) -> int:
        """Replace the rows of the given partition values (all rows when None) by `df`, atomically.

        Readers see the old rows or the new rows, never a mix, and a failure leaves the old rows. With `con`
        (from `transaction()`) it is part of the caller's transaction.
        """
        missing = [c for c in spec.column_names if c not in df.columns]
        if missing:
            raise WarehouseError(f"{spec.qualified_name}: frame lacks columns {missing}")
        frame, table, cols = _prepared(spec, df)
        try:
            with self._on(con) as c:
                self._delete_partitions(c, spec, table, partition_values)
                self.insert_frame(c, table, spec.columns, frame)
        except WarehouseError:
            raise
        except Exception as exc:
            raise WarehouseError(f"writing {table} failed: {_one_line(exc)}") from exc
        return len(frame)

    def append_rows(self, spec: TableSpec, df: pd.DataFrame, con: Any = None) -> int:
        """Insert rows without deleting anything (append-only tables such as governance.raw_files); with `con`
        (from `transaction()`) inside the caller's transaction."""
        frame, table, cols = _prepared(spec, df)
        try:
            with self._on(con) as c:
                self.insert_frame(c, table, spec.columns, frame)
        except Exception as exc:
            raise WarehouseError(f"appending to {table} failed: {_one_line(exc)}") from exc
        return len(frame)

    def upsert_rows(self, spec: TableSpec, df: pd.DataFrame) -> int:
        """Replace the rows whose primary key appears in `df` and insert the new ones, in one transaction."""
        frame, table, cols = _prepared(spec, df)
        keys = [vetted(k) for k in spec.primary_key]
        if not len(frame):
            return 0
        try:
            with self._dbapi() as con:
                if self.backend == "duckdb":
                    con.register("qp_keys", frame[list(spec.primary_key)])
                    match = " AND ".join(f"{table}.{k} = qp_keys.{k}" for k in keys)
                    con.execute(f"DELETE FROM {table} USING qp_keys WHERE {match}")  # noqa: S608 - vetted
                    con.unregister("qp_keys")
                else:
                    with con.cursor() as cur:
                        cur.execute(f"CREATE TEMP TABLE qp_keys ON COMMIT DROP AS SELECT {', '.join(keys)} "  # noqa: S608
                                    f"FROM {table} WITH NO DATA")
                    self.insert_frame(con, "qp_keys", [spec.column(k) for k in spec.primary_key],
                                      frame[list(spec.primary_key)])
                    match = " AND ".join(f"{table}.{k} = qp_keys.{k}" for k in keys)
                    with con.cursor() as cur:
                        cur.execute(f"DELETE FROM {table} USING qp_keys WHERE {match}")  # noqa: S608 - vetted
                self.insert_frame(con, table, spec.columns, frame)
        except Exception as exc:
            raise WarehouseError(f"upserting into {table} failed: {_one_line(exc)}") from exc
        return len(frame)

    def _delete_partitions(self, con, spec: TableSpec, table: str, partition_values: Sequence[Any] | None) -> None:
        """DELETE the rows of the given partition values (every row when None) inside the caller's transaction."""
        if partition_values is None:
            self.run(con, f"DELETE FROM {table}")  # noqa: S608 - vetted identifier
            return
        if not spec.partition_column:
            raise WarehouseError(f"{spec.qualified_name} is not partitioned")
        values = list(partition_values)
        if values:
            self.run(con, f"DELETE FROM {table} WHERE {vetted(spec.partition_column)} IN :values",  # noqa: S608
                     {"values": values})

    def insert_frame(self, con: Any, table: str, columns: Sequence[Column], frame: pd.DataFrame) -> None:
        """Bulk-insert `frame` (the declared `columns`) into `table` inside the caller's transaction: DuckDB
        scans the DataFrame itself, PostgreSQL gets one COPY. Values never enter SQL text."""
        if not len(frame):
            return
        cols = ", ".join(vetted(c.name) for c in columns)
        if self.backend == "duckdb":
            casts = ", ".join(f"CAST({vetted(c.name)} AS {c.ddl_type})" for c in columns)
            con.register("qp_incoming", frame[[c.name for c in columns]])
            try:
                con.execute(f"INSERT INTO {vetted(table)} ({cols}) SELECT {casts} FROM qp_incoming")  # noqa: S608
            finally:
                con.unregister("qp_incoming")
            return
        with con.cursor() as cur:
            cur.copy_expert(f"COPY {vetted(table)} ({cols}) FROM STDIN WITH (FORMAT csv)", copy_csv(frame, columns))




def copy_csv(frame: pd.DataFrame, columns: Sequence[Column]) -> io.BytesIO:
    """The frame as CSV for PostgreSQL's COPY, written by Arrow: every non-null value quoted and NULL left
    empty and unquoted, which is how COPY's CSV format tells NULL from an empty string (or from a text backslash-N)."""
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    types = {"text": pa.string(), "int": pa.int64(), "bigint": pa.int64(), "double": pa.float64(),
             "date": pa.date32(), "timestamptz": pa.timestamp("us", tz="UTC"), "bool": pa.bool_()}
    arrays = []
    for col in columns:
        s = frame[col.name]
        if col.type == "timestamptz":
            s = pd.to_datetime(s, utc=True)
        elif col.type == "date":
            s = pd.to_datetime(s)
        arrays.append(pa.Array.from_pandas(s).cast(types[col.type]))
    buf = io.BytesIO()
    pa_csv.write_csv(pa.Table.from_arrays(arrays, names=[c.name for c in columns]), buf,
                     pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"))
    buf.seek(0)
    return buf


def _connect_duckdb(duckdb, path: Path):
    """DuckDB lets one process write a file at a time: wait (with jittered backoff) for the lock.

    Runs, sensors and the CLI are separate processes; the `warehouse` concurrency pool serialises runs,
    this wait covers the short overlaps that remain.
    """
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

    def _locked(exc: BaseException) -> bool:
        return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()

    for attempt in Retrying(stop=stop_after_delay(120), wait=wait_random_exponential(multiplier=0.05, max=2),
                            retry=retry_if_exception(_locked), reraise=True):
        with attempt:
            return duckdb.connect(str(path))
    raise WarehouseError(f"could not open {path}")  # unreachable: Retrying re-raises


def _prepared(spec: TableSpec, df: pd.DataFrame) -> tuple[pd.DataFrame, str, list[str]]:
    """The frame in write form, the vetted table name and the vetted column names."""
    return _for_write(spec, df[spec.column_names]), vetted(spec.qualified_name), [vetted(c) for c in spec.column_names]


def _for_write(spec: TableSpec, df: pd.DataFrame) -> pd.DataFrame:
    """Normalise a frame to plain Python values per logical type (None for missing)."""
    out = {}
    for col in spec.columns:
        s = df[col.name]
        if col.type == "date":
            s = pd.to_datetime(s).dt.date
        elif col.type == "timestamptz":
            s = pd.to_datetime(s, utc=True)
        elif col.type in ("int", "bigint"):
            s = pd.array(s, dtype="Int64")
        elif col.type == "double":
            s = pd.to_numeric(s, errors="raise").astype("float64")
        elif col.type == "bool":
            s = s.astype("boolean")
        else:
            s = s.astype("object")
        out[col.name] = pd.Series(s, index=df.index).astype("object").where(pd.notna(s), None)
    return pd.DataFrame(out, columns=spec.column_names)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
