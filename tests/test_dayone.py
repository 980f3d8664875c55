"""What a new user hits on day one: unknown ids, pandas dtypes in score_frame, --help, --quiet/--verbose,
and explain --json naming things as the nightly output does."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import click
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from scoring import RecordError, Scorer
from scoring.cli import main
from scoring.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent / "data" / "example.jsonl"
TABLES = ("opportunities", "contacts", "competitors", "partners")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --------------------------------------------------------------------------- explain


def test_explain_unknown_id_is_an_error_naming_it():
    res = run("explain", EXAMPLE, "--no-model", "--id", "NOPE", "--id", "OPP-1001", "--id", "ALSO-NOPE")
    assert res.exit_code == ExitCode.USAGE
    assert res.stdout == ""
    assert res.stderr.strip() == f"error: {EXAMPLE}: no record with id NOPE, ALSO-NOPE"


def test_explain_known_ids_still_exit_zero():
    res = run("explain", EXAMPLE, "--no-model", "--id", "OPP-0007")
    assert res.exit_code == 0 and res.stdout.startswith("OPP-0007")


def test_explain_json_uses_the_nightly_output_field_names():
    res = run("explain", EXAMPLE, "--no-model", "--json", "--id", "OPP-1001")
    x = json.loads(res.stdout)
    assert {"rule_score", "data_completeness", "analysis_meeting"} <= set(x)
    assert not {"score", "completeness", "meeting_flags"} & set(x)
    rec = next(r for r in map(json.loads, EXAMPLE.read_text().splitlines()) if r["id"] == "OPP-1001")
    one = Scorer(model=None, rules=ROOT / "rules" / "default").score(rec)
    assert x["rule_score"] == one.rule_score and x["data_completeness"] == one.data_completeness
    assert [m["rule"] for m in x["analysis_meeting"]] == one.analysis_meeting  # STALLED included: pack evidence


# --------------------------------------------------------------------------- --help


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


@pytest.mark.parametrize("path", [p for p, _ in _commands(main)], ids=" ".join)
def test_every_subcommand_help_has_an_example_and_every_option_a_description(path):
    cmd = dict(_commands(main))[path]
    res = run(*path, "--help")
    assert res.exit_code == 0
    assert "Example" in res.stdout and "\n    scoring " in res.stdout, res.stdout
    undescribed = [p.name for p in cmd.params if isinstance(p, click.Option) and not p.help]
    assert undescribed == []


def test_main_help_lists_every_exit_code():
    out = " ".join(run("--help").stdout.split())
    assert all(f"{code:d} " in out.split("Exit codes:")[1] for code in ExitCode)


# --------------------------------------------------------------------------- --quiet / --verbose


def test_quiet_prints_nothing_but_errors(tmp_path):
    res = run("--quiet", "score", EXAMPLE, "--rules", ROOT / "rules" / "default", "--out", tmp_path / "s.jsonl")
    assert res.exit_code == 0 and res.stdout == "" and res.stderr == ""
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 2
    bad = run("--quiet", "score", EXAMPLE, "--as-of", "2026-13-01", "--out", tmp_path / "t.jsonl")
    assert bad.exit_code == ExitCode.USAGE and bad.stderr.startswith("error: ")


def test_verbose_names_the_input_pack_and_model(tmp_path):
    res = run("--verbose", "explain", EXAMPLE, "--no-model", "--id", "OPP-1001")
    assert res.exit_code == 0
    assert f"input: {EXAMPLE}" in res.stderr and "rule pack: default@" in res.stderr
    assert "model: none" in res.stderr and res.stdout.startswith("OPP-1001")


def test_quiet_and_verbose_together_are_a_usage_error():
    assert run("--quiet", "--verbose", "models").exit_code == ExitCode.USAGE


# --------------------------------------------------------------------------- score_frame dtypes


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory):
    """The generator's pipeline tables as a CRM export writes Parquet: no pandas metadata, so pandas reads
    a bool column with nulls back as ``object`` (True/False/None), as it does ``scoring generate``'s files."""
    import pyarrow.parquet as pq
    from dealscore_datasets.generate import generate_tables

    d = tmp_path_factory.mktemp("pipeline")
    for name, df in generate_tables(60, seed=5, kind="pipeline").items():
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None),
                       d / f"{name}.parquet")
    return d


@pytest.fixture(scope="module")
def rule_scorer():
    return Scorer(model=None, rules=ROOT / "rules" / "default", as_of="2026-11-26")


def _read(d: Path, **kw) -> list[pd.DataFrame]:
    return [pd.read_parquet(d / f"{n}.parquet", **kw) for n in TABLES]


def _as_strings(dtype):
    """Every text-like column (object or str) as ``dtype``: what a string conversion does."""
    def conv(frames):
        return [df.astype({c: dtype for c in df.columns
                           if df[c].dtype == object or pd.api.types.is_string_dtype(df[c].dtype)}) for df in frames]
    return conv


def _dask_partition(frames):
    """The first partition Dask hands ``map_partitions`` for the opportunities (its default string conversion)."""
    import dask
    import dask.dataframe as dd

    with dask.config.set(scheduler="synchronous"):
        opps = dd.from_pandas(frames[0], npartitions=1).partitions[0].compute()
    return [opps, *frames[1:]]


DTYPE_FAMILIES = {
    "numpy (pd.read_parquet default)": lambda d: _read(d),
    "nullable (boolean, Int64, Float64)": lambda d: _read(d, dtype_backend="numpy_nullable"),
    "Arrow (ArrowDtype)": lambda d: _read(d, dtype_backend="pyarrow"),
    "string[python]": lambda d: _as_strings("string[python]")(_read(d)),
    "string[pyarrow]": lambda d: _as_strings("string[pyarrow]")(_read(d)),
    "str": lambda d: _as_strings("str")(_read(d)),
    "Dask partition": lambda d: _dask_partition(_read(d)),
}


@pytest.mark.parametrize("family", list(DTYPE_FAMILIES))
def test_score_frame_accepts_each_pandas_dtype_family(family, parquet_dir, rule_scorer):
    plain = _read(parquet_dir)
    assert plain[0]["needs_understood"].dtype == object
    want = rule_scorer.score_frame(*plain).drop(columns="scored_at")
    frames = DTYPE_FAMILIES[family](parquet_dir)
    if family.startswith("nullable"):
        assert {"boolean", "Int64"} <= {str(t) for t in frames[0].dtypes}
    got = rule_scorer.score_frame(*frames).drop(columns="scored_at")
    pd.testing.assert_frame_equal(got, want)


def test_score_frame_string_bool_column_with_other_text_is_a_record_error(parquet_dir, rule_scorer):
    opps, *children = _as_strings("string[pyarrow]")(_read(parquet_dir))
    opps.loc[3, "needs_understood"] = "maybe"
    with pytest.raises(RecordError) as info:
        rule_scorer.score_frame(opps, *children)
    assert info.value.record_id == opps.loc[3, "id"] and info.value.field == "needs_understood"


def test_score_frame_arrow_bool_dtype_is_read_as_booleans(parquet_dir, rule_scorer):
    opps, *children = _read(parquet_dir)
    want = rule_scorer.score_frame(opps, *children)
    opps["needs_understood"] = opps["needs_understood"].astype(pd.ArrowDtype(pa.bool_()))
    pd.testing.assert_frame_equal(rule_scorer.score_frame(opps, *children).drop(columns="scored_at"),
                                  want.drop(columns="scored_at"))


# --------------------------------------------------------------------------- progress of long commands


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True])
def test_long_commands_show_progress_on_a_terminal_unless_quiet(monkeypatch, quiet):
    from scoring.cli.common import NORMAL, QUIET, _progress

    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    with click.Context(click.Command("x"), obj=QUIET if quiet else NORMAL):
        with _progress(2, "training") as step:
            step("reading the history")
            step("fitting")
    assert ("training" in term.getvalue()) is not quiet


def test_progress_is_silent_when_not_a_terminal(tmp_path):
    res = CliRunner().invoke(main, ["generate", "pipeline", "--deals", "20", "--out", str(tmp_path / "p.jsonl")])
    assert res.exit_code == 0, res.output
    assert "generating" not in res.output and "step" not in res.output
