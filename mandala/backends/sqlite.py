"""The embedded store: one SQLite database (a file, or memory), opened once per Storage.

One connection serves every operation (opening a connection per query made the original library
slow). Files use WAL journaling, so readers never block the writer and a process killed mid-commit
leaves the last committed state intact. Writes run in ``BEGIN IMMEDIATE`` transactions, retried
when another process holds the write lock. The log is copied back into the database file by a
background thread (``checkpoint.py``), not by the commit that happens to fill it.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Sequence
from typing import Any

from mandala.backends import schema
from mandala.backends.checkpoint import WalCheckpointer
from mandala.backends.sql import SqlBackend
from mandala.errors import StorageError

__all__ = ["SqliteBackend"]


class SqliteBackend(SqlBackend):
    """The SQL store in SQLite.

    Args:
        path: a file path, or ``":memory:"`` for a store that lives as long as this object.
        busy_timeout_s: how long one statement waits for another process's write lock before
            the transaction is retried.
    """

    dialect = "sqlite"
    blob_type = "BLOB"

    def __init__(self, path: str, busy_timeout_s: float = 10.0) -> None:
        super().__init__()
        self.path = path
        self.is_memory = path == ":memory:" or path.startswith("file::memory:")
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
                mode = self._with_retry(
                    lambda: self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
                )
                if mode is not None and str(mode[0]).lower() == "wal":
                    self._checkpointer = WalCheckpointer(path)
                    self._checkpointer.configure(self._conn)
            self._initialize()
        except sqlite3.DatabaseError as error:
            self._conn.close()
            raise StorageError(f"cannot open {path!r} as a mandala store: {error}") from error
        # Stops the checkpoint thread when this backend is closed, collected, or still open at
        # interpreter exit (the thread holds no reference to the backend).
        self._stop_checkpoints = weakref.finalize(
            self, self._checkpointer.stop if self._checkpointer else _nothing
        )

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql, params)

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def _begin_write(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def _end_write(self, commit: bool) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT" if commit else "ROLLBACK")

    def _after_commit(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.after_commit(self._conn)

    def _is_retryable(self, error: BaseException) -> bool:
        if not isinstance(error, sqlite3.OperationalError):
            return False
        message = str(error).lower()
        return "locked" in message or "busy" in message

    def _table_names(self) -> set[str]:
        return {
            row[0]
            for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }

    def _ddl(self) -> list[str]:
        return schema.SQLITE_DDL

    def close(self) -> None:
        with self._lock:
            # The checkpoint connection closes first, so that this one is the last: closing
            # the last connection checkpoints the log and deletes the -wal file.
            self._stop_checkpoints()
            self._conn.close()

    def vacuum(self) -> None:
        with self._lock:
            self._with_retry(lambda: self._conn.execute("VACUUM"))
            self._after_commit()

    def wait_for_checkpoints(self, timeout: float | None = None) -> bool:
        if self._checkpointer is None:
            return True
        return self._checkpointer.wait_idle(timeout)

    def connection(self) -> sqlite3.Connection:
        """The underlying connection (for ad-hoc SQL; do not write through it)."""
        return self._conn


def _nothing() -> None:
    return None
