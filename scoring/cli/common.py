"""What every ``scoring`` command shares: the group, verbosity, and turning library errors into exit codes."""
from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scoring.errors import ExitCode, ScoringError

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


@contextlib.contextmanager
def _progress(total: int, desc: str):
    """A progress bar on stderr for a long command's steps: yields a callback taking each step's name.
    Shown only on a terminal (tqdm's own test) and never under ``--quiet``."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr,
               disable=True if _level() < NORMAL else None)
    started = [False]

    def step(name: str) -> None:
        if started[0]:
            bar.update(1)
        started[0] = True
        bar.set_postfix_str(name)

    try:
        yield step
        if started[0]:
            bar.update(1)
    finally:
        bar.close()


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

