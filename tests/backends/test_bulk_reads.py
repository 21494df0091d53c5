"""SQLite bulk reads (columns aggregated in SQL, values decoded together) give exactly what the
row-by-row reads give, and fall back to rows where the aggregates cannot carry the data."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mandala.backends.records import Column
from mandala.backends.sqlite_columns import read_columns
from mandala.backends.values import ValueRepository
from mandala.hashing.key_table import key_array, key_list
from mandala.imports import Storage, op
from tests.harness import strategies as shared

_KINDS = list(Column)


def _table(rows: list[tuple]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a INTEGER, b BLOB, c TEXT, d TEXT, e REAL)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    return conn


_FLOATS = st.one_of(
    st.none(),
    st.floats(allow_nan=False),  # SQLite stores NaN as NULL
    st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, 1 / 3, 1795779038.803861]),
)
# the separator and the NULL mark come up often enough to test the fallback both ways
_CHARACTERS = st.characters(blacklist_categories=["Cs"]) | st.sampled_from("\x1e\x1f")
_ROWS = st.lists(
    st.tuples(
        st.integers(-(2**63), 2**63 - 1),
        shared.keys,
        st.text(_CHARACTERS),
        st.one_of(st.none(), st.text(_CHARACTERS, max_size=8), st.just("\x1e")),
        _FLOATS,
    ),
    max_size=40,
)
_SQL = "SELECT a, b, c, d, e FROM t"
_COLUMNS = (Column.INT, Column.KEY, Column.TEXT, Column.OPT_TEXT, Column.OPT_REAL)


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return x == y and math.copysign(1, x) == math.copysign(1, y)
    return type(x) is type(y) and x == y


def _as_list(column: Any) -> list[Any]:
    """A column as Python objects (keys and integers come as numpy arrays)."""
    if isinstance(column, np.ndarray):
        if column.dtype.kind == "S":  # never item by item: that drops trailing zero bytes
            return column.view(f"V{column.dtype.itemsize}").tolist()
        return column.tolist()
    return column


@settings(deadline=None, max_examples=150)
@given(rows=_ROWS)
def test_columns_read_in_bulk_equal_the_rows(rows: list[tuple]) -> None:
    conn = _table(rows)
    found = read_columns(conn, _SQL, (), _COLUMNS)
    by_rows = conn.execute(_SQL).fetchall()
    # a separator in a text, or a text equal to the NULL mark, sends the read to the rows
    marked = any("\x1f" in row[2] + (row[3] or "") or row[3] == "\x1e" for row in rows)
    if found is None:  # only where the aggregate cannot carry a cell
        assert marked
        return
    assert not marked
    assert all(len(column) == len(rows) for column in found)
    for got, expected in zip(zip(*map(_as_list, found)), by_rows):
        assert all(_same(x, y) for x, y in zip(got, expected)), (got, expected)


def test_cells_the_aggregates_cannot_carry_make_the_read_fall_back() -> None:
    key = bytes(range(16))
    assert read_columns(_table([(1, key[:15], "a", None, None)]), _SQL, (), _COLUMNS) is None
    assert read_columns(_table([(1, key, "a\x1fb", None, None)]), _SQL, (), _COLUMNS) is None
    assert read_columns(_table([(1, key, "a", "\x1e", None)]), _SQL, (), _COLUMNS) is None
    assert read_columns(_table([]), _SQL, (), _COLUMNS) == ([], [], [], [], [])
    found = read_columns(_table([(1, key, "a", None, None)]), _SQL, (), _COLUMNS)
    assert found is not None and _as_list(found[1]) == [key]
    big = _table([(i, key, "a", None, 0.5) for i in range(1000)])
    big.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 4000)  # the keys alone take 16,000 bytes
    assert read_columns(big, _SQL, (), _COLUMNS) is None


def test_a_table_above_sqlites_length_limit_is_read_row_by_row(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db")
    with storage:
        for i in range(300):
            make(i)
    expected = storage.cf(make).df()
    storage.backend.connection().setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 2000)
    got = storage.cf(make).df()
    assert sorted(c.hid for c in got["make"]) == sorted(c.hid for c in expected["make"])
    order = lambda frame: frame.sort_values("i").reset_index(drop=True)  # noqa: E731
    assert all(_equal(x, y) for x, y in zip(order(got)["var_0"], order(expected)["var_0"]))


@op
def make(i: int) -> Any:
    kinds = [
        i,
        i * 0.5,
        -i,
        f"s{i}",
        [i, (i, "x")],
        {"k": i},
        np.arange(i % 4),
        pd.DataFrame({"a": [i]}),
        None,
        True,
        2**70 + i,
    ]
    return kinds[i % len(kinds)]


@op
def big(i: int) -> Any:
    return np.full(200_000, i, dtype=np.float64)  # 1.6 MB: kept in a blob file


def _as_dict(keys: list[bytes], found: tuple[np.ndarray, np.ndarray]) -> dict[bytes, Any]:
    """The values of a ``decode_values`` result by key (the keys it found)."""
    values, present = found
    assert len(values) == len(present) == len(keys)
    return {key: value for key, value, here in zip(keys, values, present) if here}


def _decode(storage: Storage, keys: list[bytes], handle: Any = None) -> dict[bytes, Any]:
    session = storage.session
    found = storage.backend.values.decode_values(key_array(keys), session.reader, handle)
    return _as_dict(keys, found)


def _values(storage: Storage, keys: list[bytes], bulk: bool) -> dict[bytes, Any]:
    if bulk:
        return _decode(storage, keys)
    values = storage.backend.values
    return _as_dict(
        keys, ValueRepository.decode_values(values, key_array(keys), storage.session.reader)
    )


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, np.ndarray):
        return isinstance(y, np.ndarray) and x.dtype == y.dtype and np.array_equal(x, y)
    if isinstance(x, pd.DataFrame):
        return isinstance(y, pd.DataFrame) and x.equals(y)
    return type(x) is type(y) and x == y


@pytest.mark.parametrize("share", [1.0, 0.1])  # a scan of the table, or probes by key
def test_values_read_in_bulk_equal_the_row_reads(tmp_path: Path, share: float) -> None:
    storage = Storage(tmp_path / "s.db")
    with storage:
        refs = [make(i) for i in range(300)] + [big(i) for i in range(3)]
    keys = [ref.content_key for ref in refs]
    asked = keys[:: int(1 / share)] + [b"\x00" * 16]  # and one key that is not stored
    bulk = _values(storage, asked, bulk=True)
    rows = _values(storage, asked, bulk=False)
    assert bulk.keys() == rows.keys() == set(asked) - {b"\x00" * 16}
    assert all(_equal(bulk[key], rows[key]) for key in rows)
    if share == 1.0:
        assert any(isinstance(v, np.ndarray) and v.size == 200_000 for v in bulk.values())


@pytest.mark.parametrize("share", [1.0, 0.1])
def test_values_asked_for_twice_come_back_at_each_place(tmp_path: Path, share: float) -> None:
    storage = Storage(tmp_path / "s.db")
    with storage:
        refs = [make(i) for i in range(300)] + [big(i) for i in range(2)]
    keys = [ref.content_key for ref in refs][:: int(1 / share)]
    absent = b"\x01" * 16
    asked = keys + [absent] + keys[::-1]  # every key twice, in another order the second time
    session = storage.session
    for found in (
        storage.backend.values.decode_values(key_array(asked), session.reader),
        ValueRepository.decode_values(storage.backend.values, key_array(asked), session.reader),
    ):
        values, present = found
        assert present.tolist() == [key != absent for key in asked]
        assert values[len(keys)] is None
        for i in range(len(keys)):
            assert _equal(values[i], values[len(asked) - 1 - i])
        rows = _values(storage, keys, bulk=False)
        assert all(_equal(values[i], rows[key]) for i, key in enumerate(keys))


@pytest.mark.parametrize("share", [1.0, 0.1])
def test_values_stored_before_checksums_are_read_in_bulk_unverified(
    tmp_path: Path, share: float
) -> None:
    storage = Storage(tmp_path / "s.db")
    with storage:
        refs = [make(i) for i in range(300)]
    keys = [ref.content_key for ref in refs]
    old = keys[::3]  # as if written before checksums existed (schema version 1)
    damaged = keys[1]  # still has a checksum: its damage shows
    conn = storage.backend.connection()
    conn.executemany(
        "UPDATE stored_values SET checksum = NULL WHERE content_key = ?", [(k,) for k in old]
    )
    asked = keys[:: int(1 / share)]
    bulk = _values(storage, asked, bulk=True)
    rows = _values(storage, asked, bulk=False)
    assert bulk.keys() == rows.keys() == set(asked)
    assert all(_equal(bulk[key], rows[key]) for key in rows)
    conn.execute(
        "UPDATE stored_values SET data = ? WHERE content_key = ?",
        (b"f" + np.float64(7.5).tobytes(), damaged),
    )
    from mandala.errors import CorruptValueError

    with pytest.raises(CorruptValueError, match=damaged.hex()):
        _values(storage, keys, bulk=True)


def test_a_damaged_value_is_refused_in_bulk_reads_too(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db")
    with storage:
        refs = [make(i) for i in range(100)]
    target = refs[1].content_key  # a float, stored inline
    storage.backend.connection().execute(
        "UPDATE stored_values SET data = ? WHERE content_key = ?",
        (b"f" + np.float64(7.5).tobytes(), target),
    )
    from mandala.errors import CorruptValueError

    with pytest.raises(CorruptValueError, match=target.hex()):
        _values(storage, [ref.content_key for ref in refs], bulk=True)


def test_frames_show_the_same_table_through_bulk_and_row_reads(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db")
    with storage:
        for i in range(200):
            make(i)
    bulk = storage.cf(make).df()
    storage.backend.core.bulk_reads = False
    rows = storage.cf(make).df()
    assert list(bulk.columns) == list(rows.columns)
    key = lambda frame: frame.sort_values("i").reset_index(drop=True)  # noqa: E731
    a, b = key(bulk), key(rows)
    assert [c.hid for c in a["make"]] == [c.hid for c in b["make"]]
    assert all(_equal(x, y) for x, y in zip(a["var_0"], b["var_0"]))
    assert [c.started_at for c in a["make"]] == [c.started_at for c in b["make"]]


def test_a_prefetched_scan_gives_the_values_a_read_gives(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db")
    with storage:
        refs = [make(i) for i in range(300)] + [big(i) for i in range(2)]
    keys = [ref.content_key for ref in refs]
    backend = storage.backend
    handle = backend.values.prefetch_values(len(keys))
    assert handle is not None  # every value asked for: a scan, started ahead
    with storage:  # values stored after the prefetch started are read all the same
        later = [make(i) for i in range(300, 310)]
    asked = keys + [ref.content_key for ref in later]
    prefetched = _decode(storage, asked, handle)
    plain = _values(storage, asked, bulk=False)
    missing = set(asked) - prefetched.keys()
    assert missing <= {ref.content_key for ref in later}  # committed after the scan began
    assert set(keys) <= prefetched.keys()
    assert all(_equal(prefetched[key], plain[key]) for key in prefetched)
    assert backend.values.prefetch_values(len(asked) // 10) is None  # a few values: probes, no scan
    assert (
        Storage().backend.values.prefetch_values(10_000) is None
    )  # in memory: one connection only


def test_a_value_in_a_blob_file_deleted_after_the_scan_is_reported_missing(
    tmp_path: Path,
) -> None:
    storage = Storage(tmp_path / "s.db")
    with storage:
        refs = [make(i) for i in range(20)] + [big(i) for i in range(2)]
    keys = [ref.content_key for ref in refs]
    handle = storage.backend.values.prefetch_values(len(keys))
    assert handle is not None and handle.result() is not None  # the scan saw both blob rows
    other = Storage(tmp_path / "s.db")  # another process drops one and cleans up its value
    victim = next(
        c
        for c in other.cf(big).df()["big"]
        if any(ref.hid == refs[20].hid for ref in c.outputs.values())
    )
    other.drop_calls([victim], delete_dependents=False)
    other.cleanup_refs()
    found = _decode(storage, keys, handle)
    assert keys[20] not in found  # not read back as None
    assert _equal(found[keys[21]], np.full(200_000, 1, dtype=np.float64))
    assert found.keys() == set(keys) - {keys[20]}
    from mandala.errors import ValueNotFoundError

    source = storage.cf(make).source
    with pytest.raises(ValueNotFoundError, match=keys[20].hex()):
        source.load_value_array(key_array(keys * 300), handle)  # past the bulk-read size


def test_a_damaged_value_is_refused_through_a_prefetched_scan(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db")
    with storage:
        refs = [make(i) for i in range(100)]
    target = refs[1].content_key
    storage.backend.connection().execute(
        "UPDATE stored_values SET data = ? WHERE content_key = ?",
        (b"f" + np.float64(7.5).tobytes(), target),
    )
    from mandala.errors import CorruptValueError

    keys = [ref.content_key for ref in refs]
    handle = storage.backend.values.prefetch_values(len(keys))
    with pytest.raises(CorruptValueError, match=target.hex()):
        _decode(storage, keys, handle)


def test_a_frames_table_is_the_same_with_and_without_the_prefetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = Storage(tmp_path / "s.db")
    with storage:
        for i in range(6000):  # past the size where a table's values are read in bulk
            make(i)
    started: list[Any] = []
    original = type(storage.backend.values).prefetch_values

    def spy(self: Any, expected: int) -> Any:
        started.append(original(self, expected))
        return started[-1]

    monkeypatch.setattr(type(storage.backend.values), "prefetch_values", spy)
    with_prefetch = storage.cf(make).df()
    assert started and started[0] is not None
    monkeypatch.setattr(
        type(storage.backend.values), "prefetch_values", lambda self, expected: None
    )
    without = storage.cf(make).df()
    key = lambda frame: frame.sort_values("i").reset_index(drop=True)  # noqa: E731
    a, b = key(with_prefetch), key(without)
    assert [c.hid for c in a["make"]] == [c.hid for c in b["make"]]
    assert all(_equal(x, y) for x, y in zip(a["var_0"], b["var_0"]))


def test_a_prefetch_reads_the_stores_file_wherever_the_process_has_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = Storage("s.db")  # a relative path
    with storage:
        refs = [make(i) for i in range(50)]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    keys = [ref.content_key for ref in refs]
    handle = storage.backend.values.prefetch_values(len(keys))
    assert handle is not None
    found = handle.result()
    assert found is not None and set(key_list(found.keys)) >= set(keys)
    assert list(elsewhere.iterdir()) == []  # opened read-only: no file made here
