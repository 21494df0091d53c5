"""Keys as integers: a frame over a million calls holds its elements as arrays, not objects.

Every history key a family of frames meets (16 bytes) gets a dense integer id in a
:class:`~mandala.hashing.key_table.KeyTable`; a :class:`KeySet` is a set of keys held as a
sorted array of those ids. Set algebra between key sets, and the joins of a frame's tables, then
run on integer arrays in numpy instead of hashing millions of ``bytes`` objects in Python. A
``bytes`` object is made only for a key that code asks to see.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableSet
from typing import TypeVar, cast

import numpy as np

from mandala.hashing.digest import KEY_SIZE
from mandala.hashing.key_table import KEY_DTYPE, KeyTable, key_array

__all__ = ["KEY_DTYPE", "KeyTable", "KeySet", "key_array", "sorted_unique"]

_Item = TypeVar("_Item")

_EMPTY_IDS = np.empty(0, dtype=np.int64)


class KeySet(MutableSet[bytes]):
    """A set of keys of one :class:`KeyTable`, held as a sorted array of ids.

    It behaves as a ``set`` of ``bytes`` (membership, iteration, comparisons, operators with
    sets and iterables of keys). Between key sets of one table the algebra runs on the id
    arrays. Adding or discarding one key at a time switches to a Python set of the keys, which
    the next bulk operation turns back into ids.
    """

    __slots__ = ("table", "_ids", "_objects")

    def __init__(self, table: KeyTable, ids: np.ndarray | None = None) -> None:
        self.table = table
        self._ids: np.ndarray | None = _EMPTY_IDS if ids is None else ids
        """Sorted distinct ids (None while the keys are held in ``_objects`` only)."""
        self._objects: set[bytes] | None = None
        """The keys as objects: made for repeated membership tests, or held alone after a
        change of one key."""

    # ------------------------------------------------------------------ construction

    @classmethod
    def of_ids(cls, table: KeyTable, ids: np.ndarray) -> KeySet:
        """The set of ``ids`` (any order, repeats allowed)."""
        return cls(table, sorted_unique(ids))

    @classmethod
    def of_keys(cls, table: KeyTable, keys: Iterable[bytes]) -> KeySet:
        """The set of ``keys``, interned in ``table``."""
        if isinstance(keys, KeySet) and keys.table is table:
            return keys.copy()
        return cls(table, sorted_unique(table.intern(key_array(_listed(keys)))))

    def _from_iterable(self, it: Iterable[bytes]) -> KeySet:  # type: ignore[override]
        return KeySet.of_keys(self.table, it)

    def copy(self) -> KeySet:
        other = KeySet(self.table, self._ids)
        if self._ids is None:
            other._ids = None
            other._objects = set(self._objects or ())
        return other

    # ------------------------------------------------------------------ the two forms

    @property
    def ids(self) -> np.ndarray:
        """The sorted ids of the keys (do not write to the array)."""
        if self._ids is None:
            objects = self._objects or set()
            self._ids = sorted_unique(self.table.intern(key_array(list(objects))))
        return self._ids

    def _object_set(self) -> set[bytes]:
        if self._objects is None:
            self._objects = set(self.table.to_bytes(self.ids))
        return self._objects

    def _ids_of(self, other: Iterable[object], add: bool) -> np.ndarray:
        """Sorted distinct ids of ``other``'s keys (``add``: give new keys ids; else keys
        unknown to the table, or not keys at all, are left out)."""
        if isinstance(other, KeySet) and other.table is self.table:
            return other.ids
        if add:  # a key of another length is refused, as by add()
            # key_array refuses what is not a key
            return sorted_unique(self.table.intern(key_array(cast("list[bytes]", _listed(other)))))
        items = [k for k in _listed(other) if isinstance(k, bytes) and len(k) == KEY_SIZE]
        found = self.table.find(key_array(items))
        return sorted_unique(found[found >= 0])

    # ------------------------------------------------------------------ Set

    def __len__(self) -> int:
        return len(self._objects) if self._ids is None else len(self._ids)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[bytes]:
        if self._ids is None:
            return iter(list(self._objects or ()))
        return iter(self.table.to_bytes(self._ids))

    def __contains__(self, key: object) -> bool:
        if self._objects is not None:
            return key in self._objects
        ids = self._ids
        assert ids is not None
        if len(ids) > 16:  # repeated tests are the rule: answer them from a hash set
            return key in self._object_set()
        if not isinstance(key, bytes):
            return False
        key_id = self.table.id_of(key)
        if key_id < 0:
            return False
        at = int(np.searchsorted(ids, key_id))
        return at < len(ids) and int(ids[at]) == key_id

    def __repr__(self) -> str:
        return f"KeySet({sorted(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, KeySet) and other.table is self.table:
            return np.array_equal(self.ids, other.ids)
        if isinstance(other, (set, frozenset, KeySet)):
            return len(self) == len(other) and self._object_set() == set(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _result(self, ids: np.ndarray) -> KeySet:
        return KeySet(self.table, ids)

    def __or__(self, other: Iterable[object]) -> KeySet:
        if not isinstance(other, Iterable):
            return NotImplemented
        return self._result(_union(self.ids, self._ids_of(other, add=True)))

    __ror__ = __or__

    def __and__(self, other: Iterable[object]) -> KeySet:
        if not isinstance(other, Iterable):
            return NotImplemented
        return self._result(np.intersect1d(self.ids, self._ids_of(other, False), True))

    __rand__ = __and__

    def __sub__(self, other: Iterable[object]) -> KeySet:
        if not isinstance(other, Iterable):
            return NotImplemented
        return self._result(_difference(self.ids, self._ids_of(other, add=False)))

    def __rsub__(self, other: Iterable[object]) -> KeySet:
        if not isinstance(other, Iterable):
            return NotImplemented
        return self._result(_difference(self._ids_of(other, add=True), self.ids))

    def __xor__(self, other: Iterable[object]) -> KeySet:
        if not isinstance(other, Iterable):
            return NotImplemented
        theirs = self._ids_of(other, add=True)
        return self._result(np.setxor1d(self.ids, theirs, assume_unique=True))

    __rxor__ = __xor__

    def union(self, *others: Iterable[object]) -> KeySet:
        result = self.copy()
        for other in others:
            result |= other
        return result

    def intersection(self, *others: Iterable[object]) -> KeySet:
        result = self.copy()
        for other in others:
            result &= other
        return result

    def difference(self, *others: Iterable[object]) -> KeySet:
        result = self.copy()
        for other in others:
            result -= other
        return result

    def issubset(self, other: Iterable[object]) -> bool:
        if isinstance(other, KeySet) and other.table is self.table:
            return len(_difference(self.ids, other.ids)) == 0
        theirs = other if isinstance(other, (set, frozenset)) else set(other)
        return all(map(theirs.__contains__, self))

    def issuperset(self, other: Iterable[object]) -> bool:
        if isinstance(other, KeySet) and other.table is self.table:
            return len(_difference(other.ids, self.ids)) == 0
        items = _listed(other)
        if not items:
            return True
        if self._objects is not None or len(items) < 64:
            return self._object_set().issuperset(items)
        if not all(isinstance(k, bytes) and len(k) == KEY_SIZE for k in items):
            return False
        found = self.table.find(key_array(cast("list[bytes]", items)))
        return bool(np.all(found >= 0)) and bool(np.all(np.isin(found, self.ids)))

    def isdisjoint(self, other: Iterable[object]) -> bool:
        return len(np.intersect1d(self.ids, self._ids_of(other, add=False), True)) == 0

    def __le__(self, other: object) -> bool:
        if not isinstance(other, (set, frozenset, KeySet)):
            return NotImplemented
        return self.issubset(other)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, (set, frozenset, KeySet)):
            return NotImplemented
        return len(self) < len(other) and self.issubset(other)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, (set, frozenset, KeySet)):
            return NotImplemented
        return self.issuperset(other)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, (set, frozenset, KeySet)):
            return NotImplemented
        return len(self) > len(other) and self.issuperset(other)

    # ------------------------------------------------------------------ MutableSet

    def add(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"keys must be {KEY_SIZE} bytes long")
        objects = self._object_set()
        if key not in objects:
            objects.add(bytes(key))
            self._ids = None

    def discard(self, key: bytes) -> None:
        objects = self._object_set()
        if key in objects:
            objects.discard(key)
            self._ids = None

    def update(self, *others: Iterable[object]) -> None:
        for other in others:
            self |= other

    def intersection_update(self, *others: Iterable[object]) -> None:
        for other in others:
            self &= other

    def difference_update(self, *others: Iterable[object]) -> None:
        for other in others:
            self -= other

    def symmetric_difference_update(self, other: Iterable[object]) -> None:
        self ^= other

    def _set_ids(self, ids: np.ndarray) -> KeySet:
        self._ids = ids
        self._objects = None
        return self

    def __ior__(self, other: Iterable[object]) -> KeySet:
        return self._set_ids(_union(self.ids, self._ids_of(other, add=True)))

    def __iand__(self, other: Iterable[object]) -> KeySet:
        return self._set_ids(np.intersect1d(self.ids, self._ids_of(other, False), True))

    def __isub__(self, other: Iterable[object]) -> KeySet:
        return self._set_ids(_difference(self.ids, self._ids_of(other, add=False)))

    def __ixor__(self, other: Iterable[object]) -> KeySet:
        theirs = self._ids_of(other, add=True)
        return self._set_ids(np.setxor1d(self.ids, theirs, assume_unique=True))

    def clear(self) -> None:
        self._set_ids(_EMPTY_IDS)


def _listed(items: Iterable[_Item]) -> list[_Item]:
    return items if isinstance(items, list) else list(items)


def sorted_unique(ids: np.ndarray) -> np.ndarray:
    """Sorted ids without repeats (sort, then drop repeats: faster than np.unique)."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    if len(ids) > 1:
        keep = np.empty(len(ids), dtype=bool)
        keep[0] = True
        np.not_equal(ids[1:], ids[:-1], out=keep[1:])
        if not keep.all():
            ids = ids[keep]
    return ids


def _union(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    if not len(theirs):
        return mine
    if not len(mine):
        return theirs
    return sorted_unique(np.concatenate((mine, theirs)))


def _difference(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    if not len(theirs) or not len(mine):
        return mine
    return mine[~np.isin(mine, theirs, assume_unique=True)]
