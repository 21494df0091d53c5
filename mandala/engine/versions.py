"""The engine's side of code versioning: what it asks a version resolver, and nothing more.

The engine knows that a versioned call's identity includes a *semantic version* that only the
code it runs can tell. It asks a :class:`VersionResolver` (implemented by ``mandala.versioning``
and injected by the Storage) which stored versions are still valid for a call before executing
it, and has it execute the function under tracing when none is. An unversioned storage has no
resolver, and the engine then pays one attribute test per call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from mandala.engine.declaration import OpDeclaration
    from mandala.engine.session import Session

__all__ = ["ResolvedVersion", "VersionResolver", "CallTracer", "ACTIVE_TRACER"]


class ResolvedVersion(NamedTuple):
    """The version of one executed call, as tracing found it.

    Attributes:
        semantic_version: hex key equal across compatible code changes (part of the call ids).
        content_version: hex key of the exact code (and globals) the call ran.
        support: ``(component_id, content_hash)`` of every component the call touched.
    """

    semantic_version: str
    content_version: str
    support: tuple[tuple[int, bytes], ...]


class VersionResolver(Protocol):
    """What the engine needs from code versioning."""

    def candidates(self, op: OpDeclaration, pre_call_key: bytes) -> Sequence[tuple[str, str]]:
        """``(semantic_version, content_version)`` (hex) under which a call with these input
        contents was stored and which the current code still matches, most recent first."""
        ...

    def execute(
        self, op: OpDeclaration, args: Sequence[Any], kwargs: dict[str, Any]
    ) -> tuple[Any, Any]:
        """Run the op's function under tracing; returns ``(result, trace)``."""
        ...

    def resolve(self, op: OpDeclaration, trace: Any) -> ResolvedVersion:
        """The version of a call from its trace (registering components seen for the first
        time).

        Raises:
            VersioningError: the trace is not consistent with the code state (a global changed
                or was assigned during the call...).
        """
        ...

    def tracing_spec(self) -> Any:
        """How to trace calls, as picklable data with a ``run(op, args, kwargs)`` method that
        returns ``(result, trace)``: for calls executed in worker processes."""
        ...

    def remember(
        self, session: Session, op: OpDeclaration, pre_call_key: bytes, version: ResolvedVersion
    ) -> None:
        """Record the version rows of a call about to be recorded in ``session``."""
        ...


class CallTracer(Protocol):
    """The tracer of the versioned call running now, if any (set by versioning)."""

    def call_op(self, op: OpDeclaration, call: Callable[[Callable[..., Any]], Any]) -> Any:
        """Run a nested op call (a plain call inside an op body) so that its code is traced:
        ``call(function)`` runs the call with the given function in place of the op's."""
        ...


ACTIVE_TRACER: contextvars.ContextVar[CallTracer | None] = contextvars.ContextVar(
    "mandala_active_tracer", default=None
)
"""The tracer of the versioned call executing in this thread/task (None almost always)."""
