"""Binding call arguments to an op's parameters, fast.

``inspect.Signature.bind`` costs several microseconds, a large share of a memo hit's budget, so
each op precomputes a :class:`ParameterPlan` once and binds simple calls (positional-or-keyword
parameters only) with a few dict operations. Anything unusual (``*args``, keyword-only,
positional-only, a binding error) goes through ``inspect`` so that errors read exactly like
Python's own ``TypeError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mandala.model.annotations import ATOM, StorageType, resolve_annotations, type_from_annotation

__all__ = ["Parameter", "ParameterPlan"]

_POSITIONAL_ONLY = inspect.Parameter.POSITIONAL_ONLY
_POSITIONAL_OR_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD
_VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL
_KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY
_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD


class Parameter:
    """One parameter of an op, with how its values are stored."""

    __slots__ = (
        "name",
        "kind",
        "default",
        "storage_type",
        "is_variadic_positional",
        "is_variadic_keyword",
    )

    def __init__(self, name: str, kind: Any, default: Any, storage_type: StorageType) -> None:
        self.name = name
        self.kind = kind
        self.default = default
        self.storage_type = storage_type
        # plain attributes, not properties: they are read for every argument of every call
        self.is_variadic_positional = kind is _VAR_POSITIONAL
        self.is_variadic_keyword = kind is _VAR_KEYWORD


class ParameterPlan:
    """Precomputed view of a function's signature for binding and re-calling."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.signature = inspect.signature(func)
        annotations = resolve_annotations(func)
        self.parameters: list[Parameter] = []
        for p in self.signature.parameters.values():
            storage_type = (
                type_from_annotation(annotations[p.name]) if p.name in annotations else ATOM
            )
            self.parameters.append(Parameter(p.name, p.kind, p.default, storage_type))
        self.return_annotation = annotations.get("return", inspect.Signature.empty)
        self.names = [p.name for p in self.parameters]
        self.by_name = {p.name: p for p in self.parameters}
        self.is_simple = all(p.kind is _POSITIONAL_OR_KEYWORD for p in self.parameters)
        self._count = len(self.parameters)
        self._defaults = [
            (p.name, p.default) for p in self.parameters if p.default is not inspect.Parameter.empty
        ]

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Map the call's arguments to parameter names, defaults applied.

        ``*args`` are bound as a tuple and ``**kwargs`` as a dict under their parameter names.

        Raises:
            TypeError: the arguments do not fit the signature (Python's own message).
        """
        if self.is_simple and len(args) <= self._count:
            bound = dict(zip(self.names, args)) if args else {}
            if kwargs:
                by_name = self.by_name
                for key, value in kwargs.items():
                    if key in bound or key not in by_name:
                        return self._bind_slow(args, kwargs)
                    bound[key] = value
            if len(bound) < self._count:
                for name, default in self._defaults:
                    if name not in bound:
                        bound[name] = default
                if len(bound) < self._count:
                    return self._bind_slow(args, kwargs)
            return bound
        return self._bind_slow(args, kwargs)

    def _bind_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def layout(self, values: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments that call the function with ``values``."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for p in self.parameters:
            kind = p.kind
            if kind is _POSITIONAL_OR_KEYWORD or kind is _POSITIONAL_ONLY:
                args.append(values[p.name])
            elif kind is _VAR_POSITIONAL:
                args.extend(values[p.name])
            elif kind is _KEYWORD_ONLY:
                kwargs[p.name] = values[p.name]
            else:
                kwargs.update(values[p.name])
        return args, kwargs
