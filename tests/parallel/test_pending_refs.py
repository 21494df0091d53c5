"""Pending refs: usable as inputs inside a parallel block, refused as values (with a message
that says why and what to do), ordinary refs after the block."""

from __future__ import annotations

import concurrent.futures
import math
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mandala.errors import (
    ContextError,
    OpCallError,
    ParallelCallError,
    PendingResultError,
    UnsupportedExecutorError,
)
from mandala.imports import Storage
from mandala.model.refs import AtomRef
from mandala.parallel.pending import PendingRef
from tests.parallel import ops_for_workers as ops
from tests.parallel.ops_for_workers import executions

USES: dict[str, Callable[[Any, Storage], Any]] = {
    "bool": lambda ref, storage: bool(ref),
    "if": lambda ref, storage: 1 if ref else 0,
    "compare": lambda ref, storage: ref > 0,
    "compare reflected": lambda ref, storage: 0 < ref,  # noqa: SIM300 - the reflected method
    "add": lambda ref, storage: ref + 1,
    "radd": lambda ref, storage: 1 + ref,
    "negate": lambda ref, storage: -ref,
    "float": lambda ref, storage: float(ref),
    "int": lambda ref, storage: int(ref),
    "index": lambda ref, storage: [0, 1][ref],
    "round": lambda ref, storage: round(ref),
    "math": lambda ref, storage: math.sqrt(ref),
    "len": lambda ref, storage: len(ref),
    "iterate": lambda ref, storage: list(ref),
    "contains": lambda ref, storage: 1 in ref,
    "getitem": lambda ref, storage: ref[0],
    "attribute": lambda ref, storage: ref.shape,
    "format spec": lambda ref, storage: f"{ref:.2f}",
    "content id": lambda ref, storage: ref.cid,
    "unwrap": lambda ref, storage: storage.unwrap(ref),
    "unwrap in a list": lambda ref, storage: storage.unwrap([ref]),
    "attach": lambda ref, storage: storage.attach(ref),
    "pickle": lambda ref, storage: pickle.dumps(ref),
    "in a plain list argument": lambda ref, storage: ops.add([ref], 1),
}


@pytest.fixture
def pool() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    """A thread pool: these tests are about the refs, not about processes."""
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        yield executor


WORK_ON_REFS = {"content id", "unwrap", "unwrap in a list", "attach", "pickle"}
"""Uses that an ordinary ref supports: after the block they work on the same object."""


@pytest.mark.parametrize("name", list(USES))
def test_using_a_pending_ref_as_a_value_raises_a_clear_error(
    storage: Storage, pool: Any, name: str
) -> None:
    use = USES[name]
    with storage.parallel(pool):
        ref = ops.square(7)
        with pytest.raises(PendingResultError) as caught:
            use(ref, storage)
    message = str(caught.value)
    assert "'square'" in message and "storage.parallel()" in message
    assert "after the block" in message
    # after the block, the same object is an ordinary ref and the same use works
    assert type(ref) is AtomRef
    if name in WORK_ON_REFS:
        use(ref, storage)
    assert storage.unwrap(ref) == 49


def test_what_a_pending_ref_does_support(storage: Storage, pool: Any) -> None:
    with storage.parallel(pool):
        ref = ops.square(7)
        assert type(ref) is PendingRef
        assert "pending" in repr(ref) and "square" in repr(ref) and "pending" in f"{ref}"
        hid = ref.hid
        assert {ref: 1}[ref] == 1  # hashable, compares by identity
        assert ref == ref and ref != ops.square(8)
    assert ref.hid == hid
    with storage:
        assert ops.square(7).hid == hid


def test_calls_found_in_the_store_return_ordinary_refs_inside_the_block(
    storage: Storage, pool: Any
) -> None:
    with storage:
        ops.square(4)
    with storage.parallel(pool):
        found = ops.square(4)
        assert type(found) is AtomRef
        assert storage.unwrap(found) == 16
        assert ops.add(found, 1).hid  # and can be passed on


def test_op_calls_in_an_op_body_are_plain_calls_on_workers(
    storage: Storage, process_pool: Any, log: str
) -> None:
    with storage.parallel(process_pool):
        ref = ops.sum_of_squares(2, 3, log=log)
    assert storage.unwrap(ref) == 13
    assert executions(log) == ["sum_of_squares 2 3"]
    assert list(storage.backend.columns.load_call_rows_of_op("square").heads[1]) == []


def test_an_op_with_a_variable_number_of_outputs_is_refused(storage: Storage, pool: Any) -> None:
    with storage.parallel(pool), pytest.raises(OpCallError, match="nout='var'"):
        ops.spread(3)


def test_a_pending_element_of_a_set_argument_is_refused(storage: Storage, pool: Any) -> None:
    with storage.parallel(pool):
        element = ops.square(2)
        with pytest.raises(OpCallError, match="MSet"):
            ops.union_size({element, 3})
        fine = ops.union_size({1, 2, 3})
    assert storage.unwrap(fine) == 3


def test_blocks_do_not_nest_and_run_once(storage: Storage, pool: Any) -> None:
    block = storage.parallel(pool)
    with block, pytest.raises(ContextError, match="do not nest"), storage.parallel(pool):
        pass
    with pytest.raises(ContextError, match="runs once"), block:
        pass


def test_an_unsupported_executor_is_refused_at_once(storage: Storage) -> None:
    with pytest.raises(UnsupportedExecutorError, match="concurrent.futures.Executor"):
        storage.parallel(object())
    with pytest.raises(TypeError):  # a builtin a user would catch
        storage.parallel("dask")


def test_a_pending_ref_for_a_parameter_with_a_new_default_is_refused(
    storage: Storage, pool: Any
) -> None:
    """Whether the value equals the default decides the call's identity: it must be known."""
    with storage.parallel(pool):
        ref = ops.square(2)
        with pytest.raises(PendingResultError, match="'square'"):
            ops.scaled(3, factor=ref)
        fine = ops.scaled(3, factor=2)
    assert storage.unwrap(fine) == 6


def test_a_block_inside_a_storage_context(storage: Storage, pool: Any) -> None:
    """Calls made before the block (not committed yet) are found by it; calls made after it in
    the outer block use its results."""
    with storage:
        first = ops.square(3)
        with storage.parallel(pool):
            second = ops.add(first, 1)
        third = ops.add(second, 1)
        assert storage.unwrap(third) == 11
    reopened = storage if storage.db_path == ":memory:" else Storage(storage.db_path)
    with reopened.allow_new_calls(False), reopened:  # every call is stored
        again = ops.add(ops.add(ops.square(3), 1), 1)
    assert again.hid == third.hid


def test_an_argument_modified_after_its_call_is_reported(storage: Storage, pool: Any) -> None:
    """A call on pending inputs is identified again when they are computed: a plain argument
    changed in between gives another call, which is reported instead of stored."""
    options = {"offset": 1}
    with pytest.raises(ParallelCallError, match="modified after the call"), storage.parallel(pool):
        ops.shifted(ops.square(2), options)
        options["offset"] = 2
