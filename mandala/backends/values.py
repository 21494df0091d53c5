"""Refs and values of a SQL store: what a ref is, a collection's elements, stored value rows.

A :class:`ValueRepository` reads rows; turning them into values (checksums, decoding, blob
files) is the :class:`~mandala.backends.value_reader.ValueReader`'s job, which
:meth:`ValueRepository.decode_values` applies to many values at once. A dialect may read values
in bulk (SQLite does: ``sqlite.py``).

Example:
    >>> from mandala.backends.sqlite import SqliteBackend
    >>> SqliteBackend(":memory:").values.load_values([bytes(16)])
    {}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mandala.backends.core import ROWS_PER_FETCH, SqlCore
from mandala.backends.records import ShapeItem, StoredOutput, StoredValue, ValuePageRow
from mandala.backends.value_reader import ValueReader

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ValueRepository"]

_JOIN_AT = 5000  # from this many keys, one join through a temp table beats IN (...) chunks
_VALUE_SELECT = "SELECT content_key, format, size, data, blob_key, checksum FROM stored_values"


class ValueRepository:
    """Stored refs, collection elements and value rows, and values decoded in bulk."""

    def __init__(self, core: SqlCore) -> None:
        self.core = core

    def load_refs(self, history_keys: Sequence[bytes]) -> dict[bytes, tuple[bytes, int]]:
        """``history_key -> (content_key, kind)`` for the stored refs among ``history_keys``."""
        core = self.core
        with core.lock:
            return {
                history_key: (content_key, kind)
                for history_key, content_key, kind in core.rows_in(
                    "SELECT ref_key, content_key, kind FROM call_edges WHERE ref_key IN ({marks})",
                    history_keys,
                )
            }

    def load_shapes(self, collection_keys: Sequence[bytes]) -> dict[bytes, list[ShapeItem]]:
        """Elements (one level deep) of stored collection refs, ordered by position."""
        found: dict[bytes, list[ShapeItem]] = {}
        core = self.core
        with core.lock:
            for collection_key, position, item_key, element, content_key, kind in core.rows_in(
                "SELECT collection_key, position, item_key, element_key,"
                " element_content_key, element_kind FROM ref_items"
                " WHERE collection_key IN ({marks}) ORDER BY collection_key, position",
                collection_keys,
            ):
                found.setdefault(collection_key, []).append(
                    ShapeItem(position, item_key, StoredOutput("", element, content_key, kind))
                )
        return found

    def load_values(self, content_keys: Sequence[bytes]) -> dict[bytes, StoredValue]:
        """The stored rows of the values among ``content_keys``, by content key."""
        if len(content_keys) >= _JOIN_AT:
            return self.load_values_set(content_keys)
        core = self.core
        with core.lock:
            return {
                row[0]: StoredValue._make(row)
                for row in core.rows_in(
                    _VALUE_SELECT + " WHERE content_key IN ({marks})", content_keys
                )
            }

    def load_values_set(self, content_keys: Sequence[bytes]) -> dict[bytes, StoredValue]:
        """:meth:`load_values` for many keys: one join through a temp table, not one
        ``IN (...)`` query per 500 keys (a frame's table loads every value it shows)."""
        core = self.core
        with core.lock:
            core.fill_lookup_keys(content_keys)
            return {
                row[0]: StoredValue._make(row)
                for row in core.execute(
                    _VALUE_SELECT + " WHERE content_key IN (SELECT key FROM lookup_keys)"
                )
            }

    def has_values(self, content_keys: Sequence[bytes]) -> set[bytes]:
        """The subset of ``content_keys`` whose values are stored."""
        core = self.core
        with core.lock:
            return {
                row[0]
                for row in core.rows_in(
                    "SELECT content_key FROM stored_values WHERE content_key IN ({marks})",
                    content_keys,
                )
            }

    def formats(self, content_keys: Sequence[bytes]) -> dict[bytes, str]:
        """The storage format of each stored value among ``content_keys`` (no bytes read):
        what copying from an untrusted store checks before it copies anything."""
        core = self.core
        with core.lock:
            return {
                bytes(row[0]): row[1]
                for row in core.rows_in(
                    "SELECT content_key, format FROM stored_values WHERE content_key IN ({marks})",
                    content_keys,
                )
            }

    def has_checksum(self, content_key: bytes) -> bool:
        """True if the value is stored with a checksum: a blob file found on disk for it was
        written by a committed call (else it may be a crashed writer's leftover)."""
        core = self.core
        with core.lock:
            row = core.execute(
                "SELECT checksum FROM stored_values WHERE content_key = ?", (content_key,)
            ).fetchone()
        return row is not None and row[0] is not None

    def prefetch_values(self, expected: int) -> Any:  # noqa: ARG002 - a dialect hook (SQLite overrides it)
        """Start reading values ahead of :meth:`decode_values` (a handle to pass it), or None:
        this dialect reads them when asked."""
        return None

    def decode_values(
        self,
        content_keys: np.ndarray,
        reader: ValueReader,
        prefetched: Any = None,  # noqa: ARG002 - a dialect hook (SQLite overrides it)
    ) -> tuple[np.ndarray, np.ndarray]:
        """The stored values of ``content_keys`` (a key array; repeats allowed), decoded by
        ``reader``: an object array aligned with the keys, and a boolean array of which keys
        are stored (the others are None). ``prefetched``: a handle of :meth:`prefetch_values`.

        One join through a temp table, and rows fetched a chunk at a time, so that only one
        chunk of raw bytes is alive at once.

        Raises:
            CorruptValueError: a value's bytes do not match its checksum.
        """
        import numpy as np

        from mandala.hashing.key_table import key_list

        keys = key_list(content_keys)
        found: dict[bytes, Any] = {}
        decode = reader.decode
        core = self.core
        with core.lock:
            core.fill_lookup_keys(keys)
            cursor = core.execute(
                "SELECT v.content_key, v.format, v.data, v.blob_key, v.checksum"
                " FROM stored_values v WHERE v.content_key IN (SELECT key FROM lookup_keys)"
            )
            while chunk := cursor.fetchmany(ROWS_PER_FETCH):
                for row in chunk:
                    found[bytes(row[0])] = decode(*row)
        present = np.fromiter(map(found.__contains__, keys), dtype=bool, count=len(keys))
        values = np.fromiter(map(found.get, keys), dtype=object, count=len(keys))
        return values, present

    def values_page(self, after: bytes, limit: int) -> list[ValuePageRow]:
        """Up to ``limit`` values whose content key sorts after ``after``, in key order (a full
        scan in bounded memory, page by page)."""
        core = self.core
        with core.lock:
            rows = core.execute(
                "SELECT content_key, data, blob_key, checksum FROM stored_values"
                " WHERE content_key > ? ORDER BY content_key LIMIT ?",
                (after, limit),
            ).fetchall()
        return [ValuePageRow._make(row) for row in rows]
