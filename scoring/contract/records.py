"""Reading and validating opportunity records (the data contract).

Two paths lead in:

* the **library path**: :func:`validate_record` checks ONE nested record (a
  Python dict) and returns its normalised form, or raises
  :class:`~scoring.errors.RecordError` naming the record and the field;
* the **batch path**: :func:`read_jsonl`, :func:`read_tables` and
  :func:`read_records` read a whole input and return a :class:`ReadResult`:
  the good records, one reject entry per bad record (id, field, reason and
  line/row: never the record itself, it may hold personal data), orphan child
  rows and the input fields nobody declared.

Normalised form
---------------
Every declared opportunity field is present: a Python value or ``None``
(unknown; never ``False``, never NaN).  ``bool`` -> ``bool``, ``int`` ->
``int``, ``number`` -> ``float``, ``date`` -> ``'YYYY-MM-DD'``, ``enum`` -> one
of its lower-case values, ``string`` -> ``str``.  Each child list
(``contacts``, ``competitors``, ``partners``, and any child entity of the
schema) is a list of child dicts normalised the same way.  Undeclared fields
are kept untouched (a rule pack may declare them later).

Typing per input form
---------------------
* JSON / Python dicts: values must have their JSON type (``"true"`` is not a
  bool, ``1`` is not a bool, ``True`` is not ``1``; ``3.0`` is the int 3).  A
  float NaN, ``pd.NA`` or ``pd.NaT`` in a Python dict is pandas' "missing" and
  becomes ``None``; the literal ``NaN``/``Infinity`` tokens in JSON text are
  not JSON and are rejected.
* CSV: every cell is text (read with ``dtype=str, keep_default_na=False``); an
  empty cell is unknown, booleans are ``true/false/yes/no/1/0`` in any case,
  and no other text is a null (``NA`` in a text field is the text ``"NA"``).
* Parquet keeps its own types and is checked like JSON values (numpy/pandas
  scalars, dates and timestamps are accepted).

Schemas
-------
Every function takes ``schema`` (entity -> field name -> :class:`Field`),
by default :data:`scoring.contract.schema.CONTRACT`; a rule pack's merged schema adds
its own fields (:func:`merge_schema`).  A schema is compiled into per-field
converters once and cached by identity, so treat a schema as immutable once it
has been used.
"""
from __future__ import annotations

import datetime as _dt
import functools
import gc
import gzip
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field as _dc_field
from itertools import repeat
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from scoring.contract.schema import CHILD_KEY, CONTRACT, FALSE_WORDS, FIELD_TYPES, TRUE_WORDS, Field
from scoring.errors import RecordError, ScoringError

__all__ = [
    "ReadResult",
    "merge_schema",
    "validate_record",
    "validate_frames",
    "read_jsonl",
    "read_tables",
    "read_records",
    "OPPORTUNITY",
    "AS_OF",
]

Schema = Mapping[str, Mapping[str, Field]]

#: Entity name of the deal-level record.  Every other entity of a schema is a child list.
OPPORTUNITY = "opportunity"
#: Snapshot date; with ``id`` it keys a record, and child tables may carry it as a key too.
AS_OF = "as_of"
_ID = "id"

_DUPLICATE = "duplicate (id, as_of)"
_MISSING = "required field is missing"


# --------------------------------------------------------------------------- #
# Result of a batch read
# --------------------------------------------------------------------------- #
@dataclass
class ReadResult:
    """What a batch reader found.

    Attributes
    ----------
    records : list of dict
        Valid records in normalised nested form, in input order.
    rejects : list of dict
        One entry per bad input record: ``{"id", "field", "reason", "line"}``
        (JSON Lines, 1-based line number) or ``{"id", "field", "reason", "row"}``
        (table form, 1-based data row of the opportunities table: the first row
        under the header is row 1).  ``id`` is None when unknown, ``field`` is
        None for a line that is not a record at all (broken JSON).
    orphans : list of dict
        Child rows whose ``opportunity_id`` matches no opportunity:
        ``{"table", "opportunity_id", "row", "reason"}``.  A child row of a
        rejected opportunity is no orphan: it goes away with its record.
    undeclared_fields : dict
        entity -> sorted input fields the schema does not declare (a misspelt
        column would otherwise silently read as unknown).  Only entities with
        such fields appear.
    n_read : int
        Input opportunity records (lines / rows) seen;
        ``n_read == len(records) + len(rejects)``.
    """

    records: list[dict] = _dc_field(default_factory=list)
    rejects: list[dict] = _dc_field(default_factory=list)
    orphans: list[dict] = _dc_field(default_factory=list)
    undeclared_fields: dict[str, list[str]] = _dc_field(default_factory=dict)
    n_read: int = 0


# --------------------------------------------------------------------------- #
# Schema merging
# --------------------------------------------------------------------------- #
def merge_schema(base: Schema, extra: Mapping[str, Mapping[str, Field]]) -> dict[str, dict[str, Field]]:
    """Return ``base`` with the fields of ``extra`` added (a new dict; inputs are untouched).

    A field of ``extra`` that ``base`` already declares must have the same type
    (and, for an enum, the same values); the ``base`` definition is kept.

    Raises
    ------
    ValueError
        An extra field redefines a base field with another type or other enum
        values, names an unknown entity or type, or its ``max_field`` names no
        field of its entity.

    Examples
    --------
    >>> from scoring.contract.schema import CONTRACT, Field
    >>> s = merge_schema(CONTRACT, {"opportunity": {"pilot_running": Field("pilot_running", "bool")}})
    >>> s["opportunity"]["pilot_running"].type
    'bool'
    """
    merged: dict[str, dict[str, Field]] = {ent: dict(flds) for ent, flds in base.items()}
    for ent, flds in extra.items():
        if ent not in merged:
            raise ValueError(f"unknown entity {ent!r} (expected one of {', '.join(merged)})")
        for name, f in flds.items():
            if not isinstance(f, Field):
                raise ValueError(f"{ent}.{name}: expected a Field, got {type(f).__name__}")
            if f.type not in FIELD_TYPES:
                raise ValueError(f"{ent}.{name}: unknown type {f.type!r} (expected one of {', '.join(FIELD_TYPES)})")
            if f.type == "enum" and not f.values:
                raise ValueError(f"{ent}.{name}: an enum needs values")
            old = merged[ent].get(name)
            if old is not None:
                if old.type != f.type or (old.type == "enum" and set(old.values) != set(f.values)):
                    raise ValueError(
                        f"{ent}.{name} redefines a declared field: {_type_words(f)} vs {_type_words(old)}"
                    )
                continue  # the base definition (with its min, max_field, ...) stays authoritative
            merged[ent][name] = f if f.name == name else Field(**{**f.__dict__, "name": name})
    for ent, flds in merged.items():
        for name, f in flds.items():
            if f.max_field is not None and f.max_field not in flds:
                raise ValueError(f"{ent}.{name}: max_field {f.max_field!r} is not a field of {ent}")
    return merged


def _type_words(f: Field) -> str:
    return f"enum of {', '.join(f.values)}" if f.type == "enum" else f.type


# --------------------------------------------------------------------------- #
# Per-value converters
# --------------------------------------------------------------------------- #
class _Bad(Exception):
    """A value does not fit its field; ``args[0]`` is the reason."""


class _JSONConstant:
    """A ``NaN`` / ``Infinity`` token in JSON text (not JSON; never a value)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


_NA = pd.NA
_NAT = pd.NaT
_INT_RE = re.compile(r"[+-]?[0-9]+")
_NUM_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _show(v: Any) -> str:
    """A value as a reason shows it: strings quoted, booleans as in JSON."""
    if isinstance(v, str):
        return repr(str(v))
    if v is True or v is False or isinstance(v, np.bool_):
        return "true" if v else "false"
    if isinstance(v, (np.generic,)):
        v = v.item()
    return str(v)


def _num_words(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _is_null(v: Any) -> bool:
    """pandas/numpy "missing": None, NaN, pd.NA, NaT."""
    if v is None or v is _NA or v is _NAT:
        return True
    if isinstance(v, float):
        return v != v
    if isinstance(v, (np.floating, np.datetime64, np.timedelta64)):
        return bool(np.isnan(v)) if isinstance(v, np.floating) else bool(np.isnat(v))
    return False


_DATE_MEMO: dict[str, str] = {}


def _date_from_text(s: str) -> str:
    hit = _DATE_MEMO.get(s)
    if hit is not None:
        return hit
    if _DATE_RE.fullmatch(s):
        try:
            iso = _dt.date.fromisoformat(s).isoformat()
        except ValueError:
            pass
        else:
            if len(_DATE_MEMO) > 100_000:
                _DATE_MEMO.clear()
            _DATE_MEMO[str(s)] = iso
            return iso
    raise _Bad(f"{_show(s)} is not a date (YYYY-MM-DD)")


def _make_converters(f: Field) -> tuple[Callable[[Any], Any], Callable[[str], Any]]:
    """Return ``(native, text)`` converters for one field.

    ``native(v)`` takes a JSON/Python/Parquet value that is not None and
    returns the normalised value (None for a pandas null) or raises ``_Bad``.
    ``text(s)`` takes a non-empty CSV cell.
    """
    t = f.type
    lo = f.min

    def check_min(n):
        if lo is not None and n < lo:
            raise _Bad(f"{_show(n)} is below the minimum {_num_words(lo)}")
        return n

    if t == "string":
        required = f.required

        def native(v):
            if type(v) is str or isinstance(v, str):
                if required and not v.strip():
                    raise _Bad(f"{_show(v)} is blank; a non-empty string is required")
                return str(v)
            if _is_null(v):
                return None
            raise _Bad(f"{_show(v)} is not a string" + ("; ids are text, quote them" if required else ""))

        return native, native

    if t == "enum":
        allowed = frozenset(f.values)
        words = ", ".join(f.values)

        def native(v):
            if isinstance(v, str) and v in allowed:
                return str(v)
            if _is_null(v):
                return None
            raise _Bad(f"{_show(v)} is not one of {words}")

        return native, native

    if t == "bool":

        def native(v):
            if v is True or v is False:
                return v
            if isinstance(v, np.bool_):
                return bool(v)
            if _is_null(v):
                return None
            hint = " (write true or false without quotes)" if isinstance(v, str) else " (true or false)"
            raise _Bad(f"{_show(v)} is not a boolean{hint}")

        def text(s):
            w = s.lower()
            if w in TRUE_WORDS:
                return True
            if w in FALSE_WORDS:
                return False
            raise _Bad(f"{_show(s)} is not a boolean (true/false, yes/no, 1/0)")

        return native, text

    if t == "int":

        def native(v):
            tv = type(v)
            if tv is int:
                return check_min(v)
            if tv is bool or isinstance(v, np.bool_):
                raise _Bad(f"{_show(v)} is not a whole number")
            if isinstance(v, (int, np.integer)):
                return check_min(int(v))
            if isinstance(v, (float, np.floating)):
                if v != v:
                    return None
                if math.isinf(v) or not float(v).is_integer():
                    raise _Bad(f"{_show(v)} is not a whole number")
                return check_min(int(v))
            if _is_null(v):
                return None
            raise _Bad(f"{_show(v)} is not a whole number")

        def text(s):
            if _INT_RE.fullmatch(s):
                return check_min(int(s))
            if _NUM_RE.fullmatch(s):
                x = float(s)
                if math.isfinite(x) and x.is_integer():
                    return check_min(int(x))
            raise _Bad(f"{_show(s)} is not a whole number")

        return native, text

    if t == "number":

        def native(v):
            tv = type(v)
            if tv is float or tv is int:
                x = float(v)
            elif tv is bool or isinstance(v, np.bool_):
                raise _Bad(f"{_show(v)} is not a number")
            elif isinstance(v, (int, float, np.integer, np.floating)):
                x = float(v)
            elif _is_null(v):
                return None
            else:
                raise _Bad(f"{_show(v)} is not a number")
            if x != x:
                return None  # a NaN in Python data is pandas' "missing"
            if math.isinf(x):
                raise _Bad(f"{_show(v)} is not a finite number")
            return check_min(x)

        def text(s):
            if _NUM_RE.fullmatch(s):
                x = float(s)
                if math.isinf(x):
                    raise _Bad(f"{_show(s)} is not a finite number")
                return check_min(x)
            raise _Bad(f"{_show(s)} is not a number")

        return native, text

    if t == "date":

        def native(v):
            if isinstance(v, str):
                return _date_from_text(v)
            if isinstance(v, _dt.datetime):  # includes pd.Timestamp; must precede date
                if v is _NAT:
                    return None
                return v.date().isoformat()
            if isinstance(v, _dt.date):
                return v.isoformat()
            if isinstance(v, np.datetime64):
                if np.isnat(v):
                    return None
                return pd.Timestamp(v).date().isoformat()
            if _is_null(v):
                return None
            raise _Bad(f"{_show(v)} is not a date (YYYY-MM-DD)")

        return native, _date_from_text

    raise ValueError(f"field {f.name!r}: unknown type {t!r}")  # merge_schema keeps this out


# --------------------------------------------------------------------------- #
# Compiled schema
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class _Entity:
    name: str
    names: tuple[str, ...]
    fields: tuple[Field, ...]
    native: tuple[Callable, ...]
    text: tuple[Callable, ...]
    required: tuple[bool, ...]
    pairs: tuple[tuple[str, str], ...]  # (field, max_field)
    declared: frozenset[str]
    conv_map: dict  # name -> native converter
    required_names: tuple[str, ...]


@dataclass(frozen=True)
class _Compiled:
    opp: _Entity
    children: tuple[_Entity, ...]
    child_names: frozenset[str]


def _compile_entity(name: str, fields: Mapping[str, Field]) -> _Entity:
    names, flds, nat, txt, req, pairs = [], [], [], [], [], []
    for fname, f in fields.items():
        native, text = _make_converters(f)
        names.append(fname)
        flds.append(f)
        nat.append(native)
        txt.append(text)
        req.append(bool(f.required))
        if f.max_field is not None:
            if f.max_field not in fields:
                raise ValueError(f"{name}.{fname}: max_field {f.max_field!r} is not a field of {name}")
            pairs.append((fname, f.max_field))
    return _Entity(name, tuple(names), tuple(flds), tuple(nat), tuple(txt), tuple(req), tuple(pairs),
                   frozenset(names), dict(zip(names, nat)), tuple(n for n, r in zip(names, req) if r))


_CACHE: dict[int, tuple[Schema, _Compiled]] = {}
_CACHE_MAX = 64


def _compiled(schema: Schema) -> _Compiled:
    """Compile a schema once; cached by identity (the cache holds the schema, so ids are not reused)."""
    hit = _CACHE.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    if OPPORTUNITY not in schema or _ID not in schema[OPPORTUNITY]:
        raise ValueError(f"a schema needs the entity {OPPORTUNITY!r} with an {_ID!r} field")
    opp = _compile_entity(OPPORTUNITY, schema[OPPORTUNITY])
    children = tuple(_compile_entity(e, flds) for e, flds in schema.items() if e != OPPORTUNITY)
    comp = _Compiled(opp, children, frozenset(c.name for c in children))
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[id(schema)] = (schema, comp)
    return comp


# --------------------------------------------------------------------------- #
# Nested (dict) validation: the library path
# --------------------------------------------------------------------------- #
class _FieldError(Exception):
    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason


def _norm_row(raw: Mapping, ent: _Entity, skip: frozenset, prefix: str, seen: set | None = None) -> dict:
    """Normalise one row of an entity (fast path over the keys present).

    Undeclared keys are kept; ``seen`` (if given) collects their names.
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
    except _Bad:
        _first_field_error(raw, ent, prefix)
        raise  # pragma: no cover - _first_field_error always raises here
    for name in ent.required_names:
        if out[name] is None:
            _first_field_error(raw, ent, prefix)
    for a, b in ent.pairs:
        va, vb = out[a], out[b]
        if va is not None and vb is not None and va > vb:
            raise _FieldError(prefix + a, f"{a} ({_show(va)}) exceeds {b} ({_show(vb)})")
    if extra is not None:
        for k in extra:
            out[k] = raw[k]
        if seen is not None:
            seen.update(extra)
    return out


def _first_field_error(raw: Mapping, ent: _Entity, prefix: str):
    """Raise the row's first bad or missing field in schema order (the slow path, taken on error)."""
    get = raw.get
    for name, conv, req in zip(ent.names, ent.native, ent.required):
        v = get(name)
        if v is not None:
            try:
                v = conv(v)
            except _Bad as e:
                raise _FieldError(prefix + name, e.args[0]) from None
        if v is None and req:
            raise _FieldError(prefix + name, _MISSING)


def _record_id(raw: Mapping) -> str | None:
    rid = raw.get(_ID)
    return rid if isinstance(rid, str) and rid.strip() else None


def _validate_nested(raw: Mapping, comp: _Compiled, history: bool,
                     undeclared: dict[str, set] | None = None) -> dict:
    """Normalise one nested record or raise RecordError.

    ``undeclared`` (if given) collects entity -> undeclared field names of a
    valid record (a batch reader scans a rejected record itself).
    """
    rid = _record_id(raw)
    seen = undeclared or {}
    try:
        out = _norm_row(raw, comp.opp, comp.child_names, "", seen.get(OPPORTUNITY))
        if history and "outcome" in out and out["outcome"] is None:
            raise _FieldError("outcome", "required field is missing (history needs the outcome)")
        for child in comp.children:
            lst = raw.get(child.name)
            if lst is None or (isinstance(lst, float) and lst != lst):
                out[child.name] = []
                continue
            if not isinstance(lst, (list, tuple)):
                raise _FieldError(child.name, f"must be a list of objects, not {type(lst).__name__}")
            rows = []
            skip = frozenset()
            for i, row in enumerate(lst):
                if not isinstance(row, Mapping):
                    raise _FieldError(f"{child.name}[{i}]", f"must be an object, not {type(row).__name__}")
                rows.append(_norm_row(row, child, skip, f"{child.name}[{i}].", seen.get(child.name)))
            out[child.name] = rows
    except _FieldError as e:
        raise RecordError(rid, e.field, e.reason) from None
    return out


def validate_record(raw: Mapping, schema: Schema = CONTRACT, *, history: bool = False) -> dict:
    """Validate and normalise ONE nested record (library path).

    Parameters
    ----------
    raw : Mapping
        An opportunity in nested form (JSON types; see the module docstring).
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
        raise RecordError(None, "", f"a record must be a mapping, not {type(raw).__name__}")
    return _validate_nested(raw, _compiled(schema), history)


def _check_duplicates(records_with_pos: list[tuple[int, dict]]):
    """Yield positions (in the given order) of records whose (id, as_of) was seen before."""
    seen = set()
    for pos, rec in records_with_pos:
        key = (rec[_ID], rec.get(AS_OF))
        if key in seen:
            yield pos
        else:
            seen.add(key)


def _scan_undeclared(raw: Mapping, comp: _Compiled, undeclared: dict[str, set]) -> None:
    undeclared[OPPORTUNITY].update(raw.keys() - comp.opp.declared - comp.child_names)
    for child in comp.children:
        lst = raw.get(child.name)
        if isinstance(lst, (list, tuple)):
            for row in lst:
                if isinstance(row, Mapping):
                    undeclared[child.name].update(row.keys() - child.declared)


def _gc_paused(func):
    """Run ``func`` with the cyclic garbage collector paused.

    A batch read allocates millions of small dicts and lists and no reference
    cycles; generational collections over them cost 20-40% of the read.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper


# --------------------------------------------------------------------------- #
# JSON Lines
# --------------------------------------------------------------------------- #
def _open_lines(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


@_gc_paused
def read_jsonl(path: str | Path, schema: Schema = CONTRACT, history: bool = False) -> ReadResult:
    """Read JSON Lines (``.jsonl``, ``.ndjson``, optionally ``.gz``), one nested record a line.

    Blank lines are skipped.  A broken line, a line that is not an object and a
    bad record each give one reject with its 1-based ``line``; the second and
    later records with the same ``(id, as_of)`` are rejected as duplicates.
    """
    path = Path(path)
    comp = _compiled(schema)
    res = ReadResult()
    undeclared: dict[str, set] = {e: set() for e in (OPPORTUNITY, *comp.child_names)}
    good: list[tuple[int, dict]] = []  # (line, record)
    bad: list[dict] = []

    def constant(tok):
        return _JSONConstant(tok)

    decoder = json.JSONDecoder(parse_constant=constant)
    with _open_lines(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            res.n_read += 1
            try:
                raw = decoder.decode(line.decode("utf-8"))
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
                bad.append({"id": None, "field": None, "reason": f"broken JSON: {e}", "line": lineno})
                continue
            if not isinstance(raw, dict):
                bad.append({"id": None, "field": None,
                            "reason": f"a line must hold a JSON object, not {type(raw).__name__}",
                            "line": lineno})
                continue
            try:
                good.append((lineno, _validate_nested(raw, comp, history, undeclared)))
            except RecordError as e:
                bad.append({**e.to_dict(), "line": lineno})
                _scan_undeclared(raw, comp, undeclared)
    dup_lines = set(_check_duplicates(good))
    for lineno, rec in good:
        if lineno in dup_lines:
            bad.append({"id": rec[_ID], "field": _ID, "reason": _DUPLICATE, "line": lineno})
        else:
            res.records.append(rec)
    bad.sort(key=lambda r: r["line"])
    res.rejects = bad
    for c in comp.children:
        undeclared[c.name].discard(CHILD_KEY)  # the table form's key, harmless in nested rows
    res.undeclared_fields = {e: sorted(s) for e, s in undeclared.items() if s}
    return res


# --------------------------------------------------------------------------- #
# Table form
# --------------------------------------------------------------------------- #
def _column_values(df: pd.DataFrame, name: str, text: bool = True) -> list:
    """A column as Python values; in a typed frame every null (NaN, NA, NaT) is None."""
    col = df[name]
    if text:
        return col.tolist()
    try:
        return col.to_numpy(dtype=object, na_value=None).tolist()
    except (TypeError, ValueError):  # pragma: no cover - exotic extension dtypes
        return [None if _is_null(v) else v for v in col.tolist()]


def _typed_fast(col: pd.Series, f: Field, values: list) -> list | None:
    """Vectorised check of a typed column whose dtype already fits the field.

    Returns the converted values, or None when the column needs the per-cell
    path (another dtype, or some cell breaks the field: the per-cell path then
    names the reason).
    """
    dt = col.dtype
    if f.type == "bool":
        return values if pd.api.types.is_bool_dtype(dt) else None
    if f.type in ("int", "number") and not pd.api.types.is_bool_dtype(dt):
        is_int = pd.api.types.is_integer_dtype(dt)
        if not is_int and not (f.type == "number" and pd.api.types.is_float_dtype(dt)):
            return None
        if f.type == "number" and not is_int:
            arr = col.to_numpy(dtype="float64", na_value=np.nan)
            if np.isinf(arr).any():
                return None
        if f.min is not None and col.notna().any() and col.min() < f.min:
            return None
        if f.type == "number" and is_int:
            return [None if v is None else float(v) for v in values]
        return values
    if f.type in ("string", "enum") and isinstance(dt, pd.StringDtype):
        if f.required:
            return None  # ids: the per-cell path checks blanks
        if f.type == "enum" and not col.dropna().isin(f.values).all():
            return None
        return values
    return None


def _convert_column(values: list, native: Callable, text_conv: Callable, text: bool):
    """Convert one column cell by cell; return (values, {row position: reason})."""
    errors: dict[int, str] = {}
    if text:
        table: dict = {}
        all_text = True
        for u in set(values):
            if isinstance(u, str):
                if u == "":
                    table[u] = None
                    continue
                try:
                    table[u] = text_conv(u)
                except _Bad as e:
                    table[u] = _Bad(e.args[0])
            else:  # a non-text cell in a text frame (e.g. NaN): checked as a typed value
                all_text = False
                try:
                    table[u] = None if u is None else native(u)
                except _Bad as e:
                    table[u] = _Bad(e.args[0])
        if all_text:
            out = list(map(table.__getitem__, values))
        else:
            out = [table[v] if v == v else None for v in values]
        if any(isinstance(x, _Bad) for x in table.values()):
            for i, x in enumerate(out):
                if isinstance(x, _Bad):
                    errors[i] = x.args[0]
                    out[i] = None
        return out, errors
    out = []
    append = out.append
    for i, v in enumerate(values):
        if v is None:
            append(None)
            continue
        try:
            append(native(v))
        except _Bad as e:
            errors[i] = e.args[0]
            append(None)
    return out, errors


def _extra_values(values: list, text: bool) -> list:
    if text:
        return [None if (v == "" or not isinstance(v, str)) else v for v in values]
    return [None if _is_null(v) else v for v in values]


def _convert_frame(df: pd.DataFrame, ent: _Entity, text: bool, exclude: frozenset):
    """Convert a table of one entity.

    Returns ``(rows, first_error, undeclared, converted)``: ``rows`` are
    normalised dicts in row order; ``first_error`` maps row position ->
    (field, reason) of the row's first error in schema order; ``undeclared``
    lists the columns the entity does not declare (``exclude`` aside: key
    columns); ``converted`` maps each declared column present to its values.
    """
    n = len(df)
    cols = set(map(str, df.columns))
    names: list[str] = []
    columns: list = []
    first: dict[int, tuple[str, str]] = {}
    converted: dict[str, list] = {}
    for name, f, native, text_conv, req in zip(ent.names, ent.fields, ent.native, ent.text, ent.required):
        if name in cols:
            raw = _column_values(df, name, text)
            vals = None if text else _typed_fast(df[name], f, raw)
            if vals is None:
                vals, errs = _convert_column(raw, native, text_conv, text)
                for i, reason in errs.items():
                    if i not in first:
                        first[i] = (name, reason)
        else:
            vals = None
        if req:
            if vals is None:
                for i in range(n):
                    first.setdefault(i, (name, _MISSING))
            else:
                for i, v in enumerate(vals):
                    if v is None and i not in first:
                        first[i] = (name, _MISSING)
        names.append(name)
        columns.append(vals if vals is not None else repeat(None, n))
        if vals is not None:
            converted[name] = vals
    for a, b in ent.pairs:
        va, vb = converted.get(a), converted.get(b)
        if va is None or vb is None:
            continue
        for i, (x, y) in enumerate(zip(va, vb)):
            if x is not None and y is not None and x > y and i not in first:
                first[i] = (a, f"{a} ({_show(x)}) exceeds {b} ({_show(y)})")
    undeclared = sorted(c for c in cols if c not in ent.declared and c not in exclude)
    for c in undeclared:
        names.append(c)
        columns.append(_extra_values(_column_values(df, c, text), text))
    rows = [dict(zip(names, vals)) for vals in zip(*columns)]
    return rows, first, undeclared, converted


def _key_values(df: pd.DataFrame, name: str, native: Callable | None, text: bool) -> list:
    """Normalised key column (opportunity_id / as_of); an unconvertible value stays raw."""
    memo: dict = {}
    out = []
    append = out.append
    for v in _column_values(df, name, text):
        if v is None or v is _NA or v is _NAT:
            append(None)
            continue
        r = memo.get(v, memo)
        if r is memo:
            if (text and v == "") or _is_null(v):
                r = None
            elif native is None:
                r = v
            else:
                try:
                    r = native(v)
                except _Bad:
                    r = v
            memo[v] = r
        append(r)
    return out


@_gc_paused
def validate_frames(
    opps_df: pd.DataFrame,
    children: Mapping[str, pd.DataFrame] | None = None,
    schema: Schema = CONTRACT,
    history: bool = False,
    row_offset: int = 0,
    *,
    text: bool = False,
    names: Mapping[str, str] | None = None,
) -> ReadResult:
    """Validate opportunity rows plus child tables into nested records.

    Parameters
    ----------
    opps_df : DataFrame
        One row per opportunity snapshot; columns are field names.
    children : dict, optional
        child entity (``"contacts"``, ...) -> DataFrame with the child fields
        plus ``opportunity_id`` (and ``as_of`` to attach to one snapshot of
        an id; without it a row attaches to every snapshot of its id).
    schema, history
        As for :func:`validate_record`.
    row_offset : int
        Added to row numbers in rejects (for chunked reading).
    text : bool
        True when every cell is CSV text (read with ``dtype=str,
        keep_default_na=False``): the contract's CSV typing applies.  False
        for typed frames (Parquet).
    names : dict, optional
        table -> name used in reasons (default the table name).

    Returns
    -------
    ReadResult
        ``rejects[i]["row"]`` is ``row_offset`` + the 1-based row position;
        each bad record yields one reject (opportunity fields first, then the
        ``max_field`` checks, then child rows, then duplicates).
    """
    comp = _compiled(schema)
    children = dict(children or {})
    names = dict(names or {})
    unknown = set(children) - comp.child_names
    if unknown:
        raise ValueError(f"unknown child tables {sorted(unknown)} (expected {sorted(comp.child_names)})")
    if text:
        opps_df = opps_df.fillna("") if opps_df.isna().to_numpy().any() else opps_df
    res = ReadResult(n_read=len(opps_df))
    rows, first, undeclared, conv = _convert_frame(opps_df, comp.opp, text, frozenset())
    if undeclared:
        res.undeclared_fields[OPPORTUNITY] = undeclared
    n = len(rows)
    if history and "outcome" in comp.opp.declared:
        for i, r in enumerate(rows):
            if r["outcome"] is None and i not in first:
                first[i] = ("outcome", "required field is missing (history needs the outcome)")
    for r in rows:
        for c in comp.child_names:
            r[c] = []

    # Keys of every opportunity row (rejected ones included, so their child rows are not orphans).
    raw_ids = _key_values(opps_df, _ID, None, text) if _ID in opps_df.columns else [None] * n
    ids = [c if c is not None else r for c, r in zip(conv.get(_ID, raw_ids), raw_ids)]
    has_as_of = AS_OF in opps_df.columns
    if has_as_of:
        as_of_native = comp.opp.native[comp.opp.names.index(AS_OF)] if AS_OF in comp.opp.declared else None
        as_ofs = _key_values(opps_df, AS_OF, as_of_native, text)
    else:
        as_ofs = [None] * n
    indexes: dict[bool, dict[Any, list[int]]] = {}

    def index(keyed: bool) -> dict[Any, list[int]]:
        """(id, as_of) or id -> opportunity row positions; rows without an id are never matched."""
        if keyed not in indexes:
            idx: dict[Any, list[int]] = {}
            for i, (k, a) in enumerate(zip(ids, as_ofs)):
                if k is not None:
                    idx.setdefault((k, a) if keyed else k, []).append(i)
            indexes[keyed] = idx
        return indexes[keyed]

    for child in comp.children:
        cdf = children.get(child.name)
        if cdf is None:
            continue
        label = names.get(child.name, child.name)
        if CHILD_KEY not in cdf.columns:
            raise ScoringError(f"{label}: the child table has no {CHILD_KEY!r} column")
        if text:
            cdf = cdf.fillna("") if cdf.isna().to_numpy().any() else cdf
        crow, cfirst, cundecl, _ = _convert_frame(cdf, child, text, frozenset({CHILD_KEY, AS_OF}))
        if cundecl:
            res.undeclared_fields[child.name] = cundecl
        cids = _key_values(cdf, CHILD_KEY, None, text)
        keyed = has_as_of and AS_OF in cdf.columns
        if keyed:
            cas = _key_values(cdf, AS_OF, _make_converters(Field(AS_OF, "date"))[0], text)
            keys: Any = zip(cids, cas)
        else:
            keys = cids
        idx = index(keyed)
        lists = [r[child.name] for r in rows]
        for j, (row, key) in enumerate(zip(crow, keys)):
            targets = idx.get(key)
            if targets is not None and len(targets) == 1 and j not in cfirst:
                lists[targets[0]].append(row)  # the common case
                continue
            if targets is None:
                oid = key[0] if keyed else key
                if oid is None:
                    why = f"{CHILD_KEY} is missing"
                elif keyed:
                    why = f"no opportunity with id {oid!r} and as_of {key[1]!r}"
                else:
                    why = f"no opportunity with id {oid!r}"
                res.orphans.append({"table": child.name, "opportunity_id": oid, "row": j + 1, "reason": why})
                continue
            err = cfirst.get(j)
            for t_i, i in enumerate(targets):
                lst = lists[i]
                if err is not None and i not in first:
                    first[i] = (f"{child.name}[{len(lst)}].{err[0]}", f"{err[1]} ({label} row {j + 1})")
                lst.append(row if t_i == 0 else dict(row))

    ok = [(i, r) for i, r in enumerate(rows) if i not in first]
    for i in _check_duplicates(ok):
        first[i] = (_ID, _DUPLICATE)
    for i, r in enumerate(rows):
        e = first.get(i)
        if e is None:
            res.records.append(r)
        else:
            rid = r.get(_ID)
            res.rejects.append({"id": rid, "field": e[0], "reason": e[1], "row": row_offset + i + 1})
    return res


_FORMATS = (".csv", ".parquet")


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
        return pd.read_parquet(path, dtype_backend="numpy_nullable")
    except (ValueError, OSError, UnicodeDecodeError) as e:  # pandas' ParserError is a ValueError
        raise ScoringError(f"{path}: cannot read the table: {e}") from e


def _read_table_files(opp_path: Path, child_dir: Path | None, schema: Schema, history: bool) -> ReadResult:
    comp = _compiled(schema)
    ext = opp_path.suffix.lower()
    opps = _read_table(opp_path)
    children: dict[str, pd.DataFrame] = {}
    names: dict[str, str] = {}
    if child_dir is not None:
        for child in comp.children:
            p = child_dir / f"{child.name}{ext}"
            others = [child_dir / f"{child.name}{x}" for x in _FORMATS if x != ext]
            if p.exists():
                children[child.name] = _read_table(p)
                names[child.name] = p.name
            elif any(o.exists() for o in others):
                found = next(o for o in others if o.exists())
                raise ScoringError(
                    f"{found}: child tables must have the format of {opp_path.name} ({ext}); "
                    f"convert it or the opportunities table"
                )
    return validate_frames(opps, children, schema, history, text=(ext == ".csv"), names=names)


def read_tables(folder: str | Path, schema: Schema = CONTRACT, history: bool = False) -> ReadResult:
    """Read the table form: ``opportunities.csv|.parquet`` plus optional child tables.

    Child tables (``contacts``, ``competitors``, ``partners``, of the same
    format) carry ``opportunity_id``, and ``as_of`` to attach a row to one
    snapshot when the opportunities table holds several snapshots of an id.
    Rejects carry the 1-based data ``row`` of the opportunities table; child
    errors name the child table and its row in the reason.

    Raises
    ------
    FileNotFoundError
        No opportunities table.
    ScoringError
        Both ``opportunities.csv`` and ``.parquet``, a child table of the other
        format, a child table without ``opportunity_id``, or an unreadable file.
    """
    folder = Path(folder)
    found = [folder / f"opportunities{x}" for x in _FORMATS if (folder / f"opportunities{x}").exists()]
    if not found:
        raise FileNotFoundError(f"{folder}: no opportunities.csv or opportunities.parquet")
    if len(found) > 1:
        raise ScoringError(f"{folder}: both opportunities.csv and opportunities.parquet; keep one")
    return _read_table_files(found[0], folder, schema, history)


_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")


def read_records(source: str | Path, schema: Schema = CONTRACT, history: bool = False) -> ReadResult:
    """Read any input form, chosen by the path.

    * a ``.jsonl`` / ``.ndjson`` file (optionally ``.gz``): :func:`read_jsonl`;
    * a folder: the table form, :func:`read_tables`;
    * a single ``.csv`` / ``.parquet`` file: an opportunities table without
      child tables (child tables beside it are NOT read; pass the folder).
    """
    path = Path(source)
    if path.is_dir():
        return read_tables(path, schema, history)
    name = path.name.lower()
    if name.endswith(_JSONL_SUFFIXES):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        return read_jsonl(path, schema, history)
    if path.suffix.lower() in _FORMATS:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        return _read_table_files(path, None, schema, history)
    raise ScoringError(
        f"{path}: not a records input (expected a .jsonl/.ndjson[.gz] file, a folder of tables, "
        f"or an opportunities .csv/.parquet file)"
    )
