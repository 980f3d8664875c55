"""The analysis-meeting flags that are not rules of the pack: STALLED, a new slip (T2) and T3.

* ``STALLED``: the deal has sat in its stage longer than the stage's threshold
  (:data:`DEFAULT_STALL_DAYS`).
* ``T2`` is a rule of the pack (the close date was pushed or has passed).  Against
  the previous run only a **new** slip raises it: the expected close moved later,
  or ``close_date_pushes`` grew, since the last run; an old slip does not flag a
  meeting every night.
* ``T3``: since the previous run the win probability dropped by more than
  :data:`DEFAULT_T3_DROP`, or a new red flag appeared.

Each flag is defined here once, column-wise (numpy arrays, one entry per deal);
the single-record path (:class:`scoring.api.Scorer`) calls the same functions on
one row.  Their titles are in :data:`scoring.score.labels.FLAG_TITLES`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from scoring.contract.schema import STAGE_INDEX, STAGES
from scoring.score import DEFAULT_STALL_DAYS, DEFAULT_T3_DROP
from scoring.evidence.compiled import days_between
from scoring.score.ragged import Ragged

#: The codes these flags add to a deal's ``analysis_meeting`` list.
STALLED = "STALLED"
T2 = "T2"
T3 = "T3"



@dataclass
class Thresholds:
    """Settable thresholds of the flags.

    Parameters
    ----------
    t3_drop : float
        T3 when the win probability dropped by more than this since the last run.
    stall_days : mapping of stage -> days
        STALLED when a deal has been in its stage for more days than this; a stage
        not in the mapping never stalls.
    """

    t3_drop: float = DEFAULT_T3_DROP
    stall_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_STALL_DAYS))

    def stall_limits(self) -> np.ndarray:
        """The stall threshold of each stage, indexed like :data:`scoring.contract.schema.STAGES` (inf: never)."""
        return np.array([self.stall_days.get(s, math.inf) for s in STAGES], dtype=float)


def stalled(stage_idx: np.ndarray, days_in_stage: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """STALLED, per deal: more days in its stage than the stage's threshold.

    Parameters
    ----------
    stage_idx : int array
        The deals' stages as indices into ``STAGES``.
    days_in_stage : float array
        Days since the deal entered its stage; NaN when unknown (never stalled).
    thresholds : Thresholds
    """
    with np.errstate(invalid="ignore"):
        return np.asarray(days_in_stage, dtype=float) > thresholds.stall_limits()[np.asarray(stage_idx, dtype=np.int64)]


def is_stalled(stage: str, stage_entered_at: str | None, as_of: str, thresholds: Thresholds) -> bool:
    """STALLED for one validated record (:func:`stalled` on one row).

    >>> is_stalled("bidding", "2026-01-01", "2026-03-01", Thresholds())
    True
    """
    days = days_between(stage_entered_at, as_of)
    return bool(stalled(np.array([STAGE_INDEX[stage]]), np.array([math.nan if days is None else days]),
                        thresholds)[0])


def new_red_flags(seen: np.ndarray, now: Ragged | Iterable, before: Ragged | Iterable) -> np.ndarray:
    """Per deal seen in the previous run: does it have a red flag it did not have then?

    ``now`` and ``before`` hold one list (or None) of red-flag codes per deal, or a :class:`Ragged`
    of them; or a :class:`Ragged` each of integer codes (one number per flag, ``-1`` for a flag the
    previous run never had).
    """
    now = now if isinstance(now, Ragged) else Ragged.from_lists(list(now))
    before = before if isinstance(before, Ragged) else Ragged.from_lists(list(before))
    seen = np.asarray(seen, dtype=bool)
    out = np.zeros(len(now), dtype=bool)
    if not len(now.values):
        return out
    a, b = now.values, before.values
    if a.dtype.kind not in "iu" or b.dtype.kind not in "iu":  # texts: number them
        known: dict[str, int] = {}
        b = np.fromiter((known.setdefault(v, len(known)) for v in b), dtype=np.int64, count=len(b))
        a = np.fromiter((known.get(v, -1) for v in a), dtype=np.int64, count=len(a))
    k = int(max(a.max(initial=-1), b.max(initial=-1))) + 2
    key_now = now.rows() * k + (a + 1)
    key_before = before.rows() * k + (b + 1)
    out[now.rows()[~np.isin(key_now, key_before)]] = True
    return seen & out


def new_slip(seen: np.ndarray, close_now: np.ndarray, close_before: np.ndarray,
             pushes_now: np.ndarray, pushes_before: np.ndarray) -> np.ndarray:
    """Per deal seen in the previous run: a new slip (T2) since then.

    The expected close (``YYYY-MM-DD`` text, or None) moved later, or
    ``close_date_pushes`` (float, NaN when unknown) grew.
    """
    seen = np.asarray(seen, dtype=bool)
    now, before = iso_texts(close_now), iso_texts(close_before)
    moved = seen & (now > before) & (now != "") & (before != "")  # ISO dates: the later one is the larger text
    pushed = seen & (np.nan_to_num(pushes_now, nan=-1) > np.nan_to_num(pushes_before, nan=np.inf))
    return moved | pushed


def iso_texts(values: Iterable) -> np.ndarray:
    """Date texts as a numpy unicode array, ``""`` for anything that is not text (None, NaN, a number)."""
    a = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if a.dtype.kind == "U":
        return a
    return np.array([v if isinstance(v, str) else "" for v in a.tolist()], dtype=str) if len(a) else \
        np.zeros(0, dtype="U1")


def t3(seen: np.ndarray, p_now: np.ndarray, p_before: np.ndarray, new_red_flag: np.ndarray,
       thresholds: Thresholds) -> np.ndarray:
    """T3, per deal seen in the previous run: the probability dropped by more than
    ``thresholds.t3_drop``, or a new red flag appeared (see :func:`new_red_flags`)."""
    with np.errstate(invalid="ignore"):
        return seen & ((p_before - p_now > thresholds.t3_drop) | new_red_flag)


def with_history_flags(meetings: Ragged, seen: np.ndarray, slipped: np.ndarray, t3_mask: np.ndarray) -> Ragged:
    """A run's meeting flags refined with the previous run: T2 only for a new slip
    (deals not in the previous run keep the record's own T2), and T3."""
    meetings = remove_flag(meetings, seen & ~slipped, T2)
    meetings = append_flag(meetings, slipped & ~has_flag(meetings, T2), T2)
    return append_flag(meetings, t3_mask & ~has_flag(meetings, T3), T3)


# --------------------------------------------------------------------------- flag lists


def append_flag(r: Ragged, mask: np.ndarray, flag: str) -> Ragged:
    """Append ``flag`` to the lists of the rows where ``mask`` is true."""
    if not mask.any():
        return r
    n = len(r)
    counts = np.diff(r.offsets) + mask
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    values = np.empty(offsets[-1], dtype=object)
    old_pos = np.arange(len(r.values)) + np.repeat(offsets[:-1] - r.offsets[:-1], np.diff(r.offsets))
    values[old_pos] = r.values
    values[offsets[1:][mask] - 1] = flag
    return Ragged(offsets, values)


def remove_flag(r: Ragged, mask: np.ndarray, flag: str) -> Ragged:
    """Remove ``flag`` from the lists of the rows where ``mask`` is true."""
    if not len(r.values):
        return r
    row = np.repeat(np.arange(len(r)), np.diff(r.offsets))
    drop = (r.values == flag) & mask[row]
    if not drop.any():
        return r
    keep = ~drop
    counts = np.bincount(row[keep], minlength=len(r))
    offsets = np.zeros(len(r) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Ragged(offsets, r.values[keep])


def has_flag(r: Ragged, flag: str) -> np.ndarray:
    """Per row: does its list hold ``flag``?  (Hits counted by a cumulative sum, so an empty
    row never sees its neighbour's values.)"""
    hits = np.zeros(len(r.values) + 1, dtype=np.int64)
    np.cumsum(r.values == flag, out=hits[1:])
    return hits[r.offsets[1:]] > hits[r.offsets[:-1]]
