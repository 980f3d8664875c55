"""Benchmark of the one-record evaluators: durable-rules (the reference) and the compiled form in Python.

For each backend (``--backend``, default both; durable-rules only where it imports) prints the
single-record latency (p50, p99) and records per second over a few thousand generated deals, and
process memory before and after ``--evaluations`` evaluations (an evaluator must not grow across
calls), with the conditions of the run (commit, Python, cores, load average, input shape).
The library call around it (validation, rule score, model) is ``bench_api.py``'s.

    python benchmarks/bench_engine.py [--deals 3000] [--evaluations 100000] [--rules rules/default]
                                      [--backend durable-rules|python] [--repeat 3]
"""
from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conditions import footer, header, latencies, quantiles_ms  # noqa: E402
from scoring.evidence.durable import DURABLE_RULES, PYTHON, Engine, durable_rules_problem  # noqa: E402
from scoring.contract.nested import validate_record  # noqa: E402
from scoring.evidence.pack import load_pack  # noqa: E402
from dealscore_datasets.generate import generate_tables, tables_to_records  # noqa: E402


def rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc), falling back to the peak."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:  # pragma: no cover
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=3000)
    ap.add_argument("--evaluations", type=int, default=100_000)
    ap.add_argument("--rules", default=str(ROOT / "rules" / "default"))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--backend", choices=[DURABLE_RULES, PYTHON], action="append",
                    help="repeat for several (default: both, durable-rules only where it imports)")
    ap.add_argument("--repeat", type=int, default=3, help="passes over the deals for the latencies")
    args = ap.parse_args(argv)

    pack = load_pack(args.rules)
    records = [validate_record(r, pack.schema) for r in
               tables_to_records(generate_tables(args.deals, seed=args.seed, kind="pipeline"))]
    print(header("bench_engine: one-record evaluation of a rule pack",
                 f"rule pack {pack.version_tag}: {len(pack.rules)} rules in {pack.n_layers} layers, "
                 f"{len(pack.compiled.derived)} derived facts; {len(records):,} generated open deals "
                 f"(seed {args.seed}), validated records"))
    backends = args.backend or [b for b in (DURABLE_RULES, PYTHON) if b == PYTHON or durable_rules_problem() is None]
    if DURABLE_RULES not in backends and durable_rules_problem():
        print(f"  durable-rules: not measured ({durable_rules_problem()})")
    for backend in backends:
        engine = Engine(pack, backend=backend)
        wall, cpu = latencies(engine.evaluate, records, args.repeat)  # the first call compiles the ruleset
        print(f"{backend}: latency wall {quantiles_ms(wall)}; CPU {quantiles_ms(cpu)}; "
              f"{len(wall) / sum(wall):,.0f} records/s (one thread, wall)")

        gc.collect()
        before = rss_mib()
        t0 = time.perf_counter()
        n = len(records)
        for i in range(args.evaluations):
            engine.evaluate(records[i % n])
        elapsed = time.perf_counter() - t0
        gc.collect()
        after = rss_mib()
        print(f"  memory: {before:.1f} MiB before, {after:.1f} MiB after {args.evaluations:,} evaluations "
              f"({after - before:+.1f} MiB); {args.evaluations / elapsed:,.0f} records/s over the run")
    print(footer())


if __name__ == "__main__":
    main()
