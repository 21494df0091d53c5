"""Transparent collections: building them from elements, and giving elements a history.

A collection passed to an ``MList``/``MDict``/``MSet`` parameter is *constructed*: each element
becomes a ref, and a structural call (``__make_list__`` ...) records that the collection was made
from them. A collection returned through such an annotation is *destructured*: each element gets
its history from a structural call (``__list_getitem__`` ...) on the collection, so elements of
outputs can feed other ops and be traced back. Structural calls are ordinary stored calls, which
is what lets computation frames show collections.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mandala.errors import OpCallError
from mandala.hashing import ids
from mandala.model.annotations import DictType, ListType, SetType, StorageType
from mandala.model.calls import Call, OpSpec
from mandala.model.refs import DictRef, ListRef, Ref, SetRef

__all__ = [
    "MAKE_LIST",
    "MAKE_DICT",
    "MAKE_SET",
    "LIST_GETITEM",
    "DICT_GETITEM",
    "SET_GETITEM",
    "STRUCTURAL_OPS",
    "Builder",
]

MAKE_LIST = OpSpec("__make_list__", 0, ("list",), 1, (), True)
MAKE_DICT = OpSpec("__make_dict__", 0, ("dict",), 1, (), True)
MAKE_SET = OpSpec("__make_set__", 0, ("set",), 1, (), True)
LIST_GETITEM = OpSpec("__list_getitem__", 0, ("list_item",), 1, (), True)
DICT_GETITEM = OpSpec("__dict_getitem__", 0, ("dict_value",), 1, (), True)
SET_GETITEM = OpSpec("__set_getitem__", 0, ("set_item",), 1, (), True)
STRUCTURAL_OPS = {
    spec.name: spec
    for spec in (MAKE_LIST, MAKE_DICT, MAKE_SET, LIST_GETITEM, DICT_GETITEM, SET_GETITEM)
}
_OP_KEYS = {spec.name: ids.op_key(spec.name, spec.version) for spec in STRUCTURAL_OPS.values()}

WrapAtom = Callable[[Any, str], Ref]
"""Turns a raw value into an atom ref (and records it); the str names the value in errors."""


def _structural_call(spec: OpSpec, inputs: dict[str, Ref], outputs: dict[str, Ref]) -> Call:
    op = _OP_KEYS[spec.name]
    history = ids.call_key(op, [(name, ref.history_key) for name, ref in inputs.items()])
    content = ids.call_key(op, [(name, ref.content_key) for name, ref in inputs.items()])
    return Call(spec, content, history, inputs, outputs)


def _structural_output_key(spec: OpSpec, inputs: dict[str, Ref]) -> bytes:
    op = _OP_KEYS[spec.name]
    history = ids.call_key(op, [(name, ref.history_key) for name, ref in inputs.items()])
    return history


class Builder:
    """Constructs and destructures collections for one op call, collecting structural calls.

    Args:
        wrap_atom: makes (and records) the ref of a raw element value.
        context: how to name the value in errors (e.g. "op 'f', argument 'xs'").
    """

    def __init__(self, wrap_atom: WrapAtom, context: str) -> None:
        self.wrap_atom = wrap_atom
        self.context = context
        self.calls: list[Call] = []

    # ------------------------------------------------------------ inputs

    def construct(self, value: Any, storage_type: StorageType, where: str) -> Ref:
        """The ref of ``value`` as a stored input of the given storage type."""
        if isinstance(value, Ref):
            return value
        if isinstance(storage_type, ListType):
            return self._construct_list(value, storage_type, where)
        if isinstance(storage_type, DictType):
            return self._construct_dict(value, storage_type, where)
        if isinstance(storage_type, SetType):
            return self._construct_set(value, storage_type, where)
        return self.wrap_atom(value, where)

    def _construct_list(self, value: Any, storage_type: ListType, where: str) -> ListRef:
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise OpCallError(
                f"{self.context}: {where} is annotated MList but got {type(value).__name__}; pass a"
                " list (or tuple), or change the annotation"
            )
        elements = [
            self.construct(item, storage_type.element, f"{where}[{i}]")
            for i, item in enumerate(value)
        ]
        ref = ListRef(
            ids.list_key([e.content_key for e in elements]),
            ids.list_key([e.history_key for e in elements]),
            True,
            elements,
        )
        inputs = {f"elts_{i}": e for i, e in enumerate(elements)}
        self.calls.append(_structural_call(MAKE_LIST, inputs, {"list": ref}))
        return ref

    def _construct_dict(self, value: Any, storage_type: DictType, where: str) -> DictRef:
        if not isinstance(value, dict):
            raise OpCallError(
                f"{self.context}: {where} is annotated MDict but got {type(value).__name__}; pass a"
                " dict with str keys, or change the annotation"
            )
        elements: dict[str, Ref] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise OpCallError(
                    f"{self.context}: {where} is annotated MDict, whose keys must be str, but has the"
                    f" key {key!r} ({type(key).__name__}); convert the keys to str or annotate the"
                    " parameter as a plain dict"
                )
            elements[key] = self.construct(item, storage_type.value, f"{where}[{key!r}]")
        ref = DictRef(
            ids.dict_key({k: e.content_key for k, e in elements.items()}),
            ids.dict_key({k: e.history_key for k, e in elements.items()}),
            True,
            elements,
        )
        self.calls.append(_structural_call(MAKE_DICT, dict(elements), {"dict": ref}))
        return ref

    def _construct_set(self, value: Any, storage_type: SetType, where: str) -> SetRef:
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise OpCallError(
                f"{self.context}: {where} is annotated MSet but got {type(value).__name__}; pass a"
                " set, or change the annotation"
            )
        by_content: dict[bytes, Ref] = {}
        for item in value:
            element = self.construct(item, storage_type.element, f"{where} element")
            by_content.setdefault(element.content_key, element)
        elements = [by_content[key] for key in sorted(by_content)]
        ref = SetRef(
            ids.set_key([e.content_key for e in elements]),
            ids.set_key([e.history_key for e in elements]),
            True,
            elements,
        )
        inputs = {f"elts_{i}": e for i, e in enumerate(elements)}
        self.calls.append(_structural_call(MAKE_SET, inputs, {"set": ref}))
        return ref

    # ------------------------------------------------------------ outputs

    def restamp(self, ref: Ref, history_key: bytes) -> Ref:
        """Give a collection output (and, through getitem calls, its elements) a history."""
        if isinstance(ref, ListRef):
            result = ListRef(ref.content_key, history_key, True, [])
            for i, element in enumerate(ref.obj):
                index = self.wrap_atom(i, "list index")
                inputs = {"list": result, "i": index}
                call_history = _structural_output_key(LIST_GETITEM, inputs)
                item = self.restamp(element, ids.output_history_key(call_history, "list_item"))
                result.obj.append(item)
                self.calls.append(_structural_call(LIST_GETITEM, inputs, {"list_item": item}))
            return result
        if isinstance(ref, DictRef):
            result_dict = DictRef(ref.content_key, history_key, True, {})
            for key, element in ref.obj.items():
                key_ref = self.wrap_atom(key, "dict key")
                inputs = {"dict": result_dict, "key": key_ref}
                call_history = _structural_output_key(DICT_GETITEM, inputs)
                item = self.restamp(element, ids.output_history_key(call_history, "dict_value"))
                result_dict.obj[key] = item
                self.calls.append(_structural_call(DICT_GETITEM, inputs, {"dict_value": item}))
            return result_dict
        if isinstance(ref, SetRef):
            result_set = SetRef(ref.content_key, history_key, True, [])
            for element in ref.obj:
                key_ref = self.wrap_atom(element.content_id, "set element id")
                inputs = {"set": result_set, "key": key_ref}
                call_history = _structural_output_key(SET_GETITEM, inputs)
                item = self.restamp(element, ids.output_history_key(call_history, "set_item"))
                result_set.obj.append(item)
                self.calls.append(_structural_call(SET_GETITEM, inputs, {"set_item": item}))
            return result_set
        return type(ref)(ref.content_key, history_key, ref.in_memory, ref.obj)
