"""Which storage is active, and in which mode, for the code running now.

The state is a ``contextvars.ContextVar`` holding a stack of frames, so contexts nest, each
thread and asyncio task sees its own, and leaving a block restores exactly what was there before
(the original library kept one process-global slot that an inner ``with`` cleared).
"""

from __future__ import annotations

import contextvars
import enum
from typing import Any, NamedTuple

__all__ = [
    "Mode",
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


class Frame(NamedTuple):
    storage: Any
    mode: Mode
    batch: Any = None
    """The parallel batch collecting the calls (``Mode.BATCH`` only)."""


_STACK: contextvars.ContextVar[tuple[Frame, ...]] = contextvars.ContextVar(
    "mandala_active_storage", default=()
)


def active_stack() -> tuple[Frame, ...]:
    return _STACK.get()


def current_frame() -> Frame | None:
    """The innermost active frame, or None outside any storage context."""
    stack = _STACK.get()
    return stack[-1] if stack else None


def push_frame(storage: Any, mode: Mode, batch: Any = None) -> contextvars.Token[tuple[Frame, ...]]:
    return _STACK.set((*_STACK.get(), Frame(storage, mode, batch)))


def pop_frame(token: contextvars.Token[tuple[Frame, ...]]) -> None:
    _STACK.reset(token)


def leave_frame(storage: Any) -> tuple[Frame, ...]:
    """Remove the innermost frame, which must belong to ``storage``; return the new stack.

    Unlike a token reset this works when one storage is entered in several threads or tasks at
    once, each with its own copy of the stack.
    """
    stack = _STACK.get()
    if not stack or stack[-1].storage is not storage:
        raise RuntimeError("leaving a storage context that is not the innermost active one")
    remaining = stack[:-1]
    _STACK.set(remaining)
    return remaining


class noop:  # noqa: N801 - lower case: it is used like a function, as in the original library
    """``with noop():`` runs ops as plain functions under the active storage; stores nothing.

    Refs passed to ops are unwrapped first. Without an active storage it changes nothing (ops
    are plain functions anyway).
    """

    def __init__(self) -> None:
        self._token: contextvars.Token[tuple[Frame, ...]] | None = None

    def __enter__(self) -> noop:
        frame = current_frame()
        if frame is not None:
            self._token = push_frame(frame.storage, Mode.NOOP)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._token is not None:
            pop_frame(self._token)
            self._token = None
