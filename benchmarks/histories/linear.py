"""Test history with straight-line effects: the true log-odds is a weighted sum of the measures.

Every graded measure of :func:`benchmarks.histories.world.measures` enters
the log-odds linearly (coefficients below), the same at every stage; the
hidden deal term has standard deviation 0.5.  Seeds default to 101 (not the
bundled generator's nor the tests').
"""
from __future__ import annotations

import numpy as np

from benchmarks.histories.world import Habits, History, simulate as _simulate

NAME = "linear"
DEFAULT_SEED = 101
INTERCEPT = -2.2
HABITS = Habits(record_base=1.2, record_per_stage=0.5, bad_news_penalty=0.8, diligence_sd=0.8,
                hidden_sd=0.5, as_of="2026-11-25")


def logit(m: dict) -> np.ndarray:
    """The visible part of the true log-odds: straight lines in each measure."""
    dm = m["dm_stance"]
    return (0.30 * m["net_support"]
            + np.where(dm >= 0, 0.25 * (dm - 2.5), -0.2)       # decision maker's stance, rung by rung
            + 0.6 * m["coach"] + 0.5 * m["key_speaks"] - 0.6 * m["tie"]
            - 0.25 * m["slips"] - 0.006 * m["days_in_stage"]
            - 0.35 * m["unaccompanied"] + 0.15 * m["one_on_ones_per_key"] - 0.4 * m["group_only"]
            - 0.35 * m["price_people"] + 0.12 * m["bid_prep"]
            + 0.2 * m["spec_good"] - 0.5 * m["prefers_rival"]
            + 0.3 * m["dm_signal"] * m["dm_direction"]
            - 0.4 * m["incumbent"] - 0.2 * m["rival_strength"]
            + 0.4 * m["partner_positive"] - 0.5 * m["partner_negative"]
            - 0.5 * m["issue_unplanned"] + 0.08 * m["s1_done"] - 0.15 * m["obstacles"]
            - 0.1 * m["log_amount"] + 0.2 * m["stage"])


def simulate(n_closed: int = 20_000, n_open: int = 5_000, seed: int = DEFAULT_SEED) -> History:
    return _simulate(NAME, logit, n_closed, n_open, seed, HABITS, INTERCEPT)
