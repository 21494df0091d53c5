"""Code versioning: entering a versioned context on a large project, and the cost per call.

- entry: a generated deps root of 200 modules with 25 ``@track`` functions each (5,000
  functions) and one op per module that calls all of them; one call of every op makes every
  function a known dependency. Then ``with storage: pass`` is timed with the code unchanged
  (files older than the racy window, so their signatures are trusted), against: the same block
  on an unversioned storage, and a full re-read (every file's signature forgotten first, which
  is what the original library did on every entry). Also timed: one module edited.
- per call: a trivial op in the deps root, N fresh calls + commit and N memo hits, versioned vs
  unversioned (the baseline), in the same process.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

from bench.config import Config
from bench.measure import clock, temp_dir
from bench.report import Row, Target
from mandala.imports import Storage

__all__ = ["versioning"]

MODULES = 200
FUNCTIONS = 25
ENTRY_TARGET_MS = 100.0
OVERHEAD_TARGET = 2.0


def _module_source(index: int) -> str:
    lines = ["from mandala.imports import op, track", "", "K = 3", ""]
    for j in range(FUNCTIONS):
        lines += ["@track", f"def h{j}(x):", f"    return x + {j} * K", ""]
    lines += ["@op", f"def run{index}(x):", "    total = 0"]
    lines += [f"    total += h{j}(x)" for j in range(FUNCTIONS)]
    lines += ["    return total", ""]
    return "\n".join(lines)


def _write_project(root: Path, prefix: str) -> list[str]:
    root.mkdir()
    names = []
    past = time.time_ns() - 3600 * 10**9
    for i in range(MODULES):
        name = f"{prefix}{i}"
        path = root / f"{name}.py"
        path.write_text(_module_source(i))
        os.utime(path, ns=(past, past))
        names.append(name)
    return names


def _entry(cfg: Config, base: Path) -> list[Row]:
    root = base / "project"
    prefix = f"bench_vmod_{os.getpid()}_"
    names = _write_project(root, prefix)
    sys.path.insert(0, str(root))
    try:
        modules = [importlib.import_module(n) for n in names]
        storage = Storage(base / "v.db", deps_path=root, on_change="compatible")
        with storage:
            for i, module in enumerate(modules):
                getattr(module, f"run{i}")(1)
        with storage:  # records every file's signature
            pass
        plain = Storage(base / "p.db")
        reps = max(cfg.reps, 5)
        unchanged, unversioned, full = [], [], []
        versioner = storage.get_versioner()
        for _ in range(reps):
            start = clock()
            with storage:
                pass
            unchanged.append((clock() - start) * 1000)
            start = clock()
            with plain:
                pass
            unversioned.append((clock() - start) * 1000)
            files = versioner.rows.load_files()
            versioner.rows.save_state([], [], [], list(files))
            start = clock()
            with storage:
                pass
            full.append((clock() - start) * 1000)
            with storage:  # signatures back
                pass
        edited = []
        path = root / f"{names[7]}.py"
        for rep in range(reps):
            text = _module_source(7).replace("x + 3 * K", f"x + 3 * K + {rep + 1}")
            path.write_text(text)
            past = time.time_ns() - 3600 * 10**9
            os.utime(path, ns=(past - rep, past - rep))
            importlib.reload(modules[7])
            start = clock()
            with storage:
                pass
            edited.append((clock() - start) * 1000)
        components = len(storage.guess_code_state())
    finally:
        sys.path.remove(str(root))
        for name in names:
            sys.modules.pop(name, None)
    note = f"{MODULES} modules, {components} components"
    return [
        Row(
            "versioning",
            "ms to enter+exit, code unchanged",
            unchanged,
            {"unversioned": unversioned, "full re-read": full},
            Target("<=", ENTRY_TARGET_MS),
            note,
        ),
        Row(
            "versioning",
            "  ms to enter+exit, 1 module edited",
            edited,
            {"unversioned": unversioned},
            None,
            "change marked compatible",
        ),
    ]


_OPS_SOURCE = """
from mandala.imports import op

@op
def inc(x):
    return x + 1
"""


def _per_call(cfg: Config, base: Path) -> list[Row]:
    root = base / "trivial"
    root.mkdir()
    name = f"bench_vtrivial_{os.getpid()}"
    (root / f"{name}.py").write_text(_OPS_SOURCE)
    sys.path.insert(0, str(root))
    n = min(cfg.n, 5000)
    try:
        module = importlib.import_module(name)
        inc = module.inc
        fresh_v, fresh_p, warm_v, warm_p = [], [], [], []
        for rep in range(cfg.reps):
            versioned = Storage(base / f"v{rep}.db", deps_path=root, on_change="error")
            plain = Storage(base / f"p{rep}.db")
            for storage, fresh, warm in ((plain, fresh_p, warm_p), (versioned, fresh_v, warm_v)):
                start = clock()
                with storage:
                    for x in range(n):
                        inc(x)
                fresh.append((clock() - start) / n * 1e6)
                with storage:
                    start = clock()
                    for x in range(n):
                        inc(x)
                    warm.append((clock() - start) / n * 1e6)
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(name, None)
    note = f"N={n}; target on the median per-run ratio"
    return [
        Row(
            "versioning",
            metric,
            versioned,
            {"unversioned": plain},
            RatioTarget("<=", OVERHEAD_TARGET, [v / p for v, p in zip(versioned, plain)]),
            note,
        )
        for metric, versioned, plain in (
            ("µs/call fresh + commit, versioned", fresh_v, fresh_p),
            ("µs/call memo hit, versioned", warm_v, warm_p),
        )
    ]


def versioning(cfg: Config) -> list[Row]:
    with temp_dir() as base:
        return _entry(cfg, base) + _per_call(cfg, base)


class RatioTarget(Target):
    """A target on the median of per-run ratios mandala / baseline, not on the figure."""

    def __init__(self, op: str, value: float, ratios: list[float]) -> None:
        super().__init__(op, value)
        object.__setattr__(self, "ratios", sorted(ratios))

    def passed(self, measured: float) -> bool:
        ratios: list[float] = self.ratios  # type: ignore[attr-defined]
        return bool(ratios) and super().passed(ratios[len(ratios) // 2])

    def __str__(self) -> str:
        return f"ratio {self.op} {self.value:g}"
