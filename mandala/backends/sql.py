"""The relational store shared by every SQL dialect: schema, writes, lookups and upkeep.

A dialect (``sqlite.py``, ``postgres.py``) supplies the connection, statement execution, write
transactions and what counts as a retryable error; everything else, the SQL included, is here and
identical for all of them, which is what lets one contract test suite run over every backend.
Statements are written with ``?`` placeholders; a dialect translates them if it must.

Writes: one transaction per batch, idempotent inserts (``ON CONFLICT DO NOTHING``), retried
(rolled back first, bounded, with backoff) only when the dialect says the error is contention.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from mandala.backends import schema
from mandala.backends.records import (
    DIRECTION_IN,
    DIRECTION_OUT,
    EDGE_COLUMNS,
    HEAD_COLUMNS,
    CallRows,
    Column,
    ShapeItem,
    StoreCounts,
    StoredCall,
    StoredOutput,
    StoredValue,
    WriteBatch,
)
from mandala.errors import SchemaVersionError, StorageError
from mandala.hashing.digest import KEY_SIZE

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SqlBackend"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_MAX_ATTEMPTS = 12
_CHUNK = 500  # keys per IN (...) clause, below every dialect's parameter limit
_JOIN_AT = 5000  # from this many keys, one join through a temp table beats IN (...) chunks
_ROWS_PER_FETCH = 50_000  # rows per fetchmany() of bulk reads


def _first(row: tuple) -> Any:
    return row[0]


def _chunks(keys: Sequence[_T], size: int = _CHUNK) -> Iterable[Sequence[_T]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


class SqlBackend(ABC):
    """Calls, refs and small values in a SQL database; see ``schema.py`` for the tables.

    Subclasses implement the dialect hooks below and call :meth:`_initialize` once connected.
    """

    dialect = "sql"
    blob_type = "BLOB"
    path: str
    is_memory = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._op_ids: dict[tuple[str, int], int] = {}
        self._op_names: dict[int, tuple[str, int]] = {}

    # ---------------------------------------------------------------- dialect hooks

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns a cursor (iterable, with fetchone/fetchall)."""

    @abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for every row."""

    @abstractmethod
    def _begin_write(self) -> None:
        """Start a transaction that excludes other writers (so call ids can be assigned)."""

    @abstractmethod
    def _end_write(self, commit: bool) -> None:
        """Commit (or roll back) the write transaction, if one is open."""

    @abstractmethod
    def _begin_read(self) -> bool:
        """Start a transaction in which every statement sees the same committed state (writes
        to temp tables allowed); False if a transaction is already open (it is kept)."""

    @abstractmethod
    def _end_read(self) -> None:
        """End the transaction of :meth:`_begin_read`."""

    @contextmanager
    def _one_snapshot(self) -> Iterator[None]:
        """Run the statements inside on one state of the store.

        A read of many calls takes several statements (which calls, then their rows, then
        their edges); a writer committing in between would otherwise show calls without their
        edges, or edges of calls that were not read. Call under ``self._lock``."""
        if not self._begin_read():
            yield
            return
        try:
            yield
        finally:
            self._end_read()

    @abstractmethod
    def _is_retryable(self, error: BaseException) -> bool:
        """Whether ``error`` means contention with another writer (then the write is retried)."""

    @abstractmethod
    def _table_names(self) -> set[str]:
        """Names of the tables in the store's namespace."""

    @abstractmethod
    def _ddl(self) -> list[str]:
        """The statements that create the current schema."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    @abstractmethod
    def vacuum(self) -> None:
        """Reclaim the space of deleted rows."""

    @abstractmethod
    def connection(self) -> Any:
        """The underlying connection (for ad-hoc SQL; do not write through it)."""

    # ---------------------------------------------------------------- transactions

    def _with_retry(self, action: Callable[[], _T]) -> _T:
        delay = 0.005
        for attempt in range(_MAX_ATTEMPTS):
            try:
                return action()
            except Exception as error:
                if not self._is_retryable(error) or attempt == _MAX_ATTEMPTS - 1:
                    raise
                logger.debug("store busy (%s); retrying in %.3fs", error, delay)
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def _transaction(self, body: Callable[[], _T]) -> _T:
        """Run ``body`` in one write transaction, retrying on contention."""

        def attempt() -> _T:
            self._begin_write()
            try:
                result = body()
            except BaseException:
                self._end_write(commit=False)
                raise
            self._end_write(commit=True)
            return result

        with self._lock:
            result = self._with_retry(attempt)
            self._after_commit()
            return result

    def _after_commit(self) -> None:
        """Upkeep after a committed write transaction (a dialect may schedule some); never
        raises, since the transaction is committed."""
        return None

    def wait_for_checkpoints(self, timeout: float | None = None) -> bool:
        """Wait until upkeep scheduled after commits is done; False on timeout.

        Writes never need this: that upkeep (SQLite's log checkpoints) only moves committed
        data between files. Benchmarks use it to charge the deferred work to the writes.
        """
        return True

    # ---------------------------------------------------------------- schema

    def _initialize(self) -> None:
        """Create the schema in a new store, migrate an older one, refuse a foreign one."""
        with self._lock:
            tables = self._table_names()
        if "meta" in tables:
            with self._lock:
                row = self._execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
            if row is not None and int(row[0]) == schema.CURRENT:
                return

        def create() -> None:
            tables = self._table_names()
            if "meta" not in tables:
                if {"atoms", "shapes"} <= tables:
                    raise StorageError(
                        f"{self.path!r} was written by the original mandala library (pymandala "
                        "0.2); copy it into a new store with `mandala migrate OLD.db NEW.db` "
                        "(see docs/migration.md) and open the new one"
                    )
                if tables:
                    raise StorageError(
                        f"{self.path!r} is a database but not a mandala store (it has the "
                        f"tables {sorted(tables)}); choose another location"
                    )
                for statement in self._ddl():
                    self._execute(statement)
                self._execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(schema.CURRENT),),
                )
                self._execute("INSERT INTO meta (key, value) VALUES ('created_by', 'pymandala')")
                return
            row = self._execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > schema.CURRENT or version < schema.OLDEST_READABLE:
                raise SchemaVersionError(
                    f"the store at {self.path!r} has schema version {version}, but this release "
                    f"of mandala reads versions {schema.OLDEST_READABLE} to {schema.CURRENT}; "
                    "upgrade mandala (pip install -U pymandala) to open it"
                )
            for target in range(version + 1, schema.CURRENT + 1):
                for statement in schema.migration(target, self.dialect):
                    self._execute(statement)
                self._execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(target),)
                )

        self._transaction(create)

    # ---------------------------------------------------------------- ops

    def _op_id(self, op_row: tuple) -> int:
        name, version = op_row[0], op_row[1]
        op_id = self._op_ids.get((name, version))
        if op_id is None:
            self._execute(
                "INSERT INTO ops (name, version, output_names, nout, ignore_args,"
                " is_structural) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                op_row,
            )
            op_id = self._execute(
                "SELECT op_id FROM ops WHERE name = ? AND version = ?", (name, version)
            ).fetchone()[0]
        return op_id

    def _op_name(self, op_id: int) -> tuple[str, int]:
        found = self._op_names.get(op_id)
        if found is None:
            self._load_ops()
            found = self._op_names[op_id]
        return found

    def _load_ops(self) -> None:
        with self._lock:
            rows = self._execute("SELECT op_id, name, version FROM ops").fetchall()
        for op_id, name, version in rows:
            self._op_ids[(name, version)] = op_id
            self._op_names[op_id] = (name, version)

    def load_ops(self) -> list[dict[str, Any]]:
        """Every op known to the store, as plain dicts (name, version, output_names, ...)."""
        with self._lock:
            rows = self._execute(
                "SELECT name, version, output_names, nout, ignore_args, is_structural FROM ops"
            ).fetchall()
        return [
            {
                "name": name,
                "version": version,
                "output_names": json.loads(output_names) if output_names else None,
                "nout": json.loads(nout),
                "ignore_args": json.loads(ignore_args),
                "is_structural": bool(is_structural),
            }
            for name, version, output_names, nout, ignore_args, is_structural in rows
        ]

    # ---------------------------------------------------------------- writes

    def write(self, batch: WriteBatch) -> None:
        """Write a batch in one transaction; calls already stored (by anyone) are skipped."""
        op_rows = {(row[0], row[1]): row for row in batch.ops}
        # Rows sorted by key land in B-tree pages in order, which makes inserts of random keys
        # cheaper than in arrival order.
        # A 5-column value row (the layout before checksums) is stored without one.
        values = sorted(row if len(row) == 6 else (*row, None) for row in batch.values)
        items = sorted(batch.items)
        calls = sorted(batch.calls, key=_first)
        edges_by_call: dict[bytes, list[tuple]] = {}
        for edge in batch.edges:
            edges_by_call.setdefault(edge[0], []).append(edge)

        def body() -> dict[tuple[str, int], int]:
            resolved = {key: self._op_id(row) for key, row in op_rows.items()}
            op_ids = {**self._op_ids, **resolved}
            if values:
                # A row whose checksum or inline bytes differ from those written now is replaced:
                # the stored bytes were damaged (or predate checksums) and were just recomputed.
                self._executemany(
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
                self._executemany(
                    "INSERT INTO ref_items (collection_key, position, item_key, element_key,"
                    " element_content_key, element_kind) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    items,
                )
            if calls:
                # Another writer may have stored some of these calls since they were looked up;
                # a call row and its edges are written together, so skipping it is enough.
                existing = self._existing_calls([c[0] for c in calls])
                new_calls = [c for c in calls if c[0] not in existing]
                next_id = self._execute("SELECT COALESCE(MAX(call_id), 0) FROM calls").fetchone()[0]
                call_rows = []
                edge_rows = []
                for offset, c in enumerate(new_calls, start=next_id + 1):
                    call_rows.append((offset, c[0], c[1], op_ids[(c[2], c[3])], *c[4:]))
                    for edge in edges_by_call.get(c[0], ()):
                        edge_rows.append((offset, *edge[1:]))
                self._executemany(
                    "INSERT INTO calls (call_id, history_key, content_key, op_id,"
                    " semantic_version, content_version, started_at, duration)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    call_rows,
                )
                self._executemany(
                    "INSERT INTO call_edges (call_id, direction, name, ref_key, content_key, kind)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    edge_rows,
                )
            if batch.versions:
                self._executemany(
                    "INSERT INTO versions (content_version, semantic_version, op_name, created_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    sorted(batch.versions),
                )
            if batch.version_support:
                self._executemany(
                    "INSERT INTO version_support (content_version, component_id, content_hash)"
                    " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    sorted(batch.version_support),
                )
            if batch.call_versions:
                self._executemany(
                    "INSERT INTO call_versions (pre_call_key, semantic_version, content_version)"
                    " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    sorted(batch.call_versions),
                )
            return resolved

        resolved = self._transaction(body)
        for key, op_id in resolved.items():  # cache only what the committed transaction made
            self._op_ids[key] = op_id
            self._op_names[op_id] = key

    def _rows_in(self, sql: str, keys: Iterable[Any], extra: Sequence[Any] = ()) -> Iterator[Any]:
        """Rows of ``sql`` for every key: ``sql`` has one ``IN ({marks})``, filled chunk by
        chunk (below every dialect's parameter limit); ``extra`` parameters follow the keys."""
        unique = list(dict.fromkeys(keys))
        for chunk in _chunks(unique):
            marks = ",".join("?" * len(chunk))
            yield from self._execute(sql.format(marks=marks), (*chunk, *extra))

    def _existing_calls(self, call_keys: Iterable[bytes]) -> set[bytes]:
        return {
            row[0]
            for row in self._rows_in(
                "SELECT history_key FROM calls WHERE history_key IN ({marks})", call_keys
            )
        }

    # ---------------------------------------------------------------- call lookups

    _OUTPUTS_BY_HISTORY = (
        "SELECT 0, e.name, e.ref_key, e.content_key, e.kind FROM calls c"
        " LEFT JOIN call_edges e ON e.call_id = c.call_id AND e.direction = 1"
        " WHERE c.history_key = ?"
    )

    def find_outputs(self, call_key: bytes) -> tuple[StoredOutput, ...] | None:
        """Outputs of the call with this history key, or None if there is no such call."""
        with self._lock:
            rows = self._execute(self._OUTPUTS_BY_HISTORY, (call_key,)).fetchall()
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
        with self._lock:
            row = self._execute(
                "SELECT history_key FROM calls WHERE content_key = ? LIMIT 1", (content_key,)
            ).fetchone()
        return row[0] if row else None

    def has_calls(self, call_keys: Sequence[bytes]) -> set[bytes]:
        """The subset of ``call_keys`` that are stored."""
        with self._lock:
            return self._existing_calls(list(call_keys))

    def load_calls(self, call_keys: Sequence[bytes]) -> list[StoredCall]:
        """Stored calls with their inputs and outputs, in the order of ``call_keys`` (missing
        keys are skipped)."""
        by_key = {call.history_key: call for call in self.load_calls_set(call_keys)}
        return [by_key[key] for key in call_keys if key in by_key]

    # ---------------------------------------------------------------- set-at-a-time reads

    def _fill_temp_keys(self, keys: Sequence[bytes]) -> None:
        """Put ``keys`` in the temp table ``lookup_keys`` (for joins instead of IN lists)."""
        self._execute(
            f"CREATE TEMP TABLE IF NOT EXISTS lookup_keys (key {self.blob_type} PRIMARY KEY)"
        )
        self._execute("DELETE FROM lookup_keys")
        self._executemany(
            "INSERT INTO lookup_keys (key) VALUES (?) ON CONFLICT DO NOTHING",
            [(k,) for k in sorted(set(keys))],
        )

    def _calls_from_query(self, head_sql: str, edge_sql: str, params: tuple) -> list[StoredCall]:
        """Assemble calls from two scans: one over call rows, one over their edges."""
        heads = self._execute(head_sql, params).fetchall()
        edges: dict[int, tuple[list[StoredOutput], list[StoredOutput]]] = {
            head[7]: ([], []) for head in heads
        }
        make_edge = StoredOutput._make
        for row in self._execute(edge_sql, params):
            lists = edges.get(row[0])
            if lists is not None:
                lists[row[1]].append(make_edge(row[2:]))
        op_names = {op_id: self._op_name(op_id) for op_id in {head[2] for head in heads}}
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

    _HEAD_COLUMNS = (
        "c.history_key, c.content_key, c.op_id, c.semantic_version, c.content_version,"
        " c.started_at, c.duration, c.call_id"
    )
    _EDGE_COLUMNS = "e.call_id, e.direction, e.name, e.ref_key, e.content_key, e.kind"

    def load_calls_of_op(self, name: str) -> list[StoredCall]:
        """Every stored call of the op ``name`` (all versions), with its edges: two scans."""
        with self._lock, self._one_snapshot():
            return self._calls_from_query(
                f"SELECT {self._HEAD_COLUMNS} FROM calls c JOIN ops o ON o.op_id = c.op_id"
                " WHERE o.name = ?",
                f"SELECT {self._EDGE_COLUMNS} FROM calls c JOIN ops o ON o.op_id = c.op_id"
                " JOIN call_edges e ON e.call_id = c.call_id WHERE o.name = ?",
                (name,),
            )

    def load_calls_touching(self, ref_keys: Sequence[bytes], direction: int) -> list[StoredCall]:
        """Calls that output (``direction`` 1) or take as input (0) any of ``ref_keys``."""
        with self._lock, self._one_snapshot():
            self._fill_temp_keys(list(ref_keys))
            self._empty_lookup_calls()
            self._execute(
                "INSERT INTO lookup_calls (id) SELECT DISTINCT e.call_id FROM call_edges e"
                " WHERE e.ref_key IN (SELECT key FROM lookup_keys) AND e.direction = ?"
                " ON CONFLICT DO NOTHING",
                (direction,),
            )
            # IN (SELECT ...) rather than a join: without statistics on the temp table, SQLite
            # would scan the whole edge table for a join.
            return self._calls_from_query(
                f"SELECT {self._HEAD_COLUMNS} FROM calls c"
                " WHERE c.call_id IN (SELECT id FROM lookup_calls)",
                f"SELECT {self._EDGE_COLUMNS} FROM call_edges e"
                " WHERE e.call_id IN (SELECT id FROM lookup_calls)",
                (),
            )

    def load_calls_set(self, call_keys: Sequence[bytes]) -> list[StoredCall]:
        """Calls by history key, for large sets (one join through a temp table)."""
        with self._lock, self._one_snapshot():
            self._fill_temp_keys(list(call_keys))
            # The edges through IN (SELECT ...): as a three-way join, SQLite (with no statistics
            # on the temp table) scanned the whole edge table.
            return self._calls_from_query(
                f"SELECT {self._HEAD_COLUMNS} FROM lookup_keys k"
                " JOIN calls c ON c.history_key = k.key",
                f"SELECT {self._EDGE_COLUMNS} FROM call_edges e WHERE e.call_id IN"
                " (SELECT c.call_id FROM lookup_keys k JOIN calls c ON c.history_key = k.key)",
                (),
            )

    # ---------------------------------------------------------------- bulk reads as rows

    def _empty_lookup_calls(self) -> None:
        """Make the temp table ``lookup_calls`` (call ids) exist and be empty."""
        self._execute("CREATE TEMP TABLE IF NOT EXISTS lookup_calls (id BIGINT PRIMARY KEY)")
        self._execute("DELETE FROM lookup_calls")

    def _fill_lookup_keys(self, keys: Sequence[bytes]) -> None:
        """Put ``keys`` in the temp table ``lookup_keys`` in one statement.

        ``executemany`` steps once per key (several microseconds each); here the keys travel as
        one parameter: a concatenation of 16-byte keys cut apart by a recursive CTE (SQLite), or
        an array (PostgreSQL). Other keys go through :meth:`_fill_temp_keys`.
        """
        keys = list(keys)
        blob = b"".join(keys)
        if self.dialect == "sqlite" and len(blob) == KEY_SIZE * len(keys):
            # sorted without repeats by numpy on the packed keys (sorting a million key objects
            # in Python takes seconds); sorted, the inserts append to the table's index. Imported
            # here: opening a store does not need numpy.
            import numpy as np

            # np.sort, then repeats dropped: np.unique of byte strings hashes them first and
            # takes several times longer
            packed = np.sort(np.frombuffer(blob, dtype=f"S{KEY_SIZE}"))
            if len(packed) > 1:
                packed = packed[np.concatenate(([True], packed[1:] != packed[:-1]))]
            self._execute(
                f"CREATE TEMP TABLE IF NOT EXISTS lookup_keys (key {self.blob_type} PRIMARY KEY)"
            )
            self._execute("DELETE FROM lookup_keys")
            if len(packed):
                self._execute(
                    "INSERT INTO lookup_keys (key) WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL"
                    " SELECT i + 1 FROM k WHERE i + 1 < ?) SELECT substr(?, i * ? + 1, ?) FROM k",
                    (len(packed), packed.tobytes(), KEY_SIZE, KEY_SIZE),
                )
        elif self.dialect == "postgresql":
            self._execute(
                f"CREATE TEMP TABLE IF NOT EXISTS lookup_keys (key {self.blob_type} PRIMARY KEY)"
            )
            self._execute("DELETE FROM lookup_keys")
            if keys:
                self._execute(
                    "INSERT INTO lookup_keys (key) SELECT DISTINCT unnest(CAST(? AS BYTEA[]))",
                    (list(set(keys)),),
                )
        else:
            self._fill_temp_keys(keys)

    _ROW_HEAD_COLUMNS = "c.call_id, c.history_key, c.op_id"

    def _columns(self, sql: str, params: tuple, kinds: Sequence[Column]) -> tuple[list[Any], ...]:
        """The result of ``sql`` as one list per column (of the given kinds), fetched a chunk
        of rows at a time: only one chunk of row tuples is alive at once (a million rows as
        tuples take hundreds of megabytes). Repeated strings (edge names) are interned. A
        dialect may read the columns in bulk instead."""
        columns: tuple[list[Any], ...] = tuple([] for _ in kinds)
        cursor = self._execute(sql, params)
        while True:
            chunk = cursor.fetchmany(_ROWS_PER_FETCH)
            if not chunk:
                return columns
            for column, values in zip(columns, zip(*chunk)):
                if values and isinstance(values[0], str):
                    column.extend(map(sys.intern, values))
                else:
                    column.extend(values)

    def _call_rows(self, head_sql: str, edge_sql: str, params: tuple) -> CallRows:
        heads = self._columns(head_sql, params, HEAD_COLUMNS)
        edges = (
            self._columns(edge_sql, params, EDGE_COLUMNS)
            if len(heads[0])
            else tuple([] for _ in EDGE_COLUMNS)
        )
        op_ids = heads[2]  # a list, or an array from a bulk read
        ops = {
            op_id: self._op_name(op_id)
            for op_id in set(op_ids.tolist() if hasattr(op_ids, "tolist") else op_ids)
        }
        return CallRows(heads, edges, ops)

    def load_call_details(self, call_ids: Sequence[int]) -> tuple[list[Any], ...]:
        """``(content_key, semantic_version, content_version, started_at, duration)`` columns
        of the calls with these store ids (of :meth:`load_call_rows_of_op` and the like),
        aligned with ``call_ids``.

        Raises:
            StorageError: a call is no longer stored (dropped since it was read).
        """
        with self._lock:
            self._empty_lookup_calls()
            if self.dialect == "postgresql":  # one parameter, not a round trip per id
                self._execute(
                    "INSERT INTO lookup_calls (id) SELECT DISTINCT unnest(CAST(? AS BIGINT[]))",
                    (list(call_ids),),
                )
            else:
                self._executemany(
                    "INSERT INTO lookup_calls (id) VALUES (?) ON CONFLICT DO NOTHING",
                    [(call_id,) for call_id in call_ids],
                )
            rows = self._execute(
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
            [] for _ in range(5)
        )

    def load_call_rows_of_op(self, name: str) -> CallRows:
        """Every stored call of the op ``name`` (all versions) as rows, unordered: two scans."""
        with self._lock, self._one_snapshot():
            return self._call_rows(
                f"SELECT {self._ROW_HEAD_COLUMNS} FROM calls c JOIN ops o ON o.op_id = c.op_id"
                " WHERE o.name = ?",
                f"SELECT {self._EDGE_COLUMNS} FROM calls c JOIN ops o ON o.op_id = c.op_id"
                " JOIN call_edges e ON e.call_id = c.call_id WHERE o.name = ?",
                (name,),
            )

    def load_call_rows_touching(self, ref_keys: Sequence[bytes], direction: int) -> CallRows:
        """Calls that output (``direction`` 1) or take as input (0) any of ``ref_keys``, as
        rows, unordered.

        The temp tables are joined through ``IN (SELECT ...)``: with plain joins SQLite (which
        has no statistics on them) scans the whole edge table instead of probing it by key.
        """
        with self._lock, self._one_snapshot():
            self._fill_lookup_keys(ref_keys)
            self._empty_lookup_calls()
            self._execute(
                "INSERT INTO lookup_calls (id) SELECT e.call_id FROM call_edges e"
                " WHERE e.ref_key IN (SELECT key FROM lookup_keys) AND e.direction = ?"
                " ON CONFLICT DO NOTHING",
                (direction,),
            )
            return self._call_rows(
                f"SELECT {self._ROW_HEAD_COLUMNS} FROM calls c"
                " WHERE c.call_id IN (SELECT id FROM lookup_calls)",
                f"SELECT {self._EDGE_COLUMNS} FROM call_edges e"
                " WHERE e.call_id IN (SELECT id FROM lookup_calls)",
                (),
            )

    def load_call_rows_set(self, call_keys: Sequence[bytes]) -> CallRows:
        """Calls by history key as rows, unordered (missing keys are skipped)."""
        with self._lock, self._one_snapshot():
            self._fill_lookup_keys(call_keys)
            return self._call_rows(
                f"SELECT {self._ROW_HEAD_COLUMNS} FROM calls c"
                " WHERE c.history_key IN (SELECT key FROM lookup_keys)",
                f"SELECT {self._EDGE_COLUMNS} FROM call_edges e WHERE e.call_id IN"
                " (SELECT c.call_id FROM calls c WHERE c.history_key IN (SELECT key FROM lookup_keys))",
                (),
            )

    def call_keys_of_op(self, name: str, version: int | None = None) -> list[bytes]:
        """History keys of every stored call of an op (all versions unless one is given)."""
        query = "SELECT c.history_key FROM calls c JOIN ops o ON o.op_id = c.op_id WHERE o.name = ?"
        params: tuple = (name,)
        if version is not None:
            query += " AND o.version = ?"
            params = (name, version)
        with self._lock:
            return [row[0] for row in self._execute(query, params)]

    def all_call_keys(self) -> list[bytes]:
        with self._lock:
            return [row[0] for row in self._execute("SELECT history_key FROM calls")]

    def _edge_calls(self, ref_keys: Sequence[bytes], direction: int) -> dict[bytes, list[bytes]]:
        found: dict[bytes, list[bytes]] = {}
        with self._lock:
            for ref_key, call_key in self._rows_in(
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

    # ---------------------------------------------------------------- refs and values

    def load_refs(self, history_keys: Sequence[bytes]) -> dict[bytes, tuple[bytes, int]]:
        """``history_key -> (content_key, kind)`` for the stored refs among ``history_keys``."""
        with self._lock:
            return {
                history_key: (content_key, kind)
                for history_key, content_key, kind in self._rows_in(
                    "SELECT ref_key, content_key, kind FROM call_edges WHERE ref_key IN ({marks})",
                    history_keys,
                )
            }

    def load_shapes(self, collection_keys: Sequence[bytes]) -> dict[bytes, list[ShapeItem]]:
        """Elements (one level deep) of stored collection refs, ordered by position."""
        found: dict[bytes, list[ShapeItem]] = {}
        with self._lock:
            for collection_key, position, item_key, element, content_key, kind in self._rows_in(
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
        if len(content_keys) >= _JOIN_AT:
            return self.load_values_set(content_keys)
        with self._lock:
            return {
                row[0]: StoredValue._make(row)
                for row in self._rows_in(
                    "SELECT content_key, format, size, data, blob_key, checksum FROM stored_values"
                    " WHERE content_key IN ({marks})",
                    content_keys,
                )
            }

    def prefetch_values(self, expected: int) -> Any:
        """Start reading values ahead of :meth:`decode_values` (a handle to pass it), or None:
        this dialect reads them when asked."""
        return None

    def decode_values(
        self,
        content_keys: np.ndarray,
        decode: Callable[..., Any],
        decode_inline_many: Callable[..., list[Any]] | None = None,
        prefetched: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The stored values of ``content_keys`` (a key array; repeats allowed), each as
        ``decode(content_key, format, data, blob_key, checksum)``: an object array aligned with
        the keys, and a boolean array of which keys are stored (the others are None).

        One join through a temp table, and rows fetched a chunk at a time, so that only one
        chunk of raw bytes is alive at once. ``decode_inline_many(format, keys, payloads,
        checksums)``, if given, may be used instead for values stored inline (a dialect that
        reads them in bulk does)."""
        import numpy as np

        from mandala.hashing.key_table import key_list

        keys = key_list(content_keys)
        found: dict[bytes, Any] = {}
        with self._lock:
            self._fill_lookup_keys(keys)
            cursor = self._execute(
                "SELECT v.content_key, v.format, v.data, v.blob_key, v.checksum"
                " FROM stored_values v WHERE v.content_key IN (SELECT key FROM lookup_keys)"
            )
            while chunk := cursor.fetchmany(_ROWS_PER_FETCH):
                for row in chunk:
                    found[bytes(row[0])] = decode(*row)
        present = np.fromiter(map(found.__contains__, keys), dtype=bool, count=len(keys))
        values = np.fromiter(map(found.get, keys), dtype=object, count=len(keys))
        return values, present

    def load_values_set(self, content_keys: Sequence[bytes]) -> dict[bytes, StoredValue]:
        """:meth:`load_values` for many keys: one join through a temp table, not one
        ``IN (...)`` query per 500 keys (a frame's table loads every value it shows)."""
        with self._lock:
            self._fill_lookup_keys(content_keys)
            return {
                row[0]: StoredValue._make(row)
                for row in self._execute(
                    "SELECT v.content_key, v.format, v.size, v.data, v.blob_key, v.checksum"
                    " FROM stored_values v WHERE v.content_key IN (SELECT key FROM lookup_keys)"
                )
            }

    def value_creators(self, content_keys: Sequence[bytes]) -> dict[bytes, list[bytes]]:
        """For each content key, the history keys of the calls that output a ref with it.

        A scan of ``call_edges`` (no index by content key: it would slow every fresh call), so
        for error messages and reports, not for hot paths.
        """
        found: dict[bytes, list[bytes]] = {}
        with self._lock:
            for content_key, call_key in self._rows_in(
                "SELECT DISTINCT e.content_key, c.history_key FROM call_edges e"
                " JOIN calls c ON c.call_id = e.call_id"
                " WHERE e.content_key IN ({marks}) AND e.direction = 1",
                content_keys,
            ):
                found.setdefault(content_key, []).append(call_key)
        return found

    def has_values(self, content_keys: Sequence[bytes]) -> set[bytes]:
        with self._lock:
            return {
                row[0]
                for row in self._rows_in(
                    "SELECT content_key FROM stored_values WHERE content_key IN ({marks})",
                    content_keys,
                )
            }

    # ---------------------------------------------------------------- deletion and upkeep

    def dependents(self, call_keys: Sequence[bytes]) -> set[bytes]:
        """The given calls plus every call that (transitively) consumes one of their outputs."""
        with self._lock:
            ids = self._call_ids(list(call_keys))
            result = set(ids)
            frontier = list(ids)
            while frontier:
                next_frontier: list[int] = []
                for (call_id,) in self._rows_in(
                    "SELECT DISTINCT c.call_id FROM call_edges o"
                    " JOIN call_edges c ON c.ref_key = o.ref_key AND c.direction = 0"
                    " WHERE o.call_id IN ({marks}) AND o.direction = 1",
                    frontier,
                ):
                    if call_id not in result:
                        result.add(call_id)
                        next_frontier.append(call_id)
                frontier = next_frontier
            return set(self._call_keys_of_ids(list(result)).values())

    def _call_ids(self, call_keys: Iterable[bytes]) -> list[int]:
        return [
            row[0]
            for row in self._rows_in(
                "SELECT call_id FROM calls WHERE history_key IN ({marks})", call_keys
            )
        ]

    def _call_keys_of_ids(self, ids: Iterable[int]) -> dict[int, bytes]:
        return dict(
            self._rows_in("SELECT call_id, history_key FROM calls WHERE call_id IN ({marks})", ids)
        )

    def delete_calls(self, call_keys: Sequence[bytes]) -> int:
        """Delete calls and their edges (values stay until ``unreferenced_values`` are deleted)."""
        keys = list(dict.fromkeys(call_keys))

        def body() -> int:
            ids = self._call_ids(keys)
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                self._execute(f"DELETE FROM call_edges WHERE call_id IN ({marks})", chunk)
                self._execute(f"DELETE FROM calls WHERE call_id IN ({marks})", chunk)
            return len(ids)

        return self._transaction(body)

    def orphan_refs(self) -> set[bytes]:
        """Collections whose element rows remain but that no call mentions any more."""
        with self._lock:
            rows = self._execute(
                "SELECT DISTINCT collection_key FROM ref_items WHERE collection_key NOT IN"
                " (SELECT ref_key FROM call_edges)"
            ).fetchall()
        return {row[0] for row in rows}

    def unreferenced_values(self) -> set[bytes]:
        """Values that no call edge and no collection element points to."""
        with self._lock:
            rows = self._execute(
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

        def body() -> list[str]:
            blobs: list[str] = []
            for chunk in _chunks(refs):
                marks = ",".join("?" * len(chunk))
                self._execute(f"DELETE FROM ref_items WHERE collection_key IN ({marks})", chunk)
            for chunk in _chunks(values):
                marks = ",".join("?" * len(chunk))
                blobs.extend(
                    row[0]
                    for row in self._execute(
                        f"SELECT blob_key FROM stored_values WHERE content_key IN ({marks})"
                        " AND blob_key IS NOT NULL",
                        chunk,
                    )
                )
                self._execute(f"DELETE FROM stored_values WHERE content_key IN ({marks})", chunk)
            return blobs

        return self._transaction(body)

    def blob_keys(self) -> set[str]:
        with self._lock:
            return {
                row[0]
                for row in self._execute(
                    "SELECT blob_key FROM stored_values WHERE blob_key IS NOT NULL"
                )
            }

    # ---------------------------------------------------------------- integrity and copying

    def values_page(self, after: bytes, limit: int) -> list[tuple]:
        """``(content_key, data, blob_key, checksum)`` of up to ``limit`` values whose content
        key sorts after ``after``, in key order (a full scan in bounded memory, page by page)."""
        with self._lock:
            return self._execute(
                "SELECT content_key, data, blob_key, checksum FROM stored_values"
                " WHERE content_key > ? ORDER BY content_key LIMIT ?",
                (after, limit),
            ).fetchall()

    def edges_without_values(self) -> list[tuple[bytes, int, str, bytes]]:
        """``(call_history_key, direction, name, content_key)`` of every atom edge whose value
        row is missing (pointer refs have no value row and are not listed)."""
        with self._lock:
            return self._execute(
                "SELECT c.history_key, e.direction, e.name, e.content_key FROM call_edges e"
                " JOIN calls c ON c.call_id = e.call_id WHERE e.kind = 0 AND NOT EXISTS"
                " (SELECT 1 FROM stored_values v WHERE v.content_key = e.content_key)"
            ).fetchall()

    def calls_without_edges(self) -> list[tuple[bytes, str, str]]:
        """``(history_key, op_name, nout_json)`` of every call that has no edge at all."""
        with self._lock:
            return self._execute(
                "SELECT c.history_key, o.name, o.nout FROM calls c JOIN ops o ON o.op_id = c.op_id"
                " WHERE NOT EXISTS (SELECT 1 FROM call_edges e WHERE e.call_id = c.call_id)"
            ).fetchall()

    def op_rows(self) -> list[tuple]:
        """Every op as a ``WriteBatch.ops`` row."""
        with self._lock:
            return self._execute(
                "SELECT name, version, output_names, nout, ignore_args, is_structural FROM ops"
            ).fetchall()

    def count_edges(self) -> int:
        with self._lock:
            return self._execute("SELECT count(*) FROM call_edges").fetchone()[0]

    def counts(self) -> StoreCounts:
        """Row counts (full scans: for reports, not for hot paths)."""
        with self._lock:
            return StoreCounts(
                calls=self._execute("SELECT count(*) FROM calls").fetchone()[0],
                refs=self._execute(
                    "SELECT count(*) FROM (SELECT DISTINCT ref_key FROM call_edges) AS refs"
                ).fetchone()[0],
                values=self._execute("SELECT count(*) FROM stored_values").fetchone()[0],
                ops=self._execute("SELECT count(*) FROM ops").fetchone()[0],
            )
