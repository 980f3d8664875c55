"""Where the project's rule pack, models and sample data live: the one place that knows the layout.

A *home* is a folder holding ``rules/default`` (the default rule pack),
``models/`` (artifacts, ``CURRENT``, ``HISTORY``) and ``datasets/sample/``.
The home in use is, first match wins:

1. ``$SCORING_HOME``: a team's own rules and models folder (everything is read
   from it and written to it; nothing falls back to the bundled data);
2. the current folder, when it holds ``rules/default`` (a checkout, or a
   team folder one runs the command in);
3. the bundled data: the default pack, the default model and the sample ship
   inside the installed package (``dealscore_rules``, ``dealscore_models``,
   ``dealscore_datasets``, mapped from the repository's ``rules/``, ``models/``
   and ``datasets/``) and are located through the import system, so an
   installed wheel works from any folder.  They are read-only: ``promote``,
   ``rollback`` and ``train`` without ``--out`` refuse to write there and say
   how to set ``SCORING_HOME``.

Default outputs (``out/``) go under ``$SCORING_HOME`` when it is set, else
under the current folder, never into the installed package.  The CLI and
:class:`scoring.api.Scorer` resolve their defaults here; library functions
take these folders as arguments and never assume a path relative to the
working folder.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from scoring.errors import InputError, ModelError, RulePackError

#: the environment variable that names a team's home (rules and models folder)
HOME_VARIABLE = "SCORING_HOME"
#: the installed packages that carry the bundled data, by top-level folder of a home
BUNDLED_PACKAGES = {"rules": "dealscore_rules", "models": "dealscore_models", "datasets": "dealscore_datasets"}
#: the home's kinds, as named in messages
FROM_VARIABLE, FROM_CURRENT_FOLDER, FROM_PACKAGE = f"${HOME_VARIABLE}", "the current folder", "the installed package"


@dataclass(frozen=True)
class Home:
    """The folders in use and where they come from (``source``: one of the kinds above)."""

    source: str
    rules: Path
    models: Path
    datasets: Path

    @property
    def writable(self) -> bool:
        """False for the bundled data inside the installed package."""
        return self.source != FROM_PACKAGE


def bundled(folder: str) -> Path:
    """The installed folder of the bundled ``rules``, ``models`` or ``datasets``.

    ``dealscore_rules`` and ``dealscore_models`` are data-only packages (no
    ``__init__.py``: ``rules/`` holds data only), so their folder is read from
    the import spec rather than through ``importlib.resources.files``, which
    refuses the search path an editable install gives such a package."""
    package = BUNDLED_PACKAGES[folder]
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if Path(location).is_dir():
            return Path(location)
    raise ModelError(f"the bundled {folder}/ (package {package}) is not installed: reinstall the package "
                     f"(pip install dealscore) or set {HOME_VARIABLE} to a folder holding rules/default and models/")


def home() -> Home:
    """The home in use (see the module docstring)."""
    env = os.environ.get(HOME_VARIABLE)
    if env:
        root = Path(env)
        return Home(FROM_VARIABLE, root / "rules", root / "models", root / "datasets")
    cwd = Path.cwd()
    if (cwd / "rules" / "default").is_dir():
        return Home(FROM_CURRENT_FOLDER, cwd / "rules", cwd / "models", cwd / "datasets")
    return Home(FROM_PACKAGE, bundled("rules"), bundled("models"), bundled("datasets"))


def how_to_set_home() -> str:
    """One sentence: which home was used and how to point at another (ends every "not found" message)."""
    h = home()
    if h.source == FROM_VARIABLE:
        return (f"(looked in {HOME_VARIABLE}={os.environ[HOME_VARIABLE]}: point {HOME_VARIABLE} at a folder "
                f"holding rules/default and models/, or unset it to use the bundled ones)")
    return (f"(looked in {h.source}; set {HOME_VARIABLE} to a folder holding rules/default and models/, "
            f"e.g. export {HOME_VARIABLE}=/srv/our-scoring, or run from such a folder)")


def not_found(what: str, path: Path) -> str:
    """The message for a default file or folder that is not there: what, the path, and how to set the home."""
    return f"{what} not found: {path} {how_to_set_home()}"


def project_root() -> Path:
    """The folder default outputs are written under: ``$SCORING_HOME``, else the current folder."""
    env = os.environ.get(HOME_VARIABLE)
    return Path(env) if env else Path.cwd()


def default_rules() -> Path:
    """The default rule pack folder, ``<home>/rules/default``; RulePackError when it is not there."""
    path = home().rules / "default"
    if not path.is_dir():
        raise RulePackError(not_found("default rule pack folder", path))
    return path


def models_dir() -> Path:
    """The model registry, ``<home>/models`` (artifacts, ``CURRENT``, ``HISTORY``); may be read-only."""
    return home().models


def writable_models_dir() -> Path:
    """The model registry to write to (promote, rollback, train without ``--out``).

    Raises ModelError when it is the bundled, read-only one inside the installed package."""
    h = home()
    if not h.writable:
        raise ModelError(f"the models folder in use is the bundled one inside the installed package ({h.models}), "
                         f"which is read-only: set {HOME_VARIABLE} to your team's folder (it holds rules/default "
                         f"and models/; e.g. export {HOME_VARIABLE}=/srv/our-scoring, then copy rules/default "
                         f"there from {h.rules / 'default'}), or run from such a folder")
    return h.models


def _sample(name: str, what: str) -> Path:
    path = home().datasets / "sample" / name
    if not path.is_file():
        raise InputError(not_found(what, path))
    return path


def sample_pipeline() -> Path:
    """The bundled open pipeline, ``<home>/datasets/sample/pipeline.jsonl``; InputError when it is not there."""
    return _sample("pipeline.jsonl", "sample pipeline (the input when none is given)")


def sample_history() -> Path:
    """The bundled closed deals, ``<home>/datasets/sample/history.jsonl``; InputError when it is not there."""
    return _sample("history.jsonl", "sample history (the closed deals used when none is given)")


def default_output() -> Path:
    """Where ``scoring score`` writes by default, ``<project root>/out/scores.jsonl``."""
    return project_root() / "out" / "scores.jsonl"


def default_report(model_id: str) -> Path:
    """Where ``scoring report`` writes by default, ``<project root>/out/report-<model id>.html``."""
    return project_root() / "out" / f"report-{model_id}.html"
