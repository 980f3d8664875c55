"""Backend 2: evaluating a pack's compiled form column-wise over chunks of deals (the batch path).

The durable-rules engine (:mod:`scoring.evidence.durable`) evaluates one record at a time
and stays the reference.  This backend evaluates the SAME compiled form
(:mod:`scoring.evidence.compiled`: condition trees, derived facts, status
resolution, layer order) over a whole chunk of deals (50k-100k) with numpy:
each tree is turned ONCE per pack (:class:`ColumnarEvaluator`) into closures
over column arrays; nothing is ``eval``-ed and there is no per-deal Python loop.
It adds no semantics of its own: what a test means is written in
:mod:`scoring.evidence.grammar`, what a derived fact is in
:mod:`scoring.evidence.compiled`; ``tests/test_columnar.py`` checks it against
durable-rules rule by rule.

It also computes the derived facts and measures of a single record for the
durable-rules backend (:meth:`ColumnarEvaluator.derive_record_all`: a chunk of
one deal, read straight from the record), since durable-rules cannot count.
(The library's one-record evaluator, :mod:`scoring.evidence.interp`, does not
use it: it runs the compiled form's ``record_value`` forms.)

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

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from scoring.contract.frames import ROW, Frames
from scoring.contract.schema import STAGE_INDEX, STAGES
from scoring.evidence.arrays import Column, date_column, series_column, unknown_column, values_column
from scoring.evidence.compiled import AS_OF, BOOL_WORDS, Count, day_number, resolve_status
from scoring.evidence.grammar import COMPARE_OPS, EQ, NEQ, AllOf, AnyOf, Check, Cond, Items, walk
from scoring.evidence.pack import RulePack
from scoring.evidence.status import STATUS_WORDS

__all__ = ["Evidence", "ColumnarEvaluator"]

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
        the pack's counts (``int64``; ``Int64`` with NA for every deal when their
        list's table was absent from the input) then computed day counts (``Int64``,
        NA when unknown), in pack order.
    """

    status: pd.DataFrame
    derived: pd.DataFrame
    #: ``(n_deals, len(CompiledPack.measures))`` float64, in the order of ``CompiledPack.measures``;
    #: NaN when unknown or when the measure does not apply at the deal's stage
    measures: np.ndarray | None = None
    #: the measures' names (the columns of :attr:`measures`)
    measure_names: tuple[str, ...] = ()

    def words(self) -> pd.DataFrame:
        """:attr:`status` as words (``met`` / ``missing`` / ``unknown``)."""
        w = np.asarray(STATUS_WORDS, dtype=object)
        return pd.DataFrame(w[self.status.to_numpy()], index=self.status.index, columns=self.status.columns)

    def status_of(self, i: int) -> dict[str, str]:
        """rule id -> word for the deal at position ``i`` (as :attr:`Evaluation.status`)."""
        row = self.status.iloc[i].to_numpy()
        return {rid: STATUS_WORDS[c] for rid, c in zip(self.status.columns, row.tolist())}

    def measures_of(self, i: int) -> dict[str, float | None]:
        """name -> float or None for the deal at position ``i`` (as :attr:`Evaluation.measures`)."""
        if self.measures is None:
            return {}
        return {name: None if v != v else float(v) for name, v in zip(self.measure_names, self.measures[i].tolist())}

    def measures_frame(self) -> pd.DataFrame:
        """:attr:`measures` as a DataFrame (one float column per measure, NaN = unknown or not applicable)."""
        vals = self.measures if self.measures is not None else np.zeros((len(self.status), 0))
        return pd.DataFrame(vals, index=self.status.index, columns=list(self.measure_names))

    def derived_of(self, i: int) -> dict[str, Any]:
        """name -> int or None for the deal at position ``i`` (as :attr:`Evaluation.derived`)."""
        out = {}
        for c in self.derived.columns:
            v = self.derived[c].iloc[i]
            out[c] = None if v is pd.NA else int(v)
        return out


# --------------------------------------------------------------------------- evaluation context


class _Ctx:
    """Arrays of one chunk, built lazily and cached for one evaluation.

    Subclasses say where columns and child rows come from (a chunk's frames, or one record).
    """

    def __init__(self, ev: "ColumnarEvaluator", n: int):
        self.ev = ev
        self.n = n
        self.cols: dict[tuple[str, str], Column] = {}
        self.results: dict[int, np.ndarray] = {}  # node number (see ColumnarEvaluator._compile) -> mask
        self.rows: dict[str, np.ndarray] = {}
        self.has: dict[str, np.ndarray] = {}
        self.derived: dict[str, Column] = {}
        self.status = np.zeros((len(ev.compiled.rules), n), dtype=np.int8)

    def child_rows(self, lst: str) -> np.ndarray:
        """The deal position of each row of child list ``lst``."""
        r = self.rows.get(lst)
        if r is None:
            r = self.rows[lst] = self._child_rows(lst)
        return r

    def has_children(self, lst: str) -> np.ndarray:
        h = self.has.get(lst)
        if h is None:
            h = np.bincount(self.child_rows(lst), minlength=self.n) > 0
            self.has[lst] = h
        return h

    def col(self, entity: str, name: str) -> Column:
        key = (entity, name)
        c = self.cols.get(key)
        if c is None:
            ftype = self.ev.pack.fields[entity][name].type
            if entity == "opportunity" and name == AS_OF:
                c = self._as_of_col()
            else:
                c = self._col(entity, name, ftype)
            self.cols[key] = c
        return c

    # ---- what measure expressions read (scoring.evidence.compiled.MeasureInputs)

    def number(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        c = self.derived.get(name)
        if c is None:
            c = self.col("opportunity", name)
        return c.vals, c.known

    def codes(self, entity: str, name: str) -> tuple[np.ndarray, dict[str, int], np.ndarray | None]:
        c = self.col(entity, name)
        if c.kind == "bool":  # a bool field on a ladder: false and true are its two words
            return c.vals.astype(np.int64), BOOL_WORDS, c.known
        return c.vals, c.index or {}, c.known

    def list_known(self, lst: str) -> np.ndarray | None:
        return None

    def item_mask(self, cond) -> np.ndarray:
        if not len(self.child_rows(_list_of(cond))):
            return np.zeros(0, dtype=bool)
        return self.ev._compile(cond)(self)

    def condition(self, cond) -> np.ndarray:
        return self.ev._compile(cond)(self)

    def _child_rows(self, lst: str) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _col(self, entity: str, name: str, ftype: str) -> Column:  # pragma: no cover - abstract
        raise NotImplementedError

    def _as_of_col(self) -> Column:  # pragma: no cover - abstract
        raise NotImplementedError


class _FramesCtx(_Ctx):
    """A chunk of deals in column form."""

    def __init__(self, ev: "ColumnarEvaluator", frames: Frames, as_of_default: str):
        super().__init__(ev, len(frames.opps))
        self.frames = frames
        self.as_of_default = as_of_default

    def list_known(self, lst: str) -> np.ndarray | None:
        return np.zeros(self.n, dtype=bool) if lst in self.frames.absent else None

    def _child_rows(self, lst: str) -> np.ndarray:
        df = self.frames.children.get(lst)
        if df is None or len(df) == 0:
            return np.zeros(0, dtype=np.intp)
        r = df[ROW].to_numpy(dtype=np.intp)
        if r.min() < 0 or r.max() >= self.n:
            raise ValueError(f"{lst}: column {ROW} must hold positions 0..{self.n - 1} of deals in opps")
        return r

    def _col(self, entity: str, name: str, ftype: str) -> Column:
        if entity == "opportunity":
            df = self.frames.opps
            return series_column(df[name], ftype) if name in df.columns else unknown_column(self.n, ftype)
        df = self.frames.children.get(entity)
        m = len(self.child_rows(entity))
        if df is not None and name in df.columns and m:
            return series_column(df[name], ftype)
        return unknown_column(m, ftype)

    def _as_of_col(self) -> Column:
        """The effective as_of: the deal's own when known, else the default (always known)."""
        default = day_number(self.as_of_default)
        df = self.frames.opps
        if AS_OF in df.columns:
            own = date_column(df[AS_OF])
            vals = own.vals if own.known is None else np.where(own.known, own.vals, default)
        else:
            vals = np.full(self.n, default, dtype=np.int64)
        return Column("date", vals, None)


class _RecordCtx(_Ctx):
    """One validated record as a chunk of one deal (``as_of``: the effective as_of)."""

    def __init__(self, ev: "ColumnarEvaluator", record: Mapping[str, Any], as_of: str,
                 absent: frozenset[str] = frozenset()):
        super().__init__(ev, 1)
        self.record = record
        self.as_of = as_of
        self.absent = absent

    def list_known(self, lst: str) -> np.ndarray | None:
        return np.zeros(1, dtype=bool) if lst in self.absent else None

    def _child_rows(self, lst: str) -> np.ndarray:
        return np.zeros(0 if lst in self.absent else len(self.record.get(lst) or ()), dtype=np.intp)

    def _col(self, entity: str, name: str, ftype: str) -> Column:
        if entity == "opportunity":
            return values_column([self.record.get(name)], ftype)
        return values_column([it.get(name) for it in self.record.get(entity) or ()], ftype)

    def _as_of_col(self) -> Column:
        return Column("date", np.array([day_number(self.as_of)], dtype=np.int64), None)


# --------------------------------------------------------------------------- compiler

Fn = Callable[[_Ctx], np.ndarray]


def _list_of(cond: Cond) -> str:
    """The child list an item condition is about."""
    for node in walk(cond):
        if isinstance(node, Check) and node.ref.kind == "item":
            return node.ref.list
        if isinstance(node, Items):
            return node.list
    raise ValueError(f"not an item condition: {cond!r}")


def _memo(key: int, fn: Fn) -> Fn:
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


def _test(getcol: Callable[[_Ctx], Column], op: str, value) -> Fn:
    if op == "$ex":
        return lambda ctx: getcol(ctx).ex()
    if op == "$nex":
        return lambda ctx: getcol(ctx).nex()
    if op == NEQ:
        return lambda ctx: getcol(ctx).neq(value)
    if op in COMPARE_OPS:
        return lambda ctx: getcol(ctx).cmp(op, value)
    if op == EQ:
        return lambda ctx: getcol(ctx).eq(value)
    raise ValueError(f"unknown test {op!r}")


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


class ColumnarEvaluator:
    """A pack's compiled form as column-wise closures; evaluate chunks of deals.

    Examples
    --------
    >>> from scoring.evidence.pack import load_pack                   # doctest: +SKIP
    >>> ev = ColumnarEvaluator(load_pack("rules/default"))               # doctest: +SKIP
    >>> evidence = ev.evaluate(records_to_frames(records, ev.pack.fields), "2026-11-25")   # doctest: +SKIP
    >>> evidence.words()["S2_5"].value_counts()                          # doctest: +SKIP
    """

    def __init__(self, pack: RulePack):
        self.pack = pack
        self.compiled = pack.compiled
        self.rule_ids: tuple[str, ...] = tuple(r.id for r in self.compiled.rules)
        self._fns: dict[Cond, Fn] = {}
        self._counts = [(c, self._compile(c.where)) for c in self.compiled.counts]
        #: per measure, per stage index (and a last column for an unknown stage): does it apply there?
        self._measure_applies = np.array(
            [[m.applies_at(s) for s in STAGES] + [m.applies_at(None)] for m in self.compiled.measures],
            dtype=bool).reshape(len(self.compiled.measures), len(STAGES) + 1)
        self._rules: list[tuple[int, Fn, Fn | None]] = [
            (r.position, self._compile(r.when), None if r.unknown_when is None else self._compile(r.unknown_when))
            for layer in self.compiled.layers for r in layer]

    # ---- compilation (once per pack)

    def _compile(self, cond: Cond) -> Fn:
        fn = self._fns.get(cond)
        if fn is not None:
            return fn
        if isinstance(cond, (AllOf, AnyOf)):
            parts = [self._compile(c) for c in cond.parts]
            fn = _and(parts) if isinstance(cond, AllOf) else _or(parts)
        elif isinstance(cond, Items):
            where, lst = self._compile(cond.where), cond.list
            reduce = _iany if cond.quantifier == "$iany" else _iall
            fn = lambda ctx: reduce(ctx, lst, where(ctx))  # noqa: E731
        elif isinstance(cond, Check):
            fn = self._compile_check(cond)
        else:
            raise TypeError(f"not a condition node: {cond!r}")
        fn = self._fns[cond] = _memo(len(self._fns), fn)  # a node shared by several trees runs once
        return fn

    def _compile_check(self, t: Check) -> Fn:
        ref = t.ref
        name = ref.name
        if ref.kind == "list":  # only $ex / $nex on a list: non-empty / empty or missing
            if t.op == "$ex":
                return lambda ctx: ctx.has_children(name).copy()
            return lambda ctx: ~ctx.has_children(name)
        if ref.kind in ("count", "computed"):
            return _test(lambda ctx: ctx.derived[name], t.op, t.value)
        if ref.kind == "status":
            pos = self.rule_ids.index(name)
            return _test(lambda ctx: Column("status", ctx.status[pos]), t.op, t.value)
        if ref.kind == "item":
            lst = ref.list
            return _test(lambda ctx: ctx.col(lst, name), t.op, t.value)
        return _test(lambda ctx: ctx.col("opportunity", name), t.op, t.value)

    # ---- evaluation

    def _derive(self, ctx: _Ctx) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """The derived facts (:mod:`scoring.evidence.compiled`) of the deals of ``ctx``, in pack order."""
        out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for c, where in self._counts:
            rows = ctx.child_rows(c.list)
            out[c.name] = c.value(where(ctx) if len(rows) else np.zeros(0, bool), rows, ctx.n, ctx.list_known(c.list))
        for d in self.compiled.computed:
            a, b = ctx.col("opportunity", d.start), ctx.col("opportunity", d.end)
            out[d.name] = d.value(a.vals, a.known, b.vals, b.known)
        for name, (vals, known) in out.items():
            ctx.derived[name] = Column("num", vals, known)
        return out

    def _measures(self, ctx: _Ctx) -> np.ndarray:
        """The measures (:attr:`CompiledPack.measures`) of the deals of ``ctx``: ``(n, n_measures)`` float64.

        Needs the derived facts of ``ctx`` (:meth:`_derive`) first."""
        out = np.empty((ctx.n, len(self.compiled.measures)), dtype=np.float64)
        if not len(self.compiled.measures):
            return out
        stage = ctx.col("opportunity", "stage")
        table = np.full(max((stage.index or {}).values(), default=-1) + 2, len(STAGES), dtype=np.int64)
        for word, code in (stage.index or {}).items():
            table[code] = STAGE_INDEX.get(word, len(STAGES))
        stage_idx = table[np.where(stage.vals >= 0, stage.vals, len(table) - 1)]  # unknown stage: last column
        for j, m in enumerate(self.compiled.measures):
            out[:, j] = m.value(ctx, self._measure_applies[j][stage_idx])
        return out

    def derive_record(self, record: Mapping[str, Any], as_of: str) -> dict[str, int | None]:
        """The derived facts of one validated record (``as_of``: its effective as_of), name -> int or None."""
        return self.derive_record_all(record, as_of)[0]

    def derive_record_all(self, record: Mapping[str, Any], as_of: str, absent: frozenset[str] = frozenset()
                          ) -> tuple[dict[str, int | None], dict[str, float | None]]:
        """The derived facts (name -> int or None) and the measures (name -> float or None) of one
        validated record (``as_of``: its effective as_of; ``absent``: child lists unknown, as a
        table absent from the input, see :attr:`Frames.absent`)."""
        ctx = _RecordCtx(self, record, as_of, absent)
        derived = {}
        for name, (vals, known) in self._derive(ctx).items():
            derived[name] = None if known is not None and not known[0] else int(vals[0])
        row = self._measures(ctx)[0].tolist()
        measures = {m.name: None if v != v else float(v) for m, v in zip(self.compiled.measures, row)}
        return derived, measures

    def evaluate(self, frames: Frames, as_of_default: str) -> Evidence:
        """Evaluate every rule of the pack on every deal of ``frames``.

        ``as_of_default`` ('YYYY-MM-DD') stands for a deal whose ``as_of`` is unknown.
        """
        if day_number(as_of_default) is None or not isinstance(as_of_default, str):
            raise ValueError(f"as_of_default must be a date written YYYY-MM-DD, not {as_of_default!r}")
        ctx = _FramesCtx(self, frames, as_of_default)
        index = frames.opps.index
        derived: dict[str, Any] = {}
        for d, (name, (vals, known)) in zip(self.compiled.derived, self._derive(ctx).items()):
            if isinstance(d, Count) and known is None:
                derived[name] = vals
            else:
                mask = np.zeros(ctx.n, bool) if known is None else ~known
                derived[name] = pd.arrays.IntegerArray(vals.astype(np.int64), mask)
        status = ctx.status
        for i, w, u in self._rules:  # layer order: ev_ of earlier layers are final
            status[i] = resolve_status(w(ctx), None if u is None else u(ctx))
        measures = self._measures(ctx)
        status_df = pd.DataFrame(status.T, index=index, columns=list(self.rule_ids), copy=False)
        derived_df = pd.DataFrame(derived, index=index) if derived else pd.DataFrame(index=index)
        return Evidence(status=status_df, derived=derived_df, measures=measures,
                        measure_names=tuple(m.name for m in self.compiled.measures))
