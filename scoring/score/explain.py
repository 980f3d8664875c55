"""Explaining one record: its rule score and reasons (and, with a model, its
probability and the model's reasons), as plain data and as readable text."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from scoring.evidence.durable import Engine
from scoring.score.labels import EXPLAIN_LABELS as _LABELS, STAGE_NAMES
from scoring.score.rulescore import score_evaluation

if TYPE_CHECKING:  # the model imports the score, never the other way
    from scoring.model.logistic import Model

#: The rule score's field names -> the nightly output's names for the same things
#: (``rule_score``, ``data_completeness``, ``analysis_meeting``), so that ``explain --json``
#: and ``scoring score`` name a value once.
OUTPUT_NAMES = {"score": "rule_score", "completeness": "data_completeness", "meeting_flags": "analysis_meeting"}


def explain_record(engine: Engine, record: Mapping[str, Any], lang: str = "en",
                   model: Model | None = None, gains: Mapping[str, float] | None = None,
                   warnings: list[str] | None = None) -> dict[str, Any]:
    """The explanation of one validated record, as JSON-ready data.

    Its fields are named as in the nightly output where they mean the same thing
    (:data:`OUTPUT_NAMES`); ``analysis_meeting`` holds the triggers of the record
    itself (``T1``, ``T2``, ``T4``, and the pack's ``STALLED`` at its default
    thresholds) with their titles.  ``measures`` lists the graded evidence that
    applies at the record's stage, each with its value in words (None when unknown).
    With ``model`` (a :class:`scoring.model.logistic.Model`), adds ``win_probability``
    and the model's ``model_reasons``.  ``gains`` (rule id -> the model's expected
    change in win probability if met) ranks the next actions; ``warnings`` (texts,
    e.g. the model's own) are shown with the explanation, as is any ``warnings``
    list the model's explanation returns.
    """
    ev = engine.evaluate(record)
    rs = score_evaluation(engine.pack, ev, lang, gains=gains)
    out = {"id": rs.id, "name": record.get("name"),
           **{OUTPUT_NAMES.get(k, k): v for k, v in rs.to_dict().items()}}
    out["rule_pack"] = engine.pack.version_tag
    out["matched"] = ev.matched
    out["derived"] = ev.derived
    out["measures"] = measures_in_words(engine.pack, ev, lang)
    if model is not None:
        out.update(model.explain_evaluation(ev, lang=lang))
    if warnings:
        out["warnings"] = list(out.get("warnings") or []) + list(warnings)
    return out


def measures_in_words(pack, ev, lang: str = "en") -> list[dict[str, Any]]:
    """The pack's measures that apply at the record's stage: ``name``, ``rule``, ``kind``,
    ``direction`` (+1: more is better for winning), ``value`` (None when unknown) and ``text``
    (the value in words, None when unknown)."""
    out = []
    for m in pack.compiled.measures:
        if m.stages is not None and ev.stage not in m.stages:
            continue
        v = ev.measures.get(m.name)
        out.append({"name": m.name, "rule": m.rule, "kind": m.kind, "direction": m.direction,
                    "value": v, "text": m.text(v, lang)})
    return out


def format_explanation(x: Mapping[str, Any], lang: str = "en") -> str:
    """A readable layout of :func:`explain_record`'s result."""
    L = _LABELS[lang]
    sn = STAGE_NAMES[lang]
    lines = []
    head = f"{x['id']}"
    if x.get("name"):
        head += f"  {x['name']}"
    lines.append(head)
    lines.append(f"  {L['stage']}: {sn[x['stage']]}   {L['as_of']} {x.get('as_of') or '-'}")
    lines.append(
        f"  {L['score']} {x['rule_score']:.1f} / 100   ({x['earned']:g} {L['of']} {x['available']:g} {L['points']}"
        f", {L['penalty']} -{x['penalty']:g})   {L['completeness']} {100 * x['data_completeness']:.0f}%")
    if "win_probability" in x:
        lines.append(f"  {L['prob']} {100 * x['win_probability']:.1f}%   ({L['model']} {x.get('model_version', '')})")
    stages = "  ".join(f"{sn[b['stage']]} {b['earned']:g}/{b['available']:g}" for b in x["breakdown"])
    lines.append(f"  {L['stages']}: {stages}")
    lines.append(f"  {L['milestones']}: {', '.join(x['milestones_passed']) or L['none']}")

    def block(title, items, fmt):
        lines.append(f"  {title}:" + ("" if items else f" {L['none']}"))
        for it in items:
            lines.append("    " + fmt(it))

    if x.get("warnings"):
        block(L["warnings"], x["warnings"], lambda w: f"!! {w}")
    block(L["flags"], x["red_flags"], lambda f: f"! {f['rule']:<10} {f['title']} ({f['points']:g})")
    if x["unverified_flags"]:
        block(L["unverified"], x["unverified_flags"], lambda f: f"? {f['rule']:<10} {f['title']}")
    block(L["meetings"], x["analysis_meeting"], lambda f: f"* {f['rule']:<10} {f['title']}")
    block(L["reasons"], [r for r in x["reasons"] if r["points"] > 0][:8],
          lambda r: f"+ {r['rule']:<10} {r['title']} (+{r['points']:g})")
    known = [m for m in x.get("measures") or () if m["text"] is not None]
    if known:
        block(L["measures"], known, lambda m: f"~ {m['rule']:<10} {m['text']}")
    if x.get("model_reasons"):
        block(L["model_reasons"], x["model_reasons"],
              lambda r: f"{'+' if r['contribution'] >= 0 else '-'} {r['feature']:<22} {r['title']} ({r['contribution']:+.2f})")
    block(L["actions"], x["next_actions"][:10],
          lambda a: f"{'->':<2} [{L[a['status']]}, {a['points']:+g}] {a['title']}: {a['action']}")
    return "\n".join(lines)
