"""Words shown to people, in English and Chinese: defined once, used by explain, the model and the CLI."""
from __future__ import annotations

import csv
import io
import json

from scoring.evidence.pack import RulePack
from scoring.score.flags import STALLED, T3

EXPLAIN_LABELS = {
    "en": {
        "stage": "stage", "as_of": "as of", "score": "Rule score", "of": "of", "points": "points",
        "penalty": "red flags", "completeness": "data completeness", "prob": "Win probability",
        "stages": "By stage", "milestones": "Milestones passed", "flags": "Red flags",
        "unverified": "Unverified risks", "meetings": "Hold an analysis meeting", "reasons": "Evidence for",
        "actions": "Next actions", "none": "none", "missing": "missing", "unknown": "unknown",
        "model_reasons": "Model reasons (log-odds)", "unknown_inputs": "Unknown inputs", "model": "model",
        "raised": "raised", "measures": "Graded evidence", "warnings": "Warnings",
    },
    "zh": {
        "stage": "阶段", "as_of": "截至", "score": "规则得分", "of": "/", "points": "分",
        "penalty": "风险扣分", "completeness": "数据完整度", "prob": "赢单概率",
        "stages": "分阶段", "milestones": "已过里程碑", "flags": "风险红旗",
        "unverified": "未核实的风险", "meetings": "需召开项目分析会", "reasons": "有利证据",
        "actions": "下一步行动", "none": "无", "missing": "未做到", "unknown": "未知",
        "model_reasons": "模型理由（对数几率）", "unknown_inputs": "未知的输入", "model": "模型",
        "raised": "已出现", "measures": "分级证据", "warnings": "警告",
    },
}

STAGE_NAMES = {
    "en": {"technical_promotion": "technical promotion", "relationship": "relationship",
           "partner": "partner", "solution": "solution", "bidding": "bidding"},
    "zh": {"technical_promotion": "技术推广", "relationship": "关系切入发展", "partner": "合作伙伴发展确定",
           "solution": "方案确定", "bidding": "投标和商务谈判"},
}

#: The next action of an unknown rule that has no ``find_out`` text of its own.
FIND_OUT = {"en": "Find out whether this holds: {title}", "zh": "查明此项是否做到：{title}"}

#: How a model reason names an evidence column that is not a rule met.
MODEL_LABELS = {
    "unknown": {"en": "Unknown: {}", "zh": "未知：{}"},
    "stage": {"en": "Stage: {}", "zh": "阶段：{}"},
    "intercept": {"en": "Baseline (intercept)", "zh": "基线（截距）"},
}

#: Analysis-meeting codes raised by the flags of :mod:`scoring.score.flags`, not by a rule of the pack:
#: code -> (methodology id, title per language).
FLAG_TITLES = {
    T3: ("T3", {"en": "The win probability dropped sharply, or a new red flag appeared, since the last run",
                  "zh": "与上次运行相比赢单概率大幅下降，或出现新的风险红旗"}),
    STALLED: ("T2", {"en": "The deal has stayed in its stage longer than the threshold",
                       "zh": "项目在当前阶段停留时间超过阈值"}),
}


def output_codes(pack: RulePack, lang: str = "en") -> list[dict]:
    """Every code the nightly output can hold, as a lookup table (e.g. for the CRM).

    One row per rule of ``pack`` and per flag of :mod:`scoring.score.flags`:
    ``rule``, ``kind``, ``stage``, ``points``, ``methodology``, ``title`` and
    ``action`` in ``lang`` (one of :data:`LANGS`).
    """
    rows = [{"rule": r.id, "kind": r.kind, "stage": r.stage or ",".join(r.stages), "points": r.points,
             "methodology": " ".join(r.methodology), "title": r.text("title", lang),
             "action": r.text("action", lang)} for r in pack.rules]
    for code, (mid, title) in FLAG_TITLES.items():  # raised by the flags, not by a rule of the pack
        if code in pack.by_id:  # the pack has its own rule for it (the default pack's STALLED)
            continue
        rows.append({"rule": code, "kind": "trigger", "stage": "", "points": 0, "methodology": mid,
                     "title": title[lang], "action": ""})
    return rows


def format_codes(pack: RulePack, fmt: str = "text", lang: str = "en") -> str:
    """:func:`output_codes` as ``scoring rules list`` prints it: ``text`` (one line per code),
    ``csv`` or ``json`` (every column); ends with a newline."""
    rows = output_codes(pack, lang)
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()
    lines = [f"{pack.version_tag}: {len(pack.rules)} rules"]
    lines += [f"{r['rule']:<26} {r['kind']:<10} {r['points']:>+6g}  {r['title']}" for r in rows]
    return "\n".join(lines) + "\n"
