"""What the scorecard reads, for fitting and for scoring: records -> rule statuses, stages and
the graded inputs (the pack's measures, and optionally its derived facts) as arrays.

:class:`NumericInput` describes one graded input; :func:`pack_numeric_inputs` lists a pack's;
:func:`record_evidence` evaluates records column-wise; :func:`numeric_values` lines up an
evaluator's measures and derived facts with a model's inputs.  :mod:`scoring.model.scorecard`
(the model) and :mod:`scoring.model.fit` / :mod:`scoring.model.train` (fitting) share them.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from scoring.contract.schema import STAGE_INDEX, STAGES
from scoring.errors import ModelError, RecordError

#: the column of a DataFrame of records
RECORD_COLUMN = "record"
#: a date to evaluate records as of: 'YYYY-MM-DD', a date, or None (each record's own)
AsOf = str | _dt.date | None

def declared_direction(kind: str) -> int:
    """The direction a rule of ``kind`` should move the win probability when met:
    +1 checklist items and milestones, -1 red flags, 0 (neutral) triggers, facts and anything else."""
    return {"checklist": 1, "milestone": 1, "red_flag": -1}.get(kind, 0)


def is_staged(pack: Any) -> bool:
    """Whether the pack's rules are tied to stages (:attr:`RulePack.staged`; a pack without stages gets no
    stage terms, and its records may lack a stage)."""
    staged = getattr(pack, "staged", None)
    if staged is not None:
        return bool(staged)
    return any(getattr(r, "stage", None) or getattr(r, "stages", None) for r in pack.rules)


def applies_table(pack: Any, applicable_only: bool = True) -> np.ndarray:
    """``(n_stages, n_rules)`` bool: whether each rule counts at each stage."""
    if not applicable_only:
        return np.ones((len(STAGES), len(pack.rules)), dtype=bool)
    return np.array([[r.applies_at(s) for r in pack.rules] for s in STAGES], dtype=bool)


@dataclass(frozen=True)
class NumericInput:
    """A graded input of the model: a pack measure or a derived fact, entering as bins.

    ``direction`` is the declared one (+1 more is better, -1 more is worse, 0
    none declared); ``stages`` the stages where it counts (empty: all);
    ``rule`` the rule it grades (None for a derived fact); ``label`` its words
    per language, a template with ``{value}`` (and ``{word}`` for a level,
    from ``words``: value -> word).
    """

    name: str
    source: str
    label: Mapping[str, str]
    direction: int
    stages: tuple[str, ...] = ()
    rule: str | None = None
    kind: str = "count"
    words: tuple[tuple[float, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "label": dict(self.label), "direction": self.direction,
                "stages": list(self.stages), "rule": self.rule, "kind": self.kind,
                "words": [[v, w] for v, w in self.words]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NumericInput":
        label = d["label"] if isinstance(d["label"], Mapping) else {"en": str(d["label"])}
        return cls(str(d["name"]), str(d["source"]), {str(k): str(v) for k, v in label.items()}, int(d["direction"]),
                   tuple(d.get("stages") or ()), d.get("rule"), str(d.get("kind", "count")),
                   tuple((float(v), str(w)) for v, w in d.get("words") or ()))

    def title(self, bin_label: str, lo: float | None = None, hi: float | None = None, lang: str = "en") -> str:
        """The input's words for one bin (``"close date pushed 3-4 times"``); ``lo`` and ``hi``
        are the bin's smallest and largest whole values, for a level's words."""
        tmpl = self.label.get(lang) or self.label.get("en") or "{value}"
        words = dict(self.words)
        word = ""
        if words:
            ks = sorted(words)
            a = words.get(lo, words[ks[0]]) if lo is not None else words[ks[0]]
            b = words.get(hi, words[ks[-1]]) if hi is not None else words[ks[-1]]
            word = a if a == b else f"{a} .. {b}"
        try:
            return tmpl.format(value=bin_label, word=word)
        except (KeyError, IndexError, ValueError):
            return f"{self.name}: {bin_label}"

    def name_words(self) -> str:
        """The input's name in words (for its unknown bin)."""
        return self.name.replace("_", " ")


def pack_numeric_inputs(pack: Any, derived: bool = False) -> list[NumericInput]:
    """The graded inputs a pack offers: its measures (``pack.compiled.measures``, when the
    pack declares any), then, with ``derived``, its derived facts (counts and computed fields)."""
    out = []
    for m in getattr(pack.compiled, "measures", ()) or ():
        label = m.label if isinstance(m.label, Mapping) else {"en": str(m.label)}
        out.append(NumericInput(m.name, "measure", dict(label), int(m.direction), tuple(m.stages or ()), m.rule,
                                str(m.kind), tuple(getattr(m, "words", ()) or ())))
    if derived:
        for d in pack.compiled.derived:
            kind = "count" if type(d).__name__ == "Count" else "duration"
            out.append(NumericInput(d.name, "derived", {"en": d.name.replace("_", " ") + ": {value}"}, 0, (), None,
                                    kind))
    return out


# --------------------------------------------------------------------------- records -> evidence
def as_record_list(X: Any) -> list[Mapping]:
    """Records given as a list of dicts, a pandas Series of dicts or a one-column ``record`` DataFrame."""
    if isinstance(X, pd.DataFrame):
        if RECORD_COLUMN not in X.columns or X.shape[1] != 1:
            raise ModelError(f"a DataFrame input must have exactly one column {RECORD_COLUMN!r} holding record "
                             f"dicts; got columns {list(X.columns)}")
        items = X[RECORD_COLUMN].tolist()
    elif isinstance(X, pd.Series):
        items = X.tolist()
    elif isinstance(X, np.ndarray):
        items = (X[:, 0] if X.ndim == 2 and X.shape[1] == 1 else X).tolist()
    elif isinstance(X, Sequence) and not isinstance(X, (str, bytes)):
        items = list(X)
    else:
        raise ModelError(f"expected a sequence of record dicts or a DataFrame with a {RECORD_COLUMN!r} column, "
                         f"not {type(X).__name__}")
    for i, r in enumerate(items):
        if not isinstance(r, Mapping):
            raise ModelError(f"item {i} is a {type(r).__name__}, not a record dict")
    return items


def iso_day(as_of: AsOf) -> str | None:
    """``as_of`` as 'YYYY-MM-DD' (None stays None)."""
    if as_of is None:
        return None
    if isinstance(as_of, _dt.datetime):
        return as_of.date().isoformat()
    if isinstance(as_of, _dt.date):
        return as_of.isoformat()
    try:
        return _dt.date.fromisoformat(str(as_of)).isoformat()
    except ValueError:
        raise ModelError(f"as_of must be a date written YYYY-MM-DD, not {as_of!r}") from None


@dataclass
class RecordEvidence:
    """What the rules found in records, column-wise: status codes (rules in pack order),
    stages, the derived facts (DataFrame) and the measures (float array, NaN unknown; None
    when the pack has none)."""

    status: np.ndarray
    stages: list[str]
    derived: pd.DataFrame | None
    measures: np.ndarray | None


def record_evidence(pack: Any, records: Any, as_of: AsOf = None) -> RecordEvidence:
    """Evaluate the pack on validated ``records`` with the column-wise evaluator.

    A record without its own ``as_of`` is evaluated as of ``as_of``; with none
    given such a record raises :class:`~scoring.errors.RecordError`, so the
    same records always give the same evidence (the clock is never read).
    """
    from scoring.contract.frames import records_to_frames
    from scoring.evidence.columnar import ColumnarEvaluator

    recs = as_record_list(records)
    ids = [r.id for r in pack.rules]
    stages = [r.get("stage") for r in recs]
    if not recs:
        return RecordEvidence(np.zeros((0, len(ids)), np.int8), stages, None, None)
    day = iso_day(as_of)
    if day is None:
        undated = next((r for r in recs if not r.get("as_of")), None)
        if undated is not None:
            raise RecordError(undated.get("id"), "as_of",
                              "no as_of, and no date given for such records: give the record its as_of, "
                              "or pass as_of= to the model")
        day = recs[0]["as_of"]
    ev = ColumnarEvaluator(pack).evaluate(records_to_frames(recs, pack.fields), day)
    measures = getattr(ev, "measures", None)
    return RecordEvidence(np.ascontiguousarray(ev.status[ids].to_numpy(dtype=np.int8)), stages, ev.derived,
                          None if measures is None else np.asarray(measures, dtype=np.float64))


def numeric_values(pack: Any, inputs: Sequence[NumericInput], n: int, measures: Any = None, derived: Any = None,
                   who: str = "the model") -> np.ndarray:
    """``(n, len(inputs))`` float64 (NaN unknown) from the evaluator's measures (an array with the
    pack's measures in order, or a mapping name -> values) and derived facts (a DataFrame, or a
    mapping name -> value(s)).  Raises ModelError when an input's source is not given."""
    out = np.full((n, len(inputs)), np.nan)
    if n == 1 and all(isinstance(x, Mapping) or x is None for x in (measures, derived)):  # one record (explain)
        try:
            vals = [(measures if inp.source == "measure" else derived)[inp.name] for inp in inputs]
        except (KeyError, TypeError):
            pass  # the general path below names what is missing
        else:
            out[0] = [np.nan if v is None else v for v in vals]
            return out
    names = [m.name for m in getattr(pack.compiled, "measures", ()) or ()]
    for k, inp in enumerate(inputs):
        src = measures if inp.source == "measure" else derived
        if src is None:
            raise ModelError(f"{who} scores with the {inp.source} {inp.name!r}: pass the evaluator's "
                             f"{'measures' if inp.source == 'measure' else 'derived facts'} too")
        if isinstance(src, np.ndarray) and src.ndim == 2:
            col = src[:, names.index(inp.name)]
        elif isinstance(src, pd.DataFrame):
            col = src[inp.name].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            v = src[inp.name]
            col = np.asarray([np.nan if v is None else v] if np.ndim(v) == 0 else
                             [np.nan if x is None else x for x in v], dtype=np.float64)
        out[:, k] = col
    return out


def stage_positions(stages: Sequence[str | None]) -> np.ndarray:
    """Stage positions; a record without a stage (a pack without stages) counts as the first stage."""
    try:
        return np.fromiter((0 if s is None else STAGE_INDEX[s] for s in stages), dtype=np.int64, count=len(stages))
    except KeyError as exc:
        raise ModelError(f"unknown stage {exc.args[0]!r}: one of {', '.join(STAGES)}") from None


# --------------------------------------------------------------------------- the model
