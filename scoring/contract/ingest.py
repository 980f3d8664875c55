"""Streaming any contract input as chunks of validated column frames (the batch path).

:func:`scoring.contract.records.read_records` is the reference reader: it builds one
Python dict per record, holds the whole input in memory and reads ~50k
records/s.  This module reads the SAME inputs with the SAME accept/reject
decisions, reasons, row/line numbers, orphans and undeclared fields, but
validates column-wise (pyarrow compute / numpy) and hands out chunks of
:class:`~scoring.evidence.columnar.Frames` with bounded memory::

    with InputStream("export/", pack.schema, chunk_size=50_000) as stream:
        for chunk in stream:                       # or: specs = stream.partitions()
            evaluate(chunk.frames)                 #     pool.map(load_partition, specs)
            write_rejects(chunk.rejects)

Partitioning
------------
* **Table form** (a folder with ``opportunities.csv|.parquet`` and optional
  ``contacts`` / ``competitors`` / ``partners`` files, or a single table file):
  when the opportunities table holds more than ``chunk_size`` rows (Parquet:
  from its metadata; CSV: estimated from the file size and a sample of its
  first MiB), :meth:`InputStream.partitions` makes ONE streaming pass over
  every table (Parquet ``iter_batches``; CSV ``pyarrow.csv.open_csv`` with
  every column read as text) and appends each row to bucket
  ``hash(id) mod B`` (``pandas.util.hash_array`` of the id text; child rows
  hash their ``opportunity_id``), as Arrow IPC files in ``workdir``, with
  ``B = ceil(rows / chunk_size)``.  Every snapshot of an id and all its child
  rows share a bucket, so duplicate ``(id, as_of)`` checks, child nesting and
  orphans are local to a partition.  Rows without a key are spread by row
  number (they never match anything).  Small inputs are one partition read
  straight from the source files, without the bucketing pass.
* **JSON Lines** (``.jsonl`` / ``.ndjson``, optionally ``.gz``): partitions
  are consecutive line ranges (byte ranges aligned to line starts of a plain
  file; a ``.gz`` file is cut into plain part files in ``workdir`` by one
  sequential pass).

Order
-----
Deterministic for the same input and ``chunk_size``: partitions in bucket
(table form) or file (JSON Lines) order, records within a partition in input
order; child rows within a chunk sorted by their deal, then input order.  A
one-partition table input keeps the input order (as ``read_records``).

Duplicates
----------
Table form: all rows of an id share a partition, so every chunk is final.
JSON Lines: a partition rejects the duplicates it holds itself; a record
whose ``(id, as_of)`` was accepted in an EARLIER partition can only be found
across partitions: ``chunk.needs_dedupe`` is then True and the caller must
pass the chunks, in partition order, through one :class:`DuplicateFilter`
(``InputStream.__iter__`` does it; a batch that loads partitions in worker
processes applies it in the parent, in partition order).  It keeps the set of
accepted keys (~100-150 bytes per record).

Validation
----------
Column-wise, with a conservative fast path per field type (e.g. ``is_in`` for
enums, anchored regexes + casts for numbers in CSV text, dtype checks for
Parquet) and, for every cell the fast path does not accept, the reference
per-cell converter of :mod:`scoring.contract.records`, so the reasons are the
reference's words.  Table-form row numbers (``row`` of rejects and orphans,
``(contacts.csv row N)`` in reasons) are 1-based rows of the WHOLE source
table, as ``read_records`` numbers them.

Frames
------
``frames.opps``: ``id`` and ``as_of`` plus every declared opportunity field of
``schema`` (or of ``fields`` when given), in schema order, RangeIndex; dtypes
``boolean`` / ``Int64`` / ``Float64`` / ``str`` (enum, string) and dates as
``'YYYY-MM-DD'`` ``str`` (``dates="datetime64"``: ``datetime64[s]``).
``frames.children``: one frame per child entity of the schema with ``_row``
(int64 position of the deal in ``opps``) and the declared child fields.
Undeclared input columns are reported in ``undeclared_fields`` and dropped.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field as _dc_field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.contract import records as _rec
from scoring.contract.frames import ROW, Frames
from scoring.contract.schema import CHILD_KEY, CONTRACT, FALSE_WORDS, TRUE_WORDS, Field
from scoring.errors import RecordError, ScoringError

__all__ = ["Chunk", "PartitionSpec", "InputStream", "DuplicateFilter", "load_partition"]

Schema = Mapping[str, Mapping[str, Field]]

OPPORTUNITY = _rec.OPPORTUNITY
AS_OF = _rec.AS_OF
_ID = "id"
_MISSING = _rec._MISSING
_DUPLICATE = _rec._DUPLICATE
_SRC = "__ingest_src_row__"  # source row (0-based) carried through the bucket files
_TABLES_EXT = (".csv", ".parquet")
_JSONL_SUFFIXES = _rec._JSONL_SUFFIXES
_BATCH_ROWS = 131_072
_CSV_BLOCK = 8 << 20


# --------------------------------------------------------------------------- #
# public data
# --------------------------------------------------------------------------- #
@dataclass
class Chunk:
    """One partition of the input, validated.

    Attributes
    ----------
    frames : Frames
        The GOOD records of this partition in column form (RangeIndex).
    rejects : list of dict
        ``{"id", "field", "reason", "row"}`` (table form) or ``{..., "line"}``
        (JSON Lines): one per bad record, the words of :mod:`scoring.contract.records`.
    orphans : list of dict
        ``{"table", "opportunity_id", "row", "reason"}``.
    n_read : int
        Opportunity records seen: ``len(frames.opps) + len(rejects)``.
    undeclared_fields : dict
        entity -> sorted input fields the schema does not declare.
    positions : ndarray
        1-based source row (table form) or line (JSON Lines) of each good record.
    partition : int
        Index of the partition.
    needs_dedupe : bool
        True when later duplicates of records accepted in EARLIER partitions
        can only be found across partitions (JSON Lines): pass the chunks, in
        partition order, through a :class:`DuplicateFilter`.
    """

    frames: Frames
    rejects: list[dict] = _dc_field(default_factory=list)
    orphans: list[dict] = _dc_field(default_factory=list)
    n_read: int = 0
    undeclared_fields: dict[str, list[str]] = _dc_field(default_factory=dict)
    positions: np.ndarray = _dc_field(default_factory=lambda: np.zeros(0, np.int64))
    partition: int = 0
    needs_dedupe: bool = False


@dataclass(frozen=True)
class PartitionSpec:
    """Everything a worker process needs to load one partition (picklable).

    ``kind`` is ``"tables"`` or ``"jsonl"``.  Table form: ``tables`` is a tuple
    of ``(entity, path or None, label, arrow schema)``; ``text`` is True for
    CSV; ``fmt`` is ``"csv"``, ``"parquet"`` (source files) or ``"ipc"``
    (bucket files).  JSON Lines: ``path`` with the byte range ``[start, end)``
    and the number of its first line.
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


# --------------------------------------------------------------------------- #
# small helpers
# --------------------------------------------------------------------------- #
def _np_bool(x) -> np.ndarray:
    """A boolean arrow result (nulls as False) as a numpy bool array."""
    if isinstance(x, pa.ChunkedArray):
        x = x.combine_chunks()
    if x.null_count:
        x = pc.fill_null(x, False)
    return x.to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _is_str_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _plain(arr: pa.Array) -> pa.Array:
    """Decode dictionaries; string views become plain strings."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.large_string())
    return arr


def _ref_values(arr: pa.Array) -> np.ndarray:
    """Python values of a typed column exactly as the reference reader sees them
    (``pd.read_parquet(dtype_backend="numpy_nullable")`` then object values, None for nulls)."""
    from pandas.io._util import arrow_table_to_pandas

    s = arrow_table_to_pandas(pa.table({"c": arr}), dtype_backend="numpy_nullable")["c"]
    try:
        out = s.to_numpy(dtype=object, na_value=None)
    except (TypeError, ValueError):  # pragma: no cover - exotic extension dtypes
        out = np.array([None if _rec._is_null(v) else v for v in s.tolist()] or [], dtype=object)
    return out


_KIND = {"bool": "bool", "int": "int", "number": "float"}
_NONBLANK = "[!-~]"  # an ASCII graphic character: never whitespace, so the text is not blank
_INT_TEXT = r"^[+-]?[0-9]{1,18}$"
_NUM_TEXT = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_DATE_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TRUE = pa.array(sorted(TRUE_WORDS))
_FALSE = pa.array(sorted(FALSE_WORDS))
_DIM = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


class _Col:
    """One converted column.

    kind ``bool`` / ``int`` / ``float`` (numpy ``data``) or ``str`` (arrow
    string ``data``); ``na`` True where unknown (null or bad); ``errors`` row
    -> reason; ``raw(i)`` the input value of row i (for keys of bad cells).
    """

    __slots__ = ("kind", "data", "na", "errors", "_raw")

    def __init__(self, kind, data, na, errors, raw):
        self.kind, self.data, self.na, self.errors, self._raw = kind, data, na, errors, raw

    def raw(self, i: int):
        return self._raw(i)

    def py(self, i: int):
        """The converted Python value of row i (None when unknown)."""
        if self.na[i]:
            return None
        v = self.data[i]
        return v.as_py() if isinstance(v, pa.Scalar) else v.item()

    def take(self, idx: np.ndarray, ftype: str, dates: str):
        """The column at positions ``idx`` as a pandas array of the Frames dtype."""
        na = self.na[idx]
        if self.kind == "bool":
            return pd.arrays.BooleanArray(self.data[idx].astype(bool), na)
        if self.kind == "int":
            return pd.arrays.IntegerArray(np.where(na, 0, self.data[idx]).astype(np.int64), na)
        if self.kind == "float":
            return pd.arrays.FloatingArray(np.where(na, 0.0, self.data[idx]).astype(np.float64), na)
        identity = len(idx) == len(self.data) and (len(idx) == 0 or (idx[0] == 0 and bool((np.diff(idx) == 1).all())))
        arr = self.data if identity else self.data.take(pa.array(idx, pa.int64()))
        if na.any():
            arr = pc.if_else(pa.array(~na), arr, pa.scalar(None, arr.type))
        if ftype == "date" and dates == "datetime64":
            return pd.array(pc.strptime(arr, "%Y-%m-%d", "s").to_numpy(zero_copy_only=False))
        return arr.to_pandas().array


def _patch(kind: str, data, na: np.ndarray, values: dict[int, Any]):
    """Write fallback values (row -> Python value or None) into a column."""
    if not values:
        return data
    if kind == "str":
        real = {i: v for i, v in values.items() if v is not None}
        for i, v in values.items():
            na[i] = v is None
        if real:
            lst = data.to_pylist()
            for i, v in real.items():
                lst[i] = v
            data = pa.array(lst, pa.large_string())
        return data
    for i, v in values.items():
        if v is None:
            na[i] = True
        else:
            data[i] = v
            na[i] = False
    return data


def _fallback(rows: np.ndarray, get, conv) -> tuple[dict, dict]:
    vals, errs = {}, {}
    for i in rows.tolist():
        v = get(i)
        if v is None:
            vals[i] = None
            continue
        try:
            vals[i] = conv(v)
        except _rec._Bad as e:
            errs[i] = e.args[0]
            vals[i] = None
    return vals, errs


def _date_text_ok(a: pa.Array, m: np.ndarray) -> np.ndarray:
    """Of the rows matching YYYY-MM-DD (mask m), those that are real dates (year >= 1)."""
    ok = m.copy()
    if not m.any():
        return ok
    sub = a.filter(pa.array(m))
    y = pc.cast(pc.utf8_slice_codeunits(sub, 0, 4), pa.int64()).to_numpy()
    mo = pc.cast(pc.utf8_slice_codeunits(sub, 5, 7), pa.int64()).to_numpy()
    d = pc.cast(pc.utf8_slice_codeunits(sub, 8, 10), pa.int64()).to_numpy()
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    dim = _DIM[np.clip(mo, 0, 12)] + ((mo == 2) & leap)
    good = (y >= 1) & (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= dim)
    ok[np.flatnonzero(m)] = good
    return ok


def _text_col(a: pa.Array, f: Field, text_conv) -> _Col:
    """A CSV column (all text; "" is unknown) for field f."""
    a = _plain(a)
    if a.null_count:
        a = pc.fill_null(a, "")
    n = len(a)
    t = f.type
    empty = _np_bool(pc.equal(pc.binary_length(a), 0))
    suspect = None
    if t == "string":
        data, kind, na = a, "str", empty.copy()
        if f.required:
            suspect = ~empty & ~_np_bool(pc.match_substring_regex(a, _NONBLANK))
    elif t == "enum":
        ok = _np_bool(pc.is_in(a, value_set=pa.array(list(f.values), a.type)))
        data, kind, na, suspect = a, "str", ~ok, ~ok & ~empty
    elif t == "bool":
        low = pc.ascii_lower(a)
        tr = _np_bool(pc.is_in(low, value_set=_TRUE.cast(a.type)))
        fa = _np_bool(pc.is_in(low, value_set=_FALSE.cast(a.type)))
        na = ~(tr | fa)
        data, kind, suspect = tr, "bool", na & ~empty
    elif t in ("int", "number"):
        kind = _KIND[t]
        m = _np_bool(pc.match_substring_regex(a, _INT_TEXT if t == "int" else _NUM_TEXT))
        data = np.zeros(n, np.int64 if t == "int" else np.float64)
        if m.any():
            sub = a.filter(pa.array(m))
            try:
                if t == "int":
                    vals = pc.cast(pc.utf8_ltrim(sub, "+"), pa.int64()).to_numpy()
                else:
                    vals = pc.cast(sub, pa.float64()).to_numpy()
            except pa.ArrowInvalid:  # pragma: no cover - let the reference parse them
                m = np.zeros(n, bool)
            else:
                data[np.flatnonzero(m)] = vals
        bad = ~m
        if t == "number":
            bad |= ~np.isfinite(data)
        if f.min is not None:
            bad |= m & (data < f.min)
        na = bad.copy()
        suspect = bad & ~empty
    elif t == "date":
        ok = _date_text_ok(a, _np_bool(pc.match_substring_regex(a, _DATE_TEXT)))
        data, kind, na, suspect = a, "str", ~ok, ~ok & ~empty
    else:  # pragma: no cover - merge_schema keeps other types out
        raise ValueError(f"unknown type {t!r}")
    na |= empty
    errors: dict = {}
    raw = lambda i: a[i].as_py()  # noqa: E731
    if suspect is not None and suspect.any():
        vals, errors = _fallback(np.flatnonzero(suspect), raw, text_conv)
        data = _patch(kind, data, na, vals)
    return _Col(kind, data, na, errors, raw)


def _typed_col(arr: pa.Array, f: Field, native) -> _Col:
    """A typed (Parquet) column for field f, checked like the reference's Python values."""
    arr = _plain(arr)
    typ = arr.type
    n = len(arr)
    t = f.type
    null = _np_bool(arr.is_null())
    ref: list = []

    def raw(i):
        if not ref:
            ref.append(_ref_values(arr))
        return ref[0][i]

    kind = "str" if t in ("string", "enum", "date") else _KIND[t]
    data = None
    suspect = None
    na = null.copy()
    is_int = pa.types.is_integer(typ)
    is_float = pa.types.is_floating(typ)
    if _is_str_type(typ) and t in ("string", "enum", "date"):
        data = arr
        if t == "string":
            if f.required:
                suspect = ~null & ~_np_bool(pc.match_substring_regex(arr, _NONBLANK))
        elif t == "enum":
            ok = _np_bool(pc.is_in(arr, value_set=pa.array(list(f.values), typ)))
            suspect = ~ok & ~null
        else:
            ok = _date_text_ok(arr, _np_bool(pc.match_substring_regex(arr, _DATE_TEXT)))
            suspect = ~ok & ~null
        if suspect is not None:
            na |= suspect
    elif pa.types.is_boolean(typ) and t == "bool":
        data = _np_bool(arr)
    elif (is_int or is_float) and t in ("int", "number"):
        if is_float:
            x = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
            nan = np.isnan(x)  # a null or a NaN: pandas' missing
            na = nan
            x = np.where(nan, 0.0, x)
            if t == "int":
                bad = ~na & ~((np.floor(x) == x) & (np.abs(x) < 2.0**63))
                data = np.where(bad, 0, x).astype(np.int64)
            else:
                bad = ~np.isfinite(x)
                data = x
        else:
            try:
                data = pc.cast(arr, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
            except pa.ArrowInvalid:  # uint64 beyond int64: the reference's Python ints
                data = None
            else:
                if t == "number":
                    data = data.astype(np.float64)
                bad = np.zeros(n, bool)
        if data is not None:
            if f.min is not None:
                bad |= ~na & (data < f.min)
            suspect = bad
            na = na | bad
    elif t == "date" and (pa.types.is_date(typ) or (pa.types.is_timestamp(typ) and typ.tz is None)):
        days = pc.cast(pc.cast(arr, pa.date32()) if pa.types.is_timestamp(typ) else arr, pa.date32())
        d = days.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
        # 0001-01-01 .. 9999-12-31 as days since 1970-01-01
        if ((d < -719162) | (d > 2932896)).any():
            data = None
        else:
            data = pc.cast(days, pa.string())
    if data is None:  # any other type: the reference's per-cell conversion of every value
        vals = _ref_values(arr)
        ref[:] = [vals]
        data = pa.nulls(n, pa.large_string()) if kind == "str" else np.zeros(n, bool if kind == "bool" else
                                                                              (np.int64 if kind == "int" else np.float64))
        na = np.ones(n, bool)
        suspect = np.array([v is not None for v in vals], dtype=bool) if n else np.zeros(0, bool)
    errors: dict = {}
    if suspect is not None and suspect.any():
        vals, errors = _fallback(np.flatnonzero(suspect), raw, native)
        data = _patch(kind, data, na, vals)
    return _Col(kind, data, na, errors, raw)


def _convert(arr: pa.Array, f: Field, text: bool, native, text_conv) -> _Col:
    return _text_col(arr, f, text_conv) if text else _typed_col(arr, f, native)


def _key_array(arr: pa.Array | None, n: int, text: bool):
    """Raw key values (id / opportunity_id): arrow strings (nulls) or an object array."""
    if arr is None:
        return pa.nulls(n, pa.large_string())
    arr = _plain(arr)
    if text:
        if arr.null_count:
            arr = pc.fill_null(arr, "")
        return pc.if_else(pc.equal(pc.binary_length(arr), 0), pa.scalar(None, arr.type), arr)
    if _is_str_type(arr.type) or pa.types.is_null(arr.type):
        return arr.cast(pa.large_string())
    return _ref_values(arr)


def _key_from_col(col: _Col | None, n: int):
    """(id/as_of) key of each row: the converted value, the raw value of a bad cell, None when null."""
    if col is None:
        return pa.nulls(n, pa.large_string())
    if not col.errors:
        data = col.data
        if col.kind != "str":
            return np.array([col.py(i) for i in range(n)], dtype=object)
        if col.na.any():
            data = pc.if_else(pa.array(~col.na), data, pa.scalar(None, data.type))
        return data
    out = np.array((col.data.to_pylist() if col.kind == "str" else col.data.tolist()), dtype=object)
    out[col.na] = None
    for i in col.errors:
        out[i] = col.raw(i)
    return out


def _codes(arrays: list) -> list[np.ndarray]:
    """Joint integer codes of key arrays (equal values, equal codes); -1 for None."""
    lens = [len(a) for a in arrays]
    if all(isinstance(a, pa.Array) for a in arrays):
        ch = pa.chunked_array([a.cast(pa.large_string()) for a in arrays], pa.large_string())
        enc = pc.dictionary_encode(ch)
        idx = pa.chunked_array([c.indices for c in enc.chunks], pa.int32()).combine_chunks() if enc.num_chunks \
            else pa.array([], pa.int32())
        codes = idx.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
    else:
        objs = [a if isinstance(a, np.ndarray) else np.array(a.to_pylist(), dtype=object) for a in arrays]
        allv = np.concatenate(objs) if objs else np.zeros(0, object)
        codes = pd.factorize(allv, use_na_sentinel=True)[0].astype(np.int64) if len(allv) else np.zeros(0, np.int64)
    out, pos = [], 0
    for m in lens:
        out.append(codes[pos:pos + m])
        pos += m
    return out


def _py(v):
    return v.as_py() if isinstance(v, pa.Scalar) else v


# --------------------------------------------------------------------------- #
# column-wise validation of one partition of the table form
# --------------------------------------------------------------------------- #
def _output_names(schema: Schema, fields, entity: str) -> list[str]:
    declared = list(schema[entity])
    if fields is None:
        names = declared
    else:
        keep = set(fields.get(entity, ()))
        names = [n for n in declared if n in keep]
    if entity == OPPORTUNITY:
        names = [n for n in (_ID, AS_OF) if n not in names and n in schema[entity]] + names
    return names


def _empty_array(ftype: str, n: int, dates: str):
    if ftype == "bool":
        return pd.arrays.BooleanArray(np.zeros(n, bool), np.ones(n, bool))
    if ftype == "int":
        return pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))
    if ftype == "number":
        return pd.arrays.FloatingArray(np.zeros(n, np.float64), np.ones(n, bool))
    if ftype == "date" and dates == "datetime64":
        return pd.array(np.full(n, np.datetime64("NaT", "s"), "datetime64[s]"))
    return pa.nulls(n, pa.large_string()).to_pandas().array if n else pd.Series([], dtype="str").array


def _convert_entity(tab: pa.Table, ent, text: bool, n: int):
    """Convert every declared column of one table and find each row's first error, in the
    reference reader's order: fields in schema order (a bad value, then a missing required
    value), then the ``max_field`` pairs.  Returns ``(columns, first_error_by_row, input_names)``."""
    names = [c for c in tab.column_names if c != _SRC]
    cols: dict[str, _Col] = {}
    first: dict[int, tuple[str, str]] = {}
    for name, f, native, text_conv, req in zip(ent.names, ent.fields, ent.native, ent.text, ent.required):
        col = None
        if name in names:
            col = _convert(tab.column(name), f, text, native, text_conv)
            cols[name] = col
            for i in sorted(col.errors):
                first.setdefault(i, (name, col.errors[i]))
        if req:
            for i in (range(n) if col is None else np.flatnonzero(col.na).tolist()):
                first.setdefault(i, (name, _MISSING))
    for a, b in ent.pairs:
        ca, cb = cols.get(a), cols.get(b)
        if ca is None or cb is None or ca.kind == "str" or cb.kind == "str":
            continue
        over = ~ca.na & ~cb.na & (ca.data > cb.data)
        for i in np.flatnonzero(over).tolist():
            first.setdefault(i, (a, f"{a} ({_rec._show(ca.py(i))}) exceeds {b} ({_rec._show(cb.py(i))})"))
    return cols, first, names


def _validate_tables(opps: pa.Table, children: dict[str, tuple[pa.Table, str]], schema: Schema,
                     history: bool, text: bool, fields, dates: str):
    """The column-wise twin of :func:`scoring.contract.records.validate_frames` for one partition.

    ``opps`` and each child table carry the column ``_SRC`` (0-based source row).
    Returns ``(frames, rejects, orphans, undeclared, positions)``.
    """
    comp = _rec._compiled(schema)
    n = opps.num_rows
    src = opps.column(_SRC).to_numpy().astype(np.int64) if n else np.zeros(0, np.int64)
    ent = comp.opp
    cols, first, ocols = _convert_entity(opps, ent, text, n)
    undeclared: dict[str, list[str]] = {}
    und = sorted(c for c in ocols if c not in ent.declared)
    if und:
        undeclared[OPPORTUNITY] = und
    if history and "outcome" in ent.declared:
        oc = cols.get("outcome")
        missing = np.ones(n, bool) if oc is None else oc.na  # bad outcomes are already in `first`
        for i in np.flatnonzero(missing).tolist():
            if i not in first:
                first[i] = ("outcome", "required field is missing (history needs the outcome)")

    # keys: raw ids (a bad id still keys its child rows; a good id's raw value is its converted one)
    id_key = _key_array(opps.column(_ID), n, text) if _ID in ocols else pa.nulls(n, pa.large_string())
    has_as_of = AS_OF in ocols
    if has_as_of:
        if AS_OF in cols:
            as_key = _key_from_col(cols[AS_OF], n)
        else:
            as_key = _key_array(opps.column(AS_OF), n, text)
    else:
        as_key = pa.nulls(n, pa.large_string())

    child_data = []
    asof_conv = _rec._make_converters(Field(AS_OF, "date"))
    for child in comp.children:
        got = children.get(child.name)
        if got is None:
            continue
        ctab, label = got
        m = ctab.num_rows
        csrc = ctab.column(_SRC).to_numpy().astype(np.int64) if m else np.zeros(0, np.int64)
        ccols, cfirst, ccols_names = _convert_entity(ctab, child, text, m)
        cund = sorted(c for c in ccols_names if c not in child.declared and c not in (CHILD_KEY, AS_OF))
        if cund:
            undeclared[child.name] = cund
        cid = _key_array(ctab.column(CHILD_KEY), m, text)
        keyed = has_as_of and AS_OF in ccols_names
        if keyed:
            acol = _convert(ctab.column(AS_OF), Field(AS_OF, "date"), text, asof_conv[0], asof_conv[0])
            cas = _key_from_col(acol, m)
        else:
            cas = None
        child_data.append((child, ctab, label, m, csrc, ccols, cfirst, cid, cas, keyed))

    # joint codes of ids and as_of over the opportunities and every child table
    id_codes = _codes([id_key] + [d[7] for d in child_data])
    as_arrays = [as_key] + [d[8] for d in child_data if d[9]]
    as_codes = _codes(as_arrays)
    n_as = int(max((c.max() for c in as_codes if len(c)), default=-1)) + 2
    oid_code = id_codes[0]
    oas_code = as_codes[0] + 1  # None -> 0
    okey_keyed = np.where(oid_code >= 0, oid_code * n_as + oas_code, -1)
    valid_o = np.flatnonzero(oid_code >= 0)

    sorted_cache: dict[bool, tuple[np.ndarray, np.ndarray]] = {}

    def index(keyed: bool):
        if keyed not in sorted_cache:
            k = okey_keyed if keyed else oid_code
            order = valid_o[np.argsort(k[valid_o], kind="stable")]
            sorted_cache[keyed] = (order, k[order])
        return sorted_cache[keyed]

    orphans: list[dict] = []
    pairs_of: list = []
    k_as = 1
    for ci, (child, ctab, label, m, csrc, ccols, cfirst, cid, cas, keyed) in enumerate(child_data):
        ccode_id = id_codes[1 + ci]
        if keyed:
            ccode = np.where(ccode_id >= 0, ccode_id * n_as + as_codes[k_as] + 1, -1)
            k_as += 1
        else:
            ccode = ccode_id
        order, skeys = index(keyed)
        lo = np.searchsorted(skeys, ccode, "left")
        hi = np.searchsorted(skeys, ccode, "right")
        cnt = np.where(ccode >= 0, hi - lo, 0)
        # orphans
        for j in np.flatnonzero(cnt == 0).tolist():
            oid = _py(cid[j])
            if oid is None:
                why = f"{CHILD_KEY} is missing"
            elif keyed:
                why = f"no opportunity with id {oid!r} and as_of {_py(cas[j])!r}"
            else:
                why = f"no opportunity with id {oid!r}"
            orphans.append({"table": child.name, "opportunity_id": oid, "row": int(csrc[j]) + 1, "reason": why})
        total = int(cnt.sum())
        starts = np.cumsum(cnt) - cnt
        pos = np.arange(total, dtype=np.int64) - np.repeat(starts, cnt) + np.repeat(lo, cnt)
        pj = np.repeat(np.arange(m, dtype=np.int64), cnt)
        pi = order[pos] if total else np.zeros(0, np.int64)
        if cfirst:
            # index of each child row within its record's list: rank among rows of the same key
            ko = np.argsort(ccode, kind="stable")
            sk = ccode[ko]
            newgrp = np.ones(m, bool)
            newgrp[1:] = sk[1:] != sk[:-1]
            gstart = np.maximum.accumulate(np.where(newgrp, np.arange(m), 0))
            rank = np.empty(m, np.int64)
            rank[ko] = np.arange(m) - gstart
            for j in sorted(cfirst):
                if cnt[j] == 0:
                    continue
                fname, reason = cfirst[j]
                for i in order[lo[j]:hi[j]].tolist():
                    if i not in first:
                        first[i] = (f"{child.name}[{rank[j]}].{fname}", f"{reason} ({label} row {int(csrc[j]) + 1})")
        pairs_of.append((child, pj, pi, ccols, m))

    # duplicates among the accepted rows, in row order
    bad = np.zeros(n, bool)
    if first:
        bad[list(first)] = True
    ok_idx = np.flatnonzero(~bad)
    if len(ok_idx):
        dupkey = oid_code[ok_idx] * n_as + oas_code[ok_idx]
        dup = pd.Series(dupkey).duplicated(keep="first").to_numpy()
        for i in ok_idx[dup].tolist():
            first[i] = (_ID, _DUPLICATE)
        if dup.any():
            bad[ok_idx[dup]] = True
            ok_idx = ok_idx[~dup]

    idc = cols.get(_ID)
    rejects = []
    for i in sorted(first):
        fld, reason = first[i]
        rid = idc.py(i) if idc is not None else None
        rejects.append({"id": rid, "field": fld, "reason": reason, "row": int(src[i]) + 1})

    # frames
    opp_fields = schema[OPPORTUNITY]
    ocols_out = {}
    for name in _output_names(schema, fields, OPPORTUNITY):
        f = opp_fields[name]
        col = cols.get(name)
        if col is None:
            ocols_out[name] = _empty_array(f.type, len(ok_idx), dates)
        else:
            ocols_out[name] = col.take(ok_idx, f.type, dates)
    opps_df = pd.DataFrame(ocols_out, index=pd.RangeIndex(len(ok_idx)))
    newpos = np.full(n, -1, np.int64)
    newpos[ok_idx] = np.arange(len(ok_idx))
    frames_children: dict[str, pd.DataFrame] = {}
    present = {p[0].name: p for p in pairs_of}
    for child in comp.children:
        cf = schema[child.name]
        names = _output_names(schema, fields, child.name)
        p = present.get(child.name)
        if p is None:
            sel = np.zeros(0, np.int64)
            rows = np.zeros(0, np.int64)
            ccols = {}
        else:
            _, pj, pi, ccols, m = p
            keep = newpos[pi] >= 0 if len(pi) else np.zeros(0, bool)
            pj, rows = pj[keep], newpos[pi[keep]]
            srt = np.argsort(rows, kind="stable")
            sel, rows = pj[srt], rows[srt]
        out = {ROW: rows}
        for name in names:
            col = ccols.get(name)
            out[name] = _empty_array(cf[name].type, len(sel), dates) if col is None else \
                col.take(sel, cf[name].type, dates)
        frames_children[child.name] = pd.DataFrame(out, index=pd.RangeIndex(len(sel)))
    return (Frames(opps=opps_df, children=frames_children), rejects, orphans, undeclared,
            src[ok_idx] + 1)


# --------------------------------------------------------------------------- #
# reading tables in batches
# --------------------------------------------------------------------------- #
def _csv_header(path: Path) -> list[str] | None:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _pandas_csv_batches(path: Path, skip_rows: int):
    """CSV read exactly as the reference reads it (pandas), in chunks, as all-text arrow tables."""
    try:
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig",
                             chunksize=_BATCH_ROWS)
        seen = 0
        for df in reader:
            if seen + len(df) <= skip_rows:
                seen += len(df)
                continue
            if seen < skip_rows:
                df = df.iloc[skip_rows - seen:]
            seen += len(df)
            names = [str(c) for c in df.columns]
            arrays = [pa.array(df.iloc[:, k].to_numpy(dtype=object), pa.large_string(), from_pandas=True)
                      for k in range(df.shape[1])]
            yield pa.table(arrays, names=names)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise ScoringError(f"{path}: cannot read the table: {e}") from e


def _iter_batches(path: Path, fmt: str):
    """Yield arrow tables of one source table in row order (CSV: every column text)."""
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
            raise ScoringError(f"{path}: cannot read the table: {e}") from e
        return
    if fmt == "ipc":
        with pa.OSFile(str(path), "rb") as fh:
            for b in pa.ipc.open_stream(fh):
                yield pa.Table.from_batches([b])
        return
    import pyarrow.csv as pacsv

    header = _csv_header(path)
    use_pandas = header is None or not header or len(set(header)) != len(header) or "" in header
    done = 0
    if not use_pandas:
        try:
            reader = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK, encoding="utf8"),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.large_string() for c in header},
                    strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
            if reader.schema.names != header:
                raise pa.ArrowInvalid("header differs")
            for b in reader:
                done += b.num_rows
                yield pa.Table.from_batches([b])
            return
        except (pa.ArrowException, OSError):  # ragged rows, odd headers...: the reference's own parser
            pass
    yield from _pandas_csv_batches(path, done)


def _pandas_index_columns(schema: pa.Schema) -> list[str]:
    md = schema.pandas_metadata or {}
    return [c for c in md.get("index_columns", []) if isinstance(c, str)]


def _read_whole(path: Path, fmt: str) -> pa.Table:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(path)
        except (pa.ArrowException, OSError) as e:
            raise ScoringError(f"{path}: cannot read the table: {e}") from e
        drop = _pandas_index_columns(t.schema)
        return t.drop_columns([c for c in drop if c in t.column_names]) if drop else t
    parts = list(_iter_batches(path, fmt))
    if not parts:
        return None
    return pa.concat_tables(parts).combine_chunks()


def _with_src(t: pa.Table, start: int = 0) -> pa.Table:
    return t.append_column(_SRC, pa.array(np.arange(start, start + t.num_rows, dtype=np.int64)))


def _plain_table(t: pa.Table) -> pa.Table:
    """Dictionary / view columns decoded (bucket files hold plain columns)."""
    if not any(pa.types.is_dictionary(f.type) or pa.types.is_string_view(f.type) for f in t.schema):
        return t
    return pa.table([_plain(c) for c in t.columns], names=t.column_names)


def _bucket_of(key: pa.ChunkedArray | pa.Array | None, n: int, B: int, src: np.ndarray) -> np.ndarray:
    """Bucket of each row: hash of the key's text mod B; rows without a key by row number."""
    if key is None:
        return (src % B).astype(np.int64)
    key = _plain(key)
    if not _is_str_type(key.type):
        try:
            key = pc.cast(key, pa.large_string())
        except pa.ArrowException:
            key = pa.array([None if v is None else str(v) for v in _ref_values(key).tolist()], pa.large_string())
    null = _np_bool(key.is_null())
    obj = key.to_numpy(zero_copy_only=False)
    if null.any():
        obj = obj.copy()
        obj[null] = ""
    h = pd.util.hash_array(obj.astype(object, copy=False), categorize=False)
    b = (h % np.uint64(B)).astype(np.int64)
    if null.any():
        b[null] = src[null] % B
    return b


# --------------------------------------------------------------------------- #
# partitions
# --------------------------------------------------------------------------- #
def _load_tables(spec: PartitionSpec) -> Chunk:
    parts: dict[str, tuple[pa.Table, str]] = {}
    opps = None
    for entity, path, label, schema in spec.tables:
        if path is None or not Path(path).exists():
            t = schema.empty_table()
        elif spec.fmt == "ipc":
            with pa.OSFile(str(path), "rb") as fh:
                t = pa.ipc.open_stream(fh).read_all().combine_chunks()
        else:
            t = _read_whole(Path(path), spec.fmt)
            t = schema.empty_table() if t is None else t
            if spec.fmt == "parquet":
                t = t.combine_chunks()
            t = _with_src(t)
        if entity == OPPORTUNITY:
            opps = t
        else:
            if CHILD_KEY not in t.column_names:
                raise ScoringError(f"{label}: the child table has no {CHILD_KEY!r} column")
            parts[entity] = (t, label)
    frames, rejects, orphans, undeclared, positions = _validate_tables(
        opps, parts, spec.schema, spec.history, spec.text, spec.fields, spec.dates)
    return Chunk(frames=frames, rejects=rejects, orphans=orphans, n_read=opps.num_rows,
                 undeclared_fields=undeclared, positions=positions, partition=spec.index)


def _records_frames(recs: list[dict], schema: Schema, fields, dates: str) -> Frames:
    """Validated nested records -> Frames (dtypes as the table path)."""
    def column(values: list, ftype: str):
        if ftype == "bool":
            na = np.array([v is None for v in values], dtype=bool)
            return pd.arrays.BooleanArray(np.array([bool(v) for v in values], dtype=bool), na)
        if ftype == "int":
            na = np.array([v is None for v in values], dtype=bool)
            return pd.arrays.IntegerArray(np.array([0 if v is None else v for v in values], dtype=np.int64), na)
        if ftype == "number":
            na = np.array([v is None for v in values], dtype=bool)
            return pd.arrays.FloatingArray(np.array([0.0 if v is None else v for v in values], dtype=np.float64), na)
        arr = pa.array(values, pa.large_string())
        if ftype == "date" and dates == "datetime64":
            return pd.array(pc.strptime(arr, "%Y-%m-%d", "s").to_numpy(zero_copy_only=False))
        return arr.to_pandas().array if len(arr) else pd.Series([], dtype="str").array

    of = schema[OPPORTUNITY]
    opps = pd.DataFrame({name: column([r.get(name) for r in recs], of[name].type)
                         for name in _output_names(schema, fields, OPPORTUNITY)},
                        index=pd.RangeIndex(len(recs)))
    children = {}
    for ent in schema:
        if ent == OPPORTUNITY:
            continue
        rows, items = [], []
        for i, r in enumerate(recs):
            its = r.get(ent) or ()
            if its:
                rows.extend([i] * len(its))
                items.extend(its)
        cf = schema[ent]
        out = {ROW: np.asarray(rows, dtype=np.int64)}
        for name in _output_names(schema, fields, ent):
            out[name] = column([it.get(name) for it in items], cf[name].type)
        children[ent] = pd.DataFrame(out, index=pd.RangeIndex(len(items)))
    return Frames(opps=opps, children=children)


def _load_jsonl(spec: PartitionSpec) -> Chunk:
    comp = _rec._compiled(spec.schema)
    undeclared: dict[str, set] = {e: set() for e in (OPPORTUNITY, *comp.child_names)}
    decoder = json.JSONDecoder(parse_constant=_rec._JSONConstant)
    good: list[tuple[int, dict]] = []
    bad: list[dict] = []
    n_read = 0
    path = Path(spec.path)
    with open(path, "rb") as fh:
        fh.seek(spec.start)
        pos = spec.start
        lineno = spec.first_line - 1
        end = spec.end if spec.end >= 0 else None
        while end is None or pos < end:
            line = fh.readline()
            if not line:
                break
            pos += len(line)
            lineno += 1
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            n_read += 1
            try:
                raw = decoder.decode(line.decode("utf-8"))
            except ValueError as e:
                bad.append({"id": None, "field": None, "reason": f"broken JSON: {e}", "line": lineno})
                continue
            if not isinstance(raw, dict):
                bad.append({"id": None, "field": None,
                            "reason": f"a line must hold a JSON object, not {type(raw).__name__}", "line": lineno})
                continue
            try:
                good.append((lineno, _rec._validate_nested(raw, comp, spec.history, undeclared)))
            except RecordError as e:
                bad.append({**e.to_dict(), "line": lineno})
                _rec._scan_undeclared(raw, comp, undeclared)
    dup_lines = set(_rec._check_duplicates(good))
    recs, lines = [], []
    for ln, rec in good:
        if ln in dup_lines:
            bad.append({"id": rec[_ID], "field": _ID, "reason": _DUPLICATE, "line": ln})
        else:
            recs.append(rec)
            lines.append(ln)
    bad.sort(key=lambda r: r["line"])
    for c in comp.child_names:
        undeclared[c].discard(CHILD_KEY)
    frames = _records_frames(recs, spec.schema, spec.fields, spec.dates)
    return Chunk(frames=frames, rejects=bad, orphans=[], n_read=n_read,
                 undeclared_fields={e: sorted(s) for e, s in undeclared.items() if s},
                 positions=np.asarray(lines, dtype=np.int64), partition=spec.index,
                 needs_dedupe=spec.needs_dedupe)


def validate_dataframes(opps: pd.DataFrame, children: Mapping[str, pd.DataFrame] | None = None,
                        schema: Schema = CONTRACT, *, history: bool = False, fields=None,
                        dates: str = "text") -> Chunk:
    """Validate deals given as pandas tables (the table form in memory) column-wise into a :class:`Chunk`.

    The in-memory twin of reading a Parquet folder: typed columns are checked
    as Parquet columns are (a bool field must hold booleans, ...).  Child
    tables carry ``opportunity_id`` (and ``as_of`` for several snapshots per
    id).  Raises ``pyarrow.ArrowInvalid``/``ArrowTypeError`` when a column
    cannot become an Arrow column at all (e.g. mixed Python types); callers
    can then fall back to :func:`scoring.contract.records.validate_frames`.
    """
    def table(df: pd.DataFrame) -> pa.Table:
        return _with_src(_plain_table(pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)))

    parts: dict[str, tuple[pa.Table, str]] = {}
    for name, df in (children or {}).items():
        if CHILD_KEY not in df.columns:
            raise ScoringError(f"{name}: the child table has no {CHILD_KEY!r} column")
        parts[name] = (table(df), name)
    o = table(opps)
    frames, rejects, orphans, undeclared, positions = _validate_tables(
        o, parts, schema, history, False, fields, dates)
    return Chunk(frames=frames, rejects=rejects, orphans=orphans, n_read=o.num_rows,
                 undeclared_fields=undeclared, positions=positions, partition=0)


def load_partition(spec: PartitionSpec) -> Chunk:
    """Load and validate one partition (module level: usable in a worker process)."""
    import gc

    was = gc.isenabled()
    gc.disable()
    try:
        if spec.kind == "jsonl":
            return _load_jsonl(spec)
        return _load_tables(spec)
    finally:
        if was:
            gc.enable()


def _take_opps(frames: Frames, keep: np.ndarray) -> Frames:
    """Frames restricted to the deals where ``keep`` is True (children renumbered)."""
    idx = np.flatnonzero(keep)
    opps = frames.opps.iloc[idx].reset_index(drop=True)
    newpos = np.full(len(keep), -1, np.int64)
    newpos[idx] = np.arange(len(idx))
    children = {}
    for name, df in frames.children.items():
        r = newpos[df[ROW].to_numpy(dtype=np.int64)] if len(df) else np.zeros(0, np.int64)
        sel = r >= 0
        c = df.loc[sel].reset_index(drop=True)
        c[ROW] = r[sel]
        children[name] = c
    return Frames(opps=opps, children=children)


class DuplicateFilter:
    """Rejects records whose ``(id, as_of)`` an EARLIER chunk accepted (JSON Lines).

    Call it on every chunk in partition order; chunks with ``needs_dedupe``
    False pass through untouched.  The later duplicate becomes a reject
    ``{"id", "field": "id", "reason": "duplicate (id, as_of)", "line"}``, as
    :func:`scoring.contract.records.read_jsonl` reports it.
    """

    def __init__(self):
        self.seen: set = set()

    def __call__(self, chunk: Chunk) -> Chunk:
        if not chunk.needs_dedupe or len(chunk.frames.opps) == 0:
            return chunk
        opps = chunk.frames.opps
        ids = opps[_ID].to_numpy(dtype=object, na_value=None).tolist()
        if AS_OF in opps.columns:
            a = opps[AS_OF]
            if pd.api.types.is_datetime64_any_dtype(a.dtype):
                txt = a.dt.strftime("%Y-%m-%d")
                asofs = txt.to_numpy(dtype=object, na_value=None).tolist()
            else:
                asofs = a.to_numpy(dtype=object, na_value=None).tolist()
        else:
            asofs = [None] * len(ids)
        seen = self.seen
        keep = np.ones(len(ids), bool)
        dups = []
        for i, k in enumerate(zip(ids, asofs)):
            if k in seen:
                keep[i] = False
                dups.append(i)
            else:
                seen.add(k)
        if not dups:
            return chunk
        rejects = list(chunk.rejects)
        for i in dups:
            rejects.append({"id": ids[i], "field": _ID, "reason": _DUPLICATE, "line": int(chunk.positions[i])})
        rejects.sort(key=lambda r: r["line"])
        return Chunk(frames=_take_opps(chunk.frames, keep), rejects=rejects, orphans=chunk.orphans,
                     n_read=chunk.n_read, undeclared_fields=chunk.undeclared_fields,
                     positions=chunk.positions[keep], partition=chunk.partition, needs_dedupe=False)


# --------------------------------------------------------------------------- #
# the stream
# --------------------------------------------------------------------------- #
class InputStream:
    """Stream a contract input (JSON Lines or table form) as validated chunks.

    Parameters
    ----------
    source : path
        As for :func:`scoring.contract.records.read_records`: a ``.jsonl`` /
        ``.ndjson`` file (optionally ``.gz``), a folder of tables, or a single
        opportunities ``.csv`` / ``.parquet`` file (no child tables).
    schema : Mapping
        entity -> field -> Field (``pack.schema``).
    history : bool
        Closed deals: ``outcome`` is required.
    chunk_size : int
        Target deals per partition.
    workdir : path, optional
        Where bucket / part files go (a temp dir by default; what this object
        creates there is removed by :meth:`close`).
    fields : Mapping, optional
        entity -> names of the fields to keep in the frames, e.g.
        ``pack.fields`` (as :func:`~scoring.evidence.columnar.records_to_frames`: an
        entity not listed keeps no field; ``id`` and ``as_of`` are always
        kept).  Default: every declared field.  Validation always covers the
        whole schema.
    dates : str
        ``"text"`` ('YYYY-MM-DD' strings, default) or ``"datetime64"``.
    """

    def __init__(self, source, schema: Schema = CONTRACT, *, history: bool = False, chunk_size: int = 50_000,
                 workdir=None, fields: Mapping | None = None, dates: str = "text"):
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if dates not in ("text", "datetime64"):
            raise ValueError("dates must be 'text' or 'datetime64'")
        _rec._compiled(schema)  # fail early on a bad schema
        self.source = Path(source)
        self.schema = schema
        self.history = bool(history)
        self.chunk_size = int(chunk_size)
        self.fields = None if fields is None else {k: tuple(v) for k, v in fields.items()}
        self.dates = dates
        self._workdir_arg = workdir
        self._tmp: Path | None = None
        self._specs: list[PartitionSpec] | None = None
        self._resolve()

    # ---- input discovery (the checks of read_records / read_tables)
    def _resolve(self):
        path = self.source
        comp = _rec._compiled(self.schema)
        self.kind = "tables"
        self._tables: list[tuple[str, Path, str]] = []
        if path.is_dir():
            found = [path / f"opportunities{x}" for x in _TABLES_EXT if (path / f"opportunities{x}").exists()]
            if not found:
                raise FileNotFoundError(f"{path}: no opportunities.csv or opportunities.parquet")
            if len(found) > 1:
                raise ScoringError(f"{path}: both opportunities.csv and opportunities.parquet; keep one")
            opp = found[0]
            ext = opp.suffix.lower()
            self._tables.append((OPPORTUNITY, opp, opp.name))
            for child in comp.children:
                p = path / f"{child.name}{ext}"
                others = [path / f"{child.name}{x}" for x in _TABLES_EXT if x != ext]
                if p.exists():
                    self._tables.append((child.name, p, p.name))
                elif any(o.exists() for o in others):
                    other = next(o for o in others if o.exists())
                    raise ScoringError(f"{other}: child tables must have the format of {opp.name} ({ext}); "
                                       f"convert it or the opportunities table")
            self.fmt = ext[1:]
            return
        name = path.name.lower()
        if name.endswith(_JSONL_SUFFIXES):
            if not path.exists():
                raise FileNotFoundError(f"{path}: no such file")
            self.kind = "jsonl"
            self.fmt = "jsonl"
            return
        if path.suffix.lower() in _TABLES_EXT:
            if not path.exists():
                raise FileNotFoundError(f"{path}: no such file")
            self._tables.append((OPPORTUNITY, path, path.name))
            self.fmt = path.suffix.lower()[1:]
            return
        raise ScoringError(
            f"{path}: not a records input (expected a .jsonl/.ndjson[.gz] file, a folder of tables, "
            f"or an opportunities .csv/.parquet file)")

    def _workdir(self) -> Path:
        if self._tmp is None:
            base = self._workdir_arg
            if base is not None:
                Path(base).mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix=".ingest-", dir=base))
        return self._tmp

    def _spec(self, **kw) -> PartitionSpec:
        return PartitionSpec(schema=self.schema, history=self.history, fields=self.fields, dates=self.dates, **kw)

    # ---- partitioning
    def partitions(self) -> list[PartitionSpec]:
        """The partitions, in output order (computed once; may run the bucketing pass)."""
        if self._specs is None:
            self._specs = self._jsonl_partitions() if self.kind == "jsonl" else self._table_partitions()
        return list(self._specs)

    def _table_schemas(self) -> list[pa.Schema]:
        out = []
        for entity, path, label in self._tables:
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                try:
                    s = pq.read_schema(path)
                except (pa.ArrowException, OSError) as e:
                    raise ScoringError(f"{path}: cannot read the table: {e}") from e
                drop = set(_pandas_index_columns(s))
                fields = [pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else
                                   (pa.large_string() if pa.types.is_string_view(f.type) else f.type))
                          for f in s if f.name not in drop]
                s = pa.schema(fields)
            else:
                header = _csv_header(path)
                if header is None:
                    s = None  # unreadable: the reader reports it
                else:
                    seen: dict[str, int] = {}
                    names = []
                    for h in header:  # pandas' names for duplicate headers
                        k = seen.get(h, 0)
                        names.append(h if k == 0 else f"{h}.{k}")
                        seen[h] = k + 1
                    s = pa.schema([pa.field(h, pa.large_string()) for h in names])
            if s is not None and entity != OPPORTUNITY and CHILD_KEY not in s.names:
                raise ScoringError(f"{label}: the child table has no {CHILD_KEY!r} column")
            out.append(s)
        return out

    def _estimate_rows(self) -> int:
        _, path, _ = self._tables[0]
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                return pq.ParquetFile(path).metadata.num_rows
            except (pa.ArrowException, OSError) as e:
                raise ScoringError(f"{path}: cannot read the table: {e}") from e
        return _estimate_lines(path) - 1

    def _table_partitions(self) -> list[PartitionSpec]:
        schemas = self._table_schemas()
        n = self._estimate_rows()
        B = max(1, math.ceil(n / self.chunk_size))
        text = self.fmt == "csv"
        if B == 1:
            tables = tuple((e, str(p), label, s if s is not None else pa.schema([]))
                           for (e, p, label), s in zip(self._tables, schemas))
            return [self._spec(kind="tables", index=0, fmt=self.fmt, text=text, tables=tables)]
        work = self._workdir()
        files: dict[tuple[str, int], str] = {}
        out_schemas: dict[str, pa.Schema] = {}
        for (entity, path, label), s in zip(self._tables, schemas):
            keycol = _ID if entity == OPPORTUNITY else CHILD_KEY
            writers: dict[int, Any] = {}
            start = 0
            try:
                for t in _iter_batches(path, self.fmt):
                    t = _plain_table(t)
                    m = t.num_rows
                    src = np.arange(start, start + m, dtype=np.int64)
                    start += m
                    t = t.append_column(_SRC, pa.array(src))
                    if entity not in out_schemas:
                        out_schemas[entity] = t.schema
                    elif t.schema != out_schemas[entity]:
                        t = t.cast(out_schemas[entity])
                    if m == 0:
                        continue
                    key = t.column(keycol) if keycol in t.column_names else None
                    b = _bucket_of(key, m, B, src)
                    order = np.argsort(b, kind="stable")
                    counts = np.bincount(b, minlength=B)
                    t = t.take(pa.array(order))
                    off = 0
                    for k in np.flatnonzero(counts).tolist():
                        c = int(counts[k])
                        w = writers.get(k)
                        if w is None:
                            fp = work / f"{entity}-{k:05d}.arrow"
                            w = (pa.OSFile(str(fp), "wb"), None)
                            w = (w[0], pa.ipc.new_stream(w[0], t.schema))
                            writers[k] = w
                            files[(entity, k)] = str(fp)
                        w[1].write_table(t.slice(off, c))
                        off += c
            finally:
                for sink, wr in writers.values():
                    wr.close()
                    sink.close()
            if entity not in out_schemas:
                base = s if s is not None else pa.schema([])
                out_schemas[entity] = base.append(pa.field(_SRC, pa.int64()))
        specs = []
        for k in range(B):
            tables = tuple((e, files.get((e, k)), label, out_schemas[e]) for e, _, label in self._tables)
            specs.append(self._spec(kind="tables", index=k, fmt="ipc", text=text, tables=tables))
        return specs

    def _jsonl_partitions(self) -> list[PartitionSpec]:
        path = self.source
        if path.name.lower().endswith(".gz"):
            return self._gz_partitions()
        size = path.stat().st_size
        est = _estimate_lines(path)
        B = max(1, math.ceil(est / self.chunk_size))
        bounds = [0]
        with open(path, "rb") as fh:
            for k in range(1, B):
                fh.seek(max(bounds[-1], size * k // B))
                if fh.tell() > 0:
                    fh.seek(fh.tell() - 1)
                    fh.readline()  # to the start of the next line
                p = fh.tell()
                if p < size and p > bounds[-1]:
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
        return [self._spec(kind="jsonl", index=k, path=str(path), start=a, end=b, first_line=firsts[k],
                           needs_dedupe=multi)
                for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]

    def _gz_partitions(self) -> list[PartitionSpec]:
        work = self._workdir()
        specs, k, line_no = [], 0, 0
        out = None
        try:
            with gzip.open(self.source, "rb") as fh:
                count = 0
                first = 1
                for line in fh:
                    if out is None:
                        fp = work / f"part-{k:05d}.jsonl"
                        out = open(fp, "wb")
                        first = line_no + 1
                        count = 0
                    out.write(line)
                    line_no += 1
                    count += 1
                    if count >= self.chunk_size:
                        out.close()
                        out = None
                        specs.append((str(work / f"part-{k:05d}.jsonl"), first))
                        k += 1
        except (OSError, EOFError) as e:
            raise ScoringError(f"{self.source}: cannot read: {e}") from e
        finally:
            if out is not None:
                out.close()
                specs.append((str(work / f"part-{k:05d}.jsonl"), first))
        multi = len(specs) > 1
        return [self._spec(kind="jsonl", index=i, path=p, start=0, end=-1, first_line=f, needs_dedupe=multi)
                for i, (p, f) in enumerate(specs)]

    # ---- loading
    def load(self, spec: PartitionSpec) -> Chunk:
        """Load one partition (see :func:`load_partition`)."""
        return load_partition(spec)

    def __iter__(self) -> Iterator[Chunk]:
        """Every partition in order, duplicates across partitions resolved."""
        dedupe = DuplicateFilter()
        for spec in self.partitions():
            yield dedupe(load_partition(spec))

    def close(self):
        """Remove the temp files this stream made."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._specs = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def _estimate_lines(path: Path, sample: int = 1 << 20) -> int:
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
