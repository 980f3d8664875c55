"""The report's plots: reliability diagram, ROC curve, and score histograms by outcome.

Drawn with matplotlib's Agg backend into PNG images (base64, embedded in the
page).  matplotlib is imported inside :func:`draw_figures`, so importing the
library never imports it.
"""
from __future__ import annotations

import base64
import io
from typing import Any, Mapping

import numpy as np

from scoring.model.report_text import WORDS, num

MODEL_COLOR = "#1f6fb4"
RULE_COLOR = "#e07b16"
WON_COLOR = "#2e9e4f"
LOST_COLOR = "#c0392b"
#: the plots :func:`draw_figures` draws, by key
FIGURES = ("calibration", "roc", "hist_probability", "hist_score")
#: fonts that can draw the Chinese labels, in order of preference
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
             "SimHei", "Microsoft YaHei", "PingFang SC", "AR PL UMing CN", "Droid Sans Fallback")


def _plot_words(lang: str) -> tuple[dict[str, str], str | None]:
    """The words for the plots, and the CJK font family to use (None: default font).

    Chinese plot labels need a CJK font; without one, the plots fall back to
    English labels rather than draw empty boxes (the page itself stays Chinese).
    """
    if lang != "zh":
        return WORDS["en"], None
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    for name in CJK_FONTS:
        if name in have:
            return WORDS["zh"], name
    return WORDS["en"], None


def _png(fig: Any) -> str:
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
            ax.plot(fpr, tpr, color=color, lw=1.8, label=f"{label} (AUC {num(auc)})")
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
