"""Upkeep of a SQL store: orphaned rows, their deletion, row counts, integrity scans.

Full scans, for ``Storage.cleanup``, ``verify`` and reports, never on a hot path.

Example:
    >>> from mandala.backends.sqlite import SqliteBackend
    >>> SqliteBackend(":memory:").upkeep.counts()
    StoreCounts(calls=0, refs=0, values=0, ops=0)
"""

from __future__ import annotations

from collections.abc import Sequence

from mandala.backends.core import SqlCore, chunks
from mandala.backends.records import CallWithoutEdges, EdgeWithoutValue, StoreCounts

__all__ = ["Upkeep"]


class Upkeep:
    """What no call needs any more, and how many rows there are."""

    def __init__(self, core: SqlCore) -> None:
        self.core = core

    def orphan_refs(self) -> set[bytes]:
        """Collections whose element rows remain but that no call mentions any more."""
        core = self.core
        with core.lock:
            rows = core.execute(
                "SELECT DISTINCT collection_key FROM ref_items WHERE collection_key NOT IN"
                " (SELECT ref_key FROM call_edges)"
            ).fetchall()
        return {row[0] for row in rows}

    def unreferenced_values(self) -> set[bytes]:
        """Values that no call edge and no collection element points to."""
        core = self.core
        with core.lock:
            rows = core.execute(
                "SELECT content_key FROM stored_values WHERE content_key NOT IN"
                " (SELECT content_key FROM call_edges)"
                " AND content_key NOT IN (SELECT element_content_key FROM ref_items)"
            ).fetchall()
        return {row[0] for row in rows}

    def delete_refs_and_values(
        self, ref_keys: Sequence[bytes], content_keys: Sequence[bytes]
    ) -> list[str]:
        """Delete collections' element rows and values; returns blob keys to remove."""
        refs = list(ref_keys)
        values = list(content_keys)
        core = self.core

        def body() -> list[str]:
            blobs: list[str] = []
            for chunk in chunks(refs):
                marks = ",".join("?" * len(chunk))
                core.execute(f"DELETE FROM ref_items WHERE collection_key IN ({marks})", chunk)
            for chunk in chunks(values):
                marks = ",".join("?" * len(chunk))
                blobs.extend(
                    row[0]
                    for row in core.execute(
                        f"SELECT blob_key FROM stored_values WHERE content_key IN ({marks})"
                        " AND blob_key IS NOT NULL",
                        chunk,
                    )
                )
                core.execute(f"DELETE FROM stored_values WHERE content_key IN ({marks})", chunk)
            return blobs

        return core.transaction(body)

    def edges_without_values(self) -> list[EdgeWithoutValue]:
        """Every atom edge whose value row is missing (pointer refs have no value row and are
        not listed)."""
        core = self.core
        with core.lock:
            rows = core.execute(
                "SELECT c.history_key, e.direction, e.name, e.content_key FROM call_edges e"
                " JOIN calls c ON c.call_id = e.call_id WHERE e.kind = 0 AND NOT EXISTS"
                " (SELECT 1 FROM stored_values v WHERE v.content_key = e.content_key)"
            ).fetchall()
        return [EdgeWithoutValue._make(row) for row in rows]

    def calls_without_edges(self) -> list[CallWithoutEdges]:
        """Every call that has no edge at all."""
        core = self.core
        with core.lock:
            rows = core.execute(
                "SELECT c.history_key, o.name, o.nout FROM calls c JOIN ops o ON o.op_id = c.op_id"
                " WHERE NOT EXISTS (SELECT 1 FROM call_edges e WHERE e.call_id = c.call_id)"
            ).fetchall()
        return [CallWithoutEdges._make(row) for row in rows]

    def count_edges(self) -> int:
        """How many call edges are stored."""
        core = self.core
        with core.lock:
            return core.execute("SELECT count(*) FROM call_edges").fetchone()[0]

    def counts(self) -> StoreCounts:
        """Row counts (full scans: for reports, not for hot paths)."""
        core = self.core
        with core.lock:
            return StoreCounts(
                calls=core.execute("SELECT count(*) FROM calls").fetchone()[0],
                refs=core.execute(
                    "SELECT count(*) FROM (SELECT DISTINCT ref_key FROM call_edges) AS refs"
                ).fetchone()[0],
                values=core.execute("SELECT count(*) FROM stored_values").fetchone()[0],
                ops=core.execute("SELECT count(*) FROM ops").fetchone()[0],
            )
