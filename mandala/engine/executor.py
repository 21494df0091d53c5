"""Executing one op call under a storage: bind, identify, look up, run, record; and running an
op's function plainly (outside a storage, in ``noop`` mode, inside another op's body).

The hot path is written for a memo hit of a trivial op to cost a few microseconds: a
precomputed binder, one content hash per raw input, two small hashes for the call, one dict
lookup. Nothing is recorded until the call has completed and its outputs are checked, so an
exception in the op (or a bad return value) leaves no trace of that call, while calls that
completed before it stay pending and are committed as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from mandala.engine.context import CallEngine, Mode, pop_frame, push_frame
from mandala.engine.declaration import OpDeclaration
from mandala.engine.mutation import InputGuard
from mandala.engine.outputs import order_outputs, split_outputs
from mandala.engine.session import Session
from mandala.engine.structural import Builder
from mandala.engine.versions import ACTIVE_TRACER, ResolvedVersion, VersionResolver
from mandala.errors import (
    NewCallsNotAllowedError,
    SerializationError,
    UnhashableValueError,
    ValueNotFoundError,
)
from mandala.hashing import ids
from mandala.hashing.values import content_key
from mandala.model.annotations import ATOM, StorageType
from mandala.model.calls import Call, OpSpec
from mandala.model.kinds import (
    KIND_ATOM,
    KIND_DICT,
    KIND_LIST,
    KIND_POINTER,
    KIND_SET,
    ref_from_kind,
    ref_kind,
)
from mandala.model.markers import Ignore, NewArgDefault, ValuePointer, values_equal_strict
from mandala.model.refs import AtomRef, DictRef, ListRef, Ref, SetRef

__all__ = [
    "Engine",
    "PendingCall",
    "make_atom",
    "iter_refs",
    "output_refs",
    "call_plain",
]

_perf_counter = time.perf_counter
_wall_clock = time.time

_UNVERSIONED: tuple[tuple[str | None, str | None], ...] = ((None, None),)
"""The versions an unversioned storage tries for a call: none."""

_MARKERS = (Ignore, NewArgDefault, ValuePointer)

_EngineT = TypeVar("_EngineT")


def make_atom(value: Any) -> AtomRef:
    """The in-memory ref of a raw value (what ``wrap_atom`` returns)."""
    if isinstance(value, Ref):
        return value  # type: ignore[return-value]
    if type(value) is ValuePointer:
        key = ids.pointer_key(content_key(value.id))
        return AtomRef(key, key, True, value.obj)
    key = content_key(value)
    return AtomRef(key, ids.atom_history_key(key), True, value)


class PendingCall:
    """A call that was looked up, not found, and must be executed (see :meth:`Engine.prepare`).

    It holds the identity computed before execution; the executor that runs the function may be
    this process or another one (parallel execution ships :meth:`Engine.argument_values`).
    """

    __slots__ = (
        "op",
        "inputs",
        "passed",
        "builder",
        "history",
        "content",
        "semantic_version",
        "pre_call_key",
        "guard",
    )

    def __init__(
        self,
        op: OpDeclaration,
        inputs: dict[str, Ref],
        passed: dict[str, Any],
        builder: Builder,
        history: bytes,
        content: bytes,
        semantic_version: str | None,
        pre_call_key: bytes | None = None,
    ) -> None:
        self.op = op
        self.inputs = inputs
        self.passed = passed
        self.builder = builder
        self.history = history
        self.content = content
        self.semantic_version = semantic_version
        # Set for a versioned call: its ids are known only once tracing gave its version, so
        # ``history`` and ``content`` are then those of the call without a version (what
        # identifies it before it runs).
        self.pre_call_key = pre_call_key
        # Inputs whose values the body could change: recorded now, checked when it completes.
        self.guard: InputGuard | None = None

    @property
    def history_id(self) -> str:
        """The history id the call's row will have (hex); for a versioned call, the id that
        identifies it before it runs."""
        return self.history.hex()


def new_builder(op_name: str) -> Builder:
    """A builder for the collections of one call of ``op_name``: elements become atoms, and
    an unhashable one is reported with the op and the argument."""

    def wrap(value: Any, where: str) -> Ref:
        try:
            return make_atom(value)
        except UnhashableValueError as error:
            raise UnhashableValueError(f"op {op_name!r}, {where}: {error}") from error

    return Builder(wrap, f"op {op_name!r}")


class Engine:
    """Runs op calls against a :class:`Session`; one per Storage."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.allow_new_calls = True
        self.versioning: VersionResolver | None = None
        self.on_input_mutation = "warn"
        """What a call whose body changed an input does (see ``mandala.engine.mutation``)."""

    # ================================================================== calls

    def call(self, op: OpDeclaration, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run (or find) one call of ``op``; returns its output ref(s)."""
        found, pending = self.prepare(op, args, kwargs)
        if pending is None:
            return found
        try:
            result, started_at, duration, trace = self.run_function(
                op, self.argument_values(pending)
            )
        except BaseException:
            if pending.guard is not None:
                pending.guard.discard(self.session)
            raise
        resolver = self.versioning
        version = resolver.resolve(op, trace) if resolver is not None else None
        return self.complete(pending, result, started_at, duration, version)

    def prepare(
        self, op: OpDeclaration, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, PendingCall | None]:
        """Identify a call and look it up: ``(outputs, None)`` when it is stored (or reuses the
        results of a stored call with equal input contents), ``(None, pending)`` when it must
        be executed; then pass ``pending`` to :meth:`complete` with what the function returned.

        When calls carry a semantic version (a versioned storage), the versions tried are those
        under which a call with these input contents was stored and which the current code still
        matches; an unversioned storage tries the one id without a version.

        Raises:
            NewCallsNotAllowedError: the call must be executed but new calls are not allowed.
        """
        inputs, passed, builder = self._inputs(op, op.plan.bind(args, kwargs))
        session = self.session
        resolver = self.versioning
        key = op.key
        history_pairs = [(name, ref.history_key) for name, ref in inputs.items()]
        content_pairs: list[tuple[str, bytes]] | None = None
        pre_call_key: bytes | None = None
        candidates: Iterable[tuple[str | None, str | None]] = _UNVERSIONED
        if resolver is not None:
            content_pairs = [(name, ref.content_key) for name, ref in inputs.items()]
            pre_call_key = ids.call_key(key, content_pairs)
            candidates = resolver.candidates(op, pre_call_key)
        history = content = b""
        for semantic_version, content_version in candidates:
            history = ids.call_key(key, history_pairs, semantic_version)
            found = session.calls.get(history)
            if found is not None:
                return order_outputs(op, self._refs_of_outputs(found)), None
            if content_pairs is None:
                content_pairs = [(name, ref.content_key) for name, ref in inputs.items()]
            content = ids.call_key(key, content_pairs, semantic_version)
            reused = self._find_or_restamp(
                op, inputs, history, content, semantic_version, content_version, builder
            )
            if reused is not None:
                return reused, None
        self._check_new_calls_allowed(op)
        if builder is None:
            builder = self._builder(op)
        if pre_call_key is None:
            pending = PendingCall(op, inputs, passed, builder, history, content, None)
        else:
            # A versioned call is identified, until it ran, by its ids without a version.
            pre_history = ids.call_key(key, history_pairs)
            pending = PendingCall(
                op, inputs, passed, builder, pre_history, pre_call_key, None, pre_call_key
            )
        if inputs:
            guard = InputGuard(op, inputs, session, self.on_input_mutation)
            if guard.recorded or guard.watched:
                pending.guard = guard
        return None, pending

    def _find_or_restamp(
        self,
        op: OpDeclaration,
        inputs: dict[str, Ref],
        history: bytes,
        content: bytes,
        semantic_version: str | None,
        content_version: str | None,
        builder: Builder | None,
    ) -> Any:
        """The outputs of the call if it is stored (by history, or by content: then a new call
        re-stamps the stored outputs with this history), else None."""
        found, prototype = self.session.find(history, content)
        if found is not None:
            return order_outputs(op, self._refs_of_outputs(found))
        if prototype is None:
            return None
        if builder is None:
            builder = self._builder(op)
        outputs = self._restamped_outputs(prototype, history, builder)
        call = Call(op.spec, content, history, inputs, outputs, semantic_version, content_version)
        self._record(op, call, builder)
        return order_outputs(op, outputs)

    def _check_new_calls_allowed(self, op: OpDeclaration) -> None:
        if not self.allow_new_calls:
            raise NewCallsNotAllowedError(
                f"Call to {op.name} does not exist and new calls are not allowed. "
                "Call storage.allow_new_calls(True) to compute it."
            )

    def complete(
        self,
        pending: PendingCall,
        result: Any,
        started_at: float | None,
        duration: float | None,
        version: ResolvedVersion | None = None,
    ) -> Any:
        """Record an executed call from what its function returned; returns its output ref(s).

        ``version`` is what tracing resolved for a call of a versioned storage (required there).

        Raises:
            OutputMismatchError: ``result`` does not match the op's declared outputs.
            UnhashableValueError, SerializationError: an output cannot be stored (nothing of the
                call is recorded then).
        """
        if pending.guard is not None and pending.guard.watched:
            pending.guard.check(self.session)
        op = pending.op
        history, content = pending.history, pending.content
        semantic_version = pending.semantic_version
        content_version = None
        resolver = self.versioning
        if pending.pre_call_key is not None:
            if version is None or resolver is None:
                raise ValueError(
                    f"op {op.name!r}: a call of a versioned storage needs the version its "
                    "execution resolved"
                )
            semantic_version = version.semantic_version
            content_version = version.content_version
            inputs = pending.inputs.items()
            history = ids.call_key(
                op.key, [(n, r.history_key) for n, r in inputs], semantic_version
            )
            content = ids.call_key(
                op.key, [(n, r.content_key) for n, r in inputs], semantic_version
            )
        outputs = self._output_refs(op, result, history, pending.builder)
        call = Call(
            op.spec,
            content,
            history,
            pending.inputs,
            outputs,
            semantic_version,
            content_version,
            started_at,
            duration,
        )
        if pending.pre_call_key is not None and version is not None and resolver is not None:
            pre_call_key = pending.pre_call_key

            def remember() -> None:
                resolver.remember(self.session, op, pre_call_key, version)

            self._record(op, call, pending.builder, remember)
        else:
            self._record(op, call, pending.builder)
        return order_outputs(op, outputs)

    # ------------------------------------------------------------------ inputs

    def _inputs(
        self, op: OpDeclaration, bound: dict[str, Any]
    ) -> tuple[dict[str, Ref], dict[str, Any], Builder | None]:
        """Refs of the stored inputs, what the body receives per parameter, and the builder of
        any collection inputs (whose structural calls are recorded with the call)."""
        plan = op.plan
        inputs: dict[str, Ref] = {}
        passed: dict[str, Any] = {}
        builder: Builder | None = None
        ignored = op.ignore_set
        for parameter in plan.parameters:
            name = parameter.name
            value = bound[name]
            if name in ignored:
                passed[name] = value
                continue
            if parameter.is_variadic_positional or parameter.is_variadic_keyword:
                # *args elements are inputs args_0, args_1, ...; **kwargs entries by their keys
                named = (
                    {f"{name}_{i}": item for i, item in enumerate(value)}
                    if parameter.is_variadic_positional
                    else value
                )
                given = {}
                for input_name, item in named.items():
                    if type(item) is Ignore:
                        given[input_name] = item.value
                        continue
                    if builder is None:
                        builder = self._builder(op)
                    ref = builder.construct(
                        item, parameter.storage_type, f"argument {input_name!r}"
                    )
                    inputs[input_name] = ref
                    given[input_name] = ref
                passed[name] = list(given.values()) if parameter.is_variadic_positional else given
                continue
            cls = type(value)
            if cls is Ignore:
                passed[name] = value.value
                continue
            default = parameter.default
            if type(default) is NewArgDefault:
                if value is default:
                    passed[name] = default.value
                    continue
                raw = self.unwrap(value) if isinstance(value, Ref) else value
                if values_equal_strict(default.value, raw):
                    passed[name] = default.value
                    continue
            if parameter.storage_type is ATOM and cls is not ValuePointer:
                if isinstance(value, Ref):
                    ref = value
                else:
                    try:
                        key = content_key(value)
                    except UnhashableValueError as error:
                        raise UnhashableValueError(
                            f"op {op.name!r}, argument {name!r}: {error}"
                        ) from error
                    ref = AtomRef(key, ids.atom_history_key(key), True, value)
            else:
                if builder is None:
                    builder = self._builder(op)
                ref = builder.construct(value, parameter.storage_type, f"argument {name!r}")
            inputs[name] = ref
            passed[name] = ref
        return inputs, passed, builder

    def _builder(self, op: OpDeclaration) -> Builder:
        return new_builder(op.name)

    # ------------------------------------------------------------------ execution

    def argument_values(self, pending: PendingCall) -> dict[str, Any]:
        """What the function receives, per parameter: values, with refs unwrapped (loading
        stored values)."""
        return _values_by_parameter(pending.op, pending.passed, _stored_value, self)

    def run_function(
        self, op: OpDeclaration, values: dict[str, Any]
    ) -> tuple[Any, float, float, Any]:
        """Run the op's function here on argument values; returns ``(result, started_at,
        duration, trace)``. Op calls inside the body are plain function calls. In a versioned
        storage the function runs under the version resolver's tracing, and ``trace`` is what
        it saw (None otherwise)."""
        args, kwargs = op.plan.layout(values)
        resolver = self.versioning
        trace = None
        token = push_frame(self, Mode.PLAIN)
        started_at = _wall_clock()
        start = _perf_counter()
        try:
            if resolver is None:
                result = op.func(*args, **kwargs)
            else:
                result, trace = resolver.execute(op, args, kwargs)
        finally:
            duration = _perf_counter() - start
            pop_frame(token)
        return result, started_at, duration, trace

    def _output_refs(
        self, op: OpDeclaration, result: Any, history: bytes, builder: Builder
    ) -> dict[str, Ref]:
        return output_refs(op.name, split_outputs(op, result), history, builder)

    def _restamped_outputs(
        self, prototype: bytes, history: bytes, builder: Builder
    ) -> dict[str, Ref]:
        """Outputs of a new call that reuses the results of a call with equal input contents."""
        found = self.session.lookup(prototype)
        if found is None:  # the prototype was dropped meanwhile
            raise ValueNotFoundError(f"call {prototype.hex()} disappeared from the store")
        outputs: dict[str, Ref] = {}
        for name, ref in self._refs_of_outputs(found).items():
            outputs[name] = builder.restamp(ref, ids.output_history_key(history, name))
        return outputs

    # ------------------------------------------------------------------ recording

    def _record(
        self,
        op: OpDeclaration,
        call: Call,
        builder: Builder,
        also: Callable[[], None] | None = None,
    ) -> None:
        self.record(op.spec, call, builder, also)

    def record(
        self,
        spec: OpSpec,
        call: Call,
        builder: Builder,
        also: Callable[[], None] | None = None,
    ) -> None:
        """Add a completed call and its structural calls to the pending writes, all or nothing.

        Values are serialized first; if one cannot be, the values serialized so far for this call
        are discarded and nothing else was recorded. A durable session commits the call before
        this returns (under the same lock, so no other thread's commit splits it).
        """
        session = self.session
        with session.lock:
            self._record_locked(spec, call, builder)
            if also is not None:
                also()
            session.call_recorded()

    def _record_locked(self, spec: OpSpec, call: Call, builder: Builder) -> None:
        session = self.session
        new_values: list[bytes] = []
        refs: list[tuple[Ref, int]] = []
        items: list[tuple[bytes, list[tuple]]] = []
        context = f"op {spec.name!r}"
        try:
            for recorded in (*builder.calls, call):
                for direction, named in (
                    ("argument", recorded.inputs),
                    ("output", recorded.outputs),
                ):
                    for name, ref in named.items():
                        self._collect(
                            ref, f"{context}, {direction} {name!r}", new_values, refs, items
                        )
        except SerializationError:
            session.discard_values(new_values)
            raise
        for ref, kind in refs:
            session.record_ref(ref, kind)
        for collection_key, rows in items:
            session.record_items(collection_key, rows)
        session.register_op(spec)
        for structural in builder.calls:
            session.register_op(structural.op)
            session.record_call(structural)
        session.record_call(call)

    def _collect(
        self,
        ref: Ref,
        where: str,
        new_values: list[bytes],
        refs: list[tuple[Ref, int]],
        items: list[tuple[bytes, list[tuple]]],
    ) -> None:
        """Serialize the new values under ``ref`` and list its ref and item rows."""
        cls = type(ref)
        if cls is AtomRef:
            if ref.history_key == ref.content_key:  # only ValuePointer refs have equal keys
                refs.append((ref, KIND_POINTER))
                return
            if ref.in_memory:
                try:
                    if self.session.record_value(ref.content_key, ref.obj):
                        new_values.append(ref.content_key)
                except SerializationError as error:
                    raise SerializationError(f"{where}: {error}") from error
            refs.append((ref, KIND_ATOM))
            return
        kind = KIND_LIST if cls is ListRef else KIND_DICT if cls is DictRef else KIND_SET
        refs.append((ref, kind))
        if ref.in_memory and ref.obj is not None:
            if cls is DictRef:
                rows = [
                    (ref.history_key, i, key, e.history_key, e.content_key, ref_kind(e))
                    for i, (key, e) in enumerate(sorted(ref.obj.items()))
                ]
                elements: Iterable[Ref] = ref.obj.values()
            else:
                rows = [
                    (ref.history_key, i, None, e.history_key, e.content_key, ref_kind(e))
                    for i, e in enumerate(ref.obj)
                ]
                elements = ref.obj
            items.append((ref.history_key, rows))
            for element in elements:
                self._collect(element, where, new_values, refs, items)

    # ================================================================== loading

    def stored_outputs(self, history_key: bytes) -> dict[str, Ref] | None:
        """The output refs (values not loaded) of the stored or pending call with this history
        key, or None if there is none."""
        found = self.session.lookup(history_key)
        if found is None:
            return None
        return self._refs_of_outputs(found)

    def _refs_of_outputs(
        self, outputs: tuple[tuple[str, bytes, bytes, int], ...]
    ) -> dict[str, Ref]:
        refs: dict[str, Ref] = {}
        collections: list[Ref] = []
        for name, history_key, content, kind in outputs:
            if kind in (KIND_ATOM, KIND_POINTER):
                refs[name] = AtomRef(content, history_key, False, None)
            else:
                ref = ref_from_kind(kind, content, history_key)
                refs[name] = ref
                collections.append(ref)
        if collections:
            self.load_shapes(collections)
        return refs

    def load_shapes(self, refs: list[Ref]) -> None:
        """Fill in the element refs of collection refs (recursively), leaving values lazy."""
        pending = [r for r in refs if not isinstance(r, AtomRef) and r.obj is None]
        while pending:
            shapes = self.session.load_shapes([r.history_key for r in pending])
            next_level: list[Ref] = []
            for ref in pending:
                # A collection without item rows is empty: every stored collection ref comes
                # from a call edge, and its items (if any) are written in the same commit.
                items = shapes.get(ref.history_key, [])
                elements = []
                for item in items:
                    element = ref_from_kind(
                        item.element.kind, item.element.content_key, item.element.history_key
                    )
                    elements.append((item, element))
                    if not isinstance(element, AtomRef):
                        next_level.append(element)
                if isinstance(ref, DictRef):
                    ref.obj = {item.item_key: element for item, element in elements}
                else:
                    ref.obj = [element for _, element in elements]
                ref.in_memory = True
            pending = next_level

    def unwrap(self, obj: Any, cache: bool = True) -> Any:
        """Values of the refs in ``obj`` (recursing through lists, tuples, dicts and sets)."""
        refs = list(iter_refs(obj))
        if refs:
            self._load_values(refs, cache)
        return _substitute(obj)

    def attach(self, refs: Iterable[Ref]) -> None:
        """Load the values of ``refs`` into them (in place)."""
        self._load_values(list(refs), True)

    def _load_values(self, refs: list[Ref], cache: bool) -> None:  # noqa: ARG002 - unwrap's cache=, kept for pymandala 0.2; values always stay in their refs
        self.load_shapes([r for r in refs if not isinstance(r, AtomRef)])
        atoms: list[AtomRef] = []
        stack: list[Ref] = list(refs)
        while stack:
            ref = stack.pop()
            if isinstance(ref, AtomRef):
                if not ref.in_memory:
                    atoms.append(ref)
            elif ref.obj is not None:
                stack.extend(ref.obj.values() if isinstance(ref, DictRef) else ref.obj)
        if not atoms:
            return
        if any(a.history_key == a.content_key for a in atoms):
            raise ValueNotFoundError(
                "a ValuePointer's object is never stored; pass the ValuePointer (with its object)"
                " again instead of unwrapping the stored ref"
            )
        values = self.session.load_values(a.content_key for a in atoms)
        for atom in atoms:
            atom.obj = values[atom.content_key]
            atom.in_memory = True


def output_refs(
    op_name: str,
    named: Iterable[tuple[str, Any, StorageType]],
    history: bytes,
    builder: Builder,
) -> dict[str, Ref]:
    """The output refs of the call with history key ``history`` from its named output values
    (or refs) and their storage types; collection outputs get their elements' getitem calls
    in ``builder``.

    Raises:
        UnhashableValueError: an output value cannot get a content id.
    """
    outputs: dict[str, Ref] = {}
    for name, value, storage_type in named:
        output_history = ids.output_history_key(history, name)
        if isinstance(value, Ref):
            outputs[name] = builder.restamp(value, output_history)
        elif storage_type is ATOM:
            try:
                key = content_key(value)
            except UnhashableValueError as error:
                raise UnhashableValueError(f"op {op_name!r}, output {name!r}: {error}") from error
            outputs[name] = AtomRef(key, output_history, True, value)
        else:
            built = Builder(builder.wrap_atom, builder.context).construct(
                value, storage_type, f"output {name!r}"
            )
            outputs[name] = builder.restamp(built, output_history)
    return outputs


def iter_refs(obj: Any) -> Iterable[Ref]:
    """Every ref in ``obj``, looking through lists, tuples, sets, frozensets and dicts."""
    if isinstance(obj, Ref):
        yield obj
    elif type(obj) in (list, tuple, set, frozenset):
        for item in obj:
            yield from iter_refs(item)
    elif type(obj) is dict:
        for item in obj.values():
            yield from iter_refs(item)


def _substitute(obj: Any) -> Any:
    """``obj`` with every (loaded) ref replaced by its value."""
    if isinstance(obj, Ref):
        if isinstance(obj, AtomRef):
            return obj.obj
        if isinstance(obj, ListRef):
            return [_substitute(e) for e in obj.obj]
        if isinstance(obj, DictRef):
            return {k: _substitute(e) for k, e in obj.obj.items()}
        if isinstance(obj, SetRef):
            return {_substitute(e) for e in obj.obj}
    cls = type(obj)
    if cls in (list, tuple, set, frozenset):
        return cls(_substitute(item) for item in obj)
    if cls is dict:
        return {k: _substitute(v) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------------------- plain execution


def _values_by_parameter(
    op: OpDeclaration,
    passed: dict[str, Any],
    value_of: Callable[[Any, _EngineT], Any],
    engine: _EngineT,
) -> dict[str, Any]:
    """``value_of(value, engine)`` of what each parameter was passed (of each element of
    ``*args`` and each entry of ``**kwargs``), by parameter name."""
    values: dict[str, Any] = {}
    for parameter in op.plan.parameters:
        name = parameter.name
        value = passed[name]
        if parameter.is_variadic_positional:
            values[name] = [value_of(v, engine) for v in value]
        elif parameter.is_variadic_keyword:
            values[name] = {k: value_of(v, engine) for k, v in value.items()}
        else:
            values[name] = value_of(value, engine)
    return values


def call_plain(
    op: OpDeclaration, args: tuple[Any, ...], kwargs: dict[str, Any], engine: CallEngine | None
) -> Any:
    """Run the op's function itself (outside a storage, in ``noop`` mode, or inside another
    op's body), with markers replaced by their payloads and refs unwrapped by ``engine`` (only
    in-memory atoms without one).

    Inside a versioned call, the nested op's code is traced too.
    """
    values = _values_by_parameter(op, op.plan.bind(args, kwargs), _plain_value, engine)
    call_args, call_kwargs = op.plan.layout(values)
    tracer = ACTIVE_TRACER.get()
    if tracer is not None:
        return tracer.call_op(op, lambda function: function(*call_args, **call_kwargs))
    return op.func(*call_args, **call_kwargs)


def _stored_value(value: Any, engine: Engine) -> Any:
    """What the function receives for ``value`` in a memoized call: refs unwrapped."""
    if isinstance(value, Ref):
        if value.in_memory and type(value) is AtomRef:
            return value.obj
        return engine.unwrap(value)
    return value


def _plain_value(value: Any, engine: CallEngine | None) -> Any:
    """What the function receives for ``value`` in a plain call: markers' payloads, refs
    unwrapped (without an engine, only in-memory atoms)."""
    cls = type(value)
    if cls in _MARKERS:
        if cls is ValuePointer:
            return value.obj
        return value.value
    if isinstance(value, Ref):
        if engine is not None:
            return engine.unwrap(value)
        if isinstance(value, AtomRef) and value.in_memory:
            return value.obj
    return value
