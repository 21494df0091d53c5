"""What travels to a worker: the op, the argument values, and where upstream results go.

A :class:`Task` is self-contained and small: the op travels by import path when the worker can
import it (``module.qualname``), else by value with cloudpickle; arguments travel as values
(refs are unwrapped on the driver, which is the only process that reads the store). An argument
that is the output of a call still running elsewhere is a *slot*: the executor passes the upstream
call's result to :func:`run_task` (Dask resolves futures given as arguments, and tracks the
dependency itself), and the worker puts the right output into the slot.

The worker returns ``(result, started_at, duration)`` once; the driver hashes and serializes the
result for storage. Nothing on the worker touches the store.
"""

from __future__ import annotations

import pickle
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mandala.engine.context import Mode, pop_frame, push_frame
from mandala.engine.outputs import split_outputs
from mandala.errors import SerializationError
from mandala.model.refs import DictRef, ListRef, Ref, SetRef
from mandala.parallel.pending import PendingRef

if TYPE_CHECKING:
    from mandala.engine.declaration import OpDeclaration
    from mandala.engine.executor import Engine, PendingCall
    from mandala.engine.op import Op

__all__ = [
    "OpHandle",
    "Slot",
    "Task",
    "run_task",
    "run_task_with_upstream",
    "pending_inputs",
    "task_for",
    "WorkerFailure",
    "TRACEBACK_ATTRIBUTE",
]

TRACEBACK_ATTRIBUTE = "_mandala_worker_traceback"
"""Attribute set on an exception raised by an op on a worker: the worker's traceback as text."""


class OpHandle:
    """An op as sent to a worker (``handle.op`` is the op on either side).

    Pickled by import path when ``module.qualname`` names this very op in an importable module
    (cheap, and the worker runs the code it has); otherwise (ops of ``__main__``, of a notebook,
    defined inside functions) by value with cloudpickle, which Dask installs. Unpickling (or
    copying) gives an ``OpHandle`` again, so that whatever copies tasks keeps this choice.

    Args:
        op: the op.
        module, qualname: its import path (found from the op when ``qualname`` is None;
            ``module`` None when it has none).
        by_value: the op's pickle by value, when already made (an unpickled handle keeps it).
    """

    __slots__ = ("op", "module", "qualname", "_by_value")

    def __init__(
        self,
        op: OpDeclaration,
        module: str | None = None,
        qualname: str | None = None,
        by_value: bytes | None = None,
    ) -> None:
        self.op = op
        if qualname is None:
            module, qualname = _import_path(op)
        self.module = module
        self.qualname = qualname
        self._by_value = by_value

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self.module is not None:
            return _handle_by_path, (self.module, self.qualname)
        if self._by_value is None:
            self._by_value = _dumps_by_value(self.op)
        if not self._by_value:  # no cloudpickle: a worker process finds __main__'s ops by name
            return _handle_by_path, ("__main__", self.qualname)
        return _handle_by_value, (self._by_value,)


def _handle_by_path(module_name: str, qualname: str) -> OpHandle:
    return OpHandle(_import_op(module_name, qualname), module_name, qualname)


def _handle_by_value(data: bytes) -> OpHandle:
    return OpHandle(pickle.loads(data), None, "", by_value=data)


def _import_path(op: OpDeclaration) -> tuple[str | None, str]:
    func = op.func
    module_name = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "") or ""
    if not module_name or module_name == "__main__" or "<locals>" in qualname:
        return None, qualname
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return (module_name, qualname) if found is op else (None, qualname)


def _dumps_by_value(op: OpDeclaration) -> bytes:
    """The op pickled by value; empty for an op of ``__main__`` when cloudpickle is missing."""
    try:
        import cloudpickle
    except ImportError:
        cloudpickle = None
    if cloudpickle is None:
        if op.func.__module__ == "__main__" and "<locals>" not in op.func.__qualname__:
            return b""
        raise SerializationError(
            f"op {op.name!r} cannot be sent to worker processes: it is not importable by name "
            f"(defined in {op.func.__qualname__!r} of {op.func.__module__!r}); define it at module "
            "level, or pip install cloudpickle to send it by value"
        )
    try:
        data: bytes = cloudpickle.dumps(op)
    except Exception as error:
        raise SerializationError(
            f"op {op.name!r} cannot be sent to worker processes: pickling it by value failed "
            f"({type(error).__name__}: {error}); define it at module level in an importable module"
        ) from error
    return data


def _import_op(module_name: str, qualname: str) -> Op:
    import importlib

    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    op: Op = found
    return op


def _as_op(op: OpHandle) -> OpDeclaration:
    return op.op


@dataclass(frozen=True)
class Slot:
    """Where an upstream output goes: ``values[parameter]`` then down ``path`` (indices/keys)."""

    parameter: str
    path: tuple[Any, ...]
    upstream: int
    """Position of the upstream result among the arguments after the task."""
    output_name: str


@dataclass(frozen=True)
class Task:
    """One call to run on a worker.

    ``values`` are the function's arguments by parameter (as :meth:`Engine.argument_values`
    gives them), except at ``slots``, filled on the worker from ``upstream`` results.
    """

    op: OpHandle
    values: dict[str, Any]
    slots: tuple[Slot, ...] = ()
    upstream_ops: tuple[OpHandle, ...] = ()
    """The op of each upstream result (to split its outputs)."""
    tracing: Any = None
    """For a versioned storage: how to trace the call (a ``TracingSpec``); the worker returns
    what the call used, and the driver resolves its version (workers never read the code
    state, let alone ask about changes)."""


class WorkerFailure(Exception):
    """An op raised on a worker an exception that cannot travel back (it does not pickle)."""


def run_task(task: Task, *upstream: tuple[Any, ...]) -> tuple[Any, float, float, Any]:
    """Run the call on this worker; returns ``(result, started_at, duration, trace)`` (the
    trace is None unless the task is versioned).

    Nested op calls in the body are plain function calls (as in a memoized call on the
    driver). An exception propagates with the worker's traceback attached as text.
    """
    op = _as_op(task.op)
    values = task.values
    if task.slots:
        _fill_slots(task, values, upstream)
    args, kwargs = op.plan.layout(values)
    token = push_frame(None, Mode.PLAIN)
    started_at = time.time()
    start = time.perf_counter()
    trace = None
    try:
        if task.tracing is not None:
            result, trace = task.tracing.run(op, args, kwargs)
        else:
            result = op.func(*args, **kwargs)
    except Exception as error:
        text = traceback.format_exc()
        try:
            setattr(error, TRACEBACK_ATTRIBUTE, text)
            pickle.dumps(error)
        except Exception:  # noqa: BLE001 - any failure to pickle the op's error sends it as text
            raise WorkerFailure(f"{type(error).__name__}: {error}\n{text}") from None
        raise
    finally:
        pop_frame(token)
    return result, started_at, time.perf_counter() - start, trace


def run_task_with_upstream(
    task: Task, upstream: tuple[tuple[Any, ...], ...]
) -> tuple[Any, float, float, Any]:
    """:func:`run_task` with the upstream results as one tuple (the shape ``client.map`` takes)."""
    return run_task(task, *upstream)


def _fill_slots(task: Task, values: dict[str, Any], upstream: tuple[Any, ...]) -> None:
    outputs: dict[int, dict[str, Any]] = {}
    for slot in task.slots:
        split = outputs.get(slot.upstream)
        if split is None:
            op = _as_op(task.upstream_ops[slot.upstream])
            result = upstream[slot.upstream][0]
            split = {name: value for name, value, _ in split_outputs(op, result)}
            outputs[slot.upstream] = split
        value = split[slot.output_name]
        if not slot.path:
            values[slot.parameter] = value
            continue
        container = values[slot.parameter]
        for step in slot.path[:-1]:
            container = container[step]
        container[slot.path[-1]] = value


# ---------------------------------------------------------------------------- driver side


def pending_inputs(passed: dict[str, Any]) -> Iterator[PendingRef]:
    """The unresolved pending refs among a call's arguments (as the engine passed them: refs,
    collection refs holding element refs, lists/dicts of variadic arguments)."""
    stack = list(passed.values())
    while stack:
        item = stack.pop()
        cls = type(item)
        if cls is PendingRef:
            yield item
        elif cls is ListRef or cls is SetRef or cls is DictRef:
            elements = item.obj
            if elements is not None:
                stack.extend(elements.values() if cls is DictRef else elements)
        elif cls is list or cls is tuple:
            stack.extend(item)
        elif cls is dict:
            stack.extend(item.values())


def task_for(
    engine: Engine,
    handle: OpHandle,
    call: PendingCall,
    upstream_of: dict[bytes, int] | None = None,
    upstream_ops: tuple[OpHandle, ...] = (),
) -> Task:
    """The task of a call; ``upstream_of`` maps the history key of each pending input that will
    be passed as an upstream result to its position (None when every input is computed)."""
    tracing = engine.versioning.tracing_spec() if engine.versioning is not None else None
    if not upstream_of:
        return Task(handle, engine.argument_values(call), tracing=tracing)
    slots: list[Slot] = []
    values: dict[str, Any] = {}
    for parameter in call.op.plan.parameters:
        name = parameter.name
        value = call.passed[name]
        if parameter.is_variadic_positional:
            values[name] = [
                _convert(engine, v, name, (i,), upstream_of, slots) for i, v in enumerate(value)
            ]
        elif parameter.is_variadic_keyword:
            values[name] = {
                k: _convert(engine, v, name, (k,), upstream_of, slots) for k, v in value.items()
            }
        else:
            values[name] = _convert(engine, value, name, (), upstream_of, slots)
    return Task(handle, values, tuple(slots), upstream_ops, tracing)


def _convert(
    engine: Engine,
    value: Any,
    parameter: str,
    path: tuple[Any, ...],
    upstream_of: dict[bytes, int],
    slots: list[Slot],
) -> Any:
    """The value a parameter receives, with a slot (and None) for every pending ref."""
    cls = type(value)
    if cls is PendingRef:
        slots.append(Slot(parameter, path, upstream_of[value.history_key], value.state.output_name))
        return None
    if not isinstance(value, Ref):
        return value
    if (
        (cls is ListRef or cls is DictRef)
        and value.obj is not None
        and any(True for _ in pending_inputs({"": value}))
    ):
        if cls is DictRef:
            return {
                k: _convert(engine, e, parameter, (*path, k), upstream_of, slots)
                for k, e in value.obj.items()
            }
        return [
            _convert(engine, e, parameter, (*path, i), upstream_of, slots)
            for i, e in enumerate(value.obj)
        ]
    return engine.unwrap(value)
