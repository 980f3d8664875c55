"""The store's part of a nightly run (``scoring score``; :func:`scoring.batch.run.run_batch` calls it).

1. Before scoring (:class:`NightlyStore`): the store is opened and checked (a fault is a
   :class:`~scoring.errors.StoreError`, exit code 6, before any work), and what tonight needs
   of the past is read: the previous stored run (tonight's date excluded), the last run on or
   before ``since_days`` ago, and each deal's probabilities over the trend window.
2. Per chunk (:meth:`NightlyStore.apply`): the columns the chunk scorer emitted for the store
   (:data:`STORE_COLUMNS`) are taken out of the output and spilled to a Parquet file, and the
   output gains ``trend``, ``changes`` (since the deal's previous stored run) and
   ``changes_since`` (since the stored run of ``since_days`` ago); see :mod:`scoring.store.changes`.
   Without ``--previous``, the previous stored run is also what ``probability_change``, T2 and T3
   compare with (:attr:`NightlyStore.previous`, the same rules as a ``--previous`` file).
3. Once the outputs are complete and before they replace last night's
   (:meth:`NightlyStore.commit`): the run is appended in one transaction.  If that fails, no
   output is replaced.
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from scoring.batch.previous import PreviousRun
from scoring.store.changes import (TREND_WINDOW_DAYS, applies_at, change_codes, decompose, list_matrix, map_status,
                                   status_codes, trend)
from scoring.store.monitor import status_counts, summary as monitor_summary
from scoring.store.store import DEAL_COLUMNS, DEAL_TYPES, RunRecord, Store

if TYPE_CHECKING:
    from scoring.evidence.pack import RulePack
    from scoring.model.logistic import Model

#: what the chunk scorer emits per deal for the store (taken out of the output)
STORE_COLUMNS = ("_store_status", "_store_logit", "_store_measures", "_store_contributions")
#: the columns the store adds to the output
HISTORY_COLUMNS = {"trend": pa.string(), "changes": pa.list_(pa.string()), "changes_since": pa.list_(pa.string())}
#: default of ``--since-days``: what changed since the stored run of this many days ago
DEFAULT_SINCE_DAYS = 7

_CONTEXT_COLUMNS = ("deal_id", "as_of", "stage", "win_probability", "logit", "red_flags", "expected_close",
                    "close_date_pushes", "status", "measures")


class StoredPrevious(PreviousRun):
    """The previous stored run in the shape of a ``--previous`` file (so T2, T3 and the probability
    change are computed by the one definition in :mod:`scoring.batch.previous`)."""

    def __init__(self, frame: pd.DataFrame, label: str):  # noqa: D107  (no file to read and check)
        self.path = Path(label)
        self.frame = frame


class _Reference:
    """An earlier run's rows, lined up for tonight."""

    def __init__(self, run: Mapping[str, Any], rows: pd.DataFrame):
        self.run = run
        self.rules = list(run["rules"])
        self.measures = list(run["measures"])
        self.frame = rows.drop_duplicates("deal_id", keep="last").set_index("deal_id")

    def same_model(self, model_version: str | None, pack_version: str) -> bool:
        return self.run["model_version"] == model_version and self.run["rule_pack_version"] == pack_version


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
        self.record = RunRecord(as_of=as_of, scored_at=scored_at,
                                model_version=model.model_version if model is not None else None,
                                rule_pack_version=pack.version_tag, rules=self.rule_ids,
                                rule_kinds=[r.kind for r in pack.rules], measures=self.measure_ids,
                                intercept=model.intercept if model is not None else None)
        self.workdir = workdir
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._spill: Path | None = None
        self.n_rows = 0
        self._p: list[np.ndarray] = []  # tonight's probabilities, for the monitoring summary
        self._counts = np.zeros((len(self.rule_ids), 3), dtype=np.int64)
        self._trends: dict[str, int] = {}
        self.previous: StoredPrevious | None = None
        self.prev = self.since = None
        self.window = pd.DataFrame({"n": [], "median": []})
        with store.reading():
            if store.check():
                self._load_context()

    def _load_context(self) -> None:
        runs = self.store.runs()
        day = _dt.date.fromisoformat(self.as_of)
        before = runs[runs["as_of"] < self.as_of]
        if not len(before):
            return
        cols = [c for c in _CONTEXT_COLUMNS if c != "measures" or self.measure_ids]
        last = before.iloc[-1].to_dict()
        self.prev = _Reference(last, self.store.run_deals(last["run_id"], cols))
        cut = (day - _dt.timedelta(days=self.since_days)).isoformat()
        old = before[before["as_of"] <= cut]
        if len(old):
            run = old.iloc[-1].to_dict()
            self.since = self.prev if run["run_id"] == last["run_id"] else \
                _Reference(run, self.store.run_deals(run["run_id"], cols))
        start = (day - _dt.timedelta(days=TREND_WINDOW_DAYS)).isoformat()
        in_window = before[before["as_of"] >= start]["run_id"].tolist()
        self.window = self.store.window_stats(in_window).set_index("deal_id")
        f = self.prev.frame
        prev = pd.DataFrame({"as_of": f["as_of"], "win_probability": f["win_probability"],
                             "red_flags": f["red_flags"].map(lambda s: s.split(",") if isinstance(s, str) and s else []),
                             "expected_close": f["expected_close"], "close_date_pushes": f["close_date_pushes"],
                             "rule_pack_version": last["rule_pack_version"], "scored_at": last["scored_at"]},
                            index=f.index)
        prev.index.name = "id"
        self.previous = StoredPrevious(prev, f"{self.store.backend.describe()} (run {last['run_id']})")

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

    def apply(self, table: pa.Table) -> pa.Table:
        """Take the store's columns out of a chunk's table, spill them, add the history columns."""
        n = table.num_rows
        status = status_codes(table.column("_store_status"), len(self.rule_ids))
        contrib = list_matrix(table.column("_store_contributions"), len(self.rule_ids) + 1)
        measures = list_matrix(table.column("_store_measures"), len(self.measure_ids)) if self.measure_ids else None
        ids = table.column("id").to_pandas().astype(object).to_numpy()
        stages = table.column("stage").to_pandas().astype(object).to_numpy()
        p_now = table.column("win_probability").to_numpy(zero_copy_only=False).astype(float)
        self._spill_rows(table)
        self._p.append(p_now)
        self._counts += status_counts(status) if n else 0

        w = self.window.reindex(ids) if len(self.window) else pd.DataFrame(index=ids, columns=["n", "median"])
        labels = trend(p_now, pd.to_numeric(w["median"]).to_numpy(dtype=float),
                       pd.to_numeric(w["n"]).fillna(0).to_numpy())
        out = table.drop_columns(list(STORE_COLUMNS))
        for k, v in zip(*np.unique(labels.astype(str), return_counts=True)):
            self._trends[str(k)] = self._trends.get(str(k), 0) + int(v)
        out = out.append_column("trend", pa.array(labels, pa.string()))
        for name, ref in (("changes", self.prev), ("changes_since", self.since)):
            out = out.append_column(name, self._changes(ref, ids, stages, status, contrib, measures))
        return out

    def _changes(self, ref: _Reference | None, ids, stages, status, contrib, measures) -> pa.Array:
        n = len(ids)
        if ref is None or n == 0:
            return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string()))
        rows = ref.frame.reindex(ids)
        has = ids_in(ref.frame.index, ids)
        then = status_codes(pa.array(rows["status"].where(has, "0" * len(ref.rules)).tolist(), pa.string()),
                            len(ref.rules))
        before = map_status(then, ref.rules, self.rule_ids, status)
        stage_before = rows["stage"].where(has, stages).astype(object).to_numpy()
        if self.model is None or contrib is None:
            deltas = np.full((n, len(self.rule_ids) + 1), np.nan)
            model_part = np.zeros(n)
        else:
            m_before = None
            if self.measure_ids and "measures" in rows:
                m_before = np.array([m if isinstance(m, (list, np.ndarray)) and len(m) == len(self.measure_ids)
                                     else [np.nan] * len(self.measure_ids) for m in rows["measures"]], dtype=float)
            logit_before = pd.to_numeric(rows["logit"]).to_numpy(dtype=float)
            same = np.full(n, ref.same_model(self.record.model_version, self.record.rule_pack_version))
            model_part, deltas = decompose(self.model, contrib, logit_before, before, stage_before, m_before, same)
            has = has & ~np.isnan(logit_before)  # an earlier run without a model: nothing to compare
        applies = applies_at(self.pack, stages, stage_before)
        return change_codes(deltas, model_part, status, before, stages, stage_before, self.rule_ids, has, applies)

    def _spill_rows(self, table: pa.Table) -> None:
        """Tonight's rows for the store, to a Parquet file in the run's spill folder."""
        n = table.num_rows
        flags = table.column("red_flags").combine_chunks()
        import pyarrow.compute as pc

        cols = {
            "run_id": pa.array([self.record.run_id] * n, pa.string()),
            "deal_id": table.column("id"),
            "as_of": pc.cast(table.column("as_of"), pa.date32()),
            "stage": table.column("stage"),
            "win_probability": table.column("win_probability"),
            "logit": table.column("_store_logit"),
            "rule_score": pc.cast(table.column("rule_score"), pa.float64()),
            "data_completeness": pc.cast(table.column("data_completeness"), pa.float64()),
            "red_flags": pc.binary_join(flags, ","),
            "expected_close": pc.cast(table.column("expected_close"), pa.string()),
            "close_date_pushes": pc.cast(table.column("close_date_pushes"), pa.int64()),
            "status": table.column("_store_status"),
            "measures": table.column("_store_measures"),
            "contributions": pc.cast(table.column("_store_contributions"), pa.list_(pa.float32())),
        }
        rows = pa.table({c: cols[c] for c in DEAL_COLUMNS},
                        schema=pa.schema([("run_id", pa.string())] + [(c, DEAL_TYPES[c]) for c in DEAL_COLUMNS[1:]]))
        try:
            if self._writer is None:
                # Arrow IPC, uncompressed: the cheapest to write, and read back memory-mapped by the append
                self._spill = Path(self.workdir) / f"store-{self.record.run_id}.arrow"
                self._writer = pa.ipc.new_file(self._spill, rows.schema)
            self._writer.write_table(rows)
        except OSError as exc:  # Arrow's errors name no file: name the spill file (disk full, ...)
            raise OSError(exc.errno or errno.EIO, exc.strerror or str(exc), str(self._spill)) from None
        self.n_rows += n

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
        if self.prev is not None and self.prev.rules == self.rule_ids and len(self.prev.frame):
            st = status_codes(pa.array(self.prev.frame["status"].tolist(), pa.string()), len(self.rule_ids))
            before = status_counts(st)
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


def ids_in(index: pd.Index, ids: np.ndarray) -> np.ndarray:
    """Per id of ``ids``: is it in ``index``?"""
    return pd.Index(ids, dtype=object).isin(index.astype(object))  # object: see PreviousRun.apply


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
