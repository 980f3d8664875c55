"""``scoring generate``: synthetic deals for trials and benchmarks."""
from __future__ import annotations

from pathlib import Path

import click

from scoring.cli.common import _fail_clean, _progress, _say, main


@main.command()
@click.argument("kind", type=click.Choice(["history", "pipeline"]))
@click.option("--deals", type=int, default=1000, show_default=True, help="Number of deals (history: closed deals).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: the same seed gives the same deals.")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="A .jsonl file, or a folder for the table form.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet", "csv"]), default=None,
              help="Default: jsonl for a .jsonl path, else parquet.")
@click.option("--as-of", default=None,
              help="Snapshot date of the pipeline; history deals close before it "
                   "(default: the generator's fixed date, so a seed always gives the same deals).")
@click.option("--snapshots", default=None, help="History: snapshots per deal, LO-HI (default: the generator's).")
@click.option("--dirty", is_flag=True, help="History: spoil ~1.5% of snapshots (for tests of the trainer's filtering).")
@_fail_clean
def generate(kind, deals, seed, out, fmt, as_of, snapshots, dirty):
    """Generate synthetic deals (seeded) in the contract's form.

    \b
    Example:
      scoring generate pipeline --deals 1000000 --seed 1 --out big/ --format parquet
    """
    from dealscore_datasets.generate import GENERATE_STEPS
    from dealscore_datasets.generate import generate as generate_deals
    from scoring.batch.chunks import as_of_date

    options = {}
    if as_of is not None:
        options["as_of"] = as_of_date(as_of)
    if snapshots is not None:
        lo, _, hi = snapshots.partition("-")
        if not lo.isdigit() or not (hi or lo).isdigit():
            raise click.BadParameter(f"{snapshots!r}: use LO-HI, e.g. 1-4", param_hint="--snapshots")
        options["snapshots"] = (int(lo), int(hi or lo))
    with _progress(GENERATE_STEPS, "generating") as step:
        sizes = generate_deals(kind, deals, out, seed=seed, fmt=fmt, dirty=dirty, progress=step, **options)
    _say(f"wrote {kind} ({', '.join(f'{k} {n}' for k, n in sizes.items())}) to {out}")
