"""The registry (current model, promote, rollback) and which pack and model a command uses."""
from __future__ import annotations

import shutil

import pytest

from conftest import ROOT
from scoring.errors import ModelError
from scoring.evidence.pack import fingerprint_of_files, read_pack_files
from scoring.model import artifact as A
from scoring.model import registry as Reg
from scoring.model.train import train


@pytest.fixture(scope="module")
def hist(dirty_history):
    return dirty_history


@pytest.fixture(scope="module")
def pack(default_pack):
    return default_pack


@pytest.fixture(scope="module")
def good(good_result):
    return good_result


@pytest.fixture(scope="module")
def worse(hist, pack):
    return train(hist, rules=pack, seed=0, min_per_class=20, C=1e-4)  # regularised to ~the base rate


@pytest.fixture
def saved(good, tmp_path):
    return A.save_model(good, tmp_path / "m1")


def test_staleness_note_when_default_rules_differ(saved, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(saved / "rules", home / "rules" / "default")
    monkeypatch.setenv("SCORING_HOME", str(home))
    m = A.load_model(saved)
    assert Reg.staleness_notes(m) == []
    p = home / "rules" / "default" / "pack.yaml"
    p.write_text(p.read_text() + "\n# edited\n")
    notes = Reg.staleness_notes(m)
    assert len(notes) == 1 and "retrain" in notes[0]


def test_a_pack_edit_that_does_not_load_still_gets_a_note_and_scoring_goes_on(saved, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(saved / "rules", home / "rules" / "default")
    (home / "rules" / "default" / "rules.yaml").write_text("rules: [not a rule]\n")
    monkeypatch.setenv("SCORING_HOME", str(home))
    engine, model, notes = Reg.resolve_scoring(model_path=saved)
    assert model is not None and engine.pack.fingerprint == model.pack.fingerprint
    assert len(notes) == 1 and "has changed since model" in notes[0]


def test_the_fingerprint_of_a_pack_folder_is_the_loaded_pack_s(pack, tmp_path):
    assert fingerprint_of_files(read_pack_files(ROOT / "rules" / "default")) == pack.fingerprint
    shutil.copytree(ROOT / "rules" / "default", tmp_path / "p")
    (tmp_path / "p" / "NOTES.md").write_text("a README edit does not change the pack")
    assert fingerprint_of_files(read_pack_files(tmp_path / "p")) == pack.fingerprint


def test_rules_option_scores_with_the_model_s_own_pack_and_says_so(saved, make_pack):
    other = make_pack()
    engine, model, notes = Reg.resolve_scoring(rules_path=other, model_path=saved)
    assert engine.pack.fingerprint == model.pack.fingerprint
    assert any("is not the pack model" in n for n in notes)
    engine, model, _ = Reg.resolve_scoring(rules_path=other)
    assert model is None and engine.pack.name == "test"


def test_current_model_dir_is_none_without_a_pointer(tmp_path):
    assert Reg.current_model_dir(tmp_path / "models") is None


def test_promotion_keeps_the_better_model_and_rollback_restores(good, worse, hist, tmp_path):
    models = tmp_path / "models"
    g = A.save_model(good, models / "good")
    w = A.save_model(worse, models / "worse")
    assert Reg.promote(g, root=models, history=hist)["promoted"]
    assert Reg.current_model_dir(models) == g
    with pytest.raises(ModelError, match="worse than the current model good.*log loss"):
        Reg.promote(w, root=models, history=hist)
    assert Reg.current_model_dir(models) == g
    rep = Reg.promote(w, root=models, history=hist, force=True)
    assert rep["promoted"] and rep["comparison"]["log_loss_new"] > rep["comparison"]["log_loss_current"]
    assert Reg.current_model_dir(models) == w
    assert Reg.rollback(models) == g
    assert Reg.current_model_dir(models) == g
    with pytest.raises(ModelError, match="nothing to roll back"):
        Reg.rollback(models)


def test_a_better_model_replaces_the_current_one(good, worse, hist, tmp_path):
    models = tmp_path / "models"
    Reg.promote(A.save_model(worse, models / "worse"), root=models, history=hist)
    rep = Reg.promote(A.save_model(good, tmp_path / "elsewhere" / "good"), root=models, history=hist)
    assert rep["promoted"] and rep["comparison"]["deals"] == good.counts["test"]["deals"]
    assert Reg.current_model_dir(models) == models / "good"  # copied into the registry
    assert (models / "HISTORY").read_text().split() == ["worse", "good"]
