"""Growing a frame along the stored calls: back to the creators of its refs, forward to their
consumers.

One step fetches, in a single query, the creators (or consumers) of every source (or sink)
element of the variables being expanded, groups the calls by op and by how they connect to the
frame, and adds one function node per group, reusing existing nodes and variables where their
elements agree (so repeated expansion converges, and feedback loops become cycles of the graph).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mandala.backends.records import DIRECTION_IN, DIRECTION_OUT
from mandala.frames.blocks import CallBlock, paused_gc
from mandala.frames.graph import FrameGraph
from mandala.frames.index import edge_label
from mandala.frames.keys import KeySet, sorted_unique

__all__ = ["expand"]

Part = tuple[CallBlock, np.ndarray | None]
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
    pending = set(frame.refs_by_var if varnames is None else varnames)
    unknown = pending - set(frame.refs_by_var)
    if unknown:
        raise ValueError(
            f"Nodes {sorted(unknown)} not found in the CF (variables: {sorted(frame.refs_by_var)})"
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
    frontier: list[np.ndarray] = []
    for var in varnames:
        if skip_existing and (frame.incoming.get(var) if back else frame.outgoing.get(var)):
            continue
        elements = frame.source_elements(var) if back else frame.sink_elements(var)
        if len(elements):
            frontier.append(elements.ids)
    if not frontier:
        return set()
    wanted = index.ref_table.to_bytes(sorted_unique(np.concatenate(frontier)))
    blocks = index.add_rows(
        index.source.call_rows_touching(wanted, DIRECTION_OUT if back else DIRECTION_IN)
    )
    # A call connects to every expanded variable that already holds one of its outputs (going
    # back) or inputs (going forward), not only to the variable whose frontier found it.
    holders = [(var, frame.refs_by_var[var].ids) for var in varnames]
    groups: dict[tuple[str, tuple], list[Part]] = {}
    for block in blocks:
        connections: list[tuple[str, str]] = []
        masks: list[np.ndarray] = []
        for name, slot in (block.outputs if back else block.inputs).items():
            label = name if back else edge_label(block.op_name, name)
            for var, held in holders:
                mask = np.isin(slot.ids, held)
                if not mask.any():
                    continue
                connections.append((label, var))
                masks.append(mask)
        if not masks:
            continue
        if all(mask.all() for mask in masks):  # the common case: every call, every connection
            key = (block.op_name, tuple(sorted(set(connections))))
            groups.setdefault(key, []).append((block, None))
            continue
        patterns = np.packbits(np.stack(masks, axis=1), axis=1)
        _, first, inverse = np.unique(patterns, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        for group, row in enumerate(first.tolist()):
            connected = {connections[j] for j, mask in enumerate(masks) if mask[row]}
            if connected:
                key = (block.op_name, tuple(sorted(connected)))
                groups.setdefault(key, []).append((block, np.flatnonzero(inverse == group)))
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
    index = frame.index
    call_parts: list[np.ndarray] = []
    # the other side: inputs when going back, outputs when going forward
    needed: dict[str, list[np.ndarray]] = {}
    for block, rows in parts:
        call_parts.append(block.ids if rows is None else block.ids[rows])
        for name, slot in (block.inputs if back else block.outputs).items():
            label = edge_label(op_name, name) if back else name
            needed.setdefault(label, []).append(slot.ids if rows is None else slot.ids[rows])
    call_keys = KeySet.of_ids(index.call_table, np.concatenate(call_parts))
    func = _function_node(frame, op_name, call_keys, connections, back, reuse_existing)
    edges_before = set(frame.in_edges(func)) | set(frame.out_edges(func))
    calls_before = frame.calls_by_func[func].copy()
    for label, var in connections:
        if back:
            frame.add_edge(func, var, label)
        else:
            frame.add_edge(var, func, label)
    changed: set[str] = set()
    # Variables are chosen for every label before any receives refs, and a variable on one
    # label of this node is not reused for another: two arguments that happen to hold equal
    # values (``n_estimators=5`` next to ``max_depth=5``) stay two variables.
    side = frame.incoming[func] if back else frame.outgoing[func]
    chosen: dict[str, tuple[str, KeySet]] = {}
    for label in sorted(needed):
        refs = KeySet.of_ids(index.ref_table, np.concatenate(needed[label]))
        taken = {v for other, on in side.items() if other != label for v in on}
        taken |= {var for var, _ in chosen.values()}
        var = _variable_for(frame, label, refs, side.get(label, set()), taken, back, reuse_existing)
        chosen[label] = (var, refs)
    for label, (var, refs) in chosen.items():
        if back:
            frame.add_edge(var, func, label)
        else:
            frame.add_edge(func, var, label)
        before = len(frame.refs_by_var[var])
        frame.refs_by_var[var] |= refs
        if len(frame.refs_by_var[var]) != before:
            changed.add(var)
    frame.calls_by_func[func] |= call_keys
    if edges_before or len(calls_before):  # a reused node: its other calls and edges must agree
        changed |= _complete(frame, func, edges_before, call_keys - calls_before)
    return changed


def _complete(
    frame: FrameGraph, func: str, edges_before: set[tuple[str, str, str]], new_calls: KeySet
) -> set[str]:
    """Restore the frame's invariant around a reused function node.

    Every call of ``func`` must find the ref it has on each connected label in one of the
    variables on that label's edges (``(v | x)@output_0`` reads "lands in v or in x"). New calls
    are checked on every connected label, old calls on labels that were not connected before.
    A missing ref goes to the variable of the newest edge on that label.
    """
    labels_before = {(target == func, label) for source, target, label in edges_before}
    changed: set[str] = set()
    for is_input, by_label in ((True, frame.incoming[func]), (False, frame.outgoing[func])):
        for label, variables in by_label.items():
            if not variables:
                continue
            scan = new_calls if (is_input, label) in labels_before else frame.calls_by_func[func]
            if not len(scan):
                continue
            new_edges = [
                v
                for v in sorted(variables)
                if ((v, func, label) if is_input else (func, v, label)) not in edges_before
            ]
            target_var = new_edges[0] if new_edges else sorted(variables)[0]
            _, refs = frame.index.pair_ids(frame.op_by_func[func], scan, label, is_input)
            missing = np.ones(len(refs), dtype=bool)
            for v in variables:
                missing &= ~np.isin(refs, frame.refs_by_var[v].ids)
            if missing.any():
                frame.refs_by_var[target_var] |= KeySet.of_ids(frame.index.ref_table, refs[missing])
                changed.add(target_var)
    return changed


def _function_node(
    frame: FrameGraph,
    op_name: str,
    call_keys: KeySet,
    connections: tuple,
    back: bool,
    reuse_existing: bool,
) -> str:
    if reuse_existing:
        candidates = [f for f in sorted(frame.calls_by_func) if frame.op_by_func[f] == op_name]
        for func in candidates:
            calls = frame.calls_by_func[func]
            if calls and (calls <= call_keys or call_keys <= calls):
                return func
        for func in candidates:
            side = frame.outgoing[func] if back else frame.incoming[func]
            if all(var in side.get(label, ()) for label, var in connections):
                return func
        if candidates:
            return candidates[0]
    name = frame.new_name(op_name)
    frame.add_func(name, op_name)
    return name


def _variable_for(
    frame: FrameGraph,
    label: str,
    refs: KeySet,
    existing: set[str],
    taken: set[str],
    back: bool,
    reuse_existing: bool,
) -> str:
    """The variable a function node's ``label`` connects to: the one it has already, else one
    holding the same refs (or a subset or superset) that no other label of the node uses,
    else a new one named after the label."""
    for var in sorted(existing):
        return var
    if reuse_existing:
        for var in sorted(frame.refs_by_var):
            if var in taken:
                continue
            held = frame.refs_by_var[var]
            if held and (refs <= held or held <= refs):
                return var
    name = frame.new_name(label) if back else frame.output_var_name(label)
    frame.add_var(name)
    return name
