"""Model artifacts on disk, and the registry of models in ``models/``.

An artifact is a folder::

    <model>/
      manifest.json    what it is and how it was made (below), and the sha256 of every other file
      model.joblib     the fitted Pipeline (evidence + logistic regression)
      split.json       the deal ids of the training and test sets
      rules/...        the exact rule pack files the model was trained with

``manifest.json`` holds: ``format``, ``model_id``, ``created_at`` (UTC), the
rule pack (name, version, version tag, fingerprint), the feature names, the
library versions (python, scikit-learn, pandas, numpy, durable-rules, joblib,
scoring), the training data fingerprint (sha256 of the canonical history, see
:func:`scoring.model.train.canonical_fingerprint`) and counts, the parameters and
seed, the CV table, the metrics of the model and of both baselines, and
``files``: relative path -> sha256 for every file but the manifest itself.

:func:`save_model` writes into a temporary folder beside the target and
renames it into place, so a half-written artifact never carries the final
name.  :func:`load_model` checks every file against the manifest before it
unpickles anything, and refuses (:class:`~scoring.errors.ModelError`, naming
the file) a missing file, a file whose bytes changed, and an unexpected extra
file (an extra file under ``rules/`` would silently become part of the pack).
The checksums detect accidents and casual edits; they are no signature: only
load models from folders you trust (``model.joblib`` is a pickle).  The model
then scores with the pack read from the artifact's own ``rules/``.

Registry
--------
``models/CURRENT`` names the current model (a folder under ``models/``);
``models/HISTORY`` lists the folders that were made current, oldest first,
one per line (its last line is the current one).  Both are replaced
atomically (``os.replace``).  :func:`promote` makes a model current only if it
is no worse than the current one on the same held-out deals (see its
docstring), :func:`rollback` goes back one step.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import joblib

from scoring import paths
from scoring.errors import ModelError
from scoring.model.logistic import Model
from scoring.evidence.pack import load_pack

FORMAT = "dealscore-model/1"
MANIFEST = "manifest.json"
MODEL_FILE = "model.joblib"
SPLIT_FILE = "split.json"
RULES_DIR = "rules"
CURRENT = "CURRENT"
HISTORY = "HISTORY"
#: fewer held-out deals than this make a comparison meaningless: promotion needs force
MIN_HELDOUT_DEALS = 20
_IGNORED = {"__pycache__"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not (_IGNORED & set(p.relative_to(folder).parts)))


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for label, dist in (("scikit-learn", "scikit-learn"), ("pandas", "pandas"), ("numpy", "numpy"),
                        ("durable-rules", "durable_rules"), ("joblib", "joblib"), ("scoring", None)):
        try:
            out[label] = metadata.version(dist) if dist else __import__("scoring").__version__
        except metadata.PackageNotFoundError:
            out[label] = "unknown"
    return out


def _json_dump(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False, allow_nan=False) + "\n",
                    encoding="utf-8")


def _clean(obj):
    """NaN -> None (JSON has no NaN)."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- save / load
def save_model(result, out_dir=None, *, root=None) -> Path:
    """Write the model of ``result`` (a :class:`scoring.model.train.TrainResult`) as an artifact.

    ``out_dir`` is the artifact folder to create (it must not exist); default
    ``<models>/<model_id>``.  Returns its path.
    """
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    target = Path(out_dir) if out_dir is not None else None
    parent = target.parent if target is not None else Path(root) if root is not None else paths.models_dir()
    if target is not None and target.exists():
        raise ModelError(f"{target} already exists: choose another folder (an artifact is never overwritten)")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        pack = result.pack
        for rel, data in pack.files.items():
            dest = tmp / RULES_DIR / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        joblib.dump(result.model.pipeline, tmp / MODEL_FILE)
        _json_dump({"train": list(result.train_ids), "test": list(result.test_ids)}, tmp / SPLIT_FILE)
        files = {rel: _sha256(tmp / rel) for rel in _files_under(tmp)}
        model_id = f"{created:%Y%m%dT%H%M%SZ}-{files[MODEL_FILE][:8]}"
        manifest = {
            "format": FORMAT,
            "model_id": model_id,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "rule_pack": {"name": pack.name, "version": pack.version, "version_tag": pack.version_tag,
                          "fingerprint": pack.fingerprint},
            "features": result.model.feature_names,
            "libraries": library_versions(),
            "training": {"data_fingerprint": result.data_fingerprint, "counts": result.counts,
                         "params": result.params, "cv": result.cv,
                         "rule_score_platt": result.rule_score_platt},
            "seed": result.params.get("seed"),
            "metrics": result.metrics,
            "files": files,
        }
        _json_dump(_clean(manifest), tmp / MANIFEST)
        if target is None:
            target = parent / model_id
            if target.exists():
                raise ModelError(f"{target} already exists")
        os.rename(tmp, target)  # atomic on one file system; fails if target appeared meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_manifest(path) -> dict:
    mf = Path(path) / MANIFEST
    if not mf.is_file():
        raise ModelError(f"{path} is not a model artifact: {MANIFEST} is missing")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{mf}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise ModelError(f"{mf}: not a {FORMAT} manifest")
    return manifest


def verify_artifact(path) -> dict:
    """Check every file of the artifact at ``path`` against its manifest; return the manifest.

    Raises ModelError naming the first missing, changed or unexpected file.
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelError(f"model folder not found: {root}")
    manifest = read_manifest(root)
    expected: dict[str, str] = manifest["files"]
    for rel in (MODEL_FILE, SPLIT_FILE):
        if rel not in expected:
            raise ModelError(f"{root}: the manifest lists no {rel}")
    for rel, digest in sorted(expected.items()):
        f = root / rel
        if not f.is_file():
            raise ModelError(f"{root}: file {rel} is missing: the artifact is incomplete; retrain or restore it")
        if _sha256(f) != digest:
            raise ModelError(f"{root}: file {rel} does not match its checksum in {MANIFEST}: "
                             "the artifact was modified; retrain or restore it")
    extra = [rel for rel in _files_under(root) if rel != MANIFEST and rel not in expected]
    if extra:
        raise ModelError(f"{root}: unexpected file {extra[0]} (not in {MANIFEST}); remove it "
                         "(a file under rules/ would change the model's pack)")
    return manifest


def load_model(path) -> Model:
    """Load and verify the artifact at ``path``; the model scores with the pack in its ``rules/``."""
    root = Path(path)
    manifest = verify_artifact(root)
    pack = load_pack(root / RULES_DIR)
    if pack.fingerprint != manifest["rule_pack"]["fingerprint"]:
        raise ModelError(f"{root}: the pack in {RULES_DIR}/ is not the one the manifest names")
    try:
        pipeline = joblib.load(root / MODEL_FILE)
    except Exception as exc:
        raise ModelError(f"{root}: {MODEL_FILE} cannot be loaded ({type(exc).__name__}: {exc}); "
                         f"it was written with {manifest.get('libraries')}") from None
    pipeline.named_steps["evidence"].use_pack(pack)
    model = Model(pipeline, manifest=manifest, path=root)
    if model.feature_names != list(manifest.get("features", [])):
        raise ModelError(f"{root}: the model's features differ from the manifest's")
    return model


def read_split(path) -> dict[str, list[str]]:
    """``{"train": [...], "test": [...]}`` deal ids of a (verified) artifact."""
    return json.loads((Path(path) / SPLIT_FILE).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- registry
def _root(root=None) -> Path:
    return Path(root) if root is not None else paths.models_dir()


def _write_pointer(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _history(root: Path) -> list[str]:
    f = root / HISTORY
    return [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()] if f.is_file() else []


def current_model_dir(root=None) -> Path | None:
    """The current model's folder (``models/CURRENT``), or None when no model is current."""
    r = _root(root)
    f = r / CURRENT
    if not f.is_file():
        return None
    name = f.read_text(encoding="utf-8").strip()
    if not name:
        return None
    d = r / name
    if not d.is_dir():
        raise ModelError(f"{f} names {name!r}, which is not a folder under {r}: "
                         "promote a model, roll back, or delete the pointer")
    return d


def _held_out_history(history, schema_packs):
    """History records from ``history`` (records, a path, or None for the bundled sample)."""
    from scoring.contract.reader import read_records
    from scoring.contract.schema import merge_schema

    if history is None:
        history = paths.sample_history()
        if not Path(history).exists():
            raise ModelError(f"no history given to compare the models on, and the bundled sample "
                             f"{history} does not exist: pass history=")
    if isinstance(history, (str, Path)):
        schema = schema_packs[0].schema
        for p in schema_packs[1:]:
            schema = merge_schema(schema, p.schema)
        return read_records(history, schema, history=True).records
    return list(history)


def compare_models(new: Model, current: Model, history=None) -> dict[str, Any]:
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
    Each model scores with its own pack.
    """
    from scoring.model.train import prepare_history, score_log_loss

    records = _held_out_history(history, [new.pack, current.pack])
    nd = (new.manifest.get("training", {}).get("params", {}) or {}).get("no_decision_as", "lost")
    h = prepare_history(records, new.pack, no_decision_as=nd)
    deals = set(h.deal.tolist())
    new_split = read_split(new.path) if new.path else {"train": [], "test": []}
    cur_split = read_split(current.path) if current.path else {"train": [], "test": []}
    seen_by_current = set(cur_split["train"])
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
    ll_new, n = score_log_loss(new, h, held)
    ll_cur, _ = score_log_loss(current, h, held)
    return {"held_out": rule, "deals": n, "log_loss_new": ll_new, "log_loss_current": ll_cur,
            "no_worse": ll_new <= ll_cur + 1e-12}


def promote(model_dir, *, force: bool = False, history=None, root=None) -> dict[str, Any]:
    """Make the model at ``model_dir`` current.

    It must load (checksums verified) and, unless ``force``, be no worse than
    the current model (weighted log loss on the same held-out deals, see
    :func:`compare_models`); otherwise :class:`ModelError` says by how much.
    A model folder outside ``models/`` is first copied in (under its own name).
    Returns a report: ``promoted``, ``model``, ``previous`` and the comparison.
    """
    r = _root(root)
    r.mkdir(parents=True, exist_ok=True)
    src = Path(model_dir)
    new = load_model(src)
    prev_dir = current_model_dir(r)
    report: dict[str, Any] = {"model": src.name, "previous": prev_dir.name if prev_dir else None,
                              "forced": force, "comparison": None}
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
            except ModelError:
                if not force:
                    raise
                cmp = None
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


def rollback(root=None) -> Path:
    """Make the previously current model current again; returns its folder."""
    r = _root(root)
    hist = _history(r)
    if len(hist) < 2:
        raise ModelError(f"nothing to roll back to: {r / HISTORY} lists {len(hist)} model(s)")
    previous = hist[-2]
    d = r / previous
    load_model(d)  # refuses a previous model that is gone or damaged
    _write_pointer(r / CURRENT, previous + "\n")
    _write_pointer(r / HISTORY, "\n".join(hist[:-1]) + "\n")
    return d


def list_models(root=None) -> list[dict[str, Any]]:
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
