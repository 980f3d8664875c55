"""A field of a chunk of deals as numpy arrays, and what each check of the grammar means on it.

:class:`Column` holds the values of one field (of the deals, or of their
child rows) and a known-mask; its methods are the grammar's tests
(:mod:`scoring.evidence.grammar`) run element-wise with durable-rules'
semantics: an unknown value fails every test but ``$nex``.  Columns are read
from pandas (:func:`series_column`, a chunk's frames) or from Python values
(:func:`values_column`, one record).
"""
from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np
import pandas as pd

from scoring.evidence.compiled import day_number
from scoring.evidence.status import STATUS_CODES

_CMP: dict[str, Callable] = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


class Column:
    """One field of one table as numpy arrays.

    kind: ``bool`` | ``num`` | ``cat`` | ``date`` | ``status``.
    ``vals``: bool / numbers / category codes (-1 = unknown) / day numbers / status codes.
    ``known``: bool mask, or None when every value is known.
    ``index``: for ``cat``, value -> code.
    """

    __slots__ = ("kind", "vals", "known", "index")

    def __init__(self, kind: str, vals: np.ndarray, known: np.ndarray | None = None,
                 index: dict[str, int] | None = None):
        self.kind, self.vals, self.known, self.index = kind, vals, known, index

    def _and_known(self, m: np.ndarray) -> np.ndarray:
        return m if self.known is None else (m & self.known)

    def ex(self) -> np.ndarray:
        """``$ex``: known."""
        if self.known is None:
            return np.ones(len(self.vals), dtype=bool)
        return self.known.copy()

    def nex(self) -> np.ndarray:
        """``$nex``: unknown."""
        if self.known is None:
            return np.zeros(len(self.vals), dtype=bool)
        return ~self.known

    def eq(self, v: Any) -> np.ndarray:
        """``{field: v}``: known and equal."""
        k = self.kind
        n = len(self.vals)
        if k == "cat":
            code = self.index.get(v) if isinstance(v, str) else None
            return np.zeros(n, bool) if code is None else (self.vals == code)
        if k == "status":
            code = STATUS_CODES.get(v) if isinstance(v, str) else None
            return np.zeros(n, bool) if code is None else (self.vals == code)
        if k == "bool":
            if not isinstance(v, bool):  # a validated pack never compares a bool with a non-bool
                return np.zeros(n, bool)
            return self._and_known(self.vals.copy() if v else ~self.vals)
        if k == "date":
            day = day_number(v)
            return np.zeros(n, bool) if day is None else self._and_known(self.vals == day)
        # num
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return np.zeros(n, bool)
        return self._and_known(self.vals == v)

    def neq(self, v: Any) -> np.ndarray:
        """``$neq``: known and not equal."""
        k = self.kind
        if k == "cat":
            code = self.index.get(v) if isinstance(v, str) else None
            return self.ex() if code is None else self._and_known(self.vals != code)
        if k == "status":
            code = STATUS_CODES.get(v) if isinstance(v, str) else None
            return np.ones(len(self.vals), bool) if code is None else (self.vals != code)
        if k == "bool":
            if not isinstance(v, bool):
                return self.ex()
            return self._and_known(~self.vals if v else self.vals.copy())
        if k == "date":
            day = day_number(v)
            return self.ex() if day is None else self._and_known(self.vals != day)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return self.ex()
        return self._and_known(self.vals != v)

    def cmp(self, op: str, v: Any) -> np.ndarray:
        """``$gt``/``$gte``/``$lt``/``$lte``: known and in order (numbers only)."""
        if self.kind != "num" or isinstance(v, bool) or not isinstance(v, (int, float)):
            return np.zeros(len(self.vals), bool)  # the loader allows comparisons on numbers only
        return self._and_known(_CMP[op](self.vals, v))


def _known_mask(s: pd.Series) -> np.ndarray | None:
    na = s.isna().to_numpy()
    return ~na if na.any() else None


def _bool_col(s: pd.Series) -> Column:
    known = _known_mask(s)
    vals = s.to_numpy(dtype=bool, na_value=False) if known is not None else s.to_numpy(dtype=bool)
    return Column("bool", vals, known)


def _num_col(s: pd.Series, ftype: str) -> Column:
    known = _known_mask(s)
    dt = s.dtype
    if ftype == "int" and (isinstance(dt, pd.Int64Dtype) or pd.api.types.is_integer_dtype(dt)):
        vals = s.to_numpy(dtype=np.int64, na_value=0)
    else:
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        if known is None:
            nan = np.isnan(vals)
            known = ~nan if nan.any() else None
    return Column("num", vals, known)


def _factorize(s: pd.Series) -> tuple[np.ndarray, list]:
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy().astype(np.int64)
        return codes, list(s.cat.categories)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), list(uniques)


def _cat_col(s: pd.Series) -> Column:
    codes, uniques = _factorize(s)
    index = {}
    for i, u in enumerate(uniques):
        if isinstance(u, str):
            index.setdefault(u, i)
    na = codes < 0
    return Column("cat", codes, ~na if na.any() else None, index)


def date_column(s: pd.Series) -> Column:
    """A date column (``datetime64``, or text ``'YYYY-MM-DD'``) as day numbers; other text is unknown."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        d = s.to_numpy(dtype="datetime64[D]")
        nat = np.isnat(d)
        vals = d.astype(np.int64)
        return Column("date", vals, ~nat if nat.any() else None)
    codes, uniques = _factorize(s)
    udays = np.empty(len(uniques) + 1, dtype=np.int64)
    ok = np.zeros(len(uniques) + 1, dtype=bool)
    for i, u in enumerate(uniques):
        day = day_number(u)
        if day is not None:
            udays[i], ok[i] = day, True
    udays[-1] = 0  # code -1 (NA) maps to the last slot
    vals = udays[codes]
    known = ok[codes]
    return Column("date", vals, None if known.all() else known)


def series_column(s: pd.Series, ftype: str) -> Column:
    """A pandas column of a field of type ``ftype`` (see :mod:`scoring.evidence.columnar` for the dtypes)."""
    if ftype == "bool":
        return _bool_col(s)
    if ftype in ("int", "number"):
        return _num_col(s, ftype)
    if ftype == "date":
        return date_column(s)
    return _cat_col(s)


def unknown_column(n: int, ftype: str) -> Column:
    """``n`` unknown values of a field of type ``ftype`` (a declared field absent from the input)."""
    if ftype in ("enum", "string"):
        return Column("cat", np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool), {})
    kind = {"bool": "bool", "int": "num", "number": "num", "date": "date"}[ftype]
    vals = np.zeros(n, dtype=bool if kind == "bool" else np.int64)
    return Column(kind, vals, np.zeros(n, dtype=bool))


def values_column(values: list[Any], ftype: str) -> Column:
    """A column from the Python values of validated records (None = unknown): the one-record path.

    Built with plain lists: these columns hold one deal's few child rows, where numpy's per-call
    cost, not the data, is what counts.
    """
    if ftype == "date":
        values = [day_number(v) for v in values]  # a text that is not a canonical date is unknown
    if ftype in ("enum", "string"):
        index: dict[str, int] | None = {}
        values = [index.setdefault(v, len(index)) if isinstance(v, str) else None for v in values]
    else:
        index = None
    unknown = [v is None for v in values]
    known = ~np.array(unknown, dtype=bool) if any(unknown) else None
    if ftype == "bool":
        return Column("bool", np.array([v is not None and bool(v) for v in values], dtype=bool), known)
    if ftype == "number":
        return Column("num", np.array([0.0 if v is None else v for v in values], dtype=np.float64), known)
    kind = {"int": "num", "date": "date"}.get(ftype, "cat")
    fill = -1 if kind == "cat" else 0
    return Column(kind, np.array([fill if v is None else v for v in values], dtype=np.int64), known, index)
