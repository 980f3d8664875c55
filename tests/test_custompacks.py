"""Custom rule packs: facts, packs without stages or the course, drafting a pack from data,
and naming the input fields no rule reads."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from scoring import paths
from scoring.cli import main
from scoring.errors import ExitCode, RulePackError
from scoring.evidence.coverage import unread_fields
from scoring.evidence.pack import load_pack
from scoring.evidence.review import run_examples
from scoring.evidence.scaffold import cut_points, infer_type
from scoring.evidence.status import MET, MISSING, UNKNOWN
from scoring.model.features import feature_layout
from scoring.score.rulescore import vector_scorer

from conftest import needs_durable_rules, rule

ROOT = Path(__file__).resolve().parent.parent
BANT = ROOT / "rules" / "examples" / "bant"
FACTS = ("CURRENT_CLIENT", "LARGE_DEAL", "INCUMBENT_RIVAL")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def bant():
    return load_pack(BANT)


@pytest.fixture(scope="module")
def custom_data(tmp_path_factory):
    """A generated history and pipeline carrying the example pack's own field ``current_client``
    (a current client wins more often), as JSON Lines."""
    from dealscore_datasets.generate import generate_records

    d = tmp_path_factory.mktemp("custom")
    rng = random.Random(5)
    for kind, n in (("history", 700), ("pipeline", 20)):
        with open(d / f"{kind}.jsonl", "w", encoding="utf-8") as fh:
            for rec in generate_records(n, seed=41, kind=kind):
                won = rec.get("outcome") == "won"
                rec["current_client"] = None if rng.random() < 0.1 else rng.random() < (0.8 if won else 0.2)
                fh.write(json.dumps(rec) + "\n")
    return d


@pytest.fixture(scope="module")
def custom_model(tmp_path_factory, custom_data):
    """``scoring train`` of the example pack on :func:`custom_data`'s history, once for the module:
    (the model folder, click's result)."""
    model = tmp_path_factory.mktemp("custom-model") / "m"
    res = run("train", custom_data / "history.jsonl", "--rules", BANT, "--out", model)
    assert res.exit_code == 0, res.output
    return model, res


# --------------------------------------------------------------------------- the example pack


def test_example_pack_has_no_stages_and_its_examples_pass(bant):
    assert not bant.staged and {r.kind for r in bant.rules} >= {"fact", "checklist"}
    assert all(set(r.title) == {"en"} and not r.methodology for r in bant.rules)
    assert run_examples(bant) == []


def test_example_pack_ships_with_the_package():
    assert (paths.bundled("rules") / "examples" / "bant" / "pack.yaml").is_file()


def test_pack_without_stages_has_no_stage_features(bant):
    assert not [name for name, kind, _ in feature_layout(bant) if kind == "stage"]


def test_text_falls_back_to_the_language_present(bant):
    assert bant.rule("BUDGET").text("title", "zh") == bant.rule("BUDGET").text("title", "en")


# --------------------------------------------------------------------------- facts score nothing


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_facts_change_no_score_action_or_meeting(bant, data):
    """Whatever the facts' statuses, the rule score, its points, next actions and meetings are the same."""
    n = data.draw(st.integers(1, 6))
    codes = st.sampled_from([MISSING, MET, UNKNOWN])
    status = np.array(data.draw(st.lists(st.lists(codes, min_size=len(bant.rules), max_size=len(bant.rules)),
                                         min_size=n, max_size=n)), dtype=np.int8)
    stages = np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    facts = [j for j, r in enumerate(bant.rules) if r.kind == "fact"]
    other = status.copy()
    other[:, facts] = np.array(data.draw(st.lists(codes, min_size=len(facts), max_size=len(facts))), dtype=np.int8)
    a, b = vector_scorer(bant).score(status, stages), vector_scorer(bant).score(other, stages)
    for col in ("score", "earned", "available", "penalty", "completeness"):
        assert np.array_equal(getattr(a, col), getattr(b, col))
    for i in range(n):
        assert a.next_actions[i] == b.next_actions[i] and a.meeting_flags[i] == b.meeting_flags[i]
        assert not set(a.next_actions[i]) & set(FACTS)


# --------------------------------------------------------------------------- trains and explains


def test_custom_pack_trains_and_explains_without_course_noise(tmp_path, custom_data, custom_model):
    model, _ = custom_model
    res = run("explain", custom_data / "pipeline.jsonl", "--model", model, "--rules", BANT)
    assert res.exit_code == 0, res.output
    out = res.output  # stdout and stderr
    assert "warning" not in out  # not even about rules/default, which is not the pack given
    for noise in ("By stage", "stage:", "stage=", "Stage:", "Milestones passed", "analysis meeting"):
        assert noise not in out
    assert "Facts:" in out and ("Current client: yes" in out or "Current client: no" in out)
    actions = [line for line in out.splitlines() if line.lstrip().startswith("->")]
    assert actions and not any(t in a for a in actions for t in ("Current client", "Deal of 1,000,000", "A rival"))
    res = run("score", custom_data / "pipeline.jsonl", "--model", model, "--out", tmp_path / "scores.jsonl")
    assert res.exit_code == 0 and "warning" not in res.output  # rules/default is another pack, not an edit


def test_custom_pack_explain_json_lists_facts_as_yes_no_unknown(custom_data, custom_model):
    model, _ = custom_model
    res = run("explain", custom_data / "pipeline.jsonl", "--model", model, "--rules", BANT, "--json")
    rows = [json.loads(x) for x in res.output.splitlines()]
    for row in rows:
        assert [f["rule"] for f in row["facts"]] == list(FACTS)
        assert {f["value"] for f in row["facts"]} <= {"yes", "no", "unknown"}
        assert row["breakdown"] == [] and row["analysis_meeting"] == []
        assert not any(r["feature"].startswith("stage=") for r in row["model_reasons"])
        assert not {a["rule"] for a in row["next_actions"]} & set(FACTS)


# --------------------------------------------------------------------------- what a pack must hold


def _fact(**kw):
    r = rule("F1", kind="fact", stage=None, points=None, action=None, methodology=None, rationale=None,
             title={"en": "Current client"})
    r.update(kw)
    return {k: v for k, v in r.items() if v is not None}


def test_minimal_fact_loads(make_pack):
    pack = load_pack(make_pack(rules=[_fact()]))
    assert pack.rule("F1").kind == "fact" and pack.rule("F1").points == 0 and not pack.staged


@pytest.mark.parametrize("extra, message", [
    ({"points": 5}, "a fact has no points"),
    ({"action": {"en": "Ask"}}, "a fact has no 'action'"),
    ({"stages": ["bidding"]}, "a fact has no 'stages'"),
])
def test_fact_with_score_keys_fails(make_pack, extra, message):
    with pytest.raises(RulePackError, match=message) as info:
        load_pack(make_pack(rules=[_fact(**extra)]))
    assert info.value.rule == "F1"


def test_checklist_without_stage_in_a_pack_with_stages_fails(make_pack):
    path = make_pack(rules=[rule("A"), rule("B", stage=None)])
    with pytest.raises(RulePackError, match="needs 'stage' in a pack with stages") as info:
        load_pack(path)
    assert info.value.rule == "B" and info.value.file == "rules.yaml"


def test_checklist_without_action_fails(make_pack):
    r = rule("A")
    del r["action"]
    with pytest.raises(RulePackError, match="missing required key 'action'"):
        load_pack(make_pack(rules=[r]))


def test_pack_without_stages_scores_every_rule_at_every_stage(make_pack):
    pack = load_pack(make_pack(rules=[rule("A", stage=None), _fact()]))
    status = np.array([[MET, MISSING]] * 5, dtype=np.int8)
    cols = vector_scorer(pack).score(status, np.arange(5))
    assert cols.score.tolist() == [100.0] * 5


# --------------------------------------------------------------------------- unread fields


def test_unread_fields_are_those_with_values_no_rule_reads(bant):
    seen = {"opportunity": {"id", "as_of", "outcome", "needs_understood", "region", "expected_close", "vip"},
            "contacts": {"role", "is_coach", "name"}}
    # expected_close: through the computed days_to_close; role: in AUTHORITY's item condition
    assert unread_fields(bant, seen) == ["region", "vip", "contacts[].is_coach"]


def test_train_names_the_fields_no_rule_reads(custom_model):
    _, res = custom_model
    assert "input fields are read by no rule" in res.output and "decision_chain_mapped" in res.output
    assert "current_client" not in res.output.split("read by no rule")[1]


# --------------------------------------------------------------------------- drafting a pack


def test_rules_new_from_the_sample_loads_checks_and_trains(tmp_path):
    out = tmp_path / "ours"
    res = run("rules", "new", "ours", "--from", paths.sample_history(), "--out", out)
    assert res.exit_code == 0, res.output
    assert run("rules", "check", out).exit_code == 0
    pack = load_pack(out)
    assert {r.kind for r in pack.rules} == {"fact"} and len(pack.rules) > 20
    res = run("train", paths.sample_history(), "--rules", out, "--out", tmp_path / "m")
    assert res.exit_code == 0, res.output


def test_rules_new_never_overwrites_a_folder(tmp_path):
    out = tmp_path / "ours"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = run("rules", "new", "ours", "--from", ROOT / "tests" / "data" / "example.jsonl", "--out", out)
    assert res.exit_code == ExitCode.USAGE and "exists" in res.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_rules_new_declares_an_exports_own_fields_with_their_types(tmp_path):
    src = tmp_path / "export.jsonl"
    rows = [{"id": f"D{i}", "stage": "relationship", "current_client": i % 3 == 0, "seats": i * 7,
             "margin": i / 10 + 0.05, "tier": "gold" if i % 2 else "silver", "signed_on": "2026-01-0%d" % (1 + i % 9)}
            for i in range(40)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run("rules", "new", "ours", "--from", src, "--out", tmp_path / "ours").exit_code == 0
    fields = yaml.safe_load((tmp_path / "ours" / "fields.yaml").read_text())["fields"]["opportunity"]
    assert fields == {"current_client": {"type": "bool"}, "seats": {"type": "int"}, "margin": {"type": "number"},
                      "tier": {"type": "string"}, "signed_on": {"type": "date"}}
    ids = {r.id for r in load_pack(tmp_path / "ours").rules}
    assert {"CURRENT_CLIENT", "TIER_GOLD", "TIER_SILVER"} <= ids and any(i.startswith("SEATS_GE_") for i in ids)


@pytest.mark.parametrize("values, text, kind", [
    ([True, False, None], False, "bool"), ([3, 12.0], False, "int"), ([1, 2.5], False, "number"),
    (["yes", "no"], False, "string"), (["12"], False, "string"), ([1, "a"], False, "string"),
    (["2026-01-31", None], False, "date"), (["2026-02-31"], False, "string"),
    (["yes", "No", ""], True, "bool"), (["3", "12"], True, "int"), (["0.5", "3"], True, "number"),
    (["2026-01-31", ""], True, "date"), (["east", "west"], True, "string"),
])
def test_infer_type_reads_values_as_the_contract_does(values, text, kind):
    """JSON and Parquet values are typed (a text is never a bool or number); CSV cells are words."""
    assert infer_type(values, text) == kind


def test_rules_new_reads_an_exports_csv_tables(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    rows = ["id,stage,current_client,seats,tier"] + [
        f"D{i},relationship,{['true', 'false', ''][i % 3]},{i * 3},{['gold', 'silver'][i % 2]}" for i in range(30)]
    (export / "opportunities.csv").write_text("\n".join(rows) + "\n")
    assert run("rules", "new", "ours", "--from", export, "--out", tmp_path / "ours").exit_code == 0
    fields = yaml.safe_load((tmp_path / "ours" / "fields.yaml").read_text())["fields"]["opportunity"]
    assert fields == {"current_client": {"type": "bool"}, "seats": {"type": "int"}, "tier": {"type": "string"}}
    assert run("rules", "check", tmp_path / "ours").exit_code == 0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 10**7), min_size=2, max_size=200), st.booleans())
def test_cut_points_split_the_values(values, whole):
    """Every cut point lies above the smallest value and leaves 5% to 95% of the values at or above it."""
    vals = [float(v) for v in values]
    for c in cut_points(vals, whole):
        share = sum(v >= c for v in vals) / len(vals)
        assert min(vals) < c and 0.05 <= share <= 0.95


def test_the_format_docs_minimal_pack_loads_and_its_examples_pass(tmp_path):
    text = (ROOT / "rules" / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## A minimal pack"):text.index("## Files")]
    blocks = re.findall(r"`([a-z]+\.yaml)`[^\n]*\n```yaml\n(.*?)```", section, re.S)
    assert [name for name, _ in blocks] == ["pack.yaml", "fields.yaml", "rules.yaml"]
    for name, body in blocks:
        (tmp_path / name).write_text(body, encoding="utf-8")
    pack = load_pack(tmp_path)
    assert not pack.staged and run_examples(pack) == []


@needs_durable_rules  # the limit is durable-rules' own; the other backends have none
def test_too_many_tests_holding_at_once_is_a_clear_error(make_pack):
    """durable-rules evaluates at most 64 tests holding at once; beyond, the error names the record."""
    from scoring.contract.nested import validate_record
    from scoring.evidence.durable import Engine

    n = 65
    rules = [_fact(id=f"F{i}", when={f"f{i}": True}, unknown_when=None,
                   examples={"met": {f"f{i}": True}, "missing": {f"f{i}": False}}) for i in range(n)]
    pack = load_pack(make_pack(rules=rules, fields={"opportunity": {f"f{i}": "bool" for i in range(n)}}))
    record = validate_record({"id": "D-1", "stage": "bidding", "as_of": "2026-01-01",
                              **{f"f{i}": True for i in range(n)}}, pack.schema)
    with pytest.raises(RulePackError, match="record D-1: more of the pack's tests hold at once"):
        Engine(pack).evaluate(record)


_OWN_VALUES = {
    "bool": st.one_of(st.none(), st.booleans()),
    "int": st.one_of(st.none(), st.integers(-50, 10**6)),
    "number": st.one_of(st.none(), st.floats(0.01, 1e6, allow_nan=False)),
    "text": st.one_of(st.none(), st.sampled_from(["gold", "silver", "Bronze", "north-east", "华东"])),
}


@settings(max_examples=8, deadline=None)
@given(st.data())
def test_any_drafted_pack_loads_passes_its_examples_and_explains_every_record(tmp_path_factory, data):
    """Whatever an export's own fields hold, the draft loads, its examples pass, and every record evaluates."""
    from scoring.contract.nested import validate_record
    from scoring.evidence.durable import Engine
    from scoring.evidence.scaffold import draft_pack, write_pack

    kinds = data.draw(st.lists(st.sampled_from(sorted(_OWN_VALUES)), min_size=1, max_size=6))
    n = data.draw(st.integers(5, 40))
    rows = [{"id": f"D{i}", "stage": "relationship", "as_of": "2026-01-01",
             **{f"own_{j}": data.draw(_OWN_VALUES[k]) for j, k in enumerate(kinds)},
             "needs_understood": i % 2 == 0} for i in range(n)]
    d = tmp_path_factory.mktemp("draft")
    (d / "export.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = write_pack(draft_pack("ours", d / "export.jsonl"), d / "ours")
    pack = load_pack(out)
    assert run_examples(pack) == []
    engine = Engine(pack)
    for r in rows:
        engine.evaluate(validate_record(r, pack.schema))
