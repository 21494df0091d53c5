"""The one hash function behind every id, and the conversion of ids between bytes and text.

Ids are 16-byte BLAKE3 digests ("keys") inside the library and in the database, and 32-char
lowercase hex strings ("ids") at the public API (``ref.hid``, ``call.cid``). BLAKE3 is used for
small preimages and large buffers alike: it runs at several GB/s on one core, and the digest
does not depend on how many threads computed it, so large buffers use all cores.
"""

from __future__ import annotations

from collections.abc import Iterable

from blake3 import blake3

from mandala.errors import InvalidIdError

__all__ = ["KEY_SIZE", "digest", "digest_many", "digest_buffer", "to_hex", "from_hex", "Hasher"]

KEY_SIZE = 16
"""Bytes in a key (128 bits): collision-safe for any realistic store, half the size of a
hex string in the database and in memory."""

_PARALLEL_THRESHOLD = 1 << 20
"""Buffers from this size are hashed on all cores (threading pays off above ~1 MiB)."""


def digest(data: bytes | bytearray | memoryview) -> bytes:
    """Return the 16-byte key of a preimage."""
    return blake3(data).digest(KEY_SIZE)


def digest_many(items: Iterable[bytes | bytearray | memoryview]) -> list[bytes]:
    """The keys of many small preimages, in order (one Python call, not one per item)."""
    return [blake3(data).digest(KEY_SIZE) for data in items]


def digest_buffer(buffer: memoryview) -> bytes:
    """Return the 16-byte key of a (possibly huge) contiguous buffer, without copying it."""
    if buffer.nbytes >= _PARALLEL_THRESHOLD:
        return blake3(buffer, max_threads=blake3.AUTO).digest(KEY_SIZE)
    return blake3(buffer).digest(KEY_SIZE)


class Hasher:
    """An incremental hasher for preimages assembled piece by piece (large or streamed data)."""

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state = blake3(max_threads=blake3.AUTO)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._state.update(data)

    def key(self) -> bytes:
        return self._state.digest(KEY_SIZE)


def to_hex(key: bytes) -> str:
    """Return the public text form of a key."""
    return key.hex()


def from_hex(text: str, what: str = "id") -> bytes:
    """Parse the public text form of a key, with an error that says what was expected."""
    if isinstance(text, bytes) and len(text) == KEY_SIZE:
        return text
    if not isinstance(text, str):
        raise InvalidIdError(
            f"expected a {what} as a {2 * KEY_SIZE}-character hex string, got {type(text).__name__}"
            f" {text!r}"
        )
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_SIZE:
        raise InvalidIdError(
            f"{text!r} is not a {what}: expected {2 * KEY_SIZE} hex characters, as in ref.hid or"
            " call.hid"
        )
    return key
