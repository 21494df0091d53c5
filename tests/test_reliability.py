"""Crash safety and concurrent writers (DESIGN §7, STYLE habit 11).

- A writer killed with SIGKILL at random moments leaves a store that opens, whose every
  committed call has its edges, refs and values, and from which a rerun computes only what is
  missing.
- Two processes writing overlapping calls into one SQLite file both finish, and every call is
  stored exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mandala.imports import Storage, op

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

REPO_ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import sys, time
from mandala.imports import Storage, op

db, start, stop, step, commit_every = sys.argv[1], *map(int, sys.argv[2:6])
start_at = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0

@op
def work(i):
    print("EXEC work", i, flush=True)
    size = 70_000 if i % 5 == 0 else 2_000  # every fifth value goes to a blob file
    return {"i": i, "payload": bytes([i % 251]) * size}

@op
def combine(a, b):
    print("EXEC combine", b["i"], flush=True)
    return a["i"] * 1000 + b["i"]

storage = Storage(db, overflow_threshold_MB=0.05)
print("READY", flush=True)
while time.time() < start_at:
    time.sleep(0.001)
with storage:
    previous = None
    for n, i in enumerate(range(start, stop, step)):
        current = work(i)
        if previous is not None:
            combine(previous, current)
        previous = current
        if n % commit_every == commit_every - 1:
            storage.commit()
print("DONE", flush=True)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _start_worker(db: Path, out: Path, *args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(db), *map(str, args)],
        stdout=open(out, "w"),  # closed by the child's exit
        stderr=subprocess.STDOUT,
        env=_env(),
        cwd=str(REPO_ROOT),
    )


def _wait_for(path: Path, text: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.005)
    raise AssertionError(
        f"worker never printed {text!r}: {path.read_text() if path.exists() else ''}"
    )


def _executions(path: Path) -> list[tuple[str, int]]:
    result = []
    for line in path.read_text().splitlines():
        parts = line.split()
        # a worker killed mid-print leaves a partial last line: it is not a complete record
        if len(parts) == 3 and parts[0] == "EXEC" and parts[2].isdigit():
            result.append((parts[1], int(parts[2])))
    return result


# Local copies of the worker's ops (same names and code), to rerun in this process.
RERUNS: list[tuple[str, int]] = []


@op
def work(i):
    RERUNS.append(("work", i))
    size = 70_000 if i % 5 == 0 else 2_000
    return {"i": i, "payload": bytes([i % 251]) * size}


@op
def combine(a, b):
    RERUNS.append(("combine", b["i"]))
    return a["i"] * 1000 + b["i"]


def _check_integrity(db: Path) -> set[tuple[str, int]]:
    """SQL-level invariants; returns the committed calls as (op name, i)."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Every call has exactly its edges: one output, and 1 (work) or 2 (combine) inputs.
        rows = conn.execute(
            "SELECT o.name, c.history_key,"
            " (SELECT count(*) FROM call_edges e WHERE e.call_id = c.call_id AND e.direction = 0),"
            " (SELECT count(*) FROM call_edges e WHERE e.call_id = c.call_id AND e.direction = 1)"
            " FROM calls c JOIN ops o ON o.op_id = c.op_id"
        ).fetchall()
        for name, _, n_in, n_out in rows:
            assert (n_in, n_out) == ({"work": 1, "combine": 2}[name], 1), name
        # No edge without its call, no atom ref (on an edge) without its value.
        assert (
            conn.execute(
                "SELECT count(*) FROM call_edges WHERE call_id NOT IN (SELECT call_id FROM calls)"
            ).fetchone()[0]
            == 0
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM call_edges WHERE kind = 0"
                " AND content_key NOT IN (SELECT content_key FROM stored_values)"
            ).fetchone()[0]
            == 0
        )
        blob_keys = [
            row[0]
            for row in conn.execute("SELECT blob_key FROM stored_values WHERE blob_key IS NOT NULL")
        ]
    finally:
        conn.close()
    root = Path(str(db) + ".blobs")
    for key in blob_keys:
        assert (root / key[:2] / key).is_file(), f"blob {key} of a committed value is missing"
    # Every committed call's outputs (and inputs) load, with the right values.
    storage = Storage(db, overflow_threshold_MB=0.05)
    committed: set[tuple[str, int]] = set()
    hids = [row[1].hex() for row in rows]
    for call in storage.mget_call(hids, in_memory=True):
        out = call.outputs["output_0"].obj
        if call.op.name == "work":
            i = call.inputs["i"].obj
            assert out == {"i": i, "payload": bytes([i % 251]) * (70_000 if i % 5 == 0 else 2_000)}
        else:
            a, b = call.inputs["a"].obj, call.inputs["b"].obj
            assert out == a["i"] * 1000 + b["i"]
            i = b["i"]
        committed.add((call.op.name, i))
    storage.close()
    return committed


def test_sigkill_at_random_moments_leaves_a_consistent_store(tmp_path) -> None:
    db = tmp_path / "killed.db"
    rng = random.Random(20240611)
    committed: set[tuple[str, int]] = set()
    kills = 0
    for attempt in range(6):
        out = tmp_path / f"worker-{attempt}.out"
        worker = _start_worker(db, out, 0, 100_000, 1, 5)
        _wait_for(out, "READY")
        time.sleep(rng.uniform(0.02, 0.6))
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            kills += 1
        worker.wait(timeout=20)
        # A call committed before this run must never have run again.
        rerun = [e for e in _executions(out) if e in committed]
        assert rerun == [], f"committed calls executed again: {rerun[:5]}"
        committed_now = _check_integrity(db)
        assert committed <= committed_now  # nothing committed is ever lost
        committed = committed_now
    assert kills >= 5
    assert committed, "the worker never committed anything"
    # Rerunning in this process computes exactly the missing calls up to the furthest one.
    last = max(i for _, i in committed)
    RERUNS.clear()
    storage = Storage(db, overflow_threshold_MB=0.05)
    with storage:
        previous = None
        for i in range(last + 1):
            current = work(i)
            if previous is not None:
                combine(previous, current)
            previous = current
    expected = {("work", i) for i in range(last + 1)} | {("combine", i) for i in range(1, last + 1)}
    assert sorted(RERUNS) == sorted(expected - committed)
    assert len(RERUNS) == len(set(RERUNS))
    assert _check_integrity(db) == expected | committed


def test_concurrent_writers_store_every_call_once(tmp_path) -> None:
    db = tmp_path / "shared.db"
    Storage(db).close()  # create the schema first, as a user's first run would
    start_at = time.time() + 1.5
    outs = [tmp_path / "a.out", tmp_path / "b.out"]
    workers = [
        _start_worker(db, outs[0], 0, 240, 1, 7, start_at),
        _start_worker(db, outs[1], 239, -1, -1, 5, start_at),  # the same calls, reversed
    ]
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    for out in outs:
        text = out.read_text()
        assert "DONE" in text, text[-2000:]
        assert "Traceback" not in text, text[-2000:]
    conn = sqlite3.connect(db)
    try:
        by_op = dict(
            conn.execute(
                "SELECT o.name, count(*) FROM calls c JOIN ops o ON o.op_id = c.op_id GROUP BY o.name"
            ).fetchall()
        )
        n_calls = conn.execute("SELECT count(*) FROM calls").fetchone()[0]
        n_edges = conn.execute("SELECT count(*) FROM call_edges").fetchone()[0]
        n_ops = conn.execute("SELECT count(*) FROM ops").fetchone()[0]
    finally:
        conn.close()
    # work(0..239): 240 calls; combine(prev, cur) differs by direction: 239 calls each way.
    assert by_op["work"] == 240
    assert by_op["combine"] == 2 * 239
    assert n_calls == 240 + 2 * 239
    assert n_edges == 240 * 2 + 2 * 239 * 3
    assert n_ops == 2
    executed = [set(_executions(out)) for out in outs]
    # Each call ran at least once somewhere; overlap may run a call in both, never store it twice.
    assert {("work", i) for i in range(240)} <= executed[0] | executed[1]
    assert _check_integrity(db)
