"""A schema compiled into per-field converters, once per schema (:func:`compiled`).

Every reader of the contract validates through the :class:`Entity` objects
made here from the converters of :mod:`scoring.contract.values`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scoring.contract.schema import Field
from scoring.contract.values import ID, OPPORTUNITY, Converter, Schema, converters

__all__ = ["Entity", "Compiled", "compiled"]


@dataclass(frozen=True)
class Entity:
    """The converters of every field of one entity, in schema order."""

    name: str
    names: tuple[str, ...]
    fields: tuple[Field, ...]
    native: tuple[Converter, ...]
    text: tuple[Converter, ...]
    required: tuple[bool, ...]
    pairs: tuple[tuple[str, str], ...]  # (field, max_field)
    declared: frozenset[str]
    conv_map: dict  # name -> native converter
    required_names: tuple[str, ...]


@dataclass(frozen=True)
class Compiled:
    """A schema compiled into per-field converters (see :func:`compiled`)."""

    opp: Entity
    children: tuple[Entity, ...]
    child_names: frozenset[str]


def _compile_entity(name: str, fields: Mapping[str, Field]) -> Entity:
    names, flds, nat, txt, req, pairs = [], [], [], [], [], []
    for fname, f in fields.items():
        native, text = converters(f)
        names.append(fname)
        flds.append(f)
        nat.append(native)
        txt.append(text)
        req.append(bool(f.required))
        if f.max_field is not None:
            if f.max_field not in fields:
                raise ValueError(f"{name}.{fname}: max_field {f.max_field!r} is not a field of {name}")
            pairs.append((fname, f.max_field))
    return Entity(name, tuple(names), tuple(flds), tuple(nat), tuple(txt), tuple(req), tuple(pairs),
                  frozenset(names), dict(zip(names, nat)), tuple(n for n, r in zip(names, req) if r))


_CACHE: dict[int, tuple[Schema, Compiled]] = {}
_CACHE_MAX = 64


def compiled(schema: Schema) -> Compiled:
    """Compile a schema once; cached by identity (the cache holds the schema, so ids are not reused).

    Treat a schema as immutable once it has been used.

    Raises
    ------
    ValueError
        The schema has no ``opportunity`` entity with an ``id``, or a field
        has an unknown type or a ``max_field`` outside its entity.
    """
    hit = _CACHE.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    if OPPORTUNITY not in schema or ID not in schema[OPPORTUNITY]:
        raise ValueError(f"a schema needs the entity {OPPORTUNITY!r} with an {ID!r} field")
    opp = _compile_entity(OPPORTUNITY, schema[OPPORTUNITY])
    children = tuple(_compile_entity(e, flds) for e, flds in schema.items() if e != OPPORTUNITY)
    comp = Compiled(opp, children, frozenset(c.name for c in children))
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[id(schema)] = (schema, comp)
    return comp
