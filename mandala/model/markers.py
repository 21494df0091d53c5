"""Argument markers: values that change how an op argument is stored, not what the op computes.

- :class:`Ignore` passes a value to the op but leaves it out of the call's identity and storage.
- :class:`NewArgDefault` marks the default of a parameter added after calls were stored: when a
  call passes exactly that default, the argument is left out of the identity, so old calls stay
  valid.
- :class:`ValuePointer` stands for a value by a name the user chooses (e.g. a large dataset
  already on disk): it is hashed by the name and never stored.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

__all__ = ["Ignore", "NewArgDefault", "ValuePointer", "values_equal_strict", "unwrap_marker"]

T = TypeVar("T")


class Ignore(Generic[T]):
    """Pass ``value`` to the op without making it part of the call's identity or storage.

    Use it for arguments that do not change the result (a verbosity flag, a progress callback,
    a device name). Two calls that differ only in ignored arguments are the same call.
    """

    __slots__ = ("value",)

    def __init__(self, value: T = None) -> None:  # type: ignore[assignment]
        self.value = value

    def __repr__(self) -> str:
        return f"Ignore({self.value!r})"


class NewArgDefault(Generic[T]):
    """Default of a parameter added to an op that already has stored calls.

    When a call passes a value equal to ``value`` (same type, array-safe equality) the argument
    is not stored, so calls made before the parameter existed are found again. Any other value
    is stored as usual.
    """

    __slots__ = ("value",)

    def __init__(self, value: T = None) -> None:  # type: ignore[assignment]
        self.value = value

    def __repr__(self) -> str:
        return f"NewArgDefault({self.value!r})"


class ValuePointer:
    """A value identified by a user-chosen ``id`` instead of its content.

    The op receives ``obj``; the store only records ``id`` (the object itself is never
    serialized). Use it for values that are expensive to hash or must not be copied, and choose
    ids that change whenever the object does.
    """

    __slots__ = ("id", "obj")

    # ``id`` shadows the builtin: it is the original library's parameter name
    def __init__(self, id: str, obj: Any) -> None:
        self.id = id
        self.obj = obj

    def __repr__(self) -> str:
        return f"ValuePointer(id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        raise TypeError(
            "ValuePointer objects cannot be compared; compare their .id or .obj instead"
        )

    def __hash__(self) -> int:
        raise TypeError("ValuePointer objects are not hashable; use their .id instead")


def unwrap_marker(value: Any) -> Any:
    """Return what an op body receives for ``value``: markers are replaced by their payload."""
    cls = type(value)
    if cls is Ignore or cls is NewArgDefault:
        return value.value
    if cls is ValuePointer:
        return value.obj
    return value


def values_equal_strict(safe: Any, unknown: Any) -> bool:
    """Whether ``unknown`` equals the known default ``safe``, without ever raising.

    Types must match exactly (``1`` is not ``True`` nor ``1.0``); arrays and frames compare by
    value (``numpy.array_equal`` with equal dtypes, ``DataFrame.equals``); anything whose ``==``
    does not give a plain bool is treated as different.
    """
    if type(safe) is not type(unknown):
        return False
    module = type(safe).__module__
    try:
        if module == "numpy":
            import numpy as np

            if isinstance(safe, np.ndarray):
                return bool(safe.dtype == unknown.dtype and np.array_equal(safe, unknown))
        elif module.startswith("pandas"):
            equals = getattr(safe, "equals", None)
            if equals is not None:
                return bool(equals(unknown))
        result = safe == unknown
    except Exception:  # noqa: BLE001 - a user type's __eq__ may raise anything: not equal
        return False
    if isinstance(result, bool):
        return result
    try:
        return bool(result)
    except Exception:  # noqa: BLE001 - an ambiguous truth value (e.g. an array): not equal
        return False
