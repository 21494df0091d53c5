"""Collection annotations and how parameter/return annotations map to storage types.

Annotating a parameter or return value with ``MList[T]``, ``MDict[str, T]`` or ``MSet[T]`` makes
the collection *transparent*: its elements are stored as separate refs, linked to the collection
by structural calls, so they are shared across collections and visible in computation frames.
Any other annotation (``list``, ``Any``, none at all) stores the value as one opaque atom.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Dict, List, Set, TypeVar  # noqa: UP035

__all__ = [
    "MList",
    "MDict",
    "MSet",
    "StorageType",
    "AtomType",
    "ListType",
    "DictType",
    "SetType",
    "ATOM",
    "type_from_annotation",
    "resolve_annotations",
    "output_types_from_annotation",
]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class MList(List[T]):  # noqa: UP006 - subclassing List[T] keeps MList[int] a list to type checkers
    """Annotation: a list whose elements are stored (and reused) separately."""


class MDict(Dict[K, V]):  # noqa: UP006
    """Annotation: a str-keyed dict whose values are stored (and reused) separately."""


class MSet(Set[T]):  # noqa: UP006
    """Annotation: a set whose elements are stored (and reused) separately."""


@dataclass(frozen=True)
class AtomType:
    """A value stored whole."""


@dataclass(frozen=True)
class ListType:
    """A transparent list; ``element`` describes each element."""

    element: StorageType


@dataclass(frozen=True)
class DictType:
    """A transparent str-keyed dict; ``value`` describes each value."""

    value: StorageType


@dataclass(frozen=True)
class SetType:
    """A transparent set; ``element`` describes each element."""

    element: StorageType


StorageType = AtomType | ListType | DictType | SetType
ATOM = AtomType()


def type_from_annotation(annotation: Any) -> StorageType:
    """Map an annotation to the way values of that parameter are stored."""
    if annotation is MList:
        return ListType(ATOM)
    if annotation is MDict:
        return DictType(ATOM)
    if annotation is MSet:
        return SetType(ATOM)
    origin = typing.get_origin(annotation)
    if origin is None:
        return ATOM
    args = typing.get_args(annotation)
    if origin is MList:
        return ListType(type_from_annotation(args[0]) if args else ATOM)
    if origin is MDict:
        return DictType(type_from_annotation(args[1]) if len(args) == 2 else ATOM)
    if origin is MSet:
        return SetType(type_from_annotation(args[0]) if args else ATOM)
    return ATOM


def resolve_annotations(func: Callable[..., Any]) -> dict[str, Any]:
    """The function's annotations with string (postponed) annotations evaluated where possible.

    A string that cannot be evaluated (a name defined later, a typo) is kept as a string and so
    means "atom"; it must never stop an op from being declared.
    """
    raw = dict(getattr(func, "__annotations__", {}) or {})
    if not any(isinstance(v, str) for v in raw.values()):
        return raw
    try:
        return typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - evaluating user code can raise anything; atoms then
        namespace = dict(getattr(func, "__globals__", {}))
        namespace.setdefault("MList", MList)
        namespace.setdefault("MDict", MDict)
        namespace.setdefault("MSet", MSet)
        resolved = {}
        for name, value in raw.items():
            if isinstance(value, str):
                try:
                    value = eval(value, namespace)  # evaluates the user's own annotation
                except Exception:  # noqa: BLE001 - an unevaluable annotation means "atom"
                    pass
            resolved[name] = value
        return resolved


def output_types_from_annotation(annotation: Any, count: int) -> list[StorageType] | None:
    """Storage types of ``count`` outputs from a return annotation, or None if it cannot say.

    ``Tuple[A, B]`` gives one type per output, ``Tuple[A, ...]`` gives ``A`` for all, and any
    other annotation describes a single output.
    """
    origin = typing.get_origin(annotation)
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return [type_from_annotation(args[0])] * count
        if len(args) == count:
            return [type_from_annotation(a) for a in args]
        return None
    if count == 1:
        return [type_from_annotation(annotation)]
    return None
