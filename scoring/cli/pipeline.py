"""``scoring explain`` and ``scoring score``: the commands that score records."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scoring import paths
from scoring.batch import DEFAULT_CHUNK_SIZE, DEFAULT_KEEP, DEFAULT_MAX_REJECTED_SHARE
from scoring.cli.common import _fail_clean, _say, _say_uses, main
from scoring.cli.mapping import mapped, mapping_option
from scoring.errors import ExitCode, InputError, RecordError, ScoringError
from scoring.evidence import LANGS
from scoring.score import DEFAULT_STALL_DAYS, DEFAULT_T3_DROP


@main.command()
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines instead of the readable layout.")
@click.option("--rules", "rules_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Rule pack folder (default: the current model's pack, else rules/default).")
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Model folder (default: the current model, if any). Use --no-model to skip it.")
@click.option("--no-model", is_flag=True, help="Rule score only, no probability.")
@click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True,
              help="Language of titles and actions.")
@click.option("--id", "ids", multiple=True,
              help=f"Only this record id (repeat for several); an id not in FILE is an error (exit {ExitCode.USAGE:d}).")
@click.option("--since", help="Also what changed since the stored run on or before this date (YYYY-MM-DD), "
                              "from the score store (see `scoring history`).")
@click.option("--store", "store_url", help="The score store for --since (default: history.duckdb in out/).")
@mapping_option
@_fail_clean
def explain(file, as_json, rules_path, model_path, no_model, lang, ids, since, store_url, mapping):
    """Score each record of FILE and print its reasons and next actions.

    \b
    Examples:
      scoring explain datasets/sample/pipeline.jsonl --id P-000004
      scoring explain export/ --id P-1 --id P-2 --json --lang zh
    """
    from scoring.score.explain import explain_record, format_explanation
    from scoring.contract.reader import read_records
    from scoring.model.registry import resolve_scoring

    engine, model, notes = resolve_scoring(rules_path, model_path, use_model=not no_model)
    _say_uses(engine, model, file)
    for n in notes:
        _say(f"warning: {n}")
    with mapped(mapping, file, engine.pack.schema) as src:
        res = read_records(src, engine.pack.schema)
    wanted = set(ids)
    rejects = [rj for rj in res.rejects if not wanted or rj.get("id") in wanted]
    records = [rec for rec in res.records if not wanted or rec["id"] in wanted]
    missing = [i for i in dict.fromkeys(ids) if i not in {r["id"] for r in records} | {r.get("id") for r in rejects}]
    if missing:
        raise InputError(f"{file}: no record with id {', '.join(missing)}")
    for rj in rejects:
        click.echo(f"rejected: {RecordError(rj.get('id'), rj.get('field'), rj.get('reason'))}", err=True)
    for ent, names in res.undeclared_fields.items():
        if names:
            _say(f"warning: undeclared {ent} fields (ignored by the rules): {', '.join(names)}")
    if since:
        from scoring.batch.chunks import as_of_date
        from scoring.cli.history import store_of
        from scoring.store.timeline import deal_timeline, format_since

        as_of_date(since)
        store = store_of(store_url)
    first = True
    for rec in records:
        x = explain_record(engine, rec, lang=lang, model=model)
        if since:  # what changed since then, from the store (a deal it has never seen: nothing)
            try:
                t = deal_timeline(store, rec["id"], model=model, pack=engine.pack, lang=lang, since=since)
                x["since"] = {k: t.get(k) for k in ("since", "changes_since", "logit_change_since")}
            except InputError:
                x["since"] = {"since": None, "changes_since": [], "logit_change_since": None}
        if as_json:
            click.echo(json.dumps(x, ensure_ascii=False, default=str))
        else:
            if not first:
                click.echo("")
            click.echo(format_explanation(x, lang, engine.pack))
            if since:
                click.echo(format_since(x["since"], lang))
        first = False
    if rejects:
        sys.exit(ExitCode.FINDINGS)


@main.command()
@click.argument("input_path", metavar="[INPUT]", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "output", type=click.Path(path_type=Path),
              help="Output file: .parquet, .jsonl or .csv (default: out/scores.jsonl).")
@click.option("--model", "model_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model folder (default: the current model in models/).")
@click.option("--rules", "rules_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Score with this rule pack and no model (rule score only).")
@click.option("--rejects", type=click.Path(path_type=Path),
              help="Rejects file (default: <output file name>.rejects.csv).")
@click.option("--previous", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Last run's output: adds probability_change, raises T3, and limits T2 to new slips.")
@click.option("--as-of", "as_of", help="Date for records without as_of (default: today).")
@click.option("--keep", default=",".join(DEFAULT_KEEP), show_default=True,
              help="Input fields to carry into the output, comma-separated.")
@click.option("--forecast", type=click.Path(path_type=Path),
              help="Also write the pipeline forecast (expected value by owner, region, stage, close quarter).")
@click.option("--max-rejected-share", type=float, default=DEFAULT_MAX_REJECTED_SHARE, show_default=True,
              help=f"Exit with code {ExitCode.REJECTED_SHARE:d} when a larger share of the input is rejected.")
@click.option("--t3-drop", type=float, default=DEFAULT_T3_DROP, show_default=True,
              help="T3 when the probability dropped by more than this since the last run.")
@click.option("--stall-days", default=None,
              help="Days in stage before STALLED, e.g. 'relationship=120,bidding=30' "
                   f"(defaults: {', '.join(f'{k}={v}' for k, v in DEFAULT_STALL_DAYS.items())}).")
@click.option("--workers", type=int, default=None, help="Processes (default: every core).")
@click.option("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, show_default=True,
              help="Deals per chunk a worker scores at once (memory grows with it).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--store", "store_url", default=None,
              help="Score store the run appends to: postgresql://user@host/db, or a DuckDB file "
                   "(default: history.duckdb beside the output). Adds trend, changes, changes_since.")
@click.option("--no-store", is_flag=True, help="Do not use a score store (no history columns).")
@click.option("--since-days", type=click.IntRange(min=1), default=7, show_default=True,
              help="changes_since: what changed since the stored run this many days back.")
@click.option("--strict", is_flag=True,
              help=f"Exit with code {ExitCode.USAGE:d}, replacing no output, when the input lacks a child table "
                   "or has undeclared fields (otherwise warnings in the summary).")
@mapping_option
@_fail_clean
def score(input_path, output, model_path, rules_path, rejects, previous, as_of, keep, forecast,
          max_rejected_share, t3_drop, stall_days, workers, chunk_size, as_json, store_url, no_store, since_days,
          strict, mapping):
    """Score every open deal of INPUT (default: the bundled sample pipeline) - the nightly job.

    INPUT is a JSON Lines file or a folder of CSV or Parquet tables (opportunities, contacts,
    competitors, partners).

    \b
    Examples:
      scoring score
      scoring score /exports/pipeline/ --out /data/scores.parquet \\
        --previous /data/scores-yesterday.parquet --forecast /data/forecast.csv
    """
    from scoring.batch.run import run_batch
    from scoring.batch.summary import check_rejected_share, format_summary
    from scoring.model.registry import resolve_scoring
    from scoring.score.flags import Thresholds

    if mapping is not None and input_path is None:
        raise click.UsageError("--mapping needs INPUT, the folder of the CRM export")
    source = input_path or paths.sample_pipeline()
    output = output or paths.default_output()
    engine, model, notes = resolve_scoring(rules_path, model_path, use_model=rules_path is None)
    _say_uses(engine, model, source)
    for n in notes:
        _say(f"warning: {n}")
    if model is None:
        _say("note: no model (scoring the rule score only); train and promote one for probabilities")
    keep_fields = [k.strip() for k in keep.split(",") if k.strip()]
    if store_url and no_store:
        raise click.UsageError("--store and --no-store exclude each other")
    from scoring.store import Store

    store = None if no_store else Store(store_url) if store_url else Store.beside(output)

    def show(summary):  # its warnings are printed with it (see format_summary), and are in its JSON
        if mapping is not None:  # the export, not the temporary folder it was converted into
            summary = {**summary, "input": f"{input_path} (mapped with {mapping.name})"}
        if as_json:
            click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        else:
            _say(format_summary(summary), err=False)
            if summary.get("store"):
                from scoring.store.monitor import format_lines

                _say(format_lines(summary), err=False)

    try:
        with mapped(mapping, source, engine.pack.schema) as source:
            summary = run_batch(source, output, pack=engine.pack, model=model, rejects=rejects, previous=previous,
                                as_of=as_of, keep=keep_fields, forecast=forecast,
                                thresholds=Thresholds(t3_drop=t3_drop, stall_days=_stall_days(stall_days)),
                                workers=workers, chunk_size=chunk_size, strict=strict, store=store,
                                since_days=since_days,
                                checks=[lambda s: check_rejected_share(s, max_rejected_share)])
    except ScoringError as exc:  # a failed check: the previous output is kept, this run's summary is shown
        if getattr(exc, "summary", None) is not None:
            show(exc.summary)
        raise
    show(summary)


def _stall_days(text: str | None) -> dict[str, int]:
    """``--stall-days 'relationship=120,bidding=30'`` over the defaults."""
    stall = dict(DEFAULT_STALL_DAYS)
    for part in filter(None, (text or "").split(",")):
        k, _, v = part.partition("=")
        if k.strip() not in stall or not v.strip().isdigit():
            raise click.BadParameter(f"{part!r}: use stage=days with a stage among {', '.join(stall)}",
                                     param_hint="--stall-days")
        stall[k.strip()] = int(v)
    return stall
