"""dealscore: win-probability scoring of B2B sales opportunities.

records (contract) -> evidence (rule pack on durable-rules) -> rule score + features
                                                            -> logistic model -> probability + reasons
"""
from __future__ import annotations

import sys

if not ((3, 11) <= sys.version_info[:2] < (3, 13)):  # pragma: no cover - guarded by requires-python
    raise ImportError(
        "scoring needs Python 3.11 or 3.12: its rules engine, durable-rules 2.0.28, "
        f"does not import on Python {sys.version_info.major}.{sys.version_info.minor}"
    )

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
