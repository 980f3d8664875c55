"""Model artifacts on disk: save, verify and load a model folder.

An artifact is a folder::

    <model>/
      manifest.json    what it is and how it was made (below), and the sha256 of every other file
      scorecard.json   the scorecard (:meth:`scoring.model.scorecard.Model.to_spec`): plain JSON, no pickle
      split.json       the deal ids of the training and test sets
      held_out.json    the test snapshots' outcomes, weights and predictions (model, rule score baseline),
                       so the report can draw its curves without the history (absent in older artifacts)
      training_profile.json  per rule the missing / met / unknown shares of the training snapshots and the
                       probability counts of their predictions (10 bins), weighted by deal, which each
                       stored run is compared with (:mod:`scoring.store.monitor`; absent in older artifacts)
      rules/...        the exact rule pack files the model was trained with

``manifest.json`` holds: ``format`` (:data:`FORMAT`), ``model_id``, ``created_at`` (UTC), the
rule pack (name, version, version tag, fingerprint), the feature names, the
library versions (python, scikit-learn, pandas, numpy, durable-rules, joblib,
scoring), the training data's source (``training.source``: a file's path, or the score store
described without password with the runs and snapshots read), fingerprint (sha256 of the
canonical history, see :func:`scoring.model.train.canonical_fingerprint`) and counts, the parameters and
seed, the CV table, the metrics of the model and of both baselines (with
``metrics.usefulness``, whether the model beats both by more than noise; and
``metrics.challenger``), the sign report (``signs``), the challenger's verdict
and raw-field importances (``challenger``), and ``files``: relative path ->
sha256 for every file but the manifest itself.

Formats.  :data:`FORMAT` (``dealscore-model/2``) stores the scorecard as JSON,
so loading reads no pickle and imports no scikit-learn.  An artifact of the
older format ``dealscore-model/1`` (a pickled scikit-learn pipeline,
``model.joblib``) still loads: its coefficients become a scorecard without
bins (:meth:`~scoring.model.scorecard.Model.from_pipeline`); retrain it to get
the new one.  Any other format is refused with a :class:`ModelError` naming
the artifact.

:func:`save_model` writes into a temporary folder beside the target and
renames it into place, so a half-written artifact never carries the final
name.  :func:`load_model` checks every file against the manifest before it
unpickles anything, and refuses (:class:`~scoring.errors.ModelError`, naming
the file) a missing file, a file whose bytes changed, and an unexpected extra
file (an extra file under ``rules/`` would silently become part of the pack).
The checksums detect accidents and casual edits; they are no signature: only
load models from folders you trust (an older artifact's ``model.joblib`` is a pickle).  The model
then scores with the pack read from the artifact's own ``rules/``.

Which model is current, promotion and rollback are :mod:`scoring.model.registry`'s.
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
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from scoring import paths
from scoring.errors import ModelError, RulePackError
from scoring.evidence.pack import load_pack
from scoring.model.scorecard import Model

if TYPE_CHECKING:  # for the annotation only: loading a model never needs the training code
    from scoring.model.train import TrainResult

FORMAT = "dealscore-model/2"
#: older formats this version still loads
LEGACY_FORMAT = "dealscore-model/1"
MANIFEST = "manifest.json"
MODEL_FILE = "scorecard.json"
#: the model file of a :data:`LEGACY_FORMAT` artifact (a pickled scikit-learn pipeline)
LEGACY_MODEL_FILE = "model.joblib"
SPLIT_FILE = "split.json"
HELD_OUT_FILE = "held_out.json"
TRAINING_PROFILE_FILE = "training_profile.json"
RULES_DIR = "rules"
_IGNORED = {"__pycache__"}
#: a scorecard's log-odds points are a few units; beyond this, scores overflow
MAX_COEF = 1e6


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_under(folder: Path) -> list[str]:
    """Relative paths (POSIX) of the files under ``folder``, sorted; ``__pycache__`` is ignored."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not (_IGNORED & set(p.relative_to(folder).parts)))


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries the training used."""
    out = {"python": platform.python_version()}
    for label, dist in (("scikit-learn", "scikit-learn"), ("scipy", "scipy"), ("pandas", "pandas"), ("numpy", "numpy"),
                        ("durable-rules", "durable_rules"), ("scoring", None)):
        try:
            out[label] = metadata.version(dist) if dist else __import__("scoring").__version__
        except metadata.PackageNotFoundError:
            out[label] = "unknown"
    return out


def _json_dump(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False, allow_nan=False) + "\n",
                    encoding="utf-8")


def _clean(obj: Any) -> Any:
    """NaN -> None (JSON has no NaN)."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- save / load
def save_model(result: "TrainResult", out_dir: str | Path | None = None, *, root: str | Path | None = None) -> Path:
    """Write the model of ``result`` (a :class:`scoring.model.train.TrainResult`) as an artifact.

    ``out_dir`` is the artifact folder to create (it must not exist); default
    ``<root>/<model_id>`` with ``root`` default the project's ``models/``
    (:func:`scoring.paths.models_dir`).  Returns its path.
    """
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    target = Path(out_dir) if out_dir is not None else None
    parent = target.parent if target is not None else Path(root) if root is not None else paths.writable_models_dir()
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
        _json_dump(_clean(result.model.to_spec()), tmp / MODEL_FILE)
        _json_dump({"train": list(result.train_ids), "test": list(result.test_ids)}, tmp / SPLIT_FILE)
        if getattr(result, "held_out", None) is not None:
            (tmp / HELD_OUT_FILE).write_text(json.dumps(_clean(result.held_out), separators=(",", ":"),
                                                        allow_nan=False) + "\n", encoding="utf-8")
        if getattr(result, "training_profile", None) is not None:
            _json_dump(_clean(result.training_profile), tmp / TRAINING_PROFILE_FILE)
        files = {rel: _sha256(tmp / rel) for rel in files_under(tmp)}
        model_id = f"{created:%Y%m%dT%H%M%SZ}-{files[MODEL_FILE][:8]}"
        manifest = {
            "format": FORMAT,
            "model_id": model_id,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "rule_pack": {"name": pack.name, "version": pack.version, "version_tag": pack.version_tag,
                          "fingerprint": pack.fingerprint},
            "features": result.model.feature_names,
            "libraries": library_versions(),
            "training": {"source": getattr(result, "source", None) or None,
                         "data_fingerprint": result.data_fingerprint, "counts": result.counts,
                         "params": result.params, "cv": result.cv,
                         "rule_score_platt": result.rule_score_platt},
            "seed": result.params.get("seed"),
            "metrics": result.metrics,
            "signs": getattr(result, "signs", None),
            "challenger": getattr(result, "challenger", None),
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


#: what the loader reads from a manifest: key -> (type, what it is)
_MANIFEST_KEYS = {"format": (str, "the format name"), "model_id": (str, "the model's id"),
                  "rule_pack": (dict, "the rule pack it was trained with"), "features": (list, "the feature names"),
                  "files": (dict, "the sha256 of every file")}
#: keys read later (report, promotion) when present: key -> type
_OPTIONAL_KEYS = {"created_at": str, "libraries": dict, "training": dict, "metrics": dict}
_SHA256_LEN = 64


def read_manifest(path: str | Path) -> dict:
    """The manifest of the artifact at ``path`` (its files not verified).

    Raises ModelError naming the artifact when the manifest is missing, not a
    regular file inside the folder, not JSON, or lacks a key the loader needs
    (:data:`_MANIFEST_KEYS`, and the pack's ``fingerprint``).
    """
    root = Path(path)
    mf = root / MANIFEST
    if not mf.is_file():
        raise ModelError(f"{path} is not a model artifact: {MANIFEST} is missing")
    if not mf.resolve().is_relative_to(root.resolve()):
        raise ModelError(f"{mf}: a symbolic link leading outside the artifact folder; refused")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelError(f"{mf}: not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise ModelError(f"{mf}: not a model manifest (no 'format')")
    if manifest.get("format") not in (FORMAT, LEGACY_FORMAT):
        raise ModelError(f"{root}: model format {str(manifest.get('format'))[:80]!r} is not one this version reads "
                         f"({FORMAT}, or the older {LEGACY_FORMAT}): retrain the model with this version")
    for key, (kind, what) in _MANIFEST_KEYS.items():
        if not isinstance(manifest.get(key), kind):
            raise ModelError(f"{mf}: key {key!r} ({what}) is missing or not a {kind.__name__}: "
                             "the manifest is damaged; retrain or restore the artifact")
    for key, kind in _OPTIONAL_KEYS.items():
        if manifest.get(key) is not None and not isinstance(manifest[key], kind):
            raise ModelError(f"{mf}: key {key!r} is not a {kind.__name__}: the manifest is damaged; "
                             "retrain or restore the artifact")
    if not isinstance(manifest["rule_pack"].get("fingerprint"), str):
        raise ModelError(f"{mf}: key 'rule_pack' lacks the pack's 'fingerprint': the manifest is damaged; "
                         "retrain or restore the artifact")
    return manifest


def _checked_entry(root: Path, rel: Any, digest: Any) -> Path:
    """The file of manifest entry ``rel``, refused unless it stays inside the artifact folder ``root``."""
    where = f"{root}: {MANIFEST} entry {str(rel)[:200]!r}"
    if not isinstance(rel, str) or not isinstance(digest, str) or len(digest) != _SHA256_LEN:
        raise ModelError(f"{where}: each entry of 'files' maps a relative path to a sha256; the manifest is damaged")
    parts = rel.split("/")
    if (not rel or rel.startswith("/") or "\\" in rel or "\0" in rel or ":" in parts[0]
            or any(p in ("", ".", "..") for p in parts)):
        raise ModelError(f"{where}: not a plain relative path inside the artifact (absolute, '..', '.', "
                         "empty part, drive or backslash); refused")
    f = root / rel
    try:
        inside = f.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ModelError(f"{where}: cannot be resolved ({exc})") from None
    if not inside:
        raise ModelError(f"{where}: leads outside the artifact folder (a symbolic link); refused")
    return f


def verify_artifact(path: str | Path) -> dict:
    """Check every file of the artifact at ``path`` against its manifest; return the manifest.

    Raises ModelError naming the first missing, changed or unexpected file,
    and any entry of the manifest's ``files`` that is not a plain relative path
    inside the folder (absolute, with ``..``, or a symbolic link leading out):
    nothing outside the artifact is ever read.
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelError(f"model folder not found: {root}")
    manifest = read_manifest(root)
    expected: dict[str, str] = manifest["files"]
    for rel in (model_file(manifest), SPLIT_FILE):
        if rel not in expected:
            raise ModelError(f"{root}: the manifest lists no {rel}")
    checked = {rel: _checked_entry(root, rel, digest) for rel, digest in sorted(expected.items())}
    for rel, digest in sorted(expected.items()):
        f = checked[rel]
        if not f.is_file():
            raise ModelError(f"{root}: file {rel} is missing: the artifact is incomplete; retrain or restore it")
        if _sha256(f) != digest:
            raise ModelError(f"{root}: file {rel} does not match its checksum in {MANIFEST}: "
                             "the artifact was modified; retrain or restore it")
    extra = [rel for rel in files_under(root) if rel != MANIFEST and rel not in expected]
    if extra:
        raise ModelError(f"{root}: unexpected file {extra[0]} (not in {MANIFEST}); remove it "
                         "(a file under rules/ would change the model's pack)")
    return manifest


def model_file(manifest: Mapping[str, Any]) -> str:
    """The model file an artifact of ``manifest``'s format holds."""
    return LEGACY_MODEL_FILE if manifest.get("format") == LEGACY_FORMAT else MODEL_FILE


def _legacy_model(root: Path, pack: Any, manifest: dict) -> Model:
    """The scorecard of an older (pickled pipeline) artifact; imports joblib and scikit-learn."""
    import joblib

    try:
        pipeline = joblib.load(root / LEGACY_MODEL_FILE)
    except Exception as exc:
        raise ModelError(f"{root}: {LEGACY_MODEL_FILE} cannot be loaded ({type(exc).__name__}: {str(exc)[:200]}); "
                         f"it was written with {manifest.get('libraries')}: retrain the model") from None
    try:
        return Model.from_pipeline(pipeline, pack, manifest=manifest, path=root)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:  # a pickle of something else
        raise ModelError(f"{root}: {LEGACY_MODEL_FILE} is not a fitted evidence + logistic model "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None


def load_model(path: str | Path) -> Model:
    """Load and verify the artifact at ``path``; the model scores with the pack in its ``rules/``.

    Raises ModelError naming the artifact when it does not verify, its format is
    unknown, its model file is damaged, or its points are not finite numbers.
    """
    root = Path(path)
    manifest = verify_artifact(root)
    try:
        pack = load_pack(root / RULES_DIR)
    except RulePackError as exc:
        raise ModelError(f"{root}: the rule pack in {RULES_DIR}/ does not load ({exc}); retrain or restore it") from None
    if pack.fingerprint != manifest["rule_pack"]["fingerprint"]:
        raise ModelError(f"{root}: the pack in {RULES_DIR}/ is not the one the manifest names")
    if manifest["format"] == LEGACY_FORMAT:
        model = _legacy_model(root, pack, manifest)
    else:
        try:
            spec = json.loads((root / MODEL_FILE).read_text(encoding="utf-8"))
            if not isinstance(spec, dict):
                raise ValueError("not a JSON object")
            model = Model(pack, spec, manifest=manifest, path=root)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ModelError(f"{root}: {MODEL_FILE} is not a scorecard ({str(exc)[:200]}); retrain or restore it") from None
        except ModelError as exc:
            raise ModelError(f"{root}: {MODEL_FILE}: {exc}") from None
    values = np.concatenate([[model.intercept], model.met_points.ravel(), model.unk_points.ravel(),
                             model.stage_points, model.numeric_unknown, *model.bin_points])
    if not np.all(np.abs(values) <= MAX_COEF):  # NaN fails too
        raise ModelError(f"{root}: the model's points (coefficients) are not finite numbers within +-{MAX_COEF:g}; "
                         "it would score NaN: retrain it")
    if model.feature_names != list(manifest.get("features", [])):
        raise ModelError(f"{root}: the model's features differ from the manifest's")
    return model


def read_split(path: str | Path) -> dict[str, list[str]]:
    """``{"train": [...], "test": [...]}`` deal ids of a (verified) artifact."""
    return json.loads((Path(path) / SPLIT_FILE).read_text(encoding="utf-8"))


def model_split(model: Model) -> dict[str, list[str]]:
    """The deal ids ``model`` was trained and tested on (its ``split.json``); empty for an unsaved model."""
    return read_split(model.path) if model.path else {"train": [], "test": []}


def model_no_decision_as(model: Model) -> str:
    """How ``model``'s training counted ``no_decision`` outcomes (``lost`` when its manifest does not say)."""
    params = (model.manifest.get("training") or {}).get("params") or {}
    return params.get("no_decision_as", "lost")


def model_held_out(model: Model) -> dict[str, list] | None:
    """The test snapshots' stored predictions of a (verified) artifact (see :data:`HELD_OUT_FILE`), or None
    when the artifact predates them or the model is unsaved."""
    if not model.path or not (Path(model.path) / HELD_OUT_FILE).is_file():
        return None
    return json.loads((Path(model.path) / HELD_OUT_FILE).read_text(encoding="utf-8"))


def model_training_profile(model: Model) -> dict[str, Any] | None:
    """The training profile of a (verified) artifact (see :data:`TRAINING_PROFILE_FILE`), or None when the
    artifact predates it or the model is unsaved."""
    if not model.path or not (Path(model.path) / TRAINING_PROFILE_FILE).is_file():
        return None
    return json.loads((Path(model.path) / TRAINING_PROFILE_FILE).read_text(encoding="utf-8"))


def model_usefulness(model_or_manifest: Model | Mapping[str, Any]) -> dict[str, Any] | None:
    """The usefulness verdict recorded at training (``metrics.usefulness``), or None in older artifacts."""
    manifest = model_or_manifest.manifest if isinstance(model_or_manifest, Model) else model_or_manifest
    return (manifest.get("metrics") or {}).get("usefulness")
