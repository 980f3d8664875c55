"""End-to-end benchmark of the nightly batch: Parquet tables in, Parquet out.

Generates an open pipeline (default 1,000,000 deals with their contacts,
competitors and partners) as Parquet tables, scores it with ``scoring score``'s
library function (column-wise rules, model, reasons, flags; every core), and
prints throughput, the peak memory of the whole process tree (the parent and
its workers, sampled every 50 ms from /proc), and the speed-up against the
per-record path (``Scorer.score``, the library call) measured in the same run on a
subsample.

    .venv/bin/python benchmarks/bench_batch.py [--deals 1000000] [--subsample 2000] [--workers N]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tree_rss_mib(pid: int) -> float:
    """Memory of ``pid`` and all its descendants, MiB: the sum of their proportional set sizes
    (PSS, /proc/<pid>/smaps_rollup), so pages shared between the parent and its forked workers
    count once."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    stack.extend(int(x) for x in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / 2**20


class PeakSampler(threading.Thread):
    """Samples the memory of process ``pid``'s tree every ``interval`` seconds."""

    def __init__(self, pid: int, interval=0.05):
        super().__init__(daemon=True)
        self.peak = 0.0
        self.pid = pid
        self.interval = interval
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.peak = max(self.peak, tree_rss_mib(self.pid))
            time.sleep(self.interval)

    def stop(self):
        self._halt.set()
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

    import pyarrow.parquet as pq

    from scoring.api import Scorer
    from dealscore_datasets.generate import generate_tables, tables_to_records, write_tables

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

        # the nightly command itself, in a fresh process (as the scheduler runs it)
        cmd = [sys.executable, "-m", "scoring.cli", "score", str(tmp / "pipeline"), "--out", str(tmp / "scores.parquet"),
               "--chunk-size", str(args.chunk_size), "--json"]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        if args.model:
            cmd += ["--model", args.model]
        t1 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sampler = PeakSampler(proc.pid)
        sampler.start()
        out, err = proc.communicate()
        elapsed = time.perf_counter() - t1
        peak = sampler.stop()
        if proc.returncode != 0:
            sys.exit(f"scoring score failed ({proc.returncode}): {err}")
        summary = json.loads(out)
        print(f"scoring score: {summary['scored']:,} scored, {summary['rejected']:,} rejected in {elapsed:.1f} s "
              f"wall (process start included; the run itself: {summary['seconds']} s) -> "
              f"{summary['read'] / elapsed:,.0f} deals/s end to end, {summary['workers']} workers")
        print(f"peak memory of the scoring process and its workers: {peak:,.0f} MiB (sum of PSS, sampled every 50 ms)")
        rows = pq.ParquetFile(tmp / "scores.parquet").metadata.num_rows
        print(f"output: {rows:,} rows, {(tmp / 'scores.parquet').stat().st_size / 2**20:.0f} MiB of Parquet")

        t2 = time.perf_counter()
        n = 0
        for rec in sub:
            scorer.score(rec)
            n += 1
        ref = n / (time.perf_counter() - t2)
        print(f"per-record path (Scorer.score, one process) on {n:,} of the same deals: {ref:,.0f} deals/s")
        print(f"speed-up of the batch over the per-record path: {summary['read'] / elapsed / ref:,.0f}x")


if __name__ == "__main__":
    main()
