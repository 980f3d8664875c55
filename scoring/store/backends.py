"""The two engines a store runs on: an embedded DuckDB file, and a PostgreSQL server.

A backend knows how to connect, run a statement, read a result into Arrow, and bulk-load
an Arrow table; it adds no meaning of its own (the schema and every query are in
:mod:`scoring.store.schema` and :mod:`scoring.store.store`, written once in the SQL both
engines share: ``?`` parameters, ``substr``, 1-based ``array[i]``).

* **DuckDB** (the default, a file beside the output): bulk loads straight from Arrow, stores
  columns compressed, and is read by BI tools through its ODBC/JDBC drivers or by exporting
  the views.  One process writes at a time: a process that finds the file locked retries for
  ``lock_timeout`` seconds, then gives up with a :class:`~scoring.errors.StoreError`.
* **PostgreSQL** (``postgresql://...``, psycopg 3): rows are loaded with ``COPY ... FROM STDIN``
  in CSV made by Arrow's C++ writer (no row-by-row inserts).  Concurrent runs each append in
  their own transaction and both land whole.
"""
from __future__ import annotations

import io
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa

from scoring.errors import StoreError

#: how long a run waits for a DuckDB store another process holds (seconds)
DEFAULT_LOCK_TIMEOUT = 120.0


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (error messages never show it)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:300] if text else "") or exc.__class__.__name__


class Backend:
    """What every engine provides (see the module docstring)."""

    kind = ""
    #: SQL type names of this engine
    types: dict[str, str] = {}

    def __init__(self, url: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT):
        self.url = url
        self.lock_timeout = lock_timeout

    def exists(self) -> bool:
        """Whether there is something at the URL to open (a server always exists once reached)."""
        return True

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[Any]:
        raise NotImplementedError

    def execute(self, con: Any, sql: str, params: Sequence = ()) -> None:
        raise NotImplementedError

    def rows(self, con: Any, sql: str, params: Sequence = ()) -> list[tuple]:
        raise NotImplementedError

    def arrow(self, con: Any, sql: str, params: Sequence = ()) -> pa.Table:
        raise NotImplementedError

    def load(self, con: Any, table: str, data: pa.Table | Path, columns: Sequence[str]) -> None:
        """Append ``data`` (an Arrow table, or a Parquet file) to ``table`` (its ``columns``, in order)."""
        raise NotImplementedError

    def begin(self, con: Any) -> None:
        self.execute(con, "BEGIN")

    def commit(self, con: Any) -> None:
        self.execute(con, "COMMIT")

    def rollback(self, con: Any) -> None:
        try:
            self.execute(con, "ROLLBACK")
        except Exception:  # the connection is gone: the server or the file drops the transaction
            pass

    def describe(self) -> str:
        return redact(self.url)


# --------------------------------------------------------------------------- DuckDB


class DuckDBBackend(Backend):
    kind = "duckdb"
    types = {"double": "DOUBLE", "doubles": "DOUBLE[]", "floats": "FLOAT[]", "text": "VARCHAR", "bigint": "BIGINT", "date": "DATE",
             "int": "INTEGER"}

    def __init__(self, url: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT):
        super().__init__(url, lock_timeout)
        self.path = Path(url[len("duckdb://"):] if url.startswith("duckdb://") else url)

    def exists(self) -> bool:
        return self.path.exists()

    def describe(self) -> str:
        return str(self.path)

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[Any]:
        import duckdb

        if self.path.is_dir():
            raise StoreError(f"store {self.path}: is a folder, not a store file")
        if write and not self.path.parent.is_dir():
            raise StoreError(f"store {self.path}: its folder does not exist")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=not write)
                break
            except duckdb.IOException as exc:
                msg = _first_line(exc)
                if "lock" not in msg.lower():
                    raise StoreError(f"store {self.path}: cannot be opened: {msg}") from None
                if time.monotonic() >= deadline:
                    raise StoreError(f"store {self.path}: still in use by another process after "
                                     f"{self.lock_timeout:g} s ({msg}); try again when it has finished") from None
                time.sleep(0.2)
            except duckdb.Error as exc:
                raise StoreError(f"store {self.path}: not a store this version can open: {_first_line(exc)}") from None
        try:
            yield con
        finally:
            con.close()

    def create(self, statements: Sequence[str]) -> None:
        """Create the store file whole: built under a temporary name, then linked into place, so another
        process never opens a half-made file (when two runs create it at once, the first link wins)."""
        import os

        import duckdb

        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            con = duckdb.connect(str(tmp))
            try:
                for stmt in statements:
                    con.execute(stmt)
            finally:
                con.close()
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another run created it first: use that one
        except OSError as exc:
            raise StoreError(f"store {self.path}: cannot be created: {exc.strerror or exc}") from None
        finally:
            tmp.unlink(missing_ok=True)
            tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)

    def execute(self, con, sql, params=()):
        con.execute(sql, list(params))

    def rows(self, con, sql, params=()):
        return con.execute(sql, list(params)).fetchall()

    def arrow(self, con, sql, params=()):
        return con.sql(sql, params=list(params) or None).to_arrow_table()

    def load(self, con, table, data, columns):
        cols = ", ".join(columns)
        if isinstance(data, Path):
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM read_parquet(?)", [str(data)])
        else:
            con.register("_incoming", data)
            try:
                con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _incoming")
            finally:
                con.unregister("_incoming")


# --------------------------------------------------------------------------- PostgreSQL


class PostgresBackend(Backend):
    kind = "postgresql"
    types = {"double": "DOUBLE PRECISION", "doubles": "DOUBLE PRECISION[]", "floats": "REAL[]", "text": "TEXT", "bigint": "BIGINT",
             "date": "DATE", "int": "INTEGER"}

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[Any]:
        try:
            import psycopg
        except ImportError:
            raise StoreError(f"--store {redact(self.url)}: PostgreSQL needs psycopg 3 "
                             "(pip install 'psycopg[binary]')") from None
        try:
            con = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"store {redact(self.url)}: cannot connect: {_first_line(exc)}") from None
        try:
            yield con
        finally:
            con.close()

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, con, sql, params=()):
        con.execute(self._sql(sql), list(params) or None)

    def rows(self, con, sql, params=()):
        return con.execute(self._sql(sql), list(params) or None).fetchall()

    def arrow(self, con, sql, params=()):
        """The result through ``COPY (query) TO STDOUT`` as CSV, parsed by Arrow (array columns come back
        as PostgreSQL's ``{...}`` text and are parsed into lists of doubles)."""
        import pyarrow.csv as pcsv

        import psycopg

        query = psycopg.ClientCursor(con).mogrify(self._sql(sql), list(params)) if params else sql
        with con.cursor() as cur:
            buf = io.BytesIO()
            with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER true)") as copy:
                for block in copy:
                    buf.write(block)
            desc = cur.execute(f"SELECT * FROM ({query}) AS q LIMIT 0").description
        names = [d.name for d in desc]
        if not buf.getvalue():
            return pa.table({n: pa.array([], pa.string()) for n in names})
        arrays = {d.name: (pa.float64() if d.type_code == 1022 else pa.float32())
                  for d in desc if d.type_code in (1022, 1021)}  # float8[], float4[]
        texts = {d.name for d in desc if d.type_code in (25, 1043, 1082)} | set(arrays)  # text, varchar, date
        t = pcsv.read_csv(io.BytesIO(buf.getvalue()), convert_options=pcsv.ConvertOptions(
            column_types={n: pa.string() for n in texts}, strings_can_be_null=True,
            quoted_strings_can_be_null=False))
        for name, typ in arrays.items():
            i = t.column_names.index(name)
            t = t.set_column(i, name, _parse_pg_arrays(t.column(name), typ))
        return t

    def load(self, con, table, data, columns):
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        batches = pq.ParquetFile(data).iter_batches(batch_size=50_000, columns=list(columns)) \
            if isinstance(data, Path) else data.select(list(columns)).to_batches(50_000)
        cols = ", ".join(columns)
        with con.cursor() as cur:
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                for batch in batches:
                    out = io.BytesIO()
                    pcsv.write_csv(_pg_text_arrays(pa.Table.from_batches([batch])), out,
                                   pcsv.WriteOptions(include_header=False))
                    copy.write(out.getvalue())


def _pg_text_arrays(t: pa.Table) -> pa.Table:
    """List columns as PostgreSQL array literals (``{0.5,NaN}``), made column-wise by Arrow."""
    import pyarrow.compute as pc

    for i, field in enumerate(t.schema):
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            col = t.column(i).combine_chunks()
            values = pc.cast(col.values, pa.string())
            values = pc.replace_substring(values, "nan", "NaN")
            lists = pa.ListArray.from_arrays(col.offsets, values, mask=col.is_null())
            inner = pc.binary_join(lists, ",")
            text = pc.binary_join_element_wise("{", inner, "}", "")
            t = t.set_column(i, field.name, text)
    return t


def _parse_pg_arrays(col: pa.ChunkedArray, typ: pa.DataType = pa.float64()) -> pa.Array:
    """PostgreSQL's ``{1,2.5,NaN}`` text back into lists of doubles (null stays null, ``{}`` is empty)."""
    import pyarrow.compute as pc

    raw = col.combine_chunks()
    text = pc.utf8_trim(pc.fill_null(raw, "{}"), "{}")
    blank = pc.equal(text, "")
    empty = pc.and_(blank, pc.is_valid(raw))
    parts = pc.split_pattern(pc.if_else(blank, "nan", text), ",")
    flat = pc.cast(parts.flatten(), typ)
    lists = pa.ListArray.from_arrays(parts.offsets, flat, mask=raw.is_null())
    if pc.any(empty).as_py():
        rows = lists.to_pylist()
        lists = pa.array([[] if e else r for r, e in zip(rows, empty.to_pylist())], pa.list_(typ))
    return lists


def backend_for(url: str | Path, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Backend:
    """The backend of a store URL: ``postgresql://...`` (or ``postgres://``), else a DuckDB file path
    (``duckdb:///path`` or a plain path)."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(text, lock_timeout)
    if "://" in text and not text.startswith("duckdb://"):
        raise StoreError(f"--store {redact(text)}: not a store URL: use postgresql://user@host/db or a "
                         "file path (a DuckDB store, e.g. history.duckdb)")
    return DuckDBBackend(text, lock_timeout)
