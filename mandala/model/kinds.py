"""The stored kind of a ref: which ref class a row of the store stands for.

Refs are stored as rows carrying a small integer *kind* (atom, list, dict, set, or the atom of a
``ValuePointer``, whose value is never stored). This module is the one place that maps between
kinds and ref classes, so the engine (writing rows, reading outputs back), the frames (building
refs from table rows) and the backends (the column values) agree.
"""

from __future__ import annotations

from mandala.model.refs import AtomRef, DictRef, ListRef, Ref, SetRef

__all__ = [
    "KIND_ATOM",
    "KIND_LIST",
    "KIND_DICT",
    "KIND_SET",
    "KIND_POINTER",
    "KIND_NAMES",
    "CLASS_OF_KIND",
    "ref_kind",
    "ref_from_kind",
]

KIND_ATOM = 0
KIND_LIST = 1
KIND_DICT = 2
KIND_SET = 3
KIND_POINTER = 4
KIND_NAMES = {
    KIND_ATOM: "atom",
    KIND_LIST: "list",
    KIND_DICT: "dict",
    KIND_SET: "set",
    KIND_POINTER: "pointer",
}

_KIND_OF_CLASS: dict[type, int] = {
    AtomRef: KIND_ATOM,
    ListRef: KIND_LIST,
    DictRef: KIND_DICT,
    SetRef: KIND_SET,
}
CLASS_OF_KIND: dict[int, type[Ref]] = {
    KIND_ATOM: AtomRef,
    KIND_POINTER: AtomRef,
    KIND_LIST: ListRef,
    KIND_DICT: DictRef,
    KIND_SET: SetRef,
}
"""The ref class each stored kind stands for (a pointer is an atom ref)."""


def ref_kind(ref: Ref) -> int:
    """The stored kind of a ref (a ``ValuePointer`` ref is the only atom whose keys are equal)."""
    cls = type(ref)
    if cls is AtomRef and ref.history_key == ref.content_key:
        return KIND_POINTER
    kind = _KIND_OF_CLASS.get(cls)
    if kind is not None:
        return kind
    # A subclass, or a ref that is not resolved yet (a parallel block's pending ref): by the
    # collection class it derives from, else an atom.
    for base in (ListRef, DictRef, SetRef):
        if isinstance(ref, base):
            return _KIND_OF_CLASS[base]
    return KIND_POINTER if ref.history_key == ref.content_key else KIND_ATOM


def ref_from_kind(kind: int, content_key: bytes, history_key: bytes) -> Ref:
    """A lazy ref of the class that ``kind`` names."""
    return CLASS_OF_KIND[kind](content_key, history_key, False, None)
