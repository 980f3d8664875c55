"""The deal world shared by the test histories: what is true of a deal, and what a CRM records of it.

A deal has a hidden **quality** ``q`` (how well the rep controls it, partly
the owner's skill) and a hidden **fit** ``f`` of our solution (correlated
with ``q``).  Everything else is drawn from them:

* the stage of the snapshot (S1..S5), the days spent in it (longer for weak
  deals), the close-date slips (more for weak deals);
* 2-7 contacts: role, influence, stance on the ladder opponent..ally (driven
  by ``q``; approvers more cautious), mind/heart share, a coach (some deals),
  who speaks up for us, ties to a rival;
* the checklist items of the reached stages (true with a probability rising
  with ``q`` or ``f``; items of stages not reached are not there yet);
* activity counts: presentations, discussants, site visits and how many we
  accompanied, one-on-one meetings and group events, visits, obstacles,
  people who know the final price (bidding only);
* 0-3 competitors (an incumbent, strength) and 0-2 partners (the customer's
  attitude to them).

**Recorded or not.**  A field is written with a probability that grows with
the owner's diligence and with how far the deal is past the field's stage;
bad news is written less often than good news (a "no", an opponent's stance,
a rival tie), and a field of a stage not yet reached is never written.  So
unknown is informative but never the same as false.

**Truth.**  :func:`measures` turns the true state (recorded or not; of the
contacts, those the deal has reached by its stage) into the
graded measures of the course (net support of key people weighted by
influence, the decision maker's stance, slips, days in stage, unaccompanied
visits, one-on-ones per key person, people knowing the price, bidding
preparations, the specification items, the decision maker's signal and its
direction, the rival's incumbency and strength, partners' standing).  Each
history's ``logit(measures)`` plus a hidden deal term is the true log-odds;
the outcome is drawn from it.

**Time.**  The closed deals close uniformly over the two years before the
open set's ``as_of``; each is seen as 1-3 snapshots strictly before its
close, the last one holding the state the outcome was drawn from; the
earlier ones see fewer contacts, fewer counts and earlier stages.  The open
deals are one snapshot each at ``as_of``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

STAGES = ("technical_promotion", "relationship", "partner", "solution", "bidding")
ROLES = ("approver", "decision_maker", "evaluator", "advisor", "gatekeeper", "user")
STANCES = ("opponent", "non_supporter", "acknowledger", "sympathizer", "supporter", "ally")
LMH = ("low", "medium", "high")
ATTITUDES = ("negative", "ambiguous", "positive")
SIGNALS = ("none", "implicit", "explicit")
APPROVER, DM = 0, 1
_EPOCH = np.datetime64("1970-01-01", "D")

#: checklist booleans: (field, stage index, driver "q"/"f", a, b): P(true) = sigmoid(a + b * driver)
ITEMS = (
    ("needs_understood", 0, "f", 1.0, 0.8), ("network_status_known", 0, "f", 0.8, 0.6),
    ("decision_chain_mapped", 0, "q", 0.3, 1.0), ("integrators_engaged", 0, "q", 0.5, 0.6),
    ("competitors_analyzed", 0, "q", 0.2, 0.8), ("tailored_solution", 0, "f", 0.3, 1.0),
    ("site_visit_interest", 0, "q", -0.2, 1.0), ("open_product_issues", 0, "f", -1.0, -0.7),
    ("product_issue_plan", 0, "q", 0.0, 1.0),
    ("contacts_profiled", 1, "q", 0.2, 1.0), ("integrator_attitudes_known", 1, "q", 0.0, 0.8),
    ("competitor_relationships_known", 1, "q", -0.3, 1.0), ("relationship_plan_aligned", 1, "q", 0.4, 0.8),
    ("relationship_plan_feasible", 1, "q", 0.6, 0.7), ("key_customer_guiding", 1, "q", -0.5, 1.2),
    ("competitor_counterproposal", 3, "f", 0.2, -0.6), ("customer_prefers_counterproposal", 3, "f", -0.4, -1.2),
    ("spec_drafting_started", 3, "q", 0.8, 0.3), ("spec_has_our_differentiators", 3, "f", -0.1, 1.1),
    ("helped_write_spec", 3, "q", -0.8, 1.2), ("tender_leans_to_us", 3, "f", -0.3, 1.1),
    ("scoring_criteria_known", 3, "q", 0.3, 0.8), ("scoring_criteria_favor_us", 3, "f", -0.2, 1.0),
    ("simulated_config_favorable", 3, "f", 0.1, 1.0),
    ("insider_on_competitors", 4, "q", -0.5, 1.1), ("evaluation_rules_favorable", 4, "q", -0.4, 1.0),
    ("evaluation_panel_known", 4, "q", 0.0, 1.0), ("obstacles_have_bypass", 4, "q", 0.0, 0.9),
    ("commercial_expectation_known", 4, "q", 0.5, 0.8), ("pricing_strategy_ready", 4, "q", 0.7, 0.6),
    ("bottom_line_set", 4, "q", 0.8, 0.5), ("closing_conditions_known", 4, "q", -0.2, 1.0),
)
BID_PREP = ("insider_on_competitors", "evaluation_rules_favorable", "evaluation_panel_known",
            "obstacles_have_bypass", "commercial_expectation_known", "pricing_strategy_ready",
            "bottom_line_set", "closing_conditions_known")
SPEC_GOOD = ("spec_has_our_differentiators", "tender_leans_to_us", "helped_write_spec",
             "scoring_criteria_favor_us", "simulated_config_favorable")
COUNTS = ("tech_presentations", "solution_discussants", "site_visits", "site_visits_accompanied",
          "one_on_one_meetings", "group_events", "customer_visits_90d", "close_date_pushes", "open_obstacles")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def day_of(s: str) -> int:
    return int((np.datetime64(s, "D") - _EPOCH).astype(np.int64))


def date_of(d: int) -> str:
    return str(_EPOCH + np.timedelta64(int(d), "D"))


@dataclass
class Habits:
    """How a history's world differs: stage mixes, recording habits, the hidden term."""

    closed_stage_mix: tuple = (0.16, 0.16, 0.16, 0.24, 0.28)
    open_stage_mix: tuple = (0.32, 0.24, 0.18, 0.14, 0.12)
    record_base: float = 0.9        # log-odds of writing a field at its own stage (average owner)
    record_per_stage: float = 0.5   # more log-odds per stage past the field's stage
    bad_news_penalty: float = 0.8   # fewer log-odds for writing a "no" / an opponent / a tie
    diligence_sd: float = 0.8       # owners differ in how much they write
    hidden_sd: float = 0.9          # the deal term no field shows
    as_of: str = "2026-11-25"


@dataclass
class History:
    """A generated test history: contract records and the truth."""

    name: str
    seed: int
    closed: list[dict]              # snapshots of closed deals, with outcome and closed_at
    open: list[dict]                # one snapshot per open deal, no outcome
    open_won: np.ndarray            # 1 if the open deal is (will be) won
    open_p: np.ndarray              # its true win probability
    closed_p: np.ndarray            # true win probability of each closed deal (at its last snapshot)
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- the true state
class Deals:
    """The true state of ``n`` deals at one snapshot each (their last for closed deals)."""

    def __init__(self, rng: np.random.Generator, n: int, stage_mix, habits: Habits, n_owners: int = 40):
        self.n, self.h = n, habits
        skill = rng.standard_normal(n_owners)
        diligence = habits.diligence_sd * rng.standard_normal(n_owners)
        self.owner = rng.integers(0, n_owners, n)
        q = 0.5 * skill[self.owner] + np.sqrt(0.75) * rng.standard_normal(n)
        f = 0.35 * q + np.sqrt(1 - 0.35 ** 2) * rng.standard_normal(n)
        self.q, self.f = q, f
        self.dil = diligence[self.owner] + 0.3 * q
        self.dil_list = self.dil.tolist()
        self.stage = rng.choice(5, n, p=np.asarray(stage_mix) / np.sum(stage_mix))
        s = self.stage
        self.hidden = rng.standard_normal(n)
        drv = {"q": q, "f": f}
        self.item: dict[str, np.ndarray] = {}
        for name, k, d, a, b in ITEMS:
            self.item[name] = (rng.random(n) < sigmoid(a + b * drv[d])) & (s >= k)
        it = self.item
        it["customer_prefers_counterproposal"] &= it["competitor_counterproposal"]
        it["helped_write_spec"] &= it["spec_drafting_started"]
        it["scoring_criteria_favor_us"] &= it["scoring_criteria_known"]
        it["product_issue_plan"] &= it["open_product_issues"]
        self.dm_signal = np.where(s >= 1, np.searchsorted([-0.2, 0.9], 0.8 * q + rng.standard_normal(n)), 0)
        # time: days in the current stage (weak deals stall), life so far
        self.days_in_stage = np.round(np.exp(np.log(35) + 0.6 * rng.standard_normal(n) - 0.35 * q)).astype(int) + 1
        self.days_before = np.round((s * 45) * np.exp(0.4 * rng.standard_normal(n))).astype(int)
        life = (self.days_in_stage + self.days_before) / 365.0
        c = {}
        c["tech_presentations"] = rng.poisson(1 + 2.5 * sigmoid(f) * (0.5 + np.minimum(s, 2) / 2))
        c["solution_discussants"] = rng.poisson(1 + 3 * sigmoid(f + 0.3 * s - 0.5))
        c["site_visits"] = rng.poisson((0.2 + 0.35 * s) * sigmoid(0.5 + q))
        c["site_visits_accompanied"] = rng.binomial(c["site_visits"], sigmoid(1.2 + 1.0 * q))
        c["group_events"] = rng.poisson(1.0 + 0.6 * s)
        c["one_on_one_meetings"] = np.where(rng.random(n) < sigmoid(-1.2 - 1.0 * q), 0,
                                            rng.poisson((1 + s) * (0.6 + 1.4 * sigmoid(q))))
        c["customer_visits_90d"] = rng.poisson(np.exp(1.2 + 0.35 * q))
        c["close_date_pushes"] = rng.poisson(np.exp(-1.0 - 0.6 * q) * (0.5 + 3 * life))
        c["open_obstacles"] = rng.poisson(np.exp(-0.8 - 0.5 * q))
        self.count = c
        self.price_people = np.where(s == 4, 1 + rng.poisson(np.exp(-0.9 - 0.7 * q)), 0)
        amount = np.exp(np.log(500_000) + 1.1 * rng.standard_normal(n)).clip(10_000, 50_000_000)
        self.amount = np.round(amount / 1000) * 1000
        self.region = rng.integers(0, 5, n)
        self.industry = rng.integers(0, 7, n)
        self.product = rng.integers(0, 5, n)
        self._contacts(rng)
        self._competitors(rng)
        self._partners(rng)

    def _contacts(self, rng):
        n, q, s = self.n, self.q, self.stage
        m = rng.integers(2, 8, n)
        deal = np.repeat(np.arange(n), m)
        j = np.arange(len(deal)) - np.repeat(np.cumsum(m) - m, m)
        M = len(deal)
        role = rng.choice(6, M, p=[0.06, 0.1, 0.34, 0.16, 0.14, 0.2])
        role[(j == 0) & (rng.random(M) < 0.75)] = DM
        role[(j == 1) & (rng.random(M) < 0.5)] = APPROVER
        key = role <= DM
        influence = np.where(key, rng.choice(3, M, p=[0.05, 0.25, 0.7]), rng.choice(3, M, p=[0.4, 0.4, 0.2]))
        qd = q[deal]
        stance = np.searchsorted([-1.3, -0.6, 0.0, 0.5, 1.2],
                                 0.9 * qd - 0.35 * (role == APPROVER) + 0.9 * rng.standard_normal(M))
        has_coach = rng.random(n) < sigmoid(-0.2 + 1.0 * q)
        pick = np.cumsum(m) - m + (rng.random(n) * m).astype(int)
        coach = np.zeros(M, bool)
        coach[pick[has_coach]] = True
        stance[coach] = np.maximum(stance[coach], 4)
        speaks = rng.random(M) < np.where(stance >= 4, sigmoid(0.2 + 0.8 * qd), np.where(stance == 3, 0.1, 0.0))
        ties = (rng.random(M) < sigmoid(-2.6 - 0.6 * qd)) & ~coach
        # early snapshots know fewer people: contact j appears at stage appear[j]
        appear = np.where(j < 2, 0, rng.choice(3, M, p=[0.5, 0.35, 0.15]))
        self.ct = dict(deal=deal, role=role, influence=influence, stance=stance, coach=coach, speaks=speaks,
                       ties=ties, appear=appear, mind=rng.random(M) < np.where(np.isin(stance, (2, 4, 5)), 0.85, 0.2),
                       heart=rng.random(M) < np.where(np.isin(stance, (3, 4, 5)), 0.85, 0.15),
                       accepts=(rng.random(M) < np.where(stance >= 2, 0.85, 0.15)) | coach,
                       u=rng.random((9, M)), start=np.cumsum(m) - m, m=m)

    def _competitors(self, rng):
        n = self.n
        m = rng.choice(4, n, p=[0.12, 0.4, 0.32, 0.16])
        deal = np.repeat(np.arange(n), m)
        j = np.arange(len(deal)) - np.repeat(np.cumsum(m) - m, m)
        M = len(deal)
        incumbent = rng.random(M) < np.where(j == 0, 0.35, 0.04)
        strength = np.searchsorted([-0.6, 0.6], 0.9 * incumbent + rng.standard_normal(M))
        self.cp = dict(deal=deal, incumbent=incumbent, strength=strength,
                       rel_known=rng.random(M) < sigmoid(self.q[deal] - 0.3),
                       has_cp=rng.random(M) < np.where(self.item["competitor_counterproposal"][deal], 0.7, 0.05),
                       u=rng.random((4, M)), start=np.cumsum(m) - m, m=m)

    def _partners(self, rng):
        n = self.n
        m = rng.choice(3, n, p=[0.22, 0.53, 0.25])
        deal = np.repeat(np.arange(n), m)
        M = len(deal)
        qd = self.q[deal]
        self.pt = dict(deal=deal, attitude=np.searchsorted([-1.0, 0.0], 0.7 * qd + rng.standard_normal(M)),
                       influence=rng.choice(3, M, p=[0.25, 0.45, 0.3]),
                       ties_known=rng.random(M) < sigmoid(0.2 + 0.7 * qd),
                       informant=rng.random(M) < sigmoid(-0.3 + 0.8 * qd),
                       plan_aligned=rng.random(M) < sigmoid(0.4 + 0.8 * qd),
                       approached=rng.random(M) < sigmoid(-1.0 + 0.9 * qd + 0.6 * self.f[deal]),
                       u=rng.random((6, M)), start=np.cumsum(m) - m, m=m)


# ----------------------------------------------------------------------------- measures of the truth
def measures(D: Deals) -> dict[str, np.ndarray]:
    """The course's graded measures of each deal's TRUE state (recorded or not)."""
    n, ct = D.n, D.ct
    deal = ct["deal"]

    def by(values):
        return np.bincount(deal, weights=np.asarray(values, dtype=float), minlength=n)

    met = ct["appear"] <= D.stage[deal]  # people the deal has reached by now (the others play no part yet)
    key = ((ct["role"] <= DM) | (ct["influence"] == 2)) & met
    wgt = np.array([0.5, 1.0, 2.0])[ct["influence"]]
    sup = by(key * wgt * (ct["stance"] >= 4))
    opp = by(key * wgt * (ct["stance"] <= 1))
    dm_rows = np.flatnonzero((ct["role"] == DM) & met)[::-1]
    dm_stance = np.full(n, -1)
    dm_stance[deal[dm_rows]] = ct["stance"][dm_rows]  # the first decision maker
    n_key = by(key)
    cnt = D.count
    comp = D.cp
    inc = np.bincount(comp["deal"], weights=comp["incumbent"].astype(float), minlength=n) > 0
    strong_inc = np.bincount(comp["deal"], weights=(comp["incumbent"] & (comp["strength"] == 2)).astype(float),
                             minlength=n) > 0
    strength = np.zeros(n)
    np.maximum.at(strength, comp["deal"], comp["strength"].astype(float))
    pt = D.pt
    p_pos = np.bincount(pt["deal"], weights=(pt["attitude"] == 2).astype(float), minlength=n) > 0
    p_neg = np.bincount(pt["deal"], weights=(pt["attitude"] == 0).astype(float), minlength=n) > 0
    it = D.item
    dm_dir = np.where(dm_stance >= 4, 1, np.where((dm_stance >= 0) & (dm_stance <= 1), -1, 0))
    return {
        "stage": D.stage,
        "support_w": sup, "oppose_w": opp, "net_support": sup - opp,
        "dm_stance": dm_stance,  # -1: no decision maker among the contacts
        "coach": by(ct["coach"] & met) > 0,
        "key_speaks": by(key & ct["speaks"]) > 0,
        "tie": by(ct["ties"] & met) > 0, "key_tie": by(key & ct["ties"]) > 0,
        "slips": cnt["close_date_pushes"], "days_in_stage": D.days_in_stage,
        "unaccompanied": cnt["site_visits"] - cnt["site_visits_accompanied"],
        "one_on_ones_per_key": cnt["one_on_one_meetings"] / np.maximum(n_key, 1),
        "group_only": (cnt["group_events"] > 0) & (cnt["one_on_one_meetings"] == 0),
        "price_people": D.price_people,
        "bid_prep": sum(it[k].astype(int) for k in BID_PREP),
        "spec_good": sum(it[k].astype(int) for k in SPEC_GOOD),
        "prefers_rival": it["customer_prefers_counterproposal"],
        "dm_signal": D.dm_signal, "dm_direction": dm_dir,
        "incumbent": inc, "strong_incumbent": strong_inc, "rival_strength": strength,
        "partner_positive": p_pos & ~p_neg, "partner_negative": p_neg,
        "issue_unplanned": it["open_product_issues"] & ~it["product_issue_plan"],
        "s1_done": sum(it[k].astype(int) for k, st, *_ in ITEMS if st == 0 and k not in
                       ("open_product_issues", "product_issue_plan")),
        "obstacles": cnt["open_obstacles"],
        "log_amount": np.log10(D.amount / 500_000),
    }


# ----------------------------------------------------------------------------- records
def _known(D: Deals, u: float, field_stage: int, snap_stage: int, deal_idx: int, bad: bool = False,
           shift: float = 0.0) -> bool:
    """Whether a field is written: diligence, stages past the field's, bad news written less."""
    past = snap_stage - field_stage
    if past < 0:
        return False
    h = D.h
    lg = h.record_base + h.record_per_stage * min(past, 4) + D.dil_list[deal_idx] + shift - h.bad_news_penalty * bool(bad)
    return u < 1.0 / (1.0 + math.exp(-lg))


def _records(D: Deals, prefix: str, snaps: list[tuple[int, int, float, int]], closed: dict | None,
             rng: np.random.Generator) -> list[dict]:
    """Records of the snapshots ``(deal, stage, progress, as_of day)``; ``closed``: outcome labels and close days."""
    n = D.n
    u_opp = {name: rng.random(n) for name in [i[0] for i in ITEMS] + list(COUNTS)
             + ["decision_maker_signal", "people_knowing_final_price", "stage_entered_at", "amount"]}
    width = max(6, len(str(n)))
    out = []
    ct, cp, pt = D.ct, D.cp, D.pt
    for d, s, prog, day in snaps:
        rec = {"id": f"{prefix}-{d + 1:0{width}d}", "stage": STAGES[s],
               "region": ("north", "south", "east", "west", "central")[D.region[d]],
               "industry": ("utilities", "finance", "government", "education", "healthcare", "manufacturing",
                            "telecom")[D.industry[d]],
               "product_line": ("routing", "switching", "wireless", "security", "data_center")[D.product[d]],
               "owner": f"seller{D.owner[d] + 1:02d}", "currency": "CNY"}
        if u_opp["amount"][d] < 0.96:
            rec["amount"] = float(D.amount[d])
        last = s == D.stage[d] and prog >= 1
        lived = int((D.days_before[d] + D.days_in_stage[d]) * prog)
        in_stage = int(D.days_in_stage[d]) if last else min(int(20 + 30 * prog), lived)
        rec["created_at"] = date_of(day - lived)
        if u_opp["stage_entered_at"][d] < 0.95:
            rec["stage_entered_at"] = date_of(day - in_stage)
        rec["expected_close"] = date_of(day + int(30 + 40 * (4 - s) * (0.5 + rng.random())))
        rec["as_of"] = date_of(day)
        if closed is not None:
            rec["outcome"], rec["closed_at"] = str(closed["outcome"][d]), date_of(closed["day"][d])
        for name, k, *_ in ITEMS:
            v = bool(D.item[name][d]) and s >= k
            if _known(D, u_opp[name][d], k, s, d, bad=not v):
                rec[name] = v
        if _known(D, u_opp["decision_maker_signal"][d], 1, s, d):
            rec["decision_maker_signal"] = SIGNALS[D.dm_signal[d] if last else min(D.dm_signal[d], s)]
        for name in COUNTS:
            full = D.count[name][d]
            v = int(np.floor(full * prog + 0.5 * (prog >= 1))) if name not in ("customer_visits_90d", "open_obstacles") else int(full)
            if name == "site_visits_accompanied":
                v = min(v, rec.get("site_visits", v))
                if "site_visits" not in rec:
                    continue
            shift = 1.5 if name == "close_date_pushes" else 0.3
            if _known(D, u_opp[name][d], 0, s, d, shift=shift):
                rec[name] = v
        if s == 4 and _known(D, u_opp["people_knowing_final_price"][d], 4, s, d, bad=D.price_people[d] > 1):
            rec["people_knowing_final_price"] = int(D.price_people[d])
        # children
        a, m = ct["start"][d], ct["m"][d]
        contacts = []
        for r in range(a, a + m):
            if ct["appear"][r] > s:
                continue
            u = ct["u"][:, r]
            c = {"name": f"Person {r - a + 1}"}
            if u[0] < sigmoid(2.0 + D.dil[d]):
                c["role"] = ROLES[ct["role"][r]]
            if _known(D, u[1], 1, s, d, bad=ct["stance"][r] <= 1, shift=-0.2) or (s == 0 and u[1] < 0.2):
                c["stance"] = STANCES[ct["stance"][r]]
            if _known(D, u[2], 1, s, d, shift=-0.8):
                c["mind_share"] = ("low", "high")[int(ct["mind"][r])]
            if _known(D, u[3], 1, s, d, shift=-0.8):
                c["heart_share"] = ("low", "high")[int(ct["heart"][r])]
            if _known(D, u[4], 1, s, d, bad=not ct["coach"][r], shift=0.2):
                c["is_coach"] = bool(ct["coach"][r])
            if _known(D, u[5], 1, s, d, bad=not ct["speaks"][r], shift=-0.3):
                c["speaks_for_us"] = bool(ct["speaks"][r])
            if _known(D, u[6], 0, s, d, shift=0.3):
                c["influence"] = LMH[ct["influence"][r]]
            if _known(D, u[7], 1, s, d, bad=bool(ct["ties"][r]), shift=-0.9):
                c["competitor_ties"] = bool(ct["ties"][r])
            if _known(D, u[8], 1, s, d, shift=-0.4):
                c["accepts_us"] = bool(ct["accepts"][r])
            contacts.append(c)
        rec["contacts"] = contacts
        a, m = cp["start"][d], cp["m"][d]
        comps = []
        for r in range(a, a + m):
            u = cp["u"][:, r]
            c = {"name": f"Rival {r - a + 1}"}
            if u[0] < 0.85:
                c["incumbent"] = bool(cp["incumbent"][r])
            if _known(D, u[1], 0, s, d, shift=-0.2):
                c["strength"] = LMH[cp["strength"][r]]
            if _known(D, u[2], 1, s, d, shift=-0.5):
                c["relationship_points_known"] = bool(cp["rel_known"][r])
            if _known(D, u[3], 3, s, d, shift=-0.3):
                c["has_counterproposal"] = bool(cp["has_cp"][r])
            comps.append(c)
        rec["competitors"] = comps
        a, m = pt["start"][d], pt["m"][d]
        parts = []
        for r in range(a, a + m):
            if s < 1 and r > a:
                continue
            u = pt["u"][:, r]
            c = {"name": f"Integrator {r - a + 1}"}
            if _known(D, u[0], 2, s, d, shift=-0.3):
                c["influence_on_decision"] = LMH[pt["influence"][r]]
            if _known(D, u[1], 2, s, d):
                c["competitor_ties_known"] = bool(pt["ties_known"][r])
            if _known(D, u[2], 2, s, d, shift=-0.3):
                c["has_informant"] = bool(pt["informant"][r])
            if _known(D, u[3], 2, s, d, shift=-0.3):
                c["plan_aligned"] = bool(pt["plan_aligned"][r])
            if _known(D, u[4], 2, s, d, bad=pt["attitude"][r] == 0):
                c["customer_attitude"] = ATTITUDES[pt["attitude"][r]]
            if _known(D, u[5], 0, s, d, shift=0.5):
                c["approached_us"] = bool(pt["approached"][r])
            parts.append(c)
        rec["partners"] = parts
        out.append(rec)
    return out


def simulate(name: str, logit: Callable[[dict], np.ndarray], n_closed: int, n_open: int, seed: int,
             habits: Habits, intercept: float) -> History:
    """A closed history (1-3 snapshots a deal) and an open set, with the truth.

    ``logit(measures)`` is the visible part of the true log-odds; the true
    log-odds adds ``intercept`` and ``habits.hidden_sd`` x a hidden normal
    draw per deal.
    """
    rng = np.random.default_rng(seed)
    as_of = day_of(habits.as_of)
    # closed deals: the last snapshot holds the state the outcome comes from
    C = Deals(rng, n_closed, habits.closed_stage_mix, habits)
    z = intercept + logit(measures(C)) + habits.hidden_sd * C.hidden
    p_c = sigmoid(z)
    won = rng.random(n_closed) < p_c
    nd = ~won & (rng.random(n_closed) < np.where(C.stage <= 1, 0.15, 0.06))
    outcome = np.where(won, "won", np.where(nd, "no_decision", "lost"))
    close_day = as_of - 1 - rng.integers(0, 730, n_closed)
    last_day = close_day - 1 - rng.geometric(1 / 25, n_closed)
    k = rng.integers(1, 4, n_closed)
    snaps = []
    for d in range(n_closed):
        fin = int(C.stage[d])
        total = int(C.days_in_stage[d] + C.days_before[d])
        fracs = sorted(np.round(rng.uniform(0.15, 0.9, k[d] - 1), 2).tolist())
        days = set()
        for fr in fracs:
            s = min(fin, int(fin * fr + 0.5 * rng.random()))
            day = int(last_day[d]) - int(total * (1 - fr))
            if day < last_day[d] and day not in days:
                days.add(day)
                snaps.append((d, s, fr, day))
        snaps.append((d, fin, 1.0, int(last_day[d])))
    tag = name[:1].upper()
    closed = _records(C, f"H{tag}", snaps,
                      {"outcome": outcome, "day": close_day}, rng)
    # open deals: one snapshot at as_of, the outcome drawn from the same truth
    O = Deals(rng, n_open, habits.open_stage_mix, habits)
    z_o = intercept + logit(measures(O)) + habits.hidden_sd * O.hidden
    p_o = sigmoid(z_o)
    won_o = (rng.random(n_open) < p_o).astype(int)
    opened = _records(O, f"O{tag}", [(d, int(O.stage[d]), 1.0, as_of) for d in range(n_open)],
                      None, rng)
    info = {"closed_win_rate": float(won.mean()), "open_win_rate": float(won_o.mean()),
            "closed_snapshots": len(closed), "no_decision": int(nd.sum()),
            "closed_range": (date_of(close_day.min()), date_of(close_day.max())), "as_of": habits.as_of}
    return History(name, seed, closed, opened, won_o, p_o, p_c, info)
