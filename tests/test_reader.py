"""read_records: every input form read into nested records, rejects, orphans and undeclared fields."""
from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract_cases import (BAD, assert_accounted, base, csv_folder, write_csv_tables, write_jsonl,
                            write_parquet_tables)
from scoring.contract.nested import validate_record
from scoring.contract.reader import read_records
from scoring.contract.schema import CHILD_LISTS, CONTRACT, Field, merge_schema
from scoring.contract.values import NUMBER_MAX, NUMBER_TINY
from scoring.errors import RecordError, ScoringError

DATA = Path(__file__).parent / "data"


# --------------------------------------------------------------------------- #
# the contract's examples
# --------------------------------------------------------------------------- #
def test_contract_examples_validate():
    res = read_records(DATA / "example.jsonl")
    assert res.rejects == [] and res.n_read == 2
    assert [r["id"] for r in res.records] == ["OPP-1001", "OPP-0007"]
    first = res.records[0]
    assert first["tender_leans_to_us"] is None
    assert first["amount"] == 1850000.0 and isinstance(first["amount"], float)
    assert first["contacts"][2]["is_coach"] is True
    assert res.records[1]["partners"] == []


# --------------------------------------------------------------------------- #
# unknown is not false
# --------------------------------------------------------------------------- #
def test_csv_empty_cells_are_unknown(tmp_path):
    folder = csv_folder(tmp_path, "id,stage,needs_understood,amount,decision_maker_signal,name\n"
                                  "A,solution,,,,\nB,solution,false,0,none,x\n")
    a, b = read_records(folder).records
    assert a["needs_understood"] is None and a["amount"] is None
    assert a["decision_maker_signal"] is None and a["name"] is None
    assert b["needs_understood"] is False and b["amount"] == 0.0 and b["decision_maker_signal"] == "none"


def test_parquet_nulls_are_unknown(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    pq.write_table(pa.table({"id": ["A", "B"], "stage": ["solution", "solution"],
                             "needs_understood": pa.array([None, False]),
                             "site_visits": pa.array([None, 0], pa.int64()),
                             "decision_maker_signal": pa.array([None, "none"])}),
                   folder / "opportunities.parquet")
    a, b = read_records(folder).records
    assert a["needs_understood"] is None and a["site_visits"] is None and a["decision_maker_signal"] is None
    assert b["needs_understood"] is False and b["site_visits"] == 0 and b["decision_maker_signal"] == "none"


# --------------------------------------------------------------------------- #
# CSV typing
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("cell,value", [
    ("true", True), ("TRUE", True), ("True", True), ("yes", True), ("YES", True), ("1", True),
    ("false", False), ("FALSE", False), ("no", False), ("No", False), ("0", False), ("", None),
])
def test_csv_boolean_spellings(tmp_path, cell, value):
    folder = csv_folder(tmp_path, f"id,stage,needs_understood\nA,solution,{cell}\n")
    res = read_records(folder)
    assert res.records[0]["needs_understood"] is value


@pytest.mark.parametrize("cell", ["y", "t", "NA", "null", "2"])
def test_csv_other_boolean_text_is_rejected(tmp_path, cell):
    res = read_records(csv_folder(tmp_path, f"id,stage,needs_understood\nA,solution,{cell}\n"))
    assert res.records == []
    assert res.rejects == [{"id": "A", "field": "needs_understood", "row": 1,
                            "reason": f"{cell!r} is not a boolean (true/false, yes/no, 1/0)"}]


@pytest.mark.parametrize("cell", ["NA", "None", "null", "nan", "N/A", "Implicit"])
def test_csv_null_words_in_enum_field_are_rejected(tmp_path, cell):
    res = read_records(csv_folder(tmp_path, f"id,stage,decision_maker_signal\nA,solution,{cell}\n"))
    assert res.records == []
    assert res.rejects[0]["field"] == "decision_maker_signal"
    assert res.rejects[0]["reason"] == f"{cell!r} is not one of none, implicit, explicit"


@pytest.mark.parametrize("cell", ["NA", "None", "null", "nan", "#N/A"])
def test_csv_null_words_in_text_field_are_kept_as_text(tmp_path, cell):
    res = read_records(csv_folder(tmp_path, f"id,stage,name,account\n{cell},solution,{cell},{cell}\n"))
    (rec,) = res.records
    assert rec["id"] == rec["name"] == rec["account"] == cell


def test_csv_none_is_a_decision_maker_signal_value(tmp_path):
    res = read_records(csv_folder(tmp_path, "id,stage,decision_maker_signal\nA,solution,none\n"))
    assert res.records[0]["decision_maker_signal"] == "none"


@pytest.mark.parametrize("col,cell,reason", [
    ("amount", "abc", "'abc' is not a number"),
    ("amount", "inf", "'inf' is not a number"),
    ("amount", "1,5", "'1,5' is not a number"),
    ("amount", "-3", "-3.0 is below the minimum 0"),
    ("site_visits", "2.5", "'2.5' is not a whole number"),
    ("site_visits", "-2", "-2 is below the minimum 0"),
    ("site_visits", " 2", "' 2' is not a whole number"),
    ("as_of", "2026/01/02", "'2026/01/02' is not a date (YYYY-MM-DD)"),
    ("as_of", "2026-02-30", "'2026-02-30' is not a date (YYYY-MM-DD)"),
    ("as_of", "20260102", "'20260102' is not a date (YYYY-MM-DD)"),
    ("stage", "Solution", "'Solution' is not one of technical_promotion, relationship, partner, solution, bidding"),
])
def test_csv_unparseable_cell_is_a_bad_record_with_reason(tmp_path, col, cell, reason):
    text = f'id,stage\nA,"{cell}"\n' if col == "stage" else f'id,stage,{col}\nA,solution,"{cell}"\n'
    res = read_records(csv_folder(tmp_path, text))
    assert res.rejects == [{"id": "A", "field": col, "reason": reason, "row": 1}]


def test_csv_numbers_parse_to_python_types(tmp_path):
    res = read_records(csv_folder(tmp_path, "id,stage,amount,site_visits,as_of\nA,solution,1.5e3,3.0,2026-01-02\n"))
    rec = res.records[0]
    assert rec["amount"] == 1500.0 and type(rec["amount"]) is float
    assert rec["site_visits"] == 3 and type(rec["site_visits"]) is int
    assert rec["as_of"] == "2026-01-02"


# --------------------------------------------------------------------------- #
# bad records (contract "Bad input")
# --------------------------------------------------------------------------- #
BAD_JSON = [b for b in BAD if b[0] != "infinite number"]  # not JSON: see test_jsonl_nan_and_infinity_tokens_...


@pytest.mark.parametrize("what,change,rid,field,reason", BAD_JSON, ids=[b[0] for b in BAD_JSON])
def test_jsonl_bad_record_is_one_reject_naming_id_and_field(tmp_path, what, change, rid, field, reason):
    good = base(id="GOOD")
    res = read_records(write_jsonl(tmp_path / "in.jsonl", [good, base(**change), good | {"id": "GOOD2"}]))
    assert [r["id"] for r in res.records] == ["GOOD", "GOOD2"]
    assert len(res.rejects) == 1
    rej = res.rejects[0]
    assert (rej["id"], rej["field"], rej["line"]) == (rid, field, 2)
    assert reason in rej["reason"]
    assert_accounted(res)


def test_bad_child_row_reason_names_the_row_in_table_form(tmp_path):
    folder = csv_folder(tmp_path, "id,stage\nA,solution\nB,solution\n",
                        contacts="opportunity_id,name,role\nA,x,approver\nB,y,user\nA,z,boss\n")
    res = read_records(folder)
    assert [r["id"] for r in res.records] == ["B"]
    assert res.rejects == [{"id": "A", "field": "contacts[1].role", "row": 1,
                            "reason": "'boss' is not one of approver, decision_maker, evaluator, advisor, "
                                      "gatekeeper, user (contacts.csv row 3)"}]
    assert res.orphans == []


# --------------------------------------------------------------------------- #
# JSON Lines
# --------------------------------------------------------------------------- #
def test_jsonl_broken_lines_are_rejected_with_line_numbers(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps(base(id="A")) + "\n"
        "\n"
        '{"id": "B", "stage": "solution"\n'
        "[1, 2]\n"
        '{"stage": "solution"}\n'
        "   \n" + json.dumps(base(id="C")) + "\n",
        encoding="utf-8",
    )
    res = read_records(path)
    assert [r["id"] for r in res.records] == ["A", "C"]
    assert [(r["line"], r["id"], r["field"]) for r in res.rejects] == [(3, None, None), (4, None, None),
                                                                       (5, None, "id")]
    assert res.rejects[0]["reason"].startswith("broken JSON: ")
    assert "not list" in res.rejects[1]["reason"]
    assert res.rejects[2]["reason"] == "required field is missing"
    assert res.n_read == 5
    assert_accounted(res)


def test_jsonl_nan_and_infinity_tokens_are_rejected(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "A", "stage": "solution", "amount": NaN}\n'
                    '{"id": "B", "stage": "solution", "amount": Infinity}\n', encoding="utf-8")
    res = read_records(path)
    assert res.records == []
    assert [(r["id"], r["field"], r["reason"]) for r in res.rejects] == [
        ("A", "amount", "NaN is not a number"), ("B", "amount", "Infinity is not a number")]


def test_jsonl_gz_is_read(tmp_path):
    res = read_records(write_jsonl(tmp_path / "in.jsonl.gz", [base(id="A"), base(id="B")], gz=True))
    assert [r["id"] for r in res.records] == ["A", "B"]


def test_duplicate_id_and_as_of_rejects_later_occurrences(tmp_path):
    recs = [base(id="A", as_of="2026-01-01"), base(id="A", as_of="2026-02-01"),
            base(id="A", as_of="2026-01-01"), base(id="B"), base(id="B"), base(id="B", as_of="2026-01-01")]
    res = read_records(write_jsonl(tmp_path / "in.jsonl", recs))
    assert [(r["id"], r["as_of"]) for r in res.records] == [("A", "2026-01-01"), ("A", "2026-02-01"),
                                                             ("B", None), ("B", "2026-01-01")]
    assert res.rejects == [{"id": "A", "field": "id", "reason": "duplicate (id, as_of)", "line": 3},
                           {"id": "B", "field": "id", "reason": "duplicate (id, as_of)", "line": 5}]


def test_duplicate_id_and_as_of_rejected_in_table_form(tmp_path):
    res = read_records(csv_folder(tmp_path, "id,stage,as_of\nA,solution,2026-01-01\nA,bidding,2026-01-01\n"))
    assert [r["stage"] for r in res.records] == ["solution"]
    assert res.rejects == [{"id": "A", "field": "id", "reason": "duplicate (id, as_of)", "row": 2}]


def test_rejects_never_carry_the_record(tmp_path):
    rec = base(name="Secret deal", account="ACME", stage="nope")
    res = read_records(write_jsonl(tmp_path / "in.jsonl", [rec]))
    assert set(res.rejects[0]) == {"id", "field", "reason", "line"}
    assert "Secret" not in json.dumps(res.rejects)


_LINES = st.one_of(
    st.builds(lambda i: json.dumps(base(id=f"G{i}")), st.integers(0, 5)),
    st.builds(lambda i: json.dumps(base(id=f"G{i}", site_visits=-1)), st.integers(0, 5)),
    st.just('{"id": "X", "stage":'),
    st.just("42"),
    st.just(""),
    st.just(json.dumps({"stage": "solution"})),
)


@given(st.lists(_LINES, max_size=30))
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_jsonl_every_line_is_a_record_or_one_reject(tmp_path, lines):
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = read_records(path)
    assert res.n_read == sum(1 for ln in lines if ln.strip())
    assert_accounted(res)
    assert len({r["line"] for r in res.rejects}) == len(res.rejects)


# --------------------------------------------------------------------------- #
# table form
# --------------------------------------------------------------------------- #
def test_csv_tables_good_bad_and_orphan_rows(tmp_path):
    folder = csv_folder(
        tmp_path,
        "id,stage,site_visits,site_visits_accompanied\n"
        "A,solution,2,1\n"
        ",solution,,\n"
        "C,closing,,\n"
        "D,bidding,1,3\n"
        "E,partner,-1,\n",
        contacts="name,opportunity_id,stance\nx,A,ally\ny,ZZZ,ally\nz,C,ally\nw,,ally\n",
        partners="opportunity_id,name,customer_attitude\nA,P1,positive\nE,P2,positive\n",
    )
    res = read_records(folder)
    assert [r["id"] for r in res.records] == ["A"]
    assert res.records[0]["contacts"] == [{**{k: None for k in CONTRACT["contacts"]}, "name": "x", "stance": "ally"}]
    assert res.records[0]["partners"][0]["name"] == "P1"
    assert [(r["id"], r["field"], r["row"]) for r in res.rejects] == [
        (None, "id", 2), ("C", "stage", 3), ("D", "site_visits_accompanied", 4), ("E", "site_visits", 5)]
    assert res.rejects[2]["reason"] == "site_visits_accompanied (3) exceeds site_visits (1)"
    assert [(o["table"], o["opportunity_id"], o["row"]) for o in res.orphans] == [
        ("contacts", "ZZZ", 2), ("contacts", None, 4)]
    assert res.orphans[1]["reason"] == "opportunity_id is missing"
    assert_accounted(res)


def test_parquet_tables_good_bad_and_orphan_rows(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.table({
        "id": ["A", "B", "C", "D"],
        "stage": ["solution", "solution", "solution", "nope"],
        "site_visits": pa.array([2.0, 2.5, None, 1.0], pa.float64()),  # a float column for an int field
        "needs_understood": pa.array([True, None, False, None]),
    }), folder / "opportunities.parquet")
    pq.write_table(pa.table({"opportunity_id": ["A", "Q", "D", None],
                             "name": ["x", "y", "z", "w"],
                             "is_coach": pa.array([True, False, None, None])}), folder / "contacts.parquet")
    res = read_records(folder)
    assert [r["id"] for r in res.records] == ["A", "C"]
    a = res.records[0]
    assert a["site_visits"] == 2 and type(a["site_visits"]) is int
    assert a["contacts"][0]["is_coach"] is True
    assert res.records[1]["needs_understood"] is False
    assert [(r["id"], r["field"], r["reason"]) for r in res.rejects] == [
        ("B", "site_visits", "2.5 is not a whole number"),
        ("D", "stage", "'nope' is not one of technical_promotion, relationship, partner, solution, bidding")]
    assert [(o["opportunity_id"], o["row"]) for o in res.orphans] == [("Q", 2), (None, 4)]
    assert_accounted(res)


def test_parquet_keeps_its_types_text_is_not_a_boolean(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.table({"id": ["A"], "stage": ["solution"], "needs_understood": ["true"]}),
                   folder / "opportunities.parquet")
    res = read_records(folder)
    assert res.rejects[0]["field"] == "needs_understood"


def test_child_rows_of_a_rejected_opportunity_are_not_orphans(tmp_path):
    folder = csv_folder(tmp_path, "id,stage\nA,nope\n", contacts="opportunity_id,name\nA,x\n")
    res = read_records(folder)
    assert res.records == [] and res.orphans == []
    assert res.rejects[0]["id"] == "A"


def test_child_rows_attach_to_their_snapshot_by_as_of(tmp_path):
    folder = csv_folder(
        tmp_path,
        "id,stage,as_of\nA,solution,2026-01-01\nA,bidding,2026-02-01\n",
        contacts="opportunity_id,as_of,name\nA,2026-02-01,late\nA,2026-01-01,early\nA,2026-03-01,none\n",
    )
    res = read_records(folder)
    assert [[c["name"] for c in r["contacts"]] for r in res.records] == [["early"], ["late"]]
    assert [(o["opportunity_id"], o["row"]) for o in res.orphans] == [("A", 3)]


def test_child_table_without_as_of_attaches_to_every_snapshot(tmp_path):
    folder = csv_folder(tmp_path, "id,stage,as_of\nA,solution,2026-01-01\nA,bidding,2026-02-01\n",
                        competitors="opportunity_id,name\nA,RivalNet\n")
    a1, a2 = read_records(folder).records
    assert a1["competitors"] == a2["competitors"] and a1["competitors"][0]["name"] == "RivalNet"
    assert a1["competitors"][0] is not a2["competitors"][0]


def test_unsorted_child_files_nest_under_the_right_record(tmp_path):
    rng = random.Random(7)
    ids = [f"O{i}" for i in range(50)]
    rows = [(oid, f"{oid}-c{k}") for oid in ids for k in range(3)]
    rng.shuffle(rows)
    folder = csv_folder(tmp_path, "id,stage\n" + "".join(f"{i},solution\n" for i in ids),
                        contacts="opportunity_id,name\n" + "".join(f"{o},{n}\n" for o, n in rows))
    res = read_records(folder)
    for rec in res.records:
        names = [c["name"] for c in rec["contacts"]]
        assert sorted(names) == [f"{rec['id']}-c{k}" for k in range(3)]
        assert names == [n for o, n in rows if o == rec["id"]]  # file order within a record


def test_opportunities_in_both_formats_is_an_error(tmp_path):
    folder = csv_folder(tmp_path, "id,stage\nA,solution\n")
    pq.write_table(pa.table({"id": ["A"], "stage": ["solution"]}), folder / "opportunities.parquet")
    with pytest.raises(ScoringError, match="both"):
        read_records(folder)


def test_child_table_in_another_format_is_an_error(tmp_path):
    folder = csv_folder(tmp_path, "id,stage\nA,solution\n")
    pq.write_table(pa.table({"opportunity_id": ["A"], "name": ["x"]}), folder / "contacts.parquet")
    with pytest.raises(ScoringError, match="contacts.parquet"):
        read_records(folder)


def test_child_table_without_opportunity_id_is_an_error(tmp_path):
    folder = csv_folder(tmp_path, "id,stage\nA,solution\n", contacts="name\nx\n")
    with pytest.raises(ScoringError, match="opportunity_id"):
        read_records(folder)


def test_folder_without_opportunities_table_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path)


def test_read_records_dispatches_on_the_path(tmp_path):
    recs = [base(id="A", contacts=[{"name": "x"}])]
    folder = write_csv_tables(tmp_path / "t", recs)
    by_jsonl = read_records(write_jsonl(tmp_path / "in.ndjson", recs)).records
    assert read_records(folder).records == by_jsonl
    single = read_records(folder / "opportunities.csv").records
    assert single[0]["contacts"] == [] and single[0]["id"] == "A"
    with pytest.raises(ScoringError):
        read_records(tmp_path / "in.txt")


# --------------------------------------------------------------------------- #
# nested and table forms carry the same information
# --------------------------------------------------------------------------- #
_TEXT = st.one_of(
    st.sampled_from(["NA", "None", "null", "nan", "none", "true", "0", "a,b", 'say "hi"', "multi\nline", " pad "]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12),
)


def _value(f: Field):
    if f.type == "string":
        return _TEXT
    if f.type == "enum":
        return st.sampled_from(f.values)
    if f.type == "bool":
        return st.booleans()
    if f.type == "int":
        return st.integers(0, 10**6)
    if f.type == "number":
        return st.one_of(st.integers(0, 10**9), st.just(0.0), st.floats(NUMBER_TINY, NUMBER_MAX))  # the contract's range
    return st.dates(min_value=dt.date(1900, 1, 1)).map(dt.date.isoformat)


def _row(entity, skip=()):
    fields = {n: f for n, f in CONTRACT[entity].items() if n not in skip}
    req = {n: _value(f) for n, f in fields.items() if f.required}
    opt = {n: st.one_of(st.none(), _value(f)) for n, f in fields.items() if not f.required}
    return st.fixed_dictionaries(req, optional=opt)


def _fix_visits(rec):
    v, a = rec.get("site_visits"), rec.get("site_visits_accompanied")
    if v is not None and a is not None and a > v:
        rec["site_visits"], rec["site_visits_accompanied"] = a, v
    return rec


_RECORD = st.builds(
    lambda opp, kids: _fix_visits({**opp, **kids}),
    _row("opportunity", skip=("id",)).flatmap(
        lambda d: st.builds(lambda i: {**d, "id": i},
                           st.one_of(st.sampled_from(["A", "B", "NA"]), _TEXT.filter(str.strip)))),
    st.fixed_dictionaries({}, optional={c: st.lists(_row(c), max_size=3) for c in CHILD_LISTS}),
)


@given(st.lists(_RECORD, max_size=6, unique_by=lambda r: (r["id"], r.get("as_of"))))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_nested_and_table_forms_load_identical_records(tmp_path_factory, records):
    tmp = tmp_path_factory.mktemp("forms")
    nested = read_records(write_jsonl(tmp / "in.jsonl", records))
    assert nested.rejects == [] and len(nested.records) == len(records)
    by_csv = read_records(write_csv_tables(tmp / "csv", records))
    by_parquet = read_records(write_parquet_tables(tmp / "pq", records))
    for res in (by_csv, by_parquet):
        assert res.rejects == [] and res.orphans == [] and res.undeclared_fields == {}
        assert res.records == nested.records


# --------------------------------------------------------------------------- #
# undeclared fields and merged schemas
# --------------------------------------------------------------------------- #
def test_misspelt_csv_column_is_reported_as_undeclared(tmp_path):
    folder = csv_folder(tmp_path, "id,stage,needs_understod\nA,solution,true\n",
                        contacts="opportunity_id,as_of,name,stnace\nA,,x,ally\n")
    res = read_records(folder)
    assert res.undeclared_fields == {"opportunity": ["needs_understod"], "contacts": ["stnace"]}
    rec = res.records[0]
    assert rec["needs_understood"] is None and rec["needs_understod"] == "true"


def test_undeclared_jsonl_fields_are_reported(tmp_path):
    res = read_records(write_jsonl(tmp_path / "in.jsonl", [
        base(id="A", needs_understod=True, contacts=[{"name": "x", "opportunity_id": "A", "rol": "user"}]),
        base(id="B", zeta=1)]))
    assert res.undeclared_fields == {"opportunity": ["needs_understod", "zeta"], "contacts": ["rol"]}


def test_merged_schema_validates_a_packs_own_fields(tmp_path):
    schema = merge_schema(CONTRACT, {
        "opportunity": {"pilot_weeks": Field("pilot_weeks", "int", min=0),
                        "pilot_result": Field("pilot_result", "enum", values=("pass", "fail"))},
        "contacts": {"golfer": Field("golfer", "bool")},
    })
    out = validate_record(base(pilot_weeks=3.0, contacts=[{"golfer": False}]), schema)
    assert out["pilot_weeks"] == 3 and out["pilot_result"] is None and out["contacts"][0]["golfer"] is False
    with pytest.raises(RecordError) as exc:
        validate_record(base(pilot_result="maybe"), schema)
    assert exc.value.field == "pilot_result"
    folder = csv_folder(tmp_path, "id,stage,pilot_weeks\nA,solution,2\nB,solution,x\n",
                        contacts="opportunity_id,golfer\nA,yes\n")
    res = read_records(folder, schema)
    assert res.undeclared_fields == {}
    assert res.records[0]["pilot_weeks"] == 2 and res.records[0]["contacts"][0]["golfer"] is True
    assert res.rejects == [{"id": "B", "field": "pilot_weeks", "reason": "'x' is not a whole number", "row": 2}]


def test_parquet_timestamps_and_int_columns_for_number_fields(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.table({
        "id": ["A", "B"], "stage": ["solution", "bidding"],
        "as_of": pa.array([dt.datetime(2026, 1, 2, 9, 30), None], pa.timestamp("us")),
        "amount": pa.array([5, None], pa.int64()),
    }), folder / "opportunities.parquet")
    a, b = read_records(folder).records
    assert a["as_of"] == "2026-01-02" and b["as_of"] is None
    assert a["amount"] == 5.0 and type(a["amount"]) is float and b["amount"] is None


def test_history_table_without_outcome_is_rejected(tmp_path):
    res = read_records(csv_folder(tmp_path, "id,stage,outcome\nA,solution,won\nB,solution,\n"), history=True)
    assert [r["id"] for r in res.records] == ["A"]
    assert (res.rejects[0]["id"], res.rejects[0]["field"]) == ("B", "outcome")


def test_csv_short_rows_are_rejected_not_read_as_unknown(tmp_path):
    res = read_records(csv_folder(tmp_path, "id,stage,needs_understood,amount\nA,solution\nB,solution,,\n"))
    assert [r["id"] for r in res.records] == ["B"] and res.records[0]["amount"] is None  # empty cells: unknown
    assert res.rejects == [{"id": "A", "field": "needs_understood", "row": 1,
                            "reason": "the row ends after 2 of 4 cells (missing trailing cells, or a truncated file)"}]
