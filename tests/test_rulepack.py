"""Loading a rule pack: a malformed pack fails at load, naming the file and the rule."""
from __future__ import annotations

import pytest

from scoring.errors import RulePackError
from scoring.evidence.pack import load_pack

from conftest import rule


def _fails(make_pack, match, **kw):
    path = make_pack(**kw)
    with pytest.raises(RulePackError, match=match) as info:
        load_pack(path)
    return info.value


def test_valid_pack_loads_with_layers(make_pack):
    pack = load_pack(make_pack(rules=[
        rule("A"),
        rule("B", kind="red_flag", stage=None, points=-5, when={"ev_A": "missing"}, unknown_when=None,
             examples={"met": {"stage": "relationship", "needs_understood": False},
                       "missing": {"stage": "relationship", "needs_understood": True}}),
    ]))
    assert [r.layer for r in pack.rules] == [0, 1]
    assert pack.rule("B").depends == {"A"}


def test_error_names_file_and_rule_for_unknown_field(make_pack):
    err = _fails(make_pack, "unknown field 'needs_understod'", rules=[rule("X1", when={"needs_understod": True})])
    assert err.file == "rules.yaml" and err.rule == "X1"


def test_unknown_item_field_fails(make_pack):
    _fails(make_pack, "unknown field 'is_coch' of contacts",
           rules=[rule(when={"$iany": {"contacts": {"$i.is_coch": True}}})])


def test_unknown_operator_fails(make_pack):
    _fails(make_pack, r"unknown operator \$between", rules=[rule(when={"$between": {"amount": 1}})])


@pytest.mark.parametrize("cond", [
    {"$mt": {"name": "a.*"}},
    {"$not": {"needs_understood": True}},
    {"$gt": {"amount": {"$add": {"$l": 1, "$r": 2}}}},
])
def test_operator_outside_safe_subset_fails(make_pack, cond):
    _fails(make_pack, "outside the safe subset|plain string, number or boolean", rules=[rule(when=cond)])


def test_duplicate_id_fails(make_pack):
    _fails(make_pack, "duplicate rule id", rules=[rule("A"), rule("A")])


def test_cycle_between_derived_facts_fails(make_pack):
    ex = {"met": {"stage": "bidding"}, "missing": {"stage": "bidding"}}
    err = _fails(make_pack, "cycle between derived facts: (A -> B -> A|B -> A -> B)", rules=[
        rule("A", when={"ev_B": "met"}, unknown_when=None, examples=ex),
        rule("B", when={"ev_A": "met"}, unknown_when=None, examples=ex),
    ])
    assert err.rule in ("A", "B")


@pytest.mark.parametrize("key", ["id", "kind", "points", "title", "action", "when", "examples"])
def test_missing_required_key_fails(make_pack, key):
    r = rule("A")
    del r[key]
    _fails(make_pack, f"missing required key '{key}'|rule id None", rules=[r])


def test_title_without_text_fails(make_pack):
    _fails(make_pack, "'title' needs a text in en or zh", rules=[rule(title={})])


def test_wrong_value_type_fails(make_pack):
    _fails(make_pack, "is true/false; 'yes' is not", rules=[rule(when={"needs_understood": "yes"})])


def test_enum_value_outside_list_fails(make_pack):
    _fails(make_pack, "'maybe' is not one of none, implicit, explicit",
           rules=[rule(when={"decision_maker_signal": "maybe"})])


def test_comparison_on_non_numeric_field_fails(make_pack):
    _fails(make_pack, "comparisons .* only allowed on numeric fields",
           rules=[rule(when={"$gt": {"stage_entered_at": "2026-01-01"}})])


def test_empty_and_fails(make_pack):
    _fails(make_pack, r"\$and needs a non-empty list", rules=[rule(when={"$and": []})])


def test_nested_list_operator_fails(make_pack):
    _fails(make_pack, "cannot be nested", rules=[rule(
        when={"$iany": {"contacts": {"$iany": {"contacts": {"$i.is_coach": True}}}}})])


def test_red_flag_with_positive_points_fails(make_pack):
    _fails(make_pack, "red_flag must have negative points",
           rules=[rule(kind="red_flag", stage=None, points=5)])


def test_unknown_stage_fails(make_pack):
    _fails(make_pack, "needs 'stage'", rules=[rule(stage="closing")])


def test_examples_must_cover_unknown_when_rule_has_unknown_when(make_pack):
    _fails(make_pack, "'examples' must hold exactly", rules=[rule(examples={
        "met": {"stage": "bidding"}, "missing": {"stage": "bidding"}})])


def test_pack_field_cannot_retype_contract_field(make_pack):
    _fails(make_pack, "redeclares the contract field", fields={"opportunity": {"amount": "string"}})


def test_unknown_rule_reference_fails(make_pack):
    _fails(make_pack, "refers to unknown rule 'M9'", rules=[rule(when={"ev_M9": "met"})])


def test_too_many_tests_on_one_field_fails(make_pack):
    rules = [rule(f"R{i}", when={"$gt": {"amount": i}}) for i in range(205)]
    _fails(make_pack, "distinct tests on field 'amount'", rules=rules)


def test_count_where_is_validated(make_pack):
    _fails(make_pack, "unknown field 'nope' of contacts", counts={"c": {"list": "contacts", "where": {"$i.nope": True}}})


def test_broken_yaml_names_the_file(make_pack):
    err = _fails(make_pack, "not valid YAML", files={"extra.yaml": "rules: [\n  - id: A\n   bad"})
    assert err.file == "extra.yaml"


def test_team_field_declared_by_pack_is_usable(make_pack):
    fields = {"opportunity": {"exec_sponsor": "bool"}}
    pack = load_pack(make_pack(fields=fields, rules=[rule(
        when={"exec_sponsor": True}, unknown_when=None,
        examples={"met": {"stage": "bidding", "exec_sponsor": True}, "missing": {"stage": "bidding"}})]))
    assert pack.schema["opportunity"]["exec_sponsor"].type == "bool"
    assert "needs_understood" in pack.schema["opportunity"]  # the contract still validates


def test_fingerprint_changes_with_any_edit(make_pack):
    a = load_pack(make_pack(rules=[rule(points=5)]))
    b = load_pack(make_pack(rules=[rule(points=6)]))
    c = load_pack(make_pack(rules=[rule(points=5)]))
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == c.fingerprint


def test_or_over_different_item_fields_is_refused(make_pack):
    """durable-rules 2.0.28 evaluates it wrongly (the last field decides); counts are the way."""
    _fails(make_pack, r"\$or over different item fields \(\$i.is_coach, \$i.role\)", rules=[rule(
        when={"$iany": {"contacts": {"$or": [{"$i.role": "approver"}, {"$i.is_coach": True}]}}})])


def test_or_over_one_item_field_is_allowed(make_pack):
    load_pack(make_pack(rules=[rule(
        when={"$iany": {"contacts": {"$or": [{"$i.role": "approver"}, {"$i.role": "decision_maker"}]}}})]))


def test_count_may_use_or_over_different_item_fields(make_pack):
    load_pack(make_pack(counts={"key": {"list": "contacts", "where": {
        "$or": [{"$i.role": "approver"}, {"$i.is_coach": True}]}}}))


def test_fingerprint_ignores_the_pack_readme(make_pack):
    a = load_pack(make_pack(rules=[rule()]))
    b = load_pack(make_pack(rules=[rule()], files={"README.md": "notes for sales ops\n"}))
    assert a.fingerprint == b.fingerprint


def test_computed_difference_needs_whole_number_fields(make_pack):
    _fails(make_pack, "'amount' is not a declared int field",
           computed={"gap": {"difference": ["tech_presentations", "amount"]}})


def test_computed_difference_compares_two_fields(make_pack):
    from scoring.evidence.durable import Engine

    pack = load_pack(make_pack(
        fields={"opportunity": {"site_visits": "int", "site_visits_accompanied": "int"}},
        computed={"unaccompanied": {"difference": ["site_visits", "site_visits_accompanied"]}},
        rules=[rule(when={"$gte": {"unaccompanied": 1}}, unknown_when={"$nex": {"unaccompanied": 1}}, examples={
            "met": {"stage": "bidding", "site_visits": 3, "site_visits_accompanied": 2},
            "missing": {"stage": "bidding", "site_visits": 2, "site_visits_accompanied": 2},
            "unknown": {"stage": "bidding", "site_visits": 2}})]))
    ev = Engine(pack).evaluate({"id": "x", "stage": "bidding", "site_visits": 3, "site_visits_accompanied": 1})
    assert ev.derived["unaccompanied"] == 2 and ev.status["R1"] == "met"
