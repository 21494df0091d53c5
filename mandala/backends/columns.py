"""Calls of a SQL store read in bulk as columns, for computation frames.

A frame keeps a million calls as a few arrays, not as a million objects: :class:`ColumnReads`
gives them as :class:`~mandala.backends.records.CallRows` (columns of call heads and of edges),
read through the core's :meth:`~mandala.backends.core.SqlCore.columns` hook (SQLite aggregates
each column in the database, see ``sqlite_columns.py``). Details that few readers need (content
key, versions, timing) are read later by call id (:meth:`ColumnReads.load_call_details`).

Example:
    >>> from mandala.backends.sqlite import SqliteBackend
    >>> SqliteBackend(":memory:").columns.load_call_rows_of_op("f").ops
    {}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mandala.backends.calls import EDGE_SELECT
from mandala.backends.core import SqlCore
from mandala.backends.records import EDGE_COLUMNS, HEAD_COLUMNS, CallRows
from mandala.errors import StorageError

__all__ = ["ColumnReads"]

_HEAD_SELECT = "c.call_id, c.history_key, c.op_id"
_DETAIL_COUNT = 5


class ColumnReads:
    """Calls as columns: by op, by the refs they touch, by key; their details by call id."""

    def __init__(self, core: SqlCore) -> None:
        self.core = core

    def _call_rows(self, head_sql: str, edge_sql: str, params: tuple) -> CallRows:
        core = self.core
        heads = core.columns(head_sql, params, HEAD_COLUMNS)
        edges = (
            core.columns(edge_sql, params, EDGE_COLUMNS)
            if len(heads[0])
            else tuple([] for _ in EDGE_COLUMNS)
        )
        op_ids = heads[2]  # a list, or an array from a bulk read
        ops = {
            op_id: core.op_name(op_id)
            for op_id in set(op_ids.tolist() if hasattr(op_ids, "tolist") else op_ids)
        }
        return CallRows(heads, edges, ops)

    def load_call_rows_of_op(self, name: str) -> CallRows:
        """Every stored call of the op ``name`` (all versions) as rows, unordered: two scans."""
        core = self.core
        with core.lock, core.snapshot():
            return self._call_rows(
                f"SELECT {_HEAD_SELECT} FROM calls c JOIN ops o ON o.op_id = c.op_id"
                " WHERE o.name = ?",
                f"SELECT {EDGE_SELECT} FROM calls c JOIN ops o ON o.op_id = c.op_id"
                " JOIN call_edges e ON e.call_id = c.call_id WHERE o.name = ?",
                (name,),
            )

    def load_call_rows_touching(self, ref_keys: Sequence[bytes], direction: int) -> CallRows:
        """Calls that output (``direction`` 1) or take as input (0) any of ``ref_keys``, as
        rows, unordered.

        The temp tables are joined through ``IN (SELECT ...)``: with plain joins SQLite (which
        has no statistics on them) scans the whole edge table instead of probing it by key.
        """
        core = self.core
        with core.lock, core.snapshot():
            core.fill_lookup_keys(ref_keys)
            core.empty_lookup_calls()
            core.execute(
                "INSERT INTO lookup_calls (id) SELECT e.call_id FROM call_edges e"
                " WHERE e.ref_key IN (SELECT key FROM lookup_keys) AND e.direction = ?"
                " ON CONFLICT DO NOTHING",
                (direction,),
            )
            return self._call_rows(
                f"SELECT {_HEAD_SELECT} FROM calls c"
                " WHERE c.call_id IN (SELECT id FROM lookup_calls)",
                f"SELECT {EDGE_SELECT} FROM call_edges e"
                " WHERE e.call_id IN (SELECT id FROM lookup_calls)",
                (),
            )

    def load_call_rows_set(self, call_keys: Sequence[bytes]) -> CallRows:
        """Calls by history key as rows, unordered (missing keys are skipped)."""
        core = self.core
        with core.lock, core.snapshot():
            core.fill_lookup_keys(call_keys)
            return self._call_rows(
                f"SELECT {_HEAD_SELECT} FROM calls c"
                " WHERE c.history_key IN (SELECT key FROM lookup_keys)",
                f"SELECT {EDGE_SELECT} FROM call_edges e WHERE e.call_id IN"
                " (SELECT c.call_id FROM calls c WHERE c.history_key IN (SELECT key FROM lookup_keys))",
                (),
            )

    def load_call_details(self, call_ids: Sequence[int]) -> tuple[list[Any], ...]:
        """``(content_key, semantic_version, content_version, started_at, duration)`` columns
        of the calls with these store ids (of :meth:`load_call_rows_of_op` and the like),
        aligned with ``call_ids``.

        Raises:
            StorageError: a call is no longer stored (dropped since it was read).
        """
        core = self.core
        with core.lock:
            core.fill_lookup_calls(call_ids)
            rows = core.execute(
                "SELECT c.call_id, c.content_key, c.semantic_version, c.content_version,"
                " c.started_at, c.duration FROM calls c"
                " WHERE c.call_id IN (SELECT id FROM lookup_calls)"
            ).fetchall()
        by_id = {row[0]: row[1:] for row in rows}
        missing = [call_id for call_id in call_ids if call_id not in by_id]
        if missing:
            raise StorageError(
                f"{len(missing)} call(s) of this frame are no longer in the store (dropped since"
                " the frame was made); make the frame again"
            )
        return tuple(map(list, zip(*map(by_id.__getitem__, call_ids)))) or tuple(
            [] for _ in range(_DETAIL_COUNT)
        )
