"""``with storage:`` blocks: commits, nesting, exceptions, ``noop`` and ``allow_new_calls``.

docs/compatibility.md §a.9, §a.10 (bug g.1-3 fixed: an inner exit keeps the outer block active), §h.
"""

from __future__ import annotations

import threading

import pytest

from mandala.errors import ContextError, NewCallsNotAllowedError
from mandala.imports import Storage, noop, op
from mandala.model.refs import AtomRef


def _counting_inc(runs):
    @op
    def inc(x):
        runs.append(x)
        return x + 1

    return inc


def test_with_returns_the_storage(storage: Storage) -> None:
    with storage as entered:
        assert entered is storage


def test_in_context(storage: Storage) -> None:
    assert storage.in_context() is False
    with storage:
        assert storage.in_context() is True
        with storage(mode="noop"):
            assert storage.in_context() is True
    assert storage.in_context() is False


def test_block_commits_on_exit(persistent) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    storage = persistent.open()
    with storage:
        inc(1)
        assert storage.cache_stats()["calls"]["pending"] == 1
        assert persistent.open().cache_stats()["calls"]["stored"] == 0  # not yet visible
    assert storage.cache_stats()["calls"]["pending"] == 0
    assert persistent.open().cache_stats()["calls"]["stored"] == 1


def test_nested_blocks_commit_only_at_the_outermost_exit(persistent) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    storage = persistent.open()
    observer = persistent.open()
    with storage:
        inc(1)
        with storage:
            inc(2)
        assert observer.cache_stats()["calls"]["stored"] == 0  # inner exit did not commit
        r = inc(3)  # the outer block is still active after the inner one
        assert isinstance(r, AtomRef)
        assert storage.in_context()
    assert observer.cache_stats()["calls"]["stored"] == 3
    assert runs == [1, 2, 3]


def test_nested_different_storages_restore_the_outer_one(tmp_path) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    outer, inner = Storage(tmp_path / "outer.db"), Storage(tmp_path / "inner.db")
    with outer:
        a = inc(1)
        with inner:
            b = inc(2)
        c = inc(3)  # goes to the outer storage again
    assert isinstance(c, AtomRef)
    assert outer.cache_stats()["calls"]["stored"] == 2
    assert inner.cache_stats()["calls"]["stored"] == 1
    assert outer.get_ref_creator(c) is not None
    assert inner.get_ref_creator(c) is None
    assert inner.get_ref_creator(b) is not None
    assert outer.get_ref_creator(a) is not None
    assert outer.in_context() is False


def test_exit_without_enter_raises(storage: Storage) -> None:
    with pytest.raises(ContextError):
        storage.__exit__(None, None, None)


def test_exception_propagates_unchanged_and_earlier_calls_are_committed(persistent) -> None:
    runs: list = []

    @op
    def step(x):
        runs.append(x)
        if x == 3:
            raise error
        return x * 10

    error = ArithmeticError("step 3 failed")
    storage = persistent.open()
    with pytest.raises(ArithmeticError) as info, storage:
        for x in range(1, 5):
            step(x)
    assert info.value is error
    assert runs == [1, 2, 3]
    assert storage.in_context() is False
    fresh = persistent.open()
    assert fresh.cache_stats()["calls"]["stored"] == 2
    # A rerun computes only the missing calls.
    error = None  # type: ignore[assignment]

    @op  # type: ignore[no-redef]
    def step(x):
        runs.append(x)
        return x * 10

    with fresh:
        results = [step(x) for x in range(1, 5)]
    assert runs == [1, 2, 3, 3, 4]
    assert fresh.unwrap(results) == [10, 20, 30, 40]


def test_exception_inside_nested_block_keeps_outer_active(storage: Storage) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    with storage:
        with pytest.raises(ZeroDivisionError), storage:
            inc(1)
            1 / 0  # noqa: B018
        r = inc(2)
        assert isinstance(r, AtomRef)
    assert storage.cache_stats()["calls"]["stored"] == 2


def test_commit_mid_block_makes_calls_visible_to_another_storage(persistent) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    storage = persistent.open()
    with storage:
        inc(1)
        storage.commit()
        other = persistent.open()
        assert other.cache_stats()["calls"]["stored"] == 1
        inc(2)
        assert persistent.open().cache_stats()["calls"]["stored"] == 1
    assert persistent.open().cache_stats()["calls"]["stored"] == 2
    with other:
        inc(1)
    assert runs == [1, 2]


def test_uncommitted_calls_are_invisible_to_another_storage(persistent) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    storage = persistent.open()
    with storage:
        inc(1)
        other = persistent.open()
        with other:
            inc(1)  # not committed by the first storage yet: computed again
    assert runs == [1, 1]
    assert persistent.open().cache_stats()["calls"]["stored"] == 1  # stored once


# ------------------------------------------------------------------ noop


@pytest.mark.parametrize("how", ["mode", "noop"])
def test_noop_runs_plain_functions_and_stores_nothing(storage: Storage, how) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    with storage:
        stored = inc(1)
        context = storage(mode="noop") if how == "mode" else noop()
        with context:
            a = inc(stored)  # refs passed in are unwrapped
            b = inc(stored)
            c = inc(10)
        after = inc(20)  # back to memoizing
    assert (a, b, c) == (3, 3, 11)
    assert type(a) is int
    assert isinstance(after, AtomRef)
    assert runs == [1, 2, 2, 10, 20]
    assert storage.cache_stats()["calls"]["stored"] == 2


def test_noop_unwraps_lazy_refs(persistent) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    with persistent.open():
        inc(1)
    fresh = persistent.open()
    with fresh:
        lazy = inc(1)
        assert lazy.in_memory is False
        with noop():
            assert inc(lazy) == 3


def test_storage_mode_run_is_a_normal_block(storage: Storage) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    with storage(mode="run"):
        r = inc(1)
    assert isinstance(r, AtomRef)
    assert storage.cache_stats()["calls"]["stored"] == 1


def test_storage_bad_mode_is_a_value_error(storage: Storage) -> None:
    with pytest.raises(ValueError, match="mode"):
        storage(mode="fast")


# ------------------------------------------------------------------ allow_new_calls


def test_allow_new_calls_false_serves_stored_calls_only(storage: Storage) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    with storage:
        inc(1)
    storage.allow_new_calls(False)
    try:
        with storage:
            r = inc(1)
            with pytest.raises(NewCallsNotAllowedError) as info:
                inc(2)
    finally:
        storage.allow_new_calls(True)
    assert isinstance(info.value, RuntimeError)
    assert "inc" in str(info.value)
    assert storage.unwrap(r) == 2
    assert runs == [1]
    with storage:
        inc(2)
    assert runs == [1, 2]


def test_allow_new_calls_as_a_context_manager_restores_the_setting(storage: Storage) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    with storage:
        with storage.allow_new_calls(False), pytest.raises(RuntimeError):
            inc(1)
        r = inc(1)
    assert storage.unwrap(r) == 2
    assert runs == [1]
    storage.allow_new_calls(False)
    with storage.allow_new_calls(True), storage:
        inc(5)
    with storage, pytest.raises(NewCallsNotAllowedError):
        inc(6)
    storage.allow_new_calls(True)


def test_allow_new_calls_false_still_reuses_by_content(storage: Storage) -> None:
    runs: list = []
    inc = _counting_inc(runs)

    @op
    def dbl(x):
        runs.append(("dbl", x))
        return 2 * x

    with storage:
        dbl(inc(1))
    with storage.allow_new_calls(False), storage:
        r = dbl(2)
    assert storage.unwrap(r) == 4
    assert runs == [1, ("dbl", 2)]


# ------------------------------------------------------------------ threads


def test_context_is_per_thread(storage: Storage) -> None:
    runs: list = []
    inc = _counting_inc(runs)
    seen = []

    def worker():
        seen.append(type(inc(1)).__name__)

    with storage:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        inside = inc(1)
    assert seen == ["int"]  # the other thread did not inherit the block
    assert isinstance(inside, AtomRef)


def test_one_storage_used_by_two_threads_at_once(storage: Storage) -> None:
    """Blocks of the same storage in two threads overlap; each exits its own block cleanly."""
    runs: list = []
    inc = _counting_inc(runs)
    both_inside = threading.Barrier(2, timeout=10)
    errors: list = []
    results: dict = {}

    def worker(name: str, x: int, linger: float) -> None:
        try:
            with storage:
                both_inside.wait()
                results[name] = inc(x)
                import time

                time.sleep(linger)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append((name, repr(error)))

    first = threading.Thread(target=worker, args=("first", 1, 0.0))
    second = threading.Thread(target=worker, args=("second", 2, 0.2))
    first.start()
    second.start()
    first.join()
    second.join()
    assert errors == []
    assert sorted(runs) == [1, 2]
    assert all(isinstance(r, AtomRef) for r in results.values())
    assert storage.cache_stats()["calls"]["stored"] == 2
    assert storage.in_context() is False
