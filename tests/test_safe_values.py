"""Safe stored values: pickle-free formats, and ``Storage(allow_pickle=False)`` never unpickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mandala.errors import SerializationError
from mandala.hashing import serialization
from mandala.hashing.digest import digest
from mandala.hashing.serialization import Format, format_for, register_format
from mandala.imports import Storage, op
from tests.conftest import reopen_storage


class Opaque:
    """A user class with no pickle-free format (stored with pickle)."""

    def __init__(self, n: int) -> None:
        self.n = n


class CreatesFile:
    """Unpickling this runs ``open(path, "w")``: a stand-in for arbitrary code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


def _reader(storage: Storage) -> Storage:
    """A storage over the same store that refuses pickle (the same object, for memory stores)."""
    if storage.db_path == ":memory:":
        storage.session.allow_pickle = False
        return storage
    return reopen_storage(storage, allow_pickle=False)


BUILTINS = [
    None,
    True,
    1,
    1.0,
    -0.0,
    2**100,
    1 + 2j,
    "héllo",
    b"\x00raw",
    (1, "a", (None,)),
    [1, [2.5, b"x"]],
    {"b": 1, 2: (3,), "a": {1, 2}},
    frozenset({"z"}),
]


def _store(storage: Storage, values: list[object]) -> list:
    @op(output_names=["stored"])  # one output even when the value is a tuple
    def identity(i, value):  # i makes every call distinct even for equal values
        return value

    with storage:
        refs = [identity(i, value) for i, value in enumerate(values)]
    storage.commit()
    return refs


def test_builtins_and_arrays_load_without_pickle(storage: Storage) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    refs = _store(storage, [*BUILTINS, array])
    hids = [ref.hid for ref in refs]
    reader = _reader(storage)
    loaded = [reader.load_ref(hid).obj for hid in hids]
    for value, back in zip(BUILTINS, loaded[:-1]):
        assert type(back) is type(value)
        assert repr(back) == repr(value)  # exact: 1 vs True vs 1.0, -0.0, dict key order
    assert loaded[-1].dtype == np.float32
    assert np.array_equal(loaded[-1], array)


def test_pickled_values_are_refused_with_their_content_id(storage: Storage) -> None:
    (ref,) = _store(storage, [Opaque(3)])
    reader = _reader(storage)
    with pytest.raises(SerializationError) as caught:
        reader.load_ref(ref.hid)
    message = str(caught.value)
    assert ref.cid in message
    assert "'pickle'" in message
    assert "allow_pickle=True" in message and "trust" in message


def test_writing_values_that_need_pickle_is_refused_naming_the_op(storage: Storage) -> None:
    reader = _reader(storage)

    @op
    def make_opaque(n):
        return Opaque(n)

    @op
    def make_list(n):
        return list(range(n))

    with reader:
        assert reader.unwrap(make_list(3)) == [0, 1, 2]  # builtins need no pickle
        with pytest.raises(SerializationError, match="make_opaque.*Opaque.*allow_pickle=False"):
            make_opaque(1)


def test_stored_formats_are_pickle_free_for_builtins_arrays_and_frames(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db")
    frame = pd.DataFrame({"x": np.arange(3), "y": np.linspace(0, 1, 3)})
    values = [42, "abc", {"a": [1, 2.5]}, np.zeros(3), frame, frame["y"], Opaque(1)]
    refs = _store(storage, values)
    formats = {
        bytes(key): format
        for key, format in storage.conn().execute("SELECT content_key, format FROM stored_values")
    }
    got = [formats[ref.content_key] for ref in refs]
    assert got == ["builtin", "builtin", "builtin", "npy", "pandas", "pandas", "pickle"]


def test_a_planted_pickle_payload_is_never_run(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db")
    (ref,) = _store(storage, ["innocent"])
    marker = tmp_path / "pwned"
    payload = pickle.dumps(CreatesFile(marker), protocol=5)
    conn = storage.conn()
    conn.execute(
        "UPDATE stored_values SET format = 'pickle', data = ?, size = ? WHERE content_key = ?",
        (payload, len(payload), ref.content_key),
    )
    columns = {row[1] for row in conn.execute("PRAGMA table_info(stored_values)")}
    if "checksum" in columns:  # a careful attacker also fixes the checksum
        conn.execute(
            "UPDATE stored_values SET checksum = ? WHERE content_key = ?",
            (digest(payload), ref.content_key),
        )
    conn.commit()
    storage.close()

    safe = Storage(tmp_path / "s.db", allow_pickle=False)
    with pytest.raises(SerializationError, match=f"{ref.cid}.*allow_pickle=False"):
        safe.load_ref(ref.hid)
    assert not marker.exists()
    # the payload is real: a storage that allows pickle does run it
    trusting = Storage(tmp_path / "s.db")
    trusting.load_ref(ref.hid)
    assert marker.exists()


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


def _load_point(data: bytes | memoryview) -> Point:
    return Point(*map(float, bytes(data).decode().split(",")))


POINT = Format(
    name="test-point",
    dumps=lambda point: f"{point.x},{point.y}".encode(),
    loads=_load_point,
    dump=lambda point, file: file.write(f"{point.x},{point.y}".encode()),
    load=lambda file: _load_point(file.read()),
    accepts=lambda value: type(value) is Point,
)


def test_a_registered_format_stores_user_objects_without_pickle(storage: Storage) -> None:
    register_format(POINT, replace=True)
    try:
        (ref,) = _store(storage, [Point(1.0, 2.5)])
        reader = _reader(storage)
        loaded = reader.load_ref(ref.hid).obj
        assert (type(loaded), loaded.x, loaded.y) == (Point, 1.0, 2.5)
        assert format_for(Point(0, 0), allow_pickle=False) == "test-point"
    finally:
        serialization._choosers[:] = [f for f in serialization._choosers if f is not POINT]
        serialization._formats.pop(POINT.name, None)
