"""The nightly batch: nothing lost, atomic outputs, one run at a time, idempotent, history flags, forecast."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from scoring.model.artifact import load_model
from scoring.batch.chunks import ChunkScorer
from scoring.batch.files import output_lock
from scoring.batch.run import run_batch
from scoring.cli import main
from scoring.errors import ScoringError
from scoring.score.flags import Thresholds
from dealscore_datasets.generate import write_tables

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model(trained_model_dir):
    return load_model(trained_model_dir)


@pytest.fixture
def pipeline_dir(tmp_path, pipeline_tables):
    """The generated pipeline as Parquet tables, with bad rows and an orphan child row added."""
    t = {k: v.copy() for k, v in pipeline_tables.items()}
    opps = t["opportunities"]
    bad = opps.iloc[:3].copy()
    bad["id"] = ["BAD-1", "BAD-2", "BAD-3"]
    bad["stage"] = ["technical_promotion", "closing", "bidding"]        # BAD-2: unknown stage
    bad["tech_presentations"] = pd.array([-1, 1, 1], dtype="Int64")      # BAD-1: negative count
    t["opportunities"] = pd.concat([opps, bad], ignore_index=True)
    orphan = t["contacts"].iloc[:1].copy()
    orphan["opportunity_id"] = "NOBODY"
    t["contacts"] = pd.concat([t["contacts"], orphan], ignore_index=True)
    bad_child = t["contacts"].iloc[:1].copy()
    bad_child["opportunity_id"] = "BAD-3"
    bad_child["role"] = "janitor"                                        # BAD-3: bad child row
    t["contacts"] = pd.concat([t["contacts"], bad_child], ignore_index=True)
    d = tmp_path / "pipeline"
    write_tables(t, d, fmt="parquet")
    return d


def _run(src, out, model, **kw):
    kw.setdefault("workers", 2)
    kw.setdefault("chunk_size", 100)
    return run_batch(src, out, pack=model.pack, model=model, **kw)


def test_every_record_is_scored_or_rejected(pipeline_dir, tmp_path, model):
    out = tmp_path / "scores.parquet"
    s = _run(pipeline_dir, out, model)
    assert s["read"] == 303 and s["scored"] == 300 and s["rejected"] == 3
    assert s["read"] == s["scored"] + s["rejected"]
    scored = pq.read_table(out).to_pandas()
    assert len(scored) == 300 and not scored["id"].str.startswith("BAD").any()
    rej = pd.read_csv(s["rejects"], dtype=str, keep_default_na=False)
    records = rej[rej["kind"] == "record"].set_index("id")
    assert records.loc["BAD-1", "field"] == "tech_presentations"
    assert records.loc["BAD-2", "field"] == "stage"
    assert records.loc["BAD-3", "field"].startswith("contacts[")
    orphans = rej[rej["kind"] == "orphan"]
    assert list(orphans["id"]) == ["NOBODY"] and s["orphans"] == 1


def test_output_formats_hold_lists_natively_or_as_json_text(pipeline_dir, tmp_path, model):
    _run(pipeline_dir, tmp_path / "s.parquet", model)
    _run(pipeline_dir, tmp_path / "s.jsonl", model)
    _run(pipeline_dir, tmp_path / "s.csv", model)
    pq_rows = pq.read_table(tmp_path / "s.parquet").to_pylist()
    js_rows = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    csv_rows = pd.read_csv(tmp_path / "s.csv", dtype=str, keep_default_na=False).to_dict("records")
    assert isinstance(pq_rows[0]["next_actions"], list) and isinstance(js_rows[0]["next_actions"], list)
    assert [json.loads(r["next_actions"]) for r in csv_rows] == [r["next_actions"] for r in pq_rows]
    assert [r["id"] for r in js_rows] == [r["id"] for r in pq_rows]


def test_rerun_gives_same_output_apart_from_scored_at(pipeline_dir, tmp_path, model):
    a = _run(pipeline_dir, tmp_path / "a.parquet", model)
    b = _run(pipeline_dir, tmp_path / "b.parquet", model, workers=1)
    ta = pq.read_table(a["output"]).drop(["scored_at"])
    tb = pq.read_table(b["output"]).drop(["scored_at"])
    assert ta.equals(tb)


def test_failed_run_leaves_previous_files_untouched(pipeline_dir, tmp_path, model, monkeypatch):
    out = tmp_path / "scores.parquet"
    _run(pipeline_dir, out, model)
    before = out.read_bytes(), Path(str(tmp_path / "scores.parquet.rejects.csv")).read_bytes()
    calls = {"n": 0}
    real = ChunkScorer.score

    def crash_on_second_chunk(self, frames):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash")
        return real(self, frames)

    monkeypatch.setattr(ChunkScorer, "score", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        _run(pipeline_dir, out, model, workers=1)
    assert (out.read_bytes(), (tmp_path / "scores.parquet.rejects.csv").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp-" in p.name) == []


def test_killed_run_leaves_no_partial_file_under_the_final_name(tmp_path, trained_model_dir):
    """SIGKILL a real run halfway: the final name keeps last night's file, byte for byte."""
    from dealscore_datasets.generate import generate_tables

    src = tmp_path / "big"
    write_tables(generate_tables(60_000, seed=5), src, fmt="parquet")
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"last night's scores")
    code = ("import sys; from scoring.model.artifact import load_model; from scoring.batch.run import run_batch; "
            f"m = load_model({str(trained_model_dir)!r}); "
            f"run_batch({str(src)!r}, {str(out)!r}, pack=m.pack, model=m, workers=1, chunk_size=1000)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and not any(".tmp-" in p.name for p in tmp_path.iterdir()):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert out.read_bytes() == b"last night's scores"
    with output_lock(out):  # the kernel released the dead run's lock: the next run may start
        pass


def test_second_run_on_same_output_refuses_to_start(pipeline_dir, tmp_path, model):
    out = tmp_path / "scores.parquet"
    with output_lock(out):
        with pytest.raises(ScoringError, match=f"another run is writing .* held by pid {os.getpid()}"):
            _run(pipeline_dir, out, model)
    _run(pipeline_dir, out, model)  # free again once the first run is over


def test_previous_run_raises_history_flags(pipeline_dir, tmp_path, model):
    prev_path = tmp_path / "prev.parquet"
    _run(pipeline_dir, prev_path, model)
    prev = pq.read_table(prev_path).to_pandas()
    ids = prev["id"].tolist()
    # doctor last night's file: one deal had a much higher probability, one an earlier close date,
    # one had no red flags, the others are unchanged
    low = int(prev.index[prev["win_probability"] < 0.6][0])
    slip = int(prev.index[(prev.index != low) & prev["expected_close"].notna()][0])
    prev.loc[low, "win_probability"] += 0.3
    prev.loc[slip, "expected_close"] = "2000-01-01"
    flagged = int(prev.index[(prev["red_flags"].map(len) > 0) & ~prev.index.isin([low, slip])][0])
    prev.at[flagged, "red_flags"] = []
    prev.to_parquet(prev_path)
    s = _run(pipeline_dir, tmp_path / "now.parquet", model, previous=prev_path)
    now = pq.read_table(s["output"]).to_pandas().set_index("id")
    assert now.loc[ids[low], "probability_change"] == pytest.approx(-0.3, abs=1e-6)
    assert "T3" in now.loc[ids[low], "analysis_meeting"]
    assert "T2" in now.loc[ids[slip], "analysis_meeting"]
    assert "T3" in now.loc[ids[flagged], "analysis_meeting"]
    unchanged = [i for i in range(len(ids)) if i not in (low, slip, flagged)][0]
    assert now.loc[ids[unchanged], "probability_change"] == 0
    assert not {"T3", "T2"} & set(now.loc[ids[unchanged], "analysis_meeting"])


def test_old_slip_does_not_flag_t2_every_night(pipeline_dir, tmp_path, model):
    """Without --previous T2 comes from the record (close_date_pushes); with it, only a new slip raises T2."""
    first = _run(pipeline_dir, tmp_path / "night1.parquet", model)
    night1 = pq.read_table(first["output"]).to_pandas().set_index("id")
    old_slips = night1.index[night1["analysis_meeting"].map(lambda x: "T2" in x)]
    assert len(old_slips) > 0
    second = _run(pipeline_dir, tmp_path / "night2.parquet", model, previous=first["output"])
    night2 = pq.read_table(second["output"]).to_pandas().set_index("id")
    assert not night2.loc[old_slips, "analysis_meeting"].map(lambda x: "T2" in x).any()


def test_forecast_never_adds_different_currencies(pipeline_dir, tmp_path, model):
    s = _run(pipeline_dir, tmp_path / "s.parquet", model, forecast=tmp_path / "forecast.csv")
    fc = pd.read_csv(tmp_path / "forecast.csv", keep_default_na=False)
    scored = pq.read_table(s["output"]).to_pandas()
    scored = scored[scored["amount"].notna()]
    for cur, grp in scored.groupby(scored["currency"].fillna("(unknown)")):
        total = fc[(fc["dimension"] == "total") & (fc["currency"] == cur)]
        assert len(total) == 1
        assert total["expected_value"].iloc[0] == pytest.approx((grp["amount"] * grp["win_probability"]).sum(), rel=1e-6)
    assert fc.groupby(["dimension", "key", "currency"]).size().max() == 1
    assert set(fc["dimension"]) == {"total", "owner", "region", "stage", "close_quarter"}


def test_rejected_share_above_threshold_exits_non_zero(pipeline_dir, tmp_path, trained_model_dir):
    args = ["score", str(pipeline_dir), "--out", str(tmp_path / "s.jsonl"), "--model", str(trained_model_dir),
            "--workers", "1"]
    ok = CliRunner().invoke(main, args + ["--max-rejected-share", "0.05"])
    assert ok.exit_code == 0, ok.output
    strict = CliRunner().invoke(main, args + ["--max-rejected-share", "0.005"])
    assert strict.exit_code == 3 and "rejected" in strict.output


def test_stalled_deals_are_flagged(pipeline_dir, tmp_path, model):
    s = _run(pipeline_dir, tmp_path / "s.parquet", model, thresholds=Thresholds(stall_days={k: 0 for k in (
        "technical_promotion", "relationship", "partner", "solution", "bidding")}))
    rows = pq.read_table(s["output"]).to_pandas()
    assert rows["analysis_meeting"].map(lambda x: "STALLED" in x).sum() > 0


def test_batch_equals_reference_path(pipeline_dir, tmp_path, model):
    """The column-wise batch gives what the durable-rules single-record path gives."""
    from scoring.api import Scorer
    from scoring.contract.reader import read_records

    s = _run(pipeline_dir, tmp_path / "s.jsonl", model, as_of="2026-11-25")
    rows = {r["id"]: r for r in map(json.loads, Path(s["output"]).read_text().splitlines())}
    scorer = Scorer(model=model.path, as_of="2026-11-25")
    for rec in read_records(pipeline_dir, model.pack.schema).records[:150]:
        one, row = scorer.score(rec), rows[rec["id"]]
        assert row["rule_score"] == one.rule_score and row["red_flags"] == one.red_flags
        assert row["win_probability"] == pytest.approx(one.win_probability, abs=1e-6)
        assert row["next_actions"] == [a.rule for a in one.next_actions]
        assert row["analysis_meeting"] == one.analysis_meeting


def test_batch_reasons_are_the_models_reasons(pipeline_dir, tmp_path, model):
    """The batch asks the model: probabilities and reasons in the order Model.reasons gives them."""
    from scoring.contract.reader import read_records

    s = _run(pipeline_dir, tmp_path / "s.jsonl", model, as_of="2026-11-25")
    rows = {r["id"]: r for r in map(json.loads, Path(s["output"]).read_text().splitlines())}
    recs = read_records(pipeline_dir, model.pack.schema).records
    for rec, want in zip(recs, model.reasons(recs)):
        row = rows[rec["id"]]
        assert row["reasons_positive"] == [r["feature"] for r in want["positive"]]
        assert row["reasons_negative"] == [r["feature"] for r in want["negative"]]
        assert row["win_probability"] == pytest.approx(want["win_probability"], abs=5e-7)


def test_json_lines_duplicates_across_partitions_are_rejected(tmp_path, model, pipeline_tables):
    from dealscore_datasets.generate import tables_to_records, write_jsonl

    recs = tables_to_records(pipeline_tables)[:50]
    src = tmp_path / "in.jsonl"
    write_jsonl(recs + [recs[3], recs[40]], src)        # the same (id, as_of) again, far from the first
    s = _run(src, tmp_path / "s.jsonl", model, chunk_size=10)
    assert (s["read"], s["scored"], s["rejected"]) == (52, 50, 2)
    rej = pd.read_csv(s["rejects"], dtype=str, keep_default_na=False)
    assert sorted(rej["id"]) == sorted([recs[3]["id"], recs[40]["id"]])
    assert set(rej["reason"]) == {"duplicate (id, as_of)"} and set(rej["where"]) == {"line 51", "line 52"}
