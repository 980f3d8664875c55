"""Monitoring a run against what the model was validated on, before outcomes arrive.

* **PSI** (population stability index) of a distribution against a reference:
  ``sum((a - e) * ln(a / e))`` over bins, each share floored at 1e-4; above
  :data:`PSI_FLAG` (0.25) is the usual "the population has shifted" mark.
  The score distribution is compared with the model's held-out predictions (the
  artifact's ``held_out.json``, 10 equal bins of probability): out-of-sample
  predictions of the newest closed deals, as tonight's are out of sample (the
  training part's own predictions, kept in the profile too, are in-sample and so
  a little more extreme).  Each rule's missing / met / unknown shares are compared
  with the model's training data (the artifact's ``training_profile.json``:
  shares on the training snapshots, weighted by deal), ``"reference": "training"``;
  a model saved without a profile falls back to the previous stored run,
  ``"reference": "previous run"``.  The comparison with the previous run is kept
  beside it (``rule_drift_vs_previous``), unflagged in the printed summary.
* **Expected performance** (confidence-based, as NannyML's CBPE): if the model is
  calibrated, a deal with probability ``p`` is won with probability ``p``, so the
  expected log loss of tonight's pipeline is ``mean(-(p ln p + (1-p) ln(1-p)))``
  and the expected Brier score ``mean(p (1-p))``; the calibration table lists, per
  probability decile, the deals and their mean probability (the win rate
  expected when their outcomes arrive).
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from scoring.errors import InputError
from scoring.evidence.status import STATUS_WORDS

#: a PSI above this is flagged
PSI_FLAG = 0.25
_FLOOR = 1e-4
_BINS = np.linspace(0.0, 1.0, 11)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two distributions given as counts (or shares) over the same bins."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.sum() <= 0 or a.sum() <= 0:
        return float("nan")
    e = np.maximum(e / e.sum(), _FLOOR)
    a = np.maximum(a / a.sum(), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def probability_counts(p: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Counts (sums of ``weights`` when given) of probabilities over 10 equal bins (NaN left out)."""
    p = np.asarray(p, dtype=float)
    ok = ~np.isnan(p)
    return np.histogram(p[ok], bins=_BINS, weights=None if weights is None else np.asarray(weights, float)[ok])[0]


def expected_performance(p: np.ndarray) -> dict[str, Any]:
    """Expected log loss, Brier score and calibration table of probabilities ``p`` (see the module docstring)."""
    p = np.asarray(p, dtype=float)
    p = p[~np.isnan(p)]
    if not len(p):
        return {}
    q = np.clip(p, 1e-12, 1 - 1e-12)
    table = []
    for lo, hi in zip(_BINS[:-1], _BINS[1:]):
        m = (p >= lo) & ((p < hi) | (hi == 1.0))
        if m.any():
            table.append({"from": round(float(lo), 1), "to": round(float(hi), 1), "deals": int(m.sum()),
                          "expected_win_rate": round(float(p[m].mean()), 4)})
    return {"expected_log_loss": round(float(np.mean(-(q * np.log(q) + (1 - q) * np.log(1 - q)))), 4),
            "expected_brier": round(float(np.mean(p * (1 - p))), 4), "expected_calibration": table}


#: the columns of :func:`status_counts` (the status codes 0, 1, 2)
STATUS_COLUMNS = STATUS_WORDS
#: what a run's rule shares are compared with (``rule_drift["reference"]``)
REFERENCE_TRAINING, REFERENCE_PREVIOUS = "training", "previous run"
#: each reference in words (the printed summary, the monitor page)
REFERENCE_WORDS = {REFERENCE_TRAINING: "the model's training data", REFERENCE_PREVIOUS: "the previous stored run"}


def drift_reference(rule_drift: Mapping[str, Any] | None) -> str:
    """What a run's ``rule_drift`` compared the rules' shares with, in words (a summary written before
    references were named compared with the previous run)."""
    return REFERENCE_WORDS[(rule_drift or {}).get("reference", REFERENCE_PREVIOUS)]


def rule_drift(now: np.ndarray, before: np.ndarray, rule_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Per rule: tonight's met and unknown shares, and the PSI of its met/missing/unknown shares against
    ``before`` (counts or shares ``(R, 3)`` each, columns :data:`STATUS_COLUMNS`), flagged above
    :data:`PSI_FLAG`."""
    out = []
    for j, rid in enumerate(rule_ids):
        n = now[j].sum()
        v = psi(before[j], now[j])
        out.append({"rule": rid, "met": round(float(now[j, 1] / n), 4) if n else None,
                    "unknown": round(float(now[j, 2] / n), 4) if n else None,
                    "psi": None if v != v else round(v, 4), "flag": bool(v == v and v > PSI_FLAG)})
    return out


def status_counts(status: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``(R, 3)`` counts (sums of ``weights`` when given) of the codes 0/1/2 per rule of a status matrix
    ``(n, R)``; columns :data:`STATUS_COLUMNS`."""
    status = np.asarray(status)
    if weights is None:
        return np.stack([(status == k).sum(axis=0) for k in range(3)], axis=1).astype(np.int64)
    w = np.asarray(weights, dtype=float)
    return np.stack([w @ (status == k) for k in range(3)], axis=1)


def profile_shares(profile: Mapping[str, Any] | None, rule_ids: Sequence[str]) -> np.ndarray | None:
    """The ``(R, 3)`` training shares of a model's training profile (``training_profile.json``) for the
    rules ``rule_ids`` in order, or None without a profile or when its rules are not these."""
    if not profile or [r.get("rule") for r in profile.get("rules") or ()] != list(rule_ids):
        return None
    return np.array([[r[k] for k in STATUS_COLUMNS] for r in profile["rules"]], dtype=float)


def summary(p_now: np.ndarray, reference_p: np.ndarray | None, counts_now: np.ndarray,
            counts_before: np.ndarray | None, rule_ids: Sequence[str], trends: Mapping[str, int],
            training_shares: np.ndarray | None = None) -> dict[str, Any]:
    """The ``monitoring`` part of a run summary.  ``rule_drift`` is against ``training_shares`` (the
    model's training profile, :func:`profile_shares`) when given, else against ``counts_before`` (the
    previous stored run); with both, the previous-run comparison is ``rule_drift_vs_previous``."""
    out: dict[str, Any] = {"trends": dict(trends), "psi_flag_above": PSI_FLAG}
    if reference_p is not None and len(reference_p):
        v = psi(probability_counts(reference_p), probability_counts(p_now))
        out["score_psi"] = {"against": "the model's held-out predictions", "psi": None if v != v else round(v, 4),
                            "flag": bool(v == v and v > PSI_FLAG)}
    out.update(expected_performance(p_now))
    previous = None
    if counts_before is not None:
        drift = rule_drift(counts_now, counts_before, rule_ids)
        previous = {"reference": REFERENCE_PREVIOUS, "against": "the previous stored run",
                    "flagged": [d["rule"] for d in drift if d["flag"]], "rules": drift}
    if training_shares is not None:
        drift = rule_drift(counts_now, training_shares, rule_ids)
        out["rule_drift"] = {"reference": REFERENCE_TRAINING,
                             "against": "the model's training snapshots (shares weighted by deal)",
                             "flagged": [d["rule"] for d in drift if d["flag"]], "rules": drift}
        if previous is not None:
            out["rule_drift_vs_previous"] = previous
    elif previous is not None:
        out["rule_drift"] = previous
    return out


def format_lines(run_summary: Mapping[str, Any]) -> str:
    """The store's lines under a run's printed summary: the append, trends, drift, expected performance."""
    st, m = run_summary.get("store") or {}, run_summary.get("monitoring") or {}
    lines = [f"  store: run {st.get('run_id')} appended to {st.get('url')}"]
    if m.get("trends"):
        lines.append("  trends: " + ", ".join(f"{k} {v:,}" for k, v in sorted(m["trends"].items())))
    if m.get("score_psi"):
        s = m["score_psi"]
        lines.append(f"  score PSI vs the model's held-out predictions: {s['psi']}" + (" (above 0.25: shifted)"
                                                                                        if s["flag"] else ""))
    if m.get("rule_drift"):
        d = m["rule_drift"]
        lines.append(f"  rules drifted from {drift_reference(d)} (PSI > 0.25; reference: "
                     f"{d.get('reference', REFERENCE_PREVIOUS)}): {', '.join(d['flagged']) or 'none'}")
    if "expected_log_loss" in m:
        lines.append(f"  expected log loss if calibrated: {m['expected_log_loss']}  (Brier {m['expected_brier']})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- realized performance

#: days before the close at which the recorded probabilities are judged
HORIZONS = (30, 60, 90)
OUTCOMES = ("won", "lost", "no_decision")


def read_outcomes(path) -> pd.DataFrame:
    """Closed deals from a file: JSON Lines (records of the contract's history form, or any objects) or CSV,
    with ``id`` (or ``deal_id``), ``outcome`` (won, lost, no_decision) and ``closed_at`` (YYYY-MM-DD).
    The last line of a deal wins.  A bad row is an :class:`~scoring.errors.InputError` naming it."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        rows = []
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rec = json.loads(line)
                    except ValueError as exc:
                        raise InputError(f"{path}: line {i}: not JSON ({exc})") from None
                    rows.append({k: rec.get(k) for k in ("id", "deal_id", "outcome", "closed_at")})
        df = pd.DataFrame(rows, columns=["id", "deal_id", "outcome", "closed_at"])
    if "deal_id" not in df.columns or df["deal_id"].isna().all():
        df["deal_id"] = df.get("id")
    for i, r in enumerate(df.itertuples(index=False), 1):
        day = str(r.closed_at or "")
        try:
            ok_day = _dt.date.fromisoformat(day).isoformat() == day
        except ValueError:
            ok_day = False
        if not r.deal_id or r.outcome not in OUTCOMES or not ok_day:
            raise InputError(f"{path}: row {i} (deal {r.deal_id!r}): needs an id, an outcome among "
                             f"{', '.join(OUTCOMES)} and a closed_at date YYYY-MM-DD")
    return df[["deal_id", "outcome", "closed_at"]].drop_duplicates("deal_id", keep="last")


def realized_performance(rows: pd.DataFrame, horizons: Sequence[int] = HORIZONS) -> list[dict[str, Any]]:
    """Per horizon ``h``: each closed deal's probability from its last stored run on or before ``h`` days
    before the close, against the outcome (won = 1; lost and no decision = 0, as in training): deals,
    win rate, mean probability, log loss, Brier, the calibration table, and log loss by model version
    and by stage.  ``rows``: ``deal_id``, ``run_as_of``, ``stage``, ``win_probability``,
    ``model_version``, ``outcome``, ``closed_at`` (:meth:`scoring.store.Store.outcome_rows`)."""
    out = []
    if not len(rows):
        return out
    rows = rows.dropna(subset=["win_probability"]).copy()
    rows["days_before"] = (pd.to_datetime(rows["closed_at"]) - pd.to_datetime(rows["run_as_of"])).dt.days
    for h in horizons:
        r = rows[rows["days_before"] >= h].sort_values(["deal_id", "run_as_of"]).drop_duplicates("deal_id",
                                                                                                   keep="last")
        if not len(r):
            out.append({"days_before_close": h, "deals": 0})
            continue
        p = np.clip(r["win_probability"].to_numpy(dtype=float), 1e-12, 1 - 1e-12)
        y = (r["outcome"] == "won").to_numpy(dtype=float)
        ll = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        table = []
        for lo, hi in zip(_BINS[:-1], _BINS[1:]):
            m = (p >= lo) & ((p < hi) | (hi == 1.0))
            if m.any():
                table.append({"from": round(float(lo), 1), "to": round(float(hi), 1), "deals": int(m.sum()),
                              "mean_probability": round(float(p[m].mean()), 4),
                              "win_rate": round(float(y[m].mean()), 4)})
        r = r.assign(ll=ll)
        out.append({"days_before_close": h, "deals": int(len(r)), "win_rate": round(float(y.mean()), 4),
                    "mean_probability": round(float(p.mean()), 4), "log_loss": round(float(ll.mean()), 4),
                    "brier": round(float(np.mean((p - y) ** 2)), 4), "calibration": table,
                    "by_model": {str(k): {"deals": int(len(g)), "log_loss": round(float(g["ll"].mean()), 4)}
                                 for k, g in r.groupby("model_version", dropna=False)},
                    "by_stage": {str(k): {"deals": int(len(g)), "log_loss": round(float(g["ll"].mean()), 4)}
                                 for k, g in r.groupby("stage")}})
    return out
