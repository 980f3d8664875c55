"""Guardrails: a model that does not beat its baselines is flagged and not promoted; the split and the
report say what they did instead of falling back silently."""
from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import ROOT
from scoring.cli import main
from scoring.errors import ExitCode, ModelError
from scoring.model import registry as Reg
from scoring.model.metrics import paired_bootstrap
from scoring.model.report import build_report
from scoring.model.train import split_deals


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def shuffled_history(tmp_path_factory):
    """The generator's history with the outcomes permuted across deals: nothing left to learn."""
    from dealscore_datasets.generate import generate_records

    recs = generate_records(500, seed=5, kind="history")
    deals = sorted({r["id"] for r in recs})
    outcome = {r["id"]: r["outcome"] for r in recs}
    permuted = [outcome[d] for d in deals]
    random.Random(0).shuffle(permuted)
    new = dict(zip(deals, permuted))
    path = tmp_path_factory.mktemp("shuffled") / "history.jsonl"
    path.write_text("".join(json.dumps({**r, "outcome": new[r["id"]]}) + "\n" for r in recs))
    return path


@pytest.fixture(scope="module")
def useless_model(shuffled_history, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "useless"
    result = run("train", shuffled_history, "--rules", ROOT / "rules" / "default", "--seed", 0,
                 "--out", out)
    return out, result


def test_train_on_shuffled_outcomes_warns_exits_not_useful_and_keeps_the_artifact(useless_model):
    out, result = useless_model
    assert result.exit_code == ExitCode.NOT_USEFUL == 5
    assert "does not beat" in result.stderr and "Do not use it or promote it" in result.stderr
    assert "make it current" not in result.stdout and "not useful" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    verdict = manifest["metrics"]["usefulness"]
    assert verdict["useful"] is False
    assert not all(b["beats"] for b in verdict["baselines"].values())


def test_promote_refuses_a_model_that_is_not_useful_unless_forced(useless_model, tmp_path, monkeypatch):
    monkeypatch.setenv("SCORING_HOME", str(tmp_path))
    out, _ = useless_model
    refused = run("promote", out)
    assert refused.exit_code == ExitCode.NOT_USEFUL
    assert "does not beat" in refused.stderr and "force" in refused.stderr
    assert Reg.current_model_dir(tmp_path / "models") is None
    forced = run("promote", out, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert Reg.current_model_dir(tmp_path / "models") == tmp_path / "models" / "useless"


def test_promote_refuses_a_comparison_on_too_few_held_out_deals(good_result, worse_result, dirty_history, tmp_path):
    from scoring.model import artifact as A

    few = list(good_result.test_ids[: Reg.MIN_HELDOUT_DEALS - 1])
    models = tmp_path / "models"
    Reg.promote(A.save_model(worse_result, models / "worse"), root=models, force=True)
    good = A.save_model(good_result, tmp_path / "good")
    # a history holding fewer overlapping held-out deals than the minimum
    records = [r for r in dirty_history if r["id"] in few]
    with pytest.raises(ModelError, match=f"only {len(few)} held-out deals.*need at least {Reg.MIN_HELDOUT_DEALS}"):
        Reg.promote(good, root=models, history=records, check_useful=False)
    rep = Reg.promote(good, root=models, history=records, force=True)
    assert rep["promoted"] and rep["comparison"] is None and "only" in rep["not_compared"]


def test_split_falls_back_explicitly_when_close_dates_cannot_order_the_deals():
    same = {f"D{i:03d}": "2025-01-01" for i in range(100)}
    split = split_deals(same, 0.2)
    assert split.method == "deal_hash" and "cannot order" in split.note
    tr, te = split
    assert len(te) == 20 and not set(tr) & set(te) and set(tr) | set(te) == set(same)
    assert te != sorted(same)[-20:]  # not the id order


def test_a_close_date_straddling_the_cut_moves_it_and_says_so():
    dates = {f"D{i:03d}": f"2025-01-{1 + i // 10:02d}" for i in range(100)}  # 10 deals a day
    dates.update({f"E{i:03d}": "2025-01-09" for i in range(5)})            # day 9: 15 deals
    split = split_deals(dates, 0.2)
    assert split.method == "time" and "straddled the cut" in split.note
    assert max(dates[d] for d in split.train) < min(dates[d] for d in split.test)
    plain = split_deals({"a": "2024-01-01", "b": "2024-01-02"}, 0.5)
    assert plain.method == "time" and plain.note is None


def test_paired_bootstrap_interval_is_below_zero_only_for_a_real_improvement():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    informed = np.where(y == 1, 0.7, 0.3)
    noise = np.clip(0.5 + rng.normal(0, 0.02, 300), 0.01, 0.99)
    assert paired_bootstrap(y, informed, np.full(300, 0.5), np.ones(300), np.arange(300))["interval"][1] < 0
    r = paired_bootstrap(y, noise, np.full(300, 0.5), np.ones(300), np.arange(300))
    assert r["interval"][0] < 0 < r["interval"][1]


def test_report_without_history_draws_only_from_the_stored_held_out_predictions(useless_model, tmp_path):
    out, _ = useless_model
    page = build_report(out, out=tmp_path / "r.html").read_text(encoding="utf-8")
    assert "held-out predictions stored in the model artifact" in page
    assert "sample/history.jsonl" not in page


def test_report_of_an_artifact_without_stored_predictions_needs_the_history(tmp_path):
    old = tmp_path / "old"  # an artifact saved before held-out predictions were stored
    shutil.copytree(ROOT / "models" / "default", old)
    (old / "held_out.json").unlink()
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["files"]["held_out.json"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="--history"):
        build_report(old, out=tmp_path / "r.html")
