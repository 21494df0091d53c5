"""Filtering a frame's graph by the values (or ids) of its elements: ``isin``, ``where``,
comparisons, code versions.

Functions over a :class:`~mandala.frames.graph.FrameGraph` that return a new graph; the methods
of :class:`~mandala.frames.frame.ComputationFrame` delegate to them. See ``selection.py`` for how
results stay valid graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet

from mandala.errors import FrameError, NodeNotFoundError
from mandala.frames.graph import FrameGraph
from mandala.frames.selection import (
    complete,
    connected,
    connected_pairs,
    drop_incomplete_calls,
    element_key,
)

__all__ = ["isin", "where", "with_versions", "compare", "Predicate"]

Predicate = Callable[[object], object]
"""A test of one value; its result is taken for its truth."""


def _filtered(
    graph: FrameGraph, accept: Mapping[str, set[bytes]], prune: Iterable[str] = ()
) -> FrameGraph:
    """Keep the ``accept``-ed refs of some variables; drop the calls that lost a ref, then
    the refs of the ``prune`` variables that lost every call they were connected to."""
    result = graph.copy()
    prune = set(prune)
    before = connected_pairs(result) if prune else set()
    for var, keep in accept.items():
        result.refs_by_var[var] = set(keep) & graph.refs_by_var[var]
    drop_incomplete_calls(result)
    if prune:
        for var, ref in before - connected_pairs(result):
            if var in prune:
                result.refs_by_var[var].discard(ref)
    return result


def _filter_values(
    graph: FrameGraph, variables: Iterable[str], test: Predicate, lenient: bool
) -> dict[str, set[bytes]]:
    variables = sorted(set(variables))
    refs_by_var = graph.refs_by_var
    values = graph.index.load_ref_values(k for v in variables for k in refs_by_var[v])
    accept: dict[str, set[bytes]] = {}
    for var in variables:
        keep = set()
        for key in refs_by_var[var]:
            if lenient:
                try:
                    ok = bool(test(values[key]))
                except (TypeError, ValueError):
                    ok = False  # not comparable (or an array's ambiguous truth value)
            else:
                ok = bool(test(values[key]))
            if ok:
                keep.add(key)
        accept[var] = keep
    return accept


def isin(
    graph: FrameGraph, values: Iterable[object], by: str = "val", node_class: str = "var"
) -> FrameGraph:
    """Keep the elements that are in ``values`` (see ``ComputationFrame.isin``).

    Raises:
        FrameError: an unknown ``by`` or ``node_class``, or ``by="val"`` for calls.
    """
    if by not in ("val", "hid", "cid"):
        raise FrameError(f"by must be 'val', 'hid' or 'cid', got {by!r}")
    attribute = "history_key" if by == "hid" else "content_key"
    if node_class == "func":
        if by == "val":
            raise FrameError("isin(node_class='func') selects calls by 'hid' or 'cid'")
        wanted = {element_key(v, attribute, by) for v in values}
        result = graph.copy()
        before = connected_pairs(result)
        calls = graph.index.calls
        for func, keys in result.calls_by_func.items():
            if by == "hid":
                result.calls_by_func[func] = keys & wanted
            else:
                result.calls_by_func[func] = {c for c in keys if calls[c].content_key in wanted}
        for var, ref in before - connected_pairs(result):
            result.refs_by_var[var].discard(ref)
        return result
    if node_class != "var":
        raise FrameError(f"node_class must be 'var' or 'func', got {node_class!r}")
    accept: Mapping[str, AbstractSet[bytes]]
    if by == "val":
        pool = list(values) if isinstance(values, Iterator) else values  # read it once
        accept = _filter_values(
            graph,
            graph.refs_by_var,
            lambda value: value in pool,
            lenient=True,
        )
    else:
        wanted = {element_key(v, attribute, by) for v in values}
        refs = graph.index.refs
        accept = {
            var: keys & wanted if by == "hid" else {r for r in keys if refs[r][0] in wanted}
            for var, keys in graph.refs_by_var.items()
        }
    return _with_adjacent_calls(graph, accept)


def _with_adjacent_calls(graph: FrameGraph, accept: Mapping[str, AbstractSet[bytes]]) -> FrameGraph:
    """Keep the ``accept``-ed refs, every call connected to one of them, and the refs of
    those calls."""
    result = graph.copy()
    for var, keep in accept.items():
        result.refs_by_var[var] = set(keep) & graph.refs_by_var[var]
    kept = {(var, ref) for var, refs in result.refs_by_var.items() for ref in refs}
    for func, calls in graph.calls_by_func.items():
        result.calls_by_func[func] = {
            c for c in calls if any(pair in kept for pair in connected(graph, func, c))
        }
    complete(result)
    return result


def where(
    graph: FrameGraph, var: str | Iterable[str] | Predicate, predicate: Predicate | None = None
) -> FrameGraph:
    """Keep the refs of a variable whose value satisfies ``predicate(value)`` (see
    ``ComputationFrame.where``).

    Raises:
        NodeNotFoundError: an unknown variable.
        TypeError: no callable predicate.
    """
    variables: list[str]
    if predicate is None and callable(var):
        predicate, variables = var, sorted(graph.refs_by_var)
    elif isinstance(var, str):
        variables = [var]
    else:
        variables = list(var)  # type: ignore[arg-type]
    if not callable(predicate):
        raise TypeError("where needs a predicate: cf.where('var', lambda value: ...)")
    for name in variables:
        graph.require_node(name)
        if not graph.is_var(name):
            raise NodeNotFoundError(f"Node {name} is a function node; where filters variables")
    accept = _filter_values(graph, variables, predicate, lenient=False)
    return _filtered(graph, accept, prune=set(graph.refs_by_var) - set(variables))


def with_versions(graph: FrameGraph, func: str, versions: str | Iterable[str]) -> FrameGraph:
    """Keep the calls of function node ``func`` that ran one of the given code versions (see
    ``ComputationFrame.with_versions``).

    Raises:
        NodeNotFoundError: an unknown function node.
        FrameError: an id shorter than 6 characters.
    """
    graph.require_node(func)
    if func not in graph.calls_by_func:
        raise NodeNotFoundError(f"Node {func} is a variable; with_versions filters function nodes")
    wanted = [versions] if isinstance(versions, str) else list(versions)
    short = [v for v in wanted if len(v) < 6]
    if short:
        raise FrameError(f"version ids {short} are too short; give at least 6 characters")
    prefixes = tuple(v.lower() for v in wanted)
    calls = graph.index.calls

    def matches(call_key: bytes) -> bool:
        call = calls[call_key]
        return any(
            version is not None and version.startswith(prefixes)
            for version in (call.content_version, call.semantic_version)
        )

    connected_before = connected_pairs(graph)
    result = graph.copy()
    dropped = {func: {c for c in graph.calls_by_func[func] if not matches(c)}}
    while any(dropped.values()):
        for name, keys in dropped.items():
            result.calls_by_func[name] -= keys
            for call_key in keys:  # what the dropped calls made goes with them
                for label, variables in result.outgoing[name].items():
                    for ref in result.call_outputs_on(calls[call_key], label):
                        for var in variables:
                            result.refs_by_var[var].discard(ref)
        # inputs that only the dropped calls used go too
        for var, ref in connected_before - connected_pairs(result):
            result.refs_by_var[var].discard(ref)
        before = {name: set(keys) for name, keys in result.calls_by_func.items()}
        drop_incomplete_calls(result)
        dropped = {name: before[name] - result.calls_by_func[name] for name in result.calls_by_func}
    return result


def compare(graph: FrameGraph, test: Predicate) -> FrameGraph:
    """Every variable keeps the refs whose value passes ``test`` (values it cannot be applied
    to are dropped), with the complete calls among them."""
    return _filtered(graph, _filter_values(graph, graph.refs_by_var, test, lenient=True))
