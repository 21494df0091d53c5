"""Restricting a frame's graph: selecting nodes, following reachability, dropping, renaming,
merging.

Functions over a :class:`~mandala.frames.graph.FrameGraph`; the methods of
:class:`~mandala.frames.frame.ComputationFrame` delegate to them. A function named for a query
(``upstream``, ``select_nodes``, ...) returns a new graph; one named for a change (``drop``,
``rename``, ``merge_into``, ``cleanup``, ...) changes the graph it is given (the frame hands it
its own graph with ``inplace=True``, a copy otherwise). Every graph they leave is *valid*: each
call of a function node has its inputs and outputs in the variables on the node's edges
(``FrameGraph.check``). Operations that can only remove elements keep validity by dropping the
calls that lost one of their refs; operations that follow calls (reachability, union, merging
function nodes) keep it by adding the refs that the calls they keep are connected to.

Element reachability (``upstream``, ``downstream``, ``midstream``, ``drop_unreachable``):
going forward, a ref is reached when a reached call outputs it on an edge into its variable,
and a call is reached when its inputs on the edges into its function node are reached, *all*
of them with ``how="strong"`` (the call could be recomputed from what was reached), *any* of
them with ``how="weak"``. Going back is the mirror image (outputs instead of inputs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import cast

import numpy as np

from mandala.errors import FrameError, NodeNotFoundError
from mandala.frames.graph import FrameGraph
from mandala.frames.keys import KeySet, sorted_unique

__all__ = [
    "edge_pairs",
    "connections",
    "connected_refs",
    "drop_disconnected",
    "complete",
    "drop_incomplete_calls",
    "reachable_nodes",
    "reach",
    "select_nodes",
    "select_subsets",
    "upstream",
    "downstream",
    "midstream",
    "drop_unreachable",
    "drop",
    "drop_of_kind",
    "rename",
    "merge_into",
    "merge_vars",
    "cleanup",
    "flatten_names",
    "element_key",
]

_HOWS = ("strong", "weak")
_DIRECTIONS = {"forward": True, "back": False, "backward": False}

ElementsByNode = Mapping[str, AbstractSet[bytes]]


def _name_order(name: str) -> tuple[int, str]:
    """Shorter names first: ``y`` before ``y_0``, ``x_0`` before ``x_0_1``."""
    return (len(name), name)


def _strong(how: str) -> bool:
    if how not in _HOWS:
        raise FrameError(f"how must be 'strong' or 'weak', got {how!r}")
    return how == "strong"


def flatten_names(nodes: Sequence[str | Iterable[str]]) -> list[str]:
    """``f("a", "b")`` and ``f(["a", "b"])`` both mean the nodes a and b."""
    first = nodes[0] if len(nodes) == 1 else None
    if first is not None and not isinstance(first, str) and isinstance(first, Iterable):
        return list(first)
    return cast("list[str]", list(nodes))


def element_key(item: object, attribute: str, what: str) -> bytes:
    """A history or content key from a hex id, raw bytes, or a Ref/Call."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        try:
            return bytes.fromhex(item)
        except ValueError:
            raise FrameError(f"{what} {item!r} is not a hexadecimal id") from None
    key = getattr(item, attribute, None)
    if isinstance(key, bytes):
        return key
    raise TypeError(f"expected a {what} (hex str), bytes or a Ref/Call, got {type(item).__name__}")


# ====================================================================== validity
#
# Everything below works on the id arrays of the frame's key sets and on the columns of the
# element index (``ElementIndex.pair_ids``: for the calls of a function node, the refs they
# have on one edge label), so a selection over a million calls makes no Python object per call.

_EMPTY = np.empty(0, dtype=np.int64)


def _union(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """The union of two sorted id arrays."""
    if not len(theirs):
        return mine
    if not len(mine):
        return theirs
    return sorted_unique(np.concatenate((mine, theirs)))


Pairs = tuple[np.ndarray, np.ndarray]
"""``(call ids, ref ids)``, aligned: the refs some calls have on one edge label."""


def edge_pairs(
    graph: FrameGraph, func: str, label: str, is_input: bool, calls: KeySet | None = None
) -> Pairs:
    """The refs the calls of ``func`` (or ``calls`` among them) have on input (``is_input``)
    or output ``label``."""
    keys = graph.calls_by_func[func] if calls is None else calls
    if not len(keys):
        return _EMPTY, _EMPTY
    return graph.index.pair_ids(graph.op_by_func[func], keys, label, is_input)


def connections(
    graph: FrameGraph, func: str, calls: KeySet | None = None, inputs: bool | None = None
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(variable, call ids, ref ids)`` for every variable on every edge of ``func`` (only
    the input or the output edges if ``inputs`` says which): the refs the calls need there
    for the graph to be valid."""
    for is_input in (True, False) if inputs is None else (inputs,):
        side = graph.incoming[func] if is_input else graph.outgoing[func]
        for label, variables in side.items():
            call_ids, ref_ids = edge_pairs(graph, func, label, is_input, calls)
            for var in variables:
                yield var, call_ids, ref_ids


def connected_refs(graph: FrameGraph) -> dict[str, np.ndarray]:
    """By variable, the sorted ids of the refs some call of the graph is connected to there."""
    parts: dict[str, list[np.ndarray]] = {}
    for func in graph.calls_by_func:
        for var, _, ref_ids in connections(graph, func):
            parts.setdefault(var, []).append(ref_ids)
    return {var: sorted_unique(np.concatenate(found)) for var, found in parts.items()}


def drop_disconnected(
    graph: FrameGraph, before: Mapping[str, np.ndarray], only: AbstractSet[str] | None = None
) -> None:
    """Remove the refs that were connected to a call (``before``, from :func:`connected_refs`)
    and are no longer (in the variables ``only``, if given)."""
    after = connected_refs(graph)
    table = graph.index.ref_table
    for var, ids in before.items():
        if only is not None and var not in only:
            continue
        lost = np.setdiff1d(ids, after.get(var, _EMPTY), assume_unique=True)
        if len(lost):
            graph.refs_by_var[var] -= KeySet(table, lost)


def complete(graph: FrameGraph) -> None:
    """Add to the variables every ref a kept call is connected to."""
    parts: dict[str, list[np.ndarray]] = {}
    for func in graph.calls_by_func:
        for var, _, ref_ids in connections(graph, func):
            if len(ref_ids):
                parts.setdefault(var, []).append(ref_ids)
    table = graph.index.ref_table
    for var, found in parts.items():
        graph.refs_by_var[var] |= KeySet.of_ids(table, np.concatenate(found))


def drop_incomplete_calls(graph: FrameGraph) -> None:
    """Remove the calls one of whose connected refs is missing."""
    refs_by_var = graph.refs_by_var
    table = graph.index.call_table
    for func, calls in graph.calls_by_func.items():
        incomplete = [
            call_ids[missing]
            for var, call_ids, ref_ids in connections(graph, func)
            for missing in (~np.isin(ref_ids, refs_by_var[var].ids),)
            if missing.any()
        ]
        if incomplete:
            calls -= KeySet.of_ids(table, np.concatenate(incomplete))


def _func_boundary(graph: FrameGraph, func: str, inputs: bool) -> KeySet:
    """Calls of ``func`` with no connected input (or output) ref in the graph."""
    refs_by_var = graph.refs_by_var
    touching = [
        call_ids[np.isin(ref_ids, refs_by_var[var].ids)]
        for var, call_ids, ref_ids in connections(graph, func, inputs=inputs)
    ]
    held = graph.calls_by_func[func]
    if not touching:
        return held.copy()
    return held - KeySet.of_ids(held.table, np.concatenate(touching))


def _boundary(graph: FrameGraph, node: str, sources: bool) -> KeySet:
    """Source (or sink) elements of a node: no creator (consumer) connected in the graph."""
    if graph.is_var(node):
        return graph.source_elements(node) if sources else graph.sink_elements(node)
    return _func_boundary(graph, node, inputs=sources)


def reachable_nodes(graph: FrameGraph, starts: Iterable[str], forward: bool) -> set[str]:
    """Nodes reachable from ``starts`` along edges (forward) or against them (back)."""
    seen = set(starts)
    stack = list(seen)
    while stack:
        node = stack.pop()
        for nxt in graph.out_neighbors(node) if forward else graph.in_neighbors(node):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


# ====================================================================== element reachability


def reach(
    graph: FrameGraph, initial: Mapping[str, KeySet], forward: bool, strong: bool
) -> dict[str, KeySet]:
    """Elements reachable from ``initial`` (see the module docstring), by node.

    A worklist over the newly reached elements of each node (as id arrays): every element is
    propagated once along each edge, so cycles of the graph cost no repeated sweeps. The
    result is the least fixpoint, whatever the order of the work.
    """
    return _Reach(graph, forward, strong).run(initial)


class _Reach:
    """The state of one :func:`reach`: reached ids by node, and the edge columns read."""

    def __init__(self, graph: FrameGraph, forward: bool, strong: bool) -> None:
        self.graph = graph
        self.forward = forward
        self.strong = strong
        self.reached: dict[str, np.ndarray] = {node: _EMPTY for node in graph.nodes}
        self._pairs: dict[tuple[str, str, bool], Pairs] = {}

    def pairs(self, func: str, label: str, is_input: bool) -> Pairs:
        key = (func, label, is_input)
        found = self._pairs.get(key)
        if found is None:
            found = self._pairs[key] = edge_pairs(self.graph, func, label, is_input)
        return found

    def run(self, initial: Mapping[str, KeySet]) -> dict[str, KeySet]:
        graph, reached = self.graph, self.reached
        delta: dict[str, np.ndarray] = {}
        for node, elements in initial.items():
            new = np.intersect1d(elements.ids, graph.elements(node).ids, assume_unique=True)
            if len(new):
                reached[node] = _union(reached[node], new)
                delta[node] = _union(delta.get(node, _EMPTY), new)
        while delta:
            node = min(delta)
            new = delta.pop(node)
            edges = graph.outgoing[node] if self.forward else graph.incoming[node]
            for label, targets in sorted(edges.items()):
                for target in sorted(targets):
                    if graph.is_var(node):
                        found = self.calls_reached(new, target, label)
                    else:
                        found = self.refs_reached(node, new, target, label)
                    found = np.setdiff1d(found, reached[target], assume_unique=True)
                    if len(found):
                        reached[target] = _union(reached[target], found)
                        delta[target] = _union(delta.get(target, _EMPTY), found)
        return {node: KeySet(graph.elements(node).table, ids) for node, ids in reached.items()}

    def refs_reached(self, func: str, calls: np.ndarray, var: str, label: str) -> np.ndarray:
        """The refs of ``var`` that the reached ``calls`` output (forward) or take (back) on
        ``label``."""
        call_ids, ref_ids = self.pairs(func, label, not self.forward)
        refs = sorted_unique(ref_ids[np.isin(call_ids, calls)])
        return np.intersect1d(refs, self.graph.refs_by_var[var].ids, assume_unique=True)

    def calls_reached(self, refs: np.ndarray, func: str, label: str) -> np.ndarray:
        """The calls of ``func`` reached from the newly reached ``refs`` on ``label``: those
        taking (forward) or making (back) one of them, and with ``strong`` only those whose
        connected inputs (outputs) are all reached."""
        call_ids, ref_ids = self.pairs(func, label, self.forward)
        candidates = sorted_unique(call_ids[np.isin(ref_ids, refs)])
        if not self.strong or not len(candidates):
            return candidates
        candidates = np.setdiff1d(candidates, self.reached[func], assume_unique=True)
        side = self.graph.incoming[func] if self.forward else self.graph.outgoing[func]
        for other_label, variables in side.items():
            if not len(candidates):
                break
            call_ids, ref_ids = self.pairs(func, other_label, self.forward)
            mine = np.isin(call_ids, candidates)
            held = [self.reached[var] for var in variables]
            reached_refs = held[0] if len(held) == 1 else sorted_unique(np.concatenate(held))
            unreached = ~np.isin(ref_ids[mine], reached_refs)
            if unreached.any():
                candidates = np.setdiff1d(
                    candidates, call_ids[mine][unreached], assume_unique=False
                )
        return candidates


def _restricted(
    graph: FrameGraph, region: Iterable[str], elements: Mapping[str, KeySet]
) -> FrameGraph:
    """A copy on the nodes of ``region`` holding ``elements``, completed to be valid."""
    result = select_nodes(graph, region)
    for node in result.nodes:
        found = elements.get(node)
        result.set_elements(
            node, found if found is not None else KeySet(result.elements(node).table)
        )
    complete(result)
    return result


# ====================================================================== selecting nodes


def select_nodes(graph: FrameGraph, nodes: Iterable[str]) -> FrameGraph:
    """The subgraph induced by ``nodes``: those nodes, their elements, the edges among them.

    Raises:
        NodeNotFoundError: a node is not in the graph.
    """
    wanted = set(nodes)
    graph.require(wanted)
    result = graph.copy()
    for node in sorted(result.nodes - wanted):
        result.remove_node(node)
    return result


def select_subsets(graph: FrameGraph, elts: Mapping[str, Iterable[object]]) -> FrameGraph:
    """Keep only the given elements of every node (history ids, keys, Refs or Calls); calls
    whose connected input or output is not kept go as well.

    Raises:
        FrameError: ``elts`` does not name exactly the graph's nodes, or names an element
            that is not in its node.
    """
    names = set(elts)
    if names != graph.nodes:
        missing, extra = sorted(graph.nodes - names), sorted(names - graph.nodes)
        raise FrameError(
            "select_subsets needs a set of elements for every node of the CF, and only "
            f"for them (missing: {missing}, unknown: {extra}); pass set() to empty a node"
        )
    result = graph.copy()
    for node, items in elts.items():
        keys = {element_key(item, "history_key", "history id") for item in items}
        unknown = keys - graph.elements(node)
        if unknown:
            shown = sorted(k.hex() for k in unknown)[:3]
            raise FrameError(f"select_subsets: {shown} are not elements of node {node!r}")
        result.set_elements(node, keys)
    drop_incomplete_calls(result)
    return result


# ====================================================================== reachability


def _along(graph: FrameGraph, names: list[str], how: str, forward: bool) -> FrameGraph:
    strong = _strong(how)
    graph.require(names)
    region = reachable_nodes(graph, names, forward=forward)
    sub = select_nodes(graph, region)
    reached = reach(sub, {n: sub.elements(n) for n in names}, forward=forward, strong=strong)
    return _restricted(sub, region, reached)


def upstream(graph: FrameGraph, names: list[str], how: str = "strong") -> FrameGraph:
    """What the elements of ``names`` were computed from (see ``ComputationFrame.upstream``)."""
    return _along(graph, names, how, forward=False)


def downstream(graph: FrameGraph, names: list[str], how: str = "strong") -> FrameGraph:
    """What was computed from the elements of ``names`` (the dual of :func:`upstream`)."""
    return _along(graph, names, how, forward=True)


def midstream(graph: FrameGraph, names: list[str], how: str = "strong") -> FrameGraph:
    """The sub-computation spanned by ``names``: the nodes on paths between two of them, with
    the elements reached going forward from the source elements ``names`` hold there."""
    strong = _strong(how)
    graph.require(names)
    region = set(names)
    down = {a: reachable_nodes(graph, [a], forward=True) for a in names}
    up = {b: reachable_nodes(graph, [b], forward=False) for b in names}
    for a in names:
        for b in names:
            if a != b and b in down[a]:
                region |= down[a] & up[b]
    sub = select_nodes(graph, region)
    initial = {n: _boundary(sub, n, sources=True) for n in names}
    reached = reach(sub, initial, forward=True, strong=strong)
    return _restricted(sub, region, reached)


def drop_unreachable(graph: FrameGraph, direction: str | bool, how: str = "strong") -> None:
    """Drop the elements not reachable from the source elements (``"forward"``, or True) or
    sink elements (``"back"``, or False); calls left without one of their refs go too."""
    if isinstance(direction, bool):
        forward = direction
    elif direction in _DIRECTIONS:
        forward = _DIRECTIONS[direction]
    else:
        raise FrameError(f"direction must be 'forward' or 'back', got {direction!r}")
    strong = _strong(how)
    initial = {n: _boundary(graph, n, sources=forward) for n in graph.nodes}
    reached = reach(graph, initial, forward=forward, strong=strong)
    for node in graph.nodes:
        graph.set_elements(node, reached[node])
    drop_incomplete_calls(graph)


# ====================================================================== dropping and renaming


def drop(graph: FrameGraph, names: list[str], with_dependents: bool = False) -> None:
    """Remove nodes with their edges (and with ``with_dependents`` every node downstream).

    Raises:
        NodeNotFoundError: a node is not in the graph.
    """
    for node in names:
        graph.require_node(node)
    if with_dependents:
        names = sorted(reachable_nodes(graph, names, forward=True))
    for node in names:
        graph.remove_node(node)


def drop_of_kind(graph: FrameGraph, node: str, var: bool) -> None:
    """Remove a variable (``var``) or a function node, refusing a node of the other kind.

    Raises:
        NodeNotFoundError: ``node`` is not a node of that kind.
    """
    graph.require_node(node)
    if var and not graph.is_var(node):
        raise NodeNotFoundError(f"Node {node} is a function node, not a variable; use drop_func")
    if not var and graph.is_var(node):
        raise NodeNotFoundError(f"Node {node} is a variable, not a function node; use drop_var")
    graph.remove_node(node)


def rename(
    graph: FrameGraph,
    vars: Mapping[str, str] | None = None,
    funcs: Mapping[str, str] | None = None,
) -> None:
    """Rename variables and function nodes (all at once, so names may be swapped).

    Raises:
        FrameError: an old name is not a node of that kind, or a new name clashes.
    """
    mapping: dict[str, str] = {}
    for kind, given, existing in (
        ("vars", vars, graph.refs_by_var),
        ("funcs", funcs, graph.calls_by_func),
    ):
        for old, new in (given or {}).items():
            graph.require_node(old)
            if old not in existing:
                other = "funcs" if kind == "vars" else "vars"
                raise NodeNotFoundError(f"rename: {old!r} is not in {kind}; pass it in {other}=")
            if not isinstance(new, str) or not new:
                raise FrameError(f"rename: new name for {old!r} must be a non-empty str")
            mapping[old] = new
    final = [mapping.get(n, n) for n in graph.nodes]
    clashes = sorted({n for n in final if final.count(n) > 1})
    if clashes:
        raise FrameError(f"rename: names {clashes} would be used by several nodes")
    graph.rename_nodes(mapping)


# ====================================================================== merging and cleaning


def check_mergeable(graph: FrameGraph, node: str, into: str) -> None:
    """Raise unless ``node`` can be merged into ``into``.

    Raises:
        NodeNotFoundError: a node is unknown.
        FrameError: the nodes are the same, of different kinds, or of different ops.
    """
    graph.require_node(node)
    graph.require_node(into)
    if node == into:
        raise FrameError(f"cannot merge node {node!r} into itself")
    both_vars = graph.is_var(node) and graph.is_var(into)
    funcs, op_of = graph.calls_by_func, graph.op_by_func
    if not both_vars and not (node in funcs and into in funcs):
        raise FrameError(
            f"cannot merge {node!r} into {into!r}: one is a variable and the other a function node"
        )
    if not both_vars and op_of[node] != op_of[into]:
        raise FrameError(
            f"cannot merge function node {node!r} (op {op_of[node]!r}) into {into!r} (op "
            f"{op_of[into]!r})"
        )


def merge_into(graph: FrameGraph, node: str, into: str) -> None:
    """Move the elements and edges of ``node`` into ``into`` (of the same kind; function nodes
    of the same op) and remove it; the variables on the edges then receive the refs the calls
    need.

    Raises:
        NodeNotFoundError, FrameError: as :func:`check_mergeable`.
    """
    check_mergeable(graph, node, into)
    _merge(graph, node, into)


def _merge(graph: FrameGraph, node: str, into: str) -> None:
    elements = set(graph.elements(node))
    in_edges, out_edges = graph.in_edges(node), graph.out_edges(node)
    graph.remove_node(node)
    for source, _, label in in_edges:
        graph.add_edge(source, into, label)
    for _, target, label in out_edges:
        graph.add_edge(into, target, label)
    graph.elements(into).update(elements)
    complete(graph)


def merge_vars(graph: FrameGraph) -> None:
    """Merge every variable whose refs are a subset of another's into it, until no such pair
    is left (see ``ComputationFrame.merge_vars`` for which goes where)."""
    refs_by_var = graph.refs_by_var
    while True:
        by_size = sorted(refs_by_var, key=lambda v: (len(refs_by_var[v]), _name_order(v)))
        pair = next(
            (
                (small, big)
                for small in by_size
                for big in by_size
                if big != small
                and len(refs_by_var[small])
                and refs_by_var[small] <= refs_by_var[big]
                and (
                    len(refs_by_var[small]) < len(refs_by_var[big])
                    or _name_order(big) < _name_order(small)
                )
            ),
            None,
        )
        if pair is None:
            break
        _merge(graph, *pair)
        refs_by_var = graph.refs_by_var


def cleanup(graph: FrameGraph) -> None:
    """Remove the nodes that hold no elements."""
    for node in sorted(graph.nodes):
        if not graph.elements(node):
            graph.remove_node(node)
