"""Reliability, the reader: no input value aborts a run, and nothing read is lost.

One test per class of bad input.  Each asserts what a user relies on: every
record read is good or rejected (``n_read == good + rejected``), a reject names
the record, the field and a short reason, and an input that cannot be read at
all stops with one error naming the file and the row or line.  The classes
that held before this module have their tests where they were; each is named
below in a comment instead of being tested twice.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from contract_cases import csv_folder
from scoring.cli import main
from scoring.contract.nested import validate_record
from scoring.contract.reader import InputStream, read_records
from scoring.contract.values import EXCERPT, MAX_DEPTH, NUMBER_MAX, NUMBER_TINY
from scoring.errors import ExitCode, RecordError, ScoringError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent / "data" / "example.jsonl"
GOOD = '{"id": "OK", "stage": "solution"}'
_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _accounted(res) -> None:
    """read = good + rejected, and every reject says why."""
    assert res.n_read == len(res.records) + len(res.rejects)
    for r in res.rejects:
        assert isinstance(r["reason"], str) and r["reason"]
        assert ("line" in r) != ("row" in r)


def _stream_accounted(path, **kw) -> tuple[int, list[dict]]:
    """The same through the streaming reader (partitions, bucket files): (good, rejects)."""
    good, rejects, n = 0, [], 0
    with InputStream(path, **kw) as stream:
        for chunk in stream:
            good += len(chunk.frames.opps)
            rejects += chunk.rejects
            n += chunk.n_read
    assert n == good + len(rejects)
    return good, rejects


def _jsonl(tmp_path, *lines: str, name="in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- #
# 1. no poison record: every value is range-checked and rejected per record
# --------------------------------------------------------------------------- #
DEEP_LINE = '{"id": "P", "stage": "solution", "x": ' + "[" * 1500 + "]" * 1500 + "}"


def _json_reads(text: str) -> bool:
    """Whether this Python's json reads ``text`` (1,500 levels exhaust its recursion limit before 3.13)."""
    try:
        json.loads(text)
    except RecursionError:
        return False
    return True


POISON_LINES = [
    # (case, JSON line, id of the reject, field, words of the reason)
    ("int beyond int64", '{"id": "P", "stage": "solution", "close_date_pushes": 9223372036854775808}', "P",
     "close_date_pushes", "out of range for a whole number (64 bits)"),
    ("float 1e300 in an int field", '{"id": "P", "stage": "solution", "close_date_pushes": 1e300}', "P",
     "close_date_pushes", "out of range for a whole number"),
    ("number beyond any float", '{"id": "P", "stage": "solution", "amount": 1e400}', "P", "amount",
     "not a finite number"),
    ("number in exponent form, large", '{"id": "P", "stage": "solution", "amount": 1e16}', "P", "amount",
     "out of range for a number"),
    ("number in exponent form, tiny", '{"id": "P", "stage": "solution", "amount": 0.00001}', "P", "amount",
     "out of range for a number"),
    ("lone surrogate in the id", '{"id": "P\\ud800", "stage": "solution"}', None, "id", "not valid Unicode"),
    ("lone surrogate in a name", '{"id": "P", "stage": "solution", "name": "x\\udc00"}', "P", "name",
     "not valid Unicode"),
    ("lone surrogate in a child row", '{"id": "P", "stage": "solution", "contacts": [{"name": "\\ud800"}]}', "P",
     "contacts[0].name", "not valid Unicode"),
    ("lone surrogate in an undeclared field", '{"id": "P", "stage": "solution", "note": "\\ud800"}', "P", "note",
     "not valid Unicode"),
    ("lone surrogate in an undeclared name", '{"id": "P", "stage": "solution", "\\ud800": 1}', "P", "\\ud800",
     "not valid Unicode"),
    ("undeclared value nested too deep", '{"id": "P", "stage": "solution", "x": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH
     + "}", "P", "x", f"nested deeper than {MAX_DEPTH} levels"),
    # Python 3.11 and 3.12's json cannot read a line this deep: its reject names no record; where json reads it
    # (3.13), the reject names the record and field, as for any value nested too deep
    ("line nested 1,500 levels", DEEP_LINE, *(("P", "x") if _json_reads(DEEP_LINE) else (None, None)),
     f"nested deeper than {MAX_DEPTH} levels"),
]


@pytest.mark.parametrize("case, line, rid, field, words", POISON_LINES, ids=[c[0] for c in POISON_LINES])
def test_poison_value_in_json_lines_is_one_reject(tmp_path, case, line, rid, field, words):
    path = _jsonl(tmp_path, GOOD, line, GOOD.replace("OK", "OK2"))
    res = read_records(path)
    _accounted(res)
    assert [r["id"] for r in res.records] == ["OK", "OK2"]
    (rej,) = res.rejects
    assert (rej["id"], rej["field"], rej["line"]) == (rid, field, 2)
    assert words in rej["reason"]
    assert _stream_accounted(path, chunk_size=1)[0] == 2
    json.dumps(res.rejects, ensure_ascii=False).encode("utf-8")  # every reject can be written


def test_nesting_up_to_the_limit_is_kept(tmp_path):
    deep = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # the record is level 1: its fields reach MAX_DEPTH
    res = read_records(_jsonl(tmp_path, '{"id": "P", "stage": "solution", "x": ' + deep + "}"))
    assert res.rejects == [] and len(res.records) == 1


def test_poison_parquet_columns_are_rejected_per_record(tmp_path):
    n = 6
    cols = {
        "id": [f"D{i}" for i in range(n)], "stage": ["solution"] * n,
        "close_date_pushes": pa.array([2**64 - 1, 1, 1, 1, 1, 1], pa.uint64()),
        "open_obstacles": pa.array([0.0, 1e300, 0.0, 0.0, 0.0, 0.0]),
        "expected_close": pa.array([1, 1, -1_000_000, 1, 1, 1], pa.date32()),
        "stage_entered_at": pa.array([0, 0, 0, 400_000_000_000, 0, 0], pa.timestamp("s")),
        "amount": pa.array([1.0, 1.0, 1.0, 1.0, 1e16, 5.0]),
    }
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.table(cols), folder / "opportunities.parquet")
    res = read_records(folder)
    _accounted(res)
    assert [r["id"] for r in res.records] == ["D5"]
    got = {r["id"]: (r["field"], r["reason"]) for r in res.rejects}
    assert got["D0"] == ("close_date_pushes", "18446744073709551615 is out of range for a whole number (64 bits)")
    assert got["D1"][0] == "open_obstacles" and "out of range for a whole number" in got["D1"][1]
    assert got["D2"] == ("expected_close",
                         "date32[day] -1000000 days from 1970-01-01 is out of range for a date (0001-01-01 to "
                         "9999-12-31)")
    assert got["D3"][0] == "stage_entered_at" and "out of range for a date" in got["D3"][1]
    assert got["D4"][0] == "amount" and "out of range for a number" in got["D4"][1]
    good, rejects = _stream_accounted(folder, chunk_size=1)
    assert (good, sorted(r["id"] for r in rejects)) == (1, ["D0", "D1", "D2", "D3", "D4"])


@pytest.mark.parametrize("cell, field, words", [
    ("9223372036854775808", "close_date_pushes", "out of range for a whole number"),
    ("1e300", "close_date_pushes", "out of range for a whole number"),
    ("1e400", "amount", "not a finite number"),
    ("1e16", "amount", "out of range for a number"),
    ("0.00001", "amount", "out of range for a number"),
])
def test_poison_csv_cell_is_one_reject(tmp_path, cell, field, words):
    folder = csv_folder(tmp_path, f"id,stage,{field}\nOK,solution,1\nP,solution,{cell}\n")
    res = read_records(folder)
    _accounted(res)
    assert [r["id"] for r in res.records] == ["OK"]
    assert [(r["id"], r["field"], r["row"]) for r in res.rejects] == [("P", field, 2)]
    assert words in res.rejects[0]["reason"]


@pytest.mark.parametrize("value", [0.0, NUMBER_TINY, 0.5, 123456789012345.67, NUMBER_MAX, 10**15])
def test_every_number_within_the_limits_is_taken_by_the_rule_engine(make_pack, value):
    from conftest import rule
    from scoring import Scorer

    pack = make_pack(rules=[rule("R1", when={"$gte": {"amount": 1000}}, unknown_when={"$nex": {"amount": 1}},
                                 examples={"met": {"stage": "technical_promotion", "amount": 5000},
                                           "missing": {"stage": "technical_promotion", "amount": 1},
                                           "unknown": {"stage": "technical_promotion"}})])
    r = Scorer(model=None, rules=pack, as_of="2026-11-26").score({"id": "A", "stage": "technical_promotion",
                                                                   "amount": value})
    assert r.breakdown and r.rule_score == (100.0 if value >= 1000 else 0.0)


@pytest.mark.parametrize("change, field, words", [
    ({"close_date_pushes": 2**70}, "close_date_pushes", "out of range for a whole number"),
    ({"amount": 1e16}, "amount", "out of range for a number"),
    ({"amount": 10**16}, "amount", "out of range for a number"),
    ({"amount": 1e-5}, "amount", "out of range for a number"),
    ({"amount": float("inf")}, "amount", "not a finite number"),
    ({"close_date_pushes": 10**5000}, "close_date_pushes", "a whole number of about 5,000 digits"),
    ({"name": "\ud800"}, "name", "not valid Unicode"),
    ({"id": "A\udfff"}, "id", "not valid Unicode"),
    ({"contacts": [{"title": "\ud800"}]}, "contacts[0].title", "not valid Unicode"),
    ({"x": json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)}, "x", "nested deeper"),
])
def test_scorer_raises_record_error_for_a_poison_value(change, field, words):
    from scoring import Scorer

    rec = {"id": "A", "stage": "solution", **change}
    with pytest.raises(RecordError) as e:
        validate_record(rec)
    assert e.value.field == field and words in e.value.reason
    assert e.value.record_id == (None if field == "id" else "A")
    with pytest.raises(RecordError):
        Scorer(model=None, as_of="2026-11-26").score(rec)
    str(e.value).encode("utf-8")  # the message can be printed


def test_scorer_score_frame_rejects_a_surrogate_in_a_pandas_column():
    from scoring import Scorer

    with pytest.raises(RecordError) as e:
        Scorer(model=None, as_of="2026-11-26").score_frame(pd.DataFrame(
            {"id": ["A"], "stage": ["solution"], "name": pd.Series(["\ud800"], dtype=object)}))
    assert e.value.field == "name" and "not valid Unicode" in e.value.reason


def test_poison_records_do_not_abort_the_nightly_run(tmp_path):
    lines = [GOOD] + [line.replace('"P', f'"P{k}') for k, (_, line, *_) in enumerate(POISON_LINES)]
    path = _jsonl(tmp_path, *lines)
    out = tmp_path / "scores.csv"
    res = CliRunner().invoke(main, ["score", str(path), "--out", str(out), "--rules", str(ROOT / "rules" / "default"),
                                    "--as-of", "2026-11-26", "--workers", "1", "--max-rejected-share", "1", "--json"])
    assert res.exit_code == ExitCode.OK, res.output
    summary = json.loads(res.stdout)
    assert (summary["read"], summary["scored"], summary["rejected"]) == (len(lines), 1, len(POISON_LINES))
    with open(tmp_path / "scores.csv.rejects.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(POISON_LINES) and all(r["reason"] and r["where"].startswith("line ") for r in rows)


# --------------------------------------------------------------------------- #
# 3. no silent wrong answer: short CSV rows, truncated files, one row per (id, as_of)
# --------------------------------------------------------------------------- #
def test_short_csv_rows_are_rejects_with_their_row(tmp_path):
    folder = csv_folder(tmp_path, "id,stage,needs_understood,amount\nA,solution,true,5\nB,solution\nC,solution,,\n"
                                  "D,solution,true\n",
                        contacts="opportunity_id,name,role\nA,x,approver\nC,y\n")
    res = read_records(folder)
    _accounted(res)
    assert [r["id"] for r in res.records] == ["A"]
    reason = "the row ends after {} of 4 cells (missing trailing cells, or a truncated file)"
    assert res.rejects == [
        {"id": "B", "field": "needs_understood", "row": 2, "reason": reason.format(2)},
        {"id": "C", "field": "contacts[0].role", "row": 3, "reason": "the row ends after 2 of 3 cells "
                                                                      "(missing trailing cells, or a truncated file) "
                                                                      "(contacts.csv row 2)"},
        {"id": "D", "field": "amount", "row": 4, "reason": reason.format(3)},
    ]
    good, rejects = _stream_accounted(folder, chunk_size=1)  # hash-bucketed partitions decide the same
    assert good == 1 and sorted(rejects, key=lambda r: r["row"]) == res.rejects


def test_csv_truncated_at_a_cell_boundary_is_a_reject(tmp_path):
    rows = "".join(f"R{i},solution,x,{i}\n" for i in range(300))
    folder = csv_folder(tmp_path, "id,stage,name,amount\n" + rows + "LAST,solution,")
    res = read_records(folder)
    _accounted(res)
    assert len(res.records) == 300 and [(r["id"], r["row"]) for r in res.rejects] == [("LAST", 301)]
    assert "truncated" in res.rejects[0]["reason"]


def test_csv_row_with_extra_cells_stops_the_read_naming_the_row(tmp_path):
    folder = csv_folder(tmp_path, "id,stage,name\nA,solution,x\nB,solution,Smith, John\n")
    with pytest.raises(ScoringError, match=r"opportunities.csv: row 2 has 4 cells, the header 3"):
        read_records(folder)


def test_csv_that_is_not_utf8_stops_the_read_naming_the_line(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "opportunities.csv").write_bytes("id,stage,name\nA,solution,x\nB,solution,Müller\n".encode("latin-1"))
    with pytest.raises(ScoringError, match=r"opportunities.csv: line 3 is not UTF-8 text; export the file as UTF-8"):
        read_records(folder)


def test_truncated_gz_stops_the_read_naming_the_file(tmp_path):
    data = gzip.compress(EXAMPLE.read_bytes() * 50)
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    for read in (read_records, lambda p: _stream_accounted(p, chunk_size=10)):
        with pytest.raises(ScoringError, match=r"in.jsonl.gz: cannot read: Compressed file ended"):
            read(path)


def test_record_without_as_of_and_one_with_the_run_date_are_one_snapshot(tmp_path):
    path = _jsonl(tmp_path, '{"id": "A", "stage": "solution"}', GOOD,
                  '{"id": "A", "stage": "bidding", "as_of": "2026-11-26"}',
                  '{"id": "A", "stage": "bidding", "as_of": "2026-11-25"}')
    assert len(read_records(path).records) == 4  # no run date: as before
    res = read_records(path, as_of_default="2026-11-26")
    _accounted(res)
    assert [(r["id"], r["as_of"]) for r in res.records] == [("A", "2026-11-26"), ("OK", "2026-11-26"),
                                                            ("A", "2026-11-25")]
    assert [(r["id"], r["line"], r["reason"]) for r in res.rejects] == [("A", 3, "duplicate (id, as_of)")]
    assert _stream_accounted(path, chunk_size=1, as_of_default="2026-11-26")[0] == 3  # across partitions
    folder = csv_folder(tmp_path, "id,stage,as_of\nA,solution,\nA,bidding,2026-11-26\n")
    tab = read_records(folder, as_of_default="2026-11-26")
    assert len(tab.records) == 1 and [(r["id"], r["row"]) for r in tab.rejects] == [("A", 2)]


def test_nightly_run_writes_one_row_per_id_and_as_of(tmp_path):
    path = _jsonl(tmp_path, '{"id": "A", "stage": "solution"}',
                  '{"id": "A", "stage": "solution", "as_of": "2026-11-26"}')
    out = tmp_path / "s.jsonl"
    res = CliRunner().invoke(main, ["score", str(path), "--out", str(out), "--rules", str(ROOT / "rules" / "default"),
                                    "--as-of", "2026-11-26", "--workers", "1", "--max-rejected-share", "1", "--json"])
    assert res.exit_code == ExitCode.OK, res.output
    assert [(r["id"], r["as_of"]) for r in map(json.loads, out.read_text().splitlines())] == [("A", "2026-11-26")]
    assert json.loads(res.stdout)["rejected"] == 1


def test_an_overlong_id_is_a_reject_without_the_id_in_every_form(tmp_path):
    long_id = "P" * 5_000
    path = _jsonl(tmp_path, json.dumps({"id": long_id, "stage": "solution"}), '{"id": "B", "stage": "solution"}')
    folder = csv_folder(tmp_path, f"id,stage\n{long_id},solution\nB,solution\n")
    pq_folder = tmp_path / "pq"
    pq_folder.mkdir()
    pq.write_table(pa.table({"id": [long_id, "B"], "stage": ["solution"] * 2}), pq_folder / "opportunities.parquet")
    for res in (read_records(path), read_records(folder), read_records(pq_folder)):
        assert [r["id"] for r in res.records] == ["B"]
        (rej,) = res.rejects
        assert rej["id"] is None and rej["field"] == "id" and "(5,000 characters) is longer than 256" in rej["reason"]
    with pytest.raises(RecordError, match="longer than 256"):
        validate_record({"id": long_id, "stage": "solution"})


def test_score_frame_takes_a_deal_without_as_of_as_the_snapshot_of_the_scorer_s_date():
    import pandas as pd

    from scoring import Scorer

    scorer = Scorer(model=None, rules=ROOT / "rules" / "default", as_of="2026-11-26")
    opps = pd.DataFrame({"id": ["A", "A"], "stage": ["solution", "solution"], "as_of": [None, "2026-11-26"]})
    with pytest.raises(RecordError, match="duplicate"):
        scorer.score_frame(opps)
    assert len(scorer.score_frame(opps.iloc[:1])) == 1


# --------------------------------------------------------------------------- #
# 4. reasons quote a short excerpt of a bad value
# --------------------------------------------------------------------------- #
def test_reject_reason_quotes_a_short_clearly_cut_excerpt(tmp_path):
    big = "x" * 5_000_000
    path = _jsonl(tmp_path, json.dumps({"id": "A", "stage": big}), json.dumps({"id": "B", "stage": "solution",
                                                                               "name": list(range(100_000))}))
    res = read_records(path)
    a, b = res.rejects
    assert a["reason"].startswith(repr("x" * EXCERPT) + "... (5,000,000 characters) is not one of")
    assert len(a["reason"]) < 200 and len(b["reason"]) < 200 and "..." in b["reason"]
    folder = csv_folder(tmp_path, "id,stage,site_visits\nA,solution," + "7" * 100_000 + "\n")
    (rej,) = read_records(folder).rejects
    assert len(rej["reason"]) < 200 and "(100,000 characters)" in rej["reason"]
    with pytest.raises(RecordError) as e:
        validate_record({"id": "A", "stage": "solution", "currency": 10**300})
    assert len(str(e.value)) < 200


# --------------------------------------------------------------------------- #
# 7. the classes that already held (their tests stay where they are)
# --------------------------------------------------------------------------- #
# broken JSON lines: test_reader.py::test_jsonl_broken_lines_are_rejected_with_line_numbers
# wrong types: test_reader.py::test_jsonl_bad_record_is_one_reject_naming_id_and_field (contract_cases.BAD),
#   test_reader.py::test_csv_unparseable_cell_is_a_bad_record_with_reason, test_nested.py (validate_record)
# NaN / Infinity tokens: test_reader.py::test_jsonl_nan_and_infinity_tokens_are_rejected
# impossible dates: test_reader.py::test_csv_unparseable_cell_is_a_bad_record_with_reason ("2026-02-30")
# duplicates across partitions: test_stream.py::test_jsonl_duplicates_across_partitions_need_the_filter,
#   test_batch.py::test_json_lines_duplicates_across_partitions_are_rejected
# orphans: test_reader.py::test_csv_tables_good_bad_and_orphan_rows, ::test_parquet_tables_good_bad_and_orphan_rows
# wrong Parquet types: test_reader.py::test_parquet_keeps_its_types_text_is_not_a_boolean,
#   test_stream.py::test_parquet_edge_types
def test_truncated_json_lines_file_rejects_its_last_line(tmp_path):
    text = "".join(json.dumps({"id": f"R{i}", "stage": "solution", "name": "n"}) + "\n" for i in range(3))
    path = tmp_path / "in.jsonl"
    path.write_text(text[:-12], encoding="utf-8")
    res = read_records(path)
    _accounted(res)
    assert len(res.records) == 2 and [(r["line"], r["field"]) for r in res.rejects] == [(3, None)]
    assert res.rejects[0]["reason"].startswith("broken JSON: ")


def test_bom_and_crlf_are_read_as_plain_text(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (GOOD + "\r\n" + GOOD.replace("OK", "OK2") + "\r\n").encode())
    res = read_records(path)
    assert [r["id"] for r in res.records] == ["OK", "OK2"] and res.rejects == []
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "opportunities.csv").write_bytes(b"\xef\xbb\xbfid,stage,name\r\nA,solution,x\r\nB,bidding,\r\n")
    res = read_records(folder)
    assert [(r["id"], r["stage"], r["name"]) for r in res.records] == [("A", "solution", "x"), ("B", "bidding", None)]
    assert res.undeclared_fields == {} and res.rejects == []


def test_zero_row_inputs_read_nothing_and_lose_nothing(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n", encoding="utf-8")
    assert read_records(empty).n_read == 0
    folder = csv_folder(tmp_path, "id,stage\n", contacts="opportunity_id,name\n")
    assert read_records(folder).n_read == 0
    pqf = tmp_path / "pq"
    pqf.mkdir()
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "stage": pa.array([], pa.string())}),
                   pqf / "opportunities.parquet")
    for src in (empty, folder, pqf):
        assert _stream_accounted(src, chunk_size=1) == (0, [])


def test_nan_and_infinity_cells_of_csv_and_parquet(tmp_path):
    folder = csv_folder(tmp_path, "id,stage,amount\nA,solution,NaN\nB,solution,inf\n")
    res = read_records(folder)
    assert res.records == [] and [r["field"] for r in res.rejects] == ["amount", "amount"]
    pqf = tmp_path / "pq"
    pqf.mkdir()
    pq.write_table(pa.table({"id": ["A", "B"], "stage": ["solution"] * 2, "amount": [float("nan"), float("inf")]}),
                   pqf / "opportunities.parquet")
    res = read_records(pqf)
    _accounted(res)
    assert res.records[0]["amount"] is None  # a NaN in a typed column is pandas' missing
    assert [(r["id"], r["reason"]) for r in res.rejects] == [("B", "inf is not a finite number")]


# --------------------------------------------------------------------------- #
# 7. fuzzing the JSON Lines and CSV readers
# --------------------------------------------------------------------------- #
_TOKENS = [b"\\ud800", b"1e400", b"1e16", b"0.00001", b"9223372036854775808", b"NaN", b"-Infinity", b"[" * 40,
           b"{", b"}", b'"', b",", b"\n", b"\r\n", b"\xef\xbb\xbf", b"\xff", b"\x00", b"null", b"true", b"[]", b"{}"]
_VALID_JSON = EXAMPLE.read_bytes()
_VALID_CSV = b"id,stage,name,amount,as_of,site_visits\nA,solution,x,5,2026-11-01,2\nB,bidding,\"y,z\",0,,\n"


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, token) edits: insert a token, delete a byte, or replace a byte."""
    b = bytearray(data)
    for kind, pos, tok in edits:
        pos = pos % (len(b) + 1)
        if kind == 0:
            b[pos:pos] = _TOKENS[tok % len(_TOKENS)]
        elif kind == 1 and b:
            del b[pos % len(b)]
        elif b:
            b[pos % len(b)] = tok % 256
    return bytes(b)


_EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)), max_size=8)


def _count_json_lines(data: bytes) -> int:
    lines = data.split(b"\n")
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    return sum(1 for line in lines if line.strip())


def _check_jsonl(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    res = read_records(path, as_of_default="2026-11-26")
    _accounted(res)
    assert res.n_read == _count_json_lines(data)
    json.dumps(res.rejects, ensure_ascii=False).encode("utf-8")  # every reject can be written
    assert all(len(r["reason"]) < 400 for r in res.rejects)
    good, rejects = _stream_accounted(path, chunk_size=2, as_of_default="2026-11-26")
    assert good == len(res.records) and len(rejects) == len(res.rejects)


@given(data=st.binary(max_size=400))
@settings(max_examples=40, **_SETTINGS)
def test_fuzz_jsonl_random_bytes_lose_nothing(tmp_path_factory, data):
    _check_jsonl(tmp_path_factory.mktemp("fz"), data)


@given(edits=_EDITS)
@settings(max_examples=60, **_SETTINGS)
def test_fuzz_jsonl_mutated_records_lose_nothing(tmp_path_factory, edits):
    _check_jsonl(tmp_path_factory.mktemp("fz"), _mutate(_VALID_JSON, edits))


_ONE_LINE = re.compile(r"[^\n]+")


def _count_csv_rows(data: bytes) -> int:
    """Data rows as Python's csv module sees them (blank lines are no rows)."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    return sum(1 for r in rows[1:] if r)


def _check_csv(tmp_path: Path, data: bytes) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "opportunities.csv").write_bytes(data)
    try:
        res = read_records(folder)
    except ScoringError as e:  # an input that cannot be read at all: one line naming the file
        assert _ONE_LINE.fullmatch(str(e)) and "opportunities.csv" in str(e)
        return
    _accounted(res)
    assert res.n_read == _count_csv_rows(data)
    json.dumps(res.rejects, ensure_ascii=False).encode("utf-8")
    good, rejects = _stream_accounted(folder, chunk_size=1)
    assert good == len(res.records) and len(rejects) == len(res.rejects)


@given(data=st.binary(max_size=300))
@settings(max_examples=40, **_SETTINGS)
def test_fuzz_csv_random_bytes_lose_nothing(tmp_path_factory, data):
    _check_csv(tmp_path_factory.mktemp("fz"), b"id,stage,name\n" + data)


@given(edits=_EDITS)
@settings(max_examples=60, **_SETTINGS)
def test_fuzz_csv_mutated_rows_lose_nothing(tmp_path_factory, edits):
    data = _mutate(_VALID_CSV, edits)
    _check_csv(tmp_path_factory.mktemp("fz"), data)
