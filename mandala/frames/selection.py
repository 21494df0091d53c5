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

from mandala.errors import FrameError, NodeNotFoundError
from mandala.frames.graph import FrameGraph

__all__ = [
    "connected",
    "connected_pairs",
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


def connected(graph: FrameGraph, func: str, call_key: bytes) -> Iterator[tuple[str, bytes]]:
    """``(variable, ref)`` pairs a call of ``func`` needs for the graph to be valid."""
    call = graph.index.calls[call_key]
    for label, variables in graph.incoming[func].items():
        for ref in graph.call_inputs_on(call, label):
            for var in variables:
                yield var, ref
    for label, variables in graph.outgoing[func].items():
        for ref in graph.call_outputs_on(call, label):
            for var in variables:
                yield var, ref


def connected_pairs(graph: FrameGraph) -> set[tuple[str, bytes]]:
    """Every ``(variable, ref)`` pair some call of the graph is connected to."""
    return {
        pair
        for func, calls in graph.calls_by_func.items()
        for c in calls
        for pair in connected(graph, func, c)
    }


def complete(graph: FrameGraph) -> None:
    """Add to the variables every ref a kept call is connected to."""
    refs_by_var = graph.refs_by_var
    for func, calls in graph.calls_by_func.items():
        for call_key in calls:
            for var, ref in connected(graph, func, call_key):
                refs_by_var[var].add(ref)


def drop_incomplete_calls(graph: FrameGraph) -> None:
    """Remove the calls one of whose connected refs is missing."""
    refs_by_var = graph.refs_by_var
    for func, calls in graph.calls_by_func.items():
        incomplete = {
            c
            for c in calls
            if any(ref not in refs_by_var[var] for var, ref in connected(graph, func, c))
        }
        calls -= incomplete


def _func_boundary(graph: FrameGraph, func: str, inputs: bool) -> set[bytes]:
    """Calls of ``func`` with no connected input (or output) ref in the graph."""
    side = graph.incoming[func] if inputs else graph.outgoing[func]
    found = set()
    for call_key in graph.calls_by_func[func]:
        call = graph.index.calls[call_key]
        touches = False
        for label, variables in side.items():
            refs = (
                list(graph.call_inputs_on(call, label))
                if inputs
                else list(graph.call_outputs_on(call, label))
            )
            if any(ref in graph.refs_by_var[var] for ref in refs for var in variables):
                touches = True
                break
        if not touches:
            found.add(call_key)
    return found


def _boundary(graph: FrameGraph, node: str, sources: bool) -> AbstractSet[bytes]:
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
    graph: FrameGraph, initial: Mapping[str, Iterable[bytes]], forward: bool, strong: bool
) -> dict[str, set[bytes]]:
    """Elements reachable from ``initial`` (see the module docstring), by node.

    A worklist over the newly reached elements of each node: every element is propagated
    once along each edge, so cycles of the graph cost no repeated sweeps.
    """
    reached: dict[str, set[bytes]] = {node: set() for node in graph.nodes}
    delta: dict[str, set[bytes]] = {}
    for node, elements in initial.items():
        new = set(elements) & graph.elements(node)
        if new:
            reached[node] |= new
            delta.setdefault(node, set()).update(new)
    while delta:
        node = min(delta)
        new = delta.pop(node)
        edges = graph.outgoing[node] if forward else graph.incoming[node]
        for label, targets in sorted(edges.items()):
            for target in sorted(targets):
                if graph.is_var(node):
                    found = _calls_reached(graph, new, target, label, forward, strong, reached)
                else:
                    found = _refs_reached(graph, new, target, label, forward)
                found -= reached[target]
                if found:
                    reached[target] |= found
                    delta.setdefault(target, set()).update(found)
    return reached


def _refs_reached(
    graph: FrameGraph, calls: set[bytes], var: str, label: str, forward: bool
) -> set[bytes]:
    found: set[bytes] = set()
    held = graph.refs_by_var[var]
    for call_key in calls:
        call = graph.index.calls[call_key]
        refs = graph.call_outputs_on(call, label) if forward else graph.call_inputs_on(call, label)
        found.update(ref for ref in refs if ref in held)
    return found


def _calls_reached(
    graph: FrameGraph,
    refs: set[bytes],
    func: str,
    label: str,
    forward: bool,
    strong: bool,
    reached: dict[str, set[bytes]],
) -> set[bytes]:
    index = graph.index
    held = graph.calls_by_func[func]
    candidates = set()
    for ref in refs:
        if forward:
            for call_key in index.consumers.get(ref, ()):
                if call_key in held and ref in graph.call_inputs_on(index.calls[call_key], label):
                    candidates.add(call_key)
        else:
            creator = index.creator.get(ref)
            if (
                creator is not None
                and creator in held
                and ref in graph.call_outputs_on(index.calls[creator], label)
            ):
                candidates.add(creator)
    if not strong:
        return candidates
    return {c for c in candidates - reached[func] if _all_reached(graph, func, c, forward, reached)}


def _all_reached(
    graph: FrameGraph, func: str, call_key: bytes, forward: bool, reached: dict[str, set[bytes]]
) -> bool:
    """Whether every connected input (output) of the call is reached in some variable."""
    call = graph.index.calls[call_key]
    side = graph.incoming[func] if forward else graph.outgoing[func]
    for label, variables in side.items():
        refs = graph.call_inputs_on(call, label) if forward else graph.call_outputs_on(call, label)
        for ref in refs:
            if not any(ref in reached[var] for var in variables):
                return False
    return True


def _restricted(
    graph: FrameGraph, region: Iterable[str], elements: Mapping[str, set[bytes]]
) -> FrameGraph:
    """A copy on the nodes of ``region`` holding ``elements``, completed to be valid."""
    result = select_nodes(graph, region)
    for node in result.nodes:
        result.set_elements(node, set(elements.get(node, ())))
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
