"""``scoring map`` and ``--mapping`` of score, explain and train (in-process, on tmp_path)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from scoring.cli import main
from scoring.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]
CRM = ROOT / "datasets" / "crm"
SHIPPED = ("salesforce", "hubspot", "odoo")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("name", SHIPPED)
def test_score_with_a_shipped_mapping_scores_its_fixture_export_without_rejects(tmp_path, name):
    out = tmp_path / "scores.jsonl"
    res = run("score", CRM / name, "--mapping", name, "--out", out, "--as-of", "2026-11-25", "--workers", "1")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "scores.jsonl.summary.json").read_text())
    assert summary["read"] == summary["scored"] > 0
    assert (summary["rejected"], summary["orphans"]) == (0, 0)
    assert f"(mapped with {name}.yaml) -> " in res.output
    assert len(out.read_text().splitlines()) == summary["read"]


def test_map_check_on_a_messy_export_lists_what_is_wrong_and_exits_1(tmp_path):
    res = run("map", "salesforce", CRM / "salesforce-messy", "--check")
    assert res.exit_code == ExitCode.FINDINGS, res.output
    out = res.output
    assert "Opportunity.csv: Next_Step_Owner__c" in out                          # an unmapped column
    assert "Opportunity.csv StageName: 'Bidding?' x2" in out                     # an unmapped value, counted
    assert "OpportunityContactRole.csv Role: 'Champion' x1" in out
    assert "GBP x1" in out                                                       # no rate
    assert "row 3  0065g0000000002QAB  stage: 'Bidding?' is not one of" in out   # a row rejected, and why
    assert "row 4  0065g0000000003QAB  expected_close: '31/12/2026' is not a date" in out
    assert not list(tmp_path.iterdir())                                          # a dry run writes nothing


def test_map_check_json_holds_every_finding(tmp_path):
    res = run("map", "salesforce", CRM / "salesforce-messy", "--check", "--json")
    assert res.exit_code == ExitCode.FINDINGS
    rep = json.loads(res.output)
    assert rep["ok"] is False and rep["deals"] == 42
    assert {"file": "Opportunity.csv", "column": "StageName", "values": {"Bidding?": 2}} in rep["unmapped_values"]
    assert len(rep["rejects"]) == 5


@pytest.mark.parametrize("name", SHIPPED)
def test_map_check_of_a_clean_export_finds_nothing_and_exits_0(name):
    res = run("map", name, CRM / name, "--check")
    assert res.exit_code == 0, res.output
    assert "no problems found" in res.output


def test_map_out_writes_the_contract_tables_that_score_reads_as_the_mapping_option_does(tmp_path):
    res = run("map", "salesforce", CRM / "salesforce", "--out", tmp_path / "contract")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "contract").iterdir()) == \
        ["competitors.csv", "contacts.csv", "opportunities.csv", "partners.csv"]
    a = run("score", tmp_path / "contract", "--out", tmp_path / "a.jsonl", "--as-of", "2026-11-25", "--workers", "1")
    b = run("score", CRM / "salesforce", "--mapping", "salesforce", "--out", tmp_path / "b.jsonl",
            "--as-of", "2026-11-25", "--workers", "1")
    assert a.exit_code == b.exit_code == 0

    def scores(p):
        return [{k: v for k, v in json.loads(line).items() if k != "scored_at"} for line in p.read_text().splitlines()]

    assert scores(tmp_path / "a.jsonl") == scores(tmp_path / "b.jsonl")


def test_score_with_a_mapping_writes_the_rows_it_cannot_convert_to_the_rejects(tmp_path):
    out = tmp_path / "scores.csv"
    res = run("score", CRM / "salesforce-messy", "--mapping", "salesforce", "--out", out, "--as-of", "2026-11-25",
              "--workers", "1", "--max-rejected-share", "0.5")
    assert res.exit_code == 0, res.output
    with open(tmp_path / "scores.csv.rejects.csv", encoding="utf-8") as fh:
        rejects = list(csv.DictReader(fh))
    assert len(rejects) == 5
    stage = [r for r in rejects if r["field"] == "stage"]
    assert [r["id"] for r in stage] == ["0065g0000000002QAB", "0065g0000000005QAB"]
    assert all("'Bidding?' is not one of" in r["reason"] for r in stage)


def test_explain_with_a_mapping_explains_a_deal_of_the_export():
    res = run("explain", CRM / "hubspot", "--mapping", "hubspot", "--id", "9000000014", "--no-model")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("9000000014  ")
    assert "Next actions:" in res.output


def test_train_with_a_mapping_learns_from_the_exports_closed_deals(tmp_path):
    res = run("train", CRM / "salesforce", "--mapping", "salesforce", "--out", tmp_path / "model",
              "--min-per-class", "5", "--json")
    assert res.exit_code in (0, ExitCode.NOT_USEFUL), res.output
    counts = json.loads(res.stdout[res.stdout.index("{"):])["counts"]
    assert counts["input"]["rejected"] == 0
    assert counts["kept"]["won"] >= 5 and counts["kept"]["lost"] >= 5
    assert (tmp_path / "model").is_dir()


def test_map_names_the_mapping_file_and_key_of_a_bad_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mapping: 1\nopportunities: {file: Opportunity.csv, columns: {Id: id, StageName: stages}}\n")
    res = run("map", bad, CRM / "salesforce", "--check")
    assert res.exit_code == ExitCode.USAGE
    assert f"error: mapping {bad}, key opportunities.columns.StageName: 'stages' is not a field" in res.output


def test_map_needs_either_out_or_check(tmp_path):
    assert run("map", "salesforce", CRM / "salesforce").exit_code == ExitCode.USAGE
    res = run("map", "salesforce", CRM / "salesforce", "--check", "--out", tmp_path)
    assert res.exit_code == ExitCode.USAGE
    res = run("map", "nosuch", CRM / "salesforce", "--check")
    assert res.exit_code == ExitCode.USAGE and "nor a shipped mapping (hubspot, odoo, salesforce)" in res.output


def test_map_with_rules_may_fill_a_field_the_pack_declares(tmp_path, make_pack):
    pack = make_pack(fields={"opportunity": {"pilot_running": "bool", "needs_understood": "bool"}})
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "deals.csv").write_text("Id,Stage,Pilot\nD1,bidding,Yes\nD2,bidding,\n", encoding="utf-8")
    m = tmp_path / "m.yaml"
    m.write_text("mapping: 1\nopportunities: {file: deals.csv, columns: {Id: id, Stage: stage, Pilot: pilot_running}}\n")
    refused = run("map", m, tmp_path / "export", "--out", tmp_path / "a")
    assert refused.exit_code == ExitCode.USAGE and "'pilot_running' is not a field of opportunity" in refused.output
    res = run("map", m, tmp_path / "export", "--out", tmp_path / "b", "--rules", pack)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b" / "opportunities.csv").read_text().splitlines() == \
        ["id,stage,pilot_running", "D1,bidding,true", "D2,bidding,"]
