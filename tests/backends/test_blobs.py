"""Large values in content-addressed blob files (docs/compatibility.md §a.8; docs/design.md, Components)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mandala.backends.blobs import LocalBlobStore
from mandala.errors import CorruptValueError
from mandala.imports import Storage, op

MB = 1024 * 1024


def _files(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file())


def _big_array(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(300_000,))  # 2.4 MB of float64


def test_large_array_goes_to_a_blob_file_named_by_content_id(fresh_db_path) -> None:
    runs = []

    @op
    def make(seed):
        runs.append(seed)
        return _big_array(seed)

    storage = Storage(fresh_db_path, overflow_threshold_MB=1)
    with storage:
        r = make(0)
    root = Path(str(fresh_db_path) + ".blobs")
    assert storage.overflow_dir == str(root)
    files = _files(root)
    assert [f.name for f in files] == [r.cid]
    assert files[0].parent.name == r.cid[:2]
    assert files[0].stat().st_size >= 2_400_000
    row = (
        storage.conn()
        .execute(
            "SELECT data IS NULL, blob_key FROM stored_values WHERE content_key = ?",
            (bytes.fromhex(r.cid),),
        )
        .fetchone()
    )
    assert row == (1, r.cid)
    fresh = Storage(fresh_db_path, overflow_threshold_MB=1)
    with fresh:
        again = make(0)
    assert runs == [0]
    loaded = fresh.unwrap(again)
    assert isinstance(loaded, np.ndarray)
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, _big_array(0))


def test_small_values_stay_in_the_database(fresh_db_path) -> None:
    @op
    def make(n):
        return np.arange(n)

    storage = Storage(fresh_db_path, overflow_threshold_MB=1)
    with storage:
        r = make(10)
    assert _files(Path(str(fresh_db_path) + ".blobs")) == []
    assert storage.unwrap(r).tolist() == list(range(10))


def test_large_non_array_value_also_overflows(fresh_db_path) -> None:
    @op
    def make(n):
        return {"payload": b"x" * n, "n": n}

    storage = Storage(fresh_db_path, overflow_threshold_MB=0.5)
    with storage:
        r = make(MB)
    files = _files(Path(str(fresh_db_path) + ".blobs"))
    assert [f.name for f in files] == [r.cid]
    fresh = Storage(fresh_db_path, overflow_threshold_MB=0.5)
    assert fresh.unwrap(fresh.load_ref(r.hid, in_memory=False)) == {"payload": b"x" * MB, "n": MB}


def test_custom_overflow_dir(tmp_path) -> None:
    @op
    def make(seed):
        return _big_array(seed)

    blobs = tmp_path / "elsewhere"
    storage = Storage(tmp_path / "s.db", overflow_dir=blobs, overflow_threshold_MB=1)
    with storage:
        r = make(1)
    assert [f.name for f in _files(blobs)] == [r.cid]
    assert not Path(str(tmp_path / "s.db") + ".blobs").exists()
    fresh = Storage(tmp_path / "s.db", overflow_dir=blobs)
    np.testing.assert_array_equal(
        fresh.unwrap(fresh.load_ref(r.hid, in_memory=False)), _big_array(1)
    )


def test_same_array_is_stored_once(fresh_db_path) -> None:
    @op
    def first(seed):
        return _big_array(seed)

    @op
    def second(seed):
        return _big_array(seed)

    storage = Storage(fresh_db_path, overflow_threshold_MB=1)
    with storage:
        a = first(3)
        b = second(3)
    with storage:
        c = first(4)
    assert a.cid == b.cid
    files = _files(Path(str(fresh_db_path) + ".blobs"))
    assert sorted(f.name for f in files) == sorted([a.cid, c.cid])
    assert (
        storage.conn()
        .execute("SELECT count(*) FROM stored_values WHERE blob_key IS NOT NULL")
        .fetchone()[0]
        == 2
    )


def test_no_temporary_files_are_left_after_success(fresh_db_path) -> None:
    @op
    def make(seed):
        return _big_array(seed)

    storage = Storage(fresh_db_path, overflow_threshold_MB=1)
    with storage:
        for seed in range(3):
            make(seed)
    root = Path(str(fresh_db_path) + ".blobs")
    names = [f.name for f in _files(root)]
    assert len(names) == 3
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]


def test_missing_blob_file_gives_corrupt_value_error(fresh_db_path) -> None:
    @op
    def make(seed):
        return _big_array(seed)

    with Storage(fresh_db_path, overflow_threshold_MB=1):
        r = make(5)
    (path,) = _files(Path(str(fresh_db_path) + ".blobs"))
    path.unlink()
    fresh = Storage(fresh_db_path, overflow_threshold_MB=1)
    with fresh:
        lazy = make(5)
    with pytest.raises(CorruptValueError) as info:
        fresh.unwrap(lazy)
    message = str(info.value)
    assert r.cid in message
    assert "drop_calls" in message
    assert isinstance(info.value, RuntimeError)


def test_cleanup_refs_deletes_blob_files_of_dropped_values(fresh_db_path) -> None:
    @op
    def make(seed):
        return _big_array(seed)

    storage = Storage(fresh_db_path, overflow_threshold_MB=1)
    with storage:
        a = make(1)
        b = make(2)
    storage.drop_calls([storage.get_ref_creator(a)], delete_dependents=False)
    storage.cleanup_refs()
    assert [f.name for f in _files(Path(str(fresh_db_path) + ".blobs"))] == [b.cid]


def test_in_memory_store_keeps_large_values_in_memory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    @op
    def make(seed):
        return _big_array(seed)

    storage = Storage()
    with storage:
        make(0)
    with storage:
        r = make(0)
    assert storage.overflow_dir is None
    np.testing.assert_array_equal(storage.unwrap(r), _big_array(0))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the blob store itself


def test_blob_write_is_atomic_and_cleans_up_on_failure(tmp_path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    key = "ab" + "0" * 30

    def failing_writer(file):
        file.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.write(key, failing_writer)
    assert not store.exists(key)
    assert _files(tmp_path / "blobs") == []
    assert store.write(key, lambda f: f.write(b"data")) == 4
    assert store.write(key, lambda f: f.write(b"other")) is None  # content-addressed: kept
    with store.open(key) as f:
        assert f.read() == b"data"
    assert list(store.keys()) == [key]


def test_stale_temporaries_are_removed_by_vacuum(fresh_db_path) -> None:
    @op
    def make(seed):
        return _big_array(seed)

    storage = Storage(fresh_db_path, overflow_threshold_MB=1)
    with storage:
        r = make(0)
    root = Path(str(fresh_db_path) + ".blobs")
    stale = root / r.cid[:2] / f".{r.cid}.abc.tmp"
    stale.write_bytes(b"left by a killed writer")
    assert list(LocalBlobStore(root).keys()) == [r.cid]  # temporaries are not blobs
    storage.vacuum()
    assert not stale.exists()
    assert [f.name for f in _files(root)] == [r.cid]
    assert os.path.exists(root / r.cid[:2] / r.cid)
