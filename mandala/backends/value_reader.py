"""Reading stored values back: checksums checked first, then decoding, blobs streamed.

One :class:`ValueReader` per storage decodes every value it loads, whoever asks: the session
(memoization hits, ``unwrap``), a frame's table (through the values repository's bulk
``decode_values``), and ``copy_to`` (which shares the hashing stream reads of blob files,
:func:`copy_hashed`). A value whose bytes do not match the checksum stored with them is never
decoded: the error names the calls that produced it, and how to recompute it.

Example:
    >>> from mandala.hashing import serialization
    >>> from mandala.hashing.digest import digest
    >>> fmt, data = serialization.encode(42)
    >>> reader = ValueReader(None, allow_pickle=True, creators=lambda keys: {})
    >>> reader.decode(b"k" * 16, fmt, data, None, digest(data))
    42
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

from mandala.backends.blobs import BlobStore
from mandala.errors import CorruptValueError, SerializationError
from mandala.hashing import serialization
from mandala.hashing.digest import Hasher, digest, digest_many

__all__ = ["ValueReader", "HashingReader", "copy_hashed"]

_CHUNK = 1 << 22  # bytes per read when streaming a blob
_SPOOL_IN_MEMORY = 64 << 20  # a pickled blob larger than this is spooled to a temporary file

Creators = Callable[[Sequence[bytes]], dict[bytes, list[bytes]]]
"""``content keys -> {content key: history keys of the calls that output it}``."""


class ValueReader:
    """Checks and decodes stored values (inline bytes or blob files).

    Args:
        blobs: where values stored in blob files are, or None (then reading one is an error).
        allow_pickle: False refuses values stored with pickle (which can run code); may be
            changed later.
        creators: finds the calls that output values, for the message of a corrupt value.
    """

    def __init__(self, blobs: BlobStore | None, allow_pickle: bool, creators: Creators) -> None:
        self.blobs = blobs
        self.allow_pickle = allow_pickle
        self._creators = creators

    def decode(
        self,
        key: bytes,
        fmt: str,
        data: bytes | None,
        blob_key: str | None,
        checksum: bytes | None,
    ) -> Any:
        """Decode a stored value, first checking its bytes against ``checksum`` (if known).

        Raises:
            CorruptValueError: the bytes do not match the checksum, or the blob file is missing.
            SerializationError: the value needs pickle and pickle is not allowed.
        """
        if not self.allow_pickle and serialization.get_format(fmt).uses_pickle:
            raise self._pickle_refused(key, fmt)
        if data is not None:
            if checksum is not None and digest(data) != checksum:
                raise self.corrupt(key, "its stored bytes do not match their checksum")
            return serialization.decode(fmt, data, allow_pickle=self.allow_pickle)
        if blob_key is None or self.blobs is None:
            raise CorruptValueError(
                f"value {key.hex()} is stored in a blob file but this storage has no blob folder;"
                " open it with the blob_store (or overflow_dir) it was written with"
            )
        blobs = self.blobs
        where = blobs.describe(blob_key)
        allow_pickle = self.allow_pickle
        try:
            if checksum is None:  # written before checksums existed
                with blobs.open(blob_key) as file:
                    return serialization.read_from_file(fmt, file, allow_pickle=allow_pickle)
            if blobs.verify_before_read:
                if blobs.digest(blob_key) != checksum:
                    raise self.corrupt(
                        key, f"its blob file {where} does not match its checksum (delete it first)"
                    )
                with blobs.open(blob_key) as file:
                    return serialization.read_from_file(fmt, file, allow_pickle=allow_pickle)
            return self._read_remote_blob(blobs, key, fmt, blob_key, checksum, where)
        except FileNotFoundError as error:
            raise self.corrupt(key, f"its blob file {where} is missing") from error

    def decode_inline_many(
        self,
        fmt: str,
        keys: Sequence[bytes],
        payloads: list[bytes],
        checksums: bytes | list[bytes | None],
    ) -> list[Any]:
        """:meth:`decode` of many values of one format stored inline (not in blob files), in
        the same order: each checked against its checksum, then all decoded together.

        ``checksums``: one per value (None for a value written before checksums), or, when
        every value has one, their concatenation (checked in one comparison).

        Raises:
            CorruptValueError: a value's bytes do not match its checksum.
            SerializationError: the values need pickle and pickle is not allowed.
        """
        if keys and not self.allow_pickle and serialization.get_format(fmt).uses_pickle:
            raise self._pickle_refused(keys[0], fmt)
        digests = digest_many(payloads)
        if isinstance(checksums, bytes):
            if b"".join(digests) != checksums:
                size = len(checksums) // max(len(payloads), 1)
                self._find_corrupt(
                    keys, digests, [checksums[i * size : (i + 1) * size] for i in range(len(keys))]
                )
        elif digests != checksums:  # one comparison in C; a NULL checksum differs
            self._find_corrupt(keys, digests, checksums)
        return serialization.decode_many(fmt, payloads, allow_pickle=self.allow_pickle)

    def corrupt(self, key: bytes, problem: str) -> CorruptValueError:
        """The error for a damaged stored value, naming the calls that produced it."""
        creators = [k.hex() for k in self._creators([key]).get(key, [])]
        if creators:
            fix = (
                f"it was output by the calls {creators}; drop them to recompute it: "
                f"storage.drop_calls({creators!r}, delete_dependents=True), then rerun"
            )
        else:
            fix = "no stored call outputs it (it entered as an input); drop the calls that use it"
        return CorruptValueError(f"value {key.hex()} is corrupt: {problem}; {fix}")

    def _find_corrupt(
        self, keys: Sequence[bytes], digests: list[bytes], checksums: Sequence[bytes | None]
    ) -> None:
        """Raise for the first value whose digest differs from its (known) checksum.

        Raises:
            CorruptValueError: for that value.
        """
        for position, (found, checksum) in enumerate(zip(digests, checksums)):
            if checksum is not None and found != checksum:
                raise self.corrupt(keys[position], "its stored bytes do not match their checksum")

    @staticmethod
    def _pickle_refused(key: bytes, fmt: str) -> SerializationError:
        return SerializationError(
            f"value {key.hex()} is stored in format {fmt!r}, which needs pickle, and pickle can"
            " run arbitrary code; this storage was opened with allow_pickle=False. Open it"
            " with allow_pickle=True only if you trust whoever wrote the store"
        )

    def _read_remote_blob(
        self, blobs: BlobStore, key: bytes, fmt: str, blob_key: str, checksum: bytes, where: str
    ) -> Any:
        """Download a blob once, hashing it on the way, and decode it only if it matches.

        Formats that cannot run code decode from the stream itself (no copy of the bytes); the
        result is dropped if the checksum then fails. Pickle could run code hidden in damaged or
        tampered bytes, so those blobs are first spooled (to memory, then disk) and checked.
        """
        mismatch = f"its blob file {where} does not match its checksum (delete it first)"
        allow_pickle = self.allow_pickle
        with blobs.open(blob_key) as file:
            reader = HashingReader(file)
            if serialization.get_format(fmt).uses_pickle:
                with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
                    while chunk := reader.read(_CHUNK):
                        spool.write(chunk)
                    if reader.hasher.key() != checksum:
                        raise self.corrupt(key, mismatch)
                    spool.seek(0)
                    return serialization.read_from_file(fmt, spool, allow_pickle=allow_pickle)  # type: ignore[arg-type]
            try:
                value = serialization.read_from_file(fmt, reader, allow_pickle=allow_pickle)  # type: ignore[arg-type]
            except SerializationError as error:
                reader.drain()
                if reader.hasher.key() != checksum:
                    raise self.corrupt(key, mismatch) from error
                raise
            reader.drain()
            if reader.hasher.key() != checksum:
                raise self.corrupt(key, mismatch)
            return value


class HashingReader:
    """A read-only file that hashes what is read through it from the real file."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.hasher = Hasher()

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.hasher.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        count = self.file.readinto(buffer)  # type: ignore[attr-defined]
        self.hasher.update(memoryview(buffer)[:count])
        return int(count)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Hash the rest of the file (what the decoder did not read)."""
        while self.read(_CHUNK):
            pass


def copy_hashed(source: BinaryIO, sink: BinaryIO | None = None) -> bytes:
    """Stream ``source`` to its end (into ``sink``, if given), returning the checksum of its
    bytes: a blob is copied and checked in one read."""
    reader = HashingReader(source)
    while chunk := reader.read(_CHUNK):
        if sink is not None:
            sink.write(chunk)
    return reader.hasher.key()
