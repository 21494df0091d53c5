"""Adapters from the executors a user has to what a parallel block needs.

Three kinds are supported, behind one small interface (:class:`Runner`):

- a Dask ``distributed.Client``: tasks go in one ``client.map`` per scheduling round; a call whose
  inputs are still being computed is submitted at once with the upstream futures as arguments, so
  Dask tracks the dependency (and moves the value worker to worker, never through the driver);
- any ``concurrent.futures.Executor`` (the default is a ``ProcessPoolExecutor``, no extra
  dependency): a call is submitted when its inputs are computed;
- the ``ray`` module, after ``ray.init(...)``: one Ray task per call, upstream ``ObjectRef``s as
  arguments, as for Dask (:mod:`mandala.parallel.ray_runner`).

Waiting for results: a ``concurrent.futures`` future signals completion through a done-callback
into a queue. A Dask future is polled instead (its ``status`` is an attribute the client keeps
up to date): a done-callback per Dask future costs a coroutine and a thread hop on the client's
event loop, which a LocalCluster shares with its scheduler, about 10% of a trivial task.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import time
import uuid
from collections.abc import Collection
from typing import Any, Protocol

from mandala.errors import UnsupportedExecutorError
from mandala.parallel.ray_runner import RayRunner, is_ray
from mandala.parallel.tasks import Task, run_task, run_task_with_upstream

__all__ = [
    "Runner",
    "FuturesRunner",
    "DaskRunner",
    "make_runner",
    "check_executor",
    "is_dask_client",
]


class Runner(Protocol):
    supports_dependencies: bool
    """True when a task may take handles of tasks still running as upstream inputs."""

    def submit(self, tasks: list[tuple[Task, list[Any], str]]) -> list[Any]:
        """Submit ``(task, upstream handles, label)`` triples; returns the handles, in order."""

    def wait(self, in_flight: Collection[Any], timeout: float) -> list[Any]:
        """The handles among ``in_flight`` that finished (and were not returned before),
        waiting up to ``timeout`` seconds for the first one."""

    def outcomes(self, handles: list[Any]) -> list[tuple[bool, Any]]:
        """``(True, (result, started_at, duration, trace))`` or ``(False, exception)`` per finished
        handle."""

    def cancel(self, handles: list[Any]) -> None:
        """Cancel what has not finished (best effort)."""

    def close(self, wait: bool = True) -> None:
        """Release what the runner created (never the user's executor or client); without
        ``wait``, do not wait for tasks still running (the block was interrupted)."""


def is_dask_client(obj: Any) -> bool:
    """Whether ``obj`` is a ``distributed.Client`` (without importing distributed)."""
    return any(
        cls.__name__ == "Client" and cls.__module__.startswith("distributed")
        for cls in type(obj).__mro__
    )


def check_executor(executor: Any) -> None:
    """Refuse early what ``storage.parallel`` cannot run calls on.

    Raises:
        UnsupportedExecutorError: ``executor`` is neither None, a Dask client, the ``ray``
            module nor an Executor.
    """
    if (
        executor is not None
        and not is_dask_client(executor)
        and not is_ray(executor)
        and not isinstance(executor, concurrent.futures.Executor)
    ):
        hint = ""
        if isinstance(executor, str) and executor.startswith("ray"):
            hint = (
                "; for Ray, connect first (ray.init() for a local instance, "
                f"ray.init({executor!r}) for a cluster), then pass the module: "
                "storage.parallel(ray)"
            )
        raise UnsupportedExecutorError(
            "storage.parallel() takes a dask.distributed.Client, the ray module (after "
            "ray.init()), a concurrent.futures.Executor (e.g. ProcessPoolExecutor) or None "
            f"(a process pool), got {executor!r}{hint}"
        )


def make_runner(executor: Any, max_workers: int | None) -> Runner:
    """The runner for what the user passed to ``storage.parallel`` (see :func:`check_executor`)."""
    check_executor(executor)
    if executor is None:
        workers = max_workers or os.cpu_count() or 1
        return FuturesRunner(concurrent.futures.ProcessPoolExecutor(workers), owned=True)
    if is_dask_client(executor):
        return DaskRunner(executor)
    if is_ray(executor):
        return RayRunner(executor)
    return FuturesRunner(executor, owned=False)


class FuturesRunner:
    """A ``concurrent.futures`` executor: one ``submit`` per call, inputs already computed."""

    supports_dependencies = False

    def __init__(self, executor: concurrent.futures.Executor, owned: bool) -> None:
        self.executor = executor
        self.owned = owned
        self._done: queue.SimpleQueue = queue.SimpleQueue()

    def submit(self, tasks: list[tuple[Task, list[Any], str]]) -> list[Any]:
        handles = []
        for task, upstream, _ in tasks:
            if upstream:
                raise ValueError("a concurrent.futures executor cannot take upstream futures")
            future = self.executor.submit(run_task, task)
            future.add_done_callback(self._done.put)
            handles.append(future)
        return handles

    def wait(self, in_flight: Collection[Any], timeout: float) -> list[Any]:  # noqa: ARG002 - the Runner protocol; done futures arrive on a queue
        found = []
        if timeout > 0:
            try:
                found.append(self._done.get(timeout=timeout))
            except queue.Empty:
                return found
        while True:
            try:
                found.append(self._done.get_nowait())
            except queue.Empty:
                return found

    def outcomes(self, handles: list[Any]) -> list[tuple[bool, Any]]:
        found: list[tuple[bool, Any]] = []
        for future in handles:
            try:
                error = future.exception()
            except concurrent.futures.CancelledError as cancelled:
                found.append((False, cancelled))
                continue
            found.append((True, future.result()) if error is None else (False, error))
        return found

    def cancel(self, handles: list[Any]) -> None:
        for future in handles:
            future.cancel()

    def close(self, wait: bool = True) -> None:
        if self.owned:
            self.executor.shutdown(wait=wait, cancel_futures=True)


_ENDED = frozenset({"finished", "error", "cancelled"})
"""Statuses of a Dask future that will not change by themselves ("lost" may be recomputed)."""


class DaskRunner:
    """A Dask ``distributed.Client``: one ``client.map`` per round, futures as dependencies."""

    supports_dependencies = True

    _FIRST_POLL_S = 0.002
    _LONGEST_POLL_S = 0.05

    def __init__(self, client: Any) -> None:
        self.client = client
        self.token = uuid.uuid4().hex[:8]

    def submit(self, tasks: list[tuple[Task, list[Any], str]]) -> list[Any]:
        if not tasks:
            return []
        # Keys unique to this block: a key reused by an earlier block (e.g. a failed call being
        # retried) could otherwise return that block's finished future.
        keys = [f"mandala-{label}-{self.token}" for _, _, label in tasks]
        futures = self.client.map(
            run_task_with_upstream,
            [task for task, _, _ in tasks],
            [tuple(upstream) for _, upstream, _ in tasks],
            key=keys,
            pure=False,
        )
        return list(futures)

    def wait(self, in_flight: Collection[Any], timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        pause = self._FIRST_POLL_S
        while True:
            found = [future for future in in_flight if future.status in _ENDED]
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, self._LONGEST_POLL_S)

    def outcomes(self, handles: list[Any]) -> list[tuple[bool, Any]]:
        finished = [future for future in handles if future.status == "finished"]
        results = iter(self.client.gather(finished)) if finished else iter(())
        found: list[tuple[bool, Any]] = []
        for future in handles:
            if future.status == "finished":
                found.append((True, next(results)))
            elif future.status == "error":
                found.append((False, future.exception()))
            else:
                found.append(
                    (
                        False,
                        concurrent.futures.CancelledError(
                            f"the Dask task {future.key} ended as {future.status!r}"
                        ),
                    )
                )
        return found

    def cancel(self, handles: list[Any]) -> None:
        if handles:
            self.client.cancel(handles)

    def close(self, wait: bool = True) -> None:  # noqa: ARG002 - the Runner protocol; the Dask client belongs to the user
        return None
