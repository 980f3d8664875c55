"""Throughput of the column-wise rule evaluation vs the durable-rules engine.

    .venv/bin/python benchmarks/bench_columnar.py [--deals 100000] [--engine-deals 2000]
                                                       [--chunk 100000] [--pack rules/default]

Prints figures, asserts nothing.  Deals come from ``datasets/generate.py`` (pipeline).
The columnar figure is the evaluation alone (``ColumnarEvaluator.evaluate`` on
ready :class:`~scoring.contract.frames.Frames`); building the frames from the tables
and from nested records is timed separately.  The engine figure is
``Engine.evaluate`` per validated record on a subsample.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring.contract.frames import Frames, records_to_frames  # noqa: E402
from scoring.evidence.columnar import ColumnarEvaluator  # noqa: E402
from scoring.contract.schema import CHILD_KEY, CHILD_LISTS  # noqa: E402
from scoring.evidence.durable import Engine  # noqa: E402
from scoring.contract.nested import validate_record  # noqa: E402
from scoring.evidence.pack import load_pack  # noqa: E402
from dealscore_datasets.generate import generate_tables, tables_to_records  # noqa: E402

AS_OF = "2026-11-25"


def tables_to_frames(tables: dict[str, pd.DataFrame], pack) -> Frames:
    """Frames straight from synth's pipeline tables (string / boolean / Int64 / Float64 / datetime64)."""
    opps = tables["opportunities"].reset_index(drop=True)
    pos = pd.Index(opps["id"])
    children = {}
    for lst in CHILD_LISTS:
        df = tables.get(lst)
        if df is None:
            continue
        rows = pos.get_indexer(df[CHILD_KEY])
        children[lst] = df.drop(columns=[CHILD_KEY]).assign(_row=rows).reset_index(drop=True)
    return Frames(opps=opps, children=children)


def _rate(n, seconds):
    return n / seconds if seconds > 0 else float("inf")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deals", type=int, default=100_000)
    ap.add_argument("--engine-deals", type=int, default=2_000)
    ap.add_argument("--chunk", type=int, default=100_000, help="deals per evaluate() call")
    ap.add_argument("--repeat", type=int, default=3, help="columnar runs; the best is reported")
    ap.add_argument("--pack", default=str(ROOT / "rules" / "default"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    pack = load_pack(args.pack)
    print(f"pack {pack.version_tag}: {len(pack.rules)} rules, {len(pack.counts)} counts, "
          f"{len(pack.computed)} computed, {pack.n_layers} layers")

    t = time.perf_counter()
    tables = generate_tables(args.deals, seed=args.seed, kind="pipeline")
    print(f"generated {args.deals:,} deals ({', '.join(f'{k} {len(v):,}' for k, v in tables.items())}) "
          f"in {time.perf_counter() - t:.2f} s")

    t = time.perf_counter()
    frames = tables_to_frames(tables, pack)
    t_tf = time.perf_counter() - t

    t = time.perf_counter()
    ev = ColumnarEvaluator(pack)
    t_compile = time.perf_counter() - t
    print(f"compile pack: {t_compile * 1e3:.1f} ms; tables -> frames: {t_tf * 1e3:.0f} ms")

    # columnar evaluation, in chunks, best of --repeat
    n = len(frames.opps)
    chunks = []
    for lo in range(0, n, args.chunk):
        hi = min(n, lo + args.chunk)
        opps = frames.opps.iloc[lo:hi].reset_index(drop=True)
        ch = {}
        for k, df in frames.children.items():
            r = df["_row"].to_numpy()
            sel = (r >= lo) & (r < hi)
            ch[k] = df[sel].assign(_row=r[sel] - lo).reset_index(drop=True)
        chunks.append(Frames(opps, ch))
    best = float("inf")
    for _ in range(max(1, args.repeat)):
        t = time.perf_counter()
        for fr in chunks:
            evidence = ev.evaluate(fr, AS_OF)
        best = min(best, time.perf_counter() - t)
    col_rate = _rate(n, best)
    print(f"columnar evaluate: {n:,} deals in {best:.3f} s (chunk {args.chunk:,}) = {col_rate:,.0f} deals/s")

    # peak memory of one evaluate on the first chunk
    tracemalloc.start()
    ev.evaluate(chunks[0], AS_OF)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  traced peak during evaluate({len(chunks[0].opps):,} deals): {peak / 2**20:.1f} MiB")

    # nested records -> frames (the library path's conversion), on a subsample
    m = min(n, 20_000)
    sub = {k: (v.iloc[:m] if k == "opportunities" else v[v[CHILD_KEY].isin(tables["opportunities"]["id"].iloc[:m])])
           for k, v in tables.items()}
    recs = [validate_record(r, pack.schema) for r in tables_to_records(sub)]
    t = time.perf_counter()
    records_to_frames(recs, pack.fields)
    t_rf = time.perf_counter() - t
    print(f"records_to_frames: {m:,} records in {t_rf:.3f} s = {_rate(m, t_rf):,.0f} deals/s")

    # durable-rules reference on a subsample
    k = min(args.engine_deals, len(recs))
    engine = Engine(pack)
    engine.evaluate(recs[0], as_of=AS_OF)  # build the host
    t = time.perf_counter()
    for r in recs[:k]:
        engine.evaluate(r, as_of=AS_OF)
    t_eng = time.perf_counter() - t
    eng_rate = _rate(k, t_eng)
    print(f"durable-rules engine: {k:,} deals in {t_eng:.2f} s = {eng_rate:,.0f} deals/s")
    print(f"speed-up (columnar evaluate / engine): {col_rate / eng_rate:,.0f}x")

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS of the process: {rss / 1024:.0f} MiB")
    print(f"status of the last chunk: {(evidence.status.to_numpy() == 1).mean():.3f} met, "
          f"{(evidence.status.to_numpy() == 2).mean():.3f} unknown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
