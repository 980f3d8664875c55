"""Model artifacts (save, verify, load) and the registry (promote, rollback)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import ROOT
from scoring.model import artifact as A
from scoring.errors import ModelError
from scoring.contract.nested import validate_record
from scoring.evidence.pack import load_pack
from scoring.model.train import train

synth = pytest.importorskip("dealscore_datasets.generate")


@pytest.fixture(scope="module")
def hist():
    return synth.tables_to_records(synth.generate_tables(300, seed=11, kind="history", dirty=True))


@pytest.fixture(scope="module")
def pack():
    return load_pack(ROOT / "rules" / "default")


@pytest.fixture(scope="module")
def good(hist, pack):
    return train(hist, rules=pack, seed=0, min_per_class=20)


@pytest.fixture(scope="module")
def worse(hist, pack):
    return train(hist, rules=pack, seed=0, min_per_class=20, C=1e-4)  # regularised to ~the base rate


@pytest.fixture
def saved(good, tmp_path):
    return A.save_model(good, tmp_path / "m1")


def scoring_records(hist, pack, n=40):
    return [validate_record(r, pack.schema) for r in hist[:n]]


def test_train_then_load_gives_identical_probabilities(good, saved, hist, pack):
    m = A.load_model(saved)
    recs = scoring_records(hist, pack)
    assert np.array_equal(m.predict_proba(recs), good.model.predict_proba(recs))
    assert m.model_version == json.loads((saved / "manifest.json").read_text())["model_id"]


def test_manifest_records_pack_libraries_data_metrics_and_checksums(good, saved):
    mf = json.loads((saved / "manifest.json").read_text())
    assert mf["rule_pack"]["fingerprint"] == good.pack.fingerprint
    assert set(mf["libraries"]) >= {"python", "scikit-learn", "pandas", "numpy", "durable-rules", "joblib"}
    assert mf["training"]["data_fingerprint"] == good.data_fingerprint
    assert mf["features"] == good.model.feature_names
    assert set(mf["metrics"]) >= {"model", "base_rate", "rule_score"}
    assert mf["seed"] == 0 and mf["created_at"].endswith("Z")
    files = sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file())
    assert sorted(mf["files"]) == [f for f in files if f != "manifest.json"]
    assert "model.joblib" in mf["files"] and "rules/pack.yaml" in mf["files"]


def test_model_scores_with_the_pack_inside_the_artifact(saved):
    m = A.load_model(saved)
    assert m.pack.path == str(saved / "rules")
    assert m.engine.pack is m.pack


@pytest.mark.parametrize("victim", ["model.joblib", "rules/pack.yaml", "split.json"])
def test_a_changed_byte_is_refused(saved, victim):
    f = saved / victim
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"file {victim} does not match its checksum"):
        A.load_model(saved)


def test_a_missing_file_is_refused(saved):
    (saved / "rules" / "pack.yaml").unlink()
    with pytest.raises(ModelError, match="file rules/pack.yaml is missing"):
        A.load_model(saved)


def test_an_extra_file_is_refused(saved):
    (saved / "rules" / "extra.yaml").write_text("rules: []\n")
    with pytest.raises(ModelError, match="unexpected file rules/extra.yaml"):
        A.load_model(saved)


def test_a_missing_manifest_is_refused(saved):
    (saved / "manifest.json").unlink()
    with pytest.raises(ModelError, match="manifest.json is missing"):
        A.load_model(saved)


def test_save_leaves_no_half_written_folder(good, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(A.joblib, "dump", boom)
    with pytest.raises(OSError):
        A.save_model(good, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_save_never_overwrites(good, saved):
    with pytest.raises(ModelError, match="already exists"):
        A.save_model(good, saved)


def test_staleness_note_when_default_rules_differ(saved, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(saved / "rules", home / "rules" / "default")
    monkeypatch.setenv("SCORING_HOME", str(home))
    m = A.load_model(saved)
    assert m.staleness_notes() == []
    p = home / "rules" / "default" / "pack.yaml"
    p.write_text(p.read_text() + "\n# edited\n")
    notes = m.staleness_notes()
    assert len(notes) == 1 and "retrain" in notes[0]


def test_current_model_dir_is_none_without_a_pointer(tmp_path):
    assert A.current_model_dir(tmp_path / "models") is None


def test_promotion_keeps_the_better_model_and_rollback_restores(good, worse, hist, tmp_path):
    models = tmp_path / "models"
    g = A.save_model(good, models / "good")
    w = A.save_model(worse, models / "worse")
    assert A.promote(g, root=models, history=hist)["promoted"]
    assert A.current_model_dir(models) == g
    with pytest.raises(ModelError, match="worse than the current model good.*log loss"):
        A.promote(w, root=models, history=hist)
    assert A.current_model_dir(models) == g
    rep = A.promote(w, root=models, history=hist, force=True)
    assert rep["promoted"] and rep["comparison"]["log_loss_new"] > rep["comparison"]["log_loss_current"]
    assert A.current_model_dir(models) == w
    assert A.rollback(models) == g
    assert A.current_model_dir(models) == g
    with pytest.raises(ModelError, match="nothing to roll back"):
        A.rollback(models)


def test_a_better_model_replaces_the_current_one(good, worse, hist, tmp_path):
    models = tmp_path / "models"
    A.promote(A.save_model(worse, models / "worse"), root=models, history=hist)
    rep = A.promote(A.save_model(good, tmp_path / "elsewhere" / "good"), root=models, history=hist)
    assert rep["promoted"] and rep["comparison"]["deals"] == good.counts["test"]["deals"]
    assert A.current_model_dir(models) == models / "good"  # copied into the registry
    assert (models / "HISTORY").read_text().split() == ["worse", "good"]
