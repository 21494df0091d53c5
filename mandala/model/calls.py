"""Calls and the stored description of an op."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from mandala.model.refs import Ref, short_id

__all__ = ["OpSpec", "Call", "CallSource", "LazyCall"]


@dataclass(frozen=True)
class OpSpec:
    """What the store knows of an op: enough to describe its calls without its code.

    Attributes:
        name: the op's name (the function's ``__name__``); with ``version`` it is the op's
            identity in every call id.
        version: the op's declared version (0 unless given to ``@op``).
        output_names: declared output names, or None for the default ``output_0``, ...
        nout: ``"auto"``, ``"var"`` or a fixed count, as declared.
        ignore_args: parameter names always treated as ``Ignore``.
        is_structural: True for the built-in collection ops (``__make_list__`` ...).
    """

    name: str
    version: int = 0
    output_names: tuple[str, ...] | None = None
    nout: str | int = "auto"
    ignore_args: tuple[str, ...] = ()
    is_structural: bool = False


class Call:
    """One execution of an op: its identity, its input and output refs, and metadata.

    Attributes:
        op: the op's :class:`OpSpec`.
        inputs / outputs: refs by input / output name (ignored arguments are absent).
        semantic_version / content_version: filled in by versioning, None otherwise.
        started_at: wall-clock start (seconds since the epoch); duration: seconds it ran.
    """

    __slots__ = (
        "op",
        "content_key",
        "history_key",
        "inputs",
        "outputs",
        "semantic_version",
        "content_version",
        "started_at",
        "duration",
    )

    def __init__(
        self,
        op: OpSpec,
        content_key: bytes,
        history_key: bytes,
        inputs: dict[str, Ref],
        outputs: dict[str, Ref],
        semantic_version: str | None = None,
        content_version: str | None = None,
        started_at: float | None = None,
        duration: float | None = None,
    ) -> None:
        self.op = op
        self.content_key = content_key
        self.history_key = history_key
        self.inputs = inputs
        self.outputs = outputs
        self.semantic_version = semantic_version
        self.content_version = content_version
        self.started_at = started_at
        self.duration = duration

    @property
    def content_id(self) -> str:
        """Hex id of the call from its inputs' contents."""
        return self.content_key.hex()

    @property
    def history_id(self) -> str:
        """Hex id of the call from its inputs' histories: the call's primary key."""
        return self.history_key.hex()

    @property
    def cid(self) -> str:
        """Alias of :attr:`content_id`."""
        return self.content_key.hex()

    @property
    def hid(self) -> str:
        """Alias of :attr:`history_id`."""
        return self.history_key.hex()

    def __hash__(self) -> int:
        return hash(self.history_key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Call):
            return NotImplemented
        return self.history_key == other.history_key

    def __repr__(self) -> str:
        return f"Call({self.op.name}, hid={short_id(self.history_key)})"

    def with_refs(self, inputs: dict[str, Ref], outputs: dict[str, Ref]) -> Call:
        """A copy of this call holding other ref objects for the same ids."""
        return Call(
            self.op,
            self.content_key,
            self.history_key,
            inputs,
            outputs,
            self.semantic_version,
            self.content_version,
            self.started_at,
            self.duration,
        )

    def describe(self) -> dict[str, Any]:
        """Plain-data summary (for reprs and tables)."""
        return {
            "op": self.op.name,
            "hid": self.hid,
            "inputs": {k: v.hid for k, v in self.inputs.items()},
            "outputs": {k: v.hid for k, v in self.outputs.items()},
            "started_at": self.started_at,
            "duration": self.duration,
        }


_INPUTS_SLOT = Call.__dict__["inputs"]
_OUTPUTS_SLOT = Call.__dict__["outputs"]
_DETAIL_SLOTS = tuple(
    Call.__dict__[name]
    for name in ("content_key", "semantic_version", "content_version", "started_at", "duration")
)


class CallSource(Protocol):
    """Where a :class:`LazyCall` gets its refs and other fields, by the call's row there."""

    def call_refs(self, row: int) -> tuple[dict[str, Ref], dict[str, Ref]]:
        """``(inputs, outputs)`` of the call of ``row``."""

    def call_details(self, row: int) -> tuple[Any, ...]:
        """``(content_key, semantic_version, content_version, started_at, duration)``."""


def _detail_property(index: int) -> property:
    """A :class:`LazyCall` field kept in the slot of the same name of :class:`Call`, read from
    the call's source on first access."""

    def get(self: LazyCall) -> Any:
        return self._detail(index)

    def set(self: LazyCall, value: Any) -> None:
        _DETAIL_SLOTS[index].__set__(self, value)

    return property(get, set)


class LazyCall(Call):
    """A :class:`Call` whose input and output refs, and optionally its other stored fields
    (content key, versions, timing), are built on first access.

    Tables of stored calls hold one Call per cell; most are never opened, so building their refs
    up front (several objects per call), or reading every call's metadata from the store, would
    dominate the cost of the table.

    Args:
        source / row: where the refs (and details) come from: ``source.call_refs(row)``.
        details: ``(content_key, semantic_version, content_version, started_at, duration)``,
            or None to ask ``source.call_details(row)`` when one of them is first read.
    """

    __slots__ = ("_source", "_row")

    def __init__(
        self,
        op: OpSpec,
        history_key: bytes,
        source: CallSource,
        row: int,
        details: tuple[Any, ...] | None = None,
    ) -> None:
        self.op = op
        self.history_key = history_key
        self._source = source
        self._row = row
        if details is not None:
            for slot, value in zip(_DETAIL_SLOTS, details):
                slot.__set__(self, value)

    def _detail(self, index: int) -> Any:
        slot = _DETAIL_SLOTS[index]
        try:
            return slot.__get__(self, Call)
        except AttributeError:
            for each, value in zip(_DETAIL_SLOTS, self._source.call_details(self._row)):
                try:
                    each.__get__(self, Call)  # assigned since: keep
                except AttributeError:
                    each.__set__(self, value)
            return slot.__get__(self, Call)

    content_key = _detail_property(0)
    semantic_version = _detail_property(1)
    content_version = _detail_property(2)
    started_at = _detail_property(3)
    duration = _detail_property(4)

    def _refs(self, slot: Any) -> dict[str, Ref]:
        refs: dict[str, Ref]
        try:
            refs = slot.__get__(self, Call)
        except AttributeError:
            inputs, outputs = self._source.call_refs(self._row)
            _INPUTS_SLOT.__set__(self, inputs)
            _OUTPUTS_SLOT.__set__(self, outputs)
            refs = slot.__get__(self, Call)
        return refs

    @property
    def inputs(self) -> dict[str, Ref]:
        return self._refs(_INPUTS_SLOT)

    @inputs.setter
    def inputs(self, value: dict[str, Ref]) -> None:
        self._refs(_INPUTS_SLOT)  # build both sides first, so a later read cannot overwrite
        _INPUTS_SLOT.__set__(self, value)

    @property
    def outputs(self) -> dict[str, Ref]:
        return self._refs(_OUTPUTS_SLOT)

    @outputs.setter
    def outputs(self, value: dict[str, Ref]) -> None:
        self._refs(_OUTPUTS_SLOT)
        _OUTPUTS_SLOT.__set__(self, value)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # copies and pickles are plain Calls, with their refs built
        return (
            Call,
            (
                self.op,
                self.content_key,
                self.history_key,
                self.inputs,
                self.outputs,
                self.semantic_version,
                self.content_version,
                self.started_at,
                self.duration,
            ),
        )
