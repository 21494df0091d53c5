"""Calls read from the store build their refs only when asked, and behave like any Call."""

from __future__ import annotations

import copy
import pickle

from mandala.imports import Storage, op
from mandala.model.calls import Call, LazyCall


@op(output_names=["y"])
def inc(x):
    return x + 1


def test_a_stored_call_builds_its_refs_once_on_first_access() -> None:
    storage = Storage()
    with storage:
        y = inc(1)
    call = storage.get_ref_creator(y)
    assert isinstance(call, LazyCall)
    built = []
    make = call._make_refs

    def counting():
        built.append(1)
        return make()

    call._make_refs = counting
    assert built == []
    assert call.outputs["y"].hid == y.hid
    assert storage.unwrap(call.inputs["x"]) == 1
    assert built == [1]  # inputs and outputs come from one build


def test_lazy_calls_copy_pickle_and_compare_like_calls() -> None:
    storage = Storage()
    with storage:
        y = inc(2)
    call = storage.get_ref_creator(y)
    for other in (copy.copy(call), copy.deepcopy(call), pickle.loads(pickle.dumps(call))):
        assert type(other) is Call
        assert other == call and hash(other) == hash(call)
        assert other.outputs["y"].hid == y.hid
        assert other.inputs["x"].cid == call.inputs["x"].cid


def test_assigning_refs_replaces_them() -> None:
    storage = Storage()
    with storage:
        y = inc(3)
    call = storage.get_ref_creator(y)
    call.outputs = {}
    assert call.outputs == {}
    assert set(call.inputs) == {"x"}
