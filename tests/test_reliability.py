"""Crash safety and concurrent writers (docs/design.md: Testing, Conventions).

- A writer killed with SIGKILL at random moments leaves a store that opens, whose every
  committed call has its edges, refs and values, and from which a rerun computes only what is
  missing.
- Two processes writing overlapping calls into one SQLite file both finish, and every call is
  stored exactly once.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import time
from pathlib import Path

from mandala.imports import Storage
from tests.harness.kill import (
    PIPELINE_OPS,
    RERUNS,
    THRESHOLD_MB,
    check_pipeline_store,
    kill_9,
    needs_sigkill,
    pipeline_calls,
    records,
    run_pipeline,
    spawn_python,
    wait_for_output,
)

pytestmark = needs_sigkill

WORKER = (
    PIPELINE_OPS
    + r"""
import sys, time
from mandala.imports import Storage

db, start, stop, step, commit_every = sys.argv[1], *map(int, sys.argv[2:6])
start_at = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0

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
)


def _start_worker(db: Path, out: Path, *args: object) -> subprocess.Popen[bytes]:
    return spawn_python(["-c", WORKER, str(db), *map(str, args)], out)


def _check_integrity(db: Path) -> set[tuple[str, int]]:
    """SQL-level invariants and loadable values; returns the committed calls as (op name, i)."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        storage = Storage(db, overflow_threshold_MB=THRESHOLD_MB)
        try:
            return check_pipeline_store(conn, Path(str(db) + ".blobs"), storage)
        finally:
            storage.close()
    finally:
        conn.close()


def test_sigkill_at_random_moments_leaves_a_consistent_store(tmp_path) -> None:
    db = tmp_path / "killed.db"
    rng = random.Random(20240611)
    committed: set[tuple[str, int]] = set()
    kills = 0
    for attempt in range(6):
        out = tmp_path / f"worker-{attempt}.out"
        worker = _start_worker(db, out, 0, 100_000, 1, 5)
        wait_for_output(out, "READY")
        time.sleep(rng.uniform(0.02, 0.6))
        if worker.poll() is None:
            kill_9(worker)
            kills += 1
        worker.wait(timeout=20)
        # A call committed before this run must never have run again.
        rerun = [e for e in records(out, "EXEC") if e in committed]
        assert rerun == [], f"committed calls executed again: {rerun[:5]}"
        committed_now = _check_integrity(db)
        assert committed <= committed_now  # nothing committed is ever lost
        committed = committed_now
    assert kills >= 5
    assert committed, "the worker never committed anything"
    # Rerunning in this process computes exactly the missing calls up to the furthest one.
    last = max(i for _, i in committed)
    run_pipeline(Storage(db, overflow_threshold_MB=THRESHOLD_MB), last)
    expected = pipeline_calls(last)
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
    executed = [set(records(out, "EXEC")) for out in outs]
    # Each call ran at least once somewhere; overlap may run a call in both, never store it twice.
    assert {("work", i) for i in range(240)} <= executed[0] | executed[1]
    assert _check_integrity(db)
