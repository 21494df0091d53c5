"""ComputationFrame core: construction, naming and expansion on small hand-checked graphs
(docs/compatibility.md §d.1-d.4, §c).

Every graph is built with real ops in a real storage; rows are compared as sets of tuples (row
order is arbitrary), and executions are counted, never mocked.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from mandala.frames.collections import CallCollection, ValueCollection
from mandala.imports import Call, MDict, MList, Ref, Storage, op

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
    if isinstance(value, dict):
        return tuple(sorted((k, norm(v)) for k, v in value.items()))
    return value


def rows(df: Any, columns: list[str] | None = None) -> set[tuple]:
    """The rows of ``df`` (restricted to ``columns``, in that order) as a set of tuples."""
    columns = list(df.columns) if columns is None else columns
    return {tuple(norm(row[c]) for c in columns) for row in df.to_dict("records")}


def n_calls(cf: Any) -> int:
    return len({k for keys in cf.fs.values() for k in keys})


def n_refs(cf: Any) -> int:
    return len({k for keys in cf.vs.values() for k in keys})


# ---------------------------------------------------------------------------- the reference ops

RUNS: list[tuple] = []


@op(output_names=["y"])
def increment(x):
    RUNS.append(("increment", x))
    return x + 1


@op(output_names=["w"])
def add(y, z):
    RUNS.append(("add", y, z))
    return y + z


def reference_pipeline(storage: Storage) -> dict[str, list[Ref]]:
    """docs/compatibility.md §d.3: increment over 0..4, add(y, x) for even x."""
    ys, ws = [], []
    with storage:
        for x in range(5):
            y = increment(x)
            ys.append(y)
            if x % 2 == 0:
                ws.append(add(y=y, z=x))
    return {"ys": ys, "ws": ws}


# ---------------------------------------------------------------------------- construction


def test_cf_of_an_op_has_one_function_node_and_its_variables(storage: Storage) -> None:
    reference_pipeline(storage)
    cf = storage.cf(increment)
    assert cf.vnames == {"x", "y"}
    assert cf.fnames == {"increment"}
    assert n_calls(cf) == 5
    assert n_refs(cf) == 10
    assert cf.edges() == [("increment", "y", "y"), ("x", "increment", "x")]
    assert rows(cf.df(include_calls=False), ["x", "y"]) == {(x, x + 1) for x in range(5)}


def test_cf_of_a_ref_is_one_variable_named_v(storage: Storage) -> None:
    refs = reference_pipeline(storage)
    cf = storage.cf(refs["ws"][0])
    assert cf.vnames == {"v"} and cf.fnames == set()
    assert cf.sets["v"] == {refs["ws"][0].hid}


def test_cf_of_refs_and_of_history_ids_agree(storage: Storage) -> None:
    refs = reference_pipeline(storage)
    by_refs = storage.cf(refs["ws"])
    by_hids = storage.cf([w.hid for w in refs["ws"]])
    assert by_refs.vnames == by_hids.vnames == {"v"}
    assert by_refs.sets == by_hids.sets == {"v": {w.hid for w in refs["ws"]}}
    assert rows(by_hids.df(), ["v"]) == {(1,), (5,), (9,)}


def test_cf_of_a_dict_names_the_variables_and_leaves_the_dict_alone(storage: Storage) -> None:
    refs = reference_pipeline(storage)
    ys = refs["ys"]
    source = {"a": refs["ws"][0], "b": ys}
    before = {"a": source["a"], "b": list(ys)}
    cf = storage.cf(source)
    assert cf.vnames == {"a", "b"}
    assert cf.sets == {"a": {refs["ws"][0].hid}, "b": {y.hid for y in ys}}
    assert source.keys() == before.keys()
    assert source["a"] is before["a"]
    assert source["b"] is ys and ys == before["b"]


def test_the_same_ref_may_sit_in_two_variables(storage: Storage) -> None:
    refs = reference_pipeline(storage)
    y = refs["ys"][0]
    cf = storage.cf({"a": [y], "b": [y]})
    assert cf.sets == {"a": {y.hid}, "b": {y.hid}}


@pytest.mark.parametrize("as_dict", [False, True])
def test_duplicate_refs_in_one_variable_raise(storage: Storage, as_dict: bool) -> None:
    refs = reference_pipeline(storage)
    y = refs["ys"][0]
    with pytest.raises(ValueError, match="already exists"):
        storage.cf({"a": [y, y]} if as_dict else [y, y])


def test_cf_of_something_else_raises(storage: Storage) -> None:
    reference_pipeline(storage)
    with pytest.raises(TypeError):
        storage.cf(3)
    with pytest.raises(ValueError):
        storage.cf([1, 2])


def test_unnamed_outputs_become_var_i(storage: Storage) -> None:
    @op
    def two(a, b):
        return a + b, a - b

    with storage:
        two(5, 3)
    cf = storage.cf(two)
    assert cf.vnames == {"a", "b", "var_0", "var_1"}
    assert set(cf.edges()) == {
        ("a", "two", "a"),
        ("b", "two", "b"),
        ("two", "var_0", "output_0"),
        ("two", "var_1", "output_1"),
    }
    assert rows(cf.df(include_calls=False), ["a", "b", "var_0", "var_1"]) == {(5, 3, 8, 2)}


def test_underscored_names_with_digits_are_not_mangled(storage: Storage) -> None:
    @op(output_names=["x_train_1", "out_val_2"])
    def split_data(x_train, y_val_3):
        return x_train * 2, y_val_3 * 2

    with storage:
        split_data(1, 2)
    cf = storage.cf(split_data)
    assert cf.vnames == {"x_train", "y_val_3", "x_train_1", "out_val_2"}
    df = cf.df(include_calls=False)
    assert rows(df, ["x_train", "y_val_3", "x_train_1", "out_val_2"]) == {(1, 2, 2, 4)}


def test_a_name_already_taken_gets_a_numbered_suffix(storage: Storage) -> None:
    @op
    def ident(var_0):
        return var_0

    with storage:
        ident(7)
    cf = storage.cf(ident)
    # the unnamed output takes the first free var_<i> (as the original): var_0 is the input's
    assert cf.vnames == {"var_0", "var_1"}
    assert ("ident", "var_1", "output_0") in cf.edges()
    assert cf.df(include_calls=False).to_dict("records") == [{"var_0": 7, "var_1": 7}]


def test_a_named_output_taken_gets_a_numbered_suffix(storage: Storage) -> None:
    @op(output_names=["y"])
    def inc(x):
        return x + 1

    @op(output_names=["y"])
    def dbl(x):
        return 2 * x

    with storage:
        dbl(inc(1))
    cf = storage.cf(inc).expand_forward()
    assert cf.vnames == {"x", "y", "y_0"}
    assert ("dbl", "y_0", "y") in cf.edges()


def test_elements_of_a_built_list_are_one_variable_elts(storage: Storage) -> None:
    @op
    def total(nums: MList[int]) -> int:
        return sum(nums)

    with storage:
        total([1, 2, 3])
    cf = storage.cf(total).expand_back()
    assert cf.vnames == {"elts", "nums", "var_0"}
    assert ("elts", "__make_list__", "elts") in cf.edges()
    assert len(cf.vs["elts"]) == 3


def test_cf_inside_an_open_block_commits_the_pending_calls_first(tmp_path) -> None:
    db = tmp_path / "pending.db"
    storage = Storage(db)
    RUNS.clear()
    with storage:
        ys = [increment(x) for x in range(3)]
        cf = storage.cf(increment)
        assert n_calls(cf) == 3
        assert storage.cache_stats()["calls"]["pending"] == 0
        assert rows(cf.df(include_calls=False), ["x", "y"]) == {(0, 1), (1, 2), (2, 3)}
        again = storage.cf(ys[0]).expand_back()
        assert again.fnames == {"increment"}
    # another session on the file sees them: they were committed, and nothing reruns
    other = Storage(db)
    assert n_calls(other.cf(increment)) == 3
    with other:
        increment(0)
    assert [r[1] for r in RUNS if r[0] == "increment"] == [0, 1, 2]


# ---------------------------------------------------------------------------- expansion (§d.4)


def test_expand_all_from_increment_reaches_all_eight_calls(storage: Storage) -> None:
    reference_pipeline(storage)
    cf = storage.cf(increment).expand_all()
    assert n_calls(cf) == 8
    assert cf.fnames == {"increment", "add"}
    assert set(cf.edges()) == {
        ("x", "increment", "x"),
        ("increment", "y", "y"),
        ("y", "add", "y"),
        ("x", "add", "z"),
        ("add", "w", "w"),
    }
    cf._check()


def test_expand_all_from_add_reaches_six_calls(storage: Storage) -> None:
    reference_pipeline(storage)
    cf = storage.cf(add).expand_all()
    # increment(1) and increment(3) are not connected to any add call
    assert n_calls(cf) == 6
    assert rows(cf.df(include_calls=False), ["z", "y", "w"]) == {(0, 1, 1), (2, 3, 5), (4, 5, 9)}
    cf._check()


def test_expand_back_of_add_reuses_the_variable_z(storage: Storage) -> None:
    reference_pipeline(storage)
    cf = storage.cf(add).expand_back()
    # graph text: "y@y = increment(x=z)" and "w@w = add(y=y, z=z)"
    assert cf.vnames == {"y", "z", "w"}
    assert set(cf.edges()) == {
        ("z", "increment", "x"),
        ("increment", "y", "y"),
        ("y", "add", "y"),
        ("z", "add", "z"),
        ("add", "w", "w"),
    }
    desc = cf.get_graph_desc().splitlines()
    assert desc == ["y@y = increment(x=z)", "w@w = add(y=y, z=z)"]
    cf._check()


@op(output_names=["doubled"])
def double(u):
    RUNS.append(("double", u))
    return 2 * u


def test_expand_back_recursive_from_a_final_ref_recovers_its_history(storage: Storage) -> None:
    with storage:
        w = add(y=increment(increment(3)), z=double(10))
    cf = storage.cf(w).expand_back(recursive=True)
    assert cf.fnames == {"increment", "add", "double"}
    assert n_calls(cf) == 4  # increment twice, double, add
    df = cf.df(include_calls=False)
    assert len(df) == 1
    row = df.to_dict("records")[0]
    assert row["v"] == 25
    assert row["u"] == 10 and row["z"] == 20  # variables are named after edge labels
    # the chain increment(increment(3)) runs through one variable pair twice (a cycle in the
    # variable graph): its values come as a collection
    assert {3, 4, 5} <= set(_flatten(row.values()))
    # without recursion, only the direct creator is added
    one = storage.cf(w).expand_back()
    assert one.fnames == {"add"}
    assert n_calls(one) == 1


def _flatten(cells: Any) -> list:
    out = []
    for cell in cells:
        if isinstance(cell, ValueCollection):
            out.extend(cell.values)
        else:
            out.append(cell)
    return out


def test_expand_back_only_expands_the_given_variables(storage: Storage) -> None:
    with storage:
        for x in range(3):
            add(y=increment(x), z=double(x))
    cf = storage.cf(add)
    assert cf.expand_back(varnames="y").fnames == {"add", "increment"}
    assert cf.expand_back(varnames=["z"]).fnames == {"add", "double"}
    assert cf.expand_back(varnames=["y", "z"]).fnames == {"add", "increment", "double"}
    assert cf.expand_back(varnames="w").fnames == {"add"}  # w's creators are already there
    with pytest.raises(ValueError, match="not found"):
        cf.expand_back(varnames="nope")


def test_skip_existing_leaves_variables_that_already_have_creators(storage: Storage) -> None:
    with storage:
        w0 = add(y=increment(0), z=100)
        w1 = add(y=double(1), z=200)
    y_inc = storage.get_ref_creator(w0).inputs["y"]
    # step 1: y gets its creator increment; step 2: expanding w reuses y and grows it with
    # double's output, whose creator is not in the frame yet
    cf = storage.cf({"w": [w0, w1], "y": [y_inc]}).expand_back(varnames="y")
    cf = cf.expand_back(varnames="w")
    assert cf.vs["y"] == {y_inc.history_key, storage.get_ref_creator(w1).inputs["y"].history_key}
    assert "double" not in cf.fnames
    skipped = cf.expand_back(varnames="y", skip_existing=True)
    assert skipped.fnames == cf.fnames and skipped.vs == cf.vs
    full = cf.expand_back(varnames="y")
    assert "double" in full.fnames
    full._check()


def test_reuse_existing_false_creates_new_nodes(storage: Storage) -> None:
    refs = reference_pipeline(storage)
    cf = storage.cf(add).expand_back(reuse_existing=False)
    assert cf.vnames == {"x", "y", "z", "w"}
    assert ("x", "increment", "x") in cf.edges()
    assert cf.vs["x"] == cf.vs["z"]
    cf._check()
    ys = refs["ys"]
    two = storage.cf({"a": [ys[0]], "b": [ys[2]]}).expand_back(reuse_existing=False)
    assert two.fnames == {"increment", "increment_0"}
    assert two.vnames == {"a", "b", "x", "x_0"}
    two._check()


def _two_variables_one_creator(storage: Storage) -> Any:
    ys = reference_pipeline(storage)["ys"]
    return storage.cf({"a": [ys[0]], "b": [ys[2]]}).expand_back()


def _overlapping_variables(storage: Storage) -> Any:
    ys = reference_pipeline(storage)["ys"]
    return storage.cf({"a": [ys[0]], "b": [ys[0], ys[2]]}).expand_back()


def _overlapping_variables_stepwise(storage: Storage) -> Any:
    ys = reference_pipeline(storage)["ys"]
    cf = storage.cf({"a": [ys[0]], "b": [ys[0], ys[2]]})
    return cf.expand_back(varnames="a").expand_back(varnames="b")


def _chain_of_one_op(storage: Storage) -> Any:
    with storage:
        w = add(y=increment(increment(3)), z=double(10))
    return storage.cf(w).expand_back(recursive=True)


def _feedback_loop(storage: Storage) -> Any:
    with storage:
        x = 1
        for _ in range(3):
            x = scale(x)
    return storage.cf(x).expand_back(recursive=True)


def _feedback_loop_expand_all(storage: Storage) -> Any:
    _feedback_loop(storage)
    return storage.cf(scale).expand_all()


@pytest.mark.parametrize(
    "build",
    [
        _two_variables_one_creator,
        _overlapping_variables,
        _overlapping_variables_stepwise,
        _chain_of_one_op,
        _feedback_loop,
        _feedback_loop_expand_all,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_expansion_that_reuses_a_function_node_keeps_the_invariant(
    storage: Storage, build: Any
) -> None:
    """Several variables on one edge label of a node: every call of the node must have its
    refs in each of them (docs/compatibility.md §d.1 invariant)."""
    build(storage)._check()


def test_inplace_expansion_returns_none_and_mutates(storage: Storage) -> None:
    reference_pipeline(storage)
    cf = storage.cf(add)
    copy = cf.expand_back()
    assert cf.fnames == {"add"}  # the default copies
    assert cf.expand_back(inplace=True) is None
    assert cf.fnames == {"add", "increment"}
    assert cf.vs == copy.vs and cf.fs == copy.fs
    assert cf.expand_forward(inplace=True) is None
    assert cf.expand_all(inplace=True) is None
    assert n_calls(cf) == 6


def test_expand_forward_adds_consumers(storage: Storage) -> None:
    reference_pipeline(storage)
    cf = storage.cf(increment).expand_forward()
    assert cf.fnames == {"increment", "add"}
    assert n_calls(cf) == 8
    cf._check()


# ---------------------------------------------------------------------------- feedback loops


@op
def scale(x):
    RUNS.append(("scale", x))
    return x * 2


def test_a_feedback_loop_is_a_cycle_with_one_row_per_final_element(storage: Storage) -> None:
    finals = []
    with storage:
        for start in (1, 10):
            x = start
            for _ in range(3):
                x = scale(x)
            finals.append(x)
    cf = storage.cf(finals).expand_back(recursive=True)
    assert cf.fnames == {"scale"}
    assert n_calls(cf) == 6
    # a variable both feeds scale and is fed by it
    assert any(
        ("scale", v, "output_0") in cf.edges() and (v, "scale", "x") in cf.edges()
        for v in cf.vnames
    )
    df = cf.df()
    assert len(df) == 2  # one per final element
    assert set(df["v"]) == {8, 80}
    by_final = {row["v"]: row for row in df.to_dict("records")}
    for start, final in ((1, 8), (10, 80)):
        row = by_final[final]
        assert isinstance(row["scale"], CallCollection) and len(row["scale"]) == 3
        loop_values = set(_flatten(v for k, v in row.items() if k in cf.vnames and k != "v"))
        assert {start, 2 * start, 4 * start} <= loop_values
    whole = storage.cf(scale).expand_all()
    table = whole.df(include_calls=False)
    assert len(table) == 2
    for row in table.to_dict("records"):
        values = set(_flatten(row.values()))
        assert 8 in values or 80 in values


# ---------------------------------------------------------------------------- branching, merging

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
    return model - data


def ml_pipeline(storage: Storage, seeds=(1, 2), lrs=(0.5, 2.0), evaluate_all: bool = True):
    with storage:
        for seed in seeds:
            data = make_data(seed)
            for lr in lrs:
                model = train_model(data, lr)
                if evaluate_all or lr == lrs[0]:
                    evaluate(model, data)


def test_branching_and_merging_give_one_row_per_final_call(storage: Storage) -> None:
    ml_pipeline(storage)
    cf = storage.cf(evaluate).expand_back(recursive=True)
    cf._check()
    assert cf.fnames == {"make_data", "train_model", "evaluate"}
    assert cf.vnames == {"seed", "data", "lr", "model", "score"}
    # the dataset feeds both train_model and evaluate
    assert {("data", "train_model", "data"), ("data", "evaluate", "data")} <= set(cf.edges())
    expected = {
        (s, s * 10, lr, s * 10 * lr, s * 10 * lr - s * 10) for s in (1, 2) for lr in (0.5, 2.0)
    }
    assert rows(cf.df(include_calls=False), ["seed", "data", "lr", "model", "score"]) == expected


def test_unevaluated_branches_show_as_missing_cells(storage: Storage) -> None:
    ml_pipeline(storage, evaluate_all=False)
    cf = storage.cf(train_model).expand_all()
    got = rows(cf.df(include_calls=False), ["seed", "lr", "model", "score"])
    assert got == {
        (1, 0.5, 5.0, -5.0),
        (1, 2.0, 20.0, None),
        (2, 0.5, 10.0, -10.0),
        (2, 2.0, 40.0, None),
    }


# ---------------------------------------------------------------------------- collections (§c)


@op
def average(nums: MList[int]) -> float:
    return sum(nums) / len(nums)


def test_aggregating_a_list_gives_one_row_with_a_value_collection(storage: Storage) -> None:
    with storage:
        average([1, 2, 3, 4, 5])
    cf = storage.cf(average).expand_all()
    cf._check()
    assert cf.vnames == {"elts", "nums", "var_0"}
    df = cf.df()
    assert len(df) == 1
    row = df.to_dict("records")[0]
    assert isinstance(row["elts"], ValueCollection)
    assert sorted(row["elts"].values) == [1, 2, 3, 4, 5]
    assert row["nums"] == [1, 2, 3, 4, 5]
    assert row["var_0"] == 3.0
    assert isinstance(row["__make_list__"], Call) and row["__make_list__"].op.name == (
        "__make_list__"
    )
    assert isinstance(row["average"], Call)


def test_a_list_output_gives_one_row_per_element(storage: Storage) -> None:
    @op
    def spread(x) -> MList[int]:
        return [x, x + 1, x + 2]

    with storage:
        spread(10)
    cf = storage.cf(spread).expand_all()
    cf._check()
    assert "__list_getitem__" in cf.fnames
    assert rows(cf.df(include_calls=False), ["x", "var_0", "list_item"]) == {
        (10, (10, 11, 12), v) for v in (10, 11, 12)
    }


def test_dict_input_and_output(storage: Storage) -> None:
    @op
    def dsum(d: MDict[str, int]) -> int:
        return sum(d.values())

    @op
    def halves(x) -> MDict[str, int]:
        return {"a": x, "b": 2 * x}

    with storage:
        dsum({"p": 1, "q": 2})
        halves(3)
    into = storage.cf(dsum).expand_all()
    into._check()
    assert "__make_dict__" in into.fnames
    df = into.df(include_calls=False)
    assert len(df) == 1
    row = df.to_dict("records")[0]
    assert row["d"] == {"p": 1, "q": 2} and row["var_0"] == 3
    assert sorted(_flatten([row[c] for c in df.columns if c not in ("d", "var_0")])) == [1, 2]
    out = storage.cf(halves).expand_all()
    out._check()
    assert rows(out.df(include_calls=False), ["x", "var_0", "dict_value"]) == {
        (3, (("a", 3), ("b", 6)), 3),
        (3, (("a", 3), ("b", 6)), 6),
    }
