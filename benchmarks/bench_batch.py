"""End-to-end benchmark of the nightly batch, with its I/O floor and its conditions.

Each case generates an open pipeline, then runs ``scoring score`` on it in a
fresh process, as a scheduler runs it (process start, imports, model load,
workers, output written; Parquet out), and in another fresh process the I/O
floor of the same input: read it (the four Parquet tables, or the JSON Lines
file with ``pyarrow.json``) and write a Parquet file of its deals.  It prints,
per case: deals/s end to end, the ratio of the run's wall time to the floor's
(both measured in the same sitting, so the ratio holds on a busy machine
better than either figure), the CPU seconds of the whole process tree, the
peak memory (sum of PSS of the process and its workers, sampled every 50 ms),
and the load average before and after; once: the commit, Python, cores and
the input shapes.

Cases (``--cases``, comma-separated ``kind:deals``):

* ``parquet:N``: N clean deals as Parquet tables;
* ``dirty:N``: the same with about 5% bad rows of mixed kinds, 1% each: a
  fractional number in a whole-number field (``tech_presentations``, a float
  column), a date that does not exist (``expected_close``, a text column), a
  stage outside the list, a contact with a role outside the list (rejects its
  deal), an exact duplicate (id, as_of); plus orphan contacts (1% of the deal
  count) whose deal does not exist.  The benchmark checks that the rejects
  file names exactly these rows (and fails otherwise);
* ``jsonl:N``: N clean nested deals as JSON Lines.

Default: ``parquet:200000,parquet:1000000,dirty:200000,jsonl:200000``.

    .venv/bin/python benchmarks/bench_batch.py [--cases ...] [--workers N] [--chunk-size 50000] [--repeat 1]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_CASES = "parquet:200000,parquet:1000000,dirty:200000,jsonl:200000"
#: the I/O floor: read the input, write a Parquet file of its deals (argv: input, output)
FLOOR = """
import sys, pyarrow as pa, pyarrow.parquet as pq
src, out = sys.argv[1], sys.argv[2]
if src.endswith(".jsonl"):
    import pyarrow.json as pj
    opps = pj.read_json(src)
else:
    tables = {n: pq.read_table(f"{src}/{n}.parquet") for n in ("opportunities", "contacts", "competitors", "partners")}
    opps = tables["opportunities"]
pq.write_table(opps, out)
"""


def tree_pss_mib(pid: int) -> float:
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
            self.peak = max(self.peak, tree_pss_mib(self.pid))
            time.sleep(self.interval)

    def stop(self):
        self._halt.set()
        self.join()
        return self.peak


def run_timed(cmd: list[str]) -> dict:
    """Run ``cmd`` in a fresh process: wall seconds, CPU seconds of its tree, peak PSS, stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = PeakSampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    peak = sampler.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {err[-2000:]}")
    return {"wall": wall, "cpu": cpu, "peak": peak, "out": out, "load": (load, os.getloadavg()[0])}


def make_dirty(tables: dict, seed: int) -> dict:
    """Spoil ~5% of the deals (see the module docstring); returns the expected rejects and orphans."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    opps = tables["opportunities"]
    n = len(opps)
    k = max(1, n // 100)
    pick = rng.choice(n, size=5 * k, replace=False)
    frac, date, stage, child, dup = (pick[i * k:(i + 1) * k] for i in range(5))
    opps = opps.copy()
    tp = opps["tech_presentations"].astype("Float64")
    tp.iloc[frac] = 2.5
    opps["tech_presentations"] = tp
    ec = opps["expected_close"].dt.strftime("%Y-%m-%d").astype("string")
    ec.iloc[date] = "2026-02-30"
    opps["expected_close"] = ec
    st = opps["stage"].astype("string")
    st.iloc[stage] = "closing"
    opps["stage"] = st
    contacts = tables["contacts"].copy()
    ids = opps["id"].to_numpy(dtype=object)
    bad_child = pd.DataFrame({"opportunity_id": ids[child], "role": "boss"}).astype("string")
    orphans = pd.DataFrame({"opportunity_id": [f"NO-SUCH-DEAL-{i}" for i in range(k)], "role": "user"}).astype("string")
    tables["contacts"] = pd.concat([contacts, bad_child, orphans], ignore_index=True)
    tables["opportunities"] = pd.concat([opps, opps.iloc[dup]], ignore_index=True)
    rejected = set(ids[np.concatenate([frac, date, stage, child, dup])].tolist())
    return {"rejected": rejected, "n_rejected": 5 * k, "orphans": set(orphans["opportunity_id"])}


def case_input(kind: str, deals: int, folder: Path, seed: int) -> tuple[Path, dict, dict | None]:
    """Generate one case's input: (path, rows per table, the dirty case's expectations)."""
    from dealscore_datasets.generate import generate_tables, tables_to_records, write_jsonl, write_tables

    tables = generate_tables(deals, seed=seed, kind="pipeline")
    expect = make_dirty(tables, seed) if kind == "dirty" else None
    shape = {k: len(v) for k, v in tables.items()}
    if kind == "jsonl":
        path = folder / f"pipeline-{deals}.jsonl"
        write_jsonl(tables_to_records(tables), path)
    else:
        path = folder / f"{kind}-{deals}"
        write_tables(tables, path, fmt="parquet")
    return path, shape, expect


def check_rejects(rejects: Path, expect: dict, summary: dict) -> str:
    """The dirty case: every bad row, and only those, is in the rejects file."""
    import pyarrow.csv as pacsv

    t = pacsv.read_csv(rejects).to_pylist()
    got_rej = {r["id"] for r in t if r["kind"] == "record"}
    got_orph = {r["id"] for r in t if r["kind"] == "orphan"}
    n_rej = sum(1 for r in t if r["kind"] == "record")
    problems = []
    if summary["rejected"] != expect["n_rejected"] or n_rej != expect["n_rejected"]:
        problems.append(f"rejected {summary['rejected']} (file: {n_rej}), expected {expect['n_rejected']}")
    if got_rej != expect["rejected"]:
        problems.append(f"{len(got_rej ^ expect['rejected'])} record ids differ from the spoilt ones")
    if got_orph != expect["orphans"]:
        problems.append(f"orphans {len(got_orph)}, expected {len(expect['orphans'])}")
    if problems:
        sys.exit("dirty input: " + "; ".join(problems))
    return f"rejects check: {n_rej:,} rejected records and {len(got_orph):,} orphans, exactly the spoilt rows"


def conditions() -> str:
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    commit = git("rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC  commit {commit}{dirty}  "
            f"Python {platform.python_version()}  {cores} cores usable ({os.cpu_count()} online)  "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=DEFAULT_CASES, help=f"comma-separated kind:deals (default {DEFAULT_CASES})")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--chunk-size", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each case (and of its floor), alternating")
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--model", default=None, help="model folder (default: the current model)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    cases = []
    for part in args.cases.split(","):
        kind, _, n = part.partition(":")
        if kind not in ("parquet", "dirty", "jsonl") or not n.isdigit():
            ap.error(f"bad case {part!r}: use parquet:N, dirty:N or jsonl:N")
        cases.append((kind, int(n)))

    print(conditions())
    results = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        for kind, deals in cases:
            t0 = time.perf_counter()
            path, shape, expect = case_input(kind, deals, tmp, args.seed)
            size = (path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.iterdir())) / 2**20
            print(f"\n[{kind} {deals:,}] input: {', '.join(f'{v:,} {k}' for k, v in shape.items())}; "
                  f"{size:,.0f} MiB of {'JSON Lines' if kind == 'jsonl' else 'Parquet (zstd)'}; "
                  f"generated in {time.perf_counter() - t0:.0f} s")
            out = tmp / "scores.parquet"
            cmd = [sys.executable, "-m", "scoring.cli", "score", str(path), "--out", str(out), "--json",
                   "--max-rejected-share", "0.5"]
            if args.workers:
                cmd += ["--workers", str(args.workers)]
            if args.chunk_size:
                cmd += ["--chunk-size", str(args.chunk_size)]
            if args.model:
                cmd += ["--model", args.model]
            floor_cmd = [sys.executable, "-c", FLOOR, str(path), str(tmp / "floor.parquet")]
            for r in range(args.repeat):
                floor = run_timed(floor_cmd)
                run = run_timed(cmd)
                summary = json.loads(run["out"])
                read = summary["read"]
                line = (f"  run {r + 1}: {read / run['wall']:,.0f} deals/s end to end ({run['wall']:.2f} s wall, "
                        f"{run['cpu']:.1f} s CPU, {summary['workers']} workers, "
                        f"inside the run {summary['seconds']} s); "
                        f"I/O floor {floor['wall']:.2f} s wall ({floor['cpu']:.1f} s CPU) -> ratio "
                        f"{run['wall'] / floor['wall']:.1f}x; peak {run['peak']:,.0f} MiB; "
                        f"load {run['load'][0]:.1f} -> {run['load'][1]:.1f}")
                print(line)
                results.append((kind, deals, read / run["wall"], run["wall"] / floor["wall"], run["peak"]))
            print(f"  {summary['read']:,} read, {summary['scored']:,} scored, {summary['rejected']:,} rejected, "
                  f"{summary['orphans']:,} orphan child rows")
            if expect is not None:
                print("  " + check_rejects(Path(summary["rejects"]), expect, summary))
    print("\nsummary (deals/s end to end, ratio to the I/O floor, peak MiB):")
    for kind, deals, rate, ratio, peak in results:
        print(f"  {kind:8s} {deals:>9,}  {rate:>9,.0f}/s  {ratio:5.1f}x  {peak:7,.0f} MiB")
    print(conditions())


if __name__ == "__main__":
    main()
