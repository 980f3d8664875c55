"""Where the bundled rule pack, models and sample data live.

The project root is ``$SCORING_HOME`` when set, else the current folder when it
holds ``rules/default``, else the folder above the installed package (an
editable install or a source checkout).
"""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    env = os.environ.get("SCORING_HOME")
    if env:
        return Path(env)
    cwd = Path.cwd()
    if (cwd / "rules" / "default").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


def default_rules() -> Path:
    return project_root() / "rules" / "default"


def models_dir() -> Path:
    return project_root() / "models"


def sample_pipeline() -> Path:
    return project_root() / "datasets" / "sample" / "pipeline.jsonl"


def sample_history() -> Path:
    return project_root() / "datasets" / "sample" / "history.jsonl"


def default_output() -> Path:
    return project_root() / "out" / "scores.jsonl"
