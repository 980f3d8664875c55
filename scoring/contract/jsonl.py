"""The JSON Lines loop: one nested record a line, validated by :mod:`scoring.contract.nested`.

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
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field as _dc_field
from pathlib import Path

from scoring.contract.nested import normalise, record_key, scan_undeclared
from scoring.contract.schema import CHILD_KEY
from scoring.contract.entities import compiled
from scoring.contract.values import (AS_OF, BROKEN_JSON, CANNOT_READ, DUPLICATE, ID, NOT_AN_OBJECT_LINE, OPPORTUNITY,
                                     TOO_DEEP, JSONConstant, Schema)
from scoring.errors import RecordError, ScoringError

__all__ = ["JsonlPart", "read_lines"]

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
