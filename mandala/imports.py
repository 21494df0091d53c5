"""The public API, by the names of the original library: ``from mandala.imports import *``."""

from mandala.engine.context import noop
from mandala.engine.executor import make_atom as _make_atom
from mandala.engine.op import Op, op
from mandala.model.annotations import MDict, MList, MSet
from mandala.model.calls import Call
from mandala.model.markers import Ignore, NewArgDefault, ValuePointer
from mandala.model.refs import AtomRef, Ref
from mandala.storage import Storage
from mandala.versioning.tracing import track

__all__ = [
    "Storage",
    "op",
    "Ignore",
    "NewArgDefault",
    "wrap_atom",
    "MList",
    "MDict",
    "MSet",
    "track",
    "noop",
    "ValuePointer",
    "Op",
    "Ref",
    "Call",
]


def wrap_atom(obj: object, history_id: str | None = None) -> Ref:
    """The ref of a raw value, as an op would store it; refs are returned unchanged.

    Passing ``wrap_atom(x)`` to an op is the same call as passing ``x``.

    Raises:
        ValueError: ``obj`` is a ref and a ``history_id`` was given, or ``obj`` is a collection
            ref (``wrap_atom`` makes atoms only).
    """
    if isinstance(obj, Ref):
        if history_id is not None:
            raise ValueError("wrap_atom: cannot give a history_id to an existing Ref")
        if not isinstance(obj, AtomRef):
            raise ValueError(f"wrap_atom: expected an atom, got a {type(obj).__name__}")
        return obj
    ref = _make_atom(obj)
    if history_id is not None:
        return ref.with_hid(history_id)
    return ref
