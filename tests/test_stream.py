"""InputStream: cutting an input into partitions changes nothing.

The chunks of a stream (many small partitions: hash buckets of the table form,
line ranges of JSON Lines) must hold the same decisions, reasons, row/line
numbers, orphans and undeclared fields as reading the input as ONE partition
(:func:`scoring.contract.reader.read_records`), on random inputs full of bad
cells.  The typing itself is tested against the per-value converters in
test_columns.py.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import examples
from contract_cases import csv_folder
from scoring.contract.frames import records_to_frames
from scoring.contract.schema import CHILD_LISTS, CONTRACT, Field
from scoring.errors import ScoringError
from scoring.contract.reader import Chunk, DuplicateFilter, InputStream, load_partition, read_records
from scoring.contract.schema import merge_schema
from dealscore_datasets.generate import generate_records, generate_tables, tables_to_records, write_jsonl, write_tables

PACK = SimpleNamespace(fields=CONTRACT)


# --------------------------------------------------------------------------- #
# comparison with one partition
# --------------------------------------------------------------------------- #
def _py(v):
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat()
    return v


def _canon(frames, fields=None) -> dict:
    """(id, as_of) -> (opportunity values, {child: [row values in order]})."""
    opps = frames.opps
    names = [c for c in opps.columns if fields is None or c in fields["opportunity"]]
    cols = {c: [_py(v) for v in opps[c].astype(object).tolist()] for c in names}
    out = {}
    kids = {}
    for lst, df in frames.children.items():
        cn = sorted(c for c in df.columns if c != "_row")
        rows = df["_row"].to_numpy().tolist()
        vals = [[_py(v) for v in df[c].astype(object).tolist()] for c in cn]
        per: dict[int, list] = {}
        for k, r in enumerate(rows):
            per.setdefault(r, []).append(tuple((c, v[k]) for c, v in zip(cn, vals)))
        kids[lst] = per
    for i in range(len(opps)):
        key = (cols["id"][i], cols["as_of"][i])
        assert key not in out, f"duplicate key {key} in output"
        out[key] = (tuple(sorted((c, cols[c][i]) for c in names)),
                    {lst: kids[lst].get(i, []) for lst in sorted(kids)})
    return out


def _key(r: dict) -> tuple:
    return tuple(sorted(r.items(), key=lambda kv: kv[0]))


def assert_same(source, schema=CONTRACT, history=False, chunk_size=3, **kw) -> list[Chunk]:
    ref = read_records(source, schema, history)
    with InputStream(source, schema, history=history, chunk_size=chunk_size, **kw) as stream:
        chunks = list(stream)
    for c in chunks:
        assert c.n_read == len(c.frames.opps) + len(c.rejects)
        assert len(c.positions) == len(c.frames.opps)
        for df in c.frames.children.values():
            assert df["_row"].between(0, len(c.frames.opps) - 1).all()
    assert sum(c.n_read for c in chunks) == ref.n_read
    got_rejects = sorted((_key(r) for c in chunks for r in c.rejects), key=repr)
    assert got_rejects == sorted((_key(r) for r in ref.rejects), key=repr)
    got_orphans = sorted((_key(o) for c in chunks for o in c.orphans), key=repr)
    assert got_orphans == sorted((_key(o) for o in ref.orphans), key=repr)
    und: dict[str, set] = {}
    for c in chunks:
        for e, names in c.undeclared_fields.items():
            und.setdefault(e, set()).update(names)
    assert {e: sorted(s) for e, s in und.items()} == ref.undeclared_fields
    want = _canon(records_to_frames(ref.records, schema))
    got: dict = {}
    for c in chunks:
        part = _canon(c.frames)
        assert not set(part) & set(got)
        got.update(part)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == want[k], k
    return chunks


# --------------------------------------------------------------------------- #
# generated inputs with bad rows: CSV, Parquet, JSON Lines
# --------------------------------------------------------------------------- #
def _mix(good, bad):
    """A pool of cell values: good ones about six times as likely as each bad one."""
    return list(good) * 6 + list(bad)


OPP_TEXT = {
    "id": _mix(["A", "B", "C", "D", "E", "NA"], ["", "  "]),
    "stage": _mix(["solution", "bidding"], ["", "Solution", "nope"]),
    "as_of": _mix(["2026-01-01", "2026-01-02", ""], ["2026/01/01", "2026-02-30", "0000-01-01"]),
    "amount": _mix(["", "1.5", "0", ".5", "+2", "1e3", "7."], ["-3", "abc", "1e999", "1,5", "nan"]),
    "site_visits": _mix(["", "0", "1", "2", "3.0", "+1", "007", "1e1"], ["2.5", "-1", " 2"]),
    "site_visits_accompanied": _mix(["", "0", "1"], ["3"]),
    "needs_understood": _mix(["", "true", "FALSE", "Yes", "no", "1", "0"], ["y", "NA", "2"]),
    "decision_maker_signal": _mix(["", "none", "implicit", "explicit"], ["None", "NA"]),
    "name": ["", "NA", "x", "null", " pad ", 'say "hi"', "multi\nline", "a,b"],
    "created_at": _mix(["", "2025-12-31", "2024-02-29"], ["2023-02-29", "x"]),
    "outcome": _mix(["", "won", "lost"], ["win"]),
    "zzz_undeclared": ["", "1"],
}
CONTACT_TEXT = {
    "opportunity_id": _mix(["A", "B", "C", "D", "E"], ["", "ZZ", "  "]),
    "as_of": _mix(["2026-01-01", "2026-01-02", ""], ["2026/01/01"]),
    "name": ["", "c1", "c2", "NA"],
    "role": _mix(["", "approver", "user"], ["boss"]),
    "is_coach": _mix(["", "true", "no"], ["maybe"]),
    "rol": ["", "x"],
}
COMPETITOR_TEXT = {
    "opportunity_id": _mix(["A", "B", "C"], ["", "Q"]),
    "strength": _mix(["", "low", "high"], ["mega"]),
}


def _text_rows(pools, n):
    return st.lists(st.fixed_dictionaries({c: st.sampled_from(v) for c, v in pools.items()}), max_size=n)


def _write_csv(path: Path, rows: list[dict], cols: list[str]):
    df = pd.DataFrame([{c: r[c] for c in cols} for r in rows], columns=cols, dtype=str)
    df.to_csv(path, index=False)


@given(opps=_text_rows(OPP_TEXT, 12), contacts=_text_rows(CONTACT_TEXT, 16),
       competitors=_text_rows(COMPETITOR_TEXT, 6), keyed=st.booleans(), drop=st.sampled_from(["", "as_of", "id"]),
       history=st.booleans(), chunk=st.sampled_from([1, 2, 5, 100]), memory=st.sampled_from([0, 1 << 30]))
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_csv_partitions_decide_as_one_partition(tmp_path_factory, opps, contacts, competitors, keyed, drop, history,
                                                chunk, memory):
    folder = tmp_path_factory.mktemp("csv")
    ocols = [c for c in OPP_TEXT if c != drop]
    _write_csv(folder / "opportunities.csv", opps, ocols)
    ccols = [c for c in CONTACT_TEXT if keyed or c != "as_of"]
    _write_csv(folder / "contacts.csv", contacts, ccols)
    _write_csv(folder / "competitors.csv", competitors, list(COMPETITOR_TEXT))
    assert_same(folder, history=history, chunk_size=chunk, memory=memory)


_D1, _D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
OPP_TYPED = {
    "id": (pa.string(), _mix(["A", "B", "C", "D", "E"], [None, "", "  "])),
    "stage": (pa.string(), _mix(["solution", "bidding"], [None, "nope", ""])),
    "as_of": (pa.date32(), [_D1, _D2, None]),
    "amount": (pa.float64(), _mix([None, 1.5, float("nan"), 0.0, 2.0], [-3.0, float("inf")])),
    "site_visits": (pa.float64(), _mix([None, 0.0, 1.0, 2.0, float("nan")], [2.5, -1.0])),
    "site_visits_accompanied": (pa.int64(), _mix([None, 0, 1], [3, -2])),
    "needs_understood": (pa.bool_(), [None, True, False]),
    "decision_maker_signal": (pa.string(), _mix([None, "none", "implicit"], ["NA", ""])),
    "name": (pa.string(), [None, "", "x", "NA"]),
    "created_at": (pa.string(), _mix([None, "2026-01-01"], ["", "2026-02-30", "x"])),
    "tech_presentations": (pa.string(), _mix([None], ["1", "x"])),
    "open_obstacles": (pa.int32(), [None, 0, 4]),
    "outcome": (pa.string(), _mix([None, "won", "lost"], ["win"])),
    "expected_close": (pa.timestamp("us"), [None, dt.datetime(2026, 3, 1, 10, 30)]),
    "zzz_undeclared": (pa.int64(), [None, 1]),
}
CONTACT_TYPED = {
    "opportunity_id": (pa.string(), _mix(["A", "B", "C", "D"], [None, "ZZ", "  "])),
    "as_of": (pa.date32(), [_D1, _D2, None]),
    "name": (pa.string(), [None, "c1"]),
    "role": (pa.string(), _mix([None, "approver", "user"], ["boss", ""])),
    "is_coach": (pa.bool_(), [None, True, False]),
    "influence": (pa.dictionary(pa.int8(), pa.string()), _mix([None, "low"], ["huge"])),
}
PARTNER_TYPED = {
    "opportunity_id": (pa.string(), _mix(["A", "B"], [None, "Q"])),
    "customer_attitude": (pa.string(), _mix([None, "positive"], ["angry"])),
    "has_informant": (pa.int64(), _mix([None], [1])),
}


def _typed_rows(pools, n):
    return st.lists(st.fixed_dictionaries({c: st.sampled_from(v[1]) for c, v in pools.items()}), max_size=n)


def _write_parquet(path: Path, rows, pools, cols):
    arrays = []
    for c in cols:
        typ = pools[c][0]
        vals = [r[c] for r in rows]
        if pa.types.is_dictionary(typ):
            arrays.append(pa.array(vals, pa.string()).dictionary_encode())
        else:
            arrays.append(pa.array(vals, typ, from_pandas=False))
    pq.write_table(pa.table(arrays, names=cols), path)


@given(opps=_typed_rows(OPP_TYPED, 12), contacts=_typed_rows(CONTACT_TYPED, 16),
       partners=_typed_rows(PARTNER_TYPED, 6), keyed=st.booleans(), history=st.booleans(),
       chunk=st.sampled_from([1, 2, 5, 100]), memory=st.sampled_from([0, 1 << 30]))
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_parquet_partitions_decide_as_one_partition(tmp_path_factory, opps, contacts, partners, keyed, history, chunk,
                                                    memory):
    folder = tmp_path_factory.mktemp("pq")
    _write_parquet(folder / "opportunities.parquet", opps, OPP_TYPED, list(OPP_TYPED))
    _write_parquet(folder / "contacts.parquet", contacts, CONTACT_TYPED,
                   [c for c in CONTACT_TYPED if keyed or c != "as_of"])
    _write_parquet(folder / "partners.parquet", partners, PARTNER_TYPED, list(PARTNER_TYPED))
    assert_same(folder, history=history, chunk_size=chunk, memory=memory)


_JSON_VALUES = {
    "id": ["A", "B", "C", "D", None, "  ", 42],
    "stage": ["solution", "bidding", None, "nope"],
    "as_of": ["2026-01-01", "2026-01-02", None, "2026/01/01", 20260101],
    "amount": [None, 1.5, -3, "1", True, 2],
    "site_visits": [None, 0, 2, 2.0, 2.5, -1, "2"],
    "site_visits_accompanied": [None, 1, 3],
    "needs_understood": [None, True, False, "true", 1],
    "decision_maker_signal": [None, "none", "NA"],
    "name": [None, "", "x", 5],
    "zzz": [None, {"a": 1}],
}
_JSON_CONTACT = {"name": [None, "c"], "role": [None, "user", "boss"], "is_coach": [None, True, "yes"],
                 "rol": [None, 1], "opportunity_id": [None, "A"]}


def _json_record():
    rec = st.fixed_dictionaries({}, optional={c: st.sampled_from(v) for c, v in _JSON_VALUES.items()})
    contact = st.fixed_dictionaries({}, optional={c: st.sampled_from(v) for c, v in _JSON_CONTACT.items()})
    kids = st.fixed_dictionaries({}, optional={
        "contacts": st.one_of(st.lists(contact, max_size=3), st.just(None), st.just({"x": 1}),
                              st.just(["str"])),
        "partners": st.lists(st.fixed_dictionaries({}, optional={"customer_attitude": st.sampled_from(
            ["positive", "angry"])}), max_size=2)})
    return st.builds(lambda a, b: json.dumps({**a, **b}), rec, kids)


_JSON_LINE = st.one_of(_json_record(), _json_record(), _json_record(),
                       st.sampled_from(['{"id": "X", "stage":', "42", "", "   ", "[1]",
                                        '{"id": "N", "stage": "solution", "amount": NaN}']))


@given(lines=st.lists(_JSON_LINE, max_size=25), chunk=st.sampled_from([1, 2, 4, 100]), gz=st.booleans(),
       history=st.booleans(), piece=st.sampled_from([None, 40]))
@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_jsonl_partitions_decide_as_one_partition(tmp_path_factory, lines, chunk, gz, history, piece):
    """... also when a partition the columns cannot read is halved into pieces (``piece``: their size)."""
    from scoring.contract import reader

    was = reader._JSONL_PIECE_BYTES
    reader._JSONL_PIECE_BYTES = piece or was
    try:
        _jsonl_partitions_decide_as_one_partition(tmp_path_factory, lines, chunk, gz, history)
    finally:
        reader._JSONL_PIECE_BYTES = was


def _jsonl_partitions_decide_as_one_partition(tmp_path_factory, lines, chunk, gz, history):
    folder = tmp_path_factory.mktemp("jsonl")
    text = "\n".join(lines) + "\n"
    if gz:
        path = folder / "in.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path = folder / "in.jsonl"
        path.write_text(text, encoding="utf-8")
    assert_same(path, history=history, chunk_size=chunk)


# JSON types the columns can hold (so the column-wise reader takes the lines), values good and bad
_JSON_TYPED = {
    "id": ["A", "B", "C", "", "  ", "x" * 300],
    "stage": ["solution", "bidding", None, "nope"],
    "as_of": ["2026-01-01", "2026-01-02", None, "2026/01/01", "2026-02-30", "0000-01-01"],
    "amount": [None, 1.5, -3, 2, 1e300],
    "site_visits": [None, 0, 2, -1, 9223372036854775807],
    "site_visits_accompanied": [None, 1, 3],
    "needs_understood": [None, True, False],
    "decision_maker_signal": [None, "none", "NA"],
    "name": [None, "", "x", "\u00e9t\u00e9"],
    "zzz": [None, {"a": [1]}],
}
_JSON_TYPED_CONTACT = {"name": [None, "c"], "role": [None, "user", "boss"], "is_coach": [None, True],
                       "rol": [None, 1], "opportunity_id": [None, "A"]}


def _typed_json_record():
    rec = st.fixed_dictionaries({}, optional={c: st.sampled_from(v) for c, v in _JSON_TYPED.items()})
    contact = st.fixed_dictionaries({}, optional={c: st.sampled_from(v) for c, v in _JSON_TYPED_CONTACT.items()})
    kids = st.fixed_dictionaries({}, optional={"contacts": st.one_of(st.lists(contact, max_size=3), st.just(None))})
    return st.builds(lambda a, b: json.dumps({**a, **b}, ensure_ascii=False), rec, kids)


@given(lines=st.lists(_typed_json_record(), min_size=1, max_size=25), chunk=st.sampled_from([2, 100]),
       history=st.booleans(), as_of=st.sampled_from([None, "2026-01-01"]))
@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_jsonl_columns_decide_as_the_reference_loop(tmp_path_factory, lines, chunk, history, as_of):
    """The column-wise JSON Lines reader takes these lines and rejects exactly what the
    per-record reference rejects, with its reasons."""
    from scoring.contract.jsonl import read_columns

    path = tmp_path_factory.mktemp("jsonl") / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with InputStream(path, CONTRACT, history=history, chunk_size=chunk) as s:
        for sp in s.partitions():
            assert read_columns(sp.path, CONTRACT, history, start=sp.start, end=sp.end, first_line=sp.first_line,
                                as_of_default=as_of) is not None
    ref = read_records(path, CONTRACT, history, as_of_default=as_of)
    chunks = assert_same(path, history=history, chunk_size=chunk, as_of_default=as_of) if as_of is None else \
        list(InputStream(path, CONTRACT, history=history, chunk_size=chunk, as_of_default=as_of))
    got = sorted((_key(r) for c in chunks for r in c.rejects), key=repr)
    assert got == sorted((_key(r) for r in ref.rejects), key=repr)


def test_jsonl_columns_read_a_generated_pipeline_as_the_reference(tmp_path):
    from scoring.contract.jsonl import read_columns

    path = tmp_path / "p.jsonl"
    write_jsonl(generate_records(400, seed=8), path)
    assert read_columns(path, CONTRACT, False) is not None
    assert_same(path, chunk_size=150)


def test_jsonl_line_the_columns_cannot_type_costs_only_its_piece(tmp_path, monkeypatch):
    """A wrong JSON type on one line: its piece goes through the per-record loop, the rest column-wise,
    and the partition decides as the reference does."""
    from scoring.contract import reader

    recs = generate_records(60, seed=9)
    recs[30]["amount"] = "12"                      # text in a number field: pyarrow cannot type the line
    recs[40]["id"] = recs[10]["id"]                # a duplicate across pieces
    path = tmp_path / "p.jsonl"
    write_jsonl(recs, path)
    per_record = []
    real = reader.read_lines

    def counting(*a, **kw):
        part = real(*a, **kw)
        per_record.append(part.n_read)
        return part

    monkeypatch.setattr(reader, "read_lines", counting)
    monkeypatch.setattr(reader, "_JSONL_PIECE_BYTES", path.stat().st_size // 16)
    chunks = assert_same(path, chunk_size=1000)
    assert len(chunks) == 1
    assert 0 < sum(per_record) - 60 <= 60 // 8     # read_records (the reference) read all 60 lines itself
    reasons = {r["line"]: r["reason"] for r in chunks[0].rejects}
    assert reasons[41] == "duplicate (id, as_of)" and "is not a number" in reasons[31]


# --------------------------------------------------------------------------- #
# hand-written cases
# --------------------------------------------------------------------------- #
def test_bad_child_row_names_its_index_and_source_row(tmp_path):
    folder = csv_folder(tmp_path, "id,stage\nA,solution\nB,solution\n",
                        contacts="opportunity_id,name,role\nA,x,approver\nB,y,user\nA,z,boss\n")
    for chunk in (1, 10):
        chunks = assert_same(folder, chunk_size=chunk)
        rejects = [r for c in chunks for r in c.rejects]
        assert rejects == [{"id": "A", "field": "contacts[1].role", "row": 1,
                            "reason": "'boss' is not one of approver, decision_maker, evaluator, advisor, "
                                      "gatekeeper, user (contacts.csv row 3)"}]


def test_csv_good_bad_orphans_and_short_rows(tmp_path):
    folder = csv_folder(
        tmp_path,
        "id,stage,site_visits,site_visits_accompanied,needs_understood\n"
        "A,solution,2,1,yes\n,solution,,\nC,closing,,\nD,bidding,1,3\nE,partner,-1,\nF,solution\n",
        contacts="name,opportunity_id,stance\nx,A,ally\ny,ZZZ,ally\nz,C,ally\nw,,ally\n",
        partners="opportunity_id,name,customer_attitude\nA,P1,positive\nE,P2,positive\n",
    )
    for chunk in (1, 2, 100):
        assert_same(folder, chunk_size=chunk)


def test_csv_bom_multiline_quotes_and_duplicate_headers(tmp_path):
    folder = csv_folder(tmp_path, '\ufeffid,stage,name,name\nA,solution,"two\nlines","x"\nB,solution,"a ""q""",y\n')
    for chunk in (1, 100):
        assert_same(folder, chunk_size=chunk)
    folder2 = tmp_path / "bom"
    folder2.mkdir()
    (folder2 / "opportunities.csv").write_text('\ufeffid,stage,name\nA,solution,"two\nlines"\n', encoding="utf-8")
    chunks = assert_same(folder2, chunk_size=1)
    assert chunks[0].undeclared_fields == {}


def test_snapshots_attach_children_by_as_of_and_duplicates_are_rejected(tmp_path):
    folder = csv_folder(
        tmp_path,
        "id,stage,as_of\nA,solution,2026-01-01\nA,bidding,2026-02-01\nA,bidding,2026-01-01\nB,solution,\n"
        "B,solution,\n",
        contacts="opportunity_id,as_of,name\nA,2026-02-01,late\nA,2026-01-01,early\nA,2026-03-01,none\nB,,b\n",
        competitors="opportunity_id,name\nA,RivalNet\n",
    )
    for chunk in (1, 2, 100):
        chunks = assert_same(folder, chunk_size=chunk)
        dups = [(r["id"], r["row"]) for c in chunks for r in c.rejects]
        assert sorted(dups) == [("A", 3), ("B", 5)]


def test_merged_schema_fields_and_undeclared(tmp_path):
    schema = merge_schema(CONTRACT, {"opportunity": {"pilot_weeks": Field("pilot_weeks", "int", min=0)},
                                     "contacts": {"golfer": Field("golfer", "bool")}})
    folder = csv_folder(tmp_path, "id,stage,pilot_weeks,typo\nA,solution,2,1\nB,solution,x,\n",
                        contacts="opportunity_id,golfer,stnace\nA,yes,ally\n")
    chunks = assert_same(folder, schema=schema, chunk_size=1)
    assert all(c.undeclared_fields.get("opportunity", ["typo"]) == ["typo"] for c in chunks)
    opps = pd.concat([c.frames.opps for c in chunks])
    assert "typo" not in opps.columns and opps["pilot_weeks"].dtype == "Int64"


def test_parquet_edge_types(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.table({
        "id": ["A", "B", "C", "D"],
        "stage": pa.array(["solution", "solution", "bidding", "solution"]).dictionary_encode(),
        "as_of": pa.array([dt.datetime(2026, 1, 2, 9, 30), None, dt.datetime(2026, 1, 3), None], pa.timestamp("us")),
        "amount": pa.array([5, None, 7, 1], pa.uint16()),
        "site_visits": pa.array([1.0, 2.5, None, float("nan")], pa.float32()),
        "needs_understood": pa.array(["true", None, None, None]),
        "closed_at": pa.array([1, 2, None, None], pa.int64()),
        "tailored_solution": pa.array([None, None, None, None], pa.null()),
    }), folder / "opportunities.parquet")
    pq.write_table(pa.table({"opportunity_id": pa.array(["A", "C", "X", None]),
                             "as_of": pa.array(["2026-01-02", "2026-01-03", "2026-01-03", None]),
                             "is_coach": pa.array([True, None, False, None])}), folder / "contacts.parquet")
    for chunk in (1, 100):
        assert_same(folder, chunk_size=chunk)


def test_parquet_written_by_pandas_with_an_index(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    df = pd.DataFrame({"id": ["A", "B"], "stage": ["solution", "nope"]}, index=[10, 20])
    df.to_parquet(folder / "opportunities.parquet")
    assert_same(folder, chunk_size=1)


def test_single_table_file_and_errors(tmp_path):
    folder = csv_folder(tmp_path, "id,stage\nA,solution\n", contacts="opportunity_id,name\nA,x\n")
    chunks = assert_same(folder / "opportunities.csv")
    assert len(chunks[0].frames.children["contacts"]) == 0
    with pytest.raises(FileNotFoundError):
        InputStream(tmp_path / "nothing.jsonl", CONTRACT)
    with pytest.raises(ScoringError):
        InputStream(tmp_path / "x.txt", CONTRACT)
    bad = csv_folder(tmp_path / "b", "id,stage\nA,solution\n", contacts="name\nx\n")
    with pytest.raises(ScoringError, match="opportunity_id"):
        InputStream(bad, CONTRACT).partitions()
    pq.write_table(pa.table({"opportunity_id": ["A"]}), folder / "partners.parquet")
    with pytest.raises(ScoringError, match="partners.parquet"):
        InputStream(folder, CONTRACT)


def test_jsonl_duplicates_across_partitions_need_the_filter(tmp_path):
    path = tmp_path / "in.jsonl"
    recs = [{"id": "A", "stage": "solution"}, {"id": "B", "stage": "solution"},
            {"id": "A", "stage": "bidding"}, {"id": "B", "stage": "nope"}, {"id": "B", "stage": "solution"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with InputStream(path, CONTRACT, chunk_size=2) as s:
        specs = s.partitions()
        assert len(specs) >= 2 and all(sp.needs_dedupe for sp in specs)
        raw = [load_partition(pickle.loads(pickle.dumps(sp))) for sp in specs]
        assert sum(len(c.frames.opps) for c in raw) > 2  # duplicates across partitions: only the filter sees them
        f = DuplicateFilter()
        done = [f(c) for c in raw]
        rejects = sorted((r["line"], r["id"], r["reason"]) for c in done for r in c.rejects)
        assert rejects == [(3, "A", "duplicate (id, as_of)"), (4, "B", "'nope' is not one of technical_promotion, "
                           "relationship, partner, solution, bidding"), (5, "B", "duplicate (id, as_of)")]
        assert sum(len(c.frames.opps) for c in done) == 2
    assert_same(path, chunk_size=2)


@pytest.mark.parametrize("memory", [1 << 30, 0])
def test_partitions_keep_the_input_order_of_ids_when_cut_in_memory(tmp_path, memory):
    tables = generate_tables(300, seed=3)
    write_tables(tables, tmp_path / "pq")
    with InputStream(tmp_path / "pq", CONTRACT, chunk_size=100, memory=memory) as s:
        chunks = [load_partition(pickle.loads(pickle.dumps(sp))) for sp in s.partitions()]
    ids = [i for c in chunks for i in c.frames.opps["id"]]
    assert len(chunks) == 3 and sorted(ids) == sorted(tables["opportunities"]["id"])
    if memory:  # cut by the ids' first occurrence; hash buckets (memory 0) mix the order
        assert ids == tables["opportunities"]["id"].tolist()


def test_partitions_are_picklable_and_temp_files_removed(tmp_path):
    tables = generate_tables(300, seed=3)
    write_tables(tables, tmp_path / "pq")
    work = tmp_path / "work"
    s = InputStream(tmp_path / "pq", CONTRACT, chunk_size=100, workdir=work, memory=0)
    specs = s.partitions()
    assert len(specs) == 3
    chunks = [load_partition(pickle.loads(pickle.dumps(sp))) for sp in specs]
    assert sum(len(c.frames.opps) for c in chunks) == 300
    assert any(work.iterdir())
    again = [load_partition(sp) for sp in specs]  # deterministic
    for a, b in zip(chunks, again):
        assert a.frames.opps["id"].tolist() == b.frames.opps["id"].tolist()
    s.close()
    assert not any(work.iterdir())


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_synthetic_dirty_history_partitions_decide_as_one_partition(tmp_path, fmt):
    tables = generate_tables(150, seed=5, kind="history", dirty=True)
    if fmt == "jsonl":
        src = tmp_path / "h.jsonl"
        write_jsonl(tables_to_records(tables), src)
    else:
        src = tmp_path / "h"
        write_tables(tables, src, fmt)
    assert_same(src, history=True, chunk_size=64)


def test_synthetic_pipeline_one_partition_keeps_input_order(tmp_path):
    tables = generate_tables(200, seed=2)
    write_tables(tables, tmp_path / "pq")
    chunks = assert_same(tmp_path / "pq", chunk_size=1000)
    assert len(chunks) == 1
    assert chunks[0].frames.opps["id"].tolist() == tables["opportunities"]["id"].tolist()
    ref = records_to_frames(read_records(tmp_path / "pq").records, PACK.fields)
    for lst in CHILD_LISTS:
        assert chunks[0].frames.children[lst]["_row"].tolist() == ref.children[lst]["_row"].tolist()


def test_fields_and_datetime_dates(tmp_path):
    tables = generate_tables(120, seed=4)
    write_tables(tables, tmp_path / "pq")
    keep = {"opportunity": ["stage", "created_at"], "contacts": ["role"]}
    with InputStream(tmp_path / "pq", CONTRACT, chunk_size=50, fields=keep, dates="datetime64") as s:
        chunks = list(s)
    opps = chunks[0].frames.opps
    assert list(opps.columns) == ["id", "as_of", "stage", "created_at"]
    assert pd.api.types.is_datetime64_any_dtype(opps["created_at"].dtype)
    assert list(chunks[0].frames.children["contacts"].columns) == ["_row", "role"]
    assert list(chunks[0].frames.children["partners"].columns) == ["_row"]
