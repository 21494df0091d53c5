"""The ``pandas`` codec: DataFrames and Series as npy arrays and builtin values (no pickle).

Internal to ``mandala.hashing.serialization``, which registers it as a format.
"""

from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO

from mandala.hashing.codecs_builtin import _SCALAR_DUMPS, _builtin_dumps, _builtin_loads
from mandala.hashing.codecs_npy import _npy_dump, _npy_load, _type_name

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


def _part(array_like: Any) -> tuple[tuple[Any, ...], Any] | None:
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


def _index_header(index: Any, arrays: list[Any]) -> tuple[Any, ...] | None:
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


def _columns_header(columns: Any) -> tuple[Any, ...] | None:
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


def _rebuild_part(encoding: tuple[Any, ...], file: BinaryIO) -> Any:
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


def _rebuild_index(header: tuple[Any, ...], file: BinaryIO) -> Any:
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
