"""Model artifacts: save, verify, load."""
from __future__ import annotations

import json

import numpy as np
import pytest

from scoring.model import artifact as A
from scoring.errors import ModelError
from scoring.contract.nested import validate_record


def scoring_records(dirty_history, default_pack, n=40):
    return [validate_record(r, default_pack.schema) for r in dirty_history[:n]]


def test_train_then_load_gives_identical_probabilities(good_result, saved_model, dirty_history, default_pack):
    m = A.load_model(saved_model)
    recs = scoring_records(dirty_history, default_pack)
    assert np.array_equal(m.predict_proba(recs), good_result.model.predict_proba(recs))
    assert m.model_version == json.loads((saved_model / "manifest.json").read_text())["model_id"]


def test_manifest_records_pack_libraries_data_metrics_and_checksums(good_result, saved_model):
    mf = json.loads((saved_model / "manifest.json").read_text())
    assert mf["rule_pack"]["fingerprint"] == good_result.pack.fingerprint
    assert set(mf["libraries"]) >= {"python", "scikit-learn", "scipy", "pandas", "numpy", "durable-rules"}
    assert mf["format"] == A.FORMAT
    assert mf["training"]["data_fingerprint"] == good_result.data_fingerprint
    assert mf["features"] == good_result.model.feature_names
    assert set(mf["metrics"]) >= {"model", "base_rate", "rule_score"}
    assert mf["seed"] == 0 and mf["created_at"].endswith("Z")
    files = sorted(p.relative_to(saved_model).as_posix() for p in saved_model.rglob("*") if p.is_file())
    assert sorted(mf["files"]) == [f for f in files if f != "manifest.json"]
    assert "scorecard.json" in mf["files"] and "rules/pack.yaml" in mf["files"]
    assert set(mf["signs"]) >= {"published", "contradicts", "held_at_zero", "log_loss", "difference"}
    assert set(mf["challenger"]) >= {"metrics", "against_scorecard", "raw_fields", "unread_with_signal"}


def test_model_scores_with_the_pack_inside_the_artifact(saved_model):
    m = A.load_model(saved_model)
    assert m.pack.path == str(saved_model / "rules")
    assert m.engine.pack is m.pack


@pytest.mark.parametrize("victim", ["scorecard.json", "rules/pack.yaml", "split.json"])
def test_a_changed_byte_is_refused(saved_model, victim):
    f = saved_model / victim
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"file {victim} does not match its checksum"):
        A.load_model(saved_model)


def test_a_missing_file_is_refused(saved_model):
    (saved_model / "rules" / "pack.yaml").unlink()
    with pytest.raises(ModelError, match="file rules/pack.yaml is missing"):
        A.load_model(saved_model)


def test_an_extra_file_is_refused(saved_model):
    (saved_model / "rules" / "extra.yaml").write_text("rules: []\n")
    with pytest.raises(ModelError, match="unexpected file rules/extra.yaml"):
        A.load_model(saved_model)


def test_a_missing_manifest_is_refused(saved_model):
    (saved_model / "manifest.json").unlink()
    with pytest.raises(ModelError, match="manifest.json is missing"):
        A.load_model(saved_model)


def test_save_leaves_no_half_written_folder(good_result, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(A, "_json_dump", boom)
    with pytest.raises(OSError):
        A.save_model(good_result, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_save_never_overwrites(good_result, saved_model):
    with pytest.raises(ModelError, match="already exists"):
        A.save_model(good_result, saved_model)


def test_loading_reads_no_pickle_and_imports_no_scikit_learn(saved_model):
    import subprocess
    import sys

    code = ("import sys; from scoring.model.artifact import load_model; m = load_model(sys.argv[1]); "
            "m.intercept; assert 'sklearn' not in sys.modules and 'joblib' not in sys.modules, "
            "sorted(k for k in sys.modules if k.startswith(('sklearn', 'joblib')))[:5]")
    subprocess.run([sys.executable, "-c", code, str(saved_model)], check=True)


@pytest.mark.parametrize("fmt", ["dealscore-model/0", "dealscore-model/9", 3])
def test_an_unknown_format_is_refused_naming_the_artifact(saved_model, fmt):
    mf = saved_model / "manifest.json"
    mf.write_text(json.dumps({**json.loads(mf.read_text()), "format": fmt}))
    with pytest.raises(ModelError, match=f"{saved_model}: model format .* is not one this version reads"):
        A.load_model(saved_model)


def test_a_damaged_scorecard_is_refused_naming_the_artifact_not_a_traceback(saved_model):
    import hashlib

    f = saved_model / "scorecard.json"
    f.write_text(json.dumps({"intercept": 0.0}))
    mf = saved_model / "manifest.json"
    m = json.loads(mf.read_text())
    m["files"]["scorecard.json"] = hashlib.sha256(f.read_bytes()).hexdigest()
    mf.write_text(json.dumps(m))
    with pytest.raises(ModelError, match=f"{saved_model}: scorecard.json"):
        A.load_model(saved_model)


def test_an_older_pickled_artifact_still_loads_and_scores_as_before(default_pack, dirty_history):
    """The bundled default model (format 1, a pickled pipeline) scores as its own pipeline did."""
    import joblib

    from scoring import paths

    old = paths.models_dir() / "default"
    if json.loads((old / "manifest.json").read_text())["format"] != A.LEGACY_FORMAT:
        pytest.skip("the bundled model has been retrained in the new format")
    m = A.load_model(old)
    recs = scoring_records(dirty_history, m.pack)
    want = joblib.load(old / "model.joblib").predict_proba(recs)[:, 1]
    assert np.allclose(m.predict_proba(recs), want, atol=1e-12)
