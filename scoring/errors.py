"""Exceptions the library raises.  Each names what was wrong and where."""
from __future__ import annotations


class ScoringError(Exception):
    """Base class of every error this package raises on purpose."""


class RecordError(ScoringError, ValueError):
    """A record breaks the contract.

    Attributes
    ----------
    record_id : str or None
        The record's ``id`` (None when the id itself is missing).
    field : str
        The offending field; child rows are named like ``contacts[2].stance``.
    reason : str
        What is wrong, in words.
    """

    def __init__(self, record_id: str | None, field: str, reason: str):
        self.record_id = record_id
        self.field = field
        self.reason = reason
        rid = record_id if record_id is not None else "<no id>"
        super().__init__(f"record {rid!s}: field {field!r}: {reason}")

    def to_dict(self) -> dict:
        return {"id": self.record_id, "field": self.field, "reason": self.reason}


class RulePackError(ScoringError):
    """A rule pack is malformed.  Names the file and the rule."""

    def __init__(self, message: str, file: str | None = None, rule: str | None = None):
        self.file = file
        self.rule = rule
        self.detail = message
        where = []
        if file:
            where.append(f"file {file}")
        if rule:
            where.append(f"rule {rule}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ModelError(ScoringError):
    """A model artifact is missing, incomplete, tampered with, or cannot be trained."""
