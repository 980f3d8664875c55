"""The condition grammar of a rule pack, parsed into typed nodes.

Conditions are written in a safe subset of the durable-rules condition grammar
(see ``rules/README.md``).  :func:`parse_condition` checks one condition
against the pack's declared fields, counts, computed fields and rule ids, and
returns it as a tree of the typed nodes below; every mistake raises
:class:`~scoring.errors.RulePackError` naming the file and the rule.  The
backends (:mod:`scoring.evidence.durable`, :mod:`scoring.evidence.columnar`)
only ever see these trees, through :mod:`scoring.evidence.compiled`.

Nodes
-----
:class:`Check`    one test of one input: ``=``, ``$neq``, ``$gt``/``$gte``/``$lt``/``$lte``,
                  ``$ex`` (known), ``$nex`` (unknown);
:class:`AllOf`    ``$and`` of a non-empty list;
:class:`AnyOf`    ``$or`` of a non-empty list;
:class:`Items`    ``$iany``/``$iall`` of an item condition over a child list.

What a test means (durable-rules' behaviour, measured; the backends follow it)
------------------------------------------------------------------------------
* An unknown input (absent or null) fails every test but ``$nex``; ``$ex`` is "known".
* ``$iany``/``$iall`` over an empty or missing list do not match (both); inside
  them an item whose field is unknown fails every test but ``$nex``.
  ``{$ex: {contacts: 1}}`` is "the list is non-empty".
* ``ev_<id>`` reads the status of rule ``<id>`` (always known to later layers).
* A count is known (0 for an empty or missing list) except where its list's whole
  table was absent from a table-form input: ``{$nex: {count: 1}}`` tests that.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Union

from scoring.contract.schema import CHILD_LISTS, Field
from scoring.errors import RulePackError
from scoring.evidence.status import STATUS_WORDS

#: Operators of the safe subset.
LOGICAL_OPS = ("$and", "$or")
COMPARE_OPS = ("$gt", "$gte", "$lt", "$lte")
EXIST_OPS = ("$ex", "$nex")
LIST_OPS = ("$iany", "$iall")
#: equality has no operator in the grammar (``{field: value}``); this is its name in a :class:`Check`.
EQ = "="
NEQ = "$neq"
SAFE_OPS = frozenset(LOGICAL_OPS + COMPARE_OPS + EXIST_OPS + LIST_OPS + (NEQ,))
#: durable-rules operators we refuse (they exist, but behave badly or are not needed).
UNSAFE_OPS = frozenset({"$mt", "$imt", "$not", "$add", "$sub", "$mul", "$div", "$s", "$m", "$l", "$r", "$i",
                        "$all", "$any", "$pri", "$count", "$cap", "$distinct"})

ITEM_PREFIX = "$i."
EV_PREFIX = "ev_"
#: fields the engine itself adds to every fact.
RESERVED = frozenset({"id", "sid", "_layer"})
FIELDS_FILE = "fields.yaml"
PACK_FILE = "pack.yaml"
MAX_DEPTH = 20
#: numbers a pack may hold in a condition (or a field's ``min``): durable-rules refuses the ruleset
#: (error 204) when a number prints in exponent form (magnitude 1e16 and over, or under 1e-4),
#: and NaN or infinity never compare sensibly
MAX_NUMBER = 10**15
MIN_FRACTION = 1e-4


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Ref:
    """What a name in a condition reads.

    kind : ``field`` (a deal field), ``item`` (a field of the child rows of ``list``),
        ``list`` (a child list itself: only ``$ex``/``$nex``), ``count``, ``computed``
        (derived facts) or ``status`` (``ev_<name>``: another rule's status).
    name : the field, list, count or computed name, or the rule id.
    type : the field type (``bool``, ``int``, ``number``, ``enum``, ``string``, ``date``);
        ``int`` for counts and computed fields, ``status`` and ``list`` otherwise.
    """

    kind: str
    name: str
    type: str
    list: str | None = None

    @property
    def key(self) -> str:
        """The name as the condition writes it (``amount``, ``$i.role``, ``ev_M2``)."""
        if self.kind == "item":
            return ITEM_PREFIX + self.name
        if self.kind == "status":
            return EV_PREFIX + self.name
        return self.name

    @property
    def input(self) -> str:
        """The name of the input in :attr:`Rule.reads` (``amount``, ``contacts[].role``, ``ev_M2``)."""
        return f"{self.list}[].{self.name}" if self.kind == "item" else self.key


@dataclass(frozen=True)
class Check:
    """One test: ``op`` is :data:`EQ`, :data:`NEQ`, one of :data:`COMPARE_OPS` or :data:`EXIST_OPS`
    (``value`` is then 1)."""

    op: str
    ref: Ref
    value: Any


@dataclass(frozen=True)
class AllOf:
    """``$and``: every part matches."""

    parts: tuple["Cond", ...]


@dataclass(frozen=True)
class AnyOf:
    """``$or``: some part matches."""

    parts: tuple["Cond", ...]


@dataclass(frozen=True)
class Items:
    """``$iany`` (``quantifier == "$iany"``) or ``$iall`` of ``where`` over the rows of ``list``."""

    quantifier: str
    list: str
    where: "Cond"


Cond = Union[Check, AllOf, AnyOf, Items]


def walk(cond: Cond):
    """Every node of ``cond``, parents before children."""
    yield cond
    if isinstance(cond, (AllOf, AnyOf)):
        for p in cond.parts:
            yield from walk(p)
    elif isinstance(cond, Items):
        yield from walk(cond.where)


def inputs(cond: Cond) -> set[str]:
    """The inputs a condition reads (:attr:`Ref.input`; a list quantifier also reads the list)."""
    out: set[str] = set()
    for node in walk(cond):
        if isinstance(node, Check):
            out.add(node.ref.input)
        elif isinstance(node, Items):
            out.add(node.list)
    return out


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Scope:
    """The names a condition may read: the pack's declared fields, counts, computed fields and rules."""

    fields: Mapping[str, Mapping[str, Field]]
    counts: frozenset[str] = frozenset()
    computed: frozenset[str] = frozenset()
    rule_ids: frozenset[str] = frozenset()


class _Where:
    """Where a condition is written, for error messages."""

    __slots__ = ("file", "rule")

    def __init__(self, file: str, rule: str):
        self.file, self.rule = file, rule

    def fail(self, message: str):
        raise RulePackError(message, file=self.file, rule=self.rule)


def parse_condition(raw: Any, scope: Scope, file: str, rule: str) -> Cond:
    """Check a deal-level condition (a rule's ``when``/``unknown_when``) and return its tree.

    Raises
    ------
    RulePackError
        naming ``file`` and ``rule``: an unknown field or operator, an operator outside
        the safe subset, a value of the wrong type, an ``$or`` over different item fields...

    Examples
    --------
    >>> from scoring.contract.schema import CONTRACT
    >>> parse_condition({"$gte": {"tech_presentations": 2}}, Scope(CONTRACT), "f.yaml", "R1")
    Check(op='$gte', ref=Ref(kind='field', name='tech_presentations', type='int', list=None), value=2)
    """
    return _deal(raw, scope, _Where(file, rule), 0)


def parse_item_condition(raw: Any, lst: str, scope: Scope, file: str, rule: str) -> Cond:
    """Check an item condition over the rows of ``lst`` (a count's ``where``) and return its tree.

    Unlike an item condition inside ``$iany``/``$iall``, it may hold an ``$or`` over different
    item fields: counts are not evaluated by durable-rules.
    """
    return _item(raw, lst, scope, _Where(file, rule), 0)


def _one_key(cond, at: _Where, where: str) -> tuple[str, Any]:
    if not isinstance(cond, dict) or len(cond) != 1:
        at.fail(f"{where}: each condition is a mapping with exactly one key, got {cond!r}")
    key, value = next(iter(cond.items()))
    if not isinstance(key, str):
        at.fail(f"{where}: {key!r} is not a field name or an operator")
    return key, value


def _refuse_operator(op: str, at: _Where):
    """An operator where a field or a known operator was expected: say which kind of mistake."""
    if op in UNSAFE_OPS:
        at.fail(f"operator {op} is outside the safe subset")
    at.fail(f"unknown operator {op}")


def number_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a number of a pack, or None when it can: an int or float from
    -:data:`MAX_NUMBER` to :data:`MAX_NUMBER` (so not NaN or infinite), 0 or at least :data:`MIN_FRACTION`
    in magnitude.

    >>> number_problem(2.5) is None, number_problem(float("inf"))
    (True, 'inf is outside -10^15 .. 10^15')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if not -MAX_NUMBER <= value <= MAX_NUMBER:  # NaN compares false too
        return f"{value!r} is outside -10^15 .. 10^15"
    if value and abs(value) < MIN_FRACTION:
        return f"{value!r} is too small: a number other than 0 must be at least {MIN_FRACTION} in magnitude"
    return None


def _check_value(ref: Ref, field: Field | None, value, at: _Where, *, compare: bool = False) -> None:
    """Refuse a value that a test of ``ref`` can never match sensibly."""
    name = ref.input
    if isinstance(value, (dict, list)) or value is None:
        at.fail(f"{name}: the value must be a plain string, number or boolean (references between facts and "
                f"null are not allowed), got {value!r}")
    if ref.kind == "status":
        if value not in STATUS_WORDS:
            at.fail(f"{name} is a rule status: one of {', '.join(sorted(STATUS_WORDS))}, not {value!r}")
        if compare:
            at.fail(f"{name} is a status; it cannot be compared with <, >")
        return
    t = field.type if field is not None else "int"  # counts and computed fields are whole numbers
    if compare and t not in ("int", "number"):
        at.fail(f"{name} is a {t} field; comparisons (<, >) are only allowed on numeric fields")
    if t in ("int", "number"):
        problem = number_problem(value)
        if problem:
            at.fail(f"{name} is a number: {problem}")
    elif t == "bool":
        if not isinstance(value, bool):
            at.fail(f"{name} is true/false; {value!r} is not")
    elif t == "enum":
        if value not in field.values:
            at.fail(f"{name}: {value!r} is not one of {', '.join(field.values)}")
    elif not isinstance(value, str):  # string, date
        at.fail(f"{name} is text; {value!r} is not")


def _deal_ref(name, scope: Scope, at: _Where) -> tuple[Ref, Field | None]:
    """The reference of a deal-level name, or raise."""
    if not isinstance(name, str):
        at.fail(f"field name {name!r} is not text")
    if name.startswith("$"):
        _refuse_operator(name, at)
    if name in RESERVED:
        at.fail(f"{name!r} cannot be used in a condition")
    opp = scope.fields.get("opportunity", {})
    if name in opp:
        return Ref("field", name, opp[name].type), opp[name]
    if name in scope.counts:
        return Ref("count", name, "int"), None
    if name in scope.computed:
        return Ref("computed", name, "int"), None
    if name.startswith(EV_PREFIX):
        target = name[len(EV_PREFIX):]
        if target not in scope.rule_ids:
            at.fail(f"{name!r} refers to unknown rule {target!r}")
        return Ref("status", target, "status"), None
    if name in CHILD_LISTS:
        return Ref("list", name, "list"), None
    at.fail(f"unknown field {name!r} (declare it in {FIELDS_FILE}, or as a count or computed field in {PACK_FILE})")


def _logical(key: str, val, parse, at: _Where) -> Cond:
    if not isinstance(val, list) or not val:
        at.fail(f"{key} needs a non-empty list of conditions")
    parts = tuple(parse(c) for c in val)
    return AllOf(parts) if key == "$and" else AnyOf(parts)


def _deal(cond, scope: Scope, at: _Where, depth: int) -> Cond:
    if depth > MAX_DEPTH:
        at.fail("condition nested too deeply")
    key, val = _one_key(cond, at, "condition")
    if key in LOGICAL_OPS:
        return _logical(key, val, lambda c: _deal(c, scope, at, depth + 1), at)
    if key in LIST_OPS:
        lst, item = _one_key(val, at, key)
        if lst not in CHILD_LISTS:
            at.fail(f"{key} works over {', '.join(CHILD_LISTS)}, not {lst!r}")
        where = _item(item, lst, scope, at, 0)
        _refuse_item_or(where, lst, at)
        return Items(key, lst, where)
    if key in EXIST_OPS:
        name, one = _one_key(val, at, key)
        ref, _ = _deal_ref(name, scope, at)
        if one != 1 or isinstance(one, bool):
            at.fail(f"{key} takes {{field: 1}}, got {val!r}")
        return Check(key, ref, 1)  # a count is unknown where its list's table was absent from the input
    if key in COMPARE_OPS or key == NEQ:
        op, (name, value) = key, _one_key(val, at, key)
    elif key.startswith("$"):
        _refuse_operator(key, at)
    else:
        op, name, value = EQ, key, val
    ref, field = _deal_ref(name, scope, at)
    if ref.kind == "list":
        at.fail(f"{name!r} is a list: use $iany/$iall or $ex/$nex")
    _check_value(ref, field, value, at, compare=op in COMPARE_OPS)
    return Check(op, ref, value)


def _item_ref(name, lst: str, scope: Scope, at: _Where) -> tuple[Ref, Field]:
    if not isinstance(name, str):
        at.fail(f"field name {name!r} is not text")
    if name in LIST_OPS:
        at.fail(f"{name} cannot be nested inside an item condition")
    if name.startswith("$") and not name.startswith(ITEM_PREFIX):
        _refuse_operator(name, at)
    if not name.startswith(ITEM_PREFIX):
        at.fail(f"inside {lst}, fields are written $i.<field>; {name!r} is not")
    fname = name[len(ITEM_PREFIX):]
    f = scope.fields.get(lst, {}).get(fname)
    if f is None:
        at.fail(f"unknown field {fname!r} of {lst} (declare it in {FIELDS_FILE})")
    return Ref("item", fname, f.type, lst), f


def _item(cond, lst: str, scope: Scope, at: _Where, depth: int) -> Cond:
    if depth > MAX_DEPTH:
        at.fail("condition nested too deeply")
    key, val = _one_key(cond, at, f"item condition over {lst}")
    if key in LOGICAL_OPS:
        return _logical(key, val, lambda c: _item(c, lst, scope, at, depth + 1), at)
    if key in EXIST_OPS:
        name, one = _one_key(val, at, key)
        ref, _ = _item_ref(name, lst, scope, at)
        if one != 1 or isinstance(one, bool):
            at.fail(f"{key} takes {{field: 1}}, got {val!r}")
        return Check(key, ref, 1)
    if key in COMPARE_OPS or key == NEQ:
        op, (name, value) = key, _one_key(val, at, key)
    elif key in LIST_OPS:
        at.fail(f"{key} cannot be nested inside an item condition")
    elif key.startswith("$") and not key.startswith(ITEM_PREFIX):
        _refuse_operator(key, at)
    else:
        op, name, value = EQ, key, val
    ref, field = _item_ref(name, lst, scope, at)
    _check_value(ref, field, value, at, compare=op in COMPARE_OPS)
    return Check(op, ref, value)


def _refuse_item_or(cond: Cond, lst: str, at: _Where) -> None:
    """Refuse ``$or`` over different item fields inside ``$iany``/``$iall``.

    durable-rules 2.0.28 evaluates it wrongly: in ``{$or: [{$i.role: approver},
    {$i.influence: high}]}`` the test on the last field decides when both are
    present, so an approver with low influence does not match.  ``$or`` over
    values of one field and ``$and`` are evaluated correctly; counts are
    computed outside the engine and may use any ``$or``.
    """
    for node in walk(cond):
        if isinstance(node, AnyOf):
            names = {n.ref.key for n in walk(node) if isinstance(n, Check)}
            if len(names) > 1:
                at.fail(f"$or over different item fields ({', '.join(sorted(names))}) inside {lst} is evaluated "
                        "wrongly by durable-rules 2.0.28 (the last field decides); declare a count with this "
                        "condition in pack.yaml and test the count instead")


def distinct_tests(cond: Cond, acc: dict[str, set]) -> None:
    """Add the distinct tests of ``cond`` per name to ``acc`` (durable-rules hangs on several hundred per name)."""
    if isinstance(cond, (AllOf, AnyOf)):
        for c in cond.parts:
            distinct_tests(c, acc)
    elif isinstance(cond, Items):
        acc.setdefault(cond.list, set()).add(cond.where)
    else:
        acc.setdefault(cond.ref.key, set()).add((cond.op, repr(cond.value)))
