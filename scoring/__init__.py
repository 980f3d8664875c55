"""dealscore: win-probability scoring of B2B sales opportunities.

records (contract) -> evidence (rule pack, compiled; durable-rules the reference) -> rule score + features
                                                                                  -> logistic model -> probability + reasons
"""
from __future__ import annotations

import sys

if sys.version_info[:2] < (3, 11):  # pragma: no cover - guarded by requires-python
    raise ImportError(f"scoring needs Python 3.11 or newer, not {sys.version_info.major}.{sys.version_info.minor}")

__version__ = "0.1.0"

__all__ = ["Scorer", "ScoreResult", "RecordError", "RulePackError", "ModelError"]


def __getattr__(name):  # lazy: `import scoring` stays cheap for the CLI
    if name in ("Scorer", "ScoreResult"):
        from scoring import api

        return getattr(api, name)
    if name in ("RecordError", "RulePackError", "ModelError", "ScoringError"):
        from scoring import errors

        return getattr(errors, name)
    raise AttributeError(name)
