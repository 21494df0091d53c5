"""The pure data model: refs, calls, markers, annotations and argument binding (no storage)."""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Tuple  # noqa: UP035

import numpy as np
import pytest

from mandala.errors import ValueNotFoundError
from mandala.imports import MDict, MList, MSet, wrap_atom
from mandala.model.annotations import (
    ATOM,
    DictType,
    ListType,
    SetType,
    output_types_from_annotation,
    type_from_annotation,
)
from mandala.model.calls import Call, OpSpec
from mandala.model.markers import Ignore, NewArgDefault, unwrap_marker, values_equal_strict
from mandala.model.refs import AtomRef, DictRef, ListRef
from mandala.model.signature import ParameterPlan

C1, H1, H2 = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16


# ------------------------------------------------------------------ refs


def test_ref_ids_are_hex_views_of_the_keys() -> None:
    ref = AtomRef(C1, H1, True, 5)
    assert ref.cid == ref.content_id == C1.hex()
    assert ref.hid == ref.history_id == H1.hex()
    assert hash(ref) == hash(H1)


def test_ref_repr_in_memory_and_lazy() -> None:
    ref = AtomRef(C1, H1, True, 42)
    assert repr(ref) == "AtomRef(42, hid=020...)"
    assert repr(ref.detached()) == "AtomRef(hid=020..., in_memory=False)"
    assert repr(ListRef(C1, H1, False, None)) == "ListRef(hid=020..., in_memory=False)"


def test_ref_copies() -> None:
    ref = AtomRef(C1, H1, True, [1])
    detached = ref.detached()
    assert (detached.in_memory, detached.obj, detached.hid, detached.cid) == (
        False,
        None,
        ref.hid,
        ref.cid,
    )
    attached = detached.attached([2])
    assert (attached.in_memory, attached.obj) == (True, [2])
    copy = ref.shallow_copy()
    assert copy is not ref and copy.obj is ref.obj
    moved = ref.with_hid(H2.hex())
    assert (moved.hid, moved.cid, moved.obj) == (H2.hex(), ref.cid, [1])
    assert ref.with_hid(H2).hid == H2.hex()
    assert ref.hid == H1.hex()  # the original is unchanged
    assert type(ListRef(C1, H1, True, []).detached()) is ListRef


def test_refs_have_identity_equality() -> None:
    a, b = AtomRef(C1, H1, True, 1), AtomRef(C1, H1, True, 1)
    assert a != b
    assert a == a
    assert len({a, b}) == 2  # equal hashes, distinct objects


def test_list_ref_indexing_slicing_len() -> None:
    elements = [AtomRef(C1, bytes([i]) * 16, True, i) for i in range(3)]
    lst = ListRef(C1, H1, True, elements)
    assert len(lst) == 3
    assert lst[1] is elements[1]
    assert lst[0:2] == elements[0:2]
    assert list(lst) == elements
    assert lst.shape() == (3,)
    lazy = lst.detached()
    with pytest.raises(ValueNotFoundError, match="attach"):
        lazy[0]
    with pytest.raises(ValueNotFoundError):
        len(lazy)


def test_dict_ref_access() -> None:
    a = AtomRef(C1, H1, True, 1)
    d = DictRef(C1, H2, True, {"a": a})
    assert d["a"] is a
    assert d[wrap_atom("a")] is a
    assert list(d.keys()) == ["a"] and list(d.values()) == [a] and list(d.items()) == [("a", a)]
    assert "a" in d and "b" not in d
    assert len(d) == 1
    with pytest.raises(KeyError):
        d["b"]
    with pytest.raises(ValueNotFoundError):
        d[wrap_atom("a").detached()]


# ------------------------------------------------------------------ calls


def test_call_ids_equality_and_repr() -> None:
    spec = OpSpec("train", 0)
    out = AtomRef(C1, H2, False, None)
    call = Call(spec, C1, H1, {"x": wrap_atom(1)}, {"output_0": out}, started_at=1.0, duration=0.5)
    assert (call.hid, call.cid) == (H1.hex(), C1.hex())
    assert call == Call(spec, b"\x09" * 16, H1, {}, {})
    assert call != Call(spec, C1, H2, {}, {})
    assert repr(call) == "Call(train, hid=020...)"
    described = call.describe()
    assert described["op"] == "train"
    assert described["outputs"] == {"output_0": H2.hex()}
    assert (described["started_at"], described["duration"]) == (1.0, 0.5)
    other = call.with_refs({}, {"y": out})
    assert other.hid == call.hid and list(other.outputs) == ["y"] and other.duration == 0.5


# ------------------------------------------------------------------ markers


@pytest.mark.parametrize(
    ("safe", "unknown", "equal"),
    [
        (1, 1, True),
        (1, True, False),
        (1, 1.0, False),
        (True, 1, False),
        (0.5, 0.5, True),
        ("a", "a", True),
        (None, None, True),
        (None, 0, False),
        ([1, 2], [1, 2], True),
        ([1, 2], (1, 2), False),
        (np.array([1, 2]), np.array([1, 2]), True),
        (np.array([1, 2]), np.array([1, 3]), False),
        (np.array([1, 2]), np.array([1.0, 2.0]), False),
        (np.array([1, 2]), np.array([1, 2, 3]), False),
        (np.array([1, 2]), [1, 2], False),
    ],
)
def test_values_equal_strict(safe, unknown, equal) -> None:
    assert values_equal_strict(safe, unknown) is equal


def test_values_equal_strict_with_pandas() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1, 2]})
    assert values_equal_strict(frame, frame.copy()) is True
    assert values_equal_strict(frame, pd.DataFrame({"a": [1, 3]})) is False
    assert values_equal_strict(frame, pd.DataFrame({"b": [1, 2]})) is False


def test_values_equal_strict_never_raises() -> None:
    class Weird:
        def __eq__(self, other):
            raise RuntimeError("no")

    assert values_equal_strict(Weird(), Weird()) is False


def test_unwrap_marker_and_reprs() -> None:
    from mandala.imports import ValuePointer

    assert unwrap_marker(Ignore(3)) == 3
    assert unwrap_marker(NewArgDefault("d")) == "d"
    assert unwrap_marker(ValuePointer("id", [1])) == [1]
    assert unwrap_marker(7) == 7
    assert repr(Ignore(3)) == "Ignore(3)"
    assert repr(NewArgDefault("d")) == "NewArgDefault('d')"
    assert repr(ValuePointer("id", [1])) == "ValuePointer(id='id')"


# ------------------------------------------------------------------ annotations


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (MList[int], ListType(ATOM)),
        (MList, ListType(ATOM)),
        (MList[MList[int]], ListType(ListType(ATOM))),
        (MDict[str, int], DictType(ATOM)),
        (MDict[str, MList[int]], DictType(ListType(ATOM))),
        (MSet[int], SetType(ATOM)),
        (list, ATOM),
        (List[int], ATOM),  # noqa: UP006
        (Dict[str, int], ATOM),  # noqa: UP006
        (Any, ATOM),
        (int, ATOM),
        (inspect.Parameter.empty, ATOM),
    ],
)
def test_type_from_annotation(annotation, expected) -> None:
    assert type_from_annotation(annotation) == expected


def test_output_types_from_annotation() -> None:
    assert output_types_from_annotation(Tuple[MList[int], int], 2) == [ListType(ATOM), ATOM]  # noqa: UP006
    assert output_types_from_annotation(Tuple[int, ...], 3) == [ATOM] * 3  # noqa: UP006
    assert output_types_from_annotation(tuple[MList[int], ...], 2) == [ListType(ATOM)] * 2
    assert output_types_from_annotation(MList[int], 1) == [ListType(ATOM)]
    assert output_types_from_annotation(int, 2) is None
    assert output_types_from_annotation(Tuple[int, int], 3) is None  # noqa: UP006


def test_mlist_is_a_list_for_type_checkers() -> None:
    assert issubclass(MList, list)
    assert issubclass(MDict, dict)
    assert issubclass(MSet, set)


def test_string_annotations_are_resolved() -> None:
    namespace: dict = {}
    exec(
        "from __future__ import annotations\n"
        "from mandala.imports import MList\n"
        "def f(xs: MList[int], y: Undefined) -> MList[int]:\n"
        "    return xs\n",
        namespace,
    )
    plan = ParameterPlan(namespace["f"])
    assert plan.by_name["xs"].storage_type == ListType(ATOM)
    assert plan.by_name["y"].storage_type == ATOM  # an unresolvable name means atom


# ------------------------------------------------------------------ binding


def _reference_bind(func, args, kwargs):
    bound = inspect.signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _simple(a, b=2, c="c"):
    return a


def _complex(a, /, b=2, *args, c, d=4, **kw):
    return a


@pytest.mark.parametrize(
    ("func", "args", "kwargs"),
    [
        (_simple, (1,), {}),
        (_simple, (1, 5), {}),
        (_simple, (), {"a": 1, "c": 3}),
        (_simple, (1,), {"c": None}),
        (_complex, (1,), {"c": 3}),
        (_complex, (1, 2, 3, 4), {"c": 3, "z": 9}),
    ],
)
def test_binding_matches_inspect(func, args, kwargs) -> None:
    assert ParameterPlan(func).bind(args, kwargs) == _reference_bind(func, args, kwargs)


@pytest.mark.parametrize(
    ("func", "args", "kwargs"),
    [
        (_simple, (), {}),
        (_simple, (1, 2, 3, 4), {}),
        (_simple, (1,), {"a": 2}),
        (_simple, (1,), {"z": 2}),
        (_complex, (1,), {}),
        (_complex, (), {"a": 1, "c": 2}),
    ],
)
def test_binding_errors_are_pythons(func, args, kwargs) -> None:
    with pytest.raises(TypeError) as ours:
        ParameterPlan(func).bind(args, kwargs)
    with pytest.raises(TypeError) as theirs:
        _reference_bind(func, args, kwargs)
    assert str(ours.value) == str(theirs.value)


def test_layout_rebuilds_the_call() -> None:
    plan = ParameterPlan(_complex)
    bound = plan.bind((1, 2, 3, 4), {"c": 3, "z": 9})
    assert plan.layout(bound) == ([1, 2, 3, 4], {"c": 3, "d": 4, "z": 9})
