"""CSV tables: every cell as text, the header's names, and rows of another length.

CSV is read with ``pyarrow.csv``, every column as text (an empty cell is
``""``).  Duplicate header names get pandas' suffixes (``name``, ``name.1``),
an empty one ``Unnamed: k``.  A short row (fewer cells than the header:
missing trailing cells, or a file cut off after a separator) is kept, in its
place, with nulls for its missing cells, for the validator to reject
(:mod:`scoring.contract.tables`); a row with more cells than the header, text
that is not UTF-8 and a header with a quote left open stop the read with an
error naming the row or line.
"""
from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from scoring.contract.values import CANNOT_READ_TABLE
from scoring.errors import ScoringError

__all__ = ["csv_batches", "csv_names"]

_CSV_BLOCK = 8 << 20


def csv_names(path: Path) -> list[str] | None:
    """The column names of a CSV table (None for an empty or unreadable file); see the module docstring."""
    header = _csv_header(path)
    return None if header is None else _header_names(header)


def csv_batches(path: Path) -> Iterator[pa.Table]:
    """The rows of a CSV table, in order, as all-text Arrow tables (short rows with nulls)."""
    names = csv_names(path)
    if not names:
        raise ScoringError(CANNOT_READ_TABLE.format(path=path, error="no header (an empty file, or not UTF-8 text)"))
    yield from _csv_batches(path, names)


def _csv_header(path: Path) -> list[str] | None:
    """The names of the header line (None for an empty or unreadable file).

    Raises
    ------
    ScoringError
        The header runs over several lines (a quote left open would swallow the rows under it).
    """
    try:
        with open(path, "rb") as fh:  # decode only the header's line: a bad byte further on is the reader's
            first = fh.readline()
            header = next(csv.reader([first.decode("utf-8-sig")]), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if header is not None and first.count(b'"') % 2:
        raise ScoringError(f"{path}: line 1: the header has a quote that is not closed on its line; fix the export")
    return header


def _header_names(header: list[str]) -> list[str]:
    """pandas' names for duplicate and empty headers (``name``, ``name.1``, ...; ``Unnamed: 3``)."""
    seen: dict[str, int] = {}
    names = []
    for i, h in enumerate(header):
        h = h or f"Unnamed: {i}"
        k = seen.get(h, 0)
        names.append(h if k == 0 else f"{h}.{k}")
        seen[h] = k + 1
    return names


def _csv_open(path: Path, names: list[str], skip: int = 0, handler: Callable | None = None) -> Any:
    """A streaming pyarrow CSV reader of every column as text, after the header and ``skip`` data rows.

    With a ``handler`` of rows whose cell count differs from the header's, the read is single-threaded,
    so that the handler learns each row's number.
    """
    import pyarrow.csv as pacsv

    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK, encoding="utf8", column_names=names, skip_rows=1,
                                       skip_rows_after_names=skip, use_threads=handler is None),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.large_string() for c in names},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )


def _csv_batches(path: Path, names: list[str]) -> Iterator[pa.Table]:
    """The rows of a CSV table.  A short row (fewer cells than the header: missing trailing cells,
    or a file truncated at a cell boundary) is kept, in its place, with nulls for its missing cells
    (any other cell is text, ``""`` when empty): the validator rejects it.  A row with more cells
    than the header, or text that is not UTF-8, is an error naming the row or line."""
    done = 0
    try:
        for b in _csv_open(path, names):
            done += b.num_rows
            yield pa.Table.from_batches([b])
        return
    except (pa.ArrowException, OSError):  # a row of another length, or not UTF-8: read the rest row by row
        pass
    shorts: list[tuple[int, str]] = []  # (0-based data row, text)
    longs: list[tuple[int, int]] = []  # (1-based data row, cells)

    def handler(row: Any) -> str:
        if row.number is None or row.actual_columns > row.expected_columns:
            longs.append((-1 if row.number is None else row.number - 1, row.actual_columns))
            return "error"
        shorts.append((row.number - 2, row.text))
        return "skip"

    line = _first_non_utf8_line(path)  # first: the row handler cannot be given text that is not UTF-8
    if line is not None:
        raise ScoringError(f"{path}: line {line} is not UTF-8 text; export the file as UTF-8")
    pos = done
    try:
        for b in _csv_open(path, names, done, handler):
            t, pos = _place_short_rows(pa.Table.from_batches([b]), pos, shorts, names)
            yield t
    except (pa.ArrowException, OSError) as e:
        if longs:
            row, cells = longs[0]
            raise ScoringError(f"{path}: row {row} has {cells} cells, the header {len(names)}; fix the export "
                               f"(a separator inside an unquoted value?)") from e
        raise ScoringError(CANNOT_READ_TABLE.format(path=path, error=e)) from e
    if shorts:
        yield _place_short_rows(pa.table({c: pa.array([], pa.large_string()) for c in names}), pos, shorts, names)[0]


def _place_short_rows(t: pa.Table, pos: int, shorts: list[tuple[int, str]], names: list[str]) -> tuple[pa.Table, int]:
    """Batch ``t`` (the good rows from data row ``pos`` on) with the short rows among them put back in
    their places; ``shorts`` loses those.  Returns the batch and the data row after it."""
    m = t.num_rows
    idx = np.array([i for i, _ in shorts], np.int64)
    cand = np.arange(pos, pos + m + len(idx), dtype=np.int64)
    good = cand[~np.isin(cand, idx)][:m]
    end = int(good[-1]) + 1 if m else pos + len(idx)
    mine = [(i, text) for i, text in shorts if i < end]
    if not mine:
        return t, end
    del shorts[:len(mine)]
    cells = [next(csv.reader(io.StringIO(text)), []) for _, text in mine]
    extra = pa.table({c: pa.array([r[k] if k < len(r) else None for r in cells], pa.large_string())
                      for k, c in enumerate(names)})
    both = pa.concat_tables([t.cast(extra.schema), extra])
    where = np.concatenate([good, np.array([i for i, _ in mine], np.int64)])
    return both.take(pa.array(np.argsort(where, kind="stable"))), end


def _first_non_utf8_line(path: Path) -> int | None:
    """1-based number of the first line of a file that is not UTF-8 (None if the whole file is)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(16 << 20)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:  # e.start counts the (at most 3) bytes held from the block before
                return lines + block[:max(0, e.start)].count(b"\n") + 1
            if not block:
                return None
            lines += block.count(b"\n")
