"""The library API: :class:`Scorer`.

>>> from scoring import Scorer                                  # doctest: +SKIP
>>> scorer = Scorer()                 # the current model (its own rule pack), loaded once
>>> result = scorer.score({"id": "OPP-1", "stage": "solution", "needs_understood": True})  # doctest: +SKIP
>>> result.win_probability, result.rule_score, result.next_actions[0].action               # doctest: +SKIP

* ``score(record)`` takes one nested record (a dict in the contract's form):
  contract validation (a bad record raises :class:`~scoring.errors.RecordError`
  naming the record and field), the rules (the pack's compiled form evaluated
  in Python, :class:`~scoring.evidence.interp.RecordEvaluator`; the tests hold
  it equal to the durable-rules reference), the rule score, the model's
  probability and reasons.  It imports neither pandas nor pyarrow.
* ``score_many(records)`` scores a list: the records are all validated first
  (the first bad one raises, naming record and field; nothing is scored), then
  scored as :meth:`Scorer.score` does; from :data:`COLUMNWISE_FROM` records on,
  their rules are evaluated column-wise (the batch's numpy backend) in one go.
  The results equal ``[score(r) for r in records]``.
* ``score_frame(opportunities, contacts=None, ...)`` takes the table form
  (pandas DataFrames, as a CRM exports them) and runs the batch path
  (column-wise evaluation); it returns one row per deal, the same columns as
  the nightly output.  It is a pure function of its input, so it works as a
  Dask ``map_partitions`` or Spark ``mapInPandas`` partition function.

A Scorer is safe to share between threads and to ship to worker processes (it
pickles).  ``benchmarks/bench_api.py`` measures its load time and calls.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from scoring.contract.values import as_of_date
from scoring.errors import InputError, RecordError
from scoring.evidence.interp import RecordEvaluator
from scoring.score.flags import STALLED, Thresholds, is_stalled
from scoring.score.rulescore import score_evaluation

if TYPE_CHECKING:  # the table form's libraries are imported when a table is scored
    import pandas as pd
    import pyarrow as pa

    from scoring.evidence.durable import Evaluation

#: from this many records on, :meth:`Scorer.score_many` evaluates the rules column-wise
#: (measured: ``benchmarks/bench_api.py``)
COLUMNWISE_FROM = 128


@dataclass
class Reason:
    """A model reason: one piece of evidence and its contribution in log-odds."""

    feature: str
    title: str
    contribution: float
    rule: str | None = None


@dataclass
class Action:
    """A next action: a checklist item or milestone still missing or unknown."""

    rule: str
    status: str
    title: str
    action: str
    points: float


@dataclass
class ScoreResult:
    """The score of one deal.  Plain data: ``to_dict()`` / ``to_json()``."""

    id: str
    as_of: str | None
    stage: str
    win_probability: float | None
    rule_score: float
    data_completeness: float
    milestones_passed: list[str]
    red_flags: list[str]
    unverified_flags: list[str]
    analysis_meeting: list[str]
    reasons_positive: list[Reason]
    reasons_negative: list[Reason]
    next_actions: list[Action]
    model_version: str | None
    rule_pack_version: str
    logit: float | None = None
    intercept: float | None = None
    breakdown: list[dict] = field(default_factory=list)
    unknown_inputs: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


def _plain(obj: Any) -> dict[str, Any]:
    """A flat dataclass of numbers, texts and lists of them as a dict (``asdict`` without its deep copy)."""
    return {k: list(v) if isinstance(v, list) else v for k, v in vars(obj).items()}


class Scorer:
    """Scores opportunities with a model (and the rule pack inside it), or with a rule pack alone.

    Parameters
    ----------
    model : "current", a model folder, or None
        ``"current"`` (default): the current model in ``models/`` if there is
        one, else no model.  None: rule score only.
    rules : path, optional
        A rule pack folder, used when there is no model (default ``rules/default``).
    lang : "en" or "zh"
        Language of titles and actions.
    as_of : str, optional
        Date for records without ``as_of`` (default: today, the day a deal is scored).
    thresholds : Thresholds, optional
        Of the STALLED flag (default: :class:`scoring.score.flags.Thresholds`).

    Raises
    ------
    InputError
        When ``as_of`` is not a date ``YYYY-MM-DD``.
    """

    def __init__(self, model: str | Path | None = "current", *, rules: str | Path | None = None, lang: str = "en",
                 as_of: str | None = None, thresholds: Thresholds | None = None):
        from scoring import paths
        from scoring.evidence.pack import load_pack

        self.lang = lang
        self.as_of = None if as_of is None else as_of_date(as_of)
        self.thresholds = thresholds or Thresholds()
        self.model = None
        if model is not None:
            from scoring.model.artifact import load_model
            from scoring.model.registry import current_model_dir

            mdir = current_model_dir() if model == "current" else Path(model)
            if mdir is not None:
                self.model = load_model(mdir)
        if self.model is not None:
            self.pack = self.model.pack
        else:
            self.pack = load_pack(rules or paths.default_rules())
        self.evaluator = RecordEvaluator(self.pack)
        self._chunk_scorer = None
        self._columnar = None  # score_many's numpy backend, built on first use

    @property
    def model_version(self) -> str | None:
        return self.model.model_version if self.model is not None else None

    @property
    def engine(self):
        """The pack's one-record evaluator (kept under its former name)."""
        return self.evaluator

    # ------------------------------------------------------------------ one record
    def score(self, record: Mapping[str, Any]) -> ScoreResult:
        """Score one nested record.  Raises RecordError on a bad record."""
        from scoring.contract.nested import validate_record

        rec = validate_record(record, self.pack.schema)
        return self._result(rec, self.evaluator.evaluate(rec, as_of=self.as_of))

    def _result(self, rec: Mapping[str, Any], ev: "Evaluation") -> ScoreResult:
        """The result of a validated record from what its rules found."""
        rs = score_evaluation(self.pack, ev, self.lang)
        prob = logit = intercept = None
        pos: list[Reason] = []
        neg: list[Reason] = []
        if self.model is not None:
            m = self.model.explain_evaluation(ev, lang=self.lang)
            prob, logit, intercept = m["win_probability"], m["logit"], m["intercept"]
            for r in m["model_reasons"]:
                (pos if r["contribution"] > 0 else neg).append(
                    Reason(r["feature"], r["title"], r["contribution"], r.get("rule")))
        meetings = [f.rule for f in rs.meeting_flags if f.rule != STALLED]  # the thresholds decide STALLED
        if is_stalled(rs.stage, rec.get("stage_entered_at"), ev.as_of, self.thresholds):
            meetings.append(STALLED)
        return ScoreResult(
            id=rs.id, as_of=rs.as_of, stage=rs.stage, win_probability=prob, rule_score=rs.score,
            data_completeness=rs.completeness, milestones_passed=rs.milestones_passed,
            red_flags=[f.rule for f in rs.red_flags], unverified_flags=[f.rule for f in rs.unverified_flags],
            analysis_meeting=meetings, reasons_positive=pos, reasons_negative=neg,
            next_actions=[Action(a.rule, a.status, a.title, a.action, a.points) for a in rs.next_actions],
            model_version=self.model_version, rule_pack_version=self.pack.version_tag, logit=logit,
            intercept=intercept, breakdown=[_plain(b) for b in rs.breakdown], unknown_inputs=rs.unknown_inputs,
        )

    def score_many(self, records: Iterable[Mapping[str, Any]]) -> list[ScoreResult]:
        """:meth:`score` of each record, in order.

        Every record is validated before any is scored: a bad one raises
        :class:`RecordError` naming the record and field.  From
        :data:`COLUMNWISE_FROM` records on, the rules run column-wise over all
        of them at once (the numpy backend); the results are the same.
        """
        from scoring.contract.nested import validate_record

        recs = [validate_record(r, self.pack.schema) for r in records]
        if len(recs) < COLUMNWISE_FROM:
            return [self._result(r, self.evaluator.evaluate(r, as_of=self.as_of)) for r in recs]
        return [self._result(r, ev) for r, ev in zip(recs, self._evaluate_columnwise(recs))]

    def _evaluate_columnwise(self, recs: list[Mapping[str, Any]]) -> list["Evaluation"]:
        """The evaluations of validated records by the numpy backend, one chunk."""
        import datetime as _dt

        import numpy as np

        from scoring.contract.frames import records_to_frames
        from scoring.evidence.columnar import ColumnarEvaluator
        from scoring.evidence.durable import Evaluation
        from scoring.evidence.status import MET, STATUS_WORDS

        if self._columnar is None:
            self._columnar = ColumnarEvaluator(self.pack)
        default = self.as_of or _dt.date.today().isoformat()
        evidence = self._columnar.evaluate(records_to_frames(recs, self.pack.fields), default)
        ids = list(evidence.status.columns)
        words = np.asarray(STATUS_WORDS, dtype=object)[evidence.status.to_numpy()].tolist()
        derived_cols = {}
        for name in evidence.derived.columns:  # counts (int64), computed fields (Int64, NA when unknown)
            col = evidence.derived[name].to_numpy(dtype=np.float64, na_value=np.nan)
            derived_cols[name] = [None if v != v else int(v) for v in col.tolist()]
        measures = evidence.measures.tolist()  # NaN = unknown or not applicable
        names = evidence.measure_names
        met = STATUS_WORDS[MET]
        out = []
        for i, (rec, row) in enumerate(zip(recs, words)):
            status = dict(zip(ids, row))
            der = {name: col[i] for name, col in derived_cols.items()}
            out.append(Evaluation(
                record_id=str(rec.get("id")), stage=rec["stage"], as_of=rec.get("as_of") or default, status=status,
                matched=[rid for rid, w in zip(ids, row) if w == met], derived=der,
                unknown_inputs=self.pack.compiled.unknown_inputs(rec, der, status),
                measures={n: None if v != v else v for n, v in zip(names, measures[i])}))
        return out

    # ------------------------------------------------------------------ table form
    def score_frame(self, opportunities: pd.DataFrame, contacts: pd.DataFrame | None = None,
                    competitors: pd.DataFrame | None = None, partners: pd.DataFrame | None = None,
                    *, keep: Sequence[str] = (), other_deals: str = "raise") -> pd.DataFrame:
        """Score deals in table form (the batch path); one row per deal, the nightly output's columns.

        Child tables carry ``opportunity_id`` (and ``as_of`` when the
        opportunities hold several snapshots of one id).  A bad record raises
        :class:`RecordError` naming the record and field.

        ``other_deals="ignore"`` lets the child tables hold rows of deals that
        are not in ``opportunities`` (a partition function given the whole
        child tables); by default such a row is an orphan and raises.

        Examples
        --------
        Dask (one partition of deals at a time, child tables broadcast)::

            ddf = dd.from_pandas(opportunities, npartitions=8)
            scores = ddf.map_partitions(scorer.score_frame, contacts, competitors, partners,
                                        other_deals="ignore", meta=scorer.output_meta())
        """
        from scoring.batch.chunks import ChunkScorer

        children = {k: v for k, v in (("contacts", contacts), ("competitors", competitors),
                                      ("partners", partners)) if v is not None}
        if other_deals == "ignore":
            ids = set(opportunities["id"].astype(str))
            children = {k: v[v["opportunity_id"].astype(str).isin(ids)] for k, v in children.items()}
        elif other_deals != "raise":
            raise InputError(f"other_deals must be 'raise' or 'ignore', not {other_deals!r}")
        as_of = as_of_date(self.as_of)
        frames, rejects, orphans = self._validate_tables(opportunities, children, as_of)
        if rejects:
            r = rejects[0]
            raise RecordError(r.get("id"), r.get("field"), r.get("reason"))
        if orphans:
            o = orphans[0]
            raise RecordError(o.get("opportunity_id"), f"{o.get('table')}.opportunity_id", o.get("reason"))
        if (self._chunk_scorer is None or tuple(keep) != self._chunk_scorer.keep
                or as_of != self._chunk_scorer.as_of_default):
            self._chunk_scorer = ChunkScorer(self.pack, self.model, keep=keep, thresholds=self.thresholds,
                                             as_of_default=as_of)
        return self._chunk_scorer.score(frames).to_pandas()

    def _validate_tables(self, opportunities, children, as_of: str):
        """Column-wise validation by the contract's one table validator (a column mixing Python types
        is checked cell by cell there); a deal without ``as_of`` is the snapshot of ``as_of``."""
        from scoring.contract.reader import validate_dataframes

        chunk = validate_dataframes(opportunities, children, self.pack.schema, as_of_default=as_of)
        return chunk.frames, chunk.rejects, chunk.orphans

    def output_schema(self, keep: Sequence[str] = ()) -> pa.Schema:
        """The Arrow schema of :meth:`score_frame`'s result (and of the nightly Parquet output)."""
        from scoring.batch.chunks import output_schema

        return output_schema(self.pack, self.model, keep)

    def output_meta(self, keep: Sequence[str] = ()) -> pd.DataFrame:
        """An empty DataFrame with the columns and dtypes :meth:`score_frame` returns (Dask's ``meta``)."""
        return self.output_schema(keep).empty_table().to_pandas()

    def spark_ddl(self, keep: Sequence[str] = ()) -> str:
        """The output schema as a Spark DDL string (for ``mapInPandas(..., schema=...)``).

        >>> Scorer(model=None).spark_ddl()[:40]                     # doctest: +SKIP
        'id string, as_of string, stage string, w'
        """
        import pyarrow as pa

        def ddl(t) -> str:
            if pa.types.is_list(t):
                return f"array<{ddl(t.value_type)}>"
            if pa.types.is_boolean(t):
                return "boolean"
            if pa.types.is_integer(t):
                return "bigint"
            if pa.types.is_floating(t):
                return "double"
            return "string"

        return ", ".join(f"`{f.name}` {ddl(f.type)}" for f in self.output_schema(keep))

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_chunk_scorer"] = d["_columnar"] = None
        return d
