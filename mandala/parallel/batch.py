"""``with storage.parallel(...) as batch:``: collect op calls, then compute them in parallel.

Inside the block each op call is identified and looked up at once, as in a ``with storage:``
block: a stored call returns its refs (and never leaves this process); a missing one returns
:class:`~mandala.parallel.pending.PendingRef` placeholders and becomes a node of the block's
graph. Equal calls (same history id) made twice in the block are one node. Pending refs can be
passed to further calls: the history id of such a call is known (it derives from the inputs'
history ids), so it is looked up by history and deduplicated like any other; only its content
lookup waits until its inputs are computed.

When the block ends the graph runs (see :mod:`mandala.parallel.scheduler`) and the pending refs
become ordinary refs. If calls failed, :class:`~mandala.errors.ParallelCallError` is raised after
every other result has been saved.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mandala.engine.context import Mode, active_stack, pop_frame, push_frame
from mandala.errors import ContextError, OpCallError, ParallelCallError
from mandala.hashing import ids
from mandala.model.refs import DictRef, ListRef, SetRef
from mandala.parallel.executors import check_executor
from mandala.parallel.graph import Node, NodeState, expected_output_names
from mandala.parallel.pending import PendingRef, fail, identifying, refuse
from mandala.parallel.scheduler import BatchStorage, Scheduler
from mandala.parallel.tasks import OpHandle, pending_inputs
from mandala.ui.progress import BatchCounts

if TYPE_CHECKING:
    from mandala.engine.declaration import OpDeclaration
    from mandala.engine.executor import Engine
    from mandala.engine.op import Op

__all__ = ["Batch", "BatchStorage"]


class Batch:
    """A block of op calls computed in parallel when it ends; see ``Storage.parallel``.

    Attributes:
        engine: the storage's engine, which identifies, looks up and records the calls.
        nodes: the distinct calls to compute, in call order.
        hits: how many calls of the block were found in the store when made.
        counts: how many calls are pending, running, done, failed, found in the store.
    """

    def __init__(
        self,
        storage: BatchStorage,
        executor: Any = None,
        *,
        engine: Engine,
        progress: bool | None = None,
        max_workers: int | None = None,
        lease_s: float = 60.0,
        poll_s: float = 0.2,
    ) -> None:
        if not lease_s > 0:
            raise ValueError(f"lease_s must be a positive number of seconds, got {lease_s!r}")
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers!r}")
        check_executor(executor)
        self.storage = storage
        self.engine = engine
        self.executor = executor
        self.progress = progress
        self.max_workers = max_workers
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.nodes: list[Node] = []
        self.hits = 0
        self.counts = BatchCounts(0, 0, 0, 0, 0, 0)
        """Calls by state, kept up to date while the block runs (final once it ended)."""
        self._by_history: dict[bytes, Node] = {}
        self._by_content: dict[bytes, Node] = {}
        self.producers: dict[bytes, Node] = {}
        """History id of each pending output -> the node that computes it."""
        self._handles: dict[int, OpHandle] = {}
        self._token: Any = None
        self._used = False

    # ------------------------------------------------------------------ the block

    def __enter__(self) -> Batch:
        if self._used:
            raise ContextError("a parallel block runs once; call storage.parallel() again")
        if any(frame.mode is Mode.BATCH for frame in active_stack()):
            raise ContextError(
                "storage.parallel() blocks do not nest: end the outer block first (its calls "
                "run when it ends)"
            )
        storage = self.storage
        if storage.versioned and not any(frame.engine is self.engine for frame in active_stack()):
            # As on entering `with storage:`: the driver settles code changes (asking if need
            # be) before any call is identified; workers never do.
            storage.sync_code()
        self._used = True
        self._token = push_frame(self.engine, Mode.BATCH, self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        pop_frame(self._token)
        if exc_type is not None:
            for node in self.nodes:
                for ref in node.outputs.values():
                    fail(ref, "the parallel block raised before its calls ran")
            return
        self.run()

    def run(self) -> None:
        """Compute the collected calls (what leaving the block does).

        Raises:
            ParallelCallError: some calls failed; every other result was saved.
        """
        if not self.nodes:
            self.storage.commit()
            return
        scheduler = Scheduler(self)
        scheduler.run()
        failures = [node.failure for node in self.nodes if node.failure is not None]
        if failures:
            not_run = [node.history.hex() for node in self.nodes if node.state is NodeState.NOT_RUN]
            first = failures[0]
            message = (
                f"{len(failures)} of {len(self.nodes)} calls computed by the parallel block "
                f"failed"
                + (f", and {len(not_run)} were not run because an input failed" if not_run else "")
                + "; the other results are saved, and re-running the block computes only what is"
                f" missing. First failure: op {first.op_name!r}, call {first.history_id}: "
                f"{type(first.error).__name__}: {first.error}\n{first.traceback}"
            )
            raise ParallelCallError(message, failures, not_run) from first.error

    # ------------------------------------------------------------------ collecting calls

    def call(self, op: OpDeclaration, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """An op call inside the block: its refs if stored, else pending refs (see module doc).

        Raises:
            OpCallError: the op has ``nout="var"`` (its outputs are unknown until it runs), or
                a pending ref is an element of an ``MSet`` argument.
            PendingResultError: an input is a ref of a call that failed or of another block.
        """
        if op.nout == "var":
            raise OpCallError(
                f"op {op.name!r} has nout='var': how many outputs a call has is known only after "
                "it runs, so it cannot be called inside storage.parallel(); call it in a `with "
                "storage:` block, or declare nout/output_names"
            )
        engine = self.engine
        with identifying():
            found, call = engine.prepare(op, args, kwargs)
        if call is None:
            self.hits += 1
            return found
        node = self._by_history.get(call.history)
        if node is not None:
            return node.returned
        _refuse_pending_set_elements(op, call.passed)
        deps: dict[int, Node] = {}
        for ref in pending_inputs(call.passed):
            producer = self.producers.get(ref.history_key)
            if producer is None:
                refuse(ref, "passing it to an op in another parallel block")
            deps[producer.index] = producer
        leader = None
        if not deps:
            leader = self._by_content.get(call.content)
        index = len(self.nodes)
        outputs = {
            name: PendingRef.create(
                ids.output_history_key(call.history, name),
                op.name,
                name,
                provisional=call.pre_call_key is not None,
            )
            for name in expected_output_names(op)
        }
        node = Node(
            index,
            op,
            self._handle(op),
            args,
            kwargs,
            call,
            [deps[i] for i in sorted(deps)],
            leader,
            outputs,
        )
        self.nodes.append(node)
        self._by_history[call.history] = node
        if not deps and leader is None:
            self._by_content[call.content] = node
        for ref in outputs.values():
            self.producers[ref.history_key] = node
        return node.returned

    def map(self, op: Op, *iterables: Iterable[Any]) -> list[Any]:
        """``[op(*args) for args in zip(*iterables)]`` in this block."""
        return [self.call(op, tuple(args), {}) for args in zip(*iterables)]

    def _handle(self, op: OpDeclaration) -> OpHandle:
        handle = self._handles.get(id(op))
        if handle is None:
            handle = self._handles[id(op)] = OpHandle(op)
        return handle

    def __repr__(self) -> str:
        return f"Batch({len(self.nodes)} calls to compute, {self.hits} found in the store)"


def _refuse_pending_set_elements(op: OpDeclaration, passed: dict[str, Any]) -> None:
    """A set's ids depend on the order of its elements' content ids, unknown while pending.

    Raises:
        OpCallError: an ``MSet`` argument (or a set nested in a collection) holds a pending ref.
    """
    for name, value in passed.items():
        stack: list[tuple[Any, bool]] = [(value, False)]
        while stack:
            item, in_set = stack.pop()
            cls = type(item)
            if cls is PendingRef:
                if in_set:
                    raise OpCallError(
                        f"op {op.name!r}, argument {name!r}: an element of an MSet is computed "
                        "by the parallel block, and a set's identity depends on its elements' "
                        "values; compute the elements in one block and call the op in a later one"
                    )
            elif isinstance(item, (ListRef, DictRef, SetRef)) and item.obj is not None:
                elements = item.obj.values() if cls is DictRef else item.obj
                stack.extend((element, in_set or cls is SetRef) for element in elements)
            elif cls is list or cls is tuple:
                stack.extend((element, in_set) for element in item)
            elif cls is dict:
                stack.extend((element, in_set) for element in item.values())
