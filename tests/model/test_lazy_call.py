"""Calls read from the store build their refs only when asked, and behave like any Call."""

from __future__ import annotations

import copy
import pickle

import pytest

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
    source = call._source

    class Counting:
        def call_refs(self, row):
            built.append(1)
            return source.call_refs(row)

        def call_details(self, row):
            raise AssertionError("details of a stored call are given")

    call._source = Counting()
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


def test_frame_calls_read_their_details_once_for_the_whole_block() -> None:
    storage = Storage()
    with storage:
        for x in range(5):
            inc(x)
    calls = storage.cf(inc).df()["inc"].tolist()
    assert all(isinstance(call, LazyCall) for call in calls)
    stored = {c.history_key: c for c in storage.backend.calls.load_calls_of_op("inc")}
    reads = []
    backend_read = storage.backend.columns.load_call_details

    def counting(call_ids):
        reads.append(len(call_ids))
        return backend_read(call_ids)

    storage.backend.columns.load_call_details = counting
    for call in calls:
        expected = stored[call.history_key]
        assert call.content_key == expected.content_key
        assert call.started_at == expected.started_at and call.duration == expected.duration
        assert (call.semantic_version, call.content_version) == (None, None)
    assert reads == [5]  # one read, for the block, on the first detail asked for


def test_frame_calls_of_every_backend_read_their_details(storage: Storage) -> None:
    with storage:
        for x in range(30):
            inc(x)
    stored = {c.history_key: c for c in storage.backend.calls.load_calls_of_op("inc")}
    calls = storage.cf(inc).df()["inc"].tolist()
    assert len(calls) == 30
    for call in calls:
        expected = stored[call.history_key]
        assert (call.content_key, call.started_at, call.duration) == (
            expected.content_key,
            expected.started_at,
            expected.duration,
        )


def test_details_of_calls_dropped_since_the_frame_was_made_raise_a_clear_error(
    storage: Storage,
) -> None:
    from mandala.errors import StorageError

    with storage:
        for x in range(3):
            inc(x)
    calls = storage.cf(inc).df()["inc"].tolist()
    storage.drop_calls(calls[:1], delete_dependents=True)
    with pytest.raises(StorageError, match="make the frame again"):
        _ = calls[0].started_at
