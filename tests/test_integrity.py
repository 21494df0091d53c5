"""Checksums of stored values, ``Storage.verify()`` and the repair path (drop, rerun)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mandala.backends import schema
from mandala.errors import CorruptValueError, StorageError
from mandala.imports import MList, Storage, op
from tests.conftest import PersistentStore


def _sql(storage: Storage, sql: str, params: tuple = ()) -> list:
    """Ad-hoc SQL on the store behind ``storage`` (``?`` placeholders on every backend)."""
    cursor = storage.backend.core.execute(sql, params)
    return cursor.fetchall() if cursor.description else []


def _ops(runs: list):
    @op
    def square(x):
        runs.append(("square", x))
        return x * x

    @op
    def total(nums: MList[int]) -> int:
        runs.append(("total", len(nums)))
        return sum(nums)

    return square, total


def _creator_id(storage: Storage, ref) -> str:
    creator = storage.get_ref_creator(ref)
    assert creator is not None
    return creator.hid


def test_checksums_are_written_and_a_fresh_store_verifies_ok(storage: Storage) -> None:
    square, total = _ops([])
    with storage:
        total([square(i) for i in range(3)])
    rows = _sql(storage, "SELECT checksum FROM stored_values")
    assert rows and all(row[0] is not None and len(bytes(row[0])) == 16 for row in rows)
    report = storage.verify()
    assert report.ok, str(report)
    assert report.calls_checked == storage.cache_stats()["calls"]["stored"]
    assert report.values_checked == len(rows) and report.values_unverified == 0
    assert "ok" in str(report)


def test_corrupted_value_is_reported_and_never_returned(storage: Storage) -> None:
    runs: list = []
    square, total = _ops(runs)
    with storage:
        y = square(3)
        s = total([y, square(4)])
    call_id = _creator_id(storage, y)
    _sql(
        storage,
        "UPDATE stored_values SET data = ? WHERE content_key = ?",
        (b"garbage", bytes.fromhex(y.cid)),
    )

    report = storage.verify()
    assert not report.ok
    assert [v.content_id for v in report.corrupted_values] == [y.cid]
    assert report.corrupted_values[0].call_ids == (call_id,)
    assert y.cid in str(report) and call_id in str(report) and "drop_calls" in str(report)

    with pytest.raises(CorruptValueError) as info:
        storage.load_ref(y.hid)
    message = str(info.value)
    assert y.cid in message and call_id in message and "delete_dependents=True" in message
    assert isinstance(info.value, StorageError) and isinstance(info.value, RuntimeError)

    # the repair the message suggests: drop the producing calls (and dependents), rerun
    storage.drop_calls([call_id], delete_dependents=True)
    runs.clear()
    with storage:
        s2 = total([square(3), square(4)])
    assert ("square", 3) in runs and ("total", 2) in runs
    assert storage.unwrap(s2) == 25 and s2.hid == s.hid
    assert storage.unwrap(storage.load_ref(y.hid)) == 9
    assert storage.verify().ok


def test_dangling_rows_are_reported(storage: Storage) -> None:
    square, _ = _ops([])
    with storage:
        a = square(2)
        b = square(5)
    _sql(storage, "DELETE FROM stored_values WHERE content_key = ?", (bytes.fromhex(a.cid),))
    b_call = _creator_id(storage, b)
    _sql(
        storage,
        "DELETE FROM call_edges WHERE call_id IN (SELECT call_id FROM calls WHERE history_key = ?)",
        (bytes.fromhex(b_call),),
    )
    report = storage.verify()
    assert not report.ok
    assert [(e.direction, e.content_id) for e in report.edges_without_values] == [("output", a.cid)]
    assert report.calls_without_edges == (b_call,)
    assert "not stored" in str(report) and b_call in str(report)


def test_an_op_without_inputs_or_outputs_is_not_dangling(storage: Storage) -> None:
    @op(nout=0)
    def nothing():
        return ()

    with storage:
        nothing()
    assert storage.verify().ok


def _blob_key(storage: Storage, content_id: str) -> str:
    [(blob_key,)] = _sql(
        storage,
        "SELECT blob_key FROM stored_values WHERE content_key = ?",
        (bytes.fromhex(content_id),),
    )
    return blob_key


def _blob_store(persistent: PersistentStore, tmp_path: Path) -> Storage:
    return persistent.open(overflow_dir=tmp_path / "blobs", overflow_threshold_MB=0.0)


def test_missing_blob_file_is_reported_and_recomputed(
    persistent: PersistentStore, tmp_path: Path
) -> None:
    storage = _blob_store(persistent, tmp_path)
    runs: list = []
    square, _ = _ops(runs)
    with storage:
        y = square(7)
    blob_key = _blob_key(storage, y.cid)
    assert storage.verify().ok
    assert storage.verify().blob_files_checked == 2  # the input 7 and the output 49
    storage.session.blobs.path(blob_key).unlink()

    report = storage.verify()
    call_id = _creator_id(storage, y)
    assert [v.content_id for v in report.missing_blob_files] == [y.cid]
    assert report.missing_blob_files[0].call_ids == (call_id,)
    with pytest.raises(CorruptValueError, match="missing") as info:
        storage.load_ref(y.hid)
    assert call_id in str(info.value)

    storage.drop_calls([call_id], delete_dependents=True)
    with storage:
        y2 = square(7)
    assert runs == [("square", 7), ("square", 7)]
    assert storage.unwrap(y2) == 49
    assert storage.verify().ok


def test_corrupted_blob_file_is_reported(persistent: PersistentStore, tmp_path: Path) -> None:
    storage = _blob_store(persistent, tmp_path)
    square, _ = _ops([])
    with storage:
        y = square(8)
    blob_key = _blob_key(storage, y.cid)
    path = storage.session.blobs.path(blob_key)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    report = storage.verify()
    assert [v.content_id for v in report.corrupted_values] == [y.cid]
    call_id = _creator_id(storage, y)
    with pytest.raises(CorruptValueError, match="checksum") as info:
        storage.load_ref(y.hid)
    assert call_id in str(info.value) and str(path) in str(info.value)

    # repair: delete the damaged file, drop the calls, rerun
    path.unlink()
    storage.drop_calls([call_id], delete_dependents=True)
    with storage:
        y2 = square(8)
    assert storage.unwrap(y2) == 64
    assert storage.verify().ok


def test_orphan_blob_files_are_listed_but_harmless(
    persistent: PersistentStore, tmp_path: Path
) -> None:
    storage = _blob_store(persistent, tmp_path)
    square, _ = _ops([])
    with storage:
        square(1)
    storage.session.blobs.write("ab" * 16, lambda file: file.write(b"left over"))
    report = storage.verify()
    assert report.orphan_blob_files == ("ab" * 16,)
    assert report.ok and "belong to no value" in str(report)


def _make_version_1(location: str, storage: Storage) -> None:
    """Turn the store at ``location`` into what a schema-1 release wrote."""
    if storage.backend.dialect == "sqlite":
        storage.close()
        conn = sqlite3.connect(location)
        conn.execute("ALTER TABLE stored_values DROP COLUMN checksum")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
    else:
        _sql(storage, "ALTER TABLE stored_values DROP COLUMN checksum")
        _sql(storage, "UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        storage.close()


def test_a_version_1_store_is_migrated_and_its_values_load_unverified(
    persistent: PersistentStore,
) -> None:
    runs: list = []
    square, _ = _ops(runs)
    old = persistent.open()
    with old:
        y = square(6)
    _make_version_1(persistent.location, old)

    storage = persistent.open()
    assert _sql(storage, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(schema.CURRENT),)
    ]
    assert schema.CURRENT >= 2
    assert [row[0] for row in _sql(storage, "SELECT checksum FROM stored_values")] == [None] * 2
    assert storage.unwrap(storage.load_ref(y.hid)) == 36
    report = storage.verify()
    # values without a checksum are a fault: damage to them would go unseen
    assert not report.ok and report.values_unverified == 2
    assert len(report.values_without_checksum) == 2 and "add_checksums" in str(report)
    with storage:
        square(6)  # a memo hit
        square(9)
    assert runs == [("square", 6), ("square", 9)]
    assert storage.verify().values_unverified == 2  # only the new values have checksums
    assert storage.add_checksums() == 2
    report = storage.verify()
    assert report.ok and report.values_unverified == 0
    assert storage.add_checksums() == 0
    assert storage.unwrap(storage.load_ref(y.hid)) == 36
