"""``ComputationFrame``: query stored computations as a graph, and turn them into tables.

The frame is a thin object over a :class:`~mandala.frames.graph.FrameGraph` (nodes, edges,
element sets; the element index it holds is shared by the frames of one ``storage.cf(...)``).
Each public method delegates to a function of one module: ``selection.py`` (restricting,
dropping, renaming, merging), ``filters.py`` (by values and ids), ``algebra.py`` (``|``, ``&``,
``-``), ``expansion.py``, ``tables.py`` (``df`` and friends) and ``describe.py`` (text and
statistics; drawing and printing are done by ``mandala.ui.graph_view``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, overload

import numpy as np
import pandas as pd

from mandala.backends.records import (
    StoredCall,
)
from mandala.errors import FrameError, NodeNotFoundError
from mandala.frames import algebra, describe, filters, selection, tables
from mandala.frames.blocks import paused_gc
from mandala.frames.collections import CallCollection
from mandala.frames.element_views import ElementsById
from mandala.frames.expansion import expand
from mandala.frames.graph import Adjacency, Edge, FrameGraph, NodeSets
from mandala.frames.index import ElementIndex, edge_label
from mandala.frames.keys import KeySet
from mandala.frames.source import FrameSource
from mandala.model.calls import Call
from mandala.model.kinds import CLASS_OF_KIND as _REF_CLASSES
from mandala.model.kinds import ref_kind as _kind_of
from mandala.model.refs import Ref
from mandala.ui import graph_view

__all__ = ["ComputationFrame"]

Names = str | Iterable[str]
"""One node name or several."""


class ComputationFrame:
    """A view of stored calls as a graph of variables (sets of refs) and ops (sets of calls).

    Get one from ``storage.cf(op)``, ``storage.cf(ref)``, ``storage.cf([refs])`` or
    ``storage.cf({"name": refs})``; grow it with :meth:`expand_back` / :meth:`expand_forward` /
    :meth:`expand_all`; turn it into a table with :meth:`df`. Methods that return a frame copy it
    unless ``inplace=True`` (then they return None). A frame reads what was committed when it was
    built and expanded; it never changes the store, except through :meth:`delete_calls`.

    The original's attributes are here: ``vs`` / ``fs`` (element keys by variable / function
    node), ``inp`` / ``out`` (edges by node and label), ``op_of``, ``index``, ``source``.

    Example:
        >>> from mandala.imports import Storage, op
        >>> @op(output_names=["y"])
        ... def inc(x):
        ...     return x + 1
        >>> storage = Storage()
        >>> with storage:
        ...     ys = [inc(x) for x in range(3)]
        >>> cf = storage.cf(inc)
        >>> sorted(cf.df(include_calls=False)["y"])
        [1, 2, 3]
    """

    def __init__(self, source: FrameSource, index: ElementIndex | None = None) -> None:
        self.source = source
        self.graph = FrameGraph(index if index is not None else ElementIndex(source))
        """The nodes, edges and element sets this frame is a view of."""

    def _of(self, graph: FrameGraph) -> ComputationFrame:
        """A frame of the same class and source over ``graph``."""
        frame = object.__new__(type(self))
        frame.__dict__.update(self.__dict__)
        frame.graph = graph
        return frame

    def _changed(
        self, inplace: bool, change: Callable[[FrameGraph], None]
    ) -> ComputationFrame | None:
        """Apply an in-place ``change`` to this frame (``inplace``) or to a copy, returned."""
        frame = self if inplace else self.copy()
        change(frame.graph)
        return None if inplace else frame

    # ================================================================== construction

    @classmethod
    def from_op(cls, source: FrameSource, name: str) -> ComputationFrame:
        """All stored calls of an op, as one function node with its input and output variables."""
        frame = cls(source)
        graph = frame.graph
        with paused_gc():
            blocks = graph.index.add_rows(source.call_rows_of_op(name))
        graph.add_func(name, name)
        inputs: dict[str, list[np.ndarray]] = {}
        outputs: dict[str, list[np.ndarray]] = {}
        for block in blocks:
            for input_name, slot in block.inputs.items():
                inputs.setdefault(edge_label(name, input_name), []).append(slot.ids)
            for output_name, slot in block.outputs.items():
                outputs.setdefault(output_name, []).append(slot.ids)
        refs, calls = graph.index.ref_table, graph.index.call_table
        for label in sorted(inputs):
            var = graph.new_name(label)
            graph.add_var(var)
            graph.refs_by_var[var] = KeySet.of_ids(refs, np.concatenate(inputs[label]))
            graph.add_edge(var, name, label)
        for label in sorted(outputs, key=_natural_order):
            var = graph.output_var_name(label)
            graph.add_var(var)
            graph.refs_by_var[var] = KeySet.of_ids(refs, np.concatenate(outputs[label]))
            graph.add_edge(name, var, label)
        ids = [block.ids for block in blocks]
        graph.calls_by_func[name] = KeySet.of_ids(
            calls, np.concatenate(ids) if ids else np.empty(0, np.int64)
        )
        return frame

    @classmethod
    def from_vars(
        cls, source: FrameSource, variables: Mapping[str, Iterable[Ref]]
    ) -> ComputationFrame:
        """One variable per entry (no function nodes).

        Raises:
            FrameError: a ref is given twice for one variable.
        """
        frame = cls(source)
        graph = frame.graph
        for name, refs in variables.items():
            graph.add_var(name)
            keys: dict[bytes, Ref] = {}
            for ref in refs:
                if ref.history_key in keys:
                    raise FrameError(f"Ref {ref.hid} already exists in variable {name}")
                keys[ref.history_key] = ref
            graph.index.add_refs(
                list(keys),
                [ref.content_key for ref in keys.values()],
                [_kind_of(ref) for ref in keys.values()],
            )
            graph.refs_by_var[name] = graph.index.ref_set(keys)
        return frame

    # ================================================================== the graph (0.2 names)

    @property
    def index(self) -> ElementIndex:
        """The facts about the frame's elements (shared with the frames derived from it)."""
        return self.graph.index

    @index.setter
    def index(self, index: ElementIndex) -> None:
        self.graph.index = index

    @property
    def vs(self) -> NodeSets:
        """Ref keys by variable."""
        return self.graph.refs_by_var

    @vs.setter
    def vs(self, sets: Mapping[str, Iterable[bytes]]) -> None:
        self.graph.refs_by_var = sets

    @property
    def fs(self) -> NodeSets:
        """Call keys by function node."""
        return self.graph.calls_by_func

    @fs.setter
    def fs(self, sets: Mapping[str, Iterable[bytes]]) -> None:
        self.graph.calls_by_func = sets

    @property
    def op_of(self) -> dict[str, str]:
        """The op name of each function node."""
        return self.graph.op_by_func

    @op_of.setter
    def op_of(self, ops: dict[str, str]) -> None:
        self.graph.op_by_func = ops

    @property
    def inp(self) -> Adjacency:
        """By node, the sources of its incoming edges by label."""
        return self.graph.incoming

    @inp.setter
    def inp(self, adjacency: Adjacency) -> None:
        self.graph.incoming = adjacency

    @property
    def out(self) -> Adjacency:
        """By node, the targets of its outgoing edges by label."""
        return self.graph.outgoing

    @out.setter
    def out(self, adjacency: Adjacency) -> None:
        self.graph.outgoing = adjacency

    @property
    def vnames(self) -> set[str]:
        """Names of the variable nodes."""
        return set(self.graph.refs_by_var)

    @property
    def fnames(self) -> set[str]:
        """Names of the function nodes."""
        return set(self.graph.calls_by_func)

    @property
    def nodes(self) -> set[str]:
        """Names of all nodes."""
        return self.graph.nodes

    @property
    def sources(self) -> set[str]:
        """Nodes with no incoming edge."""
        return self.graph.source_nodes()

    @property
    def sinks(self) -> set[str]:
        """Nodes with no outgoing edge."""
        return self.graph.sink_nodes()

    def edges(self) -> list[Edge]:
        """Every edge as ``(source, target, label)``, sorted."""
        return self.graph.edges()

    def in_edges(self, node: str) -> list[Edge]:
        """The edges into ``node``, sorted."""
        return self.graph.in_edges(node)

    def out_edges(self, node: str) -> list[Edge]:
        """The edges out of ``node``, sorted."""
        return self.graph.out_edges(node)

    def in_neighbors(self, node: str) -> set[str]:
        """The sources of the edges into ``node``."""
        return self.graph.in_neighbors(node)

    def out_neighbors(self, node: str) -> set[str]:
        """The targets of the edges out of ``node``."""
        return self.graph.out_neighbors(node)

    def is_var(self, node: str) -> bool:
        """Whether ``node`` is a variable."""
        return self.graph.is_var(node)

    def new_name(self, hint: str, taken: Iterable[str] | None = None) -> str:
        """``hint`` if it is free, else ``hint_0``, ``hint_1``, ... (never mangling the hint)."""
        return self.graph.new_name(hint, taken)

    def output_var_name(self, label: str) -> str:
        """A new variable's name for the output ``label`` (``output_i`` gives ``var_<j>``)."""
        return self.graph.output_var_name(label)

    def topsort(self) -> list[str]:
        """Nodes in topological order; the nodes of a cycle come together, by name."""
        return self.graph.topsort()

    def sort_nodes(self, nodes: Iterable[str]) -> list[str]:
        """``nodes`` in topological order."""
        return self.graph.sort_nodes(nodes)

    def copy(self) -> ComputationFrame:
        """A copy of the graph and element sets (the element facts are shared)."""
        return self._of(self.graph.copy())

    def _add_var(self, name: str) -> None:
        self.graph.add_var(name)

    def _add_func(self, name: str, op_name: str) -> None:
        self.graph.add_func(name, op_name)

    def _add_edge(self, source: str, target: str, label: str) -> None:
        self.graph.add_edge(source, target, label)

    def _check(self) -> None:
        """Raise ``RuntimeError`` unless every call's refs are in the variables on its edges."""
        self.graph.check()

    # ------------------------------------------------------------------ element adjacency

    def call_inputs_on(self, call: StoredCall, label: str) -> Iterable[bytes]:
        """Input refs of ``call`` that travel on edges labelled ``label``."""
        return self.graph.call_inputs_on(call, label)

    def call_outputs_on(self, call: StoredCall, label: str) -> Iterable[bytes]:
        """Output refs of ``call`` on its output ``label``."""
        return self.graph.call_outputs_on(call, label)

    def creators_in_frame(self, var: str, ref: bytes) -> list[tuple[str, bytes]]:
        """(function node, call) pairs of the frame that output ``ref`` into ``var``."""
        return self.graph.creators_in_frame(var, ref)

    def consumers_in_frame(self, var: str, ref: bytes) -> list[tuple[str, bytes]]:
        """(function node, call) pairs of the frame that take ``ref`` from ``var``."""
        return self.graph.consumers_in_frame(var, ref)

    def created_in_frame(self, var: str) -> dict[bytes, list[tuple[str, bytes]]]:
        """For the refs of ``var`` created by calls of the frame: their (function node, call)."""
        return self.graph.created_in_frame(var)

    def created_refs(self, var: str) -> KeySet:
        """The refs of ``var`` created by calls of the frame (on an edge into ``var``)."""
        return self.graph.created_refs(var)

    def consumed_in_frame(self, var: str) -> KeySet:
        """Refs of ``var`` that some call of the frame takes as an input from ``var``."""
        return self.graph.consumed_in_frame(var)

    def source_elements(self, var: str) -> KeySet:
        """Refs of ``var`` with no creator call in the frame (on an edge into ``var``)."""
        return self.graph.source_elements(var)

    def sink_elements(self, var: str) -> KeySet:
        """Refs of ``var`` that no call of the frame consumes (on an edge out of ``var``)."""
        return self.graph.sink_elements(var)

    # ================================================================== elements

    def _ref(self, key: bytes) -> Ref:
        content_key, kind = self.graph.index.refs[key]
        return _REF_CLASSES[kind](content_key, key, False, None)

    def _call(self, key: bytes) -> Call:
        return self.graph.index.public_call(key)

    @property
    def refs(self) -> ElementsById[Ref]:
        """Every ref of the frame by history id (``{hid: Ref}``, lazy refs), made on demand."""
        return ElementsById(self.index.ref_table, list(self.vs.values()), self._ref)

    @property
    def calls(self) -> ElementsById[Call]:
        """Every call of the frame by history id (``{hid: Call}``), made on demand."""
        return ElementsById(self.index.call_table, list(self.fs.values()), self._call)

    def refs_by_var(self) -> dict[str, set[Ref]]:
        """``{variable: refs}`` (lazy refs)."""
        return {var: {self._ref(k) for k in keys} for var, keys in self.vs.items()}

    def calls_by_func(self) -> dict[str, set[Call]]:
        """``{function node: calls}``."""
        return {func: {self._call(k) for k in keys} for func, keys in self.fs.items()}

    def get_var_values(self, vname: str) -> set[Ref]:
        """The refs of variable ``vname``.

        Raises:
            NodeNotFoundError: ``vname`` is not a variable.
        """
        if vname not in self.vs:
            raise NodeNotFoundError(
                f"Node {vname} not found in the CF (variables: {sorted(self.vs)})"
            )
        return {self._ref(k) for k in self.vs[vname]}

    @property
    def sets(self) -> dict[str, set[str]]:
        """``{node: history ids of its elements}``."""
        result = {var: {k.hex() for k in keys} for var, keys in self.vs.items()}
        result.update({func: {k.hex() for k in keys} for func, keys in self.fs.items()})
        return result

    @property
    def values(self) -> dict[str, set[Ref] | set[Call]]:
        """``{node: refs or calls}``."""
        return {**self.refs_by_var(), **self.calls_by_func()}

    def ops(self) -> dict[str, str]:
        """``{function node: op name}``."""
        return dict(self.op_of)

    # ================================================================== expansion

    @overload
    def expand_back(
        self,
        varnames: Names | None = None,
        recursive: bool = False,
        skip_existing: bool = False,
        *,
        inplace: Literal[False] = False,
        verbose: bool = False,
        reuse_existing: bool = True,
    ) -> ComputationFrame: ...

    @overload
    def expand_back(
        self,
        varnames: Names | None = None,
        recursive: bool = False,
        skip_existing: bool = False,
        *,
        inplace: Literal[True],
        verbose: bool = False,
        reuse_existing: bool = True,
    ) -> None: ...

    def expand_back(
        self,
        varnames: Names | None = None,
        recursive: bool = False,
        skip_existing: bool = False,
        inplace: bool = False,
        verbose: bool = False,  # noqa: ARG002 - pymandala 0.2's signature; nothing is printed
        reuse_existing: bool = True,
    ) -> ComputationFrame | None:
        """Add the calls that created the frame's refs (with ``recursive``, all the way back)."""
        names = _names(varnames)
        return self._changed(
            inplace, lambda g: _expand(g, names, True, recursive, skip_existing, reuse_existing)
        )

    @overload
    def expand_forward(
        self,
        varnames: Names | None = None,
        recursive: bool = False,
        skip_existing: bool = False,
        *,
        inplace: Literal[False] = False,
        verbose: bool = False,
        reuse_existing: bool = True,
    ) -> ComputationFrame: ...

    @overload
    def expand_forward(
        self,
        varnames: Names | None = None,
        recursive: bool = False,
        skip_existing: bool = False,
        *,
        inplace: Literal[True],
        verbose: bool = False,
        reuse_existing: bool = True,
    ) -> None: ...

    def expand_forward(
        self,
        varnames: Names | None = None,
        recursive: bool = False,
        skip_existing: bool = False,
        inplace: bool = False,
        verbose: bool = False,  # noqa: ARG002 - pymandala 0.2's signature; nothing is printed
        reuse_existing: bool = True,
    ) -> ComputationFrame | None:
        """Add the calls that consumed the frame's refs (with ``recursive``, all the way on)."""
        names = _names(varnames)
        return self._changed(
            inplace, lambda g: _expand(g, names, False, recursive, skip_existing, reuse_existing)
        )

    @overload
    def expand_all(
        self,
        inplace: Literal[False] = False,
        skip_existing: bool = False,
        verbose: bool = False,
        reuse_existing: bool = True,
    ) -> ComputationFrame: ...

    @overload
    def expand_all(
        self,
        inplace: Literal[True],
        skip_existing: bool = False,
        verbose: bool = False,
        reuse_existing: bool = True,
    ) -> None: ...

    def expand_all(
        self,
        inplace: bool = False,
        skip_existing: bool = False,
        verbose: bool = False,  # noqa: ARG002 - pymandala 0.2's signature; nothing is printed
        reuse_existing: bool = True,
    ) -> ComputationFrame | None:
        """Expand back and forward until nothing changes: the whole connected computation."""
        return self._changed(inplace, lambda g: _expand_all(g, skip_existing, reuse_existing))

    # ================================================================== tables

    def df(
        self,
        *nodes: str,
        values: str = "objs",
        lazy_vars: Iterable[str] | None = None,
        verbose: bool = False,  # noqa: ARG002 - pymandala 0.2's signature; nothing is printed
        include_calls: bool = True,
        join_how: str = "outer",
    ) -> pd.DataFrame:
        """One row per (partial) execution of the frame: values (or refs) and calls by node.

        Args:
            nodes: restrict to these nodes (and what lies between them); default all.
            values: ``"objs"`` for values, ``"refs"`` for refs.
            lazy_vars: variables whose cells stay refs (not loaded) with ``values="objs"``.
            include_calls: include function-node columns (cells are :class:`Call`).
            join_how: how the tables of different result variables are joined.

        Raises:
            FrameError: ``values`` is neither ``"objs"`` nor ``"refs"``.
        """
        if values not in ("objs", "refs"):
            raise FrameError(f"values must be 'objs' or 'refs', got {values!r}")
        return tables.table(self.graph, nodes, values, lazy_vars, include_calls, join_how)

    def eval(
        self,
        *nodes: str,
        values: str = "objs",
        verbose: bool = True,  # noqa: ARG002 - pymandala 0.2's signature; nothing is printed
    ) -> pd.DataFrame:
        """The table of :meth:`df`, calls included."""
        return self.df(*nodes, values=values, include_calls=True)

    def get_history_df(
        self,
        vname: str,
        include_calls: bool = True,
        verbose: bool = False,  # noqa: ARG002 - pymandala 0.2's signature; nothing is printed
    ) -> pd.DataFrame:
        """One row per ref of ``vname`` with the refs and calls of its history (as refs)."""
        return tables.history_df(self.graph, vname, include_calls)

    def get_joint_history_df(
        self, varnames: Iterable[str], how: str = "outer", include_calls: bool = True
    ) -> pd.DataFrame:
        """The joined histories of the sink elements of ``varnames`` (cells are refs and calls)."""
        return tables.joint_history_df(self.graph, varnames, how, include_calls)

    def get_func_table(self, fname: str) -> pd.DataFrame:
        """One row per call of a function node: its input and output refs by name.

        Raises:
            NodeNotFoundError: ``fname`` is not a function node.
        """
        if fname not in self.fs:
            raise NodeNotFoundError(
                f"Node {fname} not found in the CF (functions: {sorted(self.fs)})"
            )
        return tables.func_table(self.graph, fname)

    def eval_df(
        self, df: pd.DataFrame, skip_cols: Iterable[str] | None = None, skip_calls: bool = False
    ) -> pd.DataFrame:
        """A copy of ``df`` with every ref cell replaced by its value."""
        return tables.eval_df(self.graph, df, skip_cols, skip_calls)

    def attach(self) -> None:
        """Load the values of every ref of the frame and keep them, so tables built from this
        frame (and frames derived from it) do not read them again."""
        tables.attach(self.graph)

    # ================================================================== selecting nodes

    def select_nodes(self, nodes: Iterable[str]) -> ComputationFrame:
        """The subgraph induced by ``nodes``: those nodes, their elements, the edges among them.

        Raises:
            NodeNotFoundError: a node is not in the frame.
        """
        return self._of(selection.select_nodes(self.graph, nodes))

    def __getitem__(self, nodes: Names) -> ComputationFrame:
        """``cf["x"]`` or ``cf[["x", "f", "y"]]``: :meth:`select_nodes`."""
        if isinstance(nodes, str):
            return self.select_nodes([nodes])
        if isinstance(nodes, ComputationFrame):
            raise TypeError(
                "a ComputationFrame cannot be indexed by another frame; use `a & b` to keep "
                "what two frames share"
            )
        names = list(nodes)
        if not all(isinstance(n, str) for n in names):
            raise TypeError("index a ComputationFrame with a node name or a list of node names")
        return self.select_nodes(names)

    def select_subsets(self, elts: Mapping[str, Iterable[object]]) -> ComputationFrame:
        """Keep only the given elements of every node.

        ``elts`` maps every node of the frame to the history ids (hex strings, as in
        :attr:`sets`, or raw keys, Refs or Calls) to keep. A call whose connected input or
        output is not kept is dropped as well, so the result is a valid frame.

        Raises:
            FrameError: ``elts`` does not name exactly the frame's nodes, or names an element
                that is not in its node.
        """
        return self._of(selection.select_subsets(self.graph, elts))

    # ================================================================== reachability

    def upstream(self, *nodes: str, how: str = "strong") -> ComputationFrame:
        """What the elements of ``nodes`` were computed from: the nodes that reach them, with
        the elements reached going back from all the elements of ``nodes``.

        With ``how="strong"`` a call is kept only if all its outputs in the frame's variables
        are reached; with ``"weak"`` one is enough (its other outputs are then kept too).
        """
        return self._of(selection.upstream(self.graph, selection.flatten_names(nodes), how))

    def downstream(self, *nodes: str, how: str = "strong") -> ComputationFrame:
        """What was computed from the elements of ``nodes``: the dual of :meth:`upstream`.

        With ``how="strong"`` a call is kept only if all its inputs in the frame's variables
        are reached (this drops calls that also used values from elsewhere); with ``"weak"``
        one is enough (its other inputs are then kept too).
        """
        return self._of(selection.downstream(self.graph, selection.flatten_names(nodes), how))

    def midstream(self, *nodes: str, how: str = "strong") -> ComputationFrame:
        """The sub-computation spanned by ``nodes``.

        The nodes on paths between any two of ``nodes`` (and ``nodes`` themselves), with the
        elements reached going forward from the source elements that ``nodes`` hold in that
        subgraph.
        """
        return self._of(selection.midstream(self.graph, selection.flatten_names(nodes), how))

    def drop_unreachable(self, direction: str, how: str = "strong") -> ComputationFrame:
        """Drop the elements not reachable from the frame's source elements (``"forward"``) or
        sink elements (``"back"``); calls left without one of their refs are dropped too."""
        frame = self.copy()
        selection.drop_unreachable(frame.graph, direction, how)
        return frame

    # ================================================================== dropping and renaming

    @overload
    def drop(
        self, nodes: Names, inplace: Literal[False] = False, with_dependents: bool = False
    ) -> ComputationFrame: ...

    @overload
    def drop(self, nodes: Names, inplace: Literal[True], with_dependents: bool = False) -> None: ...

    def drop(
        self, nodes: Names, inplace: bool = False, with_dependents: bool = False
    ) -> ComputationFrame | None:
        """Remove nodes (with their edges); ``with_dependents`` also removes every node
        downstream of them.

        Raises:
            NodeNotFoundError: a node is not in the frame.
        """
        names = [nodes] if isinstance(nodes, str) else list(nodes)
        return self._changed(inplace, lambda g: selection.drop(g, names, with_dependents))

    @overload
    def drop_node(self, node: str, inplace: Literal[False] = False) -> ComputationFrame: ...

    @overload
    def drop_node(self, node: str, inplace: Literal[True]) -> None: ...

    def drop_node(self, node: str, inplace: bool = False) -> ComputationFrame | None:
        """Remove a variable or function node and its edges."""
        return self._changed(inplace, lambda g: selection.drop(g, [node]))

    @overload
    def drop_var(self, vname: str, inplace: Literal[False] = False) -> ComputationFrame: ...

    @overload
    def drop_var(self, vname: str, inplace: Literal[True]) -> None: ...

    def drop_var(self, vname: str, inplace: bool = False) -> ComputationFrame | None:
        """Remove a variable node and its edges.

        Raises:
            NodeNotFoundError: ``vname`` is not a variable.
        """
        return self._changed(inplace, lambda g: selection.drop_of_kind(g, vname, var=True))

    @overload
    def drop_func(self, fname: str, inplace: Literal[False] = False) -> ComputationFrame: ...

    @overload
    def drop_func(self, fname: str, inplace: Literal[True]) -> None: ...

    def drop_func(self, fname: str, inplace: bool = False) -> ComputationFrame | None:
        """Remove a function node and its edges.

        Raises:
            NodeNotFoundError: ``fname`` is not a function node.
        """
        return self._changed(inplace, lambda g: selection.drop_of_kind(g, fname, var=False))

    @overload
    def rename(
        self,
        vars: Mapping[str, str] | None = None,
        funcs: Mapping[str, str] | None = None,
        inplace: Literal[False] = False,
    ) -> ComputationFrame: ...

    @overload
    def rename(
        self,
        vars: Mapping[str, str] | None = None,
        funcs: Mapping[str, str] | None = None,
        *,
        inplace: Literal[True],
    ) -> None: ...

    def rename(
        self,
        vars: Mapping[str, str] | None = None,
        funcs: Mapping[str, str] | None = None,
        inplace: bool = False,
    ) -> ComputationFrame | None:
        """Rename variables and function nodes (all at once, so names may be swapped).

        Raises:
            FrameError: an old name is not a node of that kind, or a new name clashes.
        """
        return self._changed(inplace, lambda g: selection.rename(g, vars, funcs))

    @overload
    def rename_var(
        self, vname: str, new_vname: str, inplace: Literal[False] = False
    ) -> ComputationFrame: ...

    @overload
    def rename_var(self, vname: str, new_vname: str, inplace: Literal[True]) -> None: ...

    def rename_var(
        self, vname: str, new_vname: str, inplace: bool = False
    ) -> ComputationFrame | None:
        """Rename one variable."""
        return self._changed(inplace, lambda g: selection.rename(g, {vname: new_vname}))

    # ================================================================== merging and cleaning

    @overload
    def merge_into(
        self, node_to_merge: str, merge_into: str, inplace: Literal[False] = False
    ) -> ComputationFrame: ...

    @overload
    def merge_into(self, node_to_merge: str, merge_into: str, inplace: Literal[True]) -> None: ...

    def merge_into(
        self, node_to_merge: str, merge_into: str, inplace: bool = False
    ) -> ComputationFrame | None:
        """Move the elements and edges of one node into another of the same kind, and remove it.

        Function nodes can be merged only if they hold calls of the same op; the variables on
        the merged node's edges then receive the refs its calls need.

        Raises:
            FrameError: a node is unknown, the nodes are the same, or of different kinds.
        """
        return self._changed(inplace, lambda g: selection.merge_into(g, node_to_merge, merge_into))

    @overload
    def merge_vars(self, inplace: Literal[False] = False) -> ComputationFrame: ...

    @overload
    def merge_vars(self, inplace: Literal[True]) -> None: ...

    def merge_vars(self, inplace: bool = False) -> ComputationFrame | None:
        """Merge every variable whose refs are a subset of another's into it, until no such
        pair is left.

        The smallest superset is chosen (ties by name); of two variables holding the same refs
        (``y`` and ``y_0`` after an expansion reached one op's output on two paths), the one
        with the later name goes into the other. An empty variable is left alone.
        """
        return self._changed(inplace, selection.merge_vars)

    @overload
    def cleanup(self, inplace: Literal[False] = False) -> ComputationFrame: ...

    @overload
    def cleanup(self, inplace: Literal[True]) -> None: ...

    def cleanup(self, inplace: bool = False) -> ComputationFrame | None:
        """Remove the nodes that hold no elements."""
        return self._changed(inplace, selection.cleanup)

    @overload
    def simplify(self, inplace: Literal[False] = False) -> ComputationFrame: ...

    @overload
    def simplify(self, inplace: Literal[True]) -> None: ...

    def simplify(self, inplace: bool = False) -> ComputationFrame | None:
        """Remove the nodes that hold no elements (as :meth:`cleanup`; the original's merging
        of nested variables is :meth:`merge_vars`)."""
        return self._changed(inplace, selection.cleanup)

    # ================================================================== filters

    def isin(
        self, values: Iterable[object], by: str = "val", node_class: str = "var"
    ) -> ComputationFrame:
        """Keep the elements that are in ``values``.

        With ``node_class="var"``, every variable keeps the refs whose value
        (``by="val"``), history id (``"hid"``) or content id (``"cid"``) is in ``values``,
        and every function node keeps the calls adjacent to a kept ref: the calls that made it
        and the calls that took it, as in the original, so that ``cf.isin([v]).delete_calls()``
        deletes the calls that touched ``v``. The refs of the kept calls stay too (their other
        inputs and outputs), so the result is a valid frame: ``df()`` shows those calls. With
        ``node_class="func"``, every function
        node keeps the calls whose history or content id is in ``values``, and the variables
        lose the refs that only those dropped calls touched.

        Raises:
            FrameError: an unknown ``by`` or ``node_class``, or ``by="val"`` for calls.
        """
        return self._of(filters.isin(self.graph, values, by, node_class))

    def where(
        self,
        var: str | Iterable[str] | filters.Predicate,
        predicate: filters.Predicate | None = None,
    ) -> ComputationFrame:
        """Keep the refs of a variable whose value satisfies ``predicate(value)``.

        ``cf.where("y", lambda y: y > 2)`` restricts ``y``; ``cf.where(pred)`` restricts every
        variable. Calls that lost one of their refs are dropped, and so are the refs of the
        *other* variables that lost every call they were connected to: what is left are the
        computations whose restricted values satisfy the predicate. Exceptions raised by the
        predicate propagate.

        Raises:
            NodeNotFoundError: an unknown variable.
            TypeError: no callable predicate.
        """
        return self._of(filters.where(self.graph, var, predicate))

    def with_versions(self, func: str, versions: str | Iterable[str]) -> ComputationFrame:
        """Keep the calls of function node ``func`` that ran one of the given code versions.

        ``versions`` are content or semantic version ids (``call.content_version``,
        ``call.semantic_version``, as ``storage.versions(f)`` lists them), or prefixes of at
        least 6 characters. The outputs of the dropped calls go too, and so do their inputs
        that no kept call uses, and everything downstream of what went: the frame keeps the
        computations that went through those versions (and those that never reached ``func``).

        Raises:
            NodeNotFoundError: an unknown function node.
            FrameError: an id shorter than 6 characters.
        """
        return self._of(filters.with_versions(self.graph, func, versions))

    def _compare(self, other: object, test: filters.Predicate) -> ComputationFrame:
        if isinstance(other, ComputationFrame):
            raise TypeError(
                "a ComputationFrame compares with a value (cf < 3 keeps the refs whose values are"
                " below 3), not with another frame; use cf1 & cf2 or cf1 - cf2 to combine frames"
            )
        return self._of(filters.compare(self.graph, test))

    def __lt__(self, other: object) -> ComputationFrame:
        """``cf < x``: every variable keeps the refs whose value is ``< x`` (values that cannot
        be compared with ``x`` are dropped), with the complete calls among them."""
        return self._compare(other, lambda value: value < other)  # type: ignore[operator]

    def __le__(self, other: object) -> ComputationFrame:
        """``cf <= x``: as ``cf < x``."""
        return self._compare(other, lambda value: value <= other)  # type: ignore[operator]

    def __gt__(self, other: object) -> ComputationFrame:
        """``cf > x``: as ``cf < x``."""
        return self._compare(other, lambda value: value > other)  # type: ignore[operator]

    def __ge__(self, other: object) -> ComputationFrame:
        """``cf >= x``: as ``cf < x``."""
        return self._compare(other, lambda value: value >= other)  # type: ignore[operator]

    # ================================================================== set algebra

    def _graphs_of(self, others: Sequence[object]) -> list[FrameGraph]:
        """The graphs of ``others``, checked to be frames of this frame's storage.

        Raises:
            TypeError: one is not a ComputationFrame.
            FrameError: one is of another storage.
        """
        graphs = []
        for other in others:
            if not isinstance(other, ComputationFrame):
                raise TypeError(f"expected a ComputationFrame, got {type(other).__name__}")
            if other.source is not self.source:
                raise FrameError(
                    "cannot combine ComputationFrames of different storages; build both from "
                    "the same Storage"
                )
            graphs.append(other.graph)
        return graphs

    def union(self, *others: ComputationFrame) -> ComputationFrame:
        """Nodes, edges and elements of all the frames, matched by node name (``a | b``).

        Call it as ``a.union(b, c)`` or ``ComputationFrame.union(a, b, c)``. The variables on
        an edge receive any ref a call of the union needs there, so the result is valid.

        Raises:
            FrameError: frames of different storages, or a name that is a variable in one
                frame and a function node (or a node of another op) in another.
        """
        return self._of(algebra.union(self.graph, self._graphs_of(others)))

    def intersection(self, *others: ComputationFrame) -> ComputationFrame:
        """The nodes (of the same kind and op), edges and elements all frames share (``a & b``).

        Raises:
            FrameError: frames of different storages.
        """
        return self._of(algebra.intersection(self.graph, self._graphs_of(others)))

    def difference(self, other: ComputationFrame) -> ComputationFrame:
        """This frame without the elements ``other`` holds in same-named nodes (``a - b``).

        Calls that lost one of their refs are dropped, then what is no longer reachable from
        the remaining sources, then the nodes left empty.

        Raises:
            FrameError: frames of different storages.
        """
        return self._of(algebra.difference(self.graph, self._graphs_of([other])[0]))

    def __or__(self, other: object) -> ComputationFrame:
        if not isinstance(other, ComputationFrame):
            return NotImplemented
        return self.union(other)

    def __and__(self, other: object) -> ComputationFrame:
        if not isinstance(other, ComputationFrame):
            return NotImplemented
        return self.intersection(other)

    def __sub__(self, other: object) -> ComputationFrame:
        if not isinstance(other, ComputationFrame):
            return NotImplemented
        return self.difference(other)

    # ================================================================== text and statistics

    def get_graph_desc(self) -> str:
        """The graph as text: isolated variables, then one line per function node.

        Function nodes come in topological order (the nodes of a cycle together), one line
        each: ``y@y = increment(x=x)``. An output is written ``var@output_name``, several
        variables on one output ``(a | b)@out``; an input ``label=var`` (or ``label=a | b``).
        A function node with no calls or no edges is written too (``f()``), never an error.
        """
        return describe.graph_desc(self.graph)

    def print_graph(self) -> None:
        """Print :meth:`get_graph_desc`."""
        graph_view.show_text(self.get_graph_desc())

    def __repr__(self) -> str:
        return describe.repr_text(self.graph, type(self).__name__)

    def _repr_html_(self) -> str:
        """A compact summary for notebooks: counts and the graph text (no external assets)."""
        return graph_view.summary_html(describe.summary(self.graph, type(self).__name__))

    def _ipython_key_completions_(self) -> list[str]:
        return sorted(self.nodes)

    def get_var_stats(self) -> pd.DataFrame:
        """One row per variable (topological order).

        Columns: ``name``, ``num_values`` (refs), ``num_sources`` (refs with no creator call in
        the frame), ``num_sinks`` (refs no call of the frame consumes), ``in_degree`` and
        ``out_degree`` (labelled edges).
        """
        return describe.var_stats(self.graph)

    def get_func_stats(self) -> pd.DataFrame:
        """One row per function node (topological order).

        Columns: ``name``, ``op`` (the op's name), ``num_calls``, ``in_degree`` and
        ``out_degree`` (labelled edges).
        """
        return describe.func_stats(self.graph)

    def info(self, *nodes: str) -> None:
        """Print a summary of the frame: counts, the graph, and tables of variables and ops.

        With ``nodes``, print :meth:`var_info` / :meth:`func_info` of each of them instead.

        Raises:
            NodeNotFoundError: a node is not in the frame (nothing is printed).
        """
        if nodes:
            describe.check_nodes(self.graph, nodes)
            text = "\n\n".join(describe.node_info_text(self.graph, n) for n in nodes)
        else:
            text = describe.info_text(self.graph, type(self).__name__)
        graph_view.show_text(text)

    def var_info(self, vname: str) -> None:
        """Print a variable's number of refs, sources and sinks, and its creator and consumer
        ops with the number of calls on each edge.

        Raises:
            NodeNotFoundError: ``vname`` is not a variable of the frame.
        """
        describe.check_nodes(self.graph, [vname], "variable")
        graph_view.show_text(describe.var_info_text(self.graph, vname))

    def func_info(self, fname: str) -> None:
        """Print a function node's op, number of calls, input and output edges (with their
        labels and call counts), and the code versions of its calls when they are recorded.

        Raises:
            NodeNotFoundError: ``fname`` is not a function node of the frame.
        """
        describe.check_nodes(self.graph, [fname], "function")
        graph_view.show_text(describe.func_info_text(self.graph, fname))

    # ================================================================== pictures

    def get_dot_source(self, verbose: bool = False, orientation: str = "TB") -> str:
        """The frame as a graphviz DOT graph (the source :meth:`draw` renders).

        Variables are rounded boxes labelled with their name and "N values"; function nodes
        are boxes labelled with their name, ``@op:<op name>`` and "N calls"; edges carry their
        label. With ``verbose``, variables also show how many of their refs are sources and
        sinks, edges how many values travel on them, and ops their number of semantic versions
        when there are several.

        Raises:
            FrameError: ``orientation`` is not one of ``TB``, ``LR``, ``BT``, ``RL``.
        """
        if orientation not in graph_view.ORIENTATIONS:  # before the (costlier) drawing
            graph_view.dot_source(graph_view.GraphDrawing((), ()), orientation)
        return graph_view.dot_source(describe.drawing(self.graph, verbose), orientation)

    def draw(
        self,
        show_how: str | None = "inline",
        path: str | os.PathLike[str] | None = None,
        verbose: bool = False,
        print_dot: bool = False,
        orientation: str = "TB",
    ) -> None:
        """Draw the frame's graph with graphviz, as the original: shown in the notebook, and
        written to ``path`` if one is given.

        Args:
            show_how: ``"inline"`` (default: display the picture when running under IPython or
                Jupyter; nothing happens in a plain script), ``"browser"`` or ``"open"`` (open
                the picture with the system's web browser / viewer), or ``"none"``.
            path: write the picture there, in the format named by the extension (``.svg``,
                ``.png``, ``.jpg``, ``.pdf``, ... any of ``mandala.ui.graph_view.RENDER_FORMATS``;
                ``.dot`` / ``.gv`` write the DOT source itself).
            verbose: annotate with source/sink and per-edge counts (see :meth:`get_dot_source`).
            print_dot: also print the DOT source.
            orientation: graphviz ``rankdir``: ``"TB"`` (top to bottom) or ``"LR"``, ...

        :meth:`get_dot_source` gives the DOT source as a string.

        Raises:
            FrameError: unknown extension of ``path``, ``show_how`` or ``orientation``.
            FeatureUnavailableError: a picture is needed but graphviz ``dot`` is not installed.
        """
        how = graph_view.check_draw_options(show_how, path)
        source = self.get_dot_source(verbose=verbose, orientation=orientation)
        graph_view.show_drawing(source, how, path, print_dot)

    # ================================================================== deletion

    def delete_calls(self) -> None:
        """Delete every call of the frame from the storage, with the calls that depend on them."""
        keys = sorted({k for calls in self.fs.values() for k in calls})
        self.source.drop_calls_by_keys(keys, delete_dependents=True)

    def delete_calls_from_df(self, df: pd.DataFrame) -> None:
        """Delete every call found in the cells of ``df`` (and their dependents)."""
        keys: set[bytes] = set()
        for column in df.columns:
            for cell in df[column].tolist():
                if isinstance(cell, Call):
                    keys.add(cell.history_key)
                elif isinstance(cell, CallCollection):
                    keys.update(c.history_key for c in cell.values)
        self.source.drop_calls_by_keys(sorted(keys), delete_dependents=True)


def _expand(
    graph: FrameGraph,
    names: list[str] | None,
    back: bool,
    recursive: bool,
    skip_existing: bool,
    reuse_existing: bool,
) -> None:
    expand(graph, names, back, recursive, skip_existing, reuse_existing)


def _expand_all(graph: FrameGraph, skip_existing: bool, reuse_existing: bool) -> None:
    """Expand back and forward until the graph stops growing."""
    while True:
        size = graph.size()
        expand(graph, None, True, True, skip_existing, reuse_existing)
        expand(graph, None, False, True, skip_existing, reuse_existing)
        if graph.size() == size:
            break


def _names(varnames: Names | None) -> list[str] | None:
    if varnames is None:
        return None
    if isinstance(varnames, str):
        return [varnames]
    return list(varnames)


def _natural_order(label: str) -> tuple[str, int, str]:
    """``output_2`` before ``output_10``: unnamed outputs get ``var_<i>`` in position order."""
    stem, _, index = label.rpartition("_")
    if stem and index.isdigit():
        return (stem, int(index), label)
    return (label, -1, label)
