"""The transparent rule score: one formula, the same in the single-record and batch paths."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.contract.schema import STAGE_INDEX
from scoring.score.rulescore import clamp_score, score_evaluation
from scoring.evidence.status import STATUS_WORDS
from scoring.score.vectorscore import VectorScorer
from scoring.evidence.durable import Evaluation


@given(earned=st.floats(0, 500), extra=st.floats(0, 500), penalty=st.floats(0, 200))
def test_score_stays_between_0_and_100(earned, extra, penalty):
    assert 0.0 <= clamp_score(earned, earned + extra, penalty) <= 100.0


def test_score_formula_is_points_share_minus_penalty():
    assert clamp_score(30, 60, 10) == 40.0
    assert clamp_score(0, 0, 0) == 0.0


def test_unknown_item_earns_nothing_but_stays_available(default_pack, default_engine):
    rec = {"id": "u", "stage": "technical_promotion"}
    rs_unknown = score_evaluation(default_pack, default_engine.evaluate(rec))
    rs_false = score_evaluation(default_pack, default_engine.evaluate({**rec, "needs_understood": False}))
    assert rs_unknown.available == rs_false.available
    assert rs_unknown.completeness < rs_false.completeness


def test_results_serialize_to_json(example_records, default_pack, default_engine):
    import json

    rs = score_evaluation(default_pack, default_engine.evaluate(example_records["OPP-1001"]))
    assert json.loads(json.dumps(rs.to_dict()))["id"] == "OPP-1001"


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_batch_scores_equal_single_record_scores(default_pack, data):
    """VectorScorer on a status matrix == score_evaluation deal by deal."""
    rules = default_pack.rules
    n = 12
    status = np.array(data.draw(st.lists(st.lists(st.integers(0, 2), min_size=len(rules), max_size=len(rules)),
                                         min_size=n, max_size=n)), dtype=np.int8)
    stages = np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    cols = VectorScorer(default_pack).score(status, stages)
    names = list(STAGE_INDEX)
    for i in range(n):
        ev = Evaluation(record_id=str(i), stage=names[stages[i]], as_of=None,
                        status={r.id: STATUS_WORDS[status[i, j]] for j, r in enumerate(rules)},
                        matched=[], derived={})
        ref = score_evaluation(default_pack, ev)
        assert cols.score[i] == pytest.approx(ref.score)
        assert cols.completeness[i] == pytest.approx(ref.completeness)
        assert cols.milestones_passed[i] == ref.milestones_passed
        assert cols.red_flags[i] == [f.rule for f in ref.red_flags]
        assert cols.meeting_flags[i] == [f.rule for f in ref.meeting_flags]
        assert cols.next_actions[i] == [a.rule for a in ref.next_actions]
