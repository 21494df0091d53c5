"""Checkpoints of a SQLite file store's log by a background thread (``checkpoint.py``).

Real files throughout: the log passing the threshold is checkpointed by the thread (the database
file grows, the log is restarted and cut back), past the cap by the committer; close and garbage
collection stop the thread and leave no log; kill -9 in a stream of commits, two writing
processes, threads sharing a store and forked children lose nothing.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mandala.backends.checkpoint import THRESHOLD_BYTES, WalCheckpointer
from mandala.backends.records import DIRECTION_OUT, KIND_ATOM, OpRow, WriteBatch
from mandala.backends.sqlite import SqliteBackend
from mandala.imports import Storage, op
from mandala.model.calls import OpSpec
from tests.conftest import run_snippet
from tests.harness.kill import kill_9, spawn_python

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs fork and SIGKILL")

MB = 1024 * 1024
OP_ROW = OpRow.of(OpSpec("blob_op"))


def _key(*parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()


def _batch(tag: str, first: int, count: int, value_bytes: int) -> WriteBatch:
    """``count`` calls of one op, each with an output value of ``value_bytes`` inline bytes."""
    values, calls, edges = [], [], []
    for i in range(first, first + count):
        call_key, value_key = _key(tag, "call", i), _key(tag, "value", i)
        data = random.Random(i).randbytes(value_bytes)  # incompressible, distinct pages
        values.append((value_key, "raw", len(data), data, None, None))
        calls.append((call_key, _key(tag, "content", i), OP_ROW[0], OP_ROW[1], None, None, 1.0, 0))
        edges.append((call_key, DIRECTION_OUT, "output_0", value_key, value_key, KIND_ATOM))
    return WriteBatch(ops=[OP_ROW], values=values, calls=calls, edges=edges)


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("mandala-checkpoint")]


def _wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def file_backend(tmp_path: Path):
    backend = SqliteBackend(str(tmp_path / "c.db"))
    yield backend
    backend.close()


# ---------------------------------------------------------------------------- the thread


def test_no_thread_for_reads_small_commits_or_memory(tmp_path: Path) -> None:
    memory = SqliteBackend(":memory:")
    memory.write(_batch("m", 0, 20, 1 * MB))
    assert memory.core._checkpointer is None
    memory.close()
    backend = SqliteBackend(str(tmp_path / "small.db"))
    backend.upkeep.counts()
    backend.write(_batch("s", 0, 10, 1000))
    assert backend.core._checkpointer is not None and backend.core._checkpointer.thread is None
    assert backend.connection().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    backend.close()


def test_the_thread_checkpoints_a_log_past_the_threshold(file_backend: SqliteBackend) -> None:
    path = Path(file_backend.path)
    wal = Path(str(path) + "-wal")
    checkpointer = file_backend.core._checkpointer
    assert checkpointer is not None
    for block in range(12):  # 24 MB of values, 2 MB per commit
        file_backend.write(_batch("t", block * 4, 4, MB // 2))
    assert checkpointer.thread is not None and checkpointer.thread.is_alive()
    assert file_backend.wait_for_checkpoints(timeout=30)
    assert checkpointer.checkpoints >= 1 and checkpointer.caller_checkpoints == 0
    # Pages reach the database file only through a checkpoint (the connection's own automatic
    # checkpoint is off): the thread copied at least the log it was woken for.
    assert path.stat().st_size >= 0.9 * THRESHOLD_BYTES
    # One more commit of 20 MB, with no writer running during its checkpoint: the whole log is
    # copied, so the next commit restarts the log and cuts the file back to the threshold.
    file_backend.write(_batch("t", 100, 40, MB // 2))
    assert file_backend.wait_for_checkpoints(timeout=30)
    assert checkpointer.checkpoints >= 2
    assert path.stat().st_size >= 44 * MB
    file_backend.write(_batch("t", 1000, 1, 1000))
    assert wal.stat().st_size <= THRESHOLD_BYTES
    assert file_backend.upkeep.counts().calls == 12 * 4 + 40 + 1


def test_past_the_cap_the_committer_checkpoints(tmp_path: Path) -> None:
    """A reader pins the log, so no checkpoint can finish and the log grows: past the cap the
    committer checkpoints itself; once the reader is gone the log is restarted and cut back."""
    path = str(tmp_path / "cap.db")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x BLOB)")
    checkpointer = WalCheckpointer(path, threshold_bytes=256 * 1024, cap_bytes=1 * MB)
    checkpointer.configure(conn)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchall()  # a read transaction on this snapshot
    for i in range(40):  # 40 commits of 64 kB: 2.6 MB of log
        conn.execute("INSERT INTO t VALUES (?)", (random.Random(i).randbytes(64 * 1024),))
        checkpointer.after_commit(conn)
    assert checkpointer.caller_checkpoints > 0
    assert Path(path + "-wal").stat().st_size > 1 * MB  # pinned: nothing could be restarted
    reader.execute("COMMIT")
    reader.close()
    for _ in range(3):
        conn.execute("INSERT INTO t VALUES (?)", (b"x" * 100,))
        checkpointer.after_commit(conn)
    checkpointer.wait_idle(timeout=30)
    conn.execute("INSERT INTO t VALUES (?)", (b"y",))
    assert Path(path + "-wal").stat().st_size <= 1 * MB
    checkpointer.stop()
    conn.close()
    assert not os.path.exists(path + "-wal")


# ---------------------------------------------------------------------------- lifecycle


@op
def big(i):
    return random.Random(i).randbytes(400_000)  # inline (below the 1 MB blob threshold)


def test_close_stops_the_thread_and_leaves_a_store_another_process_reads(tmp_path: Path) -> None:
    location = str(tmp_path / "close.db")
    storage = Storage(location)
    for block in range(10):
        with storage:
            for i in range(block * 10, block * 10 + 10):
                big(i)
    checkpointer = storage.backend.core._checkpointer
    assert checkpointer is not None and checkpointer.thread is not None
    thread = checkpointer.thread
    storage.close()
    assert not thread.is_alive()
    assert not os.path.exists(location + "-wal")
    result = run_snippet(
        """
        import random, sys
        from mandala.imports import Storage, op
        @op
        def big(i):
            raise AssertionError("recomputed")
        storage = Storage(sys.argv[1])
        with storage:
            for i in range(100):
                assert storage.unwrap(big(i)) == random.Random(i).randbytes(400_000)
        print(storage.cache_stats()["calls"]["stored"], storage.verify().ok)
        """,
        location,
    )
    assert result.stdout.split() == ["100", "True"]


def test_a_collected_store_stops_its_thread(tmp_path: Path) -> None:
    location = str(tmp_path / "gc.db")

    def commit_and_drop() -> threading.Thread:
        storage = Storage(location)
        with storage:
            for i in range(50):
                big(i)
        checkpointer = storage.backend.core._checkpointer
        assert checkpointer is not None and checkpointer.thread is not None
        return checkpointer.thread

    thread = commit_and_drop()
    gc.collect()
    assert _wait_until(lambda: not thread.is_alive(), timeout=10)
    # The store's connection was the last one: closing it removed the log, as close() does.
    assert not os.path.exists(location + "-wal")
    storage = Storage(location)
    assert storage.cache_stats()["calls"]["stored"] == 50
    storage.close()


def test_a_script_that_never_closes_its_store_exits_promptly(tmp_path: Path) -> None:
    location = str(tmp_path / "script.db")
    started = time.monotonic()
    result = run_snippet(
        """
        import random, sys, threading
        from mandala.imports import Storage, op
        @op
        def big(i):
            return random.Random(i).randbytes(400_000)
        storage = Storage(sys.argv[1])
        with storage:
            for i in range(60):
                big(i)
        print(sum(t.name.startswith("mandala-checkpoint") for t in threading.enumerate()))
        """,
        location,
        timeout=30,
    )
    assert result.stdout.strip() == "1"  # the thread was running when the script ended
    assert time.monotonic() - started < 20
    storage = Storage(location)
    assert storage.cache_stats()["calls"]["stored"] == 60
    storage.close()


# ---------------------------------------------------------------------------- concurrency

WRITER = r"""
import random, sys
from mandala.imports import Storage, op

location, first, blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

@op
def big(i):
    return random.Random(i).randbytes(400_000)

storage = Storage(location)
checkpointer = storage.backend.core._checkpointer
for block in range(blocks):
    start = first + block * 5
    with storage:
        for i in range(start, start + 5):
            big(i)
    print("COMMITTED", start, checkpointer.checkpoints + checkpointer.caller_checkpoints,
          flush=True)
storage.close()
print("DONE", flush=True)
"""


def _spawn_writer(location: str, first: int, blocks: int, out: Path) -> subprocess.Popen[bytes]:
    return spawn_python(["-c", WRITER, location, str(first), str(blocks)], out)


def _committed(out: Path) -> list[tuple[int, int]]:
    """``(first call of the block, checkpoints so far)`` of every complete COMMITTED line."""
    lines = out.read_text().split("\n")[:-1]  # a killed writer may leave half a line
    return [
        (int(parts[1]), int(parts[2]))
        for parts in (line.split() for line in lines)
        if len(parts) == 3 and parts[0] == "COMMITTED"
    ]


def _stored_outputs(location: str) -> dict[int, bytes]:
    storage = Storage(location)
    assert storage.verify().ok
    found = {}
    for call in storage.mget_call(
        [key.hex() for key in storage.backend.calls.all_call_keys()], in_memory=True
    ):
        found[call.inputs["i"].obj] = call.outputs["output_0"].obj
    storage.close()
    return found


def test_kill_9_in_a_stream_of_commits_keeps_every_commit(tmp_path: Path) -> None:
    location = str(tmp_path / "kill.db")
    committed: list[int] = []
    first = 0
    for attempt in range(3):
        out = tmp_path / f"writer{attempt}.out"
        writer = _spawn_writer(location, first, 10_000, out)
        # Past the first background checkpoint (a 2 MB commit each; 16 MB threshold), then a
        # random moment: during a commit, a checkpoint, or both.
        target = 12 + attempt * 3
        assert _wait_until(
            lambda out=out, target=target: len(_committed(out)) >= target, timeout=60
        ), out.read_text()
        time.sleep(random.uniform(0, 0.3))
        kill_9(writer, timeout=30)
        assert writer.returncode == -signal.SIGKILL
        lines = _committed(out)
        assert max(checkpoints for _, checkpoints in lines) >= 1, "no checkpoint before the kill"
        committed += [start for start, _ in lines]
        first = max(committed) + 5 + 1000  # the next writer starts past any half-committed block
    found = _stored_outputs(location)
    for start in committed:
        for i in range(start, start + 5):
            assert found.get(i) == random.Random(i).randbytes(400_000), f"call {i} lost"


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    location = str(tmp_path / "two.db")
    Storage(location).close()
    outs = [tmp_path / "a.out", tmp_path / "b.out"]
    writers = [_spawn_writer(location, n * 100_000, 16, outs[n]) for n in range(2)]
    for writer, out in zip(writers, outs):
        assert writer.wait(timeout=120) == 0, out.read_text()
        assert out.read_text().split()[-1] == "DONE"
    found = _stored_outputs(location)
    expected = [n * 100_000 + i for n in range(2) for i in range(80)]
    assert sorted(found) == expected
    assert not os.path.exists(location + "-wal")


def test_threads_sharing_one_store(file_backend: SqliteBackend) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for block in range(6):
                file_backend.write(_batch(f"thread{n}", block * 2, 2, MB // 2))
                file_backend.upkeep.counts()
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert file_backend.wait_for_checkpoints(timeout=30)
    assert (
        file_backend.core._checkpointer is not None
        and file_backend.core._checkpointer.checkpoints >= 1
    )
    assert file_backend.upkeep.counts().calls == 4 * 6 * 2
    assert len(_checkpoint_threads()) >= 1


def _forked_child(path: str, parent_thread_id: int, result: multiprocessing.Queue) -> None:
    try:
        parent = _FORK_PARENT  # inherited through fork, with its checkpointer
        assert parent is not None and parent.core._checkpointer is not None
        assert parent.core._checkpointer.thread is None  # the parent's thread is not the child's
        child = SqliteBackend(path)
        for block in range(10):
            child.write(_batch("child", block * 4, 4, MB // 2))
        assert child.wait_for_checkpoints(timeout=30)
        assert child.core._checkpointer is not None and child.core._checkpointer.checkpoints >= 1
        thread = child.core._checkpointer.thread
        assert thread is not None and thread.native_id != parent_thread_id
        child.close()
        result.put("ok")
    except BaseException as error:  # noqa: BLE001 - sent to the parent
        result.put(repr(error))


_FORK_PARENT: SqliteBackend | None = None


def test_a_forked_child_starts_its_own_thread_and_the_parent_keeps_its_own(
    file_backend: SqliteBackend,
) -> None:
    global _FORK_PARENT
    for block in range(10):
        file_backend.write(_batch("parent", block * 4, 4, MB // 2))
    checkpointer = file_backend.core._checkpointer
    assert checkpointer is not None and checkpointer.thread is not None
    parent_thread = checkpointer.thread
    _FORK_PARENT = file_backend
    try:
        context = multiprocessing.get_context("fork")
        result: multiprocessing.Queue = context.Queue()
        child = context.Process(
            target=_forked_child, args=(file_backend.path, parent_thread.native_id, result)
        )
        child.start()
        child.join(timeout=120)
        assert child.exitcode == 0
        assert result.get(timeout=5) == "ok"
    finally:
        _FORK_PARENT = None
    before = checkpointer.checkpoints
    assert file_backend.wait_for_checkpoints(timeout=30)
    for block in range(10, 20):
        file_backend.write(_batch("parent", block * 4, 4, MB // 2))
    assert file_backend.wait_for_checkpoints(timeout=30)
    assert checkpointer.thread is parent_thread and parent_thread.is_alive()
    assert checkpointer.checkpoints > before
    assert file_backend.upkeep.counts().calls == 20 * 4 + 10 * 4
