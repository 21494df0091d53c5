"""``cf.refs`` and ``cf.calls``: every ref and call of a frame by history id, as read-only
mappings built on demand.

The original library kept these dicts as the frame's own state; here a frame holds key ids per
node, so the views are made from the node sets when asked for (one union of sorted id arrays)
and make a :class:`Ref` or :class:`Call` object only for the entries that are read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

import numpy as np

from mandala.frames.keys import KeySet, KeyTable
from mandala.hashing.digest import KEY_SIZE

__all__ = ["ElementsById"]

Element = TypeVar("Element")


class ElementsById(Mapping[str, Element]):
    """The elements of some nodes of a frame, keyed by their history id (hex).

    Reads as the original's ``cf.refs`` / ``cf.calls`` dicts: ``len(cf.calls)``,
    ``cf.refs[hid]``, ``for hid, ref in cf.refs.items()``. It is a snapshot of the nodes when
    it was made; it does not follow later in-place changes of the frame.
    """

    def __init__(
        self, table: KeyTable, sets: list[KeySet], make: Callable[[bytes], Element]
    ) -> None:
        ids = [s.ids for s in sets]
        self._keys = KeySet.of_ids(table, np.concatenate(ids) if ids else np.empty(0, np.int64))
        self._make = make

    def _key(self, history_id: object) -> bytes | None:
        if not isinstance(history_id, str) or len(history_id) != 2 * KEY_SIZE:
            return None
        try:
            key = bytes.fromhex(history_id)
        except ValueError:
            return None
        return key if key in self._keys else None

    def __getitem__(self, history_id: str) -> Element:
        key = self._key(history_id)
        if key is None:
            raise KeyError(history_id)
        return self._make(key)

    def __contains__(self, history_id: object) -> bool:
        return self._key(history_id) is not None

    def __iter__(self) -> Iterator[str]:
        return (key.hex() for key in self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"<{len(self)} elements by history id>"
