"""Frames behave as the original's on the cases where code written for it depends on them.

Each expectation here was checked against pymandala 0.2.0a0 itself (run in its own venv on the
same script): numbers of rows, variables and the graph text (docs/compatibility.md §d).
"""

from __future__ import annotations

from typing import Any

import pytest

from mandala.imports import Storage, op
from tests.frames.test_dataframes import rows

pytestmark = pytest.mark.usefixtures("storage")

EXECUTIONS: list[str] = []


@op(output_names=["a", "b"])
def split(X):
    return X, X + 1


@op
def scale(X):
    return X * 2


@op(output_names=["X", "y"])
def load(n):
    return list(range(n)), n


@op(output_names=["X_scaled"])
def scale_data(X):
    return [2 * v for v in X]


@op(output_names=["model", "acc"])
def train(X, y):
    return sum(X), y


def test_the_outputs_of_one_call_are_one_row(storage: Storage) -> None:
    """``split(1)`` next to ``split(scale(5))``: two rows, not a half-row per output."""
    with storage:
        split(X=1)
        split(X=scale(X=5))
    cf = storage.cf(split).expand_back(recursive=True)
    df = cf.df(include_calls=False)
    assert rows(df, ["X_0", "X", "a", "b"]) == {(5, 10, 10, 11), (None, 1, 1, 2)}
    assert len(cf.df()) == 2


def test_an_in_place_update_gives_one_row_per_final_result(storage: Storage) -> None:
    with storage:
        X, y = load(3)
        train(X, y)
        for _ in range(2):
            X = scale_data(X)
            train(X, y)
    cf = storage.cf(train).expand_back(recursive=True)
    assert cf.get_graph_desc() == (
        "X@X, y@y = load(n=n)\nX@X_scaled = scale_data(X=X)\nmodel@model, acc@acc = train(X=X, y=y)"
    )
    df = cf.df(include_calls=False)
    assert sorted(df["model"]) == [3, 6, 12]
    assert len(cf.df()) == 3
    assert len(storage.cf(scale_data).expand_all().df()) == 2  # as the original


def _diamond(storage: Storage) -> Any:
    """The original's ``test_cfs.py::test_merge`` graph: x -> inc -> y -> (add | mul) -> final."""

    @op(output_names=["y"])
    def inc(x):
        return x + 1

    @op(output_names=["z"])
    def add(x, y):
        return x + y

    @op(output_names=["w"])
    def mul(x, y):
        return x * y

    @op(output_names=["v"])
    def final(t):
        return t**2

    with storage:
        for x in range(10):
            y = inc(x)
            final(add(x, y) if x < 5 else mul(x, y))
    return storage.cf(final).expand_all()


def test_merge_vars_merges_subsets_and_equal_variables(storage: Storage) -> None:
    cf = _diamond(storage)
    assert len(cf.vnames) == 6
    merged = cf.merge_vars()
    assert merged.vnames == {"x", "y", "t", "v"}
    assert merged.get_graph_desc().splitlines()[0] == "y@y = inc(x=x)"
    df = merged.df(include_calls=False)
    assert rows(df, ["x", "y", "t", "v"]) == {
        (
            x,
            x + 1,
            (x + x + 1) if x < 5 else x * (x + 1),
            ((x + x + 1) if x < 5 else x * (x + 1)) ** 2,
        )
        for x in range(10)
    }
    assert len(cf.vnames) == 6  # the original frame is unchanged
    assert merged.merge_vars().vnames == merged.vnames  # a fixed point


def test_two_arguments_with_equal_values_stay_two_variables(storage: Storage) -> None:
    @op
    def make(seed=0):
        return [seed]

    @op
    def fit(d, n_estimators=1, max_depth=5):
        return len(d) * n_estimators

    @op
    def evaluate(m):
        return m + 1

    with storage:
        d = make()
        for n in [5, 2]:
            evaluate(fit(d, n_estimators=n))  # n_estimators=5 holds max_depth's value
    cf = storage.cf(evaluate).expand_back(recursive=True)
    assert "fit(d=d, max_depth=max_depth, n_estimators=n_estimators)" in cf.get_graph_desc()
    df = cf.df(include_calls=False)
    assert rows(df, ["n_estimators", "max_depth", "m", "var_0"]) == {(5, 5, 5, 6), (2, 5, 2, 3)}


def test_unnamed_outputs_are_numbered_across_the_frame(storage: Storage) -> None:
    @op
    def fit(x):
        return x, 2 * x

    @op
    def evaluate(m):
        return m + 1

    with storage:
        m, _ = fit(1)
        evaluate(m)
    cf = storage.cf(fit).expand_all()
    assert cf.get_graph_desc().splitlines() == [
        "var_0@output_0, var_1@output_1 = fit(x=x)",
        "var_2@output_0 = evaluate(m=var_0)",
    ]
    renamed = cf.rename(vars={"var_0": "model", "var_2": "score"})
    assert rows(renamed.df(include_calls=False), ["x", "model", "var_1", "score"]) == {(1, 1, 2, 2)}


def test_calls_and_refs_are_dicts_by_history_id(storage: Storage) -> None:
    with storage:
        for x in range(3):
            split(X=x)
    cf = storage.cf(split)
    # 9 refs: X in 0..2, a = X and b = X + 1 of each call (one value, several histories)
    assert len(cf.calls) == 3 and len(cf.refs) == 9
    for hid, call in cf.calls.items():
        assert call.hid == hid and call.op.name == "split"
    for hid, ref in cf.refs.items():
        assert ref.hid == hid
    assert sorted(storage.unwrap(ref) for ref in cf.refs.values()) == [0, 0, 1, 1, 1, 2, 2, 2, 3]
    some = next(iter(cf.refs))
    assert some in cf.refs and cf.refs[some].hid == some
    assert "0" * 32 not in cf.refs and "not an id" not in cf.refs
    with pytest.raises(KeyError):
        cf.calls["0" * 32]
    assert set(cf.calls) == {c.hid for calls in cf.calls_by_func().values() for c in calls}
