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
from typing import Any

import numpy as np
import pandas as pd

from mandala.backends.records import (
    DIRECTION_IN,
    KIND_ATOM,
    CallRows,
    StoredCall,
    StoredOutput,
)
from mandala.frames.keys import KEY_DTYPE, KeyTable, key_array
from mandala.hashing.key_table import key_list

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


class Slot:
    """One input or output name of a block: the id (in the refs' :class:`KeyTable`) of the ref
    each call has there. Content keys and kinds are facts of the refs, kept once each in a
    :class:`RefView`."""

    __slots__ = ("ids", "table", "_refs")

    def __init__(self, ids: np.ndarray, table: KeyTable) -> None:
        self.ids = ids
        self.table = table
        self._refs: list[bytes] | None = None

    @property
    def refs(self) -> list[bytes]:
        """The refs' keys as objects, row by row (made on first use)."""
        if self._refs is None:
            self._refs = self.table.to_bytes(self.ids)
        return self._refs

    def take(self, rows: Sequence[int] | np.ndarray) -> Slot:
        return Slot(self.ids[np.asarray(rows, dtype=np.int64)], self.table)


class RefView(Mapping[bytes, tuple[bytes, int]]):
    """``history_key -> (content_key, kind)`` of the refs a family of frames knows.

    Facts are kept in arrays by ref id (of ``table``), so that indexing a million edges makes
    no object per edge.
    """

    def __init__(self, table: KeyTable | None = None) -> None:
        self.table = table if table is not None else KeyTable()
        self._content = np.empty(0, dtype=KEY_DTYPE)
        self._kinds = np.empty(0, dtype=np.int8)
        self._known = np.empty(0, dtype=bool)
        self.has_kinds = False
        """Whether some ref is not an atom (most frames hold atoms only)."""

    def _grow(self, size: int) -> None:
        if size <= len(self._known):
            return
        capacity = max(size, 2 * len(self._known), 1024)
        for name, dtype in (("_content", KEY_DTYPE), ("_kinds", np.int8), ("_known", bool)):
            old = getattr(self, name)
            grown = np.zeros(capacity, dtype=dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)

    def add_ids(self, ids: np.ndarray, contents: np.ndarray, kinds: np.ndarray) -> None:
        """Record the facts of refs by id (aligned arrays); known refs keep theirs."""
        if not len(ids):
            return
        self._grow(int(ids.max()) + 1)
        fresh = ~self._known[ids]
        if not fresh.all():
            ids, contents, kinds = ids[fresh], contents[fresh], kinds[fresh]
        self._content[ids] = contents
        self._kinds[ids] = kinds
        self._known[ids] = True
        if not self.has_kinds and np.any(kinds != KIND_ATOM):
            self.has_kinds = True

    def add(self, refs: Sequence[bytes], contents: Sequence[bytes], kinds: Sequence[int]) -> None:
        """Record refs with their (aligned) content keys and kinds."""
        ids = self.table.intern(key_array(refs))
        self.add_ids(ids, key_array(contents), np.asarray(kinds, dtype=np.int8))

    def content_of(self, ids: np.ndarray) -> np.ndarray:
        """Content keys of refs by id (a key array)."""
        return self._content[ids]

    def kinds_of(self, ids: np.ndarray) -> np.ndarray:
        return self._kinds[ids]

    def _id(self, key: object) -> int:
        if not isinstance(key, bytes):
            return -1
        found = self.table.id_of(key)
        return found if 0 <= found < len(self._known) and self._known[found] else -1

    def __getitem__(self, key: bytes) -> tuple[bytes, int]:
        found = self._id(key)
        if found < 0:
            raise KeyError(key)
        return key_list(self._content[found : found + 1])[0], int(self._kinds[found])

    def __contains__(self, key: object) -> bool:
        return self._id(key) >= 0

    def __iter__(self) -> Iterator[bytes]:
        known = np.flatnonzero(self._known[: len(self.table)])
        return iter(self.table.to_bytes(known))

    def __len__(self) -> int:
        return int(np.count_nonzero(self._known))


class CallBlock:
    """Calls of one op version with the same input and output names, as columns.

    Attributes:
        op_name / op_version: the op of every call of the block.
        ids: the calls' ids in ``table`` (the calls' history keys); row ``i`` of every column
            belongs to ``ids[i]``.
        call_ids: the store's ids of the calls (to read their details), or None when the
            details were given.
        inputs / outputs: a :class:`Slot` by input / output name, in name order.

    The other fields of the calls' rows (content keys, versions, timing: :meth:`heads`) are
    read from the store for the whole block the first time they are asked for.
    """

    __slots__ = (
        "op_name",
        "op_version",
        "ids",
        "table",
        "call_ids",
        "inputs",
        "outputs",
        "_keys",
        "_heads",
        "_load_heads",
    )

    def __init__(
        self,
        op_name: str,
        op_version: int,
        ids: np.ndarray,
        table: KeyTable,
        heads: Sequence[list[Any]] | None,
        inputs: dict[str, Slot],
        outputs: dict[str, Slot],
        call_ids: list[int] | None = None,
        load_heads: Callable[[list[int]], Sequence[list[Any]]] | None = None,
    ) -> None:
        self.op_name = op_name
        self.op_version = op_version
        self.ids = ids
        self.table = table
        self._keys: list[bytes] | None = None
        self.call_ids = call_ids
        self._heads = None if heads is None else tuple(heads)
        self._load_heads = load_heads
        if heads is None and (call_ids is None or load_heads is None):
            raise ValueError("a block without heads needs call ids and a way to read them")
        self.inputs = dict(sorted(inputs.items()))
        self.outputs = dict(sorted(outputs.items()))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def keys(self) -> list[bytes]:
        """The calls' history keys as objects, row by row (made on first use)."""
        if self._keys is None:
            self._keys = self.table.to_bytes(self.ids)
        return self._keys

    def heads(self) -> tuple[list[Any], ...]:
        """Columns ``(content_keys, semantic_versions, content_versions, started_at,
        durations)``, read from the store on first use."""
        if self._heads is None:
            assert self._load_heads is not None and self.call_ids is not None  # see __init__
            self._heads = tuple(self._load_heads(self.call_ids))
        return self._heads

    def take(self, rows: Sequence[int] | np.ndarray) -> CallBlock:
        """The block of the given rows only."""
        picked = np.asarray(rows, dtype=np.int64)
        listed = picked.tolist()
        return CallBlock(
            self.op_name,
            self.op_version,
            self.ids[picked],
            self.table,
            None
            if self._heads is None
            else [[column[i] for i in listed] for column in self._heads],
            {name: slot.take(picked) for name, slot in self.inputs.items()},
            {name: slot.take(picked) for name, slot in self.outputs.items()},
            None if self.call_ids is None else [self.call_ids[i] for i in listed],
            self._load_heads,
        )

    def stored(self, row: int, refs: Mapping[bytes, tuple[bytes, int]]) -> StoredCall:
        """The call of row ``row`` as a :class:`StoredCall` (edges in name order), with the
        content keys and kinds of its refs from ``refs``."""
        content_keys, semantic, content_versions, started, durations = self.heads()
        edges = []
        for side in (self.inputs, self.outputs):
            edges.append(
                tuple(
                    StoredOutput(name, key, *refs[key])
                    for name, slot in side.items()
                    for key in (slot.table.key(int(slot.ids[row])),)
                )
            )
        return StoredCall(
            self.table.key(int(self.ids[row])),
            content_keys[row],
            self.op_name,
            self.op_version,
            semantic[row],
            content_versions[row],
            started[row],
            durations[row],
            edges[0],
            edges[1],
        )


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A numpy object array of ``values`` (never a multi-dimensional one)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def blocks_from_rows(
    rows: CallRows,
    load_heads: Callable[[list[int]], Sequence[list[Any]]] | None = None,
    *,
    calls: KeyTable | None = None,
    refs: RefView | None = None,
) -> list[CallBlock]:
    """Pivot rows read from the store into blocks, whatever order the rows come in.

    Calls get ids in ``calls`` and refs in ``refs.table`` (new tables when not given), and the
    content keys and kinds of the refs are recorded in ``refs``. ``load_heads`` reads the
    details of calls by store id when ``rows`` has none."""
    calls = calls if calls is not None else KeyTable()
    refs = refs if refs is not None else RefView()
    call_ids, keys, op_ids = rows.heads
    count = len(call_ids)
    if not count:
        return []
    ids = _int_array(call_ids)
    key_ids = calls.intern(key_array(keys))
    order = np.argsort(ids)
    sorted_ids = ids[order]
    # (direction, name) -> (ref ids, present), each a column over all calls
    columns: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
    edge_calls, directions, names, ref_keys, content_keys, kinds = rows.edges
    if len(edge_calls):
        edge_ids = _int_array(edge_calls)
        at = np.minimum(np.searchsorted(sorted_ids, edge_ids), count - 1)
        if not np.array_equal(sorted_ids[at], edge_ids):
            raise ValueError("an edge row names a call that is not among the call rows")
        position = order[at]
        ref_ids = refs.table.intern(key_array(ref_keys))
        refs.add_ids(ref_ids, key_array(content_keys), _int_array(kinds).astype(np.int8))
        name_codes, name_values = pd.factorize(_objects(names))
        slot_codes = name_codes.astype(np.int64) * 2 + _int_array(directions)
        by_slot = np.argsort(slot_codes)
        bounds = np.flatnonzero(np.diff(slot_codes[by_slot])) + 1
        for part in np.split(by_slot, bounds):
            code = int(slot_codes[part[0]])
            where = position[part]
            ref_column = np.full(count, -1, dtype=np.int64)
            ref_column[where] = ref_ids[part]
            present = np.zeros(count, dtype=bool)
            present[where] = True
            columns[(code % 2, str(name_values[code // 2]))] = (ref_column, present)
    slots = list(columns)
    signature = _signatures([columns[slot][1] for slot in slots], count)
    groups = (
        pd.DataFrame({"op": _int_array(op_ids), "sig": signature})
        .groupby(["op", "sig"], sort=True)
        .indices
    )
    head_arrays = None if rows.details is None else [_objects(column) for column in rows.details]
    blocks = []
    for (op_id, _), members in groups.items():
        members = members[np.argsort(ids[members])]
        first = members[0]
        inputs: dict[str, Slot] = {}
        outputs: dict[str, Slot] = {}
        for slot in slots:
            ref_column, present = columns[slot]
            if not present[first]:
                continue
            direction, name = slot
            (inputs if direction == DIRECTION_IN else outputs)[name] = Slot(
                ref_column[members], refs.table
            )
        op_name, op_version = rows.ops[int(op_id)]
        blocks.append(
            CallBlock(
                op_name,
                op_version,
                key_ids[members],
                calls,
                None if head_arrays is None else [array[members].tolist() for array in head_arrays],
                inputs,
                outputs,
                ids[members].tolist(),
                load_heads,
            )
        )
    return blocks


def _int_array(values: Sequence[int] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.int64, copy=False)
    return np.fromiter(values, dtype=np.int64, count=len(values))


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
