"""Training on the score store's snapshots (``train_from_store``, ``scoring train --store``).

A small store is built the way production builds it: ``scoring score`` (run_batch) over four weekly
nights of the sample pipeline (datasets/nextday.py moves it on), then outcomes recorded for most
deals (``won`` for the deals the default model liked most, some ``no_decision``, some still open,
a few closed before the first night).  Tests taking ``store_url`` run on DuckDB and PostgreSQL.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import ROOT
from test_store import store_url  # noqa: F401  (the same two back ends as the store's tests)
from scoring.batch.run import run_batch
from scoring.cli import main
from scoring.errors import ExitCode, ModelError
from scoring.evidence.pack import load_pack
from scoring.model.inputs import record_evidence
from scoring.model.registry import resolve_scoring
from scoring.model.from_store import snapshot_history, train_from_store
from scoring.model.train import prepare_history, train
from scoring.store import Store

import dealscore_datasets.nextday as nextday

SAMPLE = ROOT / "datasets" / "sample" / "pipeline.jsonl"
#: four weekly nights: 2026-11-25, 12-02, 12-09, 12-16
NIGHTS, DAYS_APART = 4, 7
#: the sample has 300 deals: fewer than 40 of each class in the training part is refused by default
MIN_PER_CLASS = 20


@pytest.fixture(scope="module")
def scoring_parts():
    engine, model, _ = resolve_scoring(None, None, use_model=True)
    return engine.pack, model


def _u(text: str) -> float:
    """A reproducible uniform number of ``text``."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2 ** 32


def score_nights(tmp_path, store_url, pack, model, nights=NIGHTS):
    """Score the pipeline ``nights`` times a week apart into the store; returns each night's records."""
    day = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for k in range(nights):
        if k:
            day = nextday.next_day(day, days=DAYS_APART, seed=k)
        path = tmp_path / f"night{k}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in day), encoding="utf-8")
        run_batch(path, tmp_path / f"scores{k}.jsonl", pack=pack, model=model, as_of=day[0]["as_of"],
                  store=Store(store_url), workers=1)
        out.append(day)
    return out


def outcomes_of(tmp_path) -> dict[str, tuple[str, str]]:
    """deal id -> (outcome, closed_at): won for the 35% the first night's model liked most, every 15th
    other deal no_decision, every 25th deal closed on the first night (all its snapshots after the
    close), the others closed over the five weeks after it; every 10th deal is still open (left out)."""
    p = pd.read_json(tmp_path / "scores0.jsonl", lines=True).set_index("id")["win_probability"]
    cut = p.quantile(0.65)
    out = {}
    for i, (d, q) in enumerate(p.items()):
        if i % 10 == 9:
            continue
        outcome = "won" if q > cut else "no_decision" if i % 15 == 0 else "lost"
        closed = _dt.date(2026, 11, 25) + _dt.timedelta(days=0 if i % 25 == 0 else 2 + int(_u(d) * 35))
        out[d] = (outcome, closed.isoformat())
    return out


def record_outcomes(store_url, outcomes) -> None:
    Store(store_url).record_outcomes(pd.DataFrame([(d, o, c) for d, (o, c) in outcomes.items()],
                                                  columns=["deal_id", "outcome", "closed_at"]))


@pytest.fixture
def built(tmp_path, store_url, scoring_parts):
    """A store of four nights with outcomes; returns (url, nights' records, outcomes)."""
    pack, model = scoring_parts
    nights = score_nights(tmp_path, store_url, pack, model)
    outcomes = outcomes_of(tmp_path)
    record_outcomes(store_url, outcomes)
    return store_url, nights, outcomes


def as_history(nights, outcomes) -> list[dict]:
    """The same snapshots as files: every night's records, with the outcome of the closed deals."""
    return [dict(r, outcome=outcomes[r["id"]][0], closed_at=outcomes[r["id"]][1]) if r["id"] in outcomes else r
            for night in nights for r in night]


def numbers(obj, path="spec"):
    """The numbers of a nested spec, by their path (to compare two fits)."""
    if isinstance(obj, dict):
        return {k: v for key in sorted(obj) for k, v in numbers(obj[key], f"{path}.{key}").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, x in enumerate(obj) for k, v in numbers(x, f"{path}[{i}]").items()}
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return {path: float(obj)}
    return {path: obj}


# --------------------------------------------------------------------------- the history from the store


def test_a_model_trained_on_the_store_equals_one_trained_on_the_same_snapshots_from_files(built, scoring_parts):
    url, nights, outcomes = built
    pack, _ = scoring_parts
    history = as_history(nights, outcomes)
    # the evidence read back from the store is the evidence the rules find in the records
    h_files = prepare_history(history, pack)
    ev_files = record_evidence(pack, h_files.records)
    h_store, ev_store = snapshot_history(Store(url).training_snapshots(pack.version_tag, every=True), pack)
    np.testing.assert_array_equal(ev_store.status, ev_files.status)
    np.testing.assert_array_equal(ev_store.measures, ev_files.measures)
    assert ev_store.stages == ev_files.stages and list(h_store.deal) == list(h_files.deal)
    np.testing.assert_array_equal(h_store.weight, h_files.weight)

    s = train_from_store(url, rules=pack, min_per_class=MIN_PER_CLASS)
    f = train(history, rules=pack, min_per_class=MIN_PER_CLASS, challenger=False)
    assert (s.train_ids, s.test_ids) == (f.train_ids, f.test_ids)
    assert {k: v for k, v in s.counts.items() if k != "input"} == {k: v for k, v in f.counts.items() if k != "input"}
    assert s.counts["input"] == {**f.counts["input"], "runs": NIGHTS}
    assert s.counts["drops"]["no_outcome"] > 0 and s.counts["drops"]["after_close"] > 0
    a, b = numbers(s.model.to_spec()), numbers(f.model.to_spec())
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], float):
            assert abs(a[k] - b[k]) <= 1e-9, k
        else:
            assert a[k] == b[k], k
    assert s.source == {"kind": "store", "store": Store(url).backend.describe(), "runs": NIGHTS,
                        "snapshots": NIGHTS * 300}


def test_snapshots_on_or_after_the_close_are_counted_and_not_used(built, scoring_parts):
    url, nights, outcomes = built
    pack, _ = scoring_parts
    s = train_from_store(url, rules=pack, min_per_class=MIN_PER_CLASS)
    after = sum(1 for night in nights for r in night if r["id"] in outcomes and r["as_of"] >= outcomes[r["id"]][1])
    open_ = sum(1 for night in nights for r in night if r["id"] not in outcomes)
    assert s.counts["drops"]["after_close"] == after > 0
    assert s.counts["kept"]["snapshots"] == NIGHTS * 300 - after - open_
    closed_first_night = {d for d, (_, c) in outcomes.items() if c == nights[0][0]["as_of"]}
    assert closed_first_night and not closed_first_night & set(s.train_ids + s.test_ids)


def other_version(tmp_path):
    """The default pack under another version (1.0.1): another ``version_tag``, same rules."""
    folder = tmp_path / "rules-1.0.1"
    shutil.copytree(ROOT / "rules" / "default", folder)
    pack_file = folder / "pack.yaml"
    pack_file.write_text(pack_file.read_text().replace('version: "1.0.0"', 'version: "1.0.1"'))
    pack = load_pack(folder)
    assert pack.version_tag.startswith("default@1.0.1+")
    return pack


def test_runs_of_another_pack_version_are_left_out(tmp_path, scoring_parts):
    pack, model = scoring_parts
    url = str(tmp_path / "history.duckdb")
    score_nights(tmp_path, url, pack, model)
    night = nextday.next_day([json.loads(x) for x in (tmp_path / "night3.jsonl").read_text().splitlines()], days=7)
    (tmp_path / "night4.jsonl").write_text("".join(json.dumps(r) + "\n" for r in night))
    run_batch(tmp_path / "night4.jsonl", tmp_path / "s.jsonl", pack=other_version(tmp_path), model=None,
              as_of=night[0]["as_of"], store=Store(url), workers=1)
    record_outcomes(url, outcomes_of(tmp_path))
    assert len(Store(url).runs()) == NIGHTS + 1
    s = train_from_store(url, rules=pack, min_per_class=MIN_PER_CLASS)
    assert s.source["runs"] == NIGHTS and s.counts["input"]["snapshots"] == NIGHTS * 300


def test_a_store_with_runs_of_other_pack_versions_only_is_refused_naming_them(tmp_path, scoring_parts):
    pack, _ = scoring_parts
    url = str(tmp_path / "history.duckdb")
    other = other_version(tmp_path)
    score_nights(tmp_path, url, other, None, nights=2)
    record_outcomes(url, outcomes_of(tmp_path))
    with pytest.raises(ModelError) as err:
        train_from_store(url, rules=pack)
    assert pack.version_tag in str(err.value) and f"{other.version_tag} (600 snapshots)" in str(err.value)


def test_a_stored_run_whose_rules_are_not_the_packs_is_refused_naming_it(tmp_path, scoring_parts):
    pack, model = scoring_parts
    url = str(tmp_path / "history.duckdb")
    score_nights(tmp_path, url, pack, model, nights=2)
    store = Store(url)
    run = store.runs().iloc[1]
    rules = json.dumps(list(reversed(run["rules"])))
    with store.backend.connect(write=True) as con:
        store.backend.execute(con, "UPDATE runs SET rules = ? WHERE run_id = ?", [rules, run["run_id"]])
    with pytest.raises(ModelError, match=f"run {run['run_id']}"):
        train_from_store(url, rules=pack)


def test_derived_facts_cannot_be_trained_from_the_store(tmp_path, scoring_parts):
    with pytest.raises(ModelError, match="derived"):
        train_from_store(str(tmp_path / "history.duckdb"), rules=scoring_parts[0], derived=True)


# --------------------------------------------------------------------------- the command


def test_scoring_train_store_writes_a_model_that_scores_and_reports(tmp_path, scoring_parts):
    url = str(tmp_path / "history.duckdb")
    pack, model = scoring_parts
    score_nights(tmp_path, url, pack, model)
    record_outcomes(url, outcomes_of(tmp_path))
    res = CliRunner().invoke(main, ["train", "--store", url, "--out", str(tmp_path / "m"),
                                    "--min-per-class", str(MIN_PER_CLASS)])
    assert res.exit_code == 0, res.output
    assert f"from {NIGHTS} runs in the store {url}" in res.stdout and "challenger: not fitted" in res.stdout
    source = json.loads((tmp_path / "m" / "manifest.json").read_text())["training"]["source"]
    assert source == {"kind": "store", "store": url, "runs": NIGHTS, "snapshots": NIGHTS * 300}
    scored = CliRunner().invoke(main, ["score", str(SAMPLE), "--model", str(tmp_path / "m"), "--no-store",
                                       "--out", str(tmp_path / "scores.jsonl")])
    assert scored.exit_code == 0, scored.output
    assert pd.read_json(tmp_path / "scores.jsonl", lines=True)["win_probability"].between(0, 1).all()
    rep = CliRunner().invoke(main, ["report", str(tmp_path / "m"), "--out", str(tmp_path / "r.html")])
    assert rep.exit_code == 0, rep.output
    assert "No challenger was fitted" in (tmp_path / "r.html").read_text()


def test_scoring_train_with_history_and_store_is_a_usage_error(tmp_path):
    res = CliRunner().invoke(main, ["train", str(ROOT / "datasets" / "sample" / "history.jsonl"),
                                    "--store", str(tmp_path / "history.duckdb"), "--out", str(tmp_path / "m")])
    assert res.exit_code == ExitCode.USAGE == 2 and "exactly one" in res.stderr and not (tmp_path / "m").exists()


@pytest.mark.parametrize("url", ["postgresql://nobody:secret@127.0.0.1:1/nowhere", "{tmp}/none-yet.duckdb"],
                         ids=["server-down", "no-store-yet"])
def test_scoring_train_with_a_store_that_cannot_be_used_is_one_line_and_exit_6(tmp_path, url):
    res = CliRunner().invoke(main, ["train", "--store", url.format(tmp=tmp_path), "--out", str(tmp_path / "m")])
    assert res.exit_code == ExitCode.STORE == 6
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: store") and "secret" not in res.stderr
    assert not (tmp_path / "m").exists()
