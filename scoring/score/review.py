"""How a rule-pack edit changes records: scores, red flags, meetings and rule statuses.

:func:`check_pack` is the review ``scoring rules check`` prints: the pack's
own examples (:func:`scoring.evidence.review.run_examples`), and with sample
records the change against the current pack.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from scoring.evidence.durable import Engine
from scoring.evidence.pack import KINDS, RulePack
from scoring.evidence.review import diff_rules, run_examples
from scoring.score.rulescore import score_evaluation


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


def check_pack(new: RulePack, against: str | Path | None = None, current: RulePack | None = None) -> dict[str, Any]:
    """Review ``new``: its examples, and with ``against`` (sample records) its effect against ``current``.

    Returns plain data: ``pack``, ``rules``, ``by_kind``, ``example_failures``;
    with ``against`` also ``current``, ``rule_changes`` (added / removed /
    edited rule ids), ``records``, ``records_changed``, ``changes`` (one
    :meth:`RecordChange.to_dict` per changed record) and ``rejected`` (sample
    records that break the contract).
    """
    from scoring.contract.reader import read_records

    engine = Engine(new)
    failures = run_examples(new, engine)
    report: dict[str, Any] = {
        "pack": new.version_tag, "rules": len(new.rules),
        "by_kind": {k: sum(r.kind == k for r in new.rules) for k in KINDS},
        "example_failures": [asdict(f) for f in failures]}
    if against is not None:
        if current is None:
            raise ValueError("comparing against sample records needs the current pack")
        res = read_records(against, new.schema)
        changes = compare_packs(Engine(current), engine, res.records)
        report["current"] = current.version_tag
        report["rule_changes"] = diff_rules(current, new)
        report["records"] = len(changes)
        report["records_changed"] = sum(c.changed for c in changes)
        report["changes"] = [c.to_dict() for c in changes if c.changed]
        report["rejected"] = len(res.rejects)
    return report


def format_check(report: Mapping[str, Any], limit: int = 200) -> str:
    """:func:`check_pack`'s report as readable text (at most ``limit`` changed records listed)."""
    failures = report["example_failures"]
    lines = [f"{report['pack']}: {report['rules']} rules "
             + ", ".join(f"{v} {k}" for k, v in report["by_kind"].items() if v or k != "fact") + " - valid"]
    if failures:
        lines.append(f"{len(failures)} example(s) do not end in their stated status:")
        lines += [f"  {f['file']}: rule {f['rule']}: example {f['example']!r} gives {f['got']!r} {f['detail']}"
                  for f in failures]
    else:
        lines.append("all rule examples pass")
    if "current" in report:  # compared against sample records
        rc = report["rule_changes"]
        lines.append(f"against {report['current']}: rules added {rc['added'] or '-'}, removed {rc['removed'] or '-'}, "
                     f"edited {rc['edited'] or '-'}")
        lines.append(f"{report['records_changed']} of {report['records']} records change")
        for c in report["changes"][:limit]:
            bits = [f"{c['id']:<14} {c['old_score']:5.1f} -> {c['new_score']:5.1f} ({c['delta']:+.1f})"]
            if c["flags_added"]:
                bits.append("new flags " + ",".join(c["flags_added"]))
            if c["flags_removed"]:
                bits.append("cleared flags " + ",".join(c["flags_removed"]))
            if c["meetings_added"] or c["meetings_removed"]:
                bits.append("meetings +" + ",".join(c["meetings_added"]) + " -" + ",".join(c["meetings_removed"]))
            if c["status_changes"]:
                bits.append("; ".join(f"{k} {a}->{b}" for k, (a, b) in list(c["status_changes"].items())[:6]))
            lines.append("  " + "  ".join(bits))
    return "\n".join(lines)
