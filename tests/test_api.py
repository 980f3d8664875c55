"""The library API: one record (reference path) and table form (batch path) agree; errors name record and field."""
from __future__ import annotations

import json
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from scoring import RecordError, Scorer
from dealscore_datasets.generate import tables_to_records


@pytest.fixture(scope="module")
def scorer(trained_model_dir):
    return Scorer(model=trained_model_dir)


def test_bad_record_raises_error_naming_record_and_field(scorer):
    with pytest.raises(RecordError) as info:
        scorer.score({"id": "OPP-9", "stage": "bidding", "decision_maker_signal": "maybe"})
    assert info.value.record_id == "OPP-9" and info.value.field == "decision_maker_signal"


def test_result_serializes_to_json(scorer):
    res = scorer.score({"id": "OPP-1", "stage": "solution", "needs_understood": True})
    data = json.loads(res.to_json())
    assert data == json.loads(json.dumps(res.to_dict()))
    assert data["id"] == "OPP-1" and data["win_probability"] == res.win_probability
    assert data["next_actions"][0]["action"] == res.next_actions[0].action


def test_without_model_gives_rule_score_only():
    scorer = Scorer(model=None, rules=ROOT / "rules" / "default")
    res = scorer.score({"id": "OPP-1", "stage": "technical_promotion", "needs_understood": True})
    first_stage = [r for r in scorer.pack.rules if r.kind in ("checklist", "milestone") and r.stage == "technical_promotion"]
    want = round(100 * scorer.pack.rule("S1_1").points / sum(r.points for r in first_stage), 1)
    assert res.win_probability is None and res.model_version is None
    assert res.rule_score == want and res.reasons_positive == []


def test_table_form_equals_single_records(scorer, pipeline_tables):
    t = pipeline_tables
    df = scorer.score_frame(t["opportunities"], t["contacts"], t["competitors"], t["partners"])
    for rec, (_, row) in zip(tables_to_records(t), df.iterrows()):
        one = scorer.score(rec)
        assert row["id"] == one.id
        assert row["win_probability"] == pytest.approx(one.win_probability, abs=1e-6)
        assert row["rule_score"] == one.rule_score
        assert row["data_completeness"] == one.data_completeness
        assert list(row["red_flags"]) == one.red_flags
        assert list(row["milestones_passed"]) == one.milestones_passed
        assert list(row["analysis_meeting"]) == one.analysis_meeting
        assert list(row["next_actions"]) == [a.rule for a in one.next_actions]
        assert list(row["reasons_positive"]) == [r.feature for r in one.reasons_positive]
        assert list(row["reasons_negative"]) == [r.feature for r in one.reasons_negative]


def test_safe_to_call_from_several_threads(scorer, pipeline_tables):
    recs = tables_to_records(pipeline_tables)[:120]
    expected = [scorer.score(r).to_dict() for r in recs]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda r: scorer.score(r).to_dict(), recs))
    assert got == expected


def test_ships_to_worker_processes(scorer, pipeline_tables):
    import multiprocessing as mp

    recs = tables_to_records(pipeline_tables)[:20]
    clone = pickle.loads(pickle.dumps(scorer))
    assert [clone.score(r).to_dict() for r in recs] == [scorer.score(r).to_dict() for r in recs]
    with mp.get_context("spawn").Pool(1) as pool:
        got = pool.map(_score_in_worker, [(scorer, r) for r in recs[:5]])
    assert got == [scorer.score(r).to_dict() for r in recs[:5]]


def _score_in_worker(args):
    scorer, rec = args
    return scorer.score(rec).to_dict()


def test_dask_partitions_equal_single_process(scorer, pipeline_tables):
    import dask
    import dask.dataframe as dd

    t = pipeline_tables
    single = scorer.score_frame(t["opportunities"], t["contacts"], t["competitors"], t["partners"])
    ddf = dd.from_pandas(t["opportunities"], npartitions=4)
    with dask.config.set(scheduler="processes", num_workers=2):
        parts = ddf.map_partitions(scorer.score_frame, t["contacts"], t["competitors"], t["partners"],
                                   other_deals="ignore", meta=scorer.output_meta()).compute()
    parts = parts.reset_index(drop=True).drop(columns="scored_at")
    single = single.drop(columns="scored_at")
    for frame in (parts, single):
        for c in frame.columns:
            if frame[c].dtype == object:
                frame[c] = frame[c].map(lambda x: tuple(x) if isinstance(x, (list, np.ndarray)) else x)
    pd.testing.assert_frame_equal(parts, single)


def test_table_form_bad_row_raises_error_naming_record_and_field(scorer, pipeline_tables):
    opps = pipeline_tables["opportunities"].copy()
    opps.loc[5, "stage"] = "closing"
    with pytest.raises(RecordError) as info:
        scorer.score_frame(opps)
    assert info.value.record_id == opps.loc[5, "id"] and info.value.field == "stage"


def test_table_form_with_mixed_python_types_is_still_validated(scorer, pipeline_tables):
    opps = pipeline_tables["opportunities"].head(5).astype(object)
    opps["tech_presentations"] = [1, "two", None, 3, 0]          # not one Arrow type
    with pytest.raises(RecordError) as info:
        scorer.score_frame(opps)
    assert info.value.field == "tech_presentations"


def test_spark_schema_names_every_output_column(scorer):
    ddl = scorer.spark_ddl()
    assert ddl.startswith("`id` string, `as_of` string, `stage` string, `win_probability` double")
    assert "`next_actions` array<string>" in ddl
    assert ddl.count("`") == 2 * len(scorer.output_meta().columns)


def test_score_many_equals_scoring_each_record_whichever_path(scorer, pipeline_tables):
    from scoring.api import COLUMNWISE_FROM

    recs = tables_to_records(pipeline_tables)[:COLUMNWISE_FROM + 6]
    one_by_one = [scorer.score(r) for r in recs]
    assert scorer.score_many(recs) == one_by_one                      # rules evaluated column-wise
    assert scorer.score_many(recs[:5]) == one_by_one[:5]              # one record at a time


def test_score_many_refuses_a_bad_record_before_scoring_any(scorer, pipeline_tables):
    recs = tables_to_records(pipeline_tables)[:10]
    recs[7] = {**recs[7], "site_visits": -1}
    with pytest.raises(RecordError) as info:
        scorer.score_many(recs)
    assert info.value.record_id == recs[7]["id"] and info.value.field == "site_visits"


def test_one_record_without_a_model_is_scored_without_loading_the_batchs_libraries(tmp_path):
    """Scorer(model=None) and score() with the default pack, its graded measures included, load neither
    pandas, pyarrow, scikit-learn nor the durable-rules engine (load time).  (With a model they load
    pandas: the model's module, scoring/model/scorecard.py, imports it.)"""
    import subprocess
    import sys

    code = ("import sys, json\n"
            "from scoring import Scorer\n"
            f"s = Scorer(model=None, rules={str(ROOT / 'rules' / 'default')!r}, as_of='2026-11-26')\n"
            "s.score({'id': 'OPP-1', 'stage': 'bidding', 'needs_understood': True, 'close_date_pushes': 2,"
            " 'pricing_strategy_ready': True, 'stage_entered_at': '2026-10-01', 'decision_maker_signal': 'explicit',"
            " 'contacts': [{'name': 'Li', 'is_coach': True, 'role': 'approver', 'stance': 'ally'}],"
            " 'competitors': [{'name': 'X', 'strength': 'high', 'incumbent': True}]})\n"
            "print(json.dumps(sorted(m for m in ('pandas', 'pyarrow', 'durable', 'sklearn') if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
