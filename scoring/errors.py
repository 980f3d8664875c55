"""Exceptions the library raises, and the exit codes the ``scoring`` command turns them into.

Each error names what was wrong and where.  Every error the package raises on
purpose is a :class:`ScoringError`; its ``exit_code`` is the code the command
exits with after printing the error's message as one line.
"""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``scoring`` command (the table in :mod:`scoring.cli` and the README)."""

    #: success
    OK = 0
    #: the command ran, but something it checked did not pass: ``explain`` rejected some records,
    #: ``rules check`` found a rule example that does not end in its stated status, ``map --check`` found
    #: unmapped columns or values or rows the contract would reject
    FINDINGS = 1
    #: usage or input error: a bad option or argument, a bad rule pack, model or input file, two files
    #: of one run that would be one file (every :class:`ScoringError` but the one below); nothing was written
    USAGE = 2
    #: ``score``: a larger share of the input was rejected than ``--max-rejected-share``
    #: (the previous outputs are kept; this run's rejects and summary are written under their failed names)
    REJECTED_SHARE = 3
    #: a file or folder could not be read or written (permission denied, a path that is a folder,
    #: disk full, ...); outputs are replaced only at the end of a run, so the previous ones are intact
    IO = 4
    #: the model is not useful: ``train`` saved a model that does not beat both baselines (base rate, rule
    #: score alone) on its held-out deals by more than noise; ``promote`` refuses such a model without ``--force``
    NOT_USEFUL = 5
    #: the score store (``--store``) cannot be used: it cannot be reached or opened, it was written by
    #: another schema version (``scoring store upgrade``), or it stayed locked by another run; a ``score``
    #: run stops before scoring, or (when the append fails) before replacing any output
    STORE = 6

    @property
    def summary(self) -> str:
        """The code's meaning in a few words (``scoring --help`` lists them)."""
        return _EXIT_SUMMARY[self]


_EXIT_SUMMARY = {
    ExitCode.OK: "success",
    ExitCode.FINDINGS: "a check found problems (explain: rejected records; rules check: failing examples; "
                       "map --check: unmapped columns or values, rejected rows)",
    ExitCode.USAGE: "usage or input error, nothing written",
    ExitCode.REJECTED_SHARE: "score: too large a share rejected, last night's files kept",
    ExitCode.IO: "a file or folder could not be read or written",
    ExitCode.NOT_USEFUL: "train/promote: the model does not beat both baselines",
    ExitCode.STORE: "the score store cannot be used (unreachable, other schema version, locked); outputs untouched",
}


class ScoringError(Exception):
    """Base class of every error this package raises on purpose."""

    #: the exit code of the ``scoring`` command when this error ends it
    exit_code: ExitCode = ExitCode.USAGE


class InputError(ScoringError, ValueError):
    """An argument the library cannot use, e.g. a date that is not ``YYYY-MM-DD``."""


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


class MappingError(ScoringError):
    """A CRM mapping file is malformed.  Names the file and the key (``opportunities.columns.StageName``)."""

    def __init__(self, message: str, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        self.detail = message
        where = ", ".join(w for w in (f"mapping {file}" if file else "", f"key {key}" if key else "") if w)
        super().__init__(f"{where}: {message}" if where else message)


class ModelError(ScoringError):
    """A model artifact is missing, incomplete, tampered with, or cannot be trained."""


class RejectedShareError(ScoringError):
    """A run rejected a larger share of its input than allowed (the previous outputs are kept)."""

    exit_code = ExitCode.REJECTED_SHARE


class NotUsefulError(ModelError):
    """A model does not beat both baselines on its held-out deals by more than noise."""

    exit_code = ExitCode.NOT_USEFUL


class StoreError(ScoringError):
    """The score store cannot be used: unreachable, not a store, another schema version, or locked.

    Raised before a run scores anything (or, when the final append fails, before it replaces any
    output), so the outputs of the previous run are intact."""

    exit_code = ExitCode.STORE
