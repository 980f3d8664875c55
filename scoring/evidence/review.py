"""Reviewing a rule pack before publishing it: its own examples, and which rules an edit
adds, removes or changes.  (How an edit changes records' scores and flags is
:mod:`scoring.score.review`.)"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from scoring.evidence.durable import Engine
from scoring.errors import RecordError
from scoring.evidence.pack import RulePack


@dataclass
class ExampleFailure:
    rule: str
    file: str
    example: str
    got: str
    detail: str = ""


#: An example's child list written as this word stands for a table absent from the input (unknown).
UNKNOWN_LIST = "unknown"


def example_record(rule_id: str, status: str, partial: Mapping[str, Any]) -> dict:
    """A full record from a rule's partial example: every field not given is unknown
    (a child list written ``unknown`` is left out: see :func:`example_absent`)."""
    rec = {"id": f"example:{rule_id}:{status}", "as_of": "2026-01-01"}
    rec.update({k: v for k, v in partial.items() if v != UNKNOWN_LIST})
    return rec


def example_absent(partial: Mapping[str, Any]) -> frozenset[str]:
    """The child lists an example gives as ``unknown`` (as if their table were absent from the input)."""
    from scoring.contract.schema import CHILD_LISTS

    return frozenset(k for k in CHILD_LISTS if partial.get(k) == UNKNOWN_LIST)


def run_examples(pack: RulePack, engine: Engine | None = None) -> list[ExampleFailure]:
    """Evaluate every rule's examples; return those that do not end in their stated status."""
    from scoring.contract.nested import validate_record

    engine = engine or Engine(pack)
    failures = []
    for r in pack.rules:
        for status, partial in r.examples.items():
            try:
                rec = validate_record(example_record(r.id, status, partial), pack.schema)
            except RecordError as exc:
                failures.append(ExampleFailure(r.id, r.file, status, "invalid", str(exc)))
                continue
            got = engine.evaluate(rec, absent=example_absent(partial)).status[r.id]
            if got != status:
                failures.append(ExampleFailure(r.id, r.file, status, got))
    return failures


def diff_rules(old: RulePack, new: RulePack) -> dict[str, list[str]]:
    """Rules added, removed and edited between two packs."""
    a, b = old.by_id, new.by_id
    edited = [rid for rid in sorted(set(a) & set(b))
              if (a[rid].when, a[rid].unknown_when, a[rid].points, a[rid].kind, a[rid].stage, a[rid].stages,
                  a[rid].measure)
              != (b[rid].when, b[rid].unknown_when, b[rid].points, b[rid].kind, b[rid].stage, b[rid].stages,
                  b[rid].measure)]
    return {"added": sorted(set(b) - set(a)), "removed": sorted(set(a) - set(b)), "edited": edited}
