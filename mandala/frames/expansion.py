"""Growing a frame along the stored calls: back to the creators of its refs, forward to their
consumers.

One step fetches, in a single query, the creators (or consumers) of every source (or sink)
element of the variables being expanded, groups the calls by op and by how they connect to the
frame, and adds one function node per group, reusing existing nodes and variables where their
elements agree (so repeated expansion converges, and feedback loops become cycles of the graph).
"""

from __future__ import annotations

from collections.abc import Iterable

from mandala.backends.records import DIRECTION_IN, DIRECTION_OUT
from mandala.frames.blocks import CallBlock, paused_gc
from mandala.frames.graph import FrameGraph, edge_label

__all__ = ["expand"]

Part = tuple[CallBlock, list[int] | None]
"""Calls of a block: the rows given, or (None) all of them."""


def expand(
    frame: FrameGraph,
    varnames: Iterable[str] | None,
    back: bool,
    recursive: bool,
    skip_existing: bool,
    reuse_existing: bool,
) -> set[str]:
    """Expand ``frame`` in place; returns the variables that received new refs."""
    pending = set(frame.vs if varnames is None else varnames)
    unknown = pending - set(frame.vs)
    if unknown:
        raise ValueError(
            f"Nodes {sorted(unknown)} not found in the CF (variables: {sorted(frame.vs)})"
        )
    touched: set[str] = set()
    with paused_gc():
        while pending:
            changed = _expand_step(frame, sorted(pending), back, skip_existing, reuse_existing)
            touched |= changed
            if not recursive:
                break
            pending = changed
    return touched


def _expand_step(
    frame: FrameGraph, varnames: list[str], back: bool, skip_existing: bool, reuse_existing: bool
) -> set[str]:
    index = frame.index
    frontier: dict[str, set[bytes]] = {}
    for var in varnames:
        if skip_existing and (frame.inp.get(var) if back else frame.out.get(var)):
            continue
        elements = frame.source_elements(var) if back else frame.sink_elements(var)
        if elements:
            frontier[var] = elements
    if not frontier:
        return set()
    all_refs = list(set().union(*frontier.values()))
    blocks = index.add_rows(
        index.source.call_rows_touching(all_refs, DIRECTION_OUT if back else DIRECTION_IN)
    )
    # A call connects to every expanded variable that already holds one of its outputs (going
    # back) or inputs (going forward), not only to the variable whose frontier found it.
    holders = [(var, frame.vs[var]) for var in varnames]
    groups: dict[tuple[str, tuple], list[Part]] = {}
    for block in blocks:
        connections: list[tuple[str, str]] = []
        masks: list[list[bool]] = []
        for name, slot in (block.outputs if back else block.inputs).items():
            label = name if back else edge_label(block.op_name, name)
            for var, held in holders:
                if held.issuperset(slot.refs):  # in C: the common cases, all or none
                    mask = [True] * len(slot.refs)
                elif held.isdisjoint(slot.refs):
                    continue
                else:
                    mask = [ref in held for ref in slot.refs]
                connections.append((label, var))
                masks.append(mask)
        if not masks:
            continue
        if all(all(mask) for mask in masks):  # the common case: every call, every connection
            key = (block.op_name, tuple(sorted(set(connections))))
            groups.setdefault(key, []).append((block, None))
            continue
        rows_by_pattern: dict[tuple[bool, ...], list[int]] = {}
        for row, pattern in enumerate(zip(*masks)):
            rows_by_pattern.setdefault(pattern, []).append(row)
        for pattern, rows in rows_by_pattern.items():
            connected = {connections[j] for j, on in enumerate(pattern) if on}
            if connected:
                key = (block.op_name, tuple(sorted(connected)))
                groups.setdefault(key, []).append((block, rows))
    changed: set[str] = set()
    for (op_name, connected_on), parts in sorted(groups.items(), key=lambda item: item[0]):
        changed |= _add_group(frame, op_name, connected_on, parts, back, reuse_existing)
    return changed


def _add_group(
    frame: FrameGraph,
    op_name: str,
    connections: tuple,
    parts: list[Part],
    back: bool,
    reuse_existing: bool,
) -> set[str]:
    call_keys: set[bytes] = set()
    # the other side: inputs when going back, outputs when going forward
    needed: dict[str, set[bytes]] = {}
    for block, rows in parts:
        call_keys.update(block.keys if rows is None else [block.keys[i] for i in rows])
        for name, slot in (block.inputs if back else block.outputs).items():
            label = edge_label(op_name, name) if back else name
            column = slot.refs if rows is None else [slot.refs[i] for i in rows]
            needed.setdefault(label, set()).update(column)
    func = _function_node(frame, op_name, call_keys, connections, back, reuse_existing)
    edges_before = set(frame.in_edges(func)) | set(frame.out_edges(func))
    calls_before = set(frame.fs[func])
    for label, var in connections:
        if back:
            frame._add_edge(func, var, label)
        else:
            frame._add_edge(var, func, label)
    changed: set[str] = set()
    for label in sorted(needed):
        refs = needed[label]
        existing = frame.inp[func].get(label, set()) if back else frame.out[func].get(label, set())
        var = _variable_for(frame, label, refs, existing, back, reuse_existing)
        if back:
            frame._add_edge(var, func, label)
        else:
            frame._add_edge(func, var, label)
        before = len(frame.vs[var])
        frame.vs[var] |= refs
        if len(frame.vs[var]) != before:
            changed.add(var)
    frame.fs[func] |= call_keys
    if edges_before or calls_before:  # a reused node: its other calls and edges must agree
        changed |= _complete(frame, func, edges_before, call_keys - calls_before)
    return changed


def _complete(
    frame: FrameGraph, func: str, edges_before: set[tuple[str, str, str]], new_calls: set[bytes]
) -> set[str]:
    """Restore the frame's invariant around a reused function node.

    Every call of ``func`` must find the ref it has on each connected label in one of the
    variables on that label's edges (``(v | x)@output_0`` reads "lands in v or in x"). New calls
    are checked on every connected label, old calls on labels that were not connected before.
    A missing ref goes to the variable of the newest edge on that label.
    """
    labels_before = {(target == func, label) for source, target, label in edges_before}
    changed: set[str] = set()
    for is_input, by_label in ((True, frame.inp[func]), (False, frame.out[func])):
        for label, variables in by_label.items():
            if not variables:
                continue
            scan = new_calls if (is_input, label) in labels_before else frame.fs[func]
            if not scan:
                continue
            new_edges = [
                v
                for v in sorted(variables)
                if ((v, func, label) if is_input else (func, v, label)) not in edges_before
            ]
            target_var = new_edges[0] if new_edges else sorted(variables)[0]
            holders = [frame.vs[v] for v in variables]
            _, refs = frame.index.pairs(frame.op_of[func], scan, label, is_input)
            for ref in refs:
                if not any(ref in held for held in holders):
                    frame.vs[target_var].add(ref)
                    changed.add(target_var)
    return changed


def _function_node(
    frame: FrameGraph,
    op_name: str,
    call_keys: set[bytes],
    connections: tuple,
    back: bool,
    reuse_existing: bool,
) -> str:
    if reuse_existing:
        candidates = [f for f in sorted(frame.fs) if frame.op_of[f] == op_name]
        for func in candidates:
            calls = frame.fs[func]
            if calls and (calls <= call_keys or call_keys <= calls):
                return func
        for func in candidates:
            side = frame.out[func] if back else frame.inp[func]
            if all(var in side.get(label, ()) for label, var in connections):
                return func
        if candidates:
            return candidates[0]
    name = frame.new_name(op_name)
    frame._add_func(name, op_name)
    return name


def _variable_for(
    frame: FrameGraph,
    label: str,
    refs: set[bytes],
    existing: set[str],
    back: bool,
    reuse_existing: bool,
) -> str:
    for var in sorted(existing):
        return var
    if reuse_existing:
        for var in sorted(frame.vs):
            held = frame.vs[var]
            if held and (refs <= held or held <= refs):
                return var
    hint = label if back else frame.output_var_hint(label)
    name = frame.new_name(hint)
    frame._add_var(name)
    return name
