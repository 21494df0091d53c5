"""From a frame to a table: one row per (partial) execution of the frame's graph.

The history of a ref is everything the frame holds that it came from: its creator call (in the
function node on an edge into the ref's variable), that call's inputs (in the variables on its
input edges), their creators, and so on. A frame's table has one row per *sink element* (a ref
that no call of the frame consumes), holding that element's history; tables of different sink
variables are outer-joined on the nodes they share, so a call that fed several results appears
in one row with all of them. A node holding several elements of one history (an aggregation
over a list, or a feedback loop) gives a collection cell.

Histories are computed once per element and shared (a dataset used by a thousand training
calls is walked once); element keys are replaced by integer codes before the joins, so pandas
merges integers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from mandala.frames.graph import FrameGraph
from mandala.frames.index import COLLECTION_OPS, ElementIndex, block_slots, edge_label
from mandala.frames.keys import KeySet, KeyTable

__all__ = ["history_table", "joint_history_table", "Element", "KeyCodes"]

Element = bytes
History = dict[str, frozenset[bytes]]


def _histories(
    frame: FrameGraph, starts: Iterable[tuple[str, bytes]]
) -> dict[tuple[str, bytes], History]:
    """Histories of ``(variable, ref)`` pairs and of everything upstream of them (iteratively:
    chains of calls can be far deeper than Python's recursion limit).

    A history shares the frozensets of its parents' histories where nothing is added, so the
    common case (one creator, nodes not revisited) copies one small dict per element.
    """
    calls = frame.index.calls
    creators: dict[str, dict[bytes, list[tuple[str, bytes]]]] = {}
    upstream_of_call: dict[tuple[str, bytes], list[tuple[str, bytes]]] = {}

    def creators_of(var: str, ref: bytes) -> list[tuple[str, bytes]]:
        by_ref = creators.get(var)
        if by_ref is None:
            by_ref = creators[var] = frame.created_in_frame(var)
        return by_ref.get(ref, [])

    def upstream(func: str, call_key: bytes) -> list[tuple[str, bytes]]:
        found = upstream_of_call.get((func, call_key))
        if found is None:
            found = []
            call = calls[call_key]
            op_name = frame.op_by_func[func]
            inputs = frame.incoming[func]
            for edge in call.inputs:
                variables = inputs.get(edge_label(op_name, edge.name))
                if variables:
                    for var in variables:
                        if edge.history_key in frame.refs_by_var[var]:
                            found.append((var, edge.history_key))
            upstream_of_call[(func, call_key)] = found
        return found

    memo: dict[tuple[str, bytes], History] = {}
    pending: dict[tuple[str, bytes], tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]] = {}
    for start in starts:
        if start in memo:
            continue
        stack: list[tuple[tuple[str, bytes], bool]] = [(start, False)]
        while stack:
            state, expanded = stack.pop()
            if state in memo:
                continue
            if expanded:
                made_by, parents = pending.pop(state)
                memo[state] = _merge(state, made_by, [memo[p] for p in parents])
                continue
            if state in pending:
                continue
            made_by = creators_of(*state)
            parents = [p for func, call_key in made_by for p in upstream(func, call_key)]
            pending[state] = (made_by, parents)
            stack.append((state, True))
            for parent in parents:
                if parent not in memo and parent not in pending:
                    stack.append((parent, False))
    return memo


def _merge(
    state: tuple[str, bytes], made_by: list[tuple[str, bytes]], parents: list[History]
) -> History:
    own: dict[str, set[bytes]] = {state[0]: {state[1]}}
    for func, call_key in made_by:
        own.setdefault(func, set()).add(call_key)
    history: dict[str, frozenset[bytes]]
    if parents:
        largest: History = max(parents, key=len)
        history = dict(largest)
        for other in parents:
            for node, elements in other.items():
                current = history.get(node)
                if current is None:
                    history[node] = elements
                elif current is not elements and current != elements:
                    history[node] = current | elements
    else:
        history = {}
    for node, added in own.items():
        current = history.get(node)
        history[node] = frozenset(added) if current is None else current | frozenset(added)
    return history


def history_table(
    frame: FrameGraph, var: str, elements: Iterable[bytes] | None = None
) -> list[History]:
    """Histories of the given elements of ``var`` (default: all of them)."""
    refs = sorted(frame.refs_by_var[var] if elements is None else elements)
    starts = [(var, ref) for ref in refs]
    memo = _histories(frame, starts)
    return [memo[start] for start in starts]


class _Codes:
    """Integer codes for cells (an element key, or a frozenset of them), for fast merges."""

    def __init__(self) -> None:
        self.code_of: dict[Any, int] = {}
        self.cells: list[Any] = []
        self.missing = -1

    def code(self, cell: Any) -> int:
        found = self.code_of.get(cell)
        if found is None:
            found = len(self.cells)
            self.code_of[cell] = found
            self.cells.append(cell)
        return found

    def fresh_missing(self) -> int:
        # every missing cell gets its own negative code, so a missing value never joins another
        self.missing -= 1
        return self.missing


def _frame_of_histories(histories: list[History], codes: _Codes) -> pd.DataFrame:
    columns: dict[str, list[int]] = {}
    nodes = sorted({node for history in histories for node in history})
    for node in nodes:
        column = []
        for history in histories:
            elements = history.get(node)
            if elements is None:
                column.append(codes.fresh_missing())
            elif len(elements) == 1:
                column.append(codes.code(next(iter(elements))))
            else:
                column.append(codes.code(elements))
        columns[node] = column
    return pd.DataFrame(columns, dtype="int64")


def joint_history_table(
    frame: FrameGraph,
    variables: list[str],
    how: str = "outer",
    sinks: dict[str, KeySet] | None = None,
) -> tuple[pd.DataFrame, list[Any] | KeyCodes]:
    """The joined table of the histories of the sink elements of ``variables``.

    ``sinks`` gives the sink elements of some variables if the caller has them already.
    Returns integer codes and what decodes them (negative codes are missing cells): a list
    of cells (keys, or frozensets of keys), or a :class:`KeyCodes` when every cell is one key.
    """
    known = dict(sinks or {})
    for var in variables:
        if var not in known:
            known[var] = frame.sink_elements(var)
    key_codes = KeyCodes(frame.index.ref_table, frame.index.call_table)
    columnar = _columnar_tables(frame, variables, key_codes, known)
    if columnar is not None:
        if len(variables) == 1:  # one row per sink element already (checked as it was built)
            return columnar[variables[0]], key_codes
        return _join(variables, columnar, how), key_codes
    codes = _Codes()
    starts: list[tuple[str, bytes]] = []
    per_var: dict[str, list[tuple[str, bytes]]] = {}
    for var in variables:
        var_starts = [(var, ref) for ref in sorted(known[var])]
        per_var[var] = var_starts
        starts.extend(var_starts)
    memo = _histories(frame, starts)
    tables = {var: _frame_of_histories([memo[s] for s in per_var[var]], codes) for var in variables}
    return _join(variables, tables, how), codes.cells


_MISSING = -1
"""The code of a missing cell after a join (a join matches present cells only)."""


def _join(variables: list[str], tables: dict[str, pd.DataFrame], how: str) -> pd.DataFrame:
    """Join the history tables of several variables into one row per execution.

    A row of one table and a row of another belong together when they hold the same element
    in every node where both have one (and there is at least one such node), whatever each
    lacks: the outputs of one call share its history, so the rows of its outputs become one
    row even when one output's history (or the table built so far) lacks a node the other
    has (``split(x)`` next to ``split(scale(x))``; an output consumed by a later call next to
    one that is not). Rows that share no present element are unrelated: they stand side by
    side, never multiplied.
    """
    table: pd.DataFrame | None = None
    for var in variables:
        part = tables[var]
        if part.empty:
            continue
        if table is None:
            table = part
            continue
        shared = [c for c in table.columns if c in part.columns]
        table = _join_two(table, part, shared, how)
    if table is None:
        return pd.DataFrame()
    return table.drop_duplicates(ignore_index=True)


def _join_two(left: pd.DataFrame, right: pd.DataFrame, shared: list[str], how: str) -> pd.DataFrame:
    """Join two code tables on the nodes both rows have an element of (see :func:`_join`).

    Rows are grouped by which shared nodes they have (a few patterns in practice); each pair
    of patterns is joined on the nodes present in both, and the other shared nodes take the
    element of whichever row has one.
    """
    if not shared:  # unrelated results: their rows stand side by side, not multiplied
        return pd.concat([left, right], ignore_index=True)
    left = left.reset_index(drop=True)
    right = right.reset_index(drop=True)
    left_patterns, left_groups = _patterns(left[shared].to_numpy() >= 0)
    right_patterns, right_groups = _patterns(right[shared].to_numpy() >= 0)
    left_matched = np.zeros(len(left), dtype=bool)
    right_matched = np.zeros(len(right), dtype=bool)
    only_left = [c for c in left.columns if c not in shared]
    only_right = [c for c in right.columns if c not in shared]
    pieces: list[pd.DataFrame] = []
    for left_pattern, left_rows in zip(left_patterns, left_groups):
        for right_pattern, right_rows in zip(right_patterns, right_groups):
            both = left_pattern & right_pattern
            if not both.any():
                continue
            on = [c for c, present in zip(shared, both) if present]
            rest = [c for c, present in zip(shared, both) if not present]
            lhs = left.iloc[left_rows][on + rest + only_left].assign(_left_row=left_rows)
            rhs = right.iloc[right_rows][on + rest + only_right]
            rhs = rhs.rename(columns={c: f"{c}\0right" for c in rest})
            rhs = rhs.assign(_right_row=right_rows)
            merged = lhs.merge(rhs, on=on, how="inner")
            if merged.empty:
                continue
            for column in rest:
                theirs = merged.pop(f"{column}\0right").to_numpy()
                mine = merged[column].to_numpy()
                merged[column] = np.where(mine >= 0, mine, theirs)
            left_matched[merged.pop("_left_row").to_numpy()] = True
            right_matched[merged.pop("_right_row").to_numpy()] = True
            pieces.append(merged)
    if how in ("outer", "left"):
        pieces.append(left[~left_matched])
    if how in ("outer", "right"):
        pieces.append(right[~right_matched])
    pieces = [piece for piece in pieces if len(piece)]
    if not pieces:
        return pd.DataFrame({c: np.empty(0, np.int64) for c in [*left.columns, *only_right]})
    joined = pd.concat(pieces, ignore_index=True)
    return joined.fillna(_MISSING).astype("int64")


def _patterns(present: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The distinct rows of a boolean matrix, and the row numbers holding each."""
    if not len(present):
        return [], []
    patterns, inverse = np.unique(present, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return list(patterns), [np.flatnonzero(inverse == i) for i in range(len(patterns))]


class KeyCodes:
    """Codes that are key ids: a ref's id in ``refs``, a call's id plus ``offset`` (the
    number of refs when the codes were made). Negative codes are missing cells."""

    def __init__(self, refs: KeyTable, calls: KeyTable) -> None:
        self.refs = refs
        self.calls = calls
        self.offset = len(refs)
        self.missing = -1

    def ref_ids(self, codes: np.ndarray) -> np.ndarray:
        return codes

    def call_ids(self, codes: np.ndarray) -> np.ndarray:
        return codes - self.offset

    def fresh_missing(self, count: int) -> np.ndarray:
        """``count`` new negative codes, one per missing cell (a missing cell never joins
        another)."""
        found = np.arange(self.missing - 1, self.missing - 1 - count, -1, dtype=np.int64)
        self.missing -= count
        return found


def _columnar_tables(
    frame: FrameGraph, variables: list[str], codes: KeyCodes, sinks: dict[str, KeySet]
) -> dict[str, pd.DataFrame] | None:
    """History tables of the sink elements of ``variables``, built with one merge per edge.

    This is the common case, done column by column: an acyclic frame where each label of a
    function node leads to one variable and no node holds several elements of one history. It
    returns None when the frame is not of that shape (or a merge shows it is not), and the
    element-by-element computation takes over.

    Key columns are the index's id columns (no object per call), so every merge joins integers.
    """
    order = {node: i for i, node in enumerate(frame.topsort())}
    for source, target, _ in frame.edges():
        if order[source] >= order[target]:
            return None  # a cycle (feedback loop)
    for func in frame.calls_by_func:
        if frame.op_by_func[func] in COLLECTION_OPS:
            return None
        seen: set[str] = set()
        for by_label in (frame.incoming[func], frame.outgoing[func]):
            for variables_on_label in by_label.values():
                if len(variables_on_label) != 1 or variables_on_label & seen:
                    return None
                seen |= variables_on_label
    index = frame.index
    upstream_nodes = _upstream(frame, variables)
    func_tables: dict[str, pd.DataFrame] = {}
    for func in sorted(upstream_nodes & frame.calls_by_func.keys()):
        found = _func_keys(frame, index, func, codes.offset)
        if found is None:
            return None
        func_tables[func] = pd.DataFrame(found, columns=list(found))
    own_codes = {
        var: frame.refs_by_var[var].ids for var in sorted(upstream_nodes & frame.refs_by_var.keys())
    }

    histories: dict[str, pd.DataFrame | None] = {}

    def history(var: str) -> pd.DataFrame | None:
        if var in histories:
            return histories[var]
        parts = []
        created: list[np.ndarray] = []
        for funcs in frame.incoming[var].values():
            for func in funcs:
                table = func_tables[func]
                inputs = [next(iter(v)) for v in frame.incoming[func].values()]
                part = table[[func, var, *inputs]]
                for upstream in inputs:
                    upstream_history = history(upstream)
                    if upstream_history is None:
                        return None
                    shared = [c for c in part.columns if c in upstream_history.columns]
                    merged = part.merge(upstream_history, on=shared, how="inner")
                    if len(merged) != len(part):
                        return None  # paths disagree: a node holds several elements of a row
                    part = merged
                created.append(part[var].to_numpy())
                parts.append(part)
        own = own_codes[var]
        sources = own[~np.isin(own, np.concatenate(created))] if created else own
        if len(sources):
            parts.append(pd.DataFrame({var: sources}, dtype="int64"))
        result = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({var: []})
        if result[var].duplicated().any():
            return None  # one element with two histories (a call in two function nodes)
        histories[var] = result
        return result

    tables: dict[str, pd.DataFrame] = {}
    for var in variables:
        full = history(var)
        if full is None:
            return None
        is_sink = np.isin(full[var].to_numpy(), sinks[var].ids)
        table = full[is_sink].reset_index(drop=True)
        columns = {}
        for column in table.columns:
            values = table[column].to_numpy()
            missing = np.flatnonzero(pd.isna(values))
            if len(missing):  # each missing cell its own code: it must never join another
                values = values.copy()
                values[missing] = codes.fresh_missing(len(missing))
            columns[column] = values.astype(np.int64)
        tables[var] = pd.DataFrame(columns, columns=list(table.columns))
    return tables


def _upstream(frame: FrameGraph, variables: list[str]) -> set[str]:
    """``variables`` and every node on a path into them."""
    seen = set(variables)
    stack = list(seen)
    while stack:
        for node in frame.in_neighbors(stack.pop()):
            if node not in seen:
                seen.add(node)
                stack.append(node)
    return seen


def _func_keys(
    frame: FrameGraph, index: ElementIndex, func: str, call_offset: int
) -> dict[str, np.ndarray] | None:
    """The code columns of a function node's table: its calls (ids plus ``call_offset``) and
    the refs (ids) they have on each connected label (one variable per label); None if a call
    lacks a connected label."""
    sides = (
        (True, {label: next(iter(v)) for label, v in frame.incoming[func].items()}),
        (False, {label: next(iter(v)) for label, v in frame.outgoing[func].items()}),
    )
    names = [func] + [var for _, by_label in sides for var in by_label.values()]
    columns: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for block, rows in index.selected(frame.op_by_func[func], frame.calls_by_func[func]):
        part = {func: block.ids + call_offset}
        for is_input, by_label in sides:
            for label, var in by_label.items():
                slots = block_slots(block, label, is_input)
                if len(slots) != 1:
                    return None  # a call without a ref on a connected label
                part[var] = slots[0].ids
        for name, column in part.items():
            columns[name].append(column if rows is None else column[rows])
    return {
        name: np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        for name, parts in columns.items()
    }
