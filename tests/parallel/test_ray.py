"""``storage.parallel(ray)``: what is particular to Ray, on a real local Ray instance.

The executor-independent behaviour (results equal a serial run, memo first, failures, re-runs)
is tested on Ray too: ``tests/parallel/test_batch.py`` runs every executor test with the ``ray``
module as well. Here: dependencies travel as ``ObjectRef``s, the block's own use of Ray (nothing
submitted for stored calls, cancellation, results writable), progress counts, two drivers on
one store, versioned code, and the refusal of strings.

One Ray instance serves the whole session (``ray_module`` in ``tests/conftest.py``): starting
one takes seconds. Other processes connect to it by address.
"""

from __future__ import annotations

import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mandala.errors import ParallelCallError, UnsupportedExecutorError
from mandala.imports import Storage
from mandala.parallel.ray_runner import RayRunner
from mandala.parallel.tasks import WorkerFailure
from mandala.ui.progress import BatchCounts
from tests.conftest import PersistentStore
from tests.parallel import ops_for_workers as ops
from tests.parallel.ops_for_workers import executions
from tests.parallel.test_claims_across_processes import (
    EXPECTED,
    EXPECTED_CALLS,
    N,
    calls_in,
    claim_rows,
    result_of,
    start,
)


@pytest.fixture
def submissions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """``(label, number of upstream ObjectRefs)`` of every task the blocks submit to Ray."""
    seen: list[tuple[str, int]] = []
    submit = RayRunner.submit

    def recording(self: RayRunner, tasks: list[Any]) -> list[Any]:
        seen.extend((label, len(upstream)) for _, upstream, label in tasks)
        return submit(self, tasks)

    monkeypatch.setattr(RayRunner, "submit", recording)
    yield seen


def test_ray_workers_import_this_checkout(ray_module: Any) -> None:
    where = ray_module.remote(ops.mandala_location)
    assert ray_module.get(where.remote()) == ops.mandala_location()


def test_dependent_calls_are_submitted_with_their_inputs_object_refs(
    storage: Storage,
    ray_module: Any,
    submissions: list[tuple[str, int]],
    tmp_path: Path,
    log: str,
) -> None:
    """A call on a running call's output goes to Ray at once with the upstream ObjectRef (Ray
    runs it when the input is ready), not after the input came back to the driver."""
    gate = tmp_path / "gate"

    def open_gate_when_the_dependent_is_submitted() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(n for _, n in submissions):
            time.sleep(0.02)
        gate.touch()

    watcher = threading.Thread(target=open_gate_when_the_dependent_is_submitted)
    watcher.start()
    try:
        with storage.parallel(ray_module):
            upstream = ops.slow(1, 0.0, log=log, gate=str(gate))
            downstream = ops.add(upstream, 1, log=log)
            chained = ops.add(downstream, 1, log=log)
    finally:
        watcher.join()
    assert [n for _, n in submissions] == [0, 1, 1]  # all three before the first finished
    assert [label.split("-")[0] for label, _ in submissions] == ["slow", "add", "add"]
    assert storage.unwrap([upstream, downstream, chained]) == [10, 11, 12]
    assert [line.split()[0] for line in executions(log)] == ["slow", "add", "add"]


def test_a_block_of_stored_calls_submits_nothing_to_ray(
    storage: Storage, ray_module: Any, submissions: list[tuple[str, int]], log: str
) -> None:
    with storage.parallel(ray_module):
        first = [ops.square(i, log=log) for i in range(4)]
    assert len(submissions) == 4
    with storage.parallel(ray_module) as batch:
        again = [ops.square(i, log=log) for i in range(4)] + [ops.add(first[1], 1, log=log)]
    assert batch.hits == 4 and len(submissions) == 5  # only the new call
    assert storage.unwrap(again) == [0, 1, 4, 9, 2]
    assert sorted(executions(log)) == ["add 1 1", "square 0", "square 1", "square 2", "square 3"]


def test_progress_counts_follow_the_block(
    storage: Storage, ray_module: Any, tmp_path: Path, log: str
) -> None:
    """While the block runs its counts show the calls running on Ray; at the end, every call
    is done, failed, not run or from the store."""
    with storage:
        ops.square(1, log=log)
    gate = tmp_path / "gate"
    block = storage.parallel(ray_module, progress=False)
    seen: list[BatchCounts] = []

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (seen and seen[-1].running >= 2):
            seen.append(block.counts)
            time.sleep(0.01)
        gate.touch()

    watcher = threading.Thread(target=watch)
    with pytest.raises(ParallelCallError, match="checked refuses 5"), block:
        ops.square(1, log=log)  # stored
        slow = [ops.slow(i, 0.0, log=log, gate=str(gate)) for i in range(3)]
        failed = ops.checked(5, bad=5, log=log)
        ops.add(failed, 1, log=log)  # not run
        watcher.start()
    watcher.join()
    assert seen[-1].running >= 2 and seen[-1].total == 6 and seen[-1].from_store == 1
    assert block.counts == BatchCounts(
        total=6, pending=0, running=0, done=3, failed=1, from_store=1, not_run=1
    )
    assert storage.unwrap(slow) == [0, 10, 20]


def test_results_are_ordinary_writable_objects(storage: Storage, ray_module: Any) -> None:
    """Ray reads arrays out of its object store read-only; a block's results are not."""
    with storage.parallel(ray_module):
        ref = ops.zeros(1000)
    array = storage.unwrap(ref)
    array[0] = 1.0
    assert array.sum() == 1.0


def test_an_exception_that_cannot_travel_back_fails_its_call_alone(
    storage: Storage, ray_module: Any
) -> None:
    failing = pytest.raises(ParallelCallError, match="holds a lock")
    with failing as caught, storage.parallel(ray_module):
        ops.raise_unpicklable(1)
        fine = ops.square(3)
    assert isinstance(caught.value.__cause__, WorkerFailure)
    assert "ops_for_workers.py" in str(caught.value)  # the worker's traceback, as text
    assert storage.unwrap(fine) == 9


def test_an_op_that_is_not_importable_travels_by_value(storage: Storage, ray_module: Any) -> None:
    from mandala.imports import op

    @op
    def local_cube(x: int) -> int:
        return x**3

    with storage.parallel(ray_module):
        refs = [local_cube(i) for i in range(3)]
    assert storage.unwrap(refs) == [0, 1, 8]


def test_cancelling_a_running_call(ray_module: Any, tmp_path: Path) -> None:
    """The runner cancels with ray.cancel; the call's outcome is a CancelledError, as for the
    other executors (what the block does on Ctrl-C or when an input failed)."""
    import concurrent.futures

    from mandala.parallel.tasks import OpHandle, Task

    runner = RayRunner(ray_module)
    task = Task(OpHandle(ops.slow), {"x": 1, "seconds": 0.0, "log": None, "gate": str(tmp_path)})
    blocked = Task(
        OpHandle(ops.slow), {"x": 2, "seconds": 0.0, "log": None, "gate": str(tmp_path / "never")}
    )
    done, stuck = runner.submit([(task, [], "slow-done"), (blocked, [], "slow-stuck")])
    assert runner.wait([done], 60) == [done]
    runner.cancel([stuck, done])  # the finished one is left alone
    deadline = time.monotonic() + 60
    while not runner.wait([stuck], 1) and time.monotonic() < deadline:
        pass
    (ok, value), (cancelled, error) = runner.outcomes([done, stuck])
    assert ok and value[0] == 10
    assert not cancelled and isinstance(error, concurrent.futures.CancelledError)


def test_two_drivers_on_one_store_compute_each_call_once(
    persistent: PersistentStore, ray_module: Any, tmp_path: Path
) -> None:
    """Two processes connected to the same Ray instance (by address) run the same block on one
    store: the claims let each call run once in total."""
    Storage(persistent.location).close()
    log, gate = str(tmp_path / "log"), tmp_path / "start"
    config = {
        "location": persistent.location,
        "log": log,
        "n": N,
        "seconds": 0.3,
        "start_gate": str(gate),
        "executor": "ray",
        "ray_address": ray_module.get_runtime_context().gcs_address,
    }
    processes = [start(config), start(config)]
    time.sleep(1.0)  # both interpreters are up
    gate.touch()
    results = [result_of(process) for process in processes]
    assert results == [EXPECTED, EXPECTED]
    assert calls_in(log) == EXPECTED_CALLS
    assert claim_rows(persistent.location) == []


VERSIONED = """
from mandala.imports import op, track

@track
def scale(x):
    return 10 * x

@op
def f(x):
    return scale(x) if x > 0 else -x

@op
def g(y):
    return y + 1
"""


def test_versioned_calls_equal_serial_ones(
    persistent: PersistentStore, ray_module: Any, ray_modules_dir: Path, tmp_path: Path
) -> None:
    """With deps_path, Ray workers trace the calls and the driver resolves the versions: the
    ids equal a serial run's, and a later block finds every call."""
    import importlib

    package = "rayvp_" + uuid.uuid4().hex[:10]
    root = ray_modules_dir / package
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "m.py").write_text(textwrap.dedent(VERSIONED))
    importlib.invalidate_caches()
    mod = importlib.import_module(f"{package}.m")
    storage = persistent.open(deps_path=root, on_change="new_version")
    serial = Storage(tmp_path / "serial.db", deps_path=root, on_change="new_version")
    xs = [-1, 1, 2]
    with storage.parallel(ray_module, progress=False) as batch:
        outs = [mod.g(mod.f(x)) for x in xs]
    assert len(batch.nodes) == 6
    with serial:
        expected = [mod.g(mod.f(x)) for x in xs]
    assert storage.unwrap(outs) == serial.unwrap(expected) == [2, 11, 21]
    assert [o.hid for o in outs] == [e.hid for e in expected]
    with storage.parallel(ray_module, progress=False) as again:
        refs = [mod.g(mod.f(x)) for x in xs]
    assert again.nodes == [] and [r.hid for r in refs] == [o.hid for o in outs]


@pytest.mark.parametrize("name", ["ray", "ray://head:10001"])
def test_strings_naming_ray_are_refused_with_the_fix(storage: Storage, name: str) -> None:
    with pytest.raises(UnsupportedExecutorError, match=r"ray\.init\(.*storage\.parallel\(ray\)"):
        storage.parallel(name)


def test_importing_mandala_does_not_import_ray(
    snippet: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = snippet(
        """
        import concurrent.futures, sys
        from mandala.imports import Storage
        import mandala.parallel.executors
        from tests.parallel.ops_for_workers import square
        storage = Storage()
        with concurrent.futures.ProcessPoolExecutor(1) as pool:
            with storage.parallel(pool, progress=False):
                ref = square(3)
        assert storage.unwrap(ref) == 9
        print("ray" in sys.modules)
        """
    )
    assert result.stdout.strip() == "False"
