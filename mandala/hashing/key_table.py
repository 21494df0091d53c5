"""Dense integer ids for 16-byte keys, so that millions of keys live in numpy arrays.

A :class:`KeyTable` gives every key it meets the next integer id; looking keys up goes through
their first 8 bytes, as an unsigned integer kept sorted, and is then checked against the whole
key: two keys that share their first 8 bytes (for a million keys, the chance that any two do is
about 3 in 10**8) are told apart by a slower path, never confused. Frames keep their elements
this way (``mandala.frames.keys``), and a backend matches the values it reads in bulk to the
keys asked for without a ``bytes`` object per key.

numpy is imported by this module: import it where arrays of keys are needed, not when a store
is opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import overload

import numpy as np

from mandala.hashing.digest import KEY_SIZE

__all__ = ["KEY_DTYPE", "KeyTable", "KeySequence", "key_array", "key_list", "positions_in"]

KEY_DTYPE = np.dtype(f"S{KEY_SIZE}")
"""Keys in arrays. Compared and sorted by their raw bytes; never turned into Python objects
item by item (a ``bytes_`` item drops trailing zero bytes): see :meth:`KeyTable.to_bytes`."""

_VOID = np.dtype(f"V{KEY_SIZE}")
_EMPTY_IDS = np.empty(0, dtype=np.int64)


def key_array(keys: Iterable[bytes]) -> np.ndarray:
    """``keys`` as an array of :data:`KEY_DTYPE` (an array of that type is returned as is).

    Raises:
        ValueError: a key is not ``KEY_SIZE`` bytes long.
    """
    if isinstance(keys, np.ndarray) and keys.dtype == KEY_DTYPE:
        return keys
    items = keys if isinstance(keys, (list, tuple)) else list(keys)
    blob = b"".join(items)
    if len(blob) != KEY_SIZE * len(items) or (items and set(map(len, items)) != {KEY_SIZE}):
        raise ValueError(f"keys must be {KEY_SIZE} bytes long")
    return np.frombuffer(blob, dtype=KEY_DTYPE)


def key_list(keys: np.ndarray) -> list[bytes]:
    """A key array as ``bytes`` objects (exact: a ``bytes_`` item would drop trailing zeros)."""
    result: list[bytes] = keys.view(_VOID).tolist()
    return result


class KeySequence(Sequence[bytes]):
    """A key array seen as a sequence of ``bytes``, one object made per key read: for code
    that names a few keys of many (in an error message, say)."""

    __slots__ = ("_keys",)

    def __init__(self, keys: np.ndarray) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return key_list(self._keys[index])
        position = range(len(self._keys))[index]  # IndexError past the end, as a list
        return self._keys[position : position + 1].tobytes()


def _words(keys: np.ndarray) -> np.ndarray:
    """Each key as two unsigned integers (little-endian): an array of shape (len, 2)."""
    return np.ascontiguousarray(keys).view("<u8").reshape(len(keys), KEY_SIZE // 8)


def _first_words(keys: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each key as an unsigned integer (little-endian)."""
    if not len(keys):
        return np.empty(0, dtype=np.uint64)
    return _words(keys)[:, 0]


def _equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise equality of two key arrays of one length (compared as integers)."""
    if not len(a):
        return np.empty(0, dtype=bool)
    wa, wb = _words(a), _words(b)
    result: np.ndarray = (wa[:, 0] == wb[:, 0]) & (wa[:, 1] == wb[:, 1])
    return result


class KeyTable:
    """Dense integer ids (0, 1, 2, ...) for 16-byte keys; only grows."""

    __slots__ = ("_keys", "_count", "_hi", "_by_hi")

    def __init__(self) -> None:
        self._keys = np.empty(1024, dtype=KEY_DTYPE)
        self._count = 0
        self._hi = np.empty(0, dtype=np.uint64)
        """First words of every key, sorted."""
        self._by_hi = _EMPTY_IDS
        """The id of each entry of ``_hi``."""

    def __len__(self) -> int:
        return self._count

    @property
    def keys(self) -> np.ndarray:
        """Every key, by id (a view: do not write to it)."""
        return self._keys[: self._count]

    def to_bytes(self, ids: np.ndarray) -> list[bytes]:
        """The keys of ``ids`` as ``bytes`` objects."""
        return key_list(self._keys[ids])

    def key(self, key_id: int) -> bytes:
        return bytes(self._keys[key_id : key_id + 1].view(_VOID)[0])

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The ids of ``keys`` (a :data:`KEY_DTYPE` array), -1 for keys not in the table."""
        return self._find(keys, _first_words(keys), None)

    def _find(
        self, keys: np.ndarray, hi: np.ndarray, order: np.ndarray | None, presorted: bool = False
    ) -> np.ndarray:
        """:meth:`find`, given the first words of ``keys`` and (optionally) their sort order,
        or ``presorted`` when ``hi`` is sorted already."""
        count = len(keys)
        if not count or not self._count:
            return np.full(count, -1, dtype=np.int64)
        if order is None and count > 64 and not presorted:
            order = np.argsort(hi)
        if order is not None:  # sorted queries: a binary search over random ones misses the cache
            at = np.empty(count, dtype=np.int64)
            at[order] = np.searchsorted(self._hi, hi[order])
        else:
            at = np.searchsorted(self._hi, hi)
        inside = at < len(self._hi)
        at_in = np.where(inside, at, 0)
        same_hi = inside & (self._hi[at_in] == hi)
        ids = np.where(same_hi, self._by_hi[at_in], -1)
        exact = same_hi & _equal(self._keys[np.maximum(ids, 0)], keys)
        ids[~exact] = -1
        # a first word shared by two keys: the leftmost entry was the other key, look further
        for i in np.flatnonzero(same_hi & ~exact).tolist():
            ids[i] = self._scan(int(at[i]), keys[i : i + 1])
        return ids

    def _scan(self, position: int, key: np.ndarray) -> int:
        hi = _first_words(key)[0]
        while position < len(self._hi) and self._hi[position] == hi:
            candidate = int(self._by_hi[position])
            if _equal(self._keys[candidate : candidate + 1], key)[0]:
                return candidate
            position += 1
        return -1

    def id_of(self, key: bytes) -> int:
        """The id of one key, -1 if it is not in the table (nor a key at all)."""
        if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE or not self._count:
            return -1
        return int(self.find(np.frombuffer(bytes(key), dtype=KEY_DTYPE))[0])

    def intern(self, keys: np.ndarray) -> np.ndarray:
        """The ids of ``keys``, giving new ids to the keys not in the table yet.

        Keys often repeat (a ref on many edges): they are grouped by first word first, and
        only one key per group is looked up (and added when new)."""
        count = len(keys)
        if not count:
            return np.empty(0, dtype=np.int64)
        words = _words(keys)
        hi = words[:, 0]
        order = np.argsort(hi)
        sorted_hi = hi[order]
        first = np.ones(count, dtype=bool)
        np.not_equal(sorted_hi[1:], sorted_hi[:-1], out=first[1:])
        heads = order[first]  # one key per first word
        group = np.cumsum(first, dtype=np.int64) - 1  # the group of each key, in sorted order
        if len(heads) < count:  # repeats of a first word: all one key? (same second word)
            lo = words[:, 1]
            if not np.array_equal(lo[order], lo[heads][group]):
                return self._intern_shared_words(keys, hi, order)
        heads_hi = sorted_hi[first]
        head_ids = self._find(keys[heads], heads_hi, None, presorted=True)
        new = head_ids < 0
        if new.any():  # new keys, distinct, their first words sorted
            head_ids[new] = self._append(keys[heads[new]], heads_hi[new])
        ids = np.empty(count, dtype=np.int64)
        ids[order] = head_ids[group]
        return ids

    def _intern_shared_words(
        self, keys: np.ndarray, hi: np.ndarray, order: np.ndarray
    ) -> np.ndarray:
        """:meth:`intern` when two different keys among ``keys`` share their first word."""
        ids = self._find(keys, hi, order)
        fresh = order[ids[order] < 0]  # positions of the new keys, by first word
        if len(fresh):
            unique_keys, group = np.unique(keys[fresh], return_inverse=True)
            ids[fresh] = self._append(unique_keys, _first_words(unique_keys))[group.reshape(-1)]
        return ids

    def _append(self, unique_keys: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Add keys known to be new and distinct; returns their ids. ``hi`` (their first
        words) is sorted, or nearly: repeats of one word may come in any order."""
        count = len(unique_keys)
        start = self._count
        if start + count > len(self._keys):
            grown = np.empty(max(2 * len(self._keys), start + count), dtype=KEY_DTYPE)
            grown[:start] = self._keys[:start]
            self._keys = grown
        self._keys[start : start + count] = unique_keys
        self._count = start + count
        new_ids = np.arange(start, start + count, dtype=np.int64)
        if len(hi) > 1 and np.any(hi[1:] < hi[:-1]):
            order = np.argsort(hi)
            hi, sorted_ids = hi[order], new_ids[order]
        else:
            sorted_ids = new_ids
        if not len(self._hi):
            self._hi, self._by_hi = hi.copy(), sorted_ids
        else:
            # a merge of two sorted arrays (np.insert would sort the positions again)
            total = len(self._hi) + count
            slots = np.searchsorted(self._hi, hi) + np.arange(count)
            old = np.ones(total, dtype=bool)
            old[slots] = False
            merged_hi = np.empty(total, dtype=np.uint64)
            merged_ids = np.empty(total, dtype=np.int64)
            merged_hi[slots], merged_ids[slots] = hi, sorted_ids
            merged_hi[old], merged_ids[old] = self._hi, self._by_hi
            self._hi, self._by_hi = merged_hi, merged_ids
        return new_ids


def positions_in(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """For each key of ``needles``, its position in ``haystack`` (distinct keys), -1 where it
    is absent: one sort of each array and a binary search, checked against the whole keys.

    Cheaper than interning ``haystack`` in a :class:`KeyTable` when the table is needed once.
    """
    if not len(haystack) or not len(needles):
        return np.full(len(needles), -1, dtype=np.int64)
    hay_hi = _first_words(haystack)
    order = np.argsort(hay_hi)
    sorted_hi = hay_hi[order]
    if np.any(sorted_hi[1:] == sorted_hi[:-1]):  # a first word shared: the exact, slower path
        table = KeyTable()
        position_of_id = np.empty(len(haystack), dtype=np.int64)
        position_of_id[table.intern(haystack)] = np.arange(len(haystack), dtype=np.int64)
        ids = table.find(needles)
        return np.where(ids >= 0, position_of_id[np.maximum(ids, 0)], -1)
    hi = _first_words(needles)
    by_hi = np.argsort(hi)  # sorted queries: a binary search over random ones misses the cache
    at = np.empty(len(needles), dtype=np.int64)
    at[by_hi] = np.searchsorted(sorted_hi, hi[by_hi])
    at = np.minimum(at, len(sorted_hi) - 1)
    positions = order[at]
    found = (sorted_hi[at] == hi) & _equal(haystack[positions], needles)
    return np.where(found, positions, -1)
