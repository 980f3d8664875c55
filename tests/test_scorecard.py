"""The scorecard: monotone bins, the points table, stage deviations, sign constraints, gains, the challenger."""
from __future__ import annotations

import datetime as dt
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import SMALL_PACK_RULES, rule
from scoring.contract.nested import validate_record
from scoring.errors import ModelError
from scoring.evidence.pack import load_pack
from scoring.model.binning import UNKNOWN_BIN, bin_index, bin_labels, fit_bins, thermometer
from scoring.model.inputs import declared_direction
from scoring.model.train import train

STAGES = ["technical_promotion", "relationship", "partner", "solution", "bidding"]


def history(n_deals=400, seed=0, effect=None, extra=None):
    """Closed deals of the small pack; ``effect(record) -> log-odds`` sets the outcome, ``extra(rng)`` adds fields."""
    rng = random.Random(seed)
    out = []
    start = dt.date(2024, 1, 1)
    for i in range(n_deals):
        rec = {"id": f"D{i:04d}", "stage": rng.choice(STAGES),
               "needs_understood": rng.choice([True, False, None]),
               "tech_presentations": rng.choice([0, 1, 2, 3, 5, None]),
               "decision_maker_signal": rng.choice(["none", "implicit", "explicit"])}
        if extra:
            rec.update(extra(rng))
        z = (effect or (lambda r: 1.5 * (r["needs_understood"] is True) - 1.0 * (r["decision_maker_signal"] == "none")
                        - 0.3))(rec)
        closed = start + dt.timedelta(days=rng.randrange(0, 700))
        rec.update(outcome="won" if rng.random() < 1 / (1 + math.exp(-z)) else "lost", closed_at=str(closed),
                   as_of=str(closed - dt.timedelta(days=rng.randrange(5, 120))))
        out.append(rec)
    return out


@pytest.fixture
def pack(make_pack):
    return make_pack(rules=SMALL_PACK_RULES)


# --------------------------------------------------------------------------- bins
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 12)), st.booleans()), min_size=20, max_size=300),
       st.sampled_from([1, -1]))
def test_learned_bins_are_monotone_in_the_declared_direction_and_not_too_small(pairs, direction):
    x = np.array([np.nan if v is None else float(v) for v, _ in pairs])
    y = np.array([float(b) for _, b in pairs])
    w = np.ones(len(x))
    b = fit_bins(x, y, w, direction, min_share=0.05)
    known = ~np.isnan(x)
    idx = bin_index(b.cuts, x)
    assert (idx[~known] == UNKNOWN_BIN).all() and (idx[known] >= 0).all()  # unknown is its own bin, never a value
    if not known.any():
        assert b.cuts == []
        return
    rates = [y[known & (idx == k)].mean() for k in range(b.n_bins)]
    assert all(direction * (r2 - r1) > 0 for r1, r2 in zip(rates, rates[1:]))
    if b.n_bins > 1:
        assert min((idx == k).sum() for k in range(b.n_bins)) >= 0.05 * known.sum()


def test_cumulative_coding_gives_each_bin_the_sum_of_the_steps_below_it():
    steps, unknown = thermometer([1.0, 3.0], np.array([0.0, 1.0, 2.0, 7.0, np.nan]))
    assert steps.tolist() == [[0, 0], [1, 0], [1, 0], [1, 1], [0, 0]]
    assert unknown.tolist() == [0, 0, 0, 0, 1]
    assert bin_labels([1.0, 3.0], lowest=0) == ["0", "1-2", "3+"]


# --------------------------------------------------------------------------- directions and signs
def test_declared_directions_are_checklist_up_red_flag_down_and_triggers_and_facts_neutral():
    assert [declared_direction(k) for k in ("checklist", "milestone", "red_flag", "trigger", "fact")] == [1, 1, -1, 0, 0]


@pytest.fixture(scope="module")
def contrary(tmp_path_factory):
    """A pack whose checklist item R1 goes against winning in the history."""
    import yaml

    d = tmp_path_factory.mktemp("contrary")
    (d / "pack.yaml").write_text(yaml.safe_dump({"name": "test", "version": "1"}))
    (d / "fields.yaml").write_text(yaml.safe_dump({"fields": {"opportunity": {
        "needs_understood": "bool", "tech_presentations": "int", "amount": "number",
        "decision_maker_signal": {"type": "enum", "values": ["none", "implicit", "explicit"]}}}}))
    (d / "rules.yaml").write_text(yaml.safe_dump({"rules": SMALL_PACK_RULES}))
    h = history(500, seed=3, effect=lambda r: -1.5 * (r["needs_understood"] is True)
                - 1.0 * (r["decision_maker_signal"] == "none"))
    return d, h


def test_constrained_signs_hold_a_contrary_weight_at_zero_and_the_summary_says_so(contrary):
    d, h = contrary
    res = train(h, rules=d, min_per_class=20, challenger=False)
    m = res.model
    r1 = [r.id for r in m.pack.rules].index("R1")
    assert (m.met_points[:, r1] == 0).all()
    assert "R1" in res.signs["held_at_zero"]
    assert any(c["rule"] == "R1" and c["log_odds"] < 0 for c in res.signs["contradicts"])
    for j, r in enumerate(m.pack.rules):  # every weight keeps its rule's direction, at every stage
        assert (declared_direction(r.kind) * m.met_points[:, j] >= 0).all()


def test_free_signs_let_the_weight_go_against_the_rule_and_the_reason_warns(contrary):
    d, h = contrary
    res = train(h, rules=d, min_per_class=20, signs="free", challenger=False)
    recs = [validate_record(r, res.pack.schema) for r in h if r["needs_understood"] is True][:5]
    for rs in res.model.reasons(recs):
        r1 = [r for r in rs["negative"] if r["feature"] == "R1"]
        assert r1 and "goes against the rule" in r1[0]["sign_warning"]
        against = {c["term"] for c in res.signs["contradicts"]}
        for r in rs["negative"] + rs["positive"]:  # a warning exactly on the weights against their rule
            assert (r["sign_warning"] is not None) == (r["feature"] in against)
    assert res.signs["published"] == "free" and set(res.signs["log_loss"]) == {"constrained", "free"}


# --------------------------------------------------------------------------- stages
def test_stage_deviations_are_kept_where_the_data_shows_them_and_shrunk_otherwise(pack):
    h = history(900, seed=5, effect=lambda r: (2.5 if r["stage"] == "bidding" else 0.2) * (r["needs_understood"] is True)
                - 0.8)
    res = train(h, rules=pack, min_per_class=20, challenger=False)
    assert res.params["kappa"] is not None
    m = res.model
    j = [r.id for r in m.pack.rules].index("R1")
    assert m.met_points[4, j] > m.met_points[1, j] + 0.3  # bidding above relationship (shrunk towards it)
    rows = m.points_table()
    assert set(rows[(rows.term == "R1") & rows.stage.notna()].stage) <= set(STAGES)


def test_a_pack_without_stages_gets_no_stage_terms(make_pack):
    p = load_pack(make_pack(rules=[rule("R1", kind="trigger", points=0, stage=None, stages=STAGES)]))
    p.staged = False  # what the loader says of a pack whose rules name no stage
    res = train(history(300, seed=2), rules=p, min_per_class=20, challenger=False)
    assert not any(f.startswith("stage=") for f in res.model.feature_names)


# --------------------------------------------------------------------------- gains
def test_gain_is_the_change_in_probability_when_the_rule_alone_becomes_met(pack):
    res = train(history(400, seed=1), rules=pack, min_per_class=20, challenger=False)
    m = res.model
    recs = [validate_record({"id": f"X{i}", "stage": s, "as_of": "2026-01-01", "needs_understood": nu,
                             "tech_presentations": 0, "decision_maker_signal": "explicit"}, m.pack.schema)
            for i, (s, nu) in enumerate([("relationship", False), ("bidding", None), ("partner", True)])]
    gains = m.gains_of(recs)
    met = [validate_record({**r, "needs_understood": True}, m.pack.schema) for r in recs]
    for g, before, after in zip(gains, m.predict_proba(recs), m.predict_proba(met)):
        if "R1" in g:
            assert g["R1"] == pytest.approx(after - before, abs=1e-12)
    assert "R1" not in gains[2]  # already met: no gain
    ev = m.explain_evaluation(m.engine.evaluate(recs[0]))
    assert ev["gains"] == pytest.approx(gains[0])


# --------------------------------------------------------------------------- measures and derived facts
def test_a_derived_fact_enters_as_bins_and_reasons_name_the_bin(make_pack):
    p = make_pack(rules=SMALL_PACK_RULES, counts={"coaches": {"list": "contacts", "where": {"$i.is_coach": True}}})

    def extra(rng):
        return {"contacts": [{"is_coach": rng.random() < 0.5} for _ in range(rng.randint(0, 4))]}

    h = history(600, seed=4, extra=extra,
                effect=lambda r: 0.9 * sum(c["is_coach"] for c in r["contacts"]) - 1.5)
    res = train(h, rules=p, min_per_class=20, challenger=False, derived=True)
    m = res.model
    assert "coaches" in m.feature_names
    table = m.points_table()
    bins = table[(table.term == "coaches") & (table.evidence == "bin")]
    assert len(bins) >= 2 and np.all(np.diff(bins.log_odds.to_numpy()) >= 0)  # learned direction: up
    rec = validate_record({"id": "X", "stage": "relationship", "as_of": "2026-01-01",
                           "contacts": [{"is_coach": True}] * 4}, m.pack.schema)
    pos = m.reasons([rec])[0]["positive"]
    coach = [r for r in pos if r["feature"] == "coaches"]
    assert coach and coach[0]["bin"] in coach[0]["title"]
    with pytest.raises(ModelError, match="coaches"):
        m.score_statuses(np.zeros((1, len(m.pack.rules)), np.int8), ["relationship"])  # derived facts not given


# --------------------------------------------------------------------------- the challenger
def test_the_challenger_names_a_raw_field_with_signal_that_no_rule_reads(pack):
    h = history(700, seed=6, extra=lambda rng: {"amount": rng.choice([1e4, 1e6])},
                effect=lambda r: 2.5 * (r["amount"] > 1e5) - 1.2 + 1.0 * (r["needs_understood"] is True))
    res = train(h, rules=pack, min_per_class=20)
    ch = res.challenger
    assert "amount" in ch["unread_with_signal"]
    assert "needs_understood" not in ch["unread_with_signal"]  # read by R1
    assert set(ch["metrics"]) >= {"roc_auc", "log_loss", "brier", "ece"}
    assert len(res.held_out["p_challenger"]) == len(res.held_out["p_model"])


def test_reasons_of_one_deal_equal_the_batch_s_even_on_tied_contributions(pack):
    from scoring.model.scorecard import Model

    res = train(history(300, seed=1), rules=pack, min_per_class=20, challenger=False)
    spec = res.model.to_spec()
    for r in spec["rules"]:
        r["met"], r["by_stage"] = (0.4 if r["id"] in ("R1", "R2") else r["met"]), {}  # a tie between R1 and R2
    m = Model(res.model.pack, spec)
    recs = [validate_record({"id": f"X{i}", "stage": "solution", "as_of": "2026-01-01", "needs_understood": True,
                             "tech_presentations": 3, "decision_maker_signal": "explicit"}, m.pack.schema)
            for i in range(3)]
    e = m.evidence_of(recs)
    for top in (1, 2):
        _, pos, _ = m.score_statuses(e.status, e.stages, top=top)
        one = m.explain_evaluation(m.engine.evaluate(recs[0]), top=top)["model_reasons"]
        assert [r["feature"] for r in one if r["contribution"] > 0] == list(pos[0]) == ["R1", "R2"][:top]


def test_train_summary_names_the_challenger_the_unread_fields_and_the_signs(pack, tmp_path):
    import json

    from click.testing import CliRunner

    from scoring.cli import main

    h = history(600, seed=6, extra=lambda rng: {"amount": rng.choice([1e4, 1e6])},
                effect=lambda r: 2.5 * (r["amount"] > 1e5) - 1.2 + 1.0 * (r["needs_understood"] is True))
    src = tmp_path / "history.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in h))
    res = CliRunner().invoke(main, ["train", str(src), "--rules", str(pack), "--out", str(tmp_path / "m"),
                                    "--min-per-class", "20"])
    assert res.exit_code in (0, 5), res.output
    assert "challenger (GBM)" in res.output and "scorecard vs challenger: log loss" in res.output
    assert "raw fields with signal that no rule reads (write a rule for them): amount" in res.output
    assert "signs constrained: held-out log loss constrained" in res.output
    res = CliRunner().invoke(main, ["train", str(src), "--rules", str(pack), "--out", str(tmp_path / "m2"),
                                    "--min-per-class", "20", "--free-signs", "--json"])
    out = json.loads(res.stdout)
    assert out["signs"]["published"] == "free" and "amount" in out["challenger"]["unread_with_signal"]
    assert set(out["metrics"]) == {"model", "base_rate", "rule_score", "challenger"}
