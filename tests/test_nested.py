"""validate_record: one nested record -> its normalised form, or a RecordError naming record and field."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract_cases import BAD, OPP, base
from scoring.contract.nested import validate_record
from scoring.contract.schema import CHILD_LISTS, CONTRACT, Field, merge_schema
from scoring.errors import RecordError

DATA = Path(__file__).parent / "data"


def test_example_records_validate_one_by_one_and_are_not_modified():
    for line in (DATA / "example.jsonl").read_text().splitlines():
        raw = json.loads(line)
        before = json.dumps(raw, sort_keys=True)
        out = validate_record(raw)
        assert out is not raw
        assert json.dumps(raw, sort_keys=True) == before


def test_normalised_record_declares_every_field_and_child_list():
    out = validate_record(base())
    assert set(OPP) <= set(out)
    assert all(out[k] is None for k in OPP if k not in ("id", "stage"))
    assert all(out[c] == [] for c in CHILD_LISTS)


def test_missing_and_null_are_unknown_and_distinct_from_false():
    out = validate_record(base(needs_understood=False, tailored_solution=None))
    assert out["needs_understood"] is False
    assert out["tailored_solution"] is None
    assert out["decision_chain_mapped"] is None  # missing


def test_missing_or_null_child_list_is_empty_list():
    assert validate_record(base(contacts=None))["contacts"] == []
    assert validate_record(base())["partners"] == []


def test_pandas_nan_and_na_become_none_never_a_value():
    df = pd.DataFrame({"id": ["A"], "stage": ["solution"], "amount": [float("nan")],
                       "site_visits": pd.array([None], dtype="Int64"),
                       "needs_understood": pd.array([None], dtype="boolean"),
                       "as_of": pd.to_datetime([None])})
    out = validate_record(df.to_dict("records")[0])
    assert out["amount"] is None and out["site_visits"] is None
    assert out["needs_understood"] is None and out["as_of"] is None


@pytest.mark.parametrize("what,change,rid,field,reason", BAD, ids=[b[0] for b in BAD])
def test_validate_record_raises_record_error_naming_record_and_field(what, change, rid, field, reason):
    with pytest.raises(RecordError) as exc:
        validate_record(base(**change))
    assert exc.value.record_id == rid
    assert exc.value.field == field
    assert reason in exc.value.reason


def test_int_field_accepts_whole_floats():
    assert validate_record(base(site_visits=3.0))["site_visits"] == 3
    assert type(validate_record(base(site_visits=np.int64(3)))["site_visits"]) is int


@given(st.integers(min_value=0, max_value=10**12))
def test_int_field_accepts_non_negative_ints(n):
    out = validate_record(base(tech_presentations=n, amount=n))
    assert out["tech_presentations"] == n and type(out["tech_presentations"]) is int
    assert out["amount"] == float(n) and type(out["amount"]) is float


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()))
def test_int_field_rejects_fractions(x):
    with pytest.raises(RecordError) as exc:
        validate_record(base(tech_presentations=x))
    assert exc.value.field == "tech_presentations"


@given(st.integers(min_value=-(2**63), max_value=-1))
def test_counts_below_minimum_are_rejected(n):
    with pytest.raises(RecordError, match="below the minimum 0"):
        validate_record(base(group_events=n))


@pytest.mark.parametrize("value", [dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, 10, 30),
                                   pd.Timestamp("2026-01-02"), np.datetime64("2026-01-02"), "2026-01-02"])
def test_date_accepts_dates_timestamps_and_iso_strings(value):
    assert validate_record(base(as_of=value))["as_of"] == "2026-01-02"


def test_accompanied_equal_to_visits_or_unknown_visits_is_fine():
    assert validate_record(base(site_visits=2, site_visits_accompanied=2))["site_visits_accompanied"] == 2
    assert validate_record(base(site_visits_accompanied=5))["site_visits"] is None


def test_outcome_and_closed_at_are_validated_outside_history_mode():
    out = validate_record(base(outcome="won", closed_at="2026-02-01"))
    assert out["outcome"] == "won" and out["closed_at"] == "2026-02-01"


def test_history_mode_requires_the_outcome():
    with pytest.raises(RecordError) as exc:
        validate_record(base(), history=True)
    assert exc.value.field == "outcome"
    assert validate_record(base(outcome="no_decision"), history=True)["outcome"] == "no_decision"


def test_undeclared_fields_are_kept_untouched():
    out = validate_record(base(pilot={"weeks": 3}, contacts=[{"name": "A", "nickname": "Al"}]))
    assert out["pilot"] == {"weeks": 3}
    assert out["contacts"][0]["nickname"] == "Al"


def test_record_that_is_not_a_mapping_raises_record_error():
    with pytest.raises(RecordError):
        validate_record(["OPP-1"])


def test_merge_schema_rejects_a_contract_field_with_another_type():
    with pytest.raises(ValueError, match="amount"):
        merge_schema(CONTRACT, {"opportunity": {"amount": Field("amount", "string")}})
    with pytest.raises(ValueError, match="decision_maker_signal"):
        merge_schema(CONTRACT, {"opportunity": {"decision_maker_signal": Field(
            "decision_maker_signal", "enum", values=("yes", "no"))}})


def test_merge_schema_keeps_the_contract_definition_and_leaves_inputs_alone():
    merged = merge_schema(CONTRACT, {"opportunity": {"site_visits_accompanied": Field("site_visits_accompanied", "int")}})
    assert merged["opportunity"]["site_visits_accompanied"] is OPP["site_visits_accompanied"]
    assert merged is not CONTRACT and "pilot" not in CONTRACT["opportunity"]


def test_merge_schema_rejects_unknown_entity():
    with pytest.raises(ValueError, match="entity"):
        merge_schema(CONTRACT, {"deals": {"x": Field("x", "bool")}})


