"""Storage upkeep and the store file: caches, ``vacuum``, ``cache_info``, schema version, WAL.

Also the documented-but-unavailable features (``cf``, versioning) and their errors.
"""

from __future__ import annotations

import os
import sqlite3

import pytest

from mandala.backends import schema
from mandala.errors import SchemaVersionError, UncommittedChangesError
from mandala.imports import Storage, op


def _inc(runs):
    @op
    def inc(x):
        runs.append(x)
        return x + 1

    return inc


# ------------------------------------------------------------------ caches


def test_clear_cache_refuses_with_uncommitted_changes(storage: Storage) -> None:
    runs: list = []
    inc = _inc(runs)
    with storage:
        inc(1)
        with pytest.raises(UncommittedChangesError) as info:
            storage.clear_cache()
        assert isinstance(info.value, ValueError)
        assert "allow_uncommitted" in str(info.value)
        assert storage.cache_stats()["calls"]["pending"] == 1  # nothing was lost


def test_clear_cache_after_commit_keeps_stored_calls(persistent) -> None:
    runs: list = []
    inc = _inc(runs)
    storage = persistent.open()
    with storage:
        inc(1)
    storage.clear_cache()
    assert storage.cache_stats()["calls"]["cached"] == 0
    with storage:
        r = inc(1)
    assert runs == [1]
    assert storage.unwrap(r) == 2


def test_clear_cache_after_unwrap_is_allowed(persistent) -> None:
    """Unwrapping does not make the cache dirty (docs/compatibility.md bug g.1-21 is not copied)."""
    runs: list = []
    inc = _inc(runs)
    with persistent.open():
        inc(1)
    storage = persistent.open()
    with storage:
        r = inc(1)
    assert storage.unwrap(r) == 2
    storage.clear_cache()


def test_clear_cache_allow_uncommitted_discards_pending(storage: Storage) -> None:
    runs: list = []
    inc = _inc(runs)
    with storage:
        inc(1)
        storage.clear_cache(allow_uncommitted=True)
        assert storage.cache_stats()["calls"]["pending"] == 0
    assert storage.cache_stats()["calls"]["stored"] == 0
    with storage:
        inc(1)
    assert runs == [1, 1]


def test_preload_fills_the_call_cache(persistent) -> None:
    runs: list = []
    inc = _inc(runs)
    with persistent.open():
        for x in range(5):
            inc(x)
    storage = persistent.open()
    assert storage.cache_stats()["calls"]["cached"] == 0
    storage.preload()
    assert storage.cache_stats()["calls"]["cached"] == 5
    storage.preload(lazy=False)
    with storage:
        refs = [inc(x) for x in range(5)]
    assert runs == [0, 1, 2, 3, 4]
    assert storage.unwrap(refs) == [1, 2, 3, 4, 5]


def test_cache_info_prints_the_counts(storage: Storage, capsys) -> None:
    runs: list = []
    inc = _inc(runs)
    with storage:
        inc(1)
        inc(2)
    assert storage.cache_info() is None
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    table = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert lines[0].split() == ["kind", "cached", "pending", "stored"]
    assert table["calls"] == ["2", "0", "2"]
    assert table["refs"][-1] == "4"  # inputs 1, 2 and outputs 2, 3
    assert table["values"][-1] == "3"  # values 1, 2, 3
    assert table["ops"][-1] == "1"


def test_cache_stats_counts_pending_work(storage: Storage) -> None:
    runs: list = []
    inc = _inc(runs)
    with storage:
        inc(1)
        stats = storage.cache_stats()
        assert stats["calls"] == {"cached": 1, "pending": 1, "stored": 0}
        assert stats["values"]["pending"] == 2
        assert stats["refs"]["pending"] == 2
    assert storage.cache_stats()["calls"] == {"cached": 1, "pending": 0, "stored": 1}


def test_repr_names_the_store_and_counts(storage: Storage) -> None:
    runs: list = []
    inc = _inc(runs)
    with storage:
        inc(1)
    text = repr(storage)
    assert text.startswith("Storage(db_path=")
    assert "1 calls" in text


# ------------------------------------------------------------------ the store file


def test_file_store_persists_across_storage_objects(persistent) -> None:
    runs: list = []
    inc = _inc(runs)
    with persistent.open():
        inc(1)
    for _ in range(2):
        storage = persistent.open()
        with storage:
            r = inc(1)
        assert storage.unwrap(r) == 2
    assert runs == [1]


def test_file_store_persists_across_processes(fresh_db_path, snippet) -> None:
    code = """
    import sys
    from mandala.imports import Storage, op
    runs = []

    @op
    def inc(x):
        runs.append(x)
        return x + 1

    storage = Storage(sys.argv[1])
    with storage:
        r = inc(int(sys.argv[2]))
    print(len(runs), storage.unwrap(r))
    """
    assert snippet(code, str(fresh_db_path), "1").stdout.split() == ["1", "2"]
    assert snippet(code, str(fresh_db_path), "1").stdout.split() == ["0", "2"]
    assert snippet(code, str(fresh_db_path), "5").stdout.split() == ["1", "6"]
    runs: list = []
    inc = _inc(runs)
    storage = Storage(fresh_db_path)
    with storage:
        r = inc(5)
    assert runs == [] and storage.unwrap(r) == 6


def test_file_store_uses_wal(fresh_db_path) -> None:
    runs: list = []
    inc = _inc(runs)
    storage = Storage(fresh_db_path)
    with storage:
        inc(1)
    with sqlite3.connect(fresh_db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


def test_store_file_records_its_schema_version(fresh_db_path) -> None:
    Storage(fresh_db_path).close()
    with sqlite3.connect(fresh_db_path) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["schema_version"] == str(schema.CURRENT)
    tables = {
        row[0]
        for row in sqlite3.connect(fresh_db_path).execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert {"meta", "ops", "calls", "call_edges", "ref_items", "stored_values"} <= tables


def test_reopening_a_store_of_this_release(fresh_db_path) -> None:
    runs: list = []
    inc = _inc(runs)
    first = Storage(fresh_db_path)
    with first:
        a = inc(1)
    first.close()
    again = Storage(fresh_db_path)
    with again:
        b = inc(1)
    assert b.hid == a.hid and runs == [1]


def test_newer_schema_version_is_refused_with_an_upgrade_hint(fresh_db_path) -> None:
    Storage(fresh_db_path).close()
    with sqlite3.connect(fresh_db_path) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError) as info:
        Storage(fresh_db_path)
    message = str(info.value)
    assert "999" in message
    assert "upgrade" in message.lower()
    assert isinstance(info.value, RuntimeError)


def test_missing_directory_is_a_clear_error(tmp_path) -> None:
    from mandala.errors import StorageError

    with pytest.raises(StorageError):
        Storage(tmp_path / "does" / "not" / "exist.db")


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path) -> None:
    from mandala.errors import StorageError

    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 10)
    with pytest.raises(StorageError) as info:
        Storage(path)
    assert str(path) in str(info.value)


def test_a_store_of_the_original_library_is_refused_clearly(tmp_path) -> None:
    """A pymandala 0.2.0a0 file (its own ``calls``/``ops`` tables) must not be half-used."""
    from mandala.errors import StorageError

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE atoms (key TEXT PRIMARY KEY, value BLOB)")
        conn.execute("CREATE TABLE shapes (key TEXT PRIMARY KEY, value BLOB)")
        conn.execute("CREATE TABLE ops (key TEXT PRIMARY KEY, value BLOB)")
        conn.execute(
            "CREATE TABLE calls (call_history_id TEXT, name TEXT, direction TEXT,"
            " call_content_id TEXT, ref_content_id TEXT, ref_history_id TEXT, op TEXT,"
            " semantic_version TEXT, content_version TEXT, PRIMARY KEY (call_history_id, name))"
        )
    with pytest.raises(StorageError) as info:
        storage = Storage(path)
        with storage:
            op(lambda x: x)(1)
    assert str(path) in str(info.value)
    assert "mandala migrate" in str(info.value)


def test_vacuum_reclaims_space(fresh_db_path) -> None:
    @op
    def blob(i):
        return bytes([i % 256]) * 200_000  # below the default overflow threshold

    storage = Storage(fresh_db_path)
    with storage:
        refs = [blob(i) for i in range(20)]
    storage.drop_calls([storage.get_ref_creator(r) for r in refs[1:]], delete_dependents=False)
    storage.cleanup_refs()
    storage.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = os.path.getsize(fresh_db_path)
    storage.vacuum()
    storage.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after = os.path.getsize(fresh_db_path)
    assert after < before / 4
    assert storage.unwrap(storage.load_ref(refs[0].hid, in_memory=False)) == bytes([0]) * 200_000


def test_storage_call_then_close_commits(fresh_db_path) -> None:
    runs: list = []
    inc = _inc(runs)
    storage = Storage(fresh_db_path)
    r = storage.call(inc, (1,), {})  # what op(...) does inside a block
    assert storage.unwrap(r) == 2
    assert storage.cache_stats()["calls"]["pending"] == 1
    storage.close()
    assert Storage(fresh_db_path).cache_stats()["calls"]["stored"] == 1


def test_conn_reads_the_store(fresh_db_path) -> None:
    runs: list = []
    inc = _inc(runs)
    storage = Storage(fresh_db_path)
    with storage:
        inc(1)
        inc(2)
    assert storage.conn().execute("SELECT count(*) FROM calls").fetchone()[0] == 2


# ------------------------------------------------------------------ unavailable features


def test_cf_rejects_what_it_cannot_build_a_frame_from(storage: Storage) -> None:
    with pytest.raises(TypeError):
        storage.cf(42)
    with pytest.raises(ValueError, match="Invalid input to `cf`"):
        storage.cf([1, 2])
    with pytest.raises(ValueError, match="Invalid input to `cf`"):
        storage.cf({"v": [1]})


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("versions", ("f",)),
        ("code", ("abc",)),
        ("diff", ("a", "b")),
        ("source_history", ("f",)),
        ("sync_component", ("f", True)),
        ("drop_version", ("v",)),
        ("get_code", ("abc",)),
        ("get_versioner", ()),
        ("guess_code_state", ()),
        ("sync_code", ()),
    ],
)
def test_versioning_methods_on_an_unversioned_storage(storage: Storage, method, args) -> None:
    with pytest.raises(ValueError, match="This storage is not versioned."):
        getattr(storage, method)(*args)
    assert storage.versioned is False


def test_a_missing_deps_path_raises_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="deps_path .* does not exist"):
        Storage(deps_path=tmp_path / "nowhere")


def test_negative_overflow_threshold_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="overflow_threshold_MB"):
        Storage(tmp_path / "s.db", overflow_threshold_MB=-1)


def test_in_memory_storages_are_independent() -> None:
    runs: list = []
    inc = _inc(runs)
    first, second = Storage(), Storage()
    with first:
        inc(1)
    with second:
        inc(1)
    assert runs == [1, 1]
    assert first.cache_stats()["calls"]["stored"] == 1
    assert second.cache_stats()["calls"]["stored"] == 1


def test_the_originals_cache_views_clear_only_when_committed(storage: Storage) -> None:
    """The original's ``storage.atoms.clear()`` (its test_clear_uncommitted): refused while
    calls are uncommitted, fine after a commit."""
    from mandala.imports import op

    @op
    def inc_for_cache(x):
        return x + 1

    with storage:
        for i in range(3):
            inc_for_cache(i)
        for view in (storage.atoms, storage.shapes, storage.ops, storage.calls, storage.sources):
            with pytest.raises(ValueError, match="uncommitted"):
                view.clear()
        assert storage.cache_stats()["calls"]["pending"] == 3  # nothing was lost
        storage.commit()
        storage.atoms.clear()
        assert storage.cache_stats()["calls"]["cached"] == 0
    with storage:
        inc_for_cache(5)
        storage.atoms.clear(allow_uncommited=True)  # the original's spelling
        assert storage.cache_stats()["calls"]["pending"] == 0
