"""Re-keying the calls of an original store under this release's ids.

Ids here come from our own hashing, so no id of the original can be kept: each call is rebuilt
from its op and its input and output *values* (unpickled from the old store) and recorded as
if it had just run (:func:`mandala.engine.replay.replay_call`). A call's input histories come
from the calls that created them, so calls are converted in topological order (creators
first), and a map from each old ref's history id to its new ref carries histories forward.

The original's structural calls are not copied one by one: a ``__make_list__`` /
``__make_dict__`` that built an input is rebuilt with the call that used it, and the
``__list_getitem__`` / ``__dict_getitem__`` calls of a collection output are rebuilt with the
call that returned it, exactly as our engine does when it runs such a call.

Nothing stops half-way: a value that cannot be loaded is reported, and the calls that need it
(and, transitively, their dependents) are skipped and reported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from mandala.engine.replay import call_keys, new_builder, replay_call
from mandala.engine.structural import Builder
from mandala.errors import MigrationError, SerializationError, UnhashableValueError
from mandala.migrate.old_store import ATOM, DICT, LIST, OldCall, OldRef, OldStore
from mandala.migrate.report import MigrationReport, Problem
from mandala.migrate.versions import VersionMap, VersionSkip
from mandala.model.annotations import ATOM as ATOM_TYPE
from mandala.model.annotations import DictType, ListType, StorageType
from mandala.model.calls import OpSpec
from mandala.model.refs import AtomRef, DictRef, ListRef, Ref
from mandala.storage import Storage

__all__ = ["Converter"]

logger = logging.getLogger(__name__)

_MAKERS = {"__make_list__", "__make_dict__", "__make_set__", "__make_tuple__"}
_GETTERS = {"__list_getitem__", "__dict_getitem__", "__set_getitem__"}


class _Skip(Exception):
    """The call being converted cannot be (the message says why)."""


def _detached(ref: Ref) -> Ref:
    """``ref`` without values (collections keep their element refs): what later calls need."""
    if isinstance(ref, AtomRef):
        return AtomRef(ref.content_key, ref.history_key, False, None)
    if isinstance(ref, DictRef):
        return DictRef(
            ref.content_key,
            ref.history_key,
            True,
            {k: _detached(e) for k, e in (ref.obj or {}).items()},
        )
    return type(ref)(
        ref.content_key, ref.history_key, True, [_detached(e) for e in (ref.obj or [])]
    )


def _element_index(name: str) -> int:
    return int(name.rsplit("_", 1)[1])


class Converter:
    """One migration of an :class:`OldStore` into a :class:`Storage` (see the module doc)."""

    def __init__(
        self,
        old: OldStore,
        storage: Storage,
        report: MigrationReport,
        versions: VersionMap | None,
        batch_size: int = 1000,
    ) -> None:
        self.old = old
        self.storage = storage
        # SLF001: the import writes through the engine of the storage it fills
        self.engine = storage._engine  # noqa: SLF001
        self.report = report
        self.versions = versions
        self.batch_size = batch_size
        self.calls = old.calls()
        self.refs = old.refs()
        self.ops = old.ops()
        self.creator: dict[str, str] = {}
        for call in self.calls.values():
            for hid in call.outputs.values():
                self.creator[hid] = call.hid
        self.ours: dict[str, Ref] = {}
        self.skipped: dict[str, str] = {}
        self.bad_values: dict[str, str] = {}
        self._values: dict[str, Any] = {}
        self._seen_values: set[bytes] = set()
        self._batch_values: set[bytes] = set()
        self._collections: set[str] = set()

    # ------------------------------------------------------------------ order

    def _ref_dependencies(self, hid: str, memo: dict[str, frozenset[str]]) -> frozenset[str]:
        """The user calls whose outputs the ref ``hid`` needs (through collections)."""
        found = memo.get(hid)
        if found is not None:
            return found
        creator = self.creator.get(hid)
        if creator is None:
            result: frozenset[str] = frozenset()
        else:
            call = self.calls[creator]
            if call.op_name in _MAKERS or call.op_name in _GETTERS:
                result = frozenset().union(
                    *(self._ref_dependencies(h, memo) for h in call.inputs.values())
                )
            else:
                result = frozenset([creator])
        memo[hid] = result
        return result

    def user_calls_in_order(self) -> list[OldCall]:
        """Calls of user ops, each after the calls it depends on."""
        memo: dict[str, frozenset[str]] = {}
        users = sorted(h for h, c in self.calls.items() if c.op_name not in _MAKERS | _GETTERS)
        deps = {
            h: frozenset().union(
                *(self._ref_dependencies(r, memo) for r in self.calls[h].inputs.values())
            )
            - {h}
            for h in users
        }
        order: list[OldCall] = []
        done: set[str] = set()
        for root in users:
            if root in done:
                continue
            stack: list[tuple[str, bool]] = [(root, False)]
            while stack:
                hid, expanded = stack.pop()
                if hid in done:
                    continue
                if expanded:
                    done.add(hid)
                    order.append(self.calls[hid])
                    continue
                stack.append((hid, True))
                stack.extend((d, False) for d in sorted(deps[hid]) if d not in done)
        return order

    # ------------------------------------------------------------------ values

    def _value(self, cid: str, op_name: str) -> Any:
        if cid in self._values:
            return self._values[cid]
        reason = self.bad_values.get(cid)
        if reason is None:
            try:
                value = self.old.value(cid)
            except KeyError:
                reason = "the original store has no row for it in its atoms table"
            except MigrationError:
                raise
            except Exception as error:  # noqa: BLE001 - any unpickling failure is reported
                reason = f"{type(error).__name__}: {error}"
            else:
                self._values[cid] = value
                return value
            self.bad_values[cid] = reason
            self.report.problems.append(Problem("value", cid, op_name, reason))
            self.report.values.skipped += 1
        raise _Skip(f"it needs the value {cid}, which could not be loaded ({reason})")

    def _output_value(self, hid: str, op_name: str) -> tuple[Any, StorageType]:
        ref = self._old_ref(hid)
        if ref.kind == ATOM:
            return self._value(ref.cid, op_name), ATOM_TYPE
        if ref.kind == LIST:
            items = [self._output_value(e, op_name) for e in ref.elements]
            element = items[0][1] if items else ATOM_TYPE
            return [v for v, _ in items], ListType(element)
        pairs = [(k, self._output_value(e, op_name)) for k, e in ref.elements]
        value_type = pairs[0][1][1] if pairs else ATOM_TYPE
        return {k: v for k, (v, _) in pairs}, DictType(value_type)

    def _old_ref(self, hid: str) -> OldRef:
        ref = self.refs.get(hid)
        if ref is None:
            raise _Skip(f"the original store has no shape row for its ref {hid}")
        return ref

    # ------------------------------------------------------------------ refs

    def _input(self, hid: str, builder: Builder, where: str, op_name: str) -> Ref:
        """Our ref for the old input ref ``hid`` (collections are rebuilt in ``builder``)."""
        found = self.ours.get(hid)
        if found is not None:
            return found
        creator_hid = self.creator.get(hid)
        if creator_hid is None:
            ref = self._old_ref(hid)
            if ref.kind != ATOM:
                raise _Skip(f"its input {hid} is a collection that no call created")
            return builder.wrap_atom(self._value(ref.cid, op_name), where)
        creator = self.calls[creator_hid]
        if creator_hid in self.skipped:
            raise _Skip(f"it depends on the skipped call {creator_hid} ({creator.op_name})")
        if creator.op_name == "__make_list__":
            names = sorted(creator.inputs, key=_element_index)
            elements = [
                self._input(creator.inputs[n], builder, f"{where}[{i}]", op_name)
                for i, n in enumerate(names)
            ]
            self._collections.add(hid)
            return builder.construct(elements, ListType(ATOM_TYPE), where)
        if creator.op_name == "__make_dict__":
            items = {
                k: self._input(h, builder, f"{where}[{k!r}]", op_name)
                for k, h in sorted(creator.inputs.items())
            }
            self._collections.add(hid)
            return builder.construct(items, DictType(ATOM_TYPE), where)
        raise _Skip(
            f"its input {hid} comes from the call {creator_hid} ({creator.op_name}), which was "
            "not converted"
        )

    def _remember_outputs(self, hid: str, ref: Ref) -> None:
        """Map the old output ``hid`` (and its elements) to our ``ref``."""
        self.ours[hid] = _detached(ref)
        old = self.refs.get(hid)
        if old is None or old.kind == ATOM:
            return
        self._collections.add(hid)
        if old.kind == LIST and isinstance(ref, ListRef):
            for old_element, element in zip(old.elements, ref.obj or []):
                self._remember_outputs(old_element, element)
        elif old.kind == DICT and isinstance(ref, DictRef):
            for key, old_element in old.elements:
                element = (ref.obj or {}).get(key)
                if element is not None:
                    self._remember_outputs(old_element, element)

    # ------------------------------------------------------------------ calls

    def spec(self, op_name: str) -> OpSpec:
        old = self.ops.get(op_name)
        if old is None:
            return OpSpec(op_name)
        return OpSpec(old.name, old.version, old.output_names, old.nout, (), False)

    def _convert(self, call: OldCall) -> bool:
        """Convert one call; True if it was new, False if the target had it.

        Raises:
            _Skip: it cannot be converted.
        """
        spec = self.spec(call.op_name)
        builder = new_builder(spec.name)
        inputs = {
            name: self._input(hid, builder, f"argument {name!r}", spec.name)
            for name, hid in sorted(call.inputs.items())
        }
        semantic = content = None
        if self.versions is not None:
            try:
                semantic, content = self.versions.call_version(call)
            except VersionSkip as skip:
                raise _Skip(str(skip)) from skip
        history, _ = call_keys(spec, inputs, semantic)
        stored = self.engine.stored_outputs(history)
        if stored is not None:
            for name, hid in call.outputs.items():
                if name in stored:
                    self._remember_outputs(hid, stored[name])
            return False
        outputs = [
            (name, *self._output_value(hid, spec.name))
            for name, hid in sorted(call.outputs.items())
        ]
        also = None
        if self.versions is not None:
            try:
                also = self.versions.remember_action(self.engine.session, spec, inputs, call)
            except VersionSkip as skip:
                raise _Skip(str(skip)) from skip
        try:
            replayed = replay_call(
                self.engine, spec, inputs, builder, outputs, semantic, content, also=also
            )
        except (SerializationError, UnhashableValueError) as error:
            raise _Skip(f"this release cannot store one of its values: {error}") from error
        for name, hid in call.outputs.items():
            self._remember_outputs(hid, replayed.outputs[name])
        for recorded in (*builder.calls, replayed):
            self._batch_values.update(_atom_keys(recorded.inputs.values()))
            self._batch_values.update(_atom_keys(recorded.outputs.values()))
        return True

    def _flush(self) -> None:
        """Count this batch's values and commit it (one transaction)."""
        new = [k for k in self._batch_values if k not in self._seen_values]
        present = self.storage.backend.values.has_values(new) if new else set()
        self.report.values.present += len(present)
        self.report.values.converted += len(new) - len(present)
        self._seen_values.update(new)
        self._batch_values.clear()
        self.storage.commit()
        self._values.clear()

    def run(self) -> None:
        report = self.report
        existing_ops = {(row.name, row.version) for row in self.storage.backend.calls.ops()}
        for name, old in sorted(self.ops.items()):
            if old.structural:
                continue
            spec = self.spec(name)
            if (spec.name, spec.version) in existing_ops:
                report.ops.present += 1
            else:
                report.ops.converted += 1
                self.engine.session.register_op(spec)
        pending = 0
        collection_status: dict[str, str] = {}
        for call in self.user_calls_in_order():
            self._collections = set()
            try:
                new = self._convert(call)
            except _Skip as skip:
                self.skipped[call.hid] = str(skip)
                report.calls.skipped += 1
                report.problems.append(Problem("call", call.hid, call.op_name, str(skip)))
                for hid in self._collections:
                    collection_status.setdefault(hid, "skipped")
                continue
            status = "converted" if new else "present"
            for hid in self._collections:
                if collection_status.get(hid, "skipped") == "skipped":
                    collection_status[hid] = status
            if new:
                report.calls.converted += 1
                pending += 1
                if pending >= self.batch_size:
                    self._flush()
                    pending = 0
            else:
                report.calls.present += 1
        self._flush()
        for status in collection_status.values():
            setattr(report.collections, status, getattr(report.collections, status) + 1)
        if self.versions is not None:
            self.versions.count()


def _atom_keys(refs: Iterable[Ref]) -> Iterable[bytes]:
    for ref in refs:
        if isinstance(ref, AtomRef):
            if ref.in_memory:
                yield ref.content_key
        elif isinstance(ref, DictRef):
            yield from _atom_keys((ref.obj or {}).values())
        else:
            yield from _atom_keys(ref.obj or [])
