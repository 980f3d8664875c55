"""Reliability of the nightly run: no lost night, no stuck lock, safe files (issue 12, items 2, 4, 6, 7).

Each test is one class of bad situation and asserts what a scheduler relies on:
``read = scored + rejected``, one ``error:`` line naming the path and the documented
exit code, last night's files untouched, nothing left behind (temporary files
``.NAME.tmp-<pid>``, spill folders ``.ingest-<pid>-*``, worker processes).
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.batch.files import RunFiles, failed_path, remove_stale
from scoring.batch.output import FORMULA_STARTS, AtomicWriter, read_output
from scoring.cli import main
from scoring.errors import ExitCode, InputError, ScoringError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "datasets" / "sample" / "pipeline.jsonl"
RULES = ROOT / "rules" / "default"


def score(*args, model=None):
    """``scoring score`` in-process; returns click's result (stdout and stderr apart)."""
    extra = ["--model", str(model)] if model else ["--rules", str(RULES)]
    return CliRunner().invoke(main, ["score", *[str(a) for a in args], *extra, "--workers", "1",
                                     "--as-of", "2026-11-26"])


def error_lines(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("error:")]


def leftovers(folder: Path) -> list[str]:
    """Temporary files and spill folders in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or p.name.startswith(".ingest-"))


def sample_records(n: int | None = None) -> list[dict]:
    lines = SAMPLE.read_text().splitlines()
    return [json.loads(x) for x in lines[:n]]


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- a failed run keeps last night


def test_run_over_the_reject_threshold_keeps_last_nights_output(tmp_path):
    out = tmp_path / "scores.jsonl"
    assert score(SAMPLE, "--out", out).exit_code == 0
    files = RunFiles.of(out)
    before = {p: p.read_bytes() for p in (out, files.rejects, files.summary)}
    bad = sample_records(40)
    for r in bad[:10]:  # 25% rejected, e.g. a broken export
        r["stage"] = "no such stage"
    res = score(write_jsonl(tmp_path / "bad.jsonl", bad), "--out", out)

    assert res.exit_code == ExitCode.REJECTED_SHARE == 3
    assert error_lines(res) == [f"error: 10 of 40 records rejected (25.0% > 5.0%); see {failed_path(files.rejects)}"]
    assert {p: p.read_bytes() for p in before} == before  # last night's output, rejects and summary
    failed = json.loads(failed_path(files.summary).read_text())
    assert failed["status"] == "failed" and failed["read"] == failed["scored"] + failed["rejected"] == 40
    rejected = list(csv.DictReader(io.StringIO(failed_path(files.rejects).read_text())))
    assert len(rejected) == 10 and all(r["field"] == "stage" for r in rejected)
    assert leftovers(tmp_path) == []

    assert score(SAMPLE, "--out", out).exit_code == 0  # the next good run replaces, and clears the failed files
    assert not failed_path(files.rejects).exists() and not failed_path(files.summary).exists()


# --------------------------------------------------------------------------- names of a run's files


def test_side_outputs_are_named_from_the_whole_output_name(tmp_path):
    for name in ("scores.parquet", "scores.jsonl", "scores.2026-12-01.jsonl", "scores.2026-12-02.jsonl"):
        assert score(SAMPLE, "--out", tmp_path / name).exit_code == 0
        assert (tmp_path / f"{name}.rejects.csv").exists() and (tmp_path / f"{name}.summary.json").exists()
        summary = json.loads((tmp_path / f"{name}.summary.json").read_text())
        assert summary["output"] == str(tmp_path / name)


@pytest.mark.parametrize("args", [
    ["--rejects", "{out}"],
    ["--forecast", "{out}"],
    ["--rejects", "{dir}/r.csv", "--forecast", "{dir}/r.csv"],
    ["--forecast", "{out}.rejects.csv"],
    ["--rejects", "{out}.summary.json"],
    ["--rejects", "{out}.lock"],
    ["--rejects", "{dir}/./sub/../scores.csv"],
    ["--rejects", "{input}"],
], ids=["rejects=out", "forecast=out", "rejects=forecast", "forecast=default-rejects", "rejects=summary",
        "rejects=lock", "same-file-other-spelling", "rejects=input"])
def test_files_of_one_run_that_collide_are_refused_before_work(tmp_path, args):
    src = shutil.copy(SAMPLE, tmp_path / "in.jsonl")
    (tmp_path / "sub").mkdir()
    out = tmp_path / "scores.csv"
    fill = {"out": out, "dir": tmp_path, "input": src}
    before = sorted(tmp_path.rglob("*"))
    res = score(src, "--out", out, *[a.format(**fill) for a in args])
    assert res.exit_code == ExitCode.USAGE == 2
    assert len(error_lines(res)) == 1 and ("same file" in res.stderr or "overwrite" in res.stderr)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written
    assert (tmp_path / "in.jsonl").read_bytes() == SAMPLE.read_bytes()


def test_previous_may_be_the_output_it_is_replaced_by(tmp_path, trained_model_dir):
    out = tmp_path / "scores.parquet"
    assert score(SAMPLE, "--out", out, model=trained_model_dir).exit_code == 0
    res = score(SAMPLE, "--out", out, "--previous", out, model=trained_model_dir)
    assert res.exit_code == 0, res.output
    assert (pq.read_table(out).column("probability_change").to_pandas() == 0).all()


@settings(max_examples=60, deadline=None)
@given(names=st.lists(st.sampled_from(["a.csv", "b.csv", "a.csv.rejects.csv", "a.csv.summary.json", "a.csv.lock",
                                       "a.csv.rejects.failed.csv"]), min_size=3, max_size=3))
def test_collision_check_refuses_exactly_the_runs_whose_files_meet(tmp_path_factory, names):
    d = tmp_path_factory.mktemp("names")
    files = RunFiles.of(d / names[0], d / names[1], None, d / names[2])
    paths = [str(p) for p in files.written().values()]
    if len(set(paths)) < len(paths):
        with pytest.raises(InputError, match="same file"):
            files.check()
    elif not all(n.endswith(".csv") for n in names):
        with pytest.raises(ScoringError, match="unknown output format"):
            files.check()
    else:
        files.check()


# --------------------------------------------------------------------------- the lock


def test_a_lock_path_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate me")
    out = tmp_path / "scores.jsonl"
    (tmp_path / "scores.jsonl.lock").symlink_to(target)
    res = score(SAMPLE, "--out", out)
    assert res.exit_code == ExitCode.IO == 4
    assert error_lines(res) == [f"error: {out}.lock: the lock file is a symbolic link; remove it "
                                "(it must be a plain file)"]
    assert target.read_text() == "do not truncate me" and not out.exists()


def test_a_dead_runs_lock_is_taken_over_with_a_warning(tmp_path):
    out = tmp_path / "scores.jsonl"
    pid = dead_pid()
    (tmp_path / "scores.jsonl.lock").write_text(str(pid))
    res = score(SAMPLE, "--out", out)
    assert res.exit_code == 0
    assert f"warning: the run with pid {pid} that held {out}.lock is gone (killed?); its lock is taken over" \
        in res.stdout  # in the summary, with its other warnings
    assert (tmp_path / "scores.jsonl.lock").read_text() == ""  # released cleanly: no pid left
    assert score(SAMPLE, "--out", out).stdout.count("warning: the run") == 0


def test_a_held_lock_names_its_live_holder(tmp_path):
    out = tmp_path / "scores.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from scoring.batch.files import output_lock\n"
                               f"with output_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = score(SAMPLE, "--out", out)
        assert res.exit_code == ExitCode.USAGE
        assert error_lines(res) == [f"error: another run is writing {out} (lock {out}.lock held by pid "
                                    f"{holder.pid}); refusing to start"]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


# --------------------------------------------------------------------------- what a killed run leaves


def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
def test_kill_9_leaves_no_worker_no_lock_and_the_next_run_cleans_up(tmp_path):
    from dealscore_datasets.generate import generate_tables, write_tables

    src = tmp_path / "big"
    write_tables(generate_tables(30_000, seed=5), src, fmt="parquet")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "scores.parquet"
    out.write_bytes(b"last night's scores")
    proc = subprocess.Popen([sys.executable, "-m", "scoring.cli", "score", str(src), "--out", str(out),
                             "--rules", str(RULES), "--workers", "2", "--chunk-size", "500"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    workers: list[int] = []
    while time.time() < deadline and proc.poll() is None:
        workers = _children(proc.pid)
        if len(workers) >= 2 and any(".tmp-" in p.name for p in out_dir.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None and len(workers) >= 2, "the run ended before it could be killed mid-run"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "a worker outlived its killed run"
    assert out.read_bytes() == b"last night's scores"
    assert leftovers(out_dir), "the killed run left nothing to clean (killed too late?)"

    res = score(SAMPLE, "--out", out)  # the next run starts, takes the lock over, and cleans up
    assert res.exit_code == 0, res.output
    assert f"warning: the run with pid {proc.pid}" in res.stdout
    assert leftovers(out_dir) == []
    assert pq.read_table(out).num_rows == 300


def test_leftovers_of_a_live_run_are_kept(tmp_path):
    out = tmp_path / "scores.jsonl"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = [tmp_path / f".scores.jsonl.tmp-{live.pid}", tmp_path / f".ingest-{live.pid}-abc"]
        dead = [tmp_path / f".scores.jsonl.rejects.csv.tmp-{dead_pid()}", tmp_path / f".ingest-{dead_pid()}-xyz"]
        other = tmp_path / f".someone-elses.csv.tmp-{dead_pid()}"  # not a file of this run: left alone
        for p in (mine[0], dead[0], other):
            p.write_text("x")
        for p in (mine[1], dead[1]):
            p.mkdir()
            (p / "part-0.parquet").write_text("x")
        remove_stale(RunFiles.of(out), tmp_path)
        assert all(p.exists() for p in mine) and not any(p.exists() for p in dead) and other.exists()
    finally:
        live.kill()
        live.wait()


# --------------------------------------------------------------------------- modes


def test_a_replaced_file_keeps_its_mode(tmp_path):
    out = tmp_path / "scores.csv"
    assert score(SAMPLE, "--out", out, "--forecast", tmp_path / "f.csv").exit_code == 0
    files = [out, RunFiles.of(out).rejects, RunFiles.of(out).summary, tmp_path / "f.csv"]
    for p in files:
        p.chmod(0o600)
    assert score(SAMPLE, "--out", out, "--forecast", tmp_path / "f.csv").exit_code == 0
    assert [stat.S_IMODE(p.stat().st_mode) for p in files] == [0o600] * 4


# --------------------------------------------------------------------------- CSV cells


FORMULA = "=cmd|' /C calc'!A0"


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tmp_path, trained_model_dir):
    recs = sample_records(20)
    recs[0]["owner"] = FORMULA
    recs[1]["id"] = "@SUM(A1:A9)"
    recs[2]["region"] = "+1-555"
    recs[3]["id"] = "-2+3"
    recs[3]["stage"] = "no such stage"  # rejected: the rejects CSV
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    prev = tmp_path / "prev.parquet"
    assert score(src, "--out", prev, model=trained_model_dir).exit_code == 0
    t = pq.read_table(prev).to_pandas()
    t["win_probability"] += 0.05  # so that tonight's probability_change is negative
    t.to_parquet(prev)
    out = tmp_path / "scores.csv"
    res = score(src, "--out", out, "--previous", prev, "--forecast", tmp_path / "fc.csv",
                "--max-rejected-share", "0.1", model=trained_model_dir)
    assert res.exit_code == 0, res.output

    def cells(path: Path) -> list[str]:
        return [c for row in csv.reader(io.StringIO(path.read_text(), newline="")) for c in row]

    for path in (out, RunFiles.of(out).rejects, tmp_path / "fc.csv"):
        bad = [c for c in cells(path) if c and c[0] in FORMULA_STARTS and not _number(c)]
        assert bad == [], path
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    assert {"'" + FORMULA, "'@SUM(A1:A9)", "'+1-555"} <= {c for r in rows for c in r.values()}
    assert all(_number(r["probability_change"]) and float(r["probability_change"]) < 0 for r in rows)
    assert "'-2+3" in cells(RunFiles.of(out).rejects)
    assert "'" + FORMULA in cells(tmp_path / "fc.csv")
    raw = pq.read_table(prev).to_pandas()  # Parquet (and JSON Lines) keep the raw values
    assert FORMULA in set(raw["owner"]) and "@SUM(A1:A9)" in set(raw["id"])

    again = tmp_path / "again.parquet"  # a CSV output read back as --previous: ids exactly as they were
    assert score(src, "--out", again, "--previous", out, "--max-rejected-share", "0.1",
                 model=trained_model_dir).exit_code == 0
    assert pq.read_table(again).column("probability_change").to_pandas().notna().all()


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["=1+1", "'=x", "''", "-", "\t", "@"])),
                min_size=1, max_size=12))
def test_neutralised_text_never_starts_a_formula_and_reads_back_exactly(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    w = AtomicWriter(path)
    w.write(pa.table({"t": pa.array(values, pa.string()), "n": pa.array([-1.5] * len(values))}))
    w.commit()
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    assert not any(c and c[0] in FORMULA_STARTS for c in raw["t"] if isinstance(c, str))
    assert raw["n"].tolist() == ["-1.5"] * len(values)  # numbers stay numbers
    back = read_output(path)["t"]
    assert [None if v != v else v for v in back] == [None if v == "" else v for v in values]


# --------------------------------------------------------------------------- operating-system failures


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount"):
        return False
    folder.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _assert_io_failure(res, path: Path, out_dir: Path, before: dict) -> None:
    assert res.exit_code == ExitCode.IO == 4, res.output
    errors = error_lines(res)
    assert len(errors) == 1 and errors[0].startswith(f"error: {path}"), errors
    assert "Traceback" not in res.output
    assert {p: p.read_bytes() for p in before} == before
    assert leftovers(out_dir) == []


def test_disk_full_ends_with_one_line_and_last_nights_output_intact(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "2m"):
        pytest.skip("needs root and a tmpfs mount to make a small disk")
    try:
        out = disk / "scores.jsonl"
        out.write_text("last night's scores\n")
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the disk, then leave a few blocks free
        try:
            while os.write(fd, b"\0" * 65536):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        os.truncate(filler, max(filler.stat().st_size - 65536, 0))
        before = {out: out.read_bytes()}
        res = score(SAMPLE, "--out", out)
        _assert_io_failure(res, disk, disk, before)
        assert "No space left on device" in error_lines(res)[0]
    finally:
        _umount(disk)


def test_read_only_output_folder_ends_with_one_line(tmp_path):
    ro = tmp_path / "ro"
    if _mount_tmpfs(ro, "1m"):
        (ro / "scores.jsonl").write_text("last night's scores\n")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        cleanup = lambda: _umount(ro)  # noqa: E731
    elif os.geteuid() != 0:
        ro.mkdir()
        (ro / "scores.jsonl").write_text("last night's scores\n")
        ro.chmod(0o555)
        cleanup = lambda: ro.chmod(0o755)  # noqa: E731
    else:
        pytest.skip("root ignores folder permissions and cannot mount a read-only tmpfs here")
    try:
        out = ro / "scores.jsonl"
        res = score(SAMPLE, "--out", out)
        _assert_io_failure(res, ro, ro, {out: out.read_bytes()})
    finally:
        cleanup()


def test_an_output_path_that_is_a_folder_is_refused_before_work(tmp_path):
    (tmp_path / "scores.jsonl").mkdir()
    res = score(SAMPLE, "--out", tmp_path / "scores.jsonl")
    _assert_io_failure(res, tmp_path / "scores.jsonl", tmp_path, {})
    assert list(tmp_path.iterdir()) == [tmp_path / "scores.jsonl"]  # not even a lock


def test_a_summary_that_cannot_be_written_replaces_nothing(tmp_path, monkeypatch):
    """A failure after every table is written (here the summary) still leaves last night's files."""
    from scoring.batch import output

    out = tmp_path / "scores.jsonl"
    assert score(SAMPLE, "--out", out).exit_code == 0
    before = {p: p.read_bytes() for p in (out, RunFiles.of(out).rejects, RunFiles.of(out).summary)}
    real = output.AtomicWriter.write_text

    def full(self, text):
        if self.path.name.endswith(".summary.json"):
            raise OSError(28, "No space left on device", str(self.path))  # as the real writer names it
        return real(self, text)

    monkeypatch.setattr(output.AtomicWriter, "write_text", full)
    res = score(SAMPLE, "--out", out)
    _assert_io_failure(res, RunFiles.of(out).summary, tmp_path, before)
