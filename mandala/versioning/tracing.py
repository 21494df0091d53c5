"""Tracing what a versioned call actually used: the functions it ran and the globals it read.

Two tracers, chosen with ``Storage(tracer_impl=...)``:

- :class:`DecTracer` (default), as in the original library: an op's function, and every
  ``@track``-ed function it calls, run as copies whose globals are a :class:`_TracingGlobals`
  view of their module's namespace, so each global name lookup is seen. Calls of tracked
  functions are recorded by their ``@track`` wrapper; global variables read are recorded with a
  hash of their value; a function or class of the project that is used but not tracked is an
  error (its changes would go unnoticed).
- :class:`SysTracer`: a ``sys.setprofile`` hook records every Python function of the project
  that runs during the call, with no ``@track`` needed; it does not see global variables. It is
  slower for call-heavy code, and sees code reached through any path (module attributes,
  callbacks), which the decorator tracer cannot.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import sys
import types
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from mandala.engine.declaration import OpDeclaration
from mandala.engine.op import Op
from mandala.engine.versions import ACTIVE_TRACER
from mandala.errors import VersioningError
from mandala.versioning.components import (
    TRACKED_ATTRIBUTE,
    ComponentKey,
    Roots,
    code_fingerprint,
    global_content,
    is_tracked,
    original_function,
    resolve,
)

__all__ = [
    "DecTracer",
    "SysTracer",
    "Trace",
    "TraceSummary",
    "TracerConfig",
    "TracingSpec",
    "track",
]

T = TypeVar("T")

_TRACED_COPIES: weakref.WeakKeyDictionary[Any, types.FunctionType] = weakref.WeakKeyDictionary()
_GLOBAL_VIEWS: dict[int, _TracingGlobals] = {}


class TracerConfig:
    """How calls are traced (the Storage's tracing options)."""

    def __init__(
        self,
        roots: Roots,
        track_globals: bool = True,
        skip_unhashable_globals: bool = True,
        skip_globals_silently: bool = False,
        strict: bool = False,
    ) -> None:
        self.roots = roots
        self.track_globals = track_globals
        self.skip_unhashable_globals = skip_unhashable_globals
        self.skip_globals_silently = skip_globals_silently
        self.strict = strict


class Trace:
    """What one versioned call used, filled in while it runs.

    Attributes:
        code: the functions/classes that ran, by component key (the plain function).
        globals: global variables read: key -> (content hash, description, value, hashable).
        warnings: messages to report once the call is over (unhashable globals...).
    """

    def __init__(self, config: TracerConfig, op: OpDeclaration) -> None:
        self.config = config
        self.op = op
        self.code: dict[ComponentKey, Any] = {}
        self.globals: dict[ComponentKey, tuple[bytes, str, Any, bool]] = {}
        self.warnings: list[str] = []
        self.views: dict[int, _TracingGlobals] = {}
        self._declared = {id(original_function(dep)) for dep in op.deps}
        self.sys_mode = False
        """Set by SysTracer: code runs as it is (the profiler sees it), nothing is copied."""

    # ------------------------------------------------------------------ recording

    def record_code(self, function: Any) -> None:
        target = original_function(function)
        qualname = getattr(target, "__qualname__", None)
        module = getattr(target, "__module__", None)
        if qualname is None or module is None or "<locals>" in qualname:
            # A nested function's code is part of the source of the function defining it.
            return
        self.code.setdefault(ComponentKey(module, qualname), target)

    def call_op(self, op: OpDeclaration, call: Callable[[Callable[..., Any]], Any]) -> Any:
        """A nested op call inside the traced call: record it and trace its body."""
        self.record_code(op.func)
        return call(op.func if self.sys_mode else self.traced(op.func))

    def call_function(self, function: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """A ``@track``-ed function called during the traced call."""
        self.record_code(function)
        if self.sys_mode:
            return function(*args, **kwargs)
        return self.traced(function)(*args, **kwargs)

    def traced(self, function: Any) -> Any:
        """``function`` running with its global lookups seen by this trace."""
        if not isinstance(function, types.FunctionType):
            return function
        copy = _TRACED_COPIES.get(function)
        if copy is None:
            view = _view_of(function.__globals__)
            copy = types.FunctionType(
                function.__code__,
                view,
                function.__name__,
                function.__defaults__,
                self._traced_closure(function),
            )
            copy.__kwdefaults__ = function.__kwdefaults__
            copy.__qualname__ = function.__qualname__
            copy.__module__ = function.__module__
            copy.__dict__.update(function.__dict__)
            _TRACED_COPIES[function] = copy
        namespace = copy.__globals__
        if isinstance(namespace, _TracingGlobals):
            self.views[id(namespace)] = namespace
        return copy

    def _traced_closure(self, function: types.FunctionType) -> tuple[Any, ...] | None:
        """The closure of a traced copy: project functions held in cells (what a decorator
        wraps) are traced too; other cells are shared, so ``nonlocal`` state stays shared."""
        closure = function.__closure__
        if not closure:
            return closure
        cells = []
        changed = False
        for cell in closure:
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                cells.append(cell)
                continue
            if (
                isinstance(content, types.FunctionType)
                and content is not function
                and self.config.roots.owns(content)
            ):
                cells.append(types.CellType(self.traced(content)))
                changed = True
            else:
                cells.append(cell)
        return tuple(cells) if changed else closure

    def on_global(self, module: str, name: str, value: Any) -> Any:
        """A global name looked up by traced code: check and record it; returns the value."""
        if name.startswith("__") or isinstance(value, (types.ModuleType, Op)):
            return value
        roots = self.config.roots
        if isinstance(value, type):
            if is_tracked(value):
                self._check_bases(value)
            elif roots.owns(value) and id(value) not in self._declared:
                raise VersioningError(
                    f"class {value.__qualname__} from module {value.__module__} is used by op "
                    f"{self.op.name!r} but not tracked, so changes to it would go unnoticed; "
                    "decorate the class with @track (from mandala.imports import track), or "
                    f"declare it with @op(deps=[{value.__qualname__}])"
                )
            return value
        if inspect.isroutine(value):
            if not is_tracked(value):
                self._check_function(value)
            return value
        if isinstance(value, functools.partial):
            if not is_tracked(value.func):
                self._check_function(value.func)
        elif getattr(type(value), "__module__", None) == "typing":
            return value
        if not self.config.track_globals:
            return value
        key = ComponentKey(module, name)
        if key not in self.globals:
            content, description, hashable = global_content(value)
            if not hashable:
                if not self.config.skip_unhashable_globals:
                    raise VersioningError(
                        f"op {self.op.name!r} reads the global {name!r} of module {module}, whose"
                        f" value ({type(value).__name__}) cannot be hashed; wrap it with "
                        "wrap_atom(...) at module level, make it hashable, or create the "
                        "storage with skip_unhashable_globals=True"
                    )
                if not self.config.skip_globals_silently:
                    self.warnings.append(
                        f"the global {module}.{name} read by op {self.op.name!r} cannot be "
                        "hashed; changes to its value will not be detected"
                    )
            self.globals[key] = (content, description, value, hashable)
        return value

    # ------------------------------------------------------------------ checks

    def _check_function(self, value: Any) -> None:
        """Raise if ``value`` is a project function that is neither tracked nor declared.

        A function made inside another one (a decorator's wrapper) is accepted, and the source of
        the function that made it (the decorator) becomes a dependency: that is where its code is.
        """
        if (
            isinstance(value, types.FunctionType)
            and self.config.roots.owns(value)
            and id(value) not in self._declared
        ):
            outer_name, _, _ = value.__qualname__.partition(".<locals>")
            if outer_name != value.__qualname__:
                outer = resolve(ComponentKey(value.__module__, outer_name), import_missing=False)
                if isinstance(original_function(outer), types.FunctionType):
                    self.record_code(outer)
                    return
            if value.__name__ == "<lambda>":
                fix = "define it with def and decorate it with @track"
            else:
                fix = (
                    "decorate it with @track (from mandala.imports import track), or declare it "
                    f"with @op(deps=[{value.__qualname__}])"
                )
            raise VersioningError(
                f"function {value.__qualname__} from module {value.__module__} is called by "
                f"op {self.op.name!r} but not tracked, so changes to it would go unnoticed; {fix}"
            )

    def _check_bases(self, cls: type) -> None:
        """Raise if a tracked class inherits from a project class that is not tracked (its
        methods would run untracked)."""
        for base in cls.__mro__[1:]:
            if self.config.roots.owns(base) and not is_tracked(base):
                raise VersioningError(
                    f"class {cls.__qualname__} is tracked but its base class "
                    f"{base.__qualname__} from module {base.__module__} is not, so changes to the "
                    f"methods it inherits would go unnoticed; decorate {base.__qualname__} with "
                    "@track too"
                )

    def discard_assignments(self) -> list[str]:
        """Forget the globals the call assigned (they landed in the namespace views, never in
        the modules); returns their names."""
        assigned = []
        for view in self.views.values():
            for key in [k for k in dict.keys(view) if k != "__builtins__"]:
                dict.__delitem__(view, key)
                assigned.append(key)
        return assigned

    def check_after_call(self) -> None:
        """Raise if the call assigned or mutated a global it used (its result would then
        depend on the order of calls, which memoization cannot reproduce)."""
        assigned = self.discard_assignments()
        if assigned:
            raise VersioningError(
                f"op {self.op.name!r} assigned the global variable(s) {assigned} during the "
                "call; versioned ops must not rebind globals (the result would depend on "
                "the order of calls). Return the value instead; the global was not changed"
            )
        for key, (content, _, value, hashable) in self.globals.items():
            if hashable and global_content(value)[0] != content:
                raise VersioningError(
                    f"op {self.op.name!r} mutated the global {key.module}.{key.qualname} during "
                    "the call; versioned ops must not mutate globals they read. Copy it first, "
                    "or pass it as an argument"
                )

    def summary(self) -> TraceSummary:
        """What the version resolver needs of this trace, without live objects (picklable, so
        a worker process can send it back to the driver)."""
        fingerprints = {}
        for key, obj in self.code.items():
            fingerprint = code_fingerprint(obj) if obj is not None else None
            if fingerprint is not None:
                fingerprints[key] = fingerprint
        return TraceSummary(
            dict.fromkeys(self.code),
            {k: (c, d, None, h) for k, (c, d, _, h) in self.globals.items()},
            list(self.warnings),
            fingerprints,
        )


class TraceSummary(NamedTuple):
    """A finished trace as data: code keys (objects left out), globals' contents, warnings."""

    code: dict[ComponentKey, Any]
    globals: dict[ComponentKey, tuple[bytes, str, Any, bool]]
    warnings: list[str]
    fingerprints: dict[ComponentKey, bytes]
    """Compiled-code hashes of the functions as the worker had them loaded (see
    ``components.code_fingerprint``): the driver checks the worker ran the code it has."""


class TracingSpec(NamedTuple):
    """How to trace calls, as plain data for worker processes (the driver's tracing options)."""

    deps_path: str
    tracer: str
    track_globals: bool
    skip_unhashable_globals: bool
    skip_globals_silently: bool

    def run(
        self, op: OpDeclaration, args: Sequence[Any], kwargs: dict[str, Any]
    ) -> tuple[Any, TraceSummary]:
        """Run one op call under tracing here (in a worker); the driver resolves the version
        from the summary, so workers never read or write the code state."""
        config = TracerConfig(
            Roots(self.deps_path),
            track_globals=self.track_globals,
            skip_unhashable_globals=self.skip_unhashable_globals,
            skip_globals_silently=self.skip_globals_silently,
        )
        trace = Trace(config, op)
        tracer = SysTracer if self.tracer == SysTracer.name else DecTracer
        result = tracer.run(trace, op.func, args, kwargs)
        return result, trace.summary()


class DecTracer:
    """Tracing through ``@track`` decorators and global lookups (the default)."""

    name = "dec"

    @staticmethod
    def run(trace: Trace, function: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        trace.record_code(function)
        token = ACTIVE_TRACER.set(trace)
        try:
            result = trace.traced(function)(*args, **kwargs)
        except BaseException:
            trace.discard_assignments()
            raise
        finally:
            ACTIVE_TRACER.reset(token)
        trace.check_after_call()
        return result


class SysTracer:
    """Tracing with ``sys.setprofile``: every project function that runs is recorded."""

    name = "sys"

    @staticmethod
    def run(trace: Trace, function: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        trace.record_code(function)
        trace.sys_mode = True
        roots = trace.config.roots
        seen: set[Any] = set()
        found: list[tuple[str, str]] = []

        def profile(frame: types.FrameType, event: str, _arg: Any) -> None:
            if event != "call":
                return
            code = frame.f_code
            if code in seen:
                return
            seen.add(code)
            module = frame.f_globals.get("__name__")
            qualname = getattr(code, "co_qualname", code.co_name)  # 3.11+
            if roots.owns_module(module) and "<" not in qualname:
                found.append((str(module), qualname))

        previous = sys.getprofile()
        token = ACTIVE_TRACER.set(trace)
        sys.setprofile(profile)
        try:
            result = function(*args, **kwargs)
        finally:
            sys.setprofile(previous)
            ACTIVE_TRACER.reset(token)
        for module, qualname in found:
            trace.code.setdefault(ComponentKey(module, qualname), None)
        return result


class _TracingGlobals(dict):
    """A module namespace seen through the active trace.

    Traced function copies use it as their globals: a dict subclass makes the interpreter look
    names up through ``__getitem__``. It holds nothing but ``__builtins__``; an assignment to a
    global inside a traced call lands here (not in the module) and is reported as an error.
    """

    __slots__ = ("_namespace", "_module")

    def __init__(self, namespace: dict[str, Any]) -> None:
        super().__init__()
        dict.__setitem__(self, "__builtins__", namespace.get("__builtins__", builtins))
        self._namespace = namespace
        self._module = str(namespace.get("__name__", "?"))

    def __getitem__(self, name: str) -> Any:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        value = self._namespace[name]
        trace = ACTIVE_TRACER.get()
        if isinstance(trace, Trace):
            return trace.on_global(self._module, name, value)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self._namespace


def _view_of(namespace: dict[str, Any]) -> _TracingGlobals:
    view = _GLOBAL_VIEWS.get(id(namespace))
    if view is None or view._namespace is not namespace:  # noqa: SLF001 - this module's class
        view = _TracingGlobals(namespace)
        _GLOBAL_VIEWS[id(namespace)] = view
    return view


# ====================================================================== @track


def track(obj: T) -> T:
    """Mark a function, class or op as a dependency of versioned calls.

    With a versioned storage (``Storage(deps_path=...)``), every call records the tracked
    functions it actually ran and the global variables they read; changing any of them makes
    exactly the calls that used them recompute. Ops are always traced; ``@track`` on an op is
    accepted and changes nothing. Outside a versioned call a tracked function runs as it is
    (one context-variable lookup of overhead).

    Args:
        obj: a function, a class (its methods, static/class methods, properties and nested
            classes are tracked), or an op.

    Raises:
        VersioningError: ``obj`` is a class with data attributes (their changes could not be
            tracked; move them to module-level globals, which are), or cannot be tracked.
    """
    if isinstance(obj, Op):
        return obj
    if isinstance(obj, type):
        _track_class(obj)
        return obj
    if isinstance(obj, types.FunctionType):
        return _track_function(obj)  # type: ignore[return-value]
    if isinstance(obj, (staticmethod, classmethod)):
        return type(obj)(_track_function(obj.__func__))
    raise VersioningError(
        f"@track applies to functions, classes and ops, not to {type(obj).__name__} {obj!r}"
    )


def _track_function(function: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(function, TRACKED_ATTRIBUTE, None) is not None:
        return function
    qualname = getattr(function, "__qualname__", "")
    if getattr(function, "__name__", "") == "<lambda>":
        raise VersioningError(
            f"@track cannot track a lambda ({qualname}): it has no name to be found by in a "
            "later session; define it with def"
        )
    if "<locals>" in qualname:
        raise VersioningError(
            f"@track cannot track {qualname}, a function defined inside another function (often "
            "a decorator's wrapper): it has no name to be found by. Put @track directly above "
            "the def (below other decorators), or make the decorator use functools.wraps"
        )

    @functools.wraps(function)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        trace = ACTIVE_TRACER.get()
        if trace is None or not isinstance(trace, Trace):
            return function(*args, **kwargs)
        return trace.call_function(function, args, kwargs)

    setattr(tracked, TRACKED_ATTRIBUTE, function)
    return tracked


def _track_class(cls: type) -> None:
    if cls.__dict__.get(TRACKED_ATTRIBUTE) is True:
        return
    data = []
    for name, value in list(cls.__dict__.items()):
        if (
            name.startswith("__")
            and name.endswith("__")
            and not isinstance(value, types.FunctionType)
        ):
            continue
        if isinstance(value, types.FunctionType):
            setattr(cls, name, _track_function(value))
        elif isinstance(value, (staticmethod, classmethod)):
            setattr(cls, name, type(value)(_track_function(value.__func__)))
        elif isinstance(value, property):
            setattr(
                cls,
                name,
                property(
                    _track_function(value.fget) if value.fget else None,
                    _track_function(value.fset) if value.fset else None,
                    _track_function(value.fdel) if value.fdel else None,
                    value.__doc__,
                ),
            )
        elif isinstance(value, type):
            _track_class(value)
        elif name.startswith("_abc_") or name == "_is_protocol":
            continue
        else:
            data.append(name)
    if data:
        raise VersioningError(
            f"@track on class {cls.__qualname__}: it has data attributes {data}, whose changes "
            "could not be tracked; move them to module-level constants (globals read by tracked "
            "code are tracked) or into methods"
        )
    setattr(cls, TRACKED_ATTRIBUTE, True)
