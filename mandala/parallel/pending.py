"""Refs of calls that a parallel block computes when it ends: placeholders until then.

Inside ``with storage.parallel():`` a call that is not stored returns :class:`PendingRef` objects.
Their history id is known at once (it derives from the call's history id), so they can be passed
to further op calls, which builds the graph of the block. Their value is not: every use of a
pending ref as a value (``bool``, comparisons, arithmetic, iteration, ``storage.unwrap``, its
content id...) raises :class:`~mandala.errors.PendingResultError` saying why and what to do.

When its call completes, the *same object* becomes an ordinary ref (its class is switched to the
class of the stored ref and its content fields are filled in), so the user's variables, lists and
dicts hold real refs after the block without any substitution. ``Ref`` declares its fields as
``__slots__`` and this class adds none, which is what makes the switch legal. The history id,
the one id field known from the start, never changes, except in a versioned storage: there a
call's ids include the code version its execution resolves, so a pending ref's history id is
provisional (that of the call without a version) and takes the real one when the call completes;
calls made on it in the block are identified again with the real ids before they are recorded.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, NoReturn

from mandala.errors import PendingResultError
from mandala.hashing import ids
from mandala.model.refs import Ref, short_id

__all__ = ["PendingRef", "PendingState", "identifying", "resolve", "fail", "refuse"]

_CONTENT = Ref.__dict__["content_key"]
_HISTORY = Ref.__dict__["history_key"]
_IN_MEMORY = Ref.__dict__["in_memory"]
_OBJ = Ref.__dict__["obj"]

_IDENTIFYING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "mandala_identifying_pending_inputs", default=False
)


@contextlib.contextmanager
def identifying() -> Iterator[None]:
    """While active, pending refs answer for their content id with a stand-in key.

    The engine derives a call's history id and content id together; a call whose inputs are
    pending can only have the first. Inside this block it gets both, the content id being
    meaningless (it is recomputed from the real values before anything is recorded).
    """
    token = _IDENTIFYING.set(True)
    try:
        yield
    finally:
        _IDENTIFYING.reset(token)


class PendingState:
    """What a pending ref knows about the call that will produce it (kept in its ``obj`` slot)."""

    __slots__ = ("op_name", "output_name", "failure", "provisional")

    def __init__(self, op_name: str, output_name: str) -> None:
        self.op_name = op_name
        self.output_name = output_name
        self.failure: str | None = None
        """Why the block ended without computing it (None while the block runs)."""
        self.provisional = False
        """Its history id is provisional: in a versioned storage a call's ids include the
        version its execution resolves, so the ref takes the real id when it is resolved."""


class PendingRef(Ref):
    """The output of a call that a ``storage.parallel()`` block has not computed yet.

    Pass it to other op calls in the block; read its value after the block (it is then an
    ordinary ``AtomRef``/``ListRef``/... and this class no longer applies).
    """

    __slots__ = ()

    @classmethod
    def create(
        cls, history_key: bytes, op_name: str, output_name: str, provisional: bool = False
    ) -> PendingRef:
        ref = object.__new__(cls)
        _HISTORY.__set__(ref, history_key)
        _CONTENT.__set__(ref, b"")
        _IN_MEMORY.__set__(ref, False)
        state = PendingState(op_name, output_name)
        state.provisional = provisional
        _OBJ.__set__(ref, state)
        return ref

    @property
    def state(self) -> PendingState:
        state: PendingState = _OBJ.__get__(self, Ref)
        return state

    # The three value fields of Ref, shadowed: reading them is using the value.
    @property
    def content_key(self) -> bytes:  # type: ignore[override]
        if _IDENTIFYING.get():
            return ids.pending_content_key(_HISTORY.__get__(self, Ref))
        self._refuse("its content id")

    @property
    def in_memory(self) -> bool:  # type: ignore[override]
        self._refuse("its value")

    @property
    def obj(self) -> Any:
        self._refuse("its value")

    def _refuse(self, what: str) -> NoReturn:
        refuse(self, what)

    def __repr__(self) -> str:
        state = self.state
        status = "failed" if state.failure is not None else "pending"
        return (
            f"PendingRef({state.op_name}.{state.output_name}, hid={short_id(self.history_key)},"
            f" {status})"
        )

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        self._refuse("pickling (e.g. inside a plain list or dict argument)")

    def __bool__(self) -> NoReturn:
        self._refuse("bool() (e.g. `if ref:`)")

    def __len__(self) -> NoReturn:
        self._refuse("len()")

    def __iter__(self) -> NoReturn:
        self._refuse("iterating over it")

    def __contains__(self, item: object) -> NoReturn:
        self._refuse("`in`")

    def __getitem__(self, key: object) -> NoReturn:
        self._refuse("indexing")

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("_"):  # protocols probed by copy, numpy, IPython...: not ours
            raise AttributeError(name)
        self._refuse(f"the attribute {name!r}")

    def __format__(self, spec: str) -> str:
        if spec:
            self._refuse(f"formatting it with {spec!r}")
        return repr(self)


def refuse(ref: PendingRef, what: str) -> NoReturn:
    """Raise the error for using ``what`` of a pending (or failed) ref: its value does not
    exist until its block has run (and never, if its call failed).

    Raises:
        PendingResultError: always.
    """
    state = ref.state
    origin = (
        f"the ref {short_id(ref.history_key)} (output {state.output_name!r} of op "
        f"{state.op_name!r})"
    )
    if state.failure is not None:
        raise PendingResultError(
            f"{origin} has no value: {state.failure}. Re-run the parallel block to retry (what"
            " was stored is reused), or compute it in a `with storage:` block"
        )
    raise PendingResultError(
        f"{what} of {origin} is not available: inside `with storage.parallel():` op calls "
        "only collect a graph of calls, which runs when the block ends. Pass the ref itself "
        "to other op calls in the block, and use its value after the block (e.g. "
        "storage.unwrap(ref)); to branch on a value, end the block first and start another"
    )


def _refusing(what: str) -> Any:
    def method(self: PendingRef, *_operands: Any) -> NoReturn:
        self._refuse(what)

    return method


for _name, _what in {
    "__lt__": "comparing it (<)",
    "__le__": "comparing it (<=)",
    "__gt__": "comparing it (>)",
    "__ge__": "comparing it (>=)",
    "__int__": "int()",
    "__float__": "float()",
    "__complex__": "complex()",
    "__index__": "using it as an index",
    "__round__": "round()",
    "__neg__": "arithmetic (-)",
    "__pos__": "arithmetic (+)",
    "__abs__": "abs()",
    "__invert__": "arithmetic (~)",
}.items():
    setattr(PendingRef, _name, _refusing(_what))
_OPERATORS = ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod", "pow")
for _operator in (*_OPERATORS, "lshift", "rshift", "and", "xor", "or"):
    for _template in ("__{}__", "__r{}__"):
        setattr(PendingRef, _template.format(_operator), _refusing(f"arithmetic ({_operator})"))


def resolve(ref: PendingRef, real: Ref) -> None:
    """Turn ``ref`` into the stored ref ``real`` (same history id) in place."""
    if _HISTORY.__get__(ref, Ref) != real.history_key:
        if _OBJ.__get__(ref, Ref).provisional:
            _HISTORY.__set__(ref, real.history_key)
        else:
            raise RuntimeError(
                f"parallel block: the ref {ref.history_id} resolved to a ref of another history "
                f"({real.history_id}); please report this as a bug"
            )
    _CONTENT.__set__(ref, real.content_key)
    _IN_MEMORY.__set__(ref, real.in_memory)
    _OBJ.__set__(ref, real.obj)
    ref.__class__ = type(real)  # type: ignore[assignment]


def fail(ref: PendingRef, reason: str) -> None:
    """Mark ``ref`` as never computed, and why (its uses then say so)."""
    ref.state.failure = reason
