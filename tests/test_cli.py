"""The `scoring` command, run in-process: each command works and turns errors into a message and an exit code."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from scoring.cli import main
from scoring.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent / "data" / "example.jsonl"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_explain_prints_score_probability_reasons_and_actions(trained_model_dir):
    res = run("explain", EXAMPLE, "--model", trained_model_dir, "--id", "OPP-1001")
    assert res.exit_code == 0, res.output
    assert "Rule score 77.0 / 100" in res.output and "Win probability" in res.output
    assert "Model reasons" in res.output and "Next actions" in res.output and "OPP-0007" not in res.output


def test_explain_json_is_one_object_per_record(trained_model_dir):
    res = run("explain", EXAMPLE, "--model", trained_model_dir, "--json")
    rows = [json.loads(x) for x in res.output.splitlines()]
    assert [r["id"] for r in rows] == ["OPP-1001", "OPP-0007"]
    assert all(0 < r["win_probability"] < 1 for r in rows)


def test_explain_in_chinese_uses_chinese_titles():
    res = run("explain", EXAMPLE, "--no-model", "--lang", "zh", "--id", "OPP-0007")
    assert "规则得分" in res.output and "下一步行动" in res.output


def test_explain_with_a_pack_other_than_the_models_warns(tmp_path, trained_model_dir):
    pack = tmp_path / "pack"
    shutil.copytree(ROOT / "rules" / "default", pack)
    text = (pack / "triggers.yaml").read_text()
    (pack / "triggers.yaml").write_text(text + "\n# edited by sales ops\n")
    res = run("explain", EXAMPLE, "--model", trained_model_dir, "--rules", pack)
    assert res.exit_code == 0
    assert "is not the pack model" in res.output  # click's output holds stdout and stderr


def test_rules_check_reports_changes_against_the_current_pack(tmp_path):
    pack = tmp_path / "pack"
    shutil.copytree(ROOT / "rules" / "default", pack)
    text = (pack / "red_flags.yaml").read_text()
    i = text.index("- id: L8")
    j = text.index("points:", i)
    k = text.index("\n", j)
    (pack / "red_flags.yaml").write_text(text[:j] + "points: -20" + text[k:])
    res = run("rules", "check", pack, "--against", EXAMPLE, "--current", ROOT / "rules" / "default")
    assert res.exit_code == 0, res.output
    assert "edited ['L8']" in res.output and "all rule examples pass" in res.output


def test_rules_check_refuses_a_broken_pack_naming_file_and_rule(tmp_path):
    pack = tmp_path / "pack"
    shutil.copytree(ROOT / "rules" / "default", pack)
    text = (pack / "s1_technical_promotion.yaml").read_text()
    (pack / "s1_technical_promotion.yaml").write_text(text.replace("needs_understood: true", "needs_understod: true", 1))
    res = CliRunner().invoke(main, ["rules", "check", str(pack)])
    assert res.exit_code == 2
    assert "s1_technical_promotion.yaml" in res.output and "needs_understod" in res.output


def test_train_refuses_too_little_history_with_counts(tmp_path):
    res = CliRunner().invoke(main, ["train", str(EXAMPLE), "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "won" in res.output and "lost" in res.output


def test_score_writes_output_and_summary(tmp_path, trained_model_dir):
    out = tmp_path / "scores.csv"
    res = run("score", ROOT / "datasets" / "sample" / "pipeline.jsonl", "--out", out, "--model", trained_model_dir,
              "--json", "--workers", "1")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["read"] == summary["scored"] == 300
    assert out.exists() and (tmp_path / "scores.csv.summary.json").exists()


def test_rules_list_exports_every_output_code():
    import csv
    import io

    res = run("rules", "list", ROOT / "rules" / "default", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(res.output)))
    codes = {r["rule"] for r in rows}
    assert {"S1_1", "M2", "L8", "T4", "T3", "STALLED"} <= codes
    assert all(r["title"] for r in rows)


def test_bad_as_of_prints_one_line_and_exits_with_the_usage_code(tmp_path):
    res = CliRunner().invoke(main, ["score", "--as-of", "2026-13-01", "--out", str(tmp_path / "s.jsonl"),
                                    "--rules", str(ROOT / "rules" / "default")])
    assert res.exit_code == ExitCode.USAGE == 2
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert errors == ["error: as_of '2026-13-01' is not a date YYYY-MM-DD (month must be in 1..12)"]
    assert "Traceback" not in res.output and not (tmp_path / "s.jsonl").exists()


def test_an_output_path_that_is_a_folder_prints_one_line_and_exits_with_the_io_code(tmp_path):
    (tmp_path / "s.jsonl").mkdir()
    res = CliRunner().invoke(main, ["score", "--out", str(tmp_path / "s.jsonl"), "--rules", str(ROOT / "rules" / "default")])
    assert res.exit_code == ExitCode.IO == 4
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tmp_path / 's.jsonl'}: Is a directory"]
    assert "Traceback" not in res.output and not list(tmp_path.glob(".s.jsonl.tmp-*"))


def test_every_exit_code_is_in_the_documented_table():
    import scoring.cli

    table = scoring.cli.__doc__.split("Exit codes")[1]
    documented = {int(line.split()[0]) for line in table.splitlines() if line[:1].isdigit()}
    assert documented == {int(c) for c in ExitCode}
