"""The ``npy`` codec: numpy arrays of non-object dtypes, written without copying their buffer.

Internal to ``mandala.hashing.serialization``, which registers it as a format.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO


def _type_name(value: object) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


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
