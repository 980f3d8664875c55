"""Where the rules, models and sample are: $SCORING_HOME, else the current folder, else the bundled data."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scoring import paths
from scoring.errors import InputError, ModelError, RulePackError
from scoring.model import registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A current folder that is not a checkout, with no $SCORING_HOME."""
    monkeypatch.delenv(paths.HOME_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_outside_a_checkout_the_bundled_pack_model_and_sample_are_used(elsewhere):
    home = paths.home()
    assert home.source == paths.FROM_PACKAGE and not home.writable
    assert (paths.default_rules() / "pack.yaml").is_file()
    assert registry.current_model_dir() is not None
    assert paths.sample_pipeline().is_file() and paths.sample_history().is_file()
    assert paths.default_output() == elsewhere / "out" / "scores.jsonl"


def test_the_bundled_models_are_never_written(elsewhere):
    for write in (registry.rollback, lambda: registry.promote(ROOT / "models" / "default")):
        with pytest.raises(ModelError, match="read-only: set SCORING_HOME"):
            write()
    assert (ROOT / "models" / "CURRENT").read_text().strip() == "default"


def test_a_folder_holding_rules_default_is_the_home(elsewhere):
    shutil.copytree(ROOT / "rules" / "default", elsewhere / "rules" / "default")
    home = paths.home()
    assert home.source == paths.FROM_CURRENT_FOLDER and home.writable
    assert paths.default_rules() == elsewhere / "rules" / "default"
    assert paths.writable_models_dir() == elsewhere / "models"
    assert registry.current_model_dir() is None


def test_scoring_home_wins_and_what_it_lacks_is_named_with_how_to_set_it(elsewhere, monkeypatch):
    shutil.copytree(ROOT / "rules" / "default", elsewhere / "rules" / "default")
    team = elsewhere / "team"
    team.mkdir()
    monkeypatch.setenv(paths.HOME_VARIABLE, str(team))
    assert paths.home().source == paths.FROM_VARIABLE and paths.project_root() == team
    with pytest.raises(RulePackError, match=rf"{team}/rules/default \(looked in SCORING_HOME={team}"):
        paths.default_rules()
    with pytest.raises(InputError, match="sample pipeline .* not found: .*SCORING_HOME"):
        paths.sample_pipeline()
    assert paths.writable_models_dir() == team / "models"
