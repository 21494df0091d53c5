"""Loading values: ``unwrap``, ``attach``, ``load_ref`` and lazy refs (docs/compatibility.md §a.11, §b).

``load_ref`` loads by default (bug g.1-17 fixed: ``in_memory=False`` gives a lazy ref).
"""

from __future__ import annotations

import pytest

from mandala.errors import InvalidIdError, ValueNotFoundError
from mandala.imports import MList, Storage, op, wrap_atom
from mandala.model.refs import AtomRef, ListRef


def _ops():
    @op
    def inc(x):
        return x + 1

    @op
    def upto(n) -> MList[int]:
        return list(range(n))

    return inc, upto


def _lazy_refs(persistent):
    """Refs of a memo hit in a new session: lazy, nothing loaded."""
    inc, upto = _ops()
    with persistent.open():
        inc(1)
        upto(3)
    storage = persistent.open()
    with storage:
        a = inc(1)
        lst = upto(3)
    return storage, a, lst


def test_memo_hit_refs_are_lazy_until_unwrapped(persistent) -> None:
    storage, a, lst = _lazy_refs(persistent)
    assert (a.in_memory, a.obj) == (False, None)
    assert all(e.in_memory is False for e in lst)
    assert "in_memory=False" in repr(a)
    assert storage.unwrap(a) == 2
    assert (a.in_memory, a.obj) == (True, 2)
    assert "2" in repr(a)


def test_unwrap_recurses_through_containers(storage: Storage) -> None:
    inc, upto = _ops()
    with storage:
        a = inc(1)
        lst = upto(2)
    nested = {"a": [a, (lst, 7)], "b": {a.hid: a}, "c": "plain"}
    assert storage.unwrap(nested) == {"a": [2, ([0, 1], 7)], "b": {a.hid: 2}, "c": "plain"}
    assert storage.unwrap((a, a)) == (2, 2)
    assert storage.unwrap({1, 2}) == {1, 2}
    assert storage.unwrap(frozenset({3})) == frozenset({3})


@pytest.mark.parametrize("value", [5, "text", None, [1, [2]], {"k": (1, 2)}, 2.5])
def test_unwrap_passes_non_refs_through(storage: Storage, value) -> None:
    assert storage.unwrap(value) == value


def test_unwrap_without_cache_leaves_the_ref_lazy(persistent) -> None:
    storage, a, lst = _lazy_refs(persistent)
    assert storage.unwrap(a, cache=False) == 2
    assert a.in_memory is False and a.obj is None
    assert storage.unwrap(lst, cache=False) == [0, 1, 2]
    assert all(e.in_memory is False for e in lst)


def test_unwrap_of_a_ref_from_another_storage_raises(storage: Storage) -> None:
    foreign = wrap_atom("never stored").detached()
    with pytest.raises(ValueNotFoundError) as info:
        storage.unwrap(foreign)
    assert isinstance(info.value, KeyError)
    assert foreign.cid in str(info.value)


def test_attach_returns_loaded_copies(persistent) -> None:
    storage, a, lst = _lazy_refs(persistent)
    copy = storage.attach(a)
    assert copy is not a
    assert (copy.in_memory, copy.obj, copy.hid, copy.cid) == (True, 2, a.hid, a.cid)
    assert a.in_memory is False
    lst_copy = storage.attach(lst)
    assert isinstance(lst_copy, ListRef)
    assert [e.obj for e in lst_copy] == [0, 1, 2]
    assert all(e.in_memory is False for e in lst)  # the original stays lazy
    both = storage.attach([a, {"l": lst}])
    assert both[0].obj == 2 and [e.obj for e in both[1]["l"]] == [0, 1, 2]


def test_attach_inplace_fills_the_refs(persistent) -> None:
    storage, a, lst = _lazy_refs(persistent)
    assert storage.attach([a, lst], inplace=True) is None
    assert (a.in_memory, a.obj) == (True, 2)
    assert [e.obj for e in lst] == [0, 1, 2]


def test_load_ref_loads_by_default(persistent) -> None:
    inc, upto = _ops()
    with persistent.open():
        a = inc(1)
        lst = upto(2)
    fresh = persistent.open()
    loaded = fresh.load_ref(a.hid)
    assert isinstance(loaded, AtomRef)
    assert (loaded.in_memory, loaded.obj, loaded.cid) == (True, 2, a.cid)
    lazy = fresh.load_ref(a.hid, in_memory=False)
    assert (lazy.in_memory, lazy.obj, lazy.hid) == (False, None, a.hid)
    assert fresh.unwrap(lazy) == 2
    loaded_list = fresh.load_ref(lst.hid)
    assert isinstance(loaded_list, ListRef)
    assert [e.obj for e in loaded_list] == [0, 1]
    lazy_list = fresh.load_ref(lst.hid, in_memory=False)
    assert [e.hid for e in lazy_list] == [e.hid for e in lst]
    assert all(e.in_memory is False for e in lazy_list)


def test_load_ref_of_raw_input(storage: Storage) -> None:
    inc, _ = _ops()
    with storage:
        inc(41)
    loaded = storage.load_ref(wrap_atom(41).hid)
    assert loaded.obj == 41


def test_load_ref_of_a_pending_ref(storage: Storage) -> None:
    inc, _ = _ops()
    with storage:
        a = inc(1)
        assert storage.load_ref(a.hid).obj == 2


def test_load_ref_errors(storage: Storage) -> None:
    with pytest.raises(ValueNotFoundError):
        storage.load_ref("0" * 32)
    with pytest.raises(InvalidIdError) as info:
        storage.load_ref("not-an-id")
    assert isinstance(info.value, ValueError)


def test_unwrapped_values_are_independent_of_later_mutation(storage: Storage) -> None:
    @op
    def make(n):
        return [0] * n

    with storage:
        r = make(2)
    value = storage.unwrap(r)
    value.append("mutated")
    with storage:
        again = make(2)
    assert storage.unwrap(storage.load_ref(again.hid, in_memory=False)) == [0, 0]


def test_value_mutated_after_the_call_is_stored_as_returned(persistent) -> None:
    """Values are serialized when the call completes, not at commit time."""
    kept = []

    @op
    def make(n):
        value = [n]
        kept.append(value)
        return value

    storage = persistent.open()
    with storage:
        make(1)
        kept[0].append("late")
    fresh = persistent.open()
    with fresh:
        r = make(1)
    assert fresh.unwrap(r) == [1]


def test_memo_hit_in_the_same_block_gives_the_value_as_returned(storage: Storage) -> None:
    """A later hit must not see mutations made to the first result's object."""
    runs = []

    @op
    def make(n):
        runs.append(n)
        return [n]

    with storage:
        first = storage.unwrap(make(1))
        first.append("mutated by the caller")
        again = make(1)
        assert storage.unwrap(again) == [1]
    assert runs == [1]
