"""Monotone bins of a graded measure, learned from the history (numpy only).

A graded measure (a count of slips, a level, a duration in days) enters the
scorecard as **bins**, like a credit scorecard: each bin earns its own points,
and "unknown" is a bin of its own, never folded into a value.

How the bins are learned (:func:`fit_bins`), on the training snapshots only
---------------------------------------------------------------------------
1. **Pre-bins**: the cut points are the distinct weighted quantiles of the
   known values at ``1/max_bins, 2/max_bins, ...`` (a measure with at most
   ``max_bins`` distinct values gets one pre-bin per value).  A bin is
   ``[cut_i, cut_(i+1))``; the first is everything below the first cut and
   the last everything from the last cut up.
2. **Minimum size**: a bin holding less than ``min_share`` of the known
   weight (deals, each weighing 1) is merged into its smaller neighbour, so
   no bin's points rest on a handful of deals.
3. **Monotone in the declared direction**: adjacent bins are merged
   (pool-adjacent-violators) until the weighted win rate strictly rises from
   bin to bin (``direction`` +1) or strictly falls (-1).  A measure without a
   declared direction (0, e.g. a count the pack computes for its rules) takes
   the direction of the weighted correlation of value and outcome on the
   training snapshots, and the table says it was learned.

Why our own binning rather than optbinning: optbinning pulls in ortools (a
large native dependency) for a mixed-integer search whose gain over the
greedy merge above is small for the few distinct values our measures take
(counts and levels of 0..10, durations in days); the greedy merge is a dozen
lines, deterministic and keeps scoring numpy-only.

The points then come from the fit, not from the bin rates: the bins enter the
logistic model in **cumulative ("thermometer") coding** (:func:`thermometer`):
column ``k`` is 1 when the value is in bin ``k`` or above, so bin ``b`` earns
the sum of the first ``b`` coefficients, the lowest bin earns 0 (the
reference) and, with each coefficient constrained to the declared sign, the
points are monotone in the declared direction whatever the other evidence.

Examples
--------
>>> import numpy as np
>>> x = np.array([0, 0, 1, 1, 2, 2, 3, 3, np.nan] * 10, dtype=float)
>>> y = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0] * 10)
>>> b = fit_bins(x, y, np.ones(len(x)), direction=-1, min_share=0.05)
>>> b.cuts, b.direction
([1.0, 3.0], -1)
>>> bin_index(b.cuts, np.array([0.0, 1.5, 7.0, np.nan])).tolist()
[0, 1, 2, -1]
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

#: pre-bins before merging
MAX_BINS = 8
#: smallest share of the known weight a bin may hold
MIN_SHARE = 0.05
#: the bin index of an unknown value
UNKNOWN_BIN = -1


@dataclass
class Bins:
    """Learned bins of one measure: ``cuts`` (ascending), the ``direction`` the
    points follow (+1 more is better, -1 more is worse), whether that direction
    was ``declared`` or learned, and per-bin training statistics (``stats``:
    ``weight`` and ``win_rate`` per known bin, then the unknown bin)."""

    cuts: list[float]
    direction: int
    declared: bool
    stats: list[dict[str, Any]] = field(default_factory=list)
    #: the smallest and largest known training values (None when none was known)
    lowest: float | None = None
    integer: bool = True

    @property
    def n_bins(self) -> int:
        """Known bins (the unknown bin is extra)."""
        return len(self.cuts) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"cuts": list(self.cuts), "direction": self.direction, "declared": self.declared,
                "stats": self.stats, "lowest": self.lowest, "integer": self.integer}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Bins":
        return cls([float(c) for c in d["cuts"]], int(d["direction"]), bool(d["declared"]), list(d.get("stats", [])),
                   d.get("lowest"), bool(d.get("integer", True)))

    def labels(self) -> list[str]:
        """Words for each known bin (:func:`bin_labels`)."""
        return bin_labels(self.cuts, self.integer, self.lowest)


def bin_index(cuts: Sequence[float], x: np.ndarray) -> np.ndarray:
    """Bin of each value: 0 .. len(cuts) for known values, :data:`UNKNOWN_BIN` for NaN."""
    x = np.asarray(x, dtype=np.float64)
    idx = np.searchsorted(np.asarray(cuts, dtype=np.float64), x, side="right").astype(np.int64)
    idx[np.isnan(x)] = UNKNOWN_BIN
    return idx


def thermometer(cuts: Sequence[float], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative coding of ``x``: ``(steps, unknown)``; ``steps[:, k-1] = 1`` when the
    value's bin is ``k`` or above (k = 1 .. len(cuts)); ``unknown`` = 1 where NaN."""
    b = bin_index(cuts, x)
    k = np.arange(1, len(cuts) + 1)
    return (b[:, None] >= k[None, :]).astype(np.float64), (b == UNKNOWN_BIN).astype(np.float64)


def _weighted_quantile_cuts(x: np.ndarray, w: np.ndarray, max_bins: int) -> list[float]:
    values = np.unique(x)
    if len(values) <= 1:
        return []
    if len(values) <= max_bins:
        return [float(v) for v in values[1:]]
    order = np.argsort(x, kind="mergesort")
    xs, cw = x[order], np.cumsum(w[order])
    cuts = set()
    for q in np.arange(1, max_bins) / max_bins:
        v = xs[min(np.searchsorted(cw, q * cw[-1], side="left"), len(xs) - 1)]
        if v > xs[0]:
            cuts.add(float(v))
    return sorted(cuts)


def _merge(cuts: list[float], wsum: list[float], ysum: list[float], i: int) -> None:
    """Merge bin ``i`` with bin ``i + 1`` (dropping the cut between them)."""
    wsum[i] += wsum.pop(i + 1)
    ysum[i] += ysum.pop(i + 1)
    cuts.pop(i)


def fit_bins(x: np.ndarray, y: np.ndarray, w: np.ndarray, direction: int = 0, *, max_bins: int = MAX_BINS,
             min_share: float = MIN_SHARE) -> Bins:
    """Learn monotone bins of ``x`` (NaN = unknown) against outcomes ``y`` with weights ``w``.

    See the module docstring for the three steps.  ``direction`` is the declared
    one (+1, -1), or 0 to learn it.  Returns :class:`Bins` (no cut at all when
    the known values are all equal, or do not move the win rate in the direction).
    """
    x, y, w = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(w, dtype=np.float64)
    known = ~np.isnan(x)
    xk, yk, wk = x[known], y[known], w[known]
    declared = direction in (1, -1)
    if not declared:
        direction = 1
        if len(xk) > 1 and wk.sum() > 0:
            mx, my = np.average(xk, weights=wk), np.average(yk, weights=wk)
            cov = float(np.average((xk - mx) * (yk - my), weights=wk))
            direction = -1 if cov < 0 else 1
    cuts = _weighted_quantile_cuts(xk, wk, max_bins) if len(xk) else []
    idx = np.searchsorted(np.asarray(cuts), xk, side="right")
    wsum = np.bincount(idx, weights=wk, minlength=len(cuts) + 1).tolist()
    ysum = np.bincount(idx, weights=wk * yk, minlength=len(cuts) + 1).tolist()
    total = sum(wsum)
    # 2. minimum size: merge the smallest bin below the floor into its smaller neighbour
    while cuts:
        small = [i for i, s in enumerate(wsum) if s < min_share * total]
        if not small:
            break
        i = min(small, key=lambda j: (wsum[j], j))
        if i == 0:
            _merge(cuts, wsum, ysum, 0)
        elif i == len(wsum) - 1 or wsum[i - 1] <= wsum[i + 1]:
            _merge(cuts, wsum, ysum, i - 1)
        else:
            _merge(cuts, wsum, ysum, i)
    # 3. monotone: merge the first adjacent pair that does not move in the direction, until none is left
    while cuts:
        rate = [ys / ws if ws > 0 else math.nan for ys, ws in zip(ysum, wsum)]
        bad = next((i for i in range(len(cuts)) if not (direction * (rate[i + 1] - rate[i]) > 0)), None)
        if bad is None:
            break
        _merge(cuts, wsum, ysum, bad)
    stats = [{"weight": round(ws, 6), "win_rate": ys / ws if ws > 0 else None} for ws, ys in zip(wsum, ysum)]
    wu = float(w[~known].sum())
    stats.append({"weight": round(wu, 6), "win_rate": float(np.dot(w[~known], y[~known]) / wu) if wu > 0 else None})
    lowest = float(xk.min()) if len(xk) else None
    integer = bool(np.all(np.mod(xk, 1) == 0))
    return Bins(cuts, int(direction), declared, stats, lowest, integer)


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def bin_labels(cuts: Sequence[float], integer: bool = True, lowest: float | None = None) -> list[str]:
    """Words for each known bin: ``"0"``, ``"1-2"``, ``"3+"`` for whole numbers
    (``integer``), else ``"< 2.5"``, ``"2.5 to < 4"``, ``">= 4"``.  ``lowest``
    (the smallest value seen in training) names the first bin from its bottom.

    >>> bin_labels([1, 3, 5], lowest=0)
    ['0', '1-2', '3-4', '5+']
    >>> bin_labels([1, 3, 5])
    ['0 or less', '1-2', '3-4', '5+']
    >>> bin_labels([])
    ['any']
    """
    if not cuts:
        return ["any"]
    out = []
    edges = [-math.inf, *cuts, math.inf]
    for lo, hi in zip(edges[:-1], edges[1:]):
        if integer and all(float(e).is_integer() for e in (lo, hi) if math.isfinite(e)):
            if not math.isfinite(lo):
                sep = " to " if lowest is not None and (lowest < 0 or hi - 1 < 0) else "-"
                out.append(_fmt(hi - 1) if lowest is not None and lowest == hi - 1 else
                           f"{_fmt(lowest)}{sep}{_fmt(hi - 1)}" if lowest is not None and float(lowest).is_integer()
                           and lowest < hi - 1 else f"{_fmt(hi - 1)} or less")
            elif not math.isfinite(hi):
                out.append(f"{_fmt(lo)}+")
            elif hi - lo == 1:
                out.append(_fmt(lo))
            else:
                out.append(f"{_fmt(lo)}{' to ' if lo < 0 or hi - 1 < 0 else '-'}{_fmt(hi - 1)}")
        else:
            if not math.isfinite(lo):
                out.append(f"< {_fmt(hi)}")
            elif not math.isfinite(hi):
                out.append(f">= {_fmt(lo)}")
            else:
                out.append(f"{_fmt(lo)} to < {_fmt(hi)}")
    return out
