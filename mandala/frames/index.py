"""The element index of a family of computation frames: the calls and refs they have seen.

Facts about elements (a call's inputs and outputs, a ref's content key and kind) live in one
:class:`ElementIndex` shared by every frame derived from the same ``storage.cf(...)``: it only
ever grows, with facts read from the store, so sharing it is safe and makes copies of frames
cheap. Calls are kept as columns (:class:`~mandala.frames.blocks.CallBlock`), refs in a
:class:`~mandala.frames.blocks.RefView`; both have integer ids that frames hold as key arrays.
The graph of a frame (its nodes, edges and element sets) is in ``graph.py``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Iterable, Iterator, MutableMapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np

from mandala.backends.records import KIND_ATOM, KIND_POINTER, CallRows, StoredCall
from mandala.frames.blocks import CallBlock, RefView, Slot, blocks_from_rows, rows_from_calls
from mandala.frames.keys import KeySet, KeyTable, key_array
from mandala.frames.source import FrameSource
from mandala.hashing.digest import KEY_SIZE
from mandala.hashing.key_table import key_list
from mandala.model.calls import Call, LazyCall, OpSpec
from mandala.model.kinds import ref_from_kind
from mandala.model.refs import AtomRef, Ref

__all__ = [
    "ElementIndex",
    "CallView",
    "RefView",
    "edge_label",
    "block_slots",
    "COLLECTION_OPS",
]

COLLECTION_OPS = frozenset({"__make_list__", "__make_set__", "__make_dict__"})
"""Structural ops whose many inputs (one per element) are shown as one edge, ``elts``."""


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
        return self._index.row(key) >= 0 or key in self._made

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._index.call_table.to_bytes(self._index.ids_by_row()))

    def __len__(self) -> int:
        return self._index.row_count


class ElementIndex:
    """Calls and refs seen by a family of frames, with creator and consumer indexes.

    Calls are kept as columns (:class:`CallBlock`, one per op version and signature, in
    ``blocks_by_op``); ``calls`` reads one of them as a :class:`StoredCall`. Calls and refs
    have integer ids in two :class:`KeyTable` objects (``call_table``, ``ref_table``): frames
    hold their elements as :class:`KeySet` objects of those ids.
    """

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.blocks_by_op: dict[str, list[CallBlock]] = {}
        self.call_table = KeyTable()
        self.refs = RefView()
        self.ref_table = self.refs.table
        self._row_of_id = np.empty(0, dtype=np.int64)
        """Call id -> its row among all blocks (in the order they were added), -1 if none."""
        self._id_of_row: list[np.ndarray] = []
        self._blocks: list[CallBlock] = []
        self._starts: list[int] = []
        self._rows = 0
        self.calls = CallView(self)
        self._creator: dict[bytes, bytes] | None = None
        self._consumers: dict[bytes, set[bytes]] | None = None
        self.values: dict[bytes, Any] = {}
        """Values kept by ``attach()``, by content key (a frame otherwise loads on demand)."""
        self._specs: dict[tuple[str, int], OpSpec] = {}

    def load_values(self, content_keys: Iterable[bytes]) -> dict[bytes, Any]:
        """Values by content key (as :meth:`load_value_array`)."""
        keys = list(dict.fromkeys(content_keys))
        if not keys:
            return {}
        return dict(zip(keys, self.load_value_array(key_array(keys)).tolist()))

    def load_value_array(self, content_keys: np.ndarray, prefetched: Any = None) -> np.ndarray:
        """The values of content keys (a key array; repeats allowed), aligned with them as an object
        array: kept ones from memory, the rest in one request (``prefetched``: a read started
        by the source's ``prefetch_values``)."""
        kept = self.values
        if not kept:  # nothing attached (the common case)
            return self._load(content_keys, prefetched)
        keys = key_list(content_keys)
        held = np.fromiter(map(kept.__contains__, keys), dtype=bool, count=len(keys))
        values = np.empty(len(keys), dtype=object)
        if not held.all():
            values[~held] = self._load(content_keys[~held], prefetched)
        for position in np.flatnonzero(held).tolist():
            values[position] = kept[keys[position]]
        return values

    def _load(self, content_keys: np.ndarray, prefetched: Any) -> np.ndarray:
        if not len(content_keys):
            return np.empty(0, dtype=object)
        if prefetched is None:  # a source need not know of prefetching
            return self.source.load_value_array(content_keys)
        return self.source.load_value_array(content_keys, prefetched)

    # ------------------------------------------------------------------ refs

    def ref(self, key: bytes) -> Ref:
        """The lazy :class:`Ref` of an indexed ref (of the class its kind names)."""
        content_key, kind = self.refs[key]
        return ref_from_kind(kind, content_key, key)

    def load_ref_values(self, ref_keys: Iterable[bytes]) -> dict[bytes, Any]:
        """Values of refs by history key, loaded set-at-a-time (atoms and pointers in one
        request, collections assembled from their elements by the source)."""
        atoms: dict[bytes, bytes] = {}
        collections: list[bytes] = []
        for key in sorted(set(ref_keys)):
            content_key, kind = self.refs[key]
            if kind in (KIND_ATOM, KIND_POINTER):
                atoms[key] = content_key
            else:
                collections.append(key)
        loaded = self.load_values(set(atoms.values())) if atoms else {}
        values = {key: loaded[content_key] for key, content_key in atoms.items()}
        if collections:
            unwrapped = self.source.unwrap([self.ref(key) for key in collections])
            values.update(zip(collections, unwrapped))
        return values

    # ------------------------------------------------------------------ element sets

    def ref_set(self, keys: Iterable[bytes] = ()) -> KeySet:
        """A set of refs of this index (keys given as objects)."""
        return KeySet.of_keys(self.ref_table, keys) if keys else KeySet(self.ref_table)

    # ------------------------------------------------------------------ adding facts

    def add_rows(self, rows: CallRows) -> list[CallBlock]:
        """Index calls read from the store; returns all of them as blocks (known ones too)."""
        blocks = blocks_from_rows(
            rows, _DetailsReader(self.source), calls=self.call_table, refs=self.refs
        )
        for block in blocks:
            self._add_block(block)
        return blocks

    def add_calls(self, calls: Iterable[StoredCall]) -> None:
        """Index calls given as objects (the facts of another frame's index)."""
        self.add_rows(rows_from_calls(calls))

    def _add_block(self, block: CallBlock) -> None:
        size = len(self.call_table)
        if len(self._row_of_id) < size:
            grown = np.full(max(size, 2 * len(self._row_of_id)), -1, dtype=np.int64)
            grown[: len(self._row_of_id)] = self._row_of_id
            self._row_of_id = grown
        known = self._row_of_id[block.ids] >= 0
        if known.any():  # some calls are known: keep the others
            block = block.take(np.flatnonzero(~known))
            if not len(block):
                return
        start = self._rows
        self._blocks.append(block)
        self._starts.append(start)
        self._rows += len(block)
        self._row_of_id[block.ids] = np.arange(start, self._rows)
        self._id_of_row.append(block.ids)
        self.blocks_by_op.setdefault(block.op_name, []).append(block)
        self._creator = self._consumers = None

    def add_refs(
        self, history_keys: Sequence[bytes], content_keys: Sequence[bytes], kinds: Sequence[int]
    ) -> None:
        """Record refs (aligned lists) in one step; refs already known keep their facts."""
        if len(history_keys):
            self.refs.add(history_keys, content_keys, kinds)

    # ------------------------------------------------------------------ rows

    @property
    def row_count(self) -> int:
        """Calls indexed."""
        return self._rows

    def ids_by_row(self) -> np.ndarray:
        """The call id of every row, in row order."""
        if len(self._id_of_row) > 1:
            self._id_of_row = [np.concatenate(self._id_of_row)]
        return self._id_of_row[0] if self._id_of_row else np.empty(0, dtype=np.int64)

    def row(self, key: object) -> int:
        """The row of an indexed call, -1 if it is not indexed."""
        if not isinstance(key, bytes):
            return -1
        found = self.call_table.id_of(key)
        return int(self._row_of_id[found]) if 0 <= found < len(self._row_of_id) else -1

    def rows_of_ids(self, ids: np.ndarray) -> np.ndarray:
        """Rows of calls by id (-1 for calls not indexed)."""
        inside = (ids >= 0) & (ids < len(self._row_of_id))
        return np.where(inside, self._row_of_id[np.where(inside, ids, 0)], -1)

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
        ids = self.call_table.find(key_array(keys))
        rows = self.rows_of_ids(ids)
        if np.any(rows < 0):
            raise KeyError(keys[int(np.flatnonzero(rows < 0)[0])])
        return self._calls_at(rows, keys)

    def public_calls_of_ids(self, ids: np.ndarray) -> list[Call]:
        """:meth:`public_calls` of calls given by id."""
        if self.calls.has_made():
            return self.public_calls(self.call_table.to_bytes(ids))
        return self._calls_at(self.rows_of_ids(ids), None)

    def _calls_at(self, rows: np.ndarray, keys: list[bytes] | None) -> list[Call]:
        which = np.searchsorted(np.asarray(self._starts), rows, side="right") - 1
        result = np.empty(len(rows), dtype=object)
        for i in np.flatnonzero(np.bincount(which)).tolist():  # the blocks holding some
            block = self._blocks[i]
            spec = self._spec(block.op_name, block.op_version)
            source = _BlockCalls(self.refs, block, self.source)
            positions = np.flatnonzero(which == i)
            local = rows[positions] - self._starts[i]
            block_keys = (
                [keys[p] for p in positions.tolist()]
                if keys is not None
                else self.call_table.to_bytes(block.ids[local])
            )
            # refs are made, and the calls' other fields read (for the whole block), when
            # first asked for
            made = list(map(LazyCall, repeat(spec), block_keys, repeat(source), local.tolist()))
            result[positions] = np.fromiter(made, dtype=object, count=len(made))
        calls: list[Call] = result.tolist()
        return calls

    def declared_outputs(self, op_name: str) -> tuple[str, ...]:
        """The output names an op declared (``output_names=[...]``), in return order, over
        the versions of it that the index holds calls of; empty if it declared none."""
        names: list[str] = []
        for version in sorted({block.op_version for block in self.blocks_by_op.get(op_name, ())}):
            for name in self._spec(op_name, version).output_names or ():
                if name not in names:
                    names.append(name)
        return tuple(names)

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
        row = self.row(key)
        if row < 0:
            raise KeyError(key)
        i = bisect_right(self._starts, row) - 1
        return self._blocks[i], row - self._starts[i]

    def _call_ids_of(self, call_keys: Collection[bytes]) -> np.ndarray:
        """Sorted ids of the indexed calls among ``call_keys``."""
        if isinstance(call_keys, KeySet) and call_keys.table is self.call_table:
            return call_keys.ids
        items = [k for k in call_keys if isinstance(k, bytes) and len(k) == KEY_SIZE]
        found = self.call_table.find(key_array(items))
        return np.sort(found[found >= 0])

    def selected(
        self, op_name: str, call_keys: Collection[bytes]
    ) -> list[tuple[CallBlock, np.ndarray | None]]:
        """The blocks of ``op_name`` holding calls of ``call_keys``, with the rows of those
        calls (None: every row of the block)."""
        blocks = self.blocks_by_op.get(op_name, ())
        if not call_keys or not blocks:
            return []
        wanted = self._call_ids_of(call_keys)
        selected: list[tuple[CallBlock, np.ndarray | None]] = []
        for block in blocks:
            inside = np.isin(block.ids, wanted)
            if inside.all():
                selected.append((block, None))
            elif inside.any():
                selected.append((block, np.flatnonzero(inside)))
        return selected

    def pair_ids(
        self, op_name: str, call_keys: Collection[bytes], label: str, is_input: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(call ids, ref ids)``, aligned: the refs that calls of ``call_keys`` have on
        edges labelled ``label`` (inputs, or outputs)."""
        calls: list[np.ndarray] = []
        refs: list[np.ndarray] = []
        for block, rows in self.selected(op_name, call_keys):
            for slot in block_slots(block, label, is_input):
                if rows is None:
                    calls.append(block.ids)
                    refs.append(slot.ids)
                else:
                    calls.append(block.ids[rows])
                    refs.append(slot.ids[rows])
        if not calls:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        return np.concatenate(calls), np.concatenate(refs)

    def pairs(
        self, op_name: str, call_keys: Collection[bytes], label: str, is_input: bool
    ) -> tuple[list[bytes], list[bytes]]:
        """:meth:`pair_ids` as keys."""
        calls, refs = self.pair_ids(op_name, call_keys, label, is_input)
        return self.call_table.to_bytes(calls), self.ref_table.to_bytes(refs)


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

    __slots__ = ("refs", "block", "source")

    def __init__(self, refs: RefView, block: CallBlock, source: FrameSource) -> None:
        self.refs = refs
        self.block = block
        self.source = source

    def call_refs(self, row: int) -> tuple[dict[str, Ref], dict[str, Ref]]:
        refs = self.refs
        sides = []
        for side in (self.block.inputs, self.block.outputs):
            names = list(side)
            ids = np.fromiter((side[name].ids[row] for name in names), np.int64, len(names))
            keys = refs.table.to_bytes(ids)
            contents = key_list(refs.content_of(ids))
            kinds = refs.kinds_of(ids).tolist()
            sides.append(
                {
                    name: ref_from_kind(kind, content, key)
                    for name, key, content, kind in zip(names, keys, contents, kinds)
                }
            )
        # collections come with their element refs, as in the original (len(ref) works)
        collections = [r for side in sides for r in side.values() if not isinstance(r, AtomRef)]
        if collections:
            self.source.load_shapes(collections)
        return sides[0], sides[1]

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
