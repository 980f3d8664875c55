"""JSON Lines: one nested record a line.

Two readers with the same decisions:

* :func:`read_lines`, the reference: a loop over the lines, each validated by
  :mod:`scoring.contract.nested` into a nested record;
* :func:`read_columns`, the batch's fast path: the byte range parsed at once by
  ``pyarrow.json`` into columns typed as the schema declares, flattened into
  the table form (child rows carry their record's row) and validated
  column-wise by :func:`scoring.contract.tables.validate_tables`.  It answers
  None, and the caller takes :func:`read_lines`, for any range it cannot type
  exactly as the reference would: a line pyarrow cannot parse into the declared
  types (a value of another JSON type, a whole number written ``3.0``, ``NaN``),
  a line that does not start with ``{`` (blank lines, arrays, broken text),
  escaped surrogates, a null child row, nesting that could be too deep.  A
  record the columns reject is re-read by the reference loop, which gives its
  reject (id, field and reason in its words); if the reference accepts it, the
  range goes to :func:`read_lines` as a whole.  The caller
  (:func:`scoring.contract.reader.load_partition`) halves a range the columns
  cannot read until the pieces that hold the odd lines are small, so a few bad
  lines cost only their pieces.  ``tests/test_stream.py`` compares both
  readers on random dirty lines.

The rest of this docstring is about both readers.

Blank lines are skipped.  A broken line, a line nested deeper than
:data:`~scoring.contract.values.MAX_DEPTH` levels, a line that is not an object
and a bad record each give one reject with its 1-based ``line``; the second
and later records with the same ``(id, as_of)`` within what one call reads are
rejected as duplicates (across partitions: :class:`scoring.contract.reader.DuplicateFilter`).
With ``as_of_default`` (the run's date), a record without ``as_of`` takes that
date, so it and a record of the same id with that ``as_of`` are one snapshot.
"""
from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field as _dc_field
from pathlib import Path
from typing import Any

import numpy as np

from scoring.contract.nested import normalise, record_key, scan_undeclared
from scoring.contract.schema import CHILD_KEY
from scoring.contract.entities import compiled
from scoring.contract.values import (AS_OF, BROKEN_JSON, CANNOT_READ, DUPLICATE, ID, MAX_DEPTH, NOT_AN_OBJECT_LINE,
                                     OPPORTUNITY, TOO_DEEP, JSONConstant, Schema, safe_name)
from scoring.errors import RecordError, ScoringError

__all__ = ["JsonlPart", "JsonlColumns", "read_lines", "read_columns"]

_BOM = b"\xef\xbb\xbf"


@dataclass
class JsonlPart:
    """What one run of the loop found: good records (with their lines), rejects, undeclared fields."""

    records: list[dict] = _dc_field(default_factory=list)
    lines: list[int] = _dc_field(default_factory=list)
    rejects: list[dict] = _dc_field(default_factory=list)
    undeclared_fields: dict[str, list[str]] = _dc_field(default_factory=dict)
    n_read: int = 0


def _lines(fh: Iterable[bytes], path: Path) -> Iterator[bytes]:
    """The lines of an open file; a file that cannot be read to its end (a .gz cut short) is an error."""
    try:
        yield from fh
    except (OSError, EOFError) as e:
        raise ScoringError(CANNOT_READ.format(path=path, error=e)) from e


def read_lines(path: str | Path, schema: Schema, history: bool, *, start: int = 0, end: int = -1,
               first_line: int = 1, as_of_default: str | None = None) -> JsonlPart:
    """Read and validate the lines of ``path`` that start in the byte range ``[start, end)``.

    Parameters
    ----------
    path : path
        A ``.jsonl`` / ``.ndjson`` file, or a ``.gz`` of one (read whole: ``start`` 0, ``end`` -1).
    schema, history
        As for :func:`scoring.contract.nested.validate_record`.
    start, end : int
        Byte range (``end`` -1: to the end of the file); ``start`` is a line start.
    first_line : int
        1-based number of the line at ``start``.
    as_of_default : str, optional
        The ``as_of`` of records without one ('YYYY-MM-DD', checked by the caller).

    Raises
    ------
    ScoringError
        The file cannot be read to its end (e.g. a ``.gz`` cut short).
    """
    path = Path(path)
    comp = compiled(schema)
    part = JsonlPart()
    undeclared: dict[str, set] = {e: set() for e in (OPPORTUNITY, *comp.child_names)}
    decoder = json.JSONDecoder(parse_constant=JSONConstant)
    decode = decoder.decode
    good: list[tuple[int, dict]] = []
    bad = part.rejects
    n_read = 0
    pos = start
    lineno = first_line - 1
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        if start:
            fh.seek(start)
        for line in _lines(fh, path):
            if 0 <= end <= pos:
                break
            pos += len(line)
            lineno += 1
            if lineno == 1 and line.startswith(_BOM):
                line = line[3:]
            if not line.strip():
                continue
            n_read += 1
            try:
                raw = decode(line.decode("utf-8"))
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
                bad.append({"id": None, "field": None, "reason": BROKEN_JSON.format(error=e), "line": lineno})
                continue
            except RecursionError:  # nested far deeper than MAX_DEPTH
                bad.append({"id": None, "field": None, "reason": TOO_DEEP, "line": lineno})
                continue
            if not isinstance(raw, dict):
                bad.append({"id": None, "field": None, "reason": NOT_AN_OBJECT_LINE.format(kind=type(raw).__name__),
                            "line": lineno})
                continue
            try:
                good.append((lineno, normalise(raw, comp, history, undeclared)))
            except RecordError as e:
                bad.append({**e.to_dict(), "line": lineno})
                scan_undeclared(raw, comp, undeclared)
    if as_of_default is not None and AS_OF in comp.opp.declared:
        for _, rec in good:
            if rec[AS_OF] is None:
                rec[AS_OF] = as_of_default
    seen: set = set()
    for ln, rec in good:
        key = record_key(rec)
        if key in seen:
            bad.append({"id": rec[ID], "field": ID, "reason": DUPLICATE, "line": ln})
        else:
            seen.add(key)
            part.records.append(rec)
            part.lines.append(ln)
    bad.sort(key=lambda r: r["line"])
    for c in comp.child_names:
        undeclared[c].discard(CHILD_KEY)  # the table form's key, harmless in nested rows
    part.undeclared_fields = {e: sorted(s) for e, s in undeclared.items() if s}
    part.n_read = n_read
    return part


# --------------------------------------------------------------------------- the column-wise fast path
#: a NaN / Infinity token (JSON has none; the reference rejects it, pyarrow would read a float)
_CONSTANT = re.compile(rb"[:,\[]\s*-?(?:NaN|Infinity)")
_ARROW_TYPE = {"bool": "bool_", "int": "int64", "number": "float64"}  # others: text


@dataclass
class JsonlColumns:
    """What :func:`read_columns` found: the validated partition (a
    :class:`~scoring.contract.tables.Validated`) with the reference's rejects."""

    validated: Any
    rejects: list[dict]
    undeclared_fields: dict[str, list[str]]
    n_read: int
    lines: np.ndarray


def _arrow_schema(comp) -> Any:
    import pyarrow as pa

    def typ(f):
        return getattr(pa, _ARROW_TYPE.get(f.type, "large_string"))()

    fields = [pa.field(f.name, typ(f)) for f in comp.opp.fields]
    for c in comp.children:
        fields.append(pa.field(c.name, pa.list_(pa.struct([pa.field(f.name, typ(f)) for f in c.fields]))))
    return pa.schema(fields)


def _deeper_than(t, levels: int) -> bool:
    """Whether an Arrow type nests lists and objects more than ``levels`` deep (a scalar: 0)."""
    import pyarrow as pa

    stack = [(t, 0)]
    while stack:
        t, d = stack.pop()
        if d > levels:
            return True
        if pa.types.is_struct(t):
            stack.extend((t.field(i).type, d + 1) for i in range(t.num_fields))
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            stack.append((t.value_type, d + 1))
    return False


def read_columns(path: str | Path, schema: Schema, history: bool, *, start: int = 0, end: int = -1,
                 first_line: int = 1, as_of_default: str | None = None) -> JsonlColumns | None:
    """Read and validate the lines of a plain JSON Lines file in ``[start, end)`` column-wise,
    with the decisions of :func:`read_lines`; None when the range needs :func:`read_lines`
    (see the module docstring).  Arguments as :func:`read_lines`."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    from scoring.contract.tables import Table, validate_tables

    path = Path(path)
    if path.name.lower().endswith(".gz"):
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read() if end < 0 else fh.read(end - start)
    except OSError as e:
        raise ScoringError(CANNOT_READ.format(path=path, error=e)) from e
    if first_line == 1 and data.startswith(_BOM):
        return None
    if not data:
        return None
    n = data.count(b"\n") + (not data.endswith(b"\n"))
    if data[:1] != b"{" or data.count(b"\n{") != n - 1:  # every line starts with "{": no blank line, no other value
        return None
    if b"\\ud" in data or b"\\uD" in data or ((b"NaN" in data or b"Infinity" in data)
                                                and _CONSTANT.search(data) is not None):
        return None
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    comp = compiled(schema)
    try:
        table = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(use_threads=False, block_size=1 << 30),
                             parse_options=pj.ParseOptions(explicit_schema=_arrow_schema(comp),
                                                           unexpected_field_behavior="infer",
                                                           newlines_in_values=False))
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != n:  # e.g. two objects on one line
        return None
    undeclared: dict[str, set] = {OPPORTUNITY: set()}
    declared = comp.opp.declared
    for f in table.schema:
        if f.name not in declared and f.name not in comp.child_names:
            if _deeper_than(f.type, MAX_DEPTH - 3):
                return None
            undeclared[OPPORTUNITY].add(f.name)
    opp_cols = {name: table.column(name) for name in comp.opp.names}
    src = np.arange(n, dtype=np.int64) + (first_line - 1)
    children: dict[str, Table] = {}
    parents: dict[str, np.ndarray] = {}
    for child in comp.children:
        lst = table.column(child.name).combine_chunks()
        flat = pc.list_flatten(lst)
        if flat.null_count:  # a null child row: the reference names it
            return None
        parents[child.name] = pc.list_parent_indices(lst).to_numpy().astype(np.int64)
        found = set()
        for f in flat.type:
            if f.name not in child.declared:
                if _deeper_than(f.type, MAX_DEPTH - 5):
                    return None
                found.add(f.name)
        found.discard(CHILD_KEY)  # the table form's key, harmless in nested rows
        if found:
            undeclared[child.name] = found
        parts = flat.flatten()
        cols = {f.name: parts[i] for i, f in enumerate(flat.type) if f.name in child.declared}
        children[child.name] = Table(cols, np.arange(len(flat), dtype=np.int64), child.name)
    v = validate_tables(Table(opp_cols, src, OPPORTUNITY), children, schema, history, False, as_of_default,
                        parents=parents)
    rejects = []
    if v.rejects:
        decoder = json.JSONDecoder(parse_constant=JSONConstant)
        lines = data.split(b"\n")
        for r in v.rejects:
            line = r["row"]
            if r["field"] == ID and r["reason"] == DUPLICATE:
                rejects.append({"id": r["id"], "field": ID, "reason": DUPLICATE, "line": line})
                continue
            try:
                normalise(decoder.decode(lines[line - first_line].decode("utf-8")), comp, history)
            except RecordError as e:
                rejects.append({**e.to_dict(), "line": line})
                continue
            except (ValueError, RecursionError):
                return None
            return None  # the reference accepts what the columns reject: it reads the whole range
    return JsonlColumns(validated=v, rejects=rejects,
                        undeclared_fields={e: sorted(map(safe_name, s)) for e, s in undeclared.items() if s},
                        n_read=n, lines=v.positions)
