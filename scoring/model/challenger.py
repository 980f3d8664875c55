"""The challenger: gradient boosting on the evidence plus the raw contract fields, and the raw
fields that carry signal no rule reads.  Training only (scikit-learn).

The published model stays the scorecard; the challenger says how much a
black box finds beyond it, and where:

* **Model**: ``HistGradientBoostingClassifier`` (learning rate 0.05, 31 leaves,
  at most 500 iterations, native categories), with **early stopping on a
  grouped validation set**: 10% of the *training deals* (drawn with the
  seed), the rest for fitting; it stops when the weighted log loss on those
  deals has not improved for 20 iterations.  Its input is the scorecard's
  evidence columns (met / unknown per rule where it applies, its numeric
  inputs as values) plus :func:`scoring.model.flatten.flatten` of the
  records.  The held-out test deals are never used to fit or stop it.
* **Against the scorecard**: held-out metrics of both, and a paired bootstrap
  over test deals of the log-loss difference (scorecard minus challenger;
  :func:`scoring.model.metrics.paired_bootstrap`): an interval above 0 means
  the challenger is better by more than noise.
* **Raw fields with signal** (:func:`raw_field_importance`): permutation
  importance on the held-out snapshots, per raw field (all the flattened
  columns of one field permuted together, with the evidence columns kept):
  the rise of the challenger's weighted log loss, over ``repeats``
  permutations.  A raw field **carries signal** when the mean rise exceeds
  :data:`MIN_RISE` and twice its standard deviation over the repeats.  Those
  no rule reads (:func:`scoring.model.flatten.fields_read`) are named in the
  training summary and the report, so sales ops can write a rule for them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from scoring.model.flatten import categorise, fields_read, flatten
from scoring.model.metrics import paired_bootstrap, probability_metrics, weighted_log_loss

#: share of the training deals held out to stop the boosting early
VALIDATION_SHARE = 0.1
LEARNING_RATE = 0.05
MAX_ITER = 500
PATIENCE = 20
#: permutations per raw field
REPEATS = 5
#: the smallest mean rise of held-out log loss for a raw field to count as carrying signal
MIN_RISE = 0.002


@dataclass
class ChallengerInput:
    """The challenger's input as one float array: evidence columns (named ``ev:<term>``) beside the
    flattened raw fields, categories as their codes (NaN unknown), ``categorical`` marking them,
    ``raw_field`` naming each raw column's field."""

    X: np.ndarray
    names: list[str]
    categorical: np.ndarray
    raw_field: dict[int, str]


def challenger_input(evidence: np.ndarray, evidence_names: Sequence[str], records: Sequence[Mapping],
                     fields: Mapping, train_rows: np.ndarray) -> ChallengerInput:
    """Build :class:`ChallengerInput` (categories: those seen in the training rows, :func:`categorise`)."""
    raw = categorise(flatten(records, fields), train_rows)
    cols, names, cat, raw_of = [np.asarray(evidence, dtype=np.float64)], [f"ev:{n}" for n in evidence_names], [], {}
    cat = [False] * len(names)
    field_of = raw.attrs["raw_field"]
    for c in raw.columns:
        col = raw[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            cols.append(codes[:, None])
            cat.append(True)
        else:
            cols.append(col.to_numpy(dtype=np.float64)[:, None])
            cat.append(False)
        raw_of[len(names)] = field_of[c]
        names.append(c)
    X = np.hstack(cols)
    # a column with no known value in training says nothing (and scikit-learn's binning fails on it)
    keep = np.flatnonzero(~np.all(np.isnan(X[train_rows]), axis=0))
    new = {int(old): k for k, old in enumerate(keep)}
    return ChallengerInput(np.ascontiguousarray(X[:, keep]), [names[i] for i in keep], np.asarray(cat, bool)[keep],
                           {new[c]: f for c, f in raw_of.items() if c in new})


def fit_challenger(F: ChallengerInput, y: np.ndarray, w: np.ndarray, deal: np.ndarray, train_rows: np.ndarray,
                   seed: int = 0):
    """The fitted ``HistGradientBoostingClassifier`` (see the module docstring) on ``train_rows`` of ``F``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    deals = np.unique(deal[train_rows].astype(str))
    rng = np.random.default_rng(seed)
    val_deals = set(rng.choice(deals, size=max(1, int(round(VALIDATION_SHARE * len(deals)))), replace=False))
    is_val = np.array([d in val_deals for d in deal[train_rows].astype(str)])
    fit_rows, val_rows = train_rows[~is_val], train_rows[is_val]
    if len(np.unique(y[val_rows])) < 2 or len(np.unique(y[fit_rows])) < 2:  # too few deals to stop early
        fit_rows, val_rows = train_rows, None
    gbm = HistGradientBoostingClassifier(
        learning_rate=LEARNING_RATE, max_iter=MAX_ITER if val_rows is not None else 100, max_leaf_nodes=31,
        early_stopping=val_rows is not None, n_iter_no_change=PATIENCE, scoring="loss",
        categorical_features=F.categorical if F.categorical.any() else None, random_state=seed)
    kw = {}
    if val_rows is not None:
        kw = {"X_val": F.X[val_rows], "y_val": y[val_rows], "sample_weight_val": w[val_rows]}
    with threadpool_limits(1):
        gbm.fit(F.X[fit_rows], y[fit_rows], sample_weight=w[fit_rows], **kw)
    return gbm


def raw_field_importance(gbm: Any, F: ChallengerInput, y: np.ndarray, w: np.ndarray, rows: np.ndarray,
                         read: set[str], *, seed: int = 0, repeats: int = REPEATS) -> list[dict[str, Any]]:
    """Permutation importance per raw field on ``rows`` (held out), largest first.

    Each item: ``field``, ``columns`` (how many flattened columns), ``rise``
    (mean rise of weighted log loss), ``sd``, ``signal`` (see the module
    docstring) and ``read_by_rules``.
    """
    from threadpoolctl import threadpool_limits

    groups: dict[str, list[int]] = {}
    for c, fname in F.raw_field.items():
        groups.setdefault(fname, []).append(c)
    X = F.X[rows]
    yy, ww = y[rows], w[rows]
    with threadpool_limits(1):
        base = weighted_log_loss(yy, gbm.predict_proba(X)[:, 1], ww)
        rng = np.random.default_rng(seed)
        out = []
        for fname, cols in groups.items():
            rises = []
            for _ in range(repeats):
                Xp = X.copy()
                Xp[:, cols] = X[rng.permutation(len(X))][:, cols]
                rises.append(weighted_log_loss(yy, gbm.predict_proba(Xp)[:, 1], ww) - base)
            m, sd = float(np.mean(rises)), float(np.std(rises, ddof=1)) if repeats > 1 else 0.0
            out.append({"field": fname, "columns": len(cols), "rise": m, "sd": sd,
                        "signal": bool(m > MIN_RISE and m > 2 * sd), "read_by_rules": fname in read})
    out.sort(key=lambda r: (-r["rise"], r["field"]))
    return out


def run_challenger(evidence: np.ndarray, evidence_names: Sequence[str], records: Sequence[Mapping], pack: Any,
                   y: np.ndarray, w: np.ndarray, deal: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray,
                   p_scorecard: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Fit the challenger on the training rows and judge it on the test rows (see the module docstring).

    Returns ``metrics`` (held-out, as the scorecard's), ``against_scorecard`` (paired bootstrap of
    scorecard minus challenger log loss), ``iterations``, ``raw_fields`` (:func:`raw_field_importance`)
    and ``unread_with_signal`` (the names of the raw fields with signal that no rule reads).
    """
    F = challenger_input(evidence, evidence_names, records, pack.fields, train_rows)
    gbm = fit_challenger(F, y, w, deal, train_rows, seed)
    p = gbm.predict_proba(F.X[test_rows])[:, 1]
    importance = raw_field_importance(gbm, F, y, w, test_rows, fields_read(pack), seed=seed)
    return {"model": "HistGradientBoostingClassifier on the evidence and the flattened raw fields",
            "iterations": int(gbm.n_iter_), "columns": int(F.X.shape[1]),
            "metrics": probability_metrics(y[test_rows], p, w[test_rows]),
            "against_scorecard": paired_bootstrap(y[test_rows], p_scorecard, p, w[test_rows], deal[test_rows],
                                                  seed=seed),
            "raw_fields": importance,
            "unread_with_signal": [r["field"] for r in importance if r["signal"] and not r["read_by_rules"]],
            "p": p}
