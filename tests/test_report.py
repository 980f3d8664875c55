"""The model report: one self-contained HTML page (scoring.model.report)."""
from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from scoring.model import artifact as A
from scoring.model import report as R
from scoring.model.metrics import baseline_verdict
from scoring.model.report_page import render_html
from scoring.model.report_text import verdict_sentence
from scoring import paths
from scoring.errors import ModelError

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def hist(dirty_history):
    return dirty_history


@pytest.fixture(scope="module")
def model_dir(good_result, tmp_path_factory):
    """The session's model trained on :func:`hist` with the default pack (conftest's ``good_result``)."""
    return A.save_model(good_result, tmp_path_factory.mktemp("models") / "m1")


@pytest.fixture(scope="module")
def manifest(model_dir):
    return json.loads((model_dir / "manifest.json").read_text())


@pytest.fixture(scope="module")
def page(model_dir, hist, tmp_path_factory):
    out = R.build_report(model_dir, history=hist, out=tmp_path_factory.mktemp("report") / "report.html")
    return out.read_text(encoding="utf-8")


def section(page: str, table_id: str) -> str:
    m = re.search(rf'<table id="{table_id}"[^>]*>(.*?)</table>', page, re.S)
    assert m, f"no table {table_id}"
    return m.group(1)


# --------------------------------------------------------------------------- self-contained
def test_report_is_self_contained(page):
    assert 'src="http' not in page and "src='http" not in page
    assert "<link" not in page and "<script" not in page and "url(" not in page
    imgs = re.findall(r"<img\b[^>]*>", page)
    assert len(imgs) == 4  # reliability, ROC, two histograms
    for tag in imgs:
        src = re.search(r'src="([^"]*)"', tag).group(1)
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")


def test_report_lists_every_rule_of_the_pack_with_its_title(page, model_dir):
    pack = A.load_model(model_dir).pack
    rules = section(page, "rules")
    coefs = section(page, "coefficients")
    for r in pack.rules:
        assert f"<td>{r.id}</td>" in rules and f"<td>{r.id}</td>" in coefs
        assert r.text("title", "en") in html.unescape(rules)


def test_report_header_names_model_pack_and_data(page, manifest):
    for value in (manifest["model_id"], manifest["rule_pack"]["version_tag"], manifest["rule_pack"]["fingerprint"],
                  manifest["training"]["data_fingerprint"], manifest["created_at"]):
        assert value in page
    test = manifest["training"]["counts"]["test"]
    assert f'<td class="n">{test["deals"]}</td><td class="n">{test["won"]}</td><td class="n">{test["lost"]}</td>' in page


def test_report_shows_the_metrics_of_the_model_and_both_baselines(page, manifest):
    table = section(page, "metrics")
    for who in ("model", "base_rate", "rule_score"):
        for key in ("roc_auc", "log_loss", "brier", "ece"):
            assert f"{manifest['metrics'][who][key]:.4f}" in table, (who, key)


def test_verdict_sentence_reflects_the_numbers(page, manifest):
    m = manifest["metrics"]
    ll, b, r = m["model"]["log_loss"], m["base_rate"]["log_loss"], m["rule_score"]["log_loss"]
    expected = {(True, True): "both", (True, False): "base_rate", (False, True): "rule_score",
                (False, False): "neither"}[(ll < b, ll < r)]
    verdict = re.search(r'<p class="verdict [^"]*" id="verdict" data-beats="([^"]*)">(.*?)</p>', page, re.S)
    assert verdict.group(1) == expected
    assert f"{ll:.4f}" in verdict.group(2) and f"{b:.4f}" in verdict.group(2) and f"{r:.4f}" in verdict.group(2)
    assert ("beats both baselines" in verdict.group(2)) == (expected == "both")


def test_verdict_follows_the_manifest_when_the_model_loses(model_dir, hist, tmp_path):
    worse = tmp_path / "worse"
    shutil.copytree(model_dir, worse)
    mf = json.loads((worse / "manifest.json").read_text())
    mf["metrics"]["model"]["log_loss"] = mf["metrics"]["base_rate"]["log_loss"] + 0.01  # the manifest is not checksummed
    (worse / "manifest.json").write_text(json.dumps(mf))
    page = R.build_report(worse, history=hist, out=tmp_path / "r.html").read_text(encoding="utf-8")
    expected = "rule_score" if mf["metrics"]["model"]["log_loss"] < mf["metrics"]["rule_score"]["log_loss"] else "neither"
    assert f'data-beats="{expected}"' in page
    assert "beats both baselines" not in page


@pytest.mark.parametrize("model, base, rule, expected", [
    (0.40, 0.50, 0.45, "both"), (0.46, 0.50, 0.45, "base_rate"), (0.46, 0.45, 0.50, "rule_score"),
    (0.55, 0.50, 0.45, "neither"), (0.50, 0.50, 0.45, "neither"), (None, 0.5, 0.45, "unknown")])
def test_baseline_verdict_needs_a_strictly_lower_log_loss(model, base, rule, expected):
    metrics = {"model": {"log_loss": model}, "base_rate": {"log_loss": base}, "rule_score": {"log_loss": rule}}
    assert baseline_verdict(metrics) == expected
    sentence = verdict_sentence(metrics)
    assert ("beats both" in sentence) == (expected == "both")
    if model is not None:
        assert f"{model:.4f}" in sentence


# --------------------------------------------------------------------------- the data behind the page
@pytest.fixture(scope="module")
def data(model_dir, hist):
    return R.report_data(A.load_model(model_dir), hist)


def test_curves_use_the_model_s_test_deals_and_match_the_manifest(data, manifest):
    ho = data["held_out"]
    test = manifest["training"]["counts"]["test"]
    assert not ho["fallback"]
    assert (ho["deals"], ho["snapshots"], ho["won"], ho["lost"]) == (test["deals"], test["snapshots"], test["won"],
                                                                    test["lost"])
    for who in ("model", "rule_score"):
        assert ho["metrics"][who]["log_loss"] == pytest.approx(manifest["metrics"][who]["log_loss"], abs=1e-9)


def test_rule_statistics_are_deal_weighted_rates_at_the_deal_s_stage(model_dir):
    model = A.load_model(model_dir)
    rng = np.random.default_rng(0)
    n = 400
    stages = list(rng.choice(["technical_promotion", "relationship", "partner", "solution", "bidding"], n))
    status = rng.integers(0, 3, size=(n, len(model.pack.rules))).astype(np.int8)
    y = rng.integers(0, 2, n)
    w = rng.choice([1.0, 0.5], n)
    deal = np.array([f"D{i // 2}" for i in range(n)], dtype=object)
    stats = R.rule_statistics(model, status, stages, y, w, deal).set_index("rule")
    for j, rule in enumerate(model.pack.rules):
        applies = np.array([rule.applies_at(s) for s in stages])
        met = (status[:, j] == 1) & applies
        row = stats.loc[rule.id]
        assert row.fire_rate == pytest.approx(w[met].sum() / w.sum())
        assert row.win_rate_fired == pytest.approx(np.average(y[met], weights=w[met]))
        nm = applies & ~met
        assert row.win_rate_not_fired == pytest.approx(np.average(y[nm], weights=w[nm]))
        assert row.deals_fired == len(set(deal[met]))


def test_coefficient_table_puts_the_biggest_disagreements_first(data):
    met = data["coefficients"]["met"]
    gaps = np.abs(met["gap"].to_numpy())
    assert (np.diff(gaps) <= 1e-12).all()
    k = data["coefficients"]["k"]
    assert np.allclose(met["gap"], met["learned_points"] - k * met["expert_points"])
    opposite = met[met["sign"] == "opposite"]
    assert (np.sign(opposite["expert_points"]) != np.sign(opposite["learned_points"])).all()


def test_rule_statistics_can_use_the_held_out_part(model_dir, hist, manifest, tmp_path):
    page = R.build_report(model_dir, history=hist, out=tmp_path / "r.html", rule_stats="test").read_text("utf-8")
    test = manifest["training"]["counts"]["test"]
    assert f"On the {test['snapshots']} held-out snapshots ({test['deals']} deals) only." in page


def test_the_page_says_the_rule_table_is_on_all_history(page, data):
    c = data["rule_stats_counts"]
    assert f"On all {c['snapshots']} snapshots of the history" in page


# --------------------------------------------------------------------------- text
def test_every_text_is_escaped(data):
    data = dict(data)
    data["rules"] = data["rules"].copy()
    data["rules"].loc[0, "title"] = '<script>alert("x")</script> & co'
    page = render_html(data, {}, history_desc="<history>")
    assert "<script>" not in page and "<history>" not in page
    cells = re.findall(r'<td class="t">([^<]*)</td>', section(page, "rules"))
    assert html.unescape(cells[0]) == '<script>alert("x")</script> & co'
    assert '"x"' not in cells[0]
    assert "<code>&lt;history&gt;</code>" in page


def test_chinese_report_uses_the_pack_s_chinese_titles(model_dir, hist, tmp_path):
    page = R.build_report(model_dir, history=hist, out=tmp_path / "zh.html", lang="zh").read_text("utf-8")
    pack = A.load_model(model_dir).pack
    assert '<html lang="zh">' in page and "赢单概率模型报告" in page
    for r in pack.rules:
        assert r.text("title", "zh") in html.unescape(page)


def test_an_unknown_language_is_refused(model_dir, tmp_path):
    with pytest.raises(ModelError, match="lang must be one of en, zh"):
        R.build_report(model_dir, out=tmp_path / "r.html", lang="fr")


def test_the_report_is_never_written_into_the_artifact(model_dir, hist):
    with pytest.raises(ModelError, match="outside the model folder"):
        R.build_report(model_dir, history=hist, out=model_dir / "report.html")
    A.verify_artifact(model_dir)  # still intact


def test_default_output_is_outside_the_artifact(model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("SCORING_HOME", str(tmp_path))
    assert paths.default_report("m1") == tmp_path / "out" / "report-m1.html"


def test_importing_the_library_does_not_import_matplotlib():
    code = ("import sys, scoring.model.report, scoring.model, scoring.model.artifact, scoring.model.train; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- rendering
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package) to render the page")
def test_the_report_renders_in_headless_chromium(model_dir, hist, tmp_path):
    out = R.build_report(model_dir, history=hist, out=tmp_path / "report.html")
    shot = tmp_path / "report.png"
    profile = tmp_path / "profile"
    profile.mkdir()
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2000",
                    out.resolve().as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few KB


# --------------------------------------------------------------------------- scorecard, challenger, signs
def test_report_leads_with_the_points_table(page):
    assert page.index('<table id="points"') < page.index('<table id="metrics"')
    assert "Baseline (intercept)" in section(page, "points")


def test_points_table_rows_sum_with_the_intercept_to_each_deal_s_logit(model_dir, hist):
    from scoring.contract.nested import validate_record

    model = A.load_model(model_dir)
    recs = [validate_record(r, model.pack.schema) for r in hist[:30]]
    table = model.points_table()
    contrib = model.contributions(recs)
    for (_, row), z in zip(contrib.iterrows(), model.logit(recs)):
        assert row.sum() + table.loc[table["evidence"] == "intercept", "log_odds"].item() == pytest.approx(z)


def test_report_says_what_each_metric_means_in_one_sentence(page):
    items = re.findall(r"<li>(.*?)</li>", re.search(r'<ul id="metric-help">(.*?)</ul>', page, re.S).group(1), re.S)
    assert [i.split(":")[0] for i in items] == ["ROC AUC", "Log loss", "Brier score", "Calibration error (ECE)"]


def test_report_sets_the_scorecard_against_the_challenger_and_names_unread_fields(page, manifest):
    ch = manifest["challenger"]
    lo, hi = ch["against_scorecard"]["interval"]
    text = html.unescape(re.search(r'<p id="challenger-diff">(.*?)</p>', page, re.S).group(1))
    assert f"{lo:+.4f} .. {hi:+.4f}" in text
    unread = html.unescape(re.search(r'<p id="unread-fields">(.*?)</p>', page, re.S).group(1))
    for name in ch["unread_with_signal"]:
        assert name in unread
    assert "Challenger (gradient boosting)" in section(page, "metrics")


def test_report_states_the_sign_check(page, manifest):
    s = manifest["signs"]
    assert f"constrained {s['log_loss']['constrained']:.4f}, free {s['log_loss']['free']:.4f}" in page
    head = html.unescape(re.search(r'<p id="sign-check">(.*?)</p>', page, re.S).group(1))
    assert ("against the declared direction" in head) == bool(s["contradicts"])
