"""Canonical, type-tagged content keys of Python values.

A value's *content key* says what the value is, independently of where it came from: it is the
16-byte BLAKE3 key of the value's *canonical encoding*, a byte string that starts with a one-byte
type tag and encodes the value so that

- values of different types never share an encoding (``1``, ``True``, ``1.0``, ``np.int64(1)``,
  ``"1"`` and ``b"1"`` all differ), and
- equal values built in different ways share one (dicts and sets are sorted by the encoding of
  their entries, so neither insertion order nor ``PYTHONHASHSEED`` matters).

The byte layout of every kind is written down in ``docs/hashing.md`` and pinned by golden tests:
changing it changes every stored id.

Dispatch is on the exact type of the value, through dicts, because ``content_key`` runs for every
raw argument of every op call: hashing a small int or str costs well under a microsecond. numpy,
pandas and torch values are recognised by the module of their type, so hashing an int never
imports those libraries. Values of any other type are hashed through a canonicalising pickle.

Precedence for a type ``T`` (resolved once per type, then cached):

1. the built-in kinds (``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``,
   ``bytearray``, ``tuple``, ``list``, ``dict``, ``set``, ``frozenset``), exact types only;
2. an encoder registered for ``T`` itself with :func:`register_content_hasher`;
3. a ``__get_mandala_dict__`` method on ``T`` (compatibility with the original library);
4. an encoder registered for the nearest base class of ``T`` (in ``T.__mro__`` order);
5. numpy arrays and scalars, pandas frames/series/indexes/extension arrays, torch tensors;
6. the canonical pickle fallback; if pickling fails, :class:`UnhashableValueError`.
"""

from __future__ import annotations

import pickle
import struct
import sys
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from blake3 import blake3 as _blake3

from mandala.errors import MandalaError, UnhashableValueError
from mandala.hashing.digest import KEY_SIZE, Hasher, digest, digest_buffer

__all__ = ["content_key", "canonical_encoding", "register_content_hasher"]

Encoder = Callable[[Any, "set[int] | None"], bytes]
"""Internal encoder: (value, ids of the containers being encoded) -> canonical encoding."""

_U64 = struct.Struct("<Q").pack
_F64 = struct.Struct("<d").pack
_NAN = bytes.fromhex("000000000000f87f")
"""The one NaN: every NaN float is encoded as the quiet NaN 0x7ff8000000000000, whatever its sign
or payload, because those differ between platforms and operations that all print ``nan``."""

_CHUNK_BYTES = 8 << 20
"""Non-contiguous arrays are copied to C order this many bytes at a time, never all at once."""

_OBJECT_BATCH = 4096
"""Element encodings of object arrays are joined this many at a time before hashing."""


# --- built-in scalars: one-argument encoders, the hot path -------------------------------------


def _encode_none(_value: None) -> bytes:
    return b"N"


def _encode_bool(value: bool) -> bytes:
    return b"T" if value else b"F"


_INT_HEADERS = [b"i" + _U64(size) for size in range(65)]
_STR_HEADERS = [b"s" + _U64(size) for size in range(256)]
"""Precomputed tag + length prefixes: one list index instead of a pack and a concatenation on
the hot path (ints up to 64 bytes, strs up to 255 UTF-8 bytes)."""


def _encode_int(value: int) -> bytes:
    # bit_length() ignores the sign, and |v|.bit_length() // 8 + 1 bytes always hold v in two's
    # complement; the length is not always minimal for negative values, but it is fixed by v.
    size = (value.bit_length() >> 3) + 1
    if size < 65:
        return _INT_HEADERS[size] + value.to_bytes(size, "little", signed=True)
    return b"i" + _U64(size) + value.to_bytes(size, "little", signed=True)


def _encode_float(value: float) -> bytes:
    if value != value:
        return b"f" + _NAN
    return b"f" + _F64(value)


def _encode_complex(value: complex) -> bytes:
    real, imag = value.real, value.imag
    return b"c" + (_NAN if real != real else _F64(real)) + (_NAN if imag != imag else _F64(imag))


def _encode_str(value: str) -> bytes:
    # surrogatepass: lone surrogates are valid str values and must hash, not raise.
    raw = value.encode("utf-8", "surrogatepass")
    size = len(raw)
    if size < 256:
        return _STR_HEADERS[size] + raw
    return b"s" + _U64(size) + raw


def _encode_bytes(value: bytes) -> bytes:
    return b"b" + _U64(len(value)) + value


def _encode_bytearray(value: bytearray) -> bytes:
    return b"y" + _U64(len(value)) + bytes(value)


_SCALARS: dict[type, Callable[[Any], bytes]] = {
    type(None): _encode_none,
    bool: _encode_bool,
    int: _encode_int,
    float: _encode_float,
    complex: _encode_complex,
    str: _encode_str,
    bytes: _encode_bytes,
    bytearray: _encode_bytearray,
}
_scalar_encoder = _SCALARS.get


# --- errors -------------------------------------------------------------------------------------

_FIX = (
    "define __get_mandala_dict__() on its class to return a hashable description of the value,"
    " register an encoder with mandala.hashing.values.register_content_hasher(), wrap it with"
    " Ignore(...) if it should not count towards the call's identity, or pass a"
    " ValuePointer(...) that names it"
)


def _type_name(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    if module in (None, "builtins"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _cycle_error(value: object) -> UnhashableValueError:
    return UnhashableValueError(
        f"a value of type {_type_name(type(value))} contains itself (a reference cycle), so it"
        " has no canonical content; break the cycle, or define __get_mandala_dict__() to return"
        " an acyclic description of it"
    )


def _enter(value: object, path: set[int] | None) -> set[int]:
    """Mark a container as being encoded; a second visit on the same path is a cycle."""
    if path is None:
        return {id(value)}
    if id(value) in path:
        raise _cycle_error(value)
    path.add(id(value))
    return path


# --- dispatch -----------------------------------------------------------------------------------


def _encode(value: object, path: set[int] | None) -> bytes:
    """Return the canonical encoding of any value (the preimage of its content key)."""
    cls = type(value)
    scalar = _scalar_encoder(cls)
    if scalar is not None:
        return scalar(value)
    encoder = _resolved.get(cls)
    if encoder is None:
        encoder = _resolve(cls)
    return encoder(value, path)


def _encode_tuple(value: tuple[Any, ...], path: set[int] | None) -> bytes:
    # A tuple can only be part of a cycle through a list, dict or object, which are tracked.
    parts = [b"t", _U64(len(value))]
    for item in value:
        scalar = _scalar_encoder(type(item))
        parts.append(scalar(item) if scalar is not None else _encode(item, path))
    return b"".join(parts)


def _encode_list(value: list[Any], path: set[int] | None) -> bytes:
    path = _enter(value, path)
    parts = [b"l", _U64(len(value))]
    for item in value:
        scalar = _scalar_encoder(type(item))
        parts.append(scalar(item) if scalar is not None else _encode(item, path))
    path.discard(id(value))
    return b"".join(parts)


def _encode_dict(value: dict[Any, Any], path: set[int] | None) -> bytes:
    path = _enter(value, path)
    # Sorting by the encoding of the key (then of the value, for keys that encode alike such as
    # distinct NaN objects) works for any mix of key types and does not depend on hash seeds.
    entries = sorted((_encode(key, path), _encode(item, path)) for key, item in value.items())
    path.discard(id(value))
    parts = [b"d", _U64(len(entries))]
    for key, item in entries:
        parts.append(key)
        parts.append(item)
    return b"".join(parts)


def _encode_elements(tag: bytes, value: set[Any] | frozenset[Any], path: set[int] | None) -> bytes:
    elements = sorted(_encode(item, path) for item in value)
    return tag + _U64(len(elements)) + b"".join(elements)


def _encode_set(value: set[Any], path: set[int] | None) -> bytes:
    return _encode_elements(b"e", value, path)


def _encode_frozenset(value: frozenset[Any], path: set[int] | None) -> bytes:
    return _encode_elements(b"z", value, path)


_CONTAINERS: dict[type, Encoder] = {
    tuple: _encode_tuple,
    list: _encode_list,
    dict: _encode_dict,
    set: _encode_set,
    frozenset: _encode_frozenset,
}

_resolved: dict[type, Encoder] = dict(_CONTAINERS)
"""Type -> encoder, filled lazily by :func:`_resolve`; reset when a registration changes."""


class _Registration:
    """A user encoder: the value is hashed as ``R`` + encoding(name) + encoding(substitute)."""

    __slots__ = ("cls", "encoder", "name_encoding", "name")

    def __init__(self, cls: type, encoder: Callable[[Any], object], name: str) -> None:
        self.cls = cls
        self.encoder = encoder
        self.name = name
        self.name_encoding = _encode_str(name)

    def __call__(self, value: object, path: set[int] | None) -> bytes:
        path = _enter(value, path)
        try:
            substitute = self.encoder(value)
        except MandalaError:
            raise
        except Exception as exc:
            raise UnhashableValueError(
                f"the content hasher registered as {self.name!r} failed on a value of type"
                f" {_type_name(type(value))}: {type(exc).__name__}: {exc}"
            ) from exc
        if type(substitute) is type(value):
            raise UnhashableValueError(
                f"the content hasher registered as {self.name!r} returned another"
                f" {_type_name(type(value))}; it must return a simpler value (a tuple, dict,"
                " str, bytes, array...) that describes the original"
            )
        encoding = b"R" + self.name_encoding + _encode(substitute, path)
        path.discard(id(value))
        return encoding


_registered: dict[type, _Registration] = {}


def register_content_hasher(
    cls: type, encoder: Callable[[Any], object], *, name: str | None = None
) -> None:
    """Teach :func:`content_key` how to hash values of ``cls`` and its subclasses.

    The encoder returns a *substitute*: any value with a canonical encoding (a tuple of fields,
    a dict, bytes, an array...) that determines the original. The key is then derived from
    ``name`` and the substitute, so two registered types returning equal substitutes do not
    collide. The registration for the exact type wins; then ``__get_mandala_dict__``; then the
    registration of the nearest base class; then the built-in numpy/pandas/torch encodings and
    the pickle fallback. Registering again for the same class replaces the encoder.

    Args:
        cls: the class whose instances (and subclasses' instances) the encoder handles.
        encoder: called with the value, returns its substitute (not another ``cls``).
        name: a stable tag that goes into every key of this type; defaults to the class's
            ``module.qualname``. Pass an explicit name to keep keys stable across renames.

    Raises:
        TypeError: ``cls`` is not a class, or ``encoder`` is not callable.
        ValueError: ``cls`` is a built-in kind (int, str, list, ...) whose encoding is fixed.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_content_hasher expects a class, got {cls!r}")
    if not callable(encoder):
        raise TypeError(f"register_content_hasher expects a callable encoder, got {encoder!r}")
    if cls in _SCALARS or cls in _CONTAINERS:
        raise ValueError(
            f"{cls.__qualname__} has a fixed canonical encoding that cannot be replaced; register"
            " a subclass, or wrap values in a class of your own"
        )
    _registered[cls] = _Registration(cls, encoder, name or f"{cls.__module__}.{cls.__qualname__}")
    _resolved.clear()
    _resolved.update(_CONTAINERS)


def _resolve(cls: type) -> Encoder:
    encoder = _find_encoder(cls)
    _resolved[cls] = encoder
    return encoder


def _find_encoder(cls: type) -> Encoder:
    registration = _registered.get(cls)
    if registration is not None:
        return registration
    if getattr(cls, "__get_mandala_dict__", None) is not None:
        return _encode_mandala_dict
    for base in cls.__mro__[1:]:
        registration = _registered.get(base)
        if registration is not None:
            return registration
    module = getattr(cls, "__module__", None)
    library = module.partition(".")[0] if isinstance(module, str) else ""
    if library == "numpy":
        found = _numpy_encoder(cls)
    elif library == "pandas":
        found = _pandas_encoder(cls)
    elif library == "torch":
        found = _torch_encoder(cls)
    else:
        found = None
    return found if found is not None else _encode_pickled


def _encode_mandala_dict(value: Any, path: set[int] | None) -> bytes:
    path = _enter(value, path)
    substitute = value.__get_mandala_dict__()
    if type(substitute) is type(value):
        raise UnhashableValueError(
            f"{_type_name(type(value))}.__get_mandala_dict__() returned another"
            f" {type(value).__qualname__}; it must return a plain description (usually a dict)"
        )
    encoding = b"M" + _encode(substitute, path)
    path.discard(id(value))
    return encoding


# --- numpy --------------------------------------------------------------------------------------


def _numpy_encoder(cls: type) -> Encoder | None:
    import numpy as np

    # Exact ndarray (and memmap, a file-backed ndarray of the same value) only: subclasses such
    # as np.matrix or masked arrays carry more than their buffer and go through pickle.
    if cls is np.ndarray or cls is np.memmap:
        return _encode_ndarray
    if issubclass(cls, np.generic):
        return _encode_numpy_scalar
    return None


def _encode_dtype(dtype: Any) -> bytes:
    # dtype.str fixes kind, byte order, item size and datetime unit; structured dtypes need the
    # field names, formats and shapes, which dtype.descr lists (as a list of tuples).
    if dtype.names is not None:
        return _encode_list(dtype.descr, None)
    return _encode_str(dtype.str)


def _encode_ndarray(value: Any, path: set[int] | None) -> bytes:
    """``A`` + dtype + ndim + shape + 16-byte key of the C-order data."""
    dtype = value.dtype
    header = [b"A", _encode_dtype(dtype), _U64(value.ndim)]
    header.extend(_U64(size) for size in value.shape)
    if dtype.hasobject:
        data_key = _elements_key(value, path)
    elif value.flags.c_contiguous:
        data_key = digest_buffer(_byte_view(value))
    else:
        hasher = Hasher()
        for chunk in _c_order_chunks(value):
            hasher.update(_byte_view(chunk))
        data_key = hasher.key()
    header.append(data_key)
    return b"".join(header)


def _byte_view(array: Any) -> memoryview:
    """The raw bytes of a C-contiguous array, without a copy (works for every non-object dtype,
    including those a memoryview cannot describe, such as datetime64)."""
    import numpy as np

    return memoryview(array.reshape(-1).view(np.uint8))


def _c_order_chunks(array: Any) -> Iterator[Any]:
    """C-contiguous pieces whose concatenation is the C-order buffer of ``array``.

    Copying a large strided array in one go would double its memory; copying rows a few MiB at
    a time keeps the extra memory at ``_CHUNK_BYTES`` whatever the array's size.
    """
    import numpy as np

    if array.flags.c_contiguous:
        yield array
        return
    if array.nbytes <= _CHUNK_BYTES:
        yield np.ascontiguousarray(array)
        return
    rows = array.shape[0]
    row_bytes = array.nbytes // rows
    if row_bytes > _CHUNK_BYTES:
        for row in array:
            yield from _c_order_chunks(row)
        return
    step = _CHUNK_BYTES // row_bytes
    for start in range(0, rows, step):
        yield np.ascontiguousarray(array[start : start + step])


def _elements_key(array: Any, path: set[int] | None) -> bytes:
    """Key of the concatenated encodings of an object array's elements, in C order."""
    path = _enter(array, path)
    hasher = Hasher()
    batch: list[bytes] = []
    for item in array.flat:
        batch.append(_encode(item, path))
        if len(batch) >= _OBJECT_BATCH:
            hasher.update(b"".join(batch))
            batch.clear()
    hasher.update(b"".join(batch))
    path.discard(id(array))
    return hasher.key()


def _encode_numpy_scalar(value: Any, path: set[int] | None) -> bytes:
    """``n`` + dtype + the scalar's raw bytes (or, for object fields, its ``.item()``)."""
    dtype = value.dtype
    if dtype.hasobject:
        return b"n" + _encode_dtype(dtype) + _encode(value.item(), path)
    raw: bytes = value.tobytes()
    return b"n" + _encode_dtype(dtype) + _U64(len(raw)) + raw


# --- pandas -------------------------------------------------------------------------------------


def _pandas_encoder(cls: type) -> Encoder | None:
    import pandas as pd

    if issubclass(cls, pd.DataFrame):
        return _encode_dataframe
    if issubclass(cls, pd.Series):
        return _encode_series
    if issubclass(cls, pd.Index):
        return _encode_index
    if issubclass(cls, pd.api.extensions.ExtensionArray):
        return _encode_extension_array
    return None  # Timestamp, NA, Period, ...: pickled


def _encode_dataframe(value: Any, path: set[int] | None) -> bytes:
    """``D`` + columns index + row index + column count + each column's values, by position."""
    path = _enter(value, path)
    parts = [
        b"D",
        _encode_index(value.columns, path),
        _encode_index(value.index, path),
        _U64(value.shape[1]),
    ]
    # Column by column, so that the block layout pandas chose does not matter.
    for _, column in value.items():
        parts.append(_encode_pandas_values(column.array, path))
    path.discard(id(value))
    return b"".join(parts)


def _encode_series(value: Any, path: set[int] | None) -> bytes:
    """``S`` + name + index + values."""
    path = _enter(value, path)
    encoding = (
        b"S"
        + _encode(value.name, path)
        + _encode_index(value.index, path)
        + _encode_pandas_values(value.array, path)
    )
    path.discard(id(value))
    return encoding


def _encode_index(value: Any, path: set[int] | None) -> bytes:
    """``I`` + name + values, or for a MultiIndex ``J`` + levels + (name + values) per level."""
    import pandas as pd

    if isinstance(value, pd.MultiIndex):
        parts = [b"J", _U64(value.nlevels)]
        for level, name in enumerate(value.names):
            parts.append(_encode(name, path))
            parts.append(_encode_pandas_values(value.get_level_values(level).array, path))
        return b"".join(parts)
    # A RangeIndex is encoded by its values, so it equals the Index of the same int64 values.
    return b"I" + _encode(value.name, path) + _encode_pandas_values(value.array, path)


def _encode_extension_array(value: Any, path: set[int] | None) -> bytes:
    """``V`` + values, for a pandas array given directly (``pd.array(...)``, ``pd.Categorical``)."""
    return b"V" + _encode_pandas_values(value, path)


def _encode_pandas_values(array: Any, path: set[int] | None) -> bytes:
    """The values of one column, index level or pandas array, with their dtype."""
    import pandas as pd

    arrays = pd.arrays
    # Exact type: StringArray subclasses NumpyExtensionArray but its dtype ("str") must count.
    if type(array) is arrays.NumpyExtensionArray:
        return _encode_ndarray(array.to_numpy(), path)
    if isinstance(array, (arrays.DatetimeArray, arrays.TimedeltaArray)):
        if getattr(array, "tz", None) is None:
            return _encode_ndarray(array.to_numpy(), path)  # datetime64/timedelta64, NaT kept
        # Instants in UTC, plus the dtype (unit and time zone) as text.
        naive = array.tz_convert(None).to_numpy()
        return b"Z" + _encode_str(str(array.dtype)) + _encode_ndarray(naive, path)
    if isinstance(array, pd.Categorical):
        return (
            b"C"
            + _encode_bool(bool(array.ordered))
            + _encode_index(array.categories, path)
            + _encode_ndarray(array.codes, path)
        )
    if isinstance(array, (arrays.IntegerArray, arrays.FloatingArray, arrays.BooleanArray)):
        numpy_dtype = array.dtype.numpy_dtype
        filled = array.to_numpy(dtype=numpy_dtype, na_value=numpy_dtype.type(0))
        return (
            b"K"
            + _encode_str(str(array.dtype))
            + _encode_ndarray(array.isna(), path)
            + _encode_ndarray(filled, path)
        )
    # Any other extension dtype (string, period, interval, sparse, arrow...): element by element.
    return (
        b"x" + _encode_str(str(array.dtype)) + _encode_ndarray(array.to_numpy(dtype=object), path)
    )


# --- torch --------------------------------------------------------------------------------------


def _torch_encoder(cls: type) -> Encoder | None:
    torch = sys.modules.get("torch")
    if torch is not None and issubclass(cls, torch.Tensor):
        return _encode_tensor
    return None


_TORCH_SAME_SIZE_INT = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


def _encode_tensor(value: Any, _path: set[int] | None) -> bytes:
    """``X`` + dtype name + ndim + shape + 16-byte key of the C-order data (on the CPU)."""
    torch = sys.modules["torch"]
    tensor = value.detach()
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    tensor = tensor.cpu().resolve_conj().resolve_neg().contiguous()
    flat = tensor.reshape(-1)
    try:
        array = flat.numpy()
    except (TypeError, RuntimeError):
        # bfloat16 and other dtypes numpy lacks: the same bits, seen as integers of equal size.
        integer = getattr(torch, _TORCH_SAME_SIZE_INT[flat.element_size()])
        array = flat.view(integer).numpy()
    parts = [b"X", _encode_str(str(tensor.dtype)), _U64(tensor.dim())]
    parts.extend(_U64(size) for size in tensor.shape)
    parts.append(digest_buffer(_byte_view(array)))
    return b"".join(parts)


# --- everything else: a canonicalising pickle ---------------------------------------------------

_PICKLE_NATIVE = frozenset({type(None), bool, int, float, tuple, list})
"""Types the pickler writes itself: deterministic, and tuples/lists keep the pickle memo, so
objects that refer back to each other (parent pointers) still pickle."""


class _CanonicalPickler(pickle.Pickler):
    """A protocol-5 pickler whose output does not depend on hash seeds or insertion order.

    CPython's C pickler never calls ``reducer_override`` for exact ``dict``, ``set`` and
    ``frozenset`` (they have built-in fast paths), but it calls ``persistent_id`` for every
    object, so that is where values are canonicalised:

    - str/bytes/bytearray/complex are replaced by their canonical encoding, so that whether two
      equal strings are one object (memo reference) or two does not change the bytes;
    - a dict becomes its (key encoding, value) pairs sorted by key encoding, with the values
      pickled in this same stream (so reference cycles through attribute dicts still work);
    - sets, numpy/pandas/torch values, registered types and ``__get_mandala_dict__`` objects are
      replaced by their canonical encoding.
    """

    def __init__(self, file: Any, path: set[int]) -> None:
        super().__init__(file, protocol=5)
        self._path = path

    def persistent_id(self, obj: Any) -> Any:
        cls = type(obj)
        if cls in _PICKLE_NATIVE:
            return None
        scalar = _scalar_encoder(cls)
        if scalar is not None:
            return scalar(obj)
        path = self._path
        if cls is dict:
            pairs = sorted(
                ((_encode(key, path), item) for key, item in obj.items()), key=_first_item
            )
            return ("d", tuple(pairs))
        encoder = _resolved.get(cls)
        if encoder is None:
            encoder = _resolve(cls)
        if encoder is _encode_pickled:
            return None
        return encoder(obj, path)


_first_item = itemgetter(0)


class _HashWriter:
    """A write-only file that feeds a hasher, so pickles are hashed as they stream out."""

    __slots__ = ("write",)

    def __init__(self, hasher: Hasher) -> None:
        self.write = hasher.update


def _encode_pickled(value: object, path: set[int] | None) -> bytes:
    """``P`` + 16-byte key of the value's canonical pickle stream."""
    path = _enter(value, path)
    hasher = Hasher()
    try:
        _CanonicalPickler(_HashWriter(hasher), path).dump(value)
    except (MandalaError, RecursionError):
        raise
    except Exception as exc:
        raise UnhashableValueError(
            f"a value of type {_type_name(type(value))} cannot be hashed: it has no canonical"
            f" encoding and pickling it failed ({type(exc).__name__}: {exc}); to fix this, {_FIX}"
        ) from exc
    path.discard(id(value))
    return b"P" + hasher.key()


# --- public entry points ------------------------------------------------------------------------


def canonical_encoding(value: object) -> bytes:
    """Return the canonical, type-tagged encoding of ``value`` (the preimage of its key).

    Raises:
        UnhashableValueError: the value (or something inside it) has no canonical encoding and
            cannot be pickled, contains itself, or is nested too deeply.
    """
    try:
        return _encode(value, None)
    except RecursionError:
        raise UnhashableValueError(
            f"a value of type {_type_name(type(value))} is nested too deeply to hash, or contains"
            " a reference cycle through a dict; flatten it, or define __get_mandala_dict__() to"
            " return a shallower description"
        ) from None


def content_key(value: object) -> bytes:
    """Return the 16-byte content key of ``value``: BLAKE3 of its canonical encoding.

    Equal values of the same type get equal keys across processes, platforms and hash seeds;
    values of different types never share a key. See ``docs/hashing.md`` for the encoding.

    Raises:
        UnhashableValueError: as :func:`canonical_encoding`.
    """
    scalar = _scalar_encoder(type(value))
    if scalar is not None:
        # Same as digest(scalar(value)), without a function call: this is the per-call hot path.
        key: bytes = _blake3(scalar(value)).digest(KEY_SIZE)
        return key
    return digest(canonical_encoding(value))
