"""The next day of a pipeline: the same open deals some days later, with realistic changes.

Used to show and test what the score store sees over time (trends, what changed).  From one
day's records (the contract's nested form), :func:`next_day` makes the records ``days`` later.
Each deal, independently and reproducibly (a seeded generator per deal id), may:

* **slip** (5%): the expected close moves 30-90 days later and ``close_date_pushes`` grows by one;
* **move a stage** (5%, not from bidding): the next stage, entered on the new ``as_of``;
* **lose its coach** (a deal with a coach, 5%): the coach leaves (``is_coach`` false,
  ``speaks_for_us`` unknown);
* **win a new supporter** (5%): a new contact, a supporter with high influence who speaks for us;
* **learn something** (10%): one deal-level yes/no item that was unknown becomes known, true
  three times in four.

Everything else stays; ``as_of`` moves by ``days``.  Same records, days and seed give the
same result.  Command line::

    python -m dealscore_datasets.nextday IN.jsonl OUT.jsonl [--days 1] [--seed 0]
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import hashlib
import json
from typing import Any, Iterable

import numpy as np

#: stages in order (the contract's)
STAGES = ("technical_promotion", "relationship", "partner", "solution", "bidding")
#: deal-level yes/no items a rep may learn overnight
LEARNABLE = ("needs_understood", "network_status_known", "decision_chain_mapped", "competitors_analyzed",
             "contacts_profiled", "integrator_attitudes_known", "relationship_plan_aligned",
             "key_customer_guiding", "spec_has_our_differentiators", "scoring_criteria_known",
             "evaluation_panel_known", "pricing_strategy_ready", "bottom_line_set")
P_SLIP, P_STAGE, P_LOSE_COACH, P_SUPPORTER, P_LEARN = 0.05, 0.05, 0.05, 0.05, 0.10


def _rng(deal_id: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{deal_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _shift(day: str | None, days: int) -> str | None:
    return None if not day else (_dt.date.fromisoformat(day) + _dt.timedelta(days=days)).isoformat()


def next_day(records: Iterable[dict[str, Any]], days: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """The records ``days`` later (see the module docstring).  Each output record gets no extra field;
    what happened to it is returned by :func:`what_happened` for the same arguments."""
    return [_next(rec, days, seed)[0] for rec in records]


def what_happened(records: Iterable[dict[str, Any]], days: int = 1, seed: int = 0) -> dict[str, list[str]]:
    """deal id -> the events :func:`next_day` applied to it (``slip``, ``stage``, ``lost_coach``,
    ``new_supporter``, ``learned:<field>=<value>``); deals with none are left out."""
    out = {}
    for rec in records:
        events = _next(rec, days, seed)[1]
        if events:
            out[rec["id"]] = events
    return out


def _next(rec: dict[str, Any], days: int, seed: int) -> tuple[dict[str, Any], list[str]]:
    r = copy.deepcopy(rec)
    rng = _rng(str(rec["id"]), seed)
    u = rng.random(5)
    events = []
    as_of = r.get("as_of") or _dt.date.today().isoformat()
    r["as_of"] = new_day = _shift(as_of, days)
    if u[0] < P_SLIP and r.get("expected_close"):
        r["expected_close"] = _shift(r["expected_close"], int(rng.integers(30, 91)))
        r["close_date_pushes"] = int(r.get("close_date_pushes") or 0) + 1
        events.append("slip")
    if u[1] < P_STAGE and r["stage"] != STAGES[-1]:
        r["stage"] = STAGES[STAGES.index(r["stage"]) + 1]
        r["stage_entered_at"] = new_day
        events.append("stage")
    coaches = [c for c in r.get("contacts") or [] if c.get("is_coach") is True]
    if coaches and u[2] < P_LOSE_COACH:
        coaches[0]["is_coach"] = False
        coaches[0].pop("speaks_for_us", None)
        events.append("lost_coach")
    if u[3] < P_SUPPORTER:
        r.setdefault("contacts", []).append({"name": f"New contact {rng.integers(100, 999)}", "role": "evaluator",
                                             "stance": "supporter", "influence": "high", "speaks_for_us": True,
                                             "accepts_us": True})
        events.append("new_supporter")
    unknown = [f for f in LEARNABLE if r.get(f) is None]
    if unknown and u[4] < P_LEARN:
        f = unknown[int(rng.integers(len(unknown)))]
        r[f] = bool(rng.random() < 0.75)
        events.append(f"learned:{f}={str(r[f]).lower()}")
    return r, events


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="The next day of a pipeline (JSON Lines in, JSON Lines out).")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    with open(a.input, encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    with open(a.output, "w", encoding="utf-8") as fh:
        for rec in next_day(records, a.days, a.seed):
            fh.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
