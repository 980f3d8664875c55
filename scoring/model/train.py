"""Training the win-probability model on closed deals (history).

Steps, each with counts in the result
-------------------------------------
1. **Drops** (:func:`prepare_history`).  A snapshot is dropped, and counted
   under the first reason that applies, when it has no ``outcome``, no
   ``closed_at`` or no ``as_of``, when it was taken on or after its deal's
   close (``as_of >= closed_at``: it could see the outcome, i.e. leakage), or
   when its outcome is ``no_decision`` and ``no_decision_as="drop"``.
2. **Labels**: ``won`` = 1, ``lost`` = 0, ``no_decision`` = 0 (an abandoned
   deal is not won) unless dropped.
3. **Refusal**: fewer than ``min_per_class`` distinct won or lost deals after
   the drops raises :class:`~scoring.errors.ModelError` with the counts.
4. **Split by deal and by time** (:func:`split_deals`): deals are ordered by
   ``closed_at`` (then id); the newest ``test_fraction`` of them form the test
   set.  Every snapshot of a deal is on its deal's side, so no id is on both
   sides, and ``max(closed_at of train deals) < min(closed_at of test deals)``
   (a day whose deals straddle the cut goes to one side).  When close dates
   cannot order the deals (e.g. all the same) the split falls back to a hash
   of the deal id, and says so (``counts["split"]``).
5. **Weights**: each deal weighs the same however many snapshots it has:
   ``sample_weight = 1 / n_snapshots`` of its deal (after the drops).  Fitting
   and every metric use these weights.
6. **C**: unless given, chosen among :data:`C_GRID` by 5-fold ``GroupKFold``
   (by deal id, shuffled with ``seed``) on the training part only, by weighted
   log loss (scikit-learn's ``GridSearchCV``, see :func:`choose_C`).  Evidence
   is computed once; CV refits only the regression.
7. **Metrics** on the test set (weighted by deal): ROC AUC, log loss, Brier
   score, expected calibration error over 10 **equal-width** bins of the
   predicted probability, and a reliability table (:mod:`scoring.model.metrics`);
   beside two baselines, the
   training win rate as a constant and the rule score alone mapped to a
   probability by a 1-D logistic regression (Platt scaling) fitted on the
   training snapshots.
8. **Is it useful** (:func:`scoring.model.metrics.usefulness`): a paired
   bootstrap over held-out deals of the log-loss difference against each
   baseline; the model is useful when both 95% intervals lie below 0
   (``metrics["usefulness"]``; ``scoring train`` exits non-zero otherwise).

Deterministic: records are put in ``(id, as_of)`` order first, the solver
(lbfgs) and the folds are deterministic, so the same data and seed give
identical coefficients whatever the input order.

Stage interactions (evidence x stage) were measured on the synthetic history
and lowered the test log loss only within noise, so the model has none (see
:mod:`scoring.model.features`).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, make_scorer
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from scoring.errors import ModelError
from scoring.evidence.pack import RulePack
from scoring.model.features import EvidenceTransformer, as_pack
from scoring.model.logistic import Model
from scoring.model.metrics import N_BINS, WEIGHTING, probability_metrics, reliability_table, usefulness

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
CV_FOLDS = 5
DROP_REASONS = ("no_outcome", "no_closed_at", "no_as_of", "after_close", "no_decision")
LABELS = {"won": 1, "lost": 0}
#: how ``no_decision`` outcomes count: as lost deals, or dropped
NO_DECISION_AS = ("lost", "drop")


# --------------------------------------------------------------------------- data preparation
@dataclass
class History:
    """Training rows after the drops, in ``(id, as_of)`` order."""

    records: list[dict]
    y: np.ndarray                 # 1 won, 0 lost (or no decision)
    deal: np.ndarray              # deal id per row (object)
    weight: np.ndarray            # 1 / snapshots of the deal
    closed_at: dict[str, str]     # deal id -> closed_at (the latest given)
    drops: dict[str, int]
    n_input: int
    fingerprint: str              # sha256 of the canonical input history (before drops)


def canonical_fingerprint(records: Sequence[Mapping]) -> str:
    """sha256 of the history in canonical form: records in ``(id, as_of)``
    order, each as JSON with sorted keys and no spaces."""
    h = hashlib.sha256()
    for rec in sorted(records, key=lambda r: (str(r.get("id")), str(r.get("as_of") or ""))):
        h.update(json.dumps(rec, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def prepare_history(records: Sequence[Mapping], pack: RulePack, *, no_decision_as: str = "lost") -> History:
    """Validate, drop (with counts), label and weight history records.

    Records are validated against the pack's schema (a bad record raises
    :class:`~scoring.errors.RecordError` naming it); a missing outcome is a
    counted drop here, not an error.

    Raises
    ------
    ModelError
        ``no_decision_as`` is not one of :data:`NO_DECISION_AS`; two snapshots
        share an ``(id, as_of)``; the snapshots of a deal disagree on its outcome.
    """
    from scoring.contract.nested import validate_record

    if no_decision_as not in NO_DECISION_AS:
        raise ModelError(f"no_decision_as must be one of {', '.join(NO_DECISION_AS)}, not {no_decision_as!r}")
    valid = [validate_record(r, pack.schema) for r in records]
    valid.sort(key=lambda r: (r["id"], r.get("as_of") or ""))
    fp = canonical_fingerprint(valid)
    seen: set = set()
    for r in valid:
        key = (r["id"], r.get("as_of"))
        if key in seen:
            raise ModelError(f"record {r['id']}: duplicate (id, as_of) = ({r['id']}, {r.get('as_of')}) in the history")
        seen.add(key)

    drops = dict.fromkeys(DROP_REASONS, 0)
    kept: list[dict] = []
    for r in valid:
        outcome, closed, as_of = r.get("outcome"), r.get("closed_at"), r.get("as_of")
        if outcome is None:
            drops["no_outcome"] += 1
        elif closed is None:
            drops["no_closed_at"] += 1
        elif as_of is None:
            drops["no_as_of"] += 1
        elif as_of >= closed:
            drops["after_close"] += 1
        elif outcome == "no_decision" and no_decision_as == "drop":
            drops["no_decision"] += 1
        else:
            kept.append(r)

    outcome_of: dict[str, str] = {}
    closed_of: dict[str, str] = {}
    n_snap: dict[str, int] = {}
    for r in kept:
        d = r["id"]
        o = r["outcome"]
        if outcome_of.setdefault(d, o) != o:
            raise ModelError(f"record {d}: its snapshots disagree on the outcome ({outcome_of[d]} vs {o}); "
                             "fix the history so that each deal has one outcome")
        closed_of[d] = max(closed_of.get(d, r["closed_at"]), r["closed_at"])
        n_snap[d] = n_snap.get(d, 0) + 1
    y = np.array([LABELS.get(r["outcome"], 0) for r in kept], dtype=np.int64)
    deal = np.array([r["id"] for r in kept], dtype=object)
    weight = np.array([1.0 / n_snap[r["id"]] for r in kept], dtype=np.float64)
    return History(kept, y, deal, weight, closed_of, drops, len(valid), fp)


def deal_counts(h: History, ids: Iterable[str] | None = None) -> dict[str, int]:
    """Snapshots, deals, and won / lost (incl. no decision) deals among ``ids`` (default all)."""
    mask = np.ones(len(h.deal), bool) if ids is None else np.isin(h.deal, list(ids))
    deals = {}
    for d, yy in zip(h.deal[mask], h.y[mask]):
        deals[d] = yy
    won = int(sum(v == 1 for v in deals.values()))
    return {"snapshots": int(mask.sum()), "deals": len(deals), "won": won, "lost": len(deals) - won}


def check_enough(h: History, min_per_class: int) -> None:
    """Refuse a history with fewer than ``min_per_class`` won or lost distinct deals."""
    c = deal_counts(h)
    if c["won"] < min_per_class or c["lost"] < min_per_class:
        dropped = sum(h.drops.values())
        raise ModelError(
            f"too little history to train: found {c['won']} won and {c['lost']} lost distinct deals "
            f"({c['snapshots']} snapshots kept of {h.n_input}; {dropped} dropped: "
            + ", ".join(f"{k} {v}" for k, v in h.drops.items() if v)
            + f"); need at least {min_per_class} of each. Add closed deals or lower min_per_class.")


@dataclass
class Split:
    """The deals of each side of the held-out split, and how it was made.

    Unpacks as ``train, test``.  ``method`` is ``"time"`` (the newest deals
    are the test set) or ``"deal_hash"`` (the fallback when close dates cannot
    order the deals: a fixed pseudo-random choice of deals by a hash of their
    id); ``note`` says in words what was done when the split is not the plain
    time split (None otherwise).
    """

    train: list[str]
    test: list[str]
    method: str
    note: str | None = None

    def __iter__(self):
        return iter((self.train, self.test))


#: how :func:`split_deals` made a split
SPLIT_METHODS = ("time", "deal_hash")


def _id_hash(deal_id: str) -> str:
    return hashlib.sha256(str(deal_id).encode("utf-8")).hexdigest()


def split_deals(closed_at: Mapping[str, str], test_fraction: float) -> Split:
    """Split deal ids by time: the newest ``test_fraction`` (by ``closed_at``, then id) are the test set.

    Returns a :class:`Split` (unpacks as ``train_ids, test_ids``, each in
    ``(closed_at, id)`` order).  With ``method == "time"``,
    ``closed_at[t] < closed_at[s]`` for every train deal ``t`` and test deal ``s``:
    when deals closed on one day straddle the cut, the cut moves to the nearer
    change of date (all of that day's deals on one side), provided the test set
    stays between half and twice its intended size; the note says so.
    When no such cut exists (e.g. every deal has the same ``closed_at``),
    close dates cannot order the deals and the split falls back, explicitly
    (``method == "deal_hash"``, with a note), to the intended number of test
    deals chosen by a hash of their id: still by deal, but not by time.

    Raises
    ------
    ModelError
        ``test_fraction`` is not strictly between 0 and 1.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ModelError(f"test_fraction must be between 0 and 1 (exclusive), not {test_fraction}")
    order = sorted(closed_at, key=lambda d: (closed_at[d], d))
    n = len(order)
    n_test = min(n - 1, max(1, int(round(test_fraction * n))))
    cut = n - n_test
    if n < 2 or closed_at[order[cut - 1]] < closed_at[order[cut]]:
        return Split(order[:cut], order[cut:], "time")
    day = closed_at[order[cut]]
    same = [i for i, d in enumerate(order) if closed_at[d] == day]
    lo, hi = same[0], same[-1] + 1
    fits = [c for c in (lo, hi) if 0 < c < n and n_test / 2 <= n - c <= 2 * n_test]
    if fits:
        c = min(fits, key=lambda c: (abs((n - c) - n_test), c))
        side = "test" if c == lo else "training"
        return Split(order[:c], order[c:], "time",
                     f"{hi - lo} deals closed on {day} straddled the cut: all of them are on the {side} side "
                     f"({n - c} test deals instead of {n_test})")
    by_hash = sorted(order, key=lambda d: (_id_hash(d), d))
    test = set(by_hash[:n_test])
    return Split([d for d in order if d not in test], [d for d in order if d in test], "deal_hash",
                 f"close dates cannot order the deals ({hi - lo} of {n} deals closed on {day}): the {n_test} "
                 "test deals were chosen by a hash of their id instead of being the newest, so the held-out "
                 "figures say how the model does on deals like the training ones, not on later ones")


def rule_scores(pack: RulePack, status: np.ndarray, stages: Sequence[str]) -> np.ndarray:
    """The rule score (0..100) of each row of status codes (0 missing, 1 met, 2 unknown).

    The one formula, column-wise (:class:`scoring.score.rulescore.VectorScorer`).
    """
    from scoring.contract.schema import STAGE_INDEX
    from scoring.score.rulescore import VectorScorer

    stage_idx = np.fromiter((STAGE_INDEX[s] for s in stages), dtype=np.int64, count=len(stages))
    return VectorScorer(pack).score(np.asarray(status, dtype=np.int8), stage_idx).score.astype(float)


# --------------------------------------------------------------------------- fitting
@dataclass
class TrainResult:
    """What :func:`train` returns: the model, and everything needed to judge and reproduce it."""

    model: Model
    pack: RulePack
    metrics: dict[str, Any]           # {"model", "base_rate", "rule_score"} -> metrics; "reliability"; "weighting"
    counts: dict[str, Any]            # input / drops / train / test counts
    params: dict[str, Any]            # seed, test_fraction, no_decision_as, min_per_class, C, C_grid, cv
    cv: list[dict]                    # [{C, log_loss}] on the training part (empty when C was given)
    train_ids: list[str]
    test_ids: list[str]
    data_fingerprint: str
    rule_score_platt: dict[str, float]  # the baseline's slope and intercept (on score / 100)
    #: the test snapshots' predictions (lists ``deal``, ``y``, ``w``, ``p_model``, ``p_rule``, ``score``),
    #: saved in the artifact so the report can draw its curves without the history
    held_out: dict[str, list] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def useful(self) -> bool:
        """Whether the model beats both baselines by more than noise (``metrics["usefulness"]``)."""
        return bool(self.metrics["usefulness"]["useful"])

    @property
    def pipeline(self) -> Pipeline:
        return self.model.pipeline

    @property
    def feature_names(self) -> list[str]:
        return self.model.feature_names


def logistic_regression(C: float, seed: int) -> LogisticRegression:
    """The model's (unfitted) regression: lbfgs, tight tolerance, so fits are reproducible."""
    return LogisticRegression(C=C, solver="lbfgs", max_iter=5000, tol=1e-8, random_state=seed)


def choose_C(X: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray, *, seed: int = 0,
             grid: Sequence[float] = C_GRID, folds: int = CV_FOLDS) -> tuple[float, list[dict]]:
    """``C`` of the lowest weighted log loss in grouped K-fold CV (groups = deal ids).

    ``GridSearchCV`` fits every ``C`` on every fold with the weights ``w`` and
    scores each validation fold by its **summed** weighted log loss; the sum
    over the folds divided by their total weight is the weighted log loss over
    all validation snapshots (each deal weighs 1, whichever fold it is in),
    which ``GridSearchCV``'s plain mean of per-fold means would not be.  A fold
    whose training part holds one outcome only is left out.  Ties go to the
    smaller ``C``.

    Returns
    -------
    C : float
    table : list of dict
        ``{C, log_loss}`` per grid value, in grid order.

    Raises
    ------
    ModelError
        No fold has both outcomes in its training part.
    """
    k = min(folds, len(set(groups)))
    splits = [(tr, va) for tr, va in GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(X, y, groups)
              if len(np.unique(y[tr])) == 2]
    if not splits:
        raise ModelError("cannot choose C: no cross-validation fold has both won and lost deals to learn from; "
                         "add history or pass C")
    with sklearn.config_context(enable_metadata_routing=True):
        summed_loss = make_scorer(log_loss, greater_is_better=False, response_method="predict_proba",
                                  normalize=False, labels=[0, 1]).set_score_request(sample_weight=True)
        search = GridSearchCV(logistic_regression(1.0, seed).set_fit_request(sample_weight=True),
                              {"C": list(grid)}, scoring=summed_loss, cv=splits, refit=False)
        search.fit(X, y, sample_weight=w)
    total_weight = sum(float(w[va].sum()) for _, va in splits)
    fold_losses = -np.array([search.cv_results_[f"split{i}_test_score"] for i in range(len(splits))])
    table = [{"C": C, "log_loss": float(loss)} for C, loss in zip(grid, fold_losses.sum(axis=0) / total_weight)]
    best = min(table, key=lambda r: (round(r["log_loss"], 12), r["C"]))
    return best["C"], table


def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray, *, seed: int = 0,
                 C: float | None = None) -> tuple[LogisticRegression, float, list[dict]]:
    """Fit the regression on evidence ``X``: ``C`` by :func:`choose_C` unless given, then one weighted fit.

    Returns ``(fitted regression, C, CV table)`` (the table is empty when ``C`` was given).
    """
    table: list[dict] = []
    # one BLAS thread: the fits are small, and oversubscribed threads made them ~6x slower
    with threadpool_limits(1):
        if C is None:
            C, table = choose_C(X, y, w, groups, seed=seed)
        lr = logistic_regression(float(C), seed).fit(X, y, sample_weight=w)
    return lr, float(C), table


def train(history_records: Sequence[Mapping] | str | Path, *, rules: str | Path | RulePack, seed: int = 0,
          test_fraction: float = 0.2, no_decision_as: str = "lost", min_per_class: int = 40,
          C: float | None = None, applicable_only: bool = True) -> TrainResult:
    """Train the evidence + logistic-regression model on closed deals.

    Parameters
    ----------
    history_records : sequence of dict, or a path
        History records (contract form, with ``outcome`` and ``closed_at``);
        a path is read with :func:`scoring.contract.reader.read_records` (its rejects
        are counted under ``counts["input"]["rejected"]``).
    rules : path or RulePack
        The rule pack whose evidence the model learns from (the bundled one is
        :func:`scoring.paths.default_rules`).
    seed : int
        Seeds the CV folds (and the solver, which does not use it).
    test_fraction : float
        Share of distinct deals, the newest by ``closed_at``, held out for the metrics.
    no_decision_as : "lost" or "drop"
    min_per_class : int
        Minimum distinct won and lost deals after the drops.
    C : float, optional
        Inverse regularisation strength; None chooses it by grouped CV on the training part.
    applicable_only : bool
        See :class:`~scoring.model.features.EvidenceTransformer`.

    Returns
    -------
    TrainResult

    Raises
    ------
    ModelError
        Too little data (with the counts), a split with one class only, or a bad parameter.
    RecordError
        A history record breaks the contract.
    """
    t0 = time.perf_counter()
    pack = as_pack(rules)
    rejected = 0
    if isinstance(history_records, (str, Path)):
        from scoring.contract.reader import read_records

        # history=False: a row without outcome is not a bad record here, it is dropped (and counted) below
        rr = read_records(history_records, pack.schema)
        rejected = len(rr.rejects)
        history_records = rr.records
    h = prepare_history(history_records, pack, no_decision_as=no_decision_as)
    check_enough(h, min_per_class)
    split = split_deals(h.closed_at, test_fraction)
    train_ids, test_ids = split
    in_test = np.isin(h.deal, test_ids)
    tr, te = np.flatnonzero(~in_test), np.flatnonzero(in_test)
    if set(h.deal[tr]) & set(h.deal[te]):  # by construction; a cheap guard that never trips silently
        raise ModelError("internal error: a deal is on both sides of the split")
    for side, idx in (("training", tr), ("test", te)):
        if len(np.unique(h.y[idx])) < 2:
            raise ModelError(f"the {side} part holds only {'won' if h.y[idx][0] else 'lost'} deals; "
                             "add history or change test_fraction")
    t1 = time.perf_counter()

    evidence = EvidenceTransformer(pack, applicable_only=applicable_only).fit(h.records)
    status, stages = evidence.statuses(h.records)
    X = evidence.transform_statuses(status, stages)
    scores = rule_scores(pack, status, stages) / 100.0
    t2 = time.perf_counter()

    y, w = h.y, h.weight
    lr, C, cv_table = fit_logistic(X[tr], y[tr], w[tr], h.deal[tr], seed=seed, C=C)
    model = Model(Pipeline([("evidence", evidence), ("model", lr)]))
    t3 = time.perf_counter()

    p_model = lr.predict_proba(X[te])[:, 1]
    base = float(np.average(y[tr], weights=w[tr]))
    platt = LogisticRegression(C=1e6, solver="lbfgs", max_iter=5000, tol=1e-10).fit(
        scores[tr].reshape(-1, 1), y[tr], sample_weight=w[tr])
    p_rule = platt.predict_proba(scores[te].reshape(-1, 1))[:, 1]
    metrics = {
        "model": probability_metrics(y[te], p_model, w[te]),
        "base_rate": {**probability_metrics(y[te], np.full(len(te), base), w[te]), "p": base},
        "rule_score": probability_metrics(y[te], p_rule, w[te]),
        "reliability": {"model": reliability_table(y[te], p_model, w[te]),
                        "rule_score": reliability_table(y[te], p_rule, w[te])},
        "weighting": WEIGHTING,
        "calibration_bins": f"{N_BINS} equal-width bins of the predicted probability",
        "usefulness": usefulness(y[te], p_model, {"base_rate": np.full(len(te), base), "rule_score": p_rule},
                                 w[te], h.deal[te], seed=seed),
    }
    counts = {
        "input": {"snapshots": h.n_input + rejected, "rejected": rejected,
                  "deals": len({r["id"] for r in history_records})},
        "drops": dict(h.drops),
        "kept": deal_counts(h),
        "train": deal_counts(h, train_ids),
        "test": deal_counts(h, test_ids),
        "train_closed": [h.closed_at[train_ids[0]], h.closed_at[train_ids[-1]]],
        "test_closed": [h.closed_at[test_ids[0]], h.closed_at[test_ids[-1]]],
        "split": {"method": split.method, "note": split.note},
    }
    params = {"seed": seed, "test_fraction": test_fraction, "no_decision_as": no_decision_as,
              "min_per_class": min_per_class, "C": C, "C_grid": list(C_GRID) if cv_table else None,
              "cv": f"{CV_FOLDS}-fold GroupKFold by deal id on the training part" if cv_table else None,
              "applicable_only": applicable_only}
    t4 = time.perf_counter()
    return TrainResult(
        model=model, pack=pack, metrics=metrics, counts=counts, params=params, cv=cv_table,
        train_ids=list(train_ids), test_ids=list(test_ids), data_fingerprint=h.fingerprint,
        rule_score_platt={"slope": float(platt.coef_[0][0]), "intercept": float(platt.intercept_[0])},
        held_out={"deal": h.deal[te].tolist(), "y": y[te].tolist(), "w": w[te].tolist(),
                  "p_model": p_model.tolist(), "p_rule": p_rule.tolist(), "score": (100.0 * scores[te]).tolist()},
        timings={"prepare": t1 - t0, "evidence": t2 - t1, "fit": t3 - t2, "metrics": t4 - t3, "total": t4 - t0},
    )
