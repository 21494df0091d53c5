"""The shared store: the same schema and behaviour as SQLite, in a PostgreSQL database.

``Storage(db_path="postgresql://user@host:port/dbname")`` selects it; any libpq connection string
works, and credentials may also come from the standard ``PG*`` environment variables, the
password file or a service file. psycopg (3) is imported only when such a store is opened.

Writers serialize on an advisory lock for the duration of a commit (call ids are assigned in order
inside it); readers are never blocked. Deadlocks and serialization failures are retried.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mandala.backends import schema
from mandala.backends.core import SqlCore
from mandala.backends.sql import SqlBackend
from mandala.errors import StorageError

__all__ = ["PostgresBackend", "PostgresCore", "is_postgres_url", "redact_url"]

_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization, deadlock, lock not available
_PLACEHOLDER = re.compile(r"\?")
_WRITER_LOCK = 0x6D616E64  # "mand": the advisory lock key of mandala writers


def is_postgres_url(path: str) -> bool:
    return path.startswith(("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """The URL without its password, for messages and reprs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class PostgresBackend(SqlBackend):
    """The SQL store in PostgreSQL (psycopg 3).

    Args:
        url: a libpq connection string (``postgresql://user@host:port/dbname``).

    Raises:
        StorageError: psycopg is missing, the server refuses, or the database is not a store.
    """

    core: PostgresCore

    def __init__(self, url: str) -> None:
        super().__init__(PostgresCore(url))


class PostgresCore(SqlCore):
    """The connection to one PostgreSQL database (see :class:`PostgresBackend`)."""

    dialect = "postgresql"
    blob_type = "BYTEA"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.path = redact_url(url)
        try:
            import psycopg
        except ImportError as error:
            raise StorageError(
                "a PostgreSQL store needs psycopg 3: pip install 'psycopg[binary]'"
            ) from error
        self._psycopg = psycopg
        try:
            self._conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as error:
            message = str(error).replace(url, self.path)
            raise StorageError(f"cannot connect to {self.path}: {message}") from None
        self._sql_cache: dict[str, str] = {}
        try:
            self.initialize()
        except psycopg.Error as error:
            self._conn.close()
            raise StorageError(f"cannot open {self.path} as a mandala store: {error}") from error

    def _sql(self, sql: str) -> str:
        translated = self._sql_cache.get(sql)
        if translated is None:
            translated = _PLACEHOLDER.sub("%s", sql)
            self._sql_cache[sql] = translated
        return translated

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._sql(sql), params or None)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._conn.cursor() as cursor:
                cursor.executemany(self._sql(sql), rows)

    def fill_lookup_keys(self, keys: Sequence[bytes]) -> None:
        """The keys travel as one parameter, an array, instead of one round trip per key."""
        keys = list(keys)
        self.empty_lookup_keys()
        if keys:
            self.execute(
                "INSERT INTO lookup_keys (key) SELECT DISTINCT unnest(CAST(? AS BYTEA[]))",
                (list(set(keys)),),
            )

    def fill_lookup_calls(self, call_ids: Sequence[int]) -> None:
        """The ids travel as one parameter, an array, instead of one round trip per id."""
        self.empty_lookup_calls()
        self.execute(
            "INSERT INTO lookup_calls (id) SELECT DISTINCT unnest(CAST(? AS BIGINT[]))",
            (list(call_ids),),
        )

    def _begin_write(self) -> None:
        self._conn.execute("BEGIN")
        # One writer at a time (per database) creates the schema and assigns call ids; reads go
        # on concurrently. An advisory lock works before the tables exist.
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITER_LOCK,))

    def _end_write(self, commit: bool) -> None:
        status = self._conn.info.transaction_status
        if status != self._psycopg.pq.TransactionStatus.IDLE:
            self._conn.execute("COMMIT" if commit else "ROLLBACK")

    def _begin_read(self) -> bool:
        if self._conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
            return False
        # REPEATABLE READ: every statement sees the snapshot taken by the first one
        self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        return True

    def _end_read(self) -> None:
        if self._conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
            self._conn.execute("COMMIT")

    def is_retryable(self, error: BaseException) -> bool:
        return getattr(error, "sqlstate", None) in _RETRYABLE_SQLSTATES

    def table_names(self) -> set[str]:
        rows = self._conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        return {row[0] for row in rows}

    def ddl(self) -> list[str]:
        return schema.POSTGRES_DDL

    def migration(self, version: int) -> list[str]:
        return schema.postgres_migration(version)

    def close(self) -> None:
        with self.lock:
            self._conn.close()

    def vacuum(self) -> None:
        with self.lock:
            self._conn.execute("VACUUM")

    def connection(self) -> Any:
        """The underlying psycopg connection (for ad-hoc SQL; do not write through it)."""
        return self._conn
