"""The SQLite backend's write contract: one transaction per batch, idempotent, lock-tolerant."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from mandala.backends.records import DIRECTION_IN, DIRECTION_OUT, KIND_ATOM, OpRow, WriteBatch
from mandala.backends.sqlite import SqliteBackend
from mandala.model.calls import OpSpec

OP_ROW = OpRow.of(OpSpec("f"))


def _key(n: int) -> bytes:
    return bytes([n]) * 16


def _batch(call: int = 1, op_row: OpRow = OP_ROW) -> WriteBatch:
    x, y, call_key = _key(10 + call), _key(20 + call), _key(call)
    return WriteBatch(
        ops=[op_row],
        values=[(x, "pickle", 3, b"abc", None, None), (y, "pickle", 3, b"def", None, None)],
        calls=[(call_key, _key(99), op_row[0], op_row[1], None, None, 1.0, 0.1)],
        edges=[
            (call_key, DIRECTION_IN, "x", x, x, KIND_ATOM),
            (call_key, DIRECTION_OUT, "output_0", y, y, KIND_ATOM),
        ],
    )


@pytest.fixture(params=["memory", "file"])
def backend(request, tmp_path) -> SqliteBackend:
    path = ":memory:" if request.param == "memory" else str(tmp_path / "b.db")
    backend = SqliteBackend(path)
    yield backend
    backend.close()


def test_write_then_read_back(backend: SqliteBackend) -> None:
    backend.write(_batch())
    (call,) = backend.calls.load_calls([_key(1)])
    assert call.op_name == "f" and call.content_key == _key(99)
    assert [(o.name, o.history_key) for o in call.inputs] == [("x", _key(11))]
    assert [(o.name, o.history_key) for o in call.outputs] == [("output_0", _key(21))]
    assert backend.calls.find_call_by_content(_key(99)) == _key(1)
    assert [o.history_key for o in backend.calls.find_outputs(_key(1))] == [_key(21)]
    assert backend.calls.find_outputs(_key(2)) is None
    assert backend.calls.creators([_key(21)]) == {_key(21): [_key(1)]}
    assert backend.calls.consumers([_key(11)]) == {_key(11): [_key(1)]}
    assert backend.values.load_values([_key(11)])[_key(11)].data == b"abc"


def test_writes_are_idempotent(backend: SqliteBackend) -> None:
    backend.write(_batch())
    first = backend.upkeep.counts()
    backend.write(_batch())
    assert backend.upkeep.counts() == first
    assert (first.calls, first.refs, first.values, first.ops) == (1, 2, 2, 1)


def test_a_failing_batch_writes_nothing(backend: SqliteBackend) -> None:
    backend.write(_batch(1))
    broken = _batch(2)
    broken.calls.append((_key(3), _key(98), "unknown_op", 0, None, None, None, None))
    with pytest.raises(Exception):  # noqa: B017 - any error; what matters is atomicity
        backend.write(broken)
    counts = backend.upkeep.counts()
    assert (counts.calls, counts.refs, counts.values) == (1, 2, 2)
    assert backend.calls.load_calls([_key(2)]) == []


def test_dependents_and_orphans(backend: SqliteBackend) -> None:
    backend.write(_batch(1))
    # A second call consuming the first call's output.
    out_of_first = _key(21)
    second = WriteBatch(
        ops=[OP_ROW],
        values=[(_key(40), "pickle", 1, b"z", None, None)],
        calls=[(_key(5), _key(97), "f", 0, None, None, None, None)],
        edges=[
            (_key(5), DIRECTION_IN, "x", out_of_first, _key(21), KIND_ATOM),
            (_key(5), DIRECTION_OUT, "output_0", _key(40), _key(40), KIND_ATOM),
        ],
    )
    backend.write(second)
    assert backend.calls.dependents([_key(1)]) == {_key(1), _key(5)}
    assert backend.calls.dependents([_key(5)]) == {_key(5)}
    assert backend.calls.delete_calls([_key(5)]) == 1
    # refs live on the edges of the calls that mention them: the dropped call's output is gone,
    # and its value is now referenced by nothing
    assert backend.upkeep.orphan_refs() == set()
    assert backend.upkeep.unreferenced_values() == {_key(40)}


def test_write_waits_for_another_writer(tmp_path) -> None:
    path = str(tmp_path / "locked.db")
    backend = SqliteBackend(path, busy_timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO meta (key, value) VALUES ('lock-holder', '1')")
    released = threading.Event()

    def release():
        time.sleep(0.4)
        other.execute("COMMIT")
        released.set()

    thread = threading.Thread(target=release)
    thread.start()
    backend.write(_batch())  # retried until the lock is released
    thread.join()
    assert released.is_set()
    assert backend.upkeep.counts().calls == 1
    other.close()
    backend.close()
