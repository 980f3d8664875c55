"""The published model: a scorecard (points table) and everything it computes, numpy only.

The win probability of a deal is an additive logistic model written as a
**points table** (like a credit scorecard)::

    logit = intercept + stage points + sum over rules (points of its status at the deal's stage)
                      + sum over measures (points of the measure's bin)
    win probability = 1 / (1 + exp(-logit))

* **Rules** (checklist items, milestones, red flags, triggers, facts): a rule
  earns its ``met`` points when met (a red flag: raised) and its ``unknown``
  points when its status is unknown; missing is the reference (0 points).
  Unknown is never folded into missing: it has its own points.  A rule earns
  nothing at a stage where it does not apply (``applicable_only``).
  ``met`` points may differ by stage (**stage deviations**, learned with
  shrinkage towards the rule's global points, see :mod:`scoring.model.train`);
  the table lists the global points and, per stage, the deviation added there.
* **Measures** (graded evidence: a count, a level, a duration): each learned
  bin earns its points (monotone in the measure's direction; the lowest bin
  is the reference, 0 points) and "unknown" is a bin of its own
  (:mod:`scoring.model.binning`).  The pack's derived facts (counts and
  computed day counts) can enter the same way.
* **Stage** points (one per stage but the first), for staged packs only.

A term's **contribution** is the points it earns for a deal (log-odds); the
contributions plus the intercept sum to the logit exactly (float rounding
aside).  **Reasons** are the terms that moved a deal most, up and down, in
rule words, naming the bin ("Close-date slips: 3-4 (-0.61)").  Each reason
carries ``sign_warning``: None, or the words saying that its learned weight
goes against the rule's declared direction (possible only in a model trained
with free signs).  **Gains** (:meth:`Model.gains`) are, per deal and rule not
met, the change in win probability if the rule were met, the rest held.

Scoring here uses numpy only: loading a model reads JSON, never a pickle,
and never imports scikit-learn (an older pickled artifact is converted on
load, see :meth:`Model.from_pipeline`).

Scorecard points: ``points = log-odds * 20 / ln 2`` (:func:`coef_to_points`):
+20 points double the odds of winning.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from scoring.contract.schema import STAGE_INDEX, STAGES
from scoring.errors import ModelError
from scoring.evidence.status import MET, STATUS_CODES, UNKNOWN
from scoring.model.binning import UNKNOWN_BIN, Bins
from scoring.model.inputs import (AsOf, NumericInput, RecordEvidence, applies_table, as_record_list,
                                  declared_direction, numeric_values, record_evidence, stage_positions)
from scoring.score.labels import MODEL_LABELS, STAGE_NAMES
from scoring.score.ragged import Ragged

#: points to double the odds
PDO = 20.0
#: how many reasons up, and how many down, a deal's explanation and the nightly output list
TOP_REASONS = 3
UNKNOWN_SUFFIX = "__unknown"
STAGE_PREFIX = "stage="
#: the stage whose points are the intercept's (no stage term)
REFERENCE_STAGE = STAGES[0]
#: the version of :meth:`Model.to_spec`'s layout
SPEC_VERSION = 2
#: where a numeric input comes from
SOURCES = ("measure", "derived")
#: a learned weight within this many log-odds of 0 has no direction to check
SIGN_TOLERANCE = 1e-6
#: the words of a reason's ``sign_warning``, by the declared direction it goes against
SIGN_WARNINGS = {
    "pos": {"en": "learned weight goes against the rule: meeting it should raise the win probability",
            "zh": "学到的权重与规则方向相反：满足该项本应提高赢单概率"},
    "neg": {"en": "learned weight goes against the rule: raising this flag should lower the win probability",
            "zh": "学到的权重与规则方向相反：触发该红旗本应降低赢单概率"},
    "bin": {"en": "learned points go against the measure's declared direction",
            "zh": "学到的分值与该度量声明的方向相反"},
}


def coef_to_points(coef: float | np.ndarray, pdo: float = PDO) -> float | np.ndarray:
    """Log-odds -> scorecard points: ``coef * pdo / ln 2``.

    >>> round(coef_to_points(math.log(2)), 6)
    20.0
    """
    return np.asarray(coef, dtype=float) * (pdo / math.log(2)) if np.ndim(coef) else float(coef) * pdo / math.log(2)


def sigmoid(z: float | np.ndarray) -> np.ndarray:
    """The logistic function, ``1 / (1 + exp(-z))``, stable for large ``|z|``."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))  # one branch, no overflow


class Model:
    """A fitted scorecard and its rule pack.

    Parameters
    ----------
    pack : RulePack
        The pack the model was trained with.
    spec : dict
        The scorecard (:meth:`to_spec`): intercept, stage points, per rule its
        global met points, per-stage deviations and unknown points, and the
        numeric inputs with their bins and points.
    manifest, path :
        The artifact's manifest and folder when loaded from one.
    """

    def __init__(self, pack: Any, spec: Mapping[str, Any], manifest: Mapping[str, Any] | None = None,
                 path: Any = None):
        self.pack = pack
        self.manifest = dict(manifest or {})
        self.path = path
        self._engine = None
        self._set(spec)

    # ----------------------------------------------------------------- spec
    def _set(self, spec: Mapping[str, Any]) -> None:
        rules = self.pack.rules
        R, S = len(rules), len(STAGES)
        ids = [r.id for r in rules]
        try:
            by_id = {d["id"]: d for d in spec["rules"]}
            if sorted(by_id) != sorted(ids):
                raise ModelError(f"the scorecard's rules {sorted(set(by_id) ^ set(ids))[:5]} differ from its pack's")
            self.applicable_only = bool(spec.get("applicable_only", True))
            self.staged = bool(spec.get("staged", True))
            self.signs = str(spec.get("signs", "constrained"))
            self.intercept = float(spec["intercept"])
            self.stage_points = np.array([float(spec.get("stage_points", {}).get(s, 0.0)) for s in STAGES])
            self.met_global = np.array([float(by_id[i]["met"]) for i in ids])
            self.unknown_points = np.array([float(by_id[i].get("unknown") or 0.0) for i in ids])
            self.has_unknown = np.array([r.unknown_when is not None for r in rules], dtype=bool)
            self.met_deviation = np.zeros((S, R))
            for j, i in enumerate(ids):
                for s, v in (by_id[i].get("by_stage") or {}).items():
                    self.met_deviation[STAGE_INDEX[s], j] = float(v)
            self.numeric = [NumericInput.from_dict(d["input"]) for d in spec.get("numeric", [])]
            self.bins = [Bins.from_dict(d["bins"]) for d in spec.get("numeric", [])]
            self.bin_points = [np.asarray([0.0, *map(float, d["steps"])]).cumsum() for d in spec.get("numeric", [])]
            self.numeric_unknown = np.array([float(d["unknown"]) for d in spec.get("numeric", [])])
            self.cv = spec.get("cv")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"the scorecard is damaged ({type(exc).__name__}: {str(exc)[:200]})") from None
        for bp, b in zip(self.bin_points, self.bins):
            if len(bp) != b.n_bins:
                raise ModelError("the scorecard is damaged: a measure's points do not match its bins")
        parts = {"intercept": np.array([self.intercept]), "stage points": self.stage_points,
                 "met points": self.met_global, "unknown points": self.unknown_points,
                 "stage deviations": self.met_deviation, "measure unknown points": self.numeric_unknown,
                 **{f"points of {inp.name}": bp for inp, bp in zip(self.numeric, self.bin_points)}}
        bad = next((k for k, v in parts.items() if not np.all(np.isfinite(v))), None)
        if bad is not None:  # a NaN or infinite point would make every probability NaN
            raise ModelError(f"the scorecard is damaged: its {bad} are not all finite numbers")
        self.direction = np.array([declared_direction(r.kind) for r in rules])
        self.applies = applies_table(self.pack, self.applicable_only)
        #: (stage, rule) -> met points there: global + deviation, 0 where the rule does not apply
        self.met_points = np.where(self.applies, self.met_global[None, :] + self.met_deviation, 0.0)
        self.unk_points = np.where(self.applies & self.has_unknown[None, :], self.unknown_points[None, :], 0.0)
        self._layout()

    def _layout(self) -> None:
        """The terms (contribution columns), in order: per rule its met then unknown term, the
        stage terms, then per numeric input its bin term and its unknown term."""
        terms: list[tuple[str, str, str | None]] = []
        for r, hu in zip(self.pack.rules, self.has_unknown):
            terms.append((r.id, "met", r.id))
            if hu:
                terms.append((r.id + UNKNOWN_SUFFIX, "unknown", r.id))
        if self.staged:
            terms += [(STAGE_PREFIX + s, "stage", s) for s in STAGES if s != REFERENCE_STAGE]
        for inp in self.numeric:
            terms.append((inp.name, "bin", inp.name))
            terms.append((inp.name + UNKNOWN_SUFFIX, "bin_unknown", inp.name))
        self.terms = terms
        self._term_index = {name: k for k, (name, _, _) in enumerate(terms)}
        R = len(self.pack.rules)
        self._met_col = np.array([self._term_index[r.id] for r in self.pack.rules], dtype=np.int64)
        self._unk_rules = np.flatnonzero(self.has_unknown)
        self._unk_col = np.array([self._term_index[self.pack.rules[j].id + UNKNOWN_SUFFIX] for j in self._unk_rules],
                                 dtype=np.int64)
        self._name_order = np.argsort(np.array([t[0] for t in terms], dtype=object), kind="stable").astype(np.int64)
        self._name_rank = np.argsort(self._name_order, kind="stable").tolist()
        self._n_rules = R
        rule_pos = {r.id: i for i, r in enumerate(self.pack.rules)}
        num_rule = {inp.name: inp.rule for inp in self.numeric}
        #: term -> its rule's column of :meth:`rule_contributions` (the last column: stage, derived facts)
        self._rule_group = np.zeros((len(terms), R + 1))
        for k, (_, kind, ref) in enumerate(terms):
            owner = ref if kind in ("met", "unknown") else num_rule.get(ref) if kind in ("bin", "bin_unknown") else None
            self._rule_group[k, rule_pos.get(owner, R)] = 1.0
        self._rule_index = {r.id: j for j, r in enumerate(self.pack.rules)}
        self._numeric_index = {inp.name: m for m, inp in enumerate(self.numeric)}
        # stage terms: (stage, term) points, so a deal's stage contributions are one row lookup
        self._stage_cols = np.array([self._term_index[STAGE_PREFIX + s] for s in STAGES if s != REFERENCE_STAGE]
                                    if self.staged else [], dtype=np.int64)
        self._stage_table = np.zeros((len(STAGES), len(self._stage_cols)))
        if self.staged:
            for k, s in enumerate(x for x in STAGES if x != REFERENCE_STAGE):
                self._stage_table[STAGE_INDEX[s], k] = self.stage_points[STAGE_INDEX[s]]
        # numeric inputs, padded to one array each: cuts (+inf beyond a bin's last), points per bin, where they count
        M = len(self.numeric)
        K = max((len(b.cuts) for b in self.bins), default=0)
        self._cuts = np.full((M, K), np.inf)
        self._bin_pts = np.zeros((M, K + 1))
        for m, (b, bp) in enumerate(zip(self.bins, self.bin_points)):
            self._cuts[m, :len(b.cuts)] = b.cuts
            self._bin_pts[m, :len(bp)] = bp
        self._num_on = np.array([[not inp.stages or s in inp.stages for inp in self.numeric] for s in STAGES],
                                dtype=bool).reshape(len(STAGES), M)
        self._bin_col = np.array([self._term_index[inp.name] for inp in self.numeric], dtype=np.int64)
        self._binu_col = np.array([self._term_index[inp.name + UNKNOWN_SUFFIX] for inp in self.numeric], dtype=np.int64)
        # the sign warning of each term ("pos", "neg", "bin" or None), computed once
        self._warn = [self._warning_kind(k) for k in range(len(terms))]
        self._labels = [b.labels() for b in self.bins]

    def to_spec(self) -> dict[str, Any]:
        """The scorecard as plain data (JSON-ready); ``Model(pack, model.to_spec())`` is the same model."""
        rules = []
        for j, r in enumerate(self.pack.rules):
            dev = {s: float(self.met_deviation[k, j]) for k, s in enumerate(STAGES) if self.met_deviation[k, j] != 0}
            rules.append({"id": r.id, "met": float(self.met_global[j]),
                          "unknown": float(self.unknown_points[j]) if self.has_unknown[j] else None,
                          "by_stage": dev, "direction": int(self.direction[j])})
        numeric = [{"input": inp.to_dict(), "bins": b.to_dict(), "steps": np.diff(bp).tolist(), "unknown": float(u)}
                   for inp, b, bp, u in zip(self.numeric, self.bins, self.bin_points, self.numeric_unknown)]
        return {"version": SPEC_VERSION, "applicable_only": self.applicable_only, "staged": self.staged,
                "signs": self.signs, "intercept": self.intercept,
                "stage_points": {s: float(v) for s, v in zip(STAGES, self.stage_points) if s != REFERENCE_STAGE},
                "rules": rules, "numeric": numeric, "cv": self.cv}

    @classmethod
    def from_pipeline(cls, pipeline: Any, pack: Any, manifest: Mapping[str, Any] | None = None,
                      path: Any = None) -> "Model":
        """The scorecard of an older artifact's pickled pipeline (evidence transformer + logistic
        regression) trained with ``pack``: its coefficients become the met / unknown / stage points,
        no bins, no deviations, signs as learned (free)."""
        ev, lr = pipeline.named_steps["evidence"], pipeline.named_steps["model"]
        if ev.pack_.fingerprint != pack.fingerprint:
            raise ModelError(f"rule pack {pack.version_tag} is not the pack this model was trained with "
                             f"({ev.pack_.version_tag}): retrain to use it")
        names = [str(n) for n in ev.get_feature_names_out()]
        coef = dict(zip(names, np.asarray(lr.coef_[0], dtype=float).tolist()))
        spec = {"applicable_only": bool(getattr(ev, "applicable_only", True)), "staged": True, "signs": "free",
                "intercept": float(lr.intercept_[0]),
                "stage_points": {s: coef.get(STAGE_PREFIX + s, 0.0) for s in STAGES if s != REFERENCE_STAGE},
                "rules": [{"id": r.id, "met": coef[r.id], "unknown": coef.get(r.id + UNKNOWN_SUFFIX)}
                          for r in pack.rules], "numeric": []}
        return cls(pack, spec, manifest, path)

    # ----------------------------------------------------------------- identity
    @property
    def engine(self):
        """The durable-rules engine of the model's pack (built on first use)."""
        if self._engine is None:
            from scoring.evidence.durable import Engine

            self._engine = Engine(self.pack)
        return self._engine

    @property
    def model_version(self) -> str:
        return str(self.manifest.get("model_id") or f"unsaved ({self.pack.version_tag})")

    @property
    def feature_names(self) -> list[str]:
        """The terms' names: rule ids, ``<id>__unknown``, ``stage=<name>``, measure names (and ``__unknown``)."""
        return [t[0] for t in self.terms]

    @property
    def needs(self) -> set[str]:
        """The numeric sources scoring needs besides the statuses (``measure``, ``derived``)."""
        return {inp.source for inp in self.numeric}

    # ----------------------------------------------------------------- numeric inputs
    def numeric_matrix(self, n: int, measures: Any = None, derived: Any = None) -> np.ndarray:
        """``(n, n_numeric)`` float64 (NaN unknown) of the model's numeric inputs (:func:`numeric_values`)."""
        return numeric_values(self.pack, self.numeric, n, measures, derived, f"model {self.model_version}")

    # ----------------------------------------------------------------- contributions
    def _contributions(self, status: np.ndarray, stage_idx: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        """``(n, n_terms)`` contributions in log-odds (vectorised: the batch calls this on chunks)."""
        status = np.asarray(status, dtype=np.int8)
        n = status.shape[0]
        C = np.zeros((n, len(self.terms)), order="F")  # filled column by column
        C[:, self._met_col] = np.where(status == MET, self.met_points[stage_idx], 0.0)
        if len(self._unk_rules):
            C[:, self._unk_col] = np.where(status[:, self._unk_rules] == UNKNOWN,
                                           self.unk_points[stage_idx][:, self._unk_rules], 0.0)
        if len(self._stage_cols):
            C[:, self._stage_cols] = self._stage_table[stage_idx]
        if self.numeric:
            idx = self._bins_of(numeric)
            on = self._num_on[stage_idx]
            known = idx != UNKNOWN_BIN
            pts = self._bin_pts[np.arange(len(self.numeric))[None, :], np.where(known, idx, 0)]
            C[:, self._bin_col] = np.where(on & known, pts, 0.0)
            C[:, self._binu_col] = np.where(on & ~known, self.numeric_unknown[None, :], 0.0)
        return C

    def _bins_of(self, numeric: np.ndarray) -> np.ndarray:
        """Bin of each value, ``(n, n_numeric)`` (as :func:`~scoring.model.binning.bin_index`, all inputs at once)."""
        x = np.asarray(numeric, dtype=np.float64)
        idx = (x[:, :, None] >= self._cuts[None, :, :]).sum(axis=2).astype(np.int64)
        idx[np.isnan(x)] = UNKNOWN_BIN
        return idx

    def contributions_of(self, status: np.ndarray, stages: Sequence[str], *, measures: Any = None,
                         derived: Any = None) -> np.ndarray:
        """Contributions (n, n_terms) from statuses, stages and the numeric inputs."""
        n = np.asarray(status).shape[0]
        return self._contributions(status, stage_positions(stages), self.numeric_matrix(n, measures, derived))

    def rule_contributions(self, status: np.ndarray, stages: Sequence[str], measures: Any = None,
                           derived: Any = None) -> np.ndarray:
        """Per deal, the log-odds each rule contributes (its met or unknown points and the bins of the
        measures it carries), in pack order, then one last column for the rest (the stage's points and
        the bins of the pack's derived facts, which belong to no rule).  ``(n, n_rules + 1)``; with
        :attr:`intercept` each row sums to the logit.  The score store keeps these per deal."""
        return self.rule_totals(self.contributions_of(status, stages, measures=measures, derived=derived))

    def rule_totals(self, C: np.ndarray) -> np.ndarray:
        """:meth:`rule_contributions` from contributions already computed (:meth:`contributions_of`)."""
        return C @ self._rule_group

    def evidence_of(self, records: Any, as_of: AsOf = None) -> RecordEvidence:
        """The rule statuses, stages, derived facts and measures of validated ``records``."""
        return record_evidence(self.pack, records, as_of)

    def statuses(self, records: Any, *, as_of: AsOf = None) -> tuple[np.ndarray, list[str]]:
        """Rule status codes (0 missing, 1 met, 2 unknown; rules in pack order) and stages of ``records``."""
        e = self.evidence_of(records, as_of)
        return e.status, e.stages

    def _evidence_contributions(self, e: RecordEvidence) -> np.ndarray:
        return self.contributions_of(e.status, e.stages, measures=e.measures, derived=e.derived)

    def contributions(self, records: Any, *, as_of: AsOf = None) -> pd.DataFrame:
        """Per record and term, its contribution in log-odds; rows plus :attr:`intercept` sum to :meth:`logit`."""
        recs = as_record_list(records)
        C = self._evidence_contributions(self.evidence_of(recs, as_of))
        return pd.DataFrame(C, columns=self.feature_names, index=pd.Index([r.get("id") for r in recs], name="id"))

    def logit(self, records: Any, *, as_of: AsOf = None) -> np.ndarray:
        """Log-odds of winning, one per record."""
        return self.intercept + self._evidence_contributions(self.evidence_of(records, as_of)).sum(axis=1)

    def predict_proba(self, records: Any, *, as_of: AsOf = None) -> np.ndarray:
        """Probability that each deal is eventually won (1-D, one per record)."""
        return sigmoid(self.logit(records, as_of=as_of))

    def predict_evidence(self, status: np.ndarray, stages: Sequence[str], *, measures: Any = None,
                         derived: Any = None) -> np.ndarray:
        """Win probabilities from already evaluated evidence."""
        return sigmoid(self.intercept + self.contributions_of(status, stages, measures=measures,
                                                              derived=derived).sum(axis=1))

    # ----------------------------------------------------------------- reasons
    def _reason_columns(self, C: np.ndarray, top: int) -> tuple[Ragged, Ragged]:
        """Per row of contributions ``C``: the terms of its ``top`` largest positive and ``top``
        most negative contributions, largest ``|contribution|`` first, ties by term name.
        The one definition of the order of reasons."""
        n, T = C.shape
        out = []
        if n == 1 and top > 0:  # one deal (explain, the API): a plain sort of its few non-zero terms
            row, rank = C[0].tolist(), self._name_rank
            for sign in (1.0, -1.0):
                ks = sorted((k for k, v in enumerate(row) if sign * v > 0), key=lambda k: (-sign * row[k], rank[k]))
                out.append(Ragged(np.array([0, min(top, len(ks))], np.int64), np.array(ks[:top], dtype=np.int64)))
            return out[0], out[1]
        # terms in name order, row-major (argmax along a row is then a contiguous scan), made once
        W = np.ascontiguousarray(C[:, self._name_order]) if n and T and top else None
        for sign in (1.0, -1.0):
            if W is None:
                out.append(Ragged(np.zeros(n + 1, np.int64), np.zeros(0, dtype=np.int64)))
                continue
            # columns in term-name order, then k passes of argmax (its first maximum: the smallest name among
            # ties), each taking its pick out: larger contribution first, ties by term name, as for one deal
            V = W * sign
            k = min(top, T)
            rows = np.arange(n)
            picks, vals = np.empty((n, k), np.int64), np.empty((n, k))
            for i in range(k):
                j = V.argmax(axis=1)
                picks[:, i], vals[:, i] = j, V[rows, j]
                V[rows, j] = -np.inf
            keep = vals > 0  # a prefix of each row: the values come largest first
            offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int64)
            out.append(Ragged(offsets, self._name_order[picks[keep]].astype(np.int64)))
        return out[0], out[1]

    def _warning_kind(self, term: int) -> str | None:
        name, kind, ref = self.terms[term]
        if kind == "met":
            j = self._rule_index[ref]
            d = self.direction[j]
            pts = self.met_points[:, j][self.applies[:, j]]
            if d and np.any(d * pts < -SIGN_TOLERANCE):
                return "pos" if d > 0 else "neg"
        elif kind == "bin":
            m = self._numeric_index[ref]
            b = self.bins[m]
            if b.declared and b.direction and np.any(b.direction * np.diff(self.bin_points[m]) < -SIGN_TOLERANCE):
                return "bin"
        return None

    def sign_warning(self, term: int, lang: str = "en") -> str | None:
        """Words when the learned points of term ``term`` go against its declared direction, else None."""
        k = self._warn[term]
        return None if k is None else SIGN_WARNINGS[k].get(lang) or SIGN_WARNINGS[k]["en"]

    def term_title(self, term: int, lang: str = "en", bin_idx: int | None = None) -> str:
        """The words of a term: the rule's title, ``Unknown: <title>``, ``Stage: <name>``, or
        ``<measure>: <bin>``."""
        lang = lang if lang in STAGE_NAMES else "en"
        name, kind, ref = self.terms[term]
        if kind == "stage":
            return MODEL_LABELS["stage"][lang].format(STAGE_NAMES[lang].get(ref, ref))
        if kind in ("met", "unknown"):
            title = self.pack.rule(ref).text("title", lang)
            return MODEL_LABELS["unknown"][lang].format(title) if kind == "unknown" else title
        m = self._numeric_index[ref]
        inp, b = self.numeric[m], self.bins[m]
        if kind == "bin_unknown":
            return MODEL_LABELS["unknown"][lang].format(inp.name_words())
        if bin_idx is None:
            return inp.name_words()
        edges = [-math.inf, *b.cuts, math.inf]
        lo = b.lowest if bin_idx == 0 else edges[bin_idx]
        hi = edges[bin_idx + 1] - 1 if math.isfinite(edges[bin_idx + 1]) else None
        return inp.title(self._labels[m][bin_idx], lo, hi, lang)

    def feature_title(self, feature: str, lang: str = "en") -> str:
        """The words for a term, by name."""
        if feature not in self._term_index:
            raise ModelError(f"{feature!r} is not a term of model {self.model_version}")
        return self.term_title(self._term_index[feature], lang)

    def _reason(self, k: int, c: float, bins_row: np.ndarray | None, lang: str) -> dict[str, Any]:
        name, kind, ref = self.terms[k]
        bin_idx = rule = label = None
        if kind in ("met", "unknown"):
            rule = ref
        elif kind in ("bin", "bin_unknown"):
            m = self._numeric_index[ref]
            rule = self.numeric[m].rule
            if kind == "bin" and bins_row is not None:
                bin_idx = int(bins_row[m])
                label = self._labels[m][bin_idx]
        return {"feature": name, "rule": rule, "evidence": kind, "title": self.term_title(k, lang, bin_idx),
                "contribution": float(c), "bin": label, "sign_warning": self.sign_warning(k, lang)}

    def _reason_dicts(self, C: np.ndarray, numeric: np.ndarray, top: int, lang: str) -> list[tuple[list, list]]:
        pos, neg = self._reason_columns(C, top)
        B = self._bins_of(numeric)
        return [([self._reason(k, C[i, k], B[i], lang) for k in pos[i]],
                 [self._reason(k, C[i, k], B[i], lang) for k in neg[i]]) for i in range(C.shape[0])]

    def reasons(self, records: Any, top: int = TOP_REASONS, lang: str = "en", *, as_of: AsOf = None) -> list[dict]:
        """Per record, the terms that moved its log-odds most, up and down.

        One dict per record: ``id``, ``as_of``, ``win_probability``, ``logit``,
        ``intercept``, ``positive`` and ``negative`` (each at most ``top`` of
        ``{feature, rule, evidence, title, contribution, bin, sign_warning}``,
        largest ``|contribution|`` first).
        """
        recs = as_record_list(records)
        e = self.evidence_of(recs, as_of)
        numeric = self.numeric_matrix(len(recs), e.measures, e.derived)
        C = self._contributions(e.status, stage_positions(e.stages), numeric)
        z = self.intercept + C.sum(axis=1)
        return [{"id": rec.get("id"), "as_of": rec.get("as_of"), "win_probability": float(sigmoid(zi)),
                 "logit": float(zi), "intercept": self.intercept, "positive": pos, "negative": neg}
                for rec, zi, (pos, neg) in zip(recs, z, self._reason_dicts(C, numeric, top, lang))]

    def _evaluation_arrays(self, ev: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        status = np.array([[STATUS_CODES[ev.status[r.id]] for r in self.pack.rules]], dtype=np.int8)
        numeric = self.numeric_matrix(1, getattr(ev, "measures", None), getattr(ev, "derived", None))
        return status, stage_positions([ev.stage]), numeric

    def explain_evaluation(self, ev: Any, lang: str = "en", top: int = TOP_REASONS) -> dict:
        """The model's part of one deal's explanation (see :func:`scoring.score.explain.explain_record`).

        Keys: ``win_probability``, ``model_version``, ``model_reasons`` (the
        ``top`` positive then the ``top`` negative reasons, each
        ``{feature, rule, evidence, title, contribution, bin, sign_warning}``),
        ``logit``, ``intercept`` and ``gains`` (rule id -> change in win
        probability if that rule not met were met, :meth:`gains`).
        """
        status, stage_idx, numeric = self._evaluation_arrays(ev)
        C = self._contributions(status, stage_idx, numeric)
        z = float(self.intercept + C[0].sum())
        pos, neg = self._reason_dicts(C, numeric, top, lang)[0]
        g = self._gains(status, stage_idx, C)[0]
        ok = np.flatnonzero(~np.isnan(g))
        ids = [r.id for r in self.pack.rules]
        gains = {ids[j]: v for j, v in zip(ok.tolist(), g[ok].tolist())}
        return {"win_probability": float(sigmoid(z)), "model_version": self.model_version,
                "model_reasons": pos + neg, "logit": z, "intercept": self.intercept, "gains": gains}

    def score_statuses(self, status: np.ndarray, stages: Sequence[str], top: int = TOP_REASONS, *,
                       measures: Any = None, derived: Any = None) -> tuple[np.ndarray, Ragged, Ragged]:
        """Probabilities and reasons of many deals from their evidence (the batch path).

        Parameters
        ----------
        status : int8 array, shape (n_deals, n_rules)
            Rule status codes, rules in pack order (as the column-wise evaluator gives them).
        stages : sequence of str
        top : int
            Reasons per deal and direction.
        measures, derived :
            The evaluator's measures array and derived-facts DataFrame; needed only by a model with
            numeric inputs (:attr:`needs`), which refuses to score without them.

        Returns
        -------
        probability, reasons_positive, reasons_negative (term names, ordered as :meth:`reasons`).
        """
        return self.score_contributions(self.contributions_of(status, stages, measures=measures, derived=derived), top)

    def score_contributions(self, C: np.ndarray, top: int = TOP_REASONS) -> tuple[np.ndarray, Ragged, Ragged]:
        """:meth:`score_statuses` from contributions already computed (:meth:`contributions_of`)."""
        names = np.asarray(self.feature_names, dtype=object)
        pos, neg = self._reason_columns(C, top)
        return (sigmoid(self.intercept + C.sum(axis=1)), Ragged(pos.offsets, names[pos.values]),
                Ragged(neg.offsets, names[neg.values]))

    # ----------------------------------------------------------------- gains
    def _gains(self, status: np.ndarray, stage_idx: np.ndarray, C: np.ndarray) -> np.ndarray:
        status = np.asarray(status, dtype=np.int8)
        z = self.intercept + C.sum(axis=1)
        now = C[:, self._met_col].copy()
        if len(self._unk_rules):
            now[:, self._unk_rules] += C[:, self._unk_col]
        z_met = z[:, None] - now + self.met_points[stage_idx]
        g = sigmoid(z_met) - sigmoid(z)[:, None]
        g[(status == MET) | ~self.applies[stage_idx]] = np.nan
        return g

    def gains(self, status: np.ndarray, stages: Sequence[str], *, measures: Any = None,
              derived: Any = None) -> np.ndarray:
        """``(n_deals, n_rules)``: for each rule not met that applies at the deal's stage, the change
        in win probability if it were met, every other term held (NaN for rules met or not
        applying).  Negative for a red flag (raising it would lower the probability); the next
        actions rank the checklist items and milestones by it."""
        stage_idx = stage_positions(stages)
        C = self._contributions(status, stage_idx, self.numeric_matrix(np.asarray(status).shape[0], measures, derived))
        return self._gains(status, stage_idx, C)

    def gains_of(self, records: Any, *, as_of: AsOf = None) -> list[dict[str, float]]:
        """Per record, rule id -> gain (:meth:`gains`) for its rules not met."""
        e = self.evidence_of(records, as_of)
        g = self.gains(e.status, e.stages, measures=e.measures, derived=e.derived)
        ids = [r.id for r in self.pack.rules]
        return [{rid: float(v) for rid, v in zip(ids, row) if not np.isnan(v)} for row in g]

    # ----------------------------------------------------------------- tables
    def points_table(self, lang: str = "en") -> pd.DataFrame:
        """The scorecard as a table: one row per term, stage deviation and bin.

        Columns: ``term`` (a term name, see :attr:`feature_names`), ``rule``,
        ``kind`` (rule kind, ``stage``, ``measure``, ``derived`` or
        ``intercept``), ``evidence`` (``met``, ``unknown``, ``stage``,
        ``bin``, ``intercept``), ``stage`` (the stage a deviation row adds
        at; None for rows that hold at every stage), ``bin`` (a bin's words;
        ``step``: what it adds to the bin below, the figure the sign check reads),
        ``title``, ``expert_points`` (a met row's points in the pack),
        ``log_odds`` (what the row adds to the logit), ``points`` (``log_odds
        * 20 / ln 2``), ``direction`` (declared: +1, -1, 0) and ``sign``
        (``agrees``, ``zero`` (held at 0: the fit would go the other way or
        finds nothing), ``contradicts`` or ``neutral``).  A deal's logit is the
        intercept plus the rows that apply to it; a bin's row holds the bin's
        total points (not a step).
        """
        def check(d: int, v: float) -> str:
            if not d:
                return "neutral"
            return "zero" if abs(v) <= SIGN_TOLERANCE else "agrees" if d * v > 0 else "contradicts"

        def row(term, rule, kind, evidence, title, log_odds, direction=0, sign="neutral", stage=None, bin=None,
                expert=float("nan"), step=float("nan")):
            return {"term": term, "rule": rule, "kind": kind, "evidence": evidence, "stage": stage, "bin": bin,
                    "title": title, "expert_points": expert, "log_odds": float(log_odds), "direction": int(direction),
                    "sign": sign, "step": float(step)}

        rows = [row("(intercept)", None, "intercept", "intercept",
                    MODEL_LABELS["intercept"].get(lang, MODEL_LABELS["intercept"]["en"]), self.intercept)]
        for k, (name, kind, ref) in enumerate(self.terms):
            title = self.term_title(k, lang) if kind != "bin" else None
            if kind in ("met", "unknown"):
                j = self._rule_index[ref]
                r = self.pack.rules[j]
                if kind == "unknown":
                    rows.append(row(name, r.id, r.kind, "unknown", title, self.unknown_points[j], expert=0.0))
                    continue
                d = int(self.direction[j])
                rows.append(row(name, r.id, r.kind, "met", title, self.met_global[j], d, check(d, self.met_global[j]),
                                expert=float(r.points)))
                for si, s in enumerate(STAGES):
                    dev = self.met_deviation[si, j]
                    if dev != 0 and self.applies[si, j]:
                        rows.append(row(name, r.id, r.kind, "met", title, dev, d, check(d, self.met_points[si, j]),
                                        stage=s))
            elif kind == "stage":
                rows.append(row(name, None, "stage", "stage", title, self.stage_points[STAGE_INDEX[ref]], stage=ref))
            elif kind == "bin":
                m = self._numeric_index[ref]
                inp, b = self.numeric[m], self.bins[m]
                d = b.direction if b.declared else 0
                steps = np.diff(self.bin_points[m])
                for bi, label in enumerate(b.labels()):
                    rows.append(row(name, inp.rule, inp.source, "bin", self.term_title(k, lang, bi),
                                    self.bin_points[m][bi], d, "neutral" if bi == 0 else check(d, steps[bi - 1]),
                                    bin=label, step=steps[bi - 1] if bi else float("nan")))
            else:
                m = self._numeric_index[ref]
                rows.append(row(name, self.numeric[m].rule, self.numeric[m].source, "unknown", title,
                                self.numeric_unknown[m], bin="unknown"))
        df = pd.DataFrame(rows)
        df["points"] = coef_to_points(df["log_odds"].to_numpy(float))
        return df[["term", "rule", "kind", "evidence", "stage", "bin", "title", "expert_points", "log_odds", "points",
                   "direction", "sign", "step"]]

    def coefficient_table(self, lang: str = "en") -> pd.DataFrame:
        """The points table's met, unknown, stage and intercept rows (no deviations, no bins), with
        ``feature``, ``coefficient`` (log-odds) and ``learned_points`` (scorecard points)."""
        t = self.points_table(lang)
        t = t[(t["stage"].isna() | (t["evidence"] == "stage")) & (t["evidence"] != "bin")
              & ~((t["evidence"] == "unknown") & (t["kind"].isin(SOURCES)))]
        return t.rename(columns={"term": "feature", "log_odds": "coefficient", "points": "learned_points"}
                        )[["feature", "rule", "kind", "evidence", "title", "expert_points", "coefficient",
                           "learned_points", "sign"]].reset_index(drop=True)
