"""Versioned calls in parallel blocks: workers trace, the driver resolves versions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mandala.errors import ParallelCallError
from mandala.imports import Storage

CODE = """
import os
from mandala.imports import op, track

@track
def scale(x):
    return 10 * x

@track
def note(log, *parts):
    if log is None:
        return
    with open(log, "a") as file:
        file.write(" ".join(map(str, parts)) + "\\n")

@op(ignore_args=["log"])
def f(x, log=None):
    note(log, "f", x, os.getpid())
    return scale(x) if x > 0 else -x

@op(ignore_args=["log"])
def g(y, log=None):
    note(log, "g", y, os.getpid())
    return y + 1
"""


def restart(executor):
    """Workers that import the current code: a new pool, or restarted Dask workers."""
    import concurrent.futures

    if isinstance(executor, concurrent.futures.ProcessPoolExecutor):
        executor.shutdown()
        return concurrent.futures.ProcessPoolExecutor(2)
    paths = list(sys.path)
    executor.restart()

    def add_paths(paths=paths):
        sys.path[:0] = [p for p in paths if p not in sys.path]

    executor.run(add_paths)
    return executor


def executions(log: Path, name: str) -> list[int]:
    if not log.exists():
        return []
    return sorted(
        int(line.split()[1]) for line in log.read_text().splitlines() if line.split()[0] == name
    )


@pytest.fixture(params=["process_pool", "dask"])
def executor(request, project):
    if request.param == "dask":
        client = request.getfixturevalue("dask_client")
        roots = [str(project.root), str(project.log_dir)]

        def add_paths(paths=roots):
            for path in paths:
                if path not in sys.path:
                    sys.path.insert(0, path)

        client.run(add_paths)
        return client
    import concurrent.futures

    pool = concurrent.futures.ProcessPoolExecutor(2)
    request.addfinalizer(pool.shutdown)
    return pool


def test_parallel_versioned_calls_equal_serial_ones_and_follow_code_changes(
    project, tmp_path, executor
):
    log = tmp_path / "runs.log"
    mod = project.write_and_load("m", CODE)
    storage = Storage(tmp_path / "p.db", deps_path=project.root, on_change="new_version")
    serial = Storage(tmp_path / "s.db", deps_path=project.root, on_change="new_version")
    xs = [-2, -1, 1, 2, 3]
    with storage.parallel(executor, progress=False):
        outs = [mod.g(mod.f(x, log=str(log)), log=str(log)) for x in xs]
    with serial:
        expected = [mod.g(mod.f(x)) for x in xs]
    assert [storage.unwrap(o) for o in outs] == [serial.unwrap(e) for e in expected]
    assert [o.hid for o in outs] == [e.hid for e in expected]  # the same versioned ids
    assert executions(log, "f") == xs and len(executions(log, "g")) == 5
    # a serial block on the parallel store finds everything
    with storage:
        again = [mod.g(mod.f(x, log=str(log))) for x in xs]
    assert [a.hid for a in again] == [o.hid for o in outs]
    assert executions(log, "f") == xs
    # change scale: workers that loaded the old code are refused, nothing is stored
    mod = project.write_and_load("m", CODE.replace("10 * x", "100 * x"))
    calls_before = storage.backend.upkeep.counts().calls
    stale = pytest.raises(ParallelCallError, match="Restart the workers")
    with stale, storage.parallel(executor, progress=False):
        [mod.g(mod.f(x, log=str(log)), log=str(log)) for x in xs]
    assert storage.backend.upkeep.counts().calls == calls_before
    # with workers that import the current code, only the calls that ran scale recompute
    fresh = restart(executor)
    with storage.parallel(fresh, progress=False):
        outs = [mod.g(mod.f(x, log=str(log)), log=str(log)) for x in xs]
    assert [storage.unwrap(o) for o in outs] == [3, 2, 101, 201, 301]
    assert [c for c in executions(log, "f")] == sorted(xs + [1, 2, 3, 1, 2, 3])


def test_code_fingerprints_agree_across_processes_and_differ_across_edits(project):
    from mandala.versioning.components import code_fingerprint
    from tests.conftest import run_snippet

    code = CODE + "\n@track\ndef choose(x):\n    return x in {'a', 'b', 'c'} and 1.5\n"
    mod = project.write_and_load("m", code)
    here = {name: code_fingerprint(getattr(mod, name)).hex() for name in ("f", "g", "choose")}
    for seed in ("1", "2"):
        child = run_snippet(
            f"""
            import sys
            sys.path[:0] = [{str(project.root)!r}, {str(project.log_dir)!r}]
            import {project.name("m")} as mod
            from mandala.versioning.components import code_fingerprint
            print([code_fingerprint(getattr(mod, n)).hex() for n in ("f", "g", "choose")])
            """,
            env={"PYTHONHASHSEED": seed},
        )
        assert child.stdout.strip() == str([here["f"], here["g"], here["choose"]])
    edited = project.write_and_load("m", code.replace("y + 1", "y + 2"))
    assert code_fingerprint(edited.g) != code_fingerprint(mod.g)
    assert code_fingerprint(edited.f) == code_fingerprint(mod.f)
