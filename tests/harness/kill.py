"""The harness of the tests that kill a writer process (``kill -9``) and check what it left.

A test starts a worker (a fresh interpreter running a script of its own, with this checkout on
``PYTHONPATH``), waits until the worker reports it is ready, kills it with ``SIGKILL`` at a
random moment, and reads the worker's output file: complete ``TAG name i`` lines are records
(a killed worker may leave half a line). Most of these tests run the same small pipeline,
``work(i)`` then ``combine(work(i - 1), work(i))``: :data:`PIPELINE_OPS` is its code for the
worker scripts, :func:`work` / :func:`combine` the same ops in the test process, and
:func:`check_pipeline_store` checks a store it wrote, at the SQL level and by loading it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mandala.imports import Storage, op
from tests.harness.processes import REPO_ROOT, child_env

__all__ = [
    "REPO_ROOT",
    "needs_sigkill",
    "child_env",
    "spawn_python",
    "kill_9",
    "wait_for_output",
    "records",
    "PIPELINE_OPS",
    "THRESHOLD_MB",
    "RERUNS",
    "work",
    "combine",
    "run_pipeline",
    "pipeline_calls",
    "check_pipeline_store",
]

needs_sigkill = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
"""Mark (``pytestmark = needs_sigkill``) for a module whose tests kill processes."""


def spawn_python(
    args: list[str], out: Path, *, new_session: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``python <args>`` in the checkout, its stdout and stderr going to the file ``out``.

    With ``new_session`` the child leads a process group of its own, so that :func:`kill_9`
    kills its pool workers too.
    """
    with open(out, "w") as stdout:  # the child holds its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, *args],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=str(REPO_ROOT),
            start_new_session=new_session,
        )


def kill_9(
    process: subprocess.Popen[Any], *, group: bool = False, timeout: float | None = 20
) -> None:
    """``SIGKILL`` the process (its whole process group with ``group``) and reap it."""
    if group:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=timeout)


def wait_for_output(path: Path, text: str, timeout: float = 20) -> None:
    """Wait until the output file ``path`` contains ``text``; fail with its tail otherwise."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.005)
    raise AssertionError(
        f"worker never printed {text!r}: {path.read_text()[-2000:] if path.exists() else ''}"
    )


def records(path: Path, tag: str) -> list[tuple[str, int]]:
    """``(name, i)`` of the complete ``tag name i`` lines of an output file.

    Only lines ended by a newline count: a worker killed mid-print leaves a partial last line,
    which is not a complete record.
    """
    result = []
    for line in path.read_text().split("\n")[:-1]:
        parts = line.split()
        if len(parts) == 3 and parts[0] == tag and parts[2].isdigit():
            result.append((parts[1], int(parts[2])))
    return result


# ---------------------------------------------------------------------------- the pipeline

PIPELINE_OPS = r"""
from mandala.imports import op

@op
def work(i):
    print("EXEC work", i, flush=True)
    size = 70_000 if i % 5 == 0 else 2_000  # every fifth value goes to a blob file
    return {"i": i, "payload": bytes([i % 251]) * size}

@op
def combine(a, b):
    print("EXEC combine", b["i"], flush=True)
    return a["i"] * 1000 + b["i"]
"""
"""The pipeline's ops for a worker script; each execution prints an ``EXEC name i`` record."""

THRESHOLD_MB = 0.05
"""The blob threshold of the pipeline's stores: every fifth ``work`` value is a blob file."""

RERUNS: list[tuple[str, int]] = []
"""``(name, i)`` of every execution of :func:`work` and :func:`combine` in the test process."""


def _payload(i: int) -> dict[str, Any]:
    return {"i": i, "payload": bytes([i % 251]) * (70_000 if i % 5 == 0 else 2_000)}


@op
def work(i):  # the same ops (names, code) as the workers'
    RERUNS.append(("work", i))
    size = 70_000 if i % 5 == 0 else 2_000
    return {"i": i, "payload": bytes([i % 251]) * size}


@op
def combine(a, b):
    RERUNS.append(("combine", b["i"]))
    return a["i"] * 1000 + b["i"]


def run_pipeline(storage: Storage, upto: int) -> None:
    """Run the workers' loop for ``i <= upto`` here, in one block, recording executions."""
    RERUNS.clear()
    with storage:
        previous = None
        for i in range(upto + 1):
            current = work(i)
            if previous is not None:
                combine(previous, current)
            previous = current


def pipeline_calls(upto: int) -> set[tuple[str, int]]:
    """Every call of the pipeline for ``i <= upto``, as ``(name, i)``."""
    return {("work", i) for i in range(upto + 1)} | {("combine", i) for i in range(1, upto + 1)}


def check_pipeline_store(conn: Any, blob_root: Path, storage: Storage) -> set[tuple[str, int]]:
    """Check a store of the pipeline; returns its calls as ``(name, i)``.

    At the SQL level (``conn``, a DB-API connection to it): every call has exactly its edges,
    no edge lacks its call, no atom edge lacks its value row, and every blob row has its file
    under ``blob_root``. Then every call loads through ``storage``, with the right values.
    """
    # Every call has exactly its edges: one output, and 1 (work) or 2 (combine) inputs.
    rows = conn.execute(
        "SELECT o.name, c.history_key,"
        " (SELECT count(*) FROM call_edges e WHERE e.call_id = c.call_id AND e.direction = 0),"
        " (SELECT count(*) FROM call_edges e WHERE e.call_id = c.call_id AND e.direction = 1)"
        " FROM calls c JOIN ops o ON o.op_id = c.op_id"
    ).fetchall()
    for name, _, n_in, n_out in rows:
        assert (n_in, n_out) == ({"work": 1, "combine": 2}[name], 1), name
    # No edge without its call, no atom edge (kind 0) without its value row.
    orphan_edges = conn.execute(
        "SELECT count(*) FROM call_edges WHERE call_id NOT IN (SELECT call_id FROM calls)"
    ).fetchone()[0]
    assert orphan_edges == 0
    valueless = conn.execute(
        "SELECT count(*) FROM call_edges WHERE kind = 0"
        " AND content_key NOT IN (SELECT content_key FROM stored_values)"
    ).fetchone()[0]
    assert valueless == 0
    blob_keys = [
        row[0]
        for row in conn.execute("SELECT blob_key FROM stored_values WHERE blob_key IS NOT NULL")
    ]
    for key in blob_keys:
        assert (blob_root / key[:2] / key).is_file(), f"blob {key} of a stored value is missing"
    # Every stored call loads, with the right values.
    calls: set[tuple[str, int]] = set()
    for call in storage.mget_call([bytes(row[1]).hex() for row in rows], in_memory=True):
        out = call.outputs["output_0"].obj
        if call.op.name == "work":
            i = call.inputs["i"].obj
            assert out == _payload(i)
        else:
            a, b = call.inputs["a"].obj, call.inputs["b"].obj
            assert out == a["i"] * 1000 + b["i"]
            i = b["i"]
        calls.add((call.op.name, i))
    return calls
