"""Set algebra of frame graphs, node by node and edge by edge, matched by name: ``|``, ``&``,
``-``.

Functions over :class:`~mandala.frames.graph.FrameGraph` objects that return a new graph; the
methods and operators of :class:`~mandala.frames.frame.ComputationFrame` delegate to them (and
check that the frames come from one storage).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mandala.errors import FrameError
from mandala.frames.graph import FrameGraph
from mandala.frames.keys import sorted_unique
from mandala.frames.selection import cleanup, complete, drop_incomplete_calls, drop_unreachable
from mandala.hashing.key_table import key_list

__all__ = ["union", "intersection", "difference"]


def _kind_conflicts(graph: FrameGraph, other: FrameGraph) -> list[str]:
    """Names that are a variable in one graph and a function node (or of another op) in the
    other."""
    return sorted(
        n
        for n in graph.nodes & other.nodes
        if graph.is_var(n) != other.is_var(n)
        or (n in graph.op_by_func and graph.op_by_func[n] != other.op_by_func[n])
    )


def _absorb_facts(graph: FrameGraph, other: FrameGraph) -> None:
    """Make the facts about ``other``'s elements known to ``graph``'s index."""
    if other.index is graph.index:
        return
    index, theirs = graph.index, other.index
    index.add_calls(theirs.calls[c] for calls in other.calls_by_func.values() for c in calls)
    ids = [refs.ids for refs in other.refs_by_var.values()]
    if ids:
        mine = sorted_unique(np.concatenate(ids))
        index.add_refs(
            theirs.ref_table.to_bytes(mine),
            key_list(theirs.refs.content_of(mine)),
            theirs.refs.kinds_of(mine).tolist(),
        )


def union(graph: FrameGraph, others: Sequence[FrameGraph]) -> FrameGraph:
    """Nodes, edges and elements of all the graphs, matched by node name; the variables on an
    edge receive any ref a call of the union needs there, so the result is valid.

    Raises:
        FrameError: a name is a variable in one graph and a function node (or a node of
            another op) in another.
    """
    result = graph.copy()
    for other in others:
        conflicts = _kind_conflicts(result, other)
        if conflicts:
            raise FrameError(
                f"cannot unite frames: nodes {conflicts} are of different kinds (or ops) in "
                "the two frames; rename one side first"
            )
        _absorb_facts(result, other)
        for var, refs in other.refs_by_var.items():
            result.add_var(var)
            result.refs_by_var[var] |= refs
        for func, calls in other.calls_by_func.items():
            result.add_func(func, other.op_by_func[func])
            result.calls_by_func[func] |= calls
        for source, target, label in other.edges():
            result.add_edge(source, target, label)
    complete(result)
    return result


def intersection(graph: FrameGraph, others: Sequence[FrameGraph]) -> FrameGraph:
    """The nodes (of the same kind and op), edges and elements all graphs share."""
    result = graph.copy()
    for other in others:
        shared = (result.nodes & other.nodes) - set(_kind_conflicts(result, other))
        for node in sorted(result.nodes - shared):
            result.remove_node(node)
        theirs = set(other.edges())
        for edge in result.edges():
            if edge not in theirs:
                result.drop_edge(*edge)
        for node in shared:
            result.elements(node).intersection_update(other.elements(node))
    drop_incomplete_calls(result)
    return result


def difference(graph: FrameGraph, other: FrameGraph) -> FrameGraph:
    """``graph`` without the elements ``other`` holds in same-named nodes of the same kind.

    Calls that lost one of their refs are dropped, then what is no longer reachable from the
    remaining sources, then the nodes left empty.
    """
    result = graph.copy()
    for node in result.nodes & other.nodes:
        if result.is_var(node) == other.is_var(node):
            result.elements(node).difference_update(other.elements(node))
    drop_incomplete_calls(result)
    drop_unreachable(result, True, "strong")
    cleanup(result)
    return result
