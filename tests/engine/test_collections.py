"""Transparent collections: ``MList``, ``MDict``, ``MSet`` inputs and outputs (docs/compatibility.md §c)."""

from __future__ import annotations

from typing import Any, Dict, List  # noqa: UP035

import pytest

from mandala.errors import OpCallError, ValueNotFoundError
from mandala.imports import MDict, MList, MSet, Storage, op, wrap_atom
from mandala.model.refs import AtomRef, DictRef, ListRef, SetRef


def _values_stored(storage: Storage) -> int:
    storage.commit()
    return storage.cache_stats()["values"]["stored"]


# ------------------------------------------------------------------ inputs


def test_mlist_input_is_built_by_a_make_list_call(storage: Storage) -> None:
    runs = []

    @op
    def total(nums: MList[int]) -> int:
        runs.append(list(nums))
        return sum(nums)

    with storage:
        r = total([3, 4, 5])
        again = total([3, 4, 5])
    assert runs == [[3, 4, 5]]  # the function receives a plain list of values
    assert again.hid == r.hid
    assert storage.unwrap(r) == 12
    call = storage.get_ref_creator(r)
    assert call.op.name == "total"
    lst = call.inputs["nums"]
    assert isinstance(lst, ListRef)
    maker = storage.get_ref_creator(lst)
    assert maker.op.name == "__make_list__"
    assert sorted(maker.inputs) == ["elts_0", "elts_1", "elts_2"]
    assert list(maker.outputs) == ["list"]
    assert maker.outputs["list"].hid == lst.hid
    assert storage.unwrap([maker.inputs[f"elts_{i}"] for i in range(3)]) == [3, 4, 5]
    assert maker.inputs["elts_1"].hid == wrap_atom(4).hid
    assert storage.unwrap(lst) == [3, 4, 5]


def test_element_order_matters_for_lists(storage: Storage) -> None:
    runs = []

    @op
    def first(nums: MList[int]):
        runs.append(nums[0])
        return nums[0]

    with storage:
        a = first([1, 2])
        b = first([2, 1])
    assert runs == [1, 2]
    assert a.hid != b.hid


def test_mlist_elements_may_be_refs_or_raw_values(storage: Storage) -> None:
    runs = []

    @op
    def inc(x):
        return x + 1

    @op
    def total(nums: MList[int]):
        runs.append(nums)
        return sum(nums)

    with storage:
        two = inc(1)
        r = total([two, 5])
    assert runs == [[2, 5]]
    maker = storage.get_ref_creator(storage.get_ref_creator(r).inputs["nums"])
    assert maker.inputs["elts_0"].hid == two.hid
    assert maker.inputs["elts_1"].hid == wrap_atom(5).hid


def test_mdict_input_is_built_by_a_make_dict_call(storage: Storage) -> None:
    runs = []

    @op
    def weighted(parts: MDict[str, int]):
        runs.append(dict(parts))
        return sum(parts.values())

    with storage:
        r = weighted({"a": 1, "b": 2})
        same = weighted({"b": 2, "a": 1})  # key order does not matter
    assert runs == [{"a": 1, "b": 2}]
    assert same.hid == r.hid
    d = storage.get_ref_creator(r).inputs["parts"]
    assert isinstance(d, DictRef)
    maker = storage.get_ref_creator(d)
    assert maker.op.name == "__make_dict__"
    assert sorted(maker.inputs) == ["a", "b"]
    assert storage.unwrap(maker.inputs["b"]) == 2
    assert storage.unwrap(d) == {"a": 1, "b": 2}


def test_mset_input_is_built_by_a_make_set_call(storage: Storage) -> None:
    runs = []

    @op
    def size(items: MSet[int]):
        runs.append(sorted(items))
        return len(items)

    with storage:
        r = size({3, 1, 2})
        same = size({2, 3, 1})
    assert len(runs) == 1 and runs[0] == [1, 2, 3]
    assert same.hid == r.hid
    s = storage.get_ref_creator(r).inputs["items"]
    assert isinstance(s, SetRef)
    maker = storage.get_ref_creator(s)
    assert maker.op.name == "__make_set__"
    assert sorted(maker.inputs) == ["elts_0", "elts_1", "elts_2"]
    assert storage.unwrap(s) == {1, 2, 3}


def test_nested_mlist_input(storage: Storage) -> None:
    runs = []

    @op
    def flatten(rows: MList[MList[int]]):
        runs.append(rows)
        return [x for row in rows for x in row]

    with storage:
        r = flatten([[1, 2], [3]])
        again = flatten([[1, 2], [3]])
    assert runs == [[[1, 2], [3]]]
    assert again.hid == r.hid
    outer = storage.get_ref_creator(r).inputs["rows"]
    outer_maker = storage.get_ref_creator(outer)
    assert outer_maker.op.name == "__make_list__"
    inner = outer_maker.inputs["elts_0"]
    assert isinstance(inner, ListRef)
    inner_maker = storage.get_ref_creator(inner)
    assert inner_maker.op.name == "__make_list__"
    assert sorted(inner_maker.inputs) == ["elts_0", "elts_1"]
    assert storage.unwrap(outer) == [[1, 2], [3]]


def test_mdict_with_a_non_str_key_raises_op_call_error(storage: Storage) -> None:
    runs = []

    @op
    def weighted(parts: MDict[str, int]):
        runs.append(1)
        return 0

    with storage, pytest.raises(OpCallError) as info:
        weighted({1: 2})
    assert isinstance(info.value, TypeError)
    message = str(info.value)
    assert "weighted" in message and "parts" in message
    assert runs == []
    assert storage.cache_stats()["calls"]["stored"] == 0


def test_mlist_with_a_non_list_raises_op_call_error(storage: Storage) -> None:
    @op
    def total(nums: MList[int]):
        return 0

    with storage, pytest.raises(OpCallError, match="total.*nums|nums.*total"):
        total(5)


def test_varargs_annotation_applies_to_every_element(storage: Storage) -> None:
    @op
    def concat(*lists: MList[int]):
        return sum((list(x) for x in lists), [])

    with storage:
        r = concat([1], [2, 3])
    call = storage.get_ref_creator(r)
    assert sorted(call.inputs) == ["lists_0", "lists_1"]
    assert all(isinstance(ref, ListRef) for ref in call.inputs.values())
    assert storage.unwrap(r) == [1, 2, 3]


def test_varargs_input_names_use_the_parameter_name(storage: Storage) -> None:
    @op
    def concat(*lists):
        return len(lists)

    with storage:
        r = concat(1, 2)
    assert sorted(storage.get_ref_creator(r).inputs) == ["lists_0", "lists_1"]


# ------------------------------------------------------------------ outputs


def test_mlist_output_elements_get_list_getitem_creators(storage: Storage) -> None:
    runs = []

    @op
    def upto(n) -> MList[int]:
        runs.append(n)
        return list(range(n))

    with storage:
        lst = upto(3)
    assert isinstance(lst, ListRef)
    assert len(lst) == 3
    assert [e.obj for e in lst] == [0, 1, 2]
    creator = storage.get_ref_creator(lst[1])
    assert creator.op.name == "__list_getitem__"
    assert sorted(creator.inputs) == ["i", "list"]
    assert creator.inputs["list"].hid == lst.hid
    assert storage.unwrap(creator.inputs["i"]) == 1
    assert list(creator.outputs) == ["list_item"]
    assert creator.outputs["list_item"].hid == lst[1].hid
    assert storage.get_ref_creator(lst).op.name == "upto"
    assert len({e.hid for e in lst}) == 3


def test_memo_hit_of_an_mlist_output_is_an_indexable_list_ref(persistent) -> None:
    runs = []

    @op
    def upto(n) -> MList[int]:
        runs.append(n)
        return [10 * i for i in range(n)]

    with persistent.open():
        first = upto(4)
    reopened = persistent.open()
    with reopened:
        lst = upto(4)
    assert runs == [4]
    assert isinstance(lst, ListRef)
    assert lst.hid == first.hid
    assert len(lst) == 4
    assert lst[2].hid == first[2].hid
    assert lst[2].in_memory is False
    assert reopened.unwrap(lst[2]) == 20
    assert [e.hid for e in lst[1:3]] == [first[1].hid, first[2].hid]
    assert reopened.unwrap(lst) == [0, 10, 20, 30]
    assert lst.shape() == (4,)


def test_mlist_output_elements_feed_other_ops_and_are_memoized(storage: Storage) -> None:
    runs = []

    @op
    def upto(n) -> MList[int]:
        runs.append(("upto", n))
        return list(range(n))

    @op
    def inc(x):
        runs.append(("inc", x))
        return x + 1

    with storage:
        lst = upto(3)
        results = [inc(e) for e in lst]
    with storage:
        lst = upto(3)
        again = [inc(e) for e in lst]
    assert runs == [("upto", 3), ("inc", 0), ("inc", 1), ("inc", 2)]
    assert [r.hid for r in results] == [r.hid for r in again]
    assert storage.unwrap(again) == [1, 2, 3]
    consumer = storage.get_consumers([lst[0].hid])
    assert [c.op.name for c in consumer] == ["inc"]


def test_mdict_output_elements_get_dict_getitem_creators(storage: Storage) -> None:
    @op
    def stats(xs) -> MDict[str, float]:
        return {"min": float(min(xs)), "max": float(max(xs))}

    with storage:
        d = stats((1, 5))
    with storage:
        again = stats((1, 5))
    assert isinstance(again, DictRef)
    assert sorted(again.keys()) == ["max", "min"]
    assert again["max"].hid == d["max"].hid
    creator = storage.get_ref_creator(again["max"])
    assert creator.op.name == "__dict_getitem__"
    assert sorted(creator.inputs) == ["dict", "key"]
    assert storage.unwrap(creator.inputs["key"]) == "max"
    assert storage.unwrap(again) == {"min": 1.0, "max": 5.0}
    assert again[wrap_atom("min")].hid == d["min"].hid


def test_mset_output_elements_get_set_getitem_creators(storage: Storage) -> None:
    @op
    def evens(n) -> MSet[int]:
        return {i for i in range(n) if i % 2 == 0}

    with storage:
        s = evens(5)
    assert isinstance(s, SetRef)
    assert len(s) == 3
    creators = {storage.get_ref_creator(e).op.name for e in s}
    assert creators == {"__set_getitem__"}
    assert storage.unwrap(s) == {0, 2, 4}


def test_shared_element_is_stored_once(storage: Storage) -> None:
    big = "a shared element " * 10

    @op
    def count(items: MList[str]):
        return len(items)

    with storage:
        count([big, "x"])
    before = _values_stored(storage)
    with storage:
        count([big, "y"])
    after = _values_stored(storage)
    # New values: "y" and the result 2 is already stored (same as the first result), so one.
    assert after - before == 1


def test_mlist_output_passed_to_mlist_input_is_used_as_is(storage: Storage) -> None:
    runs = []

    @op
    def upto(n) -> MList[int]:
        return list(range(n))

    @op
    def total(nums: MList[int]):
        runs.append(nums)
        return sum(nums)

    with storage:
        lst = upto(3)
        r = total(lst)
        # A fresh raw list with the same contents: the same call by content.
        fresh = total([0, 1, 2])
    assert runs == [[0, 1, 2]]
    assert storage.get_ref_creator(r).inputs["nums"].hid == lst.hid
    assert fresh.cid == r.cid
    assert fresh.hid != r.hid
    assert storage.unwrap(fresh) == 3


def test_ops_returning_mlist_of_refs(storage: Storage) -> None:
    @op
    def inc(x):
        return x + 1

    @op
    def gather(xs: MList[int]) -> MList[int]:
        return [x * 2 for x in xs]

    with storage:
        out = gather([inc(0), inc(1)])
    assert storage.unwrap(out) == [2, 4]
    assert storage.unwrap(out[1]) == 4


# ------------------------------------------------------------------ plain annotations are atoms


@pytest.mark.parametrize("annotation", [list, List[int], Any, None])  # noqa: UP006
def test_plain_list_annotation_is_an_atom(storage: Storage, annotation) -> None:
    runs = []

    def total(nums):
        runs.append(nums)
        return sum(nums)

    if annotation is not None:
        total.__annotations__["nums"] = annotation
    total_op = op(total)

    @op
    def as_list(n) -> list:
        return list(range(n))

    with storage:
        r = total_op([1, 2, 3])
        again = total_op([1, 2, 3])
        lst = as_list(2)
    assert runs == [[1, 2, 3]]
    assert again.hid == r.hid
    call = storage.get_ref_creator(r)
    assert type(call.inputs["nums"]) is AtomRef
    assert storage.get_ref_creator(call.inputs["nums"]) is None  # no __make_list__
    assert type(lst) is AtomRef
    with pytest.raises(TypeError):
        lst[0]
    assert storage.unwrap(lst) == [0, 1]


def test_plain_dict_annotation_is_an_atom_and_accepts_any_key(storage: Storage) -> None:
    @op
    def keys(d: Dict[int, str]):  # noqa: UP006
        return sorted(d)

    with storage:
        r = keys({2: "b", 1: "a"})
    assert storage.unwrap(r) == [1, 2]
    assert type(storage.get_ref_creator(r).inputs["d"]) is AtomRef


def test_lazy_list_ref_elements_need_loading(persistent) -> None:
    @op
    def upto(n) -> MList[int]:
        return list(range(n))

    with persistent.open():
        first = upto(2)
    reopened = persistent.open()
    lazy = reopened.load_ref(first.hid, in_memory=False)
    assert isinstance(lazy, ListRef)
    assert reopened.unwrap(lazy) == [0, 1]
    unloaded = ListRef(first.content_key, first.history_key, False, None)
    with pytest.raises(ValueNotFoundError):
        len(unloaded)
    with pytest.raises(KeyError):
        unloaded[0]


def test_nested_collection_outputs_survive_a_new_session(persistent) -> None:
    runs = []

    @op
    def grid(n) -> MList[MList[int]]:
        runs.append(n)
        return [[i * j for j in range(n)] for i in range(n)]

    @op
    def groups(n) -> MDict[str, MList[int]]:
        runs.append(n)
        return {"a": [1, 2], "b": [n]}

    with persistent.open():
        g0 = grid(2)
        d0 = groups(3)
    storage = persistent.open()
    with storage:
        g = grid(2)
        d = groups(3)
    assert runs == [2, 3]
    assert g[1][1].hid == g0[1][1].hid
    assert storage.unwrap(g) == [[0, 0], [0, 1]]
    assert storage.get_ref_creator(g[1][0]).op.name == "__list_getitem__"
    assert storage.get_ref_creator(g[1]).op.name == "__list_getitem__"
    assert storage.unwrap(d) == {"a": [1, 2], "b": [3]}
    assert d["a"][1].hid == d0["a"][1].hid
    assert storage.get_ref_creator(d["a"]).op.name == "__dict_getitem__"


@pytest.mark.parametrize("kind", ["list", "dict", "set"])
def test_empty_collection_output_memo_hit(persistent, kind) -> None:
    runs = []

    if kind == "list":

        @op
        def empty(n) -> MList[int]:
            runs.append(n)
            return []

        expected: Any = []
    elif kind == "dict":

        @op
        def empty(n) -> MDict[str, int]:
            runs.append(n)
            return {}

        expected = {}
    else:

        @op
        def empty(n) -> MSet[int]:
            runs.append(n)
            return set()

        expected = set()

    storage = persistent.open()
    with storage:
        first = empty(0)
    with storage:
        same_session = empty(0)
    with persistent.open() as other:
        new_session = empty(0)
    assert runs == [0]
    assert len(same_session) == 0 and len(new_session) == 0
    assert same_session.hid == new_session.hid == first.hid
    assert storage.unwrap(same_session) == expected
    assert other.unwrap(new_session) == expected


def test_duplicate_elements_of_an_output_get_distinct_histories(storage: Storage) -> None:
    @op
    def twice(x) -> MList[int]:
        return [x, x]

    with storage:
        lst = twice(5)
    assert lst[0].cid == lst[1].cid
    assert lst[0].hid != lst[1].hid
    assert storage.unwrap(lst) == [5, 5]


def test_failing_op_with_collection_input_stores_no_structural_calls(storage: Storage) -> None:
    @op
    def explode(items: MList[int], parts: MDict[str, int]):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), storage:
        explode([1, 2], {"a": 3})
    stats = storage.cache_stats()
    assert (stats["calls"]["stored"], stats["refs"]["stored"], stats["values"]["stored"]) == (
        0,
        0,
        0,
    )


def test_mismatched_collection_output_stores_nothing(storage: Storage) -> None:
    from mandala.errors import OutputMismatchError

    @op(nout=2)
    def bad(n) -> MList[int]:
        return list(range(n))

    with pytest.raises(OutputMismatchError), storage:
        bad(3)
    stats = storage.cache_stats()
    assert (stats["calls"]["stored"], stats["refs"]["stored"], stats["values"]["stored"]) == (
        0,
        0,
        0,
    )
