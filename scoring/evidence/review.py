"""Reviewing a rule pack before publishing it: its own examples, and the
change it makes to sample records' scores and flags against the current pack."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from scoring.evidence.durable import Engine
from scoring.errors import RecordError
from scoring.evidence.pack import RulePack
from scoring.score.rulescore import score_evaluation


@dataclass
class ExampleFailure:
    rule: str
    file: str
    example: str
    got: str
    detail: str = ""


def example_record(rule_id: str, status: str, partial: Mapping[str, Any]) -> dict:
    """A full record from a rule's partial example: every field not given is unknown."""
    rec = {"id": f"example:{rule_id}:{status}", "as_of": "2026-01-01"}
    rec.update(partial)
    return rec


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
            got = engine.evaluate(rec).status[r.id]
            if got != status:
                failures.append(ExampleFailure(r.id, r.file, status, got))
    return failures


@dataclass
class RecordChange:
    id: str
    stage: str
    old_score: float
    new_score: float
    flags_added: list[str] = field(default_factory=list)
    flags_removed: list[str] = field(default_factory=list)
    meetings_added: list[str] = field(default_factory=list)
    meetings_removed: list[str] = field(default_factory=list)
    status_changes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def delta(self) -> float:
        return round(self.new_score - self.old_score, 1)

    @property
    def changed(self) -> bool:
        return bool(self.delta or self.flags_added or self.flags_removed or self.meetings_added
                    or self.meetings_removed or self.status_changes)

    def to_dict(self) -> dict:
        return {**asdict(self), "delta": self.delta}


def compare_packs(old: Engine, new: Engine, records: Iterable[Mapping[str, Any]]) -> list[RecordChange]:
    """How each record's score, flags and rule statuses change from pack ``old`` to ``new``."""
    out = []
    for rec in records:
        e_old, e_new = old.evaluate(rec), new.evaluate(rec)
        s_old, s_new = score_evaluation(old.pack, e_old), score_evaluation(new.pack, e_new)
        fo, fn = {f.rule for f in s_old.red_flags}, {f.rule for f in s_new.red_flags}
        mo, mn = {f.rule for f in s_old.meeting_flags}, {f.rule for f in s_new.meeting_flags}
        changes = {}
        for rid in sorted(set(e_old.status) | set(e_new.status)):
            a, b = e_old.status.get(rid, "absent"), e_new.status.get(rid, "absent")
            if a != b:
                changes[rid] = [a, b]
        out.append(RecordChange(
            id=e_new.record_id, stage=e_new.stage, old_score=s_old.score, new_score=s_new.score,
            flags_added=sorted(fn - fo), flags_removed=sorted(fo - fn),
            meetings_added=sorted(mn - mo), meetings_removed=sorted(mo - mn), status_changes=changes,
        ))
    return out


def diff_rules(old: RulePack, new: RulePack) -> dict[str, list[str]]:
    """Rules added, removed and edited between two packs."""
    a, b = old.by_id, new.by_id
    edited = [rid for rid in sorted(set(a) & set(b))
              if (a[rid].when, a[rid].unknown_when, a[rid].points, a[rid].kind, a[rid].stage, a[rid].stages)
              != (b[rid].when, b[rid].unknown_when, b[rid].points, b[rid].kind, b[rid].stage, b[rid].stages)]
    return {"added": sorted(set(b) - set(a)), "removed": sorted(set(a) - set(b)), "edited": edited}
