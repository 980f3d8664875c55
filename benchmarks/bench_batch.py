"""End-to-end benchmark of the nightly batch: Parquet tables in, Parquet out.

Generates an open pipeline (default 1,000,000 deals with their contacts,
competitors and partners) as Parquet tables, scores it with ``scoring score``'s
library function (column-wise rules, model, reasons, flags; every core), and
prints throughput, the peak memory of the whole process tree (the parent and
its workers, sampled every 50 ms from /proc), and the speed-up against the
per-record durable-rules path (``Scorer.score``) measured in the same run on a
subsample.

    .venv/bin/python benchmarks/bench_batch.py [--deals 1000000] [--subsample 2000] [--workers N]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MiB (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    stack.extend(int(x) for x in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / 2**20


class PeakSampler(threading.Thread):
    def __init__(self, interval=0.05):
        super().__init__(daemon=True)
        self.peak = 0.0
        self.interval = interval
        self._stop = threading.Event()

    def run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mib(os.getpid()))
            time.sleep(self.interval)

    def stop(self):
        self._stop.set()
        self.join()
        return self.peak


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=1_000_000)
    ap.add_argument("--subsample", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--chunk-size", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--model", default=None, help="model folder (default: the current model)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)

    from scoring.api import Scorer
    from scoring.batch import run_batch
    from scoring.records import read_records
    from scoring.synth import generate_tables, tables_to_records, write_tables

    scorer = Scorer(model=args.model or "current")
    if scorer.model is None:
        sys.exit("no model: train and promote one first (see README), or pass --model")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        tables = generate_tables(args.deals, seed=args.seed, kind="pipeline")
        sizes = {k: len(v) for k, v in tables.items()}
        write_tables(tables, tmp / "pipeline", fmt="parquet")
        sub = tables_to_records({k: (v[v["opportunity_id"].isin(tables["opportunities"]["id"][: args.subsample])]
                                     if k != "opportunities" else v.iloc[: args.subsample]) for k, v in tables.items()})
        del tables
        on_disk = sum(f.stat().st_size for f in (tmp / "pipeline").iterdir()) / 2**20
        print(f"generated {sizes['opportunities']:,} deals, {sizes['contacts']:,} contacts, "
              f"{sizes['competitors']:,} competitors, {sizes['partners']:,} partners "
              f"({on_disk:.0f} MiB of Parquet) in {time.perf_counter() - t0:.1f} s")
        print(f"model {scorer.model_version}, rule pack {scorer.pack.version_tag}, {os.cpu_count()} cores")

        sampler = PeakSampler()
        base = tree_rss_mib(os.getpid())
        sampler.start()
        t1 = time.perf_counter()
        summary = run_batch(tmp / "pipeline", tmp / "scores.parquet", pack=scorer.pack, model=scorer.model,
                            workers=args.workers, chunk_size=args.chunk_size, progress=False)
        elapsed = time.perf_counter() - t1
        peak = sampler.stop()
        print(f"batch: {summary['scored']:,} scored, {summary['rejected']:,} rejected in {elapsed:.1f} s "
              f"-> {summary['read'] / elapsed:,.0f} deals/s end to end ({summary['workers']} workers)")
        print(f"peak memory of the process tree: {peak:,.0f} MiB (the parent held {base:,.0f} MiB before the run)")

        t2 = time.perf_counter()
        n = 0
        for rec in sub:
            scorer.score(rec)
            n += 1
        ref = n / (time.perf_counter() - t2)
        print(f"per-record durable-rules path (Scorer.score, one process) on {n:,} of the same deals: {ref:,.0f} deals/s")
        print(f"speed-up of the batch: {summary['read'] / elapsed / ref:,.0f}x")


if __name__ == "__main__":
    main()
