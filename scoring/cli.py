"""The ``scoring`` command.  Thin: each command loads inputs, calls one library
function, writes outputs, and turns library errors into one clear line on
stderr and a non-zero exit.

Exit codes (:class:`scoring.errors.ExitCode`):

====  ==========================================================================
code  meaning
====  ==========================================================================
0     success
1     the command ran, but something it checked did not pass: ``explain``
      rejected some records (each named on stderr), ``rules check`` found a
      rule example that does not end in its stated status
2     usage or input error: a bad option or argument (click's usage errors), an
      ``explain --id`` not in the file, a bad date, rule pack, model or input
      file, a ``--previous`` that is not an output of ``score``, an input
      ``score --strict`` refuses (a missing child table, an undeclared field),
      two files of one run that would be the same file, another run writing
      the same output; one line ``error: ...`` on stderr, nothing written
3     ``score``: a larger share of the input was rejected than
      ``--max-rejected-share``: the previous output, rejects, summary and
      forecast are kept; this run's rejects and summary are written under their
      failed names (``OUTPUT.rejects.failed.csv``, ``OUTPUT.summary.failed.json``)
4     a file or folder could not be read or written (permission denied, a path
      that is a folder, disk full, ...): one line naming the path; a run's
      outputs are replaced only at its end, so the previous ones are intact
5     the model is not useful: ``train`` saved a model that does not beat both
      baselines (base rate, rule score alone) on its held-out deals by more
      than noise (a warning says by how much; the verdict is in its manifest);
      ``promote`` refuses such a model unless ``--force``
====  ==========================================================================

An unexpected internal error ends in a Python traceback (exit code 1).

Global options (before the command): ``--quiet`` prints only errors (and the
output a command was asked for: explanations, lists, ``--json``), no
warnings, notes or summaries; ``--verbose`` also prints what a command uses
(input, rule pack, model) on stderr.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scoring import paths
from scoring.batch import DEFAULT_CHUNK_SIZE, DEFAULT_KEEP, DEFAULT_MAX_REJECTED_SHARE
from scoring.errors import ExitCode, InputError, RecordError, ScoringError
from scoring.evidence import LANGS
from scoring.score import DEFAULT_STALL_DAYS, DEFAULT_T3_DROP

if TYPE_CHECKING:  # the commands import the library lazily, to start fast
    from scoring.evidence.durable import Engine
    from scoring.model.logistic import Model


#: ``--quiet`` / normal / ``--verbose``
QUIET, NORMAL, VERBOSE = -1, 0, 1


def _level() -> int:
    """The verbosity the ``scoring`` group was given (normal outside a command)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, int) else NORMAL


def _say(message: str, *, err: bool = True, level: int = NORMAL) -> None:
    """Print a warning, note or summary line unless the run is quieter than ``level``
    (``NORMAL``: not under ``--quiet``; ``VERBOSE``: only under ``--verbose``).  Errors are
    never passed through here: they are always printed."""
    if _level() >= level:
        click.echo(message, err=err)


def _fail_clean(fn):
    """Library errors become one clear line on stderr and the error's exit code (see the table above)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ScoringError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:  # the operating system's refusal, named by its path
            path = exc.filename2 or exc.filename
            what = exc.strerror or exc.__class__.__name__
            click.echo(f"error: {path}: {what}" if path else f"error: {exc}", err=True)
            sys.exit(ExitCode.IO)

    return wrapper


_EXIT_CODES = "Exit codes: " + "; ".join(f"{code:d} {code.summary}" for code in ExitCode) + "."


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EXIT_CODES)
@click.version_option(package_name="dealscore")
@click.option("-q", "--quiet", "quiet", is_flag=True, help="Print only errors (and the output asked for).")
@click.option("-v", "--verbose", "verbose", is_flag=True,
              help="Also print what each command uses (input, rule pack, model).")
@click.pass_context
def main(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    """Win-probability scoring of B2B sales opportunities.

    \b
    Examples:
      scoring score                                    # the bundled sample -> out/scores.jsonl
      scoring --quiet score /exports/pipeline/ --out /data/scores.parquet
      scoring explain datasets/sample/pipeline.jsonl --id P-000004
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other")
    ctx.obj = QUIET if quiet else VERBOSE if verbose else NORMAL


def _say_uses(engine: Engine, model: Model | None, source: Path | None = None) -> None:
    """``--verbose``: the input, rule pack and model a command uses."""
    if source is not None:
        _say(f"input: {source}", level=VERBOSE)
    _say(f"rule pack: {engine.pack.version_tag} ({engine.pack.path})", level=VERBOSE)
    _say(f"model: {model.model_version if model is not None else 'none (rule score only)'}", level=VERBOSE)


# --------------------------------------------------------------------------- explain


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
@_fail_clean
def explain(file, as_json, rules_path, model_path, no_model, lang, ids):
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
    res = read_records(file, engine.pack.schema)
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
    first = True
    for rec in records:
        x = explain_record(engine, rec, lang=lang, model=model)
        if as_json:
            click.echo(json.dumps(x, ensure_ascii=False, default=str))
        else:
            if not first:
                click.echo("")
            click.echo(format_explanation(x, lang))
        first = False
    if rejects:
        sys.exit(ExitCode.FINDINGS)


# --------------------------------------------------------------------------- score


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
@click.option("--strict", is_flag=True,
              help=f"Exit with code {ExitCode.USAGE:d}, replacing no output, when the input lacks a child table "
                   "or has undeclared fields (otherwise warnings in the summary).")
@_fail_clean
def score(input_path, output, model_path, rules_path, rejects, previous, as_of, keep, forecast,
          max_rejected_share, t3_drop, stall_days, workers, chunk_size, as_json, strict):
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

    source = input_path or paths.sample_pipeline()
    output = output or paths.default_output()
    engine, model, notes = resolve_scoring(rules_path, model_path, use_model=rules_path is None)
    _say_uses(engine, model, source)
    for n in notes:
        _say(f"warning: {n}")
    if model is None:
        _say("note: no model (scoring the rule score only); train and promote one for probabilities")
    keep_fields = [k.strip() for k in keep.split(",") if k.strip()]

    def show(summary):  # its warnings are printed with it (see format_summary), and are in its JSON
        if as_json:
            click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        else:
            _say(format_summary(summary), err=False)

    try:
        summary = run_batch(source, output, pack=engine.pack, model=model, rejects=rejects, previous=previous,
                            as_of=as_of, keep=keep_fields, forecast=forecast,
                            thresholds=Thresholds(t3_drop=t3_drop, stall_days=_stall_days(stall_days)),
                            workers=workers, chunk_size=chunk_size, strict=strict,
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


# --------------------------------------------------------------------------- rules


@main.group()
def rules():
    """Review rule packs.

    \b
    Examples:
      scoring rules list --format csv --lang zh > codes.csv
      scoring rules check rules/mine --against datasets/sample/pipeline.jsonl
    """


@rules.command("list")
@click.argument("pack", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text", show_default=True,
              help="text: one line per rule; csv or json: every column (a lookup table).")
@click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True,
              help="Language of titles and actions.")
@_fail_clean
def rules_list(pack, fmt, lang):
    """List the rules of PACK (default: the current pack): the codes the nightly output uses, with
    their kind, stage, points, methodology ids, title and action - e.g. a lookup table for the CRM.

    \b
    Examples:
      scoring rules list
      scoring rules list rules/default --format csv --lang zh > codes.csv
    """
    from scoring.evidence.pack import load_pack
    from scoring.model.registry import current_pack_path
    from scoring.score.labels import format_codes

    click.echo(format_codes(load_pack(pack or current_pack_path()), fmt, lang), nl=False)


@rules.command("check")
@click.argument("pack", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--against", "against", type=click.Path(exists=True, path_type=Path),
              help="Sample records: show how each one's score and flags change against the current pack.")
@click.option("--current", "current", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The pack to compare with (default: the current model's pack, else rules/default).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_fail_clean
def rules_check(pack, against, current, as_json):
    """Validate PACK, run its examples, and preview its effect on sample records.

    \b
    Examples:
      scoring rules check rules/mine
      scoring rules check rules/mine --against datasets/sample/pipeline.jsonl --json
    """
    from scoring.evidence.pack import load_pack
    from scoring.model.registry import current_pack_path
    from scoring.score.review import check_pack, format_check

    new = load_pack(pack)
    old = load_pack(current or current_pack_path()) if against is not None else None
    report = check_pack(new, against, old)
    failures = report["example_failures"]
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        click.echo(format_check(report))
    if failures:
        sys.exit(ExitCode.FINDINGS)


# --------------------------------------------------------------------------- models


@main.command()
@click.argument("history", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Artifact folder to create (default: models/<model id> of $SCORING_HOME or the current folder).")
@click.option("--rules", "rules_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Rule pack to learn from (default: rules/default).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of the fit: the same seed and history give the same model.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Share of deals, the newest closed, held out for the metrics.")
@click.option("--no-decision", "no_decision_as", type=click.Choice(["lost", "drop"]), default="lost",
              show_default=True, help="How no_decision outcomes count.")
@click.option("--min-per-class", type=int, default=40, show_default=True,
              help="Fewest won and fewest lost deals needed to train.")
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON.")
@_fail_clean
def train(history, out_dir, rules_path, seed, test_fraction, no_decision_as, min_per_class, as_json):
    """Train a model on closed deals in HISTORY and save it as an artifact.

    Exits with code 5 (the artifact is still saved, to inspect) when the model does not beat both
    baselines on its held-out deals by more than noise: do not promote it.

    \b
    Example:
      scoring train datasets/sample/history.jsonl --out models/mine
    """
    from scoring.model.artifact import save_model
    from scoring.model.metrics import usefulness_warning
    from scoring.model.train import train as train_model

    if out_dir is None:
        paths.writable_models_dir()  # refuse the bundled, read-only models folder before the long work
    result = train_model(history, rules=rules_path or paths.default_rules(), seed=seed,
                         test_fraction=test_fraction, no_decision_as=no_decision_as,
                         min_per_class=min_per_class)
    path = save_model(result, out_dir)
    verdict = result.metrics["usefulness"]
    split_note = result.counts["split"]["note"]
    if split_note:
        click.echo(f"note: split: {split_note}", err=True)
    summary = {"model": str(path), "metrics": {k: result.metrics[k] for k in ("model", "base_rate", "rule_score")},
               "usefulness": verdict, "counts": result.counts, "params": result.params}
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_training(result, path)
    if not verdict["useful"]:
        click.echo(f"warning: {usefulness_warning(verdict)} Do not use it or promote it (scoring promote refuses "
                   "it without --force); it is saved only to inspect (scoring report). Check the history (are "
                   "the outcomes right? do the rules read the fields that carry signal?) and retrain.", err=True)
        sys.exit(ExitCode.NOT_USEFUL)


def _print_training(result, path: Path) -> None:
    """The text summary of ``scoring train``."""
    c = result.counts
    click.echo(f"trained {path}")
    click.echo(f"  input: {c['input']['snapshots']} snapshots of {c['input']['deals']} deals, "
               f"{c['input']['rejected']} rejected; dropped: "
               + (", ".join(f"{n} {k}" for k, n in c["drops"].items() if n) or "none"))
    click.echo(f"  train: {c['train']}  (closed {c['train_closed'][0]} .. {c['train_closed'][1]})")
    click.echo(f"  test:  {c['test']}  (closed {c['test_closed'][0]} .. {c['test_closed'][1]})")
    click.echo(f"  C = {result.params['C']:g}")
    click.echo(f"  {'held-out':<24}{'ROC AUC':>9}{'log loss':>10}{'Brier':>8}{'ECE':>8}")
    for name, label in (("model", "model"), ("rule_score", "rule score (Platt)"), ("base_rate", "base rate")):
        m = result.metrics[name]
        click.echo(f"  {label:<24}{m['roc_auc']:>9.3f}{m['log_loss']:>10.4f}{m['brier']:>8.4f}{m['ece']:>8.4f}")
    verdict = result.metrics["usefulness"]
    for name, label in (("base_rate", "base rate"), ("rule_score", "rule score")):
        b = verdict["baselines"][name]
        click.echo(f"  beats {label + ':':<12}{'yes' if b['beats'] else 'NO':<4} log loss {b['difference']:+.4f} "
                   f"({b['confidence']:.0%} interval {b['interval'][0]:+.4f} .. {b['interval'][1]:+.4f}, "
                   f"paired bootstrap over {b['deals']} held-out deals)")
    if verdict["useful"]:
        click.echo(f"make it current: scoring promote {path}")
    else:
        click.echo("not useful: do not promote it (scoring promote refuses it without --force)")


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True,
              help="Promote even if the model does not beat the baselines, is worse than the current model, "
                   "or cannot be compared with it.")
@click.option("--history", type=click.Path(exists=True, path_type=Path),
              help="Closed deals to compare on (default: the bundled sample history).")
@_fail_clean
def promote(model_dir, force, history):
    """Make MODEL_DIR the current model, if it beat both baselines when trained (exit 5 otherwise) and
    is no worse than the current one on enough of the same held-out deals (README, "Retrain").

    \b
    Example:
      scoring promote models/mine --history datasets/sample/history.jsonl
    """
    from scoring.model.registry import promote as promote_model

    rep = promote_model(model_dir, force=force, history=history)
    for n in rep.get("notes", []):
        click.echo(f"note: {n}", err=True)
    cmp = rep.get("comparison")
    if cmp:
        d = cmp["difference"]
        click.echo(f"compared on {cmp['deals']} held-out deals ({cmp['held_out']}) of "
                   f"{history or paths.sample_history()}: log loss {cmp['log_loss_new']:.4f} (new) vs "
                   f"{cmp['log_loss_current']:.4f} (current), difference {d['difference']:+.4f} "
                   f"({d['confidence']:.0%} interval {d['interval'][0]:+.4f} .. {d['interval'][1]:+.4f})")
    elif rep.get("not_compared"):
        click.echo(f"not compared with the current model: {rep['not_compared']}", err=True)
    if rep.get("promoted"):
        click.echo(f"current model: {rep['model']} (was {rep['previous'] or 'none'})" + (" [forced]" if force else ""))
    else:
        click.echo(rep.get("note", "not promoted"))


@main.command()
@_fail_clean
def rollback():
    """Make the previously current model current again.

    \b
    Example:
      scoring rollback
    """
    from scoring.model.registry import rollback as rollback_model

    d = rollback_model()
    click.echo(f"current model: {d.name}")


@main.command("models")
@_fail_clean
def list_models_cmd():
    """List the model artifacts in models/ ($SCORING_HOME's, the current folder's, else the bundled ones;
    * marks the current one).

    \b
    Example:
      scoring models
    """
    from scoring.model.registry import list_models

    models = list_models()
    if not models:
        click.echo(f"no model artifacts in {paths.models_dir()} {paths.how_to_set_home()}", err=True)
    for m in models:
        ll = f"{m['log_loss']:.4f}" if m["log_loss"] is not None else "-"
        click.echo(f"{'*' if m['current'] else ' '} {m['folder']:<40} {m['created_at'] or '':<22} "
                   f"log loss {ll:<8} {m['rule_pack'] or ''}")


@main.command()
@click.argument("model_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), help="HTML file (default: out/report-<model id>.html).")
@click.option("--history", type=click.Path(exists=True, path_type=Path),
              help="History holding the model's test deals, for the curves and the per-rule rates (without it: "
                   "only the held-out predictions stored in the model; an older model without them needs it).")
@click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True,
              help="Language of the report.")
@click.option("--rule-stats", type=click.Choice(["all", "test"]), default="all", show_default=True,
              help="Per-rule fire and win rates on all history, or on the held-out deals only.")
@_fail_clean
def report(model_dir, out, history, lang, rule_stats):
    """Write the model report of MODEL_DIR (default: the current model) as one self-contained HTML file.

    \b
    Example:
      scoring report models/mine --history datasets/sample/history.jsonl --out out/report.html
    """
    from scoring.model.registry import current_model_dir
    from scoring.model.report import build_report

    model_dir = model_dir or current_model_dir()
    if model_dir is None:
        raise click.UsageError("no current model: give MODEL_DIR")
    path = build_report(model_dir, history=history, out=out, lang=lang, rule_stats=rule_stats)
    click.echo(f"wrote {path}")


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
    sizes = generate_deals(kind, deals, out, seed=seed, fmt=fmt, dirty=dirty, **options)
    _say(f"wrote {kind} ({', '.join(f'{k} {n}' for k, n in sizes.items())}) to {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
