"""One nested record (a Python dict, a JSON object) -> its normalised form.

Normalised form
---------------
Every declared opportunity field is present: a Python value or ``None``
(unknown; never ``False``, never NaN), typed by :mod:`scoring.contract.values`.
Each child list (``contacts``, ``competitors``, ``partners``, and any child
entity of the schema) is a list of child dicts normalised the same way.
Undeclared fields are kept untouched (a rule pack may declare them later),
once checked to be valid Unicode (names and values) and nested at most
:data:`~scoring.contract.values.MAX_DEPTH` levels deep in the record.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scoring.contract.schema import CONTRACT
from scoring.contract.entities import Compiled, Entity, compiled
from scoring.contract.values import (AS_OF, HISTORY_MISSING, ID, MAX_DEPTH, MISSING, NOT_A_LIST, NOT_A_RECORD,
                                     NOT_AN_OBJECT, NOT_UNICODE, OPPORTUNITY, Bad, Schema, exceeds, free_value_problem,
                                     is_text, safe_name, show)
from scoring.errors import RecordError

__all__ = ["validate_record"]


class _FieldError(Exception):
    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason


_OPP_LEVEL, _CHILD_LEVEL = 1, 3  # JSON nesting level of a record and of a child row


def _norm_row(raw: Mapping, ent: Entity, skip: frozenset, prefix: str, seen: set | None = None,
              level: int = _OPP_LEVEL) -> dict:
    """Normalise one row of an entity (fast path over the keys present).

    Undeclared keys are kept (checked by :func:`~scoring.contract.values.free_value_problem`,
    the row being at JSON nesting ``level``); ``seen`` (if given) collects their names.
    """
    out = dict.fromkeys(ent.names)
    convs = ent.conv_map
    extra = None
    try:
        for k, v in raw.items():
            conv = convs.get(k)
            if conv is None:
                if k not in skip:
                    if extra is None:
                        extra = [k]
                    else:
                        extra.append(k)
            elif v is not None:
                out[k] = conv(v)
    except Bad:
        _first_field_error(raw, ent, prefix)
        raise  # pragma: no cover - _first_field_error always raises here
    for name in ent.required_names:
        if out[name] is None:
            _first_field_error(raw, ent, prefix)
    for a, b in ent.pairs:
        va, vb = out[a], out[b]
        if va is not None and vb is not None and va > vb:
            raise _FieldError(prefix + a, exceeds(a, va, b, vb))
    if extra is not None:
        for k in extra:
            v = raw[k]
            if isinstance(k, str) and not is_text(k):
                raise _FieldError(prefix + safe_name(k), NOT_UNICODE.format(value=show(k)))
            if isinstance(v, (str, Mapping, list, tuple)):
                problem = free_value_problem(v, MAX_DEPTH - level)
                if problem is not None:
                    raise _FieldError(prefix + safe_name(k), problem)
            out[k] = v
        if seen is not None:
            seen.update(extra)
    return out


def _first_field_error(raw: Mapping, ent: Entity, prefix: str) -> None:
    """Raise the row's first bad or missing field in schema order (the slow path, taken on error)."""
    get = raw.get
    for name, conv, req in zip(ent.names, ent.native, ent.required):
        v = get(name)
        if v is not None:
            try:
                v = conv(v)
            except Bad as e:
                raise _FieldError(prefix + name, e.args[0]) from None
        if v is None and req:
            raise _FieldError(prefix + name, MISSING)


def _record_id(raw: Mapping) -> str | None:
    """The id a reject names: the record's id when it is a valid one, else None."""
    rid = raw.get(ID)
    return rid if isinstance(rid, str) and rid.strip() and is_text(rid) else None


def normalise(raw: Mapping, comp: Compiled, history: bool, undeclared: dict[str, set] | None = None) -> dict:
    """Normalise one nested record or raise :class:`~scoring.errors.RecordError`.

    ``undeclared`` (if given) collects entity -> undeclared field names of a
    valid record (a reader scans a rejected record with :func:`scan_undeclared`).
    """
    rid = _record_id(raw)
    seen = undeclared or {}
    try:
        out = _norm_row(raw, comp.opp, comp.child_names, "", seen.get(OPPORTUNITY))
        if history and "outcome" in out and out["outcome"] is None:
            raise _FieldError("outcome", HISTORY_MISSING)
        for child in comp.children:
            lst = raw.get(child.name)
            if lst is None or (isinstance(lst, float) and lst != lst):
                out[child.name] = []
                continue
            if not isinstance(lst, (list, tuple)):
                raise _FieldError(child.name, NOT_A_LIST.format(kind=type(lst).__name__))
            rows = []
            skip: frozenset = frozenset()
            for i, row in enumerate(lst):
                if not isinstance(row, Mapping):
                    raise _FieldError(f"{child.name}[{i}]", NOT_AN_OBJECT.format(kind=type(row).__name__))
                rows.append(_norm_row(row, child, skip, f"{child.name}[{i}].", seen.get(child.name), _CHILD_LEVEL))
            out[child.name] = rows
    except _FieldError as e:
        raise RecordError(rid, e.field, e.reason) from None
    return out


def scan_undeclared(raw: Mapping, comp: Compiled, undeclared: dict[str, set]) -> None:
    """Add the undeclared field names of one (rejected) nested record to ``undeclared``
    (as :func:`~scoring.contract.values.safe_name` writes them)."""
    undeclared[OPPORTUNITY].update(map(safe_name, raw.keys() - comp.opp.declared - comp.child_names))
    for child in comp.children:
        lst = raw.get(child.name)
        if isinstance(lst, (list, tuple)):
            for row in lst:
                if isinstance(row, Mapping):
                    undeclared[child.name].update(map(safe_name, row.keys() - child.declared))


def record_key(rec: Mapping) -> tuple[Any, Any]:
    """The ``(id, as_of)`` key of a normalised record: a second record with the same key is a duplicate."""
    return rec[ID], rec.get(AS_OF)


def validate_record(raw: Mapping, schema: Schema = CONTRACT, *, history: bool = False) -> dict:
    """Validate and normalise ONE nested record (library path).

    Parameters
    ----------
    raw : Mapping
        An opportunity in nested form (JSON types; see :mod:`scoring.contract.values`).
    schema : Mapping
        entity -> field name -> Field; default the contract.
    history : bool
        Closed deals for training: ``outcome`` is then required.

    Returns
    -------
    dict
        A new dict: every declared field present (None when unknown), child
        lists always present, undeclared fields kept as given.

    Raises
    ------
    RecordError
        With ``record_id`` (None if the id itself is bad), ``field`` (child
        fields as ``contacts[2].stance``) and ``reason``.

    Examples
    --------
    >>> r = validate_record({"id": "OPP-1", "stage": "solution", "needs_understood": False})
    >>> r["needs_understood"], r["tailored_solution"], r["contacts"]
    (False, None, [])
    >>> validate_record({"id": "OPP-2", "stage": "solution", "site_visits": -2})
    Traceback (most recent call last):
    ...
    scoring.errors.RecordError: record OPP-2: field 'site_visits': -2 is below the minimum 0
    """
    if not isinstance(raw, Mapping):
        raise RecordError(None, "", NOT_A_RECORD.format(kind=type(raw).__name__))
    return normalise(raw, compiled(schema), history)
