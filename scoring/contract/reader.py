"""Reading a whole contract input: validated chunks of frames, or nested records.

Every reader goes one way: :mod:`~scoring.contract.sources` says which files
an input is and cuts it into partitions; a partition of the table form is
validated column-wise by :mod:`~scoring.contract.tables`, one of JSON Lines by
the loop of :mod:`~scoring.contract.jsonl`.  Then

* :class:`InputStream` hands out :class:`Chunk` objects (the good deals in
  column form, :class:`~scoring.contract.frames.Frames`) with bounded memory::

      with InputStream("export/", pack.schema, chunk_size=50_000) as stream:
          for chunk in stream:                       # or: specs = stream.partitions()
              evaluate(chunk.frames)                 #     pool.map(load_partition, specs)
              write_rejects(chunk.rejects)

* :func:`read_records` reads the input as ONE partition and returns nested
  records (:class:`ReadResult`) for the per-record consumers (training,
  explain, reports);
* :func:`validate_dataframes` validates pandas tables held in memory.

Order
-----
Deterministic for the same input and ``chunk_size``: partitions in bucket
(table form) or file (JSON Lines) order, records within a partition in input
order; child rows within a chunk sorted by their deal, then input order.  A
one-partition input (and :func:`read_records`) keeps the input order.

Duplicates
----------
Table form: all rows of an id share a partition, so every chunk is final.
JSON Lines: a partition rejects the duplicates it holds itself; a record
whose ``(id, as_of)`` was accepted in an EARLIER partition can only be found
across partitions: ``chunk.needs_dedupe`` is then True and the caller must
pass the chunks, in partition order, through one :class:`DuplicateFilter`
(``InputStream.__iter__`` does it; a batch that loads partitions in worker
processes applies it in the parent, in partition order).
With ``as_of_default`` (the run's date), a record without ``as_of`` takes that
date (in the records and the frames), so it and a record of the same id with
that ``as_of`` are one snapshot: the later one is the duplicate.

Frames
------
``frames.opps``: ``id`` and ``as_of`` plus every declared opportunity field of
``schema`` (or of ``fields`` when given), in schema order, RangeIndex; dtypes
``boolean`` / ``Int64`` / ``Float64`` / ``str`` (enum, string) and dates as
``'YYYY-MM-DD'`` ``str`` (``dates="datetime64"``: ``datetime64[s]``).
``frames.children``: one frame per child entity of the schema with ``_row``
(int64 position of the deal in ``opps``) and the declared child fields.
Undeclared input columns are reported in ``undeclared_fields`` and dropped.
"""
from __future__ import annotations

import contextlib
import gc
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field as _dc_field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from scoring.contract.frames import ROW, Frames, records_to_frames
from scoring.contract.jsonl import read_columns, read_lines
from scoring.contract.schema import CHILD_KEY, CONTRACT
from scoring.contract.sources import (MEMORY_BYTES, PartitionSpec, arrow_table, jsonl_partitions, no_child_key,
                                      plain_table, read_partition_tables, resolve, table_partitions)
from scoring.contract.tables import Table, output_names, validate_tables
from scoring.contract.entities import compiled
from scoring.contract.values import (AS_OF, DUPLICATE, ID, OPPORTUNITY, Bad, Schema, converters, date_from_text,
                                     show)
from scoring.errors import InputError

__all__ = ["ReadResult", "Chunk", "PartitionSpec", "InputStream", "DuplicateFilter", "load_partition",
           "read_records", "validate_dataframes"]


@dataclass
class ReadResult:
    """What :func:`read_records` found.

    Attributes
    ----------
    records : list of dict
        Valid records in normalised nested form (:mod:`scoring.contract.nested`), in input order.
    rejects : list of dict
        One entry per bad input record: ``{"id", "field", "reason", "line"}``
        (JSON Lines, 1-based line number) or ``{"id", "field", "reason", "row"}``
        (table form, 1-based data row of the opportunities table: the first row
        under the header is row 1).  ``id`` is None when unknown, ``field`` is
        None for a line that is not a record at all (broken JSON).  Never the
        record itself: it may hold personal data.
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


@dataclass
class Chunk:
    """One partition of the input, validated.

    Attributes
    ----------
    frames : Frames
        The GOOD records of this partition in column form (RangeIndex).
    rejects, orphans, undeclared_fields, n_read
        As :class:`ReadResult`, for this partition (``n_read == len(frames.opps) + len(rejects)``).
    positions : ndarray
        1-based source row (table form) or line (JSON Lines) of each good record.
    partition : int
        Index of the partition.
    needs_dedupe : bool
        True when later duplicates of records accepted in EARLIER partitions
        can only be found across partitions (JSON Lines): pass the chunks, in
        partition order, through a :class:`DuplicateFilter`.
    """

    frames: Frames
    rejects: list[dict] = _dc_field(default_factory=list)
    orphans: list[dict] = _dc_field(default_factory=list)
    n_read: int = 0
    undeclared_fields: dict[str, list[str]] = _dc_field(default_factory=dict)
    positions: np.ndarray = _dc_field(default_factory=lambda: np.zeros(0, np.int64))
    partition: int = 0
    needs_dedupe: bool = False


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a read allocates millions of small objects and no
    reference cycles, and generational collections over them cost 20-40% of the read."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _output_fields(schema: Schema, fields: Mapping[str, Any] | None) -> dict[str, dict]:
    """entity -> {name: Field} of the frames' columns."""
    return {ent: {n: schema[ent][n] for n in output_names(schema, fields, ent)} for ent in schema}


def load_partition(spec: PartitionSpec) -> Chunk:
    """Load and validate one partition (module level: usable in a worker process)."""
    with _gc_paused():
        if spec.kind == "jsonl":
            return _jsonl_chunk(spec)
        opps, children = read_partition_tables(spec)
        v = validate_tables(opps, children, spec.schema, spec.history, spec.text, spec.as_of_default)
        return Chunk(frames=v.frames(spec.fields, spec.dates), rejects=v.rejects, orphans=v.orphans,
                     n_read=v.n_read, undeclared_fields=v.undeclared_fields, positions=v.positions,
                     partition=spec.index)


#: a JSON Lines range the columns cannot read is halved down to about this many bytes; a
#: smaller one is read by the per-record loop
_JSONL_PIECE_BYTES = 1 << 20


def _jsonl_pieces(spec: PartitionSpec, start: int, end: int, first_line: int) -> Iterator[Chunk]:
    """The byte range ``[start, end)`` of a JSON Lines partition as chunks, in line order: read
    column-wise (:func:`~scoring.contract.jsonl.read_columns`), or halved at a line start when the
    columns cannot read it, down to pieces the per-record loop reads (:func:`read_lines`)."""
    cols = read_columns(spec.path, spec.schema, spec.history, start=start, end=end, first_line=first_line,
                        as_of_default=spec.as_of_default)
    if cols is not None:
        yield Chunk(frames=cols.validated.frames(spec.fields, spec.dates), rejects=cols.rejects, orphans=[],
                    n_read=cols.n_read, undeclared_fields=cols.undeclared_fields, positions=cols.lines,
                    partition=spec.index, needs_dedupe=True)
        return
    size = (Path(spec.path).stat().st_size if end < 0 else end) - start
    mid = None
    if size > 2 * _JSONL_PIECE_BYTES and not spec.path.lower().endswith(".gz"):
        with open(spec.path, "rb") as fh:
            fh.seek(start + size // 2)
            fh.readline()  # to the start of the next line
            mid = fh.tell()
            if not start < mid < start + size:
                mid = None
            else:
                fh.seek(start)
                lines = fh.read(mid - start).count(b"\n")
    if mid is None:
        part = read_lines(spec.path, spec.schema, spec.history, start=start, end=end, first_line=first_line,
                          as_of_default=spec.as_of_default)
        frames = records_to_frames(part.records, _output_fields(spec.schema, spec.fields), dates=spec.dates)
        yield Chunk(frames=frames, rejects=part.rejects, orphans=[], n_read=part.n_read,
                    undeclared_fields=part.undeclared_fields, positions=np.asarray(part.lines, dtype=np.int64),
                    partition=spec.index, needs_dedupe=True)
        return
    yield from _jsonl_pieces(spec, start, mid, first_line)
    yield from _jsonl_pieces(spec, mid, end, first_line + lines)


def _jsonl_chunk(spec: PartitionSpec) -> Chunk:
    """One JSON Lines partition: its pieces (:func:`_jsonl_pieces`) put together; a record repeating the
    ``(id, as_of)`` of an earlier piece is rejected as one read of the partition rejects it."""
    dedupe = DuplicateFilter()
    pieces = [dedupe(c) for c in _jsonl_pieces(spec, spec.start, spec.end, spec.first_line)]
    if len(pieces) == 1:
        (c,) = pieces
        c.needs_dedupe = spec.needs_dedupe
        return c
    offsets = np.cumsum([0] + [len(c.frames.opps) for c in pieces])
    opps = pd.concat([c.frames.opps for c in pieces], ignore_index=True)
    children = {}
    for name in pieces[0].frames.children:
        parts = []
        for c, off in zip(pieces, offsets):
            df = c.frames.children[name]
            if len(df):
                df = df.copy()
                df[ROW] = df[ROW].to_numpy(dtype=np.int64) + off
            parts.append(df)
        children[name] = pd.concat(parts, ignore_index=True)
    undeclared: dict[str, set] = {}
    for c in pieces:
        for e, names in c.undeclared_fields.items():
            undeclared.setdefault(e, set()).update(names)
    rejects = sorted((r for c in pieces for r in c.rejects), key=lambda r: r["line"])
    return Chunk(frames=Frames(opps=opps, children=children), rejects=rejects, orphans=[],
                 n_read=sum(c.n_read for c in pieces), undeclared_fields={e: sorted(v) for e, v in undeclared.items()},
                 positions=np.concatenate([c.positions for c in pieces]), partition=spec.index,
                 needs_dedupe=spec.needs_dedupe)


def read_records(source: str | Path, schema: Schema = CONTRACT, history: bool = False, *,
                 as_of_default: str | None = None) -> ReadResult:
    """Read any input form (see :mod:`scoring.contract.sources`) as nested records.

    The input is one partition: the same validation as :class:`InputStream`,
    with the records, rejects, orphans and undeclared fields in input order.
    ``as_of_default`` as for :class:`InputStream`.

    Raises
    ------
    FileNotFoundError, ScoringError
        As :func:`scoring.contract.sources.resolve`, and for an unreadable
        table or a child table without ``opportunity_id``.
    InputError
        ``as_of_default`` is not a date ``YYYY-MM-DD``.
    """
    src = resolve(source, schema)
    as_of_default = _as_of_date(as_of_default)
    common = dict(schema=schema, history=history, as_of_default=as_of_default)
    with _gc_paused():
        if src.kind == "jsonl":
            part = read_lines(src.path, schema, history, as_of_default=as_of_default)
            return ReadResult(records=part.records, rejects=part.rejects, undeclared_fields=part.undeclared_fields,
                              n_read=part.n_read)
        (spec,) = table_partitions(src, 1 << 62, _no_workdir, memory=0, **common)
        opps, children = read_partition_tables(spec)
        v = validate_tables(opps, children, schema, history, spec.text, as_of_default)
        return ReadResult(records=v.records(), rejects=v.rejects, orphans=v.orphans,
                          undeclared_fields=v.undeclared_fields, n_read=v.n_read)


def _as_of_date(as_of: str | None) -> str | None:
    """A run's default ``as_of``, checked to be a date ``YYYY-MM-DD`` (None stays None)."""
    if as_of is None:
        return None
    try:
        if isinstance(as_of, str):
            return date_from_text(as_of)
    except Bad:
        pass
    raise InputError(f"as_of_default {show(as_of)} is not a date YYYY-MM-DD")


def _no_workdir() -> Path:  # pragma: no cover - one partition never buckets
    raise AssertionError("one partition needs no work directory")


def _text_bools(df: pd.DataFrame, fields: Mapping[str, Any]) -> pd.DataFrame:
    """``df`` with each bool field held in a pandas string column read as CSV text is
    (``true``/``false``, ``yes``/``no``, ``1``/``0``, any case; a null stays unknown).

    A Parquet bool column with nulls reads into pandas as ``object`` (True/False/None),
    and Dask's ``from_pandas`` (``dataframe.convert-string``, on by default) turns every
    ``object`` column into ``string[pyarrow]``: its partitions then hold ``"True"``.
    A string column cannot hold booleans, so its text is their spelling.  Other text
    stays as it is and is rejected as any non-boolean is.
    """
    out = None
    for name, f in fields.items():
        if f.type != "bool" or name not in df.columns:
            continue
        s = df[name]
        if s.dtype == object or not pd.api.types.is_string_dtype(s.dtype):
            continue
        text = converters(f)[1]

        def read(v: Any) -> Any:
            if v is None or v is pd.NA or (isinstance(v, float) and v != v):
                return None
            try:
                return text(str(v).strip())
            except Bad:
                return v

        if out is None:
            out = df.copy(deep=False)
        out[name] = pd.Series([read(v) for v in s.to_numpy(dtype=object)], index=s.index, dtype=object)
    return df if out is None else out


def _pandas_table(df: pd.DataFrame, label: str, fields: Mapping[str, Any]) -> Table:
    """A pandas table as the validator's :class:`Table`: Arrow columns where pandas can make
    them, Python values (None for nulls) for a column that mixes Python types.  Any pandas
    dtype works (numpy, nullable ``boolean``/``Int64``/``Float64``, ``string``, ``ArrowDtype``);
    bool fields in a string column are read as text (:func:`_text_bools`)."""
    df = _text_bools(df, fields).reset_index(drop=True)
    try:
        return arrow_table(plain_table(pa.Table.from_pandas(df, preserve_index=False)), label)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):  # UnicodeError: a lone surrogate
        pass
    columns: dict[str, Any] = {}
    for name in df.columns:
        s = df[name]
        try:
            columns[str(name)] = plain_table(pa.Table.from_pandas(s.to_frame(), preserve_index=False)).column(0)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):
            columns[str(name)] = s.to_numpy(dtype=object, na_value=None)
    return Table(columns, np.arange(len(df), dtype=np.int64), label)


def validate_dataframes(opps: pd.DataFrame, children: Mapping[str, pd.DataFrame] | None = None,
                        schema: Schema = CONTRACT, *, history: bool = False, fields: Mapping | None = None,
                        dates: str = "text", as_of_default: str | None = None) -> Chunk:
    """Validate deals given as pandas tables (the table form in memory) into a :class:`Chunk`.

    Typed columns are checked as Parquet columns are (a bool field must hold
    booleans, ...); a column that mixes Python types is checked cell by cell; a
    bool field in a pandas string column (as Dask's string conversion leaves it)
    is read as CSV text is (``True``/``false``/``yes``/``0``...).
    Child tables carry ``opportunity_id`` (and ``as_of`` for several
    snapshots per id).  ``as_of_default`` as for :class:`InputStream`: a deal
    without ``as_of`` is the snapshot of that date (for the duplicate check).

    Raises
    ------
    ScoringError
        A child table without ``opportunity_id``.
    """
    as_of_default = _as_of_date(as_of_default)
    parts: dict[str, Table] = {}
    for name, df in (children or {}).items():
        if CHILD_KEY not in df.columns:
            raise no_child_key(name)
        parts[name] = _pandas_table(df, name, schema.get(name, {}))
    o = _pandas_table(opps, OPPORTUNITY, schema[OPPORTUNITY])
    v = validate_tables(o, parts, schema, history, False, as_of_default)
    return Chunk(frames=v.frames(fields, dates), rejects=v.rejects, orphans=v.orphans, n_read=v.n_read,
                 undeclared_fields=v.undeclared_fields, positions=v.positions, partition=0)


def _take_opps(frames: Frames, keep: np.ndarray) -> Frames:
    """Frames restricted to the deals where ``keep`` is True (children renumbered)."""
    idx = np.flatnonzero(keep)
    opps = frames.opps.iloc[idx].reset_index(drop=True)
    newpos = np.full(len(keep), -1, np.int64)
    newpos[idx] = np.arange(len(idx))
    children = {}
    for name, df in frames.children.items():
        r = newpos[df[ROW].to_numpy(dtype=np.int64)] if len(df) else np.zeros(0, np.int64)
        sel = r >= 0
        c = df.loc[sel].reset_index(drop=True)
        c[ROW] = r[sel]
        children[name] = c
    return Frames(opps=opps, children=children, absent=frames.absent)


class DuplicateFilter:
    """Rejects records whose ``(id, as_of)`` an EARLIER chunk accepted (JSON Lines).

    Call it on every chunk in partition order; chunks with ``needs_dedupe``
    False pass through untouched.  The later duplicate becomes a reject
    ``{"id", "field": "id", "reason": "duplicate (id, as_of)", "line"}``, as
    the JSON Lines loop reports one within a partition.  It keeps the set of
    accepted keys (~100-150 bytes per record).
    """

    def __init__(self):
        self.seen: set = set()

    def check(self, keys: Iterable[tuple], lines: Sequence[int]) -> tuple[np.ndarray, list[dict]]:
        """Which of ``keys`` (``(id, as_of)`` in input order, at JSON Lines ``lines``) are new.

        Returns the mask of the keys to keep and one reject per duplicate; the new
        keys are remembered.  (A batch whose workers load the partitions calls this
        in the parent with the keys of each scored chunk.)
        """
        seen = self.seen
        keep = []
        dups = []
        for k, line in zip(keys, lines):
            if k in seen:
                keep.append(False)
                dups.append({"id": k[0], "field": ID, "reason": DUPLICATE, "line": int(line)})
            else:
                seen.add(k)
                keep.append(True)
        return np.asarray(keep, dtype=bool), dups

    def __call__(self, chunk: Chunk) -> Chunk:
        if not chunk.needs_dedupe or len(chunk.frames.opps) == 0:
            return chunk
        opps = chunk.frames.opps
        ids = opps[ID].to_numpy(dtype=object, na_value=None).tolist()
        if AS_OF in opps.columns:
            a = opps[AS_OF]
            if pd.api.types.is_datetime64_any_dtype(a.dtype):
                a = a.dt.strftime("%Y-%m-%d")
            asofs = a.to_numpy(dtype=object, na_value=None).tolist()
        else:
            asofs = [None] * len(ids)
        keep, dups = self.check(zip(ids, asofs), chunk.positions)
        if not dups:
            return chunk
        rejects = list(chunk.rejects) + dups
        rejects.sort(key=lambda r: r["line"])
        return Chunk(frames=_take_opps(chunk.frames, keep), rejects=rejects, orphans=chunk.orphans,
                     n_read=chunk.n_read, undeclared_fields=chunk.undeclared_fields,
                     positions=chunk.positions[keep], partition=chunk.partition, needs_dedupe=False)


class InputStream:
    """Stream a contract input (JSON Lines or table form) as validated chunks.

    Parameters
    ----------
    source : path
        A ``.jsonl`` / ``.ndjson`` file (optionally ``.gz``), a folder of
        tables, or a single opportunities ``.csv`` / ``.parquet`` file (no
        child tables); see :mod:`scoring.contract.sources`.
    schema : Mapping
        entity -> field -> Field (``pack.schema``).
    history : bool
        Closed deals: ``outcome`` is required.
    chunk_size : int
        Target deals per partition.
    workdir : path, optional
        Where bucket / part files go (a temp dir by default; what this object
        creates there is removed by :meth:`close`).
    fields : Mapping, optional
        entity -> names of the fields to keep in the frames, e.g.
        ``pack.fields`` (an entity not listed keeps no field; ``id`` and
        ``as_of`` are always kept).  Default: every declared field.
        Validation always covers the whole schema.
    dates : str
        ``"text"`` ('YYYY-MM-DD' strings, default) or ``"datetime64"``.
    as_of_default : str, optional
        The run's date ('YYYY-MM-DD'): a record without ``as_of`` takes it, so
        it and a record of the same id with that ``as_of`` are one snapshot
        (the second is a duplicate).  Default: records without ``as_of`` keep none.
    memory : int
        Table form: the bytes its tables may take in memory to be cut there,
        each read once (see :mod:`scoring.contract.sources`); a larger input,
        or any with 0, is hash-bucketed in one streaming pass.
    """

    def __init__(self, source: str | Path, schema: Schema = CONTRACT, *, history: bool = False,
                 chunk_size: int = 50_000, workdir: str | Path | None = None, fields: Mapping | None = None,
                 dates: str = "text", as_of_default: str | None = None, memory: int = MEMORY_BYTES):
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if dates not in ("text", "datetime64"):
            raise ValueError("dates must be 'text' or 'datetime64'")
        compiled(schema)  # fail early on a bad schema
        self.source = Path(source)
        self.schema = schema
        self.history = bool(history)
        self.chunk_size = int(chunk_size)
        self.fields = None if fields is None else {k: tuple(v) for k, v in fields.items()}
        self.dates = dates
        self.as_of_default = _as_of_date(as_of_default)
        self.memory = int(memory)
        self._workdir_arg = workdir
        self._tmp: Path | None = None
        self._specs: list[PartitionSpec] | None = None
        self._src = resolve(self.source, schema)
        self.kind = self._src.kind
        self.fmt = self._src.fmt

    def _workdir(self) -> Path:
        if self._tmp is None:
            base = self._workdir_arg
            if base is not None:
                Path(base).mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix=".ingest-", dir=base))
        return self._tmp

    def partitions(self) -> list[PartitionSpec]:
        """The partitions, in output order (computed once; may run the bucketing pass)."""
        if self._specs is None:
            common = dict(schema=self.schema, history=self.history, fields=self.fields, dates=self.dates,
                          as_of_default=self.as_of_default)
            if self.kind == "jsonl":
                self._specs = jsonl_partitions(self._src, self.chunk_size, self._workdir, **common)
            else:
                self._specs = table_partitions(self._src, self.chunk_size, self._workdir, memory=self.memory, **common)
        return list(self._specs)

    def load(self, spec: PartitionSpec) -> Chunk:
        """Load one partition (see :func:`load_partition`)."""
        return load_partition(spec)

    def __iter__(self) -> Iterator[Chunk]:
        """Every partition in order, duplicates across partitions resolved."""
        dedupe = DuplicateFilter()
        for spec in self.partitions():
            yield dedupe(load_partition(spec))

    def close(self) -> None:
        """Remove the temp files this stream made."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._specs = None

    def __enter__(self) -> InputStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass
