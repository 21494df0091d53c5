"""``Storage.copy_to``: calls with their values, ops and collections, between any two stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from mandala.errors import CorruptValueError, ValueNotFoundError
from mandala.imports import MList, Storage, op
from tests.conftest import PersistentStore


def _pipeline(runs: list):
    @op
    def square(x):
        runs.append(("square", x))
        return x * x

    @op
    def total(nums: MList[int]) -> int:
        runs.append(("total", len(nums)))
        return sum(nums)

    @op
    def halve(x):
        runs.append(("halve", x))
        return x / 2

    return square, total, halve


def _run(storage: Storage, square, total, halve) -> tuple:
    with storage:
        s = total([square(i) for i in range(4)])
        h = halve(s)
        other = square(100)
    return s, h, other


def _stored_calls(storage: Storage) -> int:
    return storage.cache_stats()["calls"]["stored"]


def _check_all_hits(target: Storage) -> None:
    runs: list = []
    square, total, halve = _pipeline(runs)
    s, h, other = _run(target, square, total, halve)
    assert runs == []  # every call was a memo hit
    assert (target.unwrap(s), target.unwrap(h), target.unwrap(other)) == (14, 7.0, 10000)


def test_copy_everything_from_sqlite_into_each_backend(tmp_path: Path, storage: Storage) -> None:
    runs: list = []
    source = Storage(tmp_path / "laptop.db")
    _run(source, *_pipeline(runs))
    assert len(runs) == 7

    report = source.copy_to(storage)
    assert report.calls_copied == _stored_calls(source) and report.calls_skipped == 0
    assert _stored_calls(storage) == _stored_calls(source)
    assert storage.verify().ok
    _check_all_hits(storage)

    again = source.copy_to(storage)  # idempotent
    assert (again.calls_copied, again.calls_skipped, again.values_copied) == (
        0,
        _stored_calls(source),
        0,
    )
    assert _stored_calls(storage) == _stored_calls(source)


def test_copy_back_from_each_backend_into_sqlite(tmp_path: Path, storage: Storage) -> None:
    _run(storage, *_pipeline([]))
    target = Storage(tmp_path / "laptop.db")
    storage.copy_to(target)
    counts = target.cache_stats()
    target.close()

    reopened = Storage(tmp_path / "laptop.db")
    assert reopened.cache_stats()["values"]["stored"] == counts["values"]["stored"]
    _check_all_hits(reopened)
    assert reopened.copy_to(reopened).calls_copied == 0  # into itself: nothing to add


def test_copy_selected_calls_brings_their_dependencies(tmp_path: Path, storage: Storage) -> None:
    source = Storage(tmp_path / "laptop.db")
    square, total, halve = _pipeline([])
    s, h, other = _run(source, square, total, halve)
    final = source.get_ref_creator(h)
    assert final is not None

    source.copy_to(storage, calls=[final])
    # halve, total, the list it built and the four squares; not the unrelated square(100)
    assert storage.exists_call(final.hid)
    assert not storage.exists_call(source.get_ref_creator(other).hid)
    runs: list = []
    square, total, halve = _pipeline(runs)
    with storage:
        h2 = halve(total([square(i) for i in range(4)]))
        square(100)
    assert runs == [("square", 100)]
    assert storage.unwrap(h2) == 7.0

    source.copy_to(storage, calls=[final.hid])
    assert source.copy_to(storage).calls_copied == 0  # square(100) was computed in both


def test_copy_refuses_unknown_call_ids(storage: Storage) -> None:
    with pytest.raises(ValueNotFoundError, match="00" * 16):
        storage.copy_to(Storage(), calls=["00" * 16])


def test_blob_files_are_copied_or_inlined(tmp_path: Path, persistent: PersistentStore) -> None:
    source = Storage(tmp_path / "laptop.db", overflow_threshold_MB=0.0)
    _run(source, *_pipeline([]))
    assert source.verify().blob_files_checked > 0

    with_blobs = persistent.open(overflow_dir=tmp_path / "team_blobs", overflow_threshold_MB=0.0)
    report = source.copy_to(with_blobs)
    assert report.blob_files_copied == source.verify().blob_files_checked
    assert with_blobs.verify().blob_files_checked == report.blob_files_copied
    assert with_blobs.verify().ok
    _check_all_hits(with_blobs)

    inline = Storage()  # no blob folder: the values go into the database
    assert source.copy_to(inline).blob_files_copied == 0
    assert inline.verify().ok and inline.verify().blob_files_checked == 0
    _check_all_hits(inline)


def test_a_corrupt_value_is_not_copied(tmp_path: Path, storage: Storage) -> None:
    source = Storage(tmp_path / "laptop.db")
    square, total, halve = _pipeline([])
    _, h, _ = _run(source, square, total, halve)
    source.backend.core.execute(
        "UPDATE stored_values SET data = ? WHERE content_key = ?", (b"bad", bytes.fromhex(h.cid))
    )
    with pytest.raises(CorruptValueError, match=h.cid):
        source.copy_to(storage)
    assert not storage.exists_call(source.get_ref_creator(h).hid)
