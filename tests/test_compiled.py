"""The compiled form of a pack: parsed once, translated to durable-rules unchanged, one status
resolution, one layer order, one definition of each derived fact."""
from __future__ import annotations

import pickle

import numpy as np

from scoring.evidence.compiled import Count, Difference, days_between, day_number, resolve_status
from scoring.evidence.durable import to_durable
from scoring.contract.schema import CONTRACT
from scoring.evidence.grammar import AllOf, Check, Items, Ref, Scope, parse_condition
from scoring.evidence.status import MET, MISSING, UNKNOWN


def test_durable_rules_gets_each_condition_as_the_pack_wrote_it(default_pack):
    compiled = default_pack.compiled
    for r, c in zip(default_pack.rules, compiled.rules):
        assert to_durable(c.when) == r.when, r.id
        assert (None if c.unknown_when is None else to_durable(c.unknown_when)) == r.unknown_when, r.id
    for c in compiled.counts:
        assert to_durable(c.where) == default_pack.counts[c.name].where, c.name


def test_conditions_are_parsed_into_typed_nodes():
    scope = Scope(CONTRACT, counts=frozenset({"known_coaches"}), rule_ids=frozenset({"M1"}))
    raw = {"$and": [{"needs_understood": True}, {"$gte": {"known_coaches": 1}}, {"ev_M1": "met"},
                    {"$iany": {"contacts": {"$nex": {"$i.is_coach": 1}}}}]}
    assert parse_condition(raw, scope, "f.yaml", "R1") == AllOf((
        Check("=", Ref("field", "needs_understood", "bool"), True),
        Check("$gte", Ref("count", "known_coaches", "int"), 1),
        Check("=", Ref("status", "M1", "status"), "met"),
        Items("$iany", "contacts", Check("$nex", Ref("item", "is_coach", "bool", "contacts"), 1)),
    ))


def test_status_is_met_else_unknown_else_missing():
    met = np.array([True, True, False, False])
    unknown = np.array([True, False, True, False])
    assert resolve_status(met, unknown).tolist() == [MET, MET, UNKNOWN, MISSING]
    assert resolve_status(met, None).tolist() == [MET, MET, MISSING, MISSING]


def test_layers_put_every_rule_after_the_rules_it_reads(default_pack, make_pack):
    from conftest import rule
    from scoring.evidence.pack import load_pack

    ex = {"met": {"stage": "bidding"}, "missing": {"stage": "bidding"}}
    pack = load_pack(make_pack(rules=[
        rule("C", when={"ev_B": "met"}, unknown_when=None, examples=ex),
        rule("A"),
        rule("B", when={"$and": [{"ev_A": "missing"}, {"needs_understood": False}]}, unknown_when=None, examples=ex),
    ]))
    assert [[r.id for r in layer] for layer in pack.compiled.layers] == [["A"], ["B"], ["C"]]
    assert [r.position for r in pack.compiled.rules] == [0, 1, 2]


def test_count_is_the_number_of_matching_rows_and_zero_without_rows():
    count = Count("n", "contacts", AllOf(()))
    match = np.array([True, False, True, True])
    rows = np.array([0, 0, 2, 2])
    values, known = count.value(match, rows, 4)
    assert values.tolist() == [1, 0, 2, 0] and known is None


def test_difference_is_unknown_when_either_input_is():
    d = Difference("days", "days_between", "start", "end")
    start = np.array([day_number("2026-10-01"), 0, day_number("2026-10-01")])
    end = np.array([day_number("2026-11-25"), day_number("2026-11-25"), 0])
    values, known = d.value(start, np.array([True, False, True]), end, np.array([True, True, False]))
    assert known.tolist() == [True, False, False]
    assert values[0] == 55 == days_between("2026-10-01", "2026-11-25")
    assert days_between(None, "2026-11-25") is None


def test_a_pickled_pack_does_not_carry_its_compiled_form_and_rebuilds_the_same(default_pack):
    default_pack.compiled  # noqa: B018  (built)
    state = default_pack.__getstate__()
    assert "compiled" not in state  # model artifacts keep the shape they had before the compiled form
    clone = pickle.loads(pickle.dumps(default_pack))
    assert clone.compiled.rules == default_pack.compiled.rules
    assert clone.compiled.counts == default_pack.compiled.counts
    assert clone.compiled.computed == default_pack.compiled.computed
