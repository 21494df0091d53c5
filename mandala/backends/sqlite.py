"""The embedded store: one SQLite database (a file, or memory), opened once per Storage.

One connection serves every operation (opening a connection per query made the original library
slow). Files use WAL journaling, so readers never block the writer and a process killed mid-commit
leaves the last committed state intact. Writes run in ``BEGIN IMMEDIATE`` transactions, retried
when another process holds the write lock. The log is copied back into the database file by a
background thread (``checkpoint.py``), not by the commit that happens to fill it.
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mandala.backends import schema
from mandala.backends.checkpoint import WalCheckpointer
from mandala.backends.core import SqlCore
from mandala.backends.records import Column
from mandala.backends.sql import SqlBackend
from mandala.backends.sqlite_columns import (
    ValuePrefetch,
    by_format,
    read_columns,
    read_inline_values,
)
from mandala.backends.value_reader import ValueReader
from mandala.backends.values import ValueRepository
from mandala.errors import StorageError
from mandala.hashing.digest import KEY_SIZE

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SqliteBackend", "SqliteCore", "SqliteValues"]


class SqliteBackend(SqlBackend):
    """The SQL store in SQLite.

    Args:
        path: a file path, or ``":memory:"`` for a store that lives as long as this object.
        busy_timeout_s: how long one statement waits for another process's write lock before
            the transaction is retried.

    Raises:
        StorageError: ``path`` cannot be opened, or is not a mandala store.
    """

    core: SqliteCore

    def __init__(self, path: str, busy_timeout_s: float = 10.0) -> None:
        core = SqliteCore(path, busy_timeout_s)
        super().__init__(core, SqliteValues(core))


class SqliteCore(SqlCore):
    """The connection to one SQLite database (see :class:`SqliteBackend` for the arguments)."""

    dialect = "sqlite"
    blob_type = "BLOB"
    bulk_reads = False
    """Whether bulk reads aggregate columns in SQLite (see :meth:`columns`)."""

    def __init__(self, path: str, busy_timeout_s: float = 10.0) -> None:
        super().__init__()
        self.path = path
        self.is_memory = path == ":memory:" or path.startswith("file::memory:")
        self.absolute_path = path if self.is_memory else os.path.abspath(path)
        """The file as opened (a later change of directory does not move it)."""
        try:
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
        except sqlite3.OperationalError as error:
            raise StorageError(f"cannot open the SQLite store at {path!r}: {error}") from error
        try:
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA cache_size = -65536")  # 64 MiB page cache
            self._conn.execute("PRAGMA temp_store = MEMORY")
            self._checkpointer: WalCheckpointer | None = None
            if not self.is_memory:
                mode = self.with_retry(
                    lambda: self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
                )
                if mode is not None and str(mode[0]).lower() == "wal":
                    self._checkpointer = WalCheckpointer(path)
                    self._checkpointer.configure(self._conn)
            self.initialize()
            # bulk reads cut blobs out of text aggregates: bytes pass through unchanged only in
            # a UTF-8 database (SQLite's default; a UTF-16 one is read row by row)
            encoding = self._conn.execute("PRAGMA encoding").fetchone()[0]
            self.bulk_reads = encoding == "UTF-8"
        except sqlite3.DatabaseError as error:
            self._conn.close()
            raise StorageError(f"cannot open {path!r} as a mandala store: {error}") from error
        # Stops the checkpoint thread when this backend is closed, collected, or still open at
        # interpreter exit (the thread holds no reference to the backend).
        self._stop_checkpoints = weakref.finalize(
            self, self._checkpointer.stop if self._checkpointer else _nothing
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def columns(self, sql: str, params: tuple, kinds: Sequence[Column]) -> tuple[list[Any], ...]:
        """Bulk reads (frames) aggregate each column in SQLite (``sqlite_columns``): about ten
        times faster than fetching rows; row by row when the aggregates do not apply."""
        if self.bulk_reads:
            found = read_columns(self._conn, sql, params, kinds)
            if found is not None:
                return found
        return super().columns(sql, params, kinds)

    def fill_lookup_keys(self, keys: Sequence[bytes]) -> None:
        """The keys travel as one parameter, a concatenation of 16-byte keys cut apart by a
        recursive CTE (keys of other lengths go one row each)."""
        keys = list(keys)
        blob = b"".join(keys)
        if len(blob) != KEY_SIZE * len(keys):
            self.fill_temp_keys(keys)
            return
        # sorted without repeats by numpy on the packed keys (sorting a million key objects in
        # Python takes seconds); sorted, the inserts append to the table's index. Imported here:
        # opening a store does not need numpy.
        import numpy as np

        # np.sort, then repeats dropped: np.unique of byte strings hashes them first and takes
        # several times longer
        packed = np.sort(np.frombuffer(blob, dtype=f"S{KEY_SIZE}"))
        if len(packed) > 1:
            packed = packed[np.concatenate(([True], packed[1:] != packed[:-1]))]
        self.empty_lookup_keys()
        if len(packed):
            self.execute(
                "INSERT INTO lookup_keys (key) WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL"
                " SELECT i + 1 FROM k WHERE i + 1 < ?) SELECT substr(?, i * ? + 1, ?) FROM k",
                (len(packed), packed.tobytes(), KEY_SIZE, KEY_SIZE),
            )

    def scans_values(self, count: int) -> bool:
        """Whether reading ``count`` values scans the whole table (a quarter or more of it):
        cheaper than probing the table once per key."""
        with self.lock:
            stored = self.execute("SELECT count(*) FROM stored_values").fetchone()[0]
        return count * 4 >= stored

    def _begin_write(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def _end_write(self, commit: bool) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT" if commit else "ROLLBACK")

    def _begin_read(self) -> bool:
        if self._conn.in_transaction:
            return False
        # deferred: the snapshot is taken by the first read, and no write lock is taken on the
        # store (temp tables are a database of their own)
        self._conn.execute("BEGIN")
        return True

    def _end_read(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")

    def after_commit(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.after_commit(self._conn)

    def is_retryable(self, error: BaseException) -> bool:
        if not isinstance(error, sqlite3.OperationalError):
            return False
        message = str(error).lower()
        return "locked" in message or "busy" in message

    def table_names(self) -> set[str]:
        return {
            row[0]
            for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }

    def ddl(self) -> list[str]:
        return schema.SQLITE_DDL

    def close(self) -> None:
        with self.lock:
            # The checkpoint connection closes first, so that this one is the last: closing
            # the last connection checkpoints the log and deletes the -wal file.
            self._stop_checkpoints()
            self._conn.close()

    def vacuum(self) -> None:
        with self.lock:
            self.with_retry(lambda: self._conn.execute("VACUUM"))
            self.after_commit()

    def wait_for_checkpoints(self, timeout: float | None = None) -> bool:
        if self._checkpointer is None:
            return True
        return self._checkpointer.wait_idle(timeout)

    def connection(self) -> sqlite3.Connection:
        """The underlying connection (for ad-hoc SQL; do not write through it)."""
        return self._conn


class SqliteValues(ValueRepository):
    """Values read in bulk from SQLite (one aggregate per format), on a thread if asked."""

    core: SqliteCore

    def __init__(self, core: SqliteCore) -> None:
        super().__init__(core)

    def prefetch_values(self, expected: int) -> ValuePrefetch | None:
        """Start reading every stored value in bulk on a thread, if a read of about
        ``expected`` values will scan the whole table (see :meth:`decode_values`)."""
        core = self.core
        if not core.bulk_reads or core.is_memory or expected <= 0:
            return None
        if not core.scans_values(expected):
            return None
        return ValuePrefetch(core.absolute_path)

    def decode_values(
        self, content_keys: np.ndarray, reader: ValueReader, prefetched: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`ValueRepository.decode_values`, with the values read in bulk (one aggregate),
        matched to the keys asked for in numpy, and decoded together by format; values in blob
        files are read one by one.

        Asked for at least a quarter of the store's values, this scans the whole table and
        keeps what was asked for: cheaper than probing the table once per key. A scan started
        earlier (:meth:`prefetch_values`) is used if given."""
        core = self.core
        if not core.bulk_reads:
            return super().decode_values(content_keys, reader)
        from mandala.hashing.key_table import KeySequence, key_list, positions_in

        # a prefetch was started only for a read that scans (see prefetch_values): not counted again
        scan = prefetched is not None or core.scans_values(len(content_keys))
        stored = prefetched.result() if prefetched is not None else None
        if stored is None:
            with core.lock:
                if not scan:
                    core.fill_lookup_keys(key_list(content_keys))
                stored = read_inline_values(
                    core.connection(),
                    "1" if scan else "content_key IN (SELECT key FROM lookup_keys)",
                )
        if stored is None:
            return super().decode_values(content_keys, reader)
        import numpy as np

        rows = positions_in(stored.keys, content_keys)
        present = rows >= 0
        # each stored row is checked and decoded once, however often its key was asked for
        distinct, slot = np.unique(rows[present], return_inverse=True)
        by_row = np.empty(len(distinct), dtype=object)
        inline = stored.inline[distinct]
        for fmt, where in by_format(stored.formats, distinct, np.flatnonzero(inline)):
            taken = distinct[where]
            decoded = reader.decode_inline_many(
                fmt,
                KeySequence(stored.keys[taken]),
                stored.payloads(taken),
                stored.checksums_of(taken),
            )
            by_row[where] = np.fromiter(decoded, dtype=object, count=len(decoded))
        # values in blob files are read again, one row each: a row deleted since the bulk read
        # (or the prefetch) began is then not stored, and the caller hears of it
        read = np.ones(len(distinct), dtype=bool)
        in_blobs = np.flatnonzero(~inline)
        if len(in_blobs):
            read[in_blobs] = False
            position_of = dict(zip(key_list(stored.keys[distinct[in_blobs]]), in_blobs.tolist()))
            decode = reader.decode
            with core.lock:
                for row in core.rows_in(
                    "SELECT content_key, format, data, blob_key, checksum FROM stored_values"
                    " WHERE content_key IN ({marks})",
                    list(position_of),
                ):
                    position = position_of[row[0]]
                    by_row[position] = decode(*row)
                    read[position] = True
        slot = slot.reshape(-1)
        if not read.all():
            present[np.flatnonzero(present)[~read[slot]]] = False
            slot = slot[read[slot]]
        values = np.empty(len(content_keys), dtype=object)
        values[present] = by_row[slot]
        return values, present


def _nothing() -> None:
    return None
