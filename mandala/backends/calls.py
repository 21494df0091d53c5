"""Calls of a SQL store, read as objects: lookups on the memoization path, provenance, deletion.

A :class:`CallRepository` reads the ``calls`` and ``call_edges`` tables (and ``ops``) through a
:class:`~mandala.backends.core.SqlCore`; bulk reads that keep calls as columns (computation
frames) are in ``columns.py``, and writes are :meth:`mandala.backends.sql.SqlBackend.write`.

Example:
    >>> from mandala.backends.sqlite import SqliteBackend
    >>> SqliteBackend(":memory:").calls.find_outputs(bytes(16)) is None
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mandala.backends.core import SqlCore, chunks
from mandala.backends.records import (
    DIRECTION_IN,
    DIRECTION_OUT,
    OpRow,
    StoredCall,
    StoredOutput,
)

__all__ = ["CallRepository"]

_HEAD_COLUMNS = (
    "c.history_key, c.content_key, c.op_id, c.semantic_version, c.content_version,"
    " c.started_at, c.duration, c.call_id"
)
EDGE_SELECT = "e.call_id, e.direction, e.name, e.ref_key, e.content_key, e.kind"
"""The columns of an edge read, in the order of :data:`~mandala.backends.records.EDGE_COLUMNS`."""

_OUTPUTS_BY_HISTORY = (
    "SELECT 0, e.name, e.ref_key, e.content_key, e.kind FROM calls c"
    " LEFT JOIN call_edges e ON e.call_id = c.call_id AND e.direction = 1"
    " WHERE c.history_key = ?"
)


class CallRepository:
    """Stored calls by key, by op, by the refs they touch; their provenance and deletion."""

    def __init__(self, core: SqlCore) -> None:
        self.core = core

    # ---------------------------------------------------------------- the memoization path

    def find_outputs(self, call_key: bytes) -> tuple[StoredOutput, ...] | None:
        """Outputs of the call with this history key, or None if there is no such call."""
        core = self.core
        with core.lock:
            rows = core.execute(_OUTPUTS_BY_HISTORY, (call_key,)).fetchall()
        if not rows:
            return None
        return tuple(StoredOutput(r[1], r[2], r[3], r[4]) for r in rows if r[1] is not None)

    def find_call(
        self, history_key: bytes, content_key: bytes
    ) -> tuple[tuple[StoredOutput, ...] | None, bytes | None]:
        """The outputs of the call with this history key if it is stored, else the history key
        of some call with this content key (or None).

        Two statements rather than one: a hit (the common case in a large store) then never
        touches the content index, whose pages a cold cache would have to read.
        """
        outputs = self.find_outputs(history_key)
        if outputs is not None:
            return outputs, None
        return None, self.find_call_by_content(content_key)

    def find_call_by_content(self, content_key: bytes) -> bytes | None:
        """History key of some call with this content key (any one), or None."""
        core = self.core
        with core.lock:
            row = core.execute(
                "SELECT history_key FROM calls WHERE content_key = ? LIMIT 1", (content_key,)
            ).fetchone()
        return row[0] if row else None

    def has_calls(self, call_keys: Sequence[bytes]) -> set[bytes]:
        """The subset of ``call_keys`` that are stored."""
        with self.core.lock:
            return self.existing(list(call_keys))

    def existing(self, call_keys: Iterable[bytes]) -> set[bytes]:
        """:meth:`has_calls` for a caller that holds the core's lock (or is in a transaction)."""
        return {
            row[0]
            for row in self.core.rows_in(
                "SELECT history_key FROM calls WHERE history_key IN ({marks})", call_keys
            )
        }

    # ---------------------------------------------------------------- calls as objects

    def load_calls(self, call_keys: Sequence[bytes]) -> list[StoredCall]:
        """Stored calls with their inputs and outputs, in the order of ``call_keys`` (missing
        keys are skipped)."""
        by_key = {call.history_key: call for call in self.load_calls_set(call_keys)}
        return [by_key[key] for key in call_keys if key in by_key]

    def load_calls_set(self, call_keys: Sequence[bytes]) -> list[StoredCall]:
        """Calls by history key, unordered, for large sets (one join through a temp table)."""
        core = self.core
        with core.lock, core.snapshot():
            core.fill_temp_keys(list(call_keys))
            # The edges through IN (SELECT ...): as a three-way join, SQLite (with no statistics
            # on the temp table) scanned the whole edge table.
            return self._calls_from_query(
                f"SELECT {_HEAD_COLUMNS} FROM lookup_keys k JOIN calls c ON c.history_key = k.key",
                f"SELECT {EDGE_SELECT} FROM call_edges e WHERE e.call_id IN"
                " (SELECT c.call_id FROM lookup_keys k JOIN calls c ON c.history_key = k.key)",
                (),
            )

    def load_calls_of_op(self, name: str) -> list[StoredCall]:
        """Every stored call of the op ``name`` (all versions), with its edges: two scans."""
        core = self.core
        with core.lock, core.snapshot():
            return self._calls_from_query(
                f"SELECT {_HEAD_COLUMNS} FROM calls c JOIN ops o ON o.op_id = c.op_id"
                " WHERE o.name = ?",
                f"SELECT {EDGE_SELECT} FROM calls c JOIN ops o ON o.op_id = c.op_id"
                " JOIN call_edges e ON e.call_id = c.call_id WHERE o.name = ?",
                (name,),
            )

    def load_calls_touching(self, ref_keys: Sequence[bytes], direction: int) -> list[StoredCall]:
        """Calls that output (``direction`` 1) or take as input (0) any of ``ref_keys``."""
        core = self.core
        with core.lock, core.snapshot():
            core.fill_temp_keys(list(ref_keys))
            core.empty_lookup_calls()
            core.execute(
                "INSERT INTO lookup_calls (id) SELECT DISTINCT e.call_id FROM call_edges e"
                " WHERE e.ref_key IN (SELECT key FROM lookup_keys) AND e.direction = ?"
                " ON CONFLICT DO NOTHING",
                (direction,),
            )
            # IN (SELECT ...) rather than a join: without statistics on the temp table, SQLite
            # would scan the whole edge table for a join.
            return self._calls_from_query(
                f"SELECT {_HEAD_COLUMNS} FROM calls c"
                " WHERE c.call_id IN (SELECT id FROM lookup_calls)",
                f"SELECT {EDGE_SELECT} FROM call_edges e"
                " WHERE e.call_id IN (SELECT id FROM lookup_calls)",
                (),
            )

    def _calls_from_query(self, head_sql: str, edge_sql: str, params: tuple) -> list[StoredCall]:
        """Assemble calls from two scans: one over call rows, one over their edges."""
        core = self.core
        heads = core.execute(head_sql, params).fetchall()
        edges: dict[int, tuple[list[StoredOutput], list[StoredOutput]]] = {
            head[7]: ([], []) for head in heads
        }
        make_edge = StoredOutput._make
        for row in core.execute(edge_sql, params):
            lists = edges.get(row[0])
            if lists is not None:
                lists[row[1]].append(make_edge(row[2:]))
        op_names = {op_id: core.op_name(op_id) for op_id in {head[2] for head in heads}}
        make_call = StoredCall._make
        result = []
        for head in heads:
            name, version = op_names[head[2]]
            inputs, outputs = edges[head[7]]
            # field order of StoredCall: keys, op, versions, timing, edges
            result.append(
                make_call(
                    (head[0], head[1], name, version, *head[3:7], tuple(inputs), tuple(outputs))
                )
            )
        return result

    def all_call_keys(self) -> list[bytes]:
        """History keys of every stored call."""
        core = self.core
        with core.lock:
            return [row[0] for row in core.execute("SELECT history_key FROM calls")]

    def ops(self) -> list[OpRow]:
        """Every op known to the store."""
        core = self.core
        with core.lock:
            rows = core.execute(
                "SELECT name, version, output_names, nout, ignore_args, is_structural FROM ops"
            ).fetchall()
        return [OpRow._make(row) for row in rows]

    # ---------------------------------------------------------------- provenance

    def _edge_calls(self, ref_keys: Sequence[bytes], direction: int) -> dict[bytes, list[bytes]]:
        found: dict[bytes, list[bytes]] = {}
        core = self.core
        with core.lock:
            for ref_key, call_key in core.rows_in(
                "SELECT e.ref_key, c.history_key FROM call_edges e"
                " JOIN calls c ON c.call_id = e.call_id"
                " WHERE e.ref_key IN ({marks}) AND e.direction = ?",
                ref_keys,
                (direction,),
            ):
                found.setdefault(ref_key, []).append(call_key)
        return found

    def creators(self, ref_keys: Sequence[bytes]) -> dict[bytes, list[bytes]]:
        """For each ref key, the history keys of the calls that output it."""
        return self._edge_calls(ref_keys, DIRECTION_OUT)

    def consumers(self, ref_keys: Sequence[bytes]) -> dict[bytes, list[bytes]]:
        """For each ref key, the history keys of the calls that take it as an input."""
        return self._edge_calls(ref_keys, DIRECTION_IN)

    def value_creators(self, content_keys: Sequence[bytes]) -> dict[bytes, list[bytes]]:
        """For each content key, the history keys of the calls that output a ref with it.

        A scan of ``call_edges`` (no index by content key: it would slow every fresh call), so
        for error messages and reports, not for hot paths.
        """
        found: dict[bytes, list[bytes]] = {}
        core = self.core
        with core.lock:
            for content_key, call_key in core.rows_in(
                "SELECT DISTINCT e.content_key, c.history_key FROM call_edges e"
                " JOIN calls c ON c.call_id = e.call_id"
                " WHERE e.content_key IN ({marks}) AND e.direction = 1",
                content_keys,
            ):
                found.setdefault(content_key, []).append(call_key)
        return found

    # ---------------------------------------------------------------- deletion

    def dependents(self, call_keys: Sequence[bytes]) -> set[bytes]:
        """The given calls plus every call that (transitively) consumes one of their outputs."""
        core = self.core
        with core.lock:
            ids = self._call_ids(list(call_keys))
            result = set(ids)
            frontier = list(ids)
            while frontier:
                next_frontier: list[int] = []
                for (call_id,) in core.rows_in(
                    "SELECT DISTINCT c.call_id FROM call_edges o"
                    " JOIN call_edges c ON c.ref_key = o.ref_key AND c.direction = 0"
                    " WHERE o.call_id IN ({marks}) AND o.direction = 1",
                    frontier,
                ):
                    if call_id not in result:
                        result.add(call_id)
                        next_frontier.append(call_id)
                frontier = next_frontier
            return set(
                dict(
                    core.rows_in(
                        "SELECT call_id, history_key FROM calls WHERE call_id IN ({marks})",
                        list(result),
                    )
                ).values()
            )

    def _call_ids(self, call_keys: Iterable[bytes]) -> list[int]:
        return [
            row[0]
            for row in self.core.rows_in(
                "SELECT call_id FROM calls WHERE history_key IN ({marks})", call_keys
            )
        ]

    def delete_calls(self, call_keys: Sequence[bytes]) -> int:
        """Delete calls and their edges (values stay until the upkeep's
        ``unreferenced_values`` are deleted); returns how many were stored."""
        keys = list(dict.fromkeys(call_keys))
        core = self.core

        def body() -> int:
            ids = self._call_ids(keys)
            for chunk in chunks(ids):
                marks = ",".join("?" * len(chunk))
                core.execute(f"DELETE FROM call_edges WHERE call_id IN ({marks})", chunk)
                core.execute(f"DELETE FROM calls WHERE call_id IN ({marks})", chunk)
            return len(ids)

        return core.transaction(body)
