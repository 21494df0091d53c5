"""Content-addressed files for values too large to keep inside the database.

A blob is written to a temporary name in its final directory and renamed into place, so a
reader never sees a partial file and two writers of the same content never corrupt each other
(the rename is atomic and both write identical bytes). Files live under ``root/ab/<key>``, with
the first two hex characters as a directory to keep directories small.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["LocalBlobStore"]


class LocalBlobStore:
    """Blobs as files under a local folder (created on first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

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
            if directory.is_dir():
                for file in directory.glob(".*.tmp"):
                    file.unlink(missing_ok=True)
                    removed += 1
        return removed
