"""Filtering a frame's graph by the values (or ids) of its elements: ``isin``, ``where``,
comparisons, code versions.

Functions over a :class:`~mandala.frames.graph.FrameGraph` that return a new graph; the methods
of :class:`~mandala.frames.frame.ComputationFrame` delegate to them. See ``selection.py`` for how
results stay valid graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet

import numpy as np

from mandala.errors import FrameError, NodeNotFoundError
from mandala.frames.graph import FrameGraph
from mandala.frames.keys import KeySet, key_array
from mandala.frames.selection import (
    complete,
    connected_refs,
    connections,
    drop_disconnected,
    drop_incomplete_calls,
    edge_pairs,
    element_key,
)

__all__ = ["isin", "where", "with_versions", "compare", "Predicate"]

Predicate = Callable[[object], object]
"""A test of one value; its result is taken for its truth."""


def _filtered(
    graph: FrameGraph, accept: Mapping[str, AbstractSet[bytes]], prune: Iterable[str] = ()
) -> FrameGraph:
    """Keep the ``accept``-ed refs of some variables; drop the calls that lost a ref, then
    the refs of the ``prune`` variables that lost every call they were connected to."""
    result = graph.copy()
    prune = set(prune)
    before = connected_refs(result) if prune else {}
    for var, keep in accept.items():
        result.refs_by_var[var] = graph.refs_by_var[var] & keep
    drop_incomplete_calls(result)
    if prune:
        drop_disconnected(result, before, prune)
    return result


def _membership(values: Iterable[object]) -> Predicate:
    """``value in values`` as a test (``values`` read once if an iterator). For a list, tuple
    or set of hashable values the test looks the value up in a set (equal values hash
    equally) instead of comparing it with each of them; an unhashable value, or a container
    with an ``in`` of its own (a string, a dict, a Series...), is asked as it is."""
    pool = list(values) if isinstance(values, Iterator) else values

    def asked(value: object) -> bool:
        return value in pool

    if not isinstance(pool, (list, tuple, set, frozenset)):
        return asked
    try:
        hashed = set(pool)
    except TypeError:  # some of them unhashable: compare with each
        return asked

    def test(value: object) -> bool:
        try:
            return value in hashed
        except TypeError:  # an unhashable value
            return asked(value)

    return test


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
        before = connected_refs(result)
        calls = graph.index.calls
        for func, keys in result.calls_by_func.items():
            if by == "hid":
                result.calls_by_func[func] = keys & wanted
            else:
                result.calls_by_func[func] = {c for c in keys if calls[c].content_key in wanted}
        drop_disconnected(result, before)
        return result
    if node_class != "var":
        raise FrameError(f"node_class must be 'var' or 'func', got {node_class!r}")
    accept: Mapping[str, AbstractSet[bytes]]
    if by == "val":
        accept = _filter_values(graph, graph.refs_by_var, _membership(values), lenient=True)
    else:
        wanted = {element_key(v, attribute, by) for v in values}
        if by == "hid":
            accept = {var: keys & wanted for var, keys in graph.refs_by_var.items()}
        else:
            contents = key_array(list(wanted))
            refs = graph.index.refs
            accept = {
                var: KeySet(keys.table, keys.ids[np.isin(refs.content_of(keys.ids), contents)])
                for var, keys in graph.refs_by_var.items()
            }
    return _with_adjacent_calls(graph, accept)


def _with_adjacent_calls(graph: FrameGraph, accept: Mapping[str, AbstractSet[bytes]]) -> FrameGraph:
    """Keep the ``accept``-ed refs, every call connected to one of them, and the refs of
    those calls."""
    result = graph.copy()
    for var, keep in accept.items():
        result.refs_by_var[var] = graph.refs_by_var[var] & keep
    kept = result.refs_by_var
    call_table = graph.index.call_table
    for func in graph.calls_by_func:
        touching = [
            call_ids[np.isin(ref_ids, kept[var].ids)]
            for var, call_ids, ref_ids in connections(graph, func)
        ]
        result.calls_by_func[func] = KeySet.of_ids(
            call_table, np.concatenate(touching) if touching else np.empty(0, np.int64)
        )
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

    connected_before = connected_refs(graph)
    result = graph.copy()
    held = graph.calls_by_func[func]
    dropped = {func: held - {c for c in held if matches(c)}}
    ref_table = graph.index.ref_table
    while any(len(keys) for keys in dropped.values()):
        for name, keys in dropped.items():
            if not len(keys):
                continue
            made = [  # what the dropped calls made goes with them
                (var, ref_ids)
                for label, variables in result.outgoing[name].items()
                for ref_ids in (edge_pairs(result, name, label, False, keys)[1],)
                for var in variables
            ]
            result.calls_by_func[name] -= keys
            for var, ref_ids in made:
                result.refs_by_var[var] -= KeySet.of_ids(ref_table, ref_ids)
        # inputs that only the dropped calls used go too
        drop_disconnected(result, connected_before)
        before = {name: keys.copy() for name, keys in result.calls_by_func.items()}
        drop_incomplete_calls(result)
        dropped = {name: before[name] - result.calls_by_func[name] for name in result.calls_by_func}
    return result


def compare(graph: FrameGraph, test: Predicate) -> FrameGraph:
    """Every variable keeps the refs whose value passes ``test`` (values it cannot be applied
    to are dropped), with the complete calls among them."""
    return _filtered(graph, _filter_values(graph, graph.refs_by_var, test, lenient=True))
