"""The contract's typing rules for ONE value, and every reason word a reader reports.

This module is the single definition of how a value of each field type is
read; the column-wise readers (:mod:`scoring.contract.columns`) and the
nested-record validator (:mod:`scoring.contract.nested`) only run it.

Typing per input form
---------------------
* JSON / Python values (:func:`converters` ``native``): values must have their
  JSON type (``"true"`` is not a bool, ``1`` is not a bool, ``True`` is not
  ``1``; ``3.0`` is the int 3).  A float NaN, ``pd.NA`` or ``pd.NaT`` is
  pandas' "missing" and becomes ``None``; the literal ``NaN``/``Infinity``
  tokens of JSON text are not JSON and are rejected.  Parquet cells are
  checked the same way (numpy/pandas scalars, dates and timestamps are
  accepted).
* CSV text (:func:`converters` ``text``): every cell is text; an empty cell is
  unknown (the caller's job), booleans are :data:`TRUE_WORDS` /
  :data:`FALSE_WORDS` in any case, and no other text is a null (``NA`` in a
  text field is the text ``"NA"``).

Normalised values: ``bool`` -> ``bool``, ``int`` -> ``int``, ``number`` ->
``float``, ``date`` -> ``'YYYY-MM-DD'``, ``enum`` -> one of its values,
``string`` -> ``str``; unknown is ``None`` (never ``False``, never NaN).

Limits
------
Every value is range-checked here (:data:`INT_MIN` .. :data:`INT_MAX`; 0 or
:data:`NUMBER_TINY` .. :data:`NUMBER_MAX` in magnitude; :data:`DATE_MIN` ..
:data:`DATE_MAX`; valid Unicode; :data:`MAX_DEPTH` levels of JSON), so that a
value the rule engine, the frames or an output cannot take is a bad value of
its record, never an exception (docs/contract.md, "Limits").  A reason
quotes at most :data:`EXCERPT` characters of a value (:func:`show`).
"""
from __future__ import annotations

import datetime as _dt
import math
import re
import reprlib
import sys
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from scoring.contract.schema import CHILD_KEY, Field
from scoring.errors import InputError

Schema = Mapping[str, Mapping[str, Field]]

#: Entity name of the deal-level record.  Every other entity of a schema is a child list.
OPPORTUNITY = "opportunity"
#: The record key; with :data:`AS_OF` it keys a snapshot.
ID = "id"
#: Snapshot date; child tables may carry it as a key too.
AS_OF = "as_of"
#: CSV spellings of booleans (compared in lower case).
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})

# --------------------------------------------------------------------------- limits
#: Whole numbers are 64-bit integers (the frames' Int64).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: Real numbers are 0 or of a magnitude from NUMBER_TINY to NUMBER_MAX (no exponent form when printed).
NUMBER_TINY, NUMBER_MAX = 1e-4, 1e15
#: Dates are in Python's calendar.
DATE_MIN, DATE_MAX = "0001-01-01", "9999-12-31"
#: JSON nesting levels of one record: the record is level 1, a child list 2, a child row 3.
MAX_DEPTH = 32
#: Characters of a required text (an id): a longer one makes its record a reject whose id is unknown.
ID_MAX = 256
#: Characters of a bad value that a reason quotes; a longer value is cut, with "..." and its length.
EXCERPT = 40

# --------------------------------------------------------------------------- reason words
MISSING = "required field is missing"
HISTORY_MISSING = "required field is missing (history needs the outcome)"
DUPLICATE = "duplicate (id, as_of)"
BROKEN_JSON = "broken JSON: {error}"
NOT_AN_OBJECT_LINE = "a line must hold a JSON object, not {kind}"
NOT_A_RECORD = "a record must be a mapping, not {kind}"
NOT_A_LIST = "must be a list of objects, not {kind}"
NOT_AN_OBJECT = "must be an object, not {kind}"
CHILD_ROW = "{reason} ({table} row {row})"
NO_CHILD_KEY = f"{CHILD_KEY} is missing"
NO_SNAPSHOT = "no opportunity with id {id} and as_of {as_of}"
NO_DEAL = "no opportunity with id {id}"
INT_RANGE = "{value} is out of range for a whole number (64 bits)"
NUMBER_RANGE = "{value} is out of range for a number (0, or 0.0001 to 1,000,000,000,000,000 in magnitude)"
DATE_RANGE = f"{{value}} is out of range for a date ({DATE_MIN} to {DATE_MAX})"
NOT_UNICODE = "{value} is not valid Unicode text (a lone surrogate); re-export the input as UTF-8"
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels of JSON"
CANNOT_READ = "{path}: cannot read: {error}"  # a whole input, e.g. a .gz file cut short
CANNOT_READ_TABLE = "{path}: cannot read the table: {error}"
SHORT_ROW = "the row ends after {have} of {want} cells (missing trailing cells, or a truncated file)"


def exceeds(a: str, va: Any, b: str, vb: Any) -> str:
    """Reason of a ``max_field`` breach: ``site_visits_accompanied (3) exceeds site_visits (1)``."""
    return f"{a} ({show(va)}) exceeds {b} ({show(vb)})"


def orphan_reason(oid: Any, keyed: bool, as_of: Any = None) -> str:
    """Why a child row found no deal."""
    if oid is None:
        return NO_CHILD_KEY
    return NO_SNAPSHOT.format(id=show(oid), as_of=show(as_of)) if keyed else NO_DEAL.format(id=show(oid))


# --------------------------------------------------------------------------- text patterns
#: A whole number as text.
INT_PATTERN = r"[+-]?[0-9]+"
#: A real number as text (no ``inf``/``nan`` words, no thousands separators).
NUM_PATTERN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
#: A calendar date as text (whether it exists is checked apart).
DATE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_INT_RE = re.compile(INT_PATTERN)
_NUM_RE = re.compile(NUM_PATTERN)
_DATE_RE = re.compile(DATE_PATTERN)


class Bad(Exception):
    """A value does not fit its field; ``args[0]`` is the reason."""


class JSONConstant:
    """A ``NaN`` / ``Infinity`` token in JSON text (not JSON; never a value)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


class Unreadable:
    """A typed cell that Python cannot hold (e.g. a Parquet ``date32`` outside Python's years).

    It stands in for the cell so that its converter rejects it; ``text`` says what it was.
    """

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text



def _pandas_missing() -> tuple:
    """pandas' ``NA`` and ``NaT``, when pandas is loaded: a value can only be one of them if it is
    (pandas is imported by the readers that need it, not by validating one record)."""
    pd = sys.modules.get("pandas")
    return (pd.NA, pd.NaT) if pd is not None else ()


_SURROGATE = re.compile("[\ud800-\udfff]")
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 3, EXCERPT, EXCERPT, 6, 4


def excerpt(text: str) -> str:
    """``text``, cut to :data:`EXCERPT` characters with ``...`` and its length when longer."""
    if len(text) <= EXCERPT:
        return text
    return f"{text[:EXCERPT]}... ({len(text):,} characters)"


def show(v: Any) -> str:
    """A value as a reason shows it: strings quoted (escapes for what is not printable), booleans as
    in JSON, anything longer than :data:`EXCERPT` characters cut (see :func:`excerpt`).

    >>> show("x" * 50)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (50 characters)"
    """
    if isinstance(v, str):
        return repr(str(v)) if len(v) <= EXCERPT else f"{str(v)[:EXCERPT]!r}... ({len(v):,} characters)"
    if v is True or v is False or isinstance(v, np.bool_):
        return "true" if v else "false"
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, Unreadable):
        return v.text
    if isinstance(v, int):
        try:
            return excerpt(str(v))
        except ValueError:  # more digits than Python converts to text
            return f"a whole number of about {int(v.bit_length() * 0.30103):,} digits"
    if isinstance(v, (list, tuple, dict, set, np.ndarray)):
        return excerpt(_REPR.repr(v))
    return excerpt(str(v))


def is_text(s: str) -> bool:
    """Whether a ``str`` is valid Unicode (no lone surrogate: it can be written as UTF-8)."""
    return s.isascii() or _SURROGATE.search(s) is None


def safe_name(name: Any) -> str:
    """A field name as an output may carry it: lone surrogates escaped, cut as :func:`excerpt` cuts."""
    name = str(name)
    if not is_text(name):
        name = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return excerpt(name)


def free_value_problem(v: Any, levels: int) -> str | None:
    """Why an undeclared value cannot be carried (None if it can): a string that is not valid
    Unicode (values and keys), or nesting deeper than ``levels`` lists/objects."""
    stack = [(v, 0)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, str):
            if not is_text(x):
                return NOT_UNICODE.format(value=show(x))
            continue
        if isinstance(x, Mapping):
            items: Any = [*x.keys(), *x.values()]
        elif isinstance(x, (list, tuple)):
            items = x
        else:
            continue
        if d >= levels:
            return TOO_DEEP
        stack.extend((c, d + 1) for c in items)
    return None


def _num_words(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def is_null(v: Any) -> bool:
    """pandas/numpy "missing": None, NaN, pd.NA, NaT."""
    if v is None or any(v is m for m in _pandas_missing()):
        return True
    if isinstance(v, float):
        return v != v
    if isinstance(v, np.floating):
        return bool(np.isnan(v))
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(v))
    return False


_DATE_MEMO: dict[str, str] = {}


def date_from_text(s: str) -> str:
    """``'YYYY-MM-DD'`` of a calendar date; raises :class:`Bad` otherwise."""
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
    raise Bad(f"{show(s)} is not a date (YYYY-MM-DD)")


def as_of_date(as_of: str | None = None) -> str:
    """An ``as_of`` date (e.g. for records without one): checked to be ``YYYY-MM-DD``; today when None.

    Raises
    ------
    InputError
        When ``as_of`` is not a calendar date.
    """
    if as_of is None:
        return _dt.date.today().isoformat()
    try:
        ok, why = _dt.date.fromisoformat(as_of).isoformat() == as_of, "not in the form YYYY-MM-DD"
    except (TypeError, ValueError) as exc:
        ok, why = False, str(exc)
    if not ok:
        raise InputError(f"as_of {as_of!r} is not a date YYYY-MM-DD ({why})")
    return as_of


def _day(t: _dt.datetime, v: Any) -> str:
    """'YYYY-MM-DD' of a timestamp; one outside Python's calendar (pandas holds some) is out of range."""
    try:
        return t.date().isoformat()
    except (ValueError, OverflowError, NotImplementedError):
        raise Bad(DATE_RANGE.format(value=show(v))) from None


Converter = Callable[[Any], Any]


def converters(f: Field) -> tuple[Converter, Converter]:
    """Return ``(native, text)`` converters for one field.

    ``native(v)`` takes a JSON/Python/Parquet value that is not None and
    returns the normalised value (None for a pandas null) or raises
    :class:`Bad`.  ``text(s)`` takes a non-empty CSV cell.

    Examples
    --------
    >>> native, text = converters(Field("n", "int", min=0))
    >>> native(3.0), text("+7")
    (3, 7)
    >>> text("2.5")
    Traceback (most recent call last):
    ...
    scoring.contract.values.Bad: '2.5' is not a whole number
    """
    t = f.type
    lo = f.min

    def check_min(n):
        if lo is not None and n < lo:
            raise Bad(f"{show(n)} is below the minimum {_num_words(lo)}")
        return n

    if t == "string":
        required = f.required

        def native(v):
            if isinstance(v, str):
                if required and not v.strip():
                    raise Bad(f"{show(v)} is blank; a non-empty string is required")
                if required and len(v) > ID_MAX:
                    raise Bad(f"{show(v)} is longer than {ID_MAX} characters")
                if not is_text(v):
                    raise Bad(NOT_UNICODE.format(value=show(v)))
                return str(v)
            if is_null(v):
                return None
            raise Bad(f"{show(v)} is not a string" + ("; ids are text, quote them" if required else ""))

        return native, native

    if t == "enum":
        allowed = frozenset(f.values)
        words = ", ".join(f.values)

        def native(v):
            if isinstance(v, str) and v in allowed:
                return str(v)
            if is_null(v):
                return None
            raise Bad(f"{show(v)} is not one of {words}")

        return native, native

    if t == "bool":

        def native(v):
            if v is True or v is False:
                return v
            if isinstance(v, np.bool_):
                return bool(v)
            if is_null(v):
                return None
            hint = " (write true or false without quotes)" if isinstance(v, str) else " (true or false)"
            raise Bad(f"{show(v)} is not a boolean{hint}")

        def text(s):
            w = s.lower()
            if w in TRUE_WORDS:
                return True
            if w in FALSE_WORDS:
                return False
            raise Bad(f"{show(s)} is not a boolean (true/false, yes/no, 1/0)")

        return native, text

    if t == "int":

        def check_int(n, v):
            if not INT_MIN <= n <= INT_MAX:
                raise Bad(INT_RANGE.format(value=show(v)))
            return check_min(n)

        def native(v):
            tv = type(v)
            if tv is bool or isinstance(v, np.bool_):
                raise Bad(f"{show(v)} is not a whole number")
            if isinstance(v, (int, np.integer)):
                return check_int(int(v), v)
            if isinstance(v, (float, np.floating)):
                if v != v:
                    return None
                if math.isinf(v) or not float(v).is_integer():
                    raise Bad(f"{show(v)} is not a whole number")
                return check_int(int(v), v)
            if is_null(v):
                return None
            raise Bad(f"{show(v)} is not a whole number")

        def text(s):
            if _INT_RE.fullmatch(s):
                if len(s.lstrip("+-").lstrip("0")) > 19:  # beyond 64 bits (and maybe beyond int()'s digits)
                    raise Bad(INT_RANGE.format(value=show(s)))
                return check_int(int(s), s)
            if _NUM_RE.fullmatch(s):
                x = float(s)
                if math.isfinite(x) and x.is_integer():
                    return check_int(int(x), s)
            raise Bad(f"{show(s)} is not a whole number")

        return native, text

    if t == "number":

        def check_number(x, v):
            a = abs(x)
            if a > NUMBER_MAX or 0 < a < NUMBER_TINY:
                raise Bad(NUMBER_RANGE.format(value=show(v)))
            return check_min(x)

        def native(v):
            tv = type(v)
            if tv is bool or isinstance(v, np.bool_):
                raise Bad(f"{show(v)} is not a number")
            if isinstance(v, (int, float, np.integer, np.floating)):
                try:
                    x = float(v)
                except OverflowError:  # a Python int beyond any float
                    raise Bad(f"{show(v)} is not a finite number") from None
            elif is_null(v):
                return None
            else:
                raise Bad(f"{show(v)} is not a number")
            if x != x:
                return None  # a NaN in Python data is pandas' "missing"
            if math.isinf(x):
                raise Bad(f"{show(v)} is not a finite number")
            return check_number(x, v)

        def text(s):
            if _NUM_RE.fullmatch(s):
                x = float(s)
                if math.isinf(x):
                    raise Bad(f"{show(s)} is not a finite number")
                return check_number(x, s)
            raise Bad(f"{show(s)} is not a number")

        return native, text

    if t == "date":

        def native(v):
            if isinstance(v, str):
                return date_from_text(v)
            if isinstance(v, _dt.datetime):  # includes pd.Timestamp and pd.NaT; must precede date
                if any(v is m for m in _pandas_missing()):
                    return None
                return _day(v, v)
            if isinstance(v, _dt.date):
                return v.isoformat()
            if isinstance(v, np.datetime64):
                if np.isnat(v):
                    return None
                import pandas as pd  # a numpy date holds pandas' range; loaded when one is met

                return _day(pd.Timestamp(v), v)
            if is_null(v):
                return None
            if isinstance(v, Unreadable):
                raise Bad(DATE_RANGE.format(value=show(v)))
            raise Bad(f"{show(v)} is not a date (YYYY-MM-DD)")

        return native, date_from_text

    raise ValueError(f"field {f.name!r}: unknown type {t!r}")  # merge_schema keeps this out
