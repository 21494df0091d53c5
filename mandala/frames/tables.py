"""A frame's tables: ``df`` (one row per execution), histories, function tables, values.

Functions over a :class:`~mandala.frames.graph.FrameGraph`; the table methods of
``ComputationFrame`` delegate to them. Cells are decoded column by column from integer codes
(``history.py``): each distinct cell is made once, and values are read in one request per table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from mandala.backends.records import KIND_ATOM, KIND_POINTER
from mandala.frames.blocks import paused_gc
from mandala.frames.collections import CallCollection, RefCollection, ValueCollection
from mandala.frames.graph import FrameGraph
from mandala.frames.history import KeyCodes, history_table, joint_history_table
from mandala.frames.keys import KEY_DTYPE, key_array, sorted_unique
from mandala.frames.selection import midstream
from mandala.frames.values import TableValues
from mandala.model.calls import Call
from mandala.model.refs import Ref

__all__ = ["table", "history_df", "joint_history_df", "func_table", "eval_df", "attach"]

Cells = KeyCodes | np.ndarray | Sequence[object]
"""What decodes a table's codes: a :class:`KeyCodes` (every cell one key, its code an id), an
object array of keys (no cell a collection), or a list of keys and frozensets of keys."""


def table(
    graph: FrameGraph,
    nodes: tuple[str, ...],
    values: str,
    lazy_vars: Iterable[str] | None,
    include_calls: bool,
    join_how: str,
) -> pd.DataFrame:
    """The table of ``ComputationFrame.df`` (``values`` checked by the caller)."""
    with paused_gc():
        return _table(graph, nodes, values, lazy_vars, include_calls, join_how)


def _table(
    graph: FrameGraph,
    nodes: tuple[str, ...],
    values: str,
    lazy_vars: Iterable[str] | None,
    include_calls: bool,
    join_how: str,
) -> pd.DataFrame:
    frame = graph if not nodes else midstream(graph, list(nodes))
    source = graph.index.source
    refs_by_var = frame.refs_by_var
    lazy = set(lazy_vars or ())
    load = values == "objs"
    # The values a table shows are read while its histories and calls are built (SQLite
    # works without the GIL), when the read will scan the store's values anyway.
    prefetched = (
        source.prefetch_values(
            sum(len(refs) for var, refs in refs_by_var.items() if var not in lazy)
        )
        if load
        else None
    )
    sinks = {v: frame.sink_elements(v) for v in frame.sort_nodes(refs_by_var) if refs_by_var[v]}
    variables = [v for v, elements in sinks.items() if elements]
    codes_table, cells = joint_history_table(frame, variables, join_how, sinks)
    if codes_table.empty:
        columns = [n for n in frame.topsort() if include_calls or n in refs_by_var]
        if nodes:
            columns = [c for c in columns if c in nodes]
        return pd.DataFrame(columns=columns)
    columns = frame.sort_nodes(codes_table.columns)
    if not include_calls:
        columns = [c for c in columns if c in refs_by_var]
    if nodes:
        columns = [c for c in columns if c in nodes]
    # each column's distinct codes, decoded once; cells are then taken by position
    distinct = {column: _distinct(codes_table[column].to_numpy()) for column in columns}
    loaded_vars = [c for c in columns if load and c in refs_by_var and c not in lazy]
    cell_source: Cells
    if isinstance(cells, KeyCodes):
        to_load = _values_to_load(graph, [distinct[column][0] for column in loaded_vars], cells)
        cell_source = cells
    else:
        cell_array = np.fromiter(cells, dtype=object, count=len(cells))
        plain = frozenset not in set(map(type, cells))
        cell_source = cell_array if plain else cells
        content_keys: set[bytes] = set()
        refs = graph.index.refs
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
    result: dict[str, np.ndarray | pd.Series] = {
        column: _cells(graph, *distinct[column], cell_source, column in refs_by_var, False, to_load)
        for column in columns
        if column not in loaded_vars
    }
    if len(to_load):
        to_load.fill(frame.index.load_value_array(to_load.content_keys, prefetched))
    for column in loaded_vars:
        cells_of_column = _cells(graph, *distinct[column], cell_source, True, True, to_load)
        result[column] = _typed(cells_of_column)
    return pd.DataFrame(result, columns=columns)


def _values_to_load(graph: FrameGraph, found: list[np.ndarray], codes: KeyCodes) -> TableValues:
    """The values behind the ref codes of some columns, to load: atoms and pointers
    (other refs are collections, assembled from their elements)."""
    ids = (
        sorted_unique(np.concatenate([column[column >= 0] for column in found]))
        if found
        else np.empty(0, dtype=np.int64)
    )
    refs = graph.index.refs
    if refs.has_kinds:
        kinds = refs.kinds_of(ids)
        ids = ids[(kinds == KIND_ATOM) | (kinds == KIND_POINTER)]
    return TableValues.of_refs(refs, codes.ref_ids(ids))


def _ref_values(graph: FrameGraph, ids: np.ndarray, loaded: TableValues) -> np.ndarray:
    """The values of refs by id (atoms and pointers from ``loaded``), as an object array."""
    found = loaded.of_ref_ids(ids)
    index = graph.index
    refs = index.refs
    if refs.has_kinds:
        kinds = refs.kinds_of(ids)
        for position in np.flatnonzero((kinds != KIND_ATOM) & (kinds != KIND_POINTER)):
            key = index.ref_table.key(int(ids[position]))
            found[position] = index.source.unwrap(index.ref(key))
    return found


def _cells(
    graph: FrameGraph,
    found: np.ndarray,
    inverse: np.ndarray,
    cells: Cells,
    is_var: bool,
    load: bool,
    loaded: TableValues,
) -> np.ndarray:
    """A table column from its distinct codes (``found``) and where each row takes one
    (``inverse``): each distinct cell is decoded once. ``cells`` decodes codes: an object
    array when no cell is a collection (the common case, taken without a loop), else a
    list."""
    index = graph.index
    if isinstance(cells, KeyCodes):  # every cell one key, its code an id
        column = np.empty(len(found), dtype=object)
        present = found >= 0
        codes = found[present]
        if load:
            column[present] = _ref_values(graph, cells.ref_ids(codes), loaded)
            return column[inverse.reshape(-1)]
        made: Sequence[object]
        if not is_var:
            made = index.public_calls_of_ids(cells.call_ids(codes))
        else:
            made = [index.ref(k) for k in cells.refs.to_bytes(cells.ref_ids(codes))]
        column[present] = np.fromiter(made, dtype=object, count=len(made))
        return column[inverse.reshape(-1)]
    many: Callable[[list[bytes]], Sequence[object]]
    if not is_var:
        many = index.public_calls
    elif load:
        refs = index.refs

        def many(keys: list[bytes]) -> list[object]:
            found = []
            for key in keys:
                content_key, kind = refs[key]
                if kind in (KIND_ATOM, KIND_POINTER):
                    found.append(loaded.get(content_key))
                else:
                    found.append(index.source.unwrap(index.ref(key)))
            return found
    else:

        def many(keys: list[bytes]) -> list[object]:
            return [index.ref(key) for key in keys]

    # an object array of the cells as they are (lists, arrays and tuples stay whole)
    column = np.empty(len(found), dtype=object)
    present = found >= 0
    if isinstance(cells, np.ndarray):
        made = many(cells[found[present]].tolist())
        column[present] = np.fromiter(made, dtype=object, count=len(made))
        return column[inverse.reshape(-1)]
    decoded: list[object] = [None] * len(found)
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


def history_df(graph: FrameGraph, vname: str, include_calls: bool) -> pd.DataFrame:
    """One row per ref of ``vname`` with the refs and calls of its history (as refs)."""
    index = graph.index
    calls_by_func = graph.calls_by_func
    rows = []
    for history in history_table(graph, vname):
        row: dict[str, object] = {}
        for node, elements in history.items():
            is_func = node in calls_by_func
            if is_func and not include_calls:
                continue
            make: Callable[[bytes], object] = index.public_call if is_func else index.ref
            items = [make(k) for k in sorted(elements)]
            if len(items) == 1:
                row[node] = items[0]
            else:
                row[node] = CallCollection(items) if is_func else RefCollection(items)
        rows.append(row)
    result = pd.DataFrame(rows)
    return result[graph.sort_nodes(result.columns)] if len(result.columns) else result


def joint_history_df(
    graph: FrameGraph, varnames: Iterable[str], how: str, include_calls: bool
) -> pd.DataFrame:
    """The joined histories of the sink elements of ``varnames`` (cells are refs and calls)."""
    variables = list(graph.sort_nodes(varnames))
    codes_table, cells = joint_history_table(graph, variables, how=how)
    if codes_table.empty:
        return pd.DataFrame()
    refs_by_var = graph.refs_by_var
    columns = [
        c for c in graph.sort_nodes(codes_table.columns) if include_calls or c in refs_by_var
    ]
    with paused_gc():
        return pd.DataFrame(
            {
                c: _cells(
                    graph,
                    *_distinct(codes_table[c].to_numpy()),
                    cells,
                    c in refs_by_var,
                    False,
                    _NOTHING_LOADED,
                )
                for c in columns
            },
            columns=columns,
        )


def func_table(graph: FrameGraph, fname: str) -> pd.DataFrame:
    """One row per call of a function node: its input and output refs by name."""
    index = graph.index
    rows = []
    for key in sorted(graph.calls_by_func[fname]):
        call = index.calls[key]
        row: dict[str, Ref] = {}
        for edge in (*call.inputs, *call.outputs):
            row[edge.name] = index.ref(edge.history_key)
        rows.append(row)
    return pd.DataFrame(rows)


def eval_df(
    graph: FrameGraph, df: pd.DataFrame, skip_cols: Iterable[str] | None, skip_calls: bool
) -> pd.DataFrame:
    """A copy of ``df`` with every ref cell replaced by its value."""
    skip = set(skip_cols or ())
    result = df.copy()
    unwrap = graph.index.source.unwrap
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


def attach(graph: FrameGraph) -> None:
    """Load the values of every ref of the graph into its index (see ``ComputationFrame.attach``)."""
    index = graph.index
    keys = {
        content_key
        for refs in graph.refs_by_var.values()
        for k in refs
        for content_key, kind in (index.refs[k],)
        if kind in (KIND_ATOM, KIND_POINTER)
    }
    if keys:
        index.values.update(index.load_values(keys))


def _typed(cells: np.ndarray) -> np.ndarray | pd.Series:
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


_NOTHING_LOADED = TableValues(np.empty(0, dtype=KEY_DTYPE))
"""For tables that show refs, not values."""


def _distinct(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values of an integer column and where each row takes one (as
    ``np.unique(codes, return_inverse=True)``, about twice as fast on a million rows)."""
    inverse, found = pd.factorize(codes, sort=True)
    return np.asarray(found), inverse
