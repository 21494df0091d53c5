"""The graph a parallel block collects: one node per distinct call that must be computed.

Nodes are created in call order, which is a topological order (a call can only take refs that
exist, so its inputs' nodes were created before it). Dependencies are the nodes whose pending
outputs a call takes; a *follower* is a call whose input values equal those of an earlier node
(same content id, other history): it is never run, but re-stamped from that node's results once
they are stored, as a serial run would do.
"""

from __future__ import annotations

import enum
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mandala.engine.outputs import order_outputs, output_order
from mandala.parallel.pending import PendingRef

if TYPE_CHECKING:
    from mandala.engine.declaration import OpDeclaration
    from mandala.engine.executor import PendingCall
    from mandala.parallel.tasks import OpHandle

__all__ = [
    "NodeState",
    "Node",
    "CallFailure",
    "FINISHED",
    "expected_output_names",
    "named_outputs",
]


class NodeState(enum.Enum):
    WAITING = "waiting"
    """For its inputs, or for a claim; not submitted."""
    CLAIMED_ELSEWHERE = "claimed elsewhere"
    """Another process holds a live claim on the call: its result is awaited in the store."""
    RUNNING = "running"
    DONE = "done"
    FROM_STORE = "from store"
    FAILED = "failed"
    NOT_RUN = "not run"
    """An input failed."""


FINISHED = frozenset({NodeState.DONE, NodeState.FROM_STORE, NodeState.FAILED, NodeState.NOT_RUN})


@dataclass(frozen=True)
class CallFailure:
    """A call of a parallel block that failed: which, with what, and where."""

    op_name: str
    history_id: str
    error: BaseException
    traceback: str
    """The traceback where the error happened (the worker's, for an error in the op)."""


class Node:
    """One call of the block to compute (or to re-stamp, for a follower)."""

    def __init__(
        self,
        index: int,
        op: OpDeclaration,
        handle: OpHandle,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        call: PendingCall,
        deps: list[Node],
        leader: Node | None,
        outputs: dict[str, PendingRef],
    ) -> None:
        self.index = index
        self.op = op
        self.handle = handle
        self.args = args
        self.kwargs = kwargs
        self.call = call
        """As prepared; for a node with pending inputs, its content ids are stand-ins until
        the node is prepared again with the computed inputs."""
        self.history = call.history
        self.deps = deps
        self.leader = leader
        self.outputs = outputs
        self.dependents: list[Node] = []
        self.state = NodeState.WAITING
        self.unresolved = len(deps) + (leader is not None)
        """Upstream nodes (and leader) not resolved yet."""
        self.unsubmitted = len(deps)
        """Upstream nodes neither running nor resolved (a Dask task can take running ones)."""
        self.counted_submitted = False
        self.identified_only = bool(deps)
        """True while ``call`` carries stand-in content ids (inputs not computed yet)."""
        self.owns_claim = False
        self.future: Any = None
        self.outcome: tuple[bool, Any] | None = None
        """A finished task's outcome, held until the node's inputs are resolved."""
        self.failure: CallFailure | None = None
        for dep in deps:
            dep.dependents.append(self)
        if leader is not None:
            leader.dependents.append(self)

    @property
    def returned(self) -> Any:
        """What the op call returned in the block: one ref or a tuple, as a serial call."""
        return order_outputs(self.op, dict(self.outputs))

    def __repr__(self) -> str:
        return f"Node({self.op.name}, {self.history.hex()[:8]}, {self.state.value})"


def expected_output_names(op: OpDeclaration) -> list[str]:
    """The names of the outputs a call of ``op`` will have, known before it runs.

    From ``output_names`` or ``nout``; for ``nout="auto"`` without names, from a fixed-length
    ``tuple[...]`` return annotation, else one output (a serial call decides from the returned
    value; a parallel block must decide before, and reports a call that disagrees).
    """
    names = op.output_names
    nout = op.nout
    if isinstance(nout, int):
        count = nout
    elif names is not None:
        count = len(names)
    else:
        count = _annotated_tuple_length(op.plan.return_annotation) or 1
    return [
        names[i] if names is not None and i < len(names) else f"output_{i}" for i in range(count)
    ]


def _annotated_tuple_length(annotation: Any) -> int | None:
    if typing.get_origin(annotation) is not tuple:
        return None
    args = typing.get_args(annotation)
    if not args or Ellipsis in args:
        return None
    return len(args)


def named_outputs(op: OpDeclaration, names: list[str], returned: Any) -> dict[str, Any]:
    """Output refs by name, from what a call returned (one ref, or a tuple in output order)."""
    ordered = sorted(names, key=lambda name: output_order(op, name))
    if len(ordered) == 1 and not isinstance(returned, tuple):
        return {ordered[0]: returned}
    return dict(zip(ordered, returned))
