"""The data structure of a computation frame: a graph of variables and functions over elements.

A *variable* node holds a set of refs (by history key), a *function* node a set of calls of one
op. A labelled edge ``var --label--> func`` says that the calls of ``func`` take refs of ``var``
as their input ``label``; ``func --label--> var`` says their output ``label`` lands in ``var``.
Cycles in this graph are allowed (``x = scale(x)`` in a loop); the calls themselves never form a
cycle.

Facts about elements (a call's inputs and outputs, a ref's content key) live in a
:class:`ElementIndex` shared by every frame derived from the same ``storage.cf(...)``: it only
ever grows, with facts read from the store, so sharing it is safe and makes copies cheap.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Collection, Iterable, Iterator, MutableMapping, Sequence
from typing import Any

import numpy as np

from mandala.backends.records import KIND_ATOM, CallRows, StoredCall
from mandala.engine.session import ref_from_kind
from mandala.frames.blocks import CallBlock, RefView, Slot, blocks_from_rows, rows_from_calls
from mandala.frames.source import FrameSource
from mandala.model.calls import Call, LazyCall, OpSpec
from mandala.model.refs import Ref

__all__ = [
    "ElementIndex",
    "CallView",
    "RefView",
    "FrameGraph",
    "edge_label",
    "block_slots",
    "COLLECTION_OPS",
]

COLLECTION_OPS = frozenset({"__make_list__", "__make_set__", "__make_dict__"})
"""Structural ops whose many inputs (one per element) are shown as one edge, ``elts``."""

_INDEXED_NAME = re.compile(r"^(?P<stem>.+)_(?P<index>\d+)$")


def edge_label(op_name: str, input_name: str) -> str:
    """The edge label of an input of a call (elements of built collections are ``elts``)."""
    if op_name in COLLECTION_OPS:
        return "elts"
    return input_name


class CallView(MutableMapping[bytes, StoredCall]):
    """The calls of an :class:`ElementIndex` by history key, as :class:`StoredCall` objects
    made (and kept) on first access.

    Assigning replaces what a key reads as here and in the :class:`Call` objects handed out
    (e.g. to record versions in a test), not the columns that frame operations read.
    """

    def __init__(self, index: ElementIndex) -> None:
        self._index = index
        self._made: dict[bytes, StoredCall] = {}

    def has_made(self) -> bool:
        """Whether any call was made or assigned one by one (see :meth:`made`)."""
        return bool(self._made)

    def made(self, key: bytes) -> StoredCall | None:
        """The object a key reads as if one was made or assigned already, else None."""
        return self._made.get(key)

    def __getitem__(self, key: bytes) -> StoredCall:
        found = self._made.get(key)
        if found is None:
            block, row = self._index.locate(key)
            found = self._made[key] = block.stored(row, self._index.refs)
        return found

    def __setitem__(self, key: bytes, call: StoredCall) -> None:
        self._made[key] = call

    def __delitem__(self, key: bytes) -> None:
        del self._made[key]

    def __contains__(self, key: object) -> bool:
        return key in self._index.row_of or key in self._made

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._index.row_of)

    def __len__(self) -> int:
        return len(self._index.row_of)


class ElementIndex:
    """Calls and refs seen by a family of frames, with creator and consumer indexes.

    Calls are kept as columns (:class:`CallBlock`, one per op version and signature, in
    ``blocks_by_op``); ``calls`` reads one of them as a :class:`StoredCall`.
    """

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.blocks_by_op: dict[str, list[CallBlock]] = {}
        self.row_of: dict[bytes, int] = {}
        """Call key -> its row among all blocks (in the order they were added)."""
        self._blocks: list[CallBlock] = []
        self._starts: list[int] = []
        self._rows = 0
        self.calls = CallView(self)
        self.refs = RefView()
        self._creator: dict[bytes, bytes] | None = None
        self._consumers: dict[bytes, set[bytes]] | None = None
        self.values: dict[bytes, Any] = {}
        """Values kept by ``attach()``, by content key (a frame otherwise loads on demand)."""
        self._specs: dict[tuple[str, int], OpSpec] = {}

    def load_values(self, content_keys: Iterable[bytes]) -> dict[bytes, Any]:
        """Values by content key: kept ones from memory, the rest in one request."""
        kept = self.values
        if not kept:  # nothing attached (the common case): no set difference to take
            keys = (
                content_keys if isinstance(content_keys, (set, frozenset)) else list(content_keys)
            )
            return self.source.load_values(keys) if keys else {}
        wanted = set(content_keys)
        missing = list(wanted - kept.keys())
        loaded = self.source.load_values(missing) if missing else {}
        loaded.update((key, kept[key]) for key in wanted if key in kept)
        return loaded

    # ------------------------------------------------------------------ adding facts

    def add_rows(self, rows: CallRows) -> list[CallBlock]:
        """Index calls read from the store; returns all of them as blocks (known ones too)."""
        blocks = blocks_from_rows(rows, _DetailsReader(self.source))
        self.refs.add(*rows.edges[3:6])
        for block in blocks:
            self._add_block(block)
        return blocks

    def add_calls(self, calls: Iterable[StoredCall]) -> None:
        """Index calls given as objects (the facts of another frame's index)."""
        self.add_rows(rows_from_calls(calls))

    def _add_block(self, block: CallBlock) -> None:
        row_of = self.row_of
        if not row_of.keys().isdisjoint(block.keys):  # some calls are known: keep the others
            fresh = [key not in row_of for key in block.keys]
            block = block.take([i for i, new in enumerate(fresh) if new])
            if not len(block):
                return
        start = self._rows
        self._blocks.append(block)
        self._starts.append(start)
        self._rows += len(block)
        row_of.update(zip(block.keys, range(start, self._rows)))
        self.blocks_by_op.setdefault(block.op_name, []).append(block)
        self._creator = self._consumers = None

    def add_ref(self, history_key: bytes, content_key: bytes, kind: int) -> None:
        self.refs.setdefault(history_key, (content_key, kind))

    def public_call(self, key: bytes) -> Call:
        """The :class:`Call` of an indexed call (see :meth:`public_calls`)."""
        return self.public_calls([key])[0]

    def public_calls(self, keys: Iterable[bytes]) -> list[Call]:
        """The :class:`Call` objects of indexed calls, with refs made from the columns on first
        use (a table hands out one per cell: making their refs up front would dominate)."""
        keys = list(keys)
        made = self.calls.made
        if self.calls.has_made():  # objects made or assigned one by one take precedence
            stored = [made(key) for key in keys]
            if any(call is not None for call in stored):
                return [
                    self.source.to_call(call) if call is not None else self.public_calls([key])[0]
                    for key, call in zip(keys, stored)
                ]
        rows = np.fromiter(map(self.row_of.__getitem__, keys), dtype=np.int64, count=len(keys))
        which = np.searchsorted(np.asarray(self._starts), rows, side="right") - 1
        result: list[Any] = [None] * len(keys)
        for i in np.flatnonzero(np.bincount(which)).tolist():  # the blocks holding some
            block = self._blocks[i]
            spec = self._spec(block.op_name, block.op_version)
            source = _BlockCalls(self.refs, block)
            positions = np.flatnonzero(which == i)
            for position, row in zip(
                positions.tolist(), (rows[positions] - self._starts[i]).tolist()
            ):
                # refs are made, and the calls' other fields read (for the whole block), when
                # first asked for
                result[position] = LazyCall(spec, keys[position], source, row)
        return result

    def _spec(self, op_name: str, op_version: int) -> OpSpec:
        spec = self._specs.get((op_name, op_version))
        if spec is None:
            spec = self._specs[(op_name, op_version)] = self.source.op_spec(op_name, op_version)
        return spec

    # ------------------------------------------------------------------ reading facts

    @property
    def creator(self) -> dict[bytes, bytes]:
        """Ref key -> key of the indexed call that output it (built on first use)."""
        if self._creator is None:
            creator: dict[bytes, bytes] = {}
            for block in self._blocks:
                for slot in block.outputs.values():
                    creator.update(zip(slot.refs, block.keys))
            self._creator = creator
        return self._creator

    @property
    def consumers(self) -> dict[bytes, set[bytes]]:
        """Ref key -> keys of the indexed calls that take it as an input (built on first use)."""
        if self._consumers is None:
            consumers: dict[bytes, set[bytes]] = {}
            for block in self._blocks:
                for slot in block.inputs.values():
                    for ref, key in zip(slot.refs, block.keys):
                        found = consumers.get(ref)
                        if found is None:
                            consumers[ref] = {key}
                        else:
                            found.add(key)
            self._consumers = consumers
        return self._consumers

    def locate(self, key: bytes) -> tuple[CallBlock, int]:
        """The block of a call and its row there.

        Raises:
            KeyError: the call is not indexed.
        """
        row = self.row_of[key]
        i = bisect_right(self._starts, row) - 1
        return self._blocks[i], row - self._starts[i]

    def selected(
        self, op_name: str, call_keys: Collection[bytes]
    ) -> list[tuple[CallBlock, list[int] | None]]:
        """The blocks of ``op_name`` holding calls of ``call_keys``, with the rows of those
        calls (None: every row of the block)."""
        blocks = self.blocks_by_op.get(op_name, ())
        if not call_keys or not blocks:
            return []
        total = sum(len(block) for block in blocks)
        if len(call_keys) * 4 < total:  # a few calls: find each one
            found: dict[int, tuple[CallBlock, list[int]]] = {}
            for key in call_keys:
                if key not in self.row_of:
                    continue
                block, row = self.locate(key)
                if block.op_name == op_name:
                    found.setdefault(id(block), (block, []))[1].append(row)
            return [
                (block, None if len(rows) == len(block) else sorted(rows))
                for block, rows in found.values()
            ]
        selected: list[tuple[CallBlock, list[int] | None]] = []
        issuperset = call_keys.issuperset if isinstance(call_keys, (set, frozenset)) else None
        for block in blocks:
            if issuperset is not None and issuperset(block.keys):
                selected.append((block, None))
                continue
            rows = [i for i, key in enumerate(block.keys) if key in call_keys]
            if len(rows) == len(block):
                selected.append((block, None))
            elif rows:
                selected.append((block, rows))
        return selected

    def pairs(
        self, op_name: str, call_keys: Collection[bytes], label: str, is_input: bool
    ) -> tuple[list[bytes], list[bytes]]:
        """``(calls, refs)``, aligned: the refs that calls of ``call_keys`` have on edges
        labelled ``label`` (inputs, or outputs)."""
        calls: list[bytes] = []
        refs: list[bytes] = []
        for block, rows in self.selected(op_name, call_keys):
            for slot in block_slots(block, label, is_input):
                if rows is None:
                    calls += block.keys
                    refs += slot.refs
                else:
                    keys, column = block.keys, slot.refs
                    calls += [keys[i] for i in rows]
                    refs += [column[i] for i in rows]
        return calls, refs


class _DetailsReader:
    """Reads the details of a block's calls from the frame's source. A block holds this rather
    than the index, so that a call a frame handed out keeps its own block alive, not the whole
    index of the frame."""

    __slots__ = ("source",)

    def __init__(self, source: FrameSource) -> None:
        self.source = source

    def __call__(self, call_ids: list[int]) -> Sequence[list[Any]]:
        return self.source.call_details(call_ids)


class _BlockCalls:
    """The refs and details of the calls of one block, for the :class:`LazyCall` objects a
    frame hands out (one of these per block, not two closures per call)."""

    __slots__ = ("refs", "block")

    def __init__(self, refs: RefView, block: CallBlock) -> None:
        self.refs = refs
        self.block = block

    def call_refs(self, row: int) -> tuple[dict[str, Ref], dict[str, Ref]]:
        content, kinds = self.refs.content, self.refs.kinds
        return (
            {
                name: ref_from_kind(kinds.get(key, KIND_ATOM), content[key], key)
                for name, slot in self.block.inputs.items()
                for key in (slot.refs[row],)
            },
            {
                name: ref_from_kind(kinds.get(key, KIND_ATOM), content[key], key)
                for name, slot in self.block.outputs.items()
                for key in (slot.refs[row],)
            },
        )

    def call_details(self, row: int) -> tuple[Any, ...]:
        return tuple(column[row] for column in self.block.heads())


def block_slots(block: CallBlock, label: str, is_input: bool) -> list[Slot]:
    """The slots of a block that travel on edges labelled ``label``."""
    if not is_input:
        slot = block.outputs.get(label)
        return [] if slot is None else [slot]
    if block.op_name in COLLECTION_OPS:
        return list(block.inputs.values()) if label == "elts" else []
    slot = block.inputs.get(label)
    return [] if slot is None else [slot]


class FrameGraph:
    """Nodes, labelled edges and element sets; the mutation primitives every operation uses."""

    def __init__(self, index: ElementIndex) -> None:
        self.index = index
        self.vs: dict[str, set[bytes]] = {}
        self.fs: dict[str, set[bytes]] = {}
        self.op_of: dict[str, str] = {}
        self.inp: dict[str, dict[str, set[str]]] = {}
        self.out: dict[str, dict[str, set[str]]] = {}

    # ------------------------------------------------------------------ nodes and edges

    @property
    def vnames(self) -> set[str]:
        """Names of the variable nodes."""
        return set(self.vs)

    @property
    def fnames(self) -> set[str]:
        """Names of the function nodes."""
        return set(self.fs)

    @property
    def nodes(self) -> set[str]:
        return set(self.vs) | set(self.fs)

    def edges(self) -> list[tuple[str, str, str]]:
        """Every edge as ``(source, target, label)``, sorted."""
        return sorted(
            (source, target, label)
            for source, by_label in self.out.items()
            for label, targets in by_label.items()
            for target in targets
        )

    def in_edges(self, node: str) -> list[tuple[str, str, str]]:
        return sorted(
            (source, node, label)
            for label, sources in self.inp.get(node, {}).items()
            for source in sources
        )

    def out_edges(self, node: str) -> list[tuple[str, str, str]]:
        return sorted(
            (node, target, label)
            for label, targets in self.out.get(node, {}).items()
            for target in targets
        )

    def in_neighbors(self, node: str) -> set[str]:
        return {source for sources in self.inp.get(node, {}).values() for source in sources}

    def out_neighbors(self, node: str) -> set[str]:
        return {target for targets in self.out.get(node, {}).values() for target in targets}

    @property
    def sources(self) -> set[str]:
        """Nodes with no incoming edge."""
        return {n for n in self.nodes if not self.in_neighbors(n)}

    @property
    def sinks(self) -> set[str]:
        """Nodes with no outgoing edge."""
        return {n for n in self.nodes if not self.out_neighbors(n)}

    def _add_var(self, name: str) -> None:
        self.vs.setdefault(name, set())
        self.inp.setdefault(name, {})
        self.out.setdefault(name, {})

    def _add_func(self, name: str, op_name: str) -> None:
        self.fs.setdefault(name, set())
        self.op_of[name] = op_name
        self.inp.setdefault(name, {})
        self.out.setdefault(name, {})

    def _add_edge(self, source: str, target: str, label: str) -> None:
        self.out.setdefault(source, {}).setdefault(label, set()).add(target)
        self.inp.setdefault(target, {}).setdefault(label, set()).add(source)

    def _drop_edge(self, source: str, target: str, label: str) -> None:
        targets = self.out.get(source, {}).get(label)
        if targets is not None:
            targets.discard(target)
            if not targets:
                del self.out[source][label]
        sources = self.inp.get(target, {}).get(label)
        if sources is not None:
            sources.discard(source)
            if not sources:
                del self.inp[target][label]

    def _remove_node(self, node: str) -> None:
        for source, _, label in self.in_edges(node):
            self._drop_edge(source, node, label)
        for _, target, label in self.out_edges(node):
            self._drop_edge(node, target, label)
        self.vs.pop(node, None)
        self.fs.pop(node, None)
        self.op_of.pop(node, None)
        self.inp.pop(node, None)
        self.out.pop(node, None)

    def is_var(self, node: str) -> bool:
        return node in self.vs

    # ------------------------------------------------------------------ naming

    def new_name(self, hint: str, taken: Iterable[str] | None = None) -> str:
        """``hint`` if it is free, else ``hint_0``, ``hint_1``, ... (never mangling the hint)."""
        used = set(self.vs) | set(self.fs) if taken is None else set(taken)
        if hint not in used:
            return hint
        i = 0
        while f"{hint}_{i}" in used:
            i += 1
        return f"{hint}_{i}"

    @staticmethod
    def output_var_hint(label: str) -> str:
        """Variables for unnamed outputs (``output_0``) are called ``var_0``, as in the original."""
        match = _INDEXED_NAME.match(label)
        if match is not None and match.group("stem") == "output":
            return f"var_{match.group('index')}"
        return label

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
        for label, funcs in self.inp.get(var, {}).items():
            for func in funcs:
                if creator in self.fs[func] and ref in self.call_outputs_on(call, label):
                    found.append((func, creator))
        return found

    def consumers_in_frame(self, var: str, ref: bytes) -> list[tuple[str, bytes]]:
        """(function node, call) pairs of the frame that take ``ref`` from ``var``."""
        found = []
        consumers = self.index.consumers.get(ref, ())
        for label, funcs in self.out.get(var, {}).items():
            for func in funcs:
                calls = self.fs[func]
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
        held = self.vs[var]
        found: dict[bytes, list[tuple[str, bytes]]] = {}
        for label, funcs in self.inp.get(var, {}).items():
            for func in funcs:
                calls, refs = self.index.pairs(self.op_of[func], self.fs[func], label, False)
                for call_key, ref in zip(calls, refs):
                    if ref in held:
                        found.setdefault(ref, []).append((func, call_key))
        return found

    def created_refs(self, var: str) -> set[bytes]:
        """The refs of ``var`` created by calls of the frame (on an edge into ``var``)."""
        found: set[bytes] = set()
        for label, funcs in self.inp.get(var, {}).items():
            for func in funcs:
                found.update(self.index.pairs(self.op_of[func], self.fs[func], label, False)[1])
        return found & self.vs[var]

    def consumed_in_frame(self, var: str) -> set[bytes]:
        """Refs of ``var`` that some call of the frame takes as an input from ``var``."""
        found: set[bytes] = set()
        for label, funcs in self.out.get(var, {}).items():
            for func in funcs:
                found.update(self.index.pairs(self.op_of[func], self.fs[func], label, True)[1])
        return found & self.vs[var]

    def source_elements(self, var: str) -> set[bytes]:
        """Refs of ``var`` with no creator call in the frame (on an edge into ``var``)."""
        if not self.inp.get(var):
            return set(self.vs[var])
        return self.vs[var] - self.created_refs(var)

    def sink_elements(self, var: str) -> set[bytes]:
        """Refs of ``var`` that no call of the frame consumes (on an edge out of ``var``)."""
        if not self.out.get(var):
            return set(self.vs[var])
        return self.vs[var] - self.consumed_in_frame(var)

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
        ready = sorted(
            (i for i, d in enumerate(indegree) if d == 0), key=lambda i: min(components[i])
        )
        order: list[str] = []
        while ready:
            i = ready.pop(0)
            order.extend(sorted(components[i]))
            for j in sorted(successors[i], key=lambda j: min(components[j])):
                indegree[j] -= 1
                if indegree[j] == 0:
                    ready.append(j)
            ready.sort(key=lambda j: min(components[j]))
        return order

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

    def copy(self) -> Any:
        """A copy of the graph and element sets (the element facts are shared)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        self._copy_structure(other)
        return other

    def _copy_structure(self, other: FrameGraph) -> None:
        other.vs = {k: set(v) for k, v in self.vs.items()}
        other.fs = {k: set(v) for k, v in self.fs.items()}
        other.op_of = dict(self.op_of)
        other.inp = {k: {lab: set(s) for lab, s in v.items()} for k, v in self.inp.items()}
        other.out = {k: {lab: set(s) for lab, s in v.items()} for k, v in self.out.items()}

    def _check(self) -> None:
        """Raise unless every call's ref on each connected label is in a variable of that label.

        Several variables on one label (``(v | x)@output_0``) mean "in one of them": a feedback
        loop puts the last outputs of an op in one variable and the earlier ones in another.
        """
        for func, calls in self.fs.items():
            for call_key in calls:
                call = self.index.calls[call_key]
                for side, by_label in (("input", self.inp[func]), ("output", self.out[func])):
                    for label, variables in by_label.items():
                        refs = (
                            self.call_inputs_on(call, label)
                            if side == "input"
                            else self.call_outputs_on(call, label)
                        )
                        for ref in refs:
                            if not any(ref in self.vs[var] for var in variables):
                                raise RuntimeError(
                                    f"frame invariant broken: {side} {label!r} of a call of "
                                    f"{func!r} is in none of {sorted(variables)}"
                                )
