"""The one-record evaluator (scoring/evidence/interp.py) against the references.

1. against durable-rules, the reference, wherever it imports (statuses, derived facts, graded measures,
   matched rules, unknown inputs: the whole evaluation), on the default pack and on random packs and
   records (durable-rules' derived facts and measures are the numpy backend's on a one-deal chunk);
2. against the numpy backend over frames, on every Python: statuses, derived facts and graded measures
   (the per-record ``record_value`` forms against the array ``value`` forms, NaN equal to NaN), of the
   default pack on generated and on random records, and of random packs, with child tables absent too;
3. the engine's choice of backend where durable-rules does not import.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.contract.frames import Frames, records_to_frames
from scoring.contract.schema import CHILD_LISTS
from scoring.errors import ScoringError
from scoring.evidence import durable
from scoring.evidence.columnar import ColumnarEvaluator
from scoring.evidence.durable import DURABLE_RULES, PYTHON, Engine
from scoring.evidence.interp import RecordEvaluator
from scoring.evidence.pack import load_pack

from conftest import needs_durable_rules, rule
from test_columnar import (AS_OF, DIFFERENTIAL, _N, _short, _spoil, _write_pack, pack_field_pool,
                           random_pack_spec, records_strategy)


def engine_differences(pack, records, reference: Engine, as_of=AS_OF, limit=20) -> list[str]:
    """Every record whose evaluation by the evaluator differs from ``reference``'s, as readable lines."""
    mine = RecordEvaluator(pack)
    out = []
    for i, rec in enumerate(records):
        want, got = reference.evaluate(rec, as_of=as_of).to_dict(), mine.evaluate(rec, as_of=as_of).to_dict()
        if want != got:
            keys = [k for k in want if want[k] != got[k]]
            detail = {k: [(x, want[k][x], got[k].get(x)) for x in want[k] if want[k][x] != got[k].get(x)]
                      if isinstance(want[k], dict) else (want[k], got[k]) for k in keys}
            out.append(f"record #{i} ({rec.get('id')}): {detail}\n  record: {_short(rec)}")
        if len(out) >= limit:
            break
    return out


def columnar_differences(pack, records, as_of=AS_OF, absent=frozenset(), limit=20) -> list[str]:
    """Every (record, rule, derived fact or measure) where the evaluator differs from the numpy backend
    over frames; ``absent``: child tables absent from the input (their lists unknown for every deal)."""
    mine = RecordEvaluator(pack)
    frames = records_to_frames(records, pack.fields)
    if absent:
        frames = Frames(opps=frames.opps, children={k: v for k, v in frames.children.items() if k not in absent},
                        absent=frozenset(absent))
    ev = ColumnarEvaluator(pack).evaluate(frames, as_of)
    out = []
    for i, rec in enumerate(records):
        got = mine.evaluate(rec, as_of=as_of, absent=frozenset(absent))
        want = {"status": ev.status_of(i), "derived": ev.derived_of(i), "measures": ev.measures_of(i)}
        diff = {what: {k: (v, getattr(got, what).get(k, "<absent>")) for k, v in vals.items()
                       if getattr(got, what).get(k, "<absent>") != v}
                for what, vals in want.items()}
        diff.update({f"{what} (only the evaluator)": sorted(set(getattr(got, what)) - set(vals))
                     for what, vals in want.items() if set(getattr(got, what)) - set(vals)})
        if any(diff.values()):  # (numpy backend, evaluator) per name; a measure's NaN reads None in both
            out.append(f"record #{i} ({rec.get('id')}), absent {sorted(absent)}: "
                       f"{ {k: v for k, v in diff.items() if v} }\n  record: {_short(rec)}")
        if len(out) >= limit:
            break
    return out


@pytest.fixture(scope="module")
def pack():
    from conftest import ROOT

    return load_pack(ROOT / "rules" / "default")


@pytest.fixture(scope="module")
def records(pack):
    from dealscore_datasets.generate import generate_tables, tables_to_records

    from scoring.contract.nested import validate_record

    recs = [validate_record(r, pack.schema) for r in tables_to_records(generate_tables(400, seed=23, kind="pipeline"))]
    return recs[:150] + _spoil(recs[150:], pack, seed=8)


# --------------------------------------------------------------------------- 1. against durable-rules


@needs_durable_rules
@pytest.mark.timeout(300)
def test_default_pack_evaluations_equal_durable_rules(pack, records):
    diffs = engine_differences(pack, records, Engine(pack, backend=DURABLE_RULES))
    assert not diffs, f"{len(diffs)}+ differences:\n" + "\n".join(diffs)


@needs_durable_rules
@pytest.mark.timeout(180)
@settings(DIFFERENTIAL, max_examples=30)  # each example compiles a durable-rules ruleset
@given(spec=random_pack_spec(), records=records_strategy())
def test_random_packs_and_records_equal_durable_rules(tmp_path, spec, records):
    counts, rules, measures = spec
    _N[0] += 1
    pack = load_pack(_write_pack(tmp_path / f"i{_N[0]}", counts, rules, measures))
    records = [{"id": f"r{i}", **r} for i, r in enumerate(records)]
    diffs = engine_differences(pack, records, Engine(pack, backend=DURABLE_RULES))
    assert not diffs, "\n".join(diffs)


# --------------------------------------------------------------------------- 2. against the numpy backend


ABSENT = st.frozensets(st.sampled_from(CHILD_LISTS), max_size=2)


@pytest.mark.timeout(300)
def test_default_pack_equals_the_numpy_backend(pack, records):
    assert pack.compiled.measures
    diffs = columnar_differences(pack, records)
    assert not diffs, f"{len(diffs)}+ differences:\n" + "\n".join(diffs)


@pytest.mark.timeout(300)
@settings(DIFFERENTIAL, max_examples=40)
@given(data=st.data(), absent=ABSENT, as_of=st.sampled_from([AS_OF, "2026-01-01"]))
def test_default_pack_on_random_records_equals_the_numpy_backend(pack, data, absent, as_of):
    """Records over the fields the default pack declares (a random few of the deal's fields, or all
    but a few, each maybe unknown; lists missing, empty or with unknown fields; any stage; child
    tables absent): every status, derived fact and measure."""
    pool = pack_field_pool(pack.fields)
    names = sorted(pool["opportunity"])
    chosen = data.draw(st.sets(st.sampled_from(names), max_size=8), label="chosen fields")
    if data.draw(st.booleans(), label="all but the chosen fields"):
        chosen = set(names) - chosen
    pool["opportunity"] = {n: v for n, v in pool["opportunity"].items() if n in chosen}
    records = data.draw(records_strategy(pool), label="records")
    records = [{"id": f"r{i}", **r} for i, r in enumerate(records)]
    diffs = columnar_differences(pack, records, as_of=as_of, absent=absent)
    assert not diffs, "\n".join(diffs)


@pytest.mark.timeout(180)
@settings(DIFFERENTIAL, max_examples=40)
@given(spec=random_pack_spec(), records=records_strategy(), as_of=st.sampled_from([AS_OF, "2026-01-01"]),
       absent=ABSENT)
def test_random_packs_and_records_equal_the_numpy_backend(tmp_path, spec, records, as_of, absent):
    counts, rules, measures = spec
    _N[0] += 1
    pack = load_pack(_write_pack(tmp_path / f"n{_N[0]}", counts, rules, measures))
    assert len(pack.compiled.measures) == len(measures)
    records = [{"id": f"r{i}", **r} for i, r in enumerate(records)]
    diffs = columnar_differences(pack, records, as_of=as_of, absent=absent)
    assert not diffs, "\n".join(diffs)


# --------------------------------------------------------------------------- 3. the engine's backend


def test_engine_uses_the_compiled_form_where_durable_rules_does_not_import(monkeypatch, make_pack):
    pack = load_pack(make_pack(rules=[rule("A"), rule("B", when={"ev_A": "met"}, unknown_when=None,
                                                      examples={"met": {"stage": "bidding", "needs_understood": True},
                                                                "missing": {"stage": "bidding"}})]))
    monkeypatch.setattr(durable, "durable_rules_problem", lambda: "durable-rules does not import on this Python")
    engine = Engine(pack)
    ev = engine.evaluate({"id": "d", "stage": "bidding", "needs_understood": True}, as_of=AS_OF)
    assert engine.backend == PYTHON
    assert ev.status == {"A": "met", "B": "met"}
    with pytest.raises(ScoringError, match="does not import"):
        Engine(pack, backend=DURABLE_RULES)


def test_evaluation_takes_the_records_own_as_of_else_the_callers(make_pack):
    pack = load_pack(make_pack(
        computed={"days_in_stage": {"days_between": ["stage_entered_at", "as_of"]}},
        rules=[rule("STALE", when={"$gte": {"days_in_stage": 30}}, unknown_when={"$nex": {"days_in_stage": 1}},
                    examples={"met": {"stage": "bidding"}, "missing": {"stage": "bidding"},
                              "unknown": {"stage": "bidding"}})]))
    ev = RecordEvaluator(pack)
    rec = {"id": "d", "stage": "bidding", "stage_entered_at": "2026-10-01"}
    assert ev.evaluate(rec, as_of="2026-10-20").derived == {"days_in_stage": 19}
    assert ev.evaluate({**rec, "as_of": "2026-11-25"}, as_of="2026-10-20").status == {"STALE": "met"}
    assert ev.evaluate({"id": "d", "stage": "bidding"}, as_of="2026-10-20").status == {"STALE": "unknown"}
