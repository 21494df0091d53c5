"""Restricting a frame: selecting nodes, following reachability, filtering elements, set algebra.

Written as a mixin of :class:`~mandala.frames.frame.ComputationFrame`. Every public method
returns a new frame (or, with ``inplace=True`` where offered, changes the frame and returns
None), and every frame it returns is *valid*: each call of a function node has its inputs and
outputs in the variables on the node's edges (``FrameGraph._check``). Operations that can only
remove elements keep validity by dropping the calls that lost one of their refs; operations
that follow calls (reachability, union, merging function nodes) keep it by adding the refs that
the calls they keep are connected to.

Element reachability (``upstream``, ``downstream``, ``midstream``, ``drop_unreachable``):
going forward, a ref is reached when a reached call outputs it on an edge into its variable,
and a call is reached when its inputs on the edges into its function node are reached, *all*
of them with ``how="strong"`` (the call could be recomputed from what was reached), *any* of
them with ``how="weak"``. Going back is the mirror image (outputs instead of inputs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from mandala.frames.graph import FrameGraph
from mandala.frames.keys import KeySet

if TYPE_CHECKING:
    from mandala.frames.source import FrameSource
    from mandala.model.refs import Ref

__all__ = ["SelectionMixin"]

_HOWS = ("strong", "weak")
_DIRECTIONS = {"forward": True, "back": False, "backward": False}


def _name_order(name: str) -> tuple[int, str]:
    """Shorter names first: ``y`` before ``y_0``, ``x_0`` before ``x_0_1``."""
    return (len(name), name)


def _strong(how: str) -> bool:
    if how not in _HOWS:
        raise ValueError(f"how must be 'strong' or 'weak', got {how!r}")
    return how == "strong"


def _flatten(nodes: Sequence[Any]) -> list[str]:
    """``f("a", "b")`` and ``f(["a", "b"])`` both mean the nodes a and b."""
    if len(nodes) == 1 and not isinstance(nodes[0], str) and isinstance(nodes[0], Iterable):
        return list(nodes[0])
    return list(nodes)


def _element_key(item: Any, attribute: str, what: str) -> bytes:
    """A history or content key from a hex id, raw bytes, or a Ref/Call."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        try:
            return bytes.fromhex(item)
        except ValueError:
            raise ValueError(f"{what} {item!r} is not a hexadecimal id") from None
    key = getattr(item, attribute, None)
    if isinstance(key, bytes):
        return key
    raise TypeError(f"expected a {what} (hex str), bytes or a Ref/Call, got {type(item).__name__}")


class SelectionMixin(FrameGraph):
    """Selection, restriction, filtering and set algebra of ComputationFrame."""

    if TYPE_CHECKING:
        source: FrameSource

        def _ref(self, key: bytes) -> Ref: ...

    # ================================================================== helpers

    def _require(self, nodes: Iterable[str]) -> None:
        missing = set(nodes) - self.nodes
        if missing:
            raise ValueError(f"Nodes {sorted(missing)} not found in the CF")

    def _require_node(self, node: str) -> None:
        if node not in self.vs and node not in self.fs:
            raise ValueError(f"Node {node} not found in the CF (nodes: {sorted(self.nodes)})")

    def _elements(self, node: str) -> KeySet:
        return self.vs[node] if node in self.vs else self.fs[node]

    def _set_elements(self, node: str, elements: set[bytes]) -> None:
        if node in self.vs:
            self.vs[node] = elements
        else:
            self.fs[node] = elements

    def _connected(self, func: str, call_key: bytes) -> Iterator[tuple[str, bytes]]:
        """``(variable, ref)`` pairs a call of ``func`` needs for the frame to be valid."""
        call = self.index.calls[call_key]
        for label, variables in self.inp[func].items():
            for ref in self.call_inputs_on(call, label):
                for var in variables:
                    yield var, ref
        for label, variables in self.out[func].items():
            for ref in self.call_outputs_on(call, label):
                for var in variables:
                    yield var, ref

    def _connected_pairs(self) -> set[tuple[str, bytes]]:
        return {
            pair
            for func, calls in self.fs.items()
            for c in calls
            for pair in self._connected(func, c)
        }

    def _complete(self) -> None:
        """Add to the variables every ref a kept call is connected to (in place)."""
        for func, calls in self.fs.items():
            for call_key in calls:
                for var, ref in self._connected(func, call_key):
                    self.vs[var].add(ref)

    def _drop_incomplete_calls(self) -> None:
        """Remove the calls one of whose connected refs is missing (in place)."""
        vs = self.vs
        for func, calls in self.fs.items():
            incomplete = {
                c for c in calls if any(ref not in vs[var] for var, ref in self._connected(func, c))
            }
            calls -= incomplete

    def _func_boundary(self, func: str, inputs: bool) -> set[bytes]:
        """Calls of ``func`` with no connected input (or output) ref in the frame."""
        side = self.inp[func] if inputs else self.out[func]
        found = set()
        for call_key in self.fs[func]:
            call = self.index.calls[call_key]
            touches = False
            for label, variables in side.items():
                refs = (
                    list(self.call_inputs_on(call, label))
                    if inputs
                    else list(self.call_outputs_on(call, label))
                )
                if any(ref in self.vs[var] for ref in refs for var in variables):
                    touches = True
                    break
            if not touches:
                found.add(call_key)
        return found

    def _boundary(self, node: str, sources: bool) -> AbstractSet[bytes]:
        """Source (or sink) elements of a node: no creator (consumer) connected in the frame."""
        if node in self.vs:
            return self.source_elements(node) if sources else self.sink_elements(node)
        return self._func_boundary(node, inputs=sources)

    def _reachable(self, starts: Iterable[str], forward: bool) -> set[str]:
        """Nodes reachable from ``starts`` along edges (forward) or against them (back)."""
        seen = set(starts)
        stack = list(seen)
        while stack:
            node = stack.pop()
            for nxt in self.out_neighbors(node) if forward else self.in_neighbors(node):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    # ------------------------------------------------------------------ element reachability

    def _reach(
        self, initial: Mapping[str, Iterable[bytes]], forward: bool, strong: bool
    ) -> dict[str, set[bytes]]:
        """Elements reachable from ``initial`` (see the module docstring), by node.

        A worklist over the newly reached elements of each node: every element is propagated
        once along each edge, so cycles of the graph cost no repeated sweeps.
        """
        reached: dict[str, set[bytes]] = {node: set() for node in self.nodes}
        delta: dict[str, set[bytes]] = {}
        for node, elements in initial.items():
            new = set(elements) & self._elements(node)
            if new:
                reached[node] |= new
                delta.setdefault(node, set()).update(new)
        while delta:
            node = min(delta)
            new = delta.pop(node)
            edges = self.out[node] if forward else self.inp[node]
            for label, targets in sorted(edges.items()):
                for target in sorted(targets):
                    if node in self.vs:
                        found = self._calls_reached(
                            node, new, target, label, forward, strong, reached
                        )
                    else:
                        found = self._refs_reached(new, target, label, forward)
                    found -= reached[target]
                    if found:
                        reached[target] |= found
                        delta.setdefault(target, set()).update(found)
        return reached

    def _refs_reached(self, calls: set[bytes], var: str, label: str, forward: bool) -> set[bytes]:
        found: set[bytes] = set()
        held = self.vs[var]
        for call_key in calls:
            call = self.index.calls[call_key]
            refs = (
                self.call_outputs_on(call, label) if forward else self.call_inputs_on(call, label)
            )
            found.update(ref for ref in refs if ref in held)
        return found

    def _calls_reached(
        self,
        var: str,
        refs: set[bytes],
        func: str,
        label: str,
        forward: bool,
        strong: bool,
        reached: dict[str, set[bytes]],
    ) -> set[bytes]:
        index = self.index
        held = self.fs[func]
        candidates = set()
        for ref in refs:
            if forward:
                for call_key in index.consumers.get(ref, ()):
                    if call_key in held and ref in self.call_inputs_on(
                        index.calls[call_key], label
                    ):
                        candidates.add(call_key)
            else:
                creator = index.creator.get(ref)
                if (
                    creator is not None
                    and creator in held
                    and ref in self.call_outputs_on(index.calls[creator], label)
                ):
                    candidates.add(creator)
        if not strong:
            return candidates
        return {
            c for c in candidates - reached[func] if self._all_reached(func, c, forward, reached)
        }

    def _all_reached(
        self, func: str, call_key: bytes, forward: bool, reached: dict[str, set[bytes]]
    ) -> bool:
        """Whether every connected input (output) of the call is reached in some variable."""
        call = self.index.calls[call_key]
        side = self.inp[func] if forward else self.out[func]
        for label, variables in side.items():
            refs = (
                self.call_inputs_on(call, label) if forward else self.call_outputs_on(call, label)
            )
            for ref in refs:
                if not any(ref in reached[var] for var in variables):
                    return False
        return True

    def _restricted(self, region: Iterable[str], elements: Mapping[str, set[bytes]]) -> Any:
        """A copy on the nodes of ``region`` holding ``elements``, completed to be valid."""
        frame = self.select_nodes(region)
        for node in frame.nodes:
            frame._set_elements(node, set(elements.get(node, ())))
        frame._complete()
        return frame

    # ================================================================== selecting nodes

    def select_nodes(self, nodes: Iterable[str]) -> Any:
        """The subgraph induced by ``nodes``: those nodes, their elements, the edges among them.

        Raises:
            ValueError: a node is not in the frame.
        """
        wanted = set(nodes)
        self._require(wanted)
        frame = self.copy()
        for node in sorted(frame.nodes - wanted):
            frame._remove_node(node)
        return frame

    def __getitem__(self, nodes: str | Iterable[str]) -> Any:
        """``cf["x"]`` or ``cf[["x", "f", "y"]]``: :meth:`select_nodes`."""
        if isinstance(nodes, str):
            return self.select_nodes([nodes])
        if isinstance(nodes, FrameGraph):
            raise TypeError(
                "a ComputationFrame cannot be indexed by another frame; use `a & b` to keep "
                "what two frames share"
            )
        names = list(nodes)
        if not all(isinstance(n, str) for n in names):
            raise TypeError("index a ComputationFrame with a node name or a list of node names")
        return self.select_nodes(names)

    def select_subsets(self, elts: Mapping[str, Iterable[Any]]) -> Any:
        """Keep only the given elements of every node.

        ``elts`` maps every node of the frame to the history ids (hex strings, as in
        :attr:`sets`, or raw keys, Refs or Calls) to keep. A call whose connected input or
        output is not kept is dropped as well, so the result is a valid frame.

        Raises:
            ValueError: ``elts`` does not name exactly the frame's nodes, or names an element
                that is not in its node.
        """
        names = set(elts)
        if names != self.nodes:
            missing, extra = sorted(self.nodes - names), sorted(names - self.nodes)
            raise ValueError(
                "select_subsets needs a set of elements for every node of the CF, and only "
                f"for them (missing: {missing}, unknown: {extra}); pass set() to empty a node"
            )
        frame = self.copy()
        for node, items in elts.items():
            keys = {_element_key(item, "history_key", "history id") for item in items}
            unknown = keys - self._elements(node)
            if unknown:
                shown = sorted(k.hex() for k in unknown)[:3]
                raise ValueError(f"select_subsets: {shown} are not elements of node {node!r}")
            frame._set_elements(node, keys)
        frame._drop_incomplete_calls()
        return frame

    # ================================================================== reachability

    def upstream(self, *nodes: str, how: str = "strong") -> Any:
        """What the elements of ``nodes`` were computed from: the nodes that reach them, with
        the elements reached going back from all the elements of ``nodes``.

        With ``how="strong"`` a call is kept only if all its outputs in the frame's variables
        are reached; with ``"weak"`` one is enough (its other outputs are then kept too).
        """
        strong = _strong(how)
        names = _flatten(nodes)
        self._require(names)
        region = self._reachable(names, forward=False)
        sub = self.select_nodes(region)
        reached = sub._reach({n: sub._elements(n) for n in names}, forward=False, strong=strong)
        return sub._restricted(region, reached)

    def downstream(self, *nodes: str, how: str = "strong") -> Any:
        """What was computed from the elements of ``nodes``: the dual of :meth:`upstream`.

        With ``how="strong"`` a call is kept only if all its inputs in the frame's variables
        are reached (this drops calls that also used values from elsewhere); with ``"weak"``
        one is enough (its other inputs are then kept too).
        """
        strong = _strong(how)
        names = _flatten(nodes)
        self._require(names)
        region = self._reachable(names, forward=True)
        sub = self.select_nodes(region)
        reached = sub._reach({n: sub._elements(n) for n in names}, forward=True, strong=strong)
        return sub._restricted(region, reached)

    def midstream(self, *nodes: str, how: str = "strong") -> Any:
        """The sub-computation spanned by ``nodes``.

        The nodes on paths between any two of ``nodes`` (and ``nodes`` themselves), with the
        elements reached going forward from the source elements that ``nodes`` hold in that
        subgraph.
        """
        strong = _strong(how)
        names = _flatten(nodes)
        self._require(names)
        region = set(names)
        down = {a: self._reachable([a], forward=True) for a in names}
        up = {b: self._reachable([b], forward=False) for b in names}
        for a in names:
            for b in names:
                if a != b and b in down[a]:
                    region |= down[a] & up[b]
        sub = self.select_nodes(region)
        initial = {n: sub._boundary(n, sources=True) for n in names}
        reached = sub._reach(initial, forward=True, strong=strong)
        return sub._restricted(region, reached)

    def drop_unreachable(self, direction: str, how: str = "strong") -> Any:
        """Drop the elements not reachable from the frame's source elements (``"forward"``) or
        sink elements (``"back"``); calls left without one of their refs are dropped too."""
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be 'forward' or 'back', got {direction!r}")
        forward = _DIRECTIONS[direction]
        strong = _strong(how)
        frame = self.copy()
        frame._drop_unreachable(forward, strong)
        return frame

    def _drop_unreachable(self, forward: bool, strong: bool) -> None:
        initial = {n: self._boundary(n, sources=forward) for n in self.nodes}
        reached = self._reach(initial, forward=forward, strong=strong)
        for node in self.nodes:
            self._set_elements(node, reached[node])
        self._drop_incomplete_calls()

    # ================================================================== dropping and renaming

    def drop(
        self, nodes: str | Iterable[str], inplace: bool = False, with_dependents: bool = False
    ) -> Any:
        """Remove nodes (with their edges); ``with_dependents`` also removes every node
        downstream of them.

        Raises:
            ValueError: a node is not in the frame.
        """
        names = [nodes] if isinstance(nodes, str) else list(nodes)
        for node in names:
            self._require_node(node)
        if with_dependents:
            names = sorted(self._reachable(names, forward=True))
        frame = self if inplace else self.copy()
        for node in names:
            frame._remove_node(node)
        return None if inplace else frame

    def drop_node(self, node: str, inplace: bool = False) -> Any:
        """Remove a variable or function node and its edges."""
        return self.drop([node], inplace=inplace)

    def drop_var(self, vname: str, inplace: bool = False) -> Any:
        """Remove a variable node and its edges."""
        self._require_node(vname)
        if vname not in self.vs:
            raise ValueError(f"Node {vname} is a function node, not a variable; use drop_func")
        return self.drop([vname], inplace=inplace)

    def drop_func(self, fname: str, inplace: bool = False) -> Any:
        """Remove a function node and its edges."""
        self._require_node(fname)
        if fname not in self.fs:
            raise ValueError(f"Node {fname} is a variable, not a function node; use drop_var")
        return self.drop([fname], inplace=inplace)

    def rename(
        self,
        vars: Mapping[str, str] | None = None,
        funcs: Mapping[str, str] | None = None,
        inplace: bool = False,
    ) -> Any:
        """Rename variables and function nodes (all at once, so names may be swapped).

        Raises:
            ValueError: an old name is not a node of that kind, or a new name clashes.
        """
        mapping: dict[str, str] = {}
        for kind, given, existing in (("vars", vars, self.vs), ("funcs", funcs, self.fs)):
            for old, new in (given or {}).items():
                self._require_node(old)
                if old not in existing:
                    other = "funcs" if kind == "vars" else "vars"
                    raise ValueError(f"rename: {old!r} is not in {kind}; pass it in {other}=")
                if not isinstance(new, str) or not new:
                    raise ValueError(f"rename: new name for {old!r} must be a non-empty str")
                mapping[old] = new
        final = [mapping.get(n, n) for n in self.nodes]
        clashes = sorted({n for n in final if final.count(n) > 1})
        if clashes:
            raise ValueError(f"rename: names {clashes} would be used by several nodes")
        frame = self if inplace else self.copy()
        frame._rename_nodes(mapping)
        return None if inplace else frame

    def rename_var(self, vname: str, new_vname: str, inplace: bool = False) -> Any:
        """Rename one variable."""
        return self.rename(vars={vname: new_vname}, inplace=inplace)

    def _rename_nodes(self, mapping: Mapping[str, str]) -> None:
        def name(n: str) -> str:
            return mapping.get(n, n)

        def adjacency(adj: dict[str, dict[str, set[str]]]) -> dict[str, dict[str, set[str]]]:
            return {
                name(n): {label: {name(m) for m in ends} for label, ends in by_label.items()}
                for n, by_label in adj.items()
            }

        self.vs = {name(n): s for n, s in self.vs.items()}
        self.fs = {name(n): s for n, s in self.fs.items()}
        self.op_of = {name(n): op for n, op in self.op_of.items()}
        self.inp = adjacency(self.inp)
        self.out = adjacency(self.out)

    # ================================================================== merging and cleaning

    def merge_into(self, node_to_merge: str, merge_into: str, inplace: bool = False) -> Any:
        """Move the elements and edges of one node into another of the same kind, and remove it.

        Function nodes can be merged only if they hold calls of the same op; the variables on
        the merged node's edges then receive the refs its calls need.

        Raises:
            ValueError: a node is unknown, the nodes are the same, or of different kinds.
        """
        self._require_node(node_to_merge)
        self._require_node(merge_into)
        if node_to_merge == merge_into:
            raise ValueError(f"cannot merge node {node_to_merge!r} into itself")
        both_vars = node_to_merge in self.vs and merge_into in self.vs
        both_funcs = node_to_merge in self.fs and merge_into in self.fs
        if not (both_vars or both_funcs):
            raise ValueError(
                f"cannot merge {node_to_merge!r} into {merge_into!r}: one is a variable and "
                "the other a function node"
            )
        if both_funcs and self.op_of[node_to_merge] != self.op_of[merge_into]:
            raise ValueError(
                f"cannot merge function node {node_to_merge!r} (op "
                f"{self.op_of[node_to_merge]!r}) into {merge_into!r} (op "
                f"{self.op_of[merge_into]!r})"
            )
        frame = self if inplace else self.copy()
        frame._merge(node_to_merge, merge_into)
        return None if inplace else frame

    def _merge(self, node: str, into: str) -> None:
        elements = set(self._elements(node))
        in_edges, out_edges = self.in_edges(node), self.out_edges(node)
        self._remove_node(node)
        for source, _, label in in_edges:
            self._add_edge(source, into, label)
        for _, target, label in out_edges:
            self._add_edge(into, target, label)
        self._elements(into).update(elements)
        self._complete()

    def merge_vars(self, inplace: bool = False) -> Any:
        """Merge every variable whose refs are a subset of another's into it, until no such
        pair is left.

        The smallest superset is chosen (ties by name); of two variables holding the same refs
        (``y`` and ``y_0`` after an expansion reached one op's output on two paths), the one
        with the later name goes into the other. An empty variable is left alone.
        """
        frame = self if inplace else self.copy()
        while True:
            by_size = sorted(frame.vs, key=lambda v: (len(frame.vs[v]), _name_order(v)))
            pair = next(
                (
                    (small, big)
                    for i, small in enumerate(by_size)
                    for big in by_size
                    if big != small
                    and len(frame.vs[small])
                    and frame.vs[small] <= frame.vs[big]
                    and (
                        len(frame.vs[small]) < len(frame.vs[big])
                        or _name_order(big) < _name_order(small)
                    )
                ),
                None,
            )
            if pair is None:
                break
            frame._merge(*pair)
        return None if inplace else frame

    def cleanup(self, inplace: bool = False) -> Any:
        """Remove the nodes that hold no elements."""
        frame = self if inplace else self.copy()
        for node in sorted(frame.nodes):
            if not frame._elements(node):
                frame._remove_node(node)
        return None if inplace else frame

    def simplify(self, inplace: bool = False) -> Any:
        """Remove the nodes that hold no elements (as :meth:`cleanup`; the original's merging
        of nested variables is :meth:`merge_vars`)."""
        return self.cleanup(inplace=inplace)
