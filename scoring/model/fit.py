"""Fitting the scorecard: its design matrix, a penalised logistic fit with sign bounds, and
the choice of the penalties by grouped cross-validation.  Training only (numpy + scipy).

The model
---------
``logit = b0 + X @ beta + D @ delta`` where

* ``X`` holds the **global** columns: per rule, met (a red flag: raised) and,
  for a rule that can be unknown, unknown (missing is the reference); one
  column per stage but the first (staged packs only); per numeric input its
  bins in cumulative coding and its unknown bin (:mod:`scoring.model.binning`).
  A rule or measure counts only at the stages where it applies.
* ``D`` holds the **stage deviations**: per rule applying at two stages or
  more, its met column times "the deal is at stage s", for each stage s where
  it applies.  The rule's met points at stage s are ``beta_j + delta_js``.

Fitting minimises, like scikit-learn's ``LogisticRegression``,
``C * sum_i w_i * logloss_i + 0.5 * ||beta||^2`` (intercept unpenalised), then,
with ``b0`` and ``beta`` held, ``C * sum_i w_i * logloss_i + 0.5 * kappa * ||delta||^2``:
the deviations are shrunk towards 0, i.e. each stage borrows the rule's global
points, more strongly the larger ``kappa`` (a stage with few deals moves
little from the global points).  ``kappa = None`` means no deviations.

**Signs** (``signs="constrained"``, the default): a met column's coefficient
is bounded to its rule's declared direction (>= 0 for checklist items and
milestones, <= 0 for red flags; triggers and facts are free), and so is every
rule's total at each stage (``beta_j + delta_js``); every bin step is bounded
to its input's direction, so a measure's points are monotone.  With
``signs="free"`` only the steps of a measure whose direction was learned from
the data (not declared) stay bounded.  Solved with L-BFGS-B (box bounds).

``C`` (from :data:`C_GRID`) then ``kappa`` (from :data:`KAPPA_GRID`) are chosen
by the lowest weighted log loss over grouped K-fold CV (groups = deals) on the
training part; ties go to the smaller ``C``, and deviations are kept only when
they lower the CV log loss by at least :data:`MIN_CV_GAIN`.  The bins
are learned once on the whole training part before the CV (the held-out test
set never sees them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize

from scoring.contract.schema import STAGES
from scoring.errors import ModelError
from scoring.evidence.status import MET, UNKNOWN
from scoring.model.binning import Bins, fit_bins, thermometer
from scoring.model.inputs import NumericInput, applies_table, declared_direction, is_staged, stage_positions
from scoring.model.scorecard import REFERENCE_STAGE

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: stage-deviation penalty relative to the global one; None: no deviations
KAPPA_GRID = (None, 30.0, 10.0, 3.0)
#: stage deviations are kept only when they lower the CV log loss by at least this much: each adds
#: rows to the points table, so a gain within noise does not pay for them
MIN_CV_GAIN = 0.0005
CV_FOLDS = 5
SIGNS = ("constrained", "free")


@dataclass
class Design:
    """The columns of the fit and how each maps back to the scorecard."""

    X: np.ndarray
    cols: list[tuple[str, int, int]]     # (kind, rule or input index, step) per global column
    bounds: dict[str, list[tuple[float | None, float | None]]]  # signs mode -> bounds per global column
    D: np.ndarray
    dev_cols: list[tuple[int, int]]      # (rule index, stage index) per deviation column
    dev_direction: np.ndarray            # the rule's declared direction per deviation column
    met_col: dict[int, int]              # rule index -> its global met column

    def take(self, rows: np.ndarray) -> "Design":
        """The same columns for ``rows`` only."""
        return Design(self.X[rows], self.cols, self.bounds, self.D[rows], self.dev_cols, self.dev_direction,
                      self.met_col)


def stage_indices(stages: Sequence[str | None]) -> np.ndarray:
    """Stage positions (:func:`scoring.model.inputs.stage_positions`: no stage counts as the first)."""
    return stage_positions(stages)


def numeric_on(inp: NumericInput, stage_idx: np.ndarray) -> np.ndarray:
    """Where a numeric input counts (its stages; every stage when it lists none)."""
    if not inp.stages:
        return np.ones(len(stage_idx), bool)
    return np.isin(stage_idx, [STAGES.index(s) for s in inp.stages])


def learn_bins(inputs: Sequence[NumericInput], numeric: np.ndarray, stage_idx: np.ndarray, y: np.ndarray,
               w: np.ndarray) -> list[Bins]:
    """Bins of each numeric input, learned on the rows where it counts (:func:`~scoring.model.binning.fit_bins`)."""
    out = []
    for m, inp in enumerate(inputs):
        on = numeric_on(inp, stage_idx)
        out.append(fit_bins(numeric[on, m], y[on], w[on], inp.direction))
    return out


def build_design(pack: Any, status: np.ndarray, stage_idx: np.ndarray, numeric: np.ndarray,
                 inputs: Sequence[NumericInput], bins: Sequence[Bins], applicable_only: bool = True) -> Design:
    """The design matrices of :mod:`scoring.model.fit` for evaluated evidence."""
    rules = pack.rules
    n = status.shape[0]
    applies = applies_table(pack, applicable_only)[stage_idx]
    staged = is_staged(pack)
    cols, blocks = [], []
    b_con, b_free = [], []
    met_col = {}
    for j, r in enumerate(rules):
        d = declared_direction(r.kind)
        met_col[j] = len(cols)
        cols.append(("met", j, 0))
        blocks.append(((status[:, j] == MET) & applies[:, j]).astype(np.float64))
        b_con.append((0.0, None) if d > 0 else (None, 0.0) if d < 0 else (None, None))
        b_free.append((None, None))
        if r.unknown_when is not None:
            cols.append(("unknown", j, 0))
            blocks.append(((status[:, j] == UNKNOWN) & applies[:, j]).astype(np.float64))
            b_con.append((None, None))
            b_free.append((None, None))
    if staged:
        for k, s in enumerate(STAGES):
            if s != REFERENCE_STAGE:
                cols.append(("stage", k, 0))
                blocks.append((stage_idx == k).astype(np.float64))
                b_con.append((None, None))
                b_free.append((None, None))
    for m, (inp, b) in enumerate(zip(inputs, bins)):
        on = numeric_on(inp, stage_idx).astype(np.float64)
        steps, unk = thermometer(b.cuts, numeric[:, m])
        bound = (0.0, None) if b.direction > 0 else (None, 0.0)
        for k in range(steps.shape[1]):
            cols.append(("step", m, k + 1))
            blocks.append(steps[:, k] * on)
            b_con.append(bound)
            b_free.append((None, None) if b.declared else bound)
        cols.append(("numeric_unknown", m, 0))
        blocks.append(unk * on)
        b_con.append((None, None))
        b_free.append((None, None))
    X = np.column_stack(blocks) if blocks else np.zeros((n, 0))
    dev_cols, dblocks, ddir = [], [], []
    if staged:
        table = applies_table(pack, applicable_only)
        for j, r in enumerate(rules):
            where = np.flatnonzero(table[:, j])
            if len(where) < 2:
                continue
            met = X[:, met_col[j]]
            for k in where:
                dev_cols.append((j, int(k)))
                dblocks.append(met * (stage_idx == k))
                ddir.append(declared_direction(r.kind))
    D = np.column_stack(dblocks) if dblocks else np.zeros((n, 0))
    return Design(np.ascontiguousarray(X), cols, {"constrained": b_con, "free": b_free}, np.ascontiguousarray(D),
                  dev_cols, np.asarray(ddir, dtype=np.int64), met_col)


def _loss_grad(X: np.ndarray, y: np.ndarray, w: np.ndarray, C: float, penalty: np.ndarray, offset: np.ndarray,
               intercept: bool):
    def f(theta: np.ndarray):
        b0 = theta[0] if intercept else 0.0
        beta = theta[1:] if intercept else theta
        z = offset + b0 + X @ beta
        loss = float(np.dot(w, np.logaddexp(0.0, z) - y * z))
        r = w * (1.0 / (1.0 + np.exp(-z)) - y)
        g_beta = C * (X.T @ r) + penalty * beta
        val = C * loss + 0.5 * float(np.dot(penalty * beta, beta))
        if intercept:
            return val, np.concatenate([[C * r.sum()], g_beta])
        return val, g_beta
    return f


def fit_penalised(X: np.ndarray, y: np.ndarray, w: np.ndarray, C: float, bounds: Sequence[tuple],
                  *, penalty: float | np.ndarray = 1.0, offset: np.ndarray | None = None, intercept: bool = True,
                  x0: np.ndarray | None = None) -> np.ndarray:
    """Minimise ``C * sum w * logloss + 0.5 * penalty * ||beta||^2`` under box ``bounds``
    (one per column; the intercept, first of the result when ``intercept``, is free and unpenalised)."""
    p = X.shape[1]
    pen = np.broadcast_to(np.asarray(penalty, dtype=float), (p,)).copy()
    off = np.zeros(len(y)) if offset is None else offset
    start = np.zeros(p + int(intercept)) if x0 is None else x0.copy()
    all_bounds = ([(None, None)] if intercept else []) + list(bounds)
    lo = np.array([-np.inf if b[0] is None else b[0] for b in all_bounds])
    hi = np.array([np.inf if b[1] is None else b[1] for b in all_bounds])
    start = np.clip(start, lo, hi)
    res = minimize(_loss_grad(X, y.astype(float), w, C, pen, off, intercept), start, jac=True, method="L-BFGS-B",
                   bounds=all_bounds, options={"maxiter": 15000, "maxfun": 30000, "ftol": 1e-12, "gtol": 1e-8})
    if not np.all(np.isfinite(res.x)):
        raise ModelError(f"the scorecard fit did not converge ({res.message})")
    return res.x


def dev_bounds(design: Design, beta: np.ndarray, signs: str) -> list[tuple]:
    """Bounds of the deviations: with constrained signs, the rule's total at each stage keeps its direction."""
    out = []
    for (j, _), d in zip(design.dev_cols, design.dev_direction):
        g = beta[design.met_col[j]]
        if signs == "constrained" and d > 0:
            out.append((-g, None))
        elif signs == "constrained" and d < 0:
            out.append((None, -g))
        else:
            out.append((None, None))
    return out


@dataclass
class Fit:
    """A fitted scorecard's coefficients: intercept, global ``beta``, deviations ``delta``."""

    intercept: float
    beta: np.ndarray
    delta: np.ndarray
    C: float
    kappa: float | None
    signs: str
    cv: list[dict] = field(default_factory=list)

    def logit(self, design: Design) -> np.ndarray:
        z = self.intercept + design.X @ self.beta
        return z + design.D @ self.delta if len(self.delta) else z


def fit_once(design: Design, rows: np.ndarray, y: np.ndarray, w: np.ndarray, C: float, kappa: float | None,
             signs: str, x0: np.ndarray | None = None) -> Fit:
    """Fit global coefficients, then (``kappa`` not None) the stage deviations, on ``rows``."""
    X, yy, ww = design.X[rows], y[rows], w[rows]
    theta = fit_penalised(X, yy, ww, C, design.bounds[signs], x0=x0)
    b0, beta = float(theta[0]), theta[1:]
    delta = np.zeros(design.D.shape[1])
    if kappa is not None and design.D.shape[1]:
        off = b0 + X @ beta
        delta = fit_penalised(design.D[rows], yy, ww, C, dev_bounds(design, beta, signs), penalty=kappa,
                              offset=off, intercept=False)
    return Fit(b0, beta, delta, C, kappa, signs)


def _val_loss(fit: Fit, design: Design, rows: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    z = fit.intercept + design.X[rows] @ fit.beta
    if len(fit.delta):
        z = z + design.D[rows] @ fit.delta
    return float(np.dot(w[rows], np.logaddexp(0.0, z) - y[rows] * z))


def choose_and_fit(design: Design, y: np.ndarray, w: np.ndarray, groups: np.ndarray, *, seed: int = 0,
                   signs: str = "constrained", C: float | None = None, kappa: Any = "cv",
                   folds: int = CV_FOLDS) -> Fit:
    """``C`` then ``kappa`` by grouped CV (unless given; ``kappa=None`` means no deviations), then the final fit.

    Returns the :class:`Fit` with ``cv``: ``{C, kappa, log_loss}`` per grid point tried
    (weighted log loss over all validation snapshots, each deal weighing 1).
    """
    from sklearn.model_selection import GroupKFold

    if signs not in SIGNS:
        raise ModelError(f"signs must be one of {', '.join(SIGNS)}, not {signs!r}")
    n = len(y)
    all_rows = np.arange(n)
    table: list[dict] = []
    need_cv = C is None or kappa == "cv"
    splits = []
    if need_cv:
        k = min(folds, len(set(groups)))
        splits = [(tr, va) for tr, va in GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
            np.zeros(n), y, groups) if len(np.unique(y[tr])) == 2]
        if not splits:
            raise ModelError("cannot choose the penalties: no cross-validation fold has both won and lost deals; "
                             "add history")
        total = sum(float(w[va].sum()) for _, va in splits)
    if C is None:
        losses = {}
        for c in C_GRID:
            losses[c] = sum(_val_loss(fit_once(design, tr, y, w, c, None, signs), design, va, y, w)
                            for tr, va in splits) / total
            table.append({"C": c, "kappa": None, "log_loss": losses[c]})
        C = min(C_GRID, key=lambda c: (round(losses[c], 12), c))
    if kappa == "cv":
        grid = KAPPA_GRID if design.D.shape[1] else (None,)
        losses = {}
        for kp in grid:
            hit = next((r for r in table if r["C"] == C and r["kappa"] is None), None) if kp is None else None
            if hit is not None:
                losses[kp] = hit["log_loss"]
                continue
            losses[kp] = sum(_val_loss(fit_once(design, tr, y, w, C, kp, signs), design, va, y, w)
                             for tr, va in splits) / total
            table.append({"C": C, "kappa": kp, "log_loss": losses[kp]})
        best = min((kp for kp in grid if kp is not None), key=lambda kp: (round(losses[kp], 12), -kp), default=None)
        kappa = best if best is not None and losses[best] <= losses[None] - MIN_CV_GAIN else None
    fit = fit_once(design, all_rows, y, w, float(C), kappa, signs)
    fit.cv = table
    return fit


def scorecard_spec(pack: Any, design: Design, fit: Fit, inputs: Sequence[NumericInput], bins: Sequence[Bins],
                   applicable_only: bool = True) -> dict[str, Any]:
    """The :class:`~scoring.model.scorecard.Model` spec of a fit (its points table)."""
    rules = {j: {"id": r.id, "met": 0.0, "unknown": None, "by_stage": {}} for j, r in enumerate(pack.rules)}
    stage_points: dict[str, float] = {}
    steps: dict[int, list[float]] = {m: [] for m in range(len(inputs))}
    unknown: dict[int, float] = {}
    for (kind, i, _), b in zip(design.cols, fit.beta):
        if kind == "met":
            rules[i]["met"] = float(b)
        elif kind == "unknown":
            rules[i]["unknown"] = float(b)
        elif kind == "stage":
            stage_points[STAGES[i]] = float(b)
        elif kind == "step":
            steps[i].append(float(b))
        else:
            unknown[i] = float(b)
    for (j, k), d in zip(design.dev_cols, fit.delta):
        if d != 0:
            rules[j]["by_stage"][STAGES[k]] = float(d)
    return {"applicable_only": applicable_only, "staged": is_staged(pack), "signs": fit.signs,
            "intercept": float(fit.intercept), "stage_points": stage_points, "rules": list(rules.values()),
            "numeric": [{"input": inp.to_dict(), "bins": b.to_dict(), "steps": steps[m], "unknown": unknown[m]}
                        for m, (inp, b) in enumerate(zip(inputs, bins))],
            "cv": {"C": fit.C, "kappa": fit.kappa, "table": fit.cv}}
