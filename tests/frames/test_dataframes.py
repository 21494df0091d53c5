"""ComputationFrame tables: ``df`` and its relatives, and deleting calls through a frame
(docs/compatibility.md §d.5, §d.9).

Rows are compared as sets of tuples (row order is arbitrary); deletions are checked by counting
the executions of a rerun.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from mandala.frames.collections import CallCollection, ValueCollection
from mandala.hashing.key_table import key_list
from mandala.imports import Call, Ref, Storage, op

# ---------------------------------------------------------------------------- helpers


def norm(value: Any) -> Any:
    """A hashable, comparable form of a df cell (missing cells become None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, Call):
        return ("call", value.op.name, value.hid)
    if isinstance(value, Ref):
        return ("ref", value.hid)
    if isinstance(value, (ValueCollection, CallCollection)):
        return (type(value).__name__, frozenset(norm(v) for v in value.values))
    if isinstance(value, (list, tuple)):
        return tuple(norm(v) for v in value)
    return value


def rows(df: pd.DataFrame, columns: list[str] | None = None) -> set[tuple]:
    columns = list(df.columns) if columns is None else columns
    return {tuple(norm(row[c]) for c in columns) for row in df.to_dict("records")}


RUNS: list[tuple] = []


def runs_of(name: str) -> list[tuple]:
    return [r[1:] for r in RUNS if r[0] == name]


@op(output_names=["y"])
def increment(x):
    RUNS.append(("increment", x))
    return x + 1


@op(output_names=["w"])
def add(y, z):
    RUNS.append(("add", y, z))
    return y + z


def reference_pipeline(storage: Storage) -> None:
    """docs/compatibility.md §d.3: increment over 0..4, add(y, x) for even x."""
    with storage:
        for x in range(5):
            y = increment(x)
            if x % 2 == 0:
                add(y=y, z=x)


REFERENCE_ROWS = {(0, 1, 1), (1, 2, None), (2, 3, 5), (3, 4, None), (4, 5, 9)}


@pytest.fixture
def forward(storage: Storage) -> Any:
    """``storage.cf(increment).expand_forward()`` over the reference pipeline."""
    reference_pipeline(storage)
    return storage.cf(increment).expand_forward()


# ---------------------------------------------------------------------------- df


def test_reference_example_without_calls(forward: Any) -> None:
    df = forward.df(include_calls=False)
    assert list(df.columns) == ["x", "y", "w"]
    assert rows(df) == REFERENCE_ROWS


def test_calls_are_call_cells_and_none_where_missing(forward: Any) -> None:
    df = forward.df()
    assert list(df.columns) == ["x", "increment", "y", "add", "w"]
    for row in df.to_dict("records"):
        assert isinstance(row["increment"], Call) and row["increment"].op.name == "increment"
        assert row["increment"].outputs["y"].hid is not None
        if row["x"] % 2 == 0:
            assert isinstance(row["add"], Call) and row["add"].op.name == "add"
        else:
            assert row["add"] is None
    assert rows(df, ["x", "y", "w"]) == REFERENCE_ROWS


def test_values_refs_gives_refs(storage: Storage, forward: Any) -> None:
    df = forward.df(values="refs", include_calls=False)
    for column in ("x", "y", "w"):
        cells = [c for c in df[column] if norm(c) is not None]
        assert cells and all(isinstance(c, Ref) for c in cells)
    unwrapped = {
        tuple(None if norm(c) is None else storage.unwrap(c) for c in row)
        for row in df[["x", "y", "w"]].itertuples(index=False)
    }
    assert unwrapped == REFERENCE_ROWS
    with pytest.raises(ValueError):
        forward.df(values="bogus")


def test_lazy_vars_stay_refs(storage: Storage, forward: Any) -> None:
    df = forward.df(lazy_vars=["y"], include_calls=False)
    assert all(isinstance(c, Ref) for c in df["y"])
    assert {storage.unwrap(c) for c in df["y"]} == {1, 2, 3, 4, 5}
    assert set(df["x"]) == {0, 1, 2, 3, 4}


def test_one_node_gives_its_values(forward: Any) -> None:
    # the original returned Refs here (docs/compatibility.md §d.5 bug); values are intended
    df = forward.df("y")
    assert list(df.columns) == ["y"]
    assert sorted(df["y"]) == [1, 2, 3, 4, 5]
    assert sorted(forward.df("w")["w"]) == [1, 5, 9]


def test_two_nodes_give_their_joined_values(forward: Any) -> None:
    df = forward.df("y", "w")
    assert list(df.columns) == ["y", "w"]
    assert rows(df) == {(1, 1), (2, None), (3, 5), (4, None), (5, 9)}


def test_an_empty_frame_gives_an_empty_table(storage: Storage) -> None:
    reference_pipeline(storage)
    for cf in (storage.cf([]), storage.cf({})):
        df = cf.df()
        assert isinstance(df, pd.DataFrame) and len(df) == 0

    @op
    def never_called(x):
        return x

    df = storage.cf(never_called).df()
    assert len(df) == 0


def test_a_frame_without_sink_elements_gives_an_empty_table(forward: Any) -> None:
    consumed = forward[["x", "increment"]]  # every x is consumed, and y is not there
    df = consumed.df()
    assert isinstance(df, pd.DataFrame) and len(df) == 0
    assert len(consumed.df(include_calls=False)) == 0


def test_columns_follow_the_graph_not_the_alphabet(storage: Storage) -> None:
    @op(output_names=["m"])
    def zeta(a):
        return a + 1

    @op(output_names=["b"])
    def alpha(m):
        return m * 2

    with storage:
        alpha(zeta(1))
    cf = storage.cf(alpha).expand_back(recursive=True)
    assert list(cf.df().columns) == ["a", "zeta", "m", "alpha", "b"]
    assert list(cf.df(include_calls=False).columns) == ["a", "m", "b"]
    assert rows(cf.df(include_calls=False)) == {(1, 2, 4)}


def test_eval_is_df_with_calls(forward: Any) -> None:
    table = forward.eval()
    assert list(table.columns) == list(forward.df().columns)
    assert rows(table) == rows(forward.df())
    assert sorted(forward.eval("y")["y"]) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------------- related tables


def test_history_df_has_one_row_per_ref(storage: Storage, forward: Any) -> None:
    hist = forward.get_history_df("w")
    assert len(hist) == 3
    assert list(hist.columns) == ["x", "increment", "y", "add", "w"]
    assert all(isinstance(c, Ref) for c in hist["w"])
    assert all(isinstance(c, Call) for c in hist["add"])
    values = {tuple(storage.unwrap(r[c]) for c in ("x", "y", "w")) for _, r in hist.iterrows()}
    assert values == {(0, 1, 1), (2, 3, 5), (4, 5, 9)}
    no_calls = forward.get_history_df("y", include_calls=False)
    assert list(no_calls.columns) == ["x", "y"]
    assert len(no_calls) == 5


def test_joint_history_df_joins_the_histories(storage: Storage, forward: Any) -> None:
    joint = forward.get_joint_history_df(["y", "w"])
    assert list(joint.columns) == ["x", "increment", "y", "add", "w"]
    assert rows(forward.eval_df(joint), ["x", "y", "w"]) == REFERENCE_ROWS
    assert all(isinstance(c, Ref) for c in joint["x"])
    no_calls = forward.get_joint_history_df(["y", "w"], include_calls=False)
    assert list(no_calls.columns) == ["x", "y", "w"]


def test_func_table_has_one_row_per_call(storage: Storage, forward: Any) -> None:
    table = forward.get_func_table("add")
    assert set(table.columns) == {"y", "z", "w"}
    assert len(table) == 3
    assert all(isinstance(c, Ref) for col in table.columns for c in table[col])
    got = {tuple(storage.unwrap(r[c]) for c in ("y", "z", "w")) for _, r in table.iterrows()}
    assert got == {(1, 0, 1), (3, 2, 5), (5, 4, 9)}
    with pytest.raises(ValueError, match="not found"):
        forward.get_func_table("nope")


def test_eval_df_unwraps_refs(forward: Any) -> None:
    refs = forward.df(values="refs")
    assert rows(forward.eval_df(refs)) == rows(forward.df())
    kept = forward.eval_df(refs, skip_cols=["x"])
    assert all(isinstance(c, Ref) for c in kept["x"])
    assert set(kept["y"]) == {1, 2, 3, 4, 5}
    skipping = forward.eval_df(refs, skip_calls=True)
    assert rows(skipping, ["x", "y", "w"]) == REFERENCE_ROWS


def test_attach_loads_every_value_of_the_frame(storage: Storage, forward: Any) -> None:
    requested: list[bytes] = []
    original = forward.source.load_value_array

    def spy(keys: Any, *rest: Any) -> Any:
        requested.extend(key_list(keys))
        return original(keys, *rest)

    forward.source.load_value_array = spy
    try:
        assert forward.attach() is None
    finally:
        del forward.source.load_value_array
    wanted = {ref.content_key for refs in forward.refs_by_var().values() for ref in refs}
    assert wanted <= set(requested)
    assert len(wanted) == 7  # the distinct values of x, y and w: 0..5 and 9


# ---------------------------------------------------------------------------- deletion (§d.9)


def test_delete_calls_drops_the_frames_calls_and_dependents(storage: Storage) -> None:
    reference_pipeline(storage)
    storage.cf(increment).delete_calls()  # add depends on increment: it goes too
    assert len(storage.cf(increment).df()) == 0
    assert len(storage.cf(add).df()) == 0
    RUNS.clear()
    reference_pipeline(storage)
    assert sorted(runs_of("increment")) == [(x,) for x in range(5)]
    assert sorted(runs_of("add")) == [(1, 0), (3, 2), (5, 4)]


def test_delete_calls_keeps_what_it_does_not_depend_on(storage: Storage) -> None:
    reference_pipeline(storage)
    storage.cf(add).delete_calls()
    assert len(storage.cf(increment).df()) == 5
    RUNS.clear()
    reference_pipeline(storage)
    assert runs_of("increment") == []
    assert sorted(runs_of("add")) == [(1, 0), (3, 2), (5, 4)]


def test_delete_calls_from_df_deletes_the_calls_in_its_cells(storage: Storage, forward) -> None:
    df = forward.df()
    forward.delete_calls_from_df(df[df["x"] == 0])
    assert set(storage.cf(increment).df()["x"]) == {1, 2, 3, 4}
    assert set(storage.cf(add).df()["z"]) == {2, 4}
    RUNS.clear()
    reference_pipeline(storage)
    assert runs_of("increment") == [(0,)]
    assert runs_of("add") == [(1, 0)]


TRAINED: list[tuple] = []


@op(output_names=["data"])
def make_data(seed):
    return seed * 10


@op(output_names=["model"])
def train_model(data, lr):
    TRAINED.append((data, lr))
    return data * lr


@op(output_names=["score"])
def evaluate(model, data):
    TRAINED.append(("evaluate", model))
    return model - data


def _ml(storage: Storage) -> None:
    with storage:
        for seed in (1, 2):
            data = make_data(seed)
            for lr in (0.5, 2.0, 4.0):
                model = train_model(data, lr)
                if lr < 4.0:
                    evaluate(model, data)


def test_drop_calls_with_a_column_of_calls(storage: Storage) -> None:
    """The docs' idiom: ``storage.drop_calls(df.query(...).train_model, delete_dependents=True)``."""
    _ml(storage)
    df = storage.cf(train_model).expand_all().df()
    assert len(df) == 6
    storage.drop_calls(df.query("lr > 1").train_model, delete_dependents=True)
    left = storage.cf(train_model).expand_all().df(include_calls=False)
    assert rows(left, ["seed", "lr", "score"]) == {(1, 0.5, -5.0), (2, 0.5, -10.0)}
    TRAINED.clear()
    _ml(storage)
    assert sorted(t for t in TRAINED if t[0] != "evaluate") == [
        (10, 2.0),
        (10, 4.0),
        (20, 2.0),
        (20, 4.0),
    ]
    assert sorted(t[1] for t in TRAINED if t[0] == "evaluate") == [20.0, 40.0]


def test_drop_calls_skips_the_empty_cells_of_a_column(storage: Storage) -> None:
    _ml(storage)
    df = storage.cf(train_model).expand_all().df()
    assert df["evaluate"].isna().sum() == 2  # the lr=4 models were not evaluated
    storage.drop_calls(df["evaluate"], delete_dependents=True)
    assert len(storage.cf(evaluate).df()) == 0
    assert len(storage.cf(train_model).df()) == 6
