"""Per-call durability (``Storage(durable=True)``), on every persistent backend.

- A durable writer killed with SIGKILL at random moments leaves a store that opens, holds only
  whole calls (each with its edges, each atom edge with its value row, each blob row with its
  file), and holds every call the writer reported done; a rerun computes only what is missing.
- ``durable=False`` (the default) keeps the old behaviour: nothing reaches the store before the
  outermost block exits or ``commit()`` is called.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mandala.imports import MList, Storage, op

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

REPO_ROOT = Path(__file__).resolve().parent.parent
KILLS = 5

WORKER = r"""
import sys
from mandala.imports import Storage, op

location, blobs = sys.argv[1], sys.argv[2]

@op
def work(i):
    print("EXEC work", i, flush=True)
    size = 70_000 if i % 5 == 0 else 2_000  # every fifth value goes to a blob file
    return {"i": i, "payload": bytes([i % 251]) * size}

@op
def combine(a, b):
    print("EXEC combine", b["i"], flush=True)
    return a["i"] * 1000 + b["i"]

storage = Storage(location, overflow_dir=blobs, overflow_threshold_MB=0.05, durable=True)
print("READY", flush=True)
with storage:
    previous = None
    for i in range(100_000):
        current = work(i)
        print("DURABLE work", i, flush=True)
        if previous is not None:
            combine(previous, current)
            print("DURABLE combine", i, flush=True)
        previous = current
"""

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


def _lines(path: Path, tag: str) -> list[tuple[str, int]]:
    """``(op name, i)`` of the complete ``tag`` lines (a killed worker may leave half a line)."""
    result = []
    for line in path.read_text().split("\n")[:-1]:
        parts = line.split()
        if len(parts) == 3 and parts[0] == tag and parts[2].isdigit():
            result.append((parts[1], int(parts[2])))
    return result


def _wait_for(path: Path, text: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.005)
    raise AssertionError(f"worker never printed {text!r}: {path.read_text()[-2000:]}")


def _stored_calls(location: str, blobs: Path) -> set[tuple[str, int]]:
    """Check the store at the SQL level and by loading every call; returns its calls."""
    storage = Storage(location, overflow_dir=blobs, overflow_threshold_MB=0.05)
    conn = storage.conn()
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
        assert (blobs / key[:2] / key).is_file(), f"blob {key} of a stored value is missing"
    assert storage.verify().ok
    # Every stored call loads, with the right values.
    stored: set[tuple[str, int]] = set()
    for call in storage.mget_call([bytes(row[1]).hex() for row in rows], in_memory=True):
        out = call.outputs["output_0"].obj
        if call.op.name == "work":
            i = call.inputs["i"].obj
            assert out == {"i": i, "payload": bytes([i % 251]) * (70_000 if i % 5 == 0 else 2_000)}
        else:
            a, b = call.inputs["a"].obj, call.inputs["b"].obj
            assert out == a["i"] * 1000 + b["i"]
            i = b["i"]
        stored.add((call.op.name, i))
    storage.close()
    return stored


def _rerun(location: str, blobs: Path, upto: int) -> None:
    """Run the worker's loop for ``i <= upto`` here (not durable), recording executions."""
    RERUNS.clear()
    storage = Storage(location, overflow_dir=blobs, overflow_threshold_MB=0.05)
    with storage:
        previous = None
        for i in range(upto + 1):
            current = work(i)
            if previous is not None:
                combine(previous, current)
            previous = current
    storage.close()


def _next_call(done: set[tuple[str, int]]) -> tuple[str, int]:
    """The call the worker makes after the last one in ``done`` (the order of its loop)."""
    order = sorted(done, key=lambda c: (c[1], c[0] == "combine"))
    if not order:
        return ("work", 0)
    name, i = order[-1]
    return ("work", i + 1) if name == "combine" or i == 0 else ("combine", i)


def test_sigkilled_durable_writer_keeps_every_reported_call(persistent, tmp_path) -> None:
    location, blobs = persistent.location, tmp_path / "blobs"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    rng = random.Random(20250611)
    durable: set[tuple[str, int]] = set()
    stored: set[tuple[str, int]] = set()
    for attempt in range(KILLS):
        out = tmp_path / f"worker-{attempt}.out"
        with open(out, "w") as file:
            worker = subprocess.Popen(
                [sys.executable, "-c", WORKER, location, str(blobs)],
                stdout=file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(REPO_ROOT),
            )
        _wait_for(out, "READY")
        time.sleep(rng.uniform(0.05, 0.5))
        assert worker.poll() is None, out.read_text()[-2000:]
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=20)
        # A call stored before this run never ran again in it.
        again = [call for call in _lines(out, "EXEC") if call in stored]
        assert again == [], f"stored calls executed again: {again[:5]}"
        reported = set(_lines(out, "DURABLE"))
        assert reported, "the worker reported no call before it was killed"
        durable |= reported
        stored = _stored_calls(location, blobs)
        assert durable <= stored, f"reported durable but lost: {sorted(durable - stored)[:5]}"
        # At most the call in flight (stored, then killed before it printed) is beyond them.
        assert stored - durable <= {_next_call(durable)}
        # Rerunning every reported call here executes none of them.
        _rerun(location, blobs, max(i for _, i in durable))
        assert [c for c in RERUNS if c in durable] == []
        # What the rerun computed (the pair of a last reported work call) is committed now.
        durable |= set(RERUNS)
        stored |= set(RERUNS)
    # A rerun past the furthest call computes exactly what is missing, and the store stays whole.
    last = max(i for _, i in stored) + 3
    before = _stored_calls(location, blobs)
    _rerun(location, blobs, last)
    expected = {("work", i) for i in range(last + 1)} | {("combine", i) for i in range(1, last + 1)}
    assert sorted(RERUNS) == sorted(expected - before)
    assert _stored_calls(location, blobs) == expected


@op
def double(x):
    return 2 * x


def test_not_durable_writes_nothing_before_the_block_exits(persistent) -> None:
    writer, reader = persistent.open(), persistent.open()
    assert writer.session.durable is False  # the default
    with writer:
        double(1)
        double(2)
        assert reader.cache_stats()["calls"]["stored"] == 0
        assert writer.cache_stats()["calls"]["pending"] == 2
    assert reader.cache_stats()["calls"]["stored"] == 2


def test_durable_call_is_visible_as_soon_as_it_returns(persistent) -> None:
    writer, reader = persistent.open(durable=True), persistent.open()
    with writer:
        result = double(21)
        assert reader.cache_stats()["calls"]["stored"] == 1
        assert writer.cache_stats()["calls"]["pending"] == 0
        assert reader.exists_call(writer.get_ref_creator(result).hid)
    assert reader.cache_stats()["calls"]["stored"] == 1


@op
def total(xs: MList[int]) -> int:
    return sum(xs)


def test_durable_calls_from_threads_are_each_stored_whole(persistent) -> None:
    writer = persistent.open(durable=True)

    def body(start: int) -> None:
        # Storage.call needs no block: nothing else would commit these calls.
        for x in range(start, start + 25):
            writer.call(total, ([x, x + 1, x + 2],), {})  # with the list's structural calls

    threads = [threading.Thread(target=body, args=(25 * n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.cache_stats()["calls"]["pending"] == 0
    reader = persistent.open()
    assert reader.verify().ok
    with reader.allow_new_calls(False), reader:
        assert reader.unwrap([total([x, x + 1, x + 2]) for x in range(100)]) == [
            3 * x + 3 for x in range(100)
        ]
