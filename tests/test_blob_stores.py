"""Blob stores: a local folder and S3 (a real S3-compatible server, moto's, on loopback).

One contract suite runs against every store kind; the S3 store is exercised through the same
``Storage`` API a user has (``blob_store="s3://bucket/prefix"``), over every database backend.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mandala.backends.blobs import BlobStore, LocalBlobStore
from mandala.backends.fsspec_blobs import FsspecBlobStore, open_blob_store
from mandala.errors import CorruptValueError
from mandala.imports import Storage, op
from tests.conftest import POSTGRES_URL, PersistentStore

BUCKET = "mandala-test"
LARGE = 300_000  # float64 elements: 2.4 MB, above the default 1 MB threshold


class Payload:
    """A value only pickle can store (so its blob is checked before it is unpickled)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payload) and other.data == self.data


# ---------------------------------------------------------------------------- the S3 server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server on loopback with an empty bucket ``BUCKET``; AWS_* env set."""
    if importlib.util.find_spec("moto") is None and not os.environ.get("CI"):
        pytest.skip("moto is not installed: pip install -e '.[test]'")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    patch = pytest.MonkeyPatch()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        patch.setenv(name, value)
    try:
        _s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        patch.undo()
        server.stop()


def _s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


# ---------------------------------------------------------------------------- store kinds


@dataclass
class BlobPlace:
    """Where a test's blobs go, and how to damage them behind mandala's back."""

    location: str
    blob_path: Callable[[str], str]
    """Where the blob with this key lives (a file path or an S3 object key)."""
    read_raw: Callable[[str], bytes]
    write_raw: Callable[[str, bytes], None]
    remove_raw: Callable[[str], None]
    listing: Callable[[], list[str]]


def _local_place(tmp_path: Path) -> BlobPlace:
    root = tmp_path / "blobs"

    def path(key: str) -> Path:
        return root / key[:2] / key

    return BlobPlace(
        location=str(root),
        blob_path=lambda key: str(path(key)),
        read_raw=lambda key: path(key).read_bytes(),
        write_raw=lambda key, data: path(key).write_bytes(data) and None,
        remove_raw=lambda key: path(key).unlink(),
        listing=lambda: sorted(p.name for p in root.glob("*/*")) if root.exists() else [],
    )


def _s3_place(endpoint: str) -> BlobPlace:
    client = _s3_client(endpoint)
    prefix = f"run-{uuid.uuid4().hex[:12]}"

    def object_key(key: str) -> str:
        return f"{prefix}/{key[:2]}/{key}"

    def listing() -> list[str]:
        found = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")
        return sorted(item["Key"].rpartition("/")[2] for item in found.get("Contents", []))

    return BlobPlace(
        location=f"s3://{BUCKET}/{prefix}",
        blob_path=object_key,
        read_raw=lambda key: client.get_object(Bucket=BUCKET, Key=object_key(key))["Body"].read(),
        write_raw=lambda key, data: (
            client.put_object(Bucket=BUCKET, Key=object_key(key), Body=data) and None
        ),
        remove_raw=lambda key: client.delete_object(Bucket=BUCKET, Key=object_key(key)) and None,
        listing=listing,
    )


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> BlobPlace:
    """An empty blob location of each kind: a local folder, a prefix in the S3 bucket."""
    if request.param == "local":
        return _local_place(tmp_path)
    return _s3_place(request.getfixturevalue("s3_endpoint"))


def _blob_key(storage: Storage, content_id: str) -> str:
    cursor = storage.backend.core.execute(
        "SELECT blob_key FROM stored_values WHERE content_key = ?", (bytes.fromhex(content_id),)
    )
    [(blob_key,)] = cursor.fetchall()
    return str(blob_key)


def _ops(runs: list) -> tuple[Any, Any]:
    @op
    def make(n, tag=0):
        runs.append(("make", n, tag))
        return np.arange(n, dtype=np.float64)

    @op
    def wrap(n):
        runs.append(("wrap", n))
        return Payload(bytes(range(256)) * n)

    return make, wrap


# ---------------------------------------------------------------------------- through Storage


def test_large_values_round_trip_and_hit(persistent: PersistentStore, place: BlobPlace) -> None:
    runs: list = []
    make, wrap = _ops(runs)
    storage = persistent.open(blob_store=place.location)
    with storage:
        array = make(LARGE)
        payload = wrap(8000)  # 2 MB, pickled
        make(3)
    assert place.listing() == sorted(
        [_blob_key(storage, array.cid), _blob_key(storage, payload.cid)]
    )

    again = persistent.open(blob_store=place.location)
    with again:
        array2, payload2, small2 = make(LARGE), wrap(8000), make(3)
    assert len(runs) == 3  # memo hits, nothing recomputed
    np.testing.assert_array_equal(again.unwrap(array2), np.arange(LARGE, dtype=np.float64))
    assert again.unwrap(payload2) == Payload(bytes(range(256)) * 8000)
    np.testing.assert_array_equal(again.unwrap(small2), np.arange(3.0))
    assert again.verify().ok


def test_same_content_is_stored_once(persistent: PersistentStore, place: BlobPlace) -> None:
    runs: list = []
    make, _ = _ops(runs)
    storage = persistent.open(blob_store=place.location)
    with storage:
        first, second = make(LARGE, tag=1), make(LARGE, tag=2)
    assert len(runs) == 2 and first.cid == second.cid
    assert place.listing() == [_blob_key(storage, first.cid)]


def test_threshold_zero_puts_every_value_in_the_blob_store(
    persistent: PersistentStore, place: BlobPlace
) -> None:
    runs: list = []
    make, _ = _ops(runs)
    storage = persistent.open(blob_store=place.location, overflow_threshold_MB=0)
    with storage:
        result = make(3)
    rows = storage.backend.core.execute("SELECT data FROM stored_values").fetchall()
    assert len(rows) == 3 and all(data is None for (data,) in rows)  # n, tag and the array
    assert len(place.listing()) == 3
    again = persistent.open(blob_store=place.location, overflow_threshold_MB=0)
    np.testing.assert_array_equal(again.unwrap(again.load_ref(result.hid)), np.arange(3.0))


@pytest.mark.parametrize("kind", ["array", "pickle"])
def test_corrupted_blob_is_detected(
    persistent: PersistentStore, place: BlobPlace, kind: str
) -> None:
    make, wrap = _ops([])
    storage = persistent.open(blob_store=place.location)
    with storage:
        ref = make(LARGE) if kind == "array" else wrap(8000)
    call_id = storage.get_ref_creator(ref).hid
    key = _blob_key(storage, ref.cid)
    data = place.read_raw(key)
    place.write_raw(key, data[:-1] + bytes([data[-1] ^ 0xFF]))

    reader = persistent.open(blob_store=place.location)
    with pytest.raises(CorruptValueError, match="checksum") as info:
        reader.unwrap(reader.load_ref(ref.hid))
    assert call_id in str(info.value) and place.blob_path(key) in str(info.value)
    report = reader.verify()
    assert [v.content_id for v in report.corrupted_values] == [ref.cid]
    assert report.corrupted_values[0].call_ids == (call_id,) and not report.ok


def test_missing_blob_is_reported(persistent: PersistentStore, place: BlobPlace) -> None:
    runs: list = []
    make, _ = _ops(runs)
    storage = persistent.open(blob_store=place.location)
    with storage:
        ref = make(LARGE)
    call_id = storage.get_ref_creator(ref).hid
    place.remove_raw(_blob_key(storage, ref.cid))

    reader = persistent.open(blob_store=place.location)
    with pytest.raises(CorruptValueError, match="missing") as info:
        reader.unwrap(reader.load_ref(ref.hid))
    assert call_id in str(info.value)
    report = reader.verify()
    assert [v.content_id for v in report.missing_blob_files] == [ref.cid]

    reader.drop_calls([call_id], delete_dependents=True)
    with reader:
        again = make(LARGE)
    assert len(runs) == 2 and reader.verify().ok
    np.testing.assert_array_equal(reader.unwrap(again), np.arange(LARGE, dtype=np.float64))


def test_verify_checks_blobs_and_lists_orphans(
    persistent: PersistentStore, place: BlobPlace
) -> None:
    make, wrap = _ops([])
    storage = persistent.open(blob_store=place.location)
    with storage:
        make(LARGE)
        wrap(8000)
    report = storage.verify()
    assert report.ok and report.blob_files_checked == 2 and report.orphan_blob_files == ()
    assert storage.session.blobs is not None
    storage.session.blobs.write("ab" * 16, lambda file: file.write(b"left over"))
    report = storage.verify()
    assert report.ok and report.orphan_blob_files == ("ab" * 16,)


@pytest.mark.parametrize("target_kind", ["local", "s3"])
def test_copy_from_local_blobs_into_another_blob_store(
    persistent: PersistentStore, tmp_path: Path, target_kind: str, request: pytest.FixtureRequest
) -> None:
    runs: list = []
    make, wrap = _ops(runs)
    source = Storage(tmp_path / "source.db", overflow_dir=tmp_path / "source_blobs")
    with source:
        make(LARGE)
        wrap(8000)
        make(3)
    if target_kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        target_place = _s3_place(endpoint)
        # A store object carries its own options (here the endpoint) instead of the environment.
        target_store: Any = FsspecBlobStore(target_place.location, endpoint_url=endpoint)
    else:
        target_place = _local_place(tmp_path / "target")
        target_store = target_place.location
    target = persistent.open(blob_store=target_store)
    report = source.copy_to(target)
    assert report.calls_copied == 3 and report.blob_files_copied == 2
    assert len(target_place.listing()) == 2
    assert source.copy_to(target).calls_copied == 0

    reader = persistent.open(blob_store=target_store)
    with reader:
        array = make(LARGE)
        payload = wrap(8000)
    assert len(runs) == 3  # hits in the target
    np.testing.assert_array_equal(reader.unwrap(array), np.arange(LARGE, dtype=np.float64))
    assert reader.unwrap(payload) == Payload(bytes(range(256)) * 8000)
    assert reader.verify().ok


# ---------------------------------------------------------------------------- choosing a store


def test_blob_store_and_overflow_dir(tmp_path: Path) -> None:
    folder = tmp_path / "blobs"
    same = Storage(tmp_path / "a.db", overflow_dir=folder, blob_store=str(folder))
    assert isinstance(same.session.blobs, LocalBlobStore) and same.overflow_dir == str(folder)
    as_url = Storage(tmp_path / "b.db", blob_store=f"file://{folder}")
    assert isinstance(as_url.session.blobs, LocalBlobStore)
    assert as_url.session.blobs.root == folder
    with pytest.raises(ValueError, match="differ"):
        Storage(tmp_path / "c.db", overflow_dir=folder, blob_store=str(tmp_path / "other"))
    with pytest.raises(ValueError, match="differ"):
        Storage(tmp_path / "d.db", overflow_dir=folder, blob_store="memory://elsewhere")
    assert Storage(tmp_path / "e.db").overflow_dir == str(tmp_path / "e.db") + ".blobs"
    assert Storage().session.blobs is None


@pytest.mark.skipif(not POSTGRES_URL, reason="needs MANDALA_TEST_POSTGRES_URL")
def test_postgres_keeps_values_inline_unless_given_a_blob_store(
    tmp_path: Path,
) -> None:
    from tests.conftest import _postgres_location

    assert Storage(_postgres_location(tmp_path)).session.blobs is None
    chosen = Storage(_postgres_location(tmp_path), blob_store=str(tmp_path / "blobs"))
    assert isinstance(chosen.session.blobs, LocalBlobStore)


# ---------------------------------------------------------------------------- store contract


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """An empty store of each kind (``memory://`` takes the temporary-name-then-move path)."""
    if request.param == "local":
        return open_blob_store(tmp_path / "blobs")
    if request.param == "memory":
        return open_blob_store(f"memory://mandala-{uuid.uuid4().hex}/blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    # A small block size makes a 6 MB write a multipart upload (aborted when the write fails).
    return FsspecBlobStore(
        f"s3://{BUCKET}/store-{uuid.uuid4().hex[:12]}",
        endpoint_url=endpoint,
        default_block_size=5 * 2**20,
    )


def test_store_contract(store: BlobStore) -> None:
    from mandala.hashing.digest import digest

    key = "cd" * 16
    assert not store.exists(key) and list(store.keys()) == []
    assert store.write(key, lambda file: file.write(b"hello")) == 5
    assert store.write(key, lambda file: file.write(b"other")) is None  # already there
    assert store.exists(key) and store.size(key) == 5
    assert store.digest(key) == digest(b"hello")
    with store.open(key) as file:
        assert file.read() == b"hello"
    assert list(store.keys()) == [key]
    store.delete(key)
    store.delete(key)  # deleting twice is fine
    assert not store.exists(key) and list(store.keys()) == []
    with pytest.raises(FileNotFoundError):
        store.open(key)
    with pytest.raises(FileNotFoundError):
        store.digest(key)
    assert store.remove_stale_temporaries() == 0


@pytest.mark.parametrize("size", [1000, 6 * 2**20])
def test_failed_write_leaves_no_blob(store: BlobStore, size: int) -> None:
    key = "ef" * 16

    def fail(file: Any) -> None:
        file.write(b"x" * size)
        raise RuntimeError("serialization failed half way")

    with pytest.raises(RuntimeError, match="half way"):
        store.write(key, fail)
    assert not store.exists(key) and list(store.keys()) == []
    assert store.remove_stale_temporaries() == 0


def test_stale_temporaries_cleanup_leaves_files_it_did_not_make(store: BlobStore) -> None:
    """Only ``.<key>.<random>.tmp`` files of a killed writer go; a user's dotfile stays."""
    key = "ab" * 16

    def put(name: str) -> None:
        if isinstance(store, FsspecBlobStore):
            with store.fs.open(f"{store.root}/ab/{name}", "wb") as file:
                file.write(b"x")
        else:
            (store.root / "ab").mkdir(parents=True, exist_ok=True)  # type: ignore[attr-defined]
            (store.root / "ab" / name).write_bytes(b"x")  # type: ignore[attr-defined]

    store.write(key, lambda file: file.write(b"blob"))
    put(f".{key}.0123abcd.tmp")  # what a killed writer leaves
    put(".DS_Store")
    put(".notes.tmp")  # a dotfile ending in .tmp that is not a temporary of ours
    assert store.remove_stale_temporaries() == 1
    assert store.remove_stale_temporaries() == 0
    assert list(store.keys()) == [key]
    with store.open(key) as file:
        assert file.read() == b"blob"
