"""The evidence transformer: records -> evidence matrix, as a scikit-learn transformer."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils import estimator_checks as ec

from conftest import SMALL_PACK_RULES
from scoring.model import features as F
from scoring.model.features import EvidenceTransformer
from scoring.contract.nested import validate_record

#: sklearn checks that apply to a transformer whose input is records.  All the
#: other checks of ``check_estimator`` feed numeric 2-D arrays (NaN, sparse,
#: complex, 1 feature, dtypes, read-only memmaps...), which are not records, so
#: they cannot apply: the tag ``input_tags.dict`` (two_d_array False) makes
#: ``check_estimator`` skip them.  The behaviours they stand for on records
#: (fit returns self, pickling, idempotent fit, order and subset invariance,
#: input left unchanged, unfitted error) are tested below with records.
API_CHECKS = [
    "check_estimator_cloneable", "check_estimator_tags_renamed", "check_valid_tag_types",
    "check_estimator_repr", "check_no_attributes_set_in_init", "check_estimators_unfitted",
    "check_do_not_raise_errors_in_init_or_set_params", "check_mixin_order", "check_transformers_unfitted",
    "check_transformer_n_iter", "check_parameters_default_constructible", "check_get_params_invariance",
    "check_set_params",
]



@pytest.fixture
def small_pack(make_pack):
    return make_pack(rules=SMALL_PACK_RULES)


def recs(*raw):
    return [validate_record({"id": f"D{i}", "as_of": "2025-01-01", **r}) for i, r in enumerate(raw)]


def test_features_are_rule_met_unknown_and_stage_indicators(small_pack):
    et = EvidenceTransformer(small_pack).fit()
    assert list(et.get_feature_names_out()) == [
        "R1", "R1__unknown", "R2", "R2__unknown", "F1",
        "stage=relationship", "stage=partner", "stage=solution", "stage=bidding"]
    X = et.transform(recs({"stage": "solution", "needs_understood": True, "tech_presentations": 3,
                           "decision_maker_signal": "none"}))
    assert X.dtype == np.float64
    assert X.tolist() == [[1, 0, 1, 0, 1, 0, 0, 1, 0]]


def test_unknown_gets_its_own_indicator_not_false(small_pack):
    et = EvidenceTransformer(small_pack).fit()
    X = et.transform(recs({"stage": "relationship", "needs_understood": False},
                          {"stage": "relationship"}))
    names = list(et.get_feature_names_out())
    assert X[0, names.index("R1")] == 0 and X[0, names.index("R1__unknown")] == 0  # false: missing
    assert X[1, names.index("R1")] == 0 and X[1, names.index("R1__unknown")] == 1  # unknown


def test_rules_not_applying_at_the_stage_give_zero(small_pack):
    r = recs({"stage": "technical_promotion", "tech_presentations": 5, "decision_maker_signal": "none"})
    names = list(EvidenceTransformer(small_pack).fit().get_feature_names_out())
    X = EvidenceTransformer(small_pack).fit().transform(r)
    assert X[0, names.index("R2")] == 0 and X[0, names.index("F1")] == 0
    X_all = EvidenceTransformer(small_pack, applicable_only=False).fit().transform(r)
    assert X_all[0, names.index("R2")] == 1 and X_all[0, names.index("F1")] == 1


def test_transform_before_fit_raises_not_fitted(small_pack):
    et = EvidenceTransformer(small_pack)
    with pytest.raises(NotFittedError):
        et.transform(recs({"stage": "solution"}))
    with pytest.raises(NotFittedError):
        et.get_feature_names_out()


def test_fit_accepts_a_pack_folder_and_returns_self(small_pack):
    et = EvidenceTransformer(str(small_pack))
    assert et.fit(recs({"stage": "solution"})) is et
    assert et.pack_.name == "test" and et.n_features_in_ == 1


def test_pipeline_with_pandas_output_keeps_the_index(small_pack):
    rows = recs(*[{"stage": s, "needs_understood": b} for s in ("technical_promotion", "solution")
                  for b in (True, False, None)] * 3)
    y = np.array([r["needs_understood"] is True for r in rows], dtype=int)
    X = pd.DataFrame({"record": rows}, index=pd.Index([f"row{i}" for i in range(len(rows))], name="key"))
    pipe = Pipeline([("evidence", EvidenceTransformer(small_pack)), ("model", LogisticRegression())])
    pipe.set_output(transform="pandas")
    pipe.fit(X, y)
    ev = pipe[:-1].transform(X)
    assert isinstance(ev, pd.DataFrame)
    assert ev.index.equals(X.index)
    assert list(ev.columns) == list(pipe[0].get_feature_names_out())
    p = pipe.predict_proba(X)[:, 1]
    assert p[y == 1].min() > p[y == 0].max()
    # a plain list works the same
    assert np.allclose(pipe.predict_proba(rows)[:, 1], p)


def test_transformer_pickles_and_transforms_the_same(small_pack):
    r = recs({"stage": "bidding", "needs_understood": True, "decision_maker_signal": "none"}, {"stage": "partner"})
    et = EvidenceTransformer(small_pack).fit(r)
    et2 = pickle.loads(pickle.dumps(et))
    assert np.array_equal(et2.transform(r), et.transform(r))
    assert np.array_equal(et.transform(r), EvidenceTransformer(small_pack).fit(r).transform(r))  # idempotent fit
    unfitted = pickle.loads(pickle.dumps(EvidenceTransformer(small_pack)))
    with pytest.raises(NotFittedError):
        unfitted.transform(r)


def test_order_and_subset_invariant_and_input_unchanged(small_pack):
    r = recs(*[{"stage": s, "needs_understood": b, "tech_presentations": t}
               for s in ("relationship", "bidding") for b in (True, None) for t in (0, 3, None)])
    before = copy.deepcopy(r)
    et = EvidenceTransformer(small_pack).fit(r)
    X = et.transform(r)
    perm = np.random.default_rng(0).permutation(len(r))
    assert np.array_equal(et.transform([r[i] for i in perm]), X[perm])
    assert np.array_equal(et.transform(r[:3]), X[:3])
    assert r == before


def test_bad_input_is_refused(small_pack):
    et = EvidenceTransformer(small_pack).fit()
    with pytest.raises(ValueError, match="record"):
        et.transform(pd.DataFrame({"a": [1]}))
    with pytest.raises(TypeError, match="record dict"):
        et.transform([1, 2])


@pytest.mark.parametrize("check", API_CHECKS)
def test_sklearn_api_check(check):
    getattr(ec, check)("EvidenceTransformer", EvidenceTransformer())


def test_transform_equals_the_evidence_of_the_durable_rules_engine(small_pack):
    """transform (column-wise) and the reference engine's evaluations give the same matrix."""
    from dealscore_datasets import generate as synth
    from scoring.evidence.durable import Engine
    from scoring.evidence.pack import load_pack

    pack = load_pack(small_pack)
    raw = synth.tables_to_records(synth.generate_tables(60, seed=5, kind="history"))
    r = [validate_record(x, pack.schema) for x in raw]
    et = EvidenceTransformer(pack).fit(r)
    X_col = et.transform(r)
    engine = Engine(pack)
    assert np.array_equal(et.transform_evaluations([engine.evaluate(x) for x in r]), X_col)
    assert X_col[:, :5].sum() > 0
