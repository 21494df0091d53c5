"""Per-call durability (``Storage(durable=True)``), on every persistent backend.

- A durable writer killed with SIGKILL at random moments leaves a store that opens, holds only
  whole calls (each with its edges, each atom edge with its value row, each blob row with its
  file), and holds every call the writer reported done; a rerun computes only what is missing.
- ``durable=False`` (the default) keeps the old behaviour: nothing reaches the store before the
  outermost block exits or ``commit()`` is called.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from mandala.imports import MList, Storage, op
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

KILLS = 5

WORKER = (
    PIPELINE_OPS
    + r"""
import sys
from mandala.imports import Storage

location, blobs = sys.argv[1], sys.argv[2]

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
)


def _stored_calls(location: str, blobs: Path) -> set[tuple[str, int]]:
    """Check the store at the SQL level and by loading every call; returns its calls."""
    storage = Storage(location, overflow_dir=blobs, overflow_threshold_MB=THRESHOLD_MB)
    try:
        stored = check_pipeline_store(storage.conn(), blobs, storage)
        assert storage.verify().ok
    finally:
        storage.close()
    return stored


def _rerun(location: str, blobs: Path, upto: int) -> None:
    """Run the worker's loop for ``i <= upto`` here (not durable), recording executions."""
    storage = Storage(location, overflow_dir=blobs, overflow_threshold_MB=THRESHOLD_MB)
    run_pipeline(storage, upto)
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
    rng = random.Random(20250611)
    durable: set[tuple[str, int]] = set()
    stored: set[tuple[str, int]] = set()
    for attempt in range(KILLS):
        out = tmp_path / f"worker-{attempt}.out"
        worker = spawn_python(["-c", WORKER, location, str(blobs)], out)
        wait_for_output(out, "READY")
        time.sleep(rng.uniform(0.05, 0.5))
        assert worker.poll() is None, out.read_text()[-2000:]
        kill_9(worker)
        # A call stored before this run never ran again in it.
        again = [call for call in records(out, "EXEC") if call in stored]
        assert again == [], f"stored calls executed again: {again[:5]}"
        reported = set(records(out, "DURABLE"))
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
    expected = pipeline_calls(last)
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
