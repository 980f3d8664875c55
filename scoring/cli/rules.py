"""``scoring rules``: list and check rule packs."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scoring.cli.common import _fail_clean, main
from scoring.errors import ExitCode
from scoring.evidence import LANGS


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


@rules.command("new")
@click.argument("name")
@click.option("--from", "source", required=True, type=click.Path(exists=True, path_type=Path),
              help="Records to draft from: a JSON Lines file or a folder of contract tables (e.g. closed deals).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Folder to create (default: rules/NAME under $SCORING_HOME or the current folder); "
                   "never an existing one.")
@_fail_clean
def rules_new(name, source, out_dir):
    """Draft a rule pack NAME from the fields of an export: the export's own fields declared with their
    types, and one fact per meaningful value (booleans, categories, numeric thresholds) to edit.

    \b
    Examples:
      scoring rules new ours --from datasets/sample/history.jsonl
      scoring rules check rules/ours && scoring train datasets/sample/history.jsonl --rules rules/ours
    """
    from scoring import paths
    from scoring.evidence.pack import load_pack
    from scoring.evidence.review import run_examples
    from scoring.evidence.scaffold import draft_pack, write_pack

    draft = draft_pack(name, source)
    out = write_pack(draft, out_dir or paths.project_root() / "rules" / name)
    pack = load_pack(out)  # the draft must load and pass its own examples; say so if not (a defect here)
    failures = run_examples(pack)
    click.echo(f"drafted {out}: {draft.facts} facts from {draft.records} records"
               + (f" ({draft.rejected} rejected)" if draft.rejected else "")
               + (f"; declared {len(draft.declared)} fields of the export: {', '.join(draft.declared)}"
                  if draft.declared else ""))
    if draft.skipped:
        click.echo(f"  not drafted: {len(draft.skipped)} fields, values or cut points (listed atop {out / 'facts.yaml'})")
    click.echo(f"next: edit {out} (rules/README.md), then scoring rules check {out}")
    if failures:
        for f in failures:
            click.echo(f"error: drafted rule {f.rule}: example {f.example!r} ends {f.got} {f.detail}".rstrip(),
                       err=True)
        sys.exit(ExitCode.FINDINGS)
