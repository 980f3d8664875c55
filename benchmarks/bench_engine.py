"""Benchmark of the per-record durable-rules path (the reference and single-call path).

Prints single-record latency (median, p99), records per second over a few
thousand generated deals, and process memory before and after 100,000
evaluations (the engine must not grow across calls).

    python benchmarks/bench_engine.py [--deals 3000] [--evaluations 100000] [--rules rules/default]
"""
from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring.evidence.durable import Engine  # noqa: E402
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
    args = ap.parse_args(argv)

    pack = load_pack(args.rules)
    engine = Engine(pack)
    records = [validate_record(r, pack.schema) for r in
               tables_to_records(generate_tables(args.deals, seed=args.seed, kind="pipeline"))]
    print(f"rule pack {pack.version_tag}: {len(pack.rules)} rules in {pack.n_layers} layers; "
          f"{len(records)} generated deals; python {sys.version.split()[0]}")

    engine.evaluate(records[0])  # compile the ruleset once
    lat = []
    for rec in records:
        t0 = time.perf_counter()
        engine.evaluate(rec)
        lat.append(time.perf_counter() - t0)
    lat_ms = sorted(x * 1000 for x in lat)
    p99 = lat_ms[min(len(lat_ms) - 1, int(0.99 * len(lat_ms)))]
    print(f"single-record latency: median {statistics.median(lat_ms):.3f} ms, p99 {p99:.3f} ms")
    print(f"throughput: {len(records) / sum(lat):,.0f} records/s (one thread)")

    gc.collect()
    before = rss_mib()
    t0 = time.perf_counter()
    n = len(records)
    for i in range(args.evaluations):
        engine.evaluate(records[i % n])
    elapsed = time.perf_counter() - t0
    gc.collect()
    after = rss_mib()
    print(f"memory: {before:.1f} MiB before, {after:.1f} MiB after {args.evaluations:,} evaluations "
          f"({after - before:+.1f} MiB); {args.evaluations / elapsed:,.0f} records/s over the run")


if __name__ == "__main__":
    main()
