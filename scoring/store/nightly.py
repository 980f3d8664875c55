"""The store's part of a nightly run (``scoring score``; :func:`scoring.batch.run.run_batch` calls it).

1. Before scoring (:class:`NightlyStore`): the store is opened and checked (a fault is a
   :class:`~scoring.errors.StoreError`, exit code 6, before any work), and what tonight needs
   of the past is read into arrays (:class:`HistoryColumns`): the previous stored run (tonight's
   date excluded), the last run on or before ``since_days`` ago, and each deal's probabilities
   over the trend window.
2. Per chunk, in the worker processes that score it (they inherit those arrays when the run
   forks them): :meth:`HistoryColumns.apply` takes the columns the chunk scorer emitted for the
   store (:data:`STORE_COLUMNS`) out of the output, turns them into the store's rows, and adds
   ``trend``, ``changes`` (since the deal's previous stored run) and ``changes_since`` (since
   the stored run of ``since_days`` ago); see :mod:`scoring.store.changes`.  Without
   ``--previous``, the previous stored run is also what ``probability_change``, T2 and T3 compare
   with (:attr:`NightlyStore.previous`, the same rules as a ``--previous`` file).
3. In the run's process, per chunk (:meth:`NightlyStore.take`): the rows are spilled to a file
   of the run's spill folder, and counted for the monitoring summary.
4. Once the outputs are complete and before they replace last night's
   (:meth:`NightlyStore.commit`): the run is appended in one transaction.  If that fails, no
   output is replaced.
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.batch.previous import PreviousRun, warm
from scoring.score.ragged import Ragged
from scoring.store.changes import (TREND_WINDOW_DAYS, applies_at, change_codes, decompose, derived_inputs, list_matrix,
                                   status_codes, trend)
from scoring.model.inputs import applies_table
from scoring.store.monitor import status_counts, summary as monitor_summary
from scoring.store.store import DEAL_COLUMNS, DEAL_TYPES, RunRecord, Store

if TYPE_CHECKING:
    from scoring.evidence.pack import RulePack
    from scoring.model.logistic import Model

#: what the chunk scorer emits per deal for the store (taken out of the output)
STORE_COLUMNS = ("_store_status", "_store_logit", "_store_measures", "_store_contributions", "_store_derived")
#: the columns the store adds to the output
HISTORY_COLUMNS = {"trend": pa.string(), "changes": pa.list_(pa.string()), "changes_since": pa.list_(pa.string())}
#: default of ``--since-days``: what changed since the stored run of this many days ago
DEFAULT_SINCE_DAYS = 7
#: the schema of the store's rows as the workers make them (``run_id`` first)
ROW_SCHEMA = pa.schema([("run_id", pa.string())] + [(c, DEAL_TYPES[c]) for c in DEAL_COLUMNS[1:]])

_CONTEXT_COLUMNS = ("deal_id", "as_of", "stage", "win_probability", "logit", "red_flags", "expected_close",
                    "close_date_pushes", "status", "measures", "derived")


class _Reference:
    """An earlier run's rows as arrays on tonight's rules and measures, looked up by deal id.

    ``status`` is ``(n, R)`` int8 on tonight's rule list, ``-1`` for a rule the run did not have
    (tonight's status stands in for it: its arrival is part of the pack change); ``measures``
    ``(n, M)`` on tonight's measures (NaN for one the run did not have), None when there are none.
    """

    def __init__(self, run: Mapping[str, Any], rows: pa.Table, rule_ids: Sequence[str],
                 measure_ids: Sequence[str], derived_ids: Sequence[str] = ()):
        self.run = run
        self.rules = list(run["rules"])
        ids = rows.column("deal_id").to_numpy(zero_copy_only=False).astype(object)
        keep = ~pd.Index(ids, dtype=object).duplicated(keep="last")  # a deal twice in a run: its last row
        if not keep.all():
            rows = rows.filter(pa.array(keep))
            ids = ids[keep]
        self.index = pd.Index(ids, dtype=object)
        warm(self.index)
        then = status_codes(rows.column("status"), len(self.rules))
        self.status = then if self.rules == list(rule_ids) else _gather(then, self.rules, rule_ids, -1)
        self.measures = _on_names(rows, run, "measures", measure_ids)
        # the values of tonight's model's derived-fact inputs the run stored (NaN: not stored then)
        self.derived = _on_names(rows, run, "derived", derived_ids)
        self.stage = rows.column("stage").to_numpy(zero_copy_only=False).astype(object)
        self.logit = rows.column("logit").to_numpy(zero_copy_only=False).astype(float)
        self.rows = rows  # what :meth:`previous` needs

    def same_model(self, model_version: str | None, pack_version: str) -> bool:
        return self.run["model_version"] == model_version and self.run["rule_pack_version"] == pack_version

    def previous(self, label: str) -> PreviousRun:
        """This run in the shape of a ``--previous`` file (so T2, T3 and the probability change are
        computed by the one definition in :mod:`scoring.batch.previous`)."""
        r = self.rows
        flags = _drop_empty(Ragged.from_arrow(pc.split_pattern(pc.fill_null(r.column("red_flags"), ""), ",")))
        close = pc.fill_null(pc.cast(r.column("expected_close"), pa.string()), "")
        return PreviousRun.of(label, self.index, r.column("win_probability").to_numpy(zero_copy_only=False),
                              flags, close.to_numpy(zero_copy_only=False).astype(str),
                              pc.cast(r.column("close_date_pushes"), pa.float64()).to_numpy(zero_copy_only=False))


def _on_names(rows: pa.Table, run: Mapping[str, Any], column: str, names: Sequence[str]) -> np.ndarray | None:
    """A stored list column (``measures``, ``derived``; its names in the run's entry of that name) as
    ``(n, len(names))`` on ``names``, NaN for a name the run did not store; None when ``names`` is empty."""
    if not names:
        return None
    stored = list(run.get(column) or [])
    m = list_matrix(rows.column(column), len(stored)) if stored and column in rows.column_names else None
    if m is None:
        return np.full((rows.num_rows, len(names)), np.nan)
    return m if stored == list(names) else _gather(m, stored, names, np.nan)


def _gather(m: np.ndarray, have: Sequence[str], want: Sequence[str], missing: Any) -> np.ndarray:
    """The columns ``want`` of ``m`` (whose columns are ``have``), ``missing`` for a name not there."""
    at = {k: i for i, k in enumerate(have)}
    idx = np.array([at.get(k, -1) for k in want], dtype=np.int64)
    out = m[:, np.maximum(idx, 0)] if len(idx) else np.zeros((len(m), 0), dtype=m.dtype)
    out[:, idx < 0] = missing
    return out


def _drop_empty(r: Ragged) -> Ragged:
    """A ragged list without its empty strings (``"".split(",")`` gives one)."""
    keep = r.values != ""
    if keep.all():
        return r
    rows = r.rows()[keep]
    offsets = np.zeros(len(r) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(r)), out=offsets[1:])
    return Ragged(offsets, r.values[keep])


class HistoryColumns:
    """Tonight's history columns and store rows, per chunk (see the module docstring, step 2).

    Built in the run's process before scoring; the worker processes inherit it (its arrays are
    shared with them, not copied, when the run forks them).
    """

    def __init__(self, *, pack: RulePack, model: Model | None, record: RunRecord, rule_ids: Sequence[str],
                 measure_ids: Sequence[str], derived_ids: Sequence[str] = ()):
        self.pack = pack
        self.model = model
        self.record = record
        self.rule_ids = list(rule_ids)
        self.measure_ids = list(measure_ids)
        self.derived_ids = list(derived_ids)
        self.prev: _Reference | None = None
        self.since: _Reference | None = None
        self.window_index = pd.Index([], dtype=object)
        self.window_n = np.zeros(0)
        self.window_median = np.zeros(0)
        self._applies = applies_table(pack)

    def apply(self, table: pa.Table, prev_positions: np.ndarray | None = None) -> tuple[pa.Table, pa.Table]:
        """A chunk's output with the history columns (the store's columns taken out), and its store rows.
        ``prev_positions``: the rows of the table's deals in the previous stored run, when known."""
        status = status_codes(table.column("_store_status"), len(self.rule_ids))
        contrib = list_matrix(table.column("_store_contributions"), len(self.rule_ids) + 1)
        measures = list_matrix(table.column("_store_measures"), len(self.measure_ids)) if self.measure_ids else None
        derived = list_matrix(table.column("_store_derived"), len(self.derived_ids)) if self.derived_ids else None
        ids = table.column("id").to_numpy(zero_copy_only=False).astype(object)
        stages = table.column("stage").to_numpy(zero_copy_only=False).astype(object)
        p_now = table.column("win_probability").to_numpy(zero_copy_only=False).astype(float)
        rows = self.rows(table)

        if len(self.window_index):
            w = self.window_index.get_indexer(ids)
            median = np.where(w >= 0, self.window_median[np.maximum(w, 0)], np.nan)
            count = np.where(w >= 0, self.window_n[np.maximum(w, 0)], 0)
        else:
            median, count = np.full(len(ids), np.nan), np.zeros(len(ids))
        out = table.drop_columns(list(STORE_COLUMNS))
        out = out.append_column("trend", pa.array(trend(p_now, median, count), pa.string()))
        prev_pos = prev_positions if prev_positions is not None else \
            self.prev.index.get_indexer(ids) if self.prev is not None else None
        for name, ref in (("changes", self.prev), ("changes_since", self.since)):
            pos = prev_pos if ref is self.prev else (ref.index.get_indexer(ids) if ref is not None else None)
            out = out.append_column(name, self._changes(ref, pos, stages, status, contrib, measures, derived))
        return out, rows

    def _changes(self, ref: _Reference | None, pos: np.ndarray | None, stages: np.ndarray, status: np.ndarray,
                 contrib: np.ndarray | None, measures: np.ndarray | None,
                 derived: np.ndarray | None = None) -> pa.Array:
        n = len(stages)
        if ref is None or n == 0:
            return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string()))
        has = pos >= 0
        at = np.where(has, pos, 0)
        before = ref.status[at] if len(ref.index) else np.full(status.shape, -1, np.int8)
        before = np.where((before < 0) | ~has[:, None], status, before).astype(np.int8)
        stage_before = np.where(has, ref.stage[at], stages) if len(ref.index) else stages.copy()
        moved = (before != status).any(axis=1) | (stage_before != stages)
        deltas = np.zeros((n, len(self.rule_ids) + 1))
        model_part = np.zeros(n)
        need = np.zeros(n, dtype=bool)  # the deals whose change in log-odds is split
        if self.model is None or contrib is None:
            deltas[:] = np.nan
        else:
            logit_before = np.where(has, ref.logit[at], np.nan) if len(ref.index) else np.full(n, np.nan)
            has &= ~np.isnan(logit_before)  # an earlier run without a model: nothing to compare
            m_before = None
            if measures is not None and ref.measures is not None:
                m_before = np.where(has[:, None], ref.measures[at], np.nan)
            same = ref.same_model(self.record.model_version, self.record.rule_pack_version)
            need = has.copy()
            if same:  # the same model on the same evidence gives the same logit: only what moved is split
                graded = moved.copy()
                if m_before is not None:
                    graded |= ~((m_before == measures) | (np.isnan(m_before) & np.isnan(measures))).all(axis=1)
                need &= graded
            d_before = None
            if self.derived_ids:
                d_before = np.where(has[:, None], ref.derived[at], np.nan) if len(ref.index) \
                    else np.full((n, len(self.derived_ids)), np.nan)
                if same:
                    graded = ~((d_before == derived) | (np.isnan(d_before) & np.isnan(derived))).all(axis=1)
                    need |= has & graded
            if need.any():
                model_part[need], deltas[need] = decompose(
                    self.model, contrib[need], logit_before[need], before[need], stage_before[need],
                    None if m_before is None else m_before[need], np.full(int(need.sum()), same),
                    None if d_before is None else {k: d_before[need, j] for j, k in enumerate(self.derived_ids)})
        # only these deals can list anything (a status or stage that moved, or a change that was split)
        rows = np.flatnonzero(has & (moved | need))
        applies = applies_at(self.pack, stages[rows], stage_before[rows], self._applies)
        listed = change_codes(deltas[rows], model_part[rows], status[rows], before[rows], stages[rows],
                              stage_before[rows], self.rule_ids, has[rows], applies)
        counts = np.zeros(n, dtype=np.int32)
        counts[rows] = np.diff(np.asarray(listed.offsets))
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        return pa.ListArray.from_arrays(pa.array(offsets), listed.flatten() if len(rows) else pa.array([], pa.string()))

    def rows(self, table: pa.Table) -> pa.Table:
        """A chunk's rows for the store (:data:`ROW_SCHEMA`)."""
        n = table.num_rows
        cols = {
            "run_id": pa.array([self.record.run_id] * n, pa.string()),
            "deal_id": table.column("id"),
            "as_of": pc.cast(table.column("as_of"), pa.date32()),
            "stage": table.column("stage"),
            "win_probability": table.column("win_probability"),
            "logit": table.column("_store_logit"),
            "rule_score": pc.cast(table.column("rule_score"), pa.float64()),
            "data_completeness": pc.cast(table.column("data_completeness"), pa.float64()),
            "red_flags": pc.binary_join(table.column("red_flags").combine_chunks(), ","),
            "expected_close": pc.cast(table.column("expected_close"), pa.string()),
            "close_date_pushes": pc.cast(table.column("close_date_pushes"), pa.int64()),
            "status": table.column("_store_status"),
            "measures": table.column("_store_measures"),
            "contributions": pc.cast(table.column("_store_contributions"), pa.list_(pa.float32())),
            "derived": table.column("_store_derived"),
        }
        return pa.table({c: cols[c] for c in DEAL_COLUMNS}, schema=ROW_SCHEMA)


class NightlyStore:
    """The store's part of one run (see the module docstring).

    Parameters
    ----------
    store : Store
    pack : RulePack
    model : Model or None
    as_of : str
        The run's date (``--as-of``, default today): earlier runs are those of earlier dates.
    since_days : int
        ``changes_since`` compares with the last stored run at least this many days old.
    workdir : Path
        Where the run's rows wait for the append (the run's spill folder).

    Raises
    ------
    StoreError
        The store cannot be reached or opened, or is of another schema version.
    """

    def __init__(self, store: Store, *, pack: RulePack, model: Model | None, as_of: str, scored_at: str,
                 since_days: int = DEFAULT_SINCE_DAYS, workdir: Path | None = None):
        self.store = store
        self.pack = pack
        self.model = model
        self.as_of = as_of
        self.scored_at = scored_at
        self.since_days = since_days
        self.rule_ids = [r.id for r in pack.rules]
        self.measure_ids = [m.name for m in getattr(getattr(pack, "compiled", None), "measures", ()) or ()]
        self.derived_ids = derived_inputs(model) if model is not None else []
        self.record = RunRecord(as_of=as_of, scored_at=scored_at,
                                model_version=model.model_version if model is not None else None,
                                rule_pack_version=pack.version_tag, rules=self.rule_ids,
                                rule_kinds=[r.kind for r in pack.rules], measures=self.measure_ids,
                                intercept=model.intercept if model is not None else None, derived=self.derived_ids)
        self.columns = HistoryColumns(pack=pack, model=model, record=self.record, rule_ids=self.rule_ids,
                                      measure_ids=self.measure_ids, derived_ids=self.derived_ids)
        self.workdir = workdir
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._spill: Path | None = None
        self.n_rows = 0
        self._p: list[np.ndarray] = []  # tonight's probabilities, for the monitoring summary
        self._counts = np.zeros((len(self.rule_ids), 3), dtype=np.int64)
        self._trends: dict[str, int] = {}
        self.previous: PreviousRun | None = None
        with store.reading():
            if store.check():
                self._load_context()

    @property
    def prev(self) -> _Reference | None:
        """The previous stored run (None: there is none)."""
        return self.columns.prev

    def _load_context(self) -> None:
        runs = self.store.runs()
        day = _dt.date.fromisoformat(self.as_of)
        before = runs[runs["as_of"] < self.as_of]
        if not len(before):
            return
        cols = [c for c in _CONTEXT_COLUMNS if (c != "measures" or self.measure_ids) and (c != "derived" or self.derived_ids)]
        hc = self.columns

        def reference(run: Mapping[str, Any]) -> _Reference:
            return _Reference(run, self.store.run_table(run["run_id"], cols), self.rule_ids, self.measure_ids,
                              self.derived_ids)

        last = before.iloc[-1].to_dict()
        hc.prev = reference(last)
        cut = (day - _dt.timedelta(days=self.since_days)).isoformat()
        old = before[before["as_of"] <= cut]
        if len(old):
            run = old.iloc[-1].to_dict()
            hc.since = hc.prev if run["run_id"] == last["run_id"] else reference(run)
        start = (day - _dt.timedelta(days=TREND_WINDOW_DAYS)).isoformat()
        window = self.store.window_stats(before[before["as_of"] >= start]["run_id"].tolist())
        hc.window_index = pd.Index(window["deal_id"].to_numpy(dtype=object), dtype=object)
        warm(hc.window_index)
        hc.window_n = pd.to_numeric(window["n"]).to_numpy(dtype=float)
        hc.window_median = pd.to_numeric(window["median"]).to_numpy(dtype=float)
        self.previous = hc.prev.previous(f"{self.store.backend.describe()} (run {last['run_id']})")

    # ----------------------------------------------------------------- per chunk
    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The chunk scorer's schema without the store's columns, with the history columns (the output's
        schema, for a run that scored nothing)."""
        for name in STORE_COLUMNS:
            if name in schema.names:
                schema = schema.remove(schema.get_field_index(name))
        for name, typ in HISTORY_COLUMNS.items():
            schema = schema.append(pa.field(name, typ))
        return schema

    def take(self, out: pa.Table, rows: pa.Table) -> None:
        """A chunk's output (with its history columns) and store rows (:meth:`HistoryColumns.apply`):
        spill the rows, count what the monitoring summary needs."""
        if not rows.num_rows:
            return
        self._p.append(out.column("win_probability").to_numpy(zero_copy_only=False).astype(float))
        self._counts += status_counts(status_codes(rows.column("status"), len(self.rule_ids)))
        for item in pc.value_counts(out.column("trend")).to_pylist():
            self._trends[item["values"]] = self._trends.get(item["values"], 0) + int(item["counts"])
        try:
            if self._writer is None:
                # Arrow IPC, uncompressed: the cheapest to write, and read back memory-mapped by the append
                self._spill = Path(self.workdir) / f"store-{self.record.run_id}.arrow"
                self._writer = pa.ipc.new_file(self._spill, ROW_SCHEMA)
            self._writer.write_table(rows)
        except OSError as exc:  # Arrow's errors name no file: name the spill file (disk full, ...)
            raise OSError(exc.errno or errno.EIO, exc.strerror or str(exc), str(self._spill)) from None
        self.n_rows += rows.num_rows

    # ----------------------------------------------------------------- the end
    def commit(self, summary: Mapping[str, Any], source: str | os.PathLike) -> str:
        """Append the run (its rows and ``summary``'s counts) in one transaction; returns the run id."""
        if self._writer is None:
            rows: pa.Table | Path = pa.table({c: pa.array([], DEAL_TYPES.get(c, pa.string())) for c in DEAL_COLUMNS})
        else:
            self._writer.close()
            self._writer = None
            rows = pa.ipc.open_file(pa.memory_map(str(self._spill))).read_all()
        summary["monitoring"] = self.monitoring()  # in the run's summary (and its JSON) too
        rec = self.record
        rec.n_read, rec.n_scored, rec.n_rejected = (int(summary.get(k) or 0) for k in ("read", "scored", "rejected"))
        rec.input_fingerprint = input_fingerprint(source)
        rec.summary = {k: summary.get(k) for k in ("read", "scored", "rejected", "warnings", "input", "output",
                                                    "monitoring")}
        return self.store.append(rec, rows)

    def monitoring(self) -> dict[str, Any]:
        """Drift and expected performance of tonight's run (:mod:`scoring.store.monitor`)."""
        from scoring.model.artifact import model_held_out, model_training_profile
        from scoring.store.monitor import profile_shares

        p = np.concatenate(self._p) if self._p else np.zeros(0)
        held = model_held_out(self.model) if self.model is not None else None
        ref = np.asarray(held["p_model"], dtype=float) if held and held.get("p_model") else None
        training = profile_shares(model_training_profile(self.model), self.rule_ids) if self.model is not None \
            else None
        before = None
        if self.prev is not None and self.prev.rules == self.rule_ids and len(self.prev.index):
            before = status_counts(self.prev.status)
        return monitor_summary(p, ref, self._counts, before, self.rule_ids, self._trends, training)

    def abort(self) -> None:
        """Drop tonight's rows (a failed run stores nothing); the run's first error is the one reported."""
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass
            self._writer = None
        if self._spill is not None:
            self._spill.unlink(missing_ok=True)


def input_fingerprint(source: str | os.PathLike) -> str:
    """sha256 of the input's bytes (a folder: its files' names and bytes, in name order)."""
    p = Path(source)
    h = hashlib.sha256()
    files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(f.relative_to(p).as_posix().encode() if p.is_dir() else b"")
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return "sha256:" + h.hexdigest()
