"""Backend 1: evaluating a pack's compiled form with durable-rules, one record at a time (the reference).

How the compiled form becomes one durable-rules ruleset
-------------------------------------------------------
* Each rule ``R`` compiles to a durable rule ``R`` (its ``when`` tree, written
  back in the durable-rules grammar by :func:`to_durable`) and, when it has
  one, ``R__unknown`` (its ``unknown_when``).  Every compiled condition is
  ``{"$and": [{"_layer": k}, <condition>]}``: the layer equality is the
  positive test that keeps ``$nex``-only conditions from firing endlessly (see
  the engine notes), and it orders derived facts.
* Rules that read another rule's status (``ev_M1``) sit in a later layer
  (:attr:`CompiledPack.layers`).  A deal is asserted once per layer as a fact
  holding its fields, the derived facts, and the statuses of the earlier
  layers (``ev_<id>``); every rule that matches fires (facts, not events); the
  fact is retracted before the next layer.  This avoids the engine's join and
  ``$not`` traps entirely.  The statuses come from
  :func:`~scoring.evidence.compiled.resolve_status` over what fired.
* durable-rules cannot count: the derived facts (counts, computed fields) and the
  graded measures are
  computed by the compiled form's definitions, run by the numpy backend on the
  record as a chunk of one deal, and put into the fact.
* Unknown is absence: null fields are dropped from the fact, so ``$nex``
  means "unknown" (a present null would match ``$ex``).  Empty child lists
  are dropped too (a missing and an empty list mean the same).

The engine is per process and per thread (its C binding is not safe to share
between threads); :class:`Engine` keeps one ``durable.engine.Host`` per thread
and per process, and compiles the pack into it once.

Where durable-rules does not import
-----------------------------------
durable-rules 2.0.28, its only release, does not import on Python 3.13 and
newer (``PyEval_CallObject`` was removed from Python's C API) and is not
installed there.  :func:`durable_rules_problem` says why it cannot run (checked
once per process); there an :class:`Engine` evaluates the same compiled form
with :class:`scoring.evidence.interp.RecordEvaluator`, which the differential
tests hold equal to durable-rules wherever it does import.  Nothing a user sees
differs.
"""
from __future__ import annotations

import copy
import datetime as _dt
import functools
import itertools
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from scoring.errors import RulePackError, ScoringError
from scoring.evidence.compiled import CompiledPack, resolve_status
from scoring.evidence.grammar import EQ, EV_PREFIX, AllOf, AnyOf, Check, Cond, Items
from scoring.evidence.pack import RulePack
from scoring.evidence.status import MET, STATUS_WORDS

#: the backends an :class:`Engine` can run: the reference engine, and the compiled form in Python
DURABLE_RULES, PYTHON = "durable-rules", "python"
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
    measures : the pack's graded measures (``CompiledPack.measures``), name -> float, or None when
        unknown or not applicable at the record's stage.
    """

    record_id: str
    stage: str
    as_of: str | None
    status: dict[str, str]
    matched: list[str]
    derived: dict[str, Any]
    unknown_inputs: dict[str, list[str]] = field(default_factory=dict)
    measures: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "id": self.record_id,
            "stage": self.stage,
            "as_of": self.as_of,
            "status": dict(self.status),
            "matched": list(self.matched),
            "derived": dict(self.derived),
            "unknown_inputs": {k: list(v) for k, v in self.unknown_inputs.items()},
            "measures": dict(self.measures),
        }


def to_durable(cond: Cond) -> dict:
    """A condition tree written in the durable-rules grammar (the form a pack author writes).

    >>> from scoring.evidence.grammar import Ref
    >>> to_durable(Items("$iany", "contacts", Check("=", Ref("item", "is_coach", "bool", "contacts"), True)))
    {'$iany': {'contacts': {'$i.is_coach': True}}}
    """
    if isinstance(cond, AllOf):
        return {"$and": [to_durable(c) for c in cond.parts]}
    if isinstance(cond, AnyOf):
        return {"$or": [to_durable(c) for c in cond.parts]}
    if isinstance(cond, Items):
        return {cond.quantifier: {cond.list: to_durable(cond.where)}}
    if isinstance(cond, Check):
        return {cond.ref.key: cond.value} if cond.op == EQ else {cond.op: {cond.ref.key: cond.value}}
    raise TypeError(f"not a condition node: {cond!r}")


def compile_ruleset(pack: RulePack) -> dict[str, dict]:
    """The durable-rules ruleset definition of ``pack``'s compiled form (without actions)."""
    rules: dict[str, dict] = {}
    for r in pack.compiled.rules:
        rules[r.id] = {"all": [{"m": {"$and": [{LAYER: r.layer}, to_durable(r.when)]}}]}
        if r.unknown_when is not None:
            rules[r.id + UNKNOWN_SUFFIX] = {"all": [{"m": {"$and": [{LAYER: r.layer}, to_durable(r.unknown_when)]}}]}
    # accepts every fact, so that a deal matching no rule is not an error
    rules[_CATCH_ALL] = {"all": [{"m": {"$gte": {LAYER: 0}}}]}
    return rules


def base_fact(compiled: CompiledPack, record: Mapping[str, Any], derived: Mapping[str, Any]) -> dict[str, Any]:
    """The fact asserted for a record: the known values of what the rules read (unknown = absent).

    Only what the conditions read goes in: every fired rule costs a JSON round trip of the fact.
    """
    fact: dict[str, Any] = {}
    for name in compiled.deal_inputs:
        v = derived[name] if name in derived else record.get(name)
        if v is not None:
            fact[name] = v
    for lst, fields in compiled.item_inputs.items():
        items = record.get(lst) or ()
        if items:
            fact[lst] = [{k: it[k] for k in fields if it.get(k) is not None} for it in items]
    return fact


@functools.lru_cache(maxsize=None)
def durable_rules_problem() -> str | None:
    """Why durable-rules cannot run in this interpreter, or None when it imports (checked once).

    durable-rules 2.0.28 does not import on Python 3.13 and newer (its C code calls
    ``PyEval_CallObject``, removed there), and the package is not installed there (see
    ``pyproject.toml``).
    """
    try:
        from durable import engine  # noqa: F401  (~50 ms; it prints nothing)
    except ImportError as exc:  # not installed, or its C extension does not load (undefined symbol)
        return f"durable-rules does not import on this Python ({type(exc).__name__}: {str(exc)[:200]})"
    return None


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

    Parameters
    ----------
    pack : RulePack
    backend : "durable-rules", "python" or None
        None (default): durable-rules where it imports (:func:`durable_rules_problem`),
        else the compiled form in Python (:class:`scoring.evidence.interp.RecordEvaluator`).
        ``"durable-rules"`` where it does not import raises :class:`~scoring.errors.ScoringError`.

    Examples
    --------
    >>> from scoring.evidence.pack import load_pack                        # doctest: +SKIP
    >>> ev = Engine(load_pack("rules/default")).evaluate(record)      # doctest: +SKIP
    >>> ev.status["S2_5"]                                             # doctest: +SKIP
    'met'
    """

    def __init__(self, pack: RulePack, backend: str | None = None):
        if backend not in (None, DURABLE_RULES, PYTHON):
            raise ValueError(f"backend must be {DURABLE_RULES!r}, {PYTHON!r} or None, not {backend!r}")
        if backend == DURABLE_RULES and durable_rules_problem():
            raise ScoringError(durable_rules_problem())
        self.pack = pack
        self.compiled = pack.compiled
        self._requested = backend
        self._backend: str | None = None  # chosen on first use: importing durable-rules costs ~50 ms
        self._setup_lock = threading.Lock()

    @property
    def backend(self) -> str:
        """The backend evaluating records: ``"durable-rules"`` or ``"python"``."""
        if self._backend is None:
            with self._setup_lock:
                if self._backend is None:
                    self._setup()
        return self._backend

    def _setup(self) -> None:
        if self._requested == PYTHON or (self._requested is None and durable_rules_problem()):
            from scoring.evidence.interp import RecordEvaluator

            self._interp = RecordEvaluator(self.pack)
            self._backend = PYTHON
            return
        from scoring.evidence.columnar import ColumnarEvaluator  # numpy and pandas: not needed by "python"

        self.definition = compile_ruleset(self.pack)
        self.ruleset_name = f"pack_{self.pack.fingerprint[:16]}"
        self._local = threading.local()
        self._derived = ColumnarEvaluator(self.pack)
        self._backend = DURABLE_RULES

    def __getstate__(self):
        return {"pack": self.pack, "backend": self._requested}

    def __setstate__(self, state):
        self.__init__(state["pack"], state.get("backend"))

    def _thread_engine(self) -> _ThreadEngine:
        te = getattr(self._local, "engine", None)
        if te is None or self._local.pid != os.getpid():
            te = _shared_thread_engine(self.ruleset_name, self.definition)
            self._local.engine = te
            self._local.pid = os.getpid()
        return te

    def evaluate(self, record: Mapping[str, Any], *, as_of: str | None = None,
                 absent: frozenset[str] = frozenset()) -> Evaluation:
        """Evaluate one **validated** record (see :func:`scoring.contract.nested.validate_record`).

        ``as_of`` defaults to the record's own ``as_of``, else today.  ``absent`` names child
        lists that are unknown (as a child table absent from a table-form input,
        :attr:`scoring.contract.frames.Frames.absent`): their counts are unknown, not 0.
        """
        if self.backend == PYTHON:
            return self._interp.evaluate(record, as_of=as_of, absent=absent)
        as_of = record.get("as_of") or as_of or _dt.date.today().isoformat()
        if absent:
            record = {**record, **{lst: [] for lst in absent}}
        derived, measures = self._derived.derive_record_all(record, as_of, frozenset(absent))
        fact = base_fact(self.compiled, record, derived)
        fact["as_of"] = as_of
        te = self._thread_engine()
        codes = np.zeros(len(self.compiled.rules), dtype=np.int8)
        for k, layer in enumerate(self.compiled.layers):
            for r in self.compiled.rules:
                if r.layer < k:
                    fact[EV_PREFIX + r.id] = STATUS_WORDS[codes[r.position]]
            fact[LAYER] = k
            try:
                fired = set(te.run(dict(fact)))
            except Exception as exc:  # the engine's own error names neither the pack nor the record
                if "error code: 303" not in str(exc):
                    raise
                raise RulePackError(
                    f"record {record.get('id')}: more of the pack's tests hold at once than durable-rules "
                    "evaluates (64; its error 303, ERR_MAX_STACK_SIZE): drop or merge facts on different "
                    "fields (rules/README.md, \"Limits\")", file=self.pack.path) from None
            met = np.fromiter((r.id in fired for r in layer), dtype=bool, count=len(layer))
            unknown = np.fromiter((r.id + UNKNOWN_SUFFIX in fired for r in layer), dtype=bool, count=len(layer))
            codes[[r.position for r in layer]] = resolve_status(met, unknown)
        status = {r.id: STATUS_WORDS[c] for r, c in zip(self.compiled.rules, codes.tolist())}
        return Evaluation(
            record_id=str(record.get("id")),
            stage=record["stage"],
            as_of=as_of,
            status=status,
            matched=[r.id for r in self.compiled.rules if codes[r.position] == MET],
            derived=derived,
            unknown_inputs=self.compiled.unknown_inputs(record, derived, status),
            measures=measures,
        )


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
