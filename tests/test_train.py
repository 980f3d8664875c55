"""Training: drops, labels, the split by deal and time, weights, the choice of C, metrics, determinism,
and the model's reasons."""
from __future__ import annotations

import datetime as dt
import math
import random

import numpy as np
import pytest

from conftest import SMALL_PACK_RULES, write_pack
from scoring.errors import ModelError
from scoring.evidence.pack import load_pack
from scoring.model.fit import C_GRID, fit_penalised
from scoring.model.scorecard import coef_to_points
from scoring.model.train import prepare_history, split_deals, train

RULES = SMALL_PACK_RULES
STAGES = ["technical_promotion", "relationship", "partner", "solution", "bidding"]


@pytest.fixture
def pack(make_pack):
    return make_pack(rules=RULES)


@pytest.fixture(scope="module")
def fit200(tmp_path_factory):
    """``(history(200), its training result)`` with the small pack (seed 3): one fit shared by the tests
    that only read it."""
    h = history(200)
    return h, train(h, rules=write_pack(tmp_path_factory.mktemp("fit200") / "pack", RULES), min_per_class=10, seed=3)


def history(n_deals=200, seed=0, snapshots=(1, 3)):
    """Closed deals whose outcome depends on the pack's evidence; 1-3 snapshots each, all before the close."""
    rng = random.Random(seed)
    out = []
    start = dt.date(2024, 1, 1)
    for i in range(n_deals):
        nu = rng.choice([True, False, None])
        tp = rng.choice([0, 1, 3, None])
        dm = rng.choice(["none", "implicit", "explicit"])
        z = -0.5 + 1.5 * (nu is True) - 0.7 * (nu is None) + 0.8 * (tp == 3) - 1.0 * (dm == "none")
        won = rng.random() < 1 / (1 + math.exp(-z))
        outcome = "won" if won else rng.choice(["lost", "lost", "no_decision"])
        closed = start + dt.timedelta(days=rng.randrange(0, 700))
        k = rng.randint(*snapshots)
        days = sorted(rng.sample(range(5, 120), k))
        for d in days:
            out.append({"id": f"D{i:04d}", "stage": rng.choice(STAGES), "as_of": str(closed - dt.timedelta(days=d)),
                        "closed_at": str(closed), "outcome": outcome,
                        "needs_understood": nu, "tech_presentations": tp, "decision_maker_signal": dm})
    return out


def test_leakage_and_incomplete_rows_are_dropped_with_counts(pack):
    h = history(150)
    h[0] = {**h[0], "as_of": h[0]["closed_at"]}                       # on the close day: leakage
    h[1] = {**h[1], "as_of": "2030-01-01"}                            # after the close: leakage
    h[2] = {k: v for k, v in h[2].items() if k != "outcome"}
    h[3] = {**h[3], "closed_at": None}
    h[4] = {k: v for k, v in h[4].items() if k != "as_of"}
    res = train(h, rules=pack, min_per_class=10, C=1.0)
    assert res.counts["drops"] == {"no_outcome": 1, "no_closed_at": 1, "no_as_of": 1, "after_close": 2,
                                   "no_decision": 0}
    assert res.counts["kept"]["snapshots"] == len(h) - 5
    assert res.counts["train"]["snapshots"] + res.counts["test"]["snapshots"] == len(h) - 5


def test_no_decision_counts_as_lost_unless_dropped(pack):
    h = history(200)
    n_nd = sum(r["outcome"] == "no_decision" for r in h)
    lost = prepare_history(h, load_pack(pack))
    assert lost.drops["no_decision"] == 0 and len(lost.records) == len(h)
    assert all(y == 0 for r, y in zip(lost.records, lost.y) if r["outcome"] == "no_decision")
    res = train(h, rules=pack, min_per_class=10, C=1.0, no_decision_as="drop")
    assert res.counts["drops"]["no_decision"] == n_nd


def test_split_is_by_deal_and_by_time(pack):
    h = history(200)
    res = train(h, rules=pack, min_per_class=10, C=1.0, test_fraction=0.25)
    train_ids, test_ids = set(res.train_ids), set(res.test_ids)
    assert not train_ids & test_ids
    assert train_ids | test_ids == {r["id"] for r in h}
    closed = {r["id"]: r["closed_at"] for r in h}
    assert max(closed[d] for d in train_ids) <= min(closed[d] for d in test_ids)
    assert len(test_ids) == 50
    assert res.counts["test"]["deals"] == 50


def test_split_deals_orders_by_close_then_id():
    tr, te = split_deals({"a": "2024-01-03", "b": "2024-01-01", "c": "2024-01-02", "d": "2024-01-03"}, 0.5)
    assert tr == ["b", "c"] and te == ["a", "d"]


@pytest.mark.parametrize("kwargs, message", [({"no_decision_as": "won"}, "no_decision_as must be one of lost, drop"),
                                             ({"test_fraction": 1.0}, "test_fraction must be between 0 and 1")])
def test_bad_parameters_are_refused_with_the_project_s_error(pack, kwargs, message):
    with pytest.raises(ModelError, match=message):
        train(history(100), rules=pack, min_per_class=10, C=1.0, **kwargs)


def test_too_little_data_is_refused_with_counts(pack):
    h = history(30)
    n_won = len({r["id"] for r in h if r["outcome"] == "won"})
    with pytest.raises(ModelError, match=rf"found {n_won} won and {30 - n_won} lost distinct deals.*at least 40"):
        train(h, rules=pack)


def test_inconsistent_outcomes_are_refused(pack):
    h = history(100, snapshots=(2, 2))
    h[1] = {**h[1], "outcome": "won" if h[0]["outcome"] != "won" else "lost"}
    with pytest.raises(ModelError, match="D0000.*disagree"):
        train(h, rules=pack, min_per_class=10)


def test_each_deal_weighs_the_same(pack):
    h = prepare_history(history(100, snapshots=(1, 4)), load_pack(pack))
    per_deal = {}
    for d, w in zip(h.deal, h.weight):
        per_deal[d] = per_deal.get(d, 0.0) + w
    assert np.allclose(list(per_deal.values()), 1.0)
    assert len(set(h.weight.round(6))) > 1


def test_same_data_and_seed_give_identical_coefficients(pack, fit200):
    h, a = fit200
    shuffled = h[:]
    random.Random(1).shuffle(shuffled)
    b = train(shuffled, rules=pack, min_per_class=10, seed=3)
    assert a.params["C"] == b.params["C"]
    assert a.model.to_spec() == b.model.to_spec()
    assert a.data_fingerprint == b.data_fingerprint


def test_the_unbounded_fit_is_scikit_learn_s_logistic_regression():
    """The scorecard's objective is LogisticRegression's: C * weighted log loss + 0.5 * ||beta||^2."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    X = rng.integers(0, 2, (400, 6)).astype(float)
    y = (rng.random(400) < 1 / (1 + np.exp(-(X @ [1.5, -1, 0.5, 0, 0, 0.2] - 0.3)))).astype(int)
    w = rng.uniform(0.25, 1.0, 400)
    for C in (0.1, 1.0):
        lr = LogisticRegression(C=C, max_iter=5000, tol=1e-10).fit(X, y, sample_weight=w)
        theta = fit_penalised(X, y, w, C, [(None, None)] * 6)
        assert theta[0] == pytest.approx(lr.intercept_[0], abs=1e-5)
        assert theta[1:] == pytest.approx(lr.coef_[0], abs=1e-5)


def test_C_is_the_one_of_the_lowest_deal_weighted_log_loss_over_the_grouped_folds(pack):
    res = train(history(300), rules=pack, min_per_class=10, challenger=False)
    global_rows = [r for r in res.cv if r["kappa"] is None]
    assert [r["C"] for r in global_rows] == list(C_GRID)
    assert res.params["C"] == min(global_rows, key=lambda r: (round(r["log_loss"], 12), r["C"]))["C"]


def test_metrics_compare_the_model_with_both_baselines(pack):
    res = train(history(300), rules=pack, min_per_class=10)
    m = res.metrics
    for name in ("model", "base_rate", "rule_score"):
        assert set(m[name]) >= {"roc_auc", "log_loss", "brier", "ece"}
    assert m["base_rate"]["roc_auc"] == 0.5
    assert m["model"]["log_loss"] < m["base_rate"]["log_loss"]
    assert len(m["reliability"]["model"]) == 10
    assert sum(r["count"] for r in m["reliability"]["model"]) == res.counts["test"]["snapshots"]
    assert res.cv and {"C", "log_loss"} <= set(res.cv[0])
    assert {"won", "lost", "deals", "snapshots"} <= set(res.counts["train"])


def test_contributions_and_intercept_sum_to_the_logit(fit200):
    _, res = fit200
    from scoring.contract.nested import validate_record

    recs = [validate_record(r, res.pack.schema) for r in history(20, seed=9)]
    model = res.model
    contrib = model.contributions(recs)
    assert np.allclose(contrib.sum(axis=1).to_numpy() + model.intercept, model.logit(recs), atol=1e-12)
    test = [validate_record(r, res.pack.schema) for r in history(200) if r["id"] in set(res.test_ids)]
    test = [r for r in test if r["as_of"] < r["closed_at"]]
    test.sort(key=lambda r: (r["id"], r["as_of"]))
    assert np.allclose(model.predict_proba(test), res.held_out["p_model"], atol=1e-12)  # fit path = scoring path
    for rec, rs in zip(recs, model.reasons(recs, top=3, lang="zh")):
        assert len(rs["positive"]) <= 3 and len(rs["negative"]) <= 3
        assert all(r["contribution"] > 0 for r in rs["positive"]) and all(r["contribution"] < 0 for r in rs["negative"])
    ex = model.explain_evaluation(model.engine.evaluate(recs[0]), lang="en")
    assert set(ex) >= {"win_probability", "model_version", "model_reasons", "logit", "intercept"}
    assert ex["logit"] == pytest.approx(model.logit(recs[:1])[0])


def test_coefficient_table_sets_learned_points_beside_expert_points(fit200):
    _, res = fit200
    t = res.model.coefficient_table()
    assert list(t.columns) == ["feature", "rule", "kind", "evidence", "title", "expert_points", "coefficient",
                               "learned_points", "sign"]
    row = t.set_index("feature").loc["F1"]
    assert row["expert_points"] == -5 and row["kind"] == "red_flag"
    assert row["learned_points"] == pytest.approx(row["coefficient"] * 20 / math.log(2))
    assert coef_to_points(math.log(2)) == pytest.approx(20.0)
