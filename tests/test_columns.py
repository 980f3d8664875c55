"""The column-wise typing agrees with the per-value converters, the oracle of the contract's typing.

Random cells in CSV text and in typed Parquet columns, read by the one reader,
must give the value the per-value converter gives, or a reject with its words;
a pandas column that mixes Python types is checked cell by cell with them; and
the same records as JSON Lines, CSV and Parquet give the same records and rejects.
"""
from __future__ import annotations

import csv
import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import examples
from contract_cases import base, write_csv_tables, write_jsonl, write_parquet_tables
from scoring.contract.reader import read_records, validate_dataframes
from scoring.contract.schema import CONTRACT, Field, merge_schema
from scoring.contract.values import Bad, converters, is_null

#: One field of each type (with a minimum where the contract has one), all named "x".
FIELDS = {
    "int": Field("x", "int", min=0),
    "number": Field("x", "number", min=0),
    "bool": Field("x", "bool"),
    "date": Field("x", "date"),
    "enum": Field("x", "enum", values=("low", "high", "none")),
    "string": Field("x", "string"),
}
SCHEMAS = {t: merge_schema(CONTRACT, {"opportunity": {"x": f}}) for t, f in FIELDS.items()}
_SETTINGS = settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def expect(conv, v):
    """What the per-value converter makes of v: ("value", x) or ("reason", words)."""
    try:
        return "value", conv(v)
    except Bad as e:
        return "reason", e.args[0]


def outcomes(res) -> list[tuple[str, object]]:
    """("value", x) of each good row or ("reason", words) of each reject, in row order (ids are R<row>)."""
    got = {r["id"]: ("value", r["x"]) for r in res.records}
    for r in res.rejects:
        assert r["field"] == "x", r
        got[r["id"]] = ("reason", r["reason"])
    return [got[f"R{i}"] for i in range(len(got))]


# --------------------------------------------------------------------------- CSV text
_CELL = st.one_of(
    st.sampled_from(["", "0", "1", "-1", "+2", "007", "2.0", "2.5", "1e3", "1e999", "-0.0", ".5", "7.", "nan", "inf",
                     "true", "FALSE", "Yes", "no", "y", "NA", "none", "None", "low", "HIGH", " 2", "2026-01-31",
                     "2024-02-29", "2023-02-29", "0000-01-01", "2026/01/31", "20260131", "1234567890123456789012",
                     "-99999999999999999999"]),
    st.from_regex(r"[+-]?[0-9]{0,20}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8),
)


@given(ftype=st.sampled_from(sorted(FIELDS)), cells=st.lists(_CELL, min_size=1, max_size=30))
@_SETTINGS
def test_csv_cells_read_as_the_per_value_converter_reads_text(tmp_path_factory, ftype, cells):
    path = tmp_path_factory.mktemp("csv") / "opportunities.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(["id", "stage", "x"])
        w.writerows([f"R{i}", "solution", c] for i, c in enumerate(cells))
    _, text = converters(FIELDS[ftype])
    want = [("value", None) if c == "" else expect(text, c) for c in cells]
    assert outcomes(read_records(path, SCHEMAS[ftype])) == want


# --------------------------------------------------------------------------- typed Parquet columns
_TYPED = {
    pa.int64(): st.integers(-(2**63), 2**63 - 1),
    pa.float64(): st.floats(allow_nan=True, allow_infinity=True),
    pa.bool_(): st.booleans(),
    pa.string(): _CELL,
    pa.date32(): st.dates(),
    pa.timestamp("us"): st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    pa.uint64(): st.integers(0, 2**64 - 1),
}


@st.composite
def _typed_column(draw):
    typ = draw(st.sampled_from(list(_TYPED)))
    return typ, draw(st.lists(st.one_of(st.none(), _TYPED[typ]), min_size=1, max_size=30))


@given(ftype=st.sampled_from(sorted(FIELDS)), column=_typed_column())
@_SETTINGS
def test_parquet_cells_read_as_the_per_value_converter_reads_values(tmp_path_factory, ftype, column):
    typ, values = column
    path = tmp_path_factory.mktemp("pq") / "opportunities.parquet"
    n = len(values)
    pq.write_table(pa.table({"id": [f"R{i}" for i in range(n)], "stage": ["solution"] * n,
                             "x": pa.array(values, typ)}), path)
    native, _ = converters(FIELDS[ftype])
    want = [("value", None) if v is None or is_null(v) else expect(native, v) for v in values]
    assert outcomes(read_records(path, SCHEMAS[ftype])) == want


# --------------------------------------------------------------------------- pandas columns mixing Python types
def test_a_pandas_column_mixing_python_types_is_checked_cell_by_cell():
    opps = pd.DataFrame({
        "id": pd.Series(["A", "B", 7, "D", None], dtype=object),
        "stage": ["solution"] * 5,
        "needs_understood": pd.Series([True, "yes", None, 1, np.nan], dtype=object),
        "site_visits": pd.Series([1, 2.0, "3", None, 2], dtype=object),
    })
    contacts = pd.DataFrame({"opportunity_id": pd.Series(["A", 5, "A"], dtype=object),
                             "is_coach": pd.Series([True, False, "no"], dtype=object)})
    chunk = validate_dataframes(opps, {"contacts": contacts}, CONTRACT)
    assert chunk.frames.opps["id"].tolist() == []
    assert chunk.rejects == [
        {"id": "A", "field": "contacts[1].is_coach", "row": 1,
         "reason": "'no' is not a boolean (write true or false without quotes) (contacts row 3)"},
        {"id": "B", "field": "needs_understood", "row": 2,
         "reason": "'yes' is not a boolean (write true or false without quotes)"},
        {"id": None, "field": "id", "row": 3, "reason": "7 is not a string; ids are text, quote them"},
        {"id": "D", "field": "needs_understood", "row": 4, "reason": "1 is not a boolean (true or false)"},
        {"id": None, "field": "id", "row": 5, "reason": "required field is missing"},
    ]
    assert chunk.orphans == [{"table": "contacts", "opportunity_id": 5, "row": 2,
                              "reason": "no opportunity with id 5"}]


def test_good_cells_of_a_mixed_pandas_column_keep_their_values():
    opps = pd.DataFrame({"id": ["A", "B"], "stage": ["solution", "bidding"],
                         "amount": pd.Series([5, 2.5], dtype=object),
                         "name": pd.Series(["x", None], dtype=object),
                         "site_visits": pd.Series([3.0, None], dtype=object),
                         "as_of": pd.Series([dt.date(2026, 1, 2), "2026-01-03"], dtype=object)})
    chunk = validate_dataframes(opps, {}, CONTRACT)
    assert chunk.rejects == []
    o = chunk.frames.opps
    assert o["amount"].tolist() == [5.0, 2.5] and o["amount"].dtype == "Float64"
    assert o["site_visits"].dtype == "Int64" and o["site_visits"].tolist()[0] == 3
    assert o["as_of"].tolist() == ["2026-01-02", "2026-01-03"]


# --------------------------------------------------------------------------- across input forms
_BAD_EVERYWHERE = [
    {"stage": "closing"},
    {"stage": None},
    {"site_visits": -2},
    {"amount": -0.5},
    {"decision_maker_signal": "maybe"},
    {"site_visits": 1, "site_visits_accompanied": 3},
    {"contacts": [{"name": "x", "role": "boss"}]},
]


@given(st.lists(st.one_of(st.none(), st.sampled_from(range(len(_BAD_EVERYWHERE)))), min_size=1, max_size=8))
@_SETTINGS
def test_json_lines_csv_and_parquet_give_the_same_records_and_rejects(tmp_path_factory, picks):
    tmp = tmp_path_factory.mktemp("forms")
    recs = [base(id=f"R{i}", as_of="2026-01-02", **({} if k is None else _BAD_EVERYWHERE[k]))
            for i, k in enumerate(picks)]
    by_jsonl = read_records(write_jsonl(tmp / "in.jsonl", recs))
    want_rejects = [(r["id"], r["field"], r["reason"].split(" (contacts")[0], r["line"]) for r in by_jsonl.rejects]
    assert len(want_rejects) == sum(k is not None for k in picks)
    for folder in (write_csv_tables(tmp / "csv", recs), write_parquet_tables(tmp / "pq", recs)):
        res = read_records(folder)
        assert res.records == by_jsonl.records
        assert [(r["id"], r["field"], r["reason"].split(" (contacts")[0], r["row"]) for r in res.rejects] == \
            want_rejects


@pytest.mark.parametrize("form", ["jsonl", "csv", "parquet"])
def test_every_form_names_a_bad_child_row_by_its_index(tmp_path, form):
    recs = [base(id="A", contacts=[{"role": "user"}, {"role": "boss"}])]
    src = {"jsonl": lambda: write_jsonl(tmp_path / "a.jsonl", recs),
           "csv": lambda: write_csv_tables(tmp_path / "c", recs),
           "parquet": lambda: write_parquet_tables(tmp_path / "p", recs)}[form]()
    (rej,) = read_records(src).rejects
    assert rej["field"] == "contacts[1].role"
    assert rej["reason"].startswith("'boss' is not one of approver")
    assert json.dumps(rej)  # plain data
