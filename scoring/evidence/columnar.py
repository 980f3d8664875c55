"""Evaluating a rule pack column-wise over a chunk of deals (the batch path).

The durable-rules engine (:mod:`scoring.evidence.durable`) evaluates one record at a time
and stays the reference.  The nightly batch evaluates the SAME declarative
conditions of a pack over a whole chunk of deals (50k-100k) with numpy: every
rule's ``when``/``unknown_when``, every count's ``where`` and the computed day
counts are compiled ONCE per pack (:class:`ColumnarEvaluator`) into closures
over column arrays; nothing is ``eval``-ed and there is no per-deal Python loop.
``tests/test_columnar.py`` checks it against the engine rule by rule.

Semantics (the engine's, measured; see ``shared/notes/durable-rules.md``)
------------------------------------------------------------------------
* Unknown (NA) fails equality, ``$neq`` and ``$gt/$gte/$lt/$lte``; only
  ``$nex`` matches it (``$ex`` is "known").
* ``$iany``/``$iall`` over an empty or missing list do NOT match (both);
  inside them an item whose field is unknown fails every test but ``$nex``.
  ``{$ex: {contacts: 1}}`` is "the list is non-empty".
* A count is always known (0 without children); a computed day count is
  unknown when either date is; ``as_of`` is the deal's own ``as_of`` when known,
  else ``as_of_default`` (so a condition on ``as_of`` always sees a known date).
* ``ev_<id>`` is the status of rule ``<id>`` (always known in later layers);
  rules are evaluated layer by layer (``Rule.layer``).
* Each rule ends in one status: met if ``when`` matches, else unknown if
  ``unknown_when`` matches, else missing.

Column form (:class:`Frames`)
-----------------------------
``opps``: one row per deal, index ``RangeIndex(0, n)``; a column per declared
opportunity field (``pack.fields["opportunity"]``, plus ``id`` and ``as_of``).
``children``: ``contacts``/``competitors``/``partners`` -> one row per child,
an integer column ``_row`` (0-based position of its deal in ``opps``, no NA)
plus the declared child fields.  Row order within a child table is free.

Accepted dtypes per field type (unknown = NA/None/NaN/NaT in all of them):

=========  =================================================================
type       column dtype
=========  =================================================================
bool       ``boolean`` (preferred), or ``bool``/``object`` of True/False/None
int        ``Int64`` (preferred), or numpy int / float with NaN
number     ``Float64`` (preferred), or numpy float with NaN, or ``Int64``
enum       ``object``/``str``/``string`` of the lower-case values, or ``category``
string     ``object``/``str``/``string``, or ``category``
date       ``object``/``str``/``string`` of ``'YYYY-MM-DD'``, or ``datetime64``
=========  =================================================================

A declared field whose column is absent reads as unknown for every row (as a
field absent from a validated record).  Values must already be validated (the
engine's loose typing, e.g. ``true == 1``, never arises on validated data and
is not reproduced).
"""
from __future__ import annotations

import datetime as _dt
import json
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from scoring.contract.frames import ROW, Frames
from scoring.contract.schema import CHILD_LISTS
from scoring.evidence.status import MET, MISSING, STATUS_CODES, STATUS_WORDS, UNKNOWN
from scoring.evidence.pack import COMPARE_OPS, EV_PREFIX, ITEM_PREFIX, LIST_OPS, LOGICAL_OPS, RulePack

__all__ = [
    "Evidence",
    "ColumnarEvaluator",
    "records_to_frames",
]

_EPOCH = _dt.date(1970, 1, 1)

_CMP: dict[str, Callable] = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


# --------------------------------------------------------------------------- data


@dataclass
class Evidence:
    """What the rules found in a chunk of deals.

    Attributes
    ----------
    status : DataFrame
        index = ``opps`` index, one ``int8`` column per rule id in pack order:
        0 missing, 1 met, 2 unknown (:data:`STATUS_WORDS`).
    derived : DataFrame
        the pack's counts (``int64``, always known) then computed day counts
        (``Int64``, NA when unknown), in pack order.
    """

    status: pd.DataFrame
    derived: pd.DataFrame

    def words(self) -> pd.DataFrame:
        """:attr:`status` as words (``met`` / ``missing`` / ``unknown``)."""
        w = np.asarray(STATUS_WORDS, dtype=object)
        return pd.DataFrame(w[self.status.to_numpy()], index=self.status.index, columns=self.status.columns)

    def status_of(self, i: int) -> dict[str, str]:
        """rule id -> word for the deal at position ``i`` (as :attr:`Evaluation.status`)."""
        row = self.status.iloc[i].to_numpy()
        return {rid: STATUS_WORDS[c] for rid, c in zip(self.status.columns, row.tolist())}

    def derived_of(self, i: int) -> dict[str, Any]:
        """name -> int or None for the deal at position ``i`` (as :attr:`Evaluation.derived`)."""
        out = {}
        for c in self.derived.columns:
            v = self.derived[c].iloc[i]
            out[c] = None if v is pd.NA else int(v)
        return out


# --------------------------------------------------------------------------- columns


class _Col:
    """One field of one table as numpy arrays.

    kind: ``bool`` | ``num`` | ``cat`` | ``date`` | ``status``.
    ``vals``: bool / numbers / category codes (-1 = unknown) / day numbers / status codes.
    ``known``: bool mask, or None when every value is known.
    ``index``: for ``cat``, value -> code.
    """

    __slots__ = ("kind", "vals", "known", "index")

    def __init__(self, kind, vals, known=None, index=None):
        self.kind, self.vals, self.known, self.index = kind, vals, known, index

    def _and_known(self, m: np.ndarray) -> np.ndarray:
        return m if self.known is None else (m & self.known)

    def ex(self) -> np.ndarray:
        if self.known is None:
            return np.ones(len(self.vals), dtype=bool)
        return self.known.copy()

    def nex(self) -> np.ndarray:
        if self.known is None:
            return np.zeros(len(self.vals), dtype=bool)
        return ~self.known

    def eq(self, v) -> np.ndarray:
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
            day = _canonical_day(v)
            return np.zeros(n, bool) if day is None else self._and_known(self.vals == day)
        # num
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return np.zeros(n, bool)
        return self._and_known(self.vals == v)

    def neq(self, v) -> np.ndarray:
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
            day = _canonical_day(v)
            return self.ex() if day is None else self._and_known(self.vals != day)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return self.ex()
        return self._and_known(self.vals != v)

    def cmp(self, op: str, v) -> np.ndarray:
        if self.kind != "num" or isinstance(v, bool) or not isinstance(v, (int, float)):
            return np.zeros(len(self.vals), bool)  # the loader allows comparisons on numbers only
        return self._and_known(_CMP[op](self.vals, v))


def _canonical_day(v) -> int | None:
    """Day number of a canonical 'YYYY-MM-DD' text (else None: it equals no stored date)."""
    if not isinstance(v, str):
        return None
    try:
        d = _dt.date.fromisoformat(v)
    except ValueError:
        return None
    return (d - _EPOCH).days if d.isoformat() == v else None


def _known_mask(s: pd.Series) -> np.ndarray | None:
    na = s.isna().to_numpy()
    return ~na if na.any() else None


def _bool_col(s: pd.Series) -> _Col:
    known = _known_mask(s)
    vals = s.to_numpy(dtype=bool, na_value=False) if known is not None else s.to_numpy(dtype=bool)
    return _Col("bool", vals, known)


def _num_col(s: pd.Series, ftype: str) -> _Col:
    known = _known_mask(s)
    dt = s.dtype
    if ftype == "int" and (isinstance(dt, pd.Int64Dtype) or pd.api.types.is_integer_dtype(dt)):
        vals = s.to_numpy(dtype=np.int64, na_value=0)
    else:
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        if known is None:
            nan = np.isnan(vals)
            known = ~nan if nan.any() else None
    return _Col("num", vals, known)


def _factorize(s: pd.Series) -> tuple[np.ndarray, list]:
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy().astype(np.int64)
        return codes, list(s.cat.categories)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), list(uniques)


def _cat_col(s: pd.Series) -> _Col:
    codes, uniques = _factorize(s)
    index = {}
    for i, u in enumerate(uniques):
        if isinstance(u, str):
            index.setdefault(u, i)
    na = codes < 0
    return _Col("cat", codes, ~na if na.any() else None, index)


def _date_col(s: pd.Series) -> _Col:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        d = s.to_numpy(dtype="datetime64[D]")
        nat = np.isnat(d)
        vals = d.astype(np.int64)
        return _Col("date", vals, ~nat if nat.any() else None)
    codes, uniques = _factorize(s)
    udays = np.empty(len(uniques) + 1, dtype=np.int64)
    ok = np.zeros(len(uniques) + 1, dtype=bool)
    for i, u in enumerate(uniques):
        if isinstance(u, (_dt.date, pd.Timestamp)):
            u = u.date() if isinstance(u, (pd.Timestamp, _dt.datetime)) else u
            udays[i], ok[i] = (u - _EPOCH).days, True
        else:
            day = _canonical_day(u)
            if day is not None:
                udays[i], ok[i] = day, True
    udays[-1] = 0  # code -1 (NA) maps to the last slot
    vals = udays[codes]
    known = ok[codes]
    return _Col("date", vals, None if known.all() else known)


def _col_of(s: pd.Series, ftype: str) -> _Col:
    if ftype == "bool":
        return _bool_col(s)
    if ftype in ("int", "number"):
        return _num_col(s, ftype)
    if ftype == "date":
        return _date_col(s)
    return _cat_col(s)


def _unknown_col(n: int, ftype: str) -> _Col:
    if ftype in ("enum", "string"):
        return _Col("cat", np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool), {})
    kind = {"bool": "bool", "int": "num", "number": "num", "date": "date"}[ftype]
    vals = np.zeros(n, dtype=bool if kind == "bool" else np.int64)
    return _Col(kind, vals, np.zeros(n, dtype=bool))


# --------------------------------------------------------------------------- evaluation context


class _Ctx:
    """Arrays of one chunk, built lazily and cached for one :meth:`evaluate` call."""

    def __init__(self, ev: "ColumnarEvaluator", frames: Frames, as_of_default: str):
        self.ev = ev
        self.frames = frames
        self.n = len(frames.opps)
        self.as_of_default = as_of_default
        self.cols: dict[tuple[str, str], _Col] = {}
        self.results: dict[tuple, np.ndarray] = {}
        self.rows: dict[str, np.ndarray] = {}
        self.has: dict[str, np.ndarray] = {}
        self.derived: dict[str, _Col] = {}
        self.status = np.zeros((len(ev.pack.rules), self.n), dtype=np.int8)

    def child_rows(self, lst: str) -> np.ndarray:
        r = self.rows.get(lst)
        if r is None:
            df = self.frames.children.get(lst)
            if df is None or len(df) == 0:
                r = np.zeros(0, dtype=np.intp)
            else:
                r = df[ROW].to_numpy(dtype=np.intp)
                if r.min() < 0 or r.max() >= self.n:
                    raise ValueError(f"{lst}: column {ROW} must hold positions 0..{self.n - 1} of deals in opps")
            self.rows[lst] = r
        return r

    def has_children(self, lst: str) -> np.ndarray:
        h = self.has.get(lst)
        if h is None:
            h = np.bincount(self.child_rows(lst), minlength=self.n) > 0
            self.has[lst] = h
        return h

    def col(self, entity: str, name: str) -> _Col:
        key = (entity, name)
        c = self.cols.get(key)
        if c is not None:
            return c
        ftype = self.ev.pack.fields[entity][name].type
        if entity == "opportunity":
            df = self.frames.opps
            if name == "as_of":
                c = self.as_of_col()
            elif name in df.columns:
                c = _col_of(df[name], ftype)
            else:
                c = _unknown_col(self.n, ftype)
        else:
            df = self.frames.children.get(entity)
            m = len(self.child_rows(entity))
            if df is not None and name in df.columns and m:
                c = _col_of(df[name], ftype)
            else:
                c = _unknown_col(m, ftype)
        self.cols[key] = c
        return c

    def as_of_col(self) -> _Col:
        """The effective as_of: the deal's own when known, else the default (always known)."""
        key = ("opportunity", "as_of")
        c = self.cols.get(key)
        if c is not None:
            return c
        default = _canonical_day(self.as_of_default)
        df = self.frames.opps
        if "as_of" in df.columns:
            own = _date_col(df["as_of"])
            vals = own.vals if own.known is None else np.where(own.known, own.vals, default)
        else:
            vals = np.full(self.n, default, dtype=np.int64)
        c = _Col("date", vals, None)
        self.cols[key] = c
        return c


# --------------------------------------------------------------------------- compiler

Fn = Callable[[_Ctx], np.ndarray]


def _memo(key: tuple, fn: Fn) -> Fn:
    def run(ctx: _Ctx) -> np.ndarray:
        r = ctx.results.get(key)
        if r is None:
            r = fn(ctx)
            ctx.results[key] = r
        return r

    return run


def _and(fns: list[Fn]) -> Fn:
    if len(fns) == 1:
        return fns[0]

    def run(ctx):
        out = fns[0](ctx) & fns[1](ctx)
        for f in fns[2:]:
            out &= f(ctx)
        return out

    return run


def _or(fns: list[Fn]) -> Fn:
    if len(fns) == 1:
        return fns[0]

    def run(ctx):
        out = fns[0](ctx) | fns[1](ctx)
        for f in fns[2:]:
            out |= f(ctx)
        return out

    return run


def _leaf(getcol: Callable[[_Ctx], _Col], op: str, value) -> Fn:
    if op == "$ex":
        return lambda ctx: getcol(ctx).ex()
    if op == "$nex":
        return lambda ctx: getcol(ctx).nex()
    if op == "$neq":
        return lambda ctx: getcol(ctx).neq(value)
    if op in COMPARE_OPS:
        return lambda ctx: getcol(ctx).cmp(op, value)
    return lambda ctx: getcol(ctx).eq(value)


def _split_leaf(cond: Mapping) -> tuple[str, str, Any]:
    """(op, name, value) of a leaf: op is '=' for equality."""
    (key, val), = cond.items()
    if key in COMPARE_OPS or key in ("$neq", "$ex", "$nex"):
        (name, value), = val.items()
        return key, name, value
    return "=", key, val


class ColumnarEvaluator:
    """A rule pack compiled to column-wise closures; evaluate chunks of deals.

    Examples
    --------
    >>> from scoring.evidence.pack import load_pack                   # doctest: +SKIP
    >>> ev = ColumnarEvaluator(load_pack("rules/default"))               # doctest: +SKIP
    >>> evidence = ev.evaluate(records_to_frames(records, ev.pack.fields), "2026-11-25")   # doctest: +SKIP
    >>> evidence.words()["S2_5"].value_counts()                          # doctest: +SKIP
    """

    def __init__(self, pack: RulePack):
        self.pack = pack
        self.rule_ids: tuple[str, ...] = tuple(r.id for r in pack.rules)
        self._pos = {rid: i for i, rid in enumerate(self.rule_ids)}
        self._counts: list[tuple[str, str, Fn]] = [
            (c.name, c.list, self._compile_item(c.where, c.list)) for c in pack.counts.values()
        ]
        self._computed = list(pack.computed.values())
        order = sorted(range(len(pack.rules)), key=lambda i: pack.rules[i].layer)
        self._rules: list[tuple[int, Fn, Fn | None]] = []
        for i in order:
            r = pack.rules[i]
            w = self._compile(r.when)
            u = self._compile(r.unknown_when) if r.unknown_when is not None else None
            self._rules.append((i, w, u))

    # ---- compilation (once per pack)

    def _compile(self, cond: Mapping) -> Fn:
        key = ("deal", json.dumps(cond, sort_keys=True))
        (op, val), = cond.items()
        if op in LOGICAL_OPS:
            parts = [self._compile(c) for c in val]
            return _memo(key, _and(parts) if op == "$and" else _or(parts))
        if op in LIST_OPS:
            (lst, item), = val.items()
            item_fn = self._compile_item(item, lst)
            reduce = _iany if op == "$iany" else _iall
            return _memo(key, lambda ctx: reduce(ctx, lst, item_fn(ctx)))
        op, name, value = _split_leaf(cond)
        return _memo(key, self._deal_leaf(op, name, value))

    def _deal_leaf(self, op: str, name: str, value) -> Fn:
        pack = self.pack
        if name in CHILD_LISTS:  # only $ex / $nex on a list: non-empty / empty or missing
            if op == "$ex":
                return lambda ctx: ctx.has_children(name).copy()
            return lambda ctx: ~ctx.has_children(name)
        if name in pack.counts or name in pack.computed:
            return _leaf(lambda ctx: ctx.derived[name], op, value)
        if name.startswith(EV_PREFIX) and name[len(EV_PREFIX):] in self._pos:
            pos = self._pos[name[len(EV_PREFIX):]]
            return _leaf(lambda ctx: _Col("status", ctx.status[pos]), op, value)
        if name in pack.fields.get("opportunity", {}):
            return _leaf(lambda ctx: ctx.col("opportunity", name), op, value)
        raise ValueError(f"unknown field {name!r} in a condition (the pack loader should have refused it)")

    def _compile_item(self, cond: Mapping, lst: str) -> Fn:
        key = (lst, json.dumps(cond, sort_keys=True))
        (op, val), = cond.items()
        if op in LOGICAL_OPS:
            parts = [self._compile_item(c, lst) for c in val]
            return _memo(key, _and(parts) if op == "$and" else _or(parts))
        op, name, value = _split_leaf(cond)
        if not name.startswith(ITEM_PREFIX):
            raise ValueError(f"item condition over {lst} names {name!r}, not $i.<field>")
        fname = name[len(ITEM_PREFIX):]
        if fname not in self.pack.fields.get(lst, {}):
            raise ValueError(f"unknown field {fname!r} of {lst}")
        return _memo(key, _leaf(lambda ctx: ctx.col(lst, fname), op, value))

    # ---- evaluation

    def evaluate(self, frames: Frames, as_of_default: str) -> Evidence:
        """Evaluate every rule of the pack on every deal of ``frames``.

        ``as_of_default`` ('YYYY-MM-DD') stands for a deal whose ``as_of`` is unknown.
        """
        if _canonical_day(as_of_default) is None:
            raise ValueError(f"as_of_default must be a date written YYYY-MM-DD, not {as_of_default!r}")
        ctx = _Ctx(self, frames, as_of_default)
        n = ctx.n
        index = frames.opps.index
        derived: dict[str, Any] = {}
        for name, lst, where in self._counts:
            rows = ctx.child_rows(lst)
            m = where(ctx) if len(rows) else np.zeros(0, bool)
            cnt = np.bincount(rows[m], minlength=n).astype(np.int64)
            ctx.derived[name] = _Col("num", cnt, None)
            derived[name] = cnt
        for c in self._computed:
            a = ctx.col("opportunity", c.start)
            b = ctx.col("opportunity", c.end)
            days = b.vals - a.vals
            known = a.known if b.known is None else (b.known if a.known is None else a.known & b.known)
            if known is not None:
                days = np.where(known, days, 0)
            ctx.derived[c.name] = _Col("num", days, known)
            mask = np.zeros(n, bool) if known is None else ~known
            derived[c.name] = pd.arrays.IntegerArray(days.astype(np.int64), mask)
        status = ctx.status
        for i, w, u in self._rules:  # layer order: ev_ of earlier layers are final
            met = w(ctx)
            if u is None:
                status[i] = met
            else:
                st = np.where(met, MET, np.where(u(ctx), UNKNOWN, MISSING))
                status[i] = st
        status_df = pd.DataFrame(status.T, index=index, columns=list(self.rule_ids), copy=False)
        derived_df = pd.DataFrame(derived, index=index) if derived else pd.DataFrame(index=index)
        return Evidence(status=status_df, derived=derived_df)


def _iany(ctx: _Ctx, lst: str, m: np.ndarray) -> np.ndarray:
    out = np.zeros(ctx.n, dtype=bool)
    rows = ctx.child_rows(lst)
    if len(rows):
        out[rows[m]] = True
    return out


def _iall(ctx: _Ctx, lst: str, m: np.ndarray) -> np.ndarray:
    rows = ctx.child_rows(lst)
    if not len(rows):
        return np.zeros(ctx.n, dtype=bool)
    bad = np.zeros(ctx.n, dtype=bool)
    bad[rows[~m]] = True
    return ctx.has_children(lst) & ~bad
