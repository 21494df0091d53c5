"""The core of a SQL store: connection, transactions, retries, snapshots, schema, temp-key tables.

A :class:`SqlCore` is what the repositories (``calls.py``, ``columns.py``, ``values.py``,
``upkeep.py``) and the sibling modules (``version_rows.py``, ``claims.py``) build on; its public
members are the protected API of the backend package: meant for code in ``mandala/backends``,
not for callers of a store (they hold a :class:`~mandala.backends.sql.SqlBackend`).

A dialect (``sqlite.py``, ``postgres.py``) subclasses it and supplies the connection, statement
execution, write and read transactions, what counts as a retryable error, the schema DDL, and
hooks where the SQL differs (:meth:`SqlCore.migration`, :meth:`SqlCore.fill_lookup_keys`,
:meth:`SqlCore.fill_lookup_calls`, :meth:`SqlCore.columns`). Statements are written with ``?``
placeholders; a dialect translates them if it must.

Writes: one transaction per batch (:meth:`SqlCore.transaction`), retried (rolled back first,
bounded, with backoff) only when the dialect says the error is contention.

Example:
    >>> from mandala.backends.sqlite import SqliteBackend
    >>> core = SqliteBackend(":memory:").core
    >>> with core.lock:
    ...     core.execute("SELECT count(*) FROM calls").fetchone()[0]
    0
"""

from __future__ import annotations

import errno
import logging
import random
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from mandala.backends import schema
from mandala.backends.records import Column, OpRow
from mandala.errors import SchemaVersionError, StorageError

__all__ = ["SqlCore", "chunks", "CHUNK", "ROWS_PER_FETCH"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_MAX_ATTEMPTS = 12
CHUNK = 500
"""Keys per ``IN (...)`` clause, below every dialect's parameter limit."""
ROWS_PER_FETCH = 50_000
"""Rows per ``fetchmany()`` of bulk reads."""


def chunks(keys: Sequence[_T], size: int = CHUNK) -> Iterable[Sequence[_T]]:
    """``keys`` cut in consecutive slices of at most ``size``."""
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_DISK_FULL_MESSAGES = (
    "database or disk is full",  # SQLite: SQLITE_FULL
    "disk i/o error",  # SQLite: a write refused by the OS (EFBIG, ENOSPC)
    "no space left on device",  # PostgreSQL: could not extend file ...
    "could not extend file",
)


def is_disk_full(error: BaseException) -> bool:
    """True if ``error`` says a write failed for lack of space (or a file size limit)."""
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
        return True
    text = str(error).lower()
    return any(message in text for message in _DISK_FULL_MESSAGES)


class SqlCore(ABC):
    """One connection to a SQL store, with the primitives every repository uses.

    Every statement runs under :attr:`lock` (one connection is shared by the threads of a
    Storage). Subclasses implement the abstract dialect hooks and call :meth:`initialize` once
    connected.

    Attributes:
        dialect: the dialect's name (``"sqlite"``, ``"postgresql"``), as in ``schema.py``.
        blob_type: the SQL type of byte strings.
        path: where the store is (a URL without its password for PostgreSQL).
        is_memory: whether the store lives only as long as this object.
        lock: held around every statement, and for a whole transaction or snapshot.
    """

    dialect = "sql"
    blob_type = "BLOB"
    path: str
    is_memory = False

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._op_ids: dict[tuple[str, int], int] = {}
        self._op_names: dict[int, tuple[str, int]] = {}

    # ---------------------------------------------------------------- dialect hooks

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns a cursor (iterable, with fetchone/fetchall/fetchmany)."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
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

    @abstractmethod
    def is_retryable(self, error: BaseException) -> bool:
        """Whether ``error`` means contention with another writer (then the write is retried)."""

    @abstractmethod
    def table_names(self) -> set[str]:
        """Names of the tables in the store's namespace."""

    @abstractmethod
    def ddl(self) -> list[str]:
        """The statements that create the current schema."""

    def migration(self, version: int) -> list[str]:
        """The statements that migrate the schema to ``version`` from the one before (a
        dialect hook: written in SQLite's spelling)."""
        return schema.migration(version)

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    @abstractmethod
    def vacuum(self) -> None:
        """Reclaim the space of deleted rows."""

    @abstractmethod
    def connection(self) -> Any:
        """The underlying connection (for ad-hoc SQL; do not write through it)."""

    def after_commit(self) -> None:
        """Upkeep after a committed write transaction (a dialect may schedule some); never
        raises, since the transaction is committed."""
        return None

    def wait_for_checkpoints(self, timeout: float | None = None) -> bool:  # noqa: ARG002 - overridden by dialects with upkeep
        """Wait until upkeep scheduled after commits is done; False on timeout.

        Writes never need this: that upkeep (SQLite's log checkpoints) only moves committed
        data between files. Benchmarks use it to charge the deferred work to the writes.
        """
        return True

    # ---------------------------------------------------------------- transactions

    def with_retry(self, action: Callable[[], _T]) -> _T:
        """Run ``action``, again (after a growing, jittered pause) while it fails with a
        retryable error, at most a bounded number of times."""
        delay = 0.005
        for attempt in range(_MAX_ATTEMPTS):
            try:
                return action()
            except Exception as error:
                if not self.is_retryable(error) or attempt == _MAX_ATTEMPTS - 1:
                    raise
                logger.debug("store busy (%s); retrying in %.3fs", error, delay)
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def transaction(self, body: Callable[[], _T]) -> _T:
        """Run ``body`` in one write transaction, retrying on contention (rolled back first)."""

        def attempt() -> _T:
            self._begin_write()
            try:
                result = body()
            except BaseException:
                self._end_write(commit=False)
                raise
            self._end_write(commit=True)
            return result

        with self.lock:
            try:
                result = self.with_retry(attempt)
            except Exception as error:
                if is_disk_full(error):
                    raise StorageError(
                        f"cannot write to the store {self.path!r}: the disk is full, failing, "
                        f"or a file size limit was reached ({error}). The transaction was rolled "
                        "back: nothing of it was stored and what was stored before is intact. "
                        "Free space, then run again (computed calls not committed are lost)."
                    ) from error
                raise
            self.after_commit()
            return result

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Run the statements inside on one state of the store.

        A read of many calls takes several statements (which calls, then their rows, then
        their edges); a writer committing in between would otherwise show calls without their
        edges, or edges of calls that were not read. Enter under :attr:`lock`."""
        if not self._begin_read():
            yield
            return
        try:
            yield
        finally:
            self._end_read()

    # ---------------------------------------------------------------- schema

    def initialize(self) -> None:
        """Create the schema in a new store, migrate an older one, refuse a foreign one."""
        with self.lock:
            tables = self.table_names()
        if "meta" in tables:
            with self.lock:
                row = self.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and int(row[0]) == schema.CURRENT:
                return

        def create() -> None:
            tables = self.table_names()
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
                for statement in self.ddl():
                    self.execute(statement)
                self.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(schema.CURRENT),),
                )
                self.execute("INSERT INTO meta (key, value) VALUES ('created_by', 'pymandala')")
                return
            row = self.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > schema.CURRENT or version < schema.OLDEST_READABLE:
                raise SchemaVersionError(
                    f"the store at {self.path!r} has schema version {version}, but this release "
                    f"of mandala reads versions {schema.OLDEST_READABLE} to {schema.CURRENT}; "
                    "upgrade mandala (pip install -U pymandala) to open it"
                )
            for target in range(version + 1, schema.CURRENT + 1):
                for statement in self.migration(target):
                    self.execute(statement)
                self.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(target),)
                )

        self.transaction(create)

    # ---------------------------------------------------------------- ops

    def op_id(self, op_row: OpRow) -> int:
        """The store's id of an op, inserting its row if it is new (inside a transaction; the
        id is remembered only by :meth:`remember_ops`, once that transaction committed)."""
        name, version = op_row.name, op_row.version
        op_id = self._op_ids.get((name, version))
        if op_id is None:
            self.execute(
                "INSERT INTO ops (name, version, output_names, nout, ignore_args,"
                " is_structural) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                op_row,
            )
            op_id = self.execute(
                "SELECT op_id FROM ops WHERE name = ? AND version = ?", (name, version)
            ).fetchone()[0]
        return op_id

    def known_op_ids(self) -> dict[tuple[str, int], int]:
        """The op ids remembered so far (a copy)."""
        return dict(self._op_ids)

    def remember_ops(self, op_ids: dict[tuple[str, int], int]) -> None:
        """Remember committed op ids (``(name, version) -> op_id``)."""
        for key, op_id in op_ids.items():
            self._op_ids[key] = op_id
            self._op_names[op_id] = key

    def op_name(self, op_id: int) -> tuple[str, int]:
        """``(name, version)`` of the op with this id (the ops table is read on a miss)."""
        found = self._op_names.get(op_id)
        if found is None:
            with self.lock:
                rows = self.execute("SELECT op_id, name, version FROM ops").fetchall()
            self.remember_ops({(name, version): op_id for op_id, name, version in rows})
            found = self._op_names[op_id]
        return found

    # ---------------------------------------------------------------- key lists and temp tables

    def rows_in(self, sql: str, keys: Iterable[Any], extra: Sequence[Any] = ()) -> Iterator[Any]:
        """Rows of ``sql`` for every key: ``sql`` has one ``IN ({marks})``, filled chunk by
        chunk (below every dialect's parameter limit); ``extra`` parameters follow the keys.
        Iterate under :attr:`lock`."""
        unique = list(dict.fromkeys(keys))
        for chunk in chunks(unique):
            marks = ",".join("?" * len(chunk))
            yield from self.execute(sql.format(marks=marks), (*chunk, *extra))

    def empty_lookup_keys(self) -> None:
        """Make the temp table ``lookup_keys`` (byte-string keys) exist and be empty."""
        self.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS lookup_keys (key {self.blob_type} PRIMARY KEY)"
        )
        self.execute("DELETE FROM lookup_keys")

    def fill_temp_keys(self, keys: Sequence[bytes]) -> None:
        """Put ``keys`` (of any length) in the temp table ``lookup_keys``, one row per key."""
        self.empty_lookup_keys()
        self.executemany(
            "INSERT INTO lookup_keys (key) VALUES (?) ON CONFLICT DO NOTHING",
            [(k,) for k in sorted(set(keys))],
        )

    def fill_lookup_keys(self, keys: Sequence[bytes]) -> None:
        """Put ``keys`` in the temp table ``lookup_keys``, for joins instead of ``IN`` lists.

        A dialect hook: ``executemany`` steps once per key (several microseconds each), and a
        dialect may send the keys as one parameter instead."""
        self.fill_temp_keys(list(keys))

    def empty_lookup_calls(self) -> None:
        """Make the temp table ``lookup_calls`` (call ids) exist and be empty."""
        self.execute("CREATE TEMP TABLE IF NOT EXISTS lookup_calls (id BIGINT PRIMARY KEY)")
        self.execute("DELETE FROM lookup_calls")

    def fill_lookup_calls(self, call_ids: Sequence[int]) -> None:
        """Put call ids in the temp table ``lookup_calls`` (a dialect hook, like
        :meth:`fill_lookup_keys`)."""
        self.empty_lookup_calls()
        self.executemany(
            "INSERT INTO lookup_calls (id) VALUES (?) ON CONFLICT DO NOTHING",
            [(call_id,) for call_id in call_ids],
        )

    # ---------------------------------------------------------------- bulk reads

    def columns(self, sql: str, params: tuple, kinds: Sequence[Column]) -> tuple[list[Any], ...]:
        """The result of ``sql`` as one list per column (of the given kinds), fetched a chunk
        of rows at a time: only one chunk of row tuples is alive at once (a million rows as
        tuples take hundreds of megabytes). Repeated strings (edge names) are interned.

        A dialect hook: a dialect may read the columns in bulk instead."""
        columns: tuple[list[Any], ...] = tuple([] for _ in kinds)
        cursor = self.execute(sql, params)
        while True:
            chunk = cursor.fetchmany(ROWS_PER_FETCH)
            if not chunk:
                return columns
            for column, values in zip(columns, zip(*chunk)):
                if values and isinstance(values[0], str):
                    column.extend(map(sys.intern, values))
                else:
                    column.extend(values)
