"""``storage.parallel()`` on real executors: results equal a serial run, nothing runs twice,
stored calls are never shipped, failures keep the other results, re-runs compute what is missing.

Parametrized over the executors (a process pool, a Dask LocalCluster, a local Ray instance) and
the stores (memory, SQLite file, PostgreSQL when configured). Executions are counted across
processes through the log file every test op appends to.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mandala.errors import (
    NewCallsNotAllowedError,
    OutputMismatchError,
    ParallelCallError,
    PendingResultError,
)
from mandala.hashing import ids
from mandala.imports import Storage
from mandala.model.refs import AtomRef, Ref
from mandala.parallel.pending import PendingRef
from mandala.ui.progress import BatchCounts
from tests.conftest import PersistentStore
from tests.parallel import ops_for_workers as ops
from tests.parallel.ops_for_workers import executions


def workflow(log: str | None, n: int = 6) -> dict[str, Any]:
    """A small graph: independent calls, calls on their outputs, a collection, two outputs."""
    squares = [ops.square(i, log=log) for i in range(n)]
    sums = [ops.add(a, b, log=log) for a, b in zip(squares, squares[1:])]
    grand = ops.total(sums, log=log)
    quotient, remainder = ops.divide(grand, 7, log=log)
    return {"squares": squares, "sums": sums, "total": grand, "q": quotient, "r": remainder}


def serial(body: Any) -> tuple[Storage, Any]:
    storage = Storage()
    with storage:
        refs = body()
    return storage, refs


def flat(refs: Any) -> list[Ref]:
    if isinstance(refs, Ref):
        return [refs]
    if isinstance(refs, dict):
        return [r for value in refs.values() for r in flat(value)]
    return [r for value in refs for r in flat(value)]


def assert_same_refs(storage: Storage, refs: Any, serial_storage: Storage, expected: Any) -> None:
    """Same history ids, content ids and values as the serial run."""
    got, want = flat(refs), flat(expected)
    assert [type(r) for r in got] == [type(r) for r in want]
    assert [r.hid for r in got] == [r.hid for r in want]
    assert [r.cid for r in got] == [r.cid for r in want]
    assert storage.unwrap(got) == serial_storage.unwrap(want)


def test_results_equal_a_serial_run_and_each_call_runs_once(
    storage: Storage, executor: Any, log: str
) -> None:
    with storage.parallel(executor) as batch:
        refs = workflow(log)
    reference, expected = serial(lambda: workflow(None))
    assert_same_refs(storage, refs, reference, expected)
    assert len(batch.nodes) == 6 + 5 + 1 + 1
    counts = Counter(line.split()[0] for line in executions(log))
    assert counts == {"square": 6, "add": 5, "total": 1, "divide": 1}
    assert len(set(executions(log))) == len(executions(log))
    # saved: a serial block now finds every call
    with storage:
        again = workflow(log)
    assert len(executions(log)) == 13
    assert [r.hid for r in flat(again)] == [r.hid for r in flat(expected)]


def test_stored_calls_are_not_shipped(storage: Storage, executor: Any, log: str) -> None:
    with storage:
        for i in range(3):
            ops.square(i, log=log)
    assert len(executions(log)) == 3
    with storage.parallel(executor) as batch:
        refs = workflow(log)
    assert batch.hits == 3
    assert Counter(line.split()[0] for line in executions(log)) == {
        "square": 6,
        "add": 5,
        "total": 1,
        "divide": 1,
    }
    assert executions(log)[:3] == ["square 0", "square 1", "square 2"]
    assert not {"square 0", "square 1", "square 2"} & set(executions(log)[3:])
    reference, expected = serial(lambda: workflow(None))
    assert_same_refs(storage, refs, reference, expected)


def test_a_block_of_stored_calls_ships_nothing(storage: Storage, executor: Any, log: str) -> None:
    with storage:
        workflow(log)
    before = len(executions(log))
    with storage.parallel(executor) as batch:
        refs = workflow(log)
    assert len(executions(log)) == before
    assert batch.nodes == [] and batch.hits == 13
    assert all(type(r) is AtomRef for r in flat(refs))


def test_identical_calls_in_a_block_run_once(storage: Storage, executor: Any, log: str) -> None:
    with storage.parallel(executor):
        first = ops.square(3, log=log)
        second = ops.square(3, log=log)
        sums = [ops.add(first, second, log=log) for _ in range(3)]
    assert first is second
    assert sums[0] is sums[1] is sums[2]
    assert sorted(executions(log)) == ["add 9 9", "square 3"]
    assert storage.unwrap(sums[0]) == 18


def test_equal_input_values_reuse_one_execution(storage: Storage, executor: Any, log: str) -> None:
    """Two calls with equal input values but different histories run once; the second is
    re-stamped from the first, as in a serial run."""

    def body() -> list[Ref]:
        three = ops.add(1, 2, log=log)
        return [three, ops.square(three, log=log), ops.square(3, log=log)]

    with storage:
        three = ops.add(1, 2, log=log)
    with storage.parallel(executor):
        refs = [three, ops.square(three, log=log), ops.square(3, log=log)]
    assert sorted(executions(log)) == ["add 1 2", "square 3"]
    reference, expected = serial(body)
    assert_same_refs(storage, refs, reference, expected)


def test_a_call_on_pending_inputs_found_by_value_is_reused(
    storage: Storage, executor: Any, log: str
) -> None:
    """square(add(1, 2)) is new by history, but square(3) is stored: once add(1, 2) is known,
    the stored result is re-stamped (the pool checks before running it; Dask or Ray may have run it
    already, since it was submitted with its input's future, and its result is then dropped)."""
    with storage:
        ops.square(3, log=log)
    with storage.parallel(executor):
        refs = [ops.square(ops.add(1, 2, log=log), log=log)]
    reference, expected = serial(lambda: [ops.square(3), ops.square(ops.add(1, 2))][1:])
    assert_same_refs(storage, refs, reference, expected)
    if isinstance(executor, concurrent.futures.Executor):  # the process pool
        assert sorted(executions(log)) == ["add 1 2", "square 3"]


def test_a_failure_keeps_the_others_and_a_rerun_computes_only_what_is_missing(
    storage: Storage, executor: Any, log: str
) -> None:
    def body(bad: int) -> tuple[list[Ref], list[Ref]]:
        checked = [ops.checked(i, bad=bad, log=log) for i in range(4)]
        return checked, [ops.add(c, 1, log=log) for c in checked]

    with pytest.raises(ParallelCallError) as caught, storage.parallel(executor):
        checked, plus = body(bad=2)
    error = caught.value
    assert "checked refuses 2" in str(error)
    assert "ops_for_workers.py" in str(error)  # the worker's traceback
    assert isinstance(error.__cause__, ValueError)
    assert len(error.failures) == 1 and error.failures[0].op_name == "checked"
    # not run: the call on the failed call's output (given by its call history id)
    assert len(error.not_run) == 1
    assert (
        ids.output_history_key(bytes.fromhex(error.not_run[0]), "output_0") == plus[2].history_key
    )
    assert sorted(executions(log)) == sorted(
        ["checked 0", "checked 1", "checked 2", "checked 3", "add 1000 1", "add 1001 1"]
        + ["add 1003 1"]
    )
    assert storage.unwrap([checked[0], plus[3]]) == [1000, 1004]
    with pytest.raises(PendingResultError, match="checked refuses 2"):
        storage.unwrap(checked[2])
    with pytest.raises(PendingResultError, match="an input of its call was not computed"):
        storage.unwrap(plus[2])

    # the ignored argument `bad` is not part of the calls' identity: the same calls, now passing
    before = len(executions(log))
    with storage.parallel(executor):
        checked, plus = body(bad=-1)
    assert sorted(executions(log)[before:]) == ["add 1002 1", "checked 2"]
    assert storage.unwrap(plus) == [1001, 1002, 1003, 1004]


def test_outputs_must_be_known_before_a_call_runs(storage: Storage, executor: Any) -> None:
    with (
        pytest.raises(ParallelCallError, match="returned the outputs") as caught,
        storage.parallel(executor),
    ):
        fine = ops.pair(1)
        ops.pair(-1)  # returns a tuple: two outputs, but one was expected
    assert isinstance(caught.value.__cause__, OutputMismatchError)
    assert storage.unwrap(fine) == 1


def test_large_results_are_unpickled_once_on_the_driver(
    storage: Storage, executor: Any, log: str
) -> None:
    ops.Unpickled.loads = 0
    with storage.parallel(executor):
        blobs = [ops.make_blob(200_000 + i, log=log) for i in range(3)]
    # one unpickling per result on its way back, none for hashing and storing it
    assert ops.Unpickled.loads == 3
    sizes = [len(blob.payload) for blob in storage.unwrap(blobs)]
    assert sizes == [200_000, 200_001, 200_002]


def test_the_default_executor_is_a_process_pool(storage: Storage, log: str) -> None:
    with storage.parallel(max_workers=2) as batch:
        refs = workflow(log, n=3)
    assert len(batch.nodes) == 3 + 2 + 1 + 1
    reference, expected = serial(lambda: workflow(None, n=3))
    assert_same_refs(storage, refs, reference, expected)


def test_storage_map(storage: Storage, executor: Any, log: str) -> None:
    refs = storage.map(ops.add, range(4), [10] * 4, executor=executor)
    assert storage.unwrap(refs) == [10, 11, 12, 13]
    again = storage.map(ops.add, range(5), [10] * 5, executor=executor)
    assert [r.hid for r in again[:4]] == [r.hid for r in refs]
    assert len(executions(log)) == 0  # log not passed: nothing logged
    assert storage.unwrap(again[4]) == 14


def test_a_block_that_raises_runs_nothing(storage: Storage, executor: Any, log: str) -> None:
    with pytest.raises(KeyError), storage.parallel(executor):
        ref = ops.square(5, log=log)
        raise KeyError("user code failed")
    assert executions(log) == []
    assert type(ref) is PendingRef
    with pytest.raises(PendingResultError, match="raised before its calls ran"):
        storage.unwrap(ref)
    with pytest.raises(PendingResultError), storage:  # nor can it be passed to a later call
        ops.add(ref, 1)


def test_dask_workers_import_this_checkout(dask_client: Any) -> None:
    location = dask_client.submit(ops.mandala_location, pure=False).result()
    assert location == ops.mandala_location()


def test_a_call_that_cannot_be_sent_fails_alone(storage: Storage, executor: Any, log: str) -> None:
    unpicklable = threading.Lock()  # an ignored argument: hashed never, pickled for the worker
    with pytest.raises(ParallelCallError, match="lock") as caught, storage.parallel(executor):
        ops.square(2, log=unpicklable)
        fine = ops.square(3, log=log)
    assert len(caught.value.failures) == 1
    assert storage.unwrap(fine) == 9
    assert executions(log) == ["square 3"]


def test_dask_gets_dependent_calls_with_their_inputs_futures(
    storage: Storage, dask_client: Any, tmp_path: Path, log: str
) -> None:
    """The call on a running call's output is submitted at once (Dask tracks the dependency),
    not after its input came back to the driver: both are in Dask while the first still runs."""
    gate = tmp_path / "gate"
    seen: list[set[str]] = []

    def open_gate_when_both_are_submitted() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            keys = {str(key) for key in dask_client.futures if str(key).startswith("mandala-")}
            if len(keys) >= 2:
                seen.append(keys)
                break
            time.sleep(0.02)
        gate.touch()

    watcher = threading.Thread(target=open_gate_when_both_are_submitted)
    watcher.start()
    try:
        with storage.parallel(dask_client):
            upstream = ops.slow(1, 0.0, log=log, gate=str(gate))
            downstream = ops.add(upstream, 1, log=log)
    finally:
        watcher.join()
    assert seen, "the dependent call was not submitted while its input was running"
    assert storage.unwrap(downstream) == 11


def test_a_block_on_a_process_pool_imports_neither_dask_nor_rich(
    snippet: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = snippet(
        """
        import concurrent.futures, sys
        from mandala.imports import Storage
        from tests.parallel.ops_for_workers import square
        storage = Storage()
        with concurrent.futures.ProcessPoolExecutor(1) as pool:
            with storage.parallel(pool, progress=False):
                ref = square(3)
        assert storage.unwrap(ref) == 9
        print(sorted(m for m in ("dask", "distributed", "rich", "cloudpickle") if m in sys.modules))
        """
    )
    assert result.stdout.strip() == "[]"


def test_results_are_stored_as_they_finish(
    persistent: PersistentStore, process_pool: Any, tmp_path: Path, log: str
) -> None:
    """A finished call is in the store (seen by another Storage) while the block still runs:
    the slow call waits for a gate that opens only once the fast call can be read back."""
    gate = tmp_path / "gate"
    seen = []

    def open_gate_when_the_fast_call_is_stored() -> None:
        reader = persistent.open()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not seen:
            try:
                with reader.allow_new_calls(False), reader:
                    seen.append(reader.unwrap(ops.square(4)))
            except NewCallsNotAllowedError:
                time.sleep(0.05)
        gate.touch()

    storage = persistent.open()
    watcher = threading.Thread(target=open_gate_when_the_fast_call_is_stored)
    watcher.start()
    try:
        with storage.parallel(process_pool):
            fast = ops.square(4, log=log)
            slow = ops.slow(5, 0.0, log=log, gate=str(gate))
    finally:
        watcher.join()
    assert seen == [16]
    assert storage.unwrap([fast, slow]) == [16, 50]


def test_a_call_on_a_re_stamped_output_runs_once(storage: Storage, executor: Any, log: str) -> None:
    """The input of add() is not computed but re-stamped from an equal call of the block: add()
    becomes ready once (not once when its input is settled and again when it is resolved)."""
    with storage:
        three = ops.add(1, 2, log=log)
    with storage.parallel(executor) as batch:
        leader = ops.square(3, log=log)
        follower = ops.square(three, log=log)
        plus = ops.add(follower, 1, log=log)
    assert sorted(executions(log)) == ["add 1 2", "add 9 1", "square 3"]
    assert storage.unwrap([leader, follower, plus]) == [9, 9, 10]
    assert batch.counts == BatchCounts(
        total=3, pending=0, running=0, done=2, failed=0, from_store=1
    )
