"""Reliability: malformed rule packs and model artifacts, one test per class of bad input.

A bad pack fails at load with a RulePackError naming the file (and the rule
where there is one), in bounded time and memory; ``scoring rules check`` turns
it into one line and exit code 2.  A bad model artifact is a ModelError naming
the artifact and never reads a file outside its folder.  No number a pack can
carry makes a score NaN.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from scoring.cli import main
from scoring.errors import ExitCode, ModelError, RulePackError
from scoring.evidence import packfiles
from scoring.evidence.pack import MAX_POINTS, load_pack
from scoring.model import artifact as A

from conftest import rule

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "default"

BILLION_LAUGHS = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
                  + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
                            for i in range(8)))


def _fails(path, *match: str, rule_id: str | None = None) -> RulePackError:
    with pytest.raises(RulePackError) as info:
        load_pack(path)
    err = info.value
    for m in match:
        assert m in str(err), str(err)
    if rule_id is not None:
        assert err.rule == rule_id, str(err)
    return err


def _check_cli(path, *match: str) -> None:
    """``scoring rules check PATH``: one line on stderr naming what is wrong, exit code 2."""
    res = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert res.exit_code == ExitCode.USAGE, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for m in match:
        assert m in lines[0], lines[0]


# --------------------------------------------------------------------------- YAML


def test_alias_bomb_is_refused_before_anything_is_built(make_pack, monkeypatch):
    with monkeypatch.context() as m:
        def never(*_a, **_k):
            raise AssertionError("the document was constructed: the alias check came too late")

        m.setattr(packfiles.PackLoader, "construct_document", never)
        with pytest.raises(packfiles.PackYAMLError, match="aliases"):
            packfiles.load_yaml(BILLION_LAUGHS)
    err = _fails(make_pack(files={"bomb.yaml": BILLION_LAUGHS}), "aliases", "expand to more than")
    assert err.file == "bomb.yaml"


def test_alias_bomb_through_the_command_stays_small(make_pack):
    """The command itself, in a process that may not grow beyond 1 GiB (the bomb made it grow to 11 GB)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    pack = make_pack(files={"bomb.yaml": BILLION_LAUGHS})
    res = subprocess.run([sys.executable, "-c", "from scoring.cli import main; main()", "rules", "check", str(pack)],
                         preexec_fn=limit, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == ExitCode.USAGE, res.stderr
    assert res.stderr.strip().count("\n") == 0 and "bomb.yaml" in res.stderr and "aliases" in res.stderr


def test_recursive_alias_is_refused(make_pack):
    pack = make_pack(files={"loop.yaml": "rules: &r\n  - *r\n"})
    _fails(pack, "file loop.yaml", "line 2", "recursive")
    _check_cli(pack, "loop.yaml", "recursive")


def test_a_few_aliases_still_work(make_pack):
    a, b = rule("A"), rule("B")
    ex = a.pop("examples")
    del b["examples"]
    text = (f"rules:\n- {json.dumps(a, ensure_ascii=False)[:-1]}, \"examples\": &ex {json.dumps(ex)}}}\n"
            f"- {json.dumps(b, ensure_ascii=False)[:-1]}, \"examples\": *ex }}\n")
    pack = load_pack(make_pack(rules=[], files={"rules.yaml": text}))
    assert pack.rule("B").examples == pack.rule("A").examples == ex


@pytest.mark.parametrize("style", ["block", "flow"])
def test_deep_nesting_is_refused_naming_the_file(make_pack, style):
    n = 5000
    text = ("k:\n" + "".join("  " * (i + 1) + "k:\n" for i in range(n)) if style == "block"
            else "rules: " + "[" * n + "]" * n + "\n")
    pack = make_pack(files={"deep.yaml": text})
    err = _fails(pack, "file deep.yaml")
    assert "nested more than" in str(err) or "nesting depth" in str(err)
    _check_cli(pack, "deep.yaml")


def test_aliases_cannot_nest_beyond_the_depth_limit(make_pack):
    """Each alias of a deep value may fit, but a chain of them would nest thousands deep once expanded."""
    text = "a0: &a0 " + "[" * 60 + "1" + "]" * 60 + "\n" + "".join(
        f"a{i}: &a{i} " + "[" * 30 + f"*a{i - 1}" + "]" * 30 + "\n" for i in range(1, 50))
    pack = make_pack(files={"chain.yaml": text})
    _fails(pack, "file chain.yaml", "line 3", "alias *a1", "nested more than")


@pytest.mark.parametrize("key", ["when", "points"])
def test_duplicate_key_is_refused_naming_file_key_and_line(make_pack, key):
    lines = yaml.safe_dump({"rules": [rule("A")]}, allow_unicode=True).splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.lstrip("- ").startswith(f"{key}:"))
    indent = lines[1][: len(lines[1]) - len(lines[1].lstrip())] + "  "  # the keys of the first rule
    dup = f"{indent}{key}: " + ("{needs_understood: false}" if key == "when" else "7")
    lines.insert(len(lines), dup)
    pack = make_pack(rules=[], files={"rules.yaml": "\n".join(lines) + "\n"})
    err = _fails(pack, "file rules.yaml", f"duplicate key '{key}'", f"line {len(lines)}", f"first at line {first + 1}")
    assert err.file == "rules.yaml"
    _check_cli(pack, "rules.yaml", f"duplicate key '{key}'")


def test_default_pack_reads_the_same_as_plain_yaml():
    for f in sorted((ROOT / "rules" / "default").glob("*.yaml")):
        assert packfiles.load_yaml(f.read_bytes()) == yaml.safe_load(f.read_bytes()), f.name


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("points", [math.inf, -math.inf, math.nan, MAX_POINTS + 1, 1e300, 10**400])
def test_points_must_be_finite_and_in_range(make_pack, points):
    kind = {"kind": "red_flag", "stage": None} if points < 0 else {}
    pack = make_pack(rules=[rule("A", points=points, **kind)])
    _fails(pack, "file rules.yaml", "rule A", "points must be a finite number")
    _check_cli(pack, "rules.yaml", "rule A", "points")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(points=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20)))
def test_points_outside_the_documented_range_never_load(make_pack, points):
    pack = make_pack(rules=[rule("A", points=points)])
    if 0 < points <= MAX_POINTS:  # a checklist item needs positive points
        assert load_pack(pack).rule("A").points == float(points)
    else:
        _fails(pack, "rule A", "points")


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan, 1e16, -1e16, 1e-5, 2**63])
@pytest.mark.parametrize("where", ["field", "count", "computed", "item"])
def test_condition_numbers_must_be_finite_and_in_range(make_pack, number, where):
    conds = {"field": {"$gte": {"tech_presentations": number}},
             "count": {"$gte": {"coaches": number}},
             "computed": {"$gt": {"days_in_stage": number}},
             "item": {"$iany": {"contacts": {"$i.is_coach": True}}}}
    counts = {"coaches": {"list": "contacts", "where": {"$i.is_coach": True}}}
    fields = None
    if where == "item":  # a number inside an item condition (a count's where)
        counts = {"big": {"list": "contacts", "where": {"$gt": {"$i.age": number}}}}
        fields = {"opportunity": {"needs_understood": "bool", "tech_presentations": "int"},
                  "contacts": {"is_coach": "bool", "age": "number"}}
    pack = make_pack(rules=[rule("A", when=conds[where])], counts=counts, fields=fields,
                     computed={"days_in_stage": {"days_between": ["stage_entered_at", "as_of"]}}
                     if where != "item" else None)
    err = _fails(pack, "file pack.yaml" if where == "item" else "file rules.yaml", "outside -10^15 .. 10^15"
                 if not (number and abs(number) < 1e-4) else "too small")
    assert err.rule == ("count big" if where == "item" else "A")


def test_a_field_minimum_must_be_finite(make_pack):
    pack = make_pack(fields={"opportunity": {"needs_understood": "bool", "score": {"type": "number", "min": math.nan}}})
    _fails(pack, "file fields.yaml", "opportunity.score", "min")


def test_points_at_the_limits_give_finite_json_scores(make_pack):
    """NaN never reaches an output: the extreme points a pack may hold give finite scores in 0..100."""
    from scoring.api import Scorer

    pack = make_pack(rules=[
        rule("A", points=MAX_POINTS),
        rule("B", stage="relationship", points=1e-4),
        rule("F", kind="red_flag", stage=None, points=-MAX_POINTS, when={"needs_understood": False},
             unknown_when=None, examples={"met": {"stage": "bidding", "needs_understood": False},
                                          "missing": {"stage": "bidding", "needs_understood": True}}),
    ])
    scorer = Scorer(model=None, rules=pack)
    for stage in ("technical_promotion", "relationship", "bidding"):
        for known in (True, False, None):
            rec = {"id": "X", "stage": stage, "as_of": "2026-01-01", **({} if known is None else {"needs_understood": known})}
            result = scorer.score(rec)
            assert 0.0 <= result.rule_score <= 100.0
            json.dumps(result.to_json(), allow_nan=False)


# --------------------------------------------------------------------------- fuzzing


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_pack_files_load_or_fail_with_a_rule_pack_error(make_pack, data):
    """Random byte edits of a valid pack: it loads, or a RulePackError names the file; nothing else escapes."""
    base = make_pack(rules=[rule("A"), rule("B", kind="red_flag", stage=None, points=-5, unknown_when=None,
                                           examples={"met": {"stage": "bidding", "needs_understood": True},
                                                     "missing": {"stage": "bidding", "needs_understood": False}})],
                     counts={"coaches": {"list": "contacts", "where": {"$i.is_coach": True}}})
    name = data.draw(st.sampled_from(["rules.yaml", "pack.yaml", "fields.yaml"]))
    raw = bytearray((base / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["replace", "delete", "insert"]))
        byte = data.draw(st.sampled_from(list(b"{}[]:,-&*!|>'\"\n #01.e") + [0xFF, 0x00, 0xE4]))
        if op == "replace":
            raw[pos] = byte
        elif op == "delete":
            del raw[pos]
        else:
            raw.insert(pos, byte)
    (base / name).write_bytes(bytes(raw))
    try:
        load_pack(base)
    except RulePackError as err:
        assert err.file, str(err)


_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=4),
                 st.sampled_from(["contacts", "$i.is_coach", "$iany", "$and", "$gt", "$ex", "needs_understood",
                                  "met", "relationship", "checklist", "ev_B"]))
_VALUES = st.recursive(_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.none(), st.integers(), st.text(max_size=4), st.just("$i.role")), inner, max_size=3)),
    max_leaves=8)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(["rule", "when", "item", "counts", "computed", "fields", "file"]), data=st.data())
def test_any_value_anywhere_in_a_pack_loads_or_fails_with_a_rule_pack_error(make_pack, where, data):
    """Any YAML value in place of a rule's key, a condition, a count, a computed field, a field or a whole
    file: the pack loads or a RulePackError names the file; no TypeError or AttributeError escapes."""
    value = data.draw(_VALUES)
    r = rule("A")
    doc: object = {"rules": [r]}
    counts = {"coaches": {"list": "contacts", "where": {"$i.is_coach": True}}}
    computed = {"days_in_stage": {"days_between": ["stage_entered_at", "as_of"]}}
    fields = None
    if where == "rule":
        r[data.draw(st.sampled_from(sorted(r) + ["extra"]))] = value
    elif where == "when":
        r["when"] = {data.draw(st.sampled_from(["$and", "$or", "$iany", "$gt", "$nex", "needs_understood",
                                                "coaches", "days_in_stage", "contacts"])): value}
    elif where == "item":
        r["when"] = {"$iany": {"contacts": value}}
    elif where == "counts":
        counts = value if data.draw(st.booleans()) else {"c": value}
    elif where == "computed":
        computed = value if data.draw(st.booleans()) else {"d": value}
    elif where == "fields":
        fields = {"opportunity": {"needs_understood": "bool", "x": value}, "contacts": value}
    else:
        doc = value
    pack = make_pack(rules=[], counts=counts, computed=computed, fields=fields,
                     files={"rules.yaml": yaml.safe_dump(doc, allow_unicode=True)})
    try:
        load_pack(pack)
    except RulePackError as err:
        assert err.file, str(err)


# --------------------------------------------------------------------------- model artifacts


@pytest.fixture
def artifact(tmp_path) -> Path:
    """A copy of the bundled default model, free to damage."""
    dest = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, dest)
    return dest


def _edit_manifest(folder: Path, edit) -> None:
    mf = folder / "manifest.json"
    manifest = json.loads(mf.read_text(encoding="utf-8"))
    edit(manifest)
    mf.write_text(json.dumps(manifest), encoding="utf-8")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(folder: Path, *match: str) -> ModelError:
    with pytest.raises(ModelError) as info:
        A.load_model(folder)
    for m in match:
        assert m in str(info.value), str(info.value)
    assert str(folder) in str(info.value)
    return info.value


def _never_reads_outside(monkeypatch, folder: Path) -> list[Path]:
    read: list[Path] = []
    real = A._sha256

    def spy(path):
        read.append(Path(path))
        return real(path)

    monkeypatch.setattr(A, "_sha256", spy)
    return read


@pytest.mark.parametrize("entry", ["../../../../etc/hostname", "/etc/hostname", "rules/../../outside.txt",
                                   "rules//pack.yaml", "./model.joblib", "rules\\pack.yaml"])
def test_manifest_paths_must_stay_inside_the_artifact(artifact, monkeypatch, entry):
    outside = artifact.parent / "outside.txt"
    outside.write_text("secret\n")
    target = Path("/etc/hostname") if "hostname" in entry else outside
    digest = _sha(target) if target.is_file() else "0" * 64
    _edit_manifest(artifact, lambda m: m["files"].__setitem__(entry, digest))
    read = _never_reads_outside(monkeypatch, artifact)
    _refused(artifact, repr(entry), "refused")
    assert all(p.resolve().is_relative_to(artifact.resolve()) for p in read)


def test_a_symlink_leading_outside_the_artifact_is_refused(artifact, monkeypatch):
    outside = artifact.parent / "other-pack.yaml"
    outside.write_bytes((artifact / "rules" / "triggers.yaml").read_bytes())
    (artifact / "rules" / "triggers.yaml").unlink()
    os.symlink(outside, artifact / "rules" / "triggers.yaml")
    read = _never_reads_outside(monkeypatch, artifact)
    _refused(artifact, "'rules/triggers.yaml'", "leads outside")
    assert outside not in read


def test_a_manifest_leading_outside_the_artifact_is_refused(artifact):
    outside = artifact.parent / "manifest.json"
    os.replace(artifact / "manifest.json", outside)
    os.symlink(outside, artifact / "manifest.json")
    _refused(artifact, "leading outside")


def test_a_symlink_inside_the_artifact_is_fine(artifact):
    real = artifact / "rules" / "triggers.yaml"
    kept = artifact / "kept.bin"
    os.replace(real, kept)
    os.symlink(kept, real)
    _edit_manifest(artifact, lambda m: m["files"].__setitem__("kept.bin", _sha(kept)))
    assert A.load_model(artifact).model_version


@pytest.mark.parametrize("key", ["rule_pack", "files", "features", "model_id", "format"])
def test_a_manifest_without_a_key_the_loader_needs_is_a_model_error(artifact, key):
    _edit_manifest(artifact, lambda m: m.pop(key))
    _refused(artifact, "manifest.json")


@pytest.mark.parametrize("edit", [
    lambda m: m["rule_pack"].pop("fingerprint"),
    lambda m: m.__setitem__("rule_pack", "default"),
    lambda m: m.__setitem__("files", ["model.joblib"]),
    lambda m: m["files"].__setitem__("model.joblib", 42),
], ids=["no-fingerprint", "pack-not-a-mapping", "files-a-list", "digest-not-text"])
def test_a_damaged_manifest_is_a_model_error(artifact, edit):
    _edit_manifest(artifact, edit)
    _refused(artifact)


def test_a_manifest_that_is_not_json_is_a_model_error(artifact):
    (artifact / "manifest.json").write_text("[" * 100_000, encoding="utf-8")
    _refused(artifact, "not valid JSON")


def test_a_model_with_nan_points_is_refused(artifact):
    card = json.loads((artifact / "scorecard.json").read_text())
    card["rules"][0]["met"] = float("nan")
    (artifact / "scorecard.json").write_text(json.dumps(card))  # Python's json writes NaN
    _edit_manifest(artifact, lambda m: m["files"].__setitem__("scorecard.json", _sha(artifact / "scorecard.json")))
    _refused(artifact, "not all finite")


def test_a_broken_pack_inside_the_artifact_names_the_artifact(artifact):
    f = artifact / "rules" / "triggers.yaml"
    f.write_text(f.read_text(encoding="utf-8") + "rules: []\n", encoding="utf-8")
    _edit_manifest(artifact, lambda m: m["files"].__setitem__("rules/triggers.yaml", _sha(f)))
    _refused(artifact, "duplicate key 'rules'", "triggers.yaml")


def test_score_with_a_bad_model_prints_one_line_and_exits_2(artifact, tmp_path):
    _edit_manifest(artifact, lambda m: m["files"].__setitem__("../../../../etc/hostname", "0" * 64))
    out = tmp_path / "scores.jsonl"
    res = CliRunner().invoke(main, ["score", str(ROOT / "datasets" / "sample" / "pipeline.jsonl"),
                                    "--model", str(artifact), "--out", str(out)])
    assert res.exit_code == ExitCode.USAGE, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "etc/hostname" in lines[0], res.output
    assert not out.exists()


def test_fuzzed_manifest_never_escapes_as_another_error(artifact):
    """Every top-level value of the manifest swapped for a value of another type: ModelError only."""
    original = json.loads((artifact / "manifest.json").read_text(encoding="utf-8"))
    for key in original:
        for bad in (None, 1, "x", [1], {"a": 1}):
            _edit_manifest(artifact, lambda m: m.update({**original, key: bad}))
            try:
                model = A.load_model(artifact)
            except ModelError:
                continue
            A.model_no_decision_as(model), model.model_version  # what later commands read from it
    _edit_manifest(artifact, lambda m: m.update(original))
    A.load_model(artifact)
