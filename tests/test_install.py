"""The built wheel works from any folder: the bundled pack, default model and sample ship in it.

Builds the wheel from a copy of the source, installs it (without dependencies)
into a fresh virtual environment whose dependencies are borrowed from the
running one (a ``.pth`` line: installing pandas, scikit-learn and a compiled
durable-rules again would take over a minute), and runs the library and the
command from a temporary folder that is not the repository.  About 30 s.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: what a copy of the source leaves out: environments (CI's .venv and .venv313, over a GB each), build
#: output, caches
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "out", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".hypothesis")

pytestmark = [pytest.mark.install, pytest.mark.timeout(300)]


def _run(args: list, cwd: Path, env: dict, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    if ok:
        assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(python, scoring, work folder, env)`` of a fresh venv holding only the built wheel."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE)
    env = {k: v for k, v in os.environ.items() if k not in ("SCORING_HOME", "PYTHONPATH")}
    _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "-q", "-w", tmp / "wheels"], tmp, env)
    wheel = next((tmp / "wheels").glob("dealscore-*.whl"))
    target = tmp / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
         tmp, env)
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env)
    Path(purelib.stdout.strip(), "borrowed-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    work = tmp / "elsewhere"
    work.mkdir()
    return python, target / "bin" / "scoring", work, env


def test_the_library_uses_the_bundled_pack_model_and_sample_from_any_folder(installed):
    python, _, work, env = installed
    code = """
import json
import scoring
from scoring import Scorer, paths
record = json.loads(paths.sample_pipeline().read_text(encoding="utf-8").splitlines()[0])
result = Scorer(as_of="2026-11-26").score(record)
print(json.dumps({"module": scoring.__file__, "source": paths.home().source, "rules": str(paths.default_rules()),
                  "model": result.model_version, "p": result.to_dict()["win_probability"]}))
"""
    out = json.loads(_run([python, "-c", code], work, env).stdout)
    site_packages = str(python.parent.parent)
    assert out["module"].startswith(site_packages) and out["rules"].startswith(site_packages)
    assert out["source"] == "the installed package"
    assert out["model"] and 0 < out["p"] < 1


def test_the_command_scores_explains_and_lists_from_any_folder(installed):
    python, scoring, work, env = installed
    proc = _run([scoring, "score", "--as-of", "2026-11-26"], work, env)  # the bundled sample into ./out
    assert "scored 300" in proc.stdout
    rows = (work / "out" / "scores.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 300 and json.loads(rows[0])["win_probability"] is not None

    sample = python.parent.parent.glob("lib/python*/site-packages/dealscore_datasets/sample/pipeline.jsonl")
    small = work / "two.jsonl"
    small.write_text("\n".join(next(sample).read_text(encoding="utf-8").splitlines()[:2]) + "\n", encoding="utf-8")
    assert "Next actions" in _run([scoring, "explain", small], work, env).stdout
    from scoring.evidence.pack import load_pack

    n_rules = len(load_pack(ROOT / "rules" / "default").rules)  # the bundled pack is the checkout's
    assert f"{n_rules} rules" in _run([scoring, "rules", "list"], work, env).stdout
    assert _run([scoring, "models"], work, env).stdout.startswith("* default")


def test_writes_to_the_bundled_models_and_a_missing_home_say_how_to_set_scoring_home(installed):
    python, scoring, work, env = installed
    proc = _run([scoring, "rollback"], work, env, ok=False)
    assert proc.returncode == 2 and "read-only" in proc.stderr and "SCORING_HOME" in proc.stderr
    empty = work / "team"
    empty.mkdir()
    proc = _run([scoring, "rules", "list"], work, {**env, "SCORING_HOME": str(empty)}, ok=False)
    assert proc.returncode == 2
    assert f"{empty}/rules/default" in proc.stderr and "SCORING_HOME" in proc.stderr


def test_the_shipped_crm_mappings_and_exports_work_from_any_folder(installed):
    python, scoring, work, env = installed
    where = _run([python, "-c", "from scoring import paths; print(paths.bundled('datasets'))"], work, env)
    crm = Path(where.stdout.strip()) / "crm"
    assert "no problems found" in _run([scoring, "map", "salesforce", crm / "salesforce", "--check"], work, env).stdout
    proc = _run([scoring, "map", "salesforce", crm / "salesforce-messy", "--check"], work, env, ok=False)
    assert proc.returncode == 1 and "'Bidding?' x2" in proc.stdout
    _run([scoring, "score", crm / "hubspot", "--mapping", "hubspot", "--out", work / "hs.jsonl"], work, env)
    assert len((work / "hs.jsonl").read_text(encoding="utf-8").splitlines()) == 40
