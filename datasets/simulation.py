"""The simulated deals: their hidden state, and what a CRM records of them.

The model and its parameters are described in :mod:`dealscore_datasets.generate`
(the module docstring), which is the entry point; this module holds the
simulation itself.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.contract.schema import CHILD_KEY, CONTRACT, STAGES

REGIONS = ("north", "south", "east", "west", "central")
INDUSTRIES = ("utilities", "finance", "government", "education", "healthcare",
              "manufacturing", "telecom", "transport")
_INDUSTRY_WORDS = ("Grid", "Bank", "Bureau", "University", "Hospital", "Works",
                   "Telecom", "Rail")
PRODUCT_LINES = ("routing", "switching", "wireless", "security", "data_center", "optical")
_PRODUCT_WORDS = ("backbone", "campus switching", "wireless", "security", "data centre",
                  "optical transport")
_PROJECT_WORDS = ("upgrade", "refresh", "expansion", "rollout", "tender", "pilot")
_CITIES = ("Northern", "Southern", "Eastern", "Western", "Central", "Harbin", "Jinan",
           "Wuhan", "Chengdu", "Xiamen", "Ningbo", "Kunming", "Lanzhou", "Hefei",
           "Nanning", "Taiyuan", "Changsha", "Fuzhou", "Guiyang", "Shenyang", "Dalian",
           "Qingdao", "Suzhou", "Wuxi", "Zhuhai", "Tianjin", "Xian", "Hohhot",
           "Urumqi", "Haikou")
_SUFFIXES = ("Co", "Group", "Ltd", "Institute")
OWNERS = tuple(f"rep{i:02d}" for i in range(1, 31))
CURRENCIES = ("CNY", "USD", "EUR")
_SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou",
             "Wu", "Xu", "Sun", "Hu", "Zhu", "Gao", "Lin", "He", "Guo", "Ma", "Luo",
             "Liang", "Song", "Zheng", "Xie", "Han", "Tang", "Feng", "Yu", "Dong", "Xiao")
_TITLES = (  # three per role, in the contract's role order
    ("CIO", "Vice president", "General manager"),
    ("IT director", "Network director", "Head of infrastructure"),
    ("Senior engineer", "Network engineer", "Solution architect"),
    ("External consultant", "Procurement centre officer", "Design institute expert"),
    ("Chief engineer", "Office secretary", "Department assistant"),
    ("Operations lead", "Department user", "Help desk lead"),
)
_RIVALS = ("RivalNet", "Classmate Ltd", "NetCore", "SkyLink", "OmniSwitch",
           "Vertex Systems", "HuaTong", "BlueRiver")
_INTEGRATORS = ("Huabei Systems", "Southbridge IT", "Eastline Integration", "Westgate Tech",
                "Zhongyuan Networks", "Pearl River Solutions", "Golden Key Systems",
                "Yangtze Digital")

_C = CONTRACT["opportunity"]
_ROLES = CONTRACT["contacts"]["role"].values
_STANCES = CONTRACT["contacts"]["stance"].values
_LOW_HIGH = CONTRACT["contacts"]["mind_share"].values
_LMH = CONTRACT["contacts"]["influence"].values
_ATTITUDES = CONTRACT["partners"]["customer_attitude"].values
_DM_SIGNAL = _C["decision_maker_signal"].values
_OUTCOMES = _C["outcome"].values
R_APPROVER, R_DM, R_EVAL, R_ADVISOR, R_GATE, R_USER = range(6)

# Boolean checklist items: (field, stage index, driver, alpha, beta).
# P(true) = sigmoid(alpha + beta * driver); driver c = control, t = tech, ct = mean.
_BOOL_ITEMS: tuple[tuple[str, int, str, float, float], ...] = (
    ("needs_understood", 0, "t", 1.2, 0.8),
    ("network_status_known", 0, "t", 0.9, 0.7),
    ("decision_chain_mapped", 0, "c", 0.5, 1.0),
    ("integrators_engaged", 0, "c", 0.6, 0.6),
    ("competitors_analyzed", 0, "c", 0.4, 0.8),
    ("tailored_solution", 0, "t", 0.5, 1.0),
    ("site_visit_interest", 0, "c", 0.0, 1.0),
    ("contacts_profiled", 1, "c", 0.3, 1.0),
    ("integrator_attitudes_known", 1, "c", 0.0, 0.8),
    ("competitor_relationships_known", 1, "c", -0.2, 1.0),
    ("relationship_plan_aligned", 1, "c", 0.5, 0.9),
    ("relationship_plan_feasible", 1, "c", 0.7, 0.8),
    ("key_customer_guiding", 1, "c", -0.4, 1.2),
    ("competitor_counterproposal", 3, "t", 0.3, -0.6),
    ("customer_prefers_counterproposal", 3, "t", -0.9, -1.1),
    ("spec_drafting_started", 3, "c", 0.8, 0.3),
    ("spec_has_our_differentiators", 3, "t", 0.0, 1.1),
    ("helped_write_spec", 3, "c", -0.9, 1.2),
    ("tender_leans_to_us", 3, "ct", -0.3, 1.1),
    ("scoring_criteria_known", 3, "c", 0.3, 0.8),
    ("scoring_criteria_favor_us", 3, "t", -0.2, 1.0),
    ("simulated_config_favorable", 3, "t", 0.1, 1.0),
    ("insider_on_competitors", 4, "c", -0.5, 1.1),
    ("evaluation_rules_favorable", 4, "ct", -0.4, 1.0),
    ("evaluation_panel_known", 4, "c", 0.0, 1.0),
    ("obstacles_have_bypass", 4, "c", 0.0, 0.9),
    ("commercial_expectation_known", 4, "c", 0.6, 0.8),
    ("pricing_strategy_ready", 4, "c", 0.9, 0.5),
    ("bottom_line_set", 4, "c", 1.0, 0.4),
    ("closing_conditions_known", 4, "c", -0.2, 1.0),
    ("open_product_issues", 0, "t", -1.0, -0.5),
    ("product_issue_plan", 0, "c", 0.0, 1.0),
)
# Bidding preparations (S5.1-S5.3, S5.5-S5.9).
_BID_PREP = ("insider_on_competitors", "evaluation_rules_favorable", "evaluation_panel_known",
             "obstacles_have_bypass", "commercial_expectation_known", "pricing_strategy_ready",
             "bottom_line_set", "closing_conditions_known")
# Fields counted in the "share of unknown checklist fields" (not activity counts).
_CHECKLIST_STAGE: dict[str, int] = {
    name: k for name, k, *_ in _BOOL_ITEMS if name not in ("open_product_issues", "product_issue_plan")
}
_CHECKLIST_STAGE.update({"tech_presentations": 0, "solution_discussants": 0,
                         "decision_maker_signal": 1, "people_knowing_final_price": 4})
# Extra log-odds of being recorded, per field (activity counts are better recorded).
_KNOWN_SHIFT: dict[str, float] = {
    "close_date_pushes": 1.5, "open_obstacles": 1.0, "site_visits": 0.8,
    "site_visits_accompanied": 0.8, "one_on_one_meetings": 0.6, "group_events": 0.6,
    "customer_visits_90d": 1.2, "open_product_issues": 0.5, "product_issue_plan": 0.0,
    "tech_presentations": 0.6, "solution_discussants": 0.3,
}
#: fewer log-odds of being recorded when the value is bad news for us (a "no", an opponent, a leak)
_BAD_NEWS_SHIFT = -0.6
_KNOWN_P = np.array([0.68, 0.80, 0.86, 0.90, 0.92])  # recorded at stage k, k+1, ... (average control)
_KNOWN_BASE = np.log(_KNOWN_P / (1 - _KNOWN_P))
_EPOCH = np.datetime64("1970-01-01", "D")


# ----------------------------------------------------------------------------- helpers
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def day_of(s: str) -> int:
    return int((np.datetime64(s, "D") - _EPOCH).astype(np.int64))


def _p_known(stage, k, kc, shift=0.0, early=0.03):
    """Probability that a field of stage ``k`` is recorded at stage ``stage``."""
    d = np.asarray(stage, dtype=np.int64) - k
    lg = _KNOWN_BASE[np.clip(d, 0, 4)] + kc + shift
    return np.where(d >= 0, _sigmoid(lg), early)


def _u8(rng, shape) -> np.ndarray:
    """Uniform draws stored in one byte each: u = (value + 0.5) / 256."""
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _lt(u8: np.ndarray, p) -> np.ndarray:
    """``u < p`` for byte-stored uniforms (see ``_u8``)."""
    return u8 < (np.asarray(p) * 256.0 - 0.5)


def _cat(rng, n, probs) -> np.ndarray:
    """Categorical codes 0..len(probs)-1, as int8."""
    cum = np.cumsum(probs) / np.sum(probs)
    return np.searchsorted(cum, rng.random(n), side="right").clip(0, len(probs) - 1).astype(np.int8)


def _ordinal(z, cuts) -> np.ndarray:
    return np.searchsorted(np.asarray(cuts), z).astype(np.int8)


def _group_pos(counts: np.ndarray) -> np.ndarray:
    """0, 1, ... within each consecutive group of the given sizes."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def _group_cummax(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Running maximum of small non-negative ints within consecutive groups."""
    off = group.astype(np.int64) * 16
    return (np.maximum.accumulate(values.astype(np.int64) + off) - off).astype(np.int8)


def _count_by(group: np.ndarray, flag: np.ndarray, n: int) -> np.ndarray:
    """How many rows of each group have ``flag``."""
    return np.bincount(group, weights=flag.astype(np.float64), minlength=n)


def _any_by(group: np.ndarray, flag: np.ndarray, n: int) -> np.ndarray:
    return _count_by(group, flag, n) > 0


# --------------------------------------------------------------------- column holders
class _Table:
    """Columns of one output table, kept as numpy arrays plus 'known' masks."""

    def __init__(self):
        self.cols: dict[str, tuple] = {}

    def bool(self, name, values, known):
        self.cols[name] = ("bool", np.asarray(values, dtype=bool), np.asarray(known, dtype=bool))

    def int(self, name, values, known):
        self.cols[name] = ("int", np.asarray(values, dtype=np.int64), np.asarray(known, dtype=bool))

    def num(self, name, values, known):
        self.cols[name] = ("num", np.asarray(values, dtype=np.float64), np.asarray(known, dtype=bool))

    def enum(self, name, codes, labels, known=None):
        self.cols[name] = ("enum", np.asarray(codes), tuple(labels), known)

    def str(self, name, arrow_array):
        self.cols[name] = ("str", arrow_array)

    def date(self, name, days, known=None):
        self.cols[name] = ("date", np.asarray(days, dtype=np.int64), known)

    def to_frame(self, order: Sequence[str]) -> pd.DataFrame:
        data = {}
        for name in order:
            if name not in self.cols:
                continue
            spec = self.cols[name]
            kind = spec[0]
            if kind == "bool":
                data[name] = pd.arrays.BooleanArray(spec[1], ~spec[2])
            elif kind == "int":
                data[name] = pd.arrays.IntegerArray(spec[1], ~spec[2])
            elif kind == "num":
                data[name] = pd.arrays.FloatingArray(spec[1], ~spec[2])
            elif kind == "enum":
                codes, labels, known = spec[1], spec[2], spec[3]
                idx = pa.array(codes.astype(np.int32), mask=None if known is None else ~known)
                data[name] = pd.arrays.ArrowStringArray(pc.take(pa.array(labels, pa.string()), idx))
            elif kind == "str":
                data[name] = pd.arrays.ArrowStringArray(spec[1])
            elif kind == "date":
                vals = (spec[1].astype("datetime64[D]")).astype("datetime64[s]")
                if spec[2] is not None:
                    vals[~spec[2]] = np.datetime64("NaT", "s")
                data[name] = vals
        return pd.DataFrame(data, copy=False)


def _strings(*parts, sep=" ") -> pa.Array:
    """Element-wise join of (labels, codes) pairs or arrow string arrays."""
    arrays = []
    for p in parts:
        if isinstance(p, tuple):
            labels, codes = p
            arrays.append(pc.take(pa.array(labels, pa.string()), pa.array(codes.astype(np.int32))))
        else:
            arrays.append(p)
    if len(arrays) == 1:
        return arrays[0]
    return pc.binary_join_element_wise(*arrays, sep)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    return pc.binary_join_element_wise(
        pa.scalar(prefix), pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0"), "")


# ----------------------------------------------------------------------- deal latents
class _Deals:
    """Deal-level truth: latents, checklist truths, counts, child-row truths."""

    def __init__(self, rng: np.random.Generator, n: int):
        self.n = n
        skill = rng.standard_normal(len(OWNERS))
        skill = (skill - skill.mean()) / skill.std()  # the same rep population for every seed
        self.owner = rng.integers(0, len(OWNERS), n).astype(np.int8)
        c = 0.45 * skill[self.owner] + math.sqrt(1 - 0.45 ** 2) * rng.standard_normal(n)
        t = 0.4 * c + math.sqrt(1 - 0.16) * rng.standard_normal(n)
        self.c, self.t = c, t
        self.kc = 0.6 * c  # record-keeping follows control
        self.region = rng.integers(0, len(REGIONS), n).astype(np.int8)
        self.industry = _cat(rng, n, (12, 14, 16, 12, 10, 14, 12, 10))
        self.product = _cat(rng, n, (22, 24, 14, 14, 16, 10))
        self.city = rng.integers(0, len(_CITIES), n).astype(np.int8)
        self.suffix = rng.integers(0, len(_SUFFIXES), n).astype(np.int8)
        self.project = rng.integers(0, len(_PROJECT_WORDS), n).astype(np.int8)
        self.currency = _cat(rng, n, (85, 10, 5))
        cny = np.exp(np.log(600_000) + 1.0 * rng.standard_normal(n)).clip(20_000, 30_000_000)
        rate = np.array([1.0, 7.1, 7.8])[self.currency]
        self.amount = np.maximum(np.round(cny / rate / 1000) * 1000, 1000.0)
        self.amount_cny = cny
        self.amount_known = rng.random(n) >= 0.03

        drivers = {"c": c, "t": t, "ct": 0.5 * (c + t)}
        self.truth: dict[str, np.ndarray] = {}
        self.r: dict[str, np.ndarray] = {}
        for name, _k, drv, a, b in _BOOL_ITEMS:
            self.truth[name] = rng.random(n) < _sigmoid(a + b * drivers[drv])
        tr = self.truth
        tr["customer_prefers_counterproposal"] &= tr["competitor_counterproposal"]
        tr["helped_write_spec"] &= tr["spec_drafting_started"]
        self.dm_signal = _ordinal(0.9 * c + rng.standard_normal(n), (-0.3, 0.9))

        # counts at the end of a full life (progress 1); shown as floor(full * p + u)
        self.full: dict[str, np.ndarray] = {
            "tech_presentations": rng.poisson(1.0 + 3.0 * _sigmoid(t)),
            "solution_discussants": rng.poisson(1.0 + 4.0 * _sigmoid(t)),
            "site_visits": rng.poisson(0.4 + 2.0 * _sigmoid(c)),
            "one_on_one_meetings": np.where(rng.random(n) < _sigmoid(-1.3 - 1.0 * c), 0,
                                            rng.poisson(2.0 + 8.0 * _sigmoid(c))),
            "group_events": rng.poisson(2.5, n),
            "close_date_pushes": rng.poisson(np.exp(-0.3 - 0.5 * c)),
        }
        self.full["site_visits_accompanied"] = rng.binomial(self.full["site_visits"], _sigmoid(1.6 + 0.8 * c))
        self.count_u = {k: rng.random(n, dtype=np.float32) for k in ("tech_presentations", "solution_discussants",
                                                  "site_visits", "one_on_one_meetings",
                                                  "group_events", "close_date_pushes")}
        self.count_u["site_visits_accompanied"] = self.count_u["site_visits"]
        self.price_people = 1 + rng.poisson(np.exp(-1.0 - 0.6 * c))
        for name in list(_CHECKLIST_STAGE) + list(_KNOWN_SHIFT):
            if name not in self.r:
                self.r[name] = _u8(rng, n)

        self._contacts(rng)
        self._competitors(rng)
        self._partners(rng)

    # -- child truths.  Rows of one deal are contiguous, in order of the stage
    #    at which they become visible (``appear``).
    def _contacts(self, rng):
        n, c = self.n, self.c
        m = rng.integers(3, 7, n)
        deal = np.repeat(np.arange(n, dtype=np.int32), m)
        j = _group_pos(m)
        M = len(deal)
        role = _cat(rng, M, (6, 10, 34, 16, 16, 18))
        role[j == 0] = np.array([R_EVAL, R_GATE, R_USER, R_ADVISOR], np.int8)[_cat(rng, int((j == 0).sum()), (50, 20, 15, 15))]
        pick = (j == 1) & (rng.random(M) < 0.8)
        role[pick] = R_DM
        pick = (j == 2) & (rng.random(M) < 0.6)
        role[pick] = R_APPROVER
        appear = np.where(j == 0, 0, np.where(j == 1, (rng.random(M) >= 0.85).astype(np.int8), _cat(rng, M, (50, 30, 15, 5))))
        appear = _group_cummax(appear, deal)
        cd = c[deal]
        role_adj = np.array([-0.3, 0.0, 0.1, 0.0, 0.0, 0.2])[role]
        stance = _ordinal(0.8 * cd + role_adj + 0.9 * rng.standard_normal(M), (-1.4, -0.7, 0.0, 0.5, 1.1))
        has_coach = rng.random(n) < _sigmoid(1.1 * c)
        coach_j = (rng.random(n) * m).astype(np.int64)
        starts = np.cumsum(m) - m
        is_coach = np.zeros(M, bool)
        is_coach[(starts + coach_j)[has_coach]] = True
        stance[is_coach] = np.maximum(stance[is_coach], 4)
        good_mind = np.isin(stance, (2, 4, 5))
        good_heart = np.isin(stance, (3, 4, 5))
        u = rng.random((4, M), dtype=np.float32)
        mind = (u[0] < np.where(good_mind, 0.85, 0.2)).astype(np.int8)
        heart = (u[1] < np.where(good_heart, 0.85, 0.15)).astype(np.int8)
        accepts = (u[2] < np.where(stance >= 2, 0.85, 0.15)) | is_coach
        p_speak = np.where(stance >= 4, _sigmoid(0.3 + 0.8 * cd), np.where(stance == 3, 0.15, 0.02))
        speaks = u[3] < p_speak
        key_role = role <= R_DM
        influence = np.where(key_role, _cat(rng, M, (5, 20, 75)), _cat(rng, M, (35, 45, 20))).astype(np.int8)
        ties = (rng.random(M) < _sigmoid(-2.9 - 0.4 * cd + 0.3 * np.isin(role, (R_EVAL, R_GATE)))) & ~is_coach
        self.ct = dict(deal=deal, appear=appear, role=role, stance=stance, is_coach=is_coach,
                       mind=mind, heart=heart, accepts=accepts, speaks=speaks,
                       influence=influence, ties=ties,
                       title=(role * 3 + rng.integers(0, 3, M, dtype=np.int8)),
                       surname=rng.integers(0, len(_SURNAMES), M).astype(np.int8),
                       initial=rng.integers(0, 26, M).astype(np.int8),
                       title_known=rng.random(M, dtype=np.float32) >= 0.1)
        self.ct["r"] = _u8(rng, (9, M))
        self.ct["start"], self.ct["by_stage"] = self._visible_counts(deal, appear, m)

    def _competitors(self, rng):
        n = self.n
        m = _cat(rng, n, (12, 38, 32, 18)).astype(np.int64)
        deal = np.repeat(np.arange(n, dtype=np.int32), m)
        j = _group_pos(m)
        M = len(deal)
        appear = _group_cummax(np.where(j == 0, 0, _cat(rng, M, (50, 35, 15))), deal)
        incumbent = rng.random(M) < np.where(j == 0, 0.4, 0.05)
        strength = _ordinal(0.8 * incumbent + rng.standard_normal(M), (-0.6, 0.6))
        crk = self.truth["competitor_relationships_known"][deal]
        rel_known = rng.random(M) < np.where(crk, 0.8, 0.15)
        cp = self.truth["competitor_counterproposal"][deal]
        has_cp = rng.random(M) < np.where(cp, np.where(j == 0, 0.8, 0.3), 0.05)
        first = rng.integers(0, len(_RIVALS), n)
        name = (first[deal] + j) % len(_RIVALS)
        self.cp = dict(deal=deal, appear=appear, incumbent=incumbent, strength=strength,
                       rel_known=rel_known, has_cp=has_cp, name=name,
                       r=_u8(rng, (4, M)))
        self.cp["start"], self.cp["by_stage"] = self._visible_counts(deal, appear, m)

    def _partners(self, rng):
        n = self.n
        m = _cat(rng, n, (20, 55, 25)).astype(np.int64)
        deal = np.repeat(np.arange(n, dtype=np.int32), m)
        j = _group_pos(m)
        M = len(deal)
        appear = _group_cummax(np.where(j == 0, (rng.random(M) >= 0.6).astype(np.int8), 1 + _cat(rng, M, (60, 40))), deal)
        cd, td = self.c[deal], self.t[deal]
        u = rng.random((5, M), dtype=np.float32)
        first = rng.integers(0, len(_INTEGRATORS), n)
        self.pt = dict(deal=deal, appear=appear,
                       influence=_cat(rng, M, (25, 45, 30)),
                       ties_known=u[0] < _sigmoid(0.2 + 0.7 * cd),
                       informant=u[1] < _sigmoid(-0.3 + 0.8 * cd),
                       plan_aligned=u[2] < _sigmoid(0.4 + 0.8 * cd),
                       attitude=_ordinal(0.7 * cd + rng.standard_normal(M), (-1.1, -0.1)),
                       approached=u[3] < _sigmoid(-1.2 + 1.0 * cd + 0.8 * td),
                       name=(first[deal] + j) % len(_INTEGRATORS),
                       r=_u8(rng, (6, M)))
        self.pt["start"], self.pt["by_stage"] = self._visible_counts(deal, appear, m)

    def _visible_counts(self, deal, appear, m):
        by = np.bincount(deal.astype(np.int64) * 5 + appear, minlength=self.n * 5).reshape(self.n, 5)
        return np.cumsum(m) - m, np.cumsum(by, axis=1).astype(np.int8)


# --------------------------------------------------------------------- observation
def _expand(child: dict, idx: np.ndarray, stage: np.ndarray):
    """Child rows visible in each snapshot: (snapshot row of each, global child row)."""
    k = child["by_stage"][idx, stage].astype(np.int64)
    parent = np.repeat(np.arange(len(idx)), k)
    g = np.repeat(child["start"][idx], k) + _group_pos(k)
    return parent, g


class _Observed:
    """What a snapshot (deal index ``idx`` at stage ``stage`` and life progress
    ``progress``) records; builds the output tables."""

    def __init__(self, D: _Deals, idx: np.ndarray, stage: np.ndarray, progress: np.ndarray,
                 rng: np.random.Generator | None):
        self.D, self.idx, self.stage, self.progress = D, idx, stage, progress
        n = len(idx)
        kc = D.kc[idx]
        self.kc = kc
        self.known: dict[str, np.ndarray] = {}
        self.value: dict[str, np.ndarray] = {}
        for name, k, _drv, _a, beta in _BOOL_ITEMS:
            v = D.truth[name][idx]
            bad = v if beta < 0 else ~v  # a "no" to a good item, a "yes" to a bad one
            self.known[name] = _lt(D.r[name][idx], _p_known(stage, k, kc, _KNOWN_SHIFT.get(name, 0.0)
                                                            + _BAD_NEWS_SHIFT * bad))
            self.value[name] = v
        kn, val = self.known, self.value
        # dependent items: no criteria known -> nobody can say which way they lean
        kn["scoring_criteria_favor_us"] &= kn["scoring_criteria_known"] & val["scoring_criteria_known"]
        kn["customer_prefers_counterproposal"] &= kn["competitor_counterproposal"]
        kn["product_issue_plan"] &= kn["open_product_issues"] & val["open_product_issues"]
        kn["decision_maker_signal"] = _lt(D.r["decision_maker_signal"][idx], _p_known(stage, 1, kc))
        val["decision_maker_signal"] = D.dm_signal[idx]
        # counts grow with progress; S1 activity mostly happens early
        for name, speed, k in (("tech_presentations", 2.5, 0), ("solution_discussants", 2.5, 0),
                               ("site_visits", 1.0, 0), ("site_visits_accompanied", 1.0, 0),
                               ("one_on_one_meetings", 1.0, 0), ("group_events", 1.0, 0),
                               ("close_date_pushes", 1.0, 0)):
            p = np.minimum(progress * speed, 1.0)
            val[name] = np.floor(D.full[name][idx] * p + D.count_u[name][idx]).astype(np.int64)
            kn[name] = _lt(D.r[name][idx], _p_known(stage, k, kc, _KNOWN_SHIFT.get(name, 0.0)))
        kn["site_visits_accompanied"] &= kn["site_visits"]
        val["people_knowing_final_price"] = D.price_people[idx]
        kn["people_knowing_final_price"] = _lt(D.r["people_knowing_final_price"][idx],
                                               _p_known(stage, 4, kc, _BAD_NEWS_SHIFT * (D.price_people[idx] > 1)))
        if rng is not None:  # current-state counts, drawn per snapshot
            c = D.c[idx]
            val["open_obstacles"] = rng.poisson(np.exp(-0.7 - 0.4 * c))
            kn["open_obstacles"] = _lt(D.r["open_obstacles"][idx], _p_known(stage, 0, kc, _KNOWN_SHIFT["open_obstacles"]))
            val["customer_visits_90d"] = rng.poisson(np.exp(1.0 + 0.4 * c))
            kn["customer_visits_90d"] = _lt(D.r["customer_visits_90d"][idx], _p_known(stage, 0, kc, _KNOWN_SHIFT["customer_visits_90d"]))

        # contacts
        ct = D.ct
        self.c_parent, g = _expand(ct, idx, stage)
        s = stage[self.c_parent]
        kcr = kc[self.c_parent]
        r = ct["r"][:, g]
        self.c_g = g
        self.c_known = {
            "role": _lt(r[0], _p_known(s, 0, kcr, 1.2)),
            "stance": _lt(r[1], _p_known(s, 1, kcr, _BAD_NEWS_SHIFT * (ct["stance"][g] <= 1), early=0.3)),
            "mind_share": _lt(r[2], _p_known(s, 1, kcr, -0.6, early=0.15)),
            "heart_share": _lt(r[3], _p_known(s, 1, kcr, -0.6, early=0.15)),
            "speaks_for_us": _lt(r[4], _p_known(s, 1, kcr, -0.2, early=0.1)),
            "influence": _lt(r[5], _p_known(s, 0, kcr, 0.3, early=0.4)),
            "accepts_us": _lt(r[6], _p_known(s, 1, kcr, -0.3, early=0.2)),
        }
        coach = ct["is_coach"][g]
        self.c_known["is_coach"] = np.where(coach, _lt(r[7], _p_known(s, 1, kcr, 0.5, early=0.3)),
                                            _lt(r[7], _p_known(s, 1, kcr, -0.8, early=0.1)))
        ties = ct["ties"][g]
        self.c_known["competitor_ties"] = np.where(ties, _lt(r[8], _p_known(s, 1, kcr, -0.8, early=0.05)),
                                                   _lt(r[8], _p_known(s, 1, kcr, -0.5, early=0.1)))
        # competitors
        cp = D.cp
        self.k_parent, g = _expand(cp, idx, stage)
        self.k_g = g
        s, kcr, r = stage[self.k_parent], kc[self.k_parent], cp["r"][:, g]
        self.k_known = {"incumbent": _lt(r[0], 0.9), "strength": _lt(r[1], _p_known(s, 0, kcr, 0.0, early=0.5)),
                        "relationship_points_known": _lt(r[2], _p_known(s, 1, kcr, 0.0, early=0.1)),
                        "has_counterproposal": _lt(r[3], _p_known(s, 3, kcr, 0.0, early=0.05))}
        # partners
        pt = D.pt
        self.p_parent, g = _expand(pt, idx, stage)
        self.p_g = g
        s, kcr, r = stage[self.p_parent], kc[self.p_parent], pt["r"][:, g]
        self.p_known = {"influence_on_decision": _lt(r[0], _p_known(s, 2, kcr, 0.3, early=0.4)),
                        "competitor_ties_known": _lt(r[1], _p_known(s, 2, kcr, 0.5, early=0.1)),
                        "has_informant": _lt(r[2], _p_known(s, 2, kcr, 0.0, early=0.1)),
                        "plan_aligned": _lt(r[3], _p_known(s, 2, kcr, 0.0, early=0.1)),
                        "customer_attitude": _lt(r[4], _p_known(s, 2, kcr, 0.3 + _BAD_NEWS_SHIFT * (pt["attitude"][g] == 0),
                                                                early=0.25)),
                        "approached_us": _lt(r[5], _p_known(s, 0, kcr, 1.0))}

    # ------------------------------------------------------------- outcome terms
    def win_logit(self, days_in_stage: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(visible log-odds, unknown share) of each snapshot; see the module docstring.

        ``days_in_stage``: days the deal has spent in its current stage (None: no term)."""
        D, idx, n = self.D, self.idx, len(self.idx)
        val, kn = self.value, self.known
        stage = self.stage
        ct = D.ct
        g, par = self.c_g, self.c_parent
        role, stance, infl = ct["role"][g], ct["stance"][g], ct["influence"][g]

        def per_deal(values):
            return np.bincount(par, weights=np.asarray(values, dtype=np.float64), minlength=n)

        # key people (approver, decision maker, or high influence), weighted by influence
        key = (role <= R_DM) | (infl == 2)
        weight = np.array([0.5, 1.0, 2.0])[infl] * key
        net = per_deal(weight * (stance >= 4)) - per_deal(weight * (stance <= 1))
        x = 1.2 * np.tanh(net / 3.0)
        # the decision maker's stance on the ladder: the first visible decision maker
        dm = role == R_DM
        dm_stance = np.full(n, -1, np.int64)
        rows = np.flatnonzero(dm)[::-1]  # reverse so the first one wins the assignment
        dm_stance[par[rows]] = stance[rows]
        x += np.array([-1.0, -0.6, 0.0, 0.2, 0.5, 0.8, -0.3])[dm_stance]  # index -1 -> no DM
        # ... and the signal decision makers gave, in the direction of the DM's stance
        direction = np.where(dm_stance >= 4, 0.7, np.where((dm_stance >= 0) & (dm_stance <= 1), -0.9, 0.15))
        x += np.where(val["decision_maker_signal"] == 0, -0.2,
                      np.array([0.0, 0.5, 1.0])[val["decision_maker_signal"]] * direction)
        coach_known = _any_by(par, ct["is_coach"][g] & self.c_known["is_coach"], n)
        x += np.where(stage <= 2, 0.9, 0.5) * coach_known
        x += np.where(stage >= 2, 0.7, 0.3) * _any_by(par, key & ct["speaks"][g], n)
        key_tie = _any_by(par, key & ct["ties"][g], n)
        x += np.where(key_tie, -0.9, np.where(_any_by(par, ct["ties"][g], n), -0.4, 0.0))
        spec = stage >= 3
        x += spec * (0.4 * val["spec_has_our_differentiators"] + 0.5 * val["tender_leans_to_us"]
                     + 0.4 * val["helped_write_spec"] + 0.35 * val["scoring_criteria_favor_us"]
                     - 0.6 * val["customer_prefers_counterproposal"])
        # bidding preparations (S5.1-S5.3, S5.5-S5.9) done: +0.2 each up to five, in bidding only
        prep = sum(val[k].astype(np.int64) for k in _BID_PREP)
        x += (stage == 4) * 0.2 * np.minimum(prep, 5)
        pt, pg, pp = D.pt, self.p_g, self.p_parent
        att = pt["attitude"][pg]
        pos, neg, amb = _any_by(pp, att == 2, n), _any_by(pp, att == 0, n), _any_by(pp, att == 1, n)
        x += np.where(pos & ~neg, 0.45, 0.0) + np.where(neg, -0.6, 0.0) + np.where(amb & ~pos & ~neg, -0.15, 0.0)
        cp, kg, kp = D.cp, self.k_g, self.k_parent
        inc, strong = cp["incumbent"][kg], cp["strength"][kg] == 2
        x += np.where(_any_by(kp, inc & strong, n), -0.8, np.where(_any_by(kp, inc, n), -0.3, 0.0))
        x -= 0.15 * np.minimum(_count_by(kp, strong & ~inc, n), 2)
        crk_k, crk_v = kn["competitor_relationships_known"], val["competitor_relationships_known"]
        x += np.where(crk_k & ~crk_v, -0.3, np.where(~crk_k, -0.15, 0.0))
        # L4: one-on-ones per key person saturate; group events alone do not help
        n_key = np.maximum(per_deal(key), 1)
        x += 0.7 * (1 - np.exp(-val["one_on_one_meetings"] / n_key / 1.5)) - 0.35
        x -= 0.5 * ((val["group_events"] > 0) & (val["one_on_one_meetings"] == 0))
        # L6: the first unaccompanied site visit hurts most
        alone = val["site_visits"] - val["site_visits_accompanied"]
        x -= 0.5 * (alone >= 1) + 0.25 * np.clip(alone - 1, 0, 2)
        x -= 0.6 * (val["open_product_issues"] & ~val["product_issue_plan"])
        # L8: in bidding, the price known to two, or three and more people
        x += (stage == 4) * np.where(val["people_knowing_final_price"] >= 3, -1.2,
                                     np.where(val["people_knowing_final_price"] == 2, -0.7, 0.0))
        # T2: slips, one is noise, two and more hurt
        x += np.array([0.0, -0.15, -0.6, -0.9, -1.2])[np.minimum(val["close_date_pushes"], 4)]
        if days_in_stage is not None:  # T1/stalled: long in the same stage
            x += np.where(days_in_stage > 180, -0.8, np.where(days_in_stage > 90, -0.4, 0.0))
        # unknown share of the checklist fields of the reached stages
        applicable = np.zeros(n)
        unknown = np.zeros(n)
        for name, k in _CHECKLIST_STAGE.items():
            a = stage >= k
            applicable += a
            unknown += a & ~kn[name]
        share = unknown / np.maximum(applicable, 1)
        x -= 1.2 * share
        x += np.array([-1.6, -1.1, -0.6, 0.0, 0.3])[stage]
        x -= 0.15 * np.log10(D.amount_cny[idx] / 600_000)
        return x, share

    # ------------------------------------------------------------- tables
    def tables(self, ids: pa.Array, as_of_days: np.ndarray, extra: dict, kind: str) -> dict[str, pd.DataFrame]:
        D, idx, n = self.D, self.idx, len(self.idx)
        val, kn = self.value, self.known
        T = _Table()
        T.str("id", ids)
        T.enum("stage", self.stage, STAGES)
        T.str("name", _strings((_CITIES, D.city[idx]), (_INDUSTRY_WORDS, D.industry[idx]),
                               (_PRODUCT_WORDS, D.product[idx]), (_PROJECT_WORDS, D.project[idx])))
        T.str("account", _strings((_CITIES, D.city[idx]), (_INDUSTRY_WORDS, D.industry[idx]),
                                  (_SUFFIXES, D.suffix[idx])))
        T.enum("region", D.region[idx], REGIONS)
        T.enum("industry", D.industry[idx], INDUSTRIES)
        T.enum("product_line", D.product[idx], PRODUCT_LINES)
        T.enum("owner", D.owner[idx], OWNERS)
        T.num("amount", D.amount[idx], D.amount_known[idx])
        T.enum("currency", D.currency[idx], CURRENCIES)
        for name in ("created_at", "stage_entered_at", "expected_close"):
            T.date(name, extra[name])
        T.date("as_of", as_of_days)
        for name in ("close_date_pushes", "open_obstacles"):
            T.int(name, val[name], kn[name])
        if kind == "history":
            T.enum("outcome", extra["outcome"], _OUTCOMES, extra.get("outcome_known"))
            T.date("closed_at", extra["closed_at"], extra.get("closed_known"))
        ints = {"tech_presentations", "solution_discussants", "people_knowing_final_price",
                "site_visits", "site_visits_accompanied", "one_on_one_meetings", "group_events",
                "customer_visits_90d"}
        for f in CONTRACT["opportunity"].values():
            if f.name in ints:
                T.int(f.name, val[f.name], kn[f.name])
            elif f.type == "bool" and f.name in val:
                T.bool(f.name, val[f.name], kn[f.name])
        T.enum("decision_maker_signal", val["decision_maker_signal"], _DM_SIGNAL, kn["decision_maker_signal"])
        opp = T.to_frame(list(CONTRACT["opportunity"]))

        def keyed(parent):
            K = _Table()
            K.str(CHILD_KEY, pc.take(ids, pa.array(parent)))
            if kind == "history":
                K.date("as_of", as_of_days[parent])
            return K

        ct, g, kn_c = D.ct, self.c_g, self.c_known
        K = keyed(self.c_parent)
        K.str("name", _strings((_SURNAMES, ct["surname"][g]), (tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), ct["initial"][g])))
        titles = tuple(t for row in _TITLES for t in row)
        K.enum("title", ct["title"][g], titles, ct["title_known"][g])
        K.enum("role", ct["role"][g], _ROLES, kn_c["role"])
        K.enum("stance", ct["stance"][g], _STANCES, kn_c["stance"])
        K.enum("mind_share", ct["mind"][g], _LOW_HIGH, kn_c["mind_share"])
        K.enum("heart_share", ct["heart"][g], _LOW_HIGH, kn_c["heart_share"])
        K.bool("is_coach", ct["is_coach"][g], kn_c["is_coach"])
        K.bool("speaks_for_us", ct["speaks"][g], kn_c["speaks_for_us"])
        K.enum("influence", ct["influence"][g], _LMH, kn_c["influence"])
        K.bool("competitor_ties", ct["ties"][g], kn_c["competitor_ties"])
        K.bool("accepts_us", ct["accepts"][g], kn_c["accepts_us"])
        keys = [CHILD_KEY] + (["as_of"] if kind == "history" else [])
        contacts = K.to_frame(keys + list(CONTRACT["contacts"]))

        cp, g, kk = D.cp, self.k_g, self.k_known
        K = keyed(self.k_parent)
        K.enum("name", cp["name"][g], _RIVALS)
        K.bool("incumbent", cp["incumbent"][g], kk["incumbent"])
        K.enum("strength", cp["strength"][g], _LMH, kk["strength"])
        K.bool("relationship_points_known", cp["rel_known"][g], kk["relationship_points_known"])
        K.bool("has_counterproposal", cp["has_cp"][g], kk["has_counterproposal"])
        competitors = K.to_frame(keys + list(CONTRACT["competitors"]))

        pt, g, kp = D.pt, self.p_g, self.p_known
        K = keyed(self.p_parent)
        K.enum("name", pt["name"][g], _INTEGRATORS)
        K.enum("influence_on_decision", pt["influence"][g], _LMH, kp["influence_on_decision"])
        K.bool("competitor_ties_known", pt["ties_known"][g], kp["competitor_ties_known"])
        K.bool("has_informant", pt["informant"][g], kp["has_informant"])
        K.bool("plan_aligned", pt["plan_aligned"][g], kp["plan_aligned"])
        K.enum("customer_attitude", pt["attitude"][g], _ATTITUDES, kp["customer_attitude"])
        K.bool("approached_us", pt["approached"][g], kp["approached_us"])
        partners = K.to_frame(keys + list(CONTRACT["partners"]))
        return {"opportunities": opp, "contacts": contacts, "competitors": competitors,
                "partners": partners}


# --------------------------------------------------------------------- generators
_WIN_INTERCEPT = -2.4
_NOISE_SD = 2.8


def simulate_pipeline(rng, n, as_of, id_offset=0):
    D = _Deals(rng, n)
    z = 0.5 * D.c + rng.standard_normal(n)
    stage = _ordinal(z / math.sqrt(1.25), (-0.412, 0.253, 0.739, 1.282)).astype(np.int64)  # ~34/25/17/14/10%
    within = rng.random(n)
    progress = (stage + within) / 5.0
    obs = _Observed(D, np.arange(n), stage, progress, rng)
    age = np.round(np.exp(np.log(40 + 45 * stage) + 0.5 * rng.standard_normal(n) - 0.2 * D.c)).astype(np.int64) + 1
    created = as_of - age
    entered = np.where(stage == 0, created, created + np.floor(age * (stage / (stage + 1.0)) * (0.6 + 0.4 * rng.random(n))).astype(np.int64))
    entered = np.clip(entered, created, as_of)
    remaining = np.round(np.exp(np.log(25 + 35 * (4 - stage)) + 0.5 * rng.standard_normal(n))).astype(np.int64)
    overdue = rng.random(n) < 0.08
    expected = np.where(overdue, np.maximum(as_of - rng.integers(1, 45, n), entered), as_of + remaining)
    ids = _ids("P-", np.arange(1, n + 1) + id_offset, max(6, len(str(n + id_offset))))
    as_of_days = np.full(n, as_of, np.int64)
    return obs.tables(ids, as_of_days, {"created_at": created, "stage_entered_at": entered,
                                        "expected_close": expected}, "pipeline")


def simulate_history(rng, n, as_of, snapshots, dirty, id_offset=0):
    D = _Deals(rng, n)
    c = D.c
    # last stage reached before the close
    z = 0.8 * D.c + rng.standard_normal(n)
    final = _ordinal(z / math.sqrt(1.64), (-0.994, -0.496, -0.126, 0.468)).astype(np.int64)  # ~16/15/14/22/32%

    # timeline: weak deals last longer and stall in their last stage
    last = as_of - 25
    closed = last - rng.integers(0, 791, n)
    life = np.clip(np.round(np.exp(np.log(200) + 0.5 * rng.standard_normal(n) - 0.2 * c)), 45, 720).astype(np.int64)
    created = closed - life
    w = rng.gamma(2.0, 1.0, (n, 5))
    w[np.arange(n), final] *= np.exp(0.4 * rng.standard_normal(n) - 0.35 * c)
    w[np.arange(5)[None, :] > final[:, None]] = 0.0
    frac = np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)
    entry = created[:, None] + np.floor(life[:, None] * np.concatenate([np.zeros((n, 1)), frac[:, :-1]], axis=1)).astype(np.int64)
    entry[np.arange(5)[None, :] > final[:, None]] = np.iinfo(np.int64).max
    days_in_final = closed - entry[np.arange(n), final]

    # outcome, from the truth at the last stage reached
    fin = _Observed(D, np.arange(n), final, (final + 1) / 5.0, None)
    visible, _share = fin.win_logit(days_in_final)
    hidden = 0.25 * c + _NOISE_SD * rng.standard_normal(n)
    logit = _WIN_INTERCEPT + visible + hidden
    won = rng.random(n) < _sigmoid(logit)
    p_nd = _sigmoid(-2.3 + 0.7 * (final <= 2) - 0.3 * c)
    nd = ~won & (rng.random(n) < p_nd)
    outcome = np.where(won, 0, np.where(nd, 2, 1)).astype(np.int8)
    D.visible_logit, D.logit, D.final_stage = visible, logit, final  # for diagnostics
    lo, hi = snapshots
    k = rng.integers(lo, hi + 1, n)
    idx = np.repeat(np.arange(n), k)
    f = rng.uniform(0.05, 0.97, len(idx))
    order = np.lexsort((f, idx))
    f = f[order]
    day = created[idx] + np.floor(f * life[idx]).astype(np.int64)
    keep = np.ones(len(idx), bool)
    keep[1:] = ~((idx[1:] == idx[:-1]) & (day[1:] == day[:-1]))
    idx, day = idx[keep], day[keep]
    m = len(idx)
    stage = (entry[idx] <= day[:, None]).sum(axis=1) - 1
    ent = entry[idx, stage]
    nxt = np.where(stage < final[idx], entry[idx, np.minimum(stage + 1, 4)], closed[idx])
    within = (day - ent) / np.maximum(nxt - ent, 1)
    progress = (stage + within) / 5.0
    obs = _Observed(D, idx, stage, progress, rng)
    remaining = closed[idx] - day
    expected = day + np.maximum(1, np.round(remaining * np.exp(0.35 * rng.standard_normal(m)))).astype(np.int64)
    overdue = rng.random(m) < 0.08
    expected = np.where(overdue, day - rng.integers(1, 30, m), expected)
    extra = {"created_at": created[idx], "stage_entered_at": ent, "expected_close": expected,
             "outcome": outcome[idx], "closed_at": closed[idx]}
    as_of_days = day.copy()
    if dirty:
        u = rng.random(m)
        is_last = np.ones(m, bool)
        is_last[:-1] = idx[1:] != idx[:-1]
        late = is_last & (u < 0.025)
        as_of_days[late] = closed[idx][late] + rng.integers(0, 21, int(late.sum()))
        miss = ~late & (u < 0.0075)
        extra["outcome_known"] = ~(miss & (rng.random(m) < 0.5))
        extra["closed_known"] = ~miss | ~extra["outcome_known"]
    ids = _ids("H-", idx + 1 + id_offset, max(6, len(str(n + id_offset))))
    return obs.tables(ids, as_of_days, extra, "history"), D
