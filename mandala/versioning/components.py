"""Components: the functions, classes and global variables a call's version is made of.

A component is named by where it lives, ``(module, qualname)``, so that it can be found again in
a later process. Its *content* is a hash of its normalized source text (code) or of its value
(globals); which components belong to the user's project (and must be tracked) is decided by
the dependency roots given to the Storage.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import linecache
import os
import sys
import textwrap
import types
from collections.abc import Sequence
from typing import Any, NamedTuple

from mandala.engine.op import Op
from mandala.errors import UnhashableValueError, VersioningError
from mandala.hashing import ids
from mandala.hashing.digest import digest
from mandala.hashing.values import content_key
from mandala.model.refs import Ref

__all__ = [
    "Kind",
    "ComponentKey",
    "Roots",
    "TRACKED_ATTRIBUTE",
    "original_function",
    "is_tracked",
    "normalized_source",
    "code_content",
    "global_content",
    "resolve",
    "source_file",
    "MISSING",
    "code_fingerprint",
    "checked_key",
]

TRACKED_ATTRIBUTE = "__mandala_tracked__"
"""Set by ``@track``: on a wrapper, the function it wraps; on a class, True."""

MISSING = object()
"""What :func:`resolve` returns for a component that no longer exists."""


class Kind(str, enum.Enum):
    CODE = "code"
    GLOBAL = "global"


class ComponentKey(NamedTuple):
    module: str
    qualname: str


class Roots:
    """Which modules belong to the project: ``"__main__"``, a folder, or a single file.

    Args:
        deps_path: ``"__main__"`` (only code defined in the running script or notebook), a
            folder (modules whose file lies under it), or a ``.py`` file.
    """

    def __init__(self, deps_path: str | os.PathLike[str]) -> None:
        text = os.fspath(deps_path)
        self.main_only = text == "__main__"
        self.path = None if self.main_only else os.path.realpath(os.path.abspath(text))
        if self.path is not None and not os.path.exists(self.path):
            raise ValueError(
                f"deps_path {text!r} does not exist; pass the folder of your project's code, a "
                "module file, or '__main__'"
            )
        self._owned: dict[str, bool] = {}

    def describe(self) -> list[str]:
        """The roots as the store records them."""
        return [] if self.main_only else [str(self.path)]

    def owns_module(self, module: str | None) -> bool:
        """Whether code of ``module`` belongs to the project."""
        if module is None:
            return False
        if module == "__main__":
            return True
        if self.main_only:
            return False
        known = self._owned.get(module)
        if known is not None:
            return known
        loaded = sys.modules.get(module)
        file = getattr(loaded, "__file__", None) if loaded is not None else None
        owned = False
        if file:
            real = os.path.realpath(file)
            root = str(self.path)
            owned = real == root or real.startswith(root.rstrip(os.sep) + os.sep)
        if loaded is not None:
            self._owned[module] = owned
        return owned

    def owns(self, obj: Any) -> bool:
        return self.owns_module(getattr(obj, "__module__", None))


def original_function(obj: Any) -> Any:
    """The plain function behind an op, a ``@track`` wrapper, or a static/class method."""
    if isinstance(obj, Op):
        obj = obj.func
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property) and obj.fget is not None:
        obj = obj.fget
    wrapped = getattr(obj, TRACKED_ATTRIBUTE, None)
    if wrapped is not None and wrapped is not True:
        obj = wrapped
    return obj


def is_tracked(obj: Any) -> bool:
    """Whether ``obj`` is an op, or a function or class decorated with ``@track`` (an instance
    of a tracked class is not: its state is data, hashed like any global value)."""
    if isinstance(obj, Op):
        return True
    if isinstance(obj, type):
        return obj.__dict__.get(TRACKED_ATTRIBUTE) is True
    if isinstance(obj, types.FunctionType):
        return getattr(obj, TRACKED_ATTRIBUTE, None) is not None
    return False


def normalized_source(obj: Any) -> str:
    """The source text of a function or class: dedented, trailing whitespace removed.

    Raises:
        OSError, TypeError: the source cannot be found (a builtin, code typed in a bare REPL).
    """
    target = original_function(obj)
    file = inspect.getsourcefile(target) if not isinstance(target, type) else None
    if file:
        linecache.checkcache(file)
    text = textwrap.dedent(inspect.getsource(target))
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def code_content(obj: Any) -> tuple[bytes, str]:
    """``(content hash, source)`` of a function or class."""
    source = normalized_source(obj)
    return ids.code_content_key(source), source


def global_content(value: Any) -> tuple[bytes, str, bool]:
    """``(content hash, short description, hashable)`` of a global variable's value."""
    description = _short_repr(value)
    if isinstance(value, Ref):
        return ids.global_content_key(value.content_key), description, True
    try:
        key = content_key(value)
    except (UnhashableValueError, TypeError, ValueError):
        return ids.UNKNOWN_GLOBAL_CONTENT, description, False
    return ids.global_content_key(key), description, True


def _short_repr(value: Any, limit: int = 200) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break versioning
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve(key: ComponentKey, import_missing: bool = True) -> Any:
    """The object a component names in the running code, or :data:`MISSING`."""
    module = sys.modules.get(key.module)
    if module is None:
        if not import_missing or key.module == "__main__":
            return MISSING
        try:
            module = importlib.import_module(key.module)
        except Exception:  # noqa: BLE001 - any import failure means the component is missing
            return MISSING
    obj: Any = module
    for part in key.qualname.split("."):
        if isinstance(obj, type):
            found = obj.__dict__.get(part, MISSING)
            if found is MISSING:
                found = getattr(obj, part, MISSING)
        else:
            found = getattr(obj, part, MISSING)
        if found is MISSING:
            return MISSING
        obj = found
    return _wrapped_named(obj, key.qualname)


def _wrapped_named(obj: Any, qualname: str) -> Any:
    """``obj``, or the function of that qualname it wraps (a decorator that did not copy the
    wrapped function's name leaves the module attribute pointing at its wrapper)."""
    target = original_function(obj)
    if not isinstance(target, types.FunctionType) or target.__qualname__ == qualname:
        return obj
    seen: set[int] = set()
    stack = [target]
    while stack:
        function = stack.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        if function.__qualname__ == qualname:
            return function
        inner = getattr(function, "__wrapped__", None)
        if isinstance(inner, types.FunctionType):
            stack.append(inner)
        for cell in function.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(content, types.FunctionType):
                stack.append(content)
    return obj


def checked_key(obj: Any, what: str) -> ComponentKey:
    """The component key of a function, method or op given by the user.

    Raises:
        VersioningError: ``obj`` is not a function, method or op.
    """
    target = original_function(obj)
    if not isinstance(target, types.FunctionType):
        raise VersioningError(
            f"{what} takes a function, a method (Class.method) or an op, not "
            f"{type(obj).__name__} {_short_repr(obj, 60)}"
        )
    return ComponentKey(str(target.__module__), str(target.__qualname__))


_FINGERPRINTS: dict[int, tuple[Any, bytes]] = {}


def code_fingerprint(obj: Any) -> bytes | None:
    """A hash of the compiled code of a function as loaded in this process (None for objects
    without code). Two processes that loaded the same source agree (whatever their hash seed,
    file paths or reference counts); a process still running an older version of a module does
    not, even though the file (and so the source) is new."""
    code = getattr(original_function(obj), "__code__", None)
    if code is None:
        return None
    cached = _FINGERPRINTS.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    parts: list[bytes] = []
    _code_parts(code, parts)
    fingerprint = digest(b"\x00".join(parts))
    if len(_FINGERPRINTS) > 100_000:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[id(code)] = (code, fingerprint)
    return fingerprint


def _code_parts(code: types.CodeType, parts: list[bytes]) -> None:
    """What a code object does, as bytes: its bytecode, names and constants (not its file, line
    numbers or anything that differs between two loads of the same source)."""
    parts.append(code.co_code)
    header = (
        code.co_name,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
    )
    parts.append(repr(header).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_parts(const, parts)
        else:
            parts.append(_const_text(const).encode())


def _const_text(const: Any) -> str:
    """A constant as text independent of the hash seed (frozenset order is not)."""
    if isinstance(const, tuple):
        return "(" + ",".join(_const_text(item) for item in const) + ")"
    if isinstance(const, frozenset):
        return "frozenset(" + ",".join(sorted(_const_text(item) for item in const)) + ")"
    return f"{type(const).__name__}:{const!r}"


def source_file(obj: Any) -> str | None:
    """The real path of the file a function or class was defined in (None if none)."""
    target = original_function(obj)
    try:
        file = inspect.getsourcefile(target)
    except TypeError:
        return None
    if not file or not os.path.exists(file):
        return None
    return os.path.realpath(file)


def is_plain_function(obj: Any) -> bool:
    return isinstance(obj, types.FunctionType)


def key_of(obj: Any) -> ComponentKey:
    target = original_function(obj)
    return ComponentKey(str(target.__module__), str(target.__qualname__))


def describe_keys(keys: Sequence[ComponentKey]) -> str:
    return ", ".join(f"{k.module}.{k.qualname}" for k in keys)
