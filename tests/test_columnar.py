"""The column-wise evaluator (scoring/evidence/columnar.py) against durable-rules (the reference).

1. every rule of the default pack, counts and computed, over generated deals;
2. random conditions of the pack grammar (hypothesis) built into small packs, and count conditions
   against durable-rules' own $iany/$iall;
3. the engine's quirks, spelt out.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from scoring.contract.frames import Frames, records_to_frames
from scoring.evidence.columnar import ColumnarEvaluator
from scoring.evidence.status import STATUS_WORDS
from scoring.contract.schema import CHILD_KEY, CHILD_LISTS, CONTRACT, STAGES
from scoring.evidence.durable import Engine
from scoring.contract.nested import validate_record
from scoring.evidence.grammar import COMPARE_OPS
from scoring.evidence.pack import load_pack

from conftest import needs_durable_rules, rule

DEFAULT_PACK = Path(__file__).parent.parent / "rules" / "default"
AS_OF = "2026-11-25"


# --------------------------------------------------------------------------- helpers


def differences(pack, records, engine=None, as_of=AS_OF, frames=None, limit=20) -> list[str]:
    """Every (record, rule) where the columnar evaluation differs from the engine, as readable lines."""
    engine = engine or Engine(pack)
    frames = frames if frames is not None else records_to_frames(records, pack.fields)
    ev = ColumnarEvaluator(pack).evaluate(frames, as_of)
    assert list(ev.status.columns) == [r.id for r in pack.rules]
    assert list(ev.status.index) == list(range(len(records)))
    out: list[str] = []
    for i, rec in enumerate(records):
        ref = engine.evaluate(rec, as_of=as_of)
        got = ev.status_of(i)
        for r in pack.rules:
            if ref.status[r.id] != got[r.id]:
                out.append(f"rule {r.id} on record #{i} ({rec.get('id')}): engine {ref.status[r.id]}, "
                           f"columnar {got[r.id]}\n  when: {r.when}\n  unknown_when: {r.unknown_when}\n"
                           f"  record: {_short(rec)}")
        got_m = ev.measures_of(i)
        if got_m != ref.measures:
            out.append(f"measures on record #{i} ({rec.get('id')}): engine {ref.measures}, columnar {got_m}\n"
                       f"  record: {_short(rec)}")
        got_d = ev.derived_of(i)
        for k, v in ref.derived.items():
            if got_d.get(k, "<absent>") != v:
                out.append(f"derived {k} on record #{i} ({rec.get('id')}): engine {v!r}, columnar {got_d.get(k)!r}\n"
                           f"  record: {_short(rec)}")
        if len(out) >= limit:
            break
    return out


def _short(rec: dict) -> dict:
    out = {k: v for k, v in rec.items() if v is not None and k not in CHILD_LISTS}
    for lst in CHILD_LISTS:
        if lst in rec:
            v = rec[lst]
            out[lst] = None if v is None else [{k: x for k, x in it.items() if x is not None} for it in v]
    return out


def tables_to_frames(tables: dict[str, pd.DataFrame]) -> Frames:
    """Frames straight from synth's tables (string, boolean, Int64, Float64, datetime64 columns),
    as a batch reader would build them."""
    opps = tables["opportunities"].reset_index(drop=True)
    pos = pd.Index(opps["id"])
    children = {}
    for lst in CHILD_LISTS:
        df = tables[lst]
        rows = pos.get_indexer(df[CHILD_KEY])
        assert (rows >= 0).all()
        children[lst] = df.drop(columns=[CHILD_KEY]).assign(_row=rows).reset_index(drop=True)
    return Frames(opps=opps, children=children)


@pytest.fixture(scope="module")
def pack():
    return load_pack(DEFAULT_PACK)


@pytest.fixture(scope="module")
def engine(pack):
    return Engine(pack)


def _spoil(records: list[dict], pack, seed: int) -> list[dict]:
    """Push generated records into the corners: unknown fields, missing and empty lists,
    children with unknown fields, every stage, own as_of unknown."""
    rnd = random.Random(seed)
    opp_fields = [f for f in pack.fields["opportunity"] if f not in ("id", "stage")]
    out = []
    for i, rec in enumerate(records):
        rec = {k: (list(v) if isinstance(v, list) else v) for k, v in rec.items()}
        mode = i % 6
        if mode == 1:  # many unknowns
            for f in opp_fields:
                if rnd.random() < 0.5:
                    rec[f] = None
        if mode == 2:  # missing and empty lists
            for lst in CHILD_LISTS:
                rec[lst] = rnd.choice([None, []])
        if mode == 3:  # children with unknown fields
            for lst in CHILD_LISTS:
                rec[lst] = [{k: (None if rnd.random() < 0.4 else v) for k, v in it.items()} for it in rec[lst]]
        if mode == 4:  # stage shuffled against the evidence
            rec["stage"] = rnd.choice(STAGES)
        if mode == 5:
            rec["as_of"] = None
        out.append(validate_record(rec, pack.schema) if mode != 2 else rec)
    return out


@pytest.fixture(scope="module")
def generated(pack):
    from dealscore_datasets.generate import generate_tables, tables_to_records

    tables = generate_tables(600, seed=11, kind="pipeline")
    records = [validate_record(r, pack.schema) for r in tables_to_records(tables)]
    return tables, records


# --------------------------------------------------------------------------- 1. default pack


@needs_durable_rules
@pytest.mark.timeout(300)
def test_default_pack_agrees_with_engine_on_generated_deals(pack, engine, generated):
    _, records = generated
    records = records[:200] + _spoil(records[200:], pack, seed=5)
    assert {r["stage"] for r in records} == set(STAGES)
    assert any(r["contacts"] is None for r in records) and any(r["contacts"] == [] for r in records)
    diffs = differences(pack, records, engine)
    assert not diffs, f"{len(diffs)}+ differences:\n" + "\n".join(diffs)


@pytest.mark.timeout(300)
def test_default_pack_every_status_is_reached(pack, generated):
    """The generated deals exercise the rules: most rules reach at least two statuses."""
    _, records = generated
    ev = ColumnarEvaluator(pack).evaluate(records_to_frames(_spoil(records, pack, 3), pack.fields), AS_OF)
    seen = {rid: set(ev.status[rid].unique().tolist()) for rid in ev.status.columns}
    one = [rid for rid, s in seen.items() if len(s) < 2]
    assert len(one) <= len(seen) // 10, f"rules stuck on one status: {one}"


def test_frames_from_tables_match_frames_from_records(pack, generated):
    """A batch reader's frames (string/boolean/Int64/Float64/datetime64 dtypes, child rows in any
    order) give the same evidence as records_to_frames."""
    tables, records = generated
    ev = ColumnarEvaluator(pack)
    a = ev.evaluate(records_to_frames(records, pack.fields), AS_OF)
    fr = tables_to_frames(tables)
    fr.children = {k: v.sample(frac=1.0, random_state=1).reset_index(drop=True) for k, v in fr.children.items()}
    b = ev.evaluate(fr, AS_OF)
    pd.testing.assert_frame_equal(a.status, b.status)
    pd.testing.assert_frame_equal(a.derived, b.derived)
    # categorical enums and object dates too
    fr2 = tables_to_frames(tables)
    fr2.opps = fr2.opps.assign(stage=fr2.opps["stage"].astype("category"),
                               as_of=fr2.opps["as_of"].dt.strftime("%Y-%m-%d").astype(object))
    fr2.children["contacts"] = fr2.children["contacts"].assign(role=fr2.children["contacts"]["role"].astype("category"))
    c = ev.evaluate(fr2, AS_OF)
    pd.testing.assert_frame_equal(a.status, c.status)


def test_evidence_shape_and_words(pack, generated):
    _, records = generated
    ev = ColumnarEvaluator(pack).evaluate(records_to_frames(records[:50], pack.fields), AS_OF)
    assert ev.status.shape == (50, len(pack.rules))
    assert set(ev.status.dtypes.astype(str)) == {"int8"}
    assert list(ev.derived.columns) == list(pack.counts) + list(pack.computed)
    for c in pack.counts:
        assert ev.derived[c].dtype == np.int64
    for c in pack.computed:
        assert str(ev.derived[c].dtype) == "Int64"
    words = ev.words()
    assert set(np.unique(words.to_numpy())) <= set(STATUS_WORDS)
    assert words.iloc[3].to_dict() == ev.status_of(3)


def test_empty_chunk(pack):
    ev = ColumnarEvaluator(pack).evaluate(records_to_frames([], pack.fields), AS_OF)
    assert ev.status.shape == (0, len(pack.rules))


def test_bad_input_is_refused(pack, generated):
    _, records = generated
    frames = records_to_frames(records[:5], pack.fields)
    ev = ColumnarEvaluator(pack)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        ev.evaluate(frames, "25/11/2026")
    frames.children["contacts"] = frames.children["contacts"].assign(_row=7)
    with pytest.raises(ValueError, match="_row"):
        ev.evaluate(frames, AS_OF)


# --------------------------------------------------------------------------- 3. quirks, spelt out

EX = {"met": {"stage": "bidding"}, "missing": {"stage": "bidding"}}


def _rec(i, **kw):
    base = {"id": f"q{i}", "stage": "relationship", "needs_understood": None, "amount": None,
            "tech_presentations": None, "stage_entered_at": None, "as_of": None, "decision_maker_signal": None,
            "contacts": None}
    base.update(kw)
    return base


@pytest.fixture
def quirk_pack(make_pack):
    return load_pack(make_pack(
        counts={"coaches": {"list": "contacts", "where": {"$i.is_coach": True}},
                "role_unknown": {"list": "contacts", "where": {"$nex": {"$i.role": 1}}}},
        computed={"days_in_stage": {"days_between": ["stage_entered_at", "as_of"]}},
        rules=[
            rule("ALL_COACH", when={"$iall": {"contacts": {"$i.is_coach": True}}}, unknown_when=None, examples=EX),
            rule("ALL_NOT_USER", when={"$iall": {"contacts": {"$nex": {"$i.role": 1}}}}, unknown_when=None, examples=EX),
            rule("ANY_NOT_USER", when={"$iany": {"contacts": {"$neq": {"$i.role": "user"}}}},
                 unknown_when={"$iany": {"contacts": {"$nex": {"$i.role": 1}}}}, examples={**EX, "unknown": EX["met"]}),
            rule("NEQ", when={"$neq": {"decision_maker_signal": "none"}}, unknown_when=None, examples=EX),
            rule("GT", when={"$gt": {"amount": 10}}, unknown_when={"$nex": {"amount": 1}},
                 examples={**EX, "unknown": EX["met"]}),
            rule("LIST_EX", when={"$ex": {"contacts": 1}}, unknown_when=None, examples=EX),
            rule("STALE", when={"$gte": {"days_in_stage": 30}}, unknown_when={"$nex": {"days_in_stage": 1}},
                 examples={**EX, "unknown": EX["met"]}),
            rule("NO_COACH", kind="red_flag", stage=None, points=-5, when={"$and": [{"coaches": 0}, {"ev_GT": "met"}]},
                 unknown_when=None, examples=EX),
        ]))


def test_quirks(quirk_pack):
    records = [
        _rec(0, contacts=[]),                                        # empty list
        _rec(1),                                                     # missing list
        _rec(2, contacts=[{"is_coach": True, "role": None}]),        # item without role
        _rec(3, contacts=[{"is_coach": True, "role": "user"}, {"is_coach": None, "role": "approver"}]),
        _rec(4, decision_maker_signal="explicit", amount=11.0, stage_entered_at="2026-10-01"),
        _rec(5, decision_maker_signal="none", amount=10.0, stage_entered_at="2026-10-01", as_of="2026-10-20"),
    ]
    engine = Engine(quirk_pack)
    ev = ColumnarEvaluator(quirk_pack).evaluate(records_to_frames(records, quirk_pack.fields), AS_OF)
    expect = {
        # $iall over an empty or a missing list does NOT match; an item missing the field fails
        "ALL_COACH": ["missing", "missing", "met", "missing", "missing", "missing"],
        "ALL_NOT_USER": ["missing", "missing", "met", "missing", "missing", "missing"],
        # inside $iany an item missing the field fails $neq (only $nex matches it)
        "ANY_NOT_USER": ["missing", "missing", "unknown", "met", "missing", "missing"],
        # $neq on an unknown field does not match
        "NEQ": ["missing", "missing", "missing", "missing", "met", "missing"],
        "GT": ["unknown", "unknown", "unknown", "unknown", "met", "missing"],
        "LIST_EX": ["missing", "missing", "met", "met", "missing", "missing"],
        # as_of: the deal's own when known, else the default
        "STALE": ["unknown", "unknown", "unknown", "unknown", "met", "missing"],
        "NO_COACH": ["missing", "missing", "missing", "missing", "met", "missing"],
    }
    for rid, want in expect.items():
        assert [engine.evaluate(r, as_of=AS_OF).status[rid] for r in records] == want, f"engine, {rid}"
        assert [ev.status_of(i)[rid] for i in range(len(records))] == want, f"columnar, {rid}"
    assert ev.derived["days_in_stage"].tolist() == [pd.NA] * 4 + [55, 19]
    assert ev.derived["coaches"].tolist() == [0, 0, 1, 1, 0, 0]
    assert ev.derived["role_unknown"].tolist() == [0, 0, 1, 0, 0, 0]
    assert not differences(quirk_pack, records, engine)


# --------------------------------------------------------------------------- 2. random conditions

#: the fields of the random packs: entity -> name -> (type, values used in data and in conditions)
ROLES = ["approver", "decision_maker", "user"]
LMH = ["low", "medium", "high"]
DATES = ["2026-01-01", "2026-06-30", "2026-11-25"]
G_FIELDS = {
    "opportunity": {
        "needs_understood": ("bool", [True, False]),
        "tailored_solution": ("bool", [True, False]),
        "decision_maker_signal": ("enum", ["none", "implicit", "explicit"]),
        "tech_presentations": ("int", [0, 1, 2, 3]),
        "amount": ("number", [0.0, 1.5, 2.0, 1e6]),
        "account": ("string", ["Acme", "Beta Ltd", ""]),
        "stage_entered_at": ("date", DATES),
        "as_of": ("date", ["2026-11-25", "2026-12-31"]),
    },
    "contacts": {
        "is_coach": ("bool", [True, False]),
        "role": ("enum", ROLES),
        "influence": ("enum", LMH),
        "name": ("string", ["Li", "Wang"]),
        "years_known": ("int", [0, 1, 5]),
    },
    "competitors": {
        "incumbent": ("bool", [True, False]),
        "strength": ("enum", LMH),
        "price_gap": ("number", [-0.5, 0.0, 2.0]),
    },
    "partners": {
        "has_informant": ("bool", [True, False]),
        "customer_attitude": ("enum", ["negative", "ambiguous", "positive"]),
    },
}
#: enums are declared with the contract's values (the data uses a few of them)
ENUM_VALUES = {ent: {n: list(f.values) for n, f in flds.items() if f.type == "enum"} for ent, flds in CONTRACT.items()}
#: extra values used only in conditions (an int field against 1.5 and 2.0, a number field against 2)
COND_EXTRA = {"int": [1.5, 2.0], "number": [2, 3]}
COUNTS = {"n_contacts": "contacts", "n_competitors": "competitors"}


def _fields_yaml() -> dict:
    out = {}
    for ent, flds in G_FIELDS.items():
        out[ent] = {}
        for name, (t, _) in flds.items():
            out[ent][name] = {"type": t, "values": ENUM_VALUES[ent][name]} if t == "enum" else t
    return out


def _leaves(key: str, ftype: str, values: list, *, exists: bool = True):
    cvals = st.sampled_from(values + COND_EXTRA.get(ftype, []))
    opts = [cvals.map(lambda v: {key: v}), cvals.map(lambda v: {"$neq": {key: v}})]
    if exists:
        opts.append(st.sampled_from(["$ex", "$nex"]).map(lambda op: {op: {key: 1}}))
    if ftype in ("int", "number"):
        opts.append(st.tuples(st.sampled_from(COMPARE_OPS), cvals).map(lambda t: {t[0]: {key: t[1]}}))
    return st.one_of(opts)


def _tree(leaves, max_leaves=5):
    return st.recursive(
        leaves,
        lambda kids: st.one_of(st.lists(kids, min_size=1, max_size=3).map(lambda xs: {"$and": xs}),
                               st.lists(kids, min_size=1, max_size=3).map(lambda xs: {"$or": xs})),
        max_leaves=max_leaves)


def _item_leaves(lst: str, name: str):
    t, v = G_FIELDS[lst][name]
    return _leaves("$i." + name, t, v)


def item_cond(lst: str):
    """An item condition as a rule may hold it: ``$or`` only over tests of ONE field (the loader
    refuses ``$or`` over different item fields, which durable-rules 2.0.28 evaluates wrongly)."""
    names = list(G_FIELDS[lst])
    one_field_or = st.sampled_from(names).flatmap(
        lambda n: st.lists(_item_leaves(lst, n), min_size=1, max_size=3).map(lambda xs: {"$or": xs}))
    leaves = st.one_of([_item_leaves(lst, n) for n in names] + [one_field_or])
    return st.recursive(leaves, lambda kids: st.lists(kids, min_size=1, max_size=3).map(lambda xs: {"$and": xs}),
                        max_leaves=4)


def count_where(lst: str):
    """A count's ``where``: computed outside the engine, any ``$and``/``$or``."""
    return _tree(st.one_of([_item_leaves(lst, n) for n in G_FIELDS[lst]]), max_leaves=4)


def deal_cond(ev_ids: tuple[str, ...] = ()):
    leaves = [_leaves(n, t, v) for n, (t, v) in G_FIELDS["opportunity"].items()]
    leaves.append(_leaves("stage", "enum", ["relationship", "bidding"]))
    leaves += [_leaves(c, "int", [0, 1, 2], exists=False) for c in COUNTS]
    leaves.append(_leaves("days_in_stage", "int", [0, 148, 329]))
    leaves.append(st.tuples(st.sampled_from(["$ex", "$nex"]), st.sampled_from(CHILD_LISTS)).map(lambda t: {t[0]: {t[1]: 1}}))
    leaves.append(st.tuples(st.sampled_from(["$iany", "$iall"]), st.sampled_from(CHILD_LISTS)).flatmap(
        lambda t: item_cond(t[1]).map(lambda c: {t[0]: {t[1]: c}})))
    for rid in ev_ids:
        leaves.append(st.sampled_from(STATUS_WORDS).map(lambda w, rid=rid: {f"ev_{rid}": w}))
        leaves.append(st.sampled_from(STATUS_WORDS).map(lambda w, rid=rid: {"$neq": {f"ev_{rid}": w}}))
    return _tree(st.one_of(leaves), max_leaves=5)


def _maybe(values):
    return st.one_of(st.none(), st.sampled_from(values))


#: the values records use for a field of each type, in a pack's own fields (:func:`pack_field_pool`)
TYPE_VALUES = {"bool": [True, False], "int": [0, 1, 2, 7], "number": [0.0, 1.5, 2.0, 1e6], "date": DATES,
               "string": ["Acme", ""]}


def pack_field_pool(fields) -> dict:
    """Every field a pack declares (``pack.fields``), written as :data:`G_FIELDS`: records over them
    reach what the pack's own rules and measures read (an enum takes each of its values)."""
    return {ent: {n: (f.type, list(f.values) if f.type == "enum" else TYPE_VALUES[f.type])
                  for n, f in flds.items() if n not in ("id", "stage")}
            for ent, flds in fields.items()}


def child_lists(lst, fields=G_FIELDS):
    item = st.fixed_dictionaries({n: _maybe(v) for n, (t, v) in fields[lst].items()})
    return st.one_of(st.none(), st.lists(item, max_size=3))


def records_strategy(fields=G_FIELDS):
    """Lists of records over ``fields`` (:data:`G_FIELDS`, or :func:`pack_field_pool`): every field
    maybe unknown, lists missing, empty or with unknown fields, any stage."""
    opp = {n: _maybe(v) for n, (t, v) in fields["opportunity"].items()}
    opp["stage"] = st.sampled_from(STAGES)
    for lst in CHILD_LISTS:
        opp[lst] = child_lists(lst, fields)
    return st.lists(st.fixed_dictionaries(opp), min_size=1, max_size=16)


@st.composite
def random_pack_spec(draw):
    counts = {name: {"list": lst, "where": draw(count_where(lst))} for name, lst in COUNTS.items()}
    n0 = draw(st.integers(3, 6))
    rules = []
    for i in range(n0):
        unk = draw(st.one_of(st.none(), deal_cond()))
        rules.append((f"R{i}", draw(deal_cond()), unk))
    ev_ids = tuple(r[0] for r in rules[:2])
    # a second-layer rule: it always reads an earlier rule's status
    ev_leaf = {f"ev_{draw(st.sampled_from(ev_ids))}": draw(st.sampled_from(STATUS_WORDS))}
    when = {draw(st.sampled_from(["$and", "$or"])): [ev_leaf, draw(deal_cond(ev_ids))]}
    rules.append(("D0", when, draw(st.one_of(st.none(), deal_cond(ev_ids)))))
    return counts, rules, draw(random_measures())


@st.composite
def random_measures(draw):
    """One measure of each value form, with random conditions, reductions and stages."""
    lmh = {"low": 1, "medium": 2, "high": 3}
    maybe_cond = st.one_of(st.none(), deal_cond())
    forms = [
        {"items": {"list": "contacts", "where": draw(count_where("contacts")),
                   "value": draw(st.sampled_from([1, {"field": "influence", "values": lmh}])),
                   "weight": {"field": "is_coach", "values": {True: 2, False: 1}, "unknown": 0.5},
                   "reduce": draw(st.sampled_from(["sum", "max", "min"]))}},
        {"items": {"list": "competitors", "value": {"field": "strength", "values": {"low": -1, "high": 3}},
                   "reduce": draw(st.sampled_from(["sum", "max", "min"]))}},
        {"level": {"field": "decision_maker_signal", "values": {"none": 0, "implicit": 1, "explicit": 2}}},
        {"ratio": ["tech_presentations", "n_contacts"]},
        {"sum": {"amount": 0.5, "days_in_stage": -1, "n_competitors": 2}},
        {"count_true": ["needs_understood", "tailored_solution"]},
        {"field": "days_in_stage"},
    ]
    out = []
    for k, value in enumerate(forms):
        m = {"name": f"m{k}", "kind": "level" if "level" in value or "items" in value else "count", "value": value,
             "direction": draw(st.sampled_from(["up", "down"])), "unknown": "not recorded",
             "label": {"en": "{value}", "zh": "{value}"}}
        for key in ("unknown_when", "negate_when"):
            c = draw(maybe_cond)
            if c is not None:
                m[key] = c
        stages = draw(st.one_of(st.none(), st.lists(st.sampled_from(STAGES), min_size=1, unique=True)))
        if stages is not None:
            m["stages"] = stages
        out.append(m)
    return out


def _write_pack(folder: Path, counts, rules, measures=None) -> Path:
    folder.mkdir(parents=True)
    meta = {"name": "random", "version": "1", "counts": counts,
            "computed": {"days_in_stage": {"days_between": ["stage_entered_at", "as_of"]}}}
    (folder / "pack.yaml").write_text(yaml.safe_dump(meta))
    (folder / "fields.yaml").write_text(yaml.safe_dump({"fields": _fields_yaml()}))
    docs = []
    for rid, when, unk in rules:
        ex = {"met": {"stage": "bidding"}, "missing": {"stage": "bidding"}}
        if unk is not None:
            ex["unknown"] = {"stage": "bidding"}
        docs.append(rule(rid, when=when, unknown_when=unk, examples=ex,
                         measure=measures if measures and rid == rules[0][0] else None))
    (folder / "rules.yaml").write_text(yaml.safe_dump({"rules": docs}))
    return folder


_N = [0]

# The differential tests draw NEW random cases on every run (derandomize=False): a failure prints the
# falsifying example, the rule, its conditions and the record, and hypothesis prints the seed and a
# @reproduce_failure blob to replay it (or run pytest with --hypothesis-seed=<seed>).
# Every example compiles a new durable-rules ruleset (rulesets cannot be deleted): the number of
# packs stays bounded, and there is no shrinking (a shrink would build hundreds more).  The timeout
# stays: durable-rules can hang on some conditions (see the engine notes).
DIFFERENTIAL = settings(
    max_examples=60, deadline=None, derandomize=False, print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])


@needs_durable_rules
@pytest.mark.timeout(180)
@DIFFERENTIAL
@given(spec=random_pack_spec(), records=records_strategy())
def test_random_conditions_agree_with_engine(tmp_path, spec, records):
    counts, rules, measures = spec
    _N[0] += 1
    pack = load_pack(_write_pack(tmp_path / f"p{_N[0]}", counts, rules, measures))
    assert pack.n_layers == 2 and len(pack.compiled.measures) == len(measures)
    records = [{"id": f"r{i}", **r} for i, r in enumerate(records)]
    diffs = differences(pack, records)
    assert not diffs, "\n".join(diffs)


@needs_durable_rules
@pytest.mark.timeout(180)
@settings(DIFFERENTIAL, max_examples=40)
@given(data=st.data())
def test_default_pack_measures_agree_between_backends(pack, engine, data):
    """Random records over every field the default pack declares (every field maybe unknown, lists
    missing, empty or with unknown fields, any stage) give the same measures, and the same statuses,
    in both backends."""
    records = data.draw(records_strategy(pack_field_pool(pack.fields)), label="records")
    records = [{"id": f"r{i}", **r} for i, r in enumerate(records)]
    assert pack.compiled.measures
    ev = ColumnarEvaluator(pack).evaluate(records_to_frames(records, pack.fields), AS_OF)
    assert ev.measures.shape == (len(records), len(pack.compiled.measures))
    assert ev.measures.dtype == np.float64
    diffs = differences(pack, records, engine)
    assert not diffs, "\n".join(diffs)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("lst", CHILD_LISTS)
@settings(DIFFERENTIAL, max_examples=30)  # three conditions per pack
@given(data=st.data(), records=records_strategy())
def test_count_where_agrees_with_durable_rules_own_iany_and_iall(tmp_path, lst, data, records):
    """durable-rules cannot count, so counts are computed outside it; their ``where`` must mean what
    the same item condition means to durable-rules itself: a count is > 0 iff ``$iany`` matches, and
    equals the (non-empty) number of rows iff ``$iall`` matches."""
    wheres = data.draw(st.lists(item_cond(lst), min_size=3, max_size=3), label="wheres")
    counts = {f"n{k}": {"list": lst, "where": w} for k, w in enumerate(wheres)}
    rules = [r for k, w in enumerate(wheres)
             for r in ((f"ANY{k}", {"$iany": {lst: w}}, None), (f"ALL{k}", {"$iall": {lst: w}}, None))]
    _N[0] += 1
    pack = load_pack(_write_pack(tmp_path / f"c{_N[0]}", counts, rules))
    engine = Engine(pack)
    records = [{"id": f"r{i}", **r} for i, r in enumerate(records)]
    for rec in records:
        ev = engine.evaluate(rec, as_of=AS_OF)
        rows = len(rec.get(lst) or ())
        for k, w in enumerate(wheres):
            n, any_, all_ = ev.derived[f"n{k}"], ev.status[f"ANY{k}"], ev.status[f"ALL{k}"]
            where = f"where {w}, record {_short(rec)}"
            assert (n > 0) == (any_ == "met"), f"count {n} but durable-rules $iany {any_}: {where}"
            assert (0 < rows == n) == (all_ == "met"), f"count {n} of {rows} but durable-rules $iall {all_}: {where}"
    assert not differences(pack, records, engine)
