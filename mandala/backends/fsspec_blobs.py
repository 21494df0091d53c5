"""Blobs at any fsspec URL (``s3://bucket/prefix``, ``gs://...``, ...), and choosing a store.

:class:`FsspecBlobStore` keeps the layout of :class:`~mandala.backends.blobs.LocalBlobStore`
(``<root>/ab/<key>``) on any filesystem fsspec knows; :func:`open_blob_store` turns what a user
passes (a folder, a ``file://`` URL, another URL, a store) into a store. fsspec and the
filesystem's own package (s3fs for S3: ``pip install 'pymandala[s3]'``) are imported only when
a URL store is made.

Atomic writes. On object stores (S3, GCS) an object becomes visible only when its upload is
complete (a single PUT, or the final "complete multipart upload" call), so a blob is uploaded
straight to its final key, and a failed write aborts the upload: nothing becomes visible. S3
has no rename (a "move" is a full copy then a delete), so a temporary key would only double the
work. Other filesystems (where a file is visible while it is written) get a temporary name in
the blob's directory, moved into place when complete, as locally.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from mandala.backends.blobs import BlobStore, LocalBlobStore, is_temporary_name
from mandala.hashing.digest import Hasher

__all__ = ["FsspecBlobStore", "open_blob_store"]

_CHUNK = 1 << 22  # bytes per read when hashing or copying a stream

_ATOMIC_UPLOAD_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs"})
"""Object stores where an object is visible only once completely uploaded."""


class FsspecBlobStore:
    """Blobs under a URL of any fsspec filesystem.

    Args:
        url: where the blobs go, e.g. ``"s3://bucket/prefix"``.
        **storage_options: passed to the filesystem, e.g. ``endpoint_url=...`` for an
            S3-compatible server, ``key=``/``secret=``, ``anon=True``. Without them the
            filesystem reads its usual configuration (for S3: ``AWS_*`` environment variables,
            including ``AWS_ENDPOINT_URL``, and ``~/.aws``).

    Raises:
        ImportError: fsspec, or the filesystem's package, is not installed.

    Example:
        >>> store = FsspecBlobStore("memory://mandala-doc/blobs")
        >>> store.write("ab" * 16, lambda file: file.write(b"hello"))
        5
        >>> store.open("ab" * 16).read()
        b'hello'
    """

    verify_before_read = False

    def __init__(self, url: str, **storage_options: Any) -> None:
        try:
            import fsspec
        except ImportError as error:
            raise ImportError(
                f"a blob store at {url!r} needs fsspec (and s3fs for s3:// URLs): "
                "pip install 'pymandala[s3]'"
            ) from error
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self.root = root.rstrip("/")
        protocol = self.fs.protocol
        protocols = {protocol} if isinstance(protocol, str) else set(protocol)
        self.atomic_upload = bool(protocols & _ATOMIC_UPLOAD_PROTOCOLS)

    def __repr__(self) -> str:
        return f"FsspecBlobStore({self.url!r})"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}"

    def describe(self, key: str) -> str:
        return self.fs.unstrip_protocol(self._path(key))

    def exists(self, key: str) -> bool:
        path = self._path(key)
        # Another process may have written or deleted it since this process listed the folder.
        self.fs.invalidate_cache(path)
        return bool(self.fs.exists(path))

    def write(self, key: str, writer: Callable[[BinaryIO], Any]) -> Any:
        """Write a blob through ``writer(file)`` unless it exists; see the module doc.

        Returns what ``writer`` returned, or None when the blob was already there.
        """
        if self.exists(key):
            return None
        final = self._path(key)
        if self.atomic_upload:
            return self._upload(final, writer)
        temp = f"{self.root}/{key[:2]}/.{key}.{uuid.uuid4().hex}.tmp"
        try:
            with self.fs.open(temp, "wb") as file:
                result = writer(file)
            self.fs.mv(temp, final)
        except BaseException:
            try:
                self.fs.rm(temp)
            except (FileNotFoundError, OSError):
                pass
            raise
        return result

    def _upload(self, path: str, writer: Callable[[BinaryIO], Any]) -> Any:
        file = self.fs.open(path, "wb")
        try:
            result = writer(file)
        except BaseException:
            # Closing would complete the upload of a partial blob: abort it instead.
            file.discard()
            file.closed = True
            raise
        file.close()
        return result

    def open(self, key: str) -> BinaryIO:
        """Open a blob for streaming reads. Raises FileNotFoundError if it is missing."""
        path = self._path(key)
        self.fs.invalidate_cache(path)
        file: BinaryIO = self.fs.open(path, "rb", cache_type="readahead")
        return file

    def digest(self, key: str) -> bytes:
        """The blob's checksum, streamed once through the hasher."""
        hasher = Hasher()
        with self.open(key) as file:
            while chunk := file.read(_CHUNK):
                hasher.update(chunk)
        return hasher.key()

    def size(self, key: str) -> int:
        path = self._path(key)
        self.fs.invalidate_cache(path)
        return int(self.fs.size(path))

    def delete(self, key: str) -> None:
        try:
            self.fs.rm(self._path(key))
        except FileNotFoundError:
            pass

    def _files(self) -> Iterator[tuple[str, str]]:
        """``(path, name)`` of every file under the root that sits in a two-character folder."""
        self.fs.invalidate_cache(self.root)
        try:
            paths = self.fs.find(self.root)
        except FileNotFoundError:
            return
        for path in paths:
            parent, _, name = path.rpartition("/")
            if len(parent.rpartition("/")[2]) == 2:
                yield path, name

    def keys(self) -> Iterator[str]:
        """Keys of all complete blobs (temporaries of interrupted writes are skipped)."""
        for _, name in self._files():
            if not name.startswith("."):
                yield name

    def remove_stale_temporaries(self) -> int:
        """Delete temporaries left by killed writers; returns how many.

        Interrupted uploads to an object store leave no object, only an incomplete multipart
        upload, which the bucket's lifecycle rule (``AbortIncompleteMultipartUpload``) removes.
        """
        stale = [
            path
            for path, name in self._files()
            if is_temporary_name(path.rpartition("/")[0].rpartition("/")[2], name)
        ]
        for path in stale:
            self.fs.rm(path)
        return len(stale)


def open_blob_store(location: str | os.PathLike[str] | BlobStore) -> BlobStore:
    """A blob store for a local folder, a ``file://`` URL, any other fsspec URL, or a store.

    Raises:
        ImportError: the URL needs fsspec or a filesystem package that is not installed.
    """
    if not isinstance(location, (str, os.PathLike)):
        return location
    text = os.fspath(location)
    if text.startswith("file://"):
        return LocalBlobStore(text[len("file://") :])
    if "://" in text:
        return FsspecBlobStore(text)
    return LocalBlobStore(text)
