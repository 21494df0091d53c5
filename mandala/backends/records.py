"""Records exchanged between the engine and a backend.

Rows travel as plain tuples inside these records (one tuple per row, layouts documented on each
field): building millions of small objects per commit would cost more than the database work.
Records read back in bulk (a frame loads every call of an op) are immutable NamedTuples, which
are several times cheaper to create than frozen dataclasses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from mandala.model.calls import OpSpec
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
    "OpRow",
    "ItemRow",
    "EdgeWithoutValue",
    "CallWithoutEdges",
    "ValuePageRow",
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
        ops: :class:`OpRow`.
        values: ``(content_key, format, size, data_or_None, blob_key_or_None, checksum_or_None)``;
            the checksum is the 16-byte BLAKE3 digest of the stored bytes (the inline data or the
            blob file), None when unknown (then the value is loaded unverified).
        items: :class:`ItemRow` (or tuples of its layout).
        calls: ``(history_key, content_key, op_name, op_version, semantic_version,
            content_version, started_at, duration)``.
        edges: ``(call_history_key, direction, name, ref_history_key, ref_content_key,
            ref_kind)``.
        versions: ``(content_version, semantic_version, op_name, created_at)`` (code versioning).
        version_support: ``(content_version, component_id, content_hash)``.
        call_versions: ``(pre_call_key, semantic_version, content_version)``.
    """

    ops: list[OpRow] = field(default_factory=list)
    values: list[tuple] = field(default_factory=list)
    items: list[tuple] = field(default_factory=list)
    calls: list[tuple] = field(default_factory=list)
    edges: list[tuple] = field(default_factory=list)
    versions: list[tuple] = field(default_factory=list)
    version_support: list[tuple] = field(default_factory=list)
    call_versions: list[tuple] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values) + len(self.items) + len(self.calls) + len(self.edges)


class OpRow(NamedTuple):
    """An op as the ``ops`` table stores it (the one shape of an op's row, written and read).

    The collection fields are JSON text, as stored."""

    name: str
    version: int
    output_names: str | None
    """JSON list of the declared output names, or None."""
    nout: str
    """JSON of ``"auto"``, ``"var"`` or a count."""
    ignore_args: str
    """JSON list of parameter names."""
    is_structural: int

    @classmethod
    def of(cls, spec: OpSpec) -> OpRow:
        """The row of an op's description."""
        return cls(
            spec.name,
            spec.version,
            json.dumps(list(spec.output_names)) if spec.output_names is not None else None,
            json.dumps(spec.nout),
            json.dumps(list(spec.ignore_args)),
            int(spec.is_structural),
        )

    def to_spec(self) -> OpSpec:
        """The op's description from its row."""
        return OpSpec(
            self.name,
            self.version,
            tuple(json.loads(self.output_names)) if self.output_names else None,
            json.loads(self.nout),
            tuple(json.loads(self.ignore_args)),
            bool(self.is_structural),
        )


class ItemRow(NamedTuple):
    """One element of a stored collection ref, as the ``ref_items`` table stores it."""

    collection_key: bytes
    position: int
    item_key: str | None
    element_key: bytes
    element_content_key: bytes
    element_kind: int


class EdgeWithoutValue(NamedTuple):
    """An atom edge whose value row is missing (found by ``verify``)."""

    call_key: bytes
    direction: int
    name: str
    content_key: bytes


class CallWithoutEdges(NamedTuple):
    """A stored call that has no edge at all (found by ``verify``)."""

    call_key: bytes
    op_name: str
    nout_json: str


class ValuePageRow(NamedTuple):
    """What ``verify`` reads of a stored value, a page of them at a time."""

    content_key: bytes
    data: bytes | None
    blob_key: str | None
    checksum: bytes | None


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
