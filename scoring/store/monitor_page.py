"""``scoring monitor --out FILE.html``: one self-contained page about the stored runs.

* the score distribution over the stored runs (mean, and the share of deals per tenth of probability);
* drift per rule in the last run (PSI of its met / missing / unknown shares against the run before);
* the last run's expected performance before outcomes (CBPE-style) and its score PSI against the
  model's held-out predictions;
* realized performance once outcomes are recorded (``scoring outcomes``): probabilities 30, 60 and
  90 days before the close against the outcome, with the realized calibration.

The figures are matplotlib PNGs embedded in the page (imported only here).
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scoring.store.monitor import PSI_FLAG, drift_reference, realized_performance
from scoring.store.store import Store


def monitor_data(store: Store) -> dict[str, Any]:
    """What the page shows, as plain data (``scoring monitor --json`` prints it)."""
    with store.reading():
        runs = store.runs()
        bins = store.query("SELECT run_id, CAST(floor(win_probability * 10) AS INTEGER) AS bin, count(*) AS n "
                           "FROM deal_scores WHERE win_probability IS NOT NULL GROUP BY run_id, "
                           "CAST(floor(win_probability * 10) AS INTEGER)") if len(runs) else pd.DataFrame()
        means = store.query("SELECT run_id, avg(win_probability) AS mean, count(*) AS deals FROM deal_scores "
                            "GROUP BY run_id") if len(runs) else pd.DataFrame()
        outcomes = store.outcome_rows() if len(runs) else pd.DataFrame()
    series = []
    for r in runs.to_dict("records"):
        b = bins[bins["run_id"] == r["run_id"]] if len(bins) else bins
        counts = np.zeros(10)
        for k, n in zip(b.get("bin", []), b.get("n", [])):
            counts[min(int(k), 9)] += int(n)
        m = means[means["run_id"] == r["run_id"]] if len(means) else means
        series.append({"run_id": r["run_id"], "as_of": r["as_of"], "model_version": r["model_version"],
                       "deals": int(m["deals"].iloc[0]) if len(m) else 0,
                       "mean_probability": None if not len(m) or pd.isna(m["mean"].iloc[0]) else
                       round(float(m["mean"].iloc[0]), 4),
                       "shares": [round(float(x), 4) for x in (counts / counts.sum() if counts.sum() else counts)]})
    last = json.loads(runs["summary"].iloc[-1] or "{}").get("monitoring", {}) if len(runs) else {}
    return {"runs": series, "last_run": last, "realized": realized_performance(outcomes) if len(outcomes) else [],
            "outcomes_recorded": int(outcomes["deal_id"].nunique()) if len(outcomes) else 0}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(d: dict[str, Any]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    runs = d["runs"]
    if runs:
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [1, 2]})
        x = np.arange(len(runs))
        a1.plot(x, [r["mean_probability"] if r["mean_probability"] is not None else np.nan for r in runs],
                marker="o", color="#1f6fb4")
        a1.set_ylabel("mean win probability")
        shares = np.array([r["shares"] for r in runs]).T
        a2.imshow(shares, aspect="auto", origin="lower", cmap="Blues", extent=(-0.5, len(runs) - 0.5, 0, 1))
        a2.set_ylabel("win probability (share of deals)")
        a2.set_xticks(x, [r["as_of"] for r in runs], rotation=45, ha="right")
        fig.suptitle("Score distribution over the stored runs")
        figs["distribution"] = _png(fig)
    drift = (d["last_run"].get("rule_drift") or {}).get("rules") or []
    reference = drift_reference(d["last_run"].get("rule_drift"))
    if drift:
        top = sorted((r for r in drift if r["psi"] is not None), key=lambda r: -r["psi"])[:20]
        fig, ax = plt.subplots(figsize=(9, 5))
        ax.barh([r["rule"] for r in top][::-1], [r["psi"] for r in top][::-1],
                color=["#c0392b" if r["flag"] else "#1f6fb4" for r in top][::-1])
        ax.axvline(PSI_FLAG, color="grey", linestyle="--")
        ax.set_xlabel(f"PSI of met / missing / unknown shares against {reference} (dashed: 0.25)")
        ax.set_title("Drift per rule in the last run (20 largest)")
        figs["drift"] = _png(fig)
    real = [r for r in d["realized"] if r.get("deals")]
    if real:
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--")
        for r, c in zip(real, ("#1f6fb4", "#e07b16", "#2e9e4f")):
            cal = r["calibration"]
            ax.plot([b["mean_probability"] for b in cal], [b["win_rate"] for b in cal], marker="o", color=c,
                    label=f"{r['days_before_close']} days before close ({r['deals']} deals, log loss {r['log_loss']})")
        ax.set_xlabel("recorded win probability")
        ax.set_ylabel("share won")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title("Realized calibration")
        figs["realized"] = _png(fig)
    return figs


def build_monitor(store: Store, out: str | Path) -> Path:
    """Write the page to ``out`` (atomically) and return its path."""
    from scoring.batch.output import write_atomic

    d = monitor_data(store)
    figs = _figures(d)
    last = d["last_run"]
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Score store monitor</title>"
             "<style>body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}</style></head><body>",
             f"<h1>Score store monitor</h1><p>{esc(store.backend.describe())}: {len(d['runs'])} stored runs, "
             f"{d['outcomes_recorded']} deals with a recorded outcome; drawn "
             f"{_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}</p>"]
    if "distribution" in figs:
        parts.append(f"<h2>Score distribution</h2><img alt='score distribution' src='data:image/png;base64,"
                     f"{figs['distribution']}'>")
    if last:
        sp = last.get("score_psi") or {}
        against = esc(drift_reference(last.get("rule_drift")))
        parts.append("<h2>Last run, before outcomes</h2><table>"
                     f"<tr><th>score PSI vs held-out predictions</th><td>{sp.get('psi', '-')}</td></tr>"
                     f"<tr><th>rules drifted (PSI &gt; {PSI_FLAG}) from {against}</th><td>"
                     f"{esc(', '.join((last.get('rule_drift') or {}).get('flagged') or []) or 'none')}</td></tr>"
                     f"<tr><th>expected log loss (if calibrated)</th><td>{last.get('expected_log_loss', '-')}</td></tr>"
                     f"<tr><th>expected Brier</th><td>{last.get('expected_brier', '-')}</td></tr>"
                     f"<tr><th>trends</th><td>{esc(', '.join(f'{k} {v}' for k, v in (last.get('trends') or {}).items()))}"
                     "</td></tr></table>")
    if "drift" in figs:
        parts.append(f"<h2>Drift per rule</h2><p id='drift-reference'>Reference: "
                     f"{esc(drift_reference(last.get('rule_drift')))}</p>"
                     f"<img alt='drift per rule' src='data:image/png;base64,{figs['drift']}'>")
    if "realized" in figs:
        rows = "".join(f"<tr><td>{r['days_before_close']}</td><td>{r['deals']}</td><td>{r.get('win_rate', '-')}</td>"
                       f"<td>{r.get('mean_probability', '-')}</td><td>{r.get('log_loss', '-')}</td>"
                       f"<td>{r.get('brier', '-')}</td></tr>" for r in d["realized"])
        parts.append("<h2>Realized performance</h2><table><tr><th>days before close</th><th>deals</th>"
                     f"<th>win rate</th><th>mean probability</th><th>log loss</th><th>Brier</th></tr>{rows}</table>"
                     f"<img alt='realized calibration' src='data:image/png;base64,{figs['realized']}'>")
    else:
        parts.append("<h2>Realized performance</h2><p>No outcomes recorded yet (<code>scoring outcomes "
                     "CLOSED_DEALS</code>).</p>")
    parts.append("</body></html>\n")
    out = Path(out)
    write_atomic(out, "".join(parts))
    return out
