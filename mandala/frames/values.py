"""The values a frame's table shows, matched to its cells in numpy.

A table over a million calls shows about a million values. Each distinct content key is loaded
once, into an object array; a column then takes its cells by integer indexing from its ref ids,
instead of one dictionary lookup (and one ``bytes`` key) per cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mandala.frames.blocks import RefView
from mandala.hashing.key_table import KeyTable

__all__ = ["TableValues"]


class TableValues:
    """Values by content key, held as a key table of the content keys and an object array of
    their values in id order (see :meth:`fill`).

    Args:
        content_keys: the content keys to load (a key array; repeats allowed).
    """

    def __init__(self, content_keys: np.ndarray) -> None:
        self._contents = KeyTable()
        self._slots = self._contents.intern(content_keys)
        """The slot (id in ``_contents``) of each key given."""
        self._values = np.empty(len(self._contents), dtype=object)
        self._slot_of_ref: np.ndarray | None = None

    @classmethod
    def of_refs(cls, refs: RefView, ref_ids: np.ndarray) -> TableValues:
        """The values of the refs ``ref_ids`` (of ``refs``: atoms or pointers), to be taken
        by ref id with :meth:`of_ref_ids`."""
        made = cls(refs.content_of(ref_ids))
        made._slot_of_ref = np.full(len(refs.table), -1, dtype=np.int64)
        made._slot_of_ref[ref_ids] = made._slots
        return made

    @property
    def content_keys(self) -> np.ndarray:
        """The distinct content keys, in slot order: what :meth:`fill` takes values of."""
        return self._contents.keys

    def fill(self, values: np.ndarray) -> None:
        """Hold ``values``: an object array aligned with :attr:`content_keys`."""
        if len(values) != len(self._contents):
            raise ValueError(f"{len(values)} values for {len(self._contents)} content keys")
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
        found = self._contents.id_of(content_key)
        return self._values[found] if found >= 0 else None

    def __len__(self) -> int:
        return len(self._contents)
