"""Timing and memory helpers shared by the workloads."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT",
    "clock",
    "median",
    "settle",
    "temp_dir",
    "path_size",
    "store_size",
    "copy_store",
    "rss_bytes",
    "reset_peak_rss",
    "peak_rss_bytes",
    "run_child",
    "repeat",
]

ROOT = Path(__file__).resolve().parent.parent
"""The repository root (holds ``mandala/`` and ``bench/``)."""

clock = time.perf_counter


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def settle() -> None:
    """Collect garbage before a timed section, so one run's garbage is not charged to the next."""
    gc.collect()


@contextlib.contextmanager
def temp_dir(prefix: str = "mandala-bench-") -> Iterator[Path]:
    """A temporary directory, removed on exit (even when the benchmark fails)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def path_size(path: Path) -> int:
    """Apparent size in bytes of a file, or of every file under a directory (0 if missing)."""
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def store_size(db: Path) -> int:
    """Bytes of a SQLite store on disk: the file, its WAL and shared-memory files, its blobs."""
    return sum(path_size(Path(str(db) + suffix)) for suffix in ("", "-wal", "-shm", ".blobs"))


def copy_store(source: Path, target: Path) -> None:
    """Copy a closed SQLite store (with its WAL, if one was left)."""
    for suffix in ("", "-wal"):
        src = Path(str(source) + suffix)
        if src.exists():
            shutil.copyfile(src, str(target) + suffix)


def rss_bytes() -> int:
    """Resident set size of this process now (Linux)."""
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident set size since the last :func:`reset_peak_rss` (VmHWM)."""
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def run_child(task: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Run ``bench.child`` with ``task`` in a fresh interpreter; return the JSON it prints."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "bench.child", json.dumps(task)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"benchmark child {task.get('kind')!r} failed (exit {done.returncode}):\n{done.stderr}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def repeat(reps: int, body: Callable[[int], dict[str, float]]) -> dict[str, list[float]]:
    """Run ``body(rep)`` ``reps`` times; gather each named figure into a list of samples."""
    samples: dict[str, list[float]] = {}
    for rep in range(reps):
        for name, value in body(rep).items():
            samples.setdefault(name, []).append(value)
    return samples
