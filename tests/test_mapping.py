"""CRM mappings: a raw export -> contract records (scoring.contract.mapping)."""
from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from scoring.contract.mapping import check_export, convert, load_mapping, map_export, read_export
from scoring.contract.reader import read_records
from scoring.errors import MappingError, ScoringError

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "datasets" / "mappings"
CRM = ROOT / "datasets" / "crm"
SHIPPED = {"salesforce": "salesforce", "hubspot": "hubspot", "odoo": "odoo"}


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _records(mapping: str, export: Path, tmp_path: Path) -> dict[str, dict]:
    out = tmp_path / "contract"
    map_export(load_mapping(MAPPINGS / f"{mapping}.yaml"), export, out)
    res = read_records(out)
    assert not res.rejects and not res.orphans, (res.rejects, res.orphans)
    return {r["id"]: r for r in res.records}


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _mapping(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


MINI = """
mapping: 1
unknown: ["", "N/A", "--"]
booleans: {true: [Y], false: [N]}
numbers: {thousands: ","}
currency: {column: Cur, default: USD, to: USD, rates: {EUR: 1.5}}
opportunities:
  file: deals.csv
  columns:
    Id: id
    Stage: {to: stage, values: {Early: technical_promotion, Won: {stage: bidding, outcome: won}}}
    Mapped: decision_chain_mapped
    Amount: {to: amount, currency: true}
"""


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_shipped_mapping_checks_its_fixture_export_clean(name):
    m = load_mapping(MAPPINGS / f"{name}.yaml")
    report = check_export(m, CRM / SHIPPED[name])
    assert report.ok, (report.findings, report.rejects[:3], report.orphans[:3])
    assert report.n_deals == len(_rows(CRM / SHIPPED[name] / m.opportunities.file))


def test_salesforce_closed_deals_get_outcome_close_date_and_a_snapshot_before_the_close(tmp_path):
    recs = _records("salesforce", CRM / "salesforce", tmp_path)
    export = {r["Id"]: r for r in _rows(CRM / "salesforce" / "Opportunity.csv")}
    closed = [r for r in recs.values() if r.get("outcome")]
    assert {r["outcome"] for r in closed} == {"won", "lost"}
    for r in closed:
        assert r["closed_at"] == export[r["id"]]["CloseDate"]
        assert r["as_of"] < r["closed_at"]
        assert r["stage"]  # a lost deal's stage comes from its field history
    for r in recs.values():
        if not r.get("outcome"):  # an open deal: not closed, and scored as of the run date
            assert r.get("closed_at") is None and r.get("as_of") is None


def test_salesforce_lost_deal_stage_is_the_stage_it_was_in_before_it_closed(tmp_path):
    recs = _records("salesforce", CRM / "salesforce", tmp_path)
    history = _rows(CRM / "salesforce" / "OpportunityFieldHistory.csv")
    stage_of = load_mapping(MAPPINGS / "salesforce.yaml").column("opportunity", "StageName").values
    lost = [r for r in recs.values() if r.get("outcome") == "lost"]
    assert lost
    for r in lost:
        into_lost = [h for h in history if h["OpportunityId"] == r["id"] and h["Field"] == "StageName"
                     and h["NewValue"] == "Closed Lost"]
        assert len(into_lost) == 1
        assert r["stage"] == stage_of[into_lost[0]["OldValue"].casefold()]["stage"]


def test_salesforce_close_date_pushes_count_only_moves_later_up_to_the_snapshot(tmp_path):
    recs = _records("salesforce", CRM / "salesforce", tmp_path)
    history = _rows(CRM / "salesforce" / "OpportunityFieldHistory.csv")
    moved_earlier = 0
    for rid, r in recs.items():
        moves = [h for h in history if h["OpportunityId"] == rid and h["Field"] == "CloseDate"
                 and (r.get("as_of") is None or h["CreatedDate"][:10] <= r["as_of"])]
        later = sum(h["NewValue"] > h["OldValue"] for h in moves)
        moved_earlier += sum(h["NewValue"] < h["OldValue"] for h in moves)
        assert r["close_date_pushes"] == later
    assert moved_earlier  # the fixture holds close dates pulled in, which are no push


def test_salesforce_amounts_are_converted_to_the_mappings_currency(tmp_path):
    recs = _records("salesforce", CRM / "salesforce", tmp_path)
    rates = load_mapping(MAPPINGS / "salesforce.yaml").currency.rates
    seen = set()
    for row in _rows(CRM / "salesforce" / "Opportunity.csv"):
        r = recs[row["Id"]]
        seen.add(row["CurrencyIsoCode"])
        assert r["currency"] == "USD"
        assert r["amount"] == pytest.approx(float(row["Amount"]) * rates[row["CurrencyIsoCode"]])
    assert {"USD", "EUR", "CNY"} <= seen


def test_salesforce_contact_roles_join_their_deals(tmp_path):
    recs = _records("salesforce", CRM / "salesforce", tmp_path)
    roles = _rows(CRM / "salesforce" / "OpportunityContactRole.csv")
    for rid, r in recs.items():
        mine = [x for x in roles if x["OpportunityId"] == rid]
        assert [c.get("name") for c in r.get("contacts", [])] == [x["Contact.Name"] for x in mine]
    other = [c for r in recs.values() for c in r.get("contacts", []) if c.get("role") is None]
    assert other  # "Other" says nothing about the role: unknown, not a guess


def test_hubspot_lost_deal_stage_is_the_last_stage_it_entered(tmp_path):
    recs = _records("hubspot", CRM / "hubspot", tmp_path)
    m = load_mapping(MAPPINGS / "hubspot.yaml")
    entered = next(d for d in m.derived if d.field == "stage").params
    for row in _rows(CRM / "hubspot" / "all-deals.csv"):
        if row["Deal Stage"] != "Closed Lost":
            continue
        last = max((row[c], stage) for c, stage in entered.items() if row[c])
        assert recs[row["Record ID"]]["stage"] == last[1]
        assert recs[row["Record ID"]]["outcome"] == "lost"


def test_odoo_archived_leads_are_lost_and_won_stage_is_won(tmp_path):
    recs = _records("odoo", CRM / "odoo", tmp_path)
    for row in _rows(CRM / "odoo" / "crm.lead.csv"):
        r = recs[row["id"]]
        expected = "won" if row["stage_id"] == "Won" else "lost" if row["active"] == "False" else None
        assert r.get("outcome") == expected
        if expected:
            assert r["closed_at"] == row["date_closed"][:10]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.sampled_from(["", "N/A", "--", " n/a ", "Y", "N", "yes", "No", "TRUE", "0", "1"]),
                      min_size=1, max_size=8))
def test_what_counts_as_unknown_is_unknown_never_false(tmp_path_factory, cells):
    tmp = tmp_path_factory.mktemp("unknown")
    _write(tmp / "export" / "deals.csv", ["Id", "Stage", "Mapped", "Amount", "Cur"],
           [[f"D{i}", "Early", c, "", ""] for i, c in enumerate(cells)])
    m = load_mapping(_mapping(tmp, MINI))
    map_export(m, tmp / "export", tmp / "out")
    res = read_records(tmp / "out")
    assert not res.rejects
    words = {"y": True, "yes": True, "true": True, "1": True, "n": False, "no": False, "0": False}
    for rec, c in zip(res.records, cells):
        assert rec.get("decision_chain_mapped") == words.get(c.strip().lower())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.integers(min_value=0, max_value=10**9), cur=st.sampled_from(["USD", "EUR", "", "eur"]),
       grouped=st.booleans())
def test_amounts_read_with_thousands_separators_and_converted(tmp_path_factory, amount, cur, grouped):
    tmp = tmp_path_factory.mktemp("amount")
    text = f"{amount:,}" if grouped else str(amount)
    _write(tmp / "export" / "deals.csv", ["Id", "Stage", "Mapped", "Amount", "Cur"], [["D1", "Won", "", text, cur]])
    map_export(load_mapping(_mapping(tmp, MINI)), tmp / "export", tmp / "out")
    (rec,) = read_records(tmp / "out").records
    assert rec["amount"] == pytest.approx(amount * (1.5 if cur.upper() == "EUR" else 1.0))
    assert rec["currency"] == "USD"
    assert (rec["stage"], rec["outcome"]) == ("bidding", "won")


def test_a_currency_without_a_rate_keeps_its_amount_and_code_and_is_a_finding(tmp_path):
    _write(tmp_path / "export" / "deals.csv", ["Id", "Stage", "Mapped", "Amount", "Cur"],
           [["D1", "Early", "", "100", "GBP"]])
    m = load_mapping(_mapping(tmp_path, MINI))
    conv = convert(m, read_export(m, tmp_path / "export"))
    assert conv.findings.no_rate == {"GBP": 1}
    map_export(m, tmp_path / "export", tmp_path / "out")
    (rec,) = read_records(tmp_path / "out").records
    assert (rec["amount"], rec["currency"]) == (100, "GBP")


def test_no_row_is_lost_bad_ones_are_rejected_by_the_contract_with_field_and_reason(tmp_path):
    _write(tmp_path / "export" / "deals.csv", ["Id", "Stage", "Mapped", "Amount", "Cur"],
           [["D1", "Early", "Y", "10", "USD"], ["D2", "Bidding?", "", "10", "USD"],
            ["D3", "Early", "maybe", "10", "USD"], ["D4", "Early", "", "12k", "USD"], ["D5", "Early"],
            ["D6", "Early", "Y", "10", "USD", "extra"]])
    m = load_mapping(_mapping(tmp_path, MINI))
    conv = map_export(m, tmp_path / "export", tmp_path / "out")
    assert conv.findings.ragged_rows == [("deals.csv", 5, 2, 5), ("deals.csv", 6, 6, 5)]
    res = read_records(tmp_path / "out")
    assert res.n_read == 6 and [r["id"] for r in res.records] == ["D1"]
    why = {r["id"]: (r["field"], r["row"], r["reason"]) for r in res.rejects}
    assert why["D2"][:2] == ("stage", 2) and "'Bidding?' is not one of" in why["D2"][2]
    assert why["D3"][:2] == ("decision_chain_mapped", 3) and "'maybe' is not a boolean" in why["D3"][2]
    assert why["D4"][:2] == ("amount", 4) and "'12k' is not a number" in why["D4"][2]
    assert why["D5"][1] == 5 and "the row ends after" in why["D5"][2]
    assert why["D6"][1] == 6 and "the row ends after" in why["D6"][2]  # a long row too: never a half-read row


def test_check_lists_unmapped_columns_values_with_counts_and_rejects(tmp_path):
    report = check_export(load_mapping(MAPPINGS / "salesforce.yaml"), CRM / "salesforce-messy")
    f = report.findings
    assert not report.ok
    assert f.unmapped_columns == {"Opportunity.csv": ["Next_Step_Owner__c"]}
    assert f.bad_values[("Opportunity.csv", "StageName")] == {"Bidding?": 2}
    assert f.bad_values[("OpportunityContactRole.csv", "Role")] == {"Champion": 1}
    assert f.no_rate == {"GBP": 1}
    by_field = {r["field"]: r for r in report.rejects}
    assert "'31/12/2026' is not a date" in by_field["expected_close"]["reason"]
    assert "OpportunityContactRole.csv row 2" in by_field["contacts[1].role"]["reason"]
    assert sum(r["field"] == "stage" for r in report.rejects) == 2


def test_close_date_pushes_are_unknown_for_a_deal_without_any_history(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    for name in ("Opportunity.csv", "OpportunityContactRole.csv", "OpportunityCompetitor.csv", "OpportunityPartner.csv"):
        shutil.copy(CRM / "salesforce" / name, export / name)
    hist = _rows(CRM / "salesforce" / "OpportunityFieldHistory.csv")
    first = hist[0]["OpportunityId"]
    kept = [h for h in hist if h["OpportunityId"] != first]
    _write(export / "OpportunityFieldHistory.csv", list(hist[0]), [list(h.values()) for h in kept])
    recs = _records("salesforce", export, tmp_path)
    assert recs[first].get("close_date_pushes") is None
    assert all(r.get("close_date_pushes") is not None for rid, r in recs.items() if rid != first)


def test_a_missing_export_file_is_named_with_the_mapping_key(tmp_path):
    (tmp_path / "export").mkdir()
    shutil.copy(CRM / "salesforce" / "Opportunity.csv", tmp_path / "export")
    with pytest.raises(ScoringError, match=r"OpportunityContactRole.csv: no such file \(named by contacts.file"):
        read_export(load_mapping(MAPPINGS / "salesforce.yaml"), tmp_path / "export")


def test_writing_refuses_a_folder_holding_another_contract_table(tmp_path):
    _write(tmp_path / "export" / "deals.csv", ["Id", "Stage", "Mapped", "Amount", "Cur"], [["D1", "Early", "", "", ""]])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "opportunities.parquet").write_bytes(b"old")
    with pytest.raises(ScoringError, match="opportunities.parquet: a contract table this mapping does not write"):
        map_export(load_mapping(_mapping(tmp_path, MINI)), tmp_path / "export", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["opportunities.parquet"]  # no temporary left


@pytest.mark.parametrize("text, key, words", [
    ("mapping: 2\nopportunities: {file: a.csv, columns: {Id: id}}", "key mapping", "must be 1"),
    ("mapping: 1\nopportunities: {file: a.csv, columns: {Id: id}, colums: {}}", "key opportunities.colums",
     "unknown key"),
    ("mapping: 1\nopportunities: {file: a.csv, columns: {Id: id, Stage: stag}}", "key opportunities.columns.Stage",
     "'stag' is not a field of opportunity"),
    ("mapping: 1\nopportunities: {file: a.csv, columns: {Id: id, S: {to: stage, values: {Late: closing}}}}",
     "key opportunities.columns.S.values.Late", "'closing' is not one of"),
    ("mapping: 1\nopportunities: {file: a.csv, columns: {Id: id, F: {to: needs_understood, values: {Yes: true}}}}",
     "key opportunities.columns.F.values.True", "quote the export text"),
    ("mapping: 1\nopportunities: {file: a.csv, columns: {Name: name}}", "key opportunities.columns",
     "no column fills `id`"),
    ("mapping: 1\nopportunities: {file: a.csv, columns: {Id: id}}\n"
     "derived: {close_date_pushes: {count_later: {history: h, field: CloseDate}}}",
     "key derived.close_date_pushes.count_later.history", "'h' is not under `history:`"),
    ("mapping: 1\nopportunities: {file: a.csv, columns: {Id: id, Owner: owner}}\n"
     "history: {h: {file: h.csv, join: O, field: F, old: A, new: B, date: D}}\n"
     "derived: {stage: {value_at: {history: h, field: StageName, values_of: Owner}}}",
     "key derived.stage.value_at.values_of", "the column 'Owner' never sets stage"),
    ("mapping: 1\nopportunities: {file: a.csv, columns: {Id: id}}\nopportunities: {file: b.csv}",
     "line 3", "duplicate key 'opportunities'"),
    ("mapping: 1\nopportunities: {file: ../a.csv, columns: {Id: id}}", "key opportunities.file", "without folders"),
    ("mapping: 1\ndates: ['%Y-%m-%d', 'day']\nopportunities: {file: a.csv, columns: {Id: id}}", "key dates",
     "'day' is not a date format"),
])
def test_a_bad_mapping_file_is_refused_naming_file_and_key(tmp_path, text, key, words):
    p = _mapping(tmp_path, text)
    with pytest.raises(MappingError) as e:
        load_mapping(p)
    assert str(p) in str(e.value) and key in str(e.value) and words in str(e.value)


def test_the_committed_fixture_exports_are_what_their_script_writes(tmp_path, monkeypatch):
    import runpy
    import sys

    monkeypatch.setattr(sys, "argv", ["make_fixtures.py", str(tmp_path)])
    runpy.run_path(str(CRM / "make_fixtures.py"), run_name="__main__")
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.csv"))
    assert written == sorted(p.relative_to(CRM) for p in CRM.rglob("*.csv"))
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (CRM / rel).read_bytes(), rel


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day=st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2099, 12, 31)),
       fmt=st.sampled_from(["%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%Y-%m-%dT%H:%M:%S.000Z", "%Y-%m-%d %H:%M:%S"]))
def test_dates_in_the_mappings_format_become_contract_dates(tmp_path_factory, day, fmt):
    tmp = tmp_path_factory.mktemp("dates")
    _write(tmp / "export" / "deals.csv", ["Id", "Stage", "Closes"], [["D1", "Early", day.strftime(fmt)]])
    m = load_mapping(_mapping(tmp, "mapping: 1\nopportunities: {file: deals.csv, columns: {Id: id, "
                                   "Stage: {to: stage, values: {Early: technical_promotion}}, "
                                   f"Closes: {{to: expected_close, dates: ['{fmt}']}}}}}}\n"))
    map_export(m, tmp / "export", tmp / "out")
    (rec,) = read_records(tmp / "out").records
    assert rec["expected_close"] == day.isoformat()


def test_check_lists_text_values_a_value_map_does_not_list_and_columns_it_lacks(tmp_path):
    _write(tmp_path / "export" / "deals.csv", ["Id", "Stage", "Region"],
           [["D1", "Early", "N"], ["D2", "Early", "Nord"], ["D3", "Early", "Nord"]])
    m = load_mapping(_mapping(tmp_path, "mapping: 1\nopportunities: {file: deals.csv, columns: {Id: id, "
                                        "Stage: {to: stage, values: {Early: technical_promotion}}, "
                                        "Region: {to: region, values: {N: north}}, Owner: owner}}\n"))
    report = check_export(m, tmp_path / "export")
    assert report.findings.unlisted_values == {("deals.csv", "Region"): {"Nord": 2}}
    assert report.findings.missing_columns == {"deals.csv": ["Owner"]}
    assert not report.rejects and not report.ok


def test_mapping_never_writes_over_a_file_of_the_export(tmp_path):
    _write(tmp_path / "export" / "opportunities.csv", ["Id", "Stage"], [["D1", "Early"]])
    before = (tmp_path / "export" / "opportunities.csv").read_bytes()
    m = load_mapping(_mapping(tmp_path, "mapping: 1\nopportunities: {file: opportunities.csv, columns: {Id: id, "
                                        "Stage: {to: stage, values: {Early: technical_promotion}}}}\n"))
    with pytest.raises(ScoringError, match="it is a file of the export"):
        map_export(m, tmp_path / "export", tmp_path / "export")
    assert (tmp_path / "export" / "opportunities.csv").read_bytes() == before


def test_a_quoted_cell_may_hold_line_breaks(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "deals.csv").write_text('Id,Stage,Mapped,Amount,Cur\r\nD1,Early,Y,"1,000",USD\r\n'
                                                   'D2,Early,N,5,"US\r\nD"\r\n', encoding="utf-8")
    m = load_mapping(_mapping(tmp_path, MINI))
    conv = convert(m, read_export(m, tmp_path / "export"))
    assert conv.n_deals == 2 and conv.findings.no_rate == {"US\r\nD": 1}


def test_a_history_row_with_an_unreadable_date_does_not_stop_the_conversion(tmp_path):
    export = tmp_path / "export"
    shutil.copytree(CRM / "salesforce", export)
    rows = _rows(export / "OpportunityFieldHistory.csv")
    lost = next(r for r in rows if r["NewValue"] == "Closed Lost")
    rows.append({**lost, "Id": "X1", "CreatedDate": "yesterday", "OldValue": "Prospecting"})
    _write(export / "OpportunityFieldHistory.csv", list(rows[0]), [list(r.values()) for r in rows])
    recs = _records("salesforce", export, tmp_path)
    stage_of = load_mapping(MAPPINGS / "salesforce.yaml").column("opportunity", "StageName").values
    assert check_export(load_mapping(MAPPINGS / "salesforce.yaml"), export).findings.history_values == \
        {("OpportunityFieldHistory.csv", "CreatedDate"): {"yesterday": 1}}
    # the undated change cannot be placed after the dated ones: the stage left for Closed Lost stays
    assert recs[lost["OpportunityId"]]["stage"] == stage_of[lost["OldValue"].casefold()]["stage"] != "technical_promotion"


def test_history_after_a_snapshot_is_not_seen_by_it(tmp_path):
    export = tmp_path / "export"
    shutil.copytree(CRM / "salesforce", export)
    before = _records("salesforce", export, tmp_path / "a")
    rows = _rows(export / "OpportunityFieldHistory.csv")
    lost = next(r for r in before.values() if r.get("outcome") == "lost")
    open_ = next(r for r in before.values() if not r.get("outcome"))
    late = lost["closed_at"] + "T18:00:00.000Z"  # on the close day: after the snapshot of the day before
    add = [{**rows[0], "Id": "X1", "OpportunityId": lost["id"], "CreatedDate": late, "Field": "CloseDate",
            "OldValue": "2026-01-01", "NewValue": "2026-12-31"},
           {**rows[0], "Id": "X2", "OpportunityId": lost["id"], "CreatedDate": late, "Field": "StageName",
            "OldValue": "Prospecting", "NewValue": "Prospecting"},
           {**rows[0], "Id": "X3", "OpportunityId": open_["id"], "CreatedDate": "2026-11-20T10:00:00.000Z",
            "Field": "CloseDate", "OldValue": "2026-12-01", "NewValue": "2027-01-31"}]
    _write(export / "OpportunityFieldHistory.csv", list(rows[0]), [list(r.values()) for r in rows + add])
    after = _records("salesforce", export, tmp_path / "b")
    assert after[lost["id"]]["close_date_pushes"] == lost["close_date_pushes"]
    assert after[lost["id"]]["stage"] == lost["stage"] != "technical_promotion"
    assert after[open_["id"]]["close_date_pushes"] == open_["close_date_pushes"] + 1  # no as_of: all of it
