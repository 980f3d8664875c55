"""Reliability: no silent wrong answer with exit 0 (issue 12, item 3; item 6 for its failures).

One test per bad-input class.  Each asserts what users rely on: ``read = scored +
rejected``, a warning or one ``error:`` line naming the file and what is wrong,
the documented exit code, and last night's files untouched.

* the input's shape: a folder without child tables, undeclared (misspelt) columns
  and fields: warnings with counts in the summary, an error under ``--strict``;
* ``--previous``: yesterday's input instead of yesterday's scores, a file of
  another schema, a corrupt, truncated or unreadable file: refused in one line;
  a real output in every format is still accepted;
* the summary and forecast: never a bare ``NaN`` (valid JSON).
"""
from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dealscore_datasets.generate import generate_tables, tables_to_records, write_jsonl, write_tables
from scoring.batch.chunks import SCORE_COLUMNS, output_schema
from scoring.batch.previous import PreviousRun
from scoring.batch.summary import RunSummary
from scoring.cli import main
from scoring.errors import ExitCode, ScoringError
from scoring.score.flags import Thresholds

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "default"
AS_OF = "2026-11-26"
N = 40
LAST_NIGHT = "last night's file\n"


@pytest.fixture(scope="module")
def tables():
    return generate_tables(N, seed=7, kind="pipeline")


def score(*args):
    """``scoring score`` in-process with the bundled model: (exit code, error lines, stdout)."""
    res = CliRunner().invoke(main, ["score", *map(str, args), "--model", str(MODEL), "--as-of", AS_OF,
                                    "--workers", "1"])
    assert "Traceback" not in res.output, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    return res.exit_code, errors, res.stdout


def last_night(out: Path) -> dict[Path, str]:
    """Put last night's output, rejects and summary beside ``out``; what they hold."""
    files = {out: LAST_NIGHT, out.with_name(f"{out.name}.rejects.csv"): LAST_NIGHT,
             out.with_name(f"{out.name}.summary.json"): LAST_NIGHT}
    for p, text in files.items():
        p.write_text(text)
    return files


def untouched(files: dict[Path, str]) -> bool:
    return all(p.read_text() == text for p, text in files.items())


def accounted(summary: dict) -> bool:
    return summary["read"] == summary["scored"] + summary["rejected"]


# --------------------------------------------------------------------------- the input's shape


def test_a_folder_without_child_tables_warns_with_counts_and_strict_refuses(tables, tmp_path):
    src = tmp_path / "in"
    write_tables({"opportunities": tables["opportunities"]}, src, "csv")
    out = tmp_path / "scores.jsonl"
    code, errors, stdout = score(src, "--out", out, "--json")
    summary = json.loads(stdout)
    assert code == ExitCode.OK and errors == [] and accounted(summary)
    assert summary["missing_tables"] == ["contacts", "competitors", "partners"]
    contacts = [w for w in summary["warnings"] if w.get("table") == "contacts"]
    assert contacts == [{"kind": "missing_table", "table": "contacts", "deals": N, "message": contacts[0]["message"]}]
    assert "contacts table missing: every deal's contacts are unknown" in contacts[0]["message"]
    assert f"({N:,} deals)" in contacts[0]["message"]
    code, errors, stdout = score(src, "--out", out)
    assert "warning: contacts table missing" in stdout

    files = last_night(out)
    code, errors, _ = score(src, "--out", out, "--strict")
    assert code == ExitCode.USAGE == 2
    assert len(errors) == 1 and str(src) in errors[0] and "--strict" in errors[0]
    assert "no contacts, competitors, partners table" in errors[0] and "nothing was written" in errors[0]
    assert untouched(files) and not list(tmp_path.glob(".scores*.tmp-*"))


def test_a_single_opportunities_file_warns_that_child_tables_are_missing(tables, tmp_path):
    src = tmp_path / "in"
    paths = write_tables({"opportunities": tables["opportunities"]}, src, "parquet")
    code, errors, stdout = score(paths["opportunities"], "--out", tmp_path / "s.parquet", "--json")
    assert code == ExitCode.OK and json.loads(stdout)["missing_tables"] == ["contacts", "competitors", "partners"]


def test_complete_input_has_no_warnings_and_passes_strict(tables, tmp_path):
    src = tmp_path / "in"
    write_tables(tables, src, "parquet")
    code, errors, stdout = score(src, "--out", tmp_path / "s.parquet", "--json", "--strict")
    summary = json.loads(stdout)
    assert code == ExitCode.OK and errors == [] and summary["warnings"] == [] and summary["missing_tables"] == []
    assert accounted(summary) and summary["scored"] == N


def test_misspelt_columns_warn_with_row_counts_and_strict_refuses(tables, tmp_path):
    t = {k: v.copy() for k, v in tables.items()}
    t["opportunities"] = t["opportunities"].rename(columns={"stage": "stage", "owner": "ownr"})
    t["contacts"] = t["contacts"].rename(columns={"stance": "stnace"})
    src = tmp_path / "in"
    write_tables(t, src, "csv")
    out = tmp_path / "scores.csv"
    code, errors, stdout = score(src, "--out", out, "--json")
    summary = json.loads(stdout)
    assert code == ExitCode.OK and accounted(summary)
    found = {(w["entity"], w["field"]): w for w in summary["warnings"] if w["kind"] == "undeclared_field"}
    assert set(found) == {("opportunity", "ownr"), ("contacts", "stnace")}
    assert found[("opportunity", "ownr")]["records"] == N
    assert f"undeclared column 'ownr' in opportunities.csv ({N:,} rows)" in found[("opportunity", "ownr")]["message"]

    files = last_night(out)
    code, errors, _ = score(src, "--out", out, "--strict")
    assert code == ExitCode.USAGE and len(errors) == 1
    assert "undeclared column 'ownr' in opportunities.csv" in errors[0] and "'stnace' in contacts.csv" in errors[0]
    assert untouched(files)


def test_undeclared_jsonl_fields_warn_and_strict_refuses(tables, tmp_path):
    records = tables_to_records(tables)
    records[3]["stagee"] = "bidding"
    src = tmp_path / "in.jsonl"
    write_jsonl(records, src)
    out = tmp_path / "scores.jsonl"
    code, _, stdout = score(src, "--out", out, "--json")
    summary = json.loads(stdout)
    assert code == ExitCode.OK and accounted(summary) and summary["missing_tables"] == []
    (w,) = summary["warnings"]
    assert (w["entity"], w["field"]) == ("opportunity", "stagee") and 1 <= w["records"] <= N
    files = last_night(out)
    code, errors, _ = score(src, "--out", out, "--strict")
    assert code == ExitCode.USAGE and len(errors) == 1 and "'stagee'" in errors[0] and untouched(files)


# --------------------------------------------------------------------------- --previous


@pytest.fixture(scope="module")
def outputs(tables, tmp_path_factory):
    """The input as a folder of Parquet tables and its scores in every output format."""
    d = tmp_path_factory.mktemp("nights")
    write_tables(tables, d / "in", "parquet")
    for ext in ("parquet", "jsonl", "csv"):
        code, errors, _ = score(d / "in", "--out", d / f"night1.{ext}")
        assert code == ExitCode.OK, errors
    return d


@pytest.mark.parametrize("ext", ["parquet", "jsonl", "csv"])
def test_last_nights_output_in_every_format_is_accepted(outputs, tmp_path, ext):
    code, errors, stdout = score(outputs / "in", "--out", tmp_path / "s.jsonl", "--previous",
                                 outputs / f"night1.{ext}", "--json")
    summary = json.loads(stdout)
    assert code == ExitCode.OK and errors == [] and accounted(summary)
    assert "T3" not in summary["analysis_meetings"]  # nothing changed since last night
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert all(r["probability_change"] == 0 for r in rows)


@pytest.mark.parametrize("form", ["jsonl", "csv", "parquet"])
def test_yesterdays_input_as_previous_is_refused_in_one_line(tables, outputs, tmp_path, form):
    if form == "jsonl":
        prev = tmp_path / "pipeline.jsonl"
        write_jsonl(tables_to_records(tables), prev)
    else:
        prev = write_tables(tables, tmp_path / "yesterday", form)["opportunities"]
    before = prev.read_bytes()
    out = tmp_path / "scores.parquet"
    files = last_night(out)
    code, errors, _ = score(outputs / "in", "--out", out, "--previous", prev)
    assert code == ExitCode.USAGE
    assert errors == [errors[0]] and errors[0].startswith(f"error: --previous {prev}: the records input of a run")
    assert "no column win_probability" in errors[0] and "pass the output (--out)" in errors[0]
    assert untouched(files) and prev.read_bytes() == before


@pytest.mark.parametrize("name", ["other.csv", "night1.parquet.rejects.csv", "night1.parquet.summary.json"])
def test_a_previous_of_another_schema_is_refused(outputs, tmp_path, name):
    prev = outputs / name
    if name == "other.csv":
        prev = tmp_path / name
        pd.DataFrame({"id": ["a"], "win_probability": [0.5]}).to_csv(prev, index=False)
    code, errors, _ = score(outputs / "in", "--out", tmp_path / "s.jsonl", "--previous", prev)
    assert code == ExitCode.USAGE and len(errors) == 1
    assert errors[0].startswith(f"error: --previous {prev}: not an output of `scoring score`")


def test_a_previous_without_provenance_values_is_refused(outputs, tmp_path):
    df = pq.read_table(outputs / "night1.parquet").to_pandas()
    df.loc[2, "scored_at"] = "yesterday-ish"
    df.loc[3, "rule_pack_version"] = None
    prev = tmp_path / "doctored.parquet"
    df.to_parquet(prev)
    with pytest.raises(ScoringError, match=r"1 rows without a rule_pack_version, 1 rows without a scored_at"):
        PreviousRun(prev)


def _previous_outcome(path: Path) -> str:
    """What PreviousRun makes of a file: 'ok', or 'refused' (one line, a ScoringError or OSError)."""
    try:
        PreviousRun(path)
    except (ScoringError, OSError) as e:
        assert "\n" not in str(e) and str(path) in str(e)
        return "refused"
    return "ok"


@pytest.mark.parametrize("ext", ["parquet", "jsonl", "csv"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_corrupt_or_truncated_previous_is_one_line_never_a_traceback(outputs, tmp_path, ext, data):
    good = (outputs / f"night1.{ext}").read_bytes()
    cut = data.draw(st.integers(0, len(good) - 1), label="truncated at")
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)), max_size=3))
    bad = bytearray(good[:cut] if data.draw(st.booleans(), label="truncate") else good)
    for i, b in flips:
        if i < len(bad):
            bad[i] = b
    prev = tmp_path / f"prev.{ext}"
    prev.write_bytes(bytes(bad))
    _previous_outcome(prev)  # no other exception escapes


_JSON_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12),
                       st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=3),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_previous_with_values_of_the_wrong_kind_is_refused_or_used_never_a_traceback(outputs, tmp_path, data):
    rows = [json.loads(line) for line in (outputs / "night1.jsonl").read_text().splitlines()][:8]
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        row = data.draw(st.sampled_from(rows))
        row[data.draw(st.sampled_from(sorted(row)), label="field")] = data.draw(_JSON_VALUE, label="value")
    prev = tmp_path / "prev.jsonl"
    prev.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if _previous_outcome(prev) == "ok":
        PreviousRun(prev).apply(pq.read_table(outputs / "night1.parquet"), Thresholds())


def test_garbage_as_previous_exits_2_with_one_line(outputs, tmp_path):
    prev = tmp_path / "prev.parquet"
    prev.write_bytes(b"not parquet at all\x00\x01")
    out = tmp_path / "s.parquet"
    files = last_night(out)
    code, errors, _ = score(outputs / "in", "--out", out, "--previous", prev)
    assert code == ExitCode.USAGE and len(errors) == 1
    assert errors[0].startswith(f"error: --previous {prev}: cannot be read as parquet") and untouched(files)


def test_an_unreadable_previous_exits_with_the_io_code(outputs, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    prev = tmp_path / "prev.jsonl"
    prev.write_bytes((outputs / "night1.jsonl").read_bytes())
    prev.chmod(0)
    code, errors, _ = score(outputs / "in", "--out", tmp_path / "s.jsonl", "--previous", prev)
    assert code == ExitCode.IO and len(errors) == 1 and str(prev) in errors[0] and "--previous" in errors[0]


def test_a_previous_the_system_cannot_read_exits_with_the_io_code_in_one_line(outputs, tmp_path, monkeypatch):
    """As the test above, where permissions cannot be taken away (root): the system's refusal, simulated."""
    def refuse(path, columns=None):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("scoring.batch.previous.read_output", refuse)
    prev = outputs / "night1.csv"
    out = tmp_path / "s.jsonl"
    files = last_night(out)
    code, errors, _ = score(outputs / "in", "--out", out, "--previous", prev)
    assert code == ExitCode.IO == 4 and untouched(files)
    assert errors == [f"error: {prev}: Permission denied (reading --previous); pass the output (--out) of an "
                      "earlier `scoring score` run, or leave --previous out"]


def test_a_previous_the_system_refuses_is_an_os_error_naming_the_file(tmp_path):
    prev = tmp_path / "prev.jsonl"
    prev.mkdir()  # the command refuses a folder itself; the library names it
    with pytest.raises(OSError) as exc:
        PreviousRun(prev)
    assert exc.value.filename == str(prev) and "--previous" in exc.value.strerror


def test_an_empty_previous_jsonl_is_a_run_that_scored_nothing(tmp_path):
    prev = tmp_path / "prev.jsonl"
    prev.write_text("")
    assert len(PreviousRun(prev).index) == 0


def test_the_output_starts_with_the_columns_that_mark_it(default_pack):
    assert tuple(output_schema(default_pack).names[:len(SCORE_COLUMNS)]) == SCORE_COLUMNS


# --------------------------------------------------------------------------- no NaN in the summary and forecast

_NUMBER = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1e6))


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(_NUMBER, _NUMBER, _NUMBER, _NUMBER), min_size=1, max_size=6))
def test_summary_and_forecast_never_hold_nan(rows):
    prob, rule, comp, amount = (list(c) for c in zip(*rows))
    n = len(rows)
    table = pa.table({
        "win_probability": pa.array([None if p is None else min(abs(p), 1.0) if math.isfinite(p) else p for p in prob],
                                    pa.float64()),
        "rule_score": pa.array(rule, pa.float64()), "data_completeness": pa.array(comp, pa.float64()),
        "owner": ["o1"] * n, "region": ["r"] * n, "stage": ["bidding"] * n, "expected_close": ["2026-12-01"] * n,
        "amount": pa.array([None if a is None else a * 1e303 for a in amount], pa.float64()),
        "currency": ["CNY"] * n,
        "red_flags": pa.array([[]] * n, pa.list_(pa.string())),
        "analysis_meeting": pa.array([[]] * n, pa.list_(pa.string())),
    })
    s = RunSummary()
    s.n_read = n
    s.add(table)
    json.dumps(s.to_dict(), allow_nan=False)  # raises on NaN / Infinity
    fc = s.forecast_frame()
    json.dumps(fc.to_dict("records"), allow_nan=False)
    for row in pa.Table.from_pandas(fc, preserve_index=False).to_pylist():  # what a .jsonl forecast holds
        json.dumps(row, allow_nan=False)
    assert not np.isinf(pd.to_numeric(fc["expected_value"], errors="coerce")).any()


def test_the_summary_file_is_valid_json(outputs):
    text = (outputs / "night1.parquet.summary.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the summary"))

