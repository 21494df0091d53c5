"""Cells of a frame's table that hold several elements of one node."""

from __future__ import annotations

from typing import Any

__all__ = ["ValueCollection", "RefCollection", "CallCollection"]


class _Collection:
    """Several elements of one node in one row, ordered by history id."""

    __slots__ = ("values",)

    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Any:
        return iter(self.values)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.values == other.values

    def __hash__(self) -> int:
        return hash((type(self).__name__, len(self.values)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.values!r})"


class ValueCollection(_Collection):
    """Values of several refs of one variable."""


class RefCollection(_Collection):
    """Several refs of one variable."""


class CallCollection(_Collection):
    """Several calls of one function node."""
