"""Loading and validating rule packs (``rules/<pack>/*.yaml``).

A pack is data: declared fields, declared counts and computed day counts, and
rules whose conditions are written in a safe subset of the durable-rules
condition grammar (:mod:`scoring.evidence.grammar`, ``rules/README.md``).
Everything is checked here, when the pack loads, so that a malformed pack
fails early with an error naming the file and the rule, never later inside
the engine (whose own errors name neither).  The conditions parsed while
checking become the pack's compiled form (:attr:`RulePack.compiled`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from scoring.contract.schema import CHILD_LISTS, CONTRACT, FIELD_TYPES, STAGE_INDEX, STAGES, Field
from scoring.errors import RulePackError
from scoring.evidence import LANGS
from scoring.evidence.compiled import CompiledPack, Measure
from scoring.evidence.grammar import (
    EV_PREFIX, FIELDS_FILE, PACK_FILE, RESERVED, Cond, Scope, distinct_tests, inputs, number_problem,
    parse_condition, parse_item_condition,
)
from scoring.evidence.measures import parse_measures
from scoring.evidence.packfiles import PACK_SUFFIXES, fingerprint_of_files, read_pack_files, read_yaml
from scoring.evidence.status import MET, MISSING, STATUS_WORDS, UNKNOWN

KINDS = ("checklist", "milestone", "red_flag", "trigger")
SCORED_KINDS = ("checklist", "milestone")

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RULE_KEYS = {
    "id", "methodology", "kind", "stage", "stages", "points", "title", "action",
    "rationale", "when", "unknown_when", "examples", "measure", "find_out",
}
REQUIRED_RULE_KEYS = ("id", "methodology", "kind", "points", "title", "action", "rationale", "when", "examples")
#: the largest points of one rule (either sign): the score is a share of 100, a penalty is at most all of it
MAX_POINTS = 100
#: durable-rules fails with code 302 on facts of more than 252 fields.
MAX_FACT_FIELDS = 240
#: durable-rules loops forever building a ruleset with ~512 distinct tests on one field.
MAX_TESTS_PER_FIELD = 200


@dataclass(frozen=True)
class Count:
    """A count of child rows matching an item condition (durable-rules cannot count)."""

    name: str
    list: str
    where: Mapping[str, Any]
    reads: frozenset[str]


@dataclass(frozen=True)
class Computed:
    """A field computed from two declared fields; its value is ``end - start``:

    * ``days_between: [a, b]``: days from date ``a`` to date ``b`` (start = a, end = b);
    * ``difference: [a, b]``: ``a - b`` of two whole-number fields (start = b, end = a).

    Unknown when either field is unknown.
    """

    name: str
    start: str
    end: str
    kind: str = "days_between"


@dataclass(frozen=True)
class Rule:
    """One rule of a pack.  ``reads`` lists the inputs its conditions read:
    deal fields (``amount``), item fields (``contacts[].is_coach``), counts,
    computed fields and other rules' statuses (``ev_M2``)."""

    id: str
    methodology: tuple[str, ...]
    kind: str
    stage: str | None
    stages: tuple[str, ...]
    points: float
    title: Mapping[str, str]
    action: Mapping[str, str]
    rationale: str
    when: Mapping[str, Any]
    unknown_when: Mapping[str, Any] | None
    examples: Mapping[str, Mapping[str, Any]]
    file: str
    reads: frozenset[str]
    depends: frozenset[str]
    layer: int = 0
    #: the rule's ``measure:`` as written (graded evidence, :mod:`scoring.evidence.measures`), or None
    measure: Any = None
    #: lang -> what to do when the rule is unknown ("find out ..."); empty: a generic text from the title
    find_out: Mapping[str, str] = field(default_factory=dict)

    def applies_at(self, stage: str) -> bool:
        """Whether the rule counts for a deal at ``stage``.

        Checklist items and milestones count from their own stage on (an item
        of an earlier stage stays on the checklist); red flags and triggers
        count in the stages they list.
        """
        if self.kind in SCORED_KINDS:
            return STAGE_INDEX[self.stage] <= STAGE_INDEX[stage]
        return stage in self.stages

    def text(self, what: str, lang: str = "en") -> str:
        """``title``, ``action`` or ``find_out`` in ``lang`` (English when missing; ``find_out`` may be empty)."""
        src = {"title": self.title, "action": self.action}.get(what)
        if src is None:
            src = getattr(self, "find_out", None) or {}
            return src.get(lang) or src.get("en", "")
        return src.get(lang) or src["en"]


@dataclass
class RulePack:
    """A validated rule pack.  Build it with :func:`load_pack`."""

    name: str
    version: str
    description: str
    path: str
    fields: Mapping[str, Mapping[str, Field]]
    counts: Mapping[str, Count]
    computed: Mapping[str, Computed]
    rules: tuple[Rule, ...]
    files: Mapping[str, bytes] = field(repr=False, default_factory=dict)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over the pack's YAML files (name and bytes), in name order.

        Only what the rules are made of counts: editing the pack's README does
        not make a model trained with the pack out of date.
        """
        return fingerprint_of_files(self.files)

    @property
    def version_tag(self) -> str:
        return f"{self.name}@{self.version}+{self.fingerprint[:12]}"

    @cached_property
    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    @property
    def n_layers(self) -> int:
        return len(self.compiled.layers)

    @cached_property
    def schema(self) -> dict[str, dict[str, Field]]:
        """The contract merged with the fields this pack declares: what records are validated against."""
        merged = {ent: dict(flds) for ent, flds in CONTRACT.items()}
        for ent, flds in self.fields.items():
            merged.setdefault(ent, {}).update(flds)
        return merged

    @cached_property
    def compiled(self) -> CompiledPack:
        """The pack's compiled form: what both backends evaluate (see :mod:`scoring.evidence.compiled`)."""
        return CompiledPack(self)

    def rule(self, rule_id: str) -> Rule:
        return self.by_id[rule_id]

    def __getstate__(self):
        # a pickled pack (inside a model artifact) keeps the folder's name, not this machine's path
        # and not its compiled form (rebuilt on first use)
        state = {**self.__dict__, "path": Path(self.path).name}
        state.pop("compiled", None)
        return state

    def methodology_index(self) -> dict[str, list[str]]:
        """methodology id -> ids of the rules that encode it."""
        out: dict[str, list[str]] = {}
        for r in self.rules:
            for m in r.methodology:
                out.setdefault(m, []).append(r.id)
        return out


# --------------------------------------------------------------------------- loading


def load_pack(path: str | Path) -> RulePack:
    """Load and validate the rule pack in folder ``path``.

    Raises
    ------
    RulePackError
        naming the file and the rule, for any mistake: a missing required key,
        an unknown field, an unknown operator or one outside the safe subset, a
        duplicate id, a cycle between derived facts, wrong points for the kind...

    Examples
    --------
    >>> pack = load_pack("rules/default")          # doctest: +SKIP
    >>> pack.rule("S2_5").title["en"]              # doctest: +SKIP
    'A coach inside the customer'
    """
    root = Path(path)
    if not root.is_dir():
        raise RulePackError(f"rule pack folder not found: {root}")
    files = read_pack_files(root)
    yaml_files = sorted(n for n in files if n.endswith(PACK_SUFFIXES))
    if PACK_FILE not in files:
        raise RulePackError(f"missing {PACK_FILE}", file=str(root / PACK_FILE))

    meta = read_yaml(files, PACK_FILE) or {}
    if not isinstance(meta, dict):
        raise RulePackError("must be a mapping", file=PACK_FILE)
    for key in ("name", "version"):
        if key not in meta:
            raise RulePackError(f"missing required key {key!r}", file=PACK_FILE)
    unknown = set(meta) - {"name", "version", "description", "counts", "computed", "fields", "rules"}
    if unknown:
        raise RulePackError(f"unknown keys {sorted(unknown, key=str)}", file=PACK_FILE)

    # fields: fields.yaml (or a `fields:` key in pack.yaml)
    declared_raw: dict = {}
    if FIELDS_FILE in files:
        doc = read_yaml(files, FIELDS_FILE) or {}
        if not isinstance(doc, dict) or "fields" not in doc:
            raise RulePackError("must hold a 'fields:' mapping", file=FIELDS_FILE)
        declared_raw = doc["fields"] or {}
    if meta.get("fields"):
        declared_raw = {**declared_raw, **meta["fields"]}
    fields = _parse_fields(declared_raw, FIELDS_FILE if FIELDS_FILE in files else PACK_FILE)

    computed = _parse_computed(meta.get("computed") or {}, fields)
    counts_parsed = _parse_counts(meta.get("counts") or {}, fields, computed)
    counts = {name: c for name, (c, _) in counts_parsed.items()}

    raw_rules: list[tuple[str, dict]] = []
    for name in yaml_files:
        if name in (FIELDS_FILE,):
            continue
        doc = meta if name == PACK_FILE else read_yaml(files, name)
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise RulePackError("must be a mapping with a 'rules:' list", file=name)
        if name != PACK_FILE and set(doc) - {"rules"}:
            raise RulePackError(f"unknown keys {sorted(set(doc) - {'rules'}, key=str)} (a rule file holds only 'rules:')", file=name)
        rules = doc.get("rules") or []
        if not isinstance(rules, list):
            raise RulePackError("'rules' must be a list", file=name)
        for i, r in enumerate(rules):
            if not isinstance(r, dict):
                raise RulePackError(f"rule #{i + 1} is not a mapping", file=name)
            raw_rules.append((name, r))

    if not raw_rules:
        raise RulePackError("the pack holds no rules", file=str(root))

    seen: dict[str, str] = {}
    for fname, r in raw_rules:
        rid = r.get("id")
        if isinstance(rid, str) and rid in seen:
            raise RulePackError(f"duplicate rule id (also in {seen[rid]})", file=fname, rule=rid)
        if isinstance(rid, str):
            seen[rid] = fname
    scope = Scope(fields=fields, counts=frozenset(counts), computed=frozenset(computed), rule_ids=frozenset(seen))
    parsed = [_parse_rule(fname, r, scope) for fname, r in raw_rules]
    rules = _assign_layers([rule for rule, _, _ in parsed])
    trees = {rule.id: t for rule, t, _ in parsed}
    _check_engine_limits(rules, trees, fields, counts, computed)

    pack = RulePack(
        name=str(meta["name"]),
        version=str(meta["version"]),
        description=str(meta.get("description", "")),
        path=str(root),
        fields=fields,
        counts=counts,
        computed=computed,
        rules=tuple(rules),
        files=files,
    )
    measures = _check_measures([m for _, _, ms in parsed for m in ms], rules)
    pack.__dict__["compiled"] = CompiledPack(pack, trees, {name: t for name, (_, t) in counts_parsed.items()},
                                             measures)
    return pack


def _parse_fields(raw: Mapping, fname: str) -> dict[str, dict[str, Field]]:
    if not isinstance(raw, dict):
        raise RulePackError("'fields' must map entity -> field -> type", file=fname)
    out: dict[str, dict[str, Field]] = {}
    for ent, flds in raw.items():
        if ent not in CONTRACT:
            raise RulePackError(f"unknown entity {ent!r} (expected one of {', '.join(CONTRACT)})", file=fname)
        if not isinstance(flds, dict):
            raise RulePackError(f"fields of {ent!r} must be a mapping", file=fname)
        out[ent] = {}
        for name, spec in flds.items():
            where = f"{ent}.{name}"
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise RulePackError(f"field name {name!r} must be letters, digits and _", file=fname, rule=where)
            if isinstance(spec, str):
                spec = {"type": spec}
            if not isinstance(spec, dict) or spec.get("type") not in FIELD_TYPES:
                raise RulePackError(f"type must be one of {', '.join(FIELD_TYPES)}", file=fname, rule=where)
            extra = set(spec) - {"type", "values", "min", "required", "meaning"}
            if extra:
                raise RulePackError(f"unknown keys {sorted(extra, key=str)}", file=fname, rule=where)
            if spec.get("min") is not None and number_problem(spec["min"]):
                raise RulePackError(f"min: {number_problem(spec['min'])}", file=fname, rule=where)
            values = tuple(str(v) for v in spec.get("values") or ())
            if spec["type"] == "enum" and not values:
                raise RulePackError("an enum needs 'values'", file=fname, rule=where)
            f = Field(name=name, type=spec["type"], values=values, min=spec.get("min"),
                      required=bool(spec.get("required", False)), meaning=str(spec.get("meaning", "")))
            base = CONTRACT[ent].get(name)
            if base is not None:
                if base.type != f.type or (base.type == "enum" and set(base.values) != set(f.values)):
                    raise RulePackError(
                        f"redeclares the contract field with a different type ({f.type} {list(f.values) or ''} vs {base.type} {list(base.values) or ''})",
                        file=fname, rule=where)
                f = base  # the contract's definition (with max_field etc.) is authoritative
            elif f.required:
                raise RulePackError("a pack's own field cannot be required (it would break contract records)", file=fname, rule=where)
            elif ent == "opportunity" and name in RESERVED | set(CHILD_LISTS):
                raise RulePackError("name is reserved", file=fname, rule=where)
            out[ent][name] = f
    if "stage" not in out.get("opportunity", {}):
        out.setdefault("opportunity", {})["stage"] = CONTRACT["opportunity"]["stage"]
    return out


def _parse_computed(raw: Mapping, fields) -> dict[str, Computed]:
    out = {}
    opp = fields.get("opportunity", {})
    if not isinstance(raw, dict):
        raise RulePackError("'computed' must map names to {days_between: [...]} or {difference: [...]}", file=PACK_FILE)
    for name, spec in raw.items():
        if not NAME_RE.match(str(name)):
            raise RulePackError(f"computed name {name!r} must be letters, digits and _", file=PACK_FILE, rule=str(name))
        if name in opp:
            raise RulePackError("computed field clashes with a declared field", file=PACK_FILE, rule=name)
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("days_between", "difference"):
            raise RulePackError("a computed field is {days_between: [start_date, end_date]} or "
                                "{difference: [int_field, int_field]}", file=PACK_FILE, rule=name)
        kind, args = next(iter(spec.items()))
        want = "date" if kind == "days_between" else "int"
        if not (isinstance(args, list) and len(args) == 2):
            raise RulePackError(f"{kind} takes two {want} fields", file=PACK_FILE, rule=name)
        for a in args:
            if a not in opp or opp[a].type != want:
                raise RulePackError(f"{a!r} is not a declared {want} field", file=PACK_FILE, rule=name)
        if kind == "days_between":
            out[name] = Computed(name=name, start=args[0], end=args[1], kind=kind)
        else:
            out[name] = Computed(name=name, start=args[1], end=args[0], kind=kind)
    return out


def _parse_counts(raw: Mapping, fields, computed) -> dict[str, tuple[Count, Cond]]:
    out = {}
    opp = fields.get("opportunity", {})
    if not isinstance(raw, dict):
        raise RulePackError("'counts' must map names to {list: ..., where: ...}", file=PACK_FILE)
    for name, spec in raw.items():
        if not NAME_RE.match(str(name)):
            raise RulePackError(f"count name {name!r} must be letters, digits and _", file=PACK_FILE, rule=str(name))
        if name in opp or name in computed:
            raise RulePackError("count clashes with a declared or computed field", file=PACK_FILE, rule=name)
        if not isinstance(spec, dict) or set(spec) != {"list", "where"}:
            raise RulePackError("a count is {list: contacts|competitors|partners, where: item-condition}", file=PACK_FILE, rule=name)
        lst = spec["list"]
        if lst not in CHILD_LISTS:
            raise RulePackError(f"unknown list {lst!r}", file=PACK_FILE, rule=name)
        where = parse_item_condition(spec["where"], lst, Scope(fields=fields), PACK_FILE, f"count {name}")
        out[name] = (Count(name=name, list=lst, where=spec["where"], reads=frozenset(inputs(where))), where)
    return out


def _text_pair(value, key, fname, rid) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(value.get(lang), str) and value.get(lang).strip() for lang in LANGS):
        raise RulePackError(f"{key!r} needs non-empty 'en' and 'zh' texts", file=fname, rule=rid)
    return {lang: value[lang].strip() for lang in LANGS}


def _parse_rule(fname: str, r: dict, scope: Scope) -> tuple[Rule, tuple[Cond, Cond | None], tuple[Measure, ...]]:
    rid = r.get("id")
    if not isinstance(rid, str) or not NAME_RE.match(rid):
        raise RulePackError(f"rule id {rid!r} must be letters, digits and _ (starting with a letter)", file=fname, rule=str(rid))
    for key in REQUIRED_RULE_KEYS:
        if key not in r or r[key] is None:
            raise RulePackError(f"missing required key {key!r}", file=fname, rule=rid)
    unknown = set(r) - RULE_KEYS
    if unknown:
        raise RulePackError(f"unknown keys {sorted(unknown, key=str)}", file=fname, rule=rid)
    kind = r["kind"]
    if kind not in KINDS:
        raise RulePackError(f"kind {kind!r} is not one of {', '.join(KINDS)}", file=fname, rule=rid)
    meth = r["methodology"]
    if isinstance(meth, str):
        meth = [meth]
    if not isinstance(meth, list) or not meth or not all(isinstance(m, str) and m for m in meth):
        raise RulePackError("'methodology' must list the methodology ids it encodes", file=fname, rule=rid)
    pts = r["points"]
    if isinstance(pts, bool) or not isinstance(pts, (int, float)):
        raise RulePackError(f"points must be a number, got {pts!r}", file=fname, rule=rid)
    if not -MAX_POINTS <= pts <= MAX_POINTS:  # NaN compares false too
        raise RulePackError(f"points must be a finite number from -{MAX_POINTS} to {MAX_POINTS}, got {pts!r}",
                            file=fname, rule=rid)
    if kind in SCORED_KINDS and not pts > 0:
        raise RulePackError(f"a {kind} must have positive points", file=fname, rule=rid)
    if kind == "red_flag" and not pts < 0:
        raise RulePackError("a red_flag must have negative points", file=fname, rule=rid)
    if kind == "trigger" and pts != 0:
        raise RulePackError("a trigger has 0 points (it flags a meeting, it does not score)", file=fname, rule=rid)
    stage = r.get("stage")
    stages = r.get("stages")
    if kind in SCORED_KINDS:
        if stage not in STAGES:
            raise RulePackError(f"a {kind} needs 'stage', one of {', '.join(STAGES)} (got {stage!r})", file=fname, rule=rid)
        if stages is not None:
            raise RulePackError(f"a {kind} has one home 'stage', not 'stages'", file=fname, rule=rid)
        stages_t = tuple(s for s in STAGES if STAGE_INDEX[s] >= STAGE_INDEX[stage])
    else:
        if stage is not None:
            raise RulePackError(f"a {kind} lists 'stages' (where it applies), not 'stage'", file=fname, rule=rid)
        if stages is None:
            stages_t = STAGES
        else:
            if not isinstance(stages, list) or not stages or any(s not in STAGES for s in stages):
                raise RulePackError(f"'stages' must list stages among {', '.join(STAGES)}", file=fname, rule=rid)
            stages_t = tuple(s for s in STAGES if s in stages)
    title = _text_pair(r["title"], "title", fname, rid)
    action = _text_pair(r["action"], "action", fname, rid)
    if not isinstance(r["rationale"], str) or not r["rationale"].strip():
        raise RulePackError("'rationale' must be a non-empty text", file=fname, rule=rid)

    when = parse_condition(r["when"], scope, fname, rid)
    reads = inputs(when)
    unknown_when = r.get("unknown_when")
    unknown_tree = None
    if unknown_when is not None:
        unknown_tree = parse_condition(unknown_when, scope, fname, rid)
        reads |= inputs(unknown_tree)
    depends = frozenset(x[len(EV_PREFIX):] for x in reads if x.startswith(EV_PREFIX))
    if rid in depends:
        raise RulePackError("cycle between derived facts: the rule reads its own status", file=fname, rule=rid)

    ex = r["examples"]
    if not isinstance(ex, dict):
        raise RulePackError("'examples' must map met/missing/unknown to partial records", file=fname, rule=rid)
    need = {STATUS_WORDS[MET], STATUS_WORDS[MISSING]} | ({STATUS_WORDS[UNKNOWN]} if unknown_when is not None else set())
    if not need <= set(ex) or set(ex) - set(STATUS_WORDS):
        raise RulePackError(f"'examples' must hold exactly {sorted(need)}" + (" (and 'unknown' only with unknown_when)" if unknown_when is None else ""), file=fname, rule=rid)
    for status, rec in ex.items():
        if not isinstance(rec, dict) or rec.get("stage") not in STAGES:
            raise RulePackError(f"example {status!r} must be a partial record with a valid 'stage'", file=fname, rule=rid)

    rule = Rule(
        id=rid, methodology=tuple(meth), kind=kind, stage=stage if kind in SCORED_KINDS else None,
        stages=stages_t, points=float(pts), title=title, action=action, rationale=r["rationale"].strip(),
        when=r["when"], unknown_when=unknown_when, examples=ex, file=fname,
        reads=frozenset(reads), depends=depends, measure=r.get("measure"),
        find_out=_text_pair(r["find_out"], "find_out", fname, rid) if r.get("find_out") is not None else {},
    )
    return rule, (when, unknown_tree), parse_measures(r.get("measure"), rid, stages_t, scope, fname)


def _check_measures(measures: list[Measure], rules: list[Rule]) -> tuple[Measure, ...]:
    """The pack's measures in pack order; a name used twice is refused."""
    by_id = {r.id: r for r in rules}
    seen: dict[str, str] = {}
    for m in measures:
        if m.name in seen:
            r = by_id[m.rule]
            raise RulePackError(f"duplicate measure name {m.name!r} (also in rule {seen[m.name]})", file=r.file, rule=r.id)
        seen[m.name] = m.rule
    return tuple(measures)


def _assign_layers(rules: list[Rule]) -> list[Rule]:
    """Layer = 1 + the deepest layer among the rules a rule reads (``ev_X``); cycles are refused."""
    by_id = {r.id: r for r in rules}
    layer: dict[str, int] = {}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(rid: str, path: list[str]) -> int:
        if state.get(rid) == 2:
            return layer[rid]
        if state.get(rid) == 1:
            cyc = path[path.index(rid):] + [rid]
            r = by_id[rid]
            raise RulePackError(f"cycle between derived facts: {' -> '.join(cyc)}", file=r.file, rule=rid)
        state[rid] = 1
        deps = by_id[rid].depends
        lv = 0 if not deps else 1 + max(visit(d, path + [rid]) for d in sorted(deps))
        state[rid] = 2
        layer[rid] = lv
        return lv

    for r in rules:
        visit(r.id, [])
    return [Rule(**{**r.__dict__, "layer": layer[r.id]}) for r in rules]


def _check_engine_limits(rules: list[Rule], trees: Mapping[str, tuple[Cond, Cond | None]],
                         fields, counts, computed) -> None:
    n_fact_fields = len(fields.get("opportunity", {})) + len(counts) + len(computed) + len(rules) + len(RESERVED)
    if n_fact_fields > MAX_FACT_FIELDS:
        raise RulePackError(
            f"the pack needs {n_fact_fields} fields per fact (declared fields + counts + computed + one per rule); "
            f"durable-rules fails above 252: split the pack or drop unused declarations", file=PACK_FILE)
    acc: dict[str, set] = {}
    first_rule: dict[str, Rule] = {}
    for r in rules:
        for cond in trees[r.id]:
            if cond is not None:
                before = {k: len(v) for k, v in acc.items()}
                distinct_tests(cond, acc)
                for k, v in acc.items():
                    if len(v) > before.get(k, 0):
                        first_rule.setdefault(k, r)
    for name, tests in acc.items():
        if len(tests) > MAX_TESTS_PER_FIELD:
            r = first_rule[name]
            raise RulePackError(
                f"{len(tests)} distinct tests on field {name!r} across the pack; durable-rules hangs building "
                f"rulesets with several hundred (limit {MAX_TESTS_PER_FIELD})", file=r.file, rule=r.id)
