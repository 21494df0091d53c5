"""Set algebra of frames, node by node and edge by edge, matched by name: ``|``, ``&``, ``-``.

A mixin of :class:`~mandala.frames.frame.ComputationFrame`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mandala.frames.graph import FrameGraph
from mandala.frames.keys import sorted_unique
from mandala.frames.selection import SelectionMixin
from mandala.hashing.key_table import key_list

__all__ = ["AlgebraMixin"]


class AlgebraMixin(SelectionMixin):
    """Union, intersection and difference of ComputationFrames."""

    # ================================================================== set algebra

    def _same_source(self, others: Sequence[Any]) -> None:
        for other in others:
            if not isinstance(other, SelectionMixin):
                raise TypeError(f"expected a ComputationFrame, got {type(other).__name__}")
            if other.source is not self.source:
                raise ValueError(
                    "cannot combine ComputationFrames of different storages; build both from "
                    "the same Storage"
                )

    def _kind_conflicts(self, other: FrameGraph) -> list[str]:
        return sorted(
            n
            for n in self.nodes & other.nodes
            if (n in self.vs) != (n in other.vs)
            or (n in self.fs and self.op_of[n] != other.op_of[n])
        )

    def union(self, *others: Any) -> Any:
        """Nodes, edges and elements of all the frames, matched by node name (``a | b``).

        Call it as ``a.union(b, c)`` or ``ComputationFrame.union(a, b, c)``. The variables on
        an edge receive any ref a call of the union needs there, so the result is valid.

        Raises:
            ValueError: frames of different storages, or a name that is a variable in one
                frame and a function node (or a node of another op) in another.
        """
        self._same_source(others)
        frame = self.copy()
        for other in others:
            conflicts = frame._kind_conflicts(other)
            if conflicts:
                raise ValueError(
                    f"cannot unite frames: nodes {conflicts} are of different kinds (or ops) in "
                    "the two frames; rename one side first"
                )
            frame._absorb_facts(other)
            for var, refs in other.vs.items():
                frame._add_var(var)
                frame.vs[var] |= refs
            for func, calls in other.fs.items():
                frame._add_func(func, other.op_of[func])
                frame.fs[func] |= calls
            for source, target, label in other.edges():
                frame._add_edge(source, target, label)
        frame._complete()
        return frame

    def _absorb_facts(self, other: FrameGraph) -> None:
        """Make the facts about ``other``'s elements known to this frame's index."""
        if other.index is self.index:
            return
        index, theirs = self.index, other.index
        index.add_calls(theirs.calls[c] for calls in other.fs.values() for c in calls)
        ids = [refs.ids for refs in other.vs.values()]
        if ids:
            mine = sorted_unique(np.concatenate(ids))
            index.add_refs(
                theirs.ref_table.to_bytes(mine),
                key_list(theirs.refs.content_of(mine)),
                theirs.refs.kinds_of(mine).tolist(),
            )

    def intersection(self, *others: Any) -> Any:
        """The nodes (of the same kind and op), edges and elements all frames share (``a & b``).

        Raises:
            ValueError: frames of different storages.
        """
        self._same_source(others)
        frame = self.copy()
        for other in others:
            shared = (frame.nodes & other.nodes) - set(frame._kind_conflicts(other))
            for node in sorted(frame.nodes - shared):
                frame._remove_node(node)
            theirs = set(other.edges())
            for edge in frame.edges():
                if edge not in theirs:
                    frame._drop_edge(*edge)
            for node in shared:
                frame._elements(node).intersection_update(other._elements(node))
        frame._drop_incomplete_calls()
        return frame

    def difference(self, other: Any) -> Any:
        """This frame without the elements ``other`` holds in same-named nodes (``a - b``).

        Calls that lost one of their refs are dropped, then what is no longer reachable from
        the remaining sources, then the nodes left empty.

        Raises:
            ValueError: frames of different storages.
        """
        self._same_source([other])
        frame = self.copy()
        for node in frame.nodes & other.nodes:
            if (node in frame.vs) == (node in other.vs):
                frame._elements(node).difference_update(other._elements(node))
        frame._drop_incomplete_calls()
        frame._drop_unreachable(forward=True, strong=True)
        frame.cleanup(inplace=True)
        return frame

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, SelectionMixin):
            return NotImplemented
        return self.union(other)

    def __and__(self, other: Any) -> Any:
        if not isinstance(other, SelectionMixin):
            return NotImplemented
        return self.intersection(other)

    def __sub__(self, other: Any) -> Any:
        if not isinstance(other, SelectionMixin):
            return NotImplemented
        return self.difference(other)
