"""Refs: handles to stored (or about to be stored) values, carrying a content id and a history id.

The content id says *what* the value is; the history id says *how it was computed*. Equal values
with different histories are distinct refs of one stored value. A ref is *lazy* (``in_memory`` is
False) when its value has not been loaded from the store; ``storage.unwrap`` and
``storage.attach`` load it.

Refs compare by identity, as in the original library: compare ``.hid`` or ``.cid`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mandala.errors import ValueNotFoundError

__all__ = ["Ref", "AtomRef", "ListRef", "DictRef", "SetRef", "short_id"]


def short_id(key: bytes) -> str:
    """The abbreviated hex id used in reprs."""
    return key[:2].hex()[:3] + "..."


class Ref:
    """Base class of all refs. Not created directly: see :func:`mandala.imports.wrap_atom`."""

    __slots__ = ("content_key", "history_key", "in_memory", "obj")

    def __init__(self, content_key: bytes, history_key: bytes, in_memory: bool, obj: Any) -> None:
        self.content_key = content_key
        self.history_key = history_key
        self.in_memory = in_memory
        self.obj = obj

    # ids, in the public hex form and under the original library's short names
    @property
    def content_id(self) -> str:
        """Hex id of the value: equal values have equal content ids."""
        return self.content_key.hex()

    @property
    def history_id(self) -> str:
        """Hex id of the computation that produced this ref."""
        return self.history_key.hex()

    @property
    def cid(self) -> str:
        """Alias of :attr:`content_id`."""
        return self.content_key.hex()

    @property
    def hid(self) -> str:
        """Alias of :attr:`history_id`."""
        return self.history_key.hex()

    def __hash__(self) -> int:
        return hash(self.history_key)

    def _copy(self, history_key: bytes, in_memory: bool, obj: Any) -> Ref:
        return type(self)(self.content_key, history_key, in_memory, obj)

    def detached(self) -> Ref:
        """A copy without the value."""
        return self._copy(self.history_key, False, None)

    def attached(self, obj: Any) -> Ref:
        """A copy holding ``obj`` as its value."""
        return self._copy(self.history_key, True, obj)

    def shallow_copy(self) -> Ref:
        """A copy sharing the value."""
        return self._copy(self.history_key, self.in_memory, self.obj)

    def with_hid(self, hid: str | bytes) -> Ref:
        """A copy with another history id (same content, same value)."""
        key = hid if isinstance(hid, bytes) else bytes.fromhex(hid)
        return self._copy(key, self.in_memory, self.obj)

    def _describe(self) -> str:
        if self.in_memory:
            return f"{self.obj!r}, hid={short_id(self.history_key)}"
        return f"hid={short_id(self.history_key)}, in_memory=False"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"


class AtomRef(Ref):
    """A ref to a value stored whole."""

    __slots__ = ()


class _CollectionRef(Ref):
    __slots__ = ()

    def _elements_or_raise(self) -> Any:
        if not self.in_memory or self.obj is None:
            raise ValueNotFoundError(
                f"the elements of {type(self).__name__}(hid={short_id(self.history_key)}) are not "
                "loaded; call storage.attach(ref) or storage.unwrap(ref) first"
            )
        return self.obj

    def __len__(self) -> int:
        return len(self._elements_or_raise())

    def _describe(self) -> str:
        if self.in_memory and self.obj is not None:
            return f"{self.obj!r}, hid={short_id(self.history_key)}"
        return f"hid={short_id(self.history_key)}, in_memory=False"


class ListRef(_CollectionRef):
    """A ref to a transparent list (``MList``); ``obj`` is the list of element refs."""

    __slots__ = ()

    def __getitem__(self, index: int | slice) -> Any:
        return self._elements_or_raise()[index]

    def __iter__(self) -> Iterator[Ref]:
        return iter(self._elements_or_raise())

    def shape(self) -> tuple[int]:
        """The list's length, as a shape tuple."""
        return (len(self),)


class DictRef(_CollectionRef):
    """A ref to a transparent str-keyed dict (``MDict``); ``obj`` maps keys to value refs."""

    __slots__ = ()

    def __getitem__(self, key: str | Ref) -> Ref:
        elements = self._elements_or_raise()
        if isinstance(key, Ref):
            if not key.in_memory:
                raise ValueNotFoundError(
                    "a Ref used as a dict key must hold its value; call storage.attach(key) first"
                )
            key = key.obj
        element: Ref = elements[key]
        return element

    def __iter__(self) -> Iterator[str]:
        return iter(self._elements_or_raise())

    def __contains__(self, key: object) -> bool:
        return key in self._elements_or_raise()

    def keys(self) -> Any:
        return self._elements_or_raise().keys()

    def values(self) -> Any:
        return self._elements_or_raise().values()

    def items(self) -> Any:
        return self._elements_or_raise().items()


class SetRef(_CollectionRef):
    """A ref to a transparent set (``MSet``); ``obj`` is the list of element refs, by content id."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Ref]:
        return iter(self._elements_or_raise())
