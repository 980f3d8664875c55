"""Our rule-evidence logistic model vs gradient boosting on naively flattened fields.

    .venv/bin/python benchmarks/bench_model_vs_gbm.py [--deals 4000] [--seed 2027]
                                                           [--history PATH] [--model-seed 0]
                                                           [--rules rules/default] [--bootstrap 1000]
                                                           [--repeat 3]

Prints figures, asserts nothing.

Data.  By default a generated history (``datasets/generate.py``, ``kind="history"``,
``--deals`` deals, ``--seed``; default 2027, a seed the model was not tuned on:
the bundled sample is seed 7 and the tests use small seeds).  ``--history
PATH`` reads any history in the contract's form instead (JSON Lines, a table
folder, or an opportunities CSV/Parquet file) with
:func:`scoring.contract.reader.read_records` (``history=True``); its rejects are
counted and left out, exactly as ``train`` does with a path.

Both models see the same rows: the drops, labels, per-deal weights
(``1 / snapshots of the deal``) and the deal + time split of
:func:`scoring.model.train.train` (newest 20% of deals by ``closed_at`` held out).
Every metric is weighted by deal and computed by
:func:`scoring.model.train.probability_metrics` (ECE: 10 equal-width bins).

Models
------
* **ours**: :func:`scoring.model.train.train` itself (its metrics and baselines are
  printed as it reports them).  Its training time is measured by redoing the
  same steps here (evidence extraction on all kept snapshots, C chosen by
  grouped 5-fold CV on the training part, final fit), and the refit's test
  predictions are checked against ``train``'s model (the max difference is
  printed).
* **gbm**: ``HistGradientBoostingClassifier`` with scikit-learn's defaults
  (learning rate 0.1, 100 iterations, 31 leaves, min 20 samples per leaf, no
  L2), **early stopping off**, ``random_state=--model-seed``, native
  categorical features, fitted on the whole training part with
  ``sample_weight``.
* **gbm+es**: the same with **early stopping on**: at most 500 iterations,
  stopped when the weighted log loss on a validation set of 10% of the
  *training deals* (grouped by deal, drawn with ``--model-seed``) has not
  improved for 10 iterations; fitted on the other 90%.  Nothing of the test
  set is used for either.

Naive flattening (the GBM's input), one row per snapshot, from the contract's
fields only (a pack's extra fields and undeclared input fields are ignored):

* every opportunity field but ``id``, ``name``, ``account``, ``owner`` (free
  text), ``outcome`` and ``closed_at`` (the label), and ``as_of`` itself:
  bools 1/0 with NaN for unknown; ints and numbers as they are (NaN unknown);
  enums (``stage``, ``decision_maker_signal``) and the strings ``region``,
  ``industry``, ``product_line``, ``currency`` as pandas categories (the
  categories seen in the training part, at most 250, the rarer ones folded into
  one ``__other__``; a value never seen in training is NaN); dates as days
  relative to ``as_of``: ``days_since_created`` (as_of - created_at),
  ``days_in_stage`` (as_of - stage_entered_at), ``days_to_expected_close``
  (expected_close - as_of);
* per child list (contacts, competitors, partners): the number of rows; for
  each enum field a count per value and of unknowns (contacts by role, stance,
  influence, mind/heart share; competitors by strength; partners by
  customer_attitude and influence_on_decision); for each bool field counts of
  true / false / unknown (coaches, speaks_for_us, competitor_ties, accepts_us,
  incumbent, ...).  Child names and titles are left out.

Timing: wall seconds (``time.perf_counter``) for building each model's input
from validated records plus fitting it, excluding data generation/reading and
validation; each step is run ``--repeat`` times (deterministic, same result)
and the fastest run is reported, because on a shared machine a single run can
be many times slower (one run of the GBM fit took 34 s instead of 0.8 s while
other jobs held the cores).  Our model's fits run with one BLAS thread (as
``train`` does); the GBM uses its default OpenMP threads (all cores).  The
seconds stay noisy; only their order of magnitude is meaningful.

Uncertainty: a paired bootstrap over test deals (``--bootstrap`` resamples)
gives a 95% interval for the differences of log loss and Brier score between
our model and each GBM.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from scoring.contract.schema import CHILD_LISTS, CONTRACT  # noqa: E402
from scoring.errors import ScoringError  # noqa: E402
from scoring.model.features import EvidenceTransformer  # noqa: E402
from scoring.evidence.pack import load_pack  # noqa: E402
from dealscore_datasets.generate import generate_records  # noqa: E402
from scoring.model.train import (  # noqa: E402
    C_GRID,
    CV_FOLDS,
    _lr,
    choose_C,
    prepare_history,
    probability_metrics,
    split_deals,
    train,
)

TEST_FRACTION = 0.2
SKIPPED = {"id", "name", "account", "owner", "outcome", "closed_at", "as_of"}
CATEGORICAL_STRINGS = ("region", "industry", "product_line", "currency")
DATE_FEATURES = (  # (feature, field, sign): sign * (field - as_of) in days
    ("days_since_created", "created_at", -1),
    ("days_in_stage", "stage_entered_at", -1),
    ("days_to_expected_close", "expected_close", +1),
)
MAX_CATEGORIES = 250
OTHER = "__other__"


# --------------------------------------------------------------------------- naive flattening
def _bool(v):
    return np.nan if v is None else float(bool(v))


def _num(v):
    return np.nan if v is None else float(v)


def flatten(records) -> pd.DataFrame:
    """Naively flattened features of validated records (categoricals still as object columns)."""
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
                put(f.name, _bool(v))
            elif f.type in ("int", "number"):
                put(f.name, _num(v))
            # other strings (free text) are left out
        as_of = rec.get("as_of")
        for feat, fld, sign in DATE_FEATURES:
            v = rec.get(fld)
            put(feat, (np.nan if v is None or as_of is None
                       else sign * float((np.datetime64(v, "D") - np.datetime64(as_of, "D")).astype(int))))
        for lst in CHILD_LISTS:
            rows = rec.get(lst) or []
            put(f"{lst}.n", float(len(rows)))
            for f in CONTRACT[lst].values():
                if f.type == "enum":
                    c = Counter(row.get(f.name) for row in rows)
                    for val in f.values:
                        put(f"{lst}.{f.name}={val}", float(c.get(val, 0)))
                    put(f"{lst}.{f.name}=unknown", float(c.get(None, 0)))
                elif f.type == "bool":
                    c = Counter(row.get(f.name) for row in rows)
                    put(f"{lst}.{f.name}=true", float(c.get(True, 0)))
                    put(f"{lst}.{f.name}=false", float(c.get(False, 0)))
                    put(f"{lst}.{f.name}=unknown", float(c.get(None, 0)))
    df = pd.DataFrame(cols)
    for c in df.columns:
        if c not in cat_cols:
            df[c] = df[c].astype(np.float64)
    df.attrs["categorical"] = cat_cols
    return df


def categorise(df: pd.DataFrame, train_rows: np.ndarray) -> pd.DataFrame:
    """Categorical columns as pandas ``category`` with the categories of the training rows
    (at most MAX_CATEGORIES, rarer ones folded into OTHER; unseen values become NaN).
    A categorical column with no known value in training is dropped."""
    out = df.copy()
    for c in df.attrs["categorical"]:
        counts = df[c].iloc[train_rows].value_counts(dropna=True)
        if len(counts) == 0:
            out = out.drop(columns=[c])
            continue
        keep = list(counts.index[:MAX_CATEGORIES])
        col = df[c]
        if len(counts) > MAX_CATEGORIES:
            seen = set(counts.index)
            col = col.where(col.isin(keep) | ~col.isin(seen), OTHER)
            keep.append(OTHER)
        col = col.where(col.isin(keep))  # never seen in training -> missing
        out[c] = pd.Categorical(col, categories=sorted(keep))
    return out


# --------------------------------------------------------------------------- helpers
def _pointwise(y, p):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p)), (p - y) ** 2


def bootstrap_diff(deal, y, w, p_a, p_b, n_boot, seed):
    """95% interval of (metric(a) - metric(b)) for log loss and Brier, resampling test deals."""
    ids, inv = np.unique(deal, return_inverse=True)
    la, ba = _pointwise(y, p_a)
    lb, bb = _pointwise(y, p_b)
    W = np.bincount(inv, weights=w, minlength=len(ids))
    d_ll = np.bincount(inv, weights=w * (la - lb), minlength=len(ids))
    d_br = np.bincount(inv, weights=w * (ba - bb), minlength=len(ids))
    rng = np.random.default_rng(seed)
    out = {}
    for name, d in (("log_loss", d_ll), ("brier", d_br)):
        stats = []
        for _ in range(n_boot):
            k = rng.integers(0, len(ids), len(ids))
            stats.append(d[k].sum() / W[k].sum())
        lo, hi = np.percentile(stats, [2.5, 97.5])
        out[name] = (float(d.sum() / W.sum()), float(lo), float(hi))
    return out


def best_of(repeat, fn):
    """``(result, fastest wall seconds)`` of ``repeat`` calls of ``fn()``."""
    best, out = float("inf"), None
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _fmt(v, nd=4):
    return "   n/a" if v is None else f"{v:.{nd}f}"


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=4000, help="generated deals (ignored with --history)")
    ap.add_argument("--seed", type=int, default=2027, help="generator seed (ignored with --history)")
    ap.add_argument("--history", default=None, help="a history in the contract's form instead of generating one")
    ap.add_argument("--model-seed", type=int, default=0,
                    help="train()'s CV folds, the GBMs' random_state, the early-stopping split")
    ap.add_argument("--rules", default=str(ROOT / "rules" / "default"))
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of test deals (0: none)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each timed step; the fastest is reported")
    args = ap.parse_args(argv)

    pack = load_pack(args.rules)
    if args.history:
        from scoring.contract.reader import read_records

        t = time.perf_counter()
        rr = read_records(args.history, pack.schema, history=True)
        records = rr.records
        print(f"history {args.history}: {rr.n_read} records read, {len(rr.rejects)} rejected, "
              f"{len(rr.orphans)} orphan child rows ({time.perf_counter() - t:.1f} s)")
        if rr.rejects:
            reasons = Counter(f"{r.get('field')}: {r.get('reason')}" for r in rr.rejects)
            for reason, k in reasons.most_common(5):
                print(f"  rejected x{k}: {reason}")
    else:
        t = time.perf_counter()
        records = generate_records(args.deals, seed=args.seed, kind="history")
        print(f"generated history: {args.deals} deals, seed {args.seed}, {len(records)} snapshots "
              f"({time.perf_counter() - t:.1f} s, not counted below)")
    print(f"rule pack {pack.version_tag}: {len(pack.rules)} rules; model seed {args.model_seed}")

    # ---------------------------------------------------------------- ours, as train() builds it
    try:
        res = train(records, rules=pack, seed=args.model_seed, test_fraction=TEST_FRACTION)
    except ScoringError as e:
        print(f"train() refused this history: {e}")
        return 1
    c = res.counts
    print(f"kept {c['kept']['snapshots']} snapshots of {c['kept']['deals']} deals "
          f"(drops: {', '.join(f'{k} {v}' for k, v in c['drops'].items() if v) or 'none'}); "
          f"train {c['train']['deals']} deals / {c['train']['snapshots']} snapshots "
          f"(won {c['train']['won']}), closed {c['train_closed'][0]}..{c['train_closed'][1]}; "
          f"test {c['test']['deals']} deals / {c['test']['snapshots']} snapshots "
          f"(won {c['test']['won']}), closed {c['test_closed'][0]}..{c['test_closed'][1]}")

    # the same rows, split and weights, for the benchmark's own fits
    h = prepare_history(records, pack)
    train_ids, test_ids = split_deals(h.closed_at, TEST_FRACTION)
    same_split = list(test_ids) == list(res.test_ids)
    in_test = np.isin(h.deal, test_ids)
    tr, te = np.flatnonzero(~in_test), np.flatnonzero(in_test)
    y, w = h.y, h.weight

    # our model's training time: the same steps as train(), timed here
    def ours_evidence():
        evidence = EvidenceTransformer(pack).fit(h.records)
        status, stages = evidence.statuses(h.records)
        return evidence.transform_statuses(status, stages)

    def ours_fit():
        with threadpool_limits(1):
            C, _ = choose_C(X[tr], y[tr], w[tr], h.deal[tr], seed=args.model_seed)
            return C, _lr(float(C), args.model_seed).fit(X[tr], y[tr], sample_weight=w[tr])

    X, t_ev = best_of(args.repeat, ours_evidence)
    (C, lr), t_fit = best_of(args.repeat, ours_fit)
    p_ours = lr.predict_proba(X[te])[:, 1]
    p_train = res.model.pipeline.named_steps["model"].predict_proba(X[te])[:, 1]
    ours_time = {"features": t_ev, "fit": t_fit}
    print(f"ours: {X.shape[1]} evidence columns, C = {res.params['C']} (refit here: C = {C}); "
          f"split identical to train(): {same_split}; "
          f"max |p(refit) - p(train)| on test = {np.abs(p_ours - p_train).max():.2e}")

    # ---------------------------------------------------------------- gradient boosting on flat fields
    flat, t_flat = best_of(args.repeat, lambda: categorise(flatten(h.records), tr))
    Xf_tr, Xf_te = flat.iloc[tr], flat.iloc[te]
    n_cat = sum(isinstance(d, pd.CategoricalDtype) for d in flat.dtypes)
    omp = [i for i in threadpool_info() if i.get("user_api") == "openmp"]
    print(f"gbm: {flat.shape[1]} flattened columns ({n_cat} categorical); "
          f"OpenMP threads: {omp[0]['num_threads'] if omp else 'default'}")

    gbm, t_gbm = best_of(args.repeat, lambda: HistGradientBoostingClassifier(
        early_stopping=False, random_state=args.model_seed, categorical_features="from_dtype",
    ).fit(Xf_tr, y[tr], sample_weight=w[tr]))
    p_gbm = gbm.predict_proba(Xf_te)[:, 1]

    # early stopping on a validation set of training deals (grouped), never the test set
    tr_deals = np.array(sorted(set(h.deal[tr])), dtype=object)
    rng = np.random.default_rng(args.model_seed)
    val_deals = set(rng.choice(tr_deals, size=max(1, int(round(0.1 * len(tr_deals)))), replace=False))
    is_val = np.array([d in val_deals for d in h.deal[tr]])
    fit_rows, val_rows = tr[~is_val], tr[is_val]
    gbm_es, t_es = best_of(args.repeat, lambda: HistGradientBoostingClassifier(
        max_iter=500, early_stopping=True, n_iter_no_change=10, scoring="loss",
        random_state=args.model_seed, categorical_features="from_dtype",
    ).fit(flat.iloc[fit_rows], y[fit_rows], sample_weight=w[fit_rows],
          X_val=flat.iloc[val_rows], y_val=y[val_rows], sample_weight_val=w[val_rows]))
    p_es = gbm_es.predict_proba(Xf_te)[:, 1]
    print(f"gbm: {gbm.n_iter_} iterations; gbm+es: stopped after {gbm_es.n_iter_} iterations "
          f"(validation: {len(val_deals)} training deals, {len(val_rows)} snapshots)")

    # ---------------------------------------------------------------- table
    m_ours = probability_metrics(y[te], p_ours, w[te])
    rows = [
        ("base rate (train win rate)", res.metrics["base_rate"], None, None),
        ("rule score -> Platt", res.metrics["rule_score"], None, None),
        ("ours: evidence + logistic", res.metrics["model"], ours_time["features"], ours_time["fit"]),
        ("gbm, flat fields, no ES", probability_metrics(y[te], p_gbm, w[te]), t_flat, t_gbm),
        ("gbm, flat fields, ES", probability_metrics(y[te], p_es, w[te]), t_flat, t_es),
    ]
    print()
    print(f"held-out newest {c['test']['deals']} deals ({c['test']['snapshots']} snapshots), "
          f"weighted by deal; lower is better except ROC AUC")
    head = f"{'model':<28} {'log loss':>9} {'ROC AUC':>8} {'Brier':>8} {'ECE':>8} {'input s':>8} {'fit s':>8} {'total s':>8}"
    print(head)
    print("-" * len(head))
    for name, m, tf, tfit in rows:
        times = ("" if tf is None else f" {tf:8.2f} {tfit:8.2f} {tf + tfit:8.2f}")
        print(f"{name:<28} {_fmt(m['log_loss']):>9} {_fmt(m['roc_auc']):>8} {_fmt(m['brier']):>8} "
              f"{_fmt(m['ece']):>8}{times}")
    print(f"input s: evidence extraction (ours) / naive flattening (gbm); fit s: ours includes the "
          f"C search ({len(C_GRID)} C x {CV_FOLDS} folds) and the final fit; gbm+ES fits on 90% of the "
          f"training deals; fastest of {max(1, args.repeat)} runs, wall seconds, shared machine, noisy")
    if abs(m_ours["log_loss"] - res.metrics["model"]["log_loss"]) > 1e-9:
        print(f"note: the timed refit's log loss {m_ours['log_loss']:.6f} differs from train()'s")

    if args.bootstrap > 0:
        print()
        print(f"ours minus gbm, paired bootstrap over test deals ({args.bootstrap} resamples), "
              "95% interval (negative = ours better):")
        for name, p in (("gbm, no ES", p_gbm), ("gbm, ES", p_es)):
            b = bootstrap_diff(h.deal[te], y[te], w[te], p_ours, p, args.bootstrap, args.model_seed)
            print(f"  vs {name:<11} log loss {b['log_loss'][0]:+.4f} [{b['log_loss'][1]:+.4f}, {b['log_loss'][2]:+.4f}]"
                  f"   Brier {b['brier'][0]:+.4f} [{b['brier'][1]:+.4f}, {b['brier'][2]:+.4f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
