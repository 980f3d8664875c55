"""Benchmark of the library call: ``Scorer()`` load time, ``Scorer.score`` latency, ``score_many`` by size.

Prints, with the conditions of the run (commit, Python, cores, load average, input shape):

* ``Scorer()`` load time in fresh processes (``--loads`` of them; median and each): the import of
  ``scoring`` and the construction (wall), the process's CPU time, with the current model and
  without a model, and which heavy libraries the load imported;
* ``Scorer().score(record)`` latency per deal (p50, p99; wall time, and this thread's CPU time,
  which a loaded machine inflates less) over generated open deals, raw records in
  the contract's form (validation included), with the model and without it; then the same call
  split into its parts (validation, rules, rule score, the model's probability and reasons);
* ``score_many`` at a few list sizes, per deal, with the rules evaluated one record at a time and
  column-wise, to place the crossover (:data:`scoring.api.COLUMNWISE_FROM`).

    .venv/bin/python benchmarks/bench_api.py [--deals 2000] [--repeat 3] [--loads 5] [--model current]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conditions import footer, header, timed  # noqa: E402

LOAD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from scoring import Scorer
t1 = time.perf_counter()
Scorer(model={model})
t2 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "construct": t2 - t1, "cpu": time.process_time(),
                  "heavy": [m for m in ("pandas", "pyarrow", "sklearn", "scipy", "durable", "joblib") if m in sys.modules]}}))
"""


def fresh_loads(model: str | None, n: int) -> list[dict]:
    """``n`` fresh interpreters each timing ``from scoring import Scorer`` and ``Scorer(model=...)``."""
    out = []
    for _ in range(n):
        code = LOAD_SCRIPT.format(model=repr(model))
        res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def print_loads(label: str, loads: list[dict]) -> None:
    total = [x["import"] + x["construct"] for x in loads]
    print(f"  {label}: import + Scorer() median {statistics.median(total):.3f} s "
          f"(import {statistics.median(x['import'] for x in loads):.3f} s, "
          f"Scorer() {statistics.median(x['construct'] for x in loads):.3f} s); "
          f"each: {', '.join(f'{t:.3f}' for t in total)}; CPU of the whole process (interpreter start "
          f"included) median {statistics.median(x['cpu'] for x in loads):.3f} s; "
          f"imported: {', '.join(loads[0]['heavy']) or 'none of them'}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3, help="passes over the deals for the latencies")
    ap.add_argument("--loads", type=int, default=5, help="fresh processes timing Scorer()")
    ap.add_argument("--model", default="current", help="model folder, or 'current'")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--sizes", default="1,8,32,64,128,512,2000")
    args = ap.parse_args(argv)

    import scoring.api as api
    from dealscore_datasets.generate import generate_tables, tables_to_records
    from scoring import Scorer
    from scoring.contract.nested import validate_record
    from scoring.score.rulescore import score_evaluation

    records = tables_to_records(generate_tables(args.deals, seed=args.seed, kind="pipeline"))
    records = [json.loads(json.dumps(r)) for r in records]  # plain JSON values, as a caller has them
    scorer = Scorer(model=args.model)
    bare = Scorer(model=None, rules=scorer.pack.path)
    kids = {k: statistics.mean(len(r.get(k) or ()) for r in records) for k in ("contacts", "competitors", "partners")}
    print(header("bench_api: the library call",
                 f"{len(records):,} generated open deals (seed {args.seed}), contract records as JSON values; "
                 f"per deal {kids['contacts']:.1f} contacts, {kids['competitors']:.1f} competitors, "
                 f"{kids['partners']:.1f} partners; rule pack {scorer.pack.version_tag}, {len(scorer.pack.rules)} "
                 f"rules; model {scorer.model_version}"))

    print(f"Scorer() load, {args.loads} fresh processes each:")
    print_loads(f"model={args.model!r}", fresh_loads(args.model, args.loads))
    print_loads("model=None", fresh_loads(None, args.loads))

    print(f"Scorer.score(record), {args.repeat} passes:")
    print(f"  with the model:    {timed(scorer.score, records, args.repeat)}")
    print(f"  without a model:   {timed(bare.score, records, args.repeat)}")
    valid = [validate_record(r, scorer.pack.schema) for r in records]
    evs = [scorer.evaluator.evaluate(r) for r in valid]
    print("  its parts (each timed alone over the same deals):")
    print(f"    validation:      {timed(lambda r: validate_record(r, scorer.pack.schema), records, args.repeat)}")
    print(f"    rules:           {timed(scorer.evaluator.evaluate, valid, args.repeat)}")
    print(f"    rule score:      {timed(lambda e: score_evaluation(scorer.pack, e), evs, args.repeat)}")
    if scorer.model is not None:
        print(f"    model + reasons: {timed(scorer.model.explain_evaluation, evs, args.repeat)}")

    print("score_many(records), per deal (median of the passes), rules one record at a time | column-wise:")
    saved = api.COLUMNWISE_FROM
    try:
        for size in [int(x) for x in args.sizes.split(",")]:
            batch = records[:size]
            row = []
            for mode in (10**9, 0):
                api.COLUMNWISE_FROM = mode
                scorer.score_many(batch)  # warm-up
                runs = []
                for _ in range(args.repeat):
                    c0, t0 = time.thread_time(), time.perf_counter()
                    scorer.score_many(batch)
                    runs.append(((time.perf_counter() - t0) / len(batch), (time.thread_time() - c0) / len(batch)))
                row.append([statistics.median(x[k] for x in runs) * 1e3 for k in (0, 1)])
            print(f"  {len(batch):>6,} records: wall {row[0][0]:.3f} | {row[1][0]:.3f} ms, "
                  f"CPU {row[0][1]:.3f} | {row[1][1]:.3f} ms per deal")
    finally:
        api.COLUMNWISE_FROM = saved
    print(f"  (score_many switches to column-wise at {saved} records)")
    print(footer())


if __name__ == "__main__":
    main()
