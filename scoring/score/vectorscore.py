"""The transparent rule score of many deals at once, from a status matrix.

Same formula as :mod:`scoring.score.rulescore` (the reference, one deal at a time),
computed with numpy for the batch path: ``status`` is an ``(n_deals, n_rules)``
int8 matrix (0 missing, 1 met, 2 unknown) in pack order and ``stage`` the
deals' stage indices.  A test checks both give the same numbers and lists.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scoring.contract.schema import STAGE_INDEX, STAGES
from scoring.evidence.pack import RulePack
from scoring.evidence.status import MET, MISSING, UNKNOWN



@dataclass
class Ragged:
    """Per-deal lists of rule ids, stored flat: deal ``i`` holds ``values[offsets[i]:offsets[i+1]]``.

    The batch writes it straight into an Arrow list column (no Python list per deal).
    """

    offsets: np.ndarray  # int64, length n + 1
    values: np.ndarray   # object array of rule ids

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> list[str]:
        return self.values[self.offsets[i]:self.offsets[i + 1]].tolist()

    def tolist(self) -> list[list[str]]:
        return [self[i] for i in range(len(self))]

    def to_arrow(self):
        import pyarrow as pa

        return pa.ListArray.from_arrays(pa.array(self.offsets.astype(np.int32)),
                                        pa.array(self.values.tolist(), type=pa.string()))

    @staticmethod
    def from_arrow(arr) -> "Ragged":
        """From an Arrow list<string> column (a ChunkedArray or an Array)."""
        import pyarrow as pa

        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        offsets = np.asarray(arr.offsets, dtype=np.int64)
        values = np.asarray(arr.values.to_pylist(), dtype=object)
        start = offsets[0]
        return Ragged(offsets - start, values[start:offsets[-1]] if len(values) else values)

    @staticmethod
    def from_pairs(rows: np.ndarray, cols: np.ndarray, ids: np.ndarray, n: int) -> "Ragged":
        """From (row, column) pairs sorted by row."""
        counts = np.bincount(rows, minlength=n) if len(rows) else np.zeros(n, dtype=np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return Ragged(offsets, ids[cols])


@dataclass
class ScoreColumns:
    """Per-deal results: arrays, and :class:`Ragged` lists of rule ids."""

    score: np.ndarray
    earned: np.ndarray
    available: np.ndarray
    penalty: np.ndarray
    completeness: np.ndarray
    milestones_passed: Ragged
    red_flags: Ragged
    unverified_flags: Ragged
    meeting_flags: Ragged
    next_actions: Ragged


class VectorScorer:
    """Precomputed per-pack tables for :meth:`score`."""

    def __init__(self, pack: RulePack):
        self.pack = pack
        rules = pack.rules
        self.ids = np.array([r.id for r in rules], dtype=object)
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
        # Next actions, in one fixed order of "slots": each scored rule once as missing and once as
        # unknown, sorted by (-points, missing before unknown, earlier stage, id); then the red flags
        # (unverified) by points ascending.  A deal's actions are its true slots in that order, so
        # np.nonzero over the slot matrix yields them already sorted: no per-batch sort.
        home = {r.id: STAGE_INDEX[r.stage] for r in rules if r.stage}
        scored_slots = sorted(((j, st) for j, r in enumerate(rules) if self.scored[j] for st in (MISSING, UNKNOWN)),
                              key=lambda js: (-pts[js[0]], js[1] != MISSING, home[rules[js[0]].id], rules[js[0]].id))
        flag_slots = [(j, UNKNOWN) for j in sorted(np.nonzero(self.flag)[0], key=lambda j: pts[j])]
        slots = scored_slots + flag_slots
        self._slot_rule = np.array([j for j, _ in slots], dtype=np.int64)
        self._slot_status = np.array([st for _, st in slots], dtype=np.int8)

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

        n = len(stage)
        milestones = _ragged(app & met & self.milestone, self.ids)
        red = _ragged(app & met & self.flag, self.ids)  # pack order, as the reference
        unverified_m = app & unk & self.flag
        unverified = _ragged(unverified_m, self.ids)
        meetings = _ragged(app & met & self.trigger, self.ids)

        # next actions: scored items missing or unknown, then unverified red flags (slot order, see __init__)
        j = self._slot_rule
        slot_on = app[:, j] & (status[:, j] == self._slot_status)
        rows, k = np.nonzero(slot_on)
        actions = Ragged.from_pairs(rows, j[k], self.ids, n)
        return ScoreColumns(score, earned, available, penalty, completeness, milestones, red, unverified,
                            meetings, actions)


def _ragged(mask: np.ndarray, ids: np.ndarray) -> Ragged:
    """Row-wise ids where ``mask`` is true (pack order); np.nonzero yields row-major order."""
    rows, cols = np.nonzero(mask)
    return Ragged.from_pairs(rows, cols, ids, mask.shape[0])
