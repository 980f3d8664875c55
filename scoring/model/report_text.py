"""The report's words in both languages, and how it writes numbers.

:data:`WORDS` holds every text of the page and its plots, keyed by language
(``en``, ``zh``); rule titles come from the pack itself.  Numbers are written
by the small functions below, used by the page template as filters and by the
plots' legends.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from scoring.errors import ModelError
from scoring.model.metrics import baseline_verdict

LANGS = ("en", "zh")

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Win-probability model report",
        "points": "The scorecard: points per rule status, stage and bin",
        "points_note": ("A deal's log-odds of winning is the intercept plus the points of every row that applies to "
                        "it: each rule met (a red flag: raised) or unknown at the deal's stage (missing earns 0), "
                        "its stage, and the bin each measure falls in (the lowest bin earns 0; unknown is a bin "
                        "of its own). A row with a stage adds its points at that stage only, on top of the rule's "
                        "global points. Points: +20 double the odds of winning, −20 halve them (log-odds × 20 / ln 2). "
                        "Rows whose points are 0 are left out: {hidden} of them."),
        "points_signs": ("Signs: checklist items and milestones should earn points, red flags lose them, measures "
                         "move in their declared direction; triggers and facts are neutral. This model was trained "
                         "with {mode} signs."),
        "signs_constrained": "constrained", "signs_free": "free",
        "t_stage": "Stage", "t_bin": "Bin", "t_points": "Points", "t_logodds": "Log-odds", "t_check": "Sign check",
        "check_agrees": "agrees", "check_zero": "held at 0", "check_contradicts": "AGAINST the rule",
        "check_neutral": "",
        "all_stages": "all", "ev_bin": "bin", "k_measure": "measure", "k_derived": "derived fact", "k_fact": "fact",
        "metric_help": "What the metrics mean",
        "help_roc_auc": ("ROC AUC: take one won and one lost deal at random; this is how often the model gives the won "
                         "deal the higher probability (0.5 is a coin toss, 1.0 never wrong). It says how well the "
                         "model ranks deals, not whether its percentages are right."),
        "help_log_loss": ("Log loss: the average penalty for each deal's probability against what happened, harsh "
                          "on confident mistakes (saying 90% for a deal that is lost costs a lot). Lower is better; "
                          "it is the figure the model is chosen and judged by."),
        "help_brier": ("Brier score: the average squared gap between the probability and the outcome (1 won, 0 "
                       "lost). Lower is better; always saying 50% scores 0.25."),
        "help_ece": ("Calibration error (ECE): of the deals the model puts at about 30%, about 30% should be won; this "
                     "is the average gap between the probability said and the win rate seen, over ten bands of "
                     "probability. 0.03 means the percentages are off by about 3 points."),
        "m_challenger": "Challenger (gradient boosting)",
        "challenger": "The scorecard against a black-box challenger",
        "challenger_note": ("The challenger ({model}; {iters} boosting rounds, {cols} input columns) is fitted on the "
                            "same training deals, with the evidence plus every raw field of the records flattened "
                            "(counts of contacts by role and stance, partner attitudes, amounts, dates...). It is "
                            "never published: it shows how much a model could find beyond the rules."),
        "ch_diff": ("Held-out log loss, scorecard minus challenger: {d} (95% interval {lo} .. {hi}, paired bootstrap "
                    "over {deals} held-out deals)."),
        "ch_better": "The challenger is better by more than noise: the raw fields below carry signal the rules miss.",
        "ch_worse": "The scorecard is better by more than noise.",
        "ch_same": "No difference beyond noise: the rules capture what the raw fields carry.",
        "raw": "Raw fields that carry signal",
        "raw_note": ("Permutation importance on the held-out deals: how much the challenger's log loss rises when "
                     "one raw field is shuffled across deals ({repeats} shuffles; a field has signal when the rise "
                     "is above {min} and twice its spread). Fields with signal that no rule reads are where a new "
                     "rule could help."),
        "raw_unread": "Fields with signal that no rule reads: {names}.",
        "raw_none": "No raw field with signal is left unread by the rules.",
        "t_field": "Raw field", "t_rise": "Log-loss rise", "t_sd": "Spread", "t_signal": "Signal", "t_read": "Read by a rule",
        "yes": "yes", "no": "no",
        "signs": "Sign sanity",
        "signs_note": ("Held-out log loss with signs constrained {c}, free {f} (constrained minus free {d}, 95% "
                       "interval {lo} .. {hi})."),
        "signs_bad": ("Where the free fit goes against the declared direction; with constrained signs these are held "
                      "at 0. Often another term carries the same evidence (a count beside the rule built on it); "
                      "where none does, the data disagrees with the rule: check it. A bin shows its step from the "
                      "bin below:"),
        "signs_bad_free": "Published weights that go against the declared direction (check these rules):",
        "signs_ok": "No learned weight goes against its declared direction.",

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
        "challenger_skipped": "No challenger was fitted ({why}).",
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
        "stored_held_out": "the held-out predictions stored in the model artifact",
        "rules_note_none": ("Not computed: the report was drawn from the artifact's stored held-out predictions "
                            "only; give the history (--history) for the per-rule rates."),
    },
    "zh": {
        "title": "赢单概率模型报告",
        "points": "评分卡：各规则状态、阶段和分箱的分值",
        "points_note": "项目赢单的对数几率 = 截距 + 适用于它的各行分值之和：在项目所处阶段满足（红旗：触发）或未知的每条规则（未满足记 0）、所处阶段、各度量所落入的分箱（最低分箱记 0；未知单独成箱）。带阶段的行只在该阶段加分，叠加在规则的全局分值之上。分值：+20 表示赢单几率翻倍，−20 表示减半（对数几率 × 20 / ln 2）。分值为 0 的行未列出：共 {hidden} 行。",
        "points_signs": "符号：检查项和里程碑应加分，红旗应减分，度量按声明方向变化；触发器和事实为中性。本模型训练时符号为{mode}。",
        "signs_constrained": "约束", "signs_free": "自由",
        "t_stage": "阶段", "t_bin": "分箱", "t_points": "分值", "t_logodds": "对数几率", "t_check": "符号检查",
        "check_agrees": "一致", "check_zero": "固定为 0", "check_contradicts": "与规则相反",
        "check_neutral": "",
        "all_stages": "全部", "ev_bin": "分箱", "k_measure": "度量", "k_derived": "派生事实", "k_fact": "事实",
        "metric_help": "指标的含义",
        "help_roc_auc": "ROC AUC：随机取一个赢单项目和一个丢单项目，模型给赢单项目更高概率的比例（0.5 相当于掷硬币，1.0 从不出错）。它衡量排序能力，而不是百分比是否准确。",
        "help_log_loss": "对数损失：每个项目的概率相对实际结果的平均惩罚，对自信的错误惩罚很重（对最终丢单的项目说 90% 代价很大）。越低越好；模型据此选择和评判。",
        "help_brier": "Brier 分数：概率与结果（赢单 1，丢单 0）之差的平方的平均。越低越好；总是说 50% 得 0.25。",
        "help_ece": "校准误差（ECE）：模型说约 30% 的项目，应约有 30% 赢单；这是十个概率区间上所说概率与实际赢单率之差的平均。0.03 表示百分比约偏差 3 个百分点。",
        "m_challenger": "挑战者（梯度提升）",
        "challenger": "评分卡与黑盒挑战者对比",
        "challenger_note": "挑战者（{model}；{iters} 轮提升，{cols} 个输入列）在相同的训练项目上拟合，输入为证据加上记录中展平的全部原始字段（按角色和立场统计的联系人数、合作伙伴态度、金额、日期等）。它从不发布：只用来说明模型在规则之外还能发现多少。",
        "ch_diff": "留出集对数损失，评分卡减挑战者：{d}（95% 区间 {lo} .. {hi}，基于 {deals} 个留出项目的配对自助法）。",
        "ch_better": "挑战者明显更好（超出噪声）：下列原始字段含有规则遗漏的信号。",
        "ch_worse": "评分卡明显更好（超出噪声）。",
        "ch_same": "差异在噪声范围内：规则已涵盖原始字段中的信息。",
        "raw": "含有信号的原始字段",
        "raw_note": "留出项目上的置换重要性：将某个原始字段在项目间打乱后挑战者对数损失的上升（打乱 {repeats} 次；上升超过 {min} 且超过两倍离散度即视为有信号）。有信号但没有规则读取的字段，正是新规则可以发挥作用的地方。",
        "raw_unread": "有信号但没有规则读取的字段：{names}。",
        "raw_none": "所有有信号的原始字段都已被规则读取。",
        "t_field": "原始字段", "t_rise": "对数损失上升", "t_sd": "离散度", "t_signal": "信号", "t_read": "被规则读取",
        "yes": "是", "no": "否",
        "signs": "符号检查",
        "signs_note": "留出集对数损失：符号约束 {c}，自由 {f}（约束减自由 {d}，95% 区间 {lo} .. {hi}）。",
        "signs_bad": "自由拟合中与声明方向相反的权重；在符号约束下这些权重固定为 0。常见原因是另一项携带了相同的证据（例如规则所依据的计数）；若没有这样的项，则数据与规则不一致：请检查。分箱显示其相对下一档的增量：",
        "signs_bad_free": "已发布模型中与声明方向相反的权重（请检查这些规则）：",
        "signs_ok": "没有学到的权重与其声明方向相反。",

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
        "challenger_skipped": "未拟合挑战者（{why}）。",
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
        "stored_held_out": "模型文件中保存的留出预测",
        "rules_note_none": "未计算：本报告仅基于模型文件中保存的留出预测；请提供历史数据（--history）以计算各规则的比率。",
    },
}


def words(lang: str) -> dict[str, str]:
    """The report's words in ``lang`` (one of :data:`LANGS`)."""
    if lang not in LANGS:
        raise ModelError(f"lang must be one of {', '.join(LANGS)}, not {lang!r}")
    return WORDS[lang]


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def num(x: float | None, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals; a dash when it is missing (None or NaN)."""
    return "–" if _missing(x) else f"{x:.{digits}f}"


def pct(x: float | None) -> str:
    """``x`` (a share) as a whole percentage; a dash when it is missing."""
    return "–" if _missing(x) else f"{100 * x:.0f}%"


def signed(x: float | None, digits: int = 1) -> str:
    """``x`` with its sign (``+1.5``, ``-2.0``; ``0.0`` without one); a dash when it is missing."""
    if _missing(x):
        return "–"
    return f"{0.0:.{digits}f}" if round(x, digits) == 0 else f"{x:+.{digits}f}"


def sign_class(x: float | None, digits: int = 1) -> str:
    """The CSS class of a number cell: ``n``, plus ``pos`` / ``neg`` when ``x`` rounds to non-zero."""
    if _missing(x) or round(x, digits) == 0:
        return "n"
    return "n pos" if x > 0 else "n neg"


def verdict_sentence(metrics: Mapping[str, Any], lang: str = "en") -> str:
    """The report's sentence on whether the model beats both baselines on held-out log loss."""
    w = words(lang)
    v = baseline_verdict(metrics)
    if v == "unknown":
        return w["v_unknown"]
    return w[{"both": "v_both", "base_rate": "v_base", "rule_score": "v_rule", "neither": "v_neither"}[v]].format(
        m=num(metrics["model"]["log_loss"], 4), b=num(metrics["base_rate"]["log_loss"], 4),
        r=num(metrics["rule_score"]["log_loss"], 4))
