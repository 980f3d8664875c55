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
