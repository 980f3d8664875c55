"""The score store: every run appended whole, trends and what changed, faults, on BOTH back ends.

Each test taking ``store_url`` runs against an embedded DuckDB file and against a real PostgreSQL
server the session starts (``pg_server`` in conftest.py), each test in a fresh database.
"""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from scoring.batch.run import run_batch
from scoring.cli import main
from scoring.errors import ExitCode, StoreError
from scoring.model.logistic import sigmoid
from scoring.model.registry import resolve_scoring
from scoring.store import Store
from scoring.store.changes import (DECLINING, IMPROVING, NOT_ENOUGH, STEADY, TREND_THRESHOLD, change_items,
                                   decompose, item_code, logit_of, rule_contributions, trend)
from scoring.store.schema import SCHEMA_VERSION
from scoring.store.timeline import deal_timeline

import dealscore_datasets.nextday as nextday

SAMPLE = ROOT / "datasets" / "sample" / "pipeline.jsonl"
DAY1 = "2026-11-25"


@pytest.fixture(scope="module")
def scoring_parts():
    engine, model, _ = resolve_scoring(None, None, use_model=True)
    return engine.pack, model


@pytest.fixture(scope="module")
def records():
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(params=["duckdb", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "duckdb":
        yield str(tmp_path / "history.duckdb")
        return
    import psycopg

    server = request.getfixturevalue("pg_server")
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    yield server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(server, autocommit=True) as con:
        con.execute(f"DROP DATABASE {name} WITH (FORCE)")


def write_jsonl(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def score_cli(*args):
    res = CliRunner().invoke(main, ["score", *map(str, args)], catch_exceptions=False)
    return res


def error_lines(res):
    return [line for line in res.stderr.splitlines() if line.startswith("error:")]


def two_nights(tmp_path, store_url, scoring_parts, records, seed=3):
    """Day one (the sample), then the next day (datasets/nextday.py); returns the second output."""
    pack, model = scoring_parts
    store = Store(store_url)
    day2 = write_jsonl(tmp_path / "day2.jsonl", nextday.next_day(records, days=1, seed=seed))
    out = tmp_path / "scores.parquet"
    run_batch(SAMPLE, out, pack=pack, model=model, as_of=DAY1, store=store, workers=1)
    run_batch(day2, out, pack=pack, model=model, as_of="2026-11-26", store=store, workers=1)
    return store, pd.read_parquet(out)


# --------------------------------------------------------------------------- the run in the store


def test_a_run_is_stored_whole_with_every_rule_status_and_contributions_summing_to_the_logit(
        tmp_path, store_url, scoring_parts):
    pack, model = scoring_parts
    store = Store(store_url)
    summary = run_batch(SAMPLE, tmp_path / "scores.jsonl", pack=pack, model=model, as_of=DAY1, store=store, workers=1)
    runs = store.runs()
    assert len(runs) == 1 and runs["run_id"][0] == summary["store"]["run_id"]
    assert runs["n_scored"][0] == summary["scored"] == 300 and runs["rules"][0] == [r.id for r in pack.rules]
    rows = store.run_deals(summary["store"]["run_id"])
    assert len(rows) == 300 and set(rows["deal_id"]) == {json.loads(x)["id"] for x in SAMPLE.read_text().splitlines()}
    assert rows["status"].map(len).eq(len(pack.rules)).all()
    contrib = np.stack(rows["contributions"].to_numpy())
    assert contrib.shape == (300, len(pack.rules) + 1)
    np.testing.assert_allclose(runs["intercept"][0] + contrib.sum(1), rows["logit"], atol=1e-5)  # 32-bit floats
    np.testing.assert_allclose(sigmoid(rows["logit"].to_numpy()), rows["win_probability"], atol=1e-6)


def test_the_rule_view_gives_each_rules_status_and_contribution(tmp_path, store_url, scoring_parts):
    pack, model = scoring_parts
    store = Store(store_url)
    run_batch(SAMPLE, tmp_path / "scores.jsonl", pack=pack, model=model, as_of=DAY1, store=store, workers=1)
    view = store.query("SELECT deal_id, rule_id, status, contribution FROM deal_rules WHERE deal_id = ?", ["P-000004"])
    assert len(view) == len(pack.rules) and set(view["status"]) <= {"met", "missing", "unknown"}
    row = store.query("SELECT status, logit FROM deal_scores WHERE deal_id = ?", ["P-000004"]).iloc[0]
    words = {"0": "missing", "1": "met", "2": "unknown"}
    assert dict(zip(view["rule_id"], view["status"])) == {r.id: words[c] for r, c in zip(pack.rules, row["status"])}


def test_a_run_without_a_model_is_stored_with_statuses_and_no_probability(tmp_path, store_url, scoring_parts):
    pack, _ = scoring_parts
    store = Store(store_url)
    run_batch(SAMPLE, tmp_path / "scores.jsonl", pack=pack, model=None, as_of=DAY1, store=store, workers=1)
    rows = store.run_deals(store.runs()["run_id"][0])
    assert len(rows) == 300 and rows["win_probability"].isna().all() and rows["contributions"].isna().all()
    assert rows["status"].map(len).eq(len(pack.rules)).all()


def test_a_failed_append_leaves_no_part_of_the_run_and_replaces_no_output(tmp_path, store_url, scoring_parts,
                                                                            monkeypatch):
    pack, model = scoring_parts
    store = Store(store_url)
    out = tmp_path / "scores.jsonl"
    run_batch(SAMPLE, out, pack=pack, model=model, as_of=DAY1, store=store, workers=1)
    before = out.read_bytes()
    real = type(store.backend).load

    def dies_after_half(self, con, table, data, columns):
        if table == "deal_scores":
            real(self, con, table, data, columns)  # the rows are in: then the run is killed
            raise KeyboardInterrupt
        return real(self, con, table, data, columns)

    monkeypatch.setattr(type(store.backend), "load", dies_after_half)
    with pytest.raises(KeyboardInterrupt):
        run_batch(SAMPLE, out, pack=pack, model=model, as_of="2026-11-26", store=store, workers=1)
    monkeypatch.undo()
    assert len(store.runs()) == 1
    assert store.query("SELECT count(*) AS n FROM deal_scores")["n"][0] == 300
    assert out.read_bytes() == before


def test_two_runs_appending_at_once_both_land_whole(tmp_path, store_url):
    procs = [subprocess.Popen([sys.executable, "-m", "scoring.cli", "score", str(SAMPLE), "--out",
                               str(tmp_path / f"scores{i}.jsonl"), "--store", store_url, "--as-of", DAY1,
                               "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    store = Store(store_url)
    runs = store.runs()
    assert len(runs) == 2 and list(runs["n_scored"]) == [300, 300]
    counts = store.query("SELECT run_id, count(*) AS n FROM deal_scores GROUP BY run_id")
    assert sorted(counts["n"]) == [300, 300]


# --------------------------------------------------------------------------- faults, before any scoring


@pytest.mark.parametrize("url", ["postgresql://nobody@127.0.0.1:1/nowhere", "{tmp}/no-such-folder/history.duckdb",
                                 "mysql://db/x"], ids=["server-down", "no-folder", "not-a-store-url"])
def test_a_store_that_cannot_be_used_is_one_line_before_scoring_and_the_output_is_untouched(tmp_path, url):
    out = tmp_path / "scores.jsonl"
    out.write_text("last night\n")
    res = score_cli(SAMPLE, "--out", out, "--store", url.format(tmp=tmp_path))
    assert res.exit_code == ExitCode.STORE == 6
    assert len(error_lines(res)) == 1 and "store" in error_lines(res)[0] and "password" not in res.stderr
    assert out.read_text() == "last night\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.jsonl"]


def test_a_store_of_an_older_schema_is_refused_until_upgraded(tmp_path, store_url):
    store = Store(store_url)
    store.create_version(1)
    out = tmp_path / "scores.jsonl"
    res = score_cli(SAMPLE, "--out", out, "--store", store_url, "--as-of", DAY1)
    assert res.exit_code == ExitCode.STORE and not out.exists()
    assert "schema version 1" in res.stderr and "scoring store upgrade" in res.stderr
    up = CliRunner().invoke(main, ["store", "upgrade", "--store", store_url])
    assert up.exit_code == 0 and f"from schema version 1 to {SCHEMA_VERSION}" in up.output
    assert score_cli(SAMPLE, "--out", out, "--store", store_url, "--as-of", DAY1).exit_code == 0
    assert len(store.runs()) == 1


def test_no_store_writes_no_store_and_no_history_columns(tmp_path):
    out = tmp_path / "scores.jsonl"
    assert score_cli(SAMPLE, "--out", out, "--no-store").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.jsonl", "scores.jsonl.lock", "scores.jsonl.rejects.csv",
                                                          "scores.jsonl.summary.json"]
    assert "trend" not in json.loads(out.read_text().splitlines()[0])


def test_the_default_store_is_a_file_beside_the_output(tmp_path):
    out = tmp_path / "scores.jsonl"
    assert score_cli(SAMPLE, "--out", out, "--as-of", DAY1).exit_code == 0
    assert len(Store(tmp_path / "history.duckdb").runs()) == 1
    row = json.loads(out.read_text().splitlines()[0])
    assert row["trend"] == NOT_ENOUGH and row["changes"] == [] and row["changes_since"] == []


# --------------------------------------------------------------------------- trend and what changed


def test_two_nights_give_what_changed_whose_contributions_sum_to_the_change(tmp_path, store_url, scoring_parts,
                                                                            records):
    pack, model = scoring_parts
    store, out = two_nights(tmp_path, store_url, scoring_parts, records)
    moved = out[out["probability_change"].abs() > 1e-9]
    assert len(moved) >= 10  # slips, stage moves, lost coaches, new supporters
    for deal in moved["id"].head(15):
        t = deal_timeline(store, deal, model=model, pack=pack)
        last = t["entries"][-1]
        assert math.isclose(sum(c["contribution"] for c in last["changes"]), last["logit_change"], abs_tol=1e-9)
        row = out[out["id"] == deal].iloc[0]
        assert list(row["changes"]) == [item_code(c) for c in last["changes"]]
    unchanged = out[(out["probability_change"].abs() < 1e-12)]
    assert unchanged["changes"].map(len).eq(0).mean() > 0.5


@pytest.fixture(scope="module")
def derived_model(scoring_parts):
    """A model trained with --derived: derived facts (counts, day counts) are among its inputs."""
    from scoring.model.train import train

    pack, _ = scoring_parts
    return train(ROOT / "datasets" / "sample" / "history.jsonl", rules=pack, derived=True, challenger=False,
                 C=1.0).model


def test_a_model_with_derived_inputs_stores_them_and_its_changes_sum_and_split(tmp_path, store_url, scoring_parts,
                                                                                 records, derived_model):
    pack, _ = scoring_parts
    names = [i.name for i in derived_model.numeric if i.source == "derived"]
    store, out = two_nights(tmp_path, store_url, (pack, derived_model), records)
    runs = store.runs()
    assert runs["derived"].iloc[-1] == names
    rows = store.run_deals(runs["run_id"].iloc[-1])
    assert rows["derived"].map(len).eq(len(names)).all()
    moved = out[out["probability_change"].abs() > 1e-9]
    assert len(moved) >= 10
    for deal in moved["id"].head(10):  # the nightly codes and the timeline agree, and sum to the change
        last = deal_timeline(store, deal, model=derived_model, pack=pack)["entries"][-1]
        assert math.isclose(sum(c["contribution"] for c in last["changes"]), last["logit_change"], abs_tol=1e-9)
        assert list(out[out["id"] == deal].iloc[0]["changes"]) == [item_code(c) for c in last["changes"]]
    # a retrained model with the same inputs: night 3 splits model/pack from evidence, from the stored values
    other = scaled(derived_model, 1.5, 0.1)
    other.manifest = {**derived_model.manifest, "model_id": "retrained"}
    run_batch(SAMPLE, tmp_path / "scores.parquet", pack=pack, model=other, as_of="2026-11-27", store=store, workers=1)
    last = deal_timeline(store, "P-000024", model=other, pack=pack)["entries"][-1]
    assert last["changes"][0]["term"] == "model/pack" and last["changes"][0].get("itemized", True)
    assert math.isclose(sum(c["contribution"] for c in last["changes"]), last["logit_change"], abs_tol=1e-9)


def test_a_rule_whose_graded_measure_moved_says_from_what_to_what(tmp_path, store_url, scoring_parts, records):
    pack, model = scoring_parts
    store, _ = two_nights(tmp_path, store_url, scoring_parts, records)
    last = deal_timeline(store, "P-000089", model=model, pack=pack)["entries"][-1]
    stalled = next(c for c in last["changes"] if c["term"] == "STALLED")
    assert stalled["before"] == stalled["now"] == "missing" and abs(stalled["contribution"]) > 0.05
    assert stalled["measures"] == [{"name": "days_in_current_stage", "before": "52 days in the current stage",
                                    "now": "53 days in the current stage"}]
    assert stalled["title"].endswith("missing; 52 days in the current stage -> 53 days in the current stage")


def test_a_deal_that_lost_its_coach_says_so_in_rule_words(tmp_path, store_url, scoring_parts, records):
    pack, model = scoring_parts
    events = nextday.what_happened(records, days=1, seed=3)
    lost = next(d for d, ev in events.items() if ev == ["lost_coach"])
    store, out = two_nights(tmp_path, store_url, scoring_parts, records)
    codes = list(out[out["id"] == lost].iloc[0]["changes"])
    assert any(c.startswith("S2_5 met>") for c in codes)
    t = deal_timeline(store, lost, model=model, pack=pack)
    assert any("coach" in c["title"] for c in t["entries"][-1]["changes"])


def test_a_probability_drop_raises_t3_from_the_store_without_previous(tmp_path, store_url, scoring_parts, records):
    _, out = two_nights(tmp_path, store_url, scoring_parts, records)
    dropped = out["probability_change"] < -0.10
    assert dropped.any()
    assert out[dropped]["analysis_meeting"].map(lambda m: "T3" in list(m)).all()


def test_changes_since_compares_with_the_run_a_week_back(tmp_path, store_url, scoring_parts, records):
    pack, model = scoring_parts
    store = Store(store_url)
    out = tmp_path / "scores.parquet"
    week = write_jsonl(tmp_path / "week.jsonl", nextday.next_day(records, days=7, seed=5))
    run_batch(SAMPLE, out, pack=pack, model=model, as_of=DAY1, store=store, workers=1)
    run_batch(SAMPLE, out, pack=pack, model=model, as_of="2026-11-30", store=store, workers=1)
    run_batch(week, out, pack=pack, model=model, as_of="2026-12-02", store=store, workers=1)
    df = pd.read_parquet(out)
    moved = df[df["probability_change"].abs() > 1e-9]
    assert len(moved) and (moved["changes"].map(list) == moved["changes_since"].map(list)).all()


def scaled(model, factor: float, shift: float):
    """Another model: every point of ``model``'s scorecard times ``factor``, the intercept moved by ``shift``."""
    from scoring.model.scorecard import Model

    def times(x):
        if isinstance(x, dict):
            return {k: x[k] if k in ("id", "input", "bins", "cv") else times(v) for k, v in x.items()}
        if isinstance(x, list):
            return [times(v) for v in x]
        return x * factor if isinstance(x, float) else x

    spec = model.to_spec()
    spec = {**spec, **{k: times(spec[k]) for k in ("stage_points", "rules", "numeric") if k in spec}}
    spec["intercept"] = spec["intercept"] * factor + shift
    return Model(model.pack, spec, {**model.manifest})


def test_a_new_model_splits_the_change_into_model_and_evidence(tmp_path, store_url, scoring_parts, records):
    pack, model = scoring_parts
    other = scaled(model, 1.5, 0.0)
    other.manifest = {**model.manifest, "model_id": "retrained"}
    store = Store(store_url)
    out = tmp_path / "scores.parquet"
    day2 = write_jsonl(tmp_path / "day2.jsonl", nextday.next_day(records, days=1, seed=3))
    run_batch(SAMPLE, out, pack=pack, model=model, as_of=DAY1, store=store, workers=1)
    run_batch(day2, out, pack=pack, model=other, as_of="2026-11-26", store=store, workers=1)
    df = pd.read_parquet(out)
    assert df["changes"].map(lambda c: len(c) > 0 and c[0].startswith("model/pack ")).mean() > 0.9
    t = deal_timeline(store, "P-000024", model=other, pack=pack)
    last = t["entries"][-1]
    assert last["changes"][0]["term"] == "model/pack"
    assert math.isclose(sum(c["contribution"] for c in last["changes"]), last["logit_change"], abs_tol=1e-9)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), scale=st.sampled_from([1.0, 0.5, 2.0]))
def test_model_part_and_evidence_changes_always_sum_to_the_logit_change(scoring_parts, data, scale):
    pack, model = scoring_parts
    new = scaled(model, scale, scale - 1.0)
    n, r = 5, len(pack.rules)
    stages = ["technical_promotion", "relationship", "partner", "solution", "bidding"]
    codes = data.draw(st.lists(st.integers(0, 2), min_size=2 * n * r, max_size=2 * n * r))
    st_before = np.array(codes[:n * r], dtype=np.int8).reshape(n, r)
    st_now = np.array(codes[n * r:], dtype=np.int8).reshape(n, r)
    sg_before = data.draw(st.lists(st.sampled_from(stages), min_size=n, max_size=n))
    sg_now = data.draw(st.lists(st.sampled_from(stages), min_size=n, max_size=n))
    m = len(pack.compiled.measures)
    values = st.sampled_from([np.nan, -2.0, 0.0, 1.0, 3.0, 30.0, 200.0])
    m_before, m_now = (np.array(data.draw(st.lists(values, min_size=n * m, max_size=n * m))).reshape(n, m)
                       for _ in range(2))
    logit_before = logit_of(model.intercept, rule_contributions(model, st_before, sg_before, m_before))
    c_now = rule_contributions(new, st_now, sg_now, m_now)
    part, deltas = decompose(new, c_now, logit_before, st_before, sg_before, m_before, np.full(n, scale == 1.0))
    np.testing.assert_allclose(part + deltas.sum(1), logit_of(new.intercept, c_now) - logit_before, atol=1e-9)
    items = change_items(deltas, part, st_now, st_before, sg_now, sg_before, [x.id for x in pack.rules],
                         np.ones(n, bool))
    for i in range(n):  # what is listed sums to the change up to the terms too small to list
        listed = sum(x["contribution"] for x in items[i])
        assert abs(listed - (part[i] + deltas[i].sum())) < 5e-4 * (r + 1)


@given(p=st.floats(0, 1), med=st.floats(0, 1), k=st.integers(0, 5))
def test_trend_labels_follow_the_documented_thresholds(p, med, k):
    label = trend(np.array([p]), np.array([med]), np.array([k]))[0]
    if k < 2:
        assert label == NOT_ENOUGH
    elif p - med >= TREND_THRESHOLD + 1e-9:
        assert label == IMPROVING
    elif p - med <= -TREND_THRESHOLD - 1e-9:
        assert label == DECLINING
    elif abs(p - med) < TREND_THRESHOLD - 1e-9:
        assert label == STEADY


def test_a_steadily_falling_deal_is_declining(tmp_path, store_url, scoring_parts, records):
    pack, model = scoring_parts
    store = Store(store_url)
    deal = copy.deepcopy(next(r for r in records if r["id"] == "P-000024"))
    out = tmp_path / "s.jsonl"
    days = ["2026-11-20", "2026-11-21", "2026-11-22"]
    for i, day in enumerate(days):
        rec = copy.deepcopy(deal)
        rec["as_of"] = day
        if i == 2:  # the coach leaves and nobody knows the decision chain any more
            for c in rec["contacts"]:
                c["is_coach"] = False
            rec.pop("decision_chain_mapped", None)
        run_batch(write_jsonl(tmp_path / "in.jsonl", [rec]), out, pack=pack, model=model, as_of=day, store=store,
                  workers=1)
    row = json.loads(out.read_text())
    assert row["trend"] == DECLINING and row["probability_change"] < -TREND_THRESHOLD


# --------------------------------------------------------------------------- the commands


def test_history_prints_a_readable_timeline_json_and_chinese(tmp_path, store_url, scoring_parts, records):
    two_nights(tmp_path, store_url, scoring_parts, records)
    events = nextday.what_happened(records, days=1, seed=3)
    deal = next(d for d, ev in events.items() if ev == ["lost_coach"])
    r = CliRunner()
    text = r.invoke(main, ["history", deal, "--store", store_url])
    assert text.exit_code == 0 and "coach" in text.output and "2026-11-26" in text.output
    js = r.invoke(main, ["history", deal, "--store", store_url, "--json"])
    t = json.loads(js.output)
    assert [e["as_of"] for e in t["entries"]] == [DAY1, "2026-11-26"]
    zh = r.invoke(main, ["history", deal, "--store", store_url, "--lang", "zh"])
    assert zh.exit_code == 0 and "教练" in zh.output or "内线" in zh.output
    missing = r.invoke(main, ["history", "NO-SUCH", "--store", store_url])
    assert missing.exit_code == ExitCode.USAGE and "NO-SUCH" in missing.stderr


def test_prune_deletes_old_runs_and_their_deals(tmp_path, store_url, scoring_parts):
    pack, model = scoring_parts
    store = Store(store_url)
    for day in ("2026-10-01", "2026-11-20", "2026-11-25"):
        run_batch(SAMPLE, tmp_path / "s.jsonl", pack=pack, model=model, as_of=day, store=store, workers=1)
    res = CliRunner().invoke(main, ["store", "prune", "--store", store_url, "--keep", "30", "--today", "2026-11-25"])
    assert res.exit_code == 0 and "pruned 1 run" in res.output
    assert list(store.runs()["as_of"]) == ["2026-11-20", "2026-11-25"]
    assert store.query("SELECT count(*) AS n FROM deal_scores")["n"][0] == 600


def test_a_store_that_is_not_one_is_refused(tmp_path):
    bad = tmp_path / "history.duckdb"
    bad.write_text("not a database")
    with pytest.raises(StoreError, match="history.duckdb"):
        Store(bad).check()


# --------------------------------------------------------------------------- the next day's pipeline


def test_next_day_is_reproducible_and_changes_deals_realistically(records):
    a = nextday.next_day(records, days=1, seed=3)
    assert a == nextday.next_day(records, days=1, seed=3) and a != nextday.next_day(records, days=1, seed=4)
    events = nextday.what_happened(records, days=1, seed=3)
    kinds = {e.split(":")[0] for ev in events.values() for e in ev}
    assert {"slip", "stage", "lost_coach", "new_supporter", "learned"} <= kinds
    assert 0.05 < len(events) / len(records) < 0.5
    assert all(r["as_of"] == "2026-11-26" for r in a)
    for before, after in zip(records, a):
        if "slip" in events.get(before["id"], []):
            assert after["expected_close"] > before["expected_close"]
            assert after["close_date_pushes"] == (before.get("close_date_pushes") or 0) + 1


def test_a_new_slip_raises_t2_from_the_store_and_an_old_one_does_not(tmp_path, store_url, scoring_parts, records):
    events = nextday.what_happened(records, days=1, seed=3)
    slipped = {d for d, ev in events.items() if "slip" in ev}
    _, out = two_nights(tmp_path, store_url, scoring_parts, records)
    t2 = set(out[out["analysis_meeting"].map(lambda m: "T2" in list(m))]["id"])
    assert slipped and slipped <= t2
    old_slips = {r["id"] for r in records if (r.get("close_date_pushes") or 0) > 0} - slipped
    assert old_slips and not (old_slips & t2)


def test_explain_since_adds_what_changed_since_that_date(tmp_path, store_url, scoring_parts, records):
    two_nights(tmp_path, store_url, scoring_parts, records)
    events = nextday.what_happened(records, days=1, seed=3)
    deal = next(d for d, ev in events.items() if ev == ["lost_coach"])
    res = CliRunner().invoke(main, ["explain", str(tmp_path / "day2.jsonl"), "--id", deal, "--since", DAY1,
                                    "--store", store_url, "--json"])
    assert res.exit_code == 0
    since = json.loads(res.stdout)["since"]
    assert since["since"] == DAY1 and any(c["term"] == "S2_5" for c in since["changes_since"])


def test_the_run_summary_reports_drift_and_expected_performance(tmp_path, store_url, scoring_parts, records):
    pack, model = scoring_parts
    store = Store(store_url)
    out = tmp_path / "scores.jsonl"
    run_batch(SAMPLE, out, pack=pack, model=model, as_of=DAY1, store=store, workers=1)
    nobody = copy.deepcopy(records)
    for r in nobody:  # overnight every coach is gone: the coach rules shift
        for c in r.get("contacts") or []:
            c["is_coach"] = False
    s = run_batch(write_jsonl(tmp_path / "d2.jsonl", nobody), out, pack=pack, model=model, as_of="2026-11-26",
                  store=store, workers=1)
    m = json.loads((tmp_path / "scores.jsonl.summary.json").read_text())["monitoring"]
    assert m == json.loads(json.dumps(s["monitoring"]))
    assert "S2_5" in m["rule_drift"]["flagged"] and "DC_decision_maker_known" not in m["rule_drift"]["flagged"]
    p = pd.read_json(out, lines=True)["win_probability"].to_numpy()
    assert m["expected_log_loss"] == round(float(np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p)))), 4)
    assert sum(b["deals"] for b in m["expected_calibration"]) == len(p)
    assert m["score_psi"]["psi"] >= 0 and sum(m["trends"].values()) == len(p)


@given(st.lists(st.integers(0, 1000), min_size=2, max_size=12), st.lists(st.integers(0, 1000), min_size=2, max_size=12))
def test_psi_is_zero_for_the_same_distribution_and_never_negative(a, b):
    from scoring.store.monitor import psi

    n = min(len(a), len(b))
    a, b = np.array(a[:n]) + 1, np.array(b[:n]) + 1
    assert abs(psi(a, a * 3)) < 1e-12
    assert psi(a, b) >= -1e-12


# --------------------------------------------------------------------------- outcomes and realized performance


def test_realized_performance_uses_the_probability_recorded_before_the_close(tmp_path, store_url, scoring_parts):
    pack, model = scoring_parts
    store = Store(store_url)
    for day in ("2026-09-01", "2026-10-10", "2026-11-10"):  # 105, 66 and 35 days before the close
        run_batch(SAMPLE, tmp_path / "s.jsonl", pack=pack, model=model, as_of=day, store=store, workers=1)
    p = pd.read_json(tmp_path / "s.jsonl", lines=True).set_index("id")["win_probability"]
    closed = tmp_path / "closed.csv"
    won = {d for i, d in enumerate(p.index) if i % 3 == 0}
    closed.write_text("id,outcome,closed_at\n" + "".join(
        f"{d},{'won' if d in won else 'lost'},2026-12-15\n" for d in p.index[:150]))
    res = CliRunner().invoke(main, ["outcomes", str(closed), "--store", store_url])
    assert res.exit_code == 0 and "recorded 150 outcome" in res.output
    from scoring.store.monitor import realized_performance

    real = {r["days_before_close"]: r for r in realized_performance(store.outcome_rows())}
    assert [real[h]["deals"] for h in (30, 60, 90)] == [150, 150, 150]
    y = np.array([d in won for d in p.index[:150]], float)
    q = p.to_numpy()[:150]
    assert real[30]["log_loss"] == round(float(np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q)))), 4)
    assert set(real[90]["by_stage"]) <= {"technical_promotion", "relationship", "partner", "solution", "bidding"}


def test_outcomes_with_a_bad_row_are_refused_naming_it(tmp_path):
    bad = tmp_path / "closed.csv"
    bad.write_text("id,outcome,closed_at\nP-1,won,2026-12-01\nP-2,maybe,2026-12-01\n")
    res = CliRunner().invoke(main, ["outcomes", str(bad), "--store", str(tmp_path / "h.duckdb")])
    assert res.exit_code == ExitCode.USAGE and "row 2" in res.stderr and "P-2" in res.stderr
    assert not (tmp_path / "h.duckdb").exists()


@pytest.mark.skipif(not (CHROMIUM := __import__("pathlib").Path("/usr/bin/chromium")).exists(),
                    reason="needs /usr/bin/chromium to render the page")
def test_the_monitor_page_renders_in_headless_chromium(tmp_path, scoring_parts, records):
    store_url = str(tmp_path / "history.duckdb")
    two_nights(tmp_path, store_url, scoring_parts, records)
    out = tmp_path / "monitor.html"
    res = CliRunner().invoke(main, ["monitor", "--store", store_url, "--out", str(out)])
    assert res.exit_code == 0 and out.is_file()
    page = out.read_text()
    assert page.count("data:image/png;base64,") >= 2 and "Realized performance" in page
    shot, profile = tmp_path / "monitor.png", tmp_path / "profile"
    profile.mkdir()
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1100,2000",
                    out.resolve().as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and shot.stat().st_size > 20_000


def test_stored_snapshots_of_closed_deals_rebuild_the_models_evidence(tmp_path, store_url, scoring_parts):
    pack, model = scoring_parts
    store = Store(store_url)
    for day in ("2026-10-01", "2026-11-01"):
        run_batch(SAMPLE, tmp_path / "s.jsonl", pack=pack, model=model, as_of=day, store=store, workers=1)
    closed = tmp_path / "closed.csv"
    ids = [json.loads(x)["id"] for x in SAMPLE.read_text().splitlines()[:40]]
    closed.write_text("id,outcome,closed_at\n" + "".join(f"{d},won,2026-10-15\n" for d in ids))
    assert CliRunner().invoke(main, ["outcomes", str(closed), "--store", store_url]).exit_code == 0
    snaps = store.training_snapshots(pack.version_tag)
    assert len(snaps) == 40 and set(snaps["as_of"]) == {"2026-10-01"}  # the run after the close is left out
    assert store.training_snapshots("another@0.0.0").empty
    from scoring.store.changes import status_codes

    import pyarrow as pa

    status = status_codes(pa.array(snaps["status"].tolist()), len(pack.rules))
    measures = np.array([[np.nan if v is None else v for v in row] for row in snaps["measures"]], dtype=float)
    logit = logit_of(model.intercept, rule_contributions(model, status, snaps["stage"].tolist(), measures))
    stored = store.query("SELECT deal_id, logit FROM deal_scores d JOIN runs r ON r.run_id = d.run_id "
                         "WHERE r.as_of = ?", ["2026-10-01"]).set_index("deal_id")["logit"]
    np.testing.assert_allclose(logit, stored.reindex(snaps["deal_id"]).to_numpy(), atol=1e-12)


def test_a_failed_run_appends_nothing_to_the_store(tmp_path, store_url, records):
    bad = [dict(r, stage="nowhere") if i % 2 else r for i, r in enumerate(records)]  # half rejected
    out = tmp_path / "scores.jsonl"
    res = score_cli(write_jsonl(tmp_path / "in.jsonl", bad), "--out", out, "--store", store_url, "--as-of", DAY1)
    assert res.exit_code == ExitCode.REJECTED_SHARE and not out.exists()
    assert Store(store_url).runs().empty


def test_an_earlier_run_of_another_pack_is_lined_up_on_tonights_rules_and_measures():
    """A rule (or measure) the earlier run did not have is marked missing there (-1, NaN): tonight's
    status stands in for it, so its arrival is part of the model/pack change."""
    import pyarrow as pa

    from scoring.store.nightly import _Reference

    rows = pa.table({"deal_id": ["d1", "d2", "d1"], "status": ["10", "21", "01"], "stage": ["partner"] * 3,
                     "logit": [0.1, 0.2, 0.3], "measures": [[1.0, 2.0], [3.0, None], [5.0, 6.0]]})
    run = {"rules": ["A", "B"], "measures": ["m1", "m2"], "model_version": "x", "rule_pack_version": "p"}
    ref = _Reference(run, rows, ["B", "C"], ["m2", "m3"])
    assert list(ref.index) == ["d2", "d1"]  # a deal twice in a run: its last row
    assert ref.status.tolist() == [[1, -1], [1, -1]]
    np.testing.assert_array_equal(ref.measures, [[np.nan, np.nan], [6.0, np.nan]])
