"""Stored calls held as columns: one block per op version and signature.

A frame over a million calls must not build a million call objects (and one more per edge) just
to index them. The rows read from the store are pivoted with numpy into blocks: the calls of
one op version that have the same input and output names, with one column of ref keys per
name (the content key and kind of each ref are kept once, in a :class:`RefView`). Frames work on these columns; a :class:`StoredCall` is only
made for a call that code asks about by itself.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mandala.backends.records import (
    DIRECTION_IN,
    KIND_ATOM,
    CallRows,
    StoredCall,
    StoredOutput,
)

__all__ = ["Slot", "RefView", "CallBlock", "blocks_from_rows", "rows_from_calls", "paused_gc"]

_MASK_BITS = 62
"""Blocks are told apart by a bit mask of the names a call has while there are at most this
many names in one read (a signed 64-bit integer), else by packed bit rows."""


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a frame makes many objects.

    Reading a million calls makes millions of tuples, and each few hundred of them set off a
    collection that walks the whole heap again: that took about 40% of the time. The objects
    made here hold no reference cycles, so nothing is left for the collector to find.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            # Not gc.freeze() + unfreeze() to spare the collection that walks what the pause
            # made: that would move every live object to the oldest generation, and a storage
            # dropped later (a reference cycle holding a database connection) would then wait
            # for a full collection.
            gc.enable()


class Slot(NamedTuple):
    """One input or output name of a block: the key of the ref each call has there (content
    keys and kinds are facts of the refs, kept once each in a :class:`RefView`)."""

    refs: list[bytes]

    def take(self, rows: Sequence[int]) -> Slot:
        return Slot([self.refs[i] for i in rows])


class RefView(Mapping[bytes, tuple[bytes, int]]):
    """``history_key -> (content_key, kind)`` of the refs a family of frames knows.

    Content keys are kept by ref; kinds only where they are not atoms (most refs are), so that
    indexing a million edges makes no tuple per edge.
    """

    def __init__(self) -> None:
        self.content: dict[bytes, bytes] = {}
        self.kinds: dict[bytes, int] = {}

    def __getitem__(self, key: bytes) -> tuple[bytes, int]:
        return self.content[key], self.kinds.get(key, KIND_ATOM)

    def __contains__(self, key: object) -> bool:
        return key in self.content

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.content)

    def __len__(self) -> int:
        return len(self.content)

    def add(self, refs: list[bytes], contents: list[bytes], kinds: list[int]) -> None:
        """Record refs with their (aligned) content keys and kinds."""
        self.content.update(zip(refs, contents))
        if kinds.count(KIND_ATOM) != len(kinds):
            self.kinds.update((ref, kind) for ref, kind in zip(refs, kinds) if kind != KIND_ATOM)

    def setdefault(self, key: bytes, value: tuple[bytes, int]) -> tuple[bytes, int]:
        if key not in self.content:
            self.add([key], [value[0]], [value[1]])
        return self[key]


class CallBlock:
    """Calls of one op version with the same input and output names, as columns.

    Attributes:
        op_name / op_version: the op of every call of the block.
        keys: the calls' history keys; row ``i`` of every column belongs to ``keys[i]``.
        call_ids: the store's ids of the calls (to read their details), or None when the
            details were given.
        inputs / outputs: a :class:`Slot` by input / output name, in name order.

    The other fields of the calls' rows (content keys, versions, timing: :meth:`heads`) are
    read from the store for the whole block the first time they are asked for.
    """

    __slots__ = (
        "op_name",
        "op_version",
        "keys",
        "call_ids",
        "inputs",
        "outputs",
        "_heads",
        "_load_heads",
    )

    def __init__(
        self,
        op_name: str,
        op_version: int,
        keys: list[bytes],
        heads: Sequence[list[Any]] | None,
        inputs: dict[str, Slot],
        outputs: dict[str, Slot],
        call_ids: list[int] | None = None,
        load_heads: Callable[[list[int]], Sequence[list[Any]]] | None = None,
    ) -> None:
        self.op_name = op_name
        self.op_version = op_version
        self.keys = keys
        self.call_ids = call_ids
        self._heads = None if heads is None else tuple(heads)
        self._load_heads = load_heads
        if heads is None and (call_ids is None or load_heads is None):
            raise ValueError("a block without heads needs call ids and a way to read them")
        self.inputs = dict(sorted(inputs.items()))
        self.outputs = dict(sorted(outputs.items()))

    def __len__(self) -> int:
        return len(self.keys)

    def heads(self) -> tuple[list[Any], ...]:
        """Columns ``(content_keys, semantic_versions, content_versions, started_at,
        durations)``, read from the store on first use."""
        if self._heads is None:
            assert self._load_heads is not None and self.call_ids is not None  # see __init__
            self._heads = tuple(self._load_heads(self.call_ids))
        return self._heads

    def take(self, rows: Sequence[int]) -> CallBlock:
        """The block of the given rows only."""
        return CallBlock(
            self.op_name,
            self.op_version,
            [self.keys[i] for i in rows],
            None if self._heads is None else [[column[i] for i in rows] for column in self._heads],
            {name: slot.take(rows) for name, slot in self.inputs.items()},
            {name: slot.take(rows) for name, slot in self.outputs.items()},
            None if self.call_ids is None else [self.call_ids[i] for i in rows],
            self._load_heads,
        )

    def stored(self, row: int, refs: Mapping[bytes, tuple[bytes, int]]) -> StoredCall:
        """The call of row ``row`` as a :class:`StoredCall` (edges in name order), with the
        content keys and kinds of its refs from ``refs``."""
        content_keys, semantic, content_versions, started, durations = self.heads()
        return StoredCall(
            self.keys[row],
            content_keys[row],
            self.op_name,
            self.op_version,
            semantic[row],
            content_versions[row],
            started[row],
            durations[row],
            tuple(
                StoredOutput(name, slot.refs[row], *refs[slot.refs[row]])
                for name, slot in self.inputs.items()
            ),
            tuple(
                StoredOutput(name, slot.refs[row], *refs[slot.refs[row]])
                for name, slot in self.outputs.items()
            ),
        )


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A numpy object array of ``values`` (never a multi-dimensional one)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def blocks_from_rows(
    rows: CallRows, load_heads: Callable[[list[int]], Sequence[list[Any]]] | None = None
) -> list[CallBlock]:
    """Pivot rows read from the store into blocks, whatever order the rows come in.

    ``load_heads`` reads the details of calls by store id when ``rows`` has none."""
    call_ids, keys, op_ids = rows.heads
    count = len(call_ids)
    if not count:
        return []
    ids = np.fromiter(call_ids, dtype=np.int64, count=count)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    # (direction, name) -> (refs, present), each a column over all calls
    columns: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
    edge_calls, directions, names, refs = rows.edges[:4]
    if edge_calls:
        size = len(edge_calls)
        edge_ids = np.fromiter(edge_calls, dtype=np.int64, count=size)
        at = np.minimum(np.searchsorted(sorted_ids, edge_ids), count - 1)
        if not np.array_equal(sorted_ids[at], edge_ids):
            raise ValueError("an edge row names a call that is not among the call rows")
        position = order[at]
        name_codes, name_values = pd.factorize(_objects(names))
        slot_codes = name_codes.astype(np.int64) * 2 + np.fromiter(
            directions, dtype=np.int64, count=size
        )
        ref_array = _objects(refs)
        by_slot = np.argsort(slot_codes, kind="stable")
        bounds = np.flatnonzero(np.diff(slot_codes[by_slot])) + 1
        for part in np.split(by_slot, bounds):
            code = int(slot_codes[part[0]])
            where = position[part]
            ref_column = np.empty(count, dtype=object)
            ref_column[where] = ref_array[part]
            present = np.zeros(count, dtype=bool)
            present[where] = True
            columns[(code % 2, str(name_values[code // 2]))] = (ref_column, present)
    slots = list(columns)
    signature = _signatures([columns[slot][1] for slot in slots], count)
    groups = (
        pd.DataFrame({"op": np.fromiter(op_ids, dtype=np.int64, count=count), "sig": signature})
        .groupby(["op", "sig"], sort=True)
        .indices
    )
    key_array = _objects(keys)
    head_arrays = None if rows.details is None else [_objects(column) for column in rows.details]
    blocks = []
    for (op_id, _), members in groups.items():
        members = members[np.argsort(ids[members], kind="stable")]
        first = members[0]
        inputs: dict[str, Slot] = {}
        outputs: dict[str, Slot] = {}
        for slot in slots:
            ref_column, present = columns[slot]
            if not present[first]:
                continue
            direction, name = slot
            (inputs if direction == DIRECTION_IN else outputs)[name] = Slot(
                ref_column[members].tolist()
            )
        op_name, op_version = rows.ops[int(op_id)]
        blocks.append(
            CallBlock(
                op_name,
                op_version,
                key_array[members].tolist(),
                None if head_arrays is None else [array[members].tolist() for array in head_arrays],
                inputs,
                outputs,
                ids[members].tolist(),
                load_heads,
            )
        )
    return blocks


def _signatures(present: list[np.ndarray], count: int) -> np.ndarray:
    """An integer per call that is equal for calls with the same names present."""
    if not present:
        return np.zeros(count, dtype=np.int64)
    if len(present) <= _MASK_BITS:
        mask = np.zeros(count, dtype=np.int64)
        for bit, column in enumerate(present):
            mask |= column.astype(np.int64) << bit
        return mask
    packed = np.packbits(np.stack(present, axis=1), axis=1)
    _, inverse = np.unique(packed, axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def rows_from_calls(calls: Iterable[StoredCall]) -> CallRows:
    """Calls given as :class:`StoredCall` objects (e.g. another frame's facts), as rows."""
    heads: list[tuple] = []
    details: list[tuple] = []
    edges: list[tuple] = []
    ops: dict[int, tuple[str, int]] = {}
    op_ids: dict[tuple[str, int], int] = {}
    for number, call in enumerate(calls):
        op = (call.op_name, call.op_version)
        op_id = op_ids.setdefault(op, len(op_ids))
        ops[op_id] = op
        heads.append((number, call.history_key, op_id))
        details.append(
            (
                call.content_key,
                call.semantic_version,
                call.content_version,
                call.started_at,
                call.duration,
            )
        )
        for direction, side in enumerate((call.inputs, call.outputs)):
            for edge in side:
                edges.append(
                    (number, direction, edge.name, edge.history_key, edge.content_key, edge.kind)
                )
    return CallRows(_transposed(heads, 3), _transposed(edges, 6), ops, _transposed(details, 5))


def _transposed(rows: list[tuple], width: int) -> tuple[list[Any], ...]:
    return tuple(map(list, zip(*rows))) if rows else tuple([] for _ in range(width))
