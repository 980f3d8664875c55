"""The report's HTML page: a view of :func:`scoring.model.report.report_data` laid out by a template.

:func:`page_view` turns the plain data into what the page shows, in the page's
language, numbers written (:mod:`scoring.model.report_text`); the Jinja2
template ``templates/report.html`` (package data, with its style sheet
``templates/report.css``) lays the view out.  Autoescaping is on: every text,
including rule titles from the pack and the history's name, is escaped.  The
page has no script and no external resource: the style is inline and the
plots are PNG data URIs.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Mapping

import jinja2
import pandas as pd

from scoring.model.metrics import baseline_verdict
from scoring.model.report_figures import FIGURES
from scoring.model.report_text import num, pct, sign_class, signed, verdict_sentence, words

#: the held-out metrics of the page, and which way is better
METRICS = (("roc_auc", "higher"), ("log_loss", "lower"), ("brier", "lower"), ("ece", "lower"))
#: the training parameters the page's header shows
SHOWN_PARAMS = ("C", "kappa", "signs", "derived", "seed", "test_fraction", "no_decision_as", "min_per_class",
                "applicable_only")
#: the page template, in the package's ``templates/``
TEMPLATE = "report.html"


def _cell(text: Any, cls: str) -> dict[str, Any]:
    return {"text": text, "cls": cls}


def _signed_cell(x: float | None, digits: int = 1) -> dict[str, Any]:
    return _cell(signed(x, digits), sign_class(x, digits))


def _about(manifest: Mapping[str, Any], w: Mapping[str, str], history_desc: str, drawn: str) -> list[tuple[str, Any]]:
    pack = manifest.get("rule_pack", {}) or {}
    training = manifest.get("training", {}) or {}
    params = training.get("params", {}) or {}
    libs = manifest.get("libraries", {}) or {}
    return [(w["model"], manifest.get("model_id")), (w["pack"], pack.get("version_tag")),
            (w["pack_fp"], pack.get("fingerprint")), (w["data_fp"], training.get("data_fingerprint")),
            (w["created"], manifest.get("created_at")),
            (w["params"], ", ".join(f"{k}={v}" for k, v in params.items() if k in SHOWN_PARAMS)),
            (w["libraries"], ", ".join(f"{k} {v}" for k, v in libs.items())),
            (w["history"], history_desc), (w["drawn_with"], drawn)]


def _counts(counts: Mapping[str, Any], w: Mapping[str, str]) -> tuple[list[list], str]:
    rows = []
    for key in ("input", "kept", "train", "test"):
        c = counts.get(key)
        if not c:
            continue
        closed = counts.get(f"{key}_closed")
        rows.append([w[key]] + [_cell(c.get(k, "–"), "n") for k in ("snapshots", "deals", "won", "lost")]
                    + [" – ".join(closed) if closed else ""])
    parts = [f"{w.get('drop_' + k, k)} {v}" for k, v in (counts.get("drops") or {}).items() if v]
    rejected = (counts.get("input") or {}).get("rejected")
    if rejected:
        parts.append(f"{w['rejected']} {rejected}")
    return rows, "; ".join(parts) if parts else w["none"]


def _metric_rows(metrics: Mapping[str, Any], w: Mapping[str, str]) -> tuple[list[str], list[dict]]:
    cols = [("model", w["m_model"])] + ([("challenger", w["m_challenger"])] if metrics.get("challenger") else []) + [
            ("base_rate", w["m_base_rate"].format(p=num((metrics.get("base_rate") or {}).get("p")))),
            ("rule_score", w["m_rule_score"])]
    rows = []
    for key, better in METRICS:
        vals = [(metrics.get(c) or {}).get(key) for c, _ in cols]
        known = [v for v in vals if v is not None]
        best = (max(known) if better == "higher" else min(known)) if known else None
        rows.append({"label": w[key], "better": w[better], "help": w["help_" + key],
                     "cells": [{"text": num(v, 4), "best": v is not None and v == best} for v in vals]})
    return [label for _, label in cols], rows


def _points_rows(points: pd.DataFrame, w: Mapping[str, str]) -> tuple[list[dict], int]:
    """The points table's rows (those earning points; the intercept first), and how many were left out."""
    rows, hidden = [], 0
    for r in points.itertuples(index=False):
        if r.evidence != "intercept" and round(r.points, 1) == 0 and r.sign not in ("zero", "contradicts"):
            hidden += 1
            continue
        stage = r.stage if isinstance(r.stage, str) else w["all_stages"]
        bad = r.sign == "contradicts"
        rows.append({"cls": "disagree" if bad else "", "cells": [
            r.term if r.evidence != "intercept" else "", _cell(r.title, "t"), w.get(f"k_{r.kind}", r.kind),
            stage if r.evidence not in ("intercept", "stage") else "",
            w.get(f"ev_{r.evidence}", r.evidence), r.bin if isinstance(r.bin, str) else "",
            _signed_cell(r.points), _signed_cell(r.log_odds, 3),
            _signed_cell(r.expert_points, 0) if r.expert_points == r.expert_points else "",
            _cell(w["check_" + r.sign], "warn nw" if bad else "nw")]})
    return rows, hidden


def _challenger_skipped(manifest: Mapping[str, Any], w: Mapping[str, str]) -> str:
    """Why no challenger was fitted, when training said (e.g. trained from the score store), as a sentence."""
    why = ((manifest.get("training") or {}).get("params") or {}).get("challenger_skipped")
    return " " + w["challenger_skipped"].format(why=why) if why and not manifest.get("challenger") else ""


def _challenger(manifest: Mapping[str, Any], w: Mapping[str, str]) -> dict[str, Any] | None:
    ch = manifest.get("challenger")
    if not ch:
        return None
    from scoring.model.challenger import MIN_RISE, REPEATS

    a = ch["against_scorecard"]
    lo, hi = a["interval"]
    unread = ch.get("unread_with_signal") or []
    return {"note": w["challenger_note"].format(model=ch.get("model", ""), iters=ch.get("iterations", "?"),
                                               cols=ch.get("columns", "?")),
            "diff": w["ch_diff"].format(d=signed(a["difference"], 4), lo=signed(lo, 4), hi=signed(hi, 4),
                                        deals=a["deals"]),
            "verdict": w["ch_better"] if lo is not None and lo > 0 else w["ch_worse"] if hi is not None and hi < 0
            else w["ch_same"],
            "raw_note": w["raw_note"].format(repeats=REPEATS, min=MIN_RISE),
            "unread": w["raw_unread"].format(names=", ".join(unread)) if unread else w["raw_none"],
            "rows": [{"cls": "disagree" if r["signal"] and not r["read_by_rules"] else "", "cells": [
                r["field"], _cell(signed(r["rise"], 4), "n"), _cell(num(r["sd"], 4), "n"),
                w["yes"] if r["signal"] else w["no"], w["yes"] if r["read_by_rules"] else w["no"]]}
                for r in ch.get("raw_fields", [])[:20]]}


def _signs(manifest: Mapping[str, Any], w: Mapping[str, str]) -> dict[str, Any] | None:
    sg = manifest.get("signs")
    if not sg:
        return None
    d = sg["difference"]
    bad = sorted(sg.get("contradicts", []), key=lambda r: -abs(r["log_odds"]))
    return {"note": w["signs_note"].format(c=num(sg["log_loss"]["constrained"], 4), f=num(sg["log_loss"]["free"], 4),
                                           d=signed(d["difference"], 4), lo=signed(d["interval"][0], 4),
                                           hi=signed(d["interval"][1], 4)),
            "head": (w["signs_bad_free"] if sg["published"] == "free" else w["signs_bad"]) if bad else w["signs_ok"],
            "terms": [f"{r['term']}{' @ ' + r['stage'] if r.get('stage') else ''}"
                      f"{' [' + r['bin'] + ']' if r.get('bin') else ''}: {signed(r['log_odds'], 3)}" for r in bad]}


def _curves(data: Mapping[str, Any], w: Mapping[str, str], history_desc: str) -> dict[str, str] | None:
    ho = data["held_out"]
    if ho is None:
        return None
    mm = data["manifest"].get("metrics") or {}
    rs = ho["metrics"]["rule_score"] or {}
    return {"fallback": w["curves_fallback"].format(deals=ho["deals"]) if ho["fallback"] else "",
            "note": w["curves_note"].format(
                src=history_desc, deals=ho["deals"], snap=ho["snapshots"], won=ho["won"], lost=ho["lost"],
                m=num(ho["metrics"]["model"]["log_loss"], 4), r=num(rs.get("log_loss"), 4),
                mm=num((mm.get("model") or {}).get("log_loss"), 4),
                mr=num((mm.get("rule_score") or {}).get("log_loss"), 4))}


def _coefficient_rows(c: Mapping[str, Any], w: Mapping[str, str]) -> dict[str, list]:
    def kind(k: str) -> str:
        return w.get(f"k_{k}", k)

    met = []
    for r in c["met"].itertuples(index=False):
        bad = r.sign in ("opposite", "ignored")
        met.append({"cls": "disagree" if bad else "", "cells": [
            r.rule, _cell(r.title, "t"), kind(r.kind), _signed_cell(r.expert_points, 0),
            _signed_cell(r.coefficient, 3), _signed_cell(r.learned_points), _cell(signed(r.gap), "n"),
            _cell(w[f"sign_{r.sign}"], "warn nw" if bad else "nw")]})
    unknown = [[r.rule, _cell(r.rule_title, "t"), kind(r.kind), _signed_cell(r.coefficient, 3),
                _signed_cell(r.learned_points)] for r in c["unknown"].itertuples(index=False)]
    other = [[r.feature, r.title, _signed_cell(r.coefficient, 3), _signed_cell(r.learned_points)]
             for r in c["other"].itertuples(index=False)]
    return {"coef_met": met, "coef_unknown": unknown, "coef_other": other}


def _rule_rows(rules: pd.DataFrame, w: Mapping[str, str]) -> list[dict]:
    out = []
    for r in rules.itertuples(index=False):
        muted = bool({"never", "few"} & set(r.notes))
        win_cls = "n"
        if not muted and not math.isnan(r.win_rate_fired) and not math.isnan(r.win_rate_not_fired):
            win_cls = "n pos" if r.win_rate_fired > r.win_rate_not_fired else "n neg"
        out.append({"cls": "muted" if muted else "", "notes": [w["n_" + n] for n in r.notes], "cells": [
            r.rule, _cell(r.title, "t"), w.get(f"k_{r.kind}", r.kind), _cell(pct(r.fire_rate), "n"),
            _cell(pct(r.unknown_rate), "n"), _cell(r.deals_fired, "n"), _cell(pct(r.win_rate_fired), win_cls),
            _cell(pct(r.win_rate_not_fired), "n"), _signed_cell(r.expert_points, 0),
            _signed_cell(r.learned_points), _signed_cell(r.learned_points_unknown)]})
    return out


def page_view(data: Mapping[str, Any], figs: Mapping[str, str], lang: str = "en", history_desc: str = "",
              drawn: str = "") -> dict[str, Any]:
    """What the page template lays out: the texts of :func:`report_data` in ``lang``, numbers written.

    Table rows are lists of cells; a cell is a value, or ``{"text", "cls"}``
    for a cell with a CSS class.  A plot missing from ``figs`` is left out.
    """
    w = words(lang)
    manifest = data["manifest"]
    metrics = manifest.get("metrics", {}) or {}
    counts = (manifest.get("training") or {}).get("counts") or {}
    count_rows, drops = _counts(counts, w)
    points_rows, hidden = _points_rows(data["points"], w)
    metric_columns, metric_rows = _metric_rows(metrics, w)
    verdict = baseline_verdict(metrics)
    rs = data["rule_stats_counts"]
    rules_note = {"all": "rules_note_all", "test": "rules_note_test"}.get(data["rule_stats_on"], "rules_note_none")
    return {
        "lang": lang, "words": w, "figures": {k: figs.get(k) for k in FIGURES},
        "model_id": manifest.get("model_id", ""), "version_tag": (manifest.get("rule_pack") or {}).get("version_tag"),
        "about": _about(manifest, w, history_desc, drawn), "counts": count_rows, "drops": drops,
        "metrics_note": w["metrics_note"].format(deals=(counts.get("test") or {}).get("deals", "?"))
        + _challenger_skipped(manifest, w),
        "metric_columns": metric_columns, "metrics": metric_rows,
        "verdict": {"code": verdict, "sentence": verdict_sentence(metrics, lang),
                    "cls": "good" if verdict == "both" else "unknown" if verdict == "unknown" else "bad"},
        "curves": _curves(data, w, history_desc),
        "points": points_rows, "points_note": w["points_note"].format(hidden=hidden),
        "points_signs": w["points_signs"].format(mode=w["signs_" + (manifest.get("signs") or {}).get(
            "published", "free" if manifest.get("format") == "dealscore-model/1" else "constrained")]),
        "challenger": _challenger(manifest, w), "signs": _signs(manifest, w),
        "coef_note": w["coef_note"].format(k=num(data["coefficients"]["k"], 2)),
        **_coefficient_rows(data["coefficients"], w),
        "rules_note": w[rules_note].format(snap=rs["snapshots"], deals=rs["deals"]),
        "rules": _rule_rows(data["rules"], w),
    }


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """The page's template environment: the package's ``templates/``, every value autoescaped, None as ''."""
    return jinja2.Environment(loader=jinja2.PackageLoader("scoring.model", "templates"), autoescape=True,
                              trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                              finalize=lambda x: "" if x is None else x)


def render_html(data: Mapping[str, Any], figs: Mapping[str, str], lang: str = "en", history_desc: str = "",
                drawn: str = "") -> str:
    """The report page (a string) from :func:`report_data` and :func:`~scoring.model.report_figures.draw_figures`."""
    return _environment().get_template(TEMPLATE).render(page=page_view(data, figs, lang, history_desc, drawn)) + "\n"
