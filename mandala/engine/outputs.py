"""The outputs of an op call: naming what the function returned, and ordering refs to return.

A declaration (:class:`~mandala.engine.declaration.OpDeclaration`) says how many outputs an op
has and what they are called; these functions apply it to what an execution returned (on the
driver and, for parallel calls, on workers) and to the output refs a call gives back.
"""

from __future__ import annotations

import inspect
from typing import Any

from mandala.engine.declaration import OpDeclaration
from mandala.errors import OpDefinitionError, OutputMismatchError
from mandala.model.annotations import ATOM, StorageType, output_types_from_annotation
from mandala.model.refs import Ref

__all__ = ["split_outputs", "order_outputs", "output_order"]


def split_outputs(op: OpDeclaration, result: Any) -> list[tuple[str, Any, StorageType]]:
    """Name the values an execution of ``op`` returned, with their storage types, checking
    their number against the declaration.

    Raises:
        OutputMismatchError: the return value does not match ``nout``/``output_names``.
    """
    names = op.output_names
    nout = op.nout
    if nout == "auto":
        if names is not None and len(names) == 1:
            values: tuple[Any, ...] = (result,)
        elif names is not None:
            if not isinstance(result, tuple) or len(result) != len(names):
                raise OutputMismatchError(
                    f"op {op.name!r} declares {len(names)} outputs {list(names)} but returned "
                    f"{_describe_return(result)}; return a tuple of {len(names)} values or "
                    "change output_names"
                )
            values = result
        else:
            values = result if isinstance(result, tuple) else (result,)
    elif nout == "var":
        if not isinstance(result, tuple):
            raise OutputMismatchError(
                f"op {op.name!r} has nout='var' but returned {_describe_return(result)}; "
                "return a tuple (of any length)"
            )
        values = result
    else:
        if nout == 1 and not isinstance(result, tuple):
            values = (result,)
        elif not isinstance(result, tuple) or len(result) != nout:
            raise OutputMismatchError(
                f"op {op.name!r} has nout={nout} but returned {_describe_return(result)}; "
                f"return a tuple of exactly {nout} values"
            )
        else:
            values = result
    types = op.output_types.get(len(values))
    if types is None:
        types = _output_types(op, len(values))
    output_names = [_output_name(op, i) for i in range(len(values))]
    return list(zip(output_names, values, types))


def _output_types(op: OpDeclaration, count: int) -> list[StorageType]:
    """The storage types of ``count`` outputs from the return annotation (atoms without one),
    remembered in the declaration."""
    annotation = op.plan.return_annotation
    types = None
    if annotation is not inspect.Signature.empty:
        types = output_types_from_annotation(annotation, count)
    if types is None:
        types = [ATOM] * count
    op.output_types[count] = types
    return types


def _output_name(op: OpDeclaration, index: int) -> str:
    names = op.output_names
    if names is not None and index < len(names):
        return names[index]
    return f"output_{index}"


def _describe_return(result: Any) -> str:
    if isinstance(result, tuple):
        return f"a tuple of {len(result)} values"
    return f"a single {type(result).__name__}"


def output_order(op: OpDeclaration, name: str) -> tuple[int, int | str]:
    """Sort key of an output name: declared names in declaration order, then ``output_<i>`` by
    index, then any other name."""
    names = op.output_names
    if names is not None and name in names:
        return (0, names.index(name))
    if name.startswith("output_") and name[7:].isdigit():
        return (1, int(name[7:]))
    return (2, name)


def order_outputs(op: OpDeclaration, outputs: dict[str, Ref]) -> Any:
    """What a call of ``op`` returns: one ref, or a tuple of refs in declaration order.

    Raises:
        OpDefinitionError: the outputs (of a stored call) are not those ``op`` declares: the op
            was redefined with other outputs under the same name and version.
    """
    names = op.output_names
    if names is not None:
        if len(outputs) != len(names) or not all(name in outputs for name in names):
            raise _changed_outputs(op, outputs)
    elif type(op.nout) is int and len(outputs) != op.nout:
        raise _changed_outputs(op, outputs)
    if len(outputs) == 1 and (op.nout in ("auto", "var", 1)):
        return next(iter(outputs.values()))
    ordered = sorted(outputs, key=lambda name: output_order(op, name))
    return tuple(outputs[name] for name in ordered)


def _plural(count: int) -> str:
    return f"{count} output" + ("" if count == 1 else "s")


def _changed_outputs(op: OpDeclaration, outputs: dict[str, Ref]) -> OpDefinitionError:
    stored = sorted(outputs, key=lambda name: output_order(op, name))
    if op.output_names is not None:
        declared = f"{_plural(len(op.output_names))} {list(op.output_names)}"
    else:
        declared = _plural(int(op.nout))
    shown = ", ".join(repr(name) for name in stored)
    return OpDefinitionError(
        f"op {op.name!r} version {op.version}: its stored calls have {_plural(len(stored))} "
        f"({shown}), but it now declares {declared}. A changed output signature is a new op: "
        f"give it a new version (@op(version={op.version + 1}, ...)) or a new name, or restore "
        "the declaration the stored calls were made with"
    )
