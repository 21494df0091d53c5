"""The graph of a computation frame: variables (sets of refs) and functions (sets of calls).

A *variable* node holds a set of refs (by history key), a *function* node a set of calls of one
op. A labelled edge ``var --label--> func`` says that the calls of ``func`` take refs of ``var``
as their input ``label``; ``func --label--> var`` says their output ``label`` lands in ``var``.
Cycles in this graph are allowed (``x = scale(x)`` in a loop); the calls themselves never form a
cycle.

Facts about the elements (a call's inputs and outputs, a ref's content key) are in the
:class:`~mandala.frames.index.ElementIndex` that the graph holds (``index.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np

from mandala.backends.records import StoredCall
from mandala.errors import NodeNotFoundError
from mandala.frames.index import ElementIndex, edge_label
from mandala.frames.keys import KeySet, KeyTable

__all__ = ["FrameGraph", "NodeSets", "Edge"]

_INDEXED_NAME = re.compile(r"^(?P<stem>.+)_(?P<index>\d+)$")

Edge = tuple[str, str, str]
"""``(source, target, label)``."""


class NodeSets(dict[str, KeySet]):
    """Element sets by node name; a set assigned in any form is kept as a :class:`KeySet` of
    the node kind's table."""

    def __init__(self, table: KeyTable, items: Iterable[tuple[str, Iterable[bytes]]] = ()) -> None:
        super().__init__()
        self.table = table
        for name, elements in items:
            self[name] = elements

    def _wrap(self, elements: Iterable[bytes]) -> KeySet:
        if isinstance(elements, KeySet) and elements.table is self.table:
            return elements
        return KeySet.of_keys(self.table, elements)

    def __setitem__(self, name: str, elements: Iterable[bytes]) -> None:
        super().__setitem__(name, self._wrap(elements))

    def setdefault(self, name: str, elements: Iterable[bytes] | None = None) -> KeySet:
        if name not in self:
            self[name] = KeySet(self.table) if elements is None else elements
        return self[name]


Adjacency = dict[str, dict[str, set[str]]]
"""node -> edge label -> the nodes at the other end of the edges with that label."""

_SortKey = tuple[int | str, ...]


class FrameGraph:
    """Nodes, labelled edges and element sets of a frame; the mutation primitives every frame
    operation (the functions of ``selection.py``, ``filters.py``, ``algebra.py``,
    ``expansion.py``) uses. :class:`~mandala.frames.frame.ComputationFrame` wraps one.

    Attributes:
        index: the facts about the elements, shared by the frames of one ``storage.cf(...)``.
        refs_by_var: ref keys by variable (the original's ``vs``).
        calls_by_func: call keys by function node (``fs``).
        op_by_func: the op name of each function node (``op_of``).
        incoming: by node, the sources of its incoming edges by label (``inp``).
        outgoing: by node, the targets of its outgoing edges by label (``out``).
    """

    def __init__(self, index: ElementIndex) -> None:
        self.index = index
        self._refs_by_var = NodeSets(index.ref_table)
        self._calls_by_func = NodeSets(index.call_table)
        self.op_by_func: dict[str, str] = {}
        self.incoming: Adjacency = {}
        self.outgoing: Adjacency = {}

    @property
    def refs_by_var(self) -> NodeSets:
        """Ref keys by variable."""
        return self._refs_by_var

    @refs_by_var.setter
    def refs_by_var(self, sets: Mapping[str, Iterable[bytes]]) -> None:
        self._refs_by_var = NodeSets(self.index.ref_table, sets.items())

    @property
    def calls_by_func(self) -> NodeSets:
        """Call keys by function node."""
        return self._calls_by_func

    @calls_by_func.setter
    def calls_by_func(self, sets: Mapping[str, Iterable[bytes]]) -> None:
        self._calls_by_func = NodeSets(self.index.call_table, sets.items())

    # ------------------------------------------------------------------ nodes and edges

    @property
    def nodes(self) -> set[str]:
        """Names of all nodes."""
        return set(self._refs_by_var) | set(self._calls_by_func)

    def is_var(self, node: str) -> bool:
        """Whether ``node`` is a variable."""
        return node in self._refs_by_var

    def elements(self, node: str) -> KeySet:
        """The refs of a variable or the calls of a function node."""
        return self._refs_by_var[node] if node in self._refs_by_var else self._calls_by_func[node]

    def set_elements(self, node: str, elements: Iterable[bytes]) -> None:
        """Replace the elements of a node."""
        if node in self._refs_by_var:
            self._refs_by_var[node] = elements
        else:
            self._calls_by_func[node] = elements

    def require(self, nodes: Iterable[str]) -> None:
        """Raise unless every one of ``nodes`` is a node.

        Raises:
            NodeNotFoundError: one is not.
        """
        missing = set(nodes) - self.nodes
        if missing:
            raise NodeNotFoundError(f"Nodes {sorted(missing)} not found in the CF")

    def require_node(self, node: str) -> None:
        """Raise unless ``node`` is a node.

        Raises:
            NodeNotFoundError: it is not.
        """
        if node not in self._refs_by_var and node not in self._calls_by_func:
            raise NodeNotFoundError(
                f"Node {node} not found in the CF (nodes: {sorted(self.nodes)})"
            )

    def edges(self) -> list[Edge]:
        """Every edge as ``(source, target, label)``, sorted."""
        return sorted(
            (source, target, label)
            for source, by_label in self.outgoing.items()
            for label, targets in by_label.items()
            for target in targets
        )

    def in_edges(self, node: str) -> list[Edge]:
        """The edges into ``node``, sorted."""
        return sorted(
            (source, node, label)
            for label, sources in self.incoming.get(node, {}).items()
            for source in sources
        )

    def out_edges(self, node: str) -> list[Edge]:
        """The edges out of ``node``, sorted."""
        return sorted(
            (node, target, label)
            for label, targets in self.outgoing.get(node, {}).items()
            for target in targets
        )

    def in_neighbors(self, node: str) -> set[str]:
        """The sources of the edges into ``node``."""
        return {source for sources in self.incoming.get(node, {}).values() for source in sources}

    def out_neighbors(self, node: str) -> set[str]:
        """The targets of the edges out of ``node``."""
        return {target for targets in self.outgoing.get(node, {}).values() for target in targets}

    def source_nodes(self) -> set[str]:
        """Nodes with no incoming edge."""
        return {n for n in self.nodes if not self.in_neighbors(n)}

    def sink_nodes(self) -> set[str]:
        """Nodes with no outgoing edge."""
        return {n for n in self.nodes if not self.out_neighbors(n)}

    def size(self) -> int:
        """Elements of all nodes plus edges: it stops changing when an expansion converges."""
        return (
            sum(map(len, self._refs_by_var.values()))
            + sum(map(len, self._calls_by_func.values()))
            + len(self.edges())
        )

    def add_var(self, name: str) -> None:
        """Add an empty variable (nothing if it exists)."""
        self._refs_by_var.setdefault(name)
        self.incoming.setdefault(name, {})
        self.outgoing.setdefault(name, {})

    def add_func(self, name: str, op_name: str) -> None:
        """Add an empty function node of ``op_name`` (nothing if it exists but the op)."""
        self._calls_by_func.setdefault(name)
        self.op_by_func[name] = op_name
        self.incoming.setdefault(name, {})
        self.outgoing.setdefault(name, {})

    def add_edge(self, source: str, target: str, label: str) -> None:
        """Add the edge ``source --label--> target``."""
        self.outgoing.setdefault(source, {}).setdefault(label, set()).add(target)
        self.incoming.setdefault(target, {}).setdefault(label, set()).add(source)

    def drop_edge(self, source: str, target: str, label: str) -> None:
        """Remove the edge ``source --label--> target`` (nothing if there is none)."""
        targets = self.outgoing.get(source, {}).get(label)
        if targets is not None:
            targets.discard(target)
            if not targets:
                del self.outgoing[source][label]
        sources = self.incoming.get(target, {}).get(label)
        if sources is not None:
            sources.discard(source)
            if not sources:
                del self.incoming[target][label]

    def remove_node(self, node: str) -> None:
        """Remove a node with its edges."""
        for source, _, label in self.in_edges(node):
            self.drop_edge(source, node, label)
        for _, target, label in self.out_edges(node):
            self.drop_edge(node, target, label)
        self._refs_by_var.pop(node, None)
        self._calls_by_func.pop(node, None)
        self.op_by_func.pop(node, None)
        self.incoming.pop(node, None)
        self.outgoing.pop(node, None)

    def rename_nodes(self, mapping: Mapping[str, str]) -> None:
        """Rename nodes (all at once, so names may be swapped)."""

        def name(n: str) -> str:
            return mapping.get(n, n)

        def adjacency(adj: Adjacency) -> Adjacency:
            return {
                name(n): {label: {name(m) for m in ends} for label, ends in by_label.items()}
                for n, by_label in adj.items()
            }

        self.refs_by_var = {name(n): s for n, s in self._refs_by_var.items()}
        self.calls_by_func = {name(n): s for n, s in self._calls_by_func.items()}
        self.op_by_func = {name(n): op for n, op in self.op_by_func.items()}
        self.incoming = adjacency(self.incoming)
        self.outgoing = adjacency(self.outgoing)

    # ------------------------------------------------------------------ naming

    def new_name(self, hint: str, taken: Iterable[str] | None = None) -> str:
        """``hint`` if it is free, else ``hint_0``, ``hint_1``, ... (never mangling the hint)."""
        used = self.nodes if taken is None else set(taken)
        if hint not in used:
            return hint
        i = 0
        while f"{hint}_{i}" in used:
            i += 1
        return f"{hint}_{i}"

    def output_var_name(self, label: str) -> str:
        """A new variable's name for the output ``label`` of a function node.

        Unnamed outputs (``output_0``, ``output_1``, ...) land in ``var_0``, ``var_1``, ...
        numbered across the frame, as in the original: the first free ``var_<i>``, so a frame
        of two ops with unnamed outputs has ``var_0``, ``var_1``, ``var_2``, not ``var_0_0``.
        Named outputs are named after the label (``y``, then ``y_0``, ...).
        """
        match = _INDEXED_NAME.match(label)
        if match is None or match.group("stem") != "output":
            return self.new_name(label)
        used = self.nodes
        i = 0
        while f"var_{i}" in used:
            i += 1
        return f"var_{i}"

    # ------------------------------------------------------------------ element adjacency

    def call_inputs_on(self, call: StoredCall, label: str) -> Iterator[bytes]:
        """Input refs of ``call`` that travel on edges labelled ``label``."""
        op_name = call.op_name
        for edge in call.inputs:
            if edge_label(op_name, edge.name) == label:
                yield edge.history_key

    @staticmethod
    def call_outputs_on(call: StoredCall, label: str) -> Iterator[bytes]:
        for edge in call.outputs:
            if edge.name == label:
                yield edge.history_key

    def creators_in_frame(self, var: str, ref: bytes) -> list[tuple[str, bytes]]:
        """(function node, call) pairs of the frame that output ``ref`` into ``var``."""
        creator = self.index.creator.get(ref)
        if creator is None:
            return []
        found = []
        call = self.index.calls[creator]
        for label, funcs in self.incoming.get(var, {}).items():
            for func in funcs:
                if creator in self.calls_by_func[func] and ref in self.call_outputs_on(call, label):
                    found.append((func, creator))
        return found

    def consumers_in_frame(self, var: str, ref: bytes) -> list[tuple[str, bytes]]:
        """(function node, call) pairs of the frame that take ``ref`` from ``var``."""
        found = []
        consumers = self.index.consumers.get(ref, ())
        for label, funcs in self.outgoing.get(var, {}).items():
            for func in funcs:
                calls = self.calls_by_func[func]
                for call_key in consumers:
                    if call_key in calls and ref in self.call_inputs_on(
                        self.index.calls[call_key], label
                    ):
                        found.append((func, call_key))
        return found

    def created_in_frame(self, var: str) -> dict[bytes, list[tuple[str, bytes]]]:
        """For the refs of ``var`` created by calls of the frame: their (function node, call).

        One pass over the output columns of the function nodes on edges into ``var``.
        """
        held = self.refs_by_var[var]
        found: dict[bytes, list[tuple[str, bytes]]] = {}
        for label, funcs in self.incoming.get(var, {}).items():
            for func in funcs:
                call_ids, ref_ids = self.index.pair_ids(
                    self.op_by_func[func], self.calls_by_func[func], label, False
                )
                inside = np.isin(ref_ids, held.ids)
                calls = self.index.call_table.to_bytes(call_ids[inside])
                refs = self.index.ref_table.to_bytes(ref_ids[inside])
                for call_key, ref in zip(calls, refs):
                    found.setdefault(ref, []).append((func, call_key))
        return found

    def refs_on_edges(self, var: str, into: bool) -> KeySet:
        """The refs of ``var`` that calls of the frame output into it (``into``), or take
        from it as inputs."""
        parts = []
        for label, funcs in (self.incoming if into else self.outgoing).get(var, {}).items():
            for func in funcs:
                parts.append(
                    self.index.pair_ids(
                        self.op_by_func[func], self.calls_by_func[func], label, not into
                    )[1]
                )
        found = KeySet.of_ids(self.index.ref_table, np.concatenate(parts)) if parts else None
        return self.refs_by_var[var] & found if found is not None else KeySet(self.index.ref_table)

    def created_refs(self, var: str) -> KeySet:
        """The refs of ``var`` created by calls of the frame (on an edge into ``var``)."""
        return self.refs_on_edges(var, True)

    def consumed_in_frame(self, var: str) -> KeySet:
        """Refs of ``var`` that some call of the frame takes as an input from ``var``."""
        return self.refs_on_edges(var, False)

    def source_elements(self, var: str) -> KeySet:
        """Refs of ``var`` with no creator call in the frame (on an edge into ``var``)."""
        if not self.incoming.get(var):
            return self.refs_by_var[var].copy()
        return self.refs_by_var[var] - self.created_refs(var)

    def sink_elements(self, var: str) -> KeySet:
        """Refs of ``var`` that no call of the frame consumes (on an edge out of ``var``)."""
        if not self.outgoing.get(var):
            return self.refs_by_var[var].copy()
        return self.refs_by_var[var] - self.consumed_in_frame(var)

    # ------------------------------------------------------------------ order

    def topsort(self) -> list[str]:
        """Nodes in topological order; the nodes of a cycle come together, by name."""
        components = self._strongly_connected_components()
        component_of = {node: i for i, comp in enumerate(components) for node in comp}
        indegree = [0] * len(components)
        successors: list[set[int]] = [set() for _ in components]
        for source, target, _ in self.edges():
            a, b = component_of[source], component_of[target]
            if a != b and b not in successors[a]:
                successors[a].add(b)
                indegree[b] += 1
        # Depth first (a stack of ready components, as the original's sort): what a node makes
        # comes right after it, an op's outputs in the order it returns them.
        ready = sorted(
            (i for i, d in enumerate(indegree) if d == 0),
            key=lambda i: min(components[i]),
            reverse=True,
        )
        order: list[str] = []

        def emit(i: int) -> list[int]:
            """Put component ``i`` next; returns the components it made ready, in order."""
            order.extend(sorted(components[i]))
            position = self._successor_order(components[i])
            newly_ready = []
            for j in sorted(successors[i], key=lambda j: position(components[j])):
                indegree[j] -= 1
                if indegree[j] == 0:
                    newly_ready.append(j)
            return newly_ready

        while ready:
            i = ready.pop()
            newly_ready = emit(i)
            if len(components[i]) == 1 and components[i][0] in self.calls_by_func:
                # a function node's outputs come right after it, then what they lead to
                newly_ready = [k for j in newly_ready for k in emit(j)]
            ready.extend(reversed(newly_ready))
        return order

    def _successor_order(self, component: list[str]) -> Callable[[list[str]], _SortKey]:
        """How the nodes made by ``component`` are ordered: the outputs of a function node in
        return order (``output_0, output_1, ...``, or as the op declared them), else by name."""
        if len(component) != 1 or component[0] not in self.calls_by_func:
            return lambda nodes: (0, 0, min(nodes))
        func = component[0]
        declared = self.index.declared_outputs(self.op_by_func[func])
        rank: dict[str, tuple[int, int, str]] = {}
        for label, targets in self.outgoing[func].items():
            stem, _, number = label.rpartition("_")
            if stem == "output" and number.isdigit():
                key = (0, int(number), label)
            elif label in declared:
                key = (1, declared.index(label), label)
            else:
                key = (2, 0, label)
            for target in targets:
                rank[target] = min(rank.get(target, key), key)
        return lambda nodes: (*rank.get(min(nodes), (3, 0, "")), min(nodes))

    def _strongly_connected_components(self) -> list[list[str]]:
        index_of: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        components: list[list[str]] = []
        counter = 0
        for root in sorted(self.nodes):
            if root in index_of:
                continue
            work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(self.out_neighbors(root))))]
            index_of[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                node, children = work[-1]
                advanced = False
                for child in children:
                    if child not in index_of:
                        index_of[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(self.out_neighbors(child)))))
                        advanced = True
                        break
                    if child in on_stack:
                        low[node] = min(low[node], index_of[child])
                if advanced:
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index_of[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
        return components

    def sort_nodes(self, nodes: Iterable[str]) -> list[str]:
        wanted = set(nodes)
        return [n for n in self.topsort() if n in wanted]

    # ------------------------------------------------------------------ copying

    def copy(self) -> FrameGraph:
        """A copy of the graph and element sets (the element index is shared)."""
        other = FrameGraph(self.index)
        other.take_structure(self)
        return other

    def take_structure(self, other: FrameGraph) -> None:
        """Make this graph a copy of ``other`` (nodes, edges, element sets)."""
        self._refs_by_var = NodeSets(
            other.index.ref_table, ((k, v.copy()) for k, v in other.refs_by_var.items())
        )
        self._calls_by_func = NodeSets(
            other.index.call_table, ((k, v.copy()) for k, v in other.calls_by_func.items())
        )
        self.op_by_func = dict(other.op_by_func)
        self.incoming = {
            k: {lab: set(s) for lab, s in v.items()} for k, v in other.incoming.items()
        }
        self.outgoing = {
            k: {lab: set(s) for lab, s in v.items()} for k, v in other.outgoing.items()
        }
        self.index = other.index

    def check(self) -> None:
        """Raise unless every call's ref on each connected label is in a variable of that label.

        Several variables on one label (``(v | x)@output_0``) mean "in one of them": a feedback
        loop puts the last outputs of an op in one variable and the earlier ones in another.
        """
        for func, calls in self.calls_by_func.items():
            for call_key in calls:
                call = self.index.calls[call_key]
                for side, by_label in (
                    ("input", self.incoming[func]),
                    ("output", self.outgoing[func]),
                ):
                    for label, variables in by_label.items():
                        refs = (
                            self.call_inputs_on(call, label)
                            if side == "input"
                            else self.call_outputs_on(call, label)
                        )
                        for ref in refs:
                            if not any(ref in self.refs_by_var[var] for var in variables):
                                raise RuntimeError(
                                    f"frame invariant broken: {side} {label!r} of a call of "
                                    f"{func!r} is in none of {sorted(variables)}"
                                )
