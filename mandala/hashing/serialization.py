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
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from mandala.errors import MandalaError, SerializationError

__all__ = [
    "format_for",
    "Format",
    "register_format",
    "get_format",
    "encode",
    "decode",
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


def _type_name(value: object) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


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


def _is_plain_array(value: object) -> bool:
    """An exact ndarray (or memmap) whose dtype the npy format stores without pickle."""
    cls = type(value)
    if cls.__module__ != "numpy":  # cheap test first: never imports numpy
        return False
    import numpy as np

    return (cls is np.ndarray or cls is np.memmap) and not value.dtype.hasobject  # type: ignore[attr-defined]


def _npy_dump(value: Any, file: BinaryIO) -> None:
    """Write an array in npy format without copying its buffer, whatever ``file`` is.

    numpy's own writer copies the data in chunks when ``file`` is not a real file (e.g. a
    wrapper that hashes what it writes); writing the header and then one zero-copy view of the
    buffer keeps memory flat for contiguous arrays.
    """
    import numpy as np
    from numpy.lib import format as npy

    if not (value.flags.c_contiguous or value.flags.f_contiguous):
        npy.write_array(file, value, allow_pickle=False)
        return
    header = npy.header_data_from_array_1_0(value)
    try:
        npy.write_array_header_1_0(file, header)
    except ValueError:  # a header too large for format 1.0 (huge structured dtypes)
        npy.write_array_header_2_0(file, header)
    data = value if value.flags.c_contiguous else value.T  # Fortran order: its transpose is C
    file.write(memoryview(data.reshape(-1).view(np.uint8)))


def _npy_dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    _npy_dump(value, buffer)
    return buffer.getvalue()


def _npy_load(file: BinaryIO) -> Any:
    from numpy.lib import format as npy

    return npy.read_array(file, allow_pickle=False)


def _npy_loads(data: bytes | memoryview) -> Any:
    return _npy_load(io.BytesIO(data))


_NPY = Format(
    name="npy",
    dumps=_npy_dumps,
    loads=_npy_loads,
    dump=_npy_dump,
    load=_npy_load,
    accepts=_is_plain_array,
)


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


def _dumps_none(value: None) -> bytes:
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


# --- the pandas format --------------------------------------------------------------------------
#
# A DataFrame or Series whose columns (and index) are plain numpy arrays, or pandas string /
# nullable / object data made of builtin scalars: 8 bytes (unsigned little-endian) giving the
# length of a builtin-encoded header, the header, then one npy array per part stored as "npy".
# Parts stored as "values" (their dtype name and their elements, builtin-encoded) sit in the
# header itself.

_PACK_HEADER_LENGTH = struct.Struct("<Q").pack
_UNPACK_HEADER_LENGTH = struct.Struct("<Q").unpack_from

_VALUE_DTYPES = frozenset(
    {"str", "string", "object", "boolean", "Float32", "Float64"}
    | {f"{sign}Int{bits}" for sign in ("", "U") for bits in (8, 16, 32, 64)}
)
"""pandas dtypes whose elements are stored as builtin values and rebuilt with ``pd.array``."""


def _is_label(value: object) -> bool:
    return type(value) in _SCALAR_DUMPS


def _plain_dtype(dtype: object) -> bool:
    import numpy as np

    return isinstance(dtype, np.dtype) and not dtype.hasobject


def _part(array_like: Any) -> tuple[tuple, Any] | None:
    """How one column (or index) is stored: ``(("npy",), array)`` or ``(("values", dtype,
    elements), None)``; None when it needs pickle."""
    import pandas as pd

    dtype = array_like.dtype
    if _plain_dtype(dtype):
        return ("npy",), array_like.to_numpy()
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories.tolist()
        if not all(_is_label(c) for c in categories):
            return None
        codes = array_like.cat.codes if hasattr(array_like, "cat") else array_like.codes
        return ("categorical", categories, str(dtype.categories.dtype), dtype.ordered), (
            codes.to_numpy() if hasattr(codes, "to_numpy") else codes
        )
    name = str(dtype)
    if name not in _VALUE_DTYPES:
        return None
    elements = [None if element is pd.NA else element for element in array_like.tolist()]
    if not all(element is None or _is_label(element) for element in elements):
        return None
    return ("values", name, elements), None


def _index_header(index: Any, arrays: list[Any]) -> tuple | None:
    """How the header describes an index (None: not storable without pickle)."""
    import pandas as pd

    if not _is_label(index.name):
        return None
    if type(index) is pd.RangeIndex:
        return ("range", index.start, index.stop, index.step, index.name)
    if type(index) in (pd.DatetimeIndex, pd.TimedeltaIndex) and _plain_dtype(index.dtype):
        # time-zone-naive datetimes and timedeltas are plain numpy arrays (the freq is derived)
        arrays.append(index.to_numpy())
        return ("times", "datetime" if type(index) is pd.DatetimeIndex else "timedelta", index.name)
    if type(index) is pd.Index:
        part = _part(index)
        if part is None:
            return None
        encoding, array = part
        if array is not None:
            arrays.append(array)
        return ("part", encoding, index.name)
    return None


def _columns_header(columns: Any) -> tuple | None:
    import pandas as pd

    if type(columns) is pd.RangeIndex:
        return _index_header(columns, [])
    if type(columns) is not pd.Index or not _is_label(columns.name):
        return None
    labels = columns.tolist()
    if not all(map(_is_label, labels)) or pd.Index(labels).dtype != columns.dtype:
        return None  # the labels would not come back with the same dtype
    return ("labels", labels, columns.name)


def _pandas_parts(value: Any) -> tuple[dict[str, Any], list[Any]] | None:
    """Header and npy arrays of a frame or series, or None when it needs pickle."""
    cls = type(value)
    if cls.__module__.partition(".")[0] != "pandas":  # cheap test first: never imports pandas
        return None
    import pandas as pd

    if cls is not pd.DataFrame and cls is not pd.Series:
        return None
    if value.attrs or not value.flags.allows_duplicate_labels:
        return None
    arrays: list[Any] = []
    index = _index_header(value.index, arrays)
    if index is None:
        return None
    header: dict[str, Any] = {"index": index}
    if cls is pd.Series:
        columns = [value]
        if not _is_label(value.name):
            return None
        header["kind"] = "series"
        header["name"] = value.name
    else:
        labels = _columns_header(value.columns)
        if labels is None:
            return None
        columns = [value.iloc[:, i] for i in range(value.shape[1])]
        header["kind"] = "frame"
        header["columns"] = labels
    encodings = []
    for column in columns:
        part = _part(column)
        if part is None:
            return None
        encoding, array = part
        encodings.append(encoding)
        if array is not None:
            arrays.append(array)
    header["parts"] = encodings
    return header, arrays


def _is_plain_pandas(value: object) -> bool:
    return _pandas_parts(value) is not None


def _pandas_dump(value: Any, file: BinaryIO) -> None:
    parts = _pandas_parts(value)
    if parts is None:
        raise TypeError(f"a {_type_name(value)} with these dtypes or index needs pickle")
    header, arrays = parts
    encoded = _builtin_dumps(header)
    file.write(_PACK_HEADER_LENGTH(len(encoded)))
    file.write(encoded)
    for array in arrays:
        _npy_dump(array, file)


def _pandas_dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    _pandas_dump(value, buffer)
    return buffer.getvalue()


def _rebuild_part(encoding: tuple, file: BinaryIO) -> Any:
    import numpy as np
    import pandas as pd

    if encoding[0] == "npy":
        return _npy_load(file)
    if encoding[0] == "categorical":
        _, categories, categories_dtype, ordered = encoding
        dtype = pd.CategoricalDtype(pd.Index(categories, dtype=categories_dtype), ordered=ordered)
        return pd.Categorical.from_codes(_npy_load(file), dtype=dtype)
    if encoding[0] != "values":
        raise ValueError(f"unknown pandas part encoding {encoding[0]!r}")
    _, dtype, elements = encoding
    if dtype == "object":
        array = np.empty(len(elements), dtype=object)
        array[:] = elements
        return array
    return pd.array(elements, dtype=dtype)


def _rebuild_index(header: tuple, file: BinaryIO) -> Any:
    import pandas as pd

    if header[0] == "range":
        _, start, stop, step, name = header
        return pd.RangeIndex(start, stop, step, name=name)
    if header[0] == "labels":
        return pd.Index(header[1], name=header[2])
    if header[0] == "part":
        return pd.Index(_rebuild_part(header[1], file), name=header[2], copy=False)
    if header[0] == "times":
        builder = pd.DatetimeIndex if header[1] == "datetime" else pd.TimedeltaIndex
        return builder(_npy_load(file), name=header[2])
    raise ValueError(f"unknown pandas index encoding {header[0]!r}")


def _pandas_load(file: BinaryIO) -> Any:
    import pandas as pd

    (length,) = _UNPACK_HEADER_LENGTH(file.read(8))
    header = _builtin_loads(file.read(length))
    kind = header["kind"]
    index = _rebuild_index(header["index"], file)
    columns = [_rebuild_part(encoding, file) for encoding in header["parts"]]
    if kind == "series":
        return pd.Series(columns[0], index=index, name=header["name"], copy=False)
    if kind != "frame":
        raise ValueError(f"unknown pandas kind {kind!r}")
    frame = pd.DataFrame(dict(enumerate(columns)), index=index, copy=False)
    frame.columns = _rebuild_index(header["columns"], file)
    return frame


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
