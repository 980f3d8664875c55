"""The transparent rule score: one documented formula, in one place.

For a deal at stage *s*::

    available = sum(points of checklist items and milestones of stage s and earlier)
    earned    = sum(points of those that are met)          # unknown earns nothing
    penalty   = sum(|points| of red flags raised that apply at stage s)
    score     = clamp(0, 100, 100 * earned / available - penalty)

An unknown item earns nothing but stays in ``available``: not knowing is a
risk.  Data completeness is the share of the checklist items up to the stage
whose status is known (met or missing).  Next actions are the missing or
unknown checklist items and milestones of the current and earlier stages,
most valuable first, then unverified red flags.

The formula runs column-wise (:class:`VectorScorer`, over an ``(n_deals,
n_rules)`` matrix of status codes: the batch); one deal is one row of it
(:func:`score_evaluation`, which adds the explanation objects).
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from scoring.contract.schema import STAGE_INDEX, STAGES
from scoring.evidence.durable import Evaluation
from scoring.evidence.pack import SCORED_KINDS, RulePack, Rule
from scoring.evidence.status import MET, MISSING, STATUS_CODES, UNKNOWN
from scoring.score.ragged import Ragged


def clamp_score(earned: Any, available: Any, penalty: Any) -> Any:
    """``clamp(0, 100, 100 * earned / available - penalty)``, rounded to 0.1; 0 when nothing is available.

    Element-wise on arrays; a float for numbers.

    >>> clamp_score(30, 60, 10)
    40.0
    >>> clamp_score(5, 60, 40)
    0.0
    """
    earned, available, penalty = (np.asarray(x, dtype=np.float64) for x in (earned, available, penalty))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(available > 0, 100.0 * earned / np.where(available > 0, available, 1.0), 0.0)
    score = np.round(np.clip(share - penalty, 0.0, 100.0), 1)
    return float(score) if score.ndim == 0 else score


# --------------------------------------------------------------------------- column-wise


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
    """The rule score of many deals at once; per-pack tables are built once.

    Examples
    --------
    >>> cols = VectorScorer(pack).score(status_codes, stage_indices)    # doctest: +SKIP
    >>> cols.score[0], cols.next_actions[0]                             # doctest: +SKIP
    (42.5, ['S2_5', 'S2_1'])
    """

    def __init__(self, pack: RulePack):
        self.pack = pack
        rules = pack.rules
        self.ids = np.array([r.id for r in rules], dtype=object)
        self.applies = np.array([[r.applies_at(s) for r in rules] for s in STAGES], dtype=bool)  # (5, R)
        kind = np.array([r.kind for r in rules])
        pts = np.array([r.points for r in rules], dtype=float)
        self.scored = np.isin(kind, SCORED_KINDS)
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
        """Score deals from ``status`` (``(n_deals, n_rules)`` int8 codes, rules in pack order) and
        ``stage`` (the deals' stage indices)."""
        status = np.asarray(status)
        stage = np.asarray(stage, dtype=np.int64)
        app = self.applies[stage]  # (n, R)
        met = status == MET
        unk = status == UNKNOWN
        available = (app & self.scored) @ self.points
        earned = (app & met & self.scored) @ self.points
        penalty = (app & met & self.flag) @ self.flag_points
        score = clamp_score(earned, available, penalty)
        n_check = (app & self.checklist).sum(axis=1)
        n_known = (app & self.checklist & ~unk).sum(axis=1)
        completeness = np.where(n_check > 0, np.round(n_known / np.maximum(n_check, 1), 3), 1.0)

        n = len(stage)
        milestones = _ragged(app & met & self.milestone, self.ids)
        red = _ragged(app & met & self.flag, self.ids)  # pack order
        unverified = _ragged(app & unk & self.flag, self.ids)
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


_scorers: dict[int, tuple[weakref.ref, VectorScorer]] = {}
_scorers_lock = threading.Lock()


def vector_scorer(pack: RulePack) -> VectorScorer:
    """The :class:`VectorScorer` of ``pack``, built once per pack object."""
    key = id(pack)
    hit = _scorers.get(key)
    if hit is not None and hit[0]() is pack:
        return hit[1]
    vs = VectorScorer(pack)
    with _scorers_lock:
        _scorers[key] = (weakref.ref(pack, lambda _, key=key, cache=_scorers: cache.pop(key, None)), vs)
    return vs


# --------------------------------------------------------------------------- one deal, explained


@dataclass
class Reason:
    rule: str
    title: str
    points: float
    status: str
    kind: str
    methodology: list[str]


@dataclass
class NextAction:
    rule: str
    status: str  # missing | unknown (for a red flag: unknown = unverified)
    action: str
    title: str
    points: float
    stage: str | None


@dataclass
class StageBreakdown:
    stage: str
    earned: float
    available: float
    met: list[str]
    missing: list[str]
    unknown: list[str]


@dataclass
class RuleScore:
    """The rule score of one deal, with its reasons; plain data, JSON-serialisable."""

    id: str
    stage: str
    as_of: str | None
    score: float
    earned: float
    available: float
    penalty: float
    completeness: float
    breakdown: list[StageBreakdown]
    milestones_passed: list[str]
    red_flags: list[Reason]
    unverified_flags: list[Reason]
    meeting_flags: list[Reason]
    reasons: list[Reason]
    next_actions: list[NextAction]
    unknown_inputs: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_evaluation(pack: RulePack, ev: Evaluation, lang: str = "en") -> RuleScore:
    """Turn an :class:`~scoring.evidence.durable.Evaluation` into the transparent rule score.

    The numbers and the order of the next actions come from :class:`VectorScorer` on one row;
    this adds the words (in ``lang``) and the per-stage breakdown.
    """
    stage = ev.stage
    si = STAGE_INDEX[stage]
    status = np.array([[STATUS_CODES[ev.status[r.id]] for r in pack.rules]], dtype=np.int8)
    vs = vector_scorer(pack)
    cols = vs.score(status, np.array([si]))
    applies = vs.applies[si].tolist()  # Rule.applies_at(stage) per rule, from the scorer's table
    applies_to = dict(zip(vs.ids.tolist(), applies))

    def reason(r: Rule) -> Reason:
        return Reason(r.id, r.text("title", lang), r.points, ev.status[r.id], r.kind, list(r.methodology))

    def reasons_of(ids: list[str]) -> list[Reason]:
        return [reason(pack.rule(rid)) for rid in ids]

    met = status[0] == MET
    per_stage = {s: StageBreakdown(s, 0.0, 0.0, [], [], []) for s in STAGES[: si + 1]}
    for j, r in enumerate(pack.rules):
        if r.kind in SCORED_KINDS and applies[j]:
            b = per_stage[r.stage]
            b.available += r.points
            b.earned += r.points if met[j] else 0.0
            getattr(b, ev.status[r.id]).append(r.id)
    red_flags = reasons_of(cols.red_flags[0])
    raised = {f.rule for f in red_flags}
    reasons = [reason(r) for j, r in enumerate(pack.rules)
               if r.id in raised or (r.kind in SCORED_KINDS and applies[j] and met[j])]
    reasons.sort(key=lambda x: -abs(x.points))
    actions = []
    for rid in cols.next_actions[0]:
        r = pack.rule(rid)
        actions.append(NextAction(rid, ev.status[rid], r.text("action", lang), r.text("title", lang), r.points, r.stage))
    return RuleScore(
        id=ev.record_id,
        stage=stage,
        as_of=ev.as_of,
        score=float(cols.score[0]),
        earned=float(cols.earned[0]),
        available=float(cols.available[0]),
        penalty=float(cols.penalty[0]),
        completeness=float(cols.completeness[0]),
        breakdown=list(per_stage.values()),
        milestones_passed=cols.milestones_passed[0],
        red_flags=red_flags,
        unverified_flags=reasons_of(cols.unverified_flags[0]),
        meeting_flags=reasons_of(cols.meeting_flags[0]),
        reasons=reasons,
        next_actions=actions,
        unknown_inputs={k: v for k, v in ev.unknown_inputs.items() if applies_to[k]},
    )
