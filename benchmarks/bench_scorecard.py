"""Held-out quality of the scorecard's parts, against the challenger and the baselines.

    .venv/bin/python benchmarks/bench_scorecard.py [--history PATH] [--deals 3000] [--seed 2027]

Prints figures, asserts nothing.  By default a generated history
(``dealscore_datasets``, ``--deals`` deals, ``--seed``); ``--history PATH``
reads any history in the contract's form instead.  Every variant is
:func:`scoring.model.train.train` with the bundled pack, seed 0, on the same
split (newest 20% of deals by ``closed_at`` held out; no deal on both sides)
and the same deal weighting; the metrics are the held-out ones of
:mod:`scoring.model.metrics` (ECE: 10 equal-width bins).

Variants (each adds one part to the one above):

* ``indicators``: rule met / unknown indicators and stage terms, free signs,
  no deviations, no bins: the design of the previous (logistic pipeline) model
  on this pack;
* ``+ signs``: weights constrained to the rules' declared directions;
* ``+ stage deviations``: stage-dependent met points, shrunk, kept when CV gains;
* ``+ measures``: the pack's graded measures as monotone bins;
* ``+ derived facts``: the pack's counts and day counts as bins (the default model);

then the challenger (gradient boosting on the evidence and the raw fields) fitted
beside the default model, the rule score alone (Platt) and the base rate.
The paired bootstrap interval (2,000 resamples of held-out deals) is of the
log-loss difference of each variant minus the default model.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring import paths  # noqa: E402
from scoring.model.metrics import paired_bootstrap  # noqa: E402
from scoring.model.train import train  # noqa: E402

VARIANTS = (
    ("indicators", dict(signs="free", stage_deviations=False, measures=False, derived=False)),
    ("+ signs", dict(signs="constrained", stage_deviations=False, measures=False, derived=False)),
    ("+ stage deviations", dict(signs="constrained", stage_deviations=True, measures=False, derived=False)),
    ("+ measures", dict(signs="constrained", stage_deviations=True, measures=True, derived=False)),
    ("+ derived facts", dict(signs="constrained", stage_deviations=True, measures=True, derived=True)),
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", type=Path)
    ap.add_argument("--deals", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=2027)
    a = ap.parse_args(argv)
    if a.history is None:
        from dealscore_datasets.generate import generate

        tmp = Path(tempfile.mkdtemp()) / "history.jsonl"
        generate("history", a.deals, tmp, seed=a.seed)
        hist, what = tmp, f"generated history, {a.deals} deals, seed {a.seed}"
    else:
        hist, what = a.history, str(a.history)
    print(f"history: {what}; pack: bundled default; cpus: {os.cpu_count()}, load average "
          f"{os.getloadavg()[0]:.1f} at start")
    results = {}
    for name, kw in VARIANTS:
        t = time.perf_counter()
        results[name] = train(hist, rules=paths.default_rules(), seed=0, challenger=name == VARIANTS[-1][0], **kw)
        results[name].timings["wall"] = time.perf_counter() - t
    best = results[VARIANTS[-1][0]]
    c = best.counts
    print(f"split: {c['split']['method']}; train {c['train']} closed {c['train_closed'][0]}..{c['train_closed'][1]}; "
          f"test {c['test']} closed {c['test_closed'][0]}..{c['test_closed'][1]}")
    ho = best.held_out
    y, w, deal = np.asarray(ho["y"]), np.asarray(ho["w"]), np.asarray(ho["deal"], dtype=object)
    print(f"{'held-out':<22}{'AUC':>7}{'log loss':>10}{'Brier':>8}{'ECE':>8}   minus default (95% interval)   "
          "C / kappa / train s")
    rows = [(n, r.metrics["model"], np.asarray(r.held_out["p_model"]), r) for n, r in results.items()]
    rows += [("challenger (GBM)", best.metrics["challenger"], np.asarray(ho["p_challenger"]), None),
             ("rule score (Platt)", best.metrics["rule_score"], np.asarray(ho["p_rule"]), None),
             ("base rate", best.metrics["base_rate"], None, None)]
    for name, m, p, r in rows:
        diff = ""
        if p is not None and name != VARIANTS[-1][0]:
            b = paired_bootstrap(y, p, np.asarray(ho["p_model"]), w, deal)
            diff = f"{b['difference']:+.4f} ({b['interval'][0]:+.4f} .. {b['interval'][1]:+.4f})"
        extra = (f"{r.params['C']:g} / {r.params['kappa'] or '-'} / {r.timings['wall']:.0f}" if r is not None else "")
        print(f"{name:<22}{m['roc_auc']:>7.4f}{m['log_loss']:>10.4f}{m['brier']:>8.4f}{m['ece']:>8.4f}   "
              f"{diff:<30} {extra}")
    s = best.signs
    print(f"signs (default model): held-out log loss constrained {s['log_loss']['constrained']:.4f}, free "
          f"{s['log_loss']['free']:.4f} (constrained minus free {s['difference']['difference']:+.4f}, 95% interval "
          f"{s['difference']['interval'][0]:+.4f} .. {s['difference']['interval'][1]:+.4f}); {len(s['contradicts'])} free weights against their "
          "declared direction")
    print("raw fields with signal no rule reads:", ", ".join(best.challenger["unread_with_signal"]) or "none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
