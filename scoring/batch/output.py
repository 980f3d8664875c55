"""The run's files: writing them atomically, reading an output back, and the output lock.

OUTPUT, REJECTS, the forecast and the summary are written to temporary files
beside their final names and renamed into place only when the run succeeds, so
a run killed halfway leaves the previous night's files untouched.  The lock
``OUTPUT.lock`` makes a second run writing the same OUTPUT refuse to start.

Formats: ``.parquet`` (list columns native), ``.jsonl`` (one JSON object per
row) and ``.csv`` (list columns as JSON text).
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pandas as pd
import pyarrow as pa

from scoring.batch.chunks import LIST_COLUMNS
from scoring.errors import ScoringError

#: output file suffixes (lower case) and their formats
FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
#: columns of the rejects file
REJECT_COLUMNS = ("kind", "id", "field", "reason", "where")
_NUMBER_COLUMNS = ("win_probability", "probability_change", "rule_score", "data_completeness")


def output_format(path: Path) -> str:
    """``parquet``, ``jsonl`` or ``csv`` from the suffix of ``path``; a ScoringError for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ScoringError(f"{path}: unknown output format {suffix!r} (use .parquet, .jsonl or .csv)")
    return FORMATS[suffix]


def sibling(output: Path, suffix: str) -> Path:
    """A file beside ``output`` named after its stem: ``scores.parquet`` -> ``scores<suffix>``."""
    output = Path(output)
    return output.with_name(output.name.split(".")[0] + suffix)


def default_rejects_path(output: Path) -> Path:
    """``<output stem>.rejects.csv``."""
    return sibling(output, ".rejects.csv")


class AtomicWriter:
    """Writes chunks of rows to ``path`` through a temporary file renamed into place on :meth:`commit`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fmt = output_format(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._pq = None
        self._fh = None
        self._header = True

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s rows."""
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            if self._pq is None:
                self._pq = pq.ParquetWriter(self.tmp, table.schema)
            self._pq.write_table(table)
            return
        if self._fh is None:
            self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
        if self.fmt == "csv":
            df = table.to_pandas()
            for c in df.columns:
                if pa.types.is_list(table.schema.field(c).type):
                    df[c] = [json.dumps(list(v), ensure_ascii=False) if v is not None else "[]" for v in df[c]]
            df.to_csv(self._fh, index=False, header=self._header, lineterminator="\n")
        else:
            for row in table.to_pylist():
                self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._header = False

    def commit(self, empty_schema: pa.Schema | None = None) -> None:
        """Rename the written file into place (an empty file of ``empty_schema`` when nothing was written)."""
        if self._pq is None and self._fh is None:
            if empty_schema is not None:
                self.write(empty_schema.empty_table())
            else:
                self._fh = open(self.tmp, "w", encoding="utf-8")
        if self._pq is not None:
            self._pq.close()
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file; the final name keeps what it had."""
        try:
            if self._pq is not None:
                self._pq.close()
            if self._fh is not None:
                self._fh.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextmanager
def output_lock(output: Path) -> Iterator[Path]:
    """Hold ``OUTPUT.lock`` for the run; refuse (ScoringError) when another run holds it.

    An ``flock`` through :mod:`filelock`: the kernel releases it when the process
    dies, so a killed run never leaves a stale lock behind, and filelock closes it
    in forked worker processes, so a worker that outlives its run does not hold it
    either.  The holder writes its pid into the file, for the refusal message.
    """
    from filelock import FileLock, Timeout

    lock = Path(output).with_name(Path(output).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    flock = FileLock(lock, preserve_lock_file=True, on_acquired=_write_pid)
    try:
        flock.acquire(blocking=False)
    except Timeout:
        other = lock.read_text(errors="replace").strip() if lock.exists() else ""
        raise ScoringError(f"another run is writing {output} (lock {lock} held by pid {other or '?'}); "
                           "refusing to start") from None
    try:
        yield lock
    finally:
        flock.release()


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)


def read_output(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a batch output (Parquet, JSON Lines or CSV; list columns as lists)."""
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
        for c in LIST_COLUMNS:
            if c in df.columns:
                df[c] = df[c].map(lambda s: json.loads(s) if isinstance(s, str) and s else [])
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
