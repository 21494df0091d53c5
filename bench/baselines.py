"""What mandala is compared with: the simplest memoizers that do the same job.

- :class:`RawSqliteMemo`, the "raw sqlite floor": per call, pickle the op name and arguments,
  hash them (16-byte BLAKE3, as mandala does), look the key up in an indexed table, and on a miss
  run the function and keep the pickled result; :meth:`RawSqliteMemo.commit` inserts the new rows
  with one ``executemany`` in one transaction. Same SQLite settings as mandala (WAL,
  ``synchronous=NORMAL``). It stores no provenance, so it bounds what any SQLite-backed memoizer
  can do from Python.
- :class:`DictMemo`, the in-memory floor: the same key, looked up in a dict.
- joblib.Memory, numpy's ``np.save``/``np.load`` and ``joblib.hash`` are used as they are.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from blake3 import blake3

__all__ = ["RawSqliteMemo", "DictMemo", "joblib_memory", "np_save_synced"]

_PROTOCOL = pickle.HIGHEST_PROTOCOL


class RawSqliteMemo:
    """A plain sqlite3 memoizer of one function (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], func: Callable[..., Any]) -> None:
        self.func = func
        self.name = func.__name__
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS memo (key BLOB PRIMARY KEY, value BLOB NOT NULL)"
            " WITHOUT ROWID"
        )
        self.pending: dict[bytes, bytes] = {}

    def __call__(self, *args: Any) -> Any:
        key = blake3(pickle.dumps((self.name, args), _PROTOCOL)).digest(16)
        row = self.conn.execute("SELECT value FROM memo WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return pickle.loads(row[0])
        data = self.pending.get(key)
        if data is not None:
            return pickle.loads(data)
        value = self.func(*args)
        self.pending[key] = pickle.dumps(value, _PROTOCOL)
        return value

    def commit(self) -> None:
        if not self.pending:
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(
            "INSERT OR IGNORE INTO memo (key, value) VALUES (?, ?)", self.pending.items()
        )
        self.conn.execute("COMMIT")
        self.pending = {}

    def close(self) -> None:
        self.commit()
        self.conn.close()


class DictMemo:
    """The in-memory floor: pickled-and-hashed arguments looked up in a dict."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.name = func.__name__
        self.cache: dict[bytes, Any] = {}

    def __call__(self, *args: Any) -> Any:
        key = blake3(pickle.dumps((self.name, args), _PROTOCOL)).digest(16)
        found = self.cache.get(key)
        if found is None:
            found = self.cache[key] = self.func(*args)
        return found


def joblib_memory(location: Path) -> Any:
    import joblib

    return joblib.Memory(str(location), verbose=0)


def np_save_synced(path: Path, array: Any) -> None:
    """``np.save`` followed by fsync: mandala fsyncs its blob files, so the baseline does too."""
    import numpy as np

    with open(path, "wb") as file:
        np.save(file, array, allow_pickle=False)
        file.flush()
        os.fsync(file.fileno())
