"""Which rule pack and model a command uses.

* With a model (the current one in ``models/``, or ``--model``), scoring uses
  the pack saved inside the model, so an edit to ``rules/`` never breaks the
  nightly job; when ``rules/default`` differs from it, a note says that a
  retrain is needed to use the edit.
* ``--rules PACK`` forces a pack (rule score only, unless a model trained with
  that very pack is given).
"""
from __future__ import annotations

from pathlib import Path

from scoring import paths
from scoring.evidence.durable import Engine
from scoring.evidence.pack import load_pack


def _current_model_dir() -> Path | None:
    try:
        from scoring.model.artifact import current_model_dir
    except ImportError:  # pragma: no cover - during bootstrapping of the model layer
        return None
    return current_model_dir()


def current_pack_path() -> Path:
    """The pack in use: the current model's, else ``rules/default``."""
    d = _current_model_dir()
    if d is not None and (d / "rules").is_dir():
        return d / "rules"
    return paths.default_rules()


def resolve_scoring(rules_path=None, model_path=None, use_model=True):
    """Return ``(engine, model or None, notes)`` for a command's options."""
    notes: list[str] = []
    model = None
    if use_model:
        mdir = Path(model_path) if model_path else (None if rules_path else _current_model_dir())
        if mdir is not None:
            from scoring.model.artifact import load_model

            model = load_model(mdir)
            if rules_path is not None:
                pack = load_pack(rules_path)
                if pack.fingerprint != model.pack.fingerprint:
                    notes.append(f"--rules {rules_path} is not the pack model {mdir} was trained with: "
                                 "scoring with the model's own pack")
            notes.extend(model.staleness_notes())
            return model.engine, model, notes
    pack = load_pack(rules_path or paths.default_rules())
    return Engine(pack), None, notes
