"""The contract's typing rules over whole columns (Arrow arrays).

Each converter has a conservative fast path per field type (``is_in`` for
enums, anchored regexes and casts for numbers in CSV text, dtype checks for
typed columns) and hands every cell the fast path does not accept to the
per-value converter of :mod:`scoring.contract.values`, so a reason is always
that converter's words.  A column that is no Arrow array at all (a numpy
object array: a pandas column mixing Python types) goes cell by cell through
the per-value converter.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.contract.schema import Field
from scoring.contract.values import (DATE_PATTERN, FALSE_WORDS, INT_PATTERN, NUM_PATTERN, NUMBER_MAX, NUMBER_TINY,
                                     TRUE_WORDS, Bad, Unreadable, is_null)

_KIND = {"bool": "bool", "int": "int", "number": "float"}
_NP = {"bool": np.bool_, "int": np.int64, "float": np.float64}
_NONBLANK = "[!-~]"  # an ASCII graphic character: never whitespace, so the text is not blank
_INT_DIGITS = 18  # longer whole numbers may not fit int64: the per-value converter reads them
_INT_TEXT = f"^{INT_PATTERN}$"
_NUM_TEXT = f"^{NUM_PATTERN}$"
_DATE_TEXT = f"^{DATE_PATTERN}$"
_TRUE = pa.array(sorted(TRUE_WORDS))
_FALSE = pa.array(sorted(FALSE_WORDS))
_DIM = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_DAY_MIN, _DAY_MAX = -719162, 2932896  # DATE_MIN and DATE_MAX as days since 1970-01-01


def number_ok(x: np.ndarray) -> np.ndarray:
    """Where real numbers are within the contract's range (finite; 0 or NUMBER_TINY..NUMBER_MAX in magnitude)."""
    a = np.abs(x)
    return (a == 0) | ((a >= NUMBER_TINY) & (a <= NUMBER_MAX))


def np_bool(x: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow result (nulls as False) as a numpy bool array."""
    if isinstance(x, pa.ChunkedArray):
        x = x.combine_chunks()
    if x.null_count:
        x = pc.fill_null(x, False)
    return x.to_numpy(zero_copy_only=False).astype(bool, copy=False)


def is_str_type(t: pa.DataType) -> bool:
    """Whether an Arrow type is text."""
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def plain(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array, dictionaries decoded, string views as plain strings."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.large_string())
    return arr


def cell_values(arr: pa.Array) -> np.ndarray:
    """Python values of a typed column as the per-value converters see them (None for nulls).

    A typed table's cells are what pandas makes of them
    (``dtype_backend="numpy_nullable"``): numpy and pandas scalars, Timestamps.
    """
    from pandas.io._util import arrow_table_to_pandas

    try:
        s = arrow_table_to_pandas(pa.table({"c": arr}), dtype_backend="numpy_nullable")["c"]
    except (ValueError, OverflowError, pa.ArrowException):  # a cell Python cannot hold, e.g. a date in year 0
        return np.array([_cell(arr, i) for i in range(len(arr))], dtype=object)
    try:
        return s.to_numpy(dtype=object, na_value=None)
    except (TypeError, ValueError):  # pragma: no cover - exotic extension dtypes
        return np.array([None if is_null(v) else v for v in s.tolist()], dtype=object)


def _cell(arr: pa.Array, i: int) -> Any:
    """One cell as a Python value; :class:`~scoring.contract.values.Unreadable` when Python cannot hold it."""
    try:
        return arr[i].as_py()
    except (ValueError, OverflowError, pa.ArrowException):
        t = arr.type
        storage = pa.int32() if pa.types.is_date32(t) or pa.types.is_time32(t) else pa.int64()
        raw = arr.slice(i, 1).cast(storage)[0].as_py() if pa.types.is_temporal(t) else "?"
        unit = " days from 1970-01-01" if pa.types.is_date32(t) else ""
        return Unreadable(f"{t} {raw}{unit}")


class Col:
    """One converted column.

    ``kind`` is ``bool`` / ``int`` / ``float`` (numpy ``data``) or ``str``
    (Arrow string ``data``); ``na`` is True where unknown (null or bad);
    ``errors`` maps row -> reason; ``raw(i)`` is the input value of row i.
    """

    __slots__ = ("kind", "data", "na", "errors", "_raw")

    def __init__(self, kind: str, data: Any, na: np.ndarray, errors: dict[int, str], raw: Callable[[int], Any]):
        self.kind, self.data, self.na, self.errors, self._raw = kind, data, na, errors, raw

    def raw(self, i: int) -> Any:
        return self._raw(i)

    def py(self, i: int) -> Any:
        """The converted Python value of row i (None when unknown)."""
        if self.na[i]:
            return None
        v = self.data[i]
        return v.as_py() if isinstance(v, pa.Scalar) else v.item()

    def values(self) -> list:
        """Every converted value as a Python value (None when unknown)."""
        out = self.data.to_pylist() if self.kind == "str" else self.data.tolist()
        for i in np.flatnonzero(self.na).tolist():
            out[i] = None
        return out

    def take(self, idx: np.ndarray, ftype: str, dates: str) -> Any:
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
        return text_array(arr, ftype, dates)


def text_array(arr: pa.Array, ftype: str, dates: str) -> Any:
    """An Arrow string column as the pandas array of the Frames dtype (``str``, or ``datetime64[s]``)."""
    if ftype == "date" and dates == "datetime64":
        return pd.array(pc.strptime(arr, "%Y-%m-%d", "s").to_numpy(zero_copy_only=False))
    return arr.to_pandas().array if len(arr) else pd.Series([], dtype="str").array


def _patch(kind: str, data: Any, na: np.ndarray, values: dict[int, Any]) -> Any:
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


def _fallback(rows: np.ndarray, get: Callable[[int], Any], conv: Callable) -> tuple[dict, dict]:
    """Run the per-value converter on the given rows: (row -> value, row -> reason)."""
    vals, errs = {}, {}
    for i in rows.tolist():
        v = get(i)
        if v is None:
            vals[i] = None
            continue
        try:
            vals[i] = conv(v)
        except Bad as e:
            errs[i] = e.args[0]
            vals[i] = None
    return vals, errs


def _date_text_ok(a: pa.Array, m: np.ndarray) -> np.ndarray:
    """Of the rows matching YYYY-MM-DD (mask m), those that are certainly dates (year >= 1).

    Anything else goes to the per-value converter, which decides.
    """
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


def text_column(a: pa.Array | pa.ChunkedArray, f: Field, text_conv: Callable) -> Col:
    """A CSV column (all text; ``""`` and null are unknown) for field ``f``."""
    a = plain(a)
    if a.null_count:
        a = pc.fill_null(a, "")
    n = len(a)
    t = f.type
    empty = np_bool(pc.equal(pc.binary_length(a), 0))
    suspect = None
    if t == "string":
        data, kind, na = a, "str", empty.copy()
        if f.required:
            suspect = ~empty & ~np_bool(pc.match_substring_regex(a, _NONBLANK))
    elif t == "enum":
        ok = np_bool(pc.is_in(a, value_set=pa.array(list(f.values), a.type)))
        data, kind, na, suspect = a, "str", ~ok, ~ok & ~empty
    elif t == "bool":
        low = pc.ascii_lower(a)
        tr = np_bool(pc.is_in(low, value_set=_TRUE.cast(a.type)))
        fa = np_bool(pc.is_in(low, value_set=_FALSE.cast(a.type)))
        na = ~(tr | fa)
        data, kind, suspect = tr, "bool", na & ~empty
    elif t in ("int", "number"):
        kind = _KIND[t]
        m = np_bool(pc.match_substring_regex(a, _INT_TEXT if t == "int" else _NUM_TEXT))
        if t == "int":
            m &= np_bool(pc.less_equal(pc.binary_length(a), _INT_DIGITS))
        data = np.zeros(n, _NP[kind])
        if m.any():
            sub = a.filter(pa.array(m))
            try:
                vals = (pc.cast(pc.utf8_ltrim(sub, "+"), pa.int64()) if t == "int"
                        else pc.cast(sub, pa.float64())).to_numpy()
            except pa.ArrowInvalid:  # pragma: no cover - the per-value converter reads them
                m = np.zeros(n, bool)
            else:
                data[np.flatnonzero(m)] = vals
        bad = ~m
        if t == "number":
            bad |= ~number_ok(data)
        if f.min is not None:
            bad |= m & (data < f.min)
        na = bad.copy()
        suspect = bad & ~empty
    elif t == "date":
        ok = _date_text_ok(a, np_bool(pc.match_substring_regex(a, _DATE_TEXT)))
        data, kind, na, suspect = a, "str", ~ok, ~ok & ~empty
    else:  # pragma: no cover - merge_schema keeps other types out
        raise ValueError(f"unknown type {t!r}")
    na |= empty
    errors: dict = {}

    def raw(i: int) -> Any:
        return a[i].as_py()

    if suspect is not None and suspect.any():
        vals, errors = _fallback(np.flatnonzero(suspect), raw, text_conv)
        data = _patch(kind, data, na, vals)
    return Col(kind, data, na, errors, raw)


def typed_column(arr: pa.Array | pa.ChunkedArray | np.ndarray, f: Field, native: Callable) -> Col:
    """A typed column (Parquet, pandas) for field ``f``, checked as the per-value converter checks values.

    ``arr`` may be a numpy object array of Python values (None for nulls):
    every value then goes through ``native``.
    """
    t = f.type
    kind = "str" if t in ("string", "enum", "date") else _KIND[t]
    ref: list = []
    data = None
    suspect = None
    if isinstance(arr, np.ndarray):
        n = len(arr)
        ref.append(arr)
    else:
        arr = plain(arr)
        typ = arr.type
        n = len(arr)
        null = np_bool(arr.is_null())
        na = null.copy()
        is_int = pa.types.is_integer(typ)
        is_float = pa.types.is_floating(typ)
        if is_str_type(typ) and kind == "str":
            data = arr
            if t == "string":
                if f.required:
                    suspect = ~null & ~np_bool(pc.match_substring_regex(arr, _NONBLANK))
            elif t == "enum":
                suspect = ~np_bool(pc.is_in(arr, value_set=pa.array(list(f.values), typ))) & ~null
            else:
                suspect = ~_date_text_ok(arr, np_bool(pc.match_substring_regex(arr, _DATE_TEXT))) & ~null
            if suspect is not None:
                na |= suspect
        elif pa.types.is_boolean(typ) and t == "bool":
            data = np_bool(arr)
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
                    bad = ~number_ok(x)
                    data = x
            else:
                try:
                    data = pc.cast(arr, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
                except pa.ArrowInvalid:  # uint64 beyond int64: Python ints, cell by cell
                    data = None
                else:
                    if t == "number":
                        data = data.astype(np.float64)
                        bad = ~na & ~number_ok(data)
                    else:
                        bad = np.zeros(n, bool)
            if data is not None:
                if f.min is not None:
                    bad |= ~na & (data < f.min)
                suspect = bad
                na = na | bad
        elif t == "date" and (pa.types.is_date(typ) or (pa.types.is_timestamp(typ) and typ.tz is None)):
            days = pc.cast(pc.cast(arr, pa.date32()) if pa.types.is_timestamp(typ) else arr, pa.date32())
            d = days.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
            out = (d < _DAY_MIN) | (d > _DAY_MAX)
            if out.any():  # those rows go to the per-value converter, which rejects them
                days = pc.if_else(pa.array(~out), days, pa.scalar(None, pa.date32()))
                suspect = out
                na = na | out
            data = pc.cast(days, pa.string())
    if data is None:  # any other type: every value through the per-value converter
        if not ref:
            ref.append(cell_values(arr))
        vals = ref[0]
        data = pa.nulls(n, pa.large_string()) if kind == "str" else np.zeros(n, _NP[kind])
        na = np.ones(n, bool)
        suspect = np.fromiter((v is not None for v in vals), bool, n)

    def raw(i: int) -> Any:
        if not ref:
            ref.append(cell_values(arr))
        return ref[0][i]

    errors: dict = {}
    if suspect is not None and suspect.any():
        vals, errors = _fallback(np.flatnonzero(suspect), raw, native)
        data = _patch(kind, data, na, vals)
    return Col(kind, data, na, errors, raw)


def raw_values(arr: pa.Array | pa.ChunkedArray | np.ndarray, text: bool) -> list:
    """An undeclared column as Python values, unconverted: an empty CSV cell and a null are None."""
    if isinstance(arr, np.ndarray):
        return [None if is_null(v) else v for v in arr.tolist()]
    arr = plain(arr)
    if text:
        return [None if v == "" else v for v in arr.to_pylist()]
    return cell_values(arr).tolist()
