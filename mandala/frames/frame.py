"""``ComputationFrame``: query stored computations as a graph, and turn them into tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

from mandala.frames.algebra import AlgebraMixin
from mandala.frames.blocks import paused_gc
from mandala.frames.collections import CallCollection, RefCollection, ValueCollection
from mandala.frames.display import DisplayMixin
from mandala.frames.element_views import ElementsById
from mandala.frames.expansion import expand
from mandala.frames.filters import FilterMixin
from mandala.frames.graph import ElementIndex, FrameGraph, edge_label
from mandala.frames.history import KeyCodes, history_table, joint_history_table
from mandala.frames.keys import KEY_DTYPE, KeySet, key_array, sorted_unique
from mandala.frames.source import FrameSource
from mandala.frames.values import TableValues
from mandala.model.calls import Call
from mandala.model.kinds import CLASS_OF_KIND as _REF_CLASSES
from mandala.model.kinds import KIND_ATOM, KIND_POINTER
from mandala.model.kinds import ref_kind as _kind_of
from mandala.model.refs import Ref

__all__ = ["ComputationFrame"]


class ComputationFrame(FilterMixin, AlgebraMixin, DisplayMixin, FrameGraph):
    """A view of stored calls as a graph of variables (sets of refs) and ops (sets of calls).

    Get one from ``storage.cf(op)``, ``storage.cf(ref)``, ``storage.cf([refs])`` or
    ``storage.cf({"name": refs})``; grow it with :meth:`expand_back` / :meth:`expand_forward` /
    :meth:`expand_all`; turn it into a table with :meth:`df`. Methods that return a frame copy it
    unless ``inplace=True`` (then they return None). A frame reads what was committed when it was
    built and expanded; it never changes the store, except through :meth:`delete_calls`.

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
        super().__init__(index if index is not None else ElementIndex(source))
        self.source = source

    # ================================================================== construction

    @classmethod
    def from_op(cls, source: FrameSource, name: str) -> ComputationFrame:
        """All stored calls of an op, as one function node with its input and output variables."""
        frame = cls(source)
        with paused_gc():
            blocks = frame.index.add_rows(source.call_rows_of_op(name))
        frame._add_func(name, name)
        inputs: dict[str, list[np.ndarray]] = {}
        outputs: dict[str, list[np.ndarray]] = {}
        for block in blocks:
            for input_name, slot in block.inputs.items():
                inputs.setdefault(edge_label(name, input_name), []).append(slot.ids)
            for output_name, slot in block.outputs.items():
                outputs.setdefault(output_name, []).append(slot.ids)
        refs, calls = frame.index.ref_table, frame.index.call_table
        for label in sorted(inputs):
            var = frame.new_name(label)
            frame._add_var(var)
            frame.vs[var] = KeySet.of_ids(refs, np.concatenate(inputs[label]))
            frame._add_edge(var, name, label)
        for label in sorted(outputs, key=_natural_order):
            var = frame.output_var_name(label)
            frame._add_var(var)
            frame.vs[var] = KeySet.of_ids(refs, np.concatenate(outputs[label]))
            frame._add_edge(name, var, label)
        ids = [block.ids for block in blocks]
        frame.fs[name] = KeySet.of_ids(calls, np.concatenate(ids) if ids else np.empty(0, np.int64))
        return frame

    @classmethod
    def from_vars(
        cls, source: FrameSource, variables: Mapping[str, Iterable[Ref]]
    ) -> ComputationFrame:
        """One variable per entry (no function nodes)."""
        frame = cls(source)
        for name, refs in variables.items():
            frame._add_var(name)
            keys: dict[bytes, Ref] = {}
            for ref in refs:
                if ref.history_key in keys:
                    raise ValueError(f"Ref {ref.hid} already exists in variable {name}")
                keys[ref.history_key] = ref
            frame.index.add_refs(
                list(keys),
                [ref.content_key for ref in keys.values()],
                [_kind_of(ref) for ref in keys.values()],
            )
            frame.vs[name] = frame.index.ref_set(keys)
        return frame

    def _result(self, frame: ComputationFrame, inplace: bool) -> ComputationFrame | None:
        if inplace:
            frame._copy_structure(self)
            return None
        return frame

    # ================================================================== elements

    def _ref(self, key: bytes) -> Ref:
        content_key, kind = self.index.refs[key]
        return _REF_CLASSES[kind](content_key, key, False, None)

    def _call(self, key: bytes) -> Call:
        return self.index.public_call(key)

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
        return {self._ref(k) for k in self._known_var(vname)}

    @property
    def sets(self) -> dict[str, set[str]]:
        """``{node: history ids of its elements}``."""
        result = {var: {k.hex() for k in keys} for var, keys in self.vs.items()}
        result.update({func: {k.hex() for k in keys} for func, keys in self.fs.items()})
        return result

    @property
    def values(self) -> dict[str, set[Any]]:
        """``{node: refs or calls}``."""
        return {**self.refs_by_var(), **self.calls_by_func()}

    def ops(self) -> dict[str, str]:
        """``{function node: op name}``."""
        return dict(self.op_of)

    def _known_var(self, vname: str) -> KeySet:
        if vname not in self.vs:
            raise ValueError(f"Node {vname} not found in the CF (variables: {sorted(self.vs)})")
        return self.vs[vname]

    # ================================================================== expansion

    @overload
    def expand_back(
        self,
        varnames: str | Iterable[str] | None = None,
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
        varnames: str | Iterable[str] | None = None,
        recursive: bool = False,
        skip_existing: bool = False,
        *,
        inplace: Literal[True],
        verbose: bool = False,
        reuse_existing: bool = True,
    ) -> None: ...

    def expand_back(
        self,
        varnames: str | Iterable[str] | None = None,
        recursive: bool = False,
        skip_existing: bool = False,
        inplace: bool = False,
        verbose: bool = False,
        reuse_existing: bool = True,
    ) -> ComputationFrame | None:
        """Add the calls that created the frame's refs (with ``recursive``, all the way back)."""
        frame = self if inplace else self.copy()
        expand(frame, _names(varnames), True, recursive, skip_existing, reuse_existing)
        return None if inplace else frame

    @overload
    def expand_forward(
        self,
        varnames: str | Iterable[str] | None = None,
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
        varnames: str | Iterable[str] | None = None,
        recursive: bool = False,
        skip_existing: bool = False,
        *,
        inplace: Literal[True],
        verbose: bool = False,
        reuse_existing: bool = True,
    ) -> None: ...

    def expand_forward(
        self,
        varnames: str | Iterable[str] | None = None,
        recursive: bool = False,
        skip_existing: bool = False,
        inplace: bool = False,
        verbose: bool = False,
        reuse_existing: bool = True,
    ) -> ComputationFrame | None:
        """Add the calls that consumed the frame's refs (with ``recursive``, all the way on)."""
        frame = self if inplace else self.copy()
        expand(frame, _names(varnames), False, recursive, skip_existing, reuse_existing)
        return None if inplace else frame

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
        verbose: bool = False,
        reuse_existing: bool = True,
    ) -> ComputationFrame | None:
        """Expand back and forward until nothing changes: the whole connected computation."""
        frame = self if inplace else self.copy()
        while True:
            size = frame._size()
            expand(frame, None, True, True, skip_existing, reuse_existing)
            expand(frame, None, False, True, skip_existing, reuse_existing)
            if frame._size() == size:
                break
        return None if inplace else frame

    def _size(self) -> int:
        return sum(map(len, self.vs.values())) + sum(map(len, self.fs.values())) + len(self.edges())

    # ================================================================== tables

    def df(
        self,
        *nodes: str,
        values: str = "objs",
        lazy_vars: Iterable[str] | None = None,
        verbose: bool = False,
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
        """
        if values not in ("objs", "refs"):
            raise ValueError(f"values must be 'objs' or 'refs', got {values!r}")
        with paused_gc():
            return self._df(nodes, values, lazy_vars, include_calls, join_how)

    def _df(
        self,
        nodes: tuple[str, ...],
        values: str,
        lazy_vars: Iterable[str] | None,
        include_calls: bool,
        join_how: str,
    ) -> pd.DataFrame:
        frame: ComputationFrame = self if not nodes else self.midstream(*nodes)
        lazy = set(lazy_vars or ())
        load = values == "objs"
        # The values a table shows are read while its histories and calls are built (SQLite
        # works without the GIL), when the read will scan the store's values anyway.
        prefetched = (
            self.source.prefetch_values(
                sum(len(refs) for var, refs in frame.vs.items() if var not in lazy)
            )
            if load
            else None
        )
        sinks = {v: frame.sink_elements(v) for v in frame.sort_nodes(frame.vs) if frame.vs[v]}
        variables = [v for v, elements in sinks.items() if elements]
        codes_table, cells = joint_history_table(frame, variables, join_how, sinks)
        if codes_table.empty:
            columns = [n for n in frame.topsort() if include_calls or n in frame.vs]
            if nodes:
                columns = [c for c in columns if c in nodes]
            return pd.DataFrame(columns=columns)
        columns = frame.sort_nodes(codes_table.columns)
        if not include_calls:
            columns = [c for c in columns if c in frame.vs]
        if nodes:
            columns = [c for c in columns if c in nodes]
        # each column's distinct codes, decoded once; cells are then taken by position
        distinct = {column: _distinct(codes_table[column].to_numpy()) for column in columns}
        loaded_vars = [c for c in columns if load and c in frame.vs and c not in lazy]
        if isinstance(cells, KeyCodes):
            to_load = self._values_to_load([distinct[column][0] for column in loaded_vars], cells)
            cell_source: Any = cells
        else:
            cell_array = np.fromiter(cells, dtype=object, count=len(cells))
            plain = frozenset not in set(map(type, cells))
            cell_source = cell_array if plain else cells
            content_keys: set[bytes] = set()
            refs = self.index.refs
            for column in loaded_vars:
                for code in distinct[column][0].tolist():
                    if code >= 0:
                        cell = cells[code]
                        for k in cell if isinstance(cell, frozenset) else (cell,):
                            content_key, kind = refs[k]
                            if kind in (KIND_ATOM, KIND_POINTER):
                                content_keys.add(content_key)
            to_load = TableValues(key_array(list(content_keys)))
        # columns without values first: their cells are made while the values are read
        result = {
            column: self._cells(*distinct[column], cell_source, column in frame.vs, False, to_load)
            for column in columns
            if column not in loaded_vars
        }
        if len(to_load):
            to_load.fill(frame.index.load_value_array(to_load.content_keys, prefetched))
        for column in loaded_vars:
            cells_of_column = self._cells(*distinct[column], cell_source, True, True, to_load)
            result[column] = _typed(cells_of_column)
        return pd.DataFrame(result, columns=columns)

    def _values_to_load(self, found: list[np.ndarray], codes: KeyCodes) -> TableValues:
        """The values behind the ref codes of some columns, to load: atoms and pointers
        (other refs are collections, assembled from their elements)."""
        ids = (
            sorted_unique(np.concatenate([column[column >= 0] for column in found]))
            if found
            else np.empty(0, dtype=np.int64)
        )
        refs = self.index.refs
        if refs.has_kinds:
            kinds = refs.kinds_of(ids)
            ids = ids[(kinds == KIND_ATOM) | (kinds == KIND_POINTER)]
        return TableValues.of_refs(refs, codes.ref_ids(ids))

    def _ref_values(self, ids: np.ndarray, loaded: TableValues) -> np.ndarray:
        """The values of refs by id (atoms and pointers from ``loaded``), as an object array."""
        found = loaded.of_ref_ids(ids)
        refs = self.index.refs
        if refs.has_kinds:
            kinds = refs.kinds_of(ids)
            for position in np.flatnonzero((kinds != KIND_ATOM) & (kinds != KIND_POINTER)):
                key = self.index.ref_table.key(int(ids[position]))
                found[position] = self.source.unwrap(self._ref(key))
        return found

    def _load_values(self, content_keys: set[bytes]) -> dict[bytes, Any]:
        return self.index.load_values(content_keys) if content_keys else {}

    def _cells(
        self,
        found: np.ndarray,
        inverse: np.ndarray,
        cells: Any,
        is_var: bool,
        load: bool,
        loaded: TableValues,
    ) -> np.ndarray:
        """A table column from its distinct codes (``found``) and where each row takes one
        (``inverse``): each distinct cell is decoded once. ``cells`` decodes codes: an object
        array when no cell is a collection (the common case, taken without a loop), else a
        list."""
        if isinstance(cells, KeyCodes):  # every cell one key, its code an id
            column = np.empty(len(found), dtype=object)
            present = found >= 0
            codes = found[present]
            if load:
                column[present] = self._ref_values(cells.ref_ids(codes), loaded)
                return column[inverse.reshape(-1)]
            made: list[Any]
            if not is_var:
                made = self.index.public_calls_of_ids(cells.call_ids(codes))
            else:
                made = [self._ref(k) for k in cells.refs.to_bytes(cells.ref_ids(codes))]
            column[present] = np.fromiter(made, dtype=object, count=len(made))
            return column[inverse.reshape(-1)]
        many: Any
        if not is_var:
            many = self.index.public_calls
        elif load:
            refs = self.index.refs

            def many(keys: list[bytes]) -> list[Any]:
                found = []
                for key in keys:
                    content_key, kind = refs[key]
                    if kind in (KIND_ATOM, KIND_POINTER):
                        found.append(loaded.get(content_key))
                    else:
                        found.append(self.source.unwrap(self._ref(key)))
                return found
        else:

            def many(keys: list[bytes]) -> list[Any]:
                return [self._ref(key) for key in keys]

        # an object array of the cells as they are (lists, arrays and tuples stay whole)
        column = np.empty(len(found), dtype=object)
        present = found >= 0
        if isinstance(cells, np.ndarray):
            made = many(cells[found[present]].tolist())
            column[present] = np.fromiter(made, dtype=object, count=len(made))
            return column[inverse.reshape(-1)]
        decoded: list[Any] = [None] * len(found)
        positions: list[int] = []
        keys: list[bytes] = []
        for position, code in enumerate(found.tolist()):
            if code < 0:
                continue
            cell = cells[code]
            if not isinstance(cell, frozenset):
                positions.append(position)
                keys.append(cell)
                continue
            items = many(sorted(cell))
            if not is_var:
                decoded[position] = CallCollection(items)
            elif load:
                decoded[position] = ValueCollection(items)
            else:
                decoded[position] = RefCollection(items)
        for position, item in zip(positions, many(keys)):
            decoded[position] = item
        column[:] = np.fromiter(decoded, dtype=object, count=len(decoded))
        return column[inverse.reshape(-1)]

    def eval(self, *nodes: str, values: str = "objs", verbose: bool = True) -> pd.DataFrame:
        """The table of :meth:`df`, calls included."""
        return self.df(*nodes, values=values, include_calls=True)

    def get_history_df(
        self, vname: str, include_calls: bool = True, verbose: bool = False
    ) -> pd.DataFrame:
        """One row per ref of ``vname`` with the refs and calls of its history (as refs)."""
        histories = history_table(self, vname)
        rows = []
        for history in histories:
            row: dict[str, Any] = {}
            for node, elements in history.items():
                if node in self.fs and not include_calls:
                    continue
                make = self._call if node in self.fs else self._ref
                items = [make(k) for k in sorted(elements)]
                if len(items) == 1:
                    row[node] = items[0]
                else:
                    row[node] = CallCollection(items) if node in self.fs else RefCollection(items)
            rows.append(row)
        table = pd.DataFrame(rows)
        return table[self.sort_nodes(table.columns)] if len(table.columns) else table

    def get_joint_history_df(
        self, varnames: Iterable[str], how: str = "outer", include_calls: bool = True
    ) -> pd.DataFrame:
        """The joined histories of the sink elements of ``varnames`` (cells are refs and calls)."""
        variables = [v for v in self.sort_nodes(varnames)]
        codes_table, cells = joint_history_table(self, variables, how=how)
        if codes_table.empty:
            return pd.DataFrame()
        columns = [c for c in self.sort_nodes(codes_table.columns) if include_calls or c in self.vs]
        with paused_gc():
            return pd.DataFrame(
                {
                    c: self._cells(
                        *_distinct(codes_table[c].to_numpy()),
                        cells,
                        c in self.vs,
                        False,
                        _NOTHING_LOADED,
                    )
                    for c in columns
                },
                columns=columns,
            )

    def get_func_table(self, fname: str) -> pd.DataFrame:
        """One row per call of a function node: its input and output refs by name."""
        if fname not in self.fs:
            raise ValueError(f"Node {fname} not found in the CF (functions: {sorted(self.fs)})")
        rows = []
        for key in sorted(self.fs[fname]):
            call = self.index.calls[key]
            row: dict[str, Any] = {}
            for edge in (*call.inputs, *call.outputs):
                row[edge.name] = self._ref(edge.history_key)
            rows.append(row)
        return pd.DataFrame(rows)

    def eval_df(
        self, df: pd.DataFrame, skip_cols: Iterable[str] | None = None, skip_calls: bool = False
    ) -> pd.DataFrame:
        """A copy of ``df`` with every ref cell replaced by its value."""
        skip = set(skip_cols or ())
        result = df.copy()
        unwrap = self.source.unwrap
        for column in result.columns:
            if column in skip:
                continue
            cells = result[column].tolist()
            if skip_calls and any(isinstance(c, (Call, CallCollection)) for c in cells):
                continue
            result[column] = [
                ValueCollection(unwrap(list(c.values)))
                if isinstance(c, RefCollection)
                else unwrap(c)
                if isinstance(c, Ref)
                else c
                for c in cells
            ]
        return result

    def attach(self) -> None:
        """Load the values of every ref of the frame and keep them, so tables built from this
        frame (and frames derived from it) do not read them again."""
        keys = {
            content_key
            for refs in self.vs.values()
            for k in refs
            for content_key, kind in (self.index.refs[k],)
            if kind in (KIND_ATOM, KIND_POINTER)
        }
        self.index.values.update(self._load_values(keys))

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


def _names(varnames: str | Iterable[str] | None) -> list[str] | None:
    if varnames is None:
        return None
    if isinstance(varnames, str):
        return [varnames]
    return list(varnames)


def _typed(cells: Any) -> Any:
    """A column of values with the dtype pandas gives a column built from those values.

    As in the original (which built its tables row by row), a column of numbers with missing
    cells is a float column with NaN, a column of ints is int64; other columns stay objects.
    """
    if not isinstance(cells, np.ndarray) or cells.dtype != object or not len(cells):
        return cells
    series = pd.Series(cells, copy=False).infer_objects()
    if series.dtype != object or not pd.isna(cells).any():
        return series
    inferred = pd.Series(cells.tolist())
    return inferred if inferred.dtype != object else series


def _natural_order(label: str) -> tuple[str, int, str]:
    """``output_2`` before ``output_10``: unnamed outputs get ``var_<i>`` in position order."""
    stem, _, index = label.rpartition("_")
    if stem and index.isdigit():
        return (stem, int(index), label)
    return (label, -1, label)


_NOTHING_LOADED = TableValues(np.empty(0, dtype=KEY_DTYPE))
"""For tables that show refs, not values."""


def _distinct(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values of an integer column and where each row takes one (as
    ``np.unique(codes, return_inverse=True)``, about twice as fast on a million rows)."""
    inverse, found = pd.factorize(codes, sort=True)
    return np.asarray(found), inverse
