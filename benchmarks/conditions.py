"""The conditions a benchmark ran under, printed beside its figures, and how latencies are taken.

A figure means little without them: the commit (and whether the tree had
uncommitted changes), the Python, the cores this process may use, and the
load average when the run started and ended (on a shared machine other work
competes for the same cores).
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commit() -> str:
    """The checkout's short commit, ``+changes`` when the working tree differs from it."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + ("+changes" if dirty else "")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux/macOS
        return "unknown"


def cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{usable} usable of {os.cpu_count()}"


def header(what: str, shape: str) -> str:
    """The lines printed before a benchmark's figures."""
    return (f"{what}\n"
            f"  commit {commit()}; Python {platform.python_version()} ({platform.python_implementation()}); "
            f"{cores()} cores; load average (1, 5, 15 min) {load_average()} at start\n"
            f"  input: {shape}")


def footer() -> str:
    return f"  load average at end {load_average()}"


def quantiles_ms(seconds: list[float]) -> str:
    """``p50 x ms, p99 y ms (n)`` of a list of durations in seconds."""
    s = sorted(seconds)
    p99 = s[min(len(s) - 1, int(0.99 * len(s)))]
    return f"p50 {statistics.median(s) * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms (n={len(s):,})"


def latencies(fn, items, repeat: int) -> tuple[list[float], list[float]]:
    """Per-item wall and CPU (this thread's) durations of ``fn(item)`` over ``items``, ``repeat``
    passes (the first call is a warm-up).  On a loaded machine the wall time includes waiting for a
    core; the CPU time does not."""
    fn(items[0])
    wall, cpu = [], []
    for _ in range(repeat):
        for it in items:
            c0, t0 = time.thread_time(), time.perf_counter()
            fn(it)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    return wall, cpu


def timed(fn, items, repeat: int) -> str:
    """``wall p50 .., p99 ..; CPU p50 .., p99 ..`` of ``fn`` over ``items`` (see :func:`latencies`)."""
    wall, cpu = latencies(fn, items, repeat)
    return f"wall {quantiles_ms(wall)}; CPU {quantiles_ms(cpu)}"
