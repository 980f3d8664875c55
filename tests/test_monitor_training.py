"""Per-rule drift against the model's training data: the training profile an artifact carries
(``training_profile.json``), and each stored run compared with it (:mod:`scoring.store.monitor`)."""
from __future__ import annotations

import copy
import json
from collections import defaultdict

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import ROOT
from scoring.batch.run import run_batch
from scoring.cli import main
from scoring.model.artifact import TRAINING_PROFILE_FILE, load_model, model_training_profile, save_model
from scoring.model.inputs import record_evidence
from scoring.model.registry import resolve_scoring
from scoring.model.train import prepare_history, train
from scoring.store import Store
from scoring.store.monitor import format_lines

from dealscore_datasets.generate import generate_records

SAMPLE = ROOT / "datasets" / "sample" / "pipeline.jsonl"
RULES = ROOT / "rules" / "default"


@pytest.fixture(scope="module")
def small_training():
    """A model trained on a small generated history, and that history."""
    records = generate_records(400, seed=8, kind="history")
    return train(records, rules=RULES, seed=0, C=0.1, challenger=False, min_per_class=20), records


def write_jsonl(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def test_the_training_profile_is_the_training_snapshots_shares_and_scores_weighted_by_deal(small_training):
    result, records = small_training
    h = prepare_history(records, result.pack)
    status = record_evidence(result.pack, h.records).status
    train_ids = set(result.train_ids)
    rows = [i for i, r in enumerate(h.records) if r["id"] in train_ids]
    n_snap = defaultdict(int)
    for i in rows:
        n_snap[h.records[i]["id"]] += 1
    profile = result.training_profile
    for j, rule in enumerate(result.pack.rules):
        share = defaultdict(float)
        for i in rows:  # each deal weighs 1, split over its snapshots
            share[("missing", "met", "unknown")[status[i, j]]] += 1 / n_snap[h.records[i]["id"]] / len(train_ids)
        got = profile["rules"][j]
        assert got["rule"] == rule.id
        assert [got[k] for k in ("missing", "met", "unknown")] == pytest.approx(
            [share["missing"], share["met"], share["unknown"]], abs=1e-6)
    p = result.model.predict_proba([h.records[i] for i in rows])
    w = np.array([1 / n_snap[h.records[i]["id"]] for i in rows])
    expected = [w[(p >= k / 10) & ((p < (k + 1) / 10) | (k == 9))].sum() for k in range(10)]
    assert profile["probability_counts"] == pytest.approx(expected, abs=1e-5)
    assert sum(profile["probability_counts"]) == pytest.approx(len(train_ids))


def test_a_run_whose_rule_shares_moved_from_the_training_data_is_flagged_against_training(tmp_path):
    engine, model, _ = resolve_scoring(None, None, use_model=True)  # the bundled model carries a profile
    assert model_training_profile(model) is not None
    store = Store(tmp_path / "history.duckdb")
    plain = run_batch(SAMPLE, tmp_path / "s.jsonl", pack=engine.pack, model=model, as_of="2026-11-25", store=store,
                      workers=1)["monitoring"]["rule_drift"]
    nobody = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in nobody:  # every coach gone: S2_5 (a coach in the account) is met nowhere
        for c in r.get("contacts") or []:
            c["is_coach"] = False
    summary = run_batch(write_jsonl(tmp_path / "d2.jsonl", nobody), tmp_path / "s.jsonl", pack=engine.pack,
                        model=model, as_of="2026-11-26", store=store, workers=1)
    moved = summary["monitoring"]["rule_drift"]
    assert plain["reference"] == moved["reference"] == "training"
    assert "S2_5" not in plain["flagged"] and "S2_5" in moved["flagged"]
    assert summary["monitoring"]["rule_drift_vs_previous"]["reference"] == "previous run"
    assert "reference: training" in format_lines(summary)
    res = CliRunner().invoke(main, ["monitor", "--store", str(tmp_path / "history.duckdb"),
                                    "--out", str(tmp_path / "monitor.html")])
    assert res.exit_code == 0 and "Reference: the model&#x27;s training data" in (tmp_path / "monitor.html").read_text()


def test_a_model_without_a_training_profile_is_compared_with_the_previous_run(tmp_path, small_training):
    result, _ = small_training
    older = copy.copy(result)
    older.training_profile = None  # as an artifact saved before training profiles
    model = load_model(save_model(older, tmp_path / "older"))
    assert not (tmp_path / "older" / TRAINING_PROFILE_FILE).exists() and model_training_profile(model) is None
    store = Store(tmp_path / "history.duckdb")
    first = run_batch(SAMPLE, tmp_path / "s.jsonl", pack=model.pack, model=model, as_of="2026-11-25", store=store,
                      workers=1)["monitoring"]
    second = run_batch(SAMPLE, tmp_path / "s.jsonl", pack=model.pack, model=model, as_of="2026-11-26",
                       store=store, workers=1)
    drift = second["monitoring"]["rule_drift"]
    assert "rule_drift" not in first and drift["reference"] == "previous run" and drift["flagged"] == []
    assert "reference: previous run" in format_lines(second)
