"""The score store: what it adds to the nightly run, and how it answers over many nights.

Generates an open pipeline (default 1,000,000 deals) as Parquet tables and, in one process:

1. scores it without a store (the baseline nightly run), then with a DuckDB store (night 1):
   the append's own time and the store's share of the run (context, history columns, append);
2. adds nights 2..N (default 30) to the store: night 1's rows with the probabilities jittered,
   the as_of moved, and one rule's status changed in ``--moved`` (default 5%) of the deals (so
   what-changed has real work every night), each appended and timed;
3. scores night N+1 with the store: trend and what-changed for every deal of the run, against
   the previous night, the night a week back and the 14-day window; then night N+2 with a
   retrained model (another model version: every deal's change is split into model/pack and
   evidence, the most work what-changed can have);
4. times ``scoring history`` for one deal (the library call, and the command in a new process);
5. prints the store's size on disk, in total and per run.

    .venv/bin/python benchmarks/bench_store.py [--deals 1000000] [--nights 30] [--workers N]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def conditions(deals: int, nights: int) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip() or "?"
    except OSError:
        commit = "?"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"commit {commit}, Python {platform.python_version()}, {os.cpu_count()} cores, load average {load}, "
            f"{deals:,} deals x {nights} nights")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=1_000_000)
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--moved", type=float, default=0.05, help="share of deals whose evidence moves each stored night")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from dealscore_datasets.generate import generate_tables, write_tables
    from scoring.batch.run import run_batch
    from scoring.model.registry import resolve_scoring
    from scoring.store import RunRecord, Store
    from scoring.store.timeline import deal_timeline

    print(conditions(args.deals, args.nights))
    engine, model, _ = resolve_scoring(None, None, use_model=True)
    if model is None:
        sys.exit("no model: train and promote one first (see README)")
    pack = engine.pack

    from scoring.store import nightly

    parts: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                parts[name] = parts.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    # the store's own work in the run's process: reading the past, spilling each chunk's rows, the append
    # (the history columns, T2 and T3 are computed in the worker processes, beside the scoring: their cost
    # is the rest of the difference with the run without a store)
    nightly.NightlyStore.__init__ = timed("context", nightly.NightlyStore.__init__)
    nightly.NightlyStore.take = timed("spill", nightly.NightlyStore.take)
    nightly.NightlyStore.commit = timed("commit", nightly.NightlyStore.commit)

    def store_parts(total: float) -> str:
        own = parts.get("context", 0) + parts.get("spill", 0) + parts.get("commit", 0)
        out = (f"the store's own work in the run's process: reading the past {parts.get('context', 0):.2f} s, "
               f"spilling the rows {parts.get('spill', 0):.2f} s, append (with the monitoring summary) "
               f"{parts.get('commit', 0):.2f} s; the rest, {total - base - own:+.2f} s, is the workers' share "
               "(history columns, T2/T3, the store's columns)")
        parts.clear()
        return out

    class TimedStore(Store):
        appends: list[float] = []

        def append(self, run, deals):
            t = time.perf_counter()
            out = super().append(run, deals)
            self.appends.append(time.perf_counter() - t)
            return out

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        tables = generate_tables(args.deals, seed=args.seed, kind="pipeline")
        shape = {k: len(v) for k, v in tables.items()}
        write_tables(tables, tmp / "pipeline", fmt="parquet")
        del tables
        print(f"input: {shape['opportunities']:,} deals, {shape['contacts']:,} contacts, {shape['competitors']:,} "
              f"competitors, {shape['partners']:,} partners, Parquet tables (generated in "
              f"{time.perf_counter() - t0:.1f} s); {len(pack.rules)} rules; model {model.model_version}")
        day0 = _dt.date(2026, 11, 1)
        kw = dict(pack=pack, model=model, workers=args.workers)

        def wall(*a, **k):
            t = time.perf_counter()
            res = run_batch(*a, **k)
            res["seconds"] = time.perf_counter() - t  # the whole call, the append included
            return res

        base = wall(tmp / "pipeline", tmp / "base.parquet", as_of=day0.isoformat(), **kw)["seconds"]
        print(f"nightly run without a store: {base:.2f} s")
        store = TimedStore(tmp / "history.duckdb")
        parts.clear()
        first = wall(tmp / "pipeline", tmp / "scores.parquet", as_of=day0.isoformat(), store=store, **kw)
        append = store.appends[-1]
        print(f"night 1 with the store: {first['seconds']:.2f} s; the append itself {append:.2f} s "
              f"({100 * append / first['seconds']:.0f}% of the run; the store adds "
              f"{first['seconds'] - base:+.2f} s in all, {100 * (first['seconds'] - base) / base:+.0f}%)")
        print("  " + store_parts(first["seconds"]))

        rows = store.backend.arrow
        with store.backend.connect() as con:
            night1 = rows(con, "SELECT * FROM deal_scores")
        run1 = store.runs().iloc[0]
        rng = np.random.default_rng(0)
        for k in range(1, args.nights):
            day = (day0 + _dt.timedelta(days=k)).isoformat()
            rec = RunRecord(as_of=day, scored_at=f"{day}T02:00:00+00:00", model_version=run1["model_version"],
                            rule_pack_version=run1["rule_pack_version"], rules=run1["rules"],
                            rule_kinds=[r.kind for r in pack.rules], measures=run1["measures"],
                            intercept=float(run1["intercept"]), n_read=args.deals, n_scored=args.deals)
            jitter = rng.normal(0, 0.02, night1.num_rows)
            p = pc.cast(night1.column("win_probability"), pa.float64()).to_numpy(zero_copy_only=False)
            t = night1.set_column(night1.column_names.index("win_probability"), "win_probability",
                                  pa.array(np.clip(p + jitter, 0, 1)))
            t = t.set_column(t.column_names.index("as_of"), "as_of",
                             pa.array([_dt.date.fromisoformat(day)] * t.num_rows, pa.date32()))
            status = np.frombuffer(b"".join(s.encode() for s in night1.column("status").to_pylist()),
                                   dtype=np.uint8).reshape(night1.num_rows, -1).copy()
            moved = np.flatnonzero(rng.random(night1.num_rows) < args.moved)
            cols = rng.integers(0, status.shape[1], len(moved))
            status[moved, cols] = ord("0") + (status[moved, cols] - ord("0") + 1) % 3
            t = t.set_column(t.column_names.index("status"), "status",
                             pa.array([row.tobytes().decode() for row in status], pa.string()))
            store.append(rec, t.drop_columns(["run_id"]))
        added = store.appends[1:]
        if added:
            print(f"nights 2..{args.nights} appended (night 1's rows, probabilities jittered, {100 * args.moved:.0f}% of the deals with one status moved): append median "
                  f"{np.median(added):.2f} s, max {max(added):.2f} s")

        last_day = (day0 + _dt.timedelta(days=args.nights)).isoformat()
        night = wall(tmp / "pipeline", tmp / "scores.parquet", as_of=last_day, store=store, **kw)
        print(f"night {args.nights + 1} with {args.nights} stored nights (trend, what-changed since the previous "
              f"night and a week back, for all {night['scored']:,} deals): {night['seconds']:.2f} s "
              f"({night['seconds'] - base:+.2f} s over the run without a store); its append {store.appends[-1]:.2f} s")
        print("  " + store_parts(night["seconds"]))

        import copy

        retrained = copy.copy(model)
        retrained.manifest = {**model.manifest, "model_id": f"{model.model_version}-retrained"}
        next_day = (day0 + _dt.timedelta(days=args.nights + 1)).isoformat()
        night = wall(tmp / "pipeline", tmp / "scores.parquet", as_of=next_day, store=store, pack=pack,
                     model=retrained, workers=args.workers)
        print(f"night {args.nights + 2} with a retrained model (every deal's change split into model/pack and "
              f"evidence): {night['seconds']:.2f} s ({night['seconds'] - base:+.2f} s over the run without a store); "
              f"its append {store.appends[-1]:.2f} s")
        print("  " + store_parts(night["seconds"]))

        deal = night1.column("deal_id")[night1.num_rows // 2].as_py()
        t3 = time.perf_counter()
        tl = deal_timeline(store, deal, model=model, pack=pack)
        lib = time.perf_counter() - t3
        t4 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "scoring.cli", "history", deal, "--store",
                               str(tmp / "history.duckdb")], cwd=ROOT, capture_output=True, text=True)
        cli = time.perf_counter() - t4
        if proc.returncode:
            sys.exit(f"scoring history failed: {proc.stderr}")
        t5 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "scoring.cli", "--version"], cwd=ROOT, capture_output=True)
        start = time.perf_counter() - t5
        print(f"history of one deal ({len(tl['entries'])} runs) over a store of {args.nights + 2} nights x "
              f"{args.deals:,} deals: {lib:.2f} s (library), {cli:.2f} s (`scoring history` in a new process; "
              f"`scoring --version` takes {start:.2f} s)")
        size = (tmp / "history.duckdb").stat().st_size
        runs = args.nights + 2
        print(f"store on disk: {size / 2**20:,.0f} MiB for {runs} runs, {size / 2**20 / runs:,.1f} "
              f"MiB per run of {args.deals:,} deals ({size / runs / args.deals:,.0f} bytes per deal and run)")
        print(conditions(args.deals, args.nights) + " (at the end)")


if __name__ == "__main__":
    main()
