"""Running a parallel block's calls on Ray: ``storage.parallel(ray)`` after ``ray.init(...)``.

Ray's connection is global to a process (``ray.init()`` starts a local instance or connects to a
cluster, ``ray.init("ray://head:10001")`` through Ray Client), so the block takes the ``ray``
module itself: whatever ``ray.init`` connected to is where the calls run. The block never starts
or shuts Ray down; if ``ray.init`` was not called, Ray's own auto-init starts a local instance
at the first task, as for any remote call (and a block whose calls are all stored never touches
Ray).

Each call is one Ray task. A call whose inputs are still being computed is submitted at once with
the upstream tasks' ``ObjectRef`` as top-level arguments: Ray runs it when they finish and moves
their results worker to worker, never through the driver. Waiting is ``ray.wait``; cancelling is
``ray.cancel``; an op's exception comes back as Ray's ``RayTaskError``, whose ``cause`` is the
op's exception with the worker's traceback attached (as on Dask and process pools).

Results travel pickled (:func:`run_task_pickled`): Ray reads numpy arrays out of its object
store zero-copy and read-only, whereas a value computed by a block must be an ordinary, writable
object whatever ran it. One more pickling on the worker costs a copy of the result, which the
driver makes anyway to hash and store it.

``ray`` is imported only when a block actually submits to Ray (``import mandala`` never does).
"""

from __future__ import annotations

import concurrent.futures
import pickle
import types
from collections.abc import Collection
from typing import Any

from mandala.parallel.tasks import Task, run_task

__all__ = ["RayRunner", "is_ray", "run_task_pickled"]


def is_ray(obj: Any) -> bool:
    """Whether ``obj`` is the ``ray`` module (without importing ray)."""
    return isinstance(obj, types.ModuleType) and obj.__name__ == "ray"


def run_task_pickled(task: Task, *upstream: bytes) -> bytes:
    """:func:`run_task` on a Ray worker, upstream results and the result as pickles.

    Ray resolves the upstream ``ObjectRef`` arguments to their values (pickles made by this same
    function on other workers) before calling.
    """
    outcome = run_task(task, *(pickle.loads(data) for data in upstream))
    try:
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - whatever plain pickle refuses, cloudpickle is tried
        # Results that plain pickle refuses (lambdas, local classes): Ray ships cloudpickle.
        from ray import cloudpickle

        data: bytes = cloudpickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
        return data


class RayRunner:
    """The ``ray`` module, connected by ``ray.init``: one task per call, ObjectRefs as
    dependencies (see the module docstring)."""

    supports_dependencies = True

    def __init__(self, ray: types.ModuleType) -> None:
        self.ray = ray
        self._remote: Any = None

    def submit(self, tasks: list[tuple[Task, list[Any], str]]) -> list[Any]:
        if not tasks:
            return []
        if self._remote is None:
            self._remote = self.ray.remote(run_task_pickled)
        remote = self._remote
        # The label names the task in Ray's dashboard and state API (op name, history id).
        return [
            remote.options(name=label).remote(task, *upstream) for task, upstream, label in tasks
        ]

    def wait(self, in_flight: Collection[Any], timeout: float) -> list[Any]:
        refs = list(in_flight)
        if not refs:
            return []
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout, fetch_local=False)
        if not ready:
            return []
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
        return list(ready)

    def outcomes(self, handles: list[Any]) -> list[tuple[bool, Any]]:
        ray = self.ray
        try:
            blobs = ray.get(handles)
        except Exception:  # noqa: BLE001 - any failure: the handles are then read one by one
            blobs = None  # some failed: take them one by one
        found: list[tuple[bool, Any]] = []
        for i, ref in enumerate(handles):
            try:
                data = blobs[i] if blobs is not None else ray.get(ref)
                outcome = pickle.loads(data)
            except ray.exceptions.TaskCancelledError:
                found.append(
                    (False, concurrent.futures.CancelledError(f"the Ray task {ref} was cancelled"))
                )
            except ray.exceptions.RayTaskError as error:
                # The op's own exception (with the worker's traceback attached), when it
                # could be rebuilt on the driver; else Ray's wrapper, which carries the text.
                cause = error.cause if isinstance(error.cause, BaseException) else error
                found.append((False, cause))
            except Exception as error:  # noqa: BLE001 - any failure of one task is its outcome; a worker died, the object was lost, unpickling failed
                found.append((False, error))
            else:
                found.append((True, outcome))
        return found

    def cancel(self, handles: list[Any]) -> None:
        for ref in handles:
            try:
                self.ray.cancel(ref)
            except Exception:  # noqa: BLE001 - cancelling is best effort; finished meanwhile, or unknown to the cluster: nothing to do
                pass

    def close(self, wait: bool = True) -> None:  # noqa: ARG002 - the Runner protocol
        return None  # Ray's connection belongs to the user (ray.init / ray.shutdown)
