"""Running a parallel block's graph: claims, dispatch, recording as results arrive.

The driver (this process) is the only one that reads and writes the store: workers get argument
values and return results, which the driver hashes, serializes and records with the engine's
``complete``, committing after each round of results, so what finished is saved whatever happens
to the rest. (A worker returns its result once; the driver serializes it once, for storage.)

A node is dispatched when it can run:
- its inputs are all computed: it is prepared again with the real input refs (its content lookup
  may now find it, or find a call with equal input values to re-stamp: then it is not run);
- or, on Dask, its inputs are computed or running: it is submitted with the running inputs'
  futures, and Dask runs it when they finish. Its content lookup happens when it completes.

Before a node is submitted it is claimed in the store (see ``mandala.backends.claims``); a node
claimed by another process waits for that process's result in the store, or takes the call over
when the claim's lease expires. Claims are released once the results are committed.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from mandala.engine.outputs import split_outputs
from mandala.errors import OpCallError, OutputMismatchError
from mandala.parallel.executors import make_runner
from mandala.parallel.graph import (
    FINISHED,
    CallFailure,
    Node,
    NodeState,
    expected_output_names,
    named_outputs,
)
from mandala.parallel.leases import ClaimKeeper, Claims, NoClaims
from mandala.parallel.pending import fail, identifying, resolve
from mandala.parallel.tasks import TRACEBACK_ATTRIBUTE, Task, pending_inputs, task_for
from mandala.ui.progress import BatchCounts, open_progress

if TYPE_CHECKING:
    from mandala.backends.sql import SqlBackend
    from mandala.engine.executor import Engine

__all__ = ["Scheduler", "ScheduledBatch", "BatchStorage"]

logger = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.5
"""Longest wait for results when nothing else needs attention (keeps Ctrl-C responsive)."""

_MIN_ROUND_S = 0.1
"""Shortest time between two rounds of recording results, while tasks are still running."""


class BatchStorage(Protocol):
    """What a parallel block (its batch and its scheduler) uses of the ``Storage`` facade, which
    sits above this package."""

    backend: SqlBackend

    def commit(self) -> None: ...

    @property
    def versioned(self) -> bool: ...

    def sync_code(self) -> list[Any]: ...


class ScheduledBatch(Protocol):
    """What the scheduler uses of the batch it runs (``mandala.parallel.batch.Batch``, which
    constructs the scheduler when its block ends)."""

    storage: BatchStorage
    engine: Engine
    """The engine of the storage (``Storage.parallel`` passes it)."""
    nodes: list[Node]
    producers: dict[bytes, Node]
    """History id of each pending output -> the node that computes it."""
    hits: int
    counts: BatchCounts
    """Set by the scheduler as calls change state."""
    executor: Any
    progress: bool | None
    max_workers: int | None
    lease_s: float
    poll_s: float


class Scheduler:
    """Runs the nodes of one batch to completion (see the module docstring)."""

    def __init__(self, batch: ScheduledBatch) -> None:
        self.batch = batch
        self.storage = batch.storage
        self.engine = batch.engine
        self.backend = batch.storage.backend
        self.nodes = batch.nodes
        self.poll_s = batch.poll_s
        self.claims: Claims = (
            NoClaims() if self.backend.is_memory else ClaimKeeper(self.backend, batch.lease_s)
        )
        self.counts = {state: 0 for state in NodeState}
        self.counts[NodeState.WAITING] = len(self.nodes)
        self.ready: deque[Node] = deque()
        self.elsewhere: list[Node] = []
        self.running: dict[Any, Node] = {}
        self.finished_round: list[Node] = []
        self.finishable: deque[Node] = deque()
        """Nodes whose task finished and whose inputs are recorded: their result can be."""
        self.runner: Any = None
        self.display: Any = None
        self._last_poll = 0.0
        self._last_round = 0.0

    # ------------------------------------------------------------------ main loop

    def run(self) -> None:
        finished = False
        try:
            self.display = open_progress(self.batch.progress)
            self.runner = make_runner(self.batch.executor, self.batch.max_workers)
            self.claims.start()
            self._show()
            for node in self.nodes:
                if node.unresolved == 0 or self._submittable_with_futures(node):
                    self.ready.append(node)
            while True:
                self._dispatch()
                if self.finishable:
                    while self.finishable:
                        self._finish(self.finishable.popleft())
                    continue
                self._end_round()
                if not self.running and not self.elsewhere:
                    break
                self._collect(self.poll_s if self.elsewhere else _IDLE_WAIT_S)
                if self.elsewhere and time.monotonic() - self._last_poll >= self.poll_s:
                    self._poll_elsewhere()
            stuck = [node for node in self.nodes if node.state not in FINISHED]
            if stuck:
                raise RuntimeError(
                    f"parallel block: {len(stuck)} calls were never run (e.g. {stuck[0]!r}); "
                    "please report this as a bug"
                )
            finished = True
        except BaseException as error:
            self._abandon(error)
            raise
        finally:
            try:
                self.claims.stop()
            finally:
                if self.runner is not None:
                    self.runner.close(wait=finished)
                if self.display is not None:
                    self.display.close()

    def _end_round(self) -> None:
        """Commit what finished, then release its claims (in this order: whoever wins a
        released claim must find the result stored)."""
        if self.finished_round:
            self.storage.commit()
            self.claims.release([node.history for node in self.finished_round])
            self.finished_round = []
        self._show()

    def _abandon(self, error: BaseException) -> None:
        """Stop on an interruption or an internal error: cancel what runs, keep what finished."""
        futures = list(self.running)
        if futures and self.runner is not None:
            try:
                self.runner.cancel(futures)
            except Exception:
                logger.warning("cancelling the running calls failed", exc_info=True)
        for node in self.nodes:
            if node.state not in FINISHED:
                self._fail(node, error, "", quiet=True)
        try:
            self.storage.commit()
        except Exception:
            logger.warning("committing the finished calls failed", exc_info=True)

    # ------------------------------------------------------------------ states

    def _set(self, node: Node, state: NodeState) -> None:
        self.counts[node.state] -= 1
        self.counts[state] += 1
        node.state = state

    def _show(self) -> None:
        c = self.counts
        counts = BatchCounts(
            total=len(self.nodes) + self.batch.hits,
            pending=c[NodeState.WAITING] + c[NodeState.CLAIMED_ELSEWHERE],
            running=c[NodeState.RUNNING],
            done=c[NodeState.DONE],
            failed=c[NodeState.FAILED],
            from_store=c[NodeState.FROM_STORE] + self.batch.hits,
            not_run=c[NodeState.NOT_RUN],
        )
        self.batch.counts = counts
        self.display.update(counts)

    def _submittable_with_futures(self, node: Node) -> bool:
        return (
            self.runner.supports_dependencies
            and node.leader is None
            and node.unsubmitted == 0
            and node.state is NodeState.WAITING
        )

    def _count_submitted(self, node: Node) -> None:
        """``node`` is running or resolved: dependents may now be submitted with its future."""
        if node.counted_submitted:
            return
        node.counted_submitted = True
        for dependent in node.dependents:
            if dependent.leader is node:
                continue
            dependent.unsubmitted -= 1
            if self._submittable_with_futures(dependent) and dependent.unresolved:
                self.ready.append(dependent)

    def _resolve(self, node: Node, returned: Any, state: NodeState) -> None:
        """The node's results are in the store (``returned`` as the op call returns them)."""
        if node.state in FINISHED:
            raise RuntimeError(f"parallel block: {node!r} finished twice; please report this bug")
        names = list(node.outputs)
        for name, real in named_outputs(node.op, names, returned).items():
            resolve(node.outputs[name], real)
        self._set(node, state)
        self.finished_round.append(node)
        self._count_submitted(node)
        for dependent in node.dependents:
            dependent.unresolved -= 1
            if dependent.unresolved:
                continue
            if dependent.state is NodeState.WAITING:
                self.ready.append(dependent)
            elif dependent.state is NodeState.RUNNING and dependent.outcome is not None:
                self.finishable.append(dependent)

    def _fail(self, node: Node, error: BaseException, trace: str, quiet: bool = False) -> None:
        """The node failed; its dependents (transitively) are not run."""
        if not quiet:
            text = getattr(error, TRACEBACK_ATTRIBUTE, None) or trace
            node.failure = CallFailure(node.op.name, node.history.hex(), error, text)
            reason = f"its call failed ({type(error).__name__}: {error})"
            self._set(node, NodeState.FAILED)
        else:
            reason = f"the parallel block stopped ({type(error).__name__})"
            self._set(node, NodeState.NOT_RUN)
        for ref in node.outputs.values():
            fail(ref, reason)
        self.finished_round.append(node)
        stack = list(node.dependents)
        while stack:
            dependent = stack.pop()
            if dependent.state in FINISHED:
                continue
            if dependent.state is NodeState.RUNNING and dependent.future is not None:
                self.running.pop(dependent.future, None)
                self.runner.cancel([dependent.future])
            if dependent in self.elsewhere:
                self.elsewhere.remove(dependent)
            self._set(dependent, NodeState.NOT_RUN)
            for ref in dependent.outputs.values():
                fail(ref, f"an input of its call was not computed ({reason})")
            self.finished_round.append(dependent)
            stack.extend(dependent.dependents)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self) -> None:
        """Submit every ready node (after preparing it again and claiming it)."""
        while self.ready:
            to_claim: list[Node] = []
            chosen: set[int] = set()
            while self.ready:
                node = self.ready.popleft()
                # A node can be queued twice (its inputs submitted, then computed): it stays
                # WAITING until claimed, so it is taken once here.
                if node.state is not NodeState.WAITING or node.index in chosen:
                    continue
                chosen.add(node.index)
                if (
                    node.unresolved == 0
                    and (node.identified_only or node.leader is not None)
                    and not self._prepare_again(node)
                ):
                    continue
                to_claim.append(node)
            if to_claim:
                self._claim_and_submit(to_claim)

    def _prepare_again(self, node: Node) -> bool:
        """Look the node up with its computed inputs; True if it still has to run."""
        try:
            found, call = self.engine.prepare(node.op, node.args, node.kwargs)
        except Exception as error:  # noqa: BLE001 - a call failed: ParallelCallError reports it
            self._fail(node, error, traceback.format_exc())
            return False
        if call is None:
            self._resolve(node, found, NodeState.FROM_STORE)
            return False
        if (
            call.history != node.history
            and self.engine.versioning is not None
            and node.identified_only
        ):
            # Versioned: the pending inputs' history ids were provisional, and are real now.
            if node.owns_claim:
                self.claims.release([node.history])
                node.owns_claim = False
            node.history = call.history
        if call.history != node.history:
            changed = OpCallError(
                f"op {node.op.name!r}: the call's history id changed between the call in the block "
                f"({node.history.hex()}) and now ({call.history.hex()}): was an argument modified "
                "after the call was made? Arguments of calls in a parallel block are read when "
                "the block ends; pass copies of objects you go on changing"
            )
            self._fail(node, changed, "")
            return False
        node.call = call
        node.identified_only = False
        node.leader = None
        return True

    def _claim_and_submit(self, nodes: list[Node]) -> None:
        unclaimed = [node for node in nodes if not node.owns_claim]
        won = self.claims.claim([node.history for node in unclaimed])
        for node in unclaimed:
            node.owns_claim = node.history in won
        # A claim won after its previous owner finished must find the stored result.
        mine = [node for node in nodes if node.owns_claim]
        stored = self.backend.calls.has_calls([node.history for node in mine]) if mine else set()
        tasks: list[tuple[Task, list[Any], str]] = []
        submitted: list[Node] = []
        for node in nodes:
            if not node.owns_claim:
                self._set(node, NodeState.CLAIMED_ELSEWHERE)
                self.elsewhere.append(node)
                continue
            if node.history in stored:
                self._resolve_from_store(node)
                continue
            try:
                task, upstream = self._task(node)
            except Exception as error:  # noqa: BLE001 - a call failed: ParallelCallError reports it
                self._fail(node, error, traceback.format_exc())
                continue
            tasks.append((task, upstream, f"{node.op.name}-{node.history.hex()[:12]}"))
            submitted.append(node)
        if not tasks:
            return
        try:
            futures = self.runner.submit(tasks)
        except Exception:  # noqa: BLE001 - any failure: the tasks are then sent one by one
            # One task cannot be sent (e.g. an argument that does not pickle): find which.
            futures = []
            for node, entry in zip(list(submitted), tasks):
                try:
                    futures.extend(self.runner.submit([entry]))
                except Exception as error:  # noqa: BLE001 - a call failed: ParallelCallError reports it
                    submitted.remove(node)
                    self._fail(node, error, traceback.format_exc())
        for node, future in zip(submitted, futures):
            node.future = future
            self.running[future] = node
            self._set(node, NodeState.RUNNING)
        for node in submitted:
            self._count_submitted(node)

    def _task(self, node: Node) -> tuple[Task, list[Any]]:
        if not node.identified_only:
            return task_for(self.engine, node.handle, node.call), []
        # Dask: inputs still running are passed as the futures of their calls.
        producers = self.batch.producers
        positions: dict[int, int] = {}
        upstream_of: dict[bytes, int] = {}
        upstream: list[Any] = []
        handles = []
        for ref in pending_inputs(node.call.passed):
            producer = producers[ref.history_key]
            if producer.index not in positions:
                positions[producer.index] = len(upstream)
                upstream.append(producer.future)
                handles.append(producer.handle)
            upstream_of[ref.history_key] = positions[producer.index]
        return task_for(self.engine, node.handle, node.call, upstream_of, tuple(handles)), upstream

    def _resolve_from_store(self, node: Node) -> None:
        """Another process stored the call: take its outputs from the store."""
        try:
            with identifying():
                found, call = self.engine.prepare(node.op, node.args, node.kwargs)
        except Exception as error:  # noqa: BLE001 - a call failed: ParallelCallError reports it
            self._fail(node, error, traceback.format_exc())
            return
        if call is not None:  # the store lost it meanwhile (dropped): compute it after all
            self._set(node, NodeState.WAITING)
            self.ready.append(node)
            return
        self._resolve(node, found, NodeState.FROM_STORE)

    def _poll_elsewhere(self) -> None:
        """Look for the results of calls claimed by others; claim those whose lease expired."""
        self._last_poll = time.monotonic()
        waiting = [node for node in self.elsewhere if node.state is NodeState.CLAIMED_ELSEWHERE]
        self.elsewhere = []
        if not waiting:
            return
        stored = self.backend.calls.has_calls([node.history for node in waiting])
        rest = []
        for node in waiting:
            if node.history in stored:
                self._resolve_from_store(node)
            else:
                rest.append(node)
        won = self.claims.claim([node.history for node in rest])
        for node in rest:
            if node.history in won:
                node.owns_claim = True
                self._set(node, NodeState.WAITING)
                self.ready.append(node)
            else:
                self.elsewhere.append(node)

    # ------------------------------------------------------------------ completion

    def _collect(self, timeout: float) -> None:
        """Wait for finished tasks (up to ``timeout`` for the first), then record them all.

        A round (fetching results, recording, committing, releasing claims) has a fixed cost,
        and fetching from Dask loads its scheduler and workers: while other tasks still run,
        results are let to accumulate until ``_MIN_ROUND_S`` after the previous round.
        """
        futures = self.runner.wait(self.running, timeout)
        if not futures:
            return
        pause = self._last_round + _MIN_ROUND_S - time.monotonic()
        if pause > 0 and len(futures) < len(self.running):
            time.sleep(pause)
            seen = set(futures)
            futures += [f for f in self.runner.wait(self.running, 0) if f not in seen]
        self._last_round = time.monotonic()
        nodes = []
        for future in futures:
            node = self.running.pop(future, None)
            if node is not None and node.state is NodeState.RUNNING:
                nodes.append(node)
        if not nodes:
            return
        outcomes = self.runner.outcomes([node.future for node in nodes])
        for node, outcome in sorted(zip(nodes, outcomes), key=lambda pair: pair[0].index):
            node.outcome = outcome
            if node.unresolved == 0:
                self.finishable.append(node)
            # else: held until its inputs are recorded (see _resolve)

    def _finish(self, node: Node) -> None:
        """Record a finished task's result (or failure)."""
        if node.state is not NodeState.RUNNING or node.outcome is None:
            return  # not run after all (an input failed meanwhile)
        ok, value = node.outcome
        node.outcome = None
        node.future = None
        if not ok:
            self._fail(node, value, "")
            return
        result, started_at, duration, trace = value
        try:
            self._check_outputs(node, result)
            if node.identified_only and not self._prepare_again(node):
                return  # found in the store once its inputs were known
            resolver = self.engine.versioning
            version = resolver.resolve(node.op, trace) if resolver is not None else None
            returned = self.engine.complete(node.call, result, started_at, duration, version)
        except Exception as error:  # noqa: BLE001 - a call failed: ParallelCallError reports it
            self._fail(node, error, traceback.format_exc())
            return
        self._resolve(node, returned, NodeState.DONE)

    def _check_outputs(self, node: Node, result: Any) -> None:
        names = [name for name, _, _ in split_outputs(node.op, result)]
        expected = expected_output_names(node.op)
        if names != expected:
            raise OutputMismatchError(
                f"op {node.op.name!r} returned the outputs {names}, but in a parallel block a call's "
                f"outputs must be known before it runs, and {expected} were expected (from "
                "output_names, nout or a tuple return annotation); declare output_names=[...] "
                "or nout=..."
            )
