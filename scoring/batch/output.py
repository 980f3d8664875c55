"""Writing the run's files atomically, reading an output back, and safe CSV cells.

OUTPUT, REJECTS, the forecast and the summary are written to temporary files
``.NAME.tmp-<pid>`` beside their final names and renamed into place only when
the run succeeds, so a run killed halfway leaves the previous night's files
untouched; a replaced file keeps its permission bits.  Their names, the lock
and the clean-up of what a killed run left are in :mod:`scoring.batch.files`.

Formats: ``.parquet`` (list columns native), ``.jsonl`` (one JSON object per
row) and ``.csv`` (list columns as JSON text; text cells a spreadsheet would run
as a formula are neutralised, :func:`neutralise_formulas`).
"""
from __future__ import annotations

import csv
import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import pyarrow as pa

from scoring.batch.chunks import LIST_COLUMNS
from scoring.batch.files import output_format, temp_path

#: columns of the rejects file
REJECT_COLUMNS = ("kind", "id", "field", "reason", "where")
_NUMBER_COLUMNS = ("win_probability", "probability_change", "rule_score", "data_completeness")
#: the first characters that make a spreadsheet run a CSV cell as a formula (OWASP "CSV injection"),
#: and the quote that neutralises them (itself included, so that reading a CSV back is exact)
FORMULA_STARTS = "=+-@\t\r"
_QUOTE = "'"
_NEEDS_QUOTE = "^[" + re.escape(FORMULA_STARTS + _QUOTE) + "]"
_QUOTED = re.compile("^" + _QUOTE + "(?=[" + re.escape(FORMULA_STARTS + _QUOTE) + "])")


# --------------------------------------------------------------------------- temporary files


def _create_tmp(path: Path) -> tuple[Path, int]:
    """Create this process's temporary file for ``path`` (a new regular file, never through a link)."""
    tmp = temp_path(path)
    tmp.unlink(missing_ok=True)  # only a dead run with this pid can have left it
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return tmp, os.open(tmp, flags, 0o666)


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` when it names no file (pyarrow's write errors do not)."""
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path)) if exc.errno else \
        OSError(errno.EIO, str(exc), str(path))


def _replace(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path``, keeping the permission bits of the file it replaces."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


class AtomicWriter:
    """Writes chunks of rows to ``path`` through a temporary file renamed into place on :meth:`commit`.

    Every operating-system error names ``path``; after :meth:`abort` (or a failed
    :meth:`commit`) no temporary file remains and ``path`` keeps what it had.
    """

    def __init__(self, path: Path, fmt: str | None = None):
        self.path = Path(path)
        self.fmt = fmt or output_format(self.path)
        self.tmp: Path | None = None
        self._pq = None
        self._fh = None
        self._header = True

    def _open(self, schema: pa.Schema | None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp, fd = _create_tmp(self.path)
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            os.close(fd)
            self._pq = pq.ParquetWriter(self.tmp, schema)
        else:
            self._fh = os.fdopen(fd, "w", encoding="utf-8", newline="")

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s rows."""
        try:
            self._write(table)
        except OSError as exc:
            raise _named(exc, self.path) from exc

    def write_text(self, text: str) -> None:
        """Append ``text`` (a writer of format ``text``)."""
        try:
            if self.tmp is None:
                self._open(None)
            self._fh.write(text)
        except OSError as exc:
            raise _named(exc, self.path) from exc

    def _write(self, table: pa.Table) -> None:
        if self.tmp is None:
            self._open(table.schema)
        if self.fmt == "parquet":
            self._pq.write_table(table)
            return
        if self.fmt == "csv":
            df = neutralise_formulas(table).to_pandas()
            for c in df.columns:
                if pa.types.is_list(table.schema.field(c).type):
                    df[c] = [json.dumps(list(v), ensure_ascii=False) if v is not None else "[]" for v in df[c]]
            # a bare CR inside a cell is not quoted by the minimal rule with "\n" line ends: quote every text cell
            quoting = csv.QUOTE_NONNUMERIC if _has_cr(table) else csv.QUOTE_MINIMAL
            df.to_csv(self._fh, index=False, header=self._header, lineterminator="\n", quoting=quoting)
        else:
            for row in table.to_pylist():
                self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._header = False

    def close(self, empty_schema: pa.Schema | None = None) -> None:
        """Finish the temporary file (an empty file of ``empty_schema`` when nothing was written)."""
        try:
            if self.tmp is None:
                if empty_schema is not None:
                    self._write(empty_schema.empty_table())
                else:
                    self._open(pa.schema([]))
            if self._pq is not None:
                self._pq.close()
                self._pq = None
            if self._fh is not None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None
        except OSError as exc:
            raise _named(exc, self.path) from exc

    def commit(self, empty_schema: pa.Schema | None = None, to: Path | None = None) -> None:
        """Rename the written file into place (into ``to`` instead of the final name when given)."""
        self.close(empty_schema)
        _replace(self.tmp, Path(to) if to is not None else self.path)
        self.tmp = None

    def abort(self) -> None:
        """Drop the temporary file; the final name keeps what it had."""
        try:
            if self._pq is not None:
                self._pq.close()
            if self._fh is not None:
                self._fh.close()
        except OSError:
            pass  # e.g. disk full while flushing: the file is dropped anyway
        finally:
            self._pq = self._fh = None
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)
                self.tmp = None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    w = AtomicWriter(path, fmt="text")
    try:
        w.write_text(text)
        w.commit()
    except BaseException:
        w.abort()
        raise


def neutralise_formulas(table: pa.Table) -> pa.Table:
    """Text cells a spreadsheet would run as a formula, prefixed with ``'`` (the OWASP rule).

    Only text columns: a cell starting with one of :data:`FORMULA_STARTS` (or with
    the quote itself, so :func:`restore_formulas` is exact) gets a leading ``'``.
    Numbers stay numbers.  Used for every CSV the run writes; Parquet and JSON
    Lines keep the raw values.
    """
    import pyarrow.compute as pc

    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            col = table.column(i)
            hit = pc.match_substring_regex(col, _NEEDS_QUOTE)
            if pc.any(hit).as_py():
                quote, empty = pa.scalar(_QUOTE, field.type), pa.scalar("", field.type)
                table = table.set_column(i, field, pc.if_else(hit, pc.binary_join_element_wise(quote, col, empty),
                                                              col))
    return table


def _has_cr(table: pa.Table) -> bool:
    import pyarrow.compute as pc

    return any(pc.any(pc.match_substring(table.column(i), "\r")).as_py()
               for i, f in enumerate(table.schema) if pa.types.is_string(f.type) or pa.types.is_large_string(f.type))


def restore_formulas(values: pd.Series) -> pd.Series:
    """Undo :func:`neutralise_formulas` on a text column read back from a CSV."""
    if values.isna().all():
        return values
    return values.str.replace(_QUOTED, "", regex=True)


def read_output(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a batch output (Parquet, JSON Lines or CSV; list columns as lists, CSV text cells as written)."""
    path = Path(path)
    fmt = output_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        have = pq.ParquetFile(path).schema_arrow.names
        table = pq.read_table(path, columns=[c for c in (columns or have) if c in have])
        table.validate(full=True)  # a damaged file can hold text that is not UTF-8: ArrowInvalid here, not later
        return table.to_pandas()
    if fmt == "jsonl":
        df = pd.read_json(path, lines=True, dtype=False)
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        for c in df.columns:
            if c in LIST_COLUMNS:
                df[c] = df[c].map(lambda s: json.loads(s) if isinstance(s, str) and s else [])
            else:
                df[c] = restore_formulas(df[c])
        for c in _NUMBER_COLUMNS:
            if c in df.columns:
                df[c] = pd.to_numeric(df[c], errors="coerce")
    if columns:
        df = df[[c for c in columns if c in df.columns]]
    return df


def rejects_table(rows: Sequence[Mapping]) -> pa.Table:
    """Rows of the rejects file (:data:`REJECT_COLUMNS`, all text)."""
    return pa.table({k: pa.array([r.get(k) for r in rows], type=pa.string()) if k != "id"
                     else pa.array([None if r.get(k) is None else str(r.get(k)) for r in rows], type=pa.string())
                     for k in REJECT_COLUMNS})
