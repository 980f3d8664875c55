"""Which files an input is, how its tables are read, and how it is cut into partitions.

Input forms
-----------
* a ``.jsonl`` / ``.ndjson`` file, optionally ``.gz``: one nested record a line;
* a folder: the table form, ``opportunities.csv|.parquet`` plus optional
  ``contacts`` / ``competitors`` / ``partners`` tables of the same format;
* a single ``.csv`` / ``.parquet`` file: an opportunities table without child
  tables (child tables beside it are NOT read; pass the folder).

CSV is read with every column as text (:mod:`scoring.contract.csvtext`).

Partitioning
------------
* **Table form**: when the opportunities table holds more than ``chunk_size``
  rows (Parquet: from its metadata; CSV: counted, or estimated from the file
  size and its first MiB), it is cut into ``B = ceil(rows / chunk_size)``
  partitions, Arrow IPC files in ``workdir``, such that every snapshot of an
  id and all its child rows share one, so duplicate ``(id, as_of)`` checks,
  child nesting and orphans are local to a partition.  Rows without a key are
  spread by row number (they never match anything).

  - When the tables fit in memory (estimated at most ``memory`` bytes,
    default :data:`MEMORY_BYTES`), each table is read whole, one at a time
    (Parquet text columns dictionary-encoded), and cut: partition ``k`` holds
    the ids whose first occurrence is in the k-th ``1/B`` of the distinct ids
    (``pyarrow.compute.dictionary_encode``; so the output keeps the input
    order of distinct ids), child rows follow their ``opportunity_id``
    (``pyarrow.compute.index_in``).  No table stays in memory.
  - Otherwise ONE streaming pass over every table appends each row to bucket
    ``hash(id) mod B`` (``pandas.util.hash_array`` of the id text; child rows
    hash their ``opportunity_id``).

  Small inputs are one partition read straight from the source files.
* **JSON Lines**: consecutive line ranges (byte ranges aligned to line starts
  of a plain file; a ``.gz`` file is cut into plain part files in ``workdir``
  by one sequential pass).
"""
from __future__ import annotations

import gzip
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.contract.columns import cell_values, is_str_type, np_bool, plain
from scoring.contract.csvtext import csv_batches, csv_names
from scoring.contract.schema import CHILD_KEY
from scoring.contract.tables import Table
from scoring.contract.entities import compiled
from scoring.contract.values import CANNOT_READ, CANNOT_READ_TABLE, ID, OPPORTUNITY, Schema
from scoring.errors import ScoringError

__all__ = ["Source", "PartitionSpec", "resolve", "table_partitions", "jsonl_partitions", "read_partition_tables",
           "arrow_table", "MEMORY_BYTES"]

SRC = "__ingest_src_row__"  # source row (0-based) carried through the bucket files
TABLE_SUFFIXES = (".csv", ".parquet")
#: a table-form input whose tables are estimated to take at most this many bytes in memory is cut
#: into partitions in memory, one table at a time; a larger one is hash-bucketed in one streaming pass
MEMORY_BYTES = 1 << 30
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_BATCH_ROWS = 131_072


@dataclass(frozen=True)
class Source:
    """A resolved input: ``kind`` ``"jsonl"`` or ``"tables"``; ``fmt`` ``jsonl``/``csv``/``parquet``;
    ``tables``: (entity, path, label) of each table of the table form, opportunities first."""

    path: Path
    kind: str
    fmt: str
    tables: tuple[tuple[str, Path, str], ...] = ()


@dataclass(frozen=True)
class PartitionSpec:
    """Everything a worker process needs to load one partition (picklable).

    ``kind`` is ``"tables"`` or ``"jsonl"``.  Table form: ``tables`` is a tuple
    of ``(entity, path or None, label, arrow schema)``; ``text`` is True for
    CSV; ``fmt`` is ``"csv"``, ``"parquet"`` (source files) or ``"ipc"``
    (bucket files).  JSON Lines: ``path`` with the byte range ``[start, end)``
    and the number of its first line.  ``as_of_default``: the ``as_of`` of records without one.
    """

    kind: str
    index: int
    schema: Any
    history: bool
    fields: Any = None
    dates: str = "text"
    fmt: str = ""
    text: bool = False
    tables: tuple = ()
    path: str = ""
    start: int = 0
    end: int = -1
    first_line: int = 1
    needs_dedupe: bool = False
    as_of_default: str | None = None


def resolve(source: str | Path, schema: Schema) -> Source:
    """Which input form ``source`` is, and its files.

    Raises
    ------
    FileNotFoundError
        No such file, or a folder without an opportunities table.
    ScoringError
        Both ``opportunities.csv`` and ``.parquet``, a child table of the other
        format, or a path that is no records input.
    """
    path = Path(source)
    if path.is_dir():
        found = [path / f"opportunities{x}" for x in TABLE_SUFFIXES if (path / f"opportunities{x}").exists()]
        if not found:
            raise FileNotFoundError(f"{path}: no opportunities.csv or opportunities.parquet")
        if len(found) > 1:
            raise ScoringError(f"{path}: both opportunities.csv and opportunities.parquet; keep one")
        opp = found[0]
        ext = opp.suffix.lower()
        tables = [(OPPORTUNITY, opp, opp.name)]
        for child in compiled(schema).children:
            p = path / f"{child.name}{ext}"
            others = [path / f"{child.name}{x}" for x in TABLE_SUFFIXES if x != ext]
            if p.exists():
                tables.append((child.name, p, p.name))
            elif any(o.exists() for o in others):
                other = next(o for o in others if o.exists())
                raise ScoringError(f"{other}: child tables must have the format of {opp.name} ({ext}); "
                                   f"convert it or the opportunities table")
        return Source(path, "tables", ext[1:], tuple(tables))
    if path.name.lower().endswith(JSONL_SUFFIXES):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        return Source(path, "jsonl", "jsonl")
    if path.suffix.lower() in TABLE_SUFFIXES:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        return Source(path, "tables", path.suffix.lower()[1:], ((OPPORTUNITY, path, path.name),))
    raise ScoringError(
        f"{path}: not a records input (expected a .jsonl/.ndjson[.gz] file, a folder of tables, "
        f"or an opportunities .csv/.parquet file)")


def no_child_key(label: str) -> ScoringError:
    """The error of a child table without ``opportunity_id``."""
    return ScoringError(f"{label}: the child table has no {CHILD_KEY!r} column")


def _cannot_read(path: Path, e: Exception) -> ScoringError:
    return ScoringError(CANNOT_READ_TABLE.format(path=path, error=e))


# --------------------------------------------------------------------------- reading tables
def _pandas_index_columns(schema: pa.Schema) -> list[str]:
    md = schema.pandas_metadata or {}
    return [c for c in md.get("index_columns", []) if isinstance(c, str)]


def iter_batches(path: Path, fmt: str) -> Iterator[pa.Table]:
    """Yield Arrow tables of one source table in row order (CSV: every column text)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
            drop = _pandas_index_columns(pf.schema_arrow)
            for b in pf.iter_batches(batch_size=_BATCH_ROWS):
                t = pa.Table.from_batches([b])
                if drop:
                    t = t.drop_columns([c for c in drop if c in t.column_names])
                yield t
        except (pa.ArrowException, OSError) as e:
            raise _cannot_read(path, e) from e
        return
    if fmt == "ipc":
        with pa.OSFile(str(path), "rb") as fh:
            for b in pa.ipc.open_stream(fh):
                yield pa.Table.from_batches([b])
        return
    yield from csv_batches(path)


def _read_whole(path: Path, fmt: str) -> pa.Table | None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(path)
        except (pa.ArrowException, OSError) as e:
            raise _cannot_read(path, e) from e
        drop = _pandas_index_columns(t.schema)
        t = t.drop_columns([c for c in drop if c in t.column_names]) if drop else t
        return t.combine_chunks()
    parts = list(iter_batches(path, fmt))
    if not parts:
        return None
    return pa.concat_tables(parts).combine_chunks()


def plain_table(t: pa.Table) -> pa.Table:
    """Dictionary / view columns decoded (bucket files hold plain columns)."""
    if not any(pa.types.is_dictionary(f.type) or pa.types.is_string_view(f.type) for f in t.schema):
        return t
    return pa.table([plain(c) for c in t.columns], names=t.column_names)


def arrow_table(t: pa.Table, label: str) -> Table:
    """An Arrow table (with or without the source-row column) as the validator's :class:`Table`."""
    names = t.column_names
    if SRC in names:
        src = t.column(SRC).to_numpy().astype(np.int64) if t.num_rows else np.zeros(0, np.int64)
    else:
        src = np.arange(t.num_rows, dtype=np.int64)
    return Table({c: t.column(c) for c in names if c != SRC}, src, label)


def read_partition_tables(spec: PartitionSpec) -> tuple[Table, dict[str, Table]]:
    """The tables of one table-form partition: (opportunities, {child entity: table})."""
    opps = None
    children: dict[str, Table] = {}
    for entity, path, label, schema in spec.tables:
        if path is None or not Path(path).exists():
            t = schema.empty_table()
        elif spec.fmt == "ipc":
            with pa.OSFile(str(path), "rb") as fh:
                t = pa.ipc.open_stream(fh).read_all().combine_chunks()
        else:
            t = _read_whole(Path(path), spec.fmt)
            t = schema.empty_table() if t is None else t
        if entity == OPPORTUNITY:
            opps = arrow_table(t, label)
        else:
            if CHILD_KEY not in t.column_names:
                raise no_child_key(label)
            children[entity] = arrow_table(t, label)
    return opps, children


# --------------------------------------------------------------------------- partitions
def _table_schemas(source: Source) -> list[pa.Schema | None]:
    out = []
    for entity, path, label in source.tables:
        if source.fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                s = pq.read_schema(path)
            except (pa.ArrowException, OSError) as e:
                raise _cannot_read(path, e) from e
            drop = set(_pandas_index_columns(s))
            s = pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else
                                    (pa.large_string() if pa.types.is_string_view(f.type) else f.type))
                           for f in s if f.name not in drop])
        else:
            names = csv_names(path)
            s = None if names is None else pa.schema([pa.field(h, pa.large_string()) for h in names])
        if s is not None and entity != OPPORTUNITY and CHILD_KEY not in s.names:
            raise no_child_key(label)
        out.append(s)
    return out


def _estimate_rows(source: Source) -> int:
    _, path, _ = source.tables[0]
    if source.fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as e:
            raise _cannot_read(path, e) from e
    return estimate_lines(path) - 1


def _key_text(key: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A key column (id / opportunity_id) as text: rows the validator may join have equal texts."""
    key = plain(key)
    if not is_str_type(key.type):
        try:
            key = pc.cast(key, pa.large_string())
        except pa.ArrowException:
            key = pa.array([None if v is None else str(v) for v in cell_values(key).tolist()], pa.large_string())
    return key


def _bucket_of(key: Any, B: int, src: np.ndarray) -> np.ndarray:
    """Bucket of each row: hash of the key's text mod B; rows without a key by row number."""
    if key is None:
        return (src % B).astype(np.int64)
    key = _key_text(key)
    null = np_bool(key.is_null())
    obj = key.to_numpy(zero_copy_only=False)
    if null.any():
        obj = obj.copy()
        obj[null] = ""
    h = pd.util.hash_array(obj.astype(object, copy=False), categorize=False)
    b = (h % np.uint64(B)).astype(np.int64)
    if null.any():
        b[null] = src[null] % B
    return b


def table_partitions(source: Source, chunk_size: int, workdir: Callable[[], Path], *, memory: int = MEMORY_BYTES,
                     **common) -> list[PartitionSpec]:
    """The partitions of a table-form input (see the module docstring); ``common`` goes into every spec.

    ``memory``: the in-memory partitioning's budget in bytes (0: always bucket files)."""
    schemas = _table_schemas(source)
    B = max(1, math.ceil(_estimate_rows(source) / chunk_size))
    text = source.fmt == "csv"
    tables = tuple((e, str(p), label, s if s is not None else pa.schema([]))
                   for (e, p, label), s in zip(source.tables, schemas))
    if B == 1:
        return [PartitionSpec(kind="tables", index=0, fmt=source.fmt, text=text, tables=tables, **common)]
    work = workdir()
    if _estimate_bytes(source) <= memory:
        return _memory_partitions(source, tables, chunk_size, text, work, common)
    files: dict[tuple[str, int], str] = {}
    out_schemas: dict[str, pa.Schema] = {}
    for (entity, path, label), s in zip(source.tables, schemas):
        keycol = ID if entity == OPPORTUNITY else CHILD_KEY
        writers: dict[int, tuple[Any, Any]] = {}
        start = 0
        try:
            for t in iter_batches(path, source.fmt):
                t = plain_table(t)
                m = t.num_rows
                src = np.arange(start, start + m, dtype=np.int64)
                start += m
                t = t.append_column(SRC, pa.array(src))
                if entity not in out_schemas:
                    out_schemas[entity] = t.schema
                elif t.schema != out_schemas[entity]:
                    t = t.cast(out_schemas[entity])
                if m == 0:
                    continue
                b = _bucket_of(t.column(keycol) if keycol in t.column_names else None, B, src)
                counts = np.bincount(b, minlength=B)
                t = t.take(pa.array(np.argsort(b, kind="stable")))
                off = 0
                for k in np.flatnonzero(counts).tolist():
                    c = int(counts[k])
                    w = writers.get(k)
                    if w is None:
                        fp = work / f"{entity}-{k:05d}.arrow"
                        sink = pa.OSFile(str(fp), "wb")
                        w = writers[k] = (sink, pa.ipc.new_stream(sink, t.schema))
                        files[(entity, k)] = str(fp)
                    w[1].write_table(t.slice(off, c))
                    off += c
        finally:
            for sink, wr in writers.values():
                wr.close()
                sink.close()
        if entity not in out_schemas:
            base = s if s is not None else pa.schema([])
            out_schemas[entity] = base.append(pa.field(SRC, pa.int64()))
    return [PartitionSpec(kind="tables", index=k, fmt="ipc", text=text, **common,
                          tables=tuple((e, files.get((e, k)), label, out_schemas[e]) for e, _, label in source.tables))
            for k in range(B)]


# --------------------------------------------------------------------------- cutting in memory
def _estimate_bytes(source: Source) -> int:
    """What the tables take in memory, estimated from the files (Parquet: 4x the uncompressed
    size its metadata gives; CSV: 3x the file size)."""
    total = 0
    for _, path, _ in source.tables:
        if source.fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                md = pq.ParquetFile(path).metadata
            except (pa.ArrowException, OSError) as e:
                raise _cannot_read(path, e) from e
            total += 4 * sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
        else:
            total += 3 * os.path.getsize(path)
    return total


def _read_memory(path: str, fmt: str, key: str) -> pa.Table:
    """One source table, whole (Parquet: its text columns but ``key`` dictionary-encoded, which holds
    the repeated enum words once)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            s = pq.read_schema(path)
            words = [f.name for f in s if is_str_type(f.type) and f.name != key]
            t = pq.read_table(path, read_dictionary=words)
        except (pa.ArrowException, OSError) as e:
            raise _cannot_read(Path(path), e) from e
        drop = _pandas_index_columns(t.schema)
        return t.drop_columns([c for c in drop if c in t.column_names]) if drop else t
    t = _read_whole(Path(path), fmt)
    return pa.table({}) if t is None else t


def _spread(codes: np.ndarray, n_codes: int, B: int) -> np.ndarray:
    """Partition of each row: code ``c`` -> ``c * B // n_codes``; rows without a code (-1) by row number."""
    m = len(codes)
    out = codes * B // max(n_codes, 1)
    none = codes < 0
    if none.any():
        out[none] = np.flatnonzero(none) * B // max(m, 1)
    return out


def _memory_partitions(source: Source, tables: tuple, chunk_size: int, text: bool, work: Path,
                       common: dict) -> list[PartitionSpec]:
    """Partition files cut from the tables read once (see the module docstring)."""
    B = None
    uniq = pa.array([], pa.large_string())
    files: dict[tuple[str, int], str] = {}
    out_schemas: dict[str, pa.Schema] = {}
    for entity, path, _, schema in tables:
        keycol = ID if entity == OPPORTUNITY else CHILD_KEY
        t = _read_memory(path, source.fmt, keycol)
        if t.num_columns == 0:  # a CSV of a header alone: its columns, no rows
            t = schema.empty_table()
        if B is None:
            B = max(1, math.ceil(t.num_rows / chunk_size))
        if keycol not in t.column_names or t.num_rows == 0:
            codes = np.full(t.num_rows, -1, np.int64)
        elif entity == OPPORTUNITY:
            enc = pc.dictionary_encode(_key_text(t.column(keycol)))
            uniq = enc.dictionary
            codes = enc.indices.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
        else:
            idx = pc.index_in(_key_text(t.column(keycol)), value_set=uniq)
            codes = idx.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
        b = _spread(codes.astype(np.int64, copy=True), len(uniq), B)
        t = t.append_column(SRC, pa.array(np.arange(t.num_rows, dtype=np.int64)))
        out_schemas[entity] = plain_table(t.slice(0, 0)).schema  # the files hold plain columns
        if t.num_rows == 0:
            continue
        counts = np.bincount(b, minlength=B)
        t = t.take(pa.array(np.argsort(b, kind="stable")))
        off = 0
        for k in np.flatnonzero(counts).tolist():
            c = int(counts[k])
            fp = work / f"{entity}-{k:05d}.arrow"
            part = plain_table(t.slice(off, c))  # a dictionary would be written whole into every file
            with pa.OSFile(str(fp), "wb") as sink, pa.ipc.new_stream(sink, part.schema) as w:
                w.write_table(part)
            files[(entity, k)] = str(fp)
            off += c
        del t
    return [PartitionSpec(kind="tables", index=k, fmt="ipc", text=text, **common,
                          tables=tuple((e, files.get((e, k)), label, out_schemas[e]) for e, _, label, _ in tables))
            for k in range(B)]


def jsonl_partitions(source: Source, chunk_size: int, workdir: Callable[[], Path], **common) -> list[PartitionSpec]:
    """The partitions of a JSON Lines input (see the module docstring)."""
    path = source.path
    if path.name.lower().endswith(".gz"):
        return _gz_partitions(path, chunk_size, workdir(), **common)
    size = path.stat().st_size
    B = max(1, math.ceil(estimate_lines(path) / chunk_size))
    bounds = [0]
    with open(path, "rb") as fh:
        for k in range(1, B):
            fh.seek(max(bounds[-1], size * k // B))
            if fh.tell() > 0:
                fh.seek(fh.tell() - 1)
                fh.readline()  # to the start of the next line
            p = fh.tell()
            if bounds[-1] < p < size:
                bounds.append(p)
    bounds.append(size)
    firsts = [1]
    with open(path, "rb") as fh:
        for a, b in zip(bounds[:-1], bounds[1:]):
            fh.seek(a)
            left, nl = b - a, 0
            while left > 0:
                buf = fh.read(min(left, 16 << 20))
                if not buf:
                    break
                nl += buf.count(b"\n")
                left -= len(buf)
            firsts.append(firsts[-1] + nl)
    multi = len(bounds) > 2
    return [PartitionSpec(kind="jsonl", index=k, path=str(path), start=a, end=b, first_line=firsts[k],
                          needs_dedupe=multi, **common)
            for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]


def _gz_partitions(path: Path, chunk_size: int, work: Path, **common) -> list[PartitionSpec]:
    parts: list[tuple[str, int]] = []
    out = None
    line_no = count = first = 0
    try:
        with gzip.open(path, "rb") as fh:
            for line in fh:
                if out is None:
                    fp = work / f"part-{len(parts):05d}.jsonl"
                    out = open(fp, "wb")
                    first, count = line_no + 1, 0
                out.write(line)
                line_no += 1
                count += 1
                if count >= chunk_size:
                    out.close()
                    out = None
                    parts.append((str(fp), first))
    except (OSError, EOFError) as e:
        raise ScoringError(CANNOT_READ.format(path=path, error=e)) from e
    finally:
        if out is not None:
            out.close()
            parts.append((str(fp), first))
    multi = len(parts) > 1
    return [PartitionSpec(kind="jsonl", index=i, path=p, start=0, end=-1, first_line=f, needs_dedupe=multi, **common)
            for i, (p, f) in enumerate(parts)]


def estimate_lines(path: Path, sample: int = 1 << 20) -> int:
    """Lines of a text file: counted exactly up to 64 MiB, else estimated from its first MiB."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        if size <= 64 << 20:
            n = 0
            while True:
                buf = fh.read(16 << 20)
                if not buf:
                    break
                n += buf.count(b"\n")
            return n + 1
        head = fh.read(sample)
    per = max(1, head.count(b"\n"))
    return int(size * per / len(head)) + 1
