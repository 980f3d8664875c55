"""The trained win-probability model: probabilities, reasons and the coefficient table.

A :class:`Model` wraps the fitted pipeline ::

    Pipeline([("evidence", EvidenceTransformer(pack)), ("model", LogisticRegression())])

and the rule pack it was trained with.  Everything it explains is plain data.

The logit of a deal is ``intercept + sum(coefficient_j * evidence_j)``; a
feature's **contribution** is ``coefficient_j * evidence_j`` (log-odds), so the
contributions plus the intercept sum to the logit, exactly up to float
rounding.  Evidence is 0/1, so a contribution is either 0 or the coefficient.

Learned points
--------------
To set the learned coefficients beside the expert points of the pack, a
coefficient is rescaled to points with the scorecard convention "20 points
double the odds" (points to double the odds, PDO = 20)::

    learned_points = coefficient * 20 / ln 2       (see :func:`coef_to_points`)

so +20 learned points means the evidence doubles the odds of winning and -20
halves them.  Expert points (0..100 scale of the rule score) and learned points
are on different scales by construction; compare their signs and order.
"""
from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from scoring.errors import ModelError
from scoring.evidence.durable import Engine, Evaluation
from scoring.evidence.pack import RulePack
from scoring.model.features import EvidenceTransformer, as_record_list, feature_layout
from scoring.score.labels import MODEL_LABELS, STAGE_NAMES
from scoring.score.ragged import Ragged

#: points to double the odds
PDO = 20.0
#: the date of records without their own ``as_of`` (see :mod:`scoring.model.features`)
AsOf = str | _dt.date | None
#: how many reasons up, and how many down, a deal's explanation and the nightly output list
TOP_REASONS = 3


def coef_to_points(coef: float | np.ndarray, pdo: float = PDO) -> float | np.ndarray:
    """Log-odds coefficient -> learned points: ``coef * pdo / ln 2``.

    >>> round(coef_to_points(math.log(2)), 6)
    20.0
    """
    return np.asarray(coef, dtype=float) * (pdo / math.log(2)) if np.ndim(coef) else float(coef) * pdo / math.log(2)


def sigmoid(z: float | np.ndarray) -> np.ndarray:
    """The logistic function, ``1 / (1 + exp(-z))``, stable for large ``|z|``."""
    z = np.asarray(z, dtype=float)
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


class Model:
    """A fitted evidence + logistic-regression pipeline and its rule pack.

    Parameters
    ----------
    pipeline : Pipeline
        Fitted ``[("evidence", EvidenceTransformer), ("model", LogisticRegression)]``.
    manifest : dict, optional
        The artifact's manifest (see :mod:`scoring.model.artifact`) when loaded from one.
    path : Path, optional
        The artifact folder it was loaded from.

    Records passed to its methods are validated records
    (:func:`scoring.contract.nested.validate_record`), as a list or a one-column
    ``record`` DataFrame.  ``as_of`` dates the records without their own
    ``as_of`` (default: none may lack it; see :mod:`scoring.model.features`).
    """

    def __init__(self, pipeline: Pipeline, manifest: Mapping[str, Any] | None = None, path: Path | None = None):
        self.pipeline = pipeline
        self.manifest = dict(manifest or {})
        self.path = path
        check_is_fitted(self.evidence, "pack_")
        check_is_fitted(self.lr, "coef_")

    # ----------------------------------------------------------------- parts
    @property
    def evidence(self) -> EvidenceTransformer:
        return self.pipeline.named_steps["evidence"]

    @property
    def lr(self) -> LogisticRegression:
        return self.pipeline.named_steps["model"]

    @property
    def pack(self) -> RulePack:
        return self.evidence.pack_

    @property
    def engine(self) -> Engine:
        return self.evidence.engine_

    @property
    def feature_names(self) -> list[str]:
        return [str(n) for n in self.evidence.get_feature_names_out()]

    @property
    def coef(self) -> np.ndarray:
        return np.asarray(self.lr.coef_[0], dtype=float)

    @property
    def intercept(self) -> float:
        return float(self.lr.intercept_[0])

    @property
    def model_version(self) -> str:
        return str(self.manifest.get("model_id") or f"unsaved ({self.pack.version_tag})")

    # ----------------------------------------------------------------- scoring
    def evidence_matrix(self, records: Any, *, as_of: AsOf = None) -> np.ndarray:
        """The evidence matrix of ``records`` (see :class:`EvidenceTransformer`)."""
        return self.evidence.transform_statuses(*self.evidence.statuses(records, as_of=as_of))

    def _logit_of(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef + self.intercept

    def logit(self, records: Any, *, as_of: AsOf = None) -> np.ndarray:
        """Log-odds of winning, one per record."""
        return self._logit_of(self.evidence_matrix(records, as_of=as_of))

    def predict_proba(self, records: Any, *, as_of: AsOf = None) -> np.ndarray:
        """Probability that each deal is eventually won (1-D, one per record).

        Equal to ``pipeline.predict_proba(records)[:, 1]``.
        """
        return sigmoid(self.logit(records, as_of=as_of))

    def contributions(self, records: Any, *, as_of: AsOf = None) -> pd.DataFrame:
        """Per record and feature, ``coefficient * evidence`` in log-odds.

        Rows sum, with :attr:`intercept`, to :meth:`logit`.
        """
        recs = as_record_list(records)
        X = self.evidence_matrix(recs, as_of=as_of)
        return pd.DataFrame(X * self.coef, columns=self.feature_names,
                            index=pd.Index([r.get("id") for r in recs], name="id"))

    # ----------------------------------------------------------------- reasons
    def feature_title(self, feature: str, lang: str = "en") -> str:
        """The words for an evidence column: the rule's title, ``Unknown: <title>`` or ``Stage: <name>``."""
        lang = lang if lang in STAGE_NAMES else "en"
        titles = self._titles.get(lang)
        if titles is None:  # once per language: one deal's reasons are looked up on every score
            titles = self._titles[lang] = {name: self._title(kind, ref, lang) for name, kind, ref in self._layout}
        try:
            return titles[feature]
        except KeyError:
            raise ModelError(f"{feature!r} is not an evidence column of model {self.model_version}") from None

    def _title(self, kind: str, ref: str, lang: str) -> str:
        if kind == "stage":
            return MODEL_LABELS["stage"][lang].format(STAGE_NAMES[lang].get(ref, ref))
        title = self.pack.rule(ref).text("title", lang)
        return MODEL_LABELS["unknown"][lang].format(title) if kind == "unknown" else title

    @property
    def _layout(self) -> list[tuple[str, str, str | None]]:
        """:func:`feature_layout` of the pack, worked out once per pack."""
        cache = self.__dict__.get("_layout_cache")
        if cache is None or cache[0] is not self.pack:
            cache = self.__dict__["_layout_cache"] = (self.pack, feature_layout(self.pack), {})
        return cache[1]

    @property
    def _titles(self) -> dict[str, dict[str, str]]:
        self._layout  # noqa: B018  (titles are per pack, kept beside its layout)
        return self.__dict__["_layout_cache"][2]

    def _reason_columns(self, X: np.ndarray, top: int) -> tuple[Ragged, Ragged]:
        """Per row of the evidence matrix ``X``: the columns of its ``top`` largest positive and
        ``top`` most negative contributions (``coefficient * evidence``), largest ``|contribution|``
        first, ties by feature name.  The one definition of the order of reasons.

        The evidence is 0/1, so a row's contributions are the coefficients of its 1-columns: with
        the columns ranked once by coefficient, each row's top ``top`` are its first ``top``
        1-columns in that rank (a cumulative sum), with no per-row sort.
        """
        n, coef = X.shape[0], self.coef
        out = []
        for sign, cols in zip((1.0, -1.0), self._ranked(coef)):
            if n == 0 or len(cols) == 0 or top == 0:
                out.append(Ragged(np.zeros(n + 1, np.int64), np.zeros(0, dtype=np.int64)))
                continue
            on = X[:, cols] != 0
            take = on & (np.cumsum(on, axis=1, dtype=np.int32) <= top)
            rows, c = np.nonzero(take)
            out.append(Ragged.from_pairs(rows, c, cols, n))
        return out[0], out[1]

    def _ranked(self, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The columns with a positive, and with a negative, coefficient, each ranked by
        ``|coefficient|`` descending, ties by feature name (worked out once per coefficients)."""
        key = coef.tobytes()
        hit = self.__dict__.get("_ranked_cache")
        if hit is None or hit[0] != key:
            names = self.feature_names
            ranked = tuple(np.asarray(sorted((j for j in range(len(coef)) if sign * coef[j] > 0),
                                             key=lambda j: (-sign * coef[j], names[j])), dtype=np.int64)
                           for sign in (1.0, -1.0))
            hit = self.__dict__["_ranked_cache"] = (key, ranked)
        return hit[1]

    def _reason_dicts(self, X: np.ndarray, top: int, lang: str) -> list[tuple[list[dict], list[dict]]]:
        """Per row of ``X``, its positive and negative reasons as ``{feature, rule, evidence, title, contribution}``."""
        layout = self._layout
        coef = self.coef

        def row(j: int) -> dict:
            name, kind, ref = layout[j]
            return {"feature": name, "rule": ref if kind != "stage" else None, "evidence": kind,
                    "title": self.feature_title(name, lang), "contribution": float(coef[j])}

        pos, neg = self._reason_columns(X, top)
        return [([row(j) for j in pos[i]], [row(j) for j in neg[i]]) for i in range(X.shape[0])]

    def reasons(self, records: Any, top: int = TOP_REASONS, lang: str = "en", *, as_of: AsOf = None) -> list[dict]:
        """Per record, the evidence that moved its log-odds most, up and down.

        Returns one dict per record: ``id``, ``as_of``, ``win_probability``,
        ``logit``, ``intercept``, ``positive`` and ``negative`` (each at most
        ``top`` of ``{feature, rule, evidence, title, contribution}``, largest
        ``|contribution|`` first).
        """
        recs = as_record_list(records)
        X = self.evidence_matrix(recs, as_of=as_of)
        z = self._logit_of(X)
        out = []
        for rec, zi, (pos, neg) in zip(recs, z, self._reason_dicts(X, top, lang)):
            out.append({"id": rec.get("id"), "as_of": rec.get("as_of"), "win_probability": float(sigmoid(zi)),
                        "logit": float(zi), "intercept": self.intercept, "positive": pos, "negative": neg})
        return out

    def explain_evaluation(self, ev: Evaluation, lang: str = "en", top: int = TOP_REASONS) -> dict:
        """The model's part of an explanation (see :func:`scoring.score.explain.explain_record`).

        Keys: ``win_probability``, ``model_version``, ``model_reasons`` (the
        ``top`` positive then the ``top`` negative contributions, each
        ``{feature, rule, evidence, title, contribution}``), ``logit`` and
        ``intercept``.
        """
        X = self.evidence.transform_evaluations([ev])
        z = float(X[0] @ self.coef + self.intercept)
        pos, neg = self._reason_dicts(X, top, lang)[0]
        return {"win_probability": float(sigmoid(z)), "model_version": self.model_version,
                "model_reasons": pos + neg, "logit": z, "intercept": self.intercept}

    def score_statuses(self, status: np.ndarray, stages: Sequence[str],
                       top: int = TOP_REASONS) -> tuple[np.ndarray, Ragged, Ragged]:
        """Probabilities and reasons of many deals from their rule statuses (the batch path).

        Parameters
        ----------
        status : int8 array, shape (n_deals, n_rules)
            Rule status codes, rules in pack order (as the column-wise evaluator gives them).
        stages : sequence of str
            The deals' stages.
        top : int
            Reasons per deal and direction.

        Returns
        -------
        probability : float array
            Win probability per deal (as :meth:`predict_proba`).
        reasons_positive, reasons_negative : Ragged
            Per deal, the feature names of its reasons, ordered as :meth:`reasons` orders them.
        """
        X = self.evidence.transform_statuses(status, stages)
        names = np.asarray(self.feature_names, dtype=object)
        pos, neg = self._reason_columns(X, top)
        return (sigmoid(self._logit_of(X)), Ragged(pos.offsets, names[pos.values]),
                Ragged(neg.offsets, names[neg.values]))

    # ----------------------------------------------------------------- tables
    def coefficient_table(self, lang: str = "en") -> pd.DataFrame:
        """Learned coefficients beside the pack's expert points.

        Columns: ``feature``, ``rule`` (rule id, or None), ``kind`` (the rule's
        kind, ``stage`` or ``intercept``), ``evidence`` (``met``, ``unknown``,
        ``stage`` or ``intercept``), ``title``, ``expert_points`` (the rule's
        points for a ``met`` column; 0 for an ``unknown`` column: unknown earns
        nothing in the rule score; NaN for stage and intercept),
        ``coefficient`` (log-odds) and ``learned_points``
        (``coefficient * 20 / ln 2``, see the module docstring).  The first row
        is the intercept.
        """
        rows = [{"feature": "(intercept)", "rule": None, "kind": "intercept", "evidence": "intercept",
                 "title": MODEL_LABELS["intercept"].get(lang, MODEL_LABELS["intercept"]["en"]), "expert_points": float("nan"),
                 "coefficient": self.intercept, "learned_points": coef_to_points(self.intercept)}]
        for (name, kind, ref), c in zip(feature_layout(self.pack), self.coef):
            if kind == "stage":
                rk, pts, rid = "stage", float("nan"), None
            else:
                r = self.pack.rule(ref)
                rk, rid = r.kind, r.id
                pts = float(r.points) if kind == "met" else 0.0
            rows.append({"feature": name, "rule": rid, "kind": rk, "evidence": kind,
                         "title": self.feature_title(name, lang), "expert_points": pts,
                         "coefficient": float(c), "learned_points": coef_to_points(float(c))})
        return pd.DataFrame(rows)
