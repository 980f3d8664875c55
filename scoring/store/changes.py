"""Change over time, from stored runs: per-rule contributions, the trend label, and what changed.

Contributions
-------------
A run stores, per deal, the model's **contributions** per rule, in the run's rule order, then
one for the deal's stage: the rule's evidence columns summed (``R`` met and ``R__unknown``,
coefficient times evidence), so ``intercept + sum(contributions) = logit`` exactly as the model
computes it (:func:`rule_contributions`; a model with its own ``rule_contributions`` method, e.g.
a scorecard, is asked directly).

What changed
------------
Between an earlier run of a deal and tonight's, the change in log-odds is split into

* **model/pack change**: tonight's model applied to the *earlier* evidence, minus the earlier
  logit (zero when the model and pack are the same: nothing to split);
* **evidence change**, per rule: tonight's contribution minus the contribution tonight's model
  gives the earlier evidence (and the same for the stage).

The parts sum to ``logit_now - logit_before`` exactly up to float rounding, because both sides
are computed by the same code from the same numbers.  "The earlier evidence" is the stored
statuses (and measures) mapped onto tonight's rule list by rule id; a rule that did not exist
then takes tonight's status (its arrival is part of the pack change).

Trend
-----
Over the deal's stored runs of the last :data:`TREND_WINDOW_DAYS` days before tonight: with at
least :data:`TREND_MIN_RUNS` of them, tonight's probability minus their median is ``Improving``
when ``>= +TREND_THRESHOLD``, ``Declining`` when ``<= -TREND_THRESHOLD``, else ``Steady``;
otherwise (or without a probability) ``Not enough info``.  The median makes one noisy night
move nothing.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from scoring.evidence.status import STATUS_WORDS

#: days of stored runs a trend looks back over
TREND_WINDOW_DAYS = 14
#: stored runs needed in that window for a trend
TREND_MIN_RUNS = 2
#: probability change (0-1) against the window's median that makes a trend
TREND_THRESHOLD = 0.05
IMPROVING, STEADY, DECLINING, NOT_ENOUGH = "Improving", "Steady", "Declining", "Not enough info"
#: the contribution term after the rules
STAGE_TERM = "stage"
#: the what-changed entry for the model/pack part
MODEL_TERM = "model/pack"
#: a contribution change smaller than this (log-odds) is not listed when the status did not change
#: either (it is still in the sum: see :func:`change_items`)
SHOWN_MIN = 0.0005


def rule_contributions(model: Any, status: np.ndarray, stages: Sequence[str],
                       measures: np.ndarray | None = None, derived: Any = None) -> np.ndarray:
    """Per deal, the model's contribution (log-odds) of each rule, in pack order, then of the rest
    (stage, derived facts): :meth:`scoring.model.scorecard.Model.rule_contributions`.

    ``model.intercept + result.sum(axis=1)`` is the model's logit.  Shape ``(n, n_rules + 1)``.
    """
    return np.asarray(model.rule_contributions(status, stages, measures, derived), dtype=np.float64)


def derived_inputs(model: Any) -> list[str]:
    """The model's derived-fact inputs (a model trained with ``--derived``), whose values the store
    keeps per deal so that an earlier run's evidence can be scored with a later model; empty for
    most models."""
    return [i.name for i in getattr(model, "numeric", ()) if i.source == "derived"]


def derived_matrix(derived: Any, names: Sequence[str], n: int) -> np.ndarray:
    """``(n, len(names))`` float64 of the evaluator's derived facts (a DataFrame or a mapping; NaN unknown)."""
    out = np.full((n, len(names)), np.nan)
    for j, k in enumerate(names):
        if derived is not None and k in derived:
            out[:, j] = np.asarray(derived[k], dtype=float)
    return out


def logit_of(intercept: float, contributions: np.ndarray) -> np.ndarray:
    """The logit from contributions: the one way both runs compute it (so their difference is exact)."""
    return intercept + contributions.sum(axis=1)


def trend(p_now: np.ndarray, median_before: np.ndarray, n_before: np.ndarray) -> np.ndarray:
    """The trend label of each deal (see the module docstring)."""
    p_now = np.asarray(p_now, dtype=float)
    d = p_now - np.asarray(median_before, dtype=float)
    enough = (np.asarray(n_before) >= TREND_MIN_RUNS) & ~np.isnan(d)
    out = np.full(len(p_now), NOT_ENOUGH, dtype=object)
    out[enough] = STEADY
    with np.errstate(invalid="ignore"):
        out[enough & (d >= TREND_THRESHOLD - 1e-12)] = IMPROVING
        out[enough & (d <= -TREND_THRESHOLD + 1e-12)] = DECLINING
    return out


def map_status(then: np.ndarray, rules_then: Sequence[str], rules_now: Sequence[str],
               status_now: np.ndarray) -> np.ndarray:
    """Earlier status codes (columns = ``rules_then``) on tonight's rules ``rules_now``; a rule not in
    ``rules_then`` takes its ``status_now`` value (see the module docstring)."""
    out = np.array(status_now, dtype=np.int8, copy=True)
    if len(out) == 0:
        return out
    pos = {r: i for i, r in enumerate(rules_then)}
    for j, r in enumerate(rules_now):
        if r in pos:
            out[:, j] = then[:, pos[r]]
    return out


def status_array(status: np.ndarray) -> pa.Array:
    """Status codes ``(n, R)`` as one string of digits per deal (the stored form), built without a
    per-deal loop (the digits are one contiguous buffer)."""
    n, r = status.shape
    data = (np.ascontiguousarray(status, dtype=np.uint8) + ord("0")).tobytes()
    offsets = (np.arange(n + 1, dtype=np.int32) * r).tobytes()
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def status_codes(texts: pa.Array | pa.ChunkedArray, width: int) -> np.ndarray:
    """The inverse of :func:`status_array`: ``(n, width)`` int8 codes (every string ``width`` digits)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n = len(texts)
    if n == 0:
        return np.zeros((0, width), dtype=np.int8)
    raw = "".join(texts.to_pylist()).encode("ascii") if texts.offset or texts.null_count else None
    if raw is None:
        offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32, count=n + 1)
        raw = texts.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]
    return (np.frombuffer(raw, dtype=np.uint8).reshape(n, width) - ord("0")).astype(np.int8)


def list_column(m: np.ndarray | None, n: int) -> pa.Array:
    """An ``(n, width)`` float array as a list<double> column of ``n`` lists (all null when ``m`` is
    None): the inverse of :func:`list_matrix`."""
    if m is None:
        return pa.nulls(n, pa.list_(pa.float64()))
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * m.shape[1]),
                                    pa.array(np.ascontiguousarray(m, dtype=np.float64).ravel()))


def list_matrix(col: pa.Array | pa.ChunkedArray, width: int) -> np.ndarray | None:
    """A list<double> column whose lists all have ``width`` values as an ``(n, width)`` array
    (None when the column is all null)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if len(col) == 0:
        return np.zeros((0, width))
    if col.null_count == len(col):
        return None
    flat = col.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(col), width)


def decompose(model: Any, contrib_now: np.ndarray, logit_before: np.ndarray, status_before: np.ndarray,
              stages_before: Sequence[str], measures_before: np.ndarray | None,
              same_model: np.ndarray, derived_before: Mapping[str, np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Split each deal's change in log-odds into the model/pack part and per-term evidence changes.

    ``derived_before``: the earlier values of the model's derived-fact inputs (name -> values, NaN
    unknown), for a model that has such inputs (:func:`derived_inputs`).

    Returns ``(model_part, deltas)``: ``model_part`` (n,) and ``deltas`` (n, n_terms), with
    ``model_part + deltas.sum(1) == logit_now - logit_before`` (up to float rounding).
    """
    before_now_model = rule_contributions(model, status_before, stages_before, measures_before, derived_before)
    deltas = contrib_now - before_now_model
    model_part = logit_of(model.intercept, before_now_model) - logit_before
    model_part = np.where(same_model, 0.0, model_part)
    return model_part, deltas


def _changed(deltas: np.ndarray, status_now: np.ndarray, status_before: np.ndarray, stage_now: np.ndarray,
             stage_before: np.ndarray, applies: np.ndarray | None, has_before: np.ndarray) -> np.ndarray:
    """Which terms a deal's what-changed lists: a rule whose status changed where it applies (at the
    deal's stage then or now; ``applies`` (n, R), None: everywhere), even when its contribution did not
    move; any term whose contribution moved by :data:`SHOWN_MIN` or more; the stage when it changed."""
    n_rules = status_now.shape[1]
    big = np.abs(np.nan_to_num(deltas)) >= SHOWN_MIN
    changed = np.zeros(deltas.shape, dtype=bool)
    moved = status_now != status_before
    changed[:, :n_rules] = (moved if applies is None else moved & applies) | big[:, :n_rules]
    changed[:, n_rules] = (stage_now != stage_before) | big[:, n_rules]
    return changed & np.asarray(has_before, bool)[:, None]


def applies_at(pack: Any, stages_now: Sequence[str], stages_before: Sequence[str],
               table: np.ndarray | None = None) -> np.ndarray:
    """(n, R): does each rule apply at the deal's stage now or then (:meth:`Rule.applies_at`)?
    ``table``: the pack's :func:`~scoring.model.inputs.applies_table`, when the caller keeps it."""
    from scoring.contract.schema import STAGE_INDEX
    from scoring.model.inputs import applies_table

    table = applies_table(pack) if table is None else table
    idx = lambda st: np.fromiter((STAGE_INDEX.get(s, 0) for s in st), dtype=np.int64, count=len(st))  # noqa: E731
    return table[idx(stages_now)] | table[idx(stages_before)]


def change_items(deltas: np.ndarray, model_part: np.ndarray, status_now: np.ndarray, status_before: np.ndarray,
                 stage_now: Sequence[str], stage_before: Sequence[str], rule_ids: Sequence[str],
                 has_before: np.ndarray, applies: np.ndarray | None = None) -> list[list[dict]]:
    """Per deal, what changed: ``{term, before, now, contribution}`` items (the terms :func:`_changed`
    picks), largest ``|contribution|`` first; the model/pack part first when not zero.  Empty for a
    deal without an earlier run (``has_before`` false)."""
    n = len(deltas)
    out: list[list[dict]] = [[] for _ in range(n)]
    if n == 0:
        return out
    n_rules = len(rule_ids)
    stage_now = np.asarray(stage_now, dtype=object)
    stage_before = np.asarray(stage_before, dtype=object)
    changed = _changed(deltas, status_now, status_before, stage_now, stage_before, applies, has_before)
    rows, cols = np.nonzero(changed)
    for i, j in zip(rows.tolist(), cols.tolist()):
        if j < n_rules:
            item = {"term": rule_ids[j], "before": STATUS_WORDS[status_before[i, j]],
                    "now": STATUS_WORDS[status_now[i, j]], "contribution": float(deltas[i, j])}
        else:
            item = {"term": STAGE_TERM, "before": stage_before[i], "now": stage_now[i],
                    "contribution": float(deltas[i, j])}
        out[i].append(item)
    for i in range(n):
        out[i].sort(key=lambda x: (-abs(np.nan_to_num(x["contribution"])), x["term"]))
        if has_before[i] and np.nan_to_num(model_part[i]) != 0.0:
            out[i].insert(0, {"term": MODEL_TERM, "before": None, "now": None, "contribution": float(model_part[i])})
    return out


def item_code(item: dict) -> str:
    """One what-changed item as a code of the nightly output: ``S2_5 met>missing -0.412``,
    ``stage relationship>partner +0.120``, ``model/pack +0.050``."""
    move = "" if item["before"] is None else (
        f" {item['now']}" if item["before"] == item["now"] else f" {item['before']}>{item['now']}")
    c = item["contribution"]
    return f"{item['term']}{move}" + ("" if c is None or c != c else f" {c:+.3f}")


def change_codes(deltas: np.ndarray, model_part: np.ndarray, status_now: np.ndarray, status_before: np.ndarray,
                 stage_now: Sequence[str], stage_before: Sequence[str], rule_ids: Sequence[str],
                 has_before: np.ndarray, applies: np.ndarray | None = None) -> pa.Array:
    """:func:`change_items` as the nightly output's codes (:func:`item_code`), one list per deal,
    built column-wise (the same items in the same order)."""
    n = len(deltas)
    n_rules = len(rule_ids)
    if n == 0:
        return pa.array([], pa.list_(pa.string()))
    stage_now = np.asarray(stage_now, dtype=object)
    stage_before = np.asarray(stage_before, dtype=object)
    changed = _changed(deltas, status_now, status_before, stage_now, stage_before, applies, has_before)
    rows, cols = np.nonzero(changed)
    vals = deltas[rows, cols]
    words = np.asarray(STATUS_WORDS, dtype=object)
    is_rule = cols < n_rules
    rc = np.where(is_rule, cols, 0)
    before = np.where(is_rule, words[status_before[rows, rc]], stage_before[rows])
    now = np.where(is_rule, words[status_now[rows, rc]], stage_now[rows])
    terms = np.asarray(list(rule_ids) + [STAGE_TERM], dtype=object)[cols]
    # the model/pack part, first in its deal's list
    m = np.nonzero(np.asarray(has_before, bool) & (np.nan_to_num(model_part) != 0.0))[0]
    rows = np.concatenate([rows, m])
    vals = np.concatenate([vals, model_part[m]])
    terms = np.concatenate([terms, np.full(len(m), MODEL_TERM, dtype=object)])
    before = np.concatenate([before, np.full(len(m), None, dtype=object)])
    now = np.concatenate([now, np.full(len(m), None, dtype=object)])
    first = np.concatenate([np.ones(len(vals) - len(m), np.int8), np.zeros(len(m), np.int8)])
    order = np.lexsort((terms.astype(str), -np.abs(np.nan_to_num(vals)), first, rows))
    codes = [item_code({"term": t, "before": b, "now": w, "contribution": v})
             for t, b, w, v in zip(terms[order], before[order], now[order], vals[order])]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(codes, pa.string()))
