"""Throughput and memory of the streaming reader (scoring.contract.reader.InputStream) on generated pipeline tables.

    .venv/bin/python benchmarks/bench_ingest.py [--deals 1000000] [--chunk 50000] [--format parquet]
                                                     [--reference 20000]

Generates ``--deals`` pipeline deals (datasets/generate.py, in slices so generation
itself stays small), writes them as tables into a temp dir, then in a FRESH
child process (so its peak RSS is the reader's alone) times:

* the partition pass (``InputStream.partitions()``: an input that fits ``--memory`` bytes has each table
  read once and cut into partition files; a larger one, or any with ``--memory 0``, is hash-bucketed
  into Arrow IPC files in one streaming pass),
* loading + validating every partition (``load_partition``), one core,

and reports deals/s and peak RSS (``ru_maxrss``).  ``--reference N`` also
times ``scoring.contract.reader.read_records`` (nested records) on the first N deals.
Prints figures, asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dealscore_datasets.generate import generate_tables  # noqa: E402

TABLES = ("opportunities", "contacts", "competitors", "partners")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_input(n: int, folder: Path, fmt: str, slice_deals: int = 250_000) -> dict[str, int]:
    """Pipeline deals in slices of different seeds (ids numbered on), written as one table each."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from dealscore_datasets.forms import arrow_table

    folder.mkdir(parents=True, exist_ok=True)
    writers: dict[str, object] = {}
    counts = dict.fromkeys(TABLES, 0)
    done = 0
    k = 0
    while done < n:
        m = min(slice_deals, n - done)
        tables = generate_tables(m, seed=1000 + k, id_offset=done)
        for name in TABLES:
            t = arrow_table(tables[name])
            counts[name] += t.num_rows
            if name not in writers:
                path = folder / f"{name}.{fmt}"
                writers[name] = (pq.ParquetWriter(path, t.schema, compression="zstd") if fmt == "parquet"
                                 else pacsv.CSVWriter(path, t.schema))
            writers[name].write_table(t)
        done += m
        k += 1
        del tables
    for w in writers.values():
        w.close()
    return counts


def child(args) -> int:
    from scoring.contract.reader import InputStream, load_partition
    from scoring.evidence.pack import load_pack

    pack = load_pack(args.pack)
    out: dict = {}
    t0 = time.perf_counter()
    memory = {} if args.memory is None else {"memory": args.memory}
    stream = InputStream(args.input, pack.schema, chunk_size=args.chunk, workdir=args.workdir,
                         fields=pack.fields if args.pack_fields else None, **memory)
    specs = stream.partitions()
    t1 = time.perf_counter()
    out["partitions"] = len(specs)
    out["partition_s"] = t1 - t0
    out["rss_after_partition_mb"] = _rss_mb()
    n = good = rejects = children = 0
    worst = 0.0
    for spec in specs:
        a = time.perf_counter()
        c = load_partition(spec)
        worst = max(worst, time.perf_counter() - a)
        n += c.n_read
        good += len(c.frames.opps)
        rejects += len(c.rejects)
        children += sum(len(df) for df in c.frames.children.values())
        del c
    t2 = time.perf_counter()
    stream.close()
    out.update(load_s=t2 - t1, total_s=t2 - t0, deals=n, good=good, rejects=rejects, child_rows=children,
               slowest_partition_s=worst, peak_rss_mb=_rss_mb())
    if args.reference:
        from scoring.contract.reader import read_records
        import pyarrow.parquet as pq

        ref_dir = Path(args.workdir) / "ref"
        ref_dir.mkdir(parents=True, exist_ok=True)
        opp = pq.read_table(Path(args.input) / "opportunities.parquet").slice(0, args.reference)
        ids = set(opp.column("id").to_pylist())
        pq.write_table(opp, ref_dir / "opportunities.parquet")
        for name in TABLES[1:]:
            t = pq.read_table(Path(args.input) / f"{name}.parquet")
            mask = pd.Series(t.column("opportunity_id").to_pylist()).isin(ids).to_numpy()
            pq.write_table(t.filter(mask), ref_dir / f"{name}.parquet")
        a = time.perf_counter()
        read_records(ref_dir, pack.schema)
        out["reference_deals_per_s"] = args.reference / (time.perf_counter() - a)
    print(json.dumps(out))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deals", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=50_000)
    ap.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    ap.add_argument("--pack", default=str(ROOT / "rules" / "default"))
    ap.add_argument("--pack-fields", action="store_true", help="keep only the pack's fields in the frames")
    ap.add_argument("--reference", type=int, default=0, help="also time read_records on this many deals")
    ap.add_argument("--memory", type=int, default=None,
                    help="bytes the tables may take to be partitioned in memory (0: bucket files; "
                         "default: the reader's, scoring.contract.sources.MEMORY_BYTES)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        counts = write_input(args.deals, tmp / "in", args.format)
        size = sum(p.stat().st_size for p in (tmp / "in").iterdir())
        print(f"input: {counts} ({size / 2**20:.0f} MiB {args.format}), written in "
              f"{time.perf_counter() - t0:.1f}s")
        cmd = [sys.executable, __file__, "--child", "--input", str(tmp / "in"), "--workdir", str(tmp / "work"),
               "--chunk", str(args.chunk), "--pack", args.pack, "--reference", str(args.reference)]
        if args.pack_fields:
            cmd.append("--pack-fields")
        if args.memory is not None:
            cmd += ["--memory", str(args.memory)]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        n = res["deals"]
        print(f"partitions: {res['partitions']} (chunk {args.chunk})")
        print(f"partition pass : {res['partition_s']:7.2f}s  {n / res['partition_s']:10,.0f} deals/s")
        print(f"load+validate  : {res['load_s']:7.2f}s  {n / res['load_s']:10,.0f} deals/s  "
              f"(slowest partition {res['slowest_partition_s']:.2f}s)")
        print(f"total ingestion: {res['total_s']:7.2f}s  {n / res['total_s']:10,.0f} deals/s  (one core)")
        print(f"deals {n:,}, good {res['good']:,}, rejects {res['rejects']:,}, child rows {res['child_rows']:,}")
        print(f"peak RSS {res['peak_rss_mb']:.0f} MB (after the partition pass {res['rss_after_partition_mb']:.0f} MB)")
        if "reference_deals_per_s" in res:
            print(f"reference read_records: {res['reference_deals_per_s']:,.0f} deals/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
