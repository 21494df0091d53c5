"""What a computation frame needs from a storage, as a protocol (the facade implements it).

Every method is set-at-a-time: a frame asks for all the creators (or consumers, or values) of a
whole set of refs in one call, never call by call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from mandala.backends.records import CallRows, StoredCall
from mandala.model.calls import Call, OpSpec
from mandala.model.refs import Ref

__all__ = ["FrameSource"]


class FrameSource(Protocol):
    def call_rows_of_op(self, name: str) -> CallRows:
        """Every stored call of the op named ``name``, as columns (a frame keeps them as
        columns, not one object per call)."""

    def call_rows_touching(self, ref_keys: Sequence[bytes], direction: int) -> CallRows:
        """Calls that output (direction 1) or consume (direction 0) any of ``ref_keys``, as
        columns."""

    def call_details(self, call_ids: list[int]) -> Sequence[list[Any]]:
        """``(content_key, semantic_version, content_version, started_at, duration)`` columns
        of calls by the store ids of their rows (read only when a frame hands out calls'
        details)."""

    def op_spec(self, name: str, version: int) -> OpSpec:
        """What the store knows of an op version (the ``op`` of the calls a frame hands out)."""

    def prefetch_values(self, expected: int) -> Any:
        """Start reading values ahead, when about ``expected`` of them will be asked for (a
        frame's table): a handle for :meth:`load_values`, or None."""

    def load_value_array(self, content_keys: np.ndarray, prefetched: Any = None) -> np.ndarray:
        """The values of content keys (a key array; repeats allowed), as an object array aligned with
        them (``prefetched``: a handle of :meth:`prefetch_values`).

        Raises:
            ValueNotFoundError: a key is not a stored (or pending) value.
        """

    def to_call(self, stored: StoredCall) -> Call:
        """A public :class:`Call` for a stored call given as an object (with lazy refs)."""

    def drop_calls_by_keys(self, call_keys: Sequence[bytes], delete_dependents: bool) -> None:
        """Delete calls (and their dependents) from the store."""

    def unwrap(self, obj: Any) -> Any:
        """Values of the refs in ``obj`` (as ``Storage.unwrap``)."""

    def load_shapes(self, refs: list[Ref]) -> None:
        """Fill in the element refs of collection refs (their values stay lazy)."""
