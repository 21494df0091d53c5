"""Reading the pickles of an original (pymandala 0.2) store without running foreign code.

The original keeps everything as ``joblib.dump`` bytes: values in ``atoms``, its own ``Ref`` and
``Op`` objects in ``shapes`` and ``ops``, its code versioner in ``sources``. Unpickling calls
whatever callables a pickle names, so a store from someone else could run any code. Here every
global a pickle names goes through :meth:`RestrictedUnpickler.find_class`:

- the original's own classes (``mandala.model.*``, ``mandala.deps.*``) become inert stand-ins
  (:class:`Record` subclasses holding the pickled state), so the original need not be installed;
- value types on a fixed allow-list (builtins, ``datetime``, ``decimal``, numpy arrays, pandas
  frames, series and indexes) load as themselves;
- anything else raises :class:`~mandala.errors.UnsafePickleError` naming the type, unless the
  caller passed ``allow_pickle=True`` (the store is trusted: then user classes are imported and
  loaded as plain pickle would).

joblib (``pip install joblib``) reads the arrays that ``joblib.dump`` writes after their pickle
header; it is imported only here, when a migration runs.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from mandala.errors import MigrationError, UnsafePickleError

__all__ = ["Record", "RestrictedUnpickler", "SAFE_GLOBALS", "load_pickle", "loads_value"]


class Record:
    """Inert stand-in for a class of the original library: it only keeps the pickled state.

    ``original`` says which original class it stands for (``module.name``); ``args`` are the
    constructor arguments of a ``REDUCE``; attributes come from the pickled ``__dict__``.
    """

    original = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["args"] = args
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["state"] = state

    def __getattr__(self, attribute: str) -> Any:
        # Fields that an older pickle lacks read as None instead of failing the migration.
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return None

    def __repr__(self) -> str:
        return f"<original {type(self).original}>"


_RECORD_CLASSES: dict[tuple[str, str], type[Record]] = {}


def _record_class(module: str, name: str) -> type[Record]:
    cls = _RECORD_CLASSES.get((module, name))
    if cls is None:
        cls = type(name, (Record,), {"original": f"{module}.{name}"})
        _RECORD_CLASSES[(module, name)] = cls
    return cls


def _is_original(module: str) -> bool:
    return module == "mandala" or module.startswith(("mandala.", "mandala_"))


_NUMPY = ("numpy.core", "numpy._core")
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [
        *(
            ("builtins", n)
            for n in (
                "set",
                "frozenset",
                "complex",
                "slice",
                "range",
                "bytearray",
                "list",
                "dict",
                "tuple",
                "int",
                "float",
                "str",
                "bytes",
                "bool",
                "object",
            )
        ),
        ("collections", "OrderedDict"),
        ("collections", "deque"),
        ("collections", "Counter"),
        ("collections", "defaultdict"),
        *(("datetime", n) for n in ("datetime", "date", "time", "timedelta", "timezone")),
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
        ("uuid", "UUID"),
        *(
            (m, n)
            for m in ("pathlib", "pathlib._local")
            for n in ("Path", "PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath")
        ),
        ("copyreg", "_reconstructor"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        *((m + ".multiarray", n) for m in _NUMPY for n in ("_reconstruct", "scalar")),
        *((m + ".numeric", "_frombuffer") for m in _NUMPY),
        ("pandas.core.frame", "DataFrame"),
        ("pandas.core.series", "Series"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("pandas.core.internals.managers", "SingleBlockManager"),
        ("pandas.core.internals.blocks", "new_block"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas._libs.internals", "BlockPlacement"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas.core.indexes.base", "Index"),
        ("pandas.core.indexes.range", "RangeIndex"),
        ("pandas.core.indexes.multi", "MultiIndex"),
        ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"),
        ("pandas.core.indexes.datetimes", "DatetimeIndex"),
        ("pandas.core.arrays.datetimes", "DatetimeArray"),
        ("pandas.core.arrays.categorical", "Categorical"),
        ("pandas.core.indexes.category", "CategoricalIndex"),
        ("pandas.core.dtypes.dtypes", "CategoricalDtype"),
        ("pandas.core.dtypes.dtypes", "DatetimeTZDtype"),
        ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
        ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
        ("pandas._libs.tslibs.nattype", "__nat_unpickle"),
        ("pandas.core.flags", "Flags"),
    ]
)
"""``(module, name)`` globals that load as themselves without ``allow_pickle``: the types of
common values and the functions their pickles use to rebuild them; none of them can be made to
import or run other code."""


def _numpy_dtype_class(module: str, name: str) -> bool:
    # numpy >= 2 pickles dtypes of arrays as classes of numpy.dtypes (Int64DType...).
    return module == "numpy.dtypes" and name.endswith("DType")


# The pure-Python unpickler: its BUILD opcode can be overridden (joblib arrays follow their
# pickled header in the stream), which the C one does not allow. It is untyped in typeshed.
# SLF001: only the pure-Python unpickler lets BUILD be overridden
_PurePythonUnpickler: Any = pickle._Unpickler  # noqa: SLF001


class RestrictedUnpickler(_PurePythonUnpickler):
    """A joblib-aware unpickler whose globals are restricted as the module doc says.

    Args:
        file: the pickle bytes, as a binary file.
        allow_pickle: load globals outside the allow-list too (trusted stores only).
        stand_in_others: load globals outside the allow-list as inert :class:`Record`
            stand-ins (for the original's own objects, such as its versioner, which hold
            bytecode and other types that are only read as data here).
    """

    def __init__(
        self, file: io.BytesIO, allow_pickle: bool = False, stand_in_others: bool = False
    ) -> None:
        super().__init__(file)
        self.file_handle = file
        self.allow_pickle = allow_pickle
        self.stand_in_others = stand_in_others
        self.mmap_mode = None
        self.np = _numpy()

    def find_class(self, module: str, name: str) -> Any:
        if _is_original(module):
            return _record_class(module, name)
        if (module, name) in SAFE_GLOBALS or _numpy_dtype_class(module, name):
            return super().find_class(module, name)
        if self.stand_in_others:
            return _record_class(module, name)
        if self.allow_pickle:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"the store holds a value of type {module}.{name}, which is not on the list of types "
            "that load without running their code; if you trust the store, migrate with "
            "allow_pickle=True (CLI: --allow-pickle)"
        )

    def _load_build(self) -> None:
        _PurePythonUnpickler.load_build(self)
        wrapper_type = _array_wrapper_type()
        top: Any = self.stack[-1]
        if isinstance(top, wrapper_type):
            self.stack.pop()
            if top.dtype.hasobject:
                # An object array is a nested pickle: read it under the same restrictions.
                array = RestrictedUnpickler(
                    self.file_handle, self.allow_pickle, self.stand_in_others
                ).load()
            else:
                array = top.read_array(self, True)
            self.stack.append(array)


RestrictedUnpickler.dispatch = {
    **_PurePythonUnpickler.dispatch,
    pickle.BUILD[0]: RestrictedUnpickler._load_build,  # noqa: SLF001 - this module's class
}


def _numpy() -> Any:
    import numpy

    return numpy


def _array_wrapper_type() -> Any:
    try:
        from joblib.numpy_pickle import NumpyArrayWrapper
    except ImportError as error:  # pragma: no cover - joblib is in the migrate extra
        raise MigrationError(
            "reading a store of the original mandala needs joblib, which wrote its values; "
            "pip install joblib (or pymandala[migrate])"
        ) from error
    return NumpyArrayWrapper


def load_pickle(data: bytes, allow_pickle: bool = False, stand_in_others: bool = False) -> Any:
    """Unpickle ``joblib.dump`` bytes of the original store (see the module doc).

    Raises:
        UnsafePickleError: the pickle names a type outside the allow-list (and not allowed).
        MigrationError: joblib is not installed.
    """
    _array_wrapper_type()
    return RestrictedUnpickler(io.BytesIO(data), allow_pickle, stand_in_others).load()


def loads_value(data: bytes, allow_pickle: bool = False) -> Any:
    """A value of the original's ``atoms`` table: pickled twice (the bytes of the value's own
    ``joblib.dump`` were dumped again by the table)."""
    inner = load_pickle(data, allow_pickle)
    if not isinstance(inner, bytes):
        return inner
    return load_pickle(inner, allow_pickle)
