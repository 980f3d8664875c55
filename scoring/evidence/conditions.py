"""Evaluating item conditions of the safe subset in Python, for declared counts.

durable-rules cannot count, so a pack declares counts (``{list, where}``) and
the engine computes them before asserting a deal.  The ``where`` condition is
written in the same durable-rules grammar as the rules; this module gives it
the engine's semantics: a missing or null field fails every test except
``$nex`` (equality, ``$neq`` and comparisons alike).  The differential tests
check it against the engine.
"""
from __future__ import annotations

from typing import Any, Mapping

from scoring.evidence.pack import COMPARE_OPS, ITEM_PREFIX

_CMP = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def match_item(cond: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
    """Whether one child row (a contact, competitor or partner) matches ``cond``.

    Examples
    --------
    >>> match_item({"$and": [{"$i.role": "approver"}, {"$i.speaks_for_us": True}]},
    ...            {"role": "approver", "speaks_for_us": True})
    True
    >>> match_item({"$neq": {"$i.stance": "opponent"}}, {"role": "user"})   # unknown fails $neq
    False
    """
    (key, val), = cond.items()
    if key == "$and":
        return all(match_item(c, item) for c in val)
    if key == "$or":
        return any(match_item(c, item) for c in val)
    if key == "$ex":
        (name, _), = val.items()
        return item.get(name[len(ITEM_PREFIX):]) is not None
    if key == "$nex":
        (name, _), = val.items()
        return item.get(name[len(ITEM_PREFIX):]) is None
    if key == "$neq":
        (name, value), = val.items()
        got = item.get(name[len(ITEM_PREFIX):])
        return got is not None and got != value
    if key in COMPARE_OPS:
        (name, value), = val.items()
        got = item.get(name[len(ITEM_PREFIX):])
        return got is not None and _CMP[key](got, value)
    got = item.get(key[len(ITEM_PREFIX):])
    return got is not None and got == val


def count_items(where: Mapping[str, Any], items) -> int:
    """How many rows of ``items`` match ``where``."""
    return sum(1 for it in items if match_item(where, it))
