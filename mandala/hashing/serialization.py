"""Turning values into stored bytes and back, with a format tag on every stored value.

A *format* is a named pair of writer and reader (``"pickle"``, ``"npy"``). The store keeps the
format's name next to the bytes, so a value is always read back with the reader that wrote it,
and new formats (json, msgpack, parquet) can be added without breaking old stores. Formats live in
a small registry: :func:`encode` asks the formats that can choose values (newest first) whether
they accept the value, and falls back to pickle.

Two paths, one set of formats:

- inline: :func:`encode` / :func:`decode` give and take ``bytes`` for values small enough to sit in
  a database row;
- streaming: :func:`write_to_file` / :func:`read_from_file` go straight to and from a binary file,
  so that a 100 MB array is never held twice in memory (``numpy.lib.format`` writes a contiguous
  array from its own buffer; pickle protocol 5 writes large buffers without framing copies).

:func:`estimated_size` tells the caller, without serializing, which path a value should take.
:func:`serialize` / :func:`deserialize` wrap the inline path into self-describing bytes (the
format name travels inside them) for ``mandala.utils``.

Plain builtin values (None, bool, int, float, complex, str, bytes and tuples, lists, dicts, sets
and frozensets of them) are stored in the ``"builtin"`` format: a small type-tagged,
length-prefixed binary encoding whose reader only builds builtin values, so it cannot run code.
Numeric numpy arrays use ``"npy"`` and simple pandas frames and series ``"pandas"``; pickle is
left for everything else.

Pickle can run arbitrary code when loading, so ``decode``/``read_from_file`` accept
``allow_pickle=False`` to refuse pickled values from stores that are not trusted.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from mandala.errors import MandalaError, SerializationError
from mandala.hashing.codecs_builtin import (
    _SCALAR_DUMPS,
    _SEQUENCE_TAGS,
    _builtin_dumps,
    _builtin_loads,
    _builtin_loads_many,
    _is_builtin,
    _NotBuiltinError,
)
from mandala.hashing.codecs_npy import (
    _is_plain_array,
    _npy_dump,
    _npy_dumps,
    _npy_load,
    _npy_loads,
    _type_name,
)
from mandala.hashing.codecs_pandas import (
    _is_plain_pandas,
    _pandas_dump,
    _pandas_dumps,
    _pandas_load,
)

__all__ = [
    "format_for",
    "Format",
    "register_format",
    "get_format",
    "encode",
    "decode",
    "decode_many",
    "write_to_file",
    "read_from_file",
    "estimated_size",
    "serialize",
    "deserialize",
]

PICKLE_PROTOCOL = 5
"""Protocol 5 (PEP 574) writes large buffers (numpy arrays inside objects) without extra copies."""


@dataclass(frozen=True)
class Format:
    """A named way of storing values; its name is stored with every value it wrote.

    Attributes:
        name: the format tag kept next to the bytes (ASCII, at most 255 characters).
        dumps: value -> bytes.
        loads: bytes (or a memoryview of them) -> value.
        dump: writes the value into a binary file, ideally without building its bytes first.
        load: reads one value from a binary file positioned at its start.
        accepts: when given, :func:`encode` picks this format for the values it accepts;
            formats without it are only used when named (e.g. when decoding).
        uses_pickle: reading runs pickle, so ``allow_pickle=False`` refuses the format.
    """

    name: str
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes | memoryview], Any]
    dump: Callable[[Any, BinaryIO], None]
    load: Callable[[BinaryIO], Any]
    accepts: Callable[[Any], bool] | None = None
    uses_pickle: bool = False


_formats: dict[str, Format] = {}
_choosers: list[Format] = []
"""Formats with an ``accepts`` predicate, newest first: a later, more specific format wins."""


def register_format(format: Format, *, replace: bool = False) -> None:
    """Add a storage format (or replace one with ``replace=True``).

    Raises:
        ValueError: the name is not 1-255 ASCII characters, or is taken and ``replace`` is False.
    """
    name = format.name
    if not name or not name.isascii() or len(name) > 255:
        raise ValueError(f"a format name must be 1 to 255 ASCII characters, got {name!r}")
    if name in _formats and not replace:
        raise ValueError(f"format {name!r} is already registered; pass replace=True to replace it")
    previous = _formats.get(name)
    if previous is not None and previous in _choosers:
        _choosers.remove(previous)
    _formats[name] = format
    if format.accepts is not None:
        _choosers.insert(0, format)


def get_format(name: str) -> Format:
    """Return the registered format called ``name``.

    Raises:
        SerializationError: no such format (e.g. a store written by a newer release).
    """
    try:
        return _formats[name]
    except KeyError:
        known = ", ".join(repr(known) for known in _formats)
        raise SerializationError(
            f"unknown storage format {name!r} (known: {known}); the value was probably written by"
            " a newer release of mandala or by a plugin that is not installed"
        ) from None


def _choose(value: object, allow_pickle: bool) -> Format:
    for format in _choosers:
        if format.accepts is not None and format.accepts(value):
            chosen = format
            break
    else:
        chosen = _formats["pickle"]
    if chosen.uses_pickle and not allow_pickle:
        raise SerializationError(
            f"a value of type {_type_name(value)} can only be stored with format"
            f" {chosen.name!r}, which is refused because allow_pickle=False; store a type that"
            " has a pickle-free format (e.g. a numpy array), or allow pickle"
        )
    return chosen


def format_for(value: object, *, allow_pickle: bool = True) -> str:
    """Name of the format :func:`encode` / :func:`write_to_file` would use for ``value``."""
    return _choose(value, allow_pickle).name


def _check_readable(format: Format, allow_pickle: bool) -> None:
    if format.uses_pickle and not allow_pickle:
        raise SerializationError(
            f"refusing to read a value stored in format {format.name!r}: it needs pickle, which"
            " can run arbitrary code, and allow_pickle=False; pass allow_pickle=True if the store"
            " is trusted"
        )


def _write_error(value: object, format: Format, exc: Exception) -> SerializationError:
    return SerializationError(
        f"cannot serialize a value of type {_type_name(value)} with format {format.name!r}"
        f" ({type(exc).__name__}: {exc}); make its class picklable (defined at module level, with"
        " no lambdas, generators, locks or open files inside), or return a value that is"
    )


def _read_error(format: Format, exc: Exception) -> SerializationError:
    return SerializationError(
        f"cannot decode a value stored in format {format.name!r} ({type(exc).__name__}: {exc});"
        " the bytes are damaged, or (for pickle) the value's class is no longer importable under"
        " the name it had when it was stored"
    )


def encode(value: object, *, allow_pickle: bool = True) -> tuple[str, bytes]:
    """Return ``(format name, payload)`` for storing ``value`` inline.

    Raises:
        SerializationError: the value cannot be written (e.g. it is not picklable), or it needs
            pickle and ``allow_pickle`` is False. The message names the type; callers add the op
            and output names.
    """
    if _choosers[0] is _BUILTIN:
        # Hot path (every fresh op call). No user format was registered after "builtin", so no
        # other format can be preferred for an exact builtin value: write it without asking
        # each format, and containers without walking them twice (accept, then write).
        cls = type(value)
        scalar = _SCALAR_DUMPS.get(cls)
        if scalar is not None:
            return "builtin", scalar(value)
        if cls in _SEQUENCE_TAGS or cls is dict:
            try:
                return "builtin", _builtin_dumps(value)
            except (_NotBuiltinError, RecursionError):
                pass  # holds something else (or itself): choose as usual
    format = _choose(value, allow_pickle)
    try:
        return format.name, format.dumps(value)
    except MandalaError:
        raise
    except Exception as exc:
        raise _write_error(value, format, exc) from exc


def decode(format: str, data: bytes | memoryview, *, allow_pickle: bool = True) -> object:
    """Rebuild a value from its format name and payload (as returned by :func:`encode`).

    Raises:
        SerializationError: unknown format, pickle refused, or undecodable payload.
    """
    chosen = get_format(format)
    _check_readable(chosen, allow_pickle)
    try:
        return chosen.loads(data)
    except MandalaError:
        raise
    except Exception as exc:
        raise _read_error(chosen, exc) from exc


def decode_many(format: str, payloads: list[bytes], *, allow_pickle: bool = True) -> list[object]:
    """:func:`decode` of many payloads of one format (builtin scalars decoded together).

    Raises:
        SerializationError: as :func:`decode`, for the first payload that fails.
    """
    chosen = get_format(format)
    _check_readable(chosen, allow_pickle)
    try:
        if chosen.loads is _builtin_loads:
            return _builtin_loads_many(payloads)
        return list(map(chosen.loads, payloads))
    except MandalaError:
        raise
    except Exception as exc:
        raise _read_error(chosen, exc) from exc


def write_to_file(value: object, file: BinaryIO, *, allow_pickle: bool = True) -> str:
    """Write ``value`` into an open binary file and return the format name to store with it.

    Arrays are written from their own buffer and other values are pickled straight into the
    file, so peak memory stays close to the value's own size. On error the file holds a partial
    write: write to a temporary file and rename it only on success.

    Raises:
        SerializationError: as :func:`encode`.
    """
    format = _choose(value, allow_pickle)
    try:
        format.dump(value, file)
    except MandalaError:
        raise
    except Exception as exc:
        raise _write_error(value, format, exc) from exc
    return format.name


def read_from_file(format: str, file: BinaryIO, *, allow_pickle: bool = True) -> object:
    """Read one value written by :func:`write_to_file` from an open binary file.

    Raises:
        SerializationError: as :func:`decode`.
    """
    chosen = get_format(format)
    _check_readable(chosen, allow_pickle)
    try:
        return chosen.load(file)
    except MandalaError:
        raise
    except Exception as exc:
        raise _read_error(chosen, exc) from exc


def estimated_size(value: object) -> int | None:
    """Return roughly how many bytes ``value`` takes when stored, without serializing it.

    Known for bytes-like values, str (a lower bound: one byte per character), numpy arrays and
    scalars (``nbytes``), pandas objects (shallow ``memory_usage``, a lower bound for object
    columns) and torch tensors; ``None`` for everything else. Used to send large values to files.
    """
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    cls = type(value)
    library = (getattr(cls, "__module__", None) or "").partition(".")[0]
    if library == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray):
            return None if value.dtype.hasobject else int(value.nbytes)
        if isinstance(value, np.generic):
            return int(value.nbytes)
    elif library == "pandas":
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return int(value.memory_usage(index=True, deep=False).sum())
        if isinstance(value, pd.Series):
            return int(value.memory_usage(index=True, deep=False))
        if isinstance(value, pd.Index):
            return int(value.memory_usage(deep=False))
    elif library == "torch" and hasattr(value, "element_size") and hasattr(value, "numel"):
        return int(value.element_size() * value.numel())
    return None


# --- self-describing bytes ----------------------------------------------------------------------

_MAGIC = b"MNDL"
_ENVELOPE_VERSION = 1


def serialize(obj: object, *, allow_pickle: bool = True) -> bytes:
    """Return self-describing bytes for ``obj``: the format name travels inside them.

    Layout: ``b"MNDL"``, one byte envelope version (1), one byte length of the format name, the
    ASCII format name, then the payload of :func:`encode`.

    Raises:
        SerializationError: as :func:`encode`.
    """
    name, payload = encode(obj, allow_pickle=allow_pickle)
    tag = name.encode("ascii")
    return b"".join((_MAGIC, bytes((_ENVELOPE_VERSION, len(tag))), tag, payload))


def deserialize(data: bytes | bytearray | memoryview, *, allow_pickle: bool = True) -> object:
    """Rebuild the value from bytes made by :func:`serialize`.

    Raises:
        SerializationError: the bytes were not made by :func:`serialize`, or as :func:`decode`.
    """
    view = memoryview(data)
    if len(view) < 6 or view[:4] != _MAGIC:
        raise SerializationError(
            "these bytes were not made by mandala.utils.serialize (missing the b'MNDL' header)"
        )
    if view[4] != _ENVELOPE_VERSION:
        raise SerializationError(
            f"serialized bytes use envelope version {view[4]}, but this release reads version"
            f" {_ENVELOPE_VERSION}; upgrade mandala to read them"
        )
    end = 6 + view[5]
    name = bytes(view[6:end]).decode("ascii", "replace")
    return decode(name, view[end:], allow_pickle=allow_pickle)


# --- built-in formats ---------------------------------------------------------------------------


def _pickle_dumps(value: object) -> bytes:
    return pickle.dumps(value, protocol=PICKLE_PROTOCOL)


def _pickle_dump(value: object, file: BinaryIO) -> None:
    pickle.dump(value, file, protocol=PICKLE_PROTOCOL)


_PICKLE = Format(
    name="pickle",
    dumps=_pickle_dumps,
    loads=pickle.loads,
    dump=_pickle_dump,
    load=pickle.load,
    uses_pickle=True,
)


_NPY = Format(
    name="npy",
    dumps=_npy_dumps,
    loads=_npy_loads,
    dump=_npy_dump,
    load=_npy_load,
    accepts=_is_plain_array,
)


def _builtin_dump(value: Any, file: BinaryIO) -> None:
    file.write(_builtin_dumps(value))


def _builtin_load(file: BinaryIO) -> Any:
    return _builtin_loads(file.read())


_BUILTIN = Format(
    name="builtin",
    dumps=_builtin_dumps,
    loads=_builtin_loads,
    dump=_builtin_dump,
    load=_builtin_load,
    accepts=_is_builtin,
)


def _pandas_loads(data: bytes | memoryview) -> Any:
    return _pandas_load(io.BytesIO(data))


_PANDAS = Format(
    name="pandas",
    dumps=_pandas_dumps,
    loads=_pandas_loads,
    dump=_pandas_dump,
    load=_pandas_load,
    accepts=_is_plain_pandas,
)

register_format(_PICKLE)
register_format(_NPY)
register_format(_PANDAS)
register_format(_BUILTIN)  # last, so that encode's fast path can test ``_choosers[0]``
