"""Graded measures: what each value form means, where it applies, and a malformed one refused at load.

(That both backends give the same measures is ``tests/test_columnar.py``'s differential test.)"""
from __future__ import annotations

import math

import pytest

from scoring.contract.frames import records_to_frames
from scoring.errors import RulePackError
from scoring.evidence.columnar import ColumnarEvaluator
from scoring.evidence.pack import load_pack

from conftest import rule

AS_OF = "2026-11-25"

FIELDS = {
    "opportunity": {"needs_understood": "bool", "tech_presentations": "int", "group_events": "int",
                    "stage_entered_at": "date", "as_of": "date",
                    "decision_maker_signal": {"type": "enum", "values": ["none", "implicit", "explicit"]}},
    "contacts": {"role": {"type": "enum", "values": ["approver", "decision_maker", "evaluator", "advisor",
                                                      "gatekeeper", "user"]},
                 "stance": {"type": "enum", "values": ["opponent", "non_supporter", "acknowledger", "sympathizer",
                                                        "supporter", "ally"]},
                 "influence": {"type": "enum", "values": ["low", "medium", "high"]}},
}
LABEL = {"en": "value {value}", "zh": "值{value}"}


def _measure(name, value, **kw):
    return {"name": name, "kind": kw.pop("kind", "count"), "value": value, "direction": kw.pop("direction", "up"),
            "unknown": "not recorded", "label": kw.pop("label", LABEL), **kw}


def _values(make_pack, measures, records, counts=None, computed=None):
    pack = load_pack(make_pack(rules=[rule("R1", measure=measures)], fields=FIELDS, counts=counts, computed=computed))
    records = [{"id": f"r{i}", **r} for i, r in enumerate(records)]
    ev = ColumnarEvaluator(pack).evaluate(records_to_frames(records, pack.fields), AS_OF)
    return [ev.measures_of(i) for i in range(len(records))], pack


def test_items_sum_weights_rows_and_is_unknown_when_no_row_counts(make_pack):
    m = _measure("balance", {"items": {
        "list": "contacts", "where": {"$or": [{"$i.role": "approver"}, {"$i.role": "decision_maker"}]},
        "value": {"field": "stance", "values": {"opponent": -1, "non_supporter": -1, "supporter": 1, "ally": 1,
                                                "acknowledger": 0, "sympathizer": 0}},
        "weight": {"field": "influence", "values": {"low": 1, "medium": 2, "high": 3}, "unknown": 1}}})
    vals, _ = _values(make_pack, m, [
        {"stage": "relationship", "contacts": [{"role": "approver", "stance": "ally", "influence": "high"},
                                               {"role": "decision_maker", "stance": "opponent"},
                                               {"role": "user", "stance": "opponent", "influence": "high"}]},
        {"stage": "relationship", "contacts": [{"role": "approver"}, {"role": "user", "stance": "ally"}]},
        {"stage": "relationship", "contacts": []},
    ])
    assert [v["balance"] for v in vals] == [2.0, None, None]


def test_ratio_is_unknown_when_the_denominator_is_zero(make_pack):
    m = _measure("per", {"ratio": ["tech_presentations", "group_events"]})
    vals, _ = _values(make_pack, m, [{"stage": "bidding", "tech_presentations": 3, "group_events": 2},
                                     {"stage": "bidding", "tech_presentations": 3, "group_events": 0},
                                     {"stage": "bidding", "group_events": 2}])
    assert [v["per"] for v in vals] == [1.5, None, None]


def test_level_changes_sign_under_negate_when_and_is_unknown_under_unknown_when(make_pack):
    m = _measure("signal", {"level": {"field": "decision_maker_signal",
                                      "values": {"none": 0, "implicit": 1, "explicit": 2}}},
                 kind="level", negate_when={"needs_understood": False},
                 unknown_when={"$nex": {"needs_understood": 1}})
    vals, pack = _values(make_pack, m, [
        {"stage": "bidding", "decision_maker_signal": "explicit", "needs_understood": True},
        {"stage": "bidding", "decision_maker_signal": "explicit", "needs_understood": False},
        {"stage": "bidding", "decision_maker_signal": "explicit"},
        {"stage": "bidding", "needs_understood": True},
    ])
    assert [v["signal"] for v in vals] == [2.0, -2.0, None, None]
    assert pack.compiled.measures[0].text(2.0) == "value 2"


def test_a_measure_is_nan_outside_its_stages(make_pack):
    m = _measure("days", {"field": "days_in_stage"}, kind="duration", direction="down",
                 stages=["solution", "bidding"])
    vals, pack = _values(make_pack, m, [
        {"stage": "bidding", "stage_entered_at": "2026-11-01"},
        {"stage": "relationship", "stage_entered_at": "2026-11-01"},
        {"stage": "bidding"}],
        computed={"days_in_stage": {"days_between": ["stage_entered_at", "as_of"]}})
    assert [v["days"] for v in vals] == [24.0, None, None]
    m0 = pack.compiled.measures[0]
    assert (m0.name, m0.rule, m0.kind, m0.direction, m0.stages) == ("days", "R1", "duration", -1, ("solution", "bidding"))


@pytest.mark.parametrize("bad, words", [
    ({"direction": "sideways"}, "direction"),
    ({"kind": "size"}, "kind"),
    ({"value": {"field": "needs_understood"}}, "not an int or number field"),
    ({"value": {"level": {"field": "decision_maker_signal", "values": {"maybe": 1}}}}, "'maybe' is not one of"),
    ({"label": {"en": "pushed {times}", "zh": "推迟"}}, "label"),
    ({"name": "tech_presentations"}, "clashes"),
    ({"unknown_when": {"ev_R1": "met"}}, "unknown rule"),
    ({"oops": 1}, "unknown keys"),
])
def test_a_malformed_measure_fails_at_load_naming_file_and_rule(make_pack, bad, words):
    m = {**_measure("m1", {"field": "tech_presentations"}), **bad}
    with pytest.raises(RulePackError) as e:
        load_pack(make_pack(rules=[rule("R1", measure=m)], fields=FIELDS))
    msg = str(e.value)
    assert "rules.yaml" in msg and "R1" in msg and words in msg


def test_two_measures_with_one_name_are_refused(make_pack):
    m = _measure("m1", {"field": "tech_presentations"})
    with pytest.raises(RulePackError, match="duplicate measure name 'm1'"):
        load_pack(make_pack(rules=[rule("R1", measure=m), rule("R2", measure=[m])], fields=FIELDS))


def test_measures_survive_pickling_the_pack(make_pack):
    import pickle

    m = _measure("m1", {"field": "tech_presentations"})
    pack = load_pack(make_pack(rules=[rule("R1", measure=m)], fields=FIELDS))
    again = pickle.loads(pickle.dumps(pack))
    assert again.compiled.measures == pack.compiled.measures
    assert not math.isnan(0.0)
