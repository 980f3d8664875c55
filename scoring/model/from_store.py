"""Training on the score store's stored snapshots (``scoring train --store``).

:func:`train_from_store` reads the snapshots a store keeps of closed deals (what was known at the
time of each nightly run), joined with the recorded outcomes, into the same :class:`History` and
evidence that training from files builds, and fits them by :func:`scoring.model.train.train_on`,
the one fitting path (same drops, labels, weights, split by deal and time, fit and metrics).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from scoring.errors import ModelError, StoreError
from scoring.evidence.pack import RulePack
from scoring.evidence.status import STATUS_WORDS
from scoring.model.inputs import RecordEvidence
from scoring.model.train import (History, TrainResult, as_pack, canonical_fingerprint, check_no_decision_as,
                                 check_signs, label_rows, train_on)


#: the columns :func:`snapshot_history` reads (:meth:`scoring.store.Store.training_snapshots`)
SNAPSHOT_COLUMNS = ("deal_id", "as_of", "stage", "status", "measures", "outcome", "closed_at")


def _cell(v: Any) -> Any:
    """A frame cell as plain Python: None for a missing value (None, NaN, pandas NA)."""
    return None if v is None or (np.ndim(v) == 0 and pd.isna(v)) else v


def snapshot_history(frame: Any, pack: RulePack, *, no_decision_as: str = "lost") -> tuple[History, RecordEvidence]:
    """The :class:`History` and the evidence of stored snapshots (the score store's frame, columns
    :data:`SNAPSHOT_COLUMNS`: ``status`` one digit per rule of ``pack`` in order, ``measures`` the
    pack's measures in order, None or NaN unknown; ``outcome`` and ``closed_at`` None when not recorded).

    The same drops, labels and weights as :func:`prepare_history` (:func:`label_rows`); the
    fingerprint is :func:`canonical_fingerprint` over the snapshots (those columns) in
    ``(deal_id, as_of)`` order.  The evidence (:class:`~scoring.model.inputs.RecordEvidence`,
    ``derived`` None: derived facts are not learnt from the store) has one row per kept snapshot.

    Raises
    ------
    ModelError
        A status of another width than the pack's rule count or with a code other than 0/1/2, or
        measures of another width than the pack's (naming the deal, date and run when the frame has
        ``run_id``), and as :func:`prepare_history`.
    """
    import pyarrow as pa

    from scoring.model.inputs import RecordEvidence
    from scoring.store.changes import status_codes

    check_no_decision_as(no_decision_as)
    missing = [c for c in SNAPSHOT_COLUMNS if c not in frame.columns]
    if missing:
        raise ModelError(f"stored snapshots lack the column(s) {', '.join(missing)}")
    frame = frame.sort_values(["deal_id", "as_of"], kind="mergesort").reset_index(drop=True)
    n_rules = len(pack.rules)
    names = [m.name for m in getattr(pack.compiled, "measures", ()) or ()]
    snaps = []
    measures = np.full((len(frame), len(names)), np.nan) if names else None
    run_of = frame["run_id"].tolist() if "run_id" in frame.columns else [None] * len(frame)

    def where(i: int) -> str:
        return f"deal {frame.at[i, 'deal_id']} as of {frame.at[i, 'as_of']}" + (
            f" (run {run_of[i]})" if run_of[i] else "")

    for i, r in enumerate(frame[list(SNAPSHOT_COLUMNS)].itertuples(index=False)):
        code = _cell(r.status) or ""
        if len(code) != n_rules or not code.isascii():
            raise ModelError(f"{where(i)}: stored status {code[:40]!r} is not {n_rules} digits, one per rule of "
                             f"the pack {pack.version_tag}")
        m = [] if np.ndim(r.measures) == 0 else [_cell(v) for v in r.measures]
        if names and len(m) != len(names):
            raise ModelError(f"{where(i)}: {len(m)} stored measures, the pack {pack.version_tag} has {len(names)}")
        if names:
            measures[i] = [np.nan if v is None else float(v) for v in m]
        snaps.append({"id": r.deal_id, "as_of": r.as_of, "stage": _cell(r.stage), "status": code,
                      "measures": [None if v is None else float(v) for v in m],
                      "outcome": _cell(r.outcome), "closed_at": _cell(r.closed_at)})
    status = status_codes(pa.array([s["status"] for s in snaps], pa.string()), n_rules)
    bad = np.flatnonzero(((status < 0) | (status > 2)).any(axis=1))
    if len(bad):
        i = int(bad[0])
        j = int(np.flatnonzero((status[i] < 0) | (status[i] > 2))[0])
        raise ModelError(f"{where(i)}: the stored status of rule {pack.rules[j].id} is {snaps[i]['status'][j]!r}, "
                         "not " + ", ".join(f"{c} ({w})" for c, w in enumerate(STATUS_WORDS)))
    fp = canonical_fingerprint(snaps)
    rows = [(s["id"], s["as_of"], s["outcome"], s["closed_at"]) for s in snaps]
    kept, drops, y, deal, weight, closed_of = label_rows(rows, no_decision_as)
    h = History(None, y, deal, weight, closed_of, drops, len(snaps), fp, len({s["id"] for s in snaps}))
    ev = RecordEvidence(status[kept], [snaps[i]["stage"] for i in kept], None,
                        None if measures is None else measures[kept])
    return h, ev


#: why :func:`train_from_store` fits no challenger (``params["challenger_skipped"]``)
NO_CHALLENGER_FROM_STORE = "the store keeps the rules' statuses and measures, not the raw record fields it ranks"


def train_from_store(store: Any, *, rules: str | Path | RulePack, seed: int = 0, test_fraction: float = 0.2,
                     no_decision_as: str = "lost", min_per_class: int = 40, C: float | None = None,
                     applicable_only: bool = True, signs: str = "constrained", derived: bool = False,
                     measures: bool = True, stage_deviations: bool = True,
                     progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train the scorecard on the score store's snapshots of closed deals (what was known at the time).

    The history is every snapshot the store keeps of runs made with this rule pack
    (``runs.rule_pack_version`` equal to the pack's ``version_tag``; a rule a run did not evaluate
    is not "unknown", so runs of another pack are left out), one per deal and run date (the last
    run of a date), joined with the outcomes recorded by ``scoring outcomes``
    (:meth:`scoring.store.Store.training_snapshots`).  From there on it is :func:`train`'s path:
    the same drops (a snapshot of a deal without a recorded outcome is ``no_outcome``, one taken on
    or after its close ``after_close``), labels, weights, refusal, split by deal and ``closed_at``,
    fit and metrics (:func:`snapshot_history`).  The evidence is the stored one: the rules' statuses,
    the measures and the stage.  ``counts["input"]["runs"]`` counts the runs used.

    Differences from :func:`train`: there is no challenger (it ranks raw record fields, which the
    store does not keep; ``params["challenger_skipped"]`` says so), and ``derived=True`` is refused (the
    store keeps the pack's derived facts only as far as a nightly model read them).  Other parameters as
    :func:`train`.

    Parameters
    ----------
    store : :class:`scoring.store.Store` or its URL
        A DuckDB file or a PostgreSQL URL.

    Raises
    ------
    ModelError
        ``derived=True``; no stored run of this pack (naming the stored pack versions and their
        snapshots); a stored run whose rules or measures are not the pack's, or a status of another
        width (naming the run); and as :func:`train`.
    StoreError
        The store cannot be reached or read, is of another schema version, or does not exist yet.
    """
    from scoring.store import Store

    check_signs(signs)
    check_no_decision_as(no_decision_as)
    if derived:
        raise ModelError("derived facts (--derived, derived=True) cannot be learnt from the score store: it keeps the "
                         "rules' statuses and the measures, and the derived facts only of a nightly model that read "
                         "them, not all of the pack's counts and day counts; train from history files for them")
    step = progress or (lambda _name: None)
    step("reading the store")
    t0 = time.perf_counter()
    pack = as_pack(rules)
    store = store if isinstance(store, Store) else Store(store)
    if not store.check():
        raise StoreError(f"store {store.backend.describe()}: no store there yet (scoring score --store creates it, "
                         "scoring outcomes records the closed deals)")
    with store.reading():
        frame = store.training_snapshots(pack.version_tag, every=True)
        runs = store.runs()
        if not len(frame):
            versions = store.query(
                "SELECT r.rule_pack_version AS version, count(*) AS n FROM deal_scores d "
                "JOIN runs r ON r.run_id = d.run_id GROUP BY r.rule_pack_version ORDER BY r.rule_pack_version") \
                if len(runs) else None
    where = store.backend.describe()
    if not len(frame):
        held = ", ".join(f"{v} ({int(n)} snapshots)" for v, n in zip(versions["version"], versions["n"])) \
            if versions is not None and len(versions) else "none"
        raise ModelError(f"store {where}: no stored run of the rule pack {pack.version_tag}, so nothing to train on "
                         f"(stored pack versions: {held}); score with this pack first, or train with --rules "
                         "of a stored version")
    check_store_runs(runs[runs["run_id"].isin(set(frame["run_id"]))], pack, where)
    h, ev = snapshot_history(frame, pack, no_decision_as=no_decision_as)
    source = {"kind": "store", "store": where, "runs": int(frame["run_id"].nunique()), "snapshots": int(len(frame))}
    return train_on(h, lambda: ev, pack, source=source, rejected=0, t0=t0, step=step, seed=seed,
                     test_fraction=test_fraction, no_decision_as=no_decision_as, min_per_class=min_per_class, C=C,
                     applicable_only=applicable_only, signs=signs, derived=False, measures=measures,
                     stage_deviations=stage_deviations, challenger=False, no_challenger=NO_CHALLENGER_FROM_STORE)


def check_store_runs(runs: Any, pack: RulePack, where: str) -> None:
    """Refuse stored runs (rows of :meth:`scoring.store.Store.runs`) whose rule list or measures are not
    ``pack``'s, in order: their status digits would be read against the wrong rules."""
    ids = [r.id for r in pack.rules]
    names = [m.name for m in getattr(pack.compiled, "measures", ()) or ()]
    for r in runs.itertuples(index=False):
        if list(r.rules) != ids:
            raise ModelError(f"store {where}: run {r.run_id} (as of {r.as_of}) of pack {r.rule_pack_version} stored "
                             f"{len(r.rules)} rules that are not the pack's {len(ids)} rules in order; it cannot be "
                             "read with this pack")
        if list(r.measures) != names:
            raise ModelError(f"store {where}: run {r.run_id} (as of {r.as_of}) stored the measures "
                             f"{list(r.measures)[:6]}, not the pack's {names[:6]}; it cannot be read with this pack")
