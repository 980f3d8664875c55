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
      rule example that does not end in its stated status, ``map --check``
      found unmapped columns or values or rows the contract would reject
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
6     the score store (``--store``) cannot be used: it cannot be reached or
      opened, it was written by another schema version (run ``scoring store
      upgrade``), or another run kept it locked too long; ``score`` stops
      before scoring (or before replacing any output), outputs untouched
====  ==========================================================================

An unexpected internal error ends in a Python traceback (exit code 1).

Global options (before the command): ``--quiet`` prints only errors (and the
output a command was asked for: explanations, lists, ``--json``), no
warnings, notes or summaries; ``--verbose`` also prints what a command uses
(input, rule pack, model) on stderr.
"""
from __future__ import annotations

from scoring.cli.common import main
from scoring.cli import data, history, mapping, models, pipeline, rules  # noqa: F401  (each registers its commands on main)

__all__ = ["main"]
