"""Our model vs gradient boosting and logistic regression on naively flattened fields, and the truth.

    .venv/bin/python benchmarks/bench_model_vs_gbm.py [--histories linear,shaped] [--deals 20000]
                                                       [--open-deals 5000] [--seeds 101,202]
                                                       [--replicates 1] [--model-seed 0] [--rules rules/default]
                                                       [--bootstrap 1000] [--test-fraction 0.2] [--threads 1]

Prints figures and their conditions, asserts nothing.

Data.  Each test history of ``benchmarks/histories`` (``linear``: straight-line
effects on the log-odds; ``shaped``: thresholds, saturation and
stage-dependent effects) simulates ``--deals`` closed deals (1-3 snapshots
each, closing over two years, with ``outcome`` and ``closed_at``) and
``--open-deals`` open deals (one snapshot each at the history's ``as_of``),
whose outcomes are drawn from their TRUE probability and kept aside.  The
histories are written from the data contract and the course alone, not from
the rule pack, the model or the bundled generator.  ``--seeds`` gives one seed
per history (default: each history's own, 101 and 202); ``--replicates N``
runs each history N times with seeds seed, seed + 1, ...

Models, all scored on the open deals against their outcomes:

* **ours**: :func:`scoring.model.train.train` on the closed history, exactly
  as ``scoring train`` calls it (``rules``, ``seed=--model-seed``,
  ``test_fraction``, the defaults for the rest), saved with
  :func:`scoring.model.artifact.save_model` and scoring the open deals through
  :class:`scoring.api.Scorer` (``score_frame``, the batch path of ``scoring
  score``; ``win_probability``), as a user would.  ``train``
  holds out its newest ``--test-fraction`` of deals and fits on the rest; its
  own held-out log loss is printed too.
* **gbm**: ``HistGradientBoostingClassifier`` with scikit-learn's defaults
  (``random_state=--model-seed``; early stopping "auto", on above 10,000
  rows), native categorical features.
* **logistic**: ``LogisticRegression`` (C = 1, lbfgs) on the same flattened
  fields: numbers imputed by the training median with a missing-indicator
  column each, then standardised; categories one-hot with unknown its own
  value.
* **truth**: the history's true probability of each open deal (the floor no
  model can beat on average: it knows the unrecorded fields and the hidden
  deal term).

The baselines fit on the same closed deals as ours (train's training part:
every snapshot before the close, each weighted 1 / its deal's snapshots,
``no_decision`` counted as not won, as ``train`` does).

Naive flattening (a data scientist who never read the course), one row per
snapshot, from the contract's fields only:

* every opportunity field but ``id``, ``name``, ``account``, ``owner`` (free
  text), ``outcome`` and ``closed_at`` (the label), and ``as_of``: bools 1/0
  (NaN unknown); ints and numbers as they are (NaN unknown); ``stage``,
  ``decision_maker_signal``, ``region``, ``industry``, ``product_line``,
  ``currency`` as categories (those seen in training; others NaN); dates as
  days relative to ``as_of`` (``days_since_created``, ``days_in_stage``,
  ``days_to_expected_close``);
* per child list: the number of rows; per enum field a count of rows per
  value and of unknowns (contacts by role, stance, influence, mind and heart
  share; competitors by strength; partners by customer attitude and
  influence); per bool field the counts of true, false and unknown.

Metrics on the open deals (each deal once): log loss, ROC AUC, Brier score and
the expected calibration error (ECE: 10 equal-width bins of the predicted
probability, the deal-weighted mean of ``|mean predicted - observed rate|``).
A paired bootstrap over the open deals (``--bootstrap`` resamples) gives the
95% interval of the log-loss difference (ours minus each other).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sklearn  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from benchmarks.histories import HISTORIES  # noqa: E402
from scoring.contract.schema import CHILD_LISTS, CONTRACT  # noqa: E402

SKIPPED = {"id", "name", "account", "owner", "outcome", "closed_at", "as_of"}
CATEGORICAL_STRINGS = ("region", "industry", "product_line", "currency")
DATE_FEATURES = (  # (feature, field, sign): sign * (field - as_of) in days
    ("days_since_created", "created_at", -1),
    ("days_in_stage", "stage_entered_at", -1),
    ("days_to_expected_close", "expected_close", +1),
)
N_BINS = 10
EPS = 1e-15


# --------------------------------------------------------------------------- naive flattening
def _days(a, b):
    return float((np.datetime64(a, "D") - np.datetime64(b, "D")).astype(int))


def flatten(records) -> pd.DataFrame:
    """Naively flattened fields of contract records (categoricals as object columns)."""
    opp = CONTRACT["opportunity"]
    cat_cols = [f.name for f in opp.values() if f.name not in SKIPPED
                and (f.type == "enum" or f.name in CATEGORICAL_STRINGS)]
    cols: dict[str, list] = {}

    def put(name, value):
        cols.setdefault(name, []).append(value)

    for rec in records:
        for f in opp.values():
            if f.name in SKIPPED or f.type == "date":
                continue
            v = rec.get(f.name)
            if f.name in cat_cols:
                put(f.name, None if v is None else str(v))
            elif f.type == "bool":
                put(f.name, np.nan if v is None else float(bool(v)))
            elif f.type in ("int", "number"):
                put(f.name, np.nan if v is None else float(v))
        as_of = rec.get("as_of")
        for feat, fld, sign in DATE_FEATURES:
            v = rec.get(fld)
            put(feat, np.nan if v is None or as_of is None else sign * _days(v, as_of))
        for lst in CHILD_LISTS:
            rows = rec.get(lst) or []
            put(f"{lst}.n", float(len(rows)))
            for f in CONTRACT[lst].values():
                if f.type not in ("enum", "bool"):
                    continue
                c = Counter(row.get(f.name) for row in rows)
                values = f.values if f.type == "enum" else (True, False)
                for val in values:
                    put(f"{lst}.{f.name}={str(val).lower()}", float(c.get(val, 0)))
                put(f"{lst}.{f.name}=unknown", float(c.get(None, 0)))
    df = pd.DataFrame(cols)
    df.attrs["categorical"] = cat_cols
    return df


def categorise(df: pd.DataFrame, train_rows: np.ndarray) -> pd.DataFrame:
    """Categorical columns as pandas categories of the values seen in the training rows (others NaN)."""
    out = df.copy()
    for c in df.attrs["categorical"]:
        seen = sorted(df[c].iloc[train_rows].dropna().unique())
        if not seen:
            out = out.drop(columns=[c])
            continue
        out[c] = pd.Categorical(df[c].where(df[c].isin(seen)), categories=seen)
    out.attrs["categorical"] = [c for c in df.attrs["categorical"] if c in out.columns]
    return out


def logistic_on_flat(cat_cols, num_cols, seed):
    """Logistic regression on the flattened fields: median + missing indicator, scaling, one-hot."""
    num = make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                        StandardScaler())
    cat = make_pipeline(SimpleImputer(strategy="constant", fill_value="__unknown__"),
                        OneHotEncoder(handle_unknown="ignore"))
    pre = ColumnTransformer([("num", num, num_cols), ("cat", cat, cat_cols)])
    return make_pipeline(pre, LogisticRegression(C=1.0, max_iter=5000, random_state=seed))


def record_tables(records):
    """The contract's table form of nested records: opportunities, contacts, competitors, partners."""
    opp = pd.DataFrame([{k: v for k, v in r.items() if k not in CHILD_LISTS} for r in records])
    kids = [pd.DataFrame([{"opportunity_id": r["id"], **row} for r in records for row in r.get(lst) or []])
            for lst in CHILD_LISTS]
    return (opp, *kids)


# --------------------------------------------------------------------------- metrics
def pointwise_log_loss(y, p):
    p = np.clip(p, EPS, 1 - EPS)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def ece(y, p, n_bins=N_BINS):
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return total / len(y)


def metrics(y, p):
    return {"log_loss": float(pointwise_log_loss(y, p).mean()), "roc_auc": float(roc_auc_score(y, p)),
            "brier": float(np.mean((p - y) ** 2)), "ece": float(ece(y, p))}


def bootstrap_diff(y, p_a, p_b, n_boot, seed):
    """Mean log-loss difference a - b and its paired-bootstrap 95% interval (resampling deals)."""
    d = pointwise_log_loss(y, p_a) - pointwise_log_loss(y, p_b)
    rng = np.random.default_rng(seed)
    n = len(d)
    stats = np.array([d[rng.integers(0, n, n)].mean() for _ in range(n_boot)]) if n_boot else np.array([d.mean()])
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


# --------------------------------------------------------------------------- conditions
def conditions() -> str:
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"
    commit = git("rev-parse", "--short", "HEAD") or "?"
    dirty = " (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"commit {commit}{dirty}; Python {platform.python_version()}; {cores} cores; load average {load}; "
            f"numpy {np.__version__}, pandas {pd.__version__}, scikit-learn {sklearn.__version__}")


# --------------------------------------------------------------------------- one history
def run_history(mod, n_closed, n_open, seed, args, pack_path) -> dict:
    from scoring.api import Scorer
    from scoring.model.artifact import save_model
    from scoring.model.train import train

    t = time.perf_counter()
    h = mod.simulate(n_closed, n_open, seed)
    t_sim = time.perf_counter() - t
    y_open = h.open_won.astype(float)
    stages = Counter(r["stage"] for r in h.open)
    print(f"\n=== history {h.name}, seed {seed}: {n_closed} closed deals as {len(h.closed)} snapshots "
          f"(won {h.info['closed_win_rate']:.1%}, {h.info['no_decision']} no_decision; closed "
          f"{h.info['closed_range'][0]}..{h.info['closed_range'][1]}); {n_open} open deals as of {h.info['as_of']} "
          f"(won {y_open.mean():.1%}; stages {', '.join(f'{k} {v}' for k, v in stages.items())}); "
          f"simulated in {t_sim:.1f} s")

    # ours, as `scoring train` builds it, scored as a user scores
    t = time.perf_counter()
    res = train(h.closed, rules=pack_path, seed=args.model_seed, test_fraction=args.test_fraction)
    t_train = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = save_model(res, Path(tmp) / "model")
        t = time.perf_counter()
        scorer = Scorer(model=path)
        out = scorer.score_frame(*record_tables(h.open))
        p_ours = out.set_index("id").loc[[r["id"] for r in h.open], "win_probability"].to_numpy(dtype=float)
        t_score = time.perf_counter() - t
    own = res.metrics.get("model", {}).get("log_loss") if isinstance(res.metrics, dict) else None
    train_ids = set(res.train_ids)
    print(f"ours: trained in {t_train:.1f} s on {len(train_ids)} deals (train() held out its newest "
          f"{len(res.test_ids)}: log loss there {own if own is None else f'{own:.4f}'}); "
          f"scored {len(p_ours)} open deals in {t_score:.1f} s")

    # baselines on the same training deals
    n_snap = Counter(r["id"] for r in h.closed)
    tr_recs = [r for r in h.closed if r["id"] in train_ids and r["as_of"] < r["closed_at"]]
    y_tr = np.array([r["outcome"] == "won" for r in tr_recs], dtype=float)
    w_tr = np.array([1.0 / n_snap[r["id"]] for r in tr_recs])
    t = time.perf_counter()
    flat = flatten(tr_recs + h.open)
    flat = categorise(flat, np.arange(len(tr_recs)))
    t_flat = time.perf_counter() - t
    X_tr, X_op = flat.iloc[:len(tr_recs)], flat.iloc[len(tr_recs):]
    cat_cols = flat.attrs["categorical"]
    num_cols = [c for c in flat.columns if c not in cat_cols]
    t = time.perf_counter()
    gbm = HistGradientBoostingClassifier(random_state=args.model_seed, categorical_features="from_dtype")
    gbm.fit(X_tr, y_tr, sample_weight=w_tr)
    p_gbm = gbm.predict_proba(X_op)[:, 1]
    t_gbm = time.perf_counter() - t
    t = time.perf_counter()
    lr = logistic_on_flat(cat_cols, num_cols, args.model_seed)
    as_obj = lambda X: X.astype({c: object for c in cat_cols})  # noqa: E731
    lr.fit(as_obj(X_tr), y_tr, logisticregression__sample_weight=w_tr)
    p_lr = lr.predict_proba(as_obj(X_op))[:, 1]
    t_lr = time.perf_counter() - t
    print(f"baselines: {flat.shape[1]} flattened columns ({len(cat_cols)} categorical) from {len(tr_recs)} "
          f"training snapshots; flattening {t_flat:.1f} s; gbm {gbm.n_iter_} iterations "
          f"(early stopping {'on' if gbm.do_early_stopping_ else 'off'}) {t_gbm:.1f} s; logistic {t_lr:.1f} s")

    rows = {"ours (scoring train)": p_ours, "gbm, flat fields": p_gbm, "logistic, flat fields": p_lr,
            "truth": h.open_p}
    base = np.full(len(y_open), float(np.average(y_tr, weights=w_tr)))
    rows["base rate (training)"] = base
    print(f"\nopen deals ({n_open}), against their drawn outcomes; lower is better except ROC AUC")
    head = f"{'model':<24} {'log loss':>9} {'ROC AUC':>8} {'Brier':>8} {'ECE':>8}"
    print(head)
    print("-" * len(head))
    out = {}
    for name, p in rows.items():
        m = metrics(y_open, p)
        out[name] = m
        print(f"{name:<24} {m['log_loss']:9.4f} {m['roc_auc']:8.4f} {m['brier']:8.4f} {m['ece']:8.4f}")
    print(f"\nours minus each, log loss, paired bootstrap over open deals ({args.bootstrap} resamples), "
          "95% interval (negative = ours better):")
    diffs = {}
    for name, p in (("gbm", p_gbm), ("logistic", p_lr), ("truth", h.open_p)):
        d = bootstrap_diff(y_open, p_ours, p, args.bootstrap, args.model_seed)
        diffs[name] = d
        verdict = ("ours better" if d[2] < 0 else "ours worse" if d[1] > 0 else "no clear difference")
        print(f"  vs {name:<9} {d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]  {verdict}")
    return {"metrics": out, "diffs": diffs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--histories", default=",".join(HISTORIES), help="comma-separated: " + ", ".join(HISTORIES))
    ap.add_argument("--deals", type=int, default=20_000, help="closed deals per history (training)")
    ap.add_argument("--open-deals", type=int, default=5_000, help="open deals per history (held out)")
    ap.add_argument("--seeds", default=None, help="comma-separated, one per history (default: each history's own)")
    ap.add_argument("--replicates", type=int, default=1,
                    help="histories per kind, with seeds seed, seed + 1, ... (fresh data each)")
    ap.add_argument("--model-seed", type=int, default=0, help="train()'s seed, the baselines' random_state, the bootstrap")
    ap.add_argument("--rules", default=str(ROOT / "rules" / "default"))
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of open deals")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS/OpenMP threads (default 1: on a shared machine more threads than free cores "
                         "can make the GBM many times slower)")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="train()'s held-out share (its default)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.histories.split(",") if n.strip()]
    unknown = [n for n in names if n not in HISTORIES]
    if unknown:
        ap.error(f"unknown histories {unknown}; choose from {', '.join(HISTORIES)}")
    seeds = ([int(s) for s in args.seeds.split(",")] if args.seeds else [HISTORIES[n].DEFAULT_SEED for n in names])
    if len(seeds) != len(names):
        ap.error("--seeds needs one seed per history")
    runs = [(n, s + i) for n, s in zip(names, seeds) for i in range(max(1, args.replicates))]
    threadpool_limits(limits=args.threads)
    print("conditions at start: " + conditions() + f"; {args.threads} BLAS/OpenMP thread(s)")
    print(f"input: {args.deals} closed deals and {args.open_deals} open deals per history; histories "
          f"{', '.join(f'{n} (seed {s})' for n, s in runs)}; model seed {args.model_seed}; "
          f"rules {os.path.relpath(args.rules, ROOT)}")
    t0 = time.perf_counter()
    results = [(name, seed, run_history(HISTORIES[name], args.deals, args.open_deals, seed, args, args.rules))
               for name, seed in runs]
    print("\nsummary, open-deal log loss (ours minus gbm, 95% interval):")
    for name, seed, r in results:
        m, d = r["metrics"], r["diffs"]["gbm"]
        print(f"  {name:<7} seed {seed:<6} ours {m['ours (scoring train)']['log_loss']:.4f}  "
              f"gbm {m['gbm, flat fields']['log_loss']:.4f}  logistic {m['logistic, flat fields']['log_loss']:.4f}  "
              f"truth {m['truth']['log_loss']:.4f}   ours - gbm {d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]")
    print(f"\nconditions at end: {conditions()}; {time.perf_counter() - t0:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
