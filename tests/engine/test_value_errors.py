"""Values that cannot be hashed or stored, and ``ValuePointer`` for values that should not be.

Errors name the op and the argument or output; nothing of the failing call is stored, and the
storage context stays usable.
"""

from __future__ import annotations

import threading

import pytest

from mandala.errors import SerializationError, UnhashableValueError, ValueNotFoundError
from mandala.imports import Storage, ValuePointer, op


class _Unpicklable:
    """Hashes through ``__get_mandala_dict__`` but cannot be pickled (it holds a lock)."""

    def __init__(self, v: int) -> None:
        self.v = v
        self.lock = threading.Lock()

    def __get_mandala_dict__(self) -> dict:
        return {"v": self.v}


def _nothing_stored(storage: Storage) -> None:
    storage.commit()
    stats = storage.cache_stats()
    assert (stats["calls"]["stored"], stats["refs"]["stored"], stats["values"]["stored"]) == (
        0,
        0,
        0,
    )


def _gen():
    yield 1


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: lambda: 1, id="lambda"),
        pytest.param(threading.Lock, id="lock"),
        pytest.param(_gen, id="generator"),
    ],
)
def test_unhashable_argument_names_op_and_argument(storage: Storage, make) -> None:
    runs = []

    @op
    def consume(data, other=0):
        runs.append(1)
        return 1

    with storage, pytest.raises(UnhashableValueError) as info:
        consume(make())
    assert isinstance(info.value, TypeError)
    assert "consume" in str(info.value) and "data" in str(info.value)
    assert runs == []
    _nothing_stored(storage)


def test_unhashable_element_of_an_mlist_names_op_and_argument(storage: Storage) -> None:
    from mandala.imports import MList

    @op
    def consume(items: MList[int]):
        return 1

    with storage, pytest.raises(UnhashableValueError, match="consume.*items|items.*consume"):
        consume([1, threading.Lock()])
    _nothing_stored(storage)


def test_unhashable_output_names_op_and_output(storage: Storage) -> None:
    runs = []

    @op(output_names=["fn"])
    def make_fn(x):
        runs.append(x)
        return lambda: x

    with storage, pytest.raises(UnhashableValueError) as info:
        make_fn(1)
    assert "make_fn" in str(info.value) and "fn" in str(info.value)
    _nothing_stored(storage)


def test_unpicklable_output_names_op_and_output(storage: Storage) -> None:
    @op(output_names=["model"])
    def build(x):
        return _Unpicklable(x)

    with storage, pytest.raises(SerializationError) as info:
        build(1)
    assert isinstance(info.value, TypeError)
    assert "build" in str(info.value) and "model" in str(info.value)
    _nothing_stored(storage)


def test_unpicklable_argument_names_op_and_argument(storage: Storage) -> None:
    @op
    def use(model):
        return 1

    with storage, pytest.raises(SerializationError) as info:
        use(_Unpicklable(1))
    assert "use" in str(info.value) and "model" in str(info.value)
    _nothing_stored(storage)


def test_failing_call_keeps_earlier_calls_and_the_context(persistent) -> None:
    runs = []

    @op
    def inc(x):
        runs.append(x)
        return x + 1

    @op
    def use(model):
        return 1

    storage = persistent.open()
    with storage:
        a = inc(1)
        with pytest.raises(UnhashableValueError):
            use(threading.Lock())
        b = inc(2)  # still memoized: the context survived
    assert storage.unwrap([a, b]) == [2, 3]
    fresh = persistent.open()
    assert fresh.cache_stats()["calls"]["stored"] == 2
    with fresh:
        inc(1)
        inc(2)
    assert runs == [1, 2]


# ------------------------------------------------------------------ ValuePointer


def test_value_pointer_is_identified_by_its_id_and_never_stored(storage: Storage) -> None:
    runs = []
    lock = threading.Lock()  # not hashable, not picklable: fine behind a pointer

    @op
    def use(resource, x):
        runs.append((type(resource).__name__, x))
        return x * 2

    with storage:
        a = use(ValuePointer("the-lock", lock), 1)
        b = use(ValuePointer("the-lock", threading.Lock()), 1)  # same id: same call
        c = use(ValuePointer("other-lock", lock), 1)
    assert runs == [("lock", 1), ("lock", 1)]
    assert a.hid == b.hid != c.hid
    assert storage.unwrap(b) == 2
    call = storage.get_ref_creator(a)
    pointer_ref = call.inputs["resource"]
    assert pointer_ref.hid == pointer_ref.cid  # hashed by id only
    with pytest.raises(ValueNotFoundError):
        storage.unwrap(storage.load_ref(pointer_ref.hid, in_memory=False))
    storage.commit()
    # Values stored: x=1 and the result 2, never the lock.
    assert storage.cache_stats()["values"]["stored"] == 2


def test_value_pointer_refuses_equality_and_hashing() -> None:
    pointer = ValuePointer("a", 1)
    with pytest.raises(TypeError):
        pointer == ValuePointer("a", 1)  # noqa: B015
    with pytest.raises(TypeError):
        hash(pointer)
