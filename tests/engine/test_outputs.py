"""Outputs of ops: ``nout``, ``output_names``, tuple returns, and mismatches.

docs/compatibility.md §a.1, §a.3 step 7 and 9, §f, bug g.1-8 (fixed: every mismatch raises
``OutputMismatchError`` before anything of the call is saved).
"""

from __future__ import annotations

from typing import Tuple  # noqa: UP035 - the annotation style users write

import pytest

from mandala.errors import OutputMismatchError
from mandala.imports import Storage, op


def _stored_calls(storage: Storage) -> int:
    stats = storage.cache_stats()["calls"]
    return stats["stored"] + stats["pending"]


def test_auto_single_value_is_one_output_named_output_0(storage: Storage) -> None:
    @op
    def f(x):
        return [x, x]

    with storage:
        r = f(1)
    call = storage.get_ref_creator(r)
    assert list(call.outputs) == ["output_0"]
    assert call.outputs["output_0"].hid == r.hid
    assert storage.unwrap(r) == [1, 1]


def test_auto_tuple_return_is_several_outputs(storage: Storage) -> None:
    runs = []

    @op
    def split(x):
        runs.append(x)
        return x, x * 2, x * 3

    with storage:
        a, b, c = split(1)
    with storage:
        a2, b2, c2 = split(1)
    assert runs == [1]
    assert storage.unwrap([a, b, c]) == [1, 2, 3]
    assert (a.hid, b.hid, c.hid) == (a2.hid, b2.hid, c2.hid)
    assert len({a.hid, b.hid, c.hid}) == 3
    call = storage.get_ref_creator(b)
    assert sorted(call.outputs) == ["output_0", "output_1", "output_2"]
    assert call.outputs["output_1"].hid == b.hid


def test_output_names_name_the_outputs_in_order(storage: Storage) -> None:
    @op(output_names=["quotient", "remainder"])
    def div(a, b):
        return divmod(a, b)

    with storage:
        q, r = div(17, 5)
    with storage:
        q2, r2 = div(17, 5)
    assert storage.unwrap([q, r, q2, r2]) == [3, 2, 3, 2]
    call = storage.get_ref_creator(r)
    assert sorted(call.outputs) == ["quotient", "remainder"]
    assert call.outputs["quotient"].hid == q.hid == q2.hid
    assert call.outputs["remainder"].hid == r.hid == r2.hid


def test_single_output_name_keeps_a_tuple_whole(storage: Storage) -> None:
    @op(output_names=["pair"])
    def pair(x):
        return (x, x + 1)

    with storage:
        r = pair(1)
    assert storage.unwrap(r) == (1, 2)
    assert list(storage.get_ref_creator(r).outputs) == ["pair"]


def test_nout_int_splits_the_tuple(storage: Storage) -> None:
    @op(nout=2)
    def two(x):
        return x, -x

    with storage:
        a, b = two(3)
    assert storage.unwrap((a, b)) == (3, -3)


def test_nout_1_with_a_one_tuple_returns_the_inner_tuple_as_one_value(storage: Storage) -> None:
    """The documented pitfall: to return a tuple as a single value, use nout=1, return (t,)."""

    @op(nout=1)
    def as_one(x):
        return ((x, x),)

    with storage:
        r = as_one(4)
    assert not isinstance(r, tuple)
    assert storage.unwrap(r) == (4, 4)
    assert list(storage.get_ref_creator(r).outputs) == ["output_0"]


def test_auto_with_a_one_tuple_is_one_output(storage: Storage) -> None:
    @op
    def one(x):
        return (x,)

    with storage:
        r = one(5)
    assert storage.unwrap(r) == 5


def test_nout_var_returns_any_number_and_a_bare_ref_for_one(storage: Storage) -> None:
    runs = []

    @op(nout="var")
    def upto(n):
        runs.append(n)
        return tuple(range(n))

    with storage:
        zero = upto(0)
        one = upto(1)
        three = upto(3)
    with storage:
        one_again = upto(1)
        three_again = upto(3)
        zero_again = upto(0)
    assert runs == [0, 1, 3]
    assert zero == () and zero_again == ()
    assert not isinstance(one, tuple)
    assert storage.unwrap(one) == 0
    assert one_again.hid == one.hid
    assert isinstance(three, tuple) and len(three) == 3
    assert storage.unwrap(three_again) == (0, 1, 2)


def test_tuple_annotation_gives_one_type_per_output(storage: Storage) -> None:
    @op
    def two(x) -> Tuple[int, int]:  # noqa: UP006
        return x, x + 1

    with storage:
        a, b = two(1)
    assert storage.unwrap([a, b]) == [1, 2]


# ------------------------------------------------------------------ mismatches


@pytest.mark.parametrize(
    ("decorator", "result"),
    [
        pytest.param(op(output_names=["a", "b"]), (1, 2, 3), id="names<returned"),
        pytest.param(op(output_names=["a", "b", "c"]), (1, 2), id="names>returned"),
        pytest.param(op(output_names=["a", "b"]), 7, id="names-vs-single"),
        pytest.param(op(nout=2), (1, 2, 3), id="nout<returned"),
        pytest.param(op(nout=3), (1, 2), id="nout>returned"),
        pytest.param(op(nout=2), 5, id="nout2-single"),
        pytest.param(op(nout=1), (1, 2), id="nout1-pair"),
        pytest.param(op(nout="var"), [1, 2], id="var-list"),
        pytest.param(op(nout="var"), 5, id="var-single"),
    ],
)
def test_output_mismatch_raises_and_stores_nothing_of_that_call(
    persistent, decorator, result
) -> None:
    runs = []

    @op
    def before(x):
        runs.append("before")
        return x + 1

    def bad(x):
        runs.append("bad")
        return result

    bad_op = decorator(bad)
    storage = persistent.open()
    with pytest.raises(OutputMismatchError) as info, storage:
        kept = before(1)
        bad_op(kept)
    assert isinstance(info.value, ValueError)
    assert "'bad'" in str(info.value)
    assert runs == ["before", "bad"]
    assert _stored_calls(storage) == 1
    assert storage.cache_stats()["calls"]["pending"] == 0  # the block committed on exit
    fresh = persistent.open()
    assert fresh.cache_stats()["calls"]["stored"] == 1
    assert storage.get_ref_creator(kept).op.name == "before"
    assert storage.get_consumers([kept.hid]) == []
    # The failed call was not memoized: it runs again.
    with pytest.raises(OutputMismatchError), fresh:
        bad_op(before(1))
    assert runs == ["before", "bad", "bad"]


def test_output_mismatch_stores_no_values_or_refs(storage: Storage) -> None:
    @op(nout=2)
    def bad(x):
        return (["big", "unique", "value"], 1, 2)

    with pytest.raises(OutputMismatchError), storage:
        bad(0)
    stats = storage.cache_stats()
    assert stats["calls"]["stored"] == 0
    assert stats["values"]["stored"] == 0
    assert stats["refs"]["stored"] == 0


def test_mismatch_inside_a_block_does_not_end_the_block(storage: Storage) -> None:
    @op(nout=2)
    def bad(x):
        return x

    @op
    def good(x):
        return x * 2

    with storage:
        with pytest.raises(OutputMismatchError):
            bad(1)
        r = good(2)  # the context is still active
    assert storage.unwrap(r) == 4
    assert storage.cache_stats()["calls"]["stored"] == 1


def test_mismatch_message_says_what_was_expected(storage: Storage) -> None:
    @op(output_names=["a", "b"])
    def pair(x):
        return (1, 2, 3)

    with pytest.raises(OutputMismatchError, match=r"2.*3|3.*2"), storage:
        pair(0)
