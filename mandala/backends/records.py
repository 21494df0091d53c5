"""Records exchanged between the engine and a backend.

Rows travel as plain tuples inside these records (one tuple per row, layouts documented on each
field): building millions of small objects per commit would cost more than the database work.
Records read back in bulk (a frame loads every call of an op) are immutable NamedTuples, which
are several times cheaper to create than frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from mandala.model.kinds import KIND_ATOM, KIND_DICT, KIND_LIST, KIND_NAMES, KIND_POINTER, KIND_SET

__all__ = [
    "Column",
    "HEAD_COLUMNS",
    "EDGE_COLUMNS",
    "DIRECTION_IN",
    "DIRECTION_OUT",
    "KIND_ATOM",
    "KIND_LIST",
    "KIND_DICT",
    "KIND_SET",
    "KIND_POINTER",
    "KIND_NAMES",
    "WriteBatch",
    "StoredOutput",
    "StoredCall",
    "StoredValue",
    "ShapeItem",
    "StoreCounts",
    "CallRows",
]

DIRECTION_IN = 0
DIRECTION_OUT = 1


@dataclass
class WriteBatch:
    """Everything one commit writes, in one transaction; every insert is idempotent.

    Attributes:
        ops: ``(name, version, output_names_json, nout, ignore_args_json, is_structural)``.
        values: ``(content_key, format, size, data_or_None, blob_key_or_None, checksum_or_None)``;
            the checksum is the 16-byte BLAKE3 digest of the stored bytes (the inline data or the
            blob file), None when unknown (then the value is loaded unverified); a 5-column
            row without it is accepted too.
        items: ``(collection_history_key, position, item_key_or_None, element_history_key,
            element_content_key, element_kind)``.
        calls: ``(history_key, content_key, op_name, op_version, semantic_version,
            content_version, started_at, duration)``.
        edges: ``(call_history_key, direction, name, ref_history_key, ref_content_key,
            ref_kind)``.
        versions: ``(content_version, semantic_version, op_name, created_at)`` (code versioning).
        version_support: ``(content_version, component_id, content_hash)``.
        call_versions: ``(pre_call_key, semantic_version, content_version)``.
    """

    ops: list[tuple] = field(default_factory=list)
    values: list[tuple] = field(default_factory=list)
    items: list[tuple] = field(default_factory=list)
    calls: list[tuple] = field(default_factory=list)
    edges: list[tuple] = field(default_factory=list)
    versions: list[tuple] = field(default_factory=list)
    version_support: list[tuple] = field(default_factory=list)
    call_versions: list[tuple] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values) + len(self.items) + len(self.calls) + len(self.edges)


class StoredOutput(NamedTuple):
    """One output (or input) ref of a stored call, as far as the call's row tells it."""

    name: str
    history_key: bytes
    content_key: bytes
    kind: int


class StoredCall(NamedTuple):
    """A stored call with its edges (refs are described, values not loaded)."""

    history_key: bytes
    content_key: bytes
    op_name: str
    op_version: int
    semantic_version: str | None
    content_version: str | None
    started_at: float | None
    duration: float | None
    inputs: tuple[StoredOutput, ...]
    outputs: tuple[StoredOutput, ...]


class StoredValue(NamedTuple):
    """A stored value: inline bytes or the key of a blob file, with its format tag and the
    checksum of the stored bytes (None for values written before schema version 2)."""

    content_key: bytes
    format: str
    size: int
    data: bytes | None
    blob_key: str | None
    checksum: bytes | None = None


class ShapeItem(NamedTuple):
    """One element of a stored collection ref."""

    position: int
    item_key: str | None
    element: StoredOutput


@dataclass(frozen=True)
class StoreCounts:
    """Row counts of a store (for reprs and ``cache_info``)."""

    calls: int
    refs: int
    values: int
    ops: int


class Column(Enum):
    """What a column of a bulk read holds (a dialect may read columns in bulk by kind)."""

    INT = "int"
    """INTEGER, never NULL."""
    KEY = "key"
    """A BLOB of ``KEY_SIZE`` bytes, never NULL."""
    TEXT = "text"
    """TEXT, never NULL."""
    OPT_TEXT = "opt_text"
    """TEXT or NULL."""
    OPT_REAL = "opt_real"
    """REAL or NULL."""


HEAD_COLUMNS = (Column.INT, Column.KEY, Column.INT)
"""Kinds of the columns of :attr:`CallRows.heads`."""
EDGE_COLUMNS = (Column.INT, Column.INT, Column.TEXT, Column.KEY, Column.KEY, Column.INT)
"""Kinds of the columns of :attr:`CallRows.edges`."""


class CallRows(NamedTuple):
    """Calls read in bulk as columns, for a reader that keeps them as columns (a computation
    frame) instead of one object per call and per edge. A column is a list, or (from a bulk
    read) a numpy array of integers or of 16-byte keys (``S16``).

    Attributes:
        heads: the columns ``(call_id, history_key, op_id)``, one entry per call, in no given
            order (``call_id`` is the store's own id of the call, or any distinct number for
            calls that are not read from a store).
        edges: the columns ``(call_id, direction, name, ref_key, ref_content_key, ref_kind)``,
            one entry per input or output of those calls, in no given order.
        ops: ``op_id -> (name, version)`` for the ``op_id`` values in ``heads``.
        details: the columns ``(content_key, semantic_version, content_version, started_at,
            duration)`` aligned with ``heads``, or None: then they are read from the store by
            ``call_id`` when asked for (most readers never need them).
    """

    heads: tuple[list, ...]
    edges: tuple[list, ...]
    ops: dict[int, tuple[str, int]]
    details: tuple[list, ...] | None = None
