"""Backend 3: the compiled form interpreted in plain Python for ONE record (the library call).

:class:`RecordEvaluator` evaluates a pack's compiled form
(:mod:`scoring.evidence.compiled`) on one validated record, with no engine and
no arrays: each condition tree is turned once per pack into nested Python
closures over the record's values, and a record is evaluated by calling them.
It states no rule of its own: the rules are the trees, what a test means is
the grammar's (:mod:`scoring.evidence.grammar`; the column-wise tests of
:class:`scoring.evidence.arrays.Column` are the same tests over arrays), the
derived facts and the graded measures are computed by their classes' own
``record_value`` methods (beside their array ``value``), status resolution is
:data:`scoring.evidence.compiled.RESOLUTION`, and rules run in the compiled
layer order.  It imports neither pandas nor the numpy backend.

Why a third backend: durable-rules (the reference) costs milliseconds per
deal (a JSON round trip per fired rule) and does not import on Python 3.13 and
newer; the numpy backend pays numpy's per-call cost many times over on a chunk
of one deal.  Here a deal is a few hundred closure calls
(``benchmarks/bench_engine.py`` measures both).  ``tests/test_interp.py``
checks the whole evaluation (statuses, derived facts, measures) against
durable-rules wherever it imports, and against the numpy backend everywhere,
on the default pack and on random packs and records.

Values are read as :func:`scoring.evidence.arrays.values_column` reads them:
a date as its day number (a text that is not a canonical date is unknown),
an enum or string as its text, None as unknown; ``as_of`` as an input is the
deal's own when known, else the day the caller scores for.
"""
from __future__ import annotations

import datetime as _dt
import operator
from typing import Any, Callable, Mapping

from scoring.evidence.compiled import (
    AS_OF, RESOLUTION, CompiledPack, Count, Difference, ItemsOf, day_number, field_word,
)
from scoring.evidence.durable import Evaluation
from scoring.evidence.grammar import COMPARE_OPS, EQ, EV_PREFIX, NEQ, AllOf, AnyOf, Check, Cond, Items
from scoring.evidence.status import MET, STATUS_CODES, STATUS_WORDS

__all__ = ["RecordEvaluator"]

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
#: RESOLUTION[when matched][unknown_when matched] as plain ints
_RESOLVE: list[list[int]] = RESOLUTION.tolist()
#: whether a matched ``when`` decides the status alone (then ``unknown_when`` need not run)
_MET_DECIDES = _RESOLVE[1][0] == _RESOLVE[1][1]
#: field type (``int`` for a derived fact, ``status`` for ``ev_<id>``) -> how its values are tested
_KIND = {"bool": "bool", "int": "num", "number": "num", "date": "date", "enum": "cat", "string": "cat",
         "status": "status"}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# --------------------------------------------------------------------------- one test, read and run in one step

Fn = Callable[[Mapping[str, Any]], bool]


def _value(ftype: str, raw: Any) -> Any:
    """A field's raw value as the tests read it (None = unknown)."""
    if ftype == "date":
        return day_number(raw)
    if ftype in ("enum", "string"):
        return raw if isinstance(raw, str) else None
    return raw


def _check(op: str, ftype: str, v: Any, key: str) -> Fn:
    """The test ``op`` of ``key`` against constant ``v``, on a mapping holding ``key``'s raw value
    (a field of type ``ftype``, or ``int`` for a derived fact, ``status`` for ``ev_<id>``).

    An unknown value (absent, None, a text that is not a canonical date in a date field, a non-text
    in an enum or string field) fails every test but ``$nex``; a constant that no value of the
    type can equal matches nothing (``=``) or every known value (``$neq``); only numbers compare.
    """
    kind = _KIND[ftype]
    if op in ("$ex", "$nex"):
        if kind == "date":
            known = lambda d: day_number(d.get(key)) is not None  # noqa: E731
        elif kind == "cat":
            known = lambda d: isinstance(d.get(key), str)  # noqa: E731
        else:
            known = lambda d: d.get(key) is not None  # noqa: E731
        return known if op == "$ex" else (lambda d: not known(d))
    if op in COMPARE_OPS:
        if kind != "num" or not _is_number(v):
            return lambda d: False
        cmp = _CMP[op]
        return lambda d: (x := d.get(key)) is not None and cmp(x, v)
    if op not in (EQ, NEQ):
        raise ValueError(f"unknown test {op!r}")
    if kind == "date":
        v = day_number(v)
        ok = v is not None
    elif kind == "cat":
        ok = isinstance(v, str)
    elif kind == "status":
        ok = isinstance(v, str) and v in STATUS_CODES
    elif kind == "bool":
        ok = isinstance(v, bool)
    else:
        ok = _is_number(v)
    if not ok:  # no value equals v: = matches nothing, $neq every known value
        return (lambda d: False) if op == EQ else _check("$ex", ftype, 1, key)
    if op == EQ:
        if kind == "date":
            return lambda d: day_number(d.get(key)) == v
        if kind == "bool":
            return lambda d: (x := d.get(key)) is not None and bool(x) == v
        return lambda d: d.get(key) == v  # None, and a non-text for a text v, equal nothing
    if kind == "date":
        return lambda d: (x := day_number(d.get(key))) is not None and x != v
    if kind == "cat":
        return lambda d: isinstance(x := d.get(key), str) and x != v
    if kind == "bool":
        return lambda d: (x := d.get(key)) is not None and bool(x) != v
    return lambda d: (x := d.get(key)) is not None and x != v


def _all(parts: tuple[Fn, ...]) -> Fn:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda d: a(d) and b(d)

    def every(d):
        for p in parts:
            if not p(d):
                return False
        return True

    return every


def _any(parts: tuple[Fn, ...]) -> Fn:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda d: a(d) or b(d)

    def some(d):
        for p in parts:
            if p(d):
                return True
        return False

    return some


class _Deal:
    """One deal's facts as the measure expressions read them (:class:`~scoring.evidence.compiled.RecordInputs`)."""

    __slots__ = ("ev", "facts", "absent")

    def __init__(self, ev: "RecordEvaluator", facts: Mapping[str, Any], absent: frozenset[str]):
        self.ev, self.facts, self.absent = ev, facts, absent

    def number(self, name: str) -> int | float | None:
        return self.facts.get(name)

    def word(self, entity: str, name: str, row: Mapping[str, Any] | None = None) -> str | None:
        return field_word(self.ev._types[entity][name], (self.facts if row is None else row).get(name))

    def rows(self, lst: str):
        return None if lst in self.absent else (self.facts.get(lst) or ())

    def item_match(self, cond: Cond) -> Fn:
        return self.ev._measure_items[cond]

    def condition(self, cond: Cond) -> bool:
        return self.ev._measure_conds[cond](self.facts)


class RecordEvaluator:
    """A pack's compiled form as Python closures; evaluate one validated record at a time.

    A record is evaluated on a flat mapping of its **facts**: its own fields, ``as_of`` replaced
    by the effective as_of, the derived facts, and ``ev_<id>`` (the status word of each rule, set
    layer by layer), as durable-rules sees the deal.  Pure and thread-safe: each evaluation has
    its own mapping.

    Examples
    --------
    >>> from scoring.evidence.pack import load_pack                           # doctest: +SKIP
    >>> ev = RecordEvaluator(load_pack("rules/default")).evaluate(record, as_of="2026-11-25")   # doctest: +SKIP
    >>> ev.status["S2_5"], ev.derived["coaches"]                              # doctest: +SKIP
    ('met', 1)
    """

    def __init__(self, pack):
        self.pack = pack
        self.compiled: CompiledPack = pack.compiled
        self._opp = pack.fields["opportunity"]
        self._types = {ent: {name: f.type for name, f in flds.items()} for ent, flds in pack.fields.items()}
        self._derived_names = tuple(d.name for d in self.compiled.derived)
        self._derivers = [(d.name, self._deriver(d)) for d in self.compiled.derived]
        # what the measures read besides values: their deal-level conditions and item conditions
        self._measure_conds: dict[Cond, Fn] = {}
        self._measure_items: dict[Cond, Fn] = {}
        for m in self.compiled.measures:
            for c in (m.unknown_when, m.negate_when):
                if c is not None and c not in self._measure_conds:
                    self._measure_conds[c] = self._deal(c)
            if isinstance(m.expr, ItemsOf) and m.expr.where is not None:
                self._measure_items.setdefault(m.expr.where, self._item(m.expr.where, m.expr.list))
        self._rules: list[tuple[int, str, Fn, Fn | None]] = [
            (r.position, EV_PREFIX + r.id, self._deal(r.when),
             None if r.unknown_when is None else self._deal(r.unknown_when))
            for layer in self.compiled.layers for r in layer]
        self._ids = tuple(r.id for r in self.compiled.rules)

    def __getstate__(self):
        return {"pack": self.pack}

    def __setstate__(self, state):
        self.__init__(state["pack"])

    # ---- derived facts and measures: each class's own record_value, fed its inputs here (the one place)

    def _deriver(self, d) -> Callable[[Mapping[str, Any], frozenset[str]], Any]:
        """The function computing derived fact ``d`` from a deal's facts and its absent lists."""
        if isinstance(d, Count):
            where, lst = self._item(d.where, d.list), d.list
            return lambda facts, absent: d.record_value(map(where, facts.get(lst) or ()), lst not in absent)
        if isinstance(d, Difference):
            ts, te = self._opp[d.start].type, self._opp[d.end].type  # as_of is a date field
            start, end = d.start, d.end
            return lambda facts, absent: d.record_value(_value(ts, facts.get(start)), _value(te, facts.get(end)))
        raise TypeError(f"derived fact {d!r}: its kind has no record_value fed here (see scoring.evidence.compiled)")

    def _measures(self, facts: Mapping[str, Any], absent: frozenset[str]) -> dict[str, float | None]:
        """The graded measures of one deal (its facts hold the derived facts)."""
        deal, stage = _Deal(self, facts, absent), facts.get("stage")
        return {m.name: m.record_value(deal, m.applies_at(stage)) for m in self.compiled.measures}

    # ---- condition trees -> closures over a deal's facts (once per pack)

    def _deal(self, cond: Cond) -> Fn:
        if isinstance(cond, (AllOf, AnyOf)):
            parts = tuple(self._deal(c) for c in cond.parts)
            return _all(parts) if isinstance(cond, AllOf) else _any(parts)
        if isinstance(cond, Items):
            where, lst = self._item(cond.where, cond.list), cond.list
            if cond.quantifier == "$iany":
                return lambda facts: any(map(where, facts.get(lst) or ()))
            # $iall over an empty or missing list does not match
            return lambda facts: bool(rows := facts.get(lst)) and all(map(where, rows))
        if not isinstance(cond, Check):
            raise TypeError(f"not a condition node: {cond!r}")
        ref = cond.ref
        if ref.kind == "list":  # only $ex / $nex on a list: non-empty / empty or missing
            name = ref.name
            if cond.op == "$ex":
                return lambda facts: bool(facts.get(name))
            return lambda facts: not facts.get(name)
        if ref.kind in ("field", "status") or ref.name in self._derived_names:
            # a field, ev_<id>, or a derived fact (ref.type "int"): each read by its key
            return _check(cond.op, ref.type, cond.value, ref.key)
        raise TypeError(f"a condition reads {ref!r}, which this evaluator cannot read")

    def _item(self, cond: Cond, lst: str) -> Fn:
        if isinstance(cond, (AllOf, AnyOf)):
            parts = tuple(self._item(c, lst) for c in cond.parts)
            return _all(parts) if isinstance(cond, AllOf) else _any(parts)
        if not isinstance(cond, Check) or cond.ref.kind != "item":
            raise TypeError(f"not an item condition over {lst}: {cond!r}")
        return _check(cond.op, cond.ref.type, cond.value, cond.ref.name)

    # ---- evaluation

    def evaluate(self, record: Mapping[str, Any], *, as_of: str | None = None,
                 absent: frozenset[str] = frozenset()) -> Evaluation:
        """Evaluate one **validated** record (see :func:`scoring.contract.nested.validate_record`).

        ``as_of`` defaults to the record's own ``as_of``, else today; ``absent`` names child lists
        that are unknown (as :meth:`Engine.evaluate`).
        """
        as_of = record.get(AS_OF) or as_of or _dt.date.today().isoformat()
        if day_number(as_of) is None:
            raise ValueError(f"as_of must be a date written YYYY-MM-DD, not {as_of!r}")
        if absent:
            record = {**record, **{lst: [] for lst in absent}}
        absent = frozenset(absent)
        facts = dict(record)
        facts[AS_OF] = as_of
        derived = {name: f(facts, absent) for name, f in self._derivers}
        facts.update(derived)
        measures = self._measures(facts, absent)
        codes = [0] * len(self._ids)
        for pos, ev_key, when, unknown in self._rules:  # layer order: ev_ of earlier layers are final
            w = when(facts)
            # unknown_when only runs where its outcome can change the status
            u = unknown is not None and not (w and _MET_DECIDES) and unknown(facts)
            codes[pos] = c = _RESOLVE[w][u]
            facts[ev_key] = STATUS_WORDS[c]
        status = {rid: STATUS_WORDS[c] for rid, c in zip(self._ids, codes)}
        return Evaluation(
            record_id=str(record.get("id")),
            stage=record["stage"],
            as_of=as_of,
            status=status,
            matched=[rid for rid, c in zip(self._ids, codes) if c == MET],
            derived=derived,
            unknown_inputs=self.compiled.unknown_inputs(record, derived, status),
            measures=measures,
        )
