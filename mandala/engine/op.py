"""The ``@op`` decorator: a function whose calls are memoized by the active storage."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from mandala.engine.context import Mode, current_frame
from mandala.engine.versions import ACTIVE_TRACER
from mandala.errors import OpDefinitionError, OutputMismatchError
from mandala.hashing import ids
from mandala.model.annotations import ATOM, StorageType, output_types_from_annotation
from mandala.model.calls import OpSpec
from mandala.model.markers import Ignore, NewArgDefault, ValuePointer
from mandala.model.refs import AtomRef, Ref
from mandala.model.signature import ParameterPlan

__all__ = ["Op", "op"]

F = TypeVar("F", bound=Callable[..., Any])

_MARKERS = (Ignore, NewArgDefault, ValuePointer)


class Op:
    """A memoized function. Outside ``with storage:`` it is the plain function.

    Inside a storage context, calling it returns :class:`~mandala.model.refs.Ref` objects (one,
    or a tuple for several outputs): the call is looked up by its inputs and computed only if it
    was never computed before. Attributes mirror the original library: ``name``, ``f``, ``nout``,
    ``output_names``, ``ignore_args``, ``version``.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        output_names: Sequence[str] | None = None,
        nout: str | int = "auto",
        ignore_args: Sequence[str] | None = None,
        version: int = 0,
        structural: bool = False,
        allow_side_effects: bool = False,
        deps: Sequence[Any] = (),
    ) -> None:
        if not callable(func):
            raise OpDefinitionError(f"@op needs a function, got {type(func).__name__} {func!r}")
        self.func = func
        self.name: str = func.__name__
        self.version = int(version)
        self.plan = ParameterPlan(func)
        self.output_names = self._check_output_names(output_names)
        self.nout = self._check_nout(nout)
        self.ignore_args: tuple[str, ...] = self._check_ignore_args(ignore_args)
        self.ignore_set = frozenset(self.ignore_args)
        self.allow_side_effects = allow_side_effects
        # Dependencies declared by hand (code versioning): part of every call's version even
        # when tracing cannot see them (a helper reached through a module attribute, say).
        self.deps: tuple[Any, ...] = tuple(deps)
        self.spec = OpSpec(
            self.name,
            self.version,
            self.output_names,
            self.nout,
            self.ignore_args,
            structural,
        )
        self.key = ids.op_key(self.name, self.version)
        self._output_types: dict[int, list[StorageType]] = {}
        functools.update_wrapper(self, func)

    # ------------------------------------------------------------------ declaration checks

    def _check_output_names(self, output_names: Sequence[str] | None) -> tuple[str, ...] | None:
        input_names = [p.name for p in self.plan.parameters]
        if output_names is None:
            clashing = [name for name in input_names if name.startswith("output_")]
            if clashing:
                raise OpDefinitionError(
                    f"op {self.name!r}: input {clashing[0]!r} looks like a default output name "
                    "(output_0, output_1, ...); pass output_names=[...] to name the outputs"
                )
            return None
        if isinstance(output_names, str) or not all(isinstance(n, str) for n in output_names):
            raise OpDefinitionError(
                f"op {self.name!r}: output_names must be a list of str, got {output_names!r}"
            )
        names = tuple(output_names)
        if len(set(names)) != len(names):
            raise OpDefinitionError(f"op {self.name!r}: output_names {list(names)} repeat a name")
        for name in names:
            if name in input_names:
                raise OpDefinitionError(
                    f"op {self.name!r}: output name {name!r} clashes with an input of the same "
                    "name; pass different output_names=[...]"
                )
        return names

    def _check_nout(self, nout: str | int) -> str | int:
        if nout in ("auto", "var"):
            return nout
        if isinstance(nout, int) and not isinstance(nout, bool) and nout >= 0:
            if self.output_names is not None and len(self.output_names) != nout:
                raise OpDefinitionError(
                    f"op {self.name!r}: nout={nout} but {len(self.output_names)} output_names "
                    f"{list(self.output_names)}; make them agree"
                )
            return nout
        raise OpDefinitionError(
            f"op {self.name!r}: nout must be 'auto', 'var' or a non-negative int, got {nout!r}"
        )

    def _check_ignore_args(self, ignore_args: Sequence[str] | None) -> tuple[str, ...]:
        if ignore_args is None:
            return ()
        if isinstance(ignore_args, str):
            ignore_args = (ignore_args,)
        names = tuple(ignore_args)
        unknown = [n for n in names if n not in self.plan.by_name]
        if unknown:
            raise OpDefinitionError(
                f"op {self.name!r}: ignore_args names {unknown}, which are not parameters of "
                f"{self.name}{self.plan.signature}"
            )
        return names

    # ------------------------------------------------------------------ calling

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        frame = current_frame()
        if frame is not None:
            mode = frame.mode
            if mode is Mode.RUN:
                return frame.storage._engine.call(self, args, kwargs)
            if mode is Mode.BATCH:
                return frame.batch.call(self, args, kwargs)
            return self._call_plain(args, kwargs, frame.storage)
        return self._call_plain(args, kwargs, None)

    def _call_plain(self, args: tuple[Any, ...], kwargs: dict[str, Any], storage: Any) -> Any:
        """Run the function itself, with markers replaced by their payloads and refs unwrapped."""
        bound = self.plan.bind(args, kwargs)
        values: dict[str, Any] = {}
        for parameter in self.plan.parameters:
            value = bound[parameter.name]
            if parameter.is_variadic_positional:
                values[parameter.name] = [_plain_value(v, storage) for v in value]
            elif parameter.is_variadic_keyword:
                values[parameter.name] = {k: _plain_value(v, storage) for k, v in value.items()}
            else:
                values[parameter.name] = _plain_value(value, storage)
        call_args, call_kwargs = self.plan.layout(values)
        tracer = ACTIVE_TRACER.get()
        if tracer is not None:  # inside a versioned call: the nested op's code is traced too
            return tracer.call_op(self, lambda function: function(*call_args, **call_kwargs))
        return self.func(*call_args, **call_kwargs)

    # ------------------------------------------------------------------ outputs

    def split_outputs(self, result: Any) -> list[tuple[str, Any, StorageType]]:
        """Name the values an execution returned, checking their number against the declaration.

        Raises:
            OutputMismatchError: the return value does not match ``nout``/``output_names``.
        """
        names = self.output_names
        nout = self.nout
        if nout == "auto":
            if names is not None and len(names) == 1:
                values: tuple[Any, ...] = (result,)
            elif names is not None:
                if not isinstance(result, tuple) or len(result) != len(names):
                    raise OutputMismatchError(
                        f"op {self.name!r} declares {len(names)} outputs {list(names)} but returned "
                        f"{_describe_return(result)}; return a tuple of {len(names)} values or "
                        "change output_names"
                    )
                values = result
            else:
                values = result if isinstance(result, tuple) else (result,)
        elif nout == "var":
            if not isinstance(result, tuple):
                raise OutputMismatchError(
                    f"op {self.name!r} has nout='var' but returned {_describe_return(result)}; "
                    "return a tuple (of any length)"
                )
            values = result
        else:
            if nout == 1 and not isinstance(result, tuple):
                values = (result,)
            elif not isinstance(result, tuple) or len(result) != nout:
                raise OutputMismatchError(
                    f"op {self.name!r} has nout={nout} but returned {_describe_return(result)}; "
                    f"return a tuple of exactly {nout} values"
                )
            else:
                values = result
        types = self._output_types.get(len(values))
        if types is None:
            types = self._types_for(len(values))
        output_names = [self._output_name(i) for i in range(len(values))]
        return list(zip(output_names, values, types))

    def _types_for(self, count: int) -> list[StorageType]:
        annotation = self.plan.return_annotation
        types = None
        if annotation is not inspect.Signature.empty:
            types = output_types_from_annotation(annotation, count)
        if types is None:
            types = [ATOM] * count
        self._output_types[count] = types
        return types

    def _output_name(self, index: int) -> str:
        names = self.output_names
        if names is not None and index < len(names):
            return names[index]
        return f"output_{index}"

    def output_order(self, name: str) -> tuple[int, int | str]:
        names = self.output_names
        if names is not None and name in names:
            return (0, names.index(name))
        if name.startswith("output_") and name[7:].isdigit():
            return (1, int(name[7:]))
        return (2, name)

    def order_outputs(self, outputs: dict[str, Ref]) -> Any:
        """What a call returns: one ref, or a tuple of refs in declaration order."""
        if len(outputs) == 1 and (self.nout in ("auto", "var", 1)):
            return next(iter(outputs.values()))
        ordered = sorted(outputs, key=self.output_order)
        return tuple(outputs[name] for name in ordered)

    # ------------------------------------------------------------------ misc

    @property
    def f(self) -> Callable[..., Any]:
        """The decorated function (the original library's attribute name)."""
        return self.func

    def detached(self) -> OpSpec:
        """What the store keeps of this op (no code)."""
        return self.spec

    def __repr__(self) -> str:
        return f"Op({self.name}{self.plan.signature})"

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        return functools.partial(self, instance)


def _describe_return(result: Any) -> str:
    if isinstance(result, tuple):
        return f"a tuple of {len(result)} values"
    return f"a single {type(result).__name__}"


def _plain_value(value: Any, storage: Any) -> Any:
    cls = type(value)
    if cls in _MARKERS:
        if cls is ValuePointer:
            return value.obj
        return value.value
    if isinstance(value, Ref):
        if storage is not None:
            return storage.unwrap(value)
        if isinstance(value, AtomRef) and value.in_memory:
            return value.obj
    return value


@overload
def op(output_names: F) -> Op: ...


@overload
def op(
    output_names: Sequence[str] | None = None,
    nout: str | int = "auto",
    ignore_args: Sequence[str] | None = None,
    __structural__: bool = False,
    __allow_side_effects__: bool = False,
    *,
    version: int = 0,
    deps: Sequence[Any] = (),
) -> Callable[[F], Op]: ...


def op(
    output_names: Any = None,
    nout: str | int = "auto",
    ignore_args: Sequence[str] | None = None,
    __structural__: bool = False,
    __allow_side_effects__: bool = False,
    *,
    version: int = 0,
    deps: Sequence[Any] = (),
) -> Any:
    """Make a function memoized: ``@op`` or ``@op(output_names=[...], nout=..., ...)``.

    Args:
        output_names: names of the outputs (default ``output_0``, ``output_1``, ...).
        nout: ``"auto"`` (a returned tuple is several outputs, unless a single output name is
            declared), ``"var"`` (a tuple of any length), or a fixed count.
        ignore_args: parameters whose values are passed but never part of the call's identity.
        version: bump to invalidate every stored call of this op (an additive option).
        deps: functions, classes or ops this op depends on that tracing cannot see (with code
            versioning): their code is part of every call's version, so changing them makes the
            calls recompute (an additive option).

    Example:
        >>> @op(output_names=["total"])
        ... def add(x, y):
        ...     return x + y
    """
    if callable(output_names):
        return Op(output_names)

    def decorate(func: F) -> Op:
        return Op(
            func,
            output_names=output_names,
            nout=nout,
            ignore_args=ignore_args,
            version=version,
            structural=__structural__,
            allow_side_effects=__allow_side_effects__,
            deps=deps,
        )

    return decorate
