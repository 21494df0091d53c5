"""A SQL store, as the rest of mandala holds it: a core and the repositories over it.

:class:`SqlBackend` composes a dialect's :class:`~mandala.backends.core.SqlCore` (connection,
transactions, schema; ``sqlite.py``, ``postgres.py``) with the repositories that read it:
:attr:`~SqlBackend.calls` (``calls.py``), :attr:`~SqlBackend.columns` (``columns.py``),
:attr:`~SqlBackend.values` (``values.py``) and :attr:`~SqlBackend.upkeep` (``upkeep.py``). The SQL
is identical for every dialect except in the core's hooks, which is what lets one contract test
suite run over every backend. Writes go through :meth:`SqlBackend.write`: one transaction per
batch, idempotent inserts (``ON CONFLICT DO NOTHING``), retried on contention only.
"""

from __future__ import annotations

from typing import Any

from mandala.backends.calls import CallRepository
from mandala.backends.columns import ColumnReads
from mandala.backends.core import SqlCore
from mandala.backends.records import WriteBatch
from mandala.backends.upkeep import Upkeep
from mandala.backends.values import ValueRepository

__all__ = ["SqlBackend"]


def _first(row: tuple) -> Any:
    return row[0]


class SqlBackend:
    """Calls, refs and small values in a SQL database; see ``schema.py`` for the tables.

    Args:
        core: the dialect's connection.
        values: the values repository, if the dialect has its own (bulk reads).

    Attributes:
        core: the connection, transactions and schema (the backend package's protected API).
        calls: stored calls as objects: memoization lookups, provenance, deletion.
        columns: stored calls as columns, for computation frames.
        values: refs, collection elements and value rows; values decoded in bulk.
        upkeep: orphans, row counts, integrity scans.

    Example:
        >>> from mandala.backends.sqlite import SqliteBackend
        >>> backend = SqliteBackend(":memory:")
        >>> backend.calls.has_calls([bytes(16)])
        set()
    """

    def __init__(self, core: SqlCore, values: ValueRepository | None = None) -> None:
        self.core = core
        self.calls = CallRepository(core)
        self.columns = ColumnReads(core)
        self.values = values if values is not None else ValueRepository(core)
        self.upkeep = Upkeep(core)

    @property
    def dialect(self) -> str:
        """The dialect's name (``"sqlite"``, ``"postgresql"``)."""
        return self.core.dialect

    @property
    def path(self) -> str:
        """Where the store is (a URL without its password for PostgreSQL)."""
        return self.core.path

    @property
    def is_memory(self) -> bool:
        """Whether the store lives only as long as this object."""
        return self.core.is_memory

    def write(self, batch: WriteBatch) -> None:
        """Write a batch in one transaction; calls already stored (by anyone) are skipped."""
        op_rows = {(row.name, row.version): row for row in batch.ops}
        # Rows sorted by key land in B-tree pages in order, which makes inserts of random keys
        # cheaper than in arrival order.
        values = sorted(batch.values)
        items = sorted(batch.items)
        calls = sorted(batch.calls, key=_first)
        edges_by_call: dict[bytes, list[tuple]] = {}
        for edge in batch.edges:
            edges_by_call.setdefault(edge[0], []).append(edge)

        core = self.core

        def body() -> dict[tuple[str, int], int]:
            resolved = {key: core.op_id(row) for key, row in op_rows.items()}
            op_ids = {**core.known_op_ids(), **resolved}
            if values:
                # A row whose checksum or inline bytes differ from those written now is replaced:
                # the stored bytes were damaged (or predate checksums) and were just recomputed.
                core.executemany(
                    "INSERT INTO stored_values (content_key, format, size, data, blob_key,"
                    " checksum) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (content_key) DO UPDATE SET"
                    " format = excluded.format, size = excluded.size, data = excluded.data,"
                    " blob_key = excluded.blob_key, checksum = excluded.checksum"
                    " WHERE excluded.checksum IS NOT NULL AND (stored_values.checksum IS NULL"
                    " OR stored_values.checksum <> excluded.checksum"
                    " OR stored_values.data <> excluded.data)",
                    values,
                )
            if items:
                core.executemany(
                    "INSERT INTO ref_items (collection_key, position, item_key, element_key,"
                    " element_content_key, element_kind) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    items,
                )
            if calls:
                # Another writer may have stored some of these calls since they were looked up;
                # a call row and its edges are written together, so skipping it is enough.
                existing = self.calls.existing([c[0] for c in calls])
                new_calls = [c for c in calls if c[0] not in existing]
                next_id = core.execute("SELECT COALESCE(MAX(call_id), 0) FROM calls").fetchone()[0]
                call_rows = []
                edge_rows = []
                for offset, c in enumerate(new_calls, start=next_id + 1):
                    call_rows.append((offset, c[0], c[1], op_ids[(c[2], c[3])], *c[4:]))
                    for edge in edges_by_call.get(c[0], ()):
                        edge_rows.append((offset, *edge[1:]))
                core.executemany(
                    "INSERT INTO calls (call_id, history_key, content_key, op_id,"
                    " semantic_version, content_version, started_at, duration)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    call_rows,
                )
                core.executemany(
                    "INSERT INTO call_edges (call_id, direction, name, ref_key, content_key, kind)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    edge_rows,
                )
            if batch.versions:
                core.executemany(
                    "INSERT INTO versions (content_version, semantic_version, op_name, created_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    sorted(batch.versions),
                )
            if batch.version_support:
                core.executemany(
                    "INSERT INTO version_support (content_version, component_id, content_hash)"
                    " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    sorted(batch.version_support),
                )
            if batch.call_versions:
                core.executemany(
                    "INSERT INTO call_versions (pre_call_key, semantic_version, content_version)"
                    " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    sorted(batch.call_versions),
                )
            return resolved

        # cache only what the committed transaction made
        core.remember_ops(core.transaction(body))

    def close(self) -> None:
        """Release the connection."""
        self.core.close()

    def vacuum(self) -> None:
        """Reclaim the space of deleted rows."""
        self.core.vacuum()

    def connection(self) -> Any:
        """The underlying connection (for ad-hoc SQL; do not write through it)."""
        return self.core.connection()

    def wait_for_checkpoints(self, timeout: float | None = None) -> bool:
        """Wait until upkeep scheduled after commits is done; False on timeout.

        Writes never need this: that upkeep (SQLite's log checkpoints) only moves committed
        data between files. Benchmarks use it to charge the deferred work to the writes.
        """
        return self.core.wait_for_checkpoints(timeout)
