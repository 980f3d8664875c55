"""The compiled form of a rule pack: the one definition both backends evaluate.

A :class:`~scoring.evidence.pack.RulePack` is the pack as loaded (data, as
written).  Its compiled form (:attr:`RulePack.compiled`, built once per pack)
holds what evaluating it means:

* per rule, its ``when`` and ``unknown_when`` as condition trees
  (:mod:`scoring.evidence.grammar` nodes, parsed once) and its layer;
* the **derived facts**: inputs computed from a deal before its rules run.
  Each kind is one class here whose docstring, ``value`` (over arrays) and
  ``record_value`` (one record, plain Python) are its only definition:
  :class:`Count` (child rows matching an item condition) and
  :class:`Difference` (days between two dates, or the difference of two whole
  numbers);
* the **graded measures** (:class:`Measure`), each an expression class
  (:data:`MeasureValue`) defined the same way: ``value`` over arrays beside
  ``record_value`` for one record;
* **status resolution** (:func:`resolve_status`): met if ``when`` matches,
  else unknown if ``unknown_when`` matches, else missing;
* **layer order** (:attr:`CompiledPack.layers`): a rule that reads another
  rule's status (``ev_<id>``) is evaluated after it.

The backends only say how to run this form: :mod:`scoring.evidence.durable`
(durable-rules, one record at a time, the reference) translates the trees
into a durable-rules ruleset; :mod:`scoring.evidence.columnar` evaluates them
with numpy over chunks of deals; :mod:`scoring.evidence.interp` interprets
them in Python for one record (the library call), with the ``record_value``
forms, so one record never needs numpy's backend or pandas.  durable-rules
cannot count, so its derived facts and measures are computed with the numpy
backend (a single record is a chunk of one deal) and asserted into the
durable-rules fact.

A new kind of derived fact or measure expression is a new class here with its
``value`` over arrays and its ``record_value`` for one record side by side (the
same semantics: the differential tests hold them equal), one line in the numpy
backend that feeds ``value`` its inputs and one in
:meth:`scoring.evidence.interp.RecordEvaluator._deriver` (a measure expression
needs none: it reads :class:`RecordInputs`); every path then has it.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from scoring.contract.schema import CHILD_LISTS, STAGE_INDEX
from scoring.evidence.grammar import (
    Check, Cond, Items, Scope, inputs, parse_condition, parse_item_condition, walk,
)
from scoring.evidence.status import MET, MISSING, STATUS_WORDS, UNKNOWN

if TYPE_CHECKING:  # pragma: no cover
    from scoring.evidence.pack import RulePack

_EPOCH = _dt.date(1970, 1, 1)
#: the deal field that stands for "the day the deal is scored" (the deal's own, else the caller's).
AS_OF = "as_of"


# --------------------------------------------------------------------------- values


def day_number(value: Any) -> int | None:
    """Days since 1970-01-01 of a canonical ``'YYYY-MM-DD'`` text or a date; None otherwise.

    Dates are compared and subtracted as day numbers in both backends.

    >>> day_number("1970-01-31")
    30
    >>> day_number("2026-1-5") is None      # not canonical: it equals no stored date
    True
    """
    if isinstance(value, _dt.datetime):
        value = value.date()
    if isinstance(value, _dt.date):
        return (value - _EPOCH).days
    if not isinstance(value, str):
        return None
    try:
        d = _dt.date.fromisoformat(value)
    except ValueError:
        return None
    return (d - _EPOCH).days if d.isoformat() == value else None


def days_between(start: str | None, end: str | None) -> int | None:
    """Days from date ``start`` to date ``end`` (``'YYYY-MM-DD'``); None when either is unknown.

    The single-value form of a ``days_between`` :class:`Difference`, for flags computed outside the pack.

    >>> days_between("2026-10-01", "2026-11-25")
    55
    """
    if start is None or end is None:
        return None
    return (_dt.date.fromisoformat(end) - _dt.date.fromisoformat(start)).days


def known_both(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """The known-mask of a value computed from two inputs: known where both are (None = all known)."""
    if a is None:
        return b
    return a if b is None else a & b


#: A rule's status by (its ``when`` matched, its ``unknown_when`` matched): met if ``when`` matches,
#: else unknown if ``unknown_when`` matches, else missing.
RESOLUTION = np.array([[MISSING, UNKNOWN],    # when not matched
                       [MET, MET]],           # when matched
                      dtype=np.int8)


def resolve_status(met: np.ndarray, unknown: np.ndarray | None) -> np.ndarray:
    """The status codes of one rule over deals from :data:`RESOLUTION`: ``met`` and ``unknown`` say
    where ``when`` and ``unknown_when`` matched (``unknown`` is None when the rule has no ``unknown_when``).

    >>> resolve_status(np.array([True, False, False]), np.array([True, True, False])).tolist()
    [1, 2, 0]
    """
    index = np.asarray(met, dtype=bool).view(np.uint8) * np.uint8(2)
    if unknown is not None:
        index += np.asarray(unknown, dtype=bool).view(np.uint8)
    return RESOLUTION.ravel().take(index)


# --------------------------------------------------------------------------- derived facts


@dataclass(frozen=True)
class Count:
    """``name`` is the number of rows of ``list`` that match ``where``.

    Known whenever the list is: 0 when the list is empty or missing from a record
    (none recorded); unknown only where the list itself is unknown (a child table
    absent from a table-form input).  A row whose field is unknown fails every
    test on that field but ``$nex`` (the grammar's rule).
    """

    name: str
    list: str
    where: Cond

    def value(self, match: np.ndarray, rows: np.ndarray, n: int,
              list_known: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Counts per deal from ``match`` (one bool per child row), ``rows`` (each row's deal position)
        and ``list_known`` (per deal, None = the list is known for every deal)."""
        counts = np.bincount(rows[match], minlength=n).astype(np.int64, copy=False)
        return counts, list_known

    def record_value(self, match: Iterable[bool], list_known: bool = True) -> int | None:
        """One deal's count from ``match`` (one bool per row of its list; ``list_known``: is the list
        known, None = unknown otherwise): :meth:`value` for one record."""
        return sum(map(bool, match)) if list_known else None


@dataclass(frozen=True)
class Difference:
    """``name`` is ``end - start``: days from date ``start`` to date ``end`` (``kind``
    ``days_between``), or the difference of two whole-number fields (``difference``).

    Unknown when either input is unknown.  ``as_of`` as an input is the deal's own
    ``as_of`` when known, else the day the caller scores for (always known).
    """

    name: str
    kind: str
    start: str
    end: str

    def value(self, start: np.ndarray, start_known: np.ndarray | None,
              end: np.ndarray, end_known: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """``(values, known)`` per deal from the inputs' values (dates as :func:`day_number`) and known-masks."""
        known = known_both(start_known, end_known)
        vals = end - start
        if known is not None:
            vals = np.where(known, vals, 0)
        return vals, known

    def record_value(self, start: int | None, end: int | None) -> int | None:
        """One deal's value from its inputs' values (dates as :func:`day_number`, None = unknown):
        :meth:`value` for one record."""
        return None if start is None or end is None else int(end - start)


Derived = Count | Difference


# --------------------------------------------------------------------------- rules and pack


@dataclass(frozen=True)
class CompiledRule:
    """One rule's conditions as trees; ``position`` is its index in pack order."""

    id: str
    position: int
    layer: int
    when: Cond
    unknown_when: Cond | None


class CompiledPack:
    """The compiled form of one pack.  Build it with :attr:`RulePack.compiled`.

    Attributes
    ----------
    rules : CompiledRule per rule, in pack order.
    layers : the rules grouped by layer, layer 0 first (the order of evaluation).
    counts, computed : the derived facts, in pack order.
    derived : counts then computed (the order of :attr:`Evidence.derived` columns).
    measures : the rules' graded measures (:class:`Measure`), in pack order: the columns of
        ``Evidence.measures`` (a float array, NaN = unknown or not applicable at the deal's stage)
        and the keys of ``Evaluation.measures``.
    """

    def __init__(self, pack: "RulePack", rule_trees: Mapping[str, tuple[Cond, Cond | None]] | None = None,
                 count_trees: Mapping[str, Cond] | None = None, measures: "tuple[Measure, ...] | None" = None):
        # the loader passes the trees it parsed while validating; a pack unpickled from a model
        # artifact has none, and its (validated) conditions are parsed again here
        scope = pack_scope(pack)
        if rule_trees is None:
            rule_trees = {r.id: (parse_condition(r.when, scope, r.file, r.id),
                                 None if r.unknown_when is None
                                 else parse_condition(r.unknown_when, scope, r.file, r.id))
                          for r in pack.rules}
        if count_trees is None:
            count_trees = {c.name: parse_item_condition(c.where, c.list, scope, "pack.yaml", f"count {c.name}")
                           for c in pack.counts.values()}
        self.fields = pack.fields
        self.rules: tuple[CompiledRule, ...] = tuple(
            CompiledRule(r.id, i, r.layer, *rule_trees[r.id]) for i, r in enumerate(pack.rules))
        n_layers = 1 + max((r.layer for r in self.rules), default=0)
        self.layers: tuple[tuple[CompiledRule, ...], ...] = tuple(
            tuple(r for r in self.rules if r.layer == k) for k in range(n_layers))
        self.counts: tuple[Count, ...] = tuple(Count(c.name, c.list, count_trees[c.name]) for c in pack.counts.values())
        self.computed: tuple[Difference, ...] = tuple(
            Difference(c.name, c.kind, c.start, c.end) for c in pack.computed.values())
        self.derived: tuple[Derived, ...] = self.counts + self.computed
        if measures is None:
            from scoring.evidence.measures import parse_measures  # it builds on this module
            measures = tuple(m for r in pack.rules
                             for m in parse_measures(r.measure, r.id, r.stages, scope, r.file))
        #: the graded measures of the rules, in pack order: the columns of ``Evidence.measures``
        self.measures: tuple[Measure, ...] = tuple(measures)
        nodes = [n for r in self.rules for t in (r.when, r.unknown_when) if t is not None for n in walk(t)]
        checks = [n for n in nodes if isinstance(n, Check)]
        #: what the rules' conditions read, all a backend needs to load: deal fields, counts and
        #: computed fields; child list -> its item fields (empty for a list only tested with $ex/$nex)
        self.deal_inputs: frozenset[str] = frozenset(
            c.ref.name for c in checks if c.ref.kind in ("field", "count", "computed"))
        items: dict[str, set[str]] = {}
        for n in nodes:
            if isinstance(n, Items):
                items.setdefault(n.list, set())
            elif isinstance(n, Check) and n.ref.kind in ("list", "item"):
                items.setdefault(n.ref.list or n.ref.name, set()).update([n.ref.name] if n.ref.kind == "item" else [])
        self.item_inputs: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in sorted(items.items())}
        # what unknown_inputs looks at, worked out once per rule (one deal's call is on the hot path)
        by_name = {d.name: d for d in self.derived}
        self._unknown_probes = {r.id: self._probes(r.reads, by_name) for r in pack.rules}

    def _probes(self, reads, by_name) -> tuple:
        """What makes the inputs ``reads`` unknown, by kind: deal fields (unknown when None), child
        lists (when empty), computed fields (when unknown: those of their own inputs that are
        None), item fields (:func:`_item_reads`; of the rule, and of the counts it reads)."""
        opp = self.fields.get("opportunity", {})
        fields, lists, computed, items = [], [], [], set(_item_reads(reads))
        for name in sorted(reads):
            d = by_name.get(name)
            if name in opp and name not in CHILD_LISTS:
                fields.append(name)
            elif isinstance(d, Difference):
                computed.append((name, tuple(x for x in (d.start, d.end) if x != AS_OF)))
            elif isinstance(d, Count):
                items.update(_item_reads(inputs(d.where)))
            elif name in CHILD_LISTS:
                lists.append(name)
        return tuple(fields), tuple(lists), tuple(computed), tuple(sorted(items))

    def unknown_inputs(self, record: Mapping[str, Any], derived: Mapping[str, Any],
                       status: Mapping[str, str]) -> dict[str, list[str]]:
        """rule id -> the inputs it reads that are unknown in ``record``, for the rules not met."""
        out: dict[str, list[str]] = {}
        items_seen: dict[tuple[str, str, str], str | None] = {}
        met = STATUS_WORDS[MET]
        for rid, (fields, lists, computed, items) in self._unknown_probes.items():
            if status[rid] == met:
                continue
            miss = [name for name in fields if record.get(name) is None]
            miss.extend(name for name in lists if not record.get(name))
            for name, ins in computed:
                if derived.get(name) is None:
                    miss.extend(x for x in ins if record.get(x) is None)
            for it in items:
                u = items_seen[it] if it in items_seen else items_seen.setdefault(it, _item_unknown(record, *it))
                if u is not None:
                    miss.append(u)
            if miss:
                out[rid] = sorted(set(miss))
        return out


def pack_scope(pack: "RulePack") -> Scope:
    """The names the pack's conditions may read."""
    return Scope(fields=pack.fields, counts=frozenset(pack.counts), computed=frozenset(pack.computed),
                 rule_ids=frozenset(r.id for r in pack.rules))


def _item_reads(reads) -> tuple[tuple[str, str, str], ...]:
    """The item inputs among ``reads`` (``contacts[].role``) as ``(input, list, field)``."""
    return tuple((x, *x.split("[].", 1)) for x in sorted(reads) if "[]." in x)


def _item_unknown(record: Mapping[str, Any], x: str, lst: str, f: str) -> str | None:
    """What is unknown of item input ``x`` (field ``f`` of ``lst``): the list when it is empty,
    ``x`` when a row lacks ``f``, else None."""
    items = record.get(lst) or ()
    if not items:
        return lst
    if any(it.get(f) is None for it in items):
        return x
    return None


# --------------------------------------------------------------------------- measures (graded evidence)
#
# A measure is a number a rule carries besides its status: a count (slips, one-on-ones per key
# person), a level (the stance ladder, the decision maker's signal) or a duration (days in stage).
# Its value is an expression over the deal's inputs; each kind of expression below is defined once,
# by its ``value`` over arrays and, beside it, its ``record_value`` for one record (the same
# semantics in plain Python: unknown is None where the arrays hold NaN).  A backend supplies the
# inputs: the numpy backend (a chunk, and durable-rules' single record) through
# :class:`MeasureInputs`, the one-record evaluator (:mod:`scoring.evidence.interp`) through
# :class:`RecordInputs`.

MEASURE_KINDS = ("count", "level", "duration")
#: a true/false field read as a word on a ladder (``values: {true: 2, false: 1}``), and as its code
BOOL_WORDS = {"false": 0, "true": 1}


def field_word(ftype: str, raw: Any) -> str | None:
    """A field's raw value as the word a measure maps to a number: an enum's (or string's) text,
    a true/false field's ``"true"``/``"false"`` (:data:`BOOL_WORDS`); None when unknown."""
    if ftype == "bool":
        return None if raw is None else ("true" if raw else "false")
    return raw if isinstance(raw, str) else None


class MeasureInputs:  # pragma: no cover - the protocol the numpy backend implements
    """What a measure expression reads, as arrays over the ``n`` deals of a chunk."""

    n: int

    def number(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """A whole-number or number deal field, a count or a computed field: ``(values, known)``."""
        raise NotImplementedError

    def codes(self, entity: str, name: str) -> tuple[np.ndarray, dict[str, int], np.ndarray | None]:
        """An enum or bool field of the deals (``entity == "opportunity"``) or of the rows of a child
        list: ``(codes, value -> code, known)`` (a bool's values are :data:`BOOL_WORDS`)."""
        raise NotImplementedError

    def child_rows(self, lst: str) -> np.ndarray:
        """The deal position of each row of child list ``lst``."""
        raise NotImplementedError

    def list_known(self, lst: str) -> np.ndarray | None:
        """Per deal: is its list ``lst`` known (None: known for every deal)."""
        raise NotImplementedError

    def item_mask(self, cond: Cond) -> np.ndarray:
        """Per row of the list ``cond`` is about: does it match the item condition ``cond``?"""
        raise NotImplementedError

    def condition(self, cond: Cond) -> np.ndarray:
        """Per deal: does the deal-level condition ``cond`` match?"""
        raise NotImplementedError


class RecordInputs:  # pragma: no cover - the protocol the one-record evaluator implements
    """What a measure expression reads from ONE deal, as Python values (None = unknown)."""

    def number(self, name: str) -> int | float | None:
        """A whole-number or number deal field, a count or a computed field."""
        raise NotImplementedError

    def word(self, entity: str, name: str, row: Mapping[str, Any] | None = None) -> str | None:
        """An enum or bool field of the deal (``entity == "opportunity"``, ``row`` None) or of ``row``
        of child list ``entity``, as :func:`field_word` reads it."""
        raise NotImplementedError

    def rows(self, lst: str) -> Sequence[Mapping[str, Any]] | None:
        """The rows of child list ``lst`` (empty: none recorded); None when the list is unknown."""
        raise NotImplementedError

    def item_match(self, cond: Cond) -> Callable[[Mapping[str, Any]], bool]:
        """Does one row of the list ``cond`` is about match the item condition ``cond``?"""
        raise NotImplementedError

    def condition(self, cond: Cond) -> bool:
        """Does the deal-level condition ``cond`` match?"""
        raise NotImplementedError


def _floats(vals: np.ndarray, known: np.ndarray | None) -> np.ndarray:
    out = np.asarray(vals, dtype=np.float64).copy()
    if known is not None:
        out[~known] = np.nan
    return out


def _float(v: int | float | None) -> float | None:
    """:func:`_floats` for one value."""
    return None if v is None else float(v)


def _mapped(codes: np.ndarray, index: Mapping[str, int], known: np.ndarray | None,
            values: Mapping[str, float]) -> np.ndarray:
    """Enum codes mapped to numbers (NaN where unknown or the value is not mapped)."""
    size = max(index.values(), default=-1) + 2
    table = np.full(size, np.nan)
    for word, code in index.items():
        if word in values:
            table[code] = values[word]
    out = table[np.where(codes >= 0, codes, size - 1)]
    if known is not None:
        out = np.where(known, out, np.nan)
    return out


def _mapped_one(word: str | None, values: Mapping[str, float]) -> float | None:
    """:func:`_mapped` for one value: its number, None when unknown or the value is not mapped."""
    return values.get(word) if word is not None else None


@dataclass(frozen=True)
class NumberOf:
    """``{field: NAME}``: a whole-number or number deal field, a count or a computed field.
    Unknown when it is unknown."""

    name: str

    def value(self, x: MeasureInputs) -> np.ndarray:
        return _floats(*x.number(self.name))

    def record_value(self, x: RecordInputs) -> float | None:
        return _float(x.number(self.name))


@dataclass(frozen=True)
class WeightedSum:
    """``{sum: {NAME: weight, ...}}``: the weighted sum of fields, counts or computed fields.
    Unknown when any term is unknown."""

    terms: tuple[tuple[str, float], ...]

    def value(self, x: MeasureInputs) -> np.ndarray:
        out = np.zeros(x.n)
        for name, w in self.terms:
            out = out + w * _floats(*x.number(name))
        return out

    def record_value(self, x: RecordInputs) -> float | None:
        out = 0.0
        for name, w in self.terms:  # in term order, as value adds them
            v = _float(x.number(name))
            if v is None:
                return None
            out = out + w * v
        return out


@dataclass(frozen=True)
class CountTrue:
    """``{count_true: [BOOL, ...]}``: how many of these true/false deal fields are true (steps done).
    Unknown when all of them are unknown; an unknown one counts as not done."""

    fields: tuple[str, ...]

    def value(self, x: MeasureInputs) -> np.ndarray:
        done = np.zeros(x.n)
        any_known = np.zeros(x.n, dtype=bool)
        for f in self.fields:
            codes, _, known = x.codes("opportunity", f)
            done += codes if known is None else np.where(known, codes, 0)
            any_known |= True if known is None else known
        return np.where(any_known, done, np.nan)

    def record_value(self, x: RecordInputs) -> float | None:
        done, any_known = 0.0, False
        for f in self.fields:
            w = x.word("opportunity", f)
            if w is not None:
                done += BOOL_WORDS[w]
                any_known = True
        return done if any_known else None


@dataclass(frozen=True)
class Ratio:
    """``{ratio: [NUM, DEN]}``: ``NUM / DEN``.  Unknown when either is unknown or ``DEN`` is 0."""

    num: str
    den: str

    def value(self, x: MeasureInputs) -> np.ndarray:
        a, b = _floats(*x.number(self.num)), _floats(*x.number(self.den))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)

    def record_value(self, x: RecordInputs) -> float | None:
        a, b = _float(x.number(self.num)), _float(x.number(self.den))
        return None if a is None or b is None or b == 0 else a / b


@dataclass(frozen=True)
class Level:
    """``{level: {field: ENUM, values: {word: number, ...}}}``: an enum deal field as a number on its
    ladder.  Unknown when the field is unknown."""

    field: str
    values: tuple[tuple[str, float], ...]

    @cached_property
    def _numbers(self) -> dict[str, float]:
        return dict(self.values)

    def value(self, x: MeasureInputs) -> np.ndarray:
        return _mapped(*x.codes("opportunity", self.field), self._numbers)

    def record_value(self, x: RecordInputs) -> float | None:
        return _mapped_one(x.word("opportunity", self.field), self._numbers)


@dataclass(frozen=True)
class ItemsOf:
    """``{items: {list: L, where: ITEM-CONDITION, value: {field: F, values: {...}} | 1,
    weight: {field: G, values: {...}, unknown: w}, reduce: sum | max | min}}``.

    Over the rows of ``L`` that match ``where`` (every row without it), each row's number is its
    ``value`` (an enum mapped to numbers, or 1 for "count the rows") times its ``weight`` (1 without
    one; a row whose weight field is unknown weighs ``unknown``); the measure is their sum, largest
    or smallest.  A row whose value is unknown does not count; the measure is unknown when no row
    counts, or the list itself is unknown (a child table absent from the input).
    """

    list: str
    where: Cond | None
    value_field: str | None
    value_map: tuple[tuple[str, float], ...]
    weight_field: str | None
    weight_map: tuple[tuple[str, float], ...]
    weight_unknown: float
    reduce: str

    @cached_property
    def _values(self) -> dict[str, float]:
        return dict(self.value_map)

    @cached_property
    def _weights(self) -> dict[str, float]:
        return dict(self.weight_map)

    def value(self, x: MeasureInputs) -> np.ndarray:
        rows = x.child_rows(self.list)
        n = x.n
        m = np.ones(len(rows), dtype=bool) if self.where is None else x.item_mask(self.where)
        if self.value_field is None:
            v = np.ones(len(rows))
        else:
            v = _mapped(*x.codes(self.list, self.value_field), self._values)
        if self.weight_field is not None:
            w = _mapped(*x.codes(self.list, self.weight_field), self._weights)
            v = v * np.where(np.isnan(w), self.weight_unknown, w)
        ok = m & ~np.isnan(v)
        r, v = rows[ok], v[ok]
        counted = np.bincount(r, minlength=n) > 0
        if self.reduce == "sum":
            out = np.bincount(r, weights=v, minlength=n).astype(np.float64)
        else:
            fill, ufunc = (-np.inf, np.maximum) if self.reduce == "max" else (np.inf, np.minimum)
            out = np.full(n, fill)
            ufunc.at(out, r, v)
        out = np.where(counted, out, np.nan)
        lk = x.list_known(self.list)
        return out if lk is None else np.where(lk, out, np.nan)

    def record_value(self, x: RecordInputs) -> float | None:
        rows = x.rows(self.list)
        if rows is None:  # the list itself is unknown
            return None
        match = None if self.where is None else x.item_match(self.where)
        lst, out = self.list, None
        for row in rows:
            if match is not None and not match(row):
                continue
            v = 1.0 if self.value_field is None else _mapped_one(x.word(lst, self.value_field, row), self._values)
            if v is None:  # its value unknown: the row does not count
                continue
            if self.weight_field is not None:
                w = _mapped_one(x.word(lst, self.weight_field, row), self._weights)
                v = v * (self.weight_unknown if w is None else w)
            # in row order, as bincount adds them (not sum(): it compensates rounding from 3.12 on)
            out = v if out is None else (out + v if self.reduce == "sum"
                                         else max(out, v) if self.reduce == "max" else min(out, v))
        return out


MeasureValue = NumberOf | WeightedSum | CountTrue | Ratio | Level | ItemsOf


@dataclass(frozen=True)
class Measure:
    """A graded measure carried by rule ``rule``: one column of :attr:`Evidence.measures`.

    name : unique in the pack.
    rule : the id of the rule it belongs to.
    kind : ``count`` | ``level`` | ``duration`` (what it is, for display and binning).
    direction : +1 when more is better for winning, -1 when more is worse.
    stages : the stages where it applies (None = every stage); elsewhere its value is NaN.
    label : lang -> template (``"close date pushed {value} times"``; ``{value}`` is the number,
        ``{word}`` for a level its word).
    expr : how the value is computed (:data:`MeasureValue`).
    unknown_when : a deal-level condition under which the value is unknown (NaN), besides the
        expression's own unknown cases.
    negate_when : a deal-level condition under which the value changes sign (a signal against us).
    words : for a level, number -> word (for the ``{word}`` of a label).

    Value: float, NaN when unknown or when the measure does not apply at the deal's stage.
    """

    name: str
    rule: str
    kind: str
    direction: int
    stages: tuple[str, ...] | None
    label: Mapping[str, str]
    expr: MeasureValue
    unknown_when: Cond | None = None
    negate_when: Cond | None = None
    words: tuple[tuple[float, str], ...] = ()

    def applies_at(self, stage: Any) -> bool:
        """Does the measure apply at stage ``stage`` (a stage word; anything else, unknown, does not)?"""
        return isinstance(stage, str) and stage in STAGE_INDEX and (self.stages is None or stage in self.stages)

    def value(self, x: MeasureInputs, stage_ok: np.ndarray) -> np.ndarray:
        """Per deal of ``x``: the measure (NaN: unknown, or ``stage_ok`` false)."""
        v = self.expr.value(x)
        if self.negate_when is not None:
            v = np.where(x.condition(self.negate_when), -v, v)
        if self.unknown_when is not None:
            v = np.where(x.condition(self.unknown_when), np.nan, v)
        v = np.where(stage_ok, v, np.nan)
        return v + 0.0  # no -0.0

    def record_value(self, x: RecordInputs, stage_ok: bool) -> float | None:
        """One deal's measure (None: unknown, or ``stage_ok`` false): :meth:`value` for one record."""
        if not stage_ok:
            return None
        v = self.expr.record_value(x)
        if v is None or v != v:
            return None
        if self.unknown_when is not None and x.condition(self.unknown_when):
            return None
        if self.negate_when is not None and x.condition(self.negate_when):
            v = -v
        return v + 0.0  # no -0.0

    def text(self, value: float | None, lang: str = "en") -> str | None:
        """The measure in words (``"close date pushed 3 times"``), or None when unknown."""
        if value is None or value != value:
            return None
        word = dict(self.words).get(value, "")
        shown = int(value) if float(value).is_integer() else round(value, 2)
        tmpl = self.label.get(lang) or self.label.get("en", "{value}")
        return tmpl.format(value=shown, word=word)
