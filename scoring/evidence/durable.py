"""Evaluating a rule pack on one record with durable-rules (the reference path).

How a pack becomes one durable-rules ruleset
--------------------------------------------
* Each rule ``R`` compiles to a durable rule ``R`` (its ``when``) and, when it
  has one, ``R__unknown`` (its ``unknown_when``).  Every compiled condition is
  ``{"$and": [{"_layer": k}, <condition>]}``: the layer equality is the
  positive test that keeps ``$nex``-only conditions from firing endlessly (see
  the engine notes), and it orders derived facts.
* Rules that read another rule's status (``ev_M1``) sit in a later layer.  A
  deal is asserted once per layer as a fact holding its fields, the declared
  counts and computed fields, and the statuses of the earlier layers
  (``ev_<id>``); every rule that matches fires (facts, not events); the fact
  is retracted before the next layer.  This avoids the engine's join and
  ``$not`` traps entirely.
* Unknown is absence: null fields are dropped from the fact, so ``$nex``
  means "unknown" (a present null would match ``$ex``).  Empty child lists
  are dropped too (a missing and an empty list mean the same).

The engine is per process and per thread (its C binding is not safe to share
between threads); :class:`Engine` keeps one ``durable.engine.Host`` per thread
and per process, and compiles the pack into it once.
"""
from __future__ import annotations

import copy
import datetime as _dt
import itertools
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

from scoring.evidence.conditions import count_items
from scoring.contract.schema import CHILD_LISTS
from scoring.errors import ScoringError
from scoring.evidence.pack import EV_PREFIX, RulePack, iter_item_refs

LAYER = "_layer"
UNKNOWN_SUFFIX = "__unknown"
_CATCH_ALL = "__seen"


@dataclass
class Evaluation:
    """What the rules found in one record (plain data).

    Attributes
    ----------
    record_id, stage, as_of : the record's identity.
    status : rule id -> ``met`` | ``missing`` | ``unknown`` for every rule of the pack.
    matched : ids of the rules whose ``when`` matched (every one, in pack order).
    derived : the counts and computed fields the pack declares, as computed for this record.
    unknown_inputs : rule id -> the inputs it reads that are unknown, for rules not met.
    """

    record_id: str
    stage: str
    as_of: str | None
    status: dict[str, str]
    matched: list[str]
    derived: dict[str, Any]
    unknown_inputs: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "id": self.record_id,
            "stage": self.stage,
            "as_of": self.as_of,
            "status": dict(self.status),
            "matched": list(self.matched),
            "derived": dict(self.derived),
            "unknown_inputs": {k: list(v) for k, v in self.unknown_inputs.items()},
        }


def compile_ruleset(pack: RulePack) -> dict[str, dict]:
    """The durable-rules ruleset definition of ``pack`` (without actions)."""
    rules: dict[str, dict] = {}
    for r in pack.rules:
        rules[r.id] = {"all": [{"m": {"$and": [{LAYER: r.layer}, copy.deepcopy(r.when)]}}]}
        if r.unknown_when is not None:
            rules[r.id + UNKNOWN_SUFFIX] = {"all": [{"m": {"$and": [{LAYER: r.layer}, copy.deepcopy(r.unknown_when)]}}]}
    # accepts every fact, so that a deal matching no rule is not an error
    rules[_CATCH_ALL] = {"all": [{"m": {"$gte": {LAYER: 0}}}]}
    return rules


def days_between(start: str | None, end: str | None) -> int | None:
    if start is None or end is None:
        return None
    return (_dt.date.fromisoformat(end) - _dt.date.fromisoformat(start)).days


def derive(pack: RulePack, record: Mapping[str, Any], as_of: str | None) -> dict[str, Any]:
    """The pack's counts and computed fields for a validated record."""
    out: dict[str, Any] = {}
    for c in pack.counts.values():
        out[c.name] = count_items(c.where, record.get(c.list) or ())
    for c in pack.computed.values():
        start = as_of if c.start == "as_of" else record.get(c.start)
        end = as_of if c.end == "as_of" else record.get(c.end)
        if c.kind == "difference":
            out[c.name] = None if start is None or end is None else end - start
        else:
            out[c.name] = days_between(start, end)
    return out


def base_fact(pack: RulePack, record: Mapping[str, Any], derived: Mapping[str, Any]) -> dict[str, Any]:
    """The fact asserted for a record: known fields only (unknown = absent)."""
    fact: dict[str, Any] = {}
    for name in pack.fields.get("opportunity", {}):
        if name == "id":
            continue
        v = record.get(name)
        if v is not None:
            fact[name] = v
    for lst in CHILD_LISTS:
        items = record.get(lst) or ()
        if items:
            fact[lst] = [{k: v for k, v in it.items() if v is not None} for it in items]
    for k, v in derived.items():
        if v is not None:
            fact[k] = v
    return fact


def _synchronous_host(dr):
    """A ``durable.engine.Host`` without its two background timer threads.

    A stock Host polls its rulesets every 0.2 s from timer threads
    (``Ruleset.dispatch`` and ``dispatch_timers``), which can pick up a fact's
    pending actions before the asserting thread runs them, and keeps two
    threads per host alive forever.  Evaluation here is synchronous (actions
    run inside ``assert_fact``) and uses no timers, so the polling is switched
    off by overriding ``Host._run``, the method that starts it.
    """

    class SynchronousHost(dr.Host):
        def _run(self):  # no background dispatch: everything runs inside assert_fact
            pass

    return SynchronousHost()


def _action(sink: list, name: str):
    # a one-argument callable: durable-rules treats a two-argument one as asynchronous
    def run(c):
        sink.append(name)

    return run


class _ThreadEngine:
    """One durable-rules Host with the pack's ruleset, owned by one thread of one process."""

    _ids = itertools.count()

    def __init__(self, name: str, definition: dict[str, dict]):
        from durable import engine as dr  # imported here: it prints nothing, but costs ~50 ms

        self.fired: list[str] = []
        self.name = name
        sink = self.fired
        rules = copy.deepcopy(definition)  # the engine mutates what it is given
        for rname, rule in rules.items():
            rule["run"] = _action(sink, rname)
        self.host = _synchronous_host(dr)
        self.host.set_rulesets({name: rules})
        self.sid = "0"

    def run(self, fact: dict) -> list[str]:
        self.fired.clear()
        fact["id"] = f"f{next(self._ids)}"
        fact["sid"] = self.sid
        self.host.assert_fact(self.name, fact)
        self.host.retract_fact(self.name, {"id": fact["id"], "sid": self.sid})
        out = list(self.fired)
        self.fired.clear()
        return out


class Engine:
    """A compiled rule pack, ready to evaluate records one at a time.

    Safe to use from several threads (each gets its own durable-rules host) and
    to pickle into worker processes (the host is rebuilt there on first use).

    Examples
    --------
    >>> from scoring.evidence.pack import load_pack                        # doctest: +SKIP
    >>> ev = Engine(load_pack("rules/default")).evaluate(record)      # doctest: +SKIP
    >>> ev.status["S2_5"]                                             # doctest: +SKIP
    'met'
    """

    def __init__(self, pack: RulePack):
        self.pack = pack
        self.definition = compile_ruleset(pack)
        self.ruleset_name = f"pack_{pack.fingerprint[:16]}"
        self._local = threading.local()
        self._layers = [[r for r in pack.rules if r.layer == k] for k in range(pack.n_layers)]

    def __getstate__(self):
        return {"pack": self.pack}

    def __setstate__(self, state):
        self.__init__(state["pack"])

    def _thread_engine(self) -> _ThreadEngine:
        te = getattr(self._local, "engine", None)
        if te is None or self._local.pid != os.getpid():
            te = _shared_thread_engine(self.ruleset_name, self.definition)
            self._local.engine = te
            self._local.pid = os.getpid()
        return te

    def evaluate(self, record: Mapping[str, Any], *, as_of: str | None = None) -> Evaluation:
        """Evaluate one **validated** record (see :func:`scoring.contract.nested.validate_record`).

        ``as_of`` defaults to the record's own ``as_of``, else today.
        """
        as_of = record.get("as_of") or as_of or _dt.date.today().isoformat()
        derived = derive(self.pack, record, as_of)
        fact = base_fact(self.pack, record, derived)
        fact["as_of"] = as_of
        te = self._thread_engine()
        status: dict[str, str] = {}
        matched: list[str] = []
        for k, layer in enumerate(self._layers):
            if k:
                for r in self.pack.rules:
                    if r.layer < k and r.id in status:
                        fact[EV_PREFIX + r.id] = status[r.id]
            fact[LAYER] = k
            fired = set(te.run(dict(fact)))
            for r in layer:
                if r.id in fired:
                    status[r.id] = "met"
                    matched.append(r.id)
                elif r.id + UNKNOWN_SUFFIX in fired:
                    status[r.id] = "unknown"
                else:
                    status[r.id] = "missing"
        order = {r.id: i for i, r in enumerate(self.pack.rules)}
        matched.sort(key=order.__getitem__)
        status = {r.id: status[r.id] for r in self.pack.rules}
        return Evaluation(
            record_id=str(record.get("id")),
            stage=record["stage"],
            as_of=as_of,
            status=status,
            matched=matched,
            derived=derived,
            unknown_inputs=self._unknown_inputs(record, derived, status),
        )

    def _unknown_inputs(self, record, derived, status) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        opp = self.pack.fields.get("opportunity", {})
        for r in self.pack.rules:
            if status[r.id] == "met":
                continue
            miss: list[str] = []
            for name in sorted(r.reads):
                if name in opp and name not in CHILD_LISTS:
                    if record.get(name) is None:
                        miss.append(name)
                elif name in self.pack.computed:
                    if derived.get(name) is None:
                        c = self.pack.computed[name]
                        miss.extend(x for x in (c.start, c.end) if x != "as_of" and record.get(x) is None)
                elif name in self.pack.counts:
                    c = self.pack.counts[name]
                    miss.extend(_item_unknowns(record, c.reads))
                elif name in CHILD_LISTS and not record.get(name):
                    miss.append(name)
            miss.extend(_item_unknowns(record, r.reads))
            if miss:
                out[r.id] = sorted(set(miss))
        return out


def _item_unknowns(record, reads) -> list[str]:
    out = []
    for lst, f in iter_item_refs(reads):
        items = record.get(lst) or ()
        if not items:
            out.append(lst)
        elif any(it.get(f) is None for it in items):
            out.append(f"{lst}[].{f}")
    return out


# One host per (process, thread, ruleset): durable-rules cannot delete a ruleset
# (it leaks ~1.4 MiB each), so engines for the same pack share it.
_registry = threading.local()


def _shared_thread_engine(name: str, definition: dict) -> _ThreadEngine:
    reg = getattr(_registry, "engines", None)
    if reg is None or getattr(_registry, "pid", None) != os.getpid():
        reg = _registry.engines = {}
        _registry.pid = os.getpid()
    te = reg.get(name)
    if te is None:
        try:
            te = reg[name] = _ThreadEngine(name, definition)
        except Exception as exc:  # the engine's own messages name no rule
            raise ScoringError(f"durable-rules could not compile the rule pack ({exc}); "
                               "the pack passed validation, so this is a bug: please report it") from exc
    return te
