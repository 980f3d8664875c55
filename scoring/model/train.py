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
6. **The scorecard** (:mod:`scoring.model.fit`): the evidence (rule
   statuses, the pack's graded measures, and with ``derived`` its counts and
   day counts) of every kept snapshot is computed once; the numeric inputs'
   monotone bins are learned on the training part
   (:mod:`scoring.model.binning`); ``C`` and the stage-deviation penalty are
   chosen by 5-fold ``GroupKFold`` (by deal id, shuffled with ``seed``) on the
   training part by weighted log loss; then one fit, with the weights bounded
   to the declared directions unless ``signs="free"``.  The other signs mode
   is fitted with the same penalties for the sign report (:func:`sign_report`).
7. **Metrics** on the test set (weighted by deal): ROC AUC, log loss, Brier
   score, expected calibration error over 10 **equal-width** bins of the
   predicted probability, and a reliability table (:mod:`scoring.model.metrics`);
   beside two baselines, the
   training win rate as a constant and the rule score alone mapped to a
   probability by a 1-D logistic regression (Platt scaling) fitted on the
   training snapshots.  And the **challenger** (:mod:`scoring.model.challenger`),
   gradient boosting on the evidence plus the raw fields, on the same split,
   with the raw fields that carry signal no rule reads.
8. **Is it useful** (:func:`scoring.model.metrics.usefulness`): a paired
   bootstrap over held-out deals of the log-loss difference against each
   baseline; the model is useful when both 95% intervals lie below 0
   (``metrics["usefulness"]``; ``scoring train`` exits non-zero otherwise).

Two entries, one path: :func:`train` takes history records (or a file of them) and
:func:`prepare_history` evaluates the rules on them;
:func:`scoring.model.from_store.train_from_store` takes the score store's snapshots
(:func:`~scoring.model.from_store.snapshot_history`: the stored statuses, measures and stages,
joined with the recorded outcomes).  Both give a :class:`History` and its evidence to
:func:`train_on`, which does
steps 3 to 8 and the training profile (:func:`training_profile`, saved beside the model for
monitoring) for both.

Deterministic: records are put in ``(id, as_of)`` order first, the solver
(L-BFGS-B) and the folds are deterministic, so the same data and seed give
an identical scorecard whatever the input order.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from scoring.errors import ModelError
from scoring.evidence.pack import RulePack, load_pack
from scoring.model.fit import C_GRID, CV_FOLDS, KAPPA_GRID
from scoring.model.metrics import (N_BINS, WEIGHTING, paired_bootstrap, probability_metrics, reliability_table,
                                   usefulness, weighted_log_loss)
from scoring.model.scorecard import Model, sigmoid


DROP_REASONS = ("no_outcome", "no_closed_at", "no_as_of", "after_close", "no_decision")
LABELS = {"won": 1, "lost": 0}
#: how ``no_decision`` outcomes count: as lost deals, or dropped
NO_DECISION_AS = ("lost", "drop")


def as_pack(rules: str | Path | RulePack) -> RulePack:
    """``rules`` itself when it is a loaded pack, else the pack loaded from that folder."""
    return rules if isinstance(rules, RulePack) else load_pack(Path(rules))


# --------------------------------------------------------------------------- data preparation
@dataclass
class History:
    """Training rows after the drops, in ``(id, as_of)`` order.

    From files (:func:`prepare_history`) ``records`` are the kept records; from the score store
    (:func:`~scoring.model.from_store.snapshot_history`) there are none (None): the evidence was stored instead.
    """

    records: list[dict] | None
    y: np.ndarray                 # 1 won, 0 lost (or no decision)
    deal: np.ndarray              # deal id per row (object)
    weight: np.ndarray            # 1 / snapshots of the deal
    closed_at: dict[str, str]     # deal id -> closed_at (the latest given)
    drops: dict[str, int]
    n_input: int
    fingerprint: str              # sha256 of the canonical input history (before drops)
    n_deals: int = 0              # distinct deals in the input (before drops)


def canonical_fingerprint(records: Sequence[Mapping]) -> str:
    """sha256 of the history in canonical form: records in ``(id, as_of)``
    order, each as JSON with sorted keys and no spaces."""
    h = hashlib.sha256()
    for rec in sorted(records, key=lambda r: (str(r.get("id")), str(r.get("as_of") or ""))):
        h.update(json.dumps(rec, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def check_no_decision_as(no_decision_as: str) -> None:
    if no_decision_as not in NO_DECISION_AS:
        raise ModelError(f"no_decision_as must be one of {', '.join(NO_DECISION_AS)}, not {no_decision_as!r}")


def label_rows(rows: Sequence[tuple], no_decision_as: str) -> tuple[list[int], dict[str, int], np.ndarray,
                                                                       np.ndarray, np.ndarray, dict[str, str]]:
    """The drops, labels and weights, whatever the source: ``rows`` are ``(id, as_of, outcome, closed_at)``
    in ``(id, as_of)`` order.  Returns the kept positions, the drop counts, and per kept row its label,
    deal and weight, and each kept deal's ``closed_at`` (see the module docstring, steps 1, 2 and 5)."""
    seen: set = set()
    for d, as_of, _o, _c in rows:
        if (d, as_of) in seen:
            raise ModelError(f"record {d}: duplicate (id, as_of) = ({d}, {as_of}) in the history")
        seen.add((d, as_of))
    drops = dict.fromkeys(DROP_REASONS, 0)
    kept: list[int] = []
    for i, (_d, as_of, outcome, closed) in enumerate(rows):
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
            kept.append(i)

    outcome_of: dict[str, str] = {}
    closed_of: dict[str, str] = {}
    n_snap: dict[str, int] = {}
    for i in kept:
        d, _a, o, c = rows[i]
        if outcome_of.setdefault(d, o) != o:
            raise ModelError(f"record {d}: its snapshots disagree on the outcome ({outcome_of[d]} vs {o}); "
                             "fix the history so that each deal has one outcome")
        closed_of[d] = max(closed_of.get(d, c), c)
        n_snap[d] = n_snap.get(d, 0) + 1
    y = np.array([LABELS.get(rows[i][2], 0) for i in kept], dtype=np.int64)
    deal = np.array([rows[i][0] for i in kept], dtype=object)
    weight = np.array([1.0 / n_snap[rows[i][0]] for i in kept], dtype=np.float64)
    return kept, drops, y, deal, weight, closed_of


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

    check_no_decision_as(no_decision_as)
    valid = [validate_record(r, pack.schema) for r in records]
    valid.sort(key=lambda r: (r["id"], r.get("as_of") or ""))
    fp = canonical_fingerprint(valid)
    rows = [(r["id"], r.get("as_of"), r.get("outcome"), r.get("closed_at")) for r in valid]
    kept, drops, y, deal, weight, closed_of = label_rows(rows, no_decision_as)
    return History([valid[i] for i in kept], y, deal, weight, closed_of, drops, len(valid), fp,
                   len({r["id"] for r in valid}))


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
    from scoring.model.inputs import stage_positions
    from scoring.score.rulescore import VectorScorer

    stage_idx = stage_positions(stages)  # a record without a stage (a pack without stages): the first
    return VectorScorer(pack).score(np.asarray(status, dtype=np.int8), stage_idx).score.astype(float)


# --------------------------------------------------------------------------- fitting
@dataclass
class TrainResult:
    """What :func:`train` returns: the model, and everything needed to judge and reproduce it."""

    model: Model
    pack: RulePack
    metrics: dict[str, Any]           # {"model", "base_rate", "rule_score"} -> metrics; "reliability"; "weighting"
    counts: dict[str, Any]            # input / drops / train / test counts
    params: dict[str, Any]            # seed, test_fraction, no_decision_as, min_per_class, C, kappa, signs, ...
    cv: list[dict]                    # [{C, kappa, log_loss}] on the training part (empty when nothing was chosen)
    train_ids: list[str]
    test_ids: list[str]
    data_fingerprint: str
    rule_score_platt: dict[str, float]  # the baseline's slope and intercept (on score / 100)
    #: the test snapshots' predictions (lists ``deal``, ``y``, ``w``, ``p_model``, ``p_rule``, ``score``, and
    #: ``p_challenger`` when a challenger was fitted), saved in the artifact so the report needs no history
    held_out: dict[str, list] | None = None
    #: sign sanity (:func:`sign_report`)
    signs: dict[str, Any] = field(default_factory=dict)
    #: the challenger's verdict (:func:`scoring.model.challenger.run_challenger`, without its predictions), or None
    challenger: dict[str, Any] | None = None
    #: where the history came from: ``{"kind": "file", "path"}``, ``{"kind": "records"}``, or
    #: ``{"kind": "store", "store" (described without password), "runs", "snapshots"}``
    source: dict[str, Any] = field(default_factory=dict)
    #: the training part's rule shares and probability counts (:func:`training_profile`), for monitoring
    training_profile: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def useful(self) -> bool:
        """Whether the model beats both baselines by more than noise (``metrics["usefulness"]``)."""
        return bool(self.metrics["usefulness"]["useful"])

    @property
    def feature_names(self) -> list[str]:
        return self.model.feature_names


def _text(v: Any) -> str | None:
    """A table cell as text, None when empty (None or NaN)."""
    return None if v is None or (isinstance(v, float) and v != v) else str(v)


def sign_report(published: Model, other: Model, ll: Mapping[str, float], difference: Mapping[str, Any]) -> dict:
    """Where learned weights go against the declared directions.

    ``published`` and ``other`` are the same scorecard fitted with constrained
    and free signs (either way round, by ``published.signs``).  Returns
    ``published`` (the mode), ``contradicts`` (the free fit's points-table rows
    against their declared direction: ``term``, ``rule``, ``stage``, ``bin``,
    ``log_odds``, ``direction``), ``held_at_zero`` (rules whose met points the
    constrained fit holds at 0 though the rule has a direction), ``log_loss``
    (held-out, per mode) and ``difference`` (paired bootstrap of constrained minus free).
    """
    free = published if published.signs == "free" else other
    con = other if published.signs == "free" else published
    t = free.points_table()
    bad = t[t["sign"] == "contradicts"]
    z = con.points_table()
    zero = z[(z["sign"] == "zero") & (z["evidence"] == "met") & z["stage"].isna()]
    return {"published": published.signs,
            "contradicts": [{"term": r.term, "rule": _text(r.rule), "stage": _text(r.stage), "bin": _text(r.bin),
                             "log_odds": float(r.step if r.evidence == "bin" else r.log_odds),
                             "direction": int(r.direction)}
                            for r in bad.itertuples(index=False)],
            "held_at_zero": [str(r) for r in zero["rule"]],
            "log_loss": dict(ll), "difference": dict(difference)}


#: how many steps :func:`train` reports to its ``progress`` callback (the last only with the challenger)
TRAIN_STEPS = 5


def train(history_records: Sequence[Mapping] | str | Path, *, rules: str | Path | RulePack, seed: int = 0,
          test_fraction: float = 0.2, no_decision_as: str = "lost", min_per_class: int = 40,
          C: float | None = None, applicable_only: bool = True, signs: str = "constrained",
          derived: bool = False, measures: bool = True, stage_deviations: bool = True,
          challenger: bool = True, progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train the scorecard on closed deals.

    Parameters
    ----------
    history_records : sequence of dict, or a path
        History records (contract form, with ``outcome`` and ``closed_at``);
        a path is read with :func:`scoring.contract.reader.read_records` (its rejects
        are counted under ``counts["input"]["rejected"]``).
    rules : path or RulePack
        The rule pack whose evidence the model learns from.
    seed : int
        Seeds the CV folds, the challenger and the bootstraps.
    test_fraction : float
        Share of distinct deals, the newest by ``closed_at``, held out for the metrics.
    no_decision_as : "lost" or "drop"
    min_per_class : int
        Minimum distinct won and lost deals after the drops.
    C : float, optional
        Inverse regularisation strength; None chooses it by grouped CV on the training part.
    applicable_only : bool
        A rule (or measure) earns points only at the stages where it applies.
    signs : "constrained" or "free"
        Bound each weight to its declared direction (default), or not (:mod:`scoring.model.fit`).
        The other mode is fitted too, with the same penalties, for the sign report.
    derived : bool
        Also enter the pack's derived facts (counts, computed day counts) as binned inputs.  Off by
        default: they are the raw material of the rules and measures (twin terms whose weights
        split and flip), the score store keeps statuses and measures but not them (so a model
        with them cannot re-score stored runs for what-changed), and on the bundled sample they
        changed the held-out log loss by 0.005 (0.444 with, 0.449 without; 239 test deals).
    measures : bool
        Enter the pack's graded measures as binned inputs (False: rule statuses only, for comparisons).
    stage_deviations : bool
        Let CV choose stage-dependent met points (False: global points only).
    challenger : bool
        Fit the gradient-boosting challenger and rank the raw fields (:mod:`scoring.model.challenger`).
    progress : callable, optional
        Called with the name of each step as it starts (:data:`TRAIN_STEPS` of them), for a progress bar.

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
    from scoring.model.inputs import record_evidence

    check_signs(signs)
    step = progress or (lambda _name: None)
    step("reading the history")
    t0 = time.perf_counter()
    pack = as_pack(rules)
    rejected = 0
    source: dict[str, Any] = {"kind": "records"}
    if isinstance(history_records, (str, Path)):
        from scoring.contract.reader import read_records

        source = {"kind": "file", "path": Path(history_records).as_posix()}
        # history=False: a row without outcome is not a bad record here, it is dropped (and counted) below
        rr = read_records(history_records, pack.schema)
        rejected = len(rr.rejects)
        history_records = rr.records
    h = prepare_history(history_records, pack, no_decision_as=no_decision_as)
    return train_on(h, lambda: record_evidence(pack, h.records), pack, source=source, rejected=rejected, t0=t0,
                     step=step, seed=seed, test_fraction=test_fraction, no_decision_as=no_decision_as,
                     min_per_class=min_per_class, C=C, applicable_only=applicable_only, signs=signs,
                     derived=derived, measures=measures, stage_deviations=stage_deviations, challenger=challenger)


def check_signs(signs: str) -> None:
    from scoring.model.fit import SIGNS

    if signs not in SIGNS:
        raise ModelError(f"signs must be one of {', '.join(SIGNS)}, not {signs!r}")


def training_profile(pack: RulePack, status: np.ndarray, w: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """What the model was trained on, for monitoring (:mod:`scoring.store.monitor`): per rule the
    missing / met / unknown shares of the training snapshots and the probability counts of their
    predictions over the monitor's 10 bins, both weighted by deal (``w``: 1 / snapshots of the deal)."""
    from scoring.store.monitor import STATUS_COLUMNS, probability_counts, status_counts

    counts = status_counts(status, w)
    total = float(np.sum(w))
    return {"weighting": WEIGHTING, "snapshots": int(len(w)), "deals": round(total, 6),
            "rules": [{"rule": r.id, **{k: round(float(c[j]) / total, 6) for j, k in enumerate(STATUS_COLUMNS)}}
                      for r, c in zip(pack.rules, counts)],
            "probability_counts": [round(float(v), 6) for v in probability_counts(p, w)]}


def train_on(h: History, evidence_of: Callable[[], Any], pack: RulePack, *, source: dict[str, Any], rejected: int,
              t0: float, step: Callable[[str], None], seed: int, test_fraction: float, no_decision_as: str,
              min_per_class: int, C: float | None, applicable_only: bool, signs: str, derived: bool,
              measures: bool, stage_deviations: bool, challenger: bool,
              no_challenger: str | None = None) -> TrainResult:
    """The one fitting path of :func:`train` and :func:`~scoring.model.from_store.train_from_store`: refusal, split, evidence
    (``evidence_of()``: a :class:`~scoring.model.inputs.RecordEvidence` with a row per row of ``h``),
    bins, fit, metrics, challenger (when ``challenger``; else ``no_challenger`` says why, if given)."""
    from scoring.model.fit import build_design, choose_and_fit, fit_once, learn_bins, scorecard_spec, stage_indices
    from scoring.model.inputs import numeric_values, pack_numeric_inputs

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
    step("evaluating the rules")
    t1 = time.perf_counter()

    e = evidence_of()
    status, stages = e.status, e.stages
    stage_idx = stage_indices(stages)
    inputs = [i for i in pack_numeric_inputs(pack, derived=derived) if measures or i.source != "measure"]
    numeric = numeric_values(pack, inputs, len(stages), e.measures, e.derived, "training")
    scores = rule_scores(pack, status, stages) / 100.0
    y, w = h.y, h.weight
    bins = learn_bins(inputs, numeric[tr], stage_idx[tr], y[tr], w[tr])
    design = build_design(pack, status, stage_idx, numeric, inputs, bins, applicable_only)
    step("fitting the scorecard")
    t2 = time.perf_counter()

    with threadpool_limits(1):  # small fits: oversubscribed BLAS threads only slow them down
        d_tr = design.take(tr)
        fit = choose_and_fit(d_tr, y[tr], w[tr], h.deal[tr], seed=seed, signs=signs, C=C,
                             kappa="cv" if stage_deviations else None)
        other_signs = "free" if signs == "constrained" else "constrained"
        other = fit_once(d_tr, np.arange(len(tr)), y[tr], w[tr], fit.C, fit.kappa, other_signs)
    model = Model(pack, scorecard_spec(pack, design, fit, inputs, bins, applicable_only))
    other_model = Model(pack, scorecard_spec(pack, design, other, inputs, bins, applicable_only))
    step("held-out metrics")
    t3 = time.perf_counter()

    d_te = design.take(te)
    p_model = sigmoid(fit.logit(d_te))
    p_other = sigmoid(other.logit(d_te))
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
    p_con, p_free = (p_model, p_other) if signs == "constrained" else (p_other, p_model)
    ll = {"constrained": weighted_log_loss(y[te], p_con, w[te]), "free": weighted_log_loss(y[te], p_free, w[te])}
    sign = sign_report(model, other_model, ll, paired_bootstrap(y[te], p_con, p_free, w[te], h.deal[te], seed=seed))
    profile = training_profile(pack, status[tr], w[tr], sigmoid(fit.logit(d_tr)))
    t4 = time.perf_counter()
    if challenger:
        step("the challenger")

    chal = None
    held_out = {"deal": h.deal[te].tolist(), "y": y[te].tolist(), "w": w[te].tolist(),
                "p_model": p_model.tolist(), "p_rule": p_rule.tolist(), "score": (100.0 * scores[te]).tolist()}
    if challenger:
        from scoring.model.challenger import run_challenger

        names = [f"{t}" for t in _design_names(design, pack, inputs)]
        chal = run_challenger(design.X, names, h.records, pack, y, w, h.deal, tr, te, p_model, seed=seed)
        held_out["p_challenger"] = chal.pop("p").tolist()
        metrics["challenger"] = chal["metrics"]
    t5 = time.perf_counter()

    counts = {
        "input": {"snapshots": h.n_input + rejected, "rejected": rejected, "deals": h.n_deals},
        "drops": dict(h.drops),
        "kept": deal_counts(h),
        "train": deal_counts(h, train_ids),
        "test": deal_counts(h, test_ids),
        "train_closed": [h.closed_at[train_ids[0]], h.closed_at[train_ids[-1]]],
        "test_closed": [h.closed_at[test_ids[0]], h.closed_at[test_ids[-1]]],
        "split": {"method": split.method, "note": split.note},
    }
    if source.get("kind") == "store":
        counts["input"]["runs"] = source["runs"]
    chosen = C is None
    params = {"seed": seed, "test_fraction": test_fraction, "no_decision_as": no_decision_as,
              "min_per_class": min_per_class, "C": fit.C, "C_grid": list(C_GRID) if chosen else None,
              "kappa": fit.kappa, "kappa_grid": [k for k in KAPPA_GRID] if stage_deviations else None,
              "cv": f"{CV_FOLDS}-fold GroupKFold by deal id on the training part" if fit.cv else None,
              "applicable_only": applicable_only, "signs": signs, "derived": derived, "measures": measures,
              "stage_deviations": stage_deviations, "numeric_inputs": [i.name for i in inputs]}
    if no_challenger:
        params["challenger_skipped"] = no_challenger
    return TrainResult(
        model=model, pack=pack, metrics=metrics, counts=counts, params=params, cv=fit.cv,
        train_ids=list(train_ids), test_ids=list(test_ids), data_fingerprint=h.fingerprint,
        rule_score_platt={"slope": float(platt.coef_[0][0]), "intercept": float(platt.intercept_[0])},
        held_out=held_out, signs=sign, challenger=chal, source=source, training_profile=profile,
        timings={"prepare": t1 - t0, "evidence": t2 - t1, "fit": t3 - t2, "metrics": t4 - t3,
                 "challenger": t5 - t4, "total": t5 - t0},
    )


def _design_names(design, pack: RulePack, inputs) -> list[str]:
    """Names of the design's global columns (the challenger's evidence columns)."""
    from scoring.contract.schema import STAGES

    out = []
    for kind, i, k in design.cols:
        if kind == "met":
            out.append(pack.rules[i].id)
        elif kind == "unknown":
            out.append(pack.rules[i].id + "__unknown")
        elif kind == "stage":
            out.append("stage=" + STAGES[i])
        elif kind == "step":
            out.append(f"{inputs[i].name}>=bin{k}")
        else:
            out.append(inputs[i].name + "__unknown")
    return out
