"""A missing child table is unknown, an empty list is "none recorded" (the contract), and empty
partner lists are unknown while whether integrators were engaged is unknown."""
from __future__ import annotations

import pandas as pd
import pytest

from scoring.contract.reader import validate_dataframes
from scoring.evidence.columnar import ColumnarEvaluator

AS_OF = "2026-11-25"


def _evidence(pack, children):
    opps = pd.DataFrame({"id": ["d1"], "stage": ["relationship"]})
    chunk = validate_dataframes(opps, children, pack.schema, as_of_default=AS_OF)
    return chunk.frames, ColumnarEvaluator(pack).evaluate(chunk.frames, AS_OF)


def _evaluate(pack, children):
    frames, ev = _evidence(pack, children)
    return frames, ev.status_of(0)


def test_a_contacts_table_absent_from_the_input_makes_contact_rules_unknown(default_pack):
    frames, status = _evaluate(default_pack, {})
    assert "contacts" in frames.absent
    assert {rid: status[rid] for rid in ("M2", "S2_5", "L1", "L2", "DC_decision_maker_known")} == {
        "M2": "unknown", "S2_5": "unknown", "L1": "unknown", "L2": "unknown", "DC_decision_maker_known": "unknown"}


def test_an_empty_contacts_table_means_none_recorded(default_pack):
    empty = pd.DataFrame({"opportunity_id": pd.Series([], dtype=object), "role": pd.Series([], dtype=object)})
    frames, status = _evaluate(default_pack, {"contacts": empty})
    assert "contacts" not in frames.absent
    assert (status["M2"], status["S2_5"], status["L1"]) == ("missing", "missing", "met")


@pytest.mark.parametrize("engaged, want", [(None, "unknown"), (False, "missing")])
def test_an_empty_partner_list_is_unknown_while_integrators_engaged_is(default_pack, default_engine, engaged, want):
    rec = {"id": "p", "stage": "partner", "integrators_engaged": engaged, "partners": []}
    status = default_engine.evaluate(rec).status
    for rid in ("S3_1", "S3_2", "S3_3", "S3_4", "S3_5", "M3"):
        assert status[rid] == want, rid


def test_the_absent_list_agrees_between_backends(default_pack, default_engine):
    frames, evidence = _evidence(default_pack, {})
    ev = default_engine.evaluate({"id": "d1", "stage": "relationship", "as_of": AS_OF}, absent=frozenset(frames.absent))
    assert ev.status == evidence.status_of(0)
    assert ev.measures == evidence.measures_of(0)
    assert ev.measures["best_key_stance"] is None  # no contacts table: unknown, not "no key person"
