"""Content-addressed files for values too large to keep inside the database.

:class:`BlobStore` is what the rest of mandala asks of a place for blobs (no local paths:
stores at URLs, in ``fsspec_blobs.py``, implement it too); :class:`LocalBlobStore` keeps them
in a local folder. A blob is written to a temporary name in its final directory and renamed into place, so a
reader never sees a partial file and two writers of the same content never corrupt each other
(the rename is atomic and both write identical bytes). Files live under ``root/ab/<key>``, with
the first two hex characters as a directory to keep directories small.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from blake3 import blake3

from mandala.hashing.digest import KEY_SIZE, digest

__all__ = ["BlobStore", "LocalBlobStore", "file_digest", "is_temporary_name"]


def file_digest(path: str | os.PathLike[str]) -> bytes:
    """The 16-byte BLAKE3 checksum of a file's bytes (memory-mapped, hashed on all cores).

    Raises:
        FileNotFoundError: there is no such file.
    """
    if os.path.getsize(path) == 0:  # an empty file cannot be memory-mapped
        return digest(b"")
    return blake3(max_threads=blake3.AUTO).update_mmap(path).digest(KEY_SIZE)


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blobs, each written once, atomically, under its key (a hex content id).

    A reader never sees a partial blob: a blob is either absent or complete. Missing blobs raise
    ``FileNotFoundError`` from :meth:`open`, :meth:`digest` and :meth:`size`.
    """

    verify_before_read: bool
    """True when :meth:`digest` is cheaper than reading (a local file: memory-mapped, hashed on
    all cores), so a reader checks the checksum first and then decodes. False for remote stores:
    the reader hashes the bytes as they stream through the decoder, so a blob is downloaded once.
    """

    def describe(self, key: str) -> str:
        """Where the blob is, for messages (a path or a URL)."""
        ...

    def exists(self, key: str) -> bool: ...

    def write(self, key: str, writer: Callable[[BinaryIO], Any]) -> Any:
        """Write a blob through ``writer(file)`` unless it exists; return what ``writer`` returned
        (None when the blob was already there). On error nothing becomes visible."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Open a blob for streaming reads."""
        ...

    def digest(self, key: str) -> bytes:
        """The 16-byte BLAKE3 checksum of a blob's bytes."""
        ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None:
        """Delete a blob if it exists."""
        ...

    def keys(self) -> Iterator[str]:
        """Keys of all complete blobs."""
        ...

    def remove_stale_temporaries(self) -> int:
        """Delete what writers that were killed left behind; returns how many."""
        ...


def is_temporary_name(folder: str, name: str) -> bool:
    """Whether ``name`` in the two-character ``folder`` is a temporary of an interrupted write
    (``.<key>.<random>.tmp``, the key starting with the folder's name): the only files that
    clean-ups remove, so a file someone else put there is never touched."""
    return name.startswith("." + folder) and name.endswith(".tmp") and name.count(".") >= 3


class LocalBlobStore:
    """Blobs as files under a local folder (created on first write)."""

    verify_before_read = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def describe(self, key: str) -> str:
        return str(self.path(key))

    def digest(self, key: str) -> bytes:
        return file_digest(self.path(key))

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def write(self, key: str, writer: Callable[[BinaryIO], Any]) -> Any:
        """Write a blob through ``writer(file)`` unless it exists; return what ``writer`` returned.

        Returns None when the blob was already there.
        """
        final = self.path(key)
        if final.exists():
            return None
        final.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                result = writer(file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp_name, final)
        except BaseException:
            try:
                os.unlink(temp_name)
            except FileNotFoundError:
                pass
            raise
        return result

    def open(self, key: str) -> BinaryIO:
        """Open a blob for reading. Raises FileNotFoundError if it is missing."""
        return open(self.path(key), "rb")

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass

    def keys(self) -> Iterator[str]:
        """Keys of all complete blobs (temporary files of interrupted writes are skipped)."""
        if not self.root.exists():
            return
        for directory in self.root.iterdir():
            if directory.is_dir() and len(directory.name) == 2:
                for file in directory.iterdir():
                    if not file.name.startswith("."):
                        yield file.name

    def remove_stale_temporaries(self) -> int:
        """Delete temp files left by writers that were killed; returns how many."""
        removed = 0
        if not self.root.exists():
            return 0
        for directory in self.root.iterdir():
            if directory.is_dir() and len(directory.name) == 2:
                for file in directory.glob(".*.tmp"):
                    if is_temporary_name(directory.name, file.name) and file.is_file():
                        file.unlink(missing_ok=True)
                        removed += 1
        return removed
