"""WAL checkpoints of a SQLite file store, run by a background thread instead of the committer.

SQLite's automatic checkpoint runs inside the ``COMMIT`` that pushes the write-ahead log past
``wal_autocheckpoint`` pages: the caller pays for copying the log into the database file and for
its fsync. On a store of a million calls, where a commit of a few thousand fresh calls dirties
thousands of pages of random-key indexes, that was most of a fresh call's cost. SQLite's own
advice for applications that care about write latency (https://sqlite.org/wal.html, "Automatic
Checkpoint") is to turn the automatic checkpoint off and run checkpoints from another thread or
process with its own connection; :class:`WalCheckpointer` does that for one store:

- the store's connection runs with ``wal_autocheckpoint = 0`` and ``journal_size_limit`` set to
  the threshold, so the ``-wal`` file is cut back to the threshold whenever SQLite restarts the
  log from its beginning;
- after each commit the committer looks at the file's size (one ``stat``; past the threshold, also
  the log header, to tell a restarted log from a grown one). When the log holds
  :data:`THRESHOLD_BYTES` that no checkpoint was asked to copy yet, it wakes the thread, which
  runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection (a passive checkpoint never waits
  for, nor blocks, readers and writers, in this process or another);
- a passive checkpoint cannot finish while this process keeps appending, and SQLite restarts the
  log only after a finished one; so past :data:`CAP_BYTES` (a writer that never pauses, a thread
  that cannot keep up, readers that pin the log) the committer checkpoints itself, as SQLite's
  automatic checkpoint would, and the log stays bounded.

Measured (``python3 -m bench --only scaling``, a store of 1M trivial calls, blocks of 2000 fresh
calls): one block and its commit went from about 206 to 132 µs per call, the checkpoint (about
100 µs per call, mostly fsync) running on after the commit; six blocks back to back, checkpoints
included, from about 187 to 153 µs per call. A store of 1000 calls is unchanged.

Lifecycle: the thread starts at the first commit that needs it (a store that is only read never
starts one). :meth:`WalCheckpointer.stop` (``Storage.close``) wakes it, waits for it and closes its
connection, so the store's own connection is the last one and SQLite's checkpoint-on-close
leaves no ``-wal`` file, as before. The thread holds no reference to the store: a store garbage
collected without ``close()`` stops it through a ``weakref.finalize`` on the store (finalizers
also run at interpreter exit), and the thread is a daemon, so it never keeps a process alive.
Around ``fork()`` no checkpoint is in flight (SQLite's locks and mutexes are never copied
mid-operation), and a child starts with no thread and never touches the parent's checkpoint
connection.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref

__all__ = ["WalCheckpointer", "THRESHOLD_BYTES", "CAP_BYTES"]

logger = logging.getLogger(__name__)

THRESHOLD_BYTES = 16 * 1024 * 1024
"""Log bytes that no checkpoint was asked to copy yet past which the thread is woken (SQLite's
automatic checkpoint runs at 1000 pages, about 4 MB; 4, 16 and 64 MB measured the same)."""

CAP_BYTES = 128 * 1024 * 1024
"""Log size past which the committer checkpoints itself, so the log stays bounded."""

_live: weakref.WeakSet[WalCheckpointer] = weakref.WeakSet()
_held_for_fork: list[threading.Lock] = []
_abandoned: list[sqlite3.Connection] = []
"""Checkpoint connections a forked child inherited: kept, never used or closed there (closing a
copy of a connection that the parent still uses is what SQLite warns against)."""


class WalCheckpointer:
    """Background ``PASSIVE`` checkpoints of one SQLite file in WAL mode.

    It holds no reference to the store that owns it, so the owner can be garbage collected while
    the thread runs; the owner calls :meth:`stop` when closed or collected.

    Args:
        path: the database file.
        threshold_bytes: log size past which the thread checkpoints.
        cap_bytes: log size past which :meth:`after_commit` checkpoints in the caller.

    Usage, by the store: ``configure(conn)`` once on its connection, ``after_commit(conn)``
    after each ``COMMIT``, ``stop()`` before closing the connection.
    """

    def __init__(
        self,
        path: str,
        threshold_bytes: int = THRESHOLD_BYTES,
        cap_bytes: int = CAP_BYTES,
    ) -> None:
        # The file SQLite opened (it follows symbolic links), even if the process changes its
        # working directory before the thread opens it.
        self.path = os.path.realpath(path)
        self.wal_path = self.path + "-wal"
        self.threshold_bytes = threshold_bytes
        self.cap_bytes = max(cap_bytes, threshold_bytes)
        self.checkpoints = 0
        """Checkpoints run by the thread (for tests and benchmarks)."""
        self.caller_checkpoints = 0
        """Checkpoints the committer ran itself because the log was past the cap."""
        self._fresh_state()
        self._stopping = False
        _live.add(self)

    def _fresh_state(self) -> None:
        self._wake = threading.Condition(threading.Lock())
        self._running = threading.Lock()
        """Held while a checkpoint runs, by the thread or by a committer past the cap."""
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._wanted = False
        self._busy = False
        self._asked: tuple[bytes, int] | None = None
        """(log generation, log file size) when the thread was last asked to checkpoint."""

    def configure(self, conn: sqlite3.Connection) -> None:
        """Turn off the automatic checkpoint of ``conn`` (the store's connection)."""
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {int(self.threshold_bytes)}")

    def wal_bytes(self) -> int:
        """Size of the ``-wal`` file (0 when there is none)."""
        try:
            return os.stat(self.wal_path).st_size
        except OSError:
            return 0

    @property
    def thread(self) -> threading.Thread | None:
        """The checkpoint thread, once started."""
        return self._thread

    def _log_generation(self) -> bytes:
        """The log header's checkpoint sequence number and salts, which change whenever SQLite
        restarts the log from its beginning (https://sqlite.org/fileformat2.html#walformat).

        SQLite locks the ``-shm`` file, never the ``-wal`` file, so opening and closing a
        descriptor of it here cannot drop one of SQLite's POSIX locks.
        """
        try:
            fd = os.open(self.wal_path, os.O_RDONLY)
        except OSError:
            return b""
        try:
            return os.pread(fd, 12, 12)
        except OSError:
            return b""
        finally:
            os.close(fd)

    def after_commit(self, conn: sqlite3.Connection) -> None:
        """Called by the committer after each commit, on the store's connection ``conn``.

        Wakes the thread when the log holds ``threshold_bytes`` that no checkpoint was asked to
        copy yet; past ``cap_bytes``, checkpoints in the caller. Never raises: the commit it
        follows succeeded, whatever happens to the checkpoint.
        """
        size = self.wal_bytes()
        if size <= self.threshold_bytes or self._stopping:
            return
        if size > self.cap_bytes:
            # Backpressure: wait for the thread's checkpoint, then copy the rest ourselves. A
            # passive checkpoint running while this process appends to the log never finishes
            # it, and SQLite restarts the log only after a finished one: this is what keeps a
            # process that commits without pause from growing the log without end.
            with self._running:
                self.caller_checkpoints += 1
                _checkpoint(conn, "caller")
            self._asked = None
            return
        # While the log is not restarted its file only grows: what a checkpoint was already
        # asked to copy is the file's size then. (Checking the size alone would ask again after
        # every commit once an unfinished checkpoint left the file past the threshold.)
        generation = self._log_generation()
        asked = self._asked
        if asked is not None and asked[0] == generation and size - asked[1] <= self.threshold_bytes:
            return
        self._asked = (generation, size)
        with self._wake:
            self._wanted = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run,
                    name=f"mandala-checkpoint {os.path.basename(self.path)}",
                    daemon=True,
                )
                self._thread.start()
            self._wake.notify()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no checkpoint is wanted or running; False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: not (self._wanted or self._busy), timeout)

    def stop(self) -> None:
        """Stop the thread, wait for it (and so for its checkpoint), close its connection.

        Idempotent. Called from the thread itself (a garbage collection there), it does not wait.
        """
        with self._wake:
            self._stopping = True
            thread = self._thread
            self._wake.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        """The thread: a checkpoint per wake-up, until stopped."""
        try:
            with self._running:  # a fork now would leave the child a half-made connection
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._conn = conn
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as error:
            logger.warning("cannot open %r for checkpoints: %s", self.path, error)
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            with self._wake:
                self._wanted = False
                self._wake.notify_all()
            return
        wake, running = self._wake, self._running
        try:
            while True:
                with wake:
                    wake.wait_for(lambda: self._wanted or self._stopping)
                    if self._stopping:
                        return
                    self._wanted = False
                    self._busy = True
                try:
                    with running:
                        _checkpoint(conn, "background")
                        self.checkpoints += 1
                finally:
                    with wake:
                        self._busy = False
                        wake.notify_all()
        finally:
            with wake:
                self._wanted = False
                wake.notify_all()
            if self._conn is conn:  # not a copy a forked child inherited
                self._conn = None
                conn.close()

    # ---------------------------------------------------------------- fork

    def hold_for_fork(self) -> threading.Lock:
        """Wait for a checkpoint in flight and keep the next one from starting: returns the
        held lock, which the parent releases once the fork is done (see the fork hooks below)."""
        self._running.acquire()
        return self._running

    def reset_in_forked_child(self) -> None:
        """Start afresh in a forked child: no thread, and the inherited checkpoint connection
        kept but never used or closed here."""
        if self._conn is not None:
            _abandoned.append(self._conn)
        self._fresh_state()


def _checkpoint(conn: sqlite3.Connection, who: str) -> None:
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as error:  # e.g. a full disk: the next commit asks again
        logger.warning("checkpoint of the SQLite log (%s) failed: %s", who, error)


def _before_fork() -> None:
    # No checkpoint in flight while the process is copied: SQLite's mutexes and file locks are
    # then in a state a child can use.
    for checkpointer in list(_live):
        _held_for_fork.append(checkpointer.hold_for_fork())


def _after_fork_in_parent() -> None:
    while _held_for_fork:
        _held_for_fork.pop().release()


def _after_fork_in_child() -> None:
    _held_for_fork.clear()
    for checkpointer in list(_live):
        checkpointer.reset_in_forked_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
