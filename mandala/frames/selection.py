"""Restricting a frame: selecting nodes, following reachability, filtering elements, set algebra.

Written as a mixin of :class:`~mandala.frames.frame.ComputationFrame`; every method returns a new
frame unless it says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mandala.frames.graph import FrameGraph

__all__ = ["SelectionMixin"]


class SelectionMixin(FrameGraph):
    """Selection and restriction methods of ComputationFrame."""

    def select_nodes(self, nodes: Iterable[str]) -> Any:
        """The subgraph induced by ``nodes`` (with their elements)."""
        wanted = set(nodes)
        missing = wanted - self.nodes
        if missing:
            raise ValueError(f"Nodes {sorted(missing)} not found in the CF")
        frame = self.copy()
        for node in sorted(frame.nodes - wanted):
            frame._remove_node(node)
        return frame

    def __getitem__(self, nodes: str | Sequence[str]) -> Any:
        if isinstance(nodes, str):
            nodes = [nodes]
        return self.select_nodes(nodes)

    def _reachable(self, starts: Iterable[str], forward: bool) -> set[str]:
        seen = set(starts)
        stack = list(seen)
        while stack:
            node = stack.pop()
            for nxt in self.out_neighbors(node) if forward else self.in_neighbors(node):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def midstream(self, *nodes: str, how: str = "strong") -> Any:
        """The nodes on paths between the given nodes, with the elements that connect them."""
        missing = set(nodes) - self.nodes
        if missing:
            raise ValueError(f"Nodes {sorted(missing)} not found in the CF")
        keep = set(nodes)
        for a in nodes:
            downstream = self._reachable([a], forward=True)
            for b in nodes:
                if a != b and b in downstream:
                    upstream_of_b = self._reachable([b], forward=False)
                    keep |= downstream & upstream_of_b
        return self.select_nodes(keep)
