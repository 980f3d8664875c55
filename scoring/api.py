"""The library API: :class:`Scorer`.

>>> from scoring import Scorer                                  # doctest: +SKIP
>>> scorer = Scorer()                 # the current model (its own rule pack), loaded once
>>> result = scorer.score({"id": "OPP-1", "stage": "solution", "needs_understood": True})  # doctest: +SKIP
>>> result.win_probability, result.rule_score, result.next_actions[0].action               # doctest: +SKIP

* ``score(record)`` takes one nested record (a dict in the contract's form) and
  runs the reference path: contract validation (a bad record raises
  :class:`~scoring.errors.RecordError` naming the record and field), the
  durable-rules engine, the rule score, the model's probability and reasons.
* ``score_frame(opportunities, contacts=None, ...)`` takes the table form
  (pandas DataFrames, as a CRM exports them) and runs the batch path
  (column-wise evaluation); it returns one row per deal, the same columns as
  the nightly output.  It is a pure function of its input, so it works as a
  Dask ``map_partitions`` or Spark ``mapInPandas`` partition function.

A Scorer is safe to share between threads (the engine is per thread) and to
ship to worker processes (it pickles; the engine is rebuilt there).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
import pyarrow as pa

from scoring.batch.chunks import ChunkScorer, as_of_date, output_schema
from scoring.errors import InputError, RecordError
from scoring.evidence.durable import Engine
from scoring.score.flags import STALLED, Thresholds, is_stalled
from scoring.score.rulescore import score_evaluation


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
            self.engine = self.model.engine
        else:
            self.pack = load_pack(rules or paths.default_rules())
            self.engine = Engine(self.pack)
        self._chunk_scorer = None

    @property
    def model_version(self) -> str | None:
        return self.model.model_version if self.model is not None else None

    # ------------------------------------------------------------------ one record
    def score(self, record: Mapping[str, Any]) -> ScoreResult:
        """Score one nested record (the reference path).  Raises RecordError on a bad record."""
        from scoring.contract.nested import validate_record

        rec = validate_record(record, self.pack.schema)
        ev = self.engine.evaluate(rec, as_of=self.as_of)
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
            intercept=intercept, breakdown=[asdict(b) for b in rs.breakdown], unknown_inputs=rs.unknown_inputs,
        )

    def score_many(self, records: Iterable[Mapping[str, Any]]) -> list[ScoreResult]:
        """:meth:`score` on each record."""
        return [self.score(r) for r in records]

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
        return output_schema(self.pack, self.model, keep)

    def output_meta(self, keep: Sequence[str] = ()) -> pd.DataFrame:
        """An empty DataFrame with the columns and dtypes :meth:`score_frame` returns (Dask's ``meta``)."""
        return self.output_schema(keep).empty_table().to_pandas()

    def spark_ddl(self, keep: Sequence[str] = ()) -> str:
        """The output schema as a Spark DDL string (for ``mapInPandas(..., schema=...)``).

        >>> Scorer(model=None).spark_ddl()[:40]                     # doctest: +SKIP
        'id string, as_of string, stage string, w'
        """
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
        d["_chunk_scorer"] = None
        return d
