"""The synthetic deal generator (datasets/generate.py): reproducible, contract-valid, realistic mixes."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dealscore_datasets import generate as synth
from dealscore_datasets.simulation import day_of, simulate_history
from scoring.contract.schema import CHILD_KEY, CHILD_LISTS, CONTRACT, STAGES
from scoring.contract.nested import validate_record
from scoring.contract.reader import read_records

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the benchmarks' test histories live beside the package, not in it
SAMPLE = ROOT / "datasets" / "sample"


@pytest.fixture(scope="module")
def history():
    return synth.generate_tables(400, seed=11, kind="history")


@pytest.fixture(scope="module")
def pipeline():
    return synth.generate_tables(300, seed=12, kind="pipeline")


def _check_contract(rec: dict, history: bool) -> None:
    """Independent of scoring.contract: types, enums, ranges of one nested record."""
    rid = rec["id"]
    assert isinstance(rid, str) and rec["stage"] in CONTRACT["opportunity"]["stage"].values
    entities = [("opportunity", rec)] + [(lst, row) for lst in CHILD_LISTS for row in rec[lst]]
    for ent, row in entities:
        for name, v in row.items():
            if ent == "opportunity" and name in CHILD_LISTS:
                continue
            f = CONTRACT[ent][name]  # KeyError: a field the contract does not know
            assert v is not None and v != "None", (rid, name)
            if f.type == "bool":
                assert isinstance(v, bool), (rid, name, v)
            elif f.type == "int":
                assert isinstance(v, int) and not isinstance(v, bool) and v >= f.min, (rid, name, v)
            elif f.type == "number":
                assert isinstance(v, (int, float)) and v >= f.min, (rid, name, v)
            elif f.type == "enum":
                assert v in f.values, (rid, name, v)
            elif f.type == "date":
                assert isinstance(v, str) and len(v) == 10 and np.datetime64(v, "D"), (rid, name, v)
            else:
                assert isinstance(v, str) and v, (rid, name, v)
    if "site_visits_accompanied" in rec:
        assert rec["site_visits_accompanied"] <= rec.get("site_visits", -1), rid
    if history:
        assert rec["outcome"] in ("won", "lost", "no_decision") and rec["as_of"] < rec["closed_at"], rid
    else:
        assert "outcome" not in rec and "closed_at" not in rec


def test_same_seed_same_output(tmp_path):
    for kind in ("pipeline", "history"):
        a = synth.generate_tables(150, seed=3, kind=kind)
        b = synth.generate_tables(150, seed=3, kind=kind)
        c = synth.generate_tables(150, seed=4, kind=kind)
        for name in synth.TABLES:
            pd.testing.assert_frame_equal(a[name], b[name])
        assert not a["opportunities"].equals(c["opportunities"])
        synth.write_jsonl(synth.tables_to_records(a), tmp_path / f"{kind}1.jsonl")
        synth.generate(kind, 150, tmp_path / f"{kind}2.jsonl", seed=3)
        assert (tmp_path / f"{kind}1.jsonl").read_bytes() == (tmp_path / f"{kind}2.jsonl").read_bytes()


def test_dtypes_and_real_nulls(pipeline, history):
    for tables in (pipeline, history):
        assert set(tables) == set(synth.TABLES)
        for name, df in tables.items():
            ent = "opportunity" if name == "opportunities" else name
            for col in df.columns:
                if col == CHILD_KEY or (col == "as_of" and ent != "opportunity"):
                    continue
                f = CONTRACT[ent][col]
                dt = df[col].dtype
                expect = {"bool": pd.BooleanDtype(), "int": pd.Int64Dtype(), "number": pd.Float64Dtype()}
                if f.type in expect:
                    assert dt == expect[f.type], (name, col, dt)
                elif f.type == "date":
                    assert pd.api.types.is_datetime64_any_dtype(dt), (name, col, dt)
                else:
                    assert isinstance(dt, pd.StringDtype), (name, col, dt)
                    assert not df[col].isin(["None", "nan", "NA", ""]).any(), (name, col)
        opp = tables["opportunities"]
        assert opp["id"].notna().all() and opp["stage"].notna().all()
        assert opp["tender_leans_to_us"].isna().any() and opp["needs_understood"].notna().any()
        assert {CHILD_KEY} <= set(tables["contacts"].columns)


def test_records_satisfy_contract(pipeline, history, tmp_path):
    for tables, hist in ((pipeline, False), (history, True)):
        recs = synth.tables_to_records(tables)
        assert len(recs) == len(tables["opportunities"])
        for rec in recs:
            _check_contract(rec, hist)
            validate_record(rec, history=hist)  # the project's own validator
        synth.write_jsonl(recs, tmp_path / "x.jsonl")
        res = read_records(tmp_path / "x.jsonl", history=hist)
        assert res.rejects == [] and res.undeclared_fields == {} and len(res.records) == len(recs)


def test_history_snapshots_before_close_and_unique(history):
    opp = history["opportunities"]
    assert (opp["as_of"] < opp["closed_at"]).all()
    assert not opp.duplicated(["id", "as_of"]).any()
    assert opp["outcome"].notna().all()
    per_id = opp.groupby("id").size()
    assert per_id.between(1, 4).all() and per_id.max() > 1
    # later snapshots of a deal never go back a stage and know at least as much
    o = opp.sort_values(["id", "as_of"])
    stage = o["stage"].map(STAGES.index).to_numpy()
    same = (o["id"].to_numpy()[1:] == o["id"].to_numpy()[:-1])
    assert (stage[1:][same] >= stage[:-1][same]).all()
    for col in ("decision_chain_mapped", "tender_leans_to_us", "site_visits"):
        known = o[col].notna().to_numpy()
        assert (known[1:][same] >= known[:-1][same]).all(), col
    assert (opp["created_at"] <= opp["stage_entered_at"]).all()
    assert (opp["stage_entered_at"] <= opp["as_of"]).all()
    assert opp["closed_at"].min() >= pd.Timestamp("2024-09-01")
    assert opp["closed_at"].max() <= pd.Timestamp("2026-10-31")


def test_dirty_spoils_a_few_snapshots():
    opp = synth.generate_tables(2000, seed=5, kind="history", dirty=True)["opportunities"]
    bad = (opp["as_of"] >= opp["closed_at"]).fillna(False) | opp["outcome"].isna() | opp["closed_at"].isna()
    assert 0.005 < bad.mean() < 0.03
    assert not opp.duplicated(["id", "as_of"]).any()


def test_mixes():
    opp = synth.generate_tables(3000, seed=1, kind="history")["opportunities"].drop_duplicates("id")
    rates = opp["outcome"].value_counts(normalize=True)
    assert 0.20 <= rates["won"] <= 0.35
    assert 0.08 <= rates["no_decision"] <= 0.15
    pipe = synth.generate_tables(3000, seed=1)["opportunities"]
    share = pipe["stage"].value_counts(normalize=True)
    assert share["technical_promotion"] > share["relationship"] > share["bidding"]
    assert (pipe["expected_close"] > pipe["as_of"]).mean() > 0.85
    assert pipe["currency"].value_counts().index[0] == "CNY"
    early = pipe["stage"] == "technical_promotion"
    assert pipe.loc[early, "tender_leans_to_us"].isna().mean() > 0.9
    assert 0.5 < pipe.loc[early, "needs_understood"].notna().mean() < 0.9


def test_tables_and_records_carry_the_same_data(history, tmp_path):
    recs = synth.tables_to_records(history)
    contacts = history["contacts"]
    for i in (0, 7, len(recs) // 2, len(recs) - 1):
        rec = recs[i]
        rows = contacts[(contacts[CHILD_KEY] == rec["id"])
                        & (contacts["as_of"] == pd.Timestamp(rec["as_of"]))]
        assert [c["name"] for c in rec["contacts"]] == rows["name"].tolist()
        assert [c.get("is_coach") for c in rec["contacts"]] == [
            None if pd.isna(v) else bool(v) for v in rows["is_coach"]]
    for name in CHILD_LISTS:
        assert sum(len(r[name]) for r in recs) == len(history[name])
    # the written table forms read back (by the project's reader) as the same records
    synth.write_jsonl(recs, tmp_path / "h.jsonl")
    want = read_records(tmp_path / "h.jsonl", history=True).records
    for fmt in ("parquet", "csv"):
        paths = synth.write_tables(history, tmp_path / fmt, fmt)
        assert sorted(p.name for p in paths.values()) == sorted(f"{t}.{fmt}" for t in synth.TABLES)
        res = read_records(tmp_path / fmt, history=True)
        assert res.rejects == [] and res.orphans == []
        assert res.records == want
    text = (tmp_path / "csv" / "opportunities.csv").read_text()
    assert ",true," in text and ",false," in text and "None" not in text


def test_scoring_generate_writes_what_the_library_writes(tmp_path):
    """The command line (``scoring generate``) is the library's ``generate``, options included."""
    from click.testing import CliRunner

    from scoring.cli import main

    args = ["generate", "history", "--deals", "40", "--seed", "5", "--snapshots", "1-2", "--as-of", "2026-06-30"]
    res = CliRunner().invoke(main, args + ["--out", str(tmp_path / "cli.jsonl")])
    assert res.exit_code == 0, res.output
    synth.generate("history", 40, tmp_path / "lib.jsonl", seed=5, snapshots=(1, 2), as_of="2026-06-30")
    assert (tmp_path / "cli.jsonl").read_bytes() == (tmp_path / "lib.jsonl").read_bytes()
    res = CliRunner().invoke(main, ["generate", "pipeline", "--deals", "30", "--seed", "5", "--format", "csv",
                                    "--out", str(tmp_path / "tables")])
    assert res.exit_code == 0, res.output
    assert read_records(tmp_path / "tables").records == read_records(
        synth.write_tables(synth.generate_tables(30, seed=5), tmp_path / "lib_tables", "csv")["opportunities"].parent).records


def test_bundled_sample_is_reproducible(tmp_path):
    """datasets/sample/*.jsonl are, byte for byte, what the commands in datasets/README.md produce."""
    synth.generate("pipeline", 300, tmp_path / "pipeline.jsonl", seed=8, as_of="2026-11-25")
    synth.generate("history", 1200, tmp_path / "history.jsonl", seed=7, snapshots=(1, 3))
    for name in ("pipeline.jsonl", "history.jsonl"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 25), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["pipeline", "history"]),
       snapshots=st.sampled_from([(1, 1), (1, 3), (2, 4)]))
def test_any_size_and_seed_gives_the_same_valid_records(n, seed, kind, snapshots):
    kw = {"snapshots": snapshots} if kind == "history" else {}
    recs = synth.generate_records(n, seed=seed, kind=kind, **kw)
    assert recs == synth.generate_records(n, seed=seed, kind=kind, **kw)
    assert len({r["id"] for r in recs}) == n
    for rec in recs:
        _check_contract(rec, kind == "history")
        validate_record(rec, history=kind == "history")


# ----------------------------------------------------------------- the outcome follows the course's measures
@pytest.fixture(scope="module")
def big_history():
    """Each deal's last snapshot (opportunities and contacts) of 8,000 generated closed deals."""
    t = synth.generate_tables(8000, seed=21, kind="history")
    opp = t["opportunities"].drop_duplicates("id", keep="last").reset_index(drop=True)
    ct = t["contacts"].merge(opp[["id", "as_of"]], left_on=[CHILD_KEY, "as_of"], right_on=["id", "as_of"])
    opp["won"] = (opp["outcome"] == "won").astype(float)
    return opp, ct


def _rate(opp, mask):
    assert mask.sum() >= 80, int(mask.sum())  # enough deals for the comparison to mean something
    return float(opp.loc[mask, "won"].mean())


def test_each_further_close_date_slip_lowers_the_win_rate(big_history):
    opp, _ = big_history
    pushes = opp["close_date_pushes"]
    none, one, several = (_rate(opp, (pushes == 0).fillna(False)), _rate(opp, (pushes == 1).fillna(False)),
                          _rate(opp, (pushes >= 2).fillna(False)))
    assert none > one > several and none - several > 0.08


def test_net_support_of_key_people_raises_the_win_rate(big_history):
    opp, ct = big_history
    key = (ct["role"].isin(["approver", "decision_maker"]) | (ct["influence"] == "high")).fillna(False).to_numpy(bool)
    sign = np.where(ct["stance"].isin(["supporter", "ally"]), 1, np.where(ct["stance"].isin(["opponent", "non_supporter"]), -1, 0))
    net = pd.Series(np.where(key, sign, 0), index=ct.index).groupby(ct["id"]).sum().reindex(opp["id"]).fillna(0).to_numpy()
    against, level, behind = _rate(opp, net <= -1), _rate(opp, net == 0), _rate(opp, net >= 2)
    assert against < level < behind and behind - against > 0.2


def test_the_price_known_to_several_hurts_in_bidding(big_history):
    opp, _ = big_history
    bidding = opp["stage"] == "bidding"
    people = opp["people_knowing_final_price"]
    assert _rate(opp, bidding & (people == 1).fillna(False)) - _rate(opp, bidding & (people >= 2).fillna(False)) > 0.1


def test_an_unaccompanied_site_visit_hurts(big_history):
    opp, _ = big_history
    alone = opp["site_visits"] - opp["site_visits_accompanied"]
    visited = (opp["site_visits"] > 0).fillna(False)
    assert _rate(opp, visited & (alone == 0).fillna(False)) - _rate(opp, visited & (alone >= 1).fillna(False)) > 0.08


def test_long_in_the_last_stage_hurts(big_history):
    opp, _ = big_history
    days = (opp["as_of"] - opp["stage_entered_at"]).dt.days
    assert _rate(opp, days <= 60) - _rate(opp, days > 150) > 0.08


def test_bad_news_is_recorded_less_often_than_good_news():
    """Unknown is not missing at random: a "no" to a checklist item, an opponent's stance are written less often."""
    tables, D = simulate_history(np.random.default_rng(5), 6000, day_of("2026-11-25"), (1, 1), False)
    opp = tables["opportunities"]
    deal = opp["id"].str[2:].astype(int).to_numpy() - 1
    late = (opp["stage"].isin(["partner", "solution"])).to_numpy()
    for item in ("decision_chain_mapped", "contacts_profiled"):
        truth, known = D.truth[item][deal], opp[item].notna().to_numpy()
        assert known[late & truth].mean() - known[late & ~truth].mean() > 0.05, item


# ----------------------------------------------------------------- the benchmark's test histories
@pytest.mark.parametrize("name", ["linear", "shaped"])
def test_benchmark_histories_are_contract_valid_and_reproducible(name):
    from benchmarks.histories import HISTORIES

    h = HISTORIES[name].simulate(80, 40, seed=3)
    again = HISTORIES[name].simulate(80, 40, seed=3)
    assert h.closed == again.closed and h.open == again.open and (h.open_p == again.open_p).all()
    assert h.closed != HISTORIES[name].simulate(80, 40, seed=4).closed
    assert len({(r["id"], r["as_of"]) for r in h.closed}) == len(h.closed)
    assert len({r["id"] for r in h.closed}) == 80 and len({r["id"] for r in h.open}) == 40
    for rec in h.closed:
        _check_contract(rec, True)
        validate_record(rec, history=True)
    for rec in h.open:
        _check_contract(rec, False)
        validate_record(rec)
    assert ((h.open_p > 0) & (h.open_p < 1)).all() and set(np.unique(h.open_won)) <= {0, 1}


@pytest.mark.parametrize("name", ["linear", "shaped"])
def test_benchmark_history_truth_is_calibrated_and_informative(name):
    """The kept probability is the one the outcomes were drawn from: calibrated, and far better than the base rate."""
    from benchmarks.histories import HISTORIES

    h = HISTORIES[name].simulate(200, 4000, seed=9)
    y, p = h.open_won, h.open_p
    assert abs(p.mean() - y.mean()) < 0.025
    ll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    base = -np.mean(y * np.log(y.mean()) + (1 - y) * np.log(1 - y.mean()))
    assert ll < base - 0.15
