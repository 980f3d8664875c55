"""Test history with thresholds, saturation and stage-dependent effects.

The true log-odds is built from the measures of
:func:`benchmarks.histories.world.measures` with the shapes the course
describes rather than straight lines:

* net support of key people (weighted by influence) saturates: ``1.3 tanh(net / 2.5)``;
* the decision maker's stance is a ladder with uneven rungs (opponent -1.2,
  non-supporter -0.6, acknowledger 0, sympathizer +0.2, supporter +0.7, ally
  +1.0; none known among the contacts -0.3);
* close-date slips: none 0, one -0.2, two -0.9, three or more -1.4;
* days in the current stage: up to 60 nothing, 60-120 -0.5, over 120 -1.0;
* any unaccompanied site visit -0.8 (one is enough: L6);
* one-on-ones per key person saturate (``0.8 (1 - exp(-x / 1.5)) - 0.3``),
  only group events -0.6 (L4);
* people who know the final price, in bidding only: one 0, two or three -1.0,
  four or more -1.5 (L8);
* bidding preparations done, in bidding only: +0.25 each up to four, then flat;
* specification items, from the solution stage on: +0.35 each (the tender
  leaning to us counts double in bidding), the customer preferring a rival's
  counter-proposal -0.8;
* a coach +0.9 in the first three stages, +0.4 later; a key person speaking
  for us +0.6 from the partner stage on, +0.2 before;
* the decision maker's signal with its direction: explicit x (+0.8 for us /
  -1.0 against), implicit half that;
* a strong incumbent rival -0.9, a weaker one -0.3; a key person tied to a
  rival -1.0, another contact -0.3;
* partners, from the partner stage on: negative -0.8, positive +0.4;
* product issues without a plan: -0.6 in solution or bidding, -0.2 before.

The hidden deal term has standard deviation 0.6.  Seeds default to 202.
"""
from __future__ import annotations

import numpy as np

from benchmarks.histories.world import Habits, History, simulate as _simulate

NAME = "shaped"
DEFAULT_SEED = 202
INTERCEPT = -1.85
HABITS = Habits(closed_stage_mix=(0.2, 0.15, 0.15, 0.22, 0.28), open_stage_mix=(0.3, 0.25, 0.2, 0.13, 0.12),
                record_base=1.0, record_per_stage=0.6, bad_news_penalty=1.0, diligence_sd=1.0,
                hidden_sd=0.6, as_of="2026-10-31")


def logit(m: dict) -> np.ndarray:
    """The visible part of the true log-odds: thresholds, saturation, stage dependence."""
    s = m["stage"]
    bidding, late, mid = s == 4, s >= 3, s >= 2
    ladder = np.array([-1.2, -0.6, 0.0, 0.2, 0.7, 1.0, -0.3])  # index -1: no decision maker known
    x = 1.3 * np.tanh(m["net_support"] / 2.5) + ladder[m["dm_stance"]]
    x += np.array([0.0, -0.2, -0.9, -1.4])[np.minimum(m["slips"], 3)]
    x += np.where(m["days_in_stage"] > 120, -1.0, np.where(m["days_in_stage"] > 60, -0.5, 0.0))
    x += -0.8 * (m["unaccompanied"] > 0)
    x += 0.8 * (1 - np.exp(-m["one_on_ones_per_key"] / 1.5)) - 0.3 - 0.6 * m["group_only"]
    pp = m["price_people"]
    x += bidding * np.where(pp >= 4, -1.5, np.where(pp >= 2, -1.0, 0.0))
    x += bidding * 0.25 * np.minimum(m["bid_prep"], 4)
    x += late * (0.35 * m["spec_good"] - 0.8 * m["prefers_rival"])
    x += np.where(late, 0.4, 0.9) * m["coach"] + np.where(mid, 0.6, 0.2) * m["key_speaks"]
    x += np.array([0.0, 0.5, 1.0])[m["dm_signal"]] * np.where(m["dm_direction"] > 0, 0.8,
                                                             np.where(m["dm_direction"] < 0, -1.0, 0.0))
    x += np.where(m["strong_incumbent"], -0.9, np.where(m["incumbent"], -0.3, 0.0))
    x += np.where(m["key_tie"], -1.0, np.where(m["tie"], -0.3, 0.0))
    x += mid * (0.4 * m["partner_positive"] - 0.8 * m["partner_negative"])
    x += np.where(late, -0.6, -0.2) * m["issue_unplanned"]
    x += np.array([-0.4, -0.2, 0.0, 0.1, 0.2])[s]
    return x


def simulate(n_closed: int = 20_000, n_open: int = 5_000, seed: int = DEFAULT_SEED) -> History:
    return _simulate(NAME, logit, n_closed, n_open, seed, HABITS, INTERCEPT)
