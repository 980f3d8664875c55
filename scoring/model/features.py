"""Evidence features: records -> the rule pack's evidence matrix (the older model's first step).

The published model is now the scorecard (:mod:`scoring.model.scorecard`,
fitted by :mod:`scoring.model.fit`); this transformer is kept because
artifacts of the older format pickle it (``dealscore-model/1``, see
:mod:`scoring.model.artifact`), and as a scikit-learn step for anyone
building their own pipeline on the evidence.

This is the first step of the model pipeline::

    Pipeline([("evidence", EvidenceTransformer(pack)),
              ("model", LogisticRegression(...))])

Input (``X``)
-------------
Validated records (see :func:`scoring.contract.nested.validate_record`), as

* a sequence of record dicts (a list, tuple, numpy object array or pandas
  Series of dicts), or
* a pandas DataFrame with one column ``record`` holding the dicts (its index is
  kept when the transformer outputs pandas, ``set_output(transform="pandas")``).

Either way the records are one "column": ``n_features_in_`` is 1.

Features (columns, in this order)
---------------------------------
For each rule of the pack, in pack order (checklist items, milestones, red
flags and triggers alike: a trigger is evidence too):

* ``<rule_id>``: 1.0 when the rule's status is ``met`` (a red flag raised), else 0.0;
* ``<rule_id>__unknown`` (only for rules with ``unknown_when``): 1.0 when the
  status is ``unknown``.  Unknown gets its own indicator, never imputed as
  false: "nobody checked" is evidence in itself.

then one indicator per stage, ``stage=<name>``, for every stage but the first
(``technical_promotion`` is the reference: its effect is in the intercept);
none for a pack without stages (:attr:`RulePack.staged`).

A rule counts only where it applies (``applicable_only=True``, the default):
for a rule that does not apply at the deal's stage (see
:meth:`scoring.evidence.pack.Rule.applies_at`: a checklist item from its own stage
on, a red flag or trigger in the stages it lists) both its columns are 0, as
in the rule score, so a model reason never cites a bidding item for an early
deal.  Measured on the synthetic history (1,500 deals, two seeds, newest 20%
held out) it is also slightly better than counting every rule at every stage
(test log loss 0.4685 vs 0.4694 and 0.5048 vs 0.5082).

No stage interactions: evidence x stage columns (all stages: 372 columns;
solution/bidding only: 183) lowered the test log loss by 0.0001 to 0.003 on
the same data, within noise, for two to three times the columns to read.

The date of the evidence
------------------------
Rules on durations (days in stage, days to the expected close...) are
evaluated as of each record's own ``as_of``.  The transformer never reads the
clock: a record without ``as_of`` is evaluated as of the transformer's
``as_of`` parameter (or the ``as_of`` given to :meth:`EvidenceTransformer.statuses`),
and refused with a :class:`~scoring.errors.RecordError` when there is none,
so the same records always give the same evidence.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from scoring.contract.frames import records_to_frames
from scoring.contract.schema import STAGE_INDEX, STAGES
from scoring.errors import ModelError, RecordError
from scoring.evidence.columnar import ColumnarEvaluator
from scoring.evidence.durable import Engine, Evaluation
from scoring.evidence.pack import RulePack, load_pack
from scoring.evidence.status import MET, STATUS_CODES, UNKNOWN
from scoring.model.inputs import as_record_list, iso_day  # one definition each

UNKNOWN_SUFFIX = "__unknown"
STAGE_PREFIX = "stage="
#: the stage whose indicator is dropped (its effect is the intercept's)
REFERENCE_STAGE = STAGES[0]
RECORD_COLUMN = "record"


def as_pack(rules: str | Path | RulePack) -> RulePack:
    """``rules`` itself when it is a loaded pack, else the pack loaded from that folder."""
    return rules if isinstance(rules, RulePack) else load_pack(Path(rules))


def feature_layout(pack: RulePack) -> list[tuple[str, str, str | None]]:
    """``(feature name, kind, rule id or stage)`` for every evidence column of ``pack``.

    ``kind`` is ``met`` (rule met / flag raised), ``unknown`` (rule status
    unknown) or ``stage`` (the deal's stage indicator).
    """
    out: list[tuple[str, str, str | None]] = []
    for r in pack.rules:
        out.append((r.id, "met", r.id))
        if r.unknown_when is not None:
            out.append((r.id + UNKNOWN_SUFFIX, "unknown", r.id))
    for s in STAGES if pack.staged else ():  # a pack without stages: no stage indicators
        if s != REFERENCE_STAGE:
            out.append((STAGE_PREFIX + s, "stage", s))
    return out


class EvidenceTransformer(TransformerMixin, BaseEstimator):
    """Turn records into the rule pack's evidence matrix (floats, 0.0 or 1.0).

    Parameters
    ----------
    rules : str, Path or RulePack
        The rule pack (a folder) or a loaded :class:`~scoring.evidence.pack.RulePack`.
        Required (None only lets the transformer be built empty, as scikit-learn
        does; :meth:`fit` refuses it).  The bundled pack is
        :func:`scoring.paths.default_rules`.
    applicable_only : bool, default True
        Zero the columns of rules that do not apply at the deal's stage.
    as_of : str or date, optional
        The date of the evidence for records without their own ``as_of``
        ('YYYY-MM-DD').  None: such records are refused (see the module docstring).

    Attributes
    ----------
    pack_ : RulePack
    engine_ : Engine
    as_of_ : str or None
        ``as_of`` as 'YYYY-MM-DD'.
    feature_names_out_ : ndarray of str
    n_features_in_ : int
        Always 1: the records are one column.

    Examples
    --------
    >>> from sklearn.pipeline import Pipeline                          # doctest: +SKIP
    >>> from sklearn.linear_model import LogisticRegression            # doctest: +SKIP
    >>> from scoring import paths                                      # doctest: +SKIP
    >>> pipe = Pipeline([("evidence", EvidenceTransformer(paths.default_rules())),
    ...                  ("model", LogisticRegression())])              # doctest: +SKIP
    >>> pipe.fit(records, labels).predict_proba(records)[:, 1]         # doctest: +SKIP
    """

    def __init__(self, rules: str | Path | RulePack | None = None, applicable_only: bool = True,
                 as_of: str | _dt.date | None = None):
        self.rules = rules
        self.applicable_only = applicable_only
        self.as_of = as_of

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any = None, y: Any = None) -> "EvidenceTransformer":
        """Compile and validate the rule pack.  ``X`` and ``y`` are not used
        (beyond checking that ``X`` holds records): evidence is not learned.

        Raises
        ------
        ModelError
            No rule pack given, or a bad ``as_of``.
        RulePackError
            The pack folder is not a valid pack.
        """
        if self.rules is None:
            raise ModelError("EvidenceTransformer needs a rule pack: pass rules=<pack folder> or a loaded RulePack "
                             "(the bundled pack is scoring.paths.default_rules())")
        as_of = iso_day(self.as_of)
        pack = as_pack(self.rules)
        if X is not None:
            as_record_list(X)
        self.pack_ = pack
        self.engine_ = Engine(pack)
        self.as_of_ = as_of
        layout = feature_layout(pack)
        self.feature_names_out_ = np.asarray([name for name, _, _ in layout], dtype=object)
        self.n_features_in_ = 1
        self._set_index()
        return self

    def _set_index(self) -> None:
        layout = feature_layout(self.pack_)
        self._met_cols = {ref: i for i, (_, kind, ref) in enumerate(layout) if kind == "met"}
        self._unk_cols = {ref: i for i, (_, kind, ref) in enumerate(layout) if kind == "unknown"}
        self._stage_cols = {ref: i for i, (_, kind, ref) in enumerate(layout) if kind == "stage"}
        # which rule applies at which stage, (5, R): per pack, not per call (one deal is a call)
        self._applies = np.array([[r.applies_at(s) for r in self.pack_.rules] for s in STAGES], dtype=bool)

    def use_pack(self, pack: RulePack) -> "EvidenceTransformer":
        """Score with ``pack`` (an identical copy of the fitted one, e.g. the
        pack saved inside a model artifact).  Refuses a different pack."""
        check_is_fitted(self, "pack_")
        if pack.fingerprint != self.pack_.fingerprint:
            raise ModelError(f"rule pack {pack.version_tag} is not the pack this model was trained with "
                             f"({self.pack_.version_tag}): retrain to use it")
        self.pack_ = pack
        self.engine_ = Engine(pack)
        return self

    # ------------------------------------------------------------------ transforming
    def transform(self, X: Any) -> np.ndarray:
        """The evidence matrix of ``X``: shape ``(n_records, n_features)``, float64."""
        check_is_fitted(self, "pack_")
        return self._matrix(*self._statuses(as_record_list(X), self.as_of_))

    def statuses(self, X: Any, *, as_of: str | _dt.date | None = None) -> tuple[np.ndarray, list[str]]:
        """Rule statuses of ``X`` as int8 codes (0 missing, 1 met, 2 unknown;
        columns = rules in pack order) and the records' stages.

        ``as_of`` dates the records without their own (default: the ``as_of``
        the transformer was fitted with).
        """
        check_is_fitted(self, "pack_")
        day = iso_day(as_of) if as_of is not None else self.as_of_
        return self._statuses(as_record_list(X), day)

    def transform_statuses(self, status: np.ndarray, stages: Sequence[str]) -> np.ndarray:
        """The evidence matrix from :meth:`statuses` output (``transform`` = both in one)."""
        check_is_fitted(self, "pack_")
        return self._matrix(np.asarray(status, dtype=np.int8), list(stages))

    def transform_evaluations(self, evaluations: Sequence[Evaluation]) -> np.ndarray:
        """The evidence matrix of already evaluated records."""
        check_is_fitted(self, "pack_")
        ids = [r.id for r in self.pack_.rules]
        status = np.array([[STATUS_CODES[ev.status[i]] for i in ids] for ev in evaluations], dtype=np.int8).reshape(
            len(evaluations), len(ids))
        return self._matrix(status, [ev.stage for ev in evaluations])

    def _statuses(self, records: list[Mapping], as_of: str | None) -> tuple[np.ndarray, list[str]]:
        """Status codes (0 missing, 1 met, 2 unknown), rules in pack order, and stages."""
        n, ids = len(records), [r.id for r in self.pack_.rules]
        stages = [r["stage"] for r in records]
        if n == 0:
            return np.zeros((0, len(ids)), dtype=np.int8), stages
        if as_of is None:
            undated = next((r for r in records if not r.get("as_of")), None)
            if undated is not None:
                raise RecordError(undated.get("id"), "as_of",
                                  "no as_of, and no date given for such records: give the record its as_of, "
                                  "or pass as_of (EvidenceTransformer(as_of=...), or as_of= to the model)")
            as_of = records[0]["as_of"]  # every record has its own: the default is never used
        frames = records_to_frames(records, self.pack_.fields)
        evidence = ColumnarEvaluator(self.pack_).evaluate(frames, as_of)
        return np.ascontiguousarray(evidence.status[ids].to_numpy(dtype=np.int8)), stages

    def _matrix(self, status: np.ndarray, stages: Sequence[str]) -> np.ndarray:
        """Vectorised: the batch path calls this on chunks of 50,000 deals."""
        n = status.shape[0]
        rules = self.pack_.rules
        stage_idx = np.fromiter((STAGE_INDEX[s] for s in stages), dtype=np.int64, count=n)
        if self.applicable_only:
            applies = self._applies[stage_idx]  # (5, R) table, see _set_index
        else:
            applies = np.ones((n, len(rules)), dtype=bool)
        out = np.zeros((n, len(self.feature_names_out_)), dtype=np.float64)
        met_cols = np.array([self._met_cols[r.id] for r in rules], dtype=np.int64)
        out[:, met_cols] = (status == MET) & applies
        unk = [(j, self._unk_cols[r.id]) for j, r in enumerate(rules) if r.id in self._unk_cols]
        if unk:
            src, dst = (np.array(x, dtype=np.int64) for x in zip(*unk))
            out[:, dst] = (status[:, src] == UNKNOWN) & applies[:, src]
        stage_col = np.full(len(STAGES), -1, dtype=np.int64)
        for name, c in self._stage_cols.items():
            stage_col[STAGE_INDEX[name]] = c
        cols = stage_col[stage_idx]
        has = cols >= 0
        out[np.nonzero(has)[0], cols[has]] = 1.0
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Evidence column names: rule ids, ``<id>__unknown`` and ``stage=<name>``."""
        check_is_fitted(self, "pack_")
        return self.feature_names_out_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.dict = True
        tags.requires_fit = True
        return tags

    def __setstate__(self, state):
        # a transformer pickled before ``as_of`` existed dates nothing for undated records
        state = {"as_of": None, **state}
        if "pack_" in state:
            state.setdefault("as_of_", None)
        super().__setstate__(state)
        if "pack_" in self.__dict__:
            self._set_index()

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns __dict__ itself
        for k in ("_met_cols", "_unk_cols", "_stage_cols", "_applies"):
            state.pop(k, None)
        return state
