"""The transparent rule score: one documented formula, in one place.

For a deal at stage *s*::

    available = sum(points of checklist items and milestones of stage s and earlier)
    earned    = sum(points of those that are met)          # unknown earns nothing
    share     = 100 * earned / available                   # 0 when nothing is available
    kept      = product over the red flags raised that apply at stage s of (1 - |points| / 100)
    score     = share * kept                               # rounded to 0.1
    penalty   = share - score                              # what the flags took off, in score points

A raised red flag takes its points **as a percentage of the share earned**: a
-10 flag keeps 90% of it, three such flags 72.9%.  Why not subtract raw points
(the earlier formula, ``share - sum(|points|)``): at bidding, where every deal
has earned a modest share of a long checklist, two or three raised lessons
floored every such deal at 0 and the score stopped telling them apart, while
the course is about exactly these deals ("project management is lost-deal
management": a lesson is a known way to lose, not the end of the analysis).
Why a percentage of what was earned: the course says losing control at the
last kick "wastes all earlier work" (前期工作功亏一篑): a lesson puts at risk
a share of everything achieved so far, at every stage alike, so its weight
grows with the work it endangers instead of shrinking as the checklist grows.
Consequences, tested: more flags never raise the score, a flag always lowers a
score above 0, and deals with 2 and 3 flags stay apart.

An unknown item earns nothing but stays in ``available``: not knowing is a
risk.  Data completeness is the share of the checklist items up to the stage
whose status is known (met or missing).

**Next actions** come in three groups: the raised red flags (their action is
the course's remedy: "meet one to one", "accompany every visit"), then the
missing or unknown checklist items and milestones of the current and earlier
stages, then the unverified red flags.  Within a group they are ranked by the
model's gain when one is given (:func:`rank_key`: the expected change in win
probability if the item were met or the flag lifted), else by points (most
valuable first; missing before unknown).  An unknown item's text is its
"find out ..." text, not the "do it" text of a missing one.

The formula runs column-wise (:class:`VectorScorer`, over an ``(n_deals,
n_rules)`` matrix of status codes: the batch); one deal is one row of it
(:func:`score_evaluation`, which adds the explanation objects).
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from scoring.contract.schema import STAGE_INDEX, STAGES
from scoring.evidence.durable import Evaluation
from scoring.evidence.pack import SCORED_KINDS, RulePack, Rule
from scoring.evidence.status import MET, MISSING, STATUS_CODES, STATUS_WORDS, UNKNOWN
from scoring.score.labels import FIND_OUT
from scoring.score.ragged import Ragged

#: a flag of -100 points keeps (almost) nothing: its log is bounded so that sums stay finite
_MAX_FLAG_SHARE = 0.999999
#: the status word of a raised red flag in the next actions
RAISED = "raised"


def kept_share(flag_points: Any) -> Any:
    """``prod(1 - |p| / 100)`` over the raised flags' points (the last axis); 1 without flags.

    >>> kept_share([-10, -10])
    0.81
    """
    p = np.minimum(np.abs(np.asarray(flag_points, dtype=np.float64)) / 100.0, _MAX_FLAG_SHARE)
    out = np.exp(np.log1p(-p).sum(axis=-1)) if p.ndim else 1.0 - p
    return float(np.round(out, 12)) if np.ndim(out) == 0 else out


def rule_score(earned: Any, available: Any, kept: Any) -> Any:
    """``100 * earned / available * kept``, rounded to 0.1; 0 when nothing is available.

    Element-wise on arrays; a float for numbers.  ``kept`` is :func:`kept_share` of the raised flags.

    >>> rule_score(30, 60, 1.0)
    50.0
    >>> rule_score(30, 60, kept_share([-10, -10]))
    40.5
    """
    earned, available, kept = (np.asarray(x, dtype=np.float64) for x in (earned, available, kept))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(available > 0, 100.0 * earned / np.where(available > 0, available, 1.0), 0.0)
    score = np.round(np.clip(share * kept, 0.0, 100.0), 1)
    return float(score) if score.ndim == 0 else score


def rank_key(group: np.ndarray, gain: np.ndarray | None) -> np.ndarray:
    """The sort key of next-action slots (a stable sort keeps the fixed points order for ties).

    ``group``: 0 raised flags, 1 checklist items and milestones, 2 unverified flags.  ``gain``
    (same shape, or None): the model's expected change in win probability (from -1 to 1) if the
    item were met or the flag lifted; higher first within a group, NaN (no gain) after the others.

    >>> rank_key(np.array([1, 1, 0]), np.array([0.01, 0.2, np.nan])).tolist()
    [9.99, 9.8, 2.0]
    """
    g = np.asarray(group, dtype=np.float64) * 10.0
    if gain is None:
        return g
    gain = np.asarray(gain, dtype=np.float64)
    return g - np.where(np.isnan(gain), -2.0, np.clip(gain, -1.0, 1.0))


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
        #: per rule, log of the share of the score a raised flag keeps (0 for other kinds): see kept_share
        self.flag_log_kept = np.where(self.flag, np.log(np.where(self.flag, kept_share(np.where(self.flag, pts, 0.0)[:, None]), 1.0)), 0.0)
        # Next actions, in one fixed order of "slots": the raised red flags by points ascending (the
        # heaviest lesson first); each scored rule once as missing and once as unknown, sorted by
        # (-points, missing before unknown, earlier stage, id); then the red flags unverified, by points
        # ascending.  Without gains a deal's actions are its true slots in that order, so np.nonzero
        # over the slot matrix yields them already sorted: no per-batch sort.
        home = {r.id: STAGE_INDEX[r.stage] for r in rules if r.stage}
        flags_by_points = sorted(np.nonzero(self.flag)[0], key=lambda j: (pts[j], rules[j].id))
        scored_slots = sorted(((j, st) for j, r in enumerate(rules) if self.scored[j] for st in (MISSING, UNKNOWN)),
                              key=lambda js: (-pts[js[0]], js[1] != MISSING, home.get(rules[js[0]].id, 0), rules[js[0]].id))
        slots = ([(j, MET, 0) for j in flags_by_points] + [(j, st, 1) for j, st in scored_slots]
                 + [(j, UNKNOWN, 2) for j in flags_by_points])
        self._slot_rule = np.array([j for j, _, _ in slots], dtype=np.int64)
        self._slot_status = np.array([st for _, st, _ in slots], dtype=np.int8)
        self._slot_group = np.array([g for _, _, g in slots], dtype=np.int8)

    def score(self, status: np.ndarray, stage: np.ndarray, gains: np.ndarray | None = None) -> ScoreColumns:
        """Score deals from ``status`` (``(n_deals, n_rules)`` int8 codes, rules in pack order) and
        ``stage`` (the deals' stage indices).  ``gains`` (optional, ``(n_deals, n_rules)``, NaN = none):
        the model's gain of each rule for each deal, which ranks the next actions within their groups
        (:func:`rank_key`); without it they are ranked by points."""
        status = np.asarray(status)
        stage = np.asarray(stage, dtype=np.int64)
        app = self.applies[stage]  # (n, R)
        met = status == MET
        unk = status == UNKNOWN
        available = (app & self.scored) @ self.points
        earned = (app & met & self.scored) @ self.points
        raised = app & met & self.flag
        kept = np.exp(raised @ self.flag_log_kept)
        score = rule_score(earned, available, kept)
        share = rule_score(earned, available, 1.0)
        penalty = np.round(share - score, 1)
        n_check = (app & self.checklist).sum(axis=1)
        n_known = (app & self.checklist & ~unk).sum(axis=1)
        completeness = np.where(n_check > 0, np.round(n_known / np.maximum(n_check, 1), 3), 1.0)

        n = len(stage)
        milestones = _ragged(app & met & self.milestone, self.ids)
        red = _ragged(raised, self.ids)  # pack order
        unverified = _ragged(app & unk & self.flag, self.ids)
        meetings = _ragged(app & met & self.trigger, self.ids)

        # next actions: raised flags, scored items missing or unknown, unverified flags (see __init__)
        j = self._slot_rule
        slot_on = app[:, j] & (status[:, j] == self._slot_status)
        if gains is None:
            rows, k = np.nonzero(slot_on)
            actions = Ragged.from_pairs(rows, j[k], self.ids, n)
        else:
            key = rank_key(np.broadcast_to(self._slot_group, slot_on.shape), np.asarray(gains, float)[:, j])
            order = np.argsort(np.where(slot_on, key, np.inf), axis=1, kind="stable")
            rows, k = np.nonzero(np.take_along_axis(slot_on, order, axis=1))
            actions = Ragged.from_pairs(rows, j[order[rows, k]], self.ids, n)
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
    status: str  # raised (a red flag: its remedy) | missing | unknown (for a red flag: unverified)
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


def action_text(r: Rule, status: str, lang: str = "en") -> str:
    """What to do about rule ``r`` in ``status``: a raised flag's remedy and a missing item's "do it"
    are its ``action``; an unknown one's is its ``find_out`` text ("find out ..."), or a generic one."""
    if status == STATUS_WORDS[UNKNOWN]:
        return r.text("find_out", lang) or FIND_OUT.get(lang, FIND_OUT["en"]).format(title=r.text("title", lang))
    return r.text("action", lang)


def score_evaluation(pack: RulePack, ev: Evaluation, lang: str = "en",
                     gains: Mapping[str, float] | None = None) -> RuleScore:
    """Turn an :class:`~scoring.evidence.durable.Evaluation` into the transparent rule score.

    The numbers and the order of the next actions come from :class:`VectorScorer` on one row;
    this adds the words (in ``lang``) and the per-stage breakdown.  ``gains`` (rule id -> the
    model's expected change in win probability if the item were met or the flag lifted) ranks
    the next actions within their groups; without it they are ranked by points.
    """
    stage = ev.stage
    si = STAGE_INDEX[stage]
    status = np.array([[STATUS_CODES[ev.status[r.id]] for r in pack.rules]], dtype=np.int8)
    gain_row = None
    if gains is not None:
        gain_row = np.array([[gains.get(r.id, np.nan) for r in pack.rules]], dtype=np.float64)
    vs = vector_scorer(pack)
    cols = vs.score(status, np.array([si]), gain_row)
    applies = vs.applies[si].tolist()  # Rule.applies_at(stage) per rule, from the scorer's table
    applies_to = dict(zip(vs.ids.tolist(), applies))

    def reason(r: Rule) -> Reason:
        return Reason(r.id, r.text("title", lang), r.points, ev.status[r.id], r.kind, list(r.methodology))

    def reasons_of(ids: list[str]) -> list[Reason]:
        return [reason(pack.rule(rid)) for rid in ids]

    met = status[0] == MET
    # a pack without stages has no per-stage breakdown (its items hold at every stage)
    per_stage = {s: StageBreakdown(s, 0.0, 0.0, [], [], []) for s in STAGES[: si + 1]} if pack.staged else {}
    for j, r in enumerate(pack.rules):
        if r.kind in SCORED_KINDS and applies[j] and r.stage in per_stage:
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
        st = RAISED if rid in raised else ev.status[rid]
        actions.append(NextAction(rid, st, action_text(r, ev.status[rid], lang), r.text("title", lang),
                                  r.points, r.stage))
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
