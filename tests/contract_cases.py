"""Shared cases of the contract tests: records, their nested and table forms on disk, bad values."""
from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scoring.contract.reader import ReadResult
from scoring.contract.schema import CHILD_LISTS, CONTRACT

OPP = CONTRACT["opportunity"]


def base(**kw) -> dict:
    rec = {"id": "OPP-1", "stage": "solution"}
    rec.update(kw)
    return rec


def write_jsonl(path: Path, records, gz=False) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _cell(v) -> str:
    if v is None:
        return ""
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _split(records, with_as_of=True):
    """Nested records -> (opportunity rows, {child entity: rows}) of plain dicts."""
    opps, kids = [], {c: [] for c in CHILD_LISTS}
    for r in records:
        opps.append({k: v for k, v in r.items() if k not in CHILD_LISTS})
        for c in CHILD_LISTS:
            for row in r.get(c) or []:
                key = {"opportunity_id": r["id"]}
                if with_as_of:
                    key["as_of"] = r.get("as_of")
                kids[c].append({**key, **row})
    return opps, kids


def _columns(entity):
    cols = list(CONTRACT[entity])
    return cols if entity == "opportunity" else ["opportunity_id", "as_of", *cols]


def write_csv_tables(folder: Path, records, with_as_of=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    opps, kids = _split(records, with_as_of)
    for name, rows, ent in [("opportunities", opps, "opportunity")] + [(c, kids[c], c) for c in CHILD_LISTS]:
        cols = _columns(ent) if with_as_of or ent == "opportunity" else [c for c in _columns(ent) if c != "as_of"]
        df = pd.DataFrame([{c: _cell(r.get(c)) for c in cols} for r in rows], columns=cols, dtype=str)
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


_ARROW = {"string": pa.string(), "enum": pa.string(), "bool": pa.bool_(), "int": pa.int64(),
          "number": pa.float64(), "date": pa.date32()}


def _arrow_table(rows, entity):
    fields = CONTRACT[entity]
    arrays, names = [], []
    for c in _columns(entity):
        typ = pa.string() if c == "opportunity_id" else _ARROW[(fields.get(c) or OPP[c]).type]
        vals = [r.get(c) for r in rows]
        if typ == pa.date32():
            vals = [None if v is None else dt.date.fromisoformat(v) for v in vals]
        if typ == pa.float64():
            vals = [None if v is None else float(v) for v in vals]
        arrays.append(pa.array(vals, type=typ))
        names.append(c)
    return pa.table(arrays, names=names)


def write_parquet_tables(folder: Path, records) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    opps, kids = _split(records)
    pq.write_table(_arrow_table(opps, "opportunity"), folder / "opportunities.parquet")
    for c in CHILD_LISTS:
        pq.write_table(_arrow_table(kids[c], c), folder / f"{c}.parquet")
    return folder


def csv_folder(tmp_path, opps: str, **children: str) -> Path:
    folder = tmp_path / "tables"
    folder.mkdir(parents=True)
    (folder / "opportunities.csv").write_text(opps, encoding="utf-8")
    for name, text in children.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    return folder


def assert_accounted(res: ReadResult):
    assert res.n_read == len(res.records) + len(res.rejects)
    for r in res.rejects:
        assert set(r) <= {"id", "field", "reason", "line", "row"}


#: (case, change to base(), record id, field, words of the reason) of a bad nested record.
BAD = [
    ("no id", {"id": None}, None, "id", "required field is missing"),
    ("blank id", {"id": "  "}, None, "id", "blank"),
    ("int id", {"id": 42}, None, "id", "42 is not a string"),
    ("no stage", {"stage": None}, "OPP-1", "stage", "required field is missing"),
    ("unknown stage", {"stage": "closing"}, "OPP-1", "stage", "'closing' is not one of technical_promotion"),
    ("negative count", {"open_obstacles": -2}, "OPP-1", "open_obstacles", "-2 is below the minimum 0"),
    ("negative amount", {"amount": -0.5}, "OPP-1", "amount", "-0.5 is below the minimum 0"),
    ("enum outside list", {"decision_maker_signal": "maybe"}, "OPP-1", "decision_maker_signal",
     "'maybe' is not one of none, implicit, explicit"),
    ("accompanied > visits", {"site_visits": 1, "site_visits_accompanied": 3}, "OPP-1",
     "site_visits_accompanied", "site_visits_accompanied (3) exceeds site_visits (1)"),
    ("bool as string", {"needs_understood": "true"}, "OPP-1", "needs_understood",
     "'true' is not a boolean (write true or false without quotes)"),
    ("bool as int", {"needs_understood": 1}, "OPP-1", "needs_understood", "1 is not a boolean"),
    ("True as int", {"site_visits": True}, "OPP-1", "site_visits", "true is not a whole number"),
    ("fractional int", {"site_visits": 2.5}, "OPP-1", "site_visits", "2.5 is not a whole number"),
    ("int as string", {"site_visits": "2"}, "OPP-1", "site_visits", "'2' is not a whole number"),
    ("infinite number", {"amount": float("inf")}, "OPP-1", "amount", "inf is not a finite number"),
    ("bool number", {"amount": False}, "OPP-1", "amount", "false is not a number"),
    ("int beyond 64 bits", {"site_visits": 10**30}, "OPP-1", "site_visits", "out of range for a whole number"),
    ("int beyond any float", {"amount": 10**400}, "OPP-1", "amount", "is not a finite number"),
    ("bad date", {"as_of": "01/02/2026"}, "OPP-1", "as_of", "'01/02/2026' is not a date (YYYY-MM-DD)"),
    ("date as number", {"as_of": 20260102}, "OPP-1", "as_of", "20260102 is not a date"),
    ("bad outcome", {"outcome": "win"}, "OPP-1", "outcome", "'win' is not one of won, lost, no_decision"),
    ("number in text", {"currency": 156}, "OPP-1", "currency", "156 is not a string"),
    ("bad child row", {"contacts": [{"role": "approver"}, {"role": "boss"}]}, "OPP-1", "contacts[1].role",
     "'boss' is not one of approver"),
    ("child row not an object", {"partners": ["Huabei"]}, "OPP-1", "partners[0]", "must be an object"),
    ("child list not a list", {"competitors": {"name": "X"}}, "OPP-1", "competitors", "must be a list"),
]
