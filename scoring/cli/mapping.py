"""``scoring map``: a CRM export -> the contract's table form, by a mapping file (or a dry run of it)."""
from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from scoring.cli.common import _fail_clean, _say, main
from scoring.errors import ExitCode

#: distinct bad values printed per column (the JSON report has them all)
_SHOWN = 10


def shipped_mappings() -> dict[str, Path]:
    """The mappings shipped in the package (``salesforce``, ``hubspot``, ``odoo``): name -> file."""
    from scoring import paths

    folder = paths.bundled("datasets") / "mappings"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def _mapping_file(ctx, param, value):
    """A mapping file, or the name of a shipped one (``salesforce``)."""
    if value is None or Path(value).is_file():
        return None if value is None else Path(value)
    shipped = shipped_mappings()
    if str(value) in shipped:
        return shipped[str(value)]
    raise click.BadParameter(f"{value}: no such file, nor a shipped mapping ({', '.join(shipped) or 'none installed'})",
                             ctx=ctx, param=param)


@main.command("map")
@click.argument("mapping", callback=_mapping_file)
@click.argument("export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the contract's tables into (opportunities.csv, contacts.csv, ...).")
@click.option("--check", is_flag=True,
              help=f"Dry run: list unmapped columns, unmapped values with counts and the rows the contract would "
                   f"reject; write nothing (exit {ExitCode.FINDINGS:d} when it finds any).")
@click.option("--rules", "rules_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also allow the fields this rule pack declares (default: the contract's fields only).")
@click.option("--json", "as_json", is_flag=True, help="--check: print the report as JSON.")
@_fail_clean
def map_cmd(mapping, export_dir, out_dir, check, rules_path, as_json):
    """Convert the CRM export in EXPORT_DIR into the contract's form with the mapping file MAPPING
    (or a shipped mapping by name: salesforce, hubspot, odoo).

    The output folder is an input of every command (score, explain, train). `score`, `explain` and
    `train` also take `--mapping MAPPING` to convert on the fly. The shipped mappings and sample
    exports are in the installed package dealscore_datasets (mappings/, crm/); see docs/mappings.md.

    \b
    Examples:
      scoring map salesforce export/ --check
      scoring map our-salesforce.yaml export/ --out contract/
      scoring score contract/ --out scores.jsonl
      scoring score export/ --mapping our-salesforce.yaml --out scores.jsonl
    """
    from scoring.contract.mapping import check_export, load_mapping, map_export
    from scoring.contract.reader import read_records

    if check == (out_dir is not None):
        raise click.UsageError("give either --out FOLDER (convert) or --check (dry run)")
    if as_json and not check:
        raise click.UsageError("--json goes with --check")
    schema = mapping_schema(rules_path)
    m = load_mapping(mapping, schema)
    if check:
        report = check_export(m, export_dir, schema)
        if as_json:
            click.echo(json.dumps(_report_dict(report), indent=2, ensure_ascii=False))
        else:
            _print_report(report, m, export_dir)
        if not report.ok:
            sys.exit(ExitCode.FINDINGS)
        return
    conv = map_export(m, export_dir, out_dir)
    res = read_records(out_dir, schema)
    tables = ", ".join(f"{len(rows)} {ent if ent != 'opportunity' else 'deals'}"
                       for ent, (_, rows) in conv.tables.items())
    _say(f"mapped {export_dir} with {m.name} -> {out_dir}: {tables}", err=False)
    problems = conv.findings.count()
    if res.rejects or res.orphans or problems:
        _say(f"warning: {len(res.rejects)} of {res.n_read} deals would be rejected, {len(res.orphans)} orphan "
             f"child rows, {problems} other findings; list them: scoring map {mapping} {export_dir} --check")


#: the ``--mapping`` option of the commands that read records (score, explain, train)
mapping_option = click.option(
    "--mapping", "mapping", callback=_mapping_file, metavar="MAPPING",
    help="The input is a CRM export folder: convert it with this mapping file (or shipped mapping: salesforce, "
         "hubspot, odoo) first (see `scoring map`); rows it cannot convert are rejected like any bad record.")


@contextlib.contextmanager
def mapped(mapping: Path | None, source: Path, schema) -> Iterator[Path]:
    """``source`` itself, or (with ``--mapping``) the export converted into a temporary contract folder."""
    if mapping is None:
        yield source
        return
    from scoring.contract.mapping import mapped_input

    with mapped_input(mapping, source, schema) as (folder, conv):
        _say(f"mapped {source} with {mapping}: {conv.n_deals} deals"
             + (f" ({conv.findings.count()} findings: scoring map {mapping} {source} --check)"
                if conv.findings.count() else ""))
        yield folder


def mapping_schema(rules_path: Path | None):
    """The fields a mapping may fill: the contract's, and those the rule pack ``rules_path`` declares."""
    from scoring.contract.schema import CONTRACT

    if rules_path is None:
        return CONTRACT
    from scoring.evidence.pack import load_pack

    return load_pack(rules_path).schema


def _report_dict(r) -> dict:
    f = r.findings
    return {
        "ok": r.ok, "deals": r.n_deals,
        "unmapped_columns": f.unmapped_columns, "missing_columns": f.missing_columns,
        "unmapped_values": [{"file": file, "column": col, "values": dict(c.most_common())}
                            for (file, col), c in f.bad_values.items()],
        "unlisted_values": [{"file": file, "column": col, "values": dict(c.most_common())}
                            for (file, col), c in f.unlisted_values.items()],
        "history_values": [{"file": file, "column": col, "values": dict(c.most_common())}
                           for (file, col), c in f.history_values.items()],
        "no_rate": dict(f.no_rate),
        "ragged_rows": [{"file": file, "row": row, "cells": n, "header": w} for file, row, n, w in f.ragged_rows],
        "rejects": r.rejects, "orphans": r.orphans, "undeclared_fields": r.undeclared_fields,
    }


def _counts(c) -> str:
    """``'Bidding?' x2, 'Won?' x1``: the most frequent texts of a Counter, with how many more there are."""
    shown = ", ".join(f"{v!r} x{n}" for v, n in c.most_common(_SHOWN))
    return shown + (f", ... ({len(c) - _SHOWN} more)" if len(c) > _SHOWN else "")


def _print_report(r, m, export_dir: Path) -> None:
    """The text of ``map --check``: each kind of finding, then the rows the contract would reject."""
    f = r.findings
    echo = click.echo
    echo(f"checked {export_dir} with {m.name} ({m.path}): {r.n_deals} deals")
    if f.unmapped_columns:
        echo("unmapped columns (not read; map them, or list them under `ignore`):")
        for file, cols in f.unmapped_columns.items():
            echo(f"  {file}: {', '.join(cols)}")
    if f.missing_columns:
        echo("mapped columns missing from the export (their fields are unknown):")
        for file, cols in f.missing_columns.items():
            echo(f"  {file}: {', '.join(cols)}")
    if f.bad_values:
        echo("unmapped values (no entry in the value map, and not a value of the field; their rows are rejected):")
        for (file, col), c in f.bad_values.items():
            echo(f"  {file} {col}: {_counts(c)}")
    if f.unlisted_values:
        echo("values a value map does not list (kept as written):")
        for (file, col), c in f.unlisted_values.items():
            echo(f"  {file} {col}: {_counts(c)}")
    if f.history_values:
        echo("history values that could not be read (those changes are left out of the derived fields):")
        for (file, col), c in f.history_values.items():
            echo(f"  {file} {col}: {_counts(c)}")
    if f.no_rate:
        to = m.currency.to if m.currency else "?"
        echo(f"amounts without a rate to {to} (kept in their own currency; add the rate under currency.rates):")
        echo("  " + ", ".join(f"{code or '(none)'} x{n}" for code, n in f.no_rate.most_common()))
    if f.ragged_rows:
        echo("rows with another number of cells than the header (rejected):")
        for file, row, n, w in f.ragged_rows:
            echo(f"  {file} row {row}: {n} cells, the header has {w}")
    if r.rejects:
        echo(f"rows the contract would reject ({len(r.rejects)} of {r.n_deals}; row = data row of "
             f"{m.opportunities.file}):")
        for rj in r.rejects:
            echo(f"  row {rj.get('row', '?')}  {rj.get('id') or '<no id>'}  {rj.get('field')}: {rj.get('reason')}")
    if r.orphans:
        echo(f"child rows whose deal is not in {m.opportunities.file} ({len(r.orphans)}):")
        for o in r.orphans:
            echo(f"  {o['table']} row {o['row']}: {o['reason']}")
    if r.ok:
        echo("no problems found")
    else:
        echo(f"problems found (exit {ExitCode.FINDINGS:d})")
