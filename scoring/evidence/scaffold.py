"""Drafting a rule pack from data: one ``fact`` per meaningful value of an export's fields.

``scoring rules new NAME --from EXPORT`` calls :func:`draft_pack` then
:func:`write_pack`.  The draft is a starting point for an analyst: it loads,
its examples pass (``scoring rules check``) and a model trains on it, but its
facts only describe the deals; turning the ones a rep can act on into
checklist items (points, an action) is the analyst's job (``rules/README.md``).

What is drafted, per field that holds a known value somewhere in the export
(the fields of :data:`scoring.evidence.coverage.BOOKKEEPING` and dates aside):

* a **bool**: one fact, "<field>: yes / no / unknown";
* a **category** (an enum, or a text field with at most
  :data:`MAX_CATEGORIES` distinct values): one fact per value seen
  ("Region: east");
* a **number**: a fact "at least <cut>" per cut point, at most three: the
  quartiles of the known values rounded to two significant digits (whole
  numbers under 10 stay whole; ``1`` = "any" for counts), kept when between
  5% and 95% of the known values reach it;
* a **child row field** (contacts, competitors, partners), bool or category:
  "some contact: <field>" (``$iany``).

Every fact is unknown when its field is (``unknown_when``), never false.

durable-rules (2.0.28) evaluates at most 64 of a pack's tests that hold at
once in one record (more raise its error 303, ``ERR_MAX_STACK_SIZE``: measured,
tests on one field that exclude each other count once).  A draft is kept
under that bound: its facts are tried on the record that makes most of them
hold at once, and the least useful (extra cut points, then child rows'
facts) are left out, each named in ``facts.yaml``, until it evaluates.  A
field the contract does not declare is declared in ``fields.yaml`` with the
type its values show (bool, int, number, date, else string); text stays
``string`` (an ``enum`` would reject tomorrow's new value).
"""
from __future__ import annotations

import datetime as _dt
import gzip
import json
import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scoring.contract.schema import CHILD_LISTS, CONTRACT, Field
from scoring.errors import InputError
from scoring.evidence.coverage import BOOKKEEPING, OPPORTUNITY
from scoring.evidence.grammar import FIELDS_FILE, PACK_FILE

#: a text field with more distinct values than this is free text: no facts
MAX_CATEGORIES = 12
#: a cut point is kept when the share of known values at or above it lies in this range
CUT_SHARE = (0.05, 0.95)
MAX_CUTS = 3
#: drafted facts at most (durable-rules holds one field per rule in a fact; see scoring.evidence.pack)
MAX_FACTS = 160
FACTS_FILE = "facts.yaml"
_SINGULAR = {"contacts": "contact", "competitors": "competitor", "partners": "partner"}
_INT_RE = re.compile(r"^-?\d+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False}


@dataclass
class Draft:
    """A drafted pack: its files (name -> text), and what was and was not drafted."""

    name: str
    files: dict[str, str]
    facts: int
    declared: list[str]
    skipped: dict[str, str] = field(default_factory=dict)   # field -> why no fact
    records: int = 0
    rejected: int = 0


# --------------------------------------------------------------------------- reading the export


def _raw_values(source: Path, wanted: Mapping[str, Iterable[str]]) -> tuple[dict[tuple[str, str], list], bool]:
    """(entity, field) -> the raw values of fields the contract does not declare (the reader drops them),
    and whether they are text (CSV)."""
    from scoring.contract.sources import iter_batches, resolve

    out: dict[tuple[str, str], list] = {(e, n): [] for e, names in wanted.items() for n in names}
    if not out:
        return out, False
    src = resolve(source, CONTRACT)
    if src.kind == "jsonl":
        opener = gzip.open if str(source).lower().endswith(".gz") else open
        with opener(source, "rt", encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(rec, dict):
                    continue
                for (entity, name), vals in out.items():
                    if entity == OPPORTUNITY:
                        vals.append(rec.get(name))
                    else:
                        vals.extend(it.get(name) for it in rec.get(entity) or () if isinstance(it, dict))
        return out, False
    for entity, path, _label in src.tables:
        names = [n for (e, n) in out if e == entity]
        for t in iter_batches(path, src.fmt) if names else ():
            for n in names:
                if n in t.column_names:
                    out[(entity, n)].extend(t.column(n).to_pylist())
    return out, src.fmt == "csv"


def infer_type(values: Iterable[Any], text: bool = False) -> str:
    """The field type raw values show: ``bool``, ``int``, ``number``, ``date``, else ``string``.

    Typed values (JSON, Parquet) are read as the contract reads them: a bool is ``true``/``false``
    only, a text is never a number.  ``text`` values (CSV) are read as their words: ``true``/``no``,
    ``12``, ``2026-01-31`` (an empty cell is unknown).

    >>> infer_type([True, None]), infer_type([1, 2.5]), infer_type(["yes"]), infer_type(["2026-01-31"])
    ('bool', 'number', 'string', 'date')
    >>> infer_type(["yes", "No", ""], text=True), infer_type(["3", "12"], text=True)
    ('bool', 'int')
    """
    vals = [v for v in values if v is not None and not (text and v == "")]
    if not vals:
        return "string"
    if text:
        vals = [v.strip() for v in vals]
        if all(v.lower() in _BOOL_WORDS for v in vals):
            return "bool"
        if all(_INT_RE.match(v) for v in vals):
            return "int"
        if all(_as_float(v) is not None for v in vals):
            return "number"
    else:
        if all(isinstance(v, bool) for v in vals):
            return "bool"
        numbers = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool) and _as_float(v) is not None]
        if len(numbers) == len(vals):
            return "int" if all(float(v).is_integer() for v in numbers) else "number"
        if all(isinstance(v, (_dt.date, _dt.datetime)) for v in vals):
            return "date"
    if all(isinstance(v, str) and _DATE_RE.match(v) and _is_date(v) for v in vals):
        return "date"
    return "string"


def _is_date(text: str) -> bool:
    try:
        _dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _as_float(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- cut points and words


def nice(x: float, whole: bool) -> float:
    """``x`` rounded to two significant digits (whole numbers under 10 stay whole).

    >>> nice(1234567, True), nice(0.4321, False), nice(3.4, True)
    (1200000, 0.43, 3)
    """
    if x == 0:
        return 0
    if whole and abs(x) < 10:
        return int(round(x))
    digits = 1 - int(math.floor(math.log10(abs(x))))
    r = round(x, digits)
    return int(r) if whole or r == int(r) else r


def cut_points(values: list[float], whole: bool) -> list[float]:
    """Up to :data:`MAX_CUTS` thresholds over known ``values`` (see the module docstring)."""
    if len(set(values)) < 2:
        return []
    vals = sorted(values)
    n, lo = len(vals), vals[0]
    candidates = [nice(vals[min(n - 1, int(q * n))], whole) for q in (0.25, 0.5, 0.75)]
    if whole:
        candidates.append(1)
    out = []
    for c in sorted(set(candidates)):
        share = sum(v >= c for v in vals) / n
        if c > lo and CUT_SHARE[0] <= share <= CUT_SHARE[1] and (c == 0 or abs(c) >= 1e-4) and abs(c) < 1e15:
            out.append(c)
    return out[:MAX_CUTS]


def words(name: str) -> str:
    """A field name as words: ``needs_understood`` -> ``Needs understood``."""
    w = name.replace("_", " ").strip()
    return w[:1].upper() + w[1:]


def _show(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:,g}"


def _ident(*parts: Any) -> str:
    text = "_".join(re.sub(r"[^A-Za-z0-9]+", "_", str(p)).strip("_") for p in parts)
    text = re.sub(r"_+", "_", text).upper()
    return text if re.match(r"^[A-Z]", text) else f"F_{text}"


# --------------------------------------------------------------------------- drafting


def draft_pack(name: str, source: str | Path) -> Draft:
    """Draft a pack named ``name`` from the records input ``source`` (any form of the contract).

    Raises
    ------
    InputError
        ``name`` is not letters, digits, ``_`` and ``-``, or the export holds no valid record.
    """
    from scoring.contract.reader import read_records

    if not re.match(r"^[A-Za-z][A-Za-z0-9_-]*$", name):
        raise InputError(f"pack name {name!r}: use letters, digits, _ and - (starting with a letter)")
    source = Path(source)
    first = read_records(source, CONTRACT)
    undeclared = {e: [n for n in names if n not in BOOKKEEPING] for e, names in first.undeclared_fields.items()}
    raw, text = _raw_values(source, undeclared)
    own: dict[str, dict[str, Field]] = {}
    skipped: dict[str, str] = {}
    for (entity, fname), vals in raw.items():
        label = fname if entity == OPPORTUNITY else f"{entity}[].{fname}"
        if any(isinstance(v, (dict, list)) for v in vals):
            skipped[label] = "not a plain value (a nested object or list): not declared"
        elif not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", fname):
            skipped[label] = "the name is not letters, digits and _: rename the column to read it"
        else:
            own.setdefault(entity, {})[fname] = Field(name=fname, type=infer_type(vals, text))
    schema = {e: {**CONTRACT.get(e, {}), **own.get(e, {})} for e in CONTRACT}
    res = read_records(source, schema) if own else first
    if not res.records:
        raise InputError(f"{source}: no valid record to draft a pack from ({len(res.rejects)} rejected)")

    facts: list[dict] = []
    for entity in (OPPORTUNITY, *CHILD_LISTS):
        # the export's own fields first: they are what the contract cannot say, and kept first (see _fit_engine)
        for fname, f in {**own.get(entity, {}), **CONTRACT.get(entity, {})}.items():
            if fname in BOOKKEEPING or (entity == OPPORTUNITY and fname in ("stage", *CHILD_LISTS)):
                continue
            label = fname if entity == OPPORTUNITY else f"{entity}[].{fname}"
            if entity == OPPORTUNITY:
                vals = [r[fname] for r in res.records if r.get(fname) is not None]
            else:
                vals = [it[fname] for r in res.records for it in r.get(entity) or () if it.get(fname) is not None]
            if not vals:
                continue
            made, why = _facts_for(entity, f, vals)
            if why:
                skipped[label] = why
            facts.extend(made)
    seen_ids: Counter = Counter()
    for f in facts:
        seen_ids[f["id"]] += 1
        if seen_ids[f["id"]] > 1:
            f["id"] = f"{f['id']}_{seen_ids[f['id']]}"
    if not facts:
        raise InputError(f"{source}: no field holds values a fact can be drafted from")
    declared = {e: {n: {"type": f.type} for n, f in flds.items()} for e, flds in own.items() if flds}
    kept = _fit_engine(name, facts, declared)
    for f in facts:
        if f not in kept:
            skipped.setdefault(f"{f['_field']} ({f['title']})", "left out: the rule engine evaluates at most 64 tests holding at once "
                                            "(rules/README.md, \"Limits\")")
    facts = [{k: v for k, v in f.items() if not k.startswith("_")} for f in kept]
    files = _files(name, source, len(res.records), declared, facts, skipped)
    return Draft(name=name, files=files, facts=len(facts),
                 declared=[n if e == OPPORTUNITY else f"{e}[].{n}" for e, flds in declared.items() for n in flds],
                 skipped=skipped, records=len(res.records), rejected=len(res.rejects))


def _files(name: str, source: Path, n_records: int, declared: Mapping, facts: list[dict],
           skipped: Mapping[str, str]) -> dict[str, str]:
    return {
        PACK_FILE: _header(f"Drafted by `scoring rules new {name}` from {source.name}: edit before use "
                           "(rules/README.md).") + yaml.safe_dump(
            {"name": name, "version": "0.1.0",
             "description": f"Drafted from {source.name} ({n_records} records): one fact per meaningful "
                            "value of its fields. Turn the facts a rep can act on into checklist items."},
            sort_keys=False, allow_unicode=True, width=100),
        FIELDS_FILE: _header("The export's own fields (the contract's need no declaration), typed from their "
                             "values; check each type.") + yaml.safe_dump(
            {"fields": declared}, sort_keys=False, allow_unicode=True, width=100),
        FACTS_FILE: _header(_facts_comment(skipped)) + yaml.safe_dump(
            {"rules": facts}, sort_keys=False, allow_unicode=True, width=100),
    }


def _fit_engine(name: str, facts: list[dict], declared: Mapping) -> list[dict]:
    """The most useful facts (by ``_priority``, at most :data:`MAX_FACTS`) that durable-rules evaluates on
    the record making most of them hold at once (see the module docstring), in drafting order."""
    import tempfile

    from scoring.contract.nested import validate_record
    from scoring.evidence.durable import Engine
    from scoring.evidence.pack import load_pack

    ranked = sorted(facts, key=lambda f: f["_priority"])[:MAX_FACTS]  # stable: drafting order within a priority

    def fits(n: int) -> bool:
        subset = ranked[:n]
        with tempfile.TemporaryDirectory(prefix="draft-") as tmp:
            folder = Path(tmp) / "pack"
            folder.mkdir()
            for fname, text in _files(name, Path(name), 0, declared,
                                      [{k: v for k, v in f.items() if not k.startswith("_")} for f in subset],
                                      {}).items():
                (folder / fname).write_text(text, encoding="utf-8")
            pack = load_pack(folder)
        record = {"id": "draft", "as_of": "2026-01-01", "stage": "technical_promotion"}
        for f in subset:
            for key, value in f["_worst"].items():
                if isinstance(value, list):
                    rows = record.setdefault(key, [{}, {}])  # one row holding values, one unknown throughout
                    rows[0].update(value[0])
                elif isinstance(value, (int, float)) and not isinstance(value, bool) and key in record:
                    record[key] = max(record[key], value)  # every cut point at or below it holds
                else:
                    record.setdefault(key, value)
        try:
            Engine(pack).evaluate(validate_record(record, pack.schema))
        except Exception:  # durable-rules' own error (303): too many tests hold at once
            return False
        return True

    lo, hi = 0, len(ranked)
    if not fits(hi):
        while hi - lo > 1:  # the largest prefix that fits
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        ranked = ranked[:lo]
    keep = {id(f) for f in ranked}
    return [f for f in facts if id(f) in keep]


def _facts_for(entity: str, f: Field, vals: list) -> tuple[list[dict], str]:
    """The facts of one field and, when none, why."""
    child = entity != OPPORTUNITY
    who = _SINGULAR.get(entity, entity)

    def cond(test: dict) -> dict:
        return {"$iany": {entity: {(f"$i.{k}" if not k.startswith("$") else k):
                                   ({f"$i.{kk}": vv for kk, vv in v.items()} if k.startswith("$") else v)
                                   for k, v in test.items()}}} if child else test

    def example(value: Any) -> dict:
        if child:
            return {entity: [{} if value is None else {f.name: value}]}
        return {} if value is None else {f.name: value}

    def fact(rid: str, title: str, when: dict, met: Any, missing: Any, priority: int) -> dict:
        # _priority: kept first when the engine's bound leaves out some (0 deal fields' first facts,
        # 1 child rows', 2 further cut points); _worst: the value making it hold (see _fit_engine)
        return {"id": rid, "kind": "fact", "title": title, "when": cond(when),
                "unknown_when": cond({"$nex": {f.name: 1}}),
                "examples": {"met": example(met), "missing": example(missing), "unknown": example(None)},
                "_field": f"{entity}[].{f.name}" if child else f.name,
                "_priority": priority, "_worst": example(met)}

    prefix = (entity,) if child else ()
    lead = f"Some {who}: " if child else ""
    if f.type == "bool":
        if len(set(vals)) < 2:
            return [], "one value only"
        return [fact(_ident(*prefix, f.name), f"{lead}{words(f.name).lower() if child else words(f.name)}",
                     {f.name: True}, True, False, int(child))], ""
    if f.type in ("enum", "string"):
        counts = Counter(vals)
        if len(counts) < 2:
            return [], "one value only"
        if len(counts) > MAX_CATEGORIES:
            return [], f"{len(counts)} distinct values: free text"
        ordered = [v for v, _ in counts.most_common()]
        return [fact(_ident(*prefix, f.name, v), f"{lead}{words(f.name).lower() if child else words(f.name)}: {v}",
                     {f.name: v}, v, ordered[1] if v == ordered[0] else ordered[0], int(child)) for v in ordered], ""
    if f.type in ("int", "number") and not child:
        whole = f.type == "int"
        cuts = cut_points([float(v) for v in vals], whole)
        if not cuts:
            return [], "no cut point splits its values"
        lo = min(vals)
        middle = cuts[len(cuts) // 2]
        return [fact(_ident(f.name, "ge", _show(c).replace(",", "")), f"{words(f.name)} at least {_show(c)}",
                     {"$gte": {f.name: c}}, c, lo, 0 if c == middle else 2) for c in cuts], ""
    if f.type == "date":
        return [], "a date: compare it with another through a computed field (rules/README.md)"
    return [], f"a {f.type} of child rows: count it in pack.yaml (rules/README.md)"


def _header(text: str) -> str:
    lines = []
    for para in text.split("\n"):
        if para.startswith(" "):  # a list item: one line
            lines.append(para)
            continue
        line = ""
        for w in para.split(" "):
            if len(line) + len(w) > 96:
                lines.append(line.rstrip())
                line = ""
            line += w + " "
        lines.append(line.rstrip())
    return "".join(f"# {ln}\n" if ln else "#\n" for ln in lines)


def _facts_comment(skipped: Mapping[str, str]) -> str:
    text = ("Facts drafted from the export: neutral evidence for the model and explain (\"Current client: yes\"), "
            "never a next action. Keep those that matter; make the ones a rep can change checklist items "
            "(kind: checklist, points, action); drop the rest.")
    if skipped:
        text += "\n\nNo fact for:\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(skipped.items()))
    return text


def write_pack(draft: Draft, folder: str | Path) -> Path:
    """Write ``draft`` into the new folder ``folder``; an existing folder (or file) is never touched.

    Raises
    ------
    InputError
        ``folder`` exists.
    """
    out = Path(folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(out)  # atomic: fails when the folder exists, even one made a moment ago
    except FileExistsError:
        raise InputError(f"{out} exists: a drafted pack never overwrites one; choose another NAME or --out") from None
    try:
        for fname, text in draft.files.items():
            (out / fname).write_text(text, encoding="utf-8")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out
