"""The registry of models in ``models/``, and which pack and model a command uses.

Registry
--------
``models/CURRENT`` names the current model (a folder under ``models/``);
``models/HISTORY`` lists the folders that were made current, oldest first,
one per line (its last line is the current one).  Both are replaced
atomically (``os.replace``).  :func:`promote` makes a model current only if it
is useful (it beat both baselines by more than noise when trained, see
:func:`scoring.model.metrics.usefulness`) and no worse than the current one
on at least :data:`MIN_HELDOUT_DEALS` same held-out deals (see its
docstring); ``force`` overrides both.  :func:`rollback` goes back one step.

Which pack and model a command uses (:func:`resolve_scoring`)
-------------------------------------------------------------
* With a model (the current one in ``models/``, or ``--model``), scoring uses
  the pack saved inside the model, so an edit to ``rules/`` never breaks the
  nightly job; when ``rules/default`` differs from it, a note says that a
  retrain is needed to use the edit (:func:`staleness_notes`).
* ``--rules PACK`` forces a pack (rule score only, unless a model trained with
  that very pack is given).

The project's folders (``models/``, ``rules/default``, the bundled sample) are
found by :mod:`scoring.paths`; every function here takes them as arguments too.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

from scoring import paths
from scoring.errors import ModelError, NotUsefulError, RulePackError
from scoring.evidence.durable import Engine
from scoring.evidence.pack import RulePack, fingerprint_of_files, load_pack, read_pack_files
from scoring.evidence.packfiles import pack_name
from scoring.model.artifact import (RULES_DIR, load_model, model_no_decision_as, model_split, model_usefulness,
                                    read_manifest)
from scoring.model.logistic import Model

CURRENT = "CURRENT"
HISTORY = "HISTORY"
#: the fewest overlapping held-out deals (seen by neither model) a comparison with the current model may use;
#: with fewer the log-loss difference is mostly noise, so :func:`promote` refuses unless forced
MIN_HELDOUT_DEALS = 50


def _root(root: str | Path | None = None, write: bool = False) -> Path:
    """``root``, else the home's models folder (to write: refused when it is the bundled, read-only one)."""
    if root is not None:
        return Path(root)
    return paths.writable_models_dir() if write else paths.models_dir()


def _write_pointer(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _history(root: Path) -> list[str]:
    f = root / HISTORY
    return [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()] if f.is_file() else []


def current_model_dir(root: str | Path | None = None) -> Path | None:
    """The current model's folder (``<root>/CURRENT``, ``root`` default the
    project's ``models/``), or None when no model is current."""
    r = _root(root)
    f = r / CURRENT
    if not f.is_file():
        return None
    name = f.read_text(encoding="utf-8").strip()
    if not name:
        return None
    d = r / name
    if "/" in name or "\\" in name or name in (".", "..") or not d.is_dir():
        raise ModelError(f"{f} names {name!r}, which is not a folder under {r}: "
                         "promote a model, roll back, or delete the pointer")
    return d


# --------------------------------------------------------------------------- promotion
def _held_out_history(history: Sequence[Mapping] | str | Path | None, packs: Sequence[RulePack]) -> list[dict]:
    """History records from ``history`` (records, a path, or None for the bundled sample)."""
    from scoring.contract.reader import read_records
    from scoring.contract.schema import merge_schema

    if history is None:
        history = paths.sample_history()  # InputError naming it and SCORING_HOME when it is not there
    if isinstance(history, (str, Path)):
        schema = packs[0].schema
        for p in packs[1:]:
            schema = merge_schema(schema, p.schema)
        return read_records(history, schema, history=True).records
    return list(history)


def compare_models(new: Model, current: Model,
                   history: Sequence[Mapping] | str | Path | None = None) -> dict[str, Any]:
    """Weighted log loss of both models on the same held-out deals.

    **The same held-out deals** are the deals of ``history`` (default: the
    bundled ``datasets/sample/history.jsonl``) that

    * are in the NEW model's test set (its ``split.json``: the newest deals it
      never saw), and
    * are not in the current model's training set (when its artifact lists it),

    so neither model has seen them.  When ``history`` holds none of the new
    model's test deals (it was trained on other data), every deal of
    ``history`` that neither model trained on is used instead.  Snapshots go
    through the same drops as in training (leakage, no outcome...) and are
    labelled with the new model's ``no_decision_as``; each deal weighs 1.
    Each model scores with its own pack.  Fewer than :data:`MIN_HELDOUT_DEALS`
    such deals, or one outcome only, raise :class:`ModelError`.

    Returns ``held_out`` (which deals, in words), ``deals``, ``log_loss_new``,
    ``log_loss_current``, ``no_worse`` and ``difference`` (the paired bootstrap
    of new minus current, :func:`scoring.model.metrics.paired_bootstrap`).
    """
    import numpy as np

    from scoring.model.metrics import paired_bootstrap, weighted_log_loss
    from scoring.model.train import prepare_history

    records = _held_out_history(history, [new.pack, current.pack])
    h = prepare_history(records, new.pack, no_decision_as=model_no_decision_as(new))
    deals = set(h.deal.tolist())
    new_split = model_split(new)
    seen_by_current = set(model_split(current)["train"])
    held = (set(new_split["test"]) & deals) - seen_by_current
    rule = "the new model's test deals not in the current model's training set"
    if not (set(new_split["test"]) & deals):
        held = deals - set(new_split["train"]) - seen_by_current
        rule = "the history's deals that neither model trained on"
    labels = {int(y) for d, y in zip(h.deal, h.y) if d in held}
    if len(held) < MIN_HELDOUT_DEALS or len(labels) < 2:
        raise ModelError(f"cannot compare the models: only {len(held)} held-out deals ({rule}) "
                         f"with {'both outcomes' if len(labels) == 2 else 'one outcome'}; need at least "
                         f"{MIN_HELDOUT_DEALS} and both outcomes. Pass a history holding the new model's "
                         "test deals, or promote with force")
    m = np.isin(h.deal, list(held))
    recs = [r for r, keep in zip(h.records, m) if keep]
    p_new, p_cur = new.predict_proba(recs), current.predict_proba(recs)
    ll_new, ll_cur = (weighted_log_loss(h.y[m], p, h.weight[m]) for p in (p_new, p_cur))
    return {"held_out": rule, "deals": len(held), "log_loss_new": ll_new, "log_loss_current": ll_cur,
            "no_worse": ll_new <= ll_cur + 1e-12,
            "difference": paired_bootstrap(h.y[m], p_new, p_cur, h.weight[m], h.deal[m])}


def promote(model_dir: str | Path, *, force: bool = False, history: Sequence[Mapping] | str | Path | None = None,
            root: str | Path | None = None, check_useful: bool = True) -> dict[str, Any]:
    """Make the model at ``model_dir`` current.

    It must load (checksums verified) and, unless ``force``:

    * be useful: its training found it beats both baselines by more than
      noise (``metrics.usefulness`` of its manifest); otherwise
      :class:`~scoring.errors.NotUsefulError`.  An artifact older than that
      verdict is promoted with a note.  ``check_useful=False`` skips this
      check (to test the comparison alone);
    * be no worse than the current model (weighted log loss on at least
      :data:`MIN_HELDOUT_DEALS` same held-out deals, see
      :func:`compare_models`); otherwise :class:`ModelError` says by how much,
      or why the models cannot be compared.

    A model folder outside ``models/`` is first copied in (under its own name).
    Returns a report: ``promoted``, ``model``, ``previous``, the comparison
    (None without a current model, or when forced past a comparison that
    could not be made), ``not_compared`` (why, then) and ``notes``.
    """
    from scoring.model.metrics import usefulness_warning

    r = _root(root, write=True)
    r.mkdir(parents=True, exist_ok=True)
    src = Path(model_dir)
    new = load_model(src)
    prev_dir = current_model_dir(r)
    report: dict[str, Any] = {"model": src.name, "previous": prev_dir.name if prev_dir else None,
                              "forced": force, "comparison": None, "not_compared": None, "notes": []}
    verdict = model_usefulness(new)
    if verdict is None:
        report["notes"].append(f"model {src.name} records no verdict against the baselines (trained before "
                               "that check): it was not checked against them")
    elif check_useful and not verdict["useful"]:
        if not force:
            raise NotUsefulError(f"model {src.name}: {usefulness_warning(verdict)} Not promoted "
                                 "(use force to promote it anyway)")
        report["notes"].append(f"model {src.name} does not beat both baselines by more than noise")
    if prev_dir is not None and prev_dir.resolve() == src.resolve():
        return {**report, "promoted": False, "note": "already current"}
    if prev_dir is not None:
        try:
            cur = load_model(prev_dir)
        except ModelError as exc:
            if not force:
                raise ModelError(f"the current model cannot be loaded ({exc}); promote with force to replace it") from None
            cur = None
        if cur is not None:
            try:
                cmp = compare_models(new, cur, history)
            except ModelError as exc:
                if not force:
                    raise
                cmp = None
                report["not_compared"] = str(exc)
            report["comparison"] = cmp
            if cmp is not None and not cmp["no_worse"] and not force:
                raise ModelError(
                    f"model {src.name} is worse than the current model {prev_dir.name} on the same "
                    f"{cmp['deals']} held-out deals ({cmp['held_out']}): log loss {cmp['log_loss_new']:.4f} vs "
                    f"{cmp['log_loss_current']:.4f}; not promoted (use force to promote anyway)")
    if src.resolve().parent != r.resolve():
        dest = r / src.name
        if dest.exists():
            raise ModelError(f"{dest} already exists: cannot copy {src} into the registry")
        tmp = r / f".tmp-{uuid.uuid4().hex}"
        shutil.copytree(src, tmp)
        os.rename(tmp, dest)
        load_model(dest)
        src = dest
    hist = _history(r)
    if not hist and prev_dir is not None:
        hist = [prev_dir.name]
    hist.append(src.name)
    _write_pointer(r / HISTORY, "\n".join(hist) + "\n")
    _write_pointer(r / CURRENT, src.name + "\n")
    return {**report, "model": src.name, "promoted": True}


def rollback(root: str | Path | None = None) -> Path:
    """Make the previously current model current again; returns its folder."""
    r = _root(root, write=True)
    hist = _history(r)
    if len(hist) < 2:
        raise ModelError(f"nothing to roll back to: {r / HISTORY} lists {len(hist)} model(s)")
    previous = hist[-2]
    d = r / previous
    load_model(d)  # refuses a previous model that is gone or damaged
    _write_pointer(r / CURRENT, previous + "\n")
    _write_pointer(r / HISTORY, "\n".join(hist[:-1]) + "\n")
    return d


def list_models(root: str | Path | None = None) -> list[dict[str, Any]]:
    """The artifacts in ``models/``: folder, model id, created, pack, test log loss, and whether current."""
    r = _root(root)
    cur = None
    try:
        cur = current_model_dir(r)
    except ModelError:
        pass
    out = []
    for d in sorted(p for p in r.iterdir() if p.is_dir() and not p.name.startswith(".")) if r.is_dir() else []:
        try:
            m = read_manifest(d)
        except ModelError:
            continue
        out.append({"folder": d.name, "model_id": m.get("model_id"), "created_at": m.get("created_at"),
                    "rule_pack": m.get("rule_pack", {}).get("version_tag"),
                    "log_loss": (m.get("metrics", {}).get("model") or {}).get("log_loss"),
                    "current": cur is not None and d.name == cur.name})
    return out


# --------------------------------------------------------------------------- which pack and model
def current_pack_path() -> Path:
    """The pack in use: the current model's, else ``rules/default``."""
    d = current_model_dir()
    if d is not None and (d / RULES_DIR).is_dir():
        return d / RULES_DIR
    return paths.default_rules()


def staleness_notes(model: Model, rules_dir: str | Path | None = None) -> list[str]:
    """Notes for the user when ``rules_dir`` (default ``rules/default``) is not
    the pack ``model`` was trained with: the model keeps scoring with its own
    pack, and a retrain is needed to use the edit.  No note when the folder
    does not exist, or holds a pack of another name (a model trained on a
    custom pack is not out of date when ``rules/default`` changes)."""
    try:
        d = Path(paths.default_rules() if rules_dir is None else rules_dir)
    except RulePackError:
        return []
    if not d.is_dir():
        return []
    files = read_pack_files(d)
    if pack_name(files) not in (None, model.pack.name):  # another pack (a custom one): not an edit of the model's
        return []
    fp = fingerprint_of_files(files)
    if fp == model.pack.fingerprint:
        return []
    return [f"{d} has changed since model {model.model_version} was trained (its pack: {model.pack.version_tag}, "
            f"{d}: fingerprint {fp[:12]}): scores use the model's own pack; retrain (scoring train) "
            f"and promote the new model to use the edit"]


def resolve_scoring(rules_path: str | Path | None = None, model_path: str | Path | None = None,
                    use_model: bool = True) -> tuple[Engine, Model | None, list[str]]:
    """Return ``(engine, model or None, notes)`` for a command's options.

    Parameters
    ----------
    rules_path : path, optional
        ``--rules``: score with this pack (and no model unless ``model_path`` is given).
    model_path : path, optional
        ``--model``: this model folder instead of the current one.
    use_model : bool
        False: rule score only.

    Returns
    -------
    engine : Engine
        The model's own pack's engine when there is a model, else the pack's
        (``rules_path``, default ``rules/default``).
    model : Model or None
    notes : list of str
        Warnings for the user (a ``--rules`` the model was not trained with; a
        changed ``rules/default``).
    """
    notes: list[str] = []
    if use_model:
        mdir = Path(model_path) if model_path else (None if rules_path else current_model_dir())
        if mdir is not None:
            model = load_model(mdir)
            if rules_path is not None:
                pack = load_pack(rules_path)
                if pack.fingerprint != model.pack.fingerprint:
                    notes.append(f"--rules {rules_path} is not the pack model {mdir} was trained with: "
                                 "scoring with the model's own pack")
            if rules_path is None:  # with --rules, rules/default is not what the user asked about
                notes.extend(staleness_notes(model))
            return model.engine, model, notes
    pack = load_pack(rules_path or paths.default_rules())
    return Engine(pack), None, notes
