"""The registry (current model, promote, rollback) and which pack and model a command uses."""
from __future__ import annotations

import shutil

import pytest

from conftest import ROOT
from scoring.errors import ModelError
from scoring.evidence.pack import fingerprint_of_files, read_pack_files
from scoring.model import artifact as A
from scoring.model import registry as Reg


def test_staleness_note_when_default_rules_differ(saved_model, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(saved_model / "rules", home / "rules" / "default")
    monkeypatch.setenv("SCORING_HOME", str(home))
    m = A.load_model(saved_model)
    assert Reg.staleness_notes(m) == []
    p = home / "rules" / "default" / "pack.yaml"
    p.write_text(p.read_text() + "\n# edited\n")
    notes = Reg.staleness_notes(m)
    assert len(notes) == 1 and "retrain" in notes[0]


def test_a_pack_edit_that_does_not_load_still_gets_a_note_and_scoring_goes_on(saved_model, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(saved_model / "rules", home / "rules" / "default")
    (home / "rules" / "default" / "rules.yaml").write_text("rules: [not a rule]\n")
    monkeypatch.setenv("SCORING_HOME", str(home))
    engine, model, notes = Reg.resolve_scoring(model_path=saved_model)
    assert model is not None and engine.pack.fingerprint == model.pack.fingerprint
    assert len(notes) == 1 and "has changed since model" in notes[0]


def test_the_fingerprint_of_a_pack_folder_is_the_loaded_pack_s(default_pack, tmp_path):
    assert fingerprint_of_files(read_pack_files(ROOT / "rules" / "default")) == default_pack.fingerprint
    shutil.copytree(ROOT / "rules" / "default", tmp_path / "p")
    (tmp_path / "p" / "NOTES.md").write_text("a README edit does not change the pack")
    assert fingerprint_of_files(read_pack_files(tmp_path / "p")) == default_pack.fingerprint


def test_rules_option_scores_with_the_model_s_own_pack_and_says_so(saved_model, make_pack):
    other = make_pack()
    engine, model, notes = Reg.resolve_scoring(rules_path=other, model_path=saved_model)
    assert engine.pack.fingerprint == model.pack.fingerprint
    assert any("is not the pack model" in n for n in notes)
    engine, model, _ = Reg.resolve_scoring(rules_path=other)
    assert model is None and engine.pack.name == "test"


def test_current_model_dir_is_none_without_a_pointer(tmp_path):
    assert Reg.current_model_dir(tmp_path / "models") is None


@pytest.mark.parametrize("name", ["../elsewhere", "/tmp", "a/../../b", ".."])
def test_a_current_pointer_outside_the_models_folder_is_refused(tmp_path, name):
    models = tmp_path / "models"
    (tmp_path / "elsewhere").mkdir()
    models.mkdir()
    (models / "CURRENT").write_text(name)
    with pytest.raises(ModelError, match="not a folder under"):
        Reg.current_model_dir(models)


def test_promotion_keeps_the_better_model_and_rollback_restores(good_result, worse_result, dirty_history, tmp_path):
    # both models of the 300-deal fixture are within noise of the baselines: this tests the comparison alone
    models = tmp_path / "models"
    g = A.save_model(good_result, models / "good")
    w = A.save_model(worse_result, models / "worse")
    assert Reg.promote(g, root=models, history=dirty_history, check_useful=False)["promoted"]
    assert Reg.current_model_dir(models) == g
    with pytest.raises(ModelError, match="worse than the current model good.*log loss"):
        Reg.promote(w, root=models, history=dirty_history, check_useful=False)
    assert Reg.current_model_dir(models) == g
    rep = Reg.promote(w, root=models, history=dirty_history, force=True)
    assert rep["promoted"] and rep["comparison"]["log_loss_new"] > rep["comparison"]["log_loss_current"]
    assert Reg.current_model_dir(models) == w
    assert Reg.rollback(models) == g
    assert Reg.current_model_dir(models) == g
    with pytest.raises(ModelError, match="nothing to roll back"):
        Reg.rollback(models)


def test_a_better_model_replaces_the_current_one(good_result, worse_result, dirty_history, tmp_path):
    models = tmp_path / "models"
    Reg.promote(A.save_model(worse_result, models / "worse"), root=models, history=dirty_history, check_useful=False)
    rep = Reg.promote(A.save_model(good_result, tmp_path / "elsewhere" / "good"), root=models, history=dirty_history,
                      check_useful=False)
    assert rep["promoted"] and rep["comparison"]["deals"] == good_result.counts["test"]["deals"]
    assert Reg.current_model_dir(models) == models / "good"  # copied into the registry
    assert (models / "HISTORY").read_text().split() == ["worse", "good"]
