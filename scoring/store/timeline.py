"""One deal's stored history as plain data and as text (``scoring history``, ``scoring explain --since``).

Each stored run of the deal is an entry (date, stage, probability, its change, the trend, the
model and pack); each entry after the first says what changed since the one before, per rule
in words, with its contribution to the change in log-odds (:mod:`scoring.store.changes`).
When the model or the pack changed in between and tonight's model is the later entry's (the
model given), the change is split into "model/pack change" and "evidence change"; when it is
not available, the entry gives the whole change as "model/pack change (not itemized)".
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from scoring.errors import InputError
from scoring.score.labels import EXPLAIN_LABELS, STAGE_NAMES
from scoring.store.changes import (MODEL_TERM, STAGE_TERM, TREND_MIN_RUNS, TREND_WINDOW_DAYS, applies_at,
                                   change_items, decompose, derived_inputs, map_status, rule_contributions,
                                   status_codes, trend)
from scoring.store.store import Store

WORDS = {
    "en": {"history": "history", "runs": "stored runs", "win": "win", "model_change": "Model or rule pack changed",
           "not_itemized": "not itemized: that model is not available", "stage": "Stage", "since": "since",
           "no_runs": "no stored run of this deal", "points": "points", "change": "change", "new": "first run",
           "met": "met", "missing": "missing", "unknown": "unknown", "logodds": "log-odds"},
    "zh": {"history": "历史", "runs": "已存储的运行", "win": "赢单概率", "model_change": "模型或规则包已更换",
           "not_itemized": "无法逐项分解：该模型不可用", "stage": "阶段", "since": "自",
           "no_runs": "该项目没有已存储的运行", "points": "个百分点", "change": "变化", "new": "首次运行",
           "met": EXPLAIN_LABELS["zh"].get("met", "已做到"), "missing": EXPLAIN_LABELS["zh"]["missing"],
           "unknown": EXPLAIN_LABELS["zh"]["unknown"], "logodds": "对数几率"},
}
#: the trend labels in words (the nightly output keeps the English labels as codes)
TREND_WORDS = {"en": {}, "zh": {"Improving": "上升", "Steady": "平稳", "Declining": "下降", "Not enough info": "信息不足"}}


def _rules(v: Any) -> list[str]:
    import json

    return json.loads(v) if isinstance(v, str) else list(v)


def _row_status(row: Mapping, rules: list[str]) -> np.ndarray:
    import pyarrow as pa

    return status_codes(pa.array([row["status"]], pa.string()), len(rules))


def _measures_row(row: Mapping, model: Any) -> np.ndarray | None:
    """A stored row's measures as ``(1, n_measures)`` for ``model``'s pack (NaN unknown), None without any."""
    n = len(getattr(getattr(model, "pack", None), "compiled", None).measures) if model is not None else 0
    vals = row.get("measures")
    if not n:
        return None
    if vals is None or len(vals) != n:
        return np.full((1, n), np.nan)
    return np.array([[np.nan if v is None else v for v in vals]], dtype=float)


def _derived_row(row: Mapping, model: Any) -> dict[str, np.ndarray] | None:
    """A stored row's values of ``model``'s derived-fact inputs (name -> ``[value]``; NaN when the run
    did not store it), None for a model without such inputs."""
    names = derived_inputs(model) if model is not None else []
    if not names:
        return None
    stored = _rules(row.get("derived_names") or "[]")
    vals = row.get("derived")
    at = {k: i for i, k in enumerate(stored)} if vals is not None and len(vals) == len(stored) else {}
    return {k: np.array([np.nan if k not in at or vals[at[k]] is None else float(vals[at[k]])]) for k in names}


def _pair(prev: Mapping, cur: Mapping, model: Any, pack: Any) -> tuple[list[dict], float | None]:
    """What changed from stored row ``prev`` to ``cur`` (items without titles) and the log-odds change."""
    rules_prev, rules_cur = _rules(prev["rules"]), _rules(cur["rules"])
    st_cur = _row_status(cur, rules_cur)
    st_prev = map_status(_row_status(prev, rules_prev), rules_prev, rules_cur, st_cur)
    has = np.array([True])
    stage_now, stage_before = [cur["stage"]], [prev["stage"]]
    appl = applies_at(pack, stage_now, stage_before) if pack is not None and \
        [r.id for r in pack.rules] == rules_cur else None
    lp, lc = prev["logit"], cur["logit"]
    if lp is None or lc is None or (isinstance(lp, float) and math.isnan(lp)) or (isinstance(lc, float) and math.isnan(lc)):
        deltas = np.full((1, len(rules_cur) + 1), np.nan)
        return change_items(deltas, np.zeros(1), st_cur, st_prev, stage_now, stage_before, rules_cur, has, appl)[0], None
    d_logit = float(lc) - float(lp)
    same = prev["model_version"] == cur["model_version"] and prev["rule_pack_version"] == cur["rule_pack_version"]
    c_cur = np.asarray(cur["contributions"], dtype=float).reshape(1, -1)
    if same and model is not None and model.model_version == cur["model_version"] \
            and [r.id for r in model.pack.rules] == rules_cur:  # recomputed in 64 bits: exact
        deltas = (rule_contributions(model, st_cur, stage_now, _measures_row(cur, model), _derived_row(cur, model))
                  - rule_contributions(model, st_prev, stage_before, _measures_row(prev, model),
                                       _derived_row(prev, model)))
        return change_items(deltas, np.zeros(1), st_cur, st_prev, stage_now, stage_before, rules_cur, has,
                            appl)[0], d_logit
    if same:  # the stored 32-bit contributions: the items sum to the change to about 1e-6
        c_prev = np.asarray(prev["contributions"], dtype=float)
        pos = {r: i for i, r in enumerate(rules_prev)}
        aligned = np.array([c_prev[pos[r]] if r in pos else c_cur[0, j] for j, r in enumerate(rules_cur)]
                           + [c_prev[-1]])
        return change_items(c_cur - aligned, np.zeros(1), st_cur, st_prev, stage_now, stage_before, rules_cur, has,
                            appl)[0], d_logit
    if model is not None and model.model_version == cur["model_version"]:
        part, deltas = decompose(model, c_cur, np.array([float(lp)]), st_prev, stage_before, _measures_row(prev, model),
                                 np.array([False]), _derived_row(prev, model))
        return change_items(deltas, part, st_cur, st_prev, stage_now, stage_before, rules_cur, has, appl)[0], d_logit
    return [{"term": MODEL_TERM, "before": prev["model_version"], "now": cur["model_version"],
             "contribution": d_logit, "itemized": False}], d_logit


def _graded(items: list[dict], prev: Mapping, cur: Mapping, pack: Any, lang: str) -> list[dict]:
    """The items with, for a rule whose graded measure moved, ``measures``: ``name``, ``before``
    and ``now`` in words (why a rule's contribution moved though its status did not, e.g. the
    days in the current stage crossed a bin)."""
    ms = list(getattr(getattr(pack, "compiled", None), "measures", ()) or ())
    vals = [r.get("measures") for r in (prev, cur)]
    if not ms or any(v is None or len(v) != len(ms) for v in vals):
        return items
    out = []
    for item in items:
        moved = []
        for j, m in enumerate(ms):
            if m.rule != item["term"]:
                continue
            a, b = (None if v[j] is None or (isinstance(v[j], float) and math.isnan(v[j])) else float(v[j])
                    for v in vals)
            if a != b:
                unknown = WORDS[lang]["unknown"]
                moved.append({"name": m.name, "before": m.text(a, lang) if a is not None else unknown,
                              "now": m.text(b, lang) if b is not None else unknown})
        out.append({**item, "measures": moved} if moved else item)
    return out


def _title(item: dict, pack: Any, lang: str) -> str:
    w = WORDS[lang]
    if item["term"] == MODEL_TERM:
        return w["model_change"] + ("" if item.get("itemized", True) else f" ({w['not_itemized']})")
    if item["term"] == STAGE_TERM:
        names = STAGE_NAMES[lang]
        return f"{w['stage']}: {names.get(item['before'], item['before'])} -> {names.get(item['now'], item['now'])}"
    try:
        title = pack.rule(item["term"]).text("title", lang) if pack is not None else item["term"]
    except Exception:  # a rule of an older pack
        title = item["term"]
    move = w[item["now"]] if item["before"] == item["now"] else f"{w[item['before']]} -> {w[item['now']]}"
    graded = "".join(f"; {m['before']} -> {m['now']}" for m in item.get("measures") or ())
    return f"{title}: {move}{graded}"


def deal_timeline(store: Store, deal_id: str, *, model: Any = None, pack: Any = None, lang: str = "en",
                  since: str | None = None) -> dict:
    """The deal's stored history (see the module docstring) as plain data.

    Keys: ``deal_id``, ``entries`` (oldest first: ``run_id``, ``as_of`` (the run's date), ``stage``,
    ``win_probability``, ``probability_change``, ``logit_change``, ``trend``, ``model_version``,
    ``rule_pack_version``, ``changes`` (``term``, ``title``, ``before``, ``now``, ``contribution``)),
    and with ``since``: ``since`` (the entry on or before that date it compares with, or None) and
    ``changes_since``.
    """
    rows = store.deal_history(deal_id)
    if not len(rows):
        raise InputError(f"store {store.backend.describe()}: no stored run of deal {deal_id!r}")
    recs = rows.to_dict("records")
    entries = []
    for k, cur in enumerate(recs):
        earlier = [r for r in recs[:k] if r["run_as_of"] >= _minus(cur["run_as_of"], TREND_WINDOW_DAYS)]
        probs = [r["win_probability"] for r in earlier if _num(r["win_probability"])]
        tr = trend(np.array([_f(cur["win_probability"])]), np.array([np.median(probs) if probs else np.nan]),
                   np.array([len(probs)]))[0]
        e = {"run_id": cur["run_id"], "as_of": cur["run_as_of"], "stage": cur["stage"],
             "win_probability": _f(cur["win_probability"]), "probability_change": None, "logit_change": None,
             "trend": tr, "model_version": cur["model_version"], "rule_pack_version": cur["rule_pack_version"],
             "changes": []}
        if k:
            items, d = _pair(recs[k - 1], cur, model, pack)
            items = _graded(items, recs[k - 1], cur, pack, lang)
            e["changes"] = [{**i, "title": _title(i, pack, lang)} for i in items]
            e["logit_change"] = d
            if _num(cur["win_probability"]) and _num(recs[k - 1]["win_probability"]):
                e["probability_change"] = float(cur["win_probability"]) - float(recs[k - 1]["win_probability"])
        entries.append(e)
    out: dict[str, Any] = {"deal_id": deal_id, "entries": entries,
                           "trend_rule": f"{TREND_WINDOW_DAYS} days, at least {TREND_MIN_RUNS} earlier runs"}
    if since is not None:
        base = [r for r in recs if r["run_as_of"] <= since]
        out["since"] = base[-1]["run_as_of"] if base else None
        if base and base[-1]["run_id"] != recs[-1]["run_id"]:
            items, d = _pair(base[-1], recs[-1], model, pack)
            items = _graded(items, base[-1], recs[-1], pack, lang)
            out["changes_since"] = [{**i, "title": _title(i, pack, lang)} for i in items]
            out["logit_change_since"] = d
        else:
            out["changes_since"] = []
            out["logit_change_since"] = None if not base else 0.0
    return out


def _minus(day: str, days: int) -> str:
    import datetime as _dt

    return (_dt.date.fromisoformat(day) - _dt.timedelta(days=days)).isoformat()


def _num(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _f(v: Any) -> float | None:
    return float(v) if _num(v) else None


def format_timeline(t: Mapping, lang: str = "en") -> str:
    """:func:`deal_timeline` as the readable timeline ``scoring history`` prints."""
    w = WORDS[lang]
    names = STAGE_NAMES[lang]
    lines = [f"{t['deal_id']}  {w['history']}: {len(t['entries'])} {w['runs']}"]
    for e in t["entries"]:
        p = "-" if e["win_probability"] is None else f"{100 * e['win_probability']:.1f}%"
        ch = "" if e["probability_change"] is None else f"  ({100 * e['probability_change']:+.1f} {w['points']})"
        tr = TREND_WORDS[lang].get(e["trend"], e["trend"])
        lines.append(f"  {e['as_of']}  {names.get(e['stage'], e['stage']):<22} {w['win']} {p}{ch}  {tr}"
                     f"   [{e['model_version'] or '-'}]")
        lines += _item_lines(e["changes"], w)
    if "changes_since" in t:
        lines.append(f"  {w['since']} {t['since'] or '-'}: " + (
            "" if t.get("logit_change_since") is None else f"{t['logit_change_since']:+.3f} {w['logodds']}"))
        lines += _item_lines(t["changes_since"], w)
    return "\n".join(lines)


def format_since(s: Mapping, lang: str = "en") -> str:
    """The ``since`` part of ``scoring explain --since`` (what changed since the stored run of that date)."""
    w = WORDS[lang]
    if s.get("since") is None:
        return f"  {w['since']} -: {w['no_runs']}"
    head = f"  {w['change']} {w['since']} {s['since']}: " + (
        "" if s.get("logit_change_since") is None else f"{s['logit_change_since']:+.3f} {w['logodds']}")
    return "\n".join([head] + _item_lines(s.get("changes_since") or [], w))


def _item_lines(items, w) -> list[str]:
    out = []
    for i in items:
        c = i["contribution"]
        num = "     " if c is None or c != c else f"{c:+.3f}"
        out.append(f"      {num}  {i['title']}")
    return out


def frame_of(t: Mapping) -> pd.DataFrame:
    """The entries as a table (one row per stored run)."""
    return pd.DataFrame([{k: v for k, v in e.items() if k != "changes"} for e in t["entries"]])

