"""Ops inside ``with storage:``: memoization, argument binding, Ignore and NewArgDefault.

Every test counts real executions of the op body. docs/compatibility.md §a.2, §a.3, checklist i.1, i.4.
"""

from __future__ import annotations

import numpy as np
import pytest

from mandala.imports import Ignore, NewArgDefault, Storage, op, wrap_atom
from mandala.model.refs import AtomRef, Ref


def test_inside_a_context_calls_return_refs(storage: Storage) -> None:
    @op
    def inc(x):
        return x + 1

    with storage:
        r = inc(41)
    assert isinstance(r, AtomRef)
    assert r.in_memory and r.obj == 42
    assert storage.unwrap(r) == 42
    assert len(r.hid) == 32 and len(r.cid) == 32


def test_second_identical_call_does_not_execute(storage: Storage) -> None:
    runs = []

    @op
    def inc(x):
        runs.append(x)
        return x + 1

    with storage:
        first = inc(1)
        second = inc(1)
    with storage:
        third = inc(1)
    assert runs == [1]
    assert first.hid == second.hid == third.hid
    assert first.cid == second.cid == third.cid
    assert storage.unwrap([first, second, third]) == [2, 2, 2]


def test_different_inputs_execute(storage: Storage) -> None:
    runs = []

    @op
    def inc(x):
        runs.append(x)
        return x + 1

    with storage:
        a, b, c = inc(1), inc(2), inc("a" and 3)
    assert runs == [1, 2, 3]
    assert len({a.hid, b.hid, c.hid}) == 3
    assert storage.unwrap((a, b, c)) == (2, 3, 4)


def test_memo_hit_in_a_later_block_returns_lazy_refs(storage: Storage) -> None:
    @op
    def square(x):
        return x * x

    with storage:
        square(7)
    with storage:
        r = square(7)
    assert r.in_memory is False and r.obj is None
    assert storage.unwrap(r) == 49
    assert r.in_memory is True and r.obj == 49


def test_positional_and_keyword_binding_is_the_same_call(storage: Storage) -> None:
    runs = []

    @op
    def sub(x, y):
        runs.append((x, y))
        return x - y

    with storage:
        a = sub(5, 3)
        b = sub(5, y=3)
        c = sub(y=3, x=5)
    assert runs == [(5, 3)]
    assert a.hid == b.hid == c.hid


def test_bad_arguments_raise_type_error_before_running(storage: Storage) -> None:
    runs = []

    @op
    def sub(x, y):
        runs.append(1)
        return x - y

    with storage:
        with pytest.raises(TypeError):
            sub(1)
        with pytest.raises(TypeError):
            sub(1, 2, 3)
        with pytest.raises(TypeError):
            sub(1, z=2)
    assert runs == []
    assert storage.cache_stats()["calls"]["stored"] == 0


def test_explicit_default_is_the_same_call_as_omitted(storage: Storage) -> None:
    runs = []

    @op
    def power(x, p=2):
        runs.append((x, p))
        return x**p

    with storage:
        a = power(3)
        b = power(3, 2)
        c = power(3, p=3)
    assert runs == [(3, 2), (3, 3)]
    assert a.hid == b.hid != c.hid
    assert storage.unwrap([a, c]) == [9, 27]


def test_changing_a_plain_default_invalidates_old_calls(storage: Storage) -> None:
    runs = []

    def define(default):
        @op
        def power(x, p=default):
            runs.append((x, p))
            return x**p

        return power

    with storage:
        a = define(2)(3)
        b = define(3)(3)
    assert runs == [(3, 2), (3, 3)]
    assert a.hid != b.hid


def test_adding_a_plain_default_parameter_invalidates_old_calls(storage: Storage) -> None:
    runs = []

    @op
    def scale(x):
        runs.append("v1")
        return x

    with storage:
        scale(1)

    @op  # type: ignore[no-redef]
    def scale(x, factor=1):
        runs.append("v2")
        return x * factor

    with storage:
        scale(1)
    assert runs == ["v1", "v2"]


def test_varargs_are_inputs_args_0_args_1(storage: Storage) -> None:
    runs = []

    @op
    def total(*args):
        runs.append(args)
        return sum(args)

    with storage:
        r = total(1, 2, 3)
        again = total(1, 2, 3)
        other = total(1, 2)
    assert runs == [(1, 2, 3), (1, 2)]
    assert r.hid == again.hid != other.hid
    call = storage.get_ref_creator(r)
    assert sorted(call.inputs) == ["args_0", "args_1", "args_2"]
    assert storage.unwrap(call.inputs["args_1"]) == 2


def test_kwargs_are_inputs_named_by_key(storage: Storage) -> None:
    runs = []

    @op
    def describe(base, **kwargs):
        runs.append(kwargs)
        return base + sum(kwargs.values())

    with storage:
        r = describe(1, alpha=2, beta=3)
        same = describe(1, beta=3, alpha=2)
    assert runs == [{"alpha": 2, "beta": 3}]
    assert r.hid == same.hid
    call = storage.get_ref_creator(r)
    assert sorted(call.inputs) == ["alpha", "base", "beta"]
    assert storage.unwrap(call.inputs["beta"]) == 3
    assert storage.unwrap(r) == 6


def test_varargs_elements_wrapped_in_ignore_are_passed_not_stored(storage: Storage) -> None:
    runs = []

    @op
    def total(*args):
        runs.append(args)
        return sum(args)

    with storage:
        a = total(1, Ignore(10))
        b = total(1, Ignore(20))
    assert runs == [(1, 10)]
    assert a.hid == b.hid
    assert storage.unwrap(b) == 11  # the stored result of the first call
    assert list(storage.get_ref_creator(a).inputs) == ["args_0"]


def test_keyword_only_and_positional_only_parameters(storage: Storage) -> None:
    runs = []

    @op
    def f(a, /, b, *, c=3):
        runs.append((a, b, c))
        return a + b + c

    with storage:
        r = f(1, 2)
        same = f(1, b=2, c=3)
    assert runs == [(1, 2, 3)]
    assert r.hid == same.hid
    assert sorted(storage.get_ref_creator(r).inputs) == ["a", "b", "c"]


# ------------------------------------------------------------------ Ignore / ignore_args


def test_ignore_leaves_argument_out_of_identity_but_passes_it(storage: Storage) -> None:
    received = []

    @op
    def train(x, verbose=False):
        received.append((x, verbose))
        return x * 10

    with storage:
        a = train(1, Ignore(True))
        b = train(1, verbose=Ignore(False))
        c = train(2, Ignore(False))
    assert received == [(1, True), (2, False)]
    assert a.hid == b.hid
    assert list(storage.get_ref_creator(a).inputs) == ["x"]
    assert storage.unwrap([a, b, c]) == [10, 10, 20]


def test_ignore_as_a_default_is_unwrapped_for_the_function(storage: Storage) -> None:
    received = []

    @op
    def train(x, device=Ignore("cpu")):  # noqa: B008 - markers are meant as defaults
        received.append((x, device))
        return x

    with storage:
        train(1)
        train(1, Ignore("gpu"))
    assert received == [(1, "cpu")]


def test_ignore_args_leaves_named_parameters_out(storage: Storage) -> None:
    received = []

    @op(ignore_args=["verbose", "callback"])
    def train(x, verbose=False, callback=None):
        received.append((x, verbose, callback))
        return x + 1

    with storage:
        a = train(1, verbose=True, callback=print)
        b = train(1, verbose=False)
        c = train(1, False, len)
    assert received == [(1, True, print)]
    assert a.hid == b.hid == c.hid
    assert list(storage.get_ref_creator(a).inputs) == ["x"]


def test_ignore_args_on_var_keyword_parameter(storage: Storage) -> None:
    """``ignore_args`` naming ``**kwargs`` must either be refused or honoured, never dropped."""
    from mandala.errors import OpDefinitionError

    received = []
    try:

        @op(ignore_args=["options"])
        def f(x, **options):
            received.append(options)
            return x

    except OpDefinitionError:
        return
    with storage:
        a = f(1, a=1)
        b = f(1, a=2)
    assert received == [{"a": 1}]
    assert a.hid == b.hid


def test_ignore_args_on_var_positional_parameter(storage: Storage) -> None:
    """``ignore_args`` naming ``*rest`` must either be refused or honoured, never dropped."""
    from mandala.errors import OpDefinitionError

    received = []
    try:

        @op(ignore_args=["rest"])
        def f(x, *rest):
            received.append(rest)
            return x

    except OpDefinitionError:
        return
    with storage:
        a = f(1, 2)
        b = f(1, 3)
    assert received == [(2,)]
    assert a.hid == b.hid


def test_ignored_unhashable_value_is_fine(storage: Storage) -> None:
    import threading

    received = []

    @op
    def f(x, lock=None):
        received.append(type(lock).__name__)
        return x

    with storage:
        r = f(1, Ignore(threading.Lock()))
    assert storage.unwrap(r) == 1
    assert received == ["lock"]


# ------------------------------------------------------------------ NewArgDefault


def _define_v1(runs):
    @op
    def fit(x):
        runs.append(("v1", x))
        return x * 2

    return fit


def _define_v2(runs, default):
    @op
    def fit(x, reg=NewArgDefault(default)):  # noqa: B008 - markers are meant as defaults
        runs.append(("v2", x, reg))
        return x * 2 + (reg if isinstance(reg, (int, float)) else 0)

    return fit


def test_new_arg_default_keeps_old_calls(storage: Storage) -> None:
    runs: list = []
    with storage:
        old = _define_v1(runs)(5)
    fit = _define_v2(runs, 0)
    with storage:
        omitted = fit(5)
        explicit = fit(5, reg=0)
        positional = fit(5, 0)
    assert runs == [("v1", 5)]
    assert old.hid == omitted.hid == explicit.hid == positional.hid
    assert list(storage.get_ref_creator(omitted).inputs) == ["x"]


def test_new_arg_default_other_value_computes(storage: Storage) -> None:
    runs: list = []
    with storage:
        old = _define_v1(runs)(5)
    fit = _define_v2(runs, 0)
    with storage:
        new = fit(5, reg=3)
        again = fit(5, reg=3)
    assert runs == [("v1", 5), ("v2", 5, 3)]
    assert new.hid == again.hid != old.hid
    assert sorted(storage.get_ref_creator(new).inputs) == ["reg", "x"]
    assert storage.unwrap(new) == 13


def test_new_arg_default_default_value_reaches_the_function(storage: Storage) -> None:
    runs: list = []
    fit = _define_v2(runs, 4)
    with storage:
        r = fit(1)
    assert runs == [("v2", 1, 4)]
    assert storage.unwrap(r) == 6


@pytest.mark.parametrize(
    ("default", "passed"),
    [(1, True), (1, 1.0), (0, False), (1.0, 1), (True, 1), ("1", 1)],
)
def test_new_arg_default_equality_is_type_strict(storage: Storage, default, passed) -> None:
    runs: list = []
    with storage:
        _define_v1(runs)(5)
    fit = _define_v2(runs, default)
    with storage:
        fit(5, passed)
        fit(5, default)
    assert runs == [("v1", 5), ("v2", 5, passed)]


def test_new_arg_default_numpy_array_equality(storage: Storage) -> None:
    runs: list = []

    @op
    def center(x):
        runs.append(("v1", x))
        return x

    with storage:
        center(1)

    @op  # type: ignore[no-redef]
    def center(x, offsets=NewArgDefault(np.array([1, 2, 3]))):  # noqa: B008 - markers are meant as defaults
        runs.append(("v2", x, np.asarray(offsets).tolist()))
        return x

    with storage:
        center(1, np.array([1, 2, 3]))  # equal array: old call
        center(1)  # default: old call
        center(1, np.array([1, 2, 4]))  # different values
        center(1, np.array([1.0, 2.0, 3.0]))  # different dtype
        center(1, [1, 2, 3])  # different type
    assert runs == [
        ("v1", 1),
        ("v2", 1, [1, 2, 4]),
        ("v2", 1, [1.0, 2.0, 3.0]),
        ("v2", 1, [1, 2, 3]),
    ]


def test_new_arg_default_given_as_a_ref_holding_the_default(storage: Storage) -> None:
    runs: list = []
    with storage:
        old = _define_v1(runs)(5)
    fit = _define_v2(runs, 0)
    with storage:
        r = fit(5, wrap_atom(0))
    assert runs == [("v1", 5)]
    assert r.hid == old.hid


# ------------------------------------------------------------------ versions, nesting, refs


def test_op_version_invalidates_calls(storage: Storage) -> None:
    runs = []

    def define(version):
        @op(version=version)
        def f(x):
            runs.append(version)
            return x

        return f

    with storage:
        a = define(0)(1)
        b = define(1)(1)
        c = define(1)(1)
    assert runs == [0, 1]
    assert a.hid != b.hid == c.hid


def test_refs_feed_other_ops_and_are_memoized(storage: Storage) -> None:
    runs = []

    @op
    def inc(x):
        runs.append(("inc", x))
        return x + 1

    @op
    def add(x, y):
        runs.append(("add", x, y))
        return x + y

    with storage:
        r = add(inc(1), inc(2))
    with storage:
        again = add(inc(1), inc(2))
    assert runs == [("inc", 1), ("inc", 2), ("add", 2, 3)]
    assert r.hid == again.hid
    assert storage.unwrap(again) == 5


def test_lazy_ref_inputs_are_loaded_for_execution(storage: Storage) -> None:
    runs = []

    @op
    def inc(x):
        return x + 1

    @op
    def dbl(x):
        runs.append(x)
        return 2 * x

    with storage:
        inc(1)
    with storage:
        lazy = inc(1)
        assert lazy.in_memory is False
        r = dbl(lazy)
    assert runs == [2]
    assert storage.unwrap(r) == 4


def test_op_called_inside_an_op_body_is_a_plain_function(storage: Storage) -> None:
    runs = []

    @op
    def inner(x):
        runs.append(("inner", x))
        return x + 1

    @op
    def outer(x):
        y = inner(x)
        runs.append(("outer", type(y).__name__))
        return y * 2

    with storage:
        r = outer(1)
    assert runs == [("inner", 1), ("outer", "int")]
    assert storage.unwrap(r) == 4
    storage.commit()
    assert storage.cache_stats()["calls"]["stored"] == 1  # only the outer call


def test_exception_in_op_body_propagates_unchanged_and_stores_nothing(storage: Storage) -> None:
    error = KeyError("boom")
    runs = []

    @op
    def fail(x):
        runs.append(x)
        raise error

    with pytest.raises(KeyError) as info, storage:
        fail(1)
    assert info.value is error
    assert storage.cache_stats()["calls"]["stored"] == 0
    with pytest.raises(KeyError), storage:
        fail(1)
    assert runs == [1, 1]  # a failed call is not memoized


def test_returning_an_input_ref_restamps_its_history(storage: Storage) -> None:
    @op
    def identity(x):
        return x

    @op
    def make(x):
        return x

    with storage:
        a = make(3)
        b = identity(a)
    assert b.cid == a.cid
    assert b.hid != a.hid
    assert storage.unwrap(b) == 3


def test_refs_compare_by_identity_not_by_ids(storage: Storage) -> None:
    @op
    def inc(x):
        return x + 1

    with storage:
        a = inc(1)
        b = inc(1)
    assert a.hid == b.hid
    assert hash(a) == hash(b)
    assert isinstance(a, Ref)
    assert (a == a) is True
