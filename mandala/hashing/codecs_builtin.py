"""The ``builtin`` codec: plain builtin values in a type-tagged binary encoding (no pickle).

Internal to ``mandala.hashing.serialization``, which registers it as a format.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from mandala.hashing.codecs_npy import _type_name

# --- the builtin format -------------------------------------------------------------------------
#
# One value is one tag byte, then (for sized values) a length, then the content:
#
#   N / T / F                  None / True / False
#   i <8 bytes>                an int in [-2**63, 2**63), signed little-endian
#   I <length> <bytes>         any other int, two's complement little-endian
#   f <8 bytes>                a float, IEEE 754 little-endian (NaN payloads and -0.0 kept)
#   c <8 bytes> <8 bytes>      a complex: real, imaginary
#   s <length> <bytes>         a str, UTF-8 (lone surrogates kept with "surrogatepass")
#   b <length> <bytes>         bytes
#   t / l / e / z <count> ...  tuple / list / set / frozenset, then each element
#   d <count> ...              dict, then key, value, key, value... in insertion order
#
# A length or count is one byte when below 255, else 0xFF and 8 bytes unsigned little-endian.
# The reader builds nothing but these builtin types, so reading cannot run code.

_PACK_INT = struct.Struct("<cq").pack
_PACK_FLOAT = struct.Struct("<cd").pack
_PACK_COMPLEX = struct.Struct("<cdd").pack
_PACK_LONG_LENGTH = struct.Struct("<BQ").pack
_UNPACK_INT = struct.Struct("<q").unpack_from
_UNPACK_FLOAT = struct.Struct("<d").unpack_from
_UNPACK_COMPLEX = struct.Struct("<dd").unpack_from
_UNPACK_LENGTH = struct.Struct("<Q").unpack_from
_SIZED_TAGS = frozenset(b"sbIdltez")
_STR_PREFIXES = tuple(bytes((ord("s"), n)) for n in range(255))
_BYTES_PREFIXES = tuple(bytes((ord("b"), n)) for n in range(255))


def _length(n: int) -> bytes:
    return bytes((n,)) if n < 255 else _PACK_LONG_LENGTH(255, n)


def _dumps_none(_value: None) -> bytes:
    return b"N"


def _dumps_bool(value: bool) -> bytes:
    return b"T" if value else b"F"


def _dumps_int(value: int) -> bytes:
    try:
        return _PACK_INT(b"i", value)
    except struct.error:
        data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        return b"I" + _length(len(data)) + data


def _dumps_float(value: float) -> bytes:
    return _PACK_FLOAT(b"f", value)


def _dumps_complex(value: complex) -> bytes:
    return _PACK_COMPLEX(b"c", value.real, value.imag)


def _dumps_str(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    n = len(data)
    return (_STR_PREFIXES[n] if n < 255 else b"s" + _length(n)) + data


def _dumps_bytes(value: bytes) -> bytes:
    n = len(value)
    return (_BYTES_PREFIXES[n] if n < 255 else b"b" + _length(n)) + value


_SCALAR_DUMPS: dict[type, Callable[[Any], bytes]] = {
    type(None): _dumps_none,
    bool: _dumps_bool,
    int: _dumps_int,
    float: _dumps_float,
    complex: _dumps_complex,
    str: _dumps_str,
    bytes: _dumps_bytes,
}
"""Exact types (subclasses such as IntEnum are pickled) and their one-shot writers."""

_SEQUENCE_TAGS: dict[type, bytes] = {tuple: b"t", list: b"l", set: b"e", frozenset: b"z"}


class _NotBuiltinError(TypeError):
    """A container holds a value the builtin format does not store."""


def _is_builtin(value: object) -> bool:
    """Whether ``value`` is made only of the exact builtin types the builtin format stores."""
    cls = type(value)
    if cls in _SCALAR_DUMPS:
        return True
    try:
        if cls in _SEQUENCE_TAGS:
            return all(map(_is_builtin, value))  # type: ignore[call-overload]
        if cls is dict:
            return all(
                _is_builtin(key) and _is_builtin(item)
                for key, item in value.items()  # type: ignore[attr-defined]
            )
    except RecursionError:  # too deep, or a container that holds itself: leave it to pickle
        return False
    return False


def _write_builtin(value: Any, out: list[bytes]) -> None:
    cls = type(value)
    scalar = _SCALAR_DUMPS.get(cls)
    if scalar is not None:
        out.append(scalar(value))
        return
    tag = _SEQUENCE_TAGS.get(cls)
    if tag is not None:
        out.append(tag + _length(len(value)))
        for item in value:
            _write_builtin(item, out)
    elif cls is dict:
        out.append(b"d" + _length(len(value)))
        for key, item in value.items():
            _write_builtin(key, out)
            _write_builtin(item, out)
    else:
        raise _NotBuiltinError(
            f"the builtin format cannot store a value of type {_type_name(value)}"
        )


def _builtin_dumps(value: Any) -> bytes:
    scalar = _SCALAR_DUMPS.get(type(value))
    if scalar is not None:
        return scalar(value)
    out: list[bytes] = []
    _write_builtin(value, out)
    return b"".join(out)


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    n = data[pos]
    if n < 255:
        return n, pos + 1
    return _UNPACK_LENGTH(data, pos + 1)[0], pos + 9


def _read_builtin(data: bytes, pos: int) -> tuple[Any, int]:
    tag = data[pos]
    pos += 1
    if tag == 0x69:  # i
        return _UNPACK_INT(data, pos)[0], pos + 8
    if tag == 0x66:  # f
        return _UNPACK_FLOAT(data, pos)[0], pos + 8
    if tag == 0x4E:  # N
        return None, pos
    if tag == 0x54:  # T
        return True, pos
    if tag == 0x46:  # F
        return False, pos
    if tag == 0x63:  # c
        real, imag = _UNPACK_COMPLEX(data, pos)
        return complex(real, imag), pos + 16
    if tag not in _SIZED_TAGS:
        raise ValueError(f"unknown tag byte {tag:#04x} at offset {pos - 1}")
    n, pos = _read_length(data, pos)
    if n > len(data) - pos:  # every byte, element or pair takes at least one byte
        raise ValueError(f"truncated builtin payload (needs {n} more at offset {pos})")
    end = pos + n
    if tag == 0x73:  # s
        return data[pos:end].decode("utf-8", "surrogatepass"), end
    if tag == 0x62:  # b
        return data[pos:end], end
    if tag == 0x49:  # I
        return int.from_bytes(data[pos:end], "little", signed=True), end
    if tag == 0x64:  # d
        result: dict[Any, Any] = {}
        for _ in range(n):
            key, pos = _read_builtin(data, pos)
            result[key], pos = _read_builtin(data, pos)
        return result, pos
    items = []
    for _ in range(n):
        item, pos = _read_builtin(data, pos)
        items.append(item)
    if tag == 0x6C:  # l
        return items, pos
    if tag == 0x74:  # t
        return tuple(items), pos
    if tag == 0x65:  # e
        return set(items), pos
    return frozenset(items), pos


def _builtin_loads(data: bytes | memoryview) -> Any:
    if type(data) is not bytes:
        data = bytes(data)
    value, end = _read_builtin(data, 0)
    if end != len(data):
        raise ValueError(f"{len(data) - end} unexpected bytes after the value")
    return value


def _builtin_loads_many(payloads: list[bytes]) -> list[Any]:
    """:func:`_builtin_loads` of each payload, with 8-byte ints and floats (the bulk of the
    values a frame's table shows) decoded together by numpy, the rest one by one."""
    count = len(payloads)
    if count < 64 or any(len(payload) != 9 for payload in payloads):
        return list(map(_builtin_loads, payloads))
    import numpy as np  # here: decoding one value does not need numpy

    rows = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(count, 9)
    tags = rows[:, 0]
    numbers = np.ascontiguousarray(rows[:, 1:])
    result: list[Any] = [None] * count
    for tag, dtype in ((0x66, "<f8"), (0x69, "<i8")):
        where = np.flatnonzero(tags == tag)
        if len(where):
            for position, value in zip(
                where.tolist(), numbers[where].view(dtype).reshape(-1).tolist()
            ):
                result[position] = value
    for position in np.flatnonzero((tags != 0x66) & (tags != 0x69)).tolist():
        result[position] = _builtin_loads(payloads[position])
    return result
