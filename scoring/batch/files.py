"""The files of a run: their names, formats and collisions, the output lock, and what a killed run left.

Names.  The side outputs of a run are named from the WHOLE output file name, so
two outputs in one folder never share them: ``scores.parquet`` ->
``scores.parquet.rejects.csv``, ``scores.parquet.summary.json`` and the lock
``scores.parquet.lock``.  A run whose checks fail (e.g. too many rejects) keeps
the previous output and writes its rejects and summary under their *failed*
names, ``.failed`` before the extension: ``scores.parquet.rejects.failed.csv``,
``scores.parquet.summary.failed.json`` (:func:`failed_path`).  Two files of one
run that would be the same file are refused before any work (:meth:`RunFiles.check`).

Temporary files ``.NAME.tmp-<pid>`` (:func:`temp_path`, written by
:mod:`scoring.batch.output`) and spill folders ``.ingest-<pid>-*`` left by a
killed run are removed by the next run on the same output once their owner pid
is gone (:func:`remove_stale`).

The lock ``OUTPUT.lock`` makes a second run writing the same OUTPUT refuse to
start (:func:`output_lock`).
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from scoring.errors import InputError, ScoringError

#: output file suffixes (lower case) and their formats
FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def output_format(path: Path) -> str:
    """``parquet``, ``jsonl`` or ``csv`` from the suffix of ``path``; a ScoringError for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ScoringError(f"{path}: unknown output format {suffix!r} (use .parquet, .jsonl or .csv)")
    return FORMATS[suffix]


#: temporary files and spill folders of a run, with the pid of the process that made them
_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")
_SPILL_PREFIX = ".ingest-"
_SPILL = re.compile(r"^\.ingest-(?P<pid>\d+)-")


def temp_path(path: Path) -> Path:
    """This process's temporary file for ``path``: ``.NAME.tmp-<pid>`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


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
