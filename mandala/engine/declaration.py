"""What an op is, as the engine sees it: its name, version, parameters, outputs and checks.

:class:`OpDeclaration` holds everything ``@op`` declares and checks at decoration time; the
engine (which identifies, looks up, runs and records calls) works on declarations only. The
public :class:`~mandala.engine.op.Op` adds the call itself, which hands the declaration to the
active storage's engine, so the engine never imports the class whose calls reach it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

from mandala.errors import OpDefinitionError
from mandala.hashing import ids
from mandala.model.annotations import StorageType
from mandala.model.calls import OpSpec
from mandala.model.signature import ParameterPlan

__all__ = ["OpDeclaration"]


class OpDeclaration:
    """An op's declaration: the decorated function, its name, version, parameter plan, output
    names, ignored arguments and dependencies, checked when ``@op`` runs.

    Attributes mirror the original library: ``name``, ``f``, ``nout``, ``output_names``,
    ``ignore_args``, ``version``. ``output_types`` caches, per number of returned values, the
    storage type of each output (from the return annotation), filled in by the executor.
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
        self.output_types: dict[int, list[StorageType]] = {}
        # The function's name, module and docstring (what Op, the callable subclass, wraps).
        functools.update_wrapper(cast("Callable[..., Any]", self), func)

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
