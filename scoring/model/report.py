"""The model report: one self-contained HTML page for sales ops.

:func:`build_report` loads a model artifact (see :mod:`scoring.model.artifact`) and
writes one HTML file with no external resources (inline CSS; plots are
embedded PNG images drawn with matplotlib's Agg backend, imported only here,
when a report is drawn).  It shows

* what the model is: model id, rule pack version tag and fingerprint, training
  data fingerprint and counts, creation time, library versions;
* the held-out metrics of the model and its two baselines (the training base
  rate; the rule score alone mapped to a probability), from the manifest, and
  a sentence, computed from those numbers, saying whether the model beats both
  baselines on held-out log loss;
* the reliability diagram and the ROC curve, recomputed on the model's
  held-out test deals (``split.json``) found in ``history``; without a
  history, drawn from the held-out predictions stored in the artifact
  (``held_out.json``), and then without the per-rule rates, which need the
  history.  A report never draws from a history it was not given: an older
  artifact without stored predictions needs ``history``;
* the distribution of win probability and of rule score for won and lost deals;
* first, the **points table** (:meth:`scoring.model.scorecard.Model.points_table`):
  the points each rule status, stage and bin earns, which sum with the
  intercept to a deal's log-odds, each row's sign check against its declared
  direction;
* one plain sentence per metric saying what it means for a sales manager;
* the scorecard against the gradient-boosting challenger (held-out metrics and
  the paired bootstrap interval of the log-loss difference), and the raw
  fields that carry signal no rule reads (:mod:`scoring.model.challenger`);
* the sign report: weights against the declared directions, and the held-out
  log loss with constrained and with free signs;
* the coefficient table as points, sorted so the biggest disagreements with
  the expert points come first;
* per rule: how often it fires, the win rate when it fires and when it
  applies but does not, expert points beside learned points.

Everything the page shows is first computed as plain data by
:func:`report_data` (numbers, lists and DataFrames), then drawn: the plots by
:mod:`scoring.model.report_figures`, the page by :mod:`scoring.model.report_page`
(a Jinja2 template; its words and number formats are in :mod:`scoring.model.report_text`).

Weighting: as in training, each deal weighs 1 (a snapshot weighs
``1 / snapshots of its deal``), for every rate, curve and histogram here.

Examples
--------
>>> from scoring.model.report import build_report                         # doctest: +SKIP
>>> build_report("models/20260101T000000Z-abcd1234", out="out/report.html")  # doctest: +SKIP
PosixPath('out/report.html')
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from scoring import paths
from scoring.errors import ModelError
from scoring.evidence.status import MET, UNKNOWN
from scoring.model.artifact import load_model, model_held_out, model_no_decision_as, model_split
from scoring.model.scorecard import UNKNOWN_SUFFIX, Model, sigmoid
from scoring.model.metrics import baseline_verdict, probability_metrics, reliability_table
from scoring.model.report_figures import draw_figures
from scoring.model.report_page import render_html
from scoring.model.report_text import words
from scoring.model.train import deal_counts, prepare_history, rule_scores

#: on which snapshots the per-rule statistics are computed: every kept snapshot of the history, or the held-out part
RULE_STATS_ON = ("all", "test")
#: a rule firing in fewer distinct deals than this gets a "few deals" note: its win rate is noise
FEW_DEALS = 20
#: learned points smaller than this in size count as "no effect" when comparing signs
NEUTRAL_POINTS = 1.0
#: a rule whose win rate when fired is not at least this far from when not fired (in the direction of its
#: expert points) gets a "check the rule" note: it does not separate wins from losses
MIN_LIFT = 0.02


# --------------------------------------------------------------------------- plain data
def _display_path(p: Path) -> str:
    """The path relative to the project root when it lies inside it (no machine paths in reports)."""
    try:
        return Path(p).resolve().relative_to(paths.project_root().resolve()).as_posix()
    except ValueError:
        return str(p)


def _read_history(history: Sequence[Mapping] | str | Path, model: Model,
                  lang: str = "en") -> tuple[list[dict], str]:
    from scoring.contract.reader import read_records

    if isinstance(history, (str, Path)):
        p = Path(history)
        if not p.exists():
            raise ModelError(f"history {p} not found: pass the history the model was trained on")
        return read_records(p, model.pack.schema, history=True).records, _display_path(p)
    recs = list(history)
    return recs, words(lang)["records_given"].format(n=len(recs))


def _weighted_rate(y: np.ndarray, w: np.ndarray, mask: np.ndarray) -> float:
    W = float(w[mask].sum())
    return float(np.dot(y[mask], w[mask]) / W) if W > 0 else float("nan")


def coefficient_points(model: Model, lang: str = "en") -> dict[str, Any]:
    """The coefficient table as points, sorted so the biggest disagreements come first.

    Returns a dict of plain data:

    ``met``
        The rows of :meth:`Model.coefficient_table` for a rule being met (a
        red flag raised), plus ``gap = learned_points - k * expert_points``
        and ``sign``: ``agree``, ``opposite``, ``ignored`` (learned points
        within :data:`NEUTRAL_POINTS` of 0 while the expert gives points) or
        ``na`` (the expert gives 0 points: triggers); sorted by ``|gap|``,
        largest first.
    ``unknown``
        The rows for a rule's status being unknown (0 expert points: unknown
        earns nothing), with ``rule_title`` (the rule's own title), sorted by
        ``|learned_points|``, largest first.
    ``other``
        The intercept and stage rows.
    ``k``
        The least-squares factor from expert to learned points over the met
        rows with non-zero expert points (1 when it is not positive).
    """
    table = model.coefficient_table(lang)
    met = table[table["evidence"] == "met"].copy()
    unknown = table[table["evidence"] == "unknown"].copy()
    other = table[~table["evidence"].isin(["met", "unknown"])].copy()
    e, l = met["expert_points"].to_numpy(float), met["learned_points"].to_numpy(float)
    nz = e != 0
    k = float(np.dot(e[nz], l[nz]) / np.dot(e[nz], e[nz])) if nz.any() else 1.0
    if not k > 0:
        k = 1.0
    met["gap"] = l - k * e
    met["sign"] = np.where(~nz, "na", np.where(np.abs(l) < NEUTRAL_POINTS, "ignored",
                                              np.where(np.sign(e) == np.sign(l), "agree", "opposite")))
    met = met.assign(_g=-np.abs(met["gap"])).sort_values(["_g", "feature"], kind="mergesort").drop(columns="_g")
    unknown["rule_title"] = [model.pack.rule(rid).text("title", lang) for rid in unknown["rule"]]
    unknown = unknown.assign(_g=-np.abs(unknown["learned_points"])).sort_values(
        ["_g", "feature"], kind="mergesort").drop(columns="_g")
    return {"met": met.reset_index(drop=True), "unknown": unknown.reset_index(drop=True),
            "other": other.reset_index(drop=True), "k": k}


def rule_statistics(model: Model, status: np.ndarray, stages: Sequence[str], y: np.ndarray, w: np.ndarray,
                    deal: np.ndarray, lang: str = "en") -> pd.DataFrame:
    """Per rule of the model's pack (pack order): how often it fires and the win rates.

    Columns: ``rule``, ``title``, ``kind``, ``expert_points``,
    ``learned_points`` (its met column), ``learned_points_unknown`` (its
    unknown column, NaN when it has none), ``fire_rate`` (weighted share of
    snapshots where it is met and applies at the deal's stage),
    ``unknown_rate``, ``deals_fired`` (distinct deals with a snapshot where it
    fires), ``win_rate_fired``, ``win_rate_not_fired`` (over the snapshots
    where it applies but is not met), and ``notes`` (list of note keys:
    ``never``; ``few`` (fires in fewer than :data:`FEW_DEALS` deals);
    ``pos_lower`` / ``flag_higher`` (the win rate when it fires is not at
    least :data:`MIN_LIFT` above / below the rate when it does not, against
    its expert points); ``sign`` (learned points of the other sign than the
    expert's); ``zero`` (learned points within :data:`NEUTRAL_POINTS` of 0)).
    Weights ``w`` make each deal weigh 1.
    """
    pack = model.pack
    ct = model.coefficient_table(lang)
    learned = dict(zip(ct["feature"], ct["learned_points"]))
    apply_all = not model.applicable_only
    W = float(w.sum())
    rows = []
    for j, r in enumerate(pack.rules):
        applies = np.ones(len(stages), bool) if apply_all else np.array([r.applies_at(s) for s in stages], bool)
        met = (status[:, j] == MET) & applies
        unk = (status[:, j] == UNKNOWN) & applies
        not_met = applies & ~met
        lp = float(learned[r.id])
        lpu = float(learned.get(r.id + UNKNOWN_SUFFIX, float("nan")))
        row = {"rule": r.id, "title": r.text("title", lang), "kind": r.kind, "expert_points": float(r.points),
               "learned_points": lp, "learned_points_unknown": lpu,
               "fire_rate": float(w[met].sum() / W) if W else float("nan"),
               "unknown_rate": float(w[unk].sum() / W) if W else float("nan"),
               "deals_fired": int(len(set(deal[met]))),
               "win_rate_fired": _weighted_rate(y, w, met), "win_rate_not_fired": _weighted_rate(y, w, not_met)}
        notes = []
        if not met.any():
            notes.append("never")
        elif row["deals_fired"] < FEW_DEALS:
            notes.append("few")
        wf, wn = row["win_rate_fired"], row["win_rate_not_fired"]
        if met.any() and not math.isnan(wn) and row["deals_fired"] >= FEW_DEALS:
            if r.points > 0 and wf < wn + MIN_LIFT:
                notes.append("pos_lower")
            if r.points < 0 and wf > wn - MIN_LIFT:
                notes.append("flag_higher")
        if r.points != 0 and abs(lp) >= NEUTRAL_POINTS and np.sign(lp) != np.sign(r.points):
            notes.append("sign")
        if met.any() and abs(lp) < NEUTRAL_POINTS:
            notes.append("zero")
        row["notes"] = notes
        rows.append(row)
    return pd.DataFrame(rows)


def report_data(model: Model, records: Sequence[Mapping], split: Mapping[str, Sequence[str]] | None = None,
                *, rule_stats: str = "all", lang: str = "en") -> dict[str, Any]:
    """Everything the report shows, as plain data.

    ``records`` is the history (contract records with outcomes); it goes
    through the same drops as training (:func:`scoring.model.train.prepare_history`,
    with the model's ``no_decision_as``).  ``split`` is the artifact's
    ``split.json`` (default: read from ``model.path``).

    Keys: ``manifest``; ``verdict`` (:func:`baseline_verdict`);
    ``held_out`` (``deals``, ``snapshots``, ``won``, ``lost``, ``fallback``,
    arrays ``y``, ``w``, ``p_model``, ``p_rule``, ``score``, ``metrics`` of
    the model and the rule-score baseline recomputed, ``reliability``), or
    None when no held-out deals with both outcomes are found; ``coefficients``
    (:func:`coefficient_points`); ``rules``
    (:func:`rule_statistics`), ``rule_stats_on`` and ``rule_stats_counts``.
    """
    if rule_stats not in RULE_STATS_ON:
        raise ModelError(f"rule_stats must be one of {', '.join(RULE_STATS_ON)}, not {rule_stats!r}")
    words(lang)
    manifest = model.manifest
    if split is None:
        split = model_split(model)
    training = manifest.get("training", {}) or {}
    h = prepare_history(records, model.pack, no_decision_as=model_no_decision_as(model))
    e = model.evidence_of(h.records)
    status, stages = e.status, e.stages
    p_model = (model.predict_evidence(status, stages, measures=e.measures, derived=e.derived) if len(stages)
               else np.zeros(0))
    score = rule_scores(model.pack, status, stages) if len(stages) else np.zeros(0)
    platt = training.get("rule_score_platt") or {}
    p_rule = (sigmoid(platt["slope"] * score / 100.0 + platt["intercept"])
              if {"slope", "intercept"} <= set(platt) else None)

    test_ids, train_ids = set(split.get("test", [])), set(split.get("train", []))
    held = np.isin(h.deal, list(test_ids))
    fallback = False
    if not held.any():
        held = ~np.isin(h.deal, list(train_ids))
        fallback = True
    held_out = None
    if held.any() and len(np.unique(h.y[held])) == 2:
        y, w = h.y[held], h.weight[held]
        c = deal_counts(h, set(h.deal[held]))
        held_out = {"deals": c["deals"], "snapshots": c["snapshots"], "won": c["won"], "lost": c["lost"],
                    "fallback": fallback, "y": y, "w": w, "p_model": p_model[held], "score": score[held],
                    "p_rule": None if p_rule is None else p_rule[held],
                    "metrics": {"model": probability_metrics(y, p_model[held], w),
                                "rule_score": None if p_rule is None else probability_metrics(y, p_rule[held], w)},
                    "reliability": {"model": reliability_table(y, p_model[held], w),
                                    "rule_score": None if p_rule is None else reliability_table(y, p_rule[held], w)}}

    on = np.ones(len(h.y), bool) if rule_stats == "all" else held
    rules = rule_statistics(model, status[on], [s for s, k in zip(stages, on) if k], h.y[on], h.weight[on],
                            h.deal[on], lang)
    return {"manifest": manifest, "verdict": baseline_verdict(manifest.get("metrics", {})), "held_out": held_out,
            "points": model.points_table(lang), "coefficients": coefficient_points(model, lang), "rules": rules,
            "rule_stats_on": rule_stats, "rule_stats_counts": {"snapshots": int(on.sum()),
                                                                "deals": int(len(set(h.deal[on])))}}


def stored_report_data(model: Model, *, lang: str = "en") -> dict[str, Any]:
    """What :func:`report_data` returns, from the artifact's stored held-out predictions alone.

    The curves and histograms use the test snapshots' stored outcomes, weights
    and predictions; the per-rule rates need the history and are left empty
    (``rule_stats_on`` is ``"none"``).

    Raises
    ------
    ModelError
        The artifact stores no held-out predictions (it predates them): give the history.
    """
    words(lang)
    stored = model_held_out(model)
    if stored is None:
        raise ModelError(f"model {model.path} stores no held-out predictions (trained by an older version): "
                         "give the history it was trained on (--history FILE) to draw the report")
    y, w = np.asarray(stored["y"], dtype=np.int64), np.asarray(stored["w"], dtype=float)
    p_model, p_rule = np.asarray(stored["p_model"], dtype=float), np.asarray(stored["p_rule"], dtype=float)
    deal = np.asarray(stored["deal"], dtype=object)
    won = {d for d, yy in zip(deal, y) if yy == 1}
    n_deals = len(set(deal))
    held_out = None
    if len(np.unique(y)) == 2:
        held_out = {"deals": n_deals, "snapshots": int(len(y)), "won": len(won), "lost": n_deals - len(won),
                    "fallback": False, "y": y, "w": w, "p_model": p_model, "p_rule": p_rule,
                    "score": np.asarray(stored["score"], dtype=float),
                    "metrics": {"model": probability_metrics(y, p_model, w),
                                "rule_score": probability_metrics(y, p_rule, w)},
                    "reliability": {"model": reliability_table(y, p_model, w),
                                    "rule_score": reliability_table(y, p_rule, w)}}
    return {"manifest": model.manifest, "verdict": baseline_verdict(model.manifest.get("metrics", {})),
            "held_out": held_out, "points": model.points_table(lang), "coefficients": coefficient_points(model, lang),
            "rules": pd.DataFrame(), "rule_stats_on": "none", "rule_stats_counts": {"snapshots": 0, "deals": 0}}


#: how many steps :func:`build_report` reports to its ``progress`` callback
REPORT_STEPS = 3


def build_report(model_dir: str | Path, history: Sequence[Mapping] | str | Path | None = None,
                 out: str | Path | None = None, lang: str = "en", *, rule_stats: str = "all",
                 progress: Callable[[str], None] | None = None) -> Path:
    """Write the model report of the artifact at ``model_dir`` as one self-contained HTML file.

    Parameters
    ----------
    model_dir : path
        A model artifact folder (loaded and verified with :func:`scoring.model.artifact.load_model`).
    history : path or sequence of records, optional
        The history holding the model's test deals, for the curves, histograms
        and rule statistics; None draws only from the artifact's stored
        held-out predictions (:func:`stored_report_data`), never from another history.
    out : path, optional
        The HTML file to write; default :func:`scoring.paths.default_report`.  It
        must not lie inside ``model_dir`` (an extra file there fails the
        artifact's verification).
    lang : "en" or "zh"
        Language of the headings and of the rule titles (from the pack).
    rule_stats : "all" or "test"
        Compute the per-rule fire and win rates on every kept snapshot of the
        history (default) or on the held-out part only.
    progress : callable, optional
        Called with the name of each step as it starts (:data:`REPORT_STEPS` of them), for a progress bar.

    Returns
    -------
    Path of the written file.

    Raises
    ------
    ModelError
        The artifact does not verify, the history is missing (or not given to
        an artifact that stores no held-out predictions), ``out`` lies inside the artifact, or ``lang`` / ``rule_stats`` is not one of its values.
    """
    step = progress or (lambda _name: None)
    words(lang)
    step("reading the model and its held-out deals")
    model = load_model(model_dir)
    model_id = model.manifest.get("model_id") or Path(model_dir).name
    target = Path(out) if out is not None else paths.default_report(model_id)
    if Path(model_dir).resolve() in target.resolve().parents:
        raise ModelError(f"{target}: write the report outside the model folder {model_dir} "
                         "(an extra file there breaks the artifact's verification)")
    if history is None:
        data, desc = stored_report_data(model, lang=lang), words(lang)["stored_held_out"]
    else:
        records, desc = _read_history(history, model, lang)
        data = report_data(model, records, model_split(model), rule_stats=rule_stats, lang=lang)
    step("drawing the figures")
    figs = draw_figures(data, lang)
    import matplotlib

    step("writing the page")
    drawn = f"{_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace('+00:00', 'Z')}, " \
            f"matplotlib {matplotlib.__version__}"
    page = render_html(data, figs, lang, history_desc=desc, drawn=drawn)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
