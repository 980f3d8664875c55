"""The transparent rule score: one formula, run column-wise; one deal is one row of it."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.contract.schema import STAGE_INDEX, STAGES
from scoring.evidence.durable import Evaluation
from scoring.evidence.status import STATUS_WORDS
from scoring.score.rulescore import VectorScorer, kept_share, rule_score, score_evaluation


def test_score_is_the_points_share_when_no_flag_is_raised():
    assert rule_score(30, 60, kept_share([])) == 50.0


def test_a_raised_flag_takes_its_points_as_a_percentage_of_the_share():
    assert rule_score(30, 60, kept_share([-10])) == 45.0
    assert rule_score(30, 60, kept_share([-10, -10])) == 40.5


def test_nothing_available_scores_zero():
    assert rule_score(0, 0, 1.0) == 0.0


def test_score_is_rounded_to_one_decimal():
    assert rule_score(1, 3, 1.0) == 33.3


def test_score_formula_runs_element_wise_on_arrays():
    got = rule_score(np.array([30.0, 5.0, 1.0, 0.0]), np.array([60.0, 60.0, 3.0, 0.0]), np.array([0.9, 1.0, 0.5, 0.5]))
    assert got.tolist() == [45.0, 8.3, 16.7, 0.0]


@given(earned=st.floats(0, 500), extra=st.floats(0, 500), flags=st.lists(st.floats(-100, -1), max_size=8))
def test_score_is_the_documented_formula(earned, extra, flags):
    available = earned + extra
    kept = 1.0
    for p in flags:
        kept *= 1 - min(-p / 100, 0.999999)
    expected = min(100.0, 100.0 * earned / available * kept) if available > 0 else 0.0
    assert rule_score(earned, available, kept_share(flags)) == pytest.approx(expected, abs=0.05 + 1e-9)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_more_red_flags_never_raise_the_score(default_pack, data):
    """Raising one more red flag (anything else unchanged) never raises the score, at any stage."""
    vs = VectorScorer(default_pack)
    flags = [j for j, r in enumerate(default_pack.rules) if r.kind == "red_flag"]
    status, stages = data.draw(status_matrices(len(default_pack.rules)))
    more = status.copy()
    j = data.draw(st.sampled_from(flags))
    more[:, j] = 1
    before, after = vs.score(status, stages).score, vs.score(more, stages).score
    assert (after <= before).all()


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_score_separates_two_from_three_red_flags_at_bidding(default_pack, data):
    """At bidding a deal with 3 raised red flags scores below the same deal with 2 of them, as long
    as it has earned something: the flags no longer floor the score at 0."""
    vs = VectorScorer(default_pack)
    rules = default_pack.rules
    flags = [j for j, r in enumerate(rules) if r.kind == "red_flag" and r.applies_at("bidding")]
    scored = [j for j, r in enumerate(rules) if r.kind in ("checklist", "milestone")]
    status = np.zeros((1, len(rules)), dtype=np.int8)
    for j in data.draw(st.lists(st.sampled_from(scored), min_size=3, unique=True)):
        status[0, j] = 1
    three = data.draw(st.lists(st.sampled_from(flags), min_size=3, max_size=3, unique=True))
    two = status.copy()
    two[0, three[:2]] = 1
    status[0, three] = 1
    bidding = np.array([STAGE_INDEX["bidding"]])
    s2, s3 = vs.score(two, bidding).score[0], vs.score(status, bidding).score[0]
    assert 0 < s3 < s2


def test_unknown_item_earns_nothing_but_stays_available(default_pack, default_engine):
    rec = {"id": "u", "stage": "technical_promotion"}
    rs_unknown = score_evaluation(default_pack, default_engine.evaluate(rec))
    rs_false = score_evaluation(default_pack, default_engine.evaluate({**rec, "needs_understood": False}))
    assert rs_unknown.available == rs_false.available
    assert rs_unknown.completeness < rs_false.completeness


def test_results_serialize_to_json(example_records, default_pack, default_engine):
    rs = score_evaluation(default_pack, default_engine.evaluate(example_records["OPP-1001"]))
    assert json.loads(json.dumps(rs.to_dict()))["id"] == "OPP-1001"


# --------------------------------------------------------------------------- against the module docstring


def documented_score(pack, status: dict[str, str], stage: str) -> dict:
    """The rule score of one deal, written deal by deal straight from scoring/score/rulescore.py's docstring."""
    si = STAGE_INDEX[stage]
    applies = [r for r in pack.rules if r.applies_at(stage)]
    scored = [r for r in applies if r.kind in ("checklist", "milestone")]
    flags = [r for r in applies if r.kind == "red_flag"]
    checklist = [r for r in scored if r.kind == "checklist"]
    earned = sum(r.points for r in scored if status[r.id] == "met")
    available = sum(r.points for r in scored)
    kept = 1.0
    for r in flags:
        if status[r.id] == "met":
            kept *= 1 + r.points / 100
    share = 100 * earned / available if available else 0.0
    todo = sorted((r for r in scored if status[r.id] != "met"),
                  key=lambda r: (-r.points, status[r.id] != "missing", STAGE_INDEX[r.stage], r.id))
    unverified = [r for r in flags if status[r.id] == "unknown"]
    raised = [r for r in flags if status[r.id] == "met"]
    raised_first = sorted(raised, key=lambda r: (r.points, r.id))
    return {
        "score": min(100.0, share * kept),
        "earned": earned, "available": available, "penalty": share - min(100.0, share * kept),
        "completeness": sum(status[r.id] != "unknown" for r in checklist) / len(checklist) if checklist else 1.0,
        "milestones_passed": [r.id for r in scored if r.kind == "milestone" and status[r.id] == "met"],
        "red_flags": [r.id for r in raised],
        "unverified_flags": [r.id for r in unverified],
        "meeting_flags": [r.id for r in applies if r.kind == "trigger" and status[r.id] == "met"],
        "next_actions": [r.id for r in raised_first] + [r.id for r in todo]
        + [r.id for r in sorted(unverified, key=lambda r: (r.points, r.id))],
        "next_action_status": ["raised"] * len(raised) + [status[r.id] for r in todo] + ["unknown"] * len(unverified),
        "reasons": [r.id for r in sorted([r for r in applies if status[r.id] == "met" and r in scored + raised],
                                         key=lambda r: -abs(r.points))],
        "breakdown": {s: (sum(r.points for r in scored if r.stage == s and status[r.id] == "met"),
                          sum(r.points for r in scored if r.stage == s)) for s in STAGES[: si + 1]},
    }


@st.composite
def status_matrices(draw, n_rules: int, n: int = 12):
    """``n`` deals of random statuses and stages (drawn from a seed: cheap, and replayable)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    p_met = draw(st.sampled_from([0.1, 0.33, 0.6]), label="p_met")
    status = rng.choice(np.array([0, 1, 2], dtype=np.int8), size=(n, n_rules), p=[(1 - p_met) / 2, p_met, (1 - p_met) / 2])
    stages = rng.integers(0, len(STAGES), size=n)
    return status, stages


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_vector_scorer_follows_the_documented_formula(default_pack, data):
    status, stages = data.draw(status_matrices(len(default_pack.rules)))
    cols = VectorScorer(default_pack).score(status, stages)
    for i in range(len(stages)):
        words = {r.id: STATUS_WORDS[status[i, j]] for j, r in enumerate(default_pack.rules)}
        want = documented_score(default_pack, words, STAGES[stages[i]])
        assert cols.score[i] == pytest.approx(want["score"], abs=0.05 + 1e-9)
        assert (cols.earned[i], cols.available[i]) == (want["earned"], want["available"])
        assert cols.penalty[i] == pytest.approx(want["penalty"], abs=0.1 + 1e-9)
        assert cols.completeness[i] == pytest.approx(want["completeness"], abs=5e-4 + 1e-9)
        for name in ("milestones_passed", "red_flags", "unverified_flags", "meeting_flags", "next_actions"):
            assert getattr(cols, name)[i] == want[name], name


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_one_deal_explanation_follows_the_documented_formula(default_pack, data):
    status, stages = data.draw(status_matrices(len(default_pack.rules), n=3))
    for i in range(len(stages)):
        words = {r.id: STATUS_WORDS[status[i, j]] for j, r in enumerate(default_pack.rules)}
        ev = Evaluation(record_id=str(i), stage=STAGES[stages[i]], as_of=None, status=words, matched=[], derived={})
        rs = score_evaluation(default_pack, ev, "zh")
        want = documented_score(default_pack, words, ev.stage)
        assert rs.score == pytest.approx(want["score"], abs=0.05 + 1e-9)
        assert (rs.earned, rs.available) == (want["earned"], want["available"])
        assert rs.penalty == pytest.approx(want["penalty"], abs=0.1 + 1e-9)
        assert {b.stage: (b.earned, b.available) for b in rs.breakdown} == want["breakdown"]
        assert [a.rule for a in rs.next_actions] == want["next_actions"]
        assert [a.status for a in rs.next_actions] == want["next_action_status"]
        assert [r.rule for r in rs.reasons] == want["reasons"]
        assert [f.rule for f in rs.red_flags] == want["red_flags"]
        assert [f.rule for f in rs.unverified_flags] == want["unverified_flags"]
        assert [f.rule for f in rs.meeting_flags] == want["meeting_flags"]
        assert rs.milestones_passed == want["milestones_passed"]
        assert all(a.title == default_pack.rule(a.rule).title["zh"] for a in rs.next_actions)
