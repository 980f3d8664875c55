"""``scoring train``, ``promote``, ``rollback``, ``models``, ``report``: the model's life cycle."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scoring import paths
from scoring.cli.common import _fail_clean, _progress, _say, main
from scoring.cli.mapping import mapping_schema, mapped, mapping_option
from scoring.errors import ExitCode
from scoring.evidence import LANGS


@main.command()
@click.argument("history", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--store", "store_url", metavar="URL",
              help="Train on the score store's snapshots of closed deals (recorded with scoring outcomes) "
                   "instead of HISTORY: a DuckDB file or postgresql://user@host:port/db.")
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
@click.option("--free-signs", is_flag=True,
              help="Let learned weights go against the rules' declared directions (default: constrained to them).")
@click.option("--derived/--no-derived", default=False, show_default=True,
              help="Also enter the pack's counts and computed day counts as binned inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON.")
@mapping_option
@_fail_clean
def train(history, store_url, out_dir, rules_path, seed, test_fraction, no_decision_as, min_per_class, free_signs,
          derived, as_json, mapping):
    """Train a model on closed deals in HISTORY (or in the score store, --store) and save it as an artifact.

    With --store the history is the store's snapshots of runs made with the rule pack, joined with
    the outcomes recorded by scoring outcomes (what was known at the time), with the same drops,
    weights and split as from files; no challenger (the store keeps no raw fields), no --derived.

    Exits with code 5 (the artifact is still saved, to inspect) when the model does not beat both
    baselines on its held-out deals by more than noise: do not promote it; with 6 when the store
    cannot be used.

    \b
    Examples:
      scoring train datasets/sample/history.jsonl --out models/mine
      scoring train --store out/history.duckdb --out models/from-store
    """
    from scoring.evidence.coverage import unread_input_fields
    from scoring.model.artifact import save_model
    from scoring.model.metrics import usefulness_warning
    from scoring.model.train import TRAIN_STEPS
    from scoring.model.train import train as train_model
    from scoring.model.from_store import train_from_store

    if (history is None) == (store_url is None):
        raise click.UsageError("give either HISTORY or --store URL (exactly one)")
    if store_url is not None and mapping is not None:
        raise click.UsageError("--mapping converts a HISTORY export; the store holds scored runs: drop --mapping")
    if out_dir is None:
        paths.writable_models_dir()  # refuse the bundled, read-only models folder before the long work
    rules_path = rules_path or paths.default_rules()
    options = dict(rules=rules_path, seed=seed, test_fraction=test_fraction, no_decision_as=no_decision_as,
                   min_per_class=min_per_class, signs="free" if free_signs else "constrained", derived=derived)
    if store_url is not None:
        with _progress(TRAIN_STEPS - 1, "training") as step:  # no challenger step
            result = train_from_store(store_url, progress=step, **options)
        unread = []
    else:
        with mapped(mapping, history, mapping_schema(rules_path) if mapping else None) as history:
            with _progress(TRAIN_STEPS, "training") as step:
                result = train_model(history, progress=step, **options)
            unread = unread_input_fields(result.pack, history)
    path = save_model(result, out_dir)
    verdict = result.metrics["usefulness"]
    split_note = result.counts["split"]["note"]
    if split_note:
        click.echo(f"note: split: {split_note}", err=True)
    summary = {"model": str(path), "source": result.source,
               "metrics": {k: result.metrics[k] for k in ("model", "base_rate", "rule_score", "challenger")
                           if k in result.metrics},
               "usefulness": verdict, "counts": result.counts, "params": result.params, "signs": result.signs,
               "challenger": result.challenger, "unread_fields": unread}
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_training(result, path)
    if unread:  # the model learns nothing from them: say so rather than train on less without a word
        _say(f"note: {len(unread)} input field{'s are' if len(unread) > 1 else ' is'} read by no rule, so the "
             f"model learns nothing from {'them' if len(unread) > 1 else 'it'}: {', '.join(unread)}; add a fact "
             "or rule for those that matter (rules/README.md; scoring rules new NAME --from HISTORY drafts a fact "
             "per field)")
    if not verdict["useful"]:
        click.echo(f"warning: {usefulness_warning(verdict)} Do not use it or promote it (scoring promote refuses "
                   "it without --force); it is saved only to inspect (scoring report). Check the history (are "
                   "the outcomes right? do the rules read the fields that carry signal?) and retrain.", err=True)
        sys.exit(ExitCode.NOT_USEFUL)


def _print_training(result, path: Path) -> None:
    """The text summary of ``scoring train``."""
    c = result.counts
    click.echo(f"trained {path}")
    src = result.source or {}
    origin = (f" from {src['runs']} runs in the store {src['store']}" if src.get("kind") == "store" else
              f" in {src['path']}" if src.get("kind") == "file" else "")
    click.echo(f"  input: {c['input']['snapshots']} snapshots of {c['input']['deals']} deals{origin}, "
               f"{c['input']['rejected']} rejected; dropped: "
               + (", ".join(f"{n} {k}" for k, n in c["drops"].items() if n) or "none"))
    click.echo(f"  train: {c['train']}  (closed {c['train_closed'][0]} .. {c['train_closed'][1]})")
    click.echo(f"  test:  {c['test']}  (closed {c['test_closed'][0]} .. {c['test_closed'][1]})")
    p = result.params
    click.echo(f"  scorecard: C = {p['C']:g}, stage deviations: "
               + (f"kept (penalty x{p['kappa']:g})" if p.get("kappa") else "none (no gain in CV)")
               + f", signs {p['signs']}, {len(p.get('numeric_inputs') or [])} binned inputs")
    click.echo(f"  {'held-out':<24}{'ROC AUC':>9}{'log loss':>10}{'Brier':>8}{'ECE':>8}")
    rows = [("model", "scorecard"), ("challenger", "challenger (GBM)"), ("rule_score", "rule score (Platt)"),
            ("base_rate", "base rate")]
    for name, label in rows:
        if name not in result.metrics:
            continue
        m = result.metrics[name]
        click.echo(f"  {label:<24}{m['roc_auc']:>9.3f}{m['log_loss']:>10.4f}{m['brier']:>8.4f}{m['ece']:>8.4f}")
    verdict = result.metrics["usefulness"]
    for name, label in (("base_rate", "base rate"), ("rule_score", "rule score")):
        b = verdict["baselines"][name]
        click.echo(f"  beats {label + ':':<12}{'yes' if b['beats'] else 'NO':<4} log loss {b['difference']:+.4f} "
                   f"({b['confidence']:.0%} interval {b['interval'][0]:+.4f} .. {b['interval'][1]:+.4f}, "
                   f"paired bootstrap over {b['deals']} held-out deals)")
    for line in training_notes(result):
        click.echo("  " + line)
    if verdict["useful"]:
        click.echo(f"make it current: scoring promote {path}")
    else:
        click.echo("not useful: do not promote it (scoring promote refuses it without --force)")


def training_notes(result) -> list[str]:
    """The summary's lines on the challenger, the raw fields no rule reads, and the signs."""
    out = []
    chal = result.challenger
    if not chal and result.params.get("challenger_skipped"):
        out.append(f"challenger: not fitted ({result.params['challenger_skipped']})")
    if chal:
        a = chal["against_scorecard"]
        lo, hi = a["interval"]
        verdict = ("the challenger is better by more than noise: look at the raw fields below" if lo > 0 else
                   "the scorecard is better by more than noise" if hi < 0 else "no difference beyond noise")
        out.append(f"scorecard vs challenger: log loss {a['difference']:+.4f} ({a['confidence']:.0%} interval "
                   f"{lo:+.4f} .. {hi:+.4f}, paired bootstrap over {a['deals']} held-out deals): {verdict}")
        unread = [r for r in chal["raw_fields"] if r["signal"] and not r["read_by_rules"]]
        if unread:
            out.append("raw fields with signal that no rule reads (write a rule for them): " + ", ".join(
                f"{r['field']} (+{r['rise']:.4f} log loss when shuffled)" for r in unread))
        else:
            out.append("raw fields with signal that no rule reads: none")
    s = result.signs
    if s:
        ll = s["log_loss"]
        d = s["difference"]
        out.append(f"signs {s['published']}: held-out log loss constrained {ll['constrained']:.4f}, free "
                   f"{ll['free']:.4f} (difference {d['difference']:+.4f}, {d['confidence']:.0%} interval "
                   f"{d['interval'][0]:+.4f} .. {d['interval'][1]:+.4f})")
        bad = sorted(s["contradicts"], key=lambda r: -abs(r["log_odds"]))
        if bad:
            where = ("published weights" if s["published"] == "free" else
                     "free fit (the published model holds them at 0; often another term carries the same evidence, "
                     "else the data disagrees with the rule: check it)")
            out.append(f"weights against the declared direction in the {where}: " + ", ".join(
                f"{r['term']}{'@' + r['stage'] if r.get('stage') else ''}{'[' + r['bin'] + ']' if r.get('bin') else ''}"
                f" {r['log_odds']:+.3f}" for r in bad[:12]) + (f" and {len(bad) - 12} more" if len(bad) > 12 else ""))
    return out


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
    from scoring.model.report import REPORT_STEPS, build_report

    model_dir = model_dir or current_model_dir()
    if model_dir is None:
        raise click.UsageError("no current model: give MODEL_DIR")
    with _progress(REPORT_STEPS, "report") as step:
        path = build_report(model_dir, history=history, out=out, lang=lang, rule_stats=rule_stats, progress=step)
    click.echo(f"wrote {path}")
