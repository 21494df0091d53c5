"""Recording a call whose outputs are already known, without running its function.

Importing results computed elsewhere (a store of the original library) must give exactly the
rows that running the op here would have given, so that the op's later calls are memo hits.
This module derives the ids with the same functions the executor uses (``ids.call_key`` over
the op key and the inputs, :func:`~mandala.engine.executor.output_refs` for the outputs and
their structural calls) and records through :meth:`Engine.record`, so there is one formula,
not two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mandala.engine.executor import Engine, new_builder, output_refs
from mandala.engine.structural import Builder
from mandala.hashing import ids
from mandala.model.annotations import StorageType
from mandala.model.calls import Call, OpSpec
from mandala.model.refs import Ref

__all__ = ["new_builder", "call_keys", "replay_call"]


def call_keys(
    spec: OpSpec, inputs: dict[str, Ref], semantic_version: str | None = None
) -> tuple[bytes, bytes]:
    """``(history_key, content_key)`` of a call of ``spec`` on these input refs."""
    op_key = ids.op_key(spec.name, spec.version)
    history = ids.call_key(
        op_key, [(n, r.history_key) for n, r in inputs.items()], semantic_version
    )
    content = ids.call_key(
        op_key, [(n, r.content_key) for n, r in inputs.items()], semantic_version
    )
    return history, content


def replay_call(
    engine: Engine,
    spec: OpSpec,
    inputs: dict[str, Ref],
    builder: Builder,
    outputs: Sequence[tuple[str, Any, StorageType]],
    semantic_version: str | None = None,
    content_version: str | None = None,
    started_at: float | None = None,
    duration: float | None = None,
    record: bool = True,
    also: Callable[[], None] | None = None,
) -> Call:
    """The call of ``spec`` on ``inputs`` that returned ``outputs`` (name, value, storage type),
    recorded in the engine's pending writes unless ``record`` is False (then only its refs are
    computed, e.g. for a call the store already has).

    ``builder`` holds the structural calls that built the collection inputs; the output
    collections' getitem calls are added to it.

    Raises:
        UnhashableValueError, SerializationError: an output cannot be stored (nothing of the call
            is recorded then).
    """
    history, content = call_keys(spec, inputs, semantic_version)
    output_refs_ = output_refs(spec.name, outputs, history, builder)
    call = Call(
        spec,
        content,
        history,
        inputs,
        output_refs_,
        semantic_version,
        content_version,
        started_at,
        duration,
    )
    if record:
        engine.record(spec, call, builder, also)
    return call
