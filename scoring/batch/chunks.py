"""Scoring one chunk of validated column frames into output rows (an Arrow table).

Per chunk: the column-wise rule evaluation, the rule score, the model's
probability and reasons (asked of the model, :meth:`scoring.model.logistic.Model.score_statuses`),
and the analysis-meeting flags with STALLED (:mod:`scoring.score.flags`).  The
same code serves the nightly run (in worker processes) and
:meth:`scoring.api.Scorer.score_frame`.
"""
from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from scoring.contract.frames import Frames
from scoring.contract.values import as_of_date
from scoring.contract.schema import STAGE_INDEX
from scoring.evidence.columnar import ColumnarEvaluator
from scoring.evidence.pack import RulePack
from scoring.score.flags import STALLED, Thresholds, append_flag, remove_flag, stalled
from scoring.score.ragged import Ragged
from scoring.score.rulescore import VectorScorer

if TYPE_CHECKING:
    from scoring.model.logistic import Model

#: list<string> columns of the output (JSON text in CSV)
LIST_COLUMNS = ("milestones_passed", "red_flags", "unverified_flags", "reasons_positive", "reasons_negative",
                "next_actions", "analysis_meeting")
#: provenance columns of the output: which model and rule pack scored a row, and when
PROVENANCE_COLUMNS = ("model_version", "rule_pack_version", "scored_at")
#: the columns every output has, in order, before the carried input fields (what marks a file as an
#: output of this tool, e.g. for ``--previous``)
SCORE_COLUMNS = ("id", "as_of", "stage", "win_probability", "probability_change", "rule_score", "data_completeness",
                 "milestones_passed", "red_flags", "unverified_flags", "reasons_positive", "reasons_negative",
                 "next_actions", "analysis_meeting", *PROVENANCE_COLUMNS)
#: input fields always carried into the output: needed by the previous-run flags (T2) and the forecast
CARRIED = ("expected_close", "close_date_pushes", "amount", "currency", "owner", "region")


class ChunkScorer:
    """Scores column frames: evidence, rule score, probability, reasons, flags.

    Parameters
    ----------
    pack : RulePack
    model : Model or None
        None: rule score only (``win_probability`` and the reasons are empty).
    thresholds : Thresholds, optional
        Of the STALLED flag.
    keep : sequence of str
        Input fields to carry into the output besides :data:`CARRIED`.
    scored_at : str, optional
        The ``scored_at`` stamp (default: now, UTC).
    as_of_default : str, optional
        The date for records without ``as_of`` (default: today).
    store_columns : bool
        Also emit what the score store keeps per deal (:data:`scoring.store.nightly.STORE_COLUMNS`:
        every rule's status, the measures when the evaluation has them, the model's per-rule
        contributions and logit); the run takes them out of the output.

    Picklable (ships to worker processes): it holds the pack and model, and
    compiles the column-wise evaluator lazily in each process.
    """

    def __init__(self, pack: RulePack, model: Model | None = None, *, thresholds: Thresholds | None = None,
                 keep: Sequence[str] = (), scored_at: str | None = None, as_of_default: str | None = None,
                 store_columns: bool = False):
        self.pack = pack
        self.model = model
        self.thresholds = thresholds or Thresholds()
        self.keep = tuple(keep)
        self.scored_at = scored_at or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        self.as_of_default = as_of_date(as_of_default)
        self.store_columns = store_columns
        self._ready = False

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        for k in ("_evaluator", "_vscorer"):
            d.pop(k, None)
        d["_ready"] = False
        return d

    def _prepare(self) -> None:
        if self._ready:
            return
        self._evaluator = ColumnarEvaluator(self.pack)
        self._vscorer = VectorScorer(self.pack)
        self._ready = True

    @property
    def model_version(self) -> str | None:
        """The model's version, or None without a model."""
        return self.model.model_version if self.model is not None else None

    def score(self, frames: Frames) -> pa.Table:
        """One output row per deal of ``frames`` (an Arrow table, list columns native)."""
        self._prepare()
        opps = frames.opps
        n = len(opps)
        ev = self._evaluator.evaluate(frames, self.as_of_default)
        status = np.ascontiguousarray(ev.status.to_numpy(dtype=np.int8))
        stage_words = opps["stage"].astype(object).to_numpy()
        stage_idx = np.fromiter((STAGE_INDEX[s] for s in stage_words), dtype=np.int64, count=n)
        sc = self._vscorer.score(status, stage_idx)

        as_of = text_column(opps, "as_of")
        as_of = np.where(pd.isna(as_of), self.as_of_default, as_of).astype(object)

        cols: dict[str, Any] = {
            "id": pa.array(opps["id"].astype(object).to_numpy(), type=pa.string()),
            "as_of": pa.array(as_of, type=pa.string()),
            "stage": pa.array(stage_words, type=pa.string()),
        }
        C = None  # the model's contributions, computed once for the probability, the reasons and the store
        if self.model is not None:
            if self.store_columns and hasattr(self.model, "rule_totals"):
                C = self.model.contributions_of(status, stage_words, derived=ev.derived,
                                                measures=getattr(ev, "measures", None))
                prob, pos, neg = self.model.score_contributions(C)
            else:
                prob, pos, neg = self.model.score_statuses(status, stage_words, derived=ev.derived,
                                                           measures=getattr(ev, "measures", None))
            cols["win_probability"] = pa.array(np.round(prob, 6))
        else:
            pos = neg = Ragged(np.zeros(n + 1, np.int64), np.zeros(0, dtype=object))
            cols["win_probability"] = pa.nulls(n, pa.float64())
        cols["probability_change"] = pa.nulls(n, pa.float64())
        cols["rule_score"] = pa.array(sc.score)
        cols["data_completeness"] = pa.array(sc.completeness)
        cols["milestones_passed"] = sc.milestones_passed.to_arrow()
        cols["red_flags"] = sc.red_flags.to_arrow()
        cols["unverified_flags"] = sc.unverified_flags.to_arrow()
        cols["reasons_positive"] = pos.to_arrow()
        cols["reasons_negative"] = neg.to_arrow()
        cols["next_actions"] = sc.next_actions.to_arrow()
        cols["analysis_meeting"] = self._meetings(sc.meeting_flags, opps, stage_idx, as_of).to_arrow()
        cols["model_version"] = pa.array([self.model_version] * n, type=pa.string())
        cols["rule_pack_version"] = pa.array([self.pack.version_tag] * n, type=pa.string())
        cols["scored_at"] = pa.array([self.scored_at] * n, type=pa.string())
        for name in dict.fromkeys(CARRIED + self.keep):
            if name in cols:
                continue
            cols[name] = _arrow_column(opps, name, self.pack)
        if self.store_columns:
            cols.update(self._store_columns(ev, status, stage_words, C))
        return pa.table(cols)

    def _store_columns(self, ev, status: np.ndarray, stage_words: np.ndarray,
                       C: np.ndarray | None = None) -> dict[str, pa.Array]:
        """What the score store keeps per deal (see ``store_columns``); ``C``: the model's contributions
        when :meth:`score` computed them."""
        from scoring.store.changes import (derived_inputs, derived_matrix, list_column, logit_of, rule_contributions,
                                           status_array)

        n = len(status)
        measures = getattr(ev, "measures", None)  # graded measures, when the evaluation has them
        measures = None if measures is None else \
            np.asarray(measures, dtype=np.float64).reshape(n, len(self.pack.compiled.measures))
        cols = {"_store_status": status_array(status)}
        c = None
        if self.model is not None:
            c = self.model.rule_totals(C) if C is not None else \
                rule_contributions(self.model, status, stage_words, measures, getattr(ev, "derived", None))
        names = derived_inputs(self.model)
        cols["_store_logit"] = pa.array(logit_of(self.model.intercept, c)) if c is not None else \
            pa.nulls(n, pa.float64())
        cols["_store_contributions"] = list_column(c, n)
        cols["_store_measures"] = list_column(measures, n)
        cols["_store_derived"] = list_column(derived_matrix(getattr(ev, "derived", None), names, n) if names else None, n)
        return cols

    def output_schema(self) -> pa.Schema:
        """The Arrow schema of :meth:`score`'s tables (that of an empty chunk)."""
        frames = Frames(opps=pd.DataFrame({"id": pd.Series([], dtype=object), "stage": pd.Series([], dtype=object)}),
                        children={})
        return self.score(frames).schema

    def _meetings(self, triggers: Ragged, opps: pd.DataFrame, stage_idx: np.ndarray, as_of: np.ndarray) -> Ragged:
        """The pack's triggers, plus ``STALLED`` when the deal sits in its stage beyond the threshold."""
        entered = text_column(opps, "stage_entered_at")
        days = np.full(len(opps), np.nan)
        known = ~pd.isna(entered)
        if known.any():
            idx = np.nonzero(known)[0]
            days[idx] = (pd.to_datetime(as_of[idx]) - pd.to_datetime(entered[idx].astype(str))).days.to_numpy()
        # a pack's own STALLED trigger uses the pack's default thresholds: --stall-days decides here
        triggers = remove_flag(triggers, np.ones(len(opps), dtype=bool), STALLED)
        return append_flag(triggers, stalled(stage_idx, days, self.thresholds), STALLED)


def output_schema(pack: RulePack, model: Model | None = None, keep: Sequence[str] = ()) -> pa.Schema:
    """The Arrow schema of the nightly output (and of :meth:`scoring.api.Scorer.score_frame`'s result)."""
    return ChunkScorer(pack, model, keep=keep).output_schema()


def text_column(df: pd.DataFrame, name: str) -> np.ndarray:
    """A column as an object array of 'YYYY-MM-DD'/text or None (missing column = all unknown)."""
    if name not in df.columns:
        return np.full(len(df), None, dtype=object)
    s = df[name]
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s.dt.strftime("%Y-%m-%d").astype(object).to_numpy()
    else:
        out = s.astype(object).to_numpy()
    return np.where(pd.isna(out), None, out).astype(object)


def _arrow_column(df: pd.DataFrame, name: str, pack: RulePack) -> pa.Array:
    """An input field carried into the output, typed as the pack declares it."""
    f = pack.schema["opportunity"].get(name)
    if name not in df.columns:
        typ = {"bool": pa.bool_(), "int": pa.int64(), "number": pa.float64()}.get(f.type if f else "", pa.string())
        return pa.nulls(len(df), typ)
    s = df[name]
    if f is not None and f.type == "date" or pd.api.types.is_datetime64_any_dtype(s):
        return pa.array(text_column(df, name), type=pa.string())
    if f is not None and f.type == "bool":
        return pa.array(s.astype("boolean"), type=pa.bool_())
    if f is not None and f.type == "int":
        return pa.array(s.astype("Int64"), type=pa.int64())
    if f is not None and f.type == "number":
        return pa.array(s.astype("Float64"), type=pa.float64())
    return pa.array(text_column(df, name), type=pa.string())
