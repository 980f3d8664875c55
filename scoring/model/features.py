"""Evidence features: records -> the rule pack's evidence matrix.

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
(``technical_promotion`` is the reference: its effect is in the intercept).

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
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from scoring.contract.schema import STAGES
from scoring.contract.frames import records_to_frames
from scoring.evidence.columnar import ColumnarEvaluator
from scoring.evidence.durable import Engine, Evaluation
from scoring.evidence.status import MET, STATUS_CODES, UNKNOWN
from scoring.evidence.pack import RulePack, load_pack

UNKNOWN_SUFFIX = "__unknown"
STAGE_PREFIX = "stage="
#: the stage whose indicator is dropped (its effect is the intercept's)
REFERENCE_STAGE = STAGES[0]
RECORD_COLUMN = "record"


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
    for s in STAGES:
        if s != REFERENCE_STAGE:
            out.append((STAGE_PREFIX + s, "stage", s))
    return out


def as_record_list(X) -> list[Mapping]:
    """The records of ``X`` (see the module docstring) as a list of dicts."""
    if isinstance(X, pd.DataFrame):
        if RECORD_COLUMN not in X.columns or X.shape[1] != 1:
            raise ValueError(f"a DataFrame input must have exactly one column {RECORD_COLUMN!r} holding record dicts; "
                             f"got columns {list(X.columns)}")
        items = X[RECORD_COLUMN].tolist()
    elif isinstance(X, pd.Series):
        items = X.tolist()
    elif isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(f"expected a sequence of record dicts, got an array of shape {X.shape}")
        items = X.tolist()
    elif isinstance(X, Sequence) and not isinstance(X, (str, bytes)):
        items = list(X)
    else:
        raise TypeError(f"expected a sequence of record dicts or a DataFrame with a {RECORD_COLUMN!r} column, "
                        f"not {type(X).__name__}")
    for i, r in enumerate(items):
        if not isinstance(r, Mapping):
            raise TypeError(f"item {i} is a {type(r).__name__}, not a record dict")
    return items


class EvidenceTransformer(TransformerMixin, BaseEstimator):
    """Turn records into the rule pack's evidence matrix (floats, 0.0 or 1.0).

    Parameters
    ----------
    rules : str, Path or RulePack, default "rules/default"
        The rule pack (a folder) or a loaded :class:`~scoring.evidence.pack.RulePack`.
    applicable_only : bool, default True
        Zero the columns of rules that do not apply at the deal's stage.

    Attributes
    ----------
    pack_ : RulePack
    engine_ : Engine
    feature_names_out_ : ndarray of str
    n_features_in_ : int
        Always 1: the records are one column.

    Examples
    --------
    >>> from sklearn.pipeline import Pipeline                          # doctest: +SKIP
    >>> from sklearn.linear_model import LogisticRegression            # doctest: +SKIP
    >>> pipe = Pipeline([("evidence", EvidenceTransformer("rules/default")),
    ...                  ("model", LogisticRegression())])              # doctest: +SKIP
    >>> pipe.fit(records, labels).predict_proba(records)[:, 1]         # doctest: +SKIP
    """

    def __init__(self, rules="rules/default", applicable_only=True):
        self.rules = rules
        self.applicable_only = applicable_only

    # ------------------------------------------------------------------ fitting
    def fit(self, X=None, y=None):
        """Compile and validate the rule pack.  ``X`` and ``y`` are not used
        (beyond checking that ``X`` holds records): evidence is not learned."""
        pack = self.rules if isinstance(self.rules, RulePack) else load_pack(Path(self.rules))
        if X is not None:
            as_record_list(X)
        self.pack_ = pack
        self.engine_ = Engine(pack)
        layout = feature_layout(pack)
        self.feature_names_out_ = np.asarray([name for name, _, _ in layout], dtype=object)
        self.n_features_in_ = 1
        self._set_index()
        return self

    def _set_index(self):
        layout = feature_layout(self.pack_)
        self._met_cols = {ref: i for i, (_, kind, ref) in enumerate(layout) if kind == "met"}
        self._unk_cols = {ref: i for i, (_, kind, ref) in enumerate(layout) if kind == "unknown"}
        self._stage_cols = {ref: i for i, (_, kind, ref) in enumerate(layout) if kind == "stage"}

    def use_pack(self, pack: RulePack) -> "EvidenceTransformer":
        """Score with ``pack`` (an identical copy of the fitted one, e.g. the
        pack saved inside a model artifact).  Refuses a different pack."""
        check_is_fitted(self, "pack_")
        if pack.fingerprint != self.pack_.fingerprint:
            from scoring.errors import ModelError

            raise ModelError(f"rule pack {pack.version_tag} is not the pack this model was trained with "
                             f"({self.pack_.version_tag}): retrain to use it")
        self.pack_ = pack
        self.engine_ = Engine(pack)
        return self

    # ------------------------------------------------------------------ transforming
    def transform(self, X):
        """The evidence matrix of ``X``: shape ``(n_records, n_features)``, float64."""
        check_is_fitted(self, "pack_")
        records = as_record_list(X)
        status, stages = self._statuses(records)
        return self._matrix(status, stages)

    def statuses(self, X) -> tuple[np.ndarray, list[str]]:
        """Rule statuses of ``X`` as int8 codes (0 missing, 1 met, 2 unknown;
        columns = rules in pack order) and the records' stages."""
        check_is_fitted(self, "pack_")
        return self._statuses(as_record_list(X))

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

    def _statuses(self, records: list[Mapping]) -> tuple[np.ndarray, list[str]]:
        """Status codes (0 missing, 1 met, 2 unknown), rules in pack order, and stages."""
        n, ids = len(records), [r.id for r in self.pack_.rules]
        stages = [r["stage"] for r in records]
        if n == 0:
            return np.zeros((0, len(ids)), dtype=np.int8), stages
        frames = records_to_frames(records, self.pack_.fields)
        evidence = ColumnarEvaluator(self.pack_).evaluate(frames, _dt.date.today().isoformat())
        return np.ascontiguousarray(evidence.status[ids].to_numpy(dtype=np.int8)), stages

    def _matrix(self, status: np.ndarray, stages: Sequence[str]) -> np.ndarray:
        """Vectorised: the batch path calls this on chunks of 50,000 deals."""
        from scoring.contract.schema import STAGE_INDEX, STAGES

        n = status.shape[0]
        rules = self.pack_.rules
        stage_idx = np.fromiter((STAGE_INDEX[s] for s in stages), dtype=np.int64, count=n)
        if self.applicable_only:
            table = np.array([[r.applies_at(s) for r in rules] for s in STAGES], dtype=bool)  # (5, R)
            applies = table[stage_idx]
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

    def get_feature_names_out(self, input_features=None):
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
        super().__setstate__(state)
        if "pack_" in self.__dict__:
            self._set_index()

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns __dict__ itself
        for k in ("_met_cols", "_unk_cols", "_stage_cols"):
            state.pop(k, None)
        return state
