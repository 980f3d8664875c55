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
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from scoring.contract.schema import STAGE_INDEX, STAGES
from scoring.evidence.durable import Evaluation
from scoring.evidence.pack import SCORED_KINDS, RulePack


def clamp_score(earned: float, available: float, penalty: float) -> float:
    """``clamp(0, 100, 100 * earned / available - penalty)``, rounded to 0.1.

    >>> clamp_score(30, 60, 10)
    40.0
    >>> clamp_score(5, 60, 40)
    0.0
    """
    base = 100.0 * earned / available if available > 0 else 0.0
    return round(min(100.0, max(0.0, base - penalty)), 1)


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
    """Turn an :class:`~scoring.evidence.durable.Evaluation` into the transparent rule score."""
    stage = ev.stage
    si = STAGE_INDEX[stage]
    per_stage = {s: StageBreakdown(s, 0.0, 0.0, [], [], []) for s in STAGES[: si + 1]}
    earned = available = penalty = 0.0
    n_check = n_known = 0
    milestones, flags, unverified, meetings, reasons, actions = [], [], [], [], [], []

    for r in pack.rules:
        if not r.applies_at(stage):
            continue
        st = ev.status[r.id]
        reason = Reason(r.id, r.text("title", lang), r.points, st, r.kind, list(r.methodology))
        if r.kind in SCORED_KINDS:
            b = per_stage[r.stage]
            b.available += r.points
            available += r.points
            getattr(b, st).append(r.id)
            if r.kind == "checklist":
                n_check += 1
                n_known += st != "unknown"
            if st == "met":
                b.earned += r.points
                earned += r.points
                reasons.append(reason)
                if r.kind == "milestone":
                    milestones.append(r.id)
            else:
                actions.append(NextAction(r.id, st, r.text("action", lang), reason.title, r.points, r.stage))
        elif r.kind == "red_flag":
            if st == "met":
                penalty += -r.points
                flags.append(reason)
                reasons.append(reason)
            elif st == "unknown":
                unverified.append(reason)
        elif r.kind == "trigger" and st == "met":
            meetings.append(reason)

    actions.sort(key=lambda a: (-a.points, a.status != "missing", STAGE_INDEX[a.stage], a.rule))
    for f in sorted(unverified, key=lambda x: x.points):
        rule = pack.rule(f.rule)
        actions.append(NextAction(f.rule, "unknown", rule.text("action", lang), f.title, f.points, None))
    reasons.sort(key=lambda x: -abs(x.points))
    return RuleScore(
        id=ev.record_id,
        stage=stage,
        as_of=ev.as_of,
        score=clamp_score(earned, available, penalty),
        earned=earned,
        available=available,
        penalty=penalty,
        completeness=round(n_known / n_check, 3) if n_check else 1.0,
        breakdown=list(per_stage.values()),
        milestones_passed=milestones,
        red_flags=flags,
        unverified_flags=unverified,
        meeting_flags=meetings,
        reasons=reasons,
        next_actions=actions,
        unknown_inputs={k: v for k, v in ev.unknown_inputs.items() if pack.rule(k).applies_at(stage)},
    )
