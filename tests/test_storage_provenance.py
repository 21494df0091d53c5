"""Walking and editing what is stored: creators, consumers, calls, ``drop_calls``, ``cleanup_refs``.

docs/compatibility.md §b (provenance works inside a context here, also for uncommitted calls).
"""

from __future__ import annotations

import pytest

from mandala.errors import InvalidIdError, ValueNotFoundError
from mandala.imports import Storage, op, wrap_atom
from mandala.model.calls import Call


def _pipeline(runs):
    @op
    def inc(x):
        runs.append(("inc", x))
        return x + 1

    @op
    def add(x, y):
        runs.append(("add", x, y))
        return x + y

    return inc, add


def _build(storage, runs):
    """a = inc(1); b = inc(a); c = add(a, b); d = inc(10)  ->  values 2, 3, 5, 11."""
    inc, add = _pipeline(runs)
    with storage:
        a = inc(1)
        b = inc(a)
        c = add(a, b)
        d = inc(10)
    return inc, add, a, b, c, d


def test_get_ref_creator(storage: Storage) -> None:
    runs: list = []
    inc, add, a, b, c, d = _build(storage, runs)
    creator = storage.get_ref_creator(c)
    assert isinstance(creator, Call)
    assert creator.op.name == "add"
    assert sorted(creator.inputs) == ["x", "y"]
    assert creator.inputs["x"].hid == a.hid
    assert creator.inputs["y"].hid == b.hid
    assert creator.outputs["output_0"].hid == c.hid
    assert storage.unwrap(creator.outputs["output_0"]) == 5
    assert storage.get_ref_creator(creator.inputs["x"]).hid == storage.get_ref_creator(a).hid
    raw = storage.get_ref_creator(a).inputs["x"]
    assert storage.get_ref_creator(raw) is None  # a raw input has no creator
    assert storage.get_ref_creator(wrap_atom(1)) is None


def test_get_ref_creator_inside_a_context_sees_uncommitted_calls(storage: Storage) -> None:
    runs: list = []
    inc, _ = _pipeline(runs)
    with storage:
        a = inc(1)
        assert storage.cache_stats()["calls"]["pending"] == 1
        creator = storage.get_ref_creator(a)
        assert creator is not None and creator.op.name == "inc"
        assert storage.get_consumers([creator.inputs["x"].hid])[0].hid == creator.hid


def test_get_creators_and_consumers(storage: Storage) -> None:
    runs: list = []
    inc, add, a, b, c, d = _build(storage, runs)
    creators = storage.get_creators([a.hid, c.hid])
    assert [call.op.name for call in creators] == ["inc", "add"]
    consumers = storage.get_consumers([a.hid])
    assert sorted(call.op.name for call in consumers) == ["add", "inc"]
    assert {call.hid for call in consumers} == {
        storage.get_ref_creator(b).hid,
        storage.get_ref_creator(c).hid,
    }
    assert storage.get_consumers([c.hid]) == []
    assert storage.get_creators([wrap_atom(1).hid]) == []
    assert [call.op.name for call in storage.get_consumers([wrap_atom(1).hid])] == ["inc"]


def test_get_call_mget_call_exists_call(storage: Storage) -> None:
    runs: list = []
    inc, add, a, b, c, d = _build(storage, runs)
    hids = [storage.get_ref_creator(r).hid for r in (c, a, d)]
    calls = storage.mget_call(hids)
    assert [call.hid for call in calls] == hids  # order preserved
    assert [call.op.name for call in calls] == ["add", "inc", "inc"]
    lazy = storage.get_call(hids[2])
    assert lazy.outputs["output_0"].hid == d.hid
    loaded = storage.get_call(hids[2], lazy=False)
    assert loaded.outputs["output_0"].obj == 11
    assert loaded.inputs["x"].obj == 10
    in_memory = storage.mget_call(hids, in_memory=True)
    assert [call.outputs["output_0"].obj for call in in_memory] == [5, 2, 11]
    assert storage.exists_call(hids[0]) is True
    assert storage.exists_call("0" * 32) is False
    with pytest.raises(ValueNotFoundError):
        storage.get_call("0" * 32)
    with pytest.raises(InvalidIdError):
        storage.exists_call("xyz")
    assert calls[0] == storage.get_call(hids[0])  # calls compare by history id
    assert repr(calls[0]).startswith("Call(add, hid=")


def test_call_metadata_is_stored(persistent) -> None:
    import time

    @op
    def slow(x):
        time.sleep(0.05)
        return x

    storage = persistent.open()
    before = time.time()
    with storage:
        r = slow(1)
    after = time.time()
    for reader in (storage, persistent.open()):
        call = reader.get_call(reader.get_ref_creator(r).hid)
        assert before - 1 <= call.started_at <= after
        assert 0.05 <= call.duration < 5
        assert call.semantic_version is None and call.content_version is None


# ------------------------------------------------------------------ drop_calls


def test_drop_calls_with_dependents_deletes_transitively(persistent) -> None:
    runs: list = []
    storage = persistent.open()
    inc, add, a, b, c, d = _build(storage, runs)
    first = storage.get_ref_creator(a)
    storage.drop_calls([first], delete_dependents=True)
    for reader in (storage, persistent.open()):
        assert reader.cache_stats()["calls"]["stored"] == 1  # only inc(10) is left
        assert reader.get_ref_creator(d).op.name == "inc"
        assert reader.get_ref_creator(a) is None
        assert reader.get_ref_creator(c) is None
    runs.clear()
    with storage:
        a = inc(1)
        b = inc(a)
        add(a, b)
        inc(10)
    assert runs == [("inc", 1), ("inc", 2), ("add", 2, 3)]


def test_drop_calls_without_dependents_keeps_them(persistent) -> None:
    runs: list = []
    storage = persistent.open()
    inc, add, a, b, c, d = _build(storage, runs)
    storage.drop_calls([storage.get_ref_creator(b).hid], delete_dependents=False)
    fresh = persistent.open()
    assert fresh.cache_stats()["calls"]["stored"] == 3
    assert fresh.get_ref_creator(b) is None
    assert fresh.get_ref_creator(c).op.name == "add"
    runs.clear()
    with fresh:
        a = inc(1)
        b = inc(a)  # recomputed
        c2 = add(a, b)  # still stored
    assert runs == [("inc", 2)]
    assert c2.hid == c.hid


def test_drop_calls_accepts_hids_and_skips_empty_cells(storage: Storage) -> None:
    runs: list = []
    inc, add, a, b, c, d = _build(storage, runs)
    storage.drop_calls(
        [storage.get_ref_creator(d).hid, None, float("nan")], delete_dependents=False
    )
    assert storage.cache_stats()["calls"]["stored"] == 3
    runs.clear()
    with storage:
        inc(10)
    assert runs == [("inc", 10)]


def test_drop_calls_commits_pending_work_first(storage: Storage) -> None:
    runs: list = []
    inc, _ = _pipeline(runs)
    with storage:
        a = inc(1)
        b = inc(2)
        storage.drop_calls([storage.get_ref_creator(a)], delete_dependents=False)
    assert storage.cache_stats()["calls"]["stored"] == 1
    assert storage.get_ref_creator(b) is not None
    with storage:
        inc(1)
    assert runs == [("inc", 1), ("inc", 2), ("inc", 1)]


def test_dropping_a_prototype_then_reusing_by_content(storage: Storage) -> None:
    runs: list = []
    inc, _ = _pipeline(runs)

    @op
    def dbl(x):
        runs.append(("dbl", x))
        return 2 * x

    with storage:
        first = dbl(inc(1))
    storage.drop_calls([storage.get_ref_creator(first)], delete_dependents=False)
    with storage:
        second = dbl(2)
    assert runs == [("inc", 1), ("dbl", 2), ("dbl", 2)]
    assert storage.unwrap(second) == 4


# ------------------------------------------------------------------ cleanup_refs


def test_cleanup_refs_removes_orphans_only(persistent) -> None:
    runs: list = []
    storage = persistent.open()
    inc, add, a, b, c, d = _build(storage, runs)
    assert storage.get_orphans() == set()
    assert storage.get_unreferenced_cids() == set()
    refs_before = storage.cache_stats()["refs"]["stored"]
    storage.drop_calls([storage.get_ref_creator(a)], delete_dependents=True)
    # Refs live on the edges of the calls that mention them: the refs of 1, 2 (a), 3 (b) and
    # 5 (c) went with the dropped calls, and their values are now referenced by nothing.
    assert refs_before - storage.cache_stats()["refs"]["stored"] == 4
    assert storage.get_orphans() == set()
    assert storage.get_unreferenced_cids() == {wrap_atom(v).cid for v in (1, 2, 3, 5)}
    before = storage.cache_stats()
    storage.cleanup_refs()
    after = storage.cache_stats()
    assert before["values"]["stored"] - after["values"]["stored"] == 4
    assert storage.get_orphans() == set()
    assert storage.get_unreferenced_cids() == set()
    fresh = persistent.open()
    with fresh:
        kept = inc(10)
    assert fresh.unwrap(kept) == 11
    assert fresh.unwrap(fresh.get_ref_creator(kept).inputs["x"]) == 10
    with pytest.raises(ValueNotFoundError):
        fresh.unwrap(a.detached())  # its value was cleaned up


def test_cleanup_keeps_values_shared_with_live_refs(storage: Storage) -> None:
    @op
    def same(x):
        return x

    @op
    def other(x):
        return x

    with storage:
        a = same(7)
        b = other(7)
    storage.drop_calls([storage.get_ref_creator(a)], delete_dependents=False)
    storage.cleanup_refs()
    assert storage.get_orphans() == set()
    assert storage.unwrap(storage.load_ref(b.hid, in_memory=False)) == 7


def test_cleanup_keeps_collection_elements_of_live_refs(storage: Storage) -> None:
    from mandala.imports import MList

    @op
    def upto(n) -> MList[int]:
        return list(range(n))

    @op
    def total(xs: MList[int]):
        return sum(xs)

    with storage:
        lst = upto(3)
        t = total(lst)
    storage.drop_calls([storage.get_ref_creator(lst[0])], delete_dependents=False)
    storage.cleanup_refs()
    assert storage.get_orphans() == set()
    assert storage.unwrap(storage.load_ref(lst.hid, in_memory=False)) == [0, 1, 2]
    assert storage.unwrap(t) == 3


def test_collections_of_a_stored_call_have_their_elements_without_unwrap(storage) -> None:
    """The original loads a collection's structure lazily: len() and indexing of an MList /
    MDict input of get_ref_creator(r) (or of a call in a frame's table) need no unwrap."""
    from mandala.imports import MDict, MList, op

    @op
    def total(xs: MList[int], weights: MDict[str, int]) -> int:
        return sum(xs) * sum(weights.values())

    with storage:
        result = total([1, 2, 3], {"a": 1, "b": 2})
    fresh = type(storage)(storage.db_path) if storage.db_path != ":memory:" else storage
    for store in (storage, fresh):
        creator = store.get_ref_creator(result)
        xs, weights = creator.inputs["xs"], creator.inputs["weights"]
        assert len(xs) == 3 and len(weights) == 2
        assert not any(x.in_memory for x in xs)  # the elements' values stay lazy
        assert store.unwrap(xs[0]) == 1 and not xs[1].in_memory
        assert [store.unwrap(x) for x in xs] == [1, 2, 3]
        assert sorted(weights) == ["a", "b"] and store.unwrap(weights["b"]) == 2
        [call] = store.cf(total).df()["total"].tolist()
        assert len(call.inputs["xs"]) == 3
