"""Parsing a rule's ``measure:`` (graded evidence) into :class:`~scoring.evidence.compiled.Measure`.

A rule may carry one measure, or a list of them, besides its status::

    measure:
      name: close_date_slips            # unique in the pack (not a field, count or computed name)
      kind: count                       # count | level | duration
      value: {field: close_date_pushes} # what it is (the forms below)
      direction: down                   # up: more is better for winning; down: more is worse
      unknown: "the number of pushes is not recorded"   # the unknown case, in words
      unknown_when: {...}               # optional deal-level condition: unknown there too
      negate_when: {...}                # optional deal-level condition: the value changes sign
      stages: [solution, bidding]       # optional; default: where the rule applies
      label: {en: "close date pushed {value} times", zh: "预计成交日期推迟{value}次"}

``value`` is exactly one of (what each means, and when it is unknown, is defined once in
:mod:`scoring.evidence.compiled`):

* ``{field: NAME}``: an int or number deal field, a count or a computed field;
* ``{sum: {NAME: weight, ...}}``: a weighted sum of those;
* ``{count_true: [BOOL, ...]}``: how many of these true/false deal fields are true;
* ``{ratio: [NUM, DEN]}``: NUM / DEN (unknown when DEN is 0);
* ``{level: {field: ENUM, values: {word: number, ...}}}``: an enum deal field on its ladder;
* ``{items: {list: L, where: ITEM-CONDITION, value: {field: F, values: {...}} | 1,
  weight: {field: G, values: {...}, unknown: w}, reduce: sum | max | min}}``: over child rows.

Every mistake raises :class:`~scoring.errors.RulePackError` naming the file and the rule.
"""
from __future__ import annotations

from typing import Any, Mapping

from scoring.contract.schema import CHILD_LISTS, STAGES
from scoring.errors import RulePackError
from scoring.evidence import LANGS
from scoring.evidence.compiled import (
    MEASURE_KINDS, CountTrue, ItemsOf, Level, Measure, NumberOf, Ratio, WeightedSum,
)
from scoring.evidence.grammar import Scope, number_problem, parse_condition, parse_item_condition

MEASURE_KEYS = {"name", "kind", "value", "direction", "unknown", "unknown_when", "negate_when", "stages", "label"}
REQUIRED_MEASURE_KEYS = ("name", "kind", "value", "direction", "unknown", "label")
DIRECTIONS = {"up": 1, "down": -1}
REDUCE = ("sum", "max", "min")


def parse_measures(raw: Any, rule_id: str, rule_stages: tuple[str, ...], scope: Scope, file: str) -> tuple[Measure, ...]:
    """The measures of one rule (``raw`` is its ``measure:`` value: a mapping, a list of them, or None)."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise RulePackError("'measure' must be a mapping or a non-empty list of them", file=file, rule=rule_id)
    return tuple(_parse_one(m, rule_id, rule_stages, scope, file) for m in items)


def _parse_one(m: Any, rid: str, rule_stages: tuple[str, ...], scope: Scope, file: str) -> Measure:
    def fail(msg: str):
        raise RulePackError(f"measure {name!r}: {msg}" if name else f"measure: {msg}", file=file, rule=rid)

    name = m.get("name") if isinstance(m, dict) else None
    if not isinstance(m, dict):
        fail(f"must be a mapping, got {m!r}")
    for key in REQUIRED_MEASURE_KEYS:
        if m.get(key) is None:
            fail(f"missing required key {key!r}")
    extra = set(m) - MEASURE_KEYS
    if extra:
        fail(f"unknown keys {sorted(extra, key=str)}")
    opp = scope.fields.get("opportunity", {})
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        fail("'name' must be letters, digits and _ (starting with a letter)")
    if name in opp or name in scope.counts or name in scope.computed:
        fail("the name clashes with a declared field, count or computed field")
    kind = m["kind"]
    if kind not in MEASURE_KINDS:
        fail(f"kind {kind!r} is not one of {', '.join(MEASURE_KINDS)}")
    if m["direction"] not in DIRECTIONS:
        fail(f"direction must be 'up' (more is better for winning) or 'down' (worse), got {m['direction']!r}")
    if not isinstance(m["unknown"], str) or not m["unknown"].strip():
        fail("'unknown' must say in words when the measure is unknown")
    label = m["label"]
    if not isinstance(label, dict) or not all(isinstance(label.get(lg), str) and label[lg].strip() for lg in LANGS):
        fail(f"'label' needs non-empty {' and '.join(repr(lg) for lg in LANGS)} templates")
    for lg in LANGS:
        try:
            label[lg].format(value=1, word="")
        except (KeyError, IndexError, ValueError) as e:
            fail(f"label {lg!r}: only {{value}} and {{word}} may be filled in ({e})")
    stages = m.get("stages")
    if stages is None:
        stages_t = tuple(rule_stages)
    else:
        if not isinstance(stages, list) or not stages or any(s not in STAGES for s in stages):
            fail(f"'stages' must list stages among {', '.join(STAGES)}")
        stages_t = tuple(s for s in STAGES if s in stages)
    cscope = Scope(fields=scope.fields, counts=scope.counts, computed=scope.computed)  # no ev_: measures precede rules
    where = f"measure {name}"
    conds = {k: None if m.get(k) is None else parse_condition(m[k], cscope, file, f"{rid}: {where} {k}")
             for k in ("unknown_when", "negate_when")}
    expr, words = _parse_value(m["value"], scope, file, rid, fail)
    if kind == "level" and not isinstance(expr, (Level, ItemsOf)):
        fail("a level is a {level: ...} or an {items: ...} over an enum")
    return Measure(name=name, rule=rid, kind=kind, direction=DIRECTIONS[m["direction"]],
                   stages=None if stages_t == STAGES else stages_t,
                   label={lg: label[lg].strip() for lg in LANGS}, expr=expr,
                   unknown_when=conds["unknown_when"], negate_when=conds["negate_when"], words=words)


def _number_name(x: Any, scope: Scope, fail) -> str:
    opp = scope.fields.get("opportunity", {})
    if isinstance(x, str) and (x in scope.counts or x in scope.computed
                               or (x in opp and opp[x].type in ("int", "number"))):
        return x
    fail(f"{x!r} is not an int or number field, a count or a computed field")


def _mapping(values: Any, field, fail, what: str) -> tuple[tuple[str, float], ...]:
    if not isinstance(values, dict) or not values:
        fail(f"{what}: 'values' must map the field's values to numbers")
    words = ("false", "true") if field.type == "bool" else field.values
    out = []
    for k, v in values.items():
        word = str(k).lower() if isinstance(k, bool) else k
        if word not in words:
            fail(f"{what}: {k!r} is not one of {', '.join(words)}")
        if number_problem(v):
            fail(f"{what}: {number_problem(v)}")
        out.append((str(word), float(v)))
    return tuple(out)


def _enum_field(ent: str, name: Any, scope: Scope, fail, what: str):
    f = scope.fields.get(ent, {}).get(name) if isinstance(name, str) else None
    if f is None or f.type not in ("enum", "bool"):
        fail(f"{what}: {name!r} is not an enum or true/false field of {ent}")
    return f


def _parse_value(v: Any, scope: Scope, file: str, rid: str, fail):
    if not isinstance(v, dict) or len(v) != 1:
        fail("'value' is exactly one of {field: ...}, {sum: ...}, {count_true: [...]}, {ratio: [...]}, "
             "{level: ...}, {items: ...}")
    form, arg = next(iter(v.items()))
    if form == "field":
        return NumberOf(_number_name(arg, scope, fail)), ()
    if form == "sum":
        if not isinstance(arg, dict) or not arg:
            fail("sum: map names to weights")
        terms = []
        for k, w in arg.items():
            if number_problem(w):
                fail(f"sum: weight of {k!r}: {number_problem(w)}")
            terms.append((_number_name(k, scope, fail), float(w)))
        return WeightedSum(tuple(terms)), ()
    if form == "count_true":
        opp = scope.fields.get("opportunity", {})
        if not isinstance(arg, list) or not arg or any(not isinstance(a, str) or a not in opp or opp[a].type != "bool"
                                                       for a in arg):
            fail("count_true: a list of true/false deal fields")
        return CountTrue(tuple(arg)), ()
    if form == "ratio":
        if not isinstance(arg, list) or len(arg) != 2:
            fail("ratio: [numerator, denominator]")
        return Ratio(_number_name(arg[0], scope, fail), _number_name(arg[1], scope, fail)), ()
    if form == "level":
        if not isinstance(arg, dict) or set(arg) != {"field", "values"}:
            fail("level: {field: ENUM_FIELD, values: {word: number, ...}}")
        f = _enum_field("opportunity", arg["field"], scope, fail, "level")
        mp = _mapping(arg["values"], f, fail, "level")
        return Level(f.name, mp), _words(mp)
    if form == "items":
        return _parse_items(arg, scope, file, rid, fail)
    fail(f"unknown value form {form!r} (field, sum, count_true, ratio, level or items)")


def _words(mp) -> tuple[tuple[float, str], ...]:
    seen: dict[float, str] = {}
    for word, num in mp:
        seen.setdefault(num, word)
    return tuple(seen.items())


def _parse_items(arg: Any, scope: Scope, file: str, rid: str, fail):
    if not isinstance(arg, dict) or "list" not in arg or set(arg) - {"list", "where", "value", "weight", "reduce"}:
        fail("items: {list: L, where: ..., value: {field: F, values: {...}} | 1, weight: {...}, reduce: sum|max|min}")
    lst = arg["list"]
    if lst not in CHILD_LISTS:
        fail(f"items: unknown list {lst!r}")
    where = None if arg.get("where") is None else parse_item_condition(arg["where"], lst, scope, file, rid)
    val = arg.get("value", 1)
    words: tuple = ()
    if val == 1 and not isinstance(val, bool):
        vf, vm = None, ()
    else:
        if not isinstance(val, dict) or set(val) != {"field", "values"}:
            fail("items: 'value' is 1 (count the rows) or {field: F, values: {word: number}}")
        f = _enum_field(lst, val["field"], scope, fail, "items value")
        vf, vm = f.name, _mapping(val["values"], f, fail, "items value")
        words = _words(vm)
    wt = arg.get("weight")
    if wt is None:
        wf, wm, wu = None, (), 1.0
    else:
        if not isinstance(wt, dict) or not {"field", "values", "unknown"} >= set(wt) >= {"field", "values"}:
            fail("items: 'weight' is {field: F, values: {word: number}, unknown: number}")
        f = _enum_field(lst, wt["field"], scope, fail, "items weight")
        wf, wm = f.name, _mapping(wt["values"], f, fail, "items weight")
        wu = wt.get("unknown", 1)
        if number_problem(wu):
            fail(f"items weight unknown: {number_problem(wu)}")
        wu = float(wu)
    red = arg.get("reduce", "sum")
    if red not in REDUCE:
        fail(f"items: reduce is one of {', '.join(REDUCE)}")
    return ItemsOf(lst, where, vf, vm, wf, wm, wu, red), words if red != "sum" else ()
