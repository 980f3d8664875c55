"""``scoring history``, ``scoring store ...``: the score store's commands (docs/store.md)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from scoring import paths
from scoring.cli.common import _fail_clean, _say, main
from scoring.evidence import LANGS

_STORE_HELP = ("The score store: postgresql://user@host/db, or a DuckDB file "
               "(default: history.duckdb beside the default output, out/).")


def store_of(url: str | None):
    """The store named by ``--store``, else the default one beside the default output."""
    from scoring.store import Store

    return Store(url) if url else Store.beside(paths.default_output())


@main.command()
@click.argument("deal_id")
@click.option("--store", "store_url", help=_STORE_HELP)
@click.option("--since", help="Also what changed since the stored run on or before this date (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
@click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True, help="Language of the words.")
@_fail_clean
def history(deal_id, store_url, since, as_json, lang):
    """A deal's stored runs: probability, trend, and what changed between runs, rule by rule.

    \b
    Examples:
      scoring history P-000024
      scoring history P-000024 --store postgresql://scoring@db/sales --since 2026-11-01 --json
    """
    from scoring.batch.chunks import as_of_date
    from scoring.model.registry import resolve_scoring
    from scoring.store.timeline import deal_timeline, format_timeline

    if since:
        as_of_date(since)
    engine, model, _ = resolve_scoring(None, None, use_model=True)
    t = deal_timeline(store_of(store_url), deal_id, model=model, pack=engine.pack, lang=lang, since=since)
    click.echo(json.dumps(t, ensure_ascii=False, default=str) if as_json else format_timeline(t, lang))


@main.group()
def store():
    """Look after the score store: upgrade its schema, prune old runs, list runs.

    \b
    Examples:
      scoring store runs
      scoring store prune --keep 400 --store postgresql://scoring@db/sales
    """


@store.command()
@click.option("--store", "store_url", help=_STORE_HELP)
@_fail_clean
def upgrade(store_url):
    """Bring a store written by an older version to this version's schema (one transaction).

    \b
    Examples:
      scoring store upgrade --store /data/history.duckdb
    """
    before, after = store_of(store_url).upgrade()
    _say(f"store upgraded from schema version {before} to {after}" if before != after
         else f"store already at schema version {after}", err=False)


@store.command()
@click.option("--store", "store_url", help=_STORE_HELP)
@click.option("--keep", "keep_days", type=click.IntRange(min=0), required=True,
              help="Keep the runs of the last DAYS days; delete older ones (and their deals).")
@click.option("--today", help="The date the days count back from (default: today).")
@_fail_clean
def prune(store_url, keep_days, today):
    """Delete the runs older than --keep days (retention).

    \b
    Examples:
      scoring store prune --keep 400 --store /data/history.duckdb
    """
    from scoring.batch.chunks import as_of_date

    n = store_of(store_url).prune(keep_days, as_of_date(today) if today else None)
    _say(f"pruned {n} run(s) older than {keep_days} days", err=False)


@store.command(name="runs")
@click.option("--store", "store_url", help=_STORE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines.")
@_fail_clean
def runs_(store_url, as_json):
    """List the stored runs, oldest first.

    \b
    Examples:
      scoring store runs --store /data/history.duckdb --json
    """
    df = store_of(store_url).runs()
    for r in df.to_dict("records"):
        if as_json:
            click.echo(json.dumps({k: r[k] for k in ("run_id", "as_of", "scored_at", "model_version",
                                                      "rule_pack_version", "n_scored")}, default=str))
        else:
            click.echo(f"{r['run_id']}  {r['as_of']}  {r['n_scored']:>9,} deals  model {r['model_version'] or '-'}  "
                       f"pack {r['rule_pack_version']}")


@main.command()
@click.argument("closed", metavar="CLOSED_DEALS", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--store", "store_url", help=_STORE_HELP)
@_fail_clean
def outcomes(closed, store_url):
    """Record closed deals (id, outcome won/lost/no_decision, closed_at) into the store.

    CLOSED_DEALS is JSON Lines (e.g. closed records of the contract's history form) or CSV with
    the columns id, outcome, closed_at.  A deal recorded again is corrected.

    \b
    Examples:
      scoring outcomes /exports/closed-this-week.csv
    """
    from scoring.store.monitor import read_outcomes

    n = store_of(store_url).record_outcomes(read_outcomes(closed))
    _say(f"recorded {n:,} outcome(s)", err=False)


@main.command()
@click.option("--store", "store_url", help=_STORE_HELP)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the monitoring page (one self-contained HTML file).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@_fail_clean
def monitor(store_url, out, as_json):
    """Drift, expected and realized performance over the stored runs.

    \b
    Examples:
      scoring monitor
      scoring monitor --out out/monitor.html
    """
    from scoring.store.monitor import drift_reference
    from scoring.store.monitor_page import build_monitor, monitor_data

    store = store_of(store_url)
    if out:
        _say(f"wrote {build_monitor(store, out)}", err=False)
        return
    d = monitor_data(store)
    if as_json:
        click.echo(json.dumps(d, ensure_ascii=False, default=str))
        return
    last = d["last_run"]
    click.echo(f"{len(d['runs'])} stored runs, {d['outcomes_recorded']:,} deals with a recorded outcome")
    for r in d["runs"][-10:]:
        click.echo(f"  {r['as_of']}  {r['deals']:>9,} deals  mean probability {r['mean_probability']}")
    if last:
        click.echo(f"last run: score PSI vs held-out {(last.get('score_psi') or {}).get('psi')}, expected log loss "
                   f"{last.get('expected_log_loss')}, rules drifted from {drift_reference(last.get('rule_drift'))}: "
                   f"{', '.join((last.get('rule_drift') or {}).get('flagged') or []) or 'none'}")
    for r in d["realized"]:
        if r.get("deals"):
            click.echo(f"realized, {r['days_before_close']} days before close: {r['deals']:,} deals, win rate "
                       f"{r['win_rate']}, mean probability {r['mean_probability']}, log loss {r['log_loss']}, "
                       f"Brier {r['brier']}")
