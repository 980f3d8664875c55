"""Where the project's rule pack, models and sample data live: the one place that knows the layout.

The project root is ``$SCORING_HOME`` when set, else the current folder when it
holds ``rules/default`` (so ``scoring`` run inside a project folder uses that
project), else the folder above the installed package (an editable install or
a source checkout).  The CLI and :class:`scoring.api.Scorer` resolve their
defaults here; library functions take these folders as arguments and never
assume a path relative to the working folder.
"""
from __future__ import annotations

import os
from pathlib import Path

#: the environment variable that names the project root
HOME_VARIABLE = "SCORING_HOME"


def project_root() -> Path:
    """The project root (see the module docstring)."""
    env = os.environ.get(HOME_VARIABLE)
    if env:
        return Path(env)
    cwd = Path.cwd()
    if (cwd / "rules" / "default").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


def default_rules() -> Path:
    """The bundled rule pack folder, ``<root>/rules/default``."""
    return project_root() / "rules" / "default"


def models_dir() -> Path:
    """The model registry, ``<root>/models`` (artifacts, ``CURRENT``, ``HISTORY``)."""
    return project_root() / "models"


def sample_pipeline() -> Path:
    """The bundled open pipeline, ``<root>/datasets/sample/pipeline.jsonl``."""
    return project_root() / "datasets" / "sample" / "pipeline.jsonl"


def sample_history() -> Path:
    """The bundled closed deals, ``<root>/datasets/sample/history.jsonl``."""
    return project_root() / "datasets" / "sample" / "history.jsonl"


def default_output() -> Path:
    """Where ``scoring score`` writes by default, ``<root>/out/scores.jsonl``."""
    return project_root() / "out" / "scores.jsonl"


def default_report(model_id: str) -> Path:
    """Where ``scoring report`` writes by default, ``<root>/out/report-<model id>.html``."""
    return project_root() / "out" / f"report-{model_id}.html"
