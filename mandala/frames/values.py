"""The values a frame's table shows, matched to its cells in numpy.

A table over a million calls shows about a million values. They are loaded into an object array,
one per ref shown (a value shared by several refs is decoded once, by the store); a column then
takes its cells by integer indexing from its ref ids, instead of one dictionary lookup (and one
``bytes`` key) per cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mandala.frames.blocks import RefView
from mandala.hashing.key_table import KeyTable

__all__ = ["TableValues"]


class TableValues:
    """The values of some content keys, held in an object array aligned with the keys (see
    :meth:`fill`), and taken by ref id (:meth:`of_refs`) or by content key (:meth:`get`).

    Args:
        content_keys: the content keys to load (a key array; repeats allowed).
    """

    def __init__(self, content_keys: np.ndarray) -> None:
        self.content_keys = content_keys
        """What :meth:`fill` takes the values of, in this order."""
        self._values = np.empty(len(content_keys), dtype=object)
        self._slot_of_ref: np.ndarray | None = None
        self._by_content: tuple[KeyTable, np.ndarray] | None = None
        """For :meth:`get`: the content keys' table, and the slot of each of its ids."""

    @classmethod
    def of_refs(cls, refs: RefView, ref_ids: np.ndarray) -> TableValues:
        """The values of the refs ``ref_ids`` (distinct refs of ``refs``: atoms or pointers),
        to be taken by ref id with :meth:`of_ref_ids`."""
        made = cls(refs.content_of(ref_ids))
        made._slot_of_ref = np.full(len(refs.table), -1, dtype=np.int64)
        made._slot_of_ref[ref_ids] = np.arange(len(ref_ids), dtype=np.int64)
        return made

    def fill(self, values: np.ndarray) -> None:
        """Hold ``values``: an object array aligned with :attr:`content_keys`."""
        if len(values) != len(self.content_keys):
            raise ValueError(f"{len(values)} values for {len(self.content_keys)} content keys")
        self._values = values

    def of_ref_ids(self, ref_ids: np.ndarray) -> np.ndarray:
        """The values of refs by id, as an object array (None for a ref not loaded)."""
        found = np.empty(len(ref_ids), dtype=object)
        if self._slot_of_ref is None:
            return found
        inside = (ref_ids >= 0) & (ref_ids < len(self._slot_of_ref))
        slots = np.full(len(ref_ids), -1, dtype=np.int64)
        slots[inside] = self._slot_of_ref[ref_ids[inside]]
        loaded = slots >= 0
        found[loaded] = self._values[slots[loaded]]
        return found

    def get(self, content_key: bytes) -> Any:
        """The value of one content key (None if it was not loaded)."""
        if self._by_content is None:
            table = KeyTable()
            ids = table.intern(self.content_keys)
            slot_of_id = np.empty(len(table), dtype=np.int64)
            slot_of_id[ids] = np.arange(len(ids), dtype=np.int64)
            self._by_content = table, slot_of_id
        table, slot_of_id = self._by_content
        found = table.id_of(content_key)
        return self._values[slot_of_id[found]] if found >= 0 else None

    def __len__(self) -> int:
        return len(self.content_keys)
