"""Which input fields a rule pack reads, and which fields of some data it leaves unread.

A model learns only from what the pack's rules read: a field of the history
that no rule, count or computed field reads carries no signal into it, however
predictive it is.  :func:`unread_fields` names such fields, so that ``scoring
train`` can say so instead of training on less without a word.

Field names are written as in the pack's reads: ``amount`` (a deal field),
``contacts[].is_coach`` (a field of a child row).

Examples
--------
>>> pack = load_pack("rules/examples/bant")                         # doctest: +SKIP
>>> unread_fields(pack, {"opportunity": {"amount", "region"}})       # doctest: +SKIP
['region']
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from scoring.contract.schema import CHILD_KEY, CHILD_LISTS
from scoring.evidence.grammar import EV_PREFIX
from scoring.evidence.pack import RulePack

#: Fields that name, date or label a record rather than describe the deal: never reported as unread
#: (an identifier, the snapshot date, the outcome a model learns, the key of a child row, a free-text name).
BOOKKEEPING = frozenset({"id", "as_of", "outcome", "closed_at", "name", "account", CHILD_KEY})

#: The entity of the deal itself (child entities are the names of :data:`CHILD_LISTS`).
OPPORTUNITY = "opportunity"


def field_name(entity: str, name: str) -> str:
    """How a field is named in reads and reports: ``amount``, ``contacts[].is_coach``."""
    return name if entity == OPPORTUNITY else f"{entity}[].{name}"


def read_fields(pack: RulePack) -> frozenset[str]:
    """Every input field the pack reads: in a rule's conditions, through a count or a computed field,
    and ``stage`` when the pack has stages (it decides where each rule applies)."""
    out: set[str] = {"stage", "as_of"} if pack.staged else {"as_of"}
    for c in pack.computed.values():
        out.update((c.start, c.end))
    for c in pack.counts.values():
        out.update(c.reads)
    for r in pack.rules:
        out.update(x for x in r.reads if not x.startswith(EV_PREFIX))
    return frozenset(out)


def unread_fields(pack: RulePack, seen: Mapping[str, Iterable[str]]) -> list[str]:
    """The fields of ``seen`` (entity -> names of its fields that hold a known value somewhere in the
    data, declared or not) that ``pack`` does not read, as :func:`field_name` gives them, sorted (the
    deal's fields first).  :data:`BOOKKEEPING` fields are left out."""
    reads = read_fields(pack)
    out = []
    for entity in (OPPORTUNITY, *CHILD_LISTS):
        for name in sorted(set(seen.get(entity, ())) - BOOKKEEPING):
            if field_name(entity, name) not in reads:
                out.append(field_name(entity, name))
    return out


def fields_seen(records: Iterable[Mapping], undeclared: Mapping[str, Iterable[str]] | None = None) -> dict[str, set[str]]:
    """entity -> the fields holding a known (non-null) value in some of ``records`` (nested form), plus the
    ``undeclared`` fields the reader dropped (:attr:`scoring.contract.reader.ReadResult.undeclared_fields`)."""
    out: dict[str, set[str]] = {OPPORTUNITY: set(), **{lst: set() for lst in CHILD_LISTS}}
    for rec in records:
        for k, v in rec.items():
            if k in CHILD_LISTS:
                for item in v or ():
                    out[k].update(f for f, x in item.items() if x is not None)
            elif v is not None:
                out[OPPORTUNITY].add(k)
    for entity, names in (undeclared or {}).items():
        out.setdefault(entity, set()).update(names)
    return out


def unread_input_fields(pack: RulePack, source: str | Path) -> list[str]:
    """:func:`unread_fields` of the records input ``source`` (any form of the contract), read with the
    pack's schema: its fields that hold a value and no rule reads, declared or not."""
    from scoring.contract.reader import read_records

    res = read_records(source, pack.schema)
    return unread_fields(pack, fields_seen(res.records, res.undeclared_fields))
