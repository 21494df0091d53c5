"""Which storage's engine is active, and in which mode, for the code running now.

The state is a ``contextvars.ContextVar`` holding a stack of frames, so contexts nest, each
thread and asyncio task sees its own, and leaving a block restores exactly what was there before
(the original library kept one process-global slot that an inner ``with`` cleared).
"""

from __future__ import annotations

import contextvars
import enum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from mandala.engine.declaration import OpDeclaration

__all__ = [
    "Mode",
    "CallEngine",
    "CallCollector",
    "Frame",
    "current_frame",
    "push_frame",
    "pop_frame",
    "leave_frame",
    "active_stack",
    "noop",
]


class Mode(enum.Enum):
    """How op calls behave under a storage."""

    RUN = "run"
    """Memoize: look calls up, execute what is missing, store it."""
    NOOP = "noop"
    """Run ops as plain functions (refs unwrapped first); store nothing."""
    PLAIN = "plain"
    """Inside an op's body: nested op calls are ordinary function calls."""
    BATCH = "batch"
    """Inside ``storage.parallel()``: calls are looked up now and the missing ones collected into
    a graph (the frame's ``batch``), which runs when the block ends."""


class CallEngine(Protocol):
    """What an op call needs of the engine of the active storage
    (:class:`~mandala.engine.executor.Engine` implements it; the engine module imports this
    one, hence a protocol)."""

    def call(self, op: OpDeclaration, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run (or find) one call; returns its output ref(s)."""
        ...

    def unwrap(self, obj: Any, cache: bool = True) -> Any:
        """Values of the refs in ``obj``."""
        ...


class CallCollector(Protocol):
    """What collects the op calls of a ``storage.parallel()`` block (``mandala.parallel``'s
    ``Batch``, which sits above the engine)."""

    def call(self, op: OpDeclaration, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """An op call inside the block: its refs if stored, else placeholders."""
        ...


class Frame(NamedTuple):
    """One active context: the engine of its storage (None for a worker's plain frame), how op
    calls behave, and the batch collecting calls (``Mode.BATCH`` only)."""

    engine: CallEngine | None
    mode: Mode
    batch: CallCollector | None = None


_STACK: contextvars.ContextVar[tuple[Frame, ...]] = contextvars.ContextVar(
    "mandala_active_storage", default=()
)


def active_stack() -> tuple[Frame, ...]:
    return _STACK.get()


def current_frame() -> Frame | None:
    """The innermost active frame, or None outside any storage context."""
    stack = _STACK.get()
    return stack[-1] if stack else None


def push_frame(
    engine: CallEngine | None, mode: Mode, batch: CallCollector | None = None
) -> contextvars.Token[tuple[Frame, ...]]:
    """Make a context active (innermost); pass the token to :func:`pop_frame` to leave it."""
    return _STACK.set((*_STACK.get(), Frame(engine, mode, batch)))


def pop_frame(token: contextvars.Token[tuple[Frame, ...]]) -> None:
    _STACK.reset(token)


def leave_frame(engine: CallEngine) -> tuple[Frame, ...]:
    """Remove the innermost frame, which must belong to ``engine``; return the new stack.

    Unlike a token reset this works when one storage is entered in several threads or tasks at
    once, each with its own copy of the stack.
    """
    stack = _STACK.get()
    if not stack or stack[-1].engine is not engine:
        raise RuntimeError("leaving a storage context that is not the innermost active one")
    remaining = stack[:-1]
    _STACK.set(remaining)
    return remaining


class noop:  # lower case: it is used like a function, as in the original library
    """``with noop():`` runs ops as plain functions under the active storage; stores nothing.

    Refs passed to ops are unwrapped first. Without an active storage it changes nothing (ops
    are plain functions anyway).
    """

    def __init__(self) -> None:
        self._token: contextvars.Token[tuple[Frame, ...]] | None = None

    def __enter__(self) -> noop:
        frame = current_frame()
        if frame is not None:
            self._token = push_frame(frame.engine, Mode.NOOP)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._token is not None:
            pop_frame(self._token)
            self._token = None
