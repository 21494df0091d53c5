"""The ``@op`` decorator: a function whose calls are memoized by the active storage."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from mandala.engine.context import Mode, current_frame
from mandala.engine.declaration import OpDeclaration
from mandala.engine.executor import call_plain

__all__ = ["Op", "op"]

F = TypeVar("F", bound=Callable[..., Any])


class Op(OpDeclaration):
    """A memoized function. Outside ``with storage:`` it is the plain function.

    Inside a storage context, calling it returns :class:`~mandala.model.refs.Ref` objects (one,
    or a tuple for several outputs): the call is looked up by its inputs and computed only if it
    was never computed before. Attributes mirror the original library: ``name``, ``f``, ``nout``,
    ``output_names``, ``ignore_args``, ``version`` (see
    :class:`~mandala.engine.declaration.OpDeclaration`).
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Hand the call to the active storage's engine (or parallel batch); run the function
        itself outside a storage context, in ``noop`` mode and inside another op's body."""
        frame = current_frame()
        if frame is None:
            return call_plain(self, args, kwargs, None)
        mode = frame.mode
        engine = frame.engine
        if mode is Mode.RUN and engine is not None:
            return engine.call(self, args, kwargs)
        if mode is Mode.BATCH and frame.batch is not None:
            return frame.batch.call(self, args, kwargs)
        return call_plain(self, args, kwargs, engine)

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        return functools.partial(self, instance)


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
