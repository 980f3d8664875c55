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


# --------------------------------------------------------------------------- is the model useful?
#: deals resampled (with replacement) this many times by :func:`paired_bootstrap`
BOOTSTRAP_RESAMPLES = 2000
#: the two-sided level of the bootstrap interval
BOOTSTRAP_CONFIDENCE = 0.95
#: the baselines a useful model must beat: metrics key -> words
BASELINES = {"base_rate": "the base rate (the training win rate for every deal)",
             "rule_score": "the rule score alone (mapped to a probability)"}


def paired_bootstrap(y: ArrayLike, p_a: ArrayLike, p_b: ArrayLike, w: ArrayLike, deal: ArrayLike, *,
                     resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = BOOTSTRAP_CONFIDENCE,
                     seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap over deals of the weighted log-loss difference ``a - b``.

    Deals (not snapshots) are resampled with replacement, each resample
    keeping all of a deal's snapshots, and both predictions are scored on the
    same resample, so the interval reflects how much the difference would move
    with other deals of the same kind.  A negative difference means ``a`` is
    better.

    Returns
    -------
    dict
        ``difference`` (on the deals given), ``interval`` ``[low, high]``
        (percentiles at ``confidence``), ``deals``, ``resamples``, ``confidence``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([1, 0] * 50); good = np.where(y == 1, 0.8, 0.2)
    >>> r = paired_bootstrap(y, good, np.full(100, 0.5), np.ones(100), np.arange(100))
    >>> r["interval"][1] < 0
    True
    """
    y = np.asarray(y, dtype=float)
    w = np.asarray(w, dtype=float)
    pa = np.clip(np.asarray(p_a, dtype=float), EPS, 1 - EPS)
    pb = np.clip(np.asarray(p_b, dtype=float), EPS, 1 - EPS)

    def loss(p: np.ndarray) -> np.ndarray:
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    _, group = np.unique(np.asarray(deal, dtype=object).astype(str), return_inverse=True)
    n = int(group.max()) + 1 if len(group) else 0
    num = np.bincount(group, weights=w * (loss(pa) - loss(pb)), minlength=n)
    den = np.bincount(group, weights=w, minlength=n)
    diff = float(num.sum() / den.sum()) if n else float("nan")
    if n < 2:
        return {"difference": diff, "interval": [float("nan"), float("nan")], "deals": n,
                "resamples": resamples, "confidence": confidence}
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    boot = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return {"difference": diff, "interval": [float(low), float(high)], "deals": n,
            "resamples": resamples, "confidence": confidence}


def usefulness(y: ArrayLike, p_model: ArrayLike, baselines: Mapping[str, ArrayLike], w: ArrayLike,
               deal: ArrayLike, *, seed: int = 0) -> dict[str, Any]:
    """Whether the model beats every baseline on held-out log loss by more than noise.

    For each baseline, :func:`paired_bootstrap` of ``model - baseline``; the
    model beats it when the whole interval lies below 0.  ``useful`` is true
    when it beats all of them.

    Returns
    -------
    dict
        ``useful``, ``baselines`` (name -> the bootstrap result plus ``beats``),
        ``rule`` (the criterion in words).
    """
    out = {}
    for name, p_base in baselines.items():
        b = paired_bootstrap(y, p_model, p_base, w, deal, seed=seed)
        out[name] = {**b, "beats": bool(b["interval"][1] < 0)}
    return {"useful": all(v["beats"] for v in out.values()), "baselines": out,
            "rule": (f"the {BOOTSTRAP_CONFIDENCE:.0%} interval of a paired bootstrap over held-out deals "
                     f"({BOOTSTRAP_RESAMPLES} resamples) of the log-loss difference, model minus baseline, "
                     "lies below 0 for every baseline")}


def usefulness_warning(verdict: Mapping[str, Any]) -> str:
    """The plain-words warning for a model that is not useful (see :func:`usefulness`)."""
    parts = []
    for name, b in verdict["baselines"].items():
        if not b["beats"]:
            lo, hi = b["interval"]
            parts.append(f"{BASELINES.get(name, name)}: log loss {b['difference']:+.4f} against it, "
                         f"{b['confidence']:.0%} interval {lo:+.4f} .. {hi:+.4f} over {b['deals']} held-out deals")
    return ("this model does not beat " + ("both baselines" if len(parts) > 1 else "a baseline")
            + " on its held-out deals by more than noise (" + "; ".join(parts) + "): its probabilities are "
            "no better than the simpler figure.")
