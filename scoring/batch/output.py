"""The run's files: their names, writing them atomically, reading an output back, and the output lock.

Names.  The side outputs of a run are named from the WHOLE output file name, so
two outputs in one folder never share them: ``scores.parquet`` ->
``scores.parquet.rejects.csv``, ``scores.parquet.summary.json`` and the lock
``scores.parquet.lock``.  A run whose checks fail (e.g. too many rejects) keeps
the previous output and writes its rejects and summary under their *failed*
names, ``.failed`` before the extension: ``scores.parquet.rejects.failed.csv``,
``scores.parquet.summary.failed.json`` (:func:`failed_path`).  Two files of one
run that would be the same file are refused before any work (:meth:`RunFiles.check`).

Atomic.  OUTPUT, REJECTS, the forecast and the summary are written to
temporary files ``.NAME.tmp-<pid>`` beside their final names and renamed into
place only when the run succeeds, so a run killed halfway leaves the previous
night's files untouched; a replaced file keeps its permission bits.  What a
killed run leaves (temporary files, spill folders ``.ingest-<pid>-*``) is
removed by the next run on the same output once its owner pid is gone
(:func:`remove_stale`).

The lock ``OUTPUT.lock`` makes a second run writing the same OUTPUT refuse to
start (:func:`output_lock`).

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
import shutil
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pandas as pd
import pyarrow as pa

from scoring.batch.chunks import LIST_COLUMNS
from scoring.errors import InputError, ScoringError

#: output file suffixes (lower case) and their formats
FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
#: columns of the rejects file
REJECT_COLUMNS = ("kind", "id", "field", "reason", "where")
_NUMBER_COLUMNS = ("win_probability", "probability_change", "rule_score", "data_completeness")
#: the first characters that make a spreadsheet run a CSV cell as a formula (OWASP "CSV injection"),
#: and the quote that neutralises them (itself included, so that reading a CSV back is exact)
FORMULA_STARTS = "=+-@\t\r"
_QUOTE = "'"
_NEEDS_QUOTE = "^[" + re.escape(FORMULA_STARTS + _QUOTE) + "]"
_QUOTED = re.compile("^" + _QUOTE + "(?=[" + re.escape(FORMULA_STARTS + _QUOTE) + "])")
#: temporary files and spill folders of a run, with the pid of the process that made them
_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")
_SPILL_PREFIX = ".ingest-"
_SPILL = re.compile(r"^\.ingest-(?P<pid>\d+)-")


def output_format(path: Path) -> str:
    """``parquet``, ``jsonl`` or ``csv`` from the suffix of ``path``; a ScoringError for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ScoringError(f"{path}: unknown output format {suffix!r} (use .parquet, .jsonl or .csv)")
    return FORMATS[suffix]


# --------------------------------------------------------------------------- names


def side_path(output: Path, suffix: str) -> Path:
    """A file named from the whole output file name: ``scores.parquet`` -> ``scores.parquet<suffix>``."""
    output = Path(output)
    return output.with_name(output.name + suffix)


def default_rejects_path(output: Path) -> Path:
    """``<output file name>.rejects.csv``."""
    return side_path(output, ".rejects.csv")


def default_summary_path(output: Path) -> Path:
    """``<output file name>.summary.json``."""
    return side_path(output, ".summary.json")


def lock_path(output: Path) -> Path:
    """``<output file name>.lock``."""
    return side_path(output, ".lock")


def failed_path(path: Path) -> Path:
    """Where a failed run writes ``path`` instead: ``.failed`` before the extension
    (``scores.parquet.rejects.csv`` -> ``scores.parquet.rejects.failed.csv``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.failed{path.suffix}")


@dataclass(frozen=True)
class RunFiles:
    """The files one run writes, by their final names.

    Parameters
    ----------
    output : Path
        OUTPUT.
    rejects, summary : Path, optional
        Default: named from OUTPUT (:func:`default_rejects_path`, :func:`default_summary_path`).
    forecast : Path, optional
        Written only when given.
    """

    output: Path
    rejects: Path
    summary: Path
    forecast: Path | None = None

    @classmethod
    def of(cls, output: str | os.PathLike, rejects: str | os.PathLike | None = None,
           summary: str | os.PathLike | None = None, forecast: str | os.PathLike | None = None) -> RunFiles:
        output = Path(output)
        return cls(output, Path(rejects) if rejects else default_rejects_path(output),
                   Path(summary) if summary else default_summary_path(output),
                   Path(forecast) if forecast else None)

    def tables(self) -> dict[str, Path]:
        """The tables the run writes, by the option that names them."""
        files = {"--out": self.output, "--rejects": self.rejects, "--forecast": self.forecast}
        return {k: v for k, v in files.items() if v is not None}

    def written(self) -> dict[str, Path]:
        """Every file the run may write, by what names it (for messages): final, failed and lock."""
        return {**self.tables(), "the summary": self.summary, "the lock": lock_path(self.output),
                "the failed run's rejects": failed_path(self.rejects),
                "the failed run's summary": failed_path(self.summary)}

    def check(self, reads: Mapping[str, str | os.PathLike | None] = {}) -> None:
        """Refuse, before any work, a run whose files would collide.

        Two files of the run that are one file (``--rejects`` equal to ``--out``,
        ``--out x.rejects.csv`` beside ``x``, ...), a file the run writes that is
        one it reads (``reads``: name -> path; ``--previous`` may be ``--out``,
        since it is read whole before anything is replaced), an output path that
        is a folder, or a format that cannot be written.

        Raises
        ------
        InputError
            Two files collide, or a format is unknown (exit code 2).
        IsADirectoryError
            A file to write is an existing folder (exit code 4).
        """
        written = self.written()
        seen: dict[str, str] = {}
        for what, path in written.items():
            key = os.path.realpath(path)
            if key in seen:
                raise InputError(f"{what} {path} is the same file as {seen[key]}: give them different names")
            seen[key] = f"{what} ({path})" if what.startswith("the ") else what
        for what, path in reads.items():
            if path is None:
                continue
            key = os.path.realpath(path)
            if key in seen and not (what == "--previous" and seen[key] == "--out"):
                raise InputError(f"{seen[key]} would overwrite {what} {path}: give it another name")
        for path in self.tables().values():
            output_format(path)
        for path in written.values():
            if path.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))


# --------------------------------------------------------------------------- temporary files


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _create_tmp(path: Path) -> tuple[Path, int]:
    """Create this process's temporary file for ``path`` (a new regular file, never through a link)."""
    tmp = _tmp_path(path)
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


# --------------------------------------------------------------------------- what a killed run left


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _left_by_dead_run(pid: int) -> bool:
    """Whether a file marked with ``pid`` was left by a run that is gone (at the start of a run,
    one marked with this process's own pid is a dead run's whose pid was reused)."""
    return pid == os.getpid() or not pid_alive(pid)


def remove_stale(files: RunFiles, spill_base: Path | None) -> list[Path]:
    """Remove what killed runs left: temporary files of this run's names, and spill folders in
    ``spill_base``, whose owner pid is gone.  Returns what was removed."""
    removed = []
    names: dict[Path, set[str]] = {}
    for path in files.written().values():
        names.setdefault(path.parent, set()).add(path.name)
    for folder, own in names.items():
        for entry in _entries(folder):
            m = _TMP.match(entry.name)
            if m and m["name"] in own and _left_by_dead_run(int(m["pid"])) and not entry.is_dir(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    for entry in _entries(spill_base or Path(tempfile.gettempdir())):
        m = _SPILL.match(entry.name)
        if m and entry.is_dir(follow_symlinks=False) and _left_by_dead_run(int(m["pid"])):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def make_spill_dir(base: Path | None) -> Path:
    """A new spill folder ``.ingest-<pid>-*`` in ``base`` (the system's temp folder when None)."""
    if base is not None:
        Path(base).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{_SPILL_PREFIX}{os.getpid()}-", dir=base))


# --------------------------------------------------------------------------- the lock


@dataclass(frozen=True)
class HeldLock:
    """The output lock of a running run: its path, and the pid of a dead run it was taken over from."""

    path: Path
    taken_over_from: int | None = None


@contextmanager
def output_lock(output: Path) -> Iterator[HeldLock]:
    """Hold ``OUTPUT.lock`` for the run; refuse (ScoringError) when another run holds it.

    An ``flock`` through :mod:`filelock`: the kernel releases it when the process
    dies, and filelock closes it in forked worker processes (which die with the
    run, see :mod:`scoring.batch.run`), so a killed run never leaves a held lock.
    The holder writes its pid into the file and empties it on release: a pid
    found in the file of a free lock is a killed run's, reported as taken over
    (:attr:`HeldLock.taken_over_from`).  A lock path that is a symbolic link is
    refused (OSError, exit code 4), never followed.
    """
    from filelock import FileLock, Timeout

    lock = lock_path(output)
    lock.parent.mkdir(parents=True, exist_ok=True)
    if lock.is_symlink():
        raise OSError(errno.ELOOP, "the lock file is a symbolic link; remove it (it must be a plain file)", str(lock))
    if not os.access(lock.parent, os.W_OK):
        raise PermissionError(errno.EACCES, "cannot write in this folder", str(lock.parent))
    fds: list[int] = []

    def on_acquired(fd: int) -> None:
        fds.append(fd)

    flock = FileLock(lock, preserve_lock_file=True, on_acquired=on_acquired)
    try:
        flock.acquire(blocking=False)
    except Timeout:
        other = _lock_pid(lock)
        holder = f"pid {other}" if other and pid_alive(other) else "a process whose pid is not known"
        raise ScoringError(f"another run is writing {output} (lock {lock} held by {holder}); "
                           "refusing to start") from None
    try:
        stale = _lock_pid(lock)
        os.ftruncate(fds[0], 0)
        os.pwrite(fds[0], str(os.getpid()).encode(), 0)
        yield HeldLock(lock, stale if stale and stale != os.getpid() else None)
    finally:
        try:
            os.ftruncate(fds[0], 0)  # released cleanly: no pid left behind
        finally:
            flock.release()


def _lock_pid(lock: Path) -> int | None:
    """The pid written in a lock file (None when empty or unreadable)."""
    try:
        fd = os.open(lock, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    return int(text) if text.isdigit() else None


def read_output(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a batch output (Parquet, JSON Lines or CSV; list columns as lists, CSV text cells as written)."""
    path = Path(path)
    fmt = output_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        have = pq.ParquetFile(path).schema_arrow.names
        return pq.read_table(path, columns=[c for c in (columns or have) if c in have]).to_pandas()
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
