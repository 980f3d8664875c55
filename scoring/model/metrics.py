"""Probability metrics and calibration tables, each weighted (a deal weighs 1).

Used by training (the held-out figures of the manifest) and by the report (the
same figures recomputed on a history, the reliability diagram, and
:func:`baseline_verdict`), so both compute them the same way.

Calibration uses :data:`N_BINS` **equal-width** bins of the predicted
probability; the expected calibration error (ECE) is the weighted mean, over
the bins, of ``|mean predicted - observed win rate|``.

Examples
--------
>>> import numpy as np
>>> y, p, w = np.array([0, 1, 1, 0]), np.array([0.05, 0.05, 0.95, 0.95]), np.ones(4)
>>> round(expected_calibration_error(y, p, w), 6)
0.45
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

#: bins of the reliability table and the ECE
N_BINS = 10
#: probabilities are clipped to [EPS, 1 - EPS] before the log loss (a 0 or 1 would make it infinite)
EPS = 1e-15
#: what the metrics' weights mean (written into the manifest)
WEIGHTING = "each deal weighs 1 (a snapshot weighs 1 / its deal's snapshots)"


def reliability_table(y: ArrayLike, p: ArrayLike, w: ArrayLike, n_bins: int = N_BINS) -> list[dict[str, Any]]:
    """The reliability table over equal-width bins of the predicted probability.

    Parameters
    ----------
    y : array of 0/1
        Outcomes (1 won).
    p : array of float
        Predicted win probabilities.
    w : array of float
        Weights (``1 / snapshots of the deal``).
    n_bins : int
        Number of bins of ``[0, 1]``.

    Returns
    -------
    list of dict
        Per bin: ``bin``, ``lower``, ``upper``, ``mean_predicted`` and
        ``observed_rate`` (both weighted), ``count`` (snapshots) and ``weight``
        (summed weight, in deals).  An empty bin is listed with None rates.
    """
    y, p, w = (np.asarray(a, dtype=float) for a in (y, p, w))
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = idx == b
        W = float(w[m].sum())
        rows.append({"bin": b, "lower": b / n_bins, "upper": (b + 1) / n_bins,
                     "mean_predicted": float(np.average(p[m], weights=w[m])) if W > 0 else None,
                     "observed_rate": float(np.average(y[m], weights=w[m])) if W > 0 else None,
                     "count": int(m.sum()), "weight": round(W, 6)})
    return rows


def expected_calibration_error(y: ArrayLike, p: ArrayLike, w: ArrayLike, n_bins: int = N_BINS) -> float:
    """Weighted ECE over equal-width bins: ``sum_b W_b / W * |mean_predicted_b - observed_b|``."""
    w = np.asarray(w, dtype=float)
    total = w.sum()
    return float(sum(r["weight"] / total * abs(r["mean_predicted"] - r["observed_rate"])
                     for r in reliability_table(y, p, w, n_bins) if r["weight"] > 0))


def weighted_log_loss(y: ArrayLike, p: ArrayLike, w: ArrayLike) -> float:
    """Weighted log loss of win probabilities ``p`` (clipped to ``[EPS, 1 - EPS]``)."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return float(log_loss(np.asarray(y), p, sample_weight=w, labels=[0, 1]))


def probability_metrics(y: ArrayLike, p: ArrayLike, w: ArrayLike, n_bins: int = N_BINS) -> dict[str, Any]:
    """ROC AUC (None with one outcome only), log loss, Brier score and ECE, each weighted by ``w``."""
    y = np.asarray(y)
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    auc = float(roc_auc_score(y, p, sample_weight=w)) if len(np.unique(y)) == 2 else None
    return {"roc_auc": auc,
            "log_loss": weighted_log_loss(y, p, w),
            "brier": float(brier_score_loss(y, p, sample_weight=w)),
            "ece": expected_calibration_error(y, p, w, n_bins)}


def baseline_verdict(metrics: Mapping[str, Any]) -> str:
    """Which baselines the model beats on held-out log loss (strictly lower).

    Returns ``"both"``, ``"base_rate"`` (only that one), ``"rule_score"``
    (only that one), ``"neither"``, or ``"unknown"`` when a log loss is missing.

    >>> baseline_verdict({"model": {"log_loss": 0.4}, "base_rate": {"log_loss": 0.5},
    ...                   "rule_score": {"log_loss": 0.45}})
    'both'
    """
    try:
        m = float(metrics["model"]["log_loss"])
        b = float(metrics["base_rate"]["log_loss"])
        r = float(metrics["rule_score"]["log_loss"])
    except (KeyError, TypeError, ValueError):
        return "unknown"
    if any(math.isnan(v) for v in (m, b, r)):
        return "unknown"
    beats_b, beats_r = m < b, m < r
    return "both" if beats_b and beats_r else "base_rate" if beats_b else "rule_score" if beats_r else "neither"
