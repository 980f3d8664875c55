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
  held-out test deals (``split.json``) found in ``history``;
* the distribution of win probability and of rule score for won and lost deals;
* the coefficient table as points, sorted so the biggest disagreements with
  the expert points come first;
* per rule: how often it fires, the win rate when it fires and when it
  applies but does not, expert points beside learned points.

Everything the page shows is first computed as plain data by
:func:`report_data` (numbers, lists and DataFrames), then drawn.

Weighting: as in training, each deal weighs 1 (a snapshot weighs
``1 / snapshots of its deal``), for every rate, curve and histogram here.

Examples
--------
>>> from scoring.model.report import build_report                         # doctest: +SKIP
>>> build_report("models/20260101T000000Z-abcd1234", out="out/report.html")  # doctest: +SKIP
PosixPath('out/report.html')
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import os
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from scoring import paths
from scoring.model.artifact import load_model, read_split
from scoring.errors import ModelError
from scoring.model.logistic import Model, coef_to_points, sigmoid
from scoring.model.train import deal_counts, prepare_history, probability_metrics, reliability_table, rule_scores

LANGS = ("en", "zh")
#: on which snapshots the per-rule statistics are computed: every kept snapshot of the history, or the held-out part
RULE_STATS_ON = ("all", "test")
#: a rule firing in fewer distinct deals than this gets a "few deals" note: its win rate is noise
FEW_DEALS = 20
#: learned points smaller than this in size count as "no effect" when comparing signs
NEUTRAL_POINTS = 1.0
#: a rule whose win rate when fired is not at least this far from when not fired (in the direction of its
#: expert points) gets a "check the rule" note: it does not separate wins from losses
MIN_LIFT = 0.02

MODEL_COLOR = "#1f6fb4"
RULE_COLOR = "#e07b16"
WON_COLOR = "#2e9e4f"
LOST_COLOR = "#c0392b"

# --------------------------------------------------------------------------- words
_T: dict[str, dict[str, str]] = {
    "en": {
        "title": "Win-probability model report",
        "model": "Model",
        "pack": "Rule pack",
        "pack_fp": "Rule pack fingerprint",
        "data_fp": "Training data fingerprint",
        "created": "Created (UTC)",
        "params": "Parameters",
        "libraries": "Libraries (training)",
        "drawn_with": "Report drawn",
        "history": "History used for the curves",
        "counts": "Training data",
        "c_part": "Part", "c_snap": "Snapshots", "c_deals": "Deals", "c_won": "Won", "c_lost": "Lost",
        "c_closed": "Closed between",
        "input": "input", "kept": "kept after drops", "train": "training", "test": "test (held out)",
        "drops": "Dropped snapshots", "rejected": "rejected records", "none": "none",
        "drop_no_outcome": "no outcome", "drop_no_closed_at": "no closed_at", "drop_no_as_of": "no as_of",
        "drop_after_close": "taken on or after the close (leakage)", "drop_no_decision": "no decision (dropped)",
        "metrics": "Held-out metrics",
        "metrics_note": ("From the manifest: the {deals} newest deals by close date, never seen in training; "
                         "each deal weighs 1. Best value per row in bold."),
        "metric": "Metric", "better": "Better",
        "m_model": "Model", "m_base_rate": "Base rate (constant {p})", "m_rule_score": "Rule score alone (Platt)",
        "roc_auc": "ROC AUC", "log_loss": "Log loss", "brier": "Brier score", "ece": "ECE (10 equal-width bins)",
        "higher": "higher", "lower": "lower",
        "v_both": ("The model beats both baselines on held-out log loss: {m} against {b} for the base rate "
                   "and {r} for the rule score alone."),
        "v_base": ("The model beats the base rate ({b}) but not the rule score alone ({r}) on held-out log loss "
                   "({m}): the learned weights add nothing over the expert score; do not promote it on this evidence."),
        "v_rule": ("The model beats the rule score alone ({r}) but not the base rate ({b}) on held-out log loss "
                   "({m}): it is worse than predicting the average win rate; do not use it."),
        "v_neither": ("The model beats neither baseline on held-out log loss ({m} against {b} for the base rate "
                      "and {r} for the rule score alone): do not use it."),
        "v_unknown": "The manifest lacks a log loss of the model or of a baseline: no comparison can be made.",
        "curves": "Calibration and ROC on the held-out deals",
        "curves_note": ("Recomputed from {src}: {deals} held-out deals ({snap} snapshots, {won} won, {lost} lost), "
                        "each scoring with the model's own rule pack. Log loss here: model {m}, rule score {r} "
                        "(manifest: {mm}, {mr})."),
        "curves_fallback": ("None of the model's test deals is in this history: the curves use the {deals} deals "
                            "of the history the model did not train on instead."),
        "curves_none": "No held-out deals with both outcomes in this history: no curves drawn.",
        "dist": "Scores of won and lost deals (held out)",
        "dist_note": ("Each histogram shows, per outcome, the share of deals (each deal weighs 1) in each bin; "
                      "the further apart the two shapes, the better the score separates wins from losses."),
        "coef": "Learned weights against expert points",
        "coef_note": ("Learned points = coefficient × 20 / ln 2: +20 doubles the odds of winning, −20 halves them. "
                      "Expert points are on the rule score's 0–100 scale, so they are compared after rescaling by "
                      "k = {k} (the least-squares factor from expert to learned points over the rules with expert "
                      "points): gap = learned − k × expert. Largest gaps first; shaded rows are where the model weighs the rule the other way, "
                      "or gives it ~no weight, though the expert gives it points."),
        "coef_met": "Rule met (red flag raised): expert points beside learned points",
        "coef_unknown": "Rule status unknown: what not knowing costs",
        "coef_unknown_note": ("The expert score gives an unknown item 0 points (like a missing one); the model "
                              "learns its own weight for not knowing, relative to the item being missing. "
                              "Largest first."),
        "coef_other": "Other terms (no expert points)",
        "t_rule": "Rule", "t_title": "Title", "t_kind": "Kind", "t_evidence": "Evidence",
        "t_expert": "Expert points", "t_coef": "Coefficient (log-odds)", "t_learned": "Learned points",
        "t_gap": "Gap", "t_sign": "Signs",
        "sign_agree": "agree", "sign_opposite": "opposite", "sign_ignored": "~no weight", "sign_na": "–",
        "ev_met": "met / raised", "ev_unknown": "unknown", "ev_stage": "stage", "ev_intercept": "intercept",
        "rules": "Rules: how often they fire and what follows",
        "rules_note_all": ("On all {snap} snapshots of the history after the training drops ({deals} deals, "
                           "won and lost), not only the held-out part: more deals, steadier rates; "
                           "these are descriptive rates, not model metrics."),
        "rules_note_test": "On the {snap} held-out snapshots ({deals} deals) only.",
        "rules_note2": ("Fires = share of snapshots where the rule is met (a red flag: raised) at the deal's stage; "
                        "unknown = share where its status is unknown. Win rate when it does not fire is over the "
                        "snapshots where the rule applies at the deal's stage but is not met, so that early-stage "
                        "deals do not distort it. Each deal weighs 1. Notes point at rules to retune."),
        "r_fires": "Fires", "r_unknown": "Unknown", "r_deals": "Deals fired", "r_win_met": "Win rate: fires",
        "r_win_not": "Win rate: not", "r_learned_unk": "Learned points if unknown", "r_note": "Note",
        "n_never": "never fires", "n_few": "few deals: rates are noise",
        "n_pos_lower": "deals meeting it win no more than others: check the rule",
        "n_flag_higher": "deals raising it win no less than others: check the flag",
        "n_sign": "the model weighs it the other way",
        "n_zero": "the model gives it ~no weight",
        "k_checklist": "checklist", "k_milestone": "milestone", "k_red_flag": "red flag", "k_trigger": "trigger",
        "k_stage": "stage", "k_intercept": "intercept",
        "p_calib": "Reliability diagram", "p_roc": "ROC curve", "p_hist_p": "Win probability by outcome",
        "p_hist_s": "Rule score by outcome",
        "x_pred": "predicted win probability", "y_obs": "observed win rate", "diag": "perfect calibration",
        "x_fpr": "false positive rate", "y_tpr": "true positive rate", "chance": "chance",
        "x_prob": "win probability (model)", "x_score": "rule score (0–100)", "y_share": "share of deals",
        "l_model": "model", "l_rule": "rule score (Platt)", "l_won": "won", "l_lost": "lost",
        "size_note": "marker area ∝ deals in bin",
        "records_given": "{n} records given",
    },
    "zh": {
        "title": "赢单概率模型报告",
        "model": "模型",
        "pack": "规则包",
        "pack_fp": "规则包指纹",
        "data_fp": "训练数据指纹",
        "created": "创建时间（UTC）",
        "params": "参数",
        "libraries": "库版本（训练时）",
        "drawn_with": "报告生成",
        "history": "曲线所用的历史数据",
        "counts": "训练数据",
        "c_part": "部分", "c_snap": "快照", "c_deals": "项目", "c_won": "赢单", "c_lost": "丢单",
        "c_closed": "关闭日期范围",
        "input": "输入", "kept": "剔除后保留", "train": "训练集", "test": "测试集（留出）",
        "drops": "剔除的快照", "rejected": "被拒记录", "none": "无",
        "drop_no_outcome": "无结果", "drop_no_closed_at": "无关闭日期", "drop_no_as_of": "无快照日期",
        "drop_after_close": "快照在关闭当天或之后（信息泄漏）", "drop_no_decision": "无决策（剔除）",
        "metrics": "留出集指标",
        "metrics_note": "来自清单文件：按关闭日期最新的 {deals} 个项目，训练时从未见过；每个项目权重为 1。每行最优值加粗。",
        "metric": "指标", "better": "越…越好",
        "m_model": "模型", "m_base_rate": "基准赢单率（常数 {p}）", "m_rule_score": "仅规则得分（Platt 映射）",
        "roc_auc": "ROC AUC", "log_loss": "对数损失", "brier": "Brier 分数", "ece": "ECE（10 个等宽分箱）",
        "higher": "高", "lower": "低",
        "v_both": "模型在留出集对数损失上优于两个基准：模型 {m}，基准赢单率 {b}，仅规则得分 {r}。",
        "v_base": "模型在留出集对数损失上优于基准赢单率（{b}），但不优于仅规则得分（{r}）（模型 {m}）：学到的权重没有超过专家得分，不应据此上线。",
        "v_rule": "模型在留出集对数损失上优于仅规则得分（{r}），但不优于基准赢单率（{b}）（模型 {m}）：还不如直接用平均赢单率，不应使用。",
        "v_neither": "模型在留出集对数损失上两个基准都不如（模型 {m}，基准赢单率 {b}，仅规则得分 {r}），不应使用。",
        "v_unknown": "清单文件缺少模型或基准的对数损失，无法比较。",
        "curves": "留出项目上的校准曲线与 ROC 曲线",
        "curves_note": "基于 {src} 重新计算：{deals} 个留出项目（{snap} 个快照，赢单 {won}，丢单 {lost}），各模型使用自身的规则包打分。此处对数损失：模型 {m}，规则得分 {r}（清单文件：{mm}，{mr}）。",
        "curves_fallback": "该历史数据中没有模型的测试项目：曲线改用该历史中模型未训练过的 {deals} 个项目。",
        "curves_none": "该历史数据中没有同时含赢单和丢单的留出项目，未绘制曲线。",
        "dist": "赢单与丢单项目的得分分布（留出集）",
        "dist_note": "每个直方图按结果显示各分箱中项目的占比（每个项目权重为 1）；两种形状分得越开，得分越能区分赢单与丢单。",
        "coef": "学到的权重与专家分值对比",
        "coef_note": "学习分值 = 系数 × 20 / ln 2：+20 表示赢单几率翻倍，−20 表示减半。专家分值是规则得分（0–100）的尺度，比较前乘以 k = {k}（专家分值到学习分值的最小二乘系数）：差距 = 学习分值 − k × 专家分值。按差距从大到小排序；底色标出的行是专家给分、但模型给出相反方向或几乎为零权重的规则。",
        "coef_met": "规则满足（红旗触发）：专家分值与学习分值",
        "coef_unknown": "规则状态未知：不知道的代价",
        "coef_unknown_note": "专家得分对未知项记 0 分（与未满足相同）；模型为“不知道”学习自己的权重（相对于未满足）。按大小排序。",
        "coef_other": "其他项（无专家分值）",
        "t_rule": "规则", "t_title": "标题", "t_kind": "类型", "t_evidence": "证据",
        "t_expert": "专家分值", "t_coef": "系数（对数几率）", "t_learned": "学习分值",
        "t_gap": "差距", "t_sign": "符号",
        "sign_agree": "一致", "sign_opposite": "相反", "sign_ignored": "几乎无权重", "sign_na": "–",
        "ev_met": "满足 / 触发", "ev_unknown": "未知", "ev_stage": "阶段", "ev_intercept": "截距",
        "rules": "规则：触发频率与结果",
        "rules_note_all": "基于训练剔除后历史数据的全部 {snap} 个快照（{deals} 个项目），不仅是留出部分：项目更多，比率更稳定；这些是描述性比率，不是模型指标。",
        "rules_note_test": "仅基于 {snap} 个留出快照（{deals} 个项目）。",
        "rules_note2": "触发率 = 在项目所处阶段规则满足（红旗：被触发）的快照占比；未知 = 状态未知的占比。未触发时的赢单率只统计规则在该阶段适用但未满足的快照，以免早期阶段项目造成偏差。每个项目权重为 1。备注提示需要调整的规则。",
        "r_fires": "触发率", "r_unknown": "未知", "r_deals": "触发项目数", "r_win_met": "触发时赢单率",
        "r_win_not": "未触发时赢单率", "r_learned_unk": "未知时学习分值", "r_note": "备注",
        "n_never": "从未触发", "n_few": "项目太少：比率不可靠",
        "n_pos_lower": "满足它的项目并不比其他项目赢得多：请检查规则",
        "n_flag_higher": "触发它的项目并不比其他项目赢得少：请检查红旗",
        "n_sign": "模型给出相反方向的权重",
        "n_zero": "模型几乎不给权重",
        "k_checklist": "检查项", "k_milestone": "里程碑", "k_red_flag": "红旗", "k_trigger": "触发器",
        "k_stage": "阶段", "k_intercept": "截距",
        "p_calib": "校准曲线", "p_roc": "ROC 曲线", "p_hist_p": "按结果的赢单概率", "p_hist_s": "按结果的规则得分",
        "x_pred": "预测赢单概率", "y_obs": "实际赢单率", "diag": "完美校准",
        "x_fpr": "假阳性率", "y_tpr": "真阳性率", "chance": "随机",
        "x_prob": "赢单概率（模型）", "x_score": "规则得分（0–100）", "y_share": "项目占比",
        "l_model": "模型", "l_rule": "规则得分（Platt）", "l_won": "赢单", "l_lost": "丢单",
        "size_note": "点的面积 ∝ 分箱中的项目数",
        "records_given": "传入的 {n} 条记录",
    },
}
_METRICS = (("roc_auc", "higher"), ("log_loss", "lower"), ("brier", "lower"), ("ece", "lower"))
_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
              "SimHei", "Microsoft YaHei", "PingFang SC", "AR PL UMing CN", "Droid Sans Fallback")


def _words(lang: str) -> dict[str, str]:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}, not {lang!r}")
    return _T[lang]


def _num(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _pct(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


# --------------------------------------------------------------------------- the verdict
def baseline_verdict(metrics: Mapping[str, Any]) -> str:
    """Which baselines the model beats on held-out log loss (strictly lower).

    Returns ``"both"``, ``"base_rate"`` (only that one), ``"rule_score"``
    (only that one), ``"neither"``, or ``"unknown"`` when a log loss is missing.

    >>> baseline_verdict({"model": {"log_loss": 0.4}, "base_rate": {"log_loss": 0.5},
    ...                   "rule_score": {"log_loss": 0.45}})
    'both'
    """
    try:
        m = float(metrics["model"]["log_loss"])
        b = float(metrics["base_rate"]["log_loss"])
        r = float(metrics["rule_score"]["log_loss"])
    except (KeyError, TypeError, ValueError):
        return "unknown"
    if any(math.isnan(v) for v in (m, b, r)):
        return "unknown"
    beats_b, beats_r = m < b, m < r
    return "both" if beats_b and beats_r else "base_rate" if beats_b else "rule_score" if beats_r else "neither"


def verdict_sentence(metrics: Mapping[str, Any], lang: str = "en") -> str:
    """The report's sentence on whether the model beats both baselines on held-out log loss."""
    w = _words(lang)
    v = baseline_verdict(metrics)
    if v == "unknown":
        return w["v_unknown"]
    return w[{"both": "v_both", "base_rate": "v_base", "rule_score": "v_rule", "neither": "v_neither"}[v]].format(
        m=_num(metrics["model"]["log_loss"], 4), b=_num(metrics["base_rate"]["log_loss"], 4),
        r=_num(metrics["rule_score"]["log_loss"], 4))


# --------------------------------------------------------------------------- plain data
def _display_path(p: Path) -> str:
    """The path relative to the project root when it lies inside it (no machine paths in reports)."""
    try:
        return Path(p).resolve().relative_to(paths.project_root().resolve()).as_posix()
    except ValueError:
        return str(p)


def _read_history(history, model: Model, lang: str = "en") -> tuple[list[dict], str]:
    from scoring.contract.reader import read_records

    if history is None:
        history = paths.sample_history()
        if not Path(history).exists():
            raise ModelError(f"no history given for the report's curves, and the bundled sample {history} "
                             "does not exist: pass history=")
    if isinstance(history, (str, Path)):
        p = Path(history)
        if not p.exists():
            raise ModelError(f"history {p} not found: pass the history the model was trained on")
        return read_records(p, model.pack.schema, history=True).records, _display_path(p)
    recs = list(history)
    return recs, _words(lang)["records_given"].format(n=len(recs))


def _weighted_rate(y, w, mask) -> float:
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
    learned = dict(zip(model.feature_names, coef_to_points(model.coef)))
    apply_all = not getattr(model.evidence, "applicable_only", True)
    W = float(w.sum())
    rows = []
    for j, r in enumerate(pack.rules):
        applies = np.ones(len(stages), bool) if apply_all else np.array([r.applies_at(s) for s in stages], bool)
        met = (status[:, j] == 1) & applies
        unk = (status[:, j] == 2) & applies
        not_met = applies & ~met
        lp = float(learned[r.id])
        lpu = float(learned.get(r.id + "__unknown", float("nan")))
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
        raise ValueError(f"rule_stats must be one of {', '.join(RULE_STATS_ON)}, not {rule_stats!r}")
    _words(lang)
    manifest = model.manifest
    if split is None:
        split = read_split(model.path) if model.path else {"train": [], "test": []}
    training = manifest.get("training", {}) or {}
    nd = (training.get("params") or {}).get("no_decision_as", "lost")
    h = prepare_history(records, model.pack, no_decision_as=nd)
    status, stages = model.evidence.statuses(h.records)
    X = model.evidence.transform_statuses(status, stages)
    p_model = model.lr.predict_proba(X)[:, 1] if len(X) else np.zeros(0)
    score = rule_scores(model.pack, status, stages) if len(X) else np.zeros(0)
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
            "coefficients": coefficient_points(model, lang), "rules": rules,
            "rule_stats_on": rule_stats, "rule_stats_counts": {"snapshots": int(on.sum()),
                                                                "deals": int(len(set(h.deal[on])))}}


# --------------------------------------------------------------------------- drawing
def _plot_words(lang: str) -> tuple[dict[str, str], str | None]:
    """The words for the plots, and the CJK font family to use (None: default font).

    Chinese plot labels need a CJK font; without one, the plots fall back to
    English labels rather than draw empty boxes (the page itself stays Chinese).
    """
    if lang != "zh":
        return _T["en"], None
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    for name in _CJK_FONTS:
        if name in have:
            return _T["zh"], name
    return _T["en"], None


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def draw_figures(data: Mapping[str, Any], lang: str = "en") -> dict[str, str]:
    """The report's plots as base64 PNG strings: ``calibration``, ``roc``,
    ``hist_probability``, ``hist_score`` (empty dict when there is no held-out
    part).  Imports matplotlib (Agg backend) here, and only here."""
    ho = data.get("held_out")
    if ho is None:
        return {}
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    w, font = _plot_words(lang)
    rc = {"font.size": 10, "axes.titlesize": 11, "legend.fontsize": 9}
    if font:
        rc["font.family"] = [font, "DejaVu Sans"]
    out: dict[str, str] = {}
    with matplotlib.rc_context(rc):
        # reliability diagram
        fig = Figure(figsize=(5.6, 4.6))
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], ls="--", color="#888", lw=1, label=w["diag"])
        curves = [("model", w["l_model"], MODEL_COLOR, "o")]
        if ho["reliability"]["rule_score"] is not None:
            curves.append(("rule_score", w["l_rule"], RULE_COLOR, "s"))
        total = float(np.sum(ho["w"]))
        for key, label, color, marker in curves:
            rows = [r for r in ho["reliability"][key] if r["weight"] > 0]
            xs = [r["mean_predicted"] for r in rows]
            ys = [r["observed_rate"] for r in rows]
            sizes = [12 + 400 * r["weight"] / total for r in rows]
            ax.plot(xs, ys, color=color, lw=1.5, label=label)
            ax.scatter(xs, ys, s=sizes, color=color, marker=marker, alpha=0.75, edgecolor="white", zorder=3)
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.04), xlabel=w["x_pred"], ylabel=w["y_obs"], title=w["p_calib"])
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", title=w["size_note"], title_fontsize=8, frameon=True)
        fig.tight_layout()
        out["calibration"] = _png(fig)

        # ROC
        fig = Figure(figsize=(5.6, 4.6))
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], ls="--", color="#888", lw=1, label=w["chance"])
        rocs = [(ho["p_model"], w["l_model"], MODEL_COLOR, ho["metrics"]["model"]["roc_auc"])]
        if ho["p_rule"] is not None:
            rocs.append((ho["p_rule"], w["l_rule"], RULE_COLOR, ho["metrics"]["rule_score"]["roc_auc"]))
        for p, label, color, auc in rocs:
            fpr, tpr, _ = roc_curve(ho["y"], p, sample_weight=ho["w"])
            ax.plot(fpr, tpr, color=color, lw=1.8, label=f"{label} (AUC {_num(auc)})")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02), xlabel=w["x_fpr"], ylabel=w["y_tpr"], title=w["p_roc"])
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        out["roc"] = _png(fig)

        # score distributions by outcome
        won = ho["y"] == 1
        for key, values, bins, xlabel, title in (
                ("hist_probability", ho["p_model"], np.linspace(0, 1, 21), w["x_prob"], w["p_hist_p"]),
                ("hist_score", ho["score"], np.linspace(0, 100, 21), w["x_score"], w["p_hist_s"])):
            fig = Figure(figsize=(5.6, 3.6))
            ax = fig.add_subplot()
            width = (bins[1] - bins[0]) / 2
            for i, (mask, label, color) in enumerate(((~won, w["l_lost"], LOST_COLOR), (won, w["l_won"], WON_COLOR))):
                wt = ho["w"][mask]
                if wt.sum() > 0:  # bars side by side in each bin: lost on the left, won on the right
                    share, _ = np.histogram(np.clip(values[mask], bins[0], bins[-1]), bins=bins, weights=wt / wt.sum())
                    ax.bar(bins[:-1] + i * width, share, width=width, align="edge", color=color, alpha=0.85,
                           label=f"{label} ({int(round(wt.sum()))})", edgecolor="white", linewidth=0.4)
            ax.set(xlim=(bins[0], bins[-1]), xlabel=xlabel, ylabel=w["y_share"], title=title)
            ax.grid(alpha=0.3, axis="y")
            ax.legend(loc="upper right")
            fig.tight_layout()
            out[key] = _png(fig)
    return out


# --------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;
 color:#1d2329;background:#f4f6f8;margin:0;line-height:1.45;font-size:14px}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;padding-bottom:4px;border-bottom:2px solid #e3e8ee}
h3{font-size:15px;margin:18px 0 6px}
p.note{color:#55606b;font-size:13px;margin:4px 0 10px}
.sub{color:#55606b;margin:0 0 14px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border-bottom:1px solid #e3e8ee;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f6;font-weight:600;font-size:12px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.n,td.nw{white-space:nowrap}
table.wide{width:100%}
td.t{min-width:240px}
td.notes{min-width:150px}
table.kv th{background:none;color:#55606b;font-weight:normal;white-space:nowrap;width:230px}
table.kv td{word-break:break-all}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.verdict{padding:10px 14px;border-radius:6px;margin:10px 0;font-weight:600}
.verdict.good{background:#e6f4ea;border-left:5px solid #2e9e4f}
.verdict.bad{background:#fdecea;border-left:5px solid #c0392b}
.verdict.unknown{background:#f0f3f6;border-left:5px solid #888}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px 16px}
.grid img{width:100%;height:auto;border:1px solid #e3e8ee;border-radius:4px}
tr.disagree td{background:#fff3e0}
td.pos{color:#1e7a3c}td.neg{color:#b03a2e}
.warn{color:#b03a2e}.muted{color:#8a949e}
.tag{display:inline-block;padding:0 6px;margin:1px 0;border-radius:8px;background:#eef1f4;font-size:12px}
tr.muted .tag{color:#8a949e}
"""


def _e(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _td(value, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(value)}</td>' if cls else f"<td>{_e(value)}</td>"


def _signed(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{0.0:.{digits}f}" if round(x, digits) == 0 else f"{x:+.{digits}f}"


def _sign_cls(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)) or round(x, digits) == 0:
        return "n"
    return "n pos" if x > 0 else "n neg"


def _header_html(manifest: Mapping[str, Any], w: dict[str, str], history_desc: str, drawn: str) -> str:
    pack = manifest.get("rule_pack", {}) or {}
    training = manifest.get("training", {}) or {}
    params = training.get("params", {}) or {}
    libs = manifest.get("libraries", {}) or {}
    p_txt = ", ".join(f"{k}={v}" for k, v in params.items() if k in ("C", "seed", "test_fraction", "no_decision_as",
                                                                    "min_per_class", "applicable_only"))
    kv = [(w["model"], manifest.get("model_id")), (w["pack"], pack.get("version_tag")),
          (w["pack_fp"], pack.get("fingerprint")), (w["data_fp"], training.get("data_fingerprint")),
          (w["created"], manifest.get("created_at")), (w["params"], p_txt),
          (w["libraries"], ", ".join(f"{k} {v}" for k, v in libs.items())),
          (w["history"], history_desc), (w["drawn_with"], drawn)]
    rows = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>" for k, v in kv)
    out = [f'<table class="kv">{rows}</table>']

    counts = training.get("counts", {}) or {}
    crow = []
    for key in ("input", "kept", "train", "test"):
        c = counts.get(key)
        if not c:
            continue
        closed = counts.get(f"{key}_closed")
        crow.append("<tr>" + _td(w[key]) + _td(c.get("snapshots", "–"), "n") + _td(c.get("deals", "–"), "n")
                    + _td(c.get("won", "–"), "n") + _td(c.get("lost", "–"), "n")
                    + _td(" – ".join(closed) if closed else "") + "</tr>")
    if crow:
        out.append(f"<h3>{_e(w['counts'])}</h3><table><tr><th>{_e(w['c_part'])}</th>"
                   + "".join(f'<th class="n">{_e(w[k])}</th>' for k in ("c_snap", "c_deals", "c_won", "c_lost"))
                   + f"<th>{_e(w['c_closed'])}</th></tr>" + "".join(crow) + "</table>")
    drops = counts.get("drops") or {}
    parts = [f"{w.get('drop_' + k, k)} {v}" for k, v in drops.items() if v]
    rejected = (counts.get("input") or {}).get("rejected")
    if rejected:
        parts.append(f"{w['rejected']} {rejected}")
    out.append(f'<p class="note">{_e(w["drops"])}: {_e("; ".join(parts) if parts else w["none"])}</p>')
    return "".join(out)


def _metrics_html(manifest: Mapping[str, Any], w: dict[str, str], lang: str) -> str:
    metrics = manifest.get("metrics", {}) or {}
    test = ((manifest.get("training") or {}).get("counts") or {}).get("test") or {}
    cols = [("model", w["m_model"]),
            ("base_rate", w["m_base_rate"].format(p=_num((metrics.get("base_rate") or {}).get("p")))),
            ("rule_score", w["m_rule_score"])]
    head = (f"<tr><th>{_e(w['metric'])}</th>" + "".join(f'<th class="n">{_e(label)}</th>' for _, label in cols)
            + f"<th>{_e(w['better'])}</th></tr>")
    body = []
    for key, better in _METRICS:
        vals = [(metrics.get(c) or {}).get(key) for c, _ in cols]
        known = [v for v in vals if v is not None]
        best = (max(known) if better == "higher" else min(known)) if known else None
        cells = "".join(
            f'<td class="n">{"<b>" if v is not None and v == best else ""}{_e(_num(v, 4))}'
            f'{"</b>" if v is not None and v == best else ""}</td>' for v in vals)
        body.append(f"<tr><td>{_e(w[key])}</td>{cells}<td>{_e(w[better])}</td></tr>")
    verdict = baseline_verdict(metrics)
    cls = "good" if verdict == "both" else "unknown" if verdict == "unknown" else "bad"
    return (f'<p class="note">{_e(w["metrics_note"].format(deals=test.get("deals", "?")))}</p>'
            f'<table id="metrics">{head}{"".join(body)}</table>'
            f'<p class="verdict {cls}" id="verdict" data-beats="{_e(verdict)}">{_e(verdict_sentence(metrics, lang))}</p>')


def _img(b64: str | None, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">' if b64 else ""


def _curves_html(data: Mapping[str, Any], figs: Mapping[str, str], w: dict[str, str], history_desc: str) -> str:
    ho = data["held_out"]
    if ho is None:
        return f'<p class="note warn">{_e(w["curves_none"])}</p>'
    mm = (data["manifest"].get("metrics") or {})
    out = []
    if ho["fallback"]:
        out.append(f'<p class="note warn">{_e(w["curves_fallback"].format(deals=ho["deals"]))}</p>')
    rs = ho["metrics"]["rule_score"] or {}
    out.append('<p class="note">' + _e(w["curves_note"].format(
        src=history_desc, deals=ho["deals"], snap=ho["snapshots"], won=ho["won"], lost=ho["lost"],
        m=_num(ho["metrics"]["model"]["log_loss"], 4), r=_num(rs.get("log_loss"), 4),
        mm=_num((mm.get("model") or {}).get("log_loss"), 4), mr=_num((mm.get("rule_score") or {}).get("log_loss"), 4)))
        + "</p>")
    out.append(f'<div class="grid">{_img(figs.get("calibration"), w["p_calib"])}{_img(figs.get("roc"), w["p_roc"])}</div>')
    return "".join(out)


def _dist_html(data, figs, w) -> str:
    if data["held_out"] is None:
        return f'<p class="note warn">{_e(w["curves_none"])}</p>'
    return (f'<p class="note">{_e(w["dist_note"])}</p><div class="grid">{_img(figs.get("hist_probability"), w["p_hist_p"])}'
            f'{_img(figs.get("hist_score"), w["p_hist_s"])}</div>')


def _kind(w, kind) -> str:
    return w.get(f"k_{kind}", kind)


def _coef_html(data, w) -> str:
    c = data["coefficients"]
    signs = {"agree": w["sign_agree"], "opposite": w["sign_opposite"], "ignored": w["sign_ignored"],
             "na": w["sign_na"]}
    rows = []
    for r in c["met"].itertuples(index=False):
        bad = r.sign in ("opposite", "ignored")
        rows.append(f'<tr class="{"disagree" if bad else ""}">' + _td(r.rule) + _td(r.title, "t")
                    + _td(_kind(w, r.kind)) + _td(_signed(r.expert_points, 0), _sign_cls(r.expert_points))
                    + _td(_signed(r.coefficient, 3), _sign_cls(r.coefficient, 3))
                    + _td(_signed(r.learned_points), _sign_cls(r.learned_points))
                    + _td(_signed(r.gap), "n") + _td(signs[r.sign], "warn nw" if bad else "nw") + "</tr>")
    head = ("<tr>" + "".join(f"<th>{_e(w[k])}</th>" for k in ("t_rule", "t_title", "t_kind"))
            + "".join(f'<th class="n">{_e(w[k])}</th>' for k in ("t_expert", "t_coef", "t_learned", "t_gap"))
            + f"<th>{_e(w['t_sign'])}</th></tr>")
    urows = []
    for r in c["unknown"].itertuples(index=False):
        urows.append("<tr>" + _td(r.rule) + _td(r.rule_title, "t") + _td(_kind(w, r.kind))
                     + _td(_signed(r.coefficient, 3), _sign_cls(r.coefficient, 3))
                     + _td(_signed(r.learned_points), _sign_cls(r.learned_points)) + "</tr>")
    uhead = ("<tr>" + "".join(f"<th>{_e(w[k])}</th>" for k in ("t_rule", "t_title", "t_kind"))
             + "".join(f'<th class="n">{_e(w[k])}</th>' for k in ("t_coef", "t_learned")) + "</tr>")
    other = []
    for r in c["other"].itertuples(index=False):
        other.append("<tr>" + _td(r.feature) + _td(r.title) + _td(_signed(r.coefficient, 3), _sign_cls(r.coefficient, 3))
                     + _td(_signed(r.learned_points), _sign_cls(r.learned_points)) + "</tr>")
    ohead = (f"<tr><th>{_e(w['t_evidence'])}</th><th>{_e(w['t_title'])}</th>"
             f'<th class="n">{_e(w["t_coef"])}</th><th class="n">{_e(w["t_learned"])}</th></tr>')
    return (f'<p class="note">{_e(w["coef_note"].format(k=_num(c["k"], 2)))}</p>'
            f'<h3>{_e(w["coef_met"])}</h3><table id="coefficients" class="wide">{head}{"".join(rows)}</table>'
            f'<h3>{_e(w["coef_unknown"])}</h3><p class="note">{_e(w["coef_unknown_note"])}</p>'
            f'<table id="unknown-weights" class="wide">{uhead}{"".join(urows)}</table>'
            f'<h3>{_e(w["coef_other"])}</h3><table id="other-terms">{ohead}{"".join(other)}</table>')


def _rules_html(data, w) -> str:
    c = data["rule_stats_counts"]
    key = "rules_note_all" if data["rule_stats_on"] == "all" else "rules_note_test"
    head = ("<tr>" + "".join(f"<th>{_e(w[k])}</th>" for k in ("t_rule", "t_title", "t_kind"))
            + "".join(f'<th class="n">{_e(w[k])}</th>' for k in (
                "r_fires", "r_unknown", "r_deals", "r_win_met", "r_win_not", "t_expert", "t_learned", "r_learned_unk"))
            + f"<th>{_e(w['r_note'])}</th></tr>")
    rows = []
    for r in data["rules"].itertuples(index=False):
        muted = bool({"never", "few"} & set(r.notes))
        notes = "".join(f'<span class="tag">{_e(w["n_" + n])}</span> ' for n in r.notes)
        win_cls = "n"
        if not muted and not math.isnan(r.win_rate_fired) and not math.isnan(r.win_rate_not_fired):
            win_cls = "n pos" if r.win_rate_fired > r.win_rate_not_fired else "n neg"
        rows.append(f'<tr class="{"muted" if muted else ""}">' + _td(r.rule) + _td(r.title, "t") + _td(_kind(w, r.kind))
                    + _td(_pct(r.fire_rate), "n") + _td(_pct(r.unknown_rate), "n") + _td(r.deals_fired, "n")
                    + _td(_pct(r.win_rate_fired), win_cls) + _td(_pct(r.win_rate_not_fired), "n")
                    + _td(_signed(r.expert_points, 0), _sign_cls(r.expert_points))
                    + _td(_signed(r.learned_points), _sign_cls(r.learned_points))
                    + _td(_signed(r.learned_points_unknown), _sign_cls(r.learned_points_unknown))
                    + f'<td class="notes">{notes}</td></tr>')
    return (f'<p class="note"><b>{_e(w[key].format(snap=c["snapshots"], deals=c["deals"]))}</b></p>'
            f'<p class="note">{_e(w["rules_note2"])}</p><table id="rules" class="wide">{head}{"".join(rows)}</table>')


def render_html(data: Mapping[str, Any], figs: Mapping[str, str], lang: str = "en", history_desc: str = "",
                drawn: str = "") -> str:
    """The report page (a string) from :func:`report_data` and :func:`draw_figures`."""
    w = _words(lang)
    manifest = data["manifest"]
    title = f"{w['title']} — {manifest.get('model_id', '')}"
    sections = [
        f"<h1>{_e(w['title'])}</h1>",
        f'<p class="sub">{_e(w["model"])} <code>{_e(manifest.get("model_id"))}</code> · {_e(w["pack"])} '
        f'<code>{_e((manifest.get("rule_pack") or {}).get("version_tag"))}</code></p>',
        _header_html(manifest, w, history_desc, drawn),
        f"<h2>{_e(w['metrics'])}</h2>", _metrics_html(manifest, w, lang),
        f"<h2>{_e(w['curves'])}</h2>", _curves_html(data, figs, w, history_desc),
        f"<h2>{_e(w['dist'])}</h2>", _dist_html(data, figs, w),
        f"<h2>{_e(w['coef'])}</h2>", _coef_html(data, w),
        f"<h2>{_e(w['rules'])}</h2>", _rules_html(data, w),
    ]
    return (f'<!DOCTYPE html>\n<html lang="{_e(lang)}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{''.join(sections)}</main></body></html>\n")


def default_report_path(model_id: str) -> Path:
    """``<project>/out/report-<model id>.html`` (never inside the artifact: an
    extra file there would make it fail its checksum verification)."""
    return paths.project_root() / "out" / f"report-{model_id}.html"


def build_report(model_dir, history=None, out=None, lang: str = "en", *, rule_stats: str = "all") -> Path:
    """Write the model report of the artifact at ``model_dir`` as one self-contained HTML file.

    Parameters
    ----------
    model_dir : path
        A model artifact folder (loaded and verified with :func:`scoring.model.artifact.load_model`).
    history : path or sequence of records, optional
        The history holding the model's test deals, for the curves, histograms
        and rule statistics; default the bundled ``datasets/sample/history.jsonl``.
    out : path, optional
        The HTML file to write; default :func:`default_report_path`.  It must
        not lie inside ``model_dir``.
    lang : "en" or "zh"
        Language of the headings and of the rule titles (from the pack).
    rule_stats : "all" or "test"
        Compute the per-rule fire and win rates on every kept snapshot of the
        history (default) or on the held-out part only.

    Returns
    -------
    Path of the written file.
    """
    _words(lang)
    model = load_model(model_dir)
    model_id = model.manifest.get("model_id") or Path(model_dir).name
    target = Path(out) if out is not None else default_report_path(model_id)
    if Path(model_dir).resolve() in target.resolve().parents:
        raise ModelError(f"{target}: write the report outside the model folder {model_dir} "
                         "(an extra file there breaks the artifact's verification)")
    records, desc = _read_history(history, model, lang)
    data = report_data(model, records, read_split(model_dir), rule_stats=rule_stats, lang=lang)
    figs = draw_figures(data, lang)
    import matplotlib

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
