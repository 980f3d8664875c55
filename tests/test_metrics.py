"""Probability metrics and calibration tables (scoring.model.metrics), weighted by deal."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss

from scoring.model.metrics import expected_calibration_error, probability_metrics, reliability_table


def test_reliability_table_and_ece_by_hand():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.05, 0.05, 0.95, 0.95])
    w = np.array([1.0, 1.0, 1.0, 1.0])
    rows = reliability_table(y, p, w)
    assert rows[0]["count"] == 2 and rows[0]["observed_rate"] == 0.5 and rows[0]["mean_predicted"] == 0.05
    assert rows[9]["count"] == 2 and rows[5]["mean_predicted"] is None
    assert expected_calibration_error(y, p, w) == pytest.approx(0.45)


def test_weights_count_deals_not_snapshots():
    y = np.array([1, 1, 1, 0])
    p = np.array([0.8, 0.8, 0.8, 0.3])
    w = np.array([1 / 3, 1 / 3, 1 / 3, 1.0])  # one won deal of three snapshots, one lost deal of one
    m = probability_metrics(y, p, w)
    assert m["log_loss"] == pytest.approx((-np.log(0.8) - np.log(0.7)) / 2)
    assert m["brier"] == pytest.approx((0.2 ** 2 + 0.3 ** 2) / 2)
    assert reliability_table(y, p, w)[8]["weight"] == pytest.approx(1.0)


def test_certain_wrong_predictions_give_a_finite_log_loss_and_one_outcome_no_auc():
    m = probability_metrics(np.array([1, 1]), np.array([0.0, 1.0]), np.ones(2))
    assert m["roc_auc"] is None
    assert np.isfinite(m["log_loss"]) and m["log_loss"] == pytest.approx(log_loss([1], [1e-15], labels=[0, 1]) / 2)
