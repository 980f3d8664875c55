"""The transparent rule score of many deals at once, from a status matrix.

Same formula as :mod:`scoring.rulescore` (the reference, one deal at a time),
computed with numpy for the batch path: ``status`` is an ``(n_deals, n_rules)``
int8 matrix (0 missing, 1 met, 2 unknown) in pack order and ``stage`` the
deals' stage indices.  A test checks both give the same numbers and lists.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contract import STAGE_INDEX, STAGES
from .rulepack import RulePack

MISSING, MET, UNKNOWN = 0, 1, 2
STATUS_WORDS = ("missing", "met", "unknown")


@dataclass
class ScoreColumns:
    """Per-deal results, each an array or a list of lists (rule ids)."""

    score: np.ndarray
    earned: np.ndarray
    available: np.ndarray
    penalty: np.ndarray
    completeness: np.ndarray
    milestones_passed: list[list[str]]
    red_flags: list[list[str]]
    unverified_flags: list[list[str]]
    meeting_flags: list[list[str]]
    next_actions: list[list[str]]


class VectorScorer:
    """Precomputed per-pack tables for :meth:`score`."""

    def __init__(self, pack: RulePack):
        self.pack = pack
        rules = pack.rules
        self.ids = np.array([r.id for r in rules], dtype=object)
        n_st = len(STAGES)
        self.applies = np.array([[r.applies_at(s) for r in rules] for s in STAGES], dtype=bool)  # (5, R)
        kind = np.array([r.kind for r in rules])
        pts = np.array([r.points for r in rules], dtype=float)
        self.scored = np.isin(kind, ("checklist", "milestone"))
        self.checklist = kind == "checklist"
        self.milestone = kind == "milestone"
        self.flag = kind == "red_flag"
        self.trigger = kind == "trigger"
        self.points = np.where(self.scored, pts, 0.0)
        self.flag_points = np.where(self.flag, -pts, 0.0)
        # next-action order: points desc, missing before unknown, earlier stage first, id
        home = np.array([STAGE_INDEX[r.stage] if r.stage else n_st for r in rules])
        self._order_key = (pts, home, np.array([r.id for r in rules]))
        self._flag_order = np.array(sorted(np.nonzero(self.flag)[0], key=lambda j: pts[j]), dtype=np.int64)

    def score(self, status: np.ndarray, stage: np.ndarray) -> ScoreColumns:
        status = np.asarray(status)
        stage = np.asarray(stage, dtype=np.int64)
        app = self.applies[stage]  # (n, R)
        met = status == MET
        unk = status == UNKNOWN
        available = (app & self.scored) @ self.points
        earned = (app & met & self.scored) @ self.points
        penalty = (app & met & self.flag) @ self.flag_points
        with np.errstate(invalid="ignore", divide="ignore"):
            base = np.where(available > 0, 100.0 * earned / np.where(available > 0, available, 1), 0.0)
        score = np.round(np.clip(base - penalty, 0.0, 100.0), 1)
        n_check = (app & self.checklist).sum(axis=1)
        n_known = (app & self.checklist & ~unk).sum(axis=1)
        completeness = np.where(n_check > 0, np.round(n_known / np.maximum(n_check, 1), 3), 1.0)

        milestones = _lists(app & met & self.milestone, self.ids)
        flags_raised = app & met & self.flag
        # red flags in the reference order: pack order
        red = _lists(flags_raised, self.ids)
        unverified_m = app & unk & self.flag
        unverified = _lists(unverified_m, self.ids)
        meetings = _lists(app & met & self.trigger, self.ids)

        # next actions: scored items not met, ordered by (-points, status != missing, home stage, id),
        # then unverified flags by points ascending (most severe first).
        todo = app & self.scored & ~met
        pts, home, ids = self._order_key
        actions = []
        idx_rows, idx_cols = np.nonzero(todo)
        if len(idx_rows):
            st_rank = (status[idx_rows, idx_cols] != MISSING).astype(np.int64)
            order = np.lexsort((ids[idx_cols], home[idx_cols], st_rank, -pts[idx_cols], idx_rows))
            idx_rows, idx_cols = idx_rows[order], idx_cols[order]
        splits = np.searchsorted(idx_rows, np.arange(1, len(stage)))
        per_row = np.split(self.ids[idx_cols], splits) if len(stage) else []
        fo = self._flag_order
        unv_sorted = unverified_m[:, fo] if len(fo) else np.zeros((len(stage), 0), bool)
        for i, arr in enumerate(per_row):
            lst = arr.tolist()
            if unv_sorted.shape[1] and unv_sorted[i].any():
                lst.extend(self.ids[fo[unv_sorted[i]]].tolist())
            actions.append(lst)
        return ScoreColumns(score, earned, available, penalty, completeness, milestones, red, unverified,
                            meetings, actions)


def _lists(mask: np.ndarray, ids: np.ndarray) -> list[list[str]]:
    """Row-wise lists of ids where ``mask`` is true (pack order)."""
    rows, cols = np.nonzero(mask)
    splits = np.searchsorted(rows, np.arange(1, mask.shape[0]))
    return [a.tolist() for a in np.split(ids[cols], splits)] if mask.shape[0] else []
