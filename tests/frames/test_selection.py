"""ComputationFrame selection: reachability, node selection, dropping, renaming, merging,
filters and set algebra (docs/compatibility.md §d.6-d.7, with the bugs marked there fixed).

Graphs are built with real ops in a real storage and checked by the exact sets of values (or
history ids) each node holds; every frame an operation returns must pass ``_check()``.
Hypothesis draws sub-frames of one small stored computation to check the algebraic laws.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mandala.imports import Storage, op

# ---------------------------------------------------------------------------- ops


@op(output_names=["y"])
def inc(x):
    return x + 1


@op(output_names=["z"])
def dbl(y):
    return 2 * y


@op(output_names=["w"])
def add(y, z):
    return y + z


@op(output_names=["lo", "hi"])
def split(w):
    return w - 1, w + 1


@op(output_names=["s"])
def scale(v):
    return 2 * v


@op(output_names=["name"])
def label(x):
    return f"n{x}"


@op(output_names=["t"])
def total(xs):
    return sum(xs)


# ---------------------------------------------------------------------------- helpers


def valid(cf: Any) -> Any:
    cf._check()
    return cf


def frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def values(storage: Storage, cf: Any) -> dict[str, set]:
    """``{variable: set of values}`` (lists as tuples)."""
    return {v: {frozen(storage.unwrap(r)) for r in refs} for v, refs in cf.refs_by_var().items()}


def calls(storage: Storage, cf: Any) -> dict[str, set[tuple]]:
    """``{function node: {tuple of the call's input values, by sorted input name}}``."""
    return {
        f: {tuple(frozen(storage.unwrap(c.inputs[k])) for k in sorted(c.inputs)) for c in cs}
        for f, cs in cf.calls_by_func().items()
    }


def elements(cf: Any) -> set[tuple[str, str]]:
    return {(node, hid) for node, hids in cf.sets.items() for hid in hids}


def call_hids(cf: Any) -> set[str]:
    return {hid for f in cf.fnames for hid in cf.sets[f]}


def chain(storage: Storage) -> Any:
    """inc over 0..3, then dbl over the first two results: ``x -> inc -> y -> dbl -> z``."""
    with storage:
        ys = [inc(x) for x in range(4)]
        for y in ys[:2]:
            dbl(y)
    return valid(storage.cf(inc).expand_forward())


def rich(storage: Storage) -> Any:
    """``x -> inc -> y -> dbl -> z; (y, z) -> add -> w -> split -> (lo, hi)``."""
    with storage:
        for x in range(6):
            y = inc(x)
            if x % 2 == 0:
                w = add(y, dbl(y))
                if x % 4 == 0:
                    split(w)
    return valid(storage.cf(inc).expand_all())


def with_parasite(storage: Storage) -> Any:
    """``add`` also consumes a value (7) that no call of the frame made."""
    with storage:
        for x in range(3):
            y = inc(x)
            add(y, dbl(y))
        add(inc(10), 7)
    return valid(storage.cf(add).expand_back(recursive=True))


def feedback_loop(storage: Storage) -> Any:
    """``s -> scale -> s``: 1 scaled three times, as a cycle of the graph."""
    with storage:
        s = 1
        for _ in range(3):
            s = scale(s)
    cf = storage.cf(scale)  # v -> scale -> s
    return valid(cf.merge_into("v", "s"))


# ---------------------------------------------------------------------------- reachability


def test_upstream_keeps_only_the_calls_that_led_to_the_node(storage: Storage) -> None:
    cf = chain(storage)
    up = valid(cf.upstream("z"))
    assert up.nodes == cf.nodes
    assert calls(storage, up) == {"inc": {(0,), (1,)}, "dbl": {(1,), (2,)}}
    assert values(storage, up) == {"x": {0, 1}, "y": {1, 2}, "z": {2, 4}}
    assert cf.fs["inc"] and len(cf.fs["inc"]) == 4  # the original is untouched


def test_upstream_of_a_function_node_and_of_several_nodes(storage: Storage) -> None:
    cf = rich(storage)
    up = valid(cf.upstream("dbl"))
    assert up.nodes == {"x", "inc", "y", "dbl"}
    assert calls(storage, up)["inc"] == {(0,), (2,), (4,)}
    up2 = valid(cf.upstream("z", "lo"))
    assert up2.nodes == {"x", "inc", "y", "dbl", "z", "add", "w", "split", "lo"}
    assert values(storage, up2)["lo"] == {2, 14}
    assert cf.upstream(["z", "lo"]).sets == up2.sets


def test_upstream_strong_needs_every_output_weak_one(storage: Storage) -> None:
    with storage:
        lo, hi = split(10)
        add(lo, hi)
        lo2, _ = split(20)
        add(lo2, 100)  # split(20)'s `hi` output (21) feeds nothing
    cf = valid(storage.cf(add).expand_back(recursive=True))
    assert cf.get_graph_desc() == "y@lo, z@hi = split(w=w_0)\nw@w = add(y=y, z=z)"  # declared order
    strong = valid(cf.upstream("w"))
    assert calls(storage, strong)["split"] == {(10,)}
    assert values(storage, strong)["z"] == {11, 100}
    weak = valid(cf.upstream("w", how="weak"))
    assert calls(storage, weak)["split"] == {(10,), (20,)}
    assert values(storage, weak)["z"] == {11, 21, 100}  # completed: split(20) outputs 21 there


def test_downstream_strong_drops_calls_with_inputs_from_elsewhere(storage: Storage) -> None:
    cf = with_parasite(storage)
    assert values(storage, cf)["z"] == {2, 4, 6, 7}
    strong = valid(cf.downstream("x"))
    assert calls(storage, strong)["add"] == {(1, 2), (2, 4), (3, 6)}
    assert values(storage, strong)["z"] == {2, 4, 6}
    assert values(storage, strong)["w"] == {3, 6, 9}
    weak = valid(cf.downstream("x", how="weak"))
    assert calls(storage, weak)["add"] == {(1, 2), (2, 4), (3, 6), (11, 7)}
    assert values(storage, weak)["z"] == {2, 4, 6, 7}


def test_downstream_restricts_to_the_nodes_reached(storage: Storage) -> None:
    cf = rich(storage)
    down = valid(cf.downstream("w"))
    assert down.nodes == {"w", "split", "lo", "hi"}
    assert values(storage, down) == {"w": {3, 9, 15}, "lo": {2, 14}, "hi": {4, 16}}


def test_midstream_spans_the_paths_between_nodes(storage: Storage) -> None:
    cf = rich(storage)
    mid = valid(cf.midstream("y", "w"))
    assert mid.nodes == {"y", "dbl", "z", "add", "w"}
    assert mid.fnames == {"dbl", "add"}
    assert values(storage, mid)["w"] == {3, 9, 15}
    single = valid(cf.midstream("x"))
    assert single.nodes == {"x"} and values(storage, single) == {"x": set(range(6))}


def test_reachability_follows_cycles(storage: Storage) -> None:
    cf = feedback_loop(storage)
    assert cf.get_graph_desc() == "s@s = scale(v=s)"
    for frame in (cf.upstream("s"), cf.downstream("s"), cf.midstream("s", "scale")):
        valid(frame)
        assert values(storage, frame) == {"s": {1, 2, 4, 8}}
        assert calls(storage, frame) == {"scale": {(1,), (2,), (4,)}}


def test_reachability_rejects_unknown_nodes_and_modes(storage: Storage) -> None:
    cf = chain(storage)
    for method in (cf.upstream, cf.downstream, cf.midstream):
        with pytest.raises(ValueError, match="not found in the CF"):
            method("nope")
        with pytest.raises(ValueError, match="strong"):
            method("y", how="medium")


def test_drop_unreachable_keeps_a_valid_frame_whole(storage: Storage) -> None:
    cf = rich(storage)
    for direction in ("forward", "back"):
        for how in ("strong", "weak"):
            assert valid(cf.drop_unreachable(direction, how=how)).sets == cf.sets
    with pytest.raises(ValueError, match="direction"):
        cf.drop_unreachable("sideways")


# ---------------------------------------------------------------------------- selecting nodes


def test_select_nodes_and_getitem(storage: Storage) -> None:
    cf = chain(storage)
    x = valid(cf["x"])
    assert x.nodes == {"x"} and x.edges() == []
    assert values(storage, x) == {"x": {0, 1, 2, 3}}
    sub = valid(cf[["x", "inc", "y"]])
    assert sub.nodes == {"x", "inc", "y"}
    assert sub.edges() == [("inc", "y", "y"), ("x", "inc", "x")]
    assert valid(cf.select_nodes(["inc", "y"])).edges() == [("inc", "y", "y")]
    with pytest.raises(ValueError, match=r"Nodes \['q'\] not found in the CF"):
        cf[["x", "q"]]
    with pytest.raises(TypeError):
        cf[cf]


def test_select_subsets_keeps_complete_calls(storage: Storage) -> None:
    cf = chain(storage)
    ys = {storage.unwrap(r): r.hid for r in cf.refs_by_var()["y"]}
    elts = {node: set(hids) for node, hids in cf.sets.items()}
    elts["y"] = {ys[1], ys[2], ys[3]}
    sub = valid(cf.select_subsets(elts))
    assert values(storage, sub)["y"] == {1, 2, 3}
    assert calls(storage, sub)["inc"] == {(0,), (1,), (2,)}  # inc(3) lost its output
    assert calls(storage, sub)["dbl"] == {(1,), (2,)}
    assert values(storage, sub)["x"] == {0, 1, 2, 3}


def test_select_subsets_errors(storage: Storage) -> None:
    cf = chain(storage)
    elts = {node: set(hids) for node, hids in cf.sets.items()}
    partial = dict(elts)
    del partial["z"]
    with pytest.raises(ValueError, match="missing: \\['z'\\]"):
        cf.select_subsets(partial)
    with pytest.raises(ValueError, match="unknown: \\['q'\\]"):
        cf.select_subsets({**elts, "q": set()})
    with pytest.raises(ValueError, match="not elements of node 'x'"):
        cf.select_subsets({**elts, "x": elts["x"] | elts["y"]})
    with pytest.raises(ValueError, match="hexadecimal"):
        cf.select_subsets({**elts, "x": {"not-hex"}})


# ---------------------------------------------------------------------------- dropping and renaming


def test_drop_nodes(storage: Storage) -> None:
    cf = chain(storage)
    no_dbl = valid(cf.drop(["dbl"]))
    assert no_dbl.nodes == {"x", "inc", "y", "z"}
    assert valid(cf.drop_node("z")).nodes == {"x", "inc", "y", "dbl"}
    assert valid(cf.drop_var("y")).edges() == [("dbl", "z", "z"), ("x", "inc", "x")]
    assert valid(cf.drop_func("inc")).nodes == {"x", "y", "dbl", "z"}
    assert cf.nodes == {"x", "inc", "y", "dbl", "z"}


def test_drop_with_dependents_removes_everything_downstream(storage: Storage) -> None:
    cf = rich(storage)
    assert valid(cf.drop(["dbl"], with_dependents=True)).nodes == {"x", "inc", "y"}
    assert valid(cf.drop("w", with_dependents=True)).nodes == {"x", "inc", "y", "dbl", "z", "add"}


def test_drop_inplace_returns_none(storage: Storage) -> None:
    cf = chain(storage)
    assert cf.drop(["z"], inplace=True) is None
    assert cf.nodes == {"x", "inc", "y", "dbl"}
    valid(cf)
    assert cf.drop_var("y", inplace=True) is None
    assert cf.drop_func("dbl", inplace=True) is None
    assert cf.drop_node("x", inplace=True) is None
    assert cf.nodes == {"inc"}


def test_drop_errors(storage: Storage) -> None:
    cf = chain(storage)
    for call in (
        lambda: cf.drop(["q"]),
        lambda: cf.drop_node("q"),
        lambda: cf.drop_var("q"),
        lambda: cf.drop_func("q"),
    ):
        with pytest.raises(ValueError, match="^Node q not found in the CF"):
            call()
    with pytest.raises(ValueError, match="function node"):
        cf.drop_var("inc")
    with pytest.raises(ValueError, match="variable"):
        cf.drop_func("x")


def test_rename_vars_and_funcs(storage: Storage) -> None:
    cf = chain(storage)
    renamed = valid(cf.rename(vars={"x": "a", "z": "out"}, funcs={"inc": "increment"}))
    assert renamed.nodes == {"a", "increment", "y", "dbl", "out"}
    assert renamed.get_graph_desc() == "y@y = increment(x=a)\nout@z = dbl(y=y)"
    assert renamed.ops()["increment"] == "inc"
    assert values(storage, renamed)["out"] == {2, 4}
    assert set(renamed.df(include_calls=False).columns) == {"a", "y", "out"}
    swapped = valid(cf.rename(vars={"x": "y", "y": "x"}))
    assert values(storage, swapped)["y"] == {0, 1, 2, 3}
    assert valid(cf.rename_var("x", "a")).vnames == {"a", "y", "z"}
    assert cf.vnames == {"x", "y", "z"}


def test_rename_inplace_and_errors(storage: Storage) -> None:
    cf = chain(storage)
    with pytest.raises(ValueError, match="several nodes"):
        cf.rename(vars={"x": "y"})
    with pytest.raises(ValueError, match="several nodes"):
        cf.rename(funcs={"inc": "z"})
    with pytest.raises(ValueError, match="funcs="):
        cf.rename(vars={"inc": "f"})
    with pytest.raises(ValueError, match="^Node q not found in the CF"):
        cf.rename_var("q", "r")
    assert cf.rename_var("x", "a", inplace=True) is None
    assert cf.rename(funcs={"dbl": "double"}, inplace=True) is None
    assert cf.nodes == {"a", "inc", "y", "double", "z"}
    valid(cf)


# ---------------------------------------------------------------------------- merging and cleaning


def test_merge_vars_merges_strict_subsets(storage: Storage) -> None:
    with storage:
        ys = [inc(x) for x in range(3)]
    cf = storage.cf({"small": ys[:1], "big": ys})
    merged = valid(cf.merge_vars())
    assert merged.vnames == {"big"}
    assert values(storage, merged) == {"big": {1, 2, 3}}
    assert cf.vnames == {"small", "big"}
    assert cf.merge_vars(inplace=True) is None and cf.vnames == {"big"}


def test_merge_into_redirects_edges_without_mutating_self(storage: Storage) -> None:
    cf = chain(storage)
    other = storage.cf({"v": cf.refs_by_var()["y"]})
    both = valid(cf | other)
    merged = valid(both.merge_into("v", "y"))
    assert merged.vnames == {"x", "y", "z"}
    assert both.vnames == {"x", "y", "z", "v"}  # the original keeps its node
    assert both.sets["v"] == cf.sets["y"]
    with_edges = valid(cf.merge_into("y", "x"))
    assert with_edges.get_graph_desc() == "x@y = inc(x=x)\nz@z = dbl(y=x)"
    assert values(storage, with_edges)["x"] == {0, 1, 2, 3, 4}
    assert cf.vnames == {"x", "y", "z"}


def test_merge_into_function_nodes_of_one_op(storage: Storage) -> None:
    with storage:
        for x in range(4):
            inc(x)
    cf = storage.cf(inc)
    low = cf.where("x", lambda x: x < 2).rename(vars={"x": "xa", "y": "ya"}, funcs={"inc": "inc_a"})
    high = cf.where("x", lambda x: x >= 2)
    both = valid(low | high)
    assert calls(storage, both) == {"inc_a": {(0,), (1,)}, "inc": {(2,), (3,)}}
    merged = valid(both.merge_into("inc_a", "inc"))
    assert calls(storage, merged) == {"inc": {(0,), (1,), (2,), (3,)}}
    assert values(storage, merged)["x"] == values(storage, merged)["xa"] == {0, 1, 2, 3}
    assert both.fnames == {"inc", "inc_a"}
    assert both.merge_into("inc_a", "inc", inplace=True) is None and both.fnames == {"inc"}


def test_merge_into_errors(storage: Storage) -> None:
    cf = chain(storage)
    with pytest.raises(ValueError, match="one is a variable"):
        cf.merge_into("x", "inc")
    with pytest.raises(ValueError, match="op 'inc'"):
        cf.merge_into("inc", "dbl")
    with pytest.raises(ValueError, match="itself"):
        cf.merge_into("x", "x")
    with pytest.raises(ValueError, match="^Node q not found in the CF"):
        cf.merge_into("q", "x")


def test_cleanup_and_simplify_remove_empty_nodes(storage: Storage) -> None:
    cf = chain(storage)
    elts = {node: set(hids) for node, hids in cf.sets.items()}
    elts["z"] = set()
    emptied = valid(cf.select_subsets(elts))
    assert emptied.fs["dbl"] == set() and emptied.vs["z"] == set()
    cleaned = valid(emptied.cleanup())
    assert cleaned.nodes == {"x", "inc", "y"}
    assert valid(emptied.simplify()).nodes == {"x", "inc", "y"}
    assert emptied.nodes == cf.nodes
    assert emptied.cleanup(inplace=True) is None and emptied.nodes == {"x", "inc", "y"}
    assert "0 operation(s)" in repr(storage.cf(dbl).isin([]).cleanup())


# ---------------------------------------------------------------------------- filters


def test_isin_by_value_keeps_the_calls_that_touched_the_values(storage: Storage) -> None:
    cf = chain(storage)
    kept = valid(cf.isin([0, 1, 2, 4]))
    # x in {0, 1, 2}, y in {1, 2, 4}, z in {2, 4}: every inc made or took one of them
    # (inc(3) made y = 4), dbl(1) and dbl(2) did; the kept calls bring their other refs
    assert calls(storage, kept) == {"inc": {(0,), (1,), (2,), (3,)}, "dbl": {(1,), (2,)}}
    assert values(storage, kept) == {"x": {0, 1, 2, 3}, "y": {1, 2, 3, 4}, "z": {2, 4}}


def test_isin_by_hid_and_cid(storage: Storage) -> None:
    cf = chain(storage)
    refs = cf.refs_by_var()
    x0 = next(r for r in refs["x"] if storage.unwrap(r) == 0)
    y1 = next(r for r in refs["y"] if storage.unwrap(r) == 1)
    by_hid = valid(cf.isin([x0.hid, y1.hid], by="hid"))
    assert values(storage, by_hid) == {"x": {0}, "y": {1}, "z": {2}}
    assert calls(storage, by_hid) == {"inc": {(0,)}, "dbl": {(1,)}}
    assert by_hid.sets == valid(cf.isin([x0, y1], by="hid")).sets
    by_cid = valid(cf.isin([x0.cid, y1.cid], by="cid"))  # x = 1 has the content of y = 1
    assert values(storage, by_cid) == {"x": {0, 1}, "y": {1, 2}, "z": {2}}
    assert calls(storage, by_cid) == {"inc": {(0,), (1,)}, "dbl": {(1,)}}


def test_isin_then_delete_calls_deletes_the_calls_that_touched_a_value(storage: Storage) -> None:
    cf = chain(storage)
    y2 = next(r for r in cf.refs_by_var()["y"] if storage.unwrap(r) == 2)
    cf.isin([y2], by="hid").delete_calls()  # inc(1) made y = 2, dbl(2) took it
    after = valid(storage.cf(inc).expand_forward())
    assert calls(storage, after) == {"inc": {(0,), (2,), (3,)}, "dbl": {(1,)}}


def test_isin_over_calls(storage: Storage) -> None:
    cf = chain(storage)
    one = next(c for c in cf.calls_by_func()["dbl"] if storage.unwrap(c.inputs["y"]) == 1)
    kept = valid(cf.isin([one.hid], by="hid", node_class="func"))
    assert calls(storage, kept) == {"inc": set(), "dbl": {(1,)}}
    assert values(storage, kept) == {"x": set(), "y": {1}, "z": {2}}
    assert valid(cf.isin([one.cid], by="cid", node_class="func")).sets == kept.sets
    with pytest.raises(ValueError, match="'hid' or 'cid'"):
        cf.isin([1], node_class="func")
    with pytest.raises(ValueError, match="node_class"):
        cf.isin([1], node_class="edge")
    with pytest.raises(ValueError, match="by must be"):
        cf.isin([1], by="name")


def test_comparisons_restrict_every_variable(storage: Storage) -> None:
    cf = chain(storage)
    lt = valid(cf < 3)
    assert values(storage, lt) == {"x": {0, 1, 2}, "y": {1, 2}, "z": {2}}
    assert calls(storage, lt) == {"inc": {(0,), (1,)}, "dbl": {(1,)}}
    assert valid(3 > cf).sets == lt.sets  # noqa: SIM300 - the reflected operator is the test
    assert values(storage, valid(cf <= 2)) == {"x": {0, 1, 2}, "y": {1, 2}, "z": {2}}
    ge = valid(cf >= 3)
    assert values(storage, ge) == {"x": {3}, "y": {3, 4}, "z": {4}}
    assert calls(storage, ge) == {"inc": {(3,)}, "dbl": set()}
    assert values(storage, valid(cf > 3)) == {"x": set(), "y": {4}, "z": {4}}


def test_comparisons_drop_values_that_cannot_be_compared(storage: Storage) -> None:
    with storage:
        for x in range(3):
            label(x)
    cf = storage.cf(label)
    kept = valid(cf < 2)
    assert values(storage, kept) == {"x": {0, 1}, "name": set()}
    assert calls(storage, kept) == {"label": set()}
    with pytest.raises(TypeError):
        cf < cf  # noqa: B015 - the comparison is the test


def test_frames_keep_identity_equality(storage: Storage) -> None:
    cf = chain(storage)
    assert cf == cf and cf != cf.copy()
    assert len({cf, cf.copy()}) == 2


def test_where_restricts_one_variable_and_prunes_the_rest(storage: Storage) -> None:
    cf = chain(storage)
    kept = valid(cf.where("y", lambda y: y > 2))
    assert values(storage, kept) == {"x": {2, 3}, "y": {3, 4}, "z": set()}
    assert calls(storage, kept) == {"inc": {(2,), (3,)}, "dbl": set()}
    two = valid(cf.where(["x", "z"], lambda v: v != 0))
    # y = 1 stays: inc(0) was dropped, but dbl(1) still consumes it
    assert values(storage, two) == {"x": {1, 2, 3}, "y": {1, 2, 3, 4}, "z": {2, 4}}
    assert calls(storage, two) == {"inc": {(1,), (2,), (3,)}, "dbl": {(1,), (2,)}}
    everywhere = valid(cf.where(lambda v: v % 2 == 0))
    assert values(storage, everywhere) == {"x": {0, 2}, "y": {2, 4}, "z": {2, 4}}
    assert calls(storage, everywhere) == {"inc": set(), "dbl": {(2,)}}


def test_where_errors(storage: Storage) -> None:
    cf = chain(storage)
    with pytest.raises(ValueError, match="^Node q not found in the CF"):
        cf.where("q", bool)
    with pytest.raises(ValueError, match="function node"):
        cf.where("inc", bool)
    with pytest.raises(TypeError, match="predicate"):
        cf.where("x")
    with pytest.raises(ZeroDivisionError):
        cf.where("x", lambda x: 1 / x)


def test_where_loads_collections(storage: Storage) -> None:
    with storage:
        total([1, 2])
        total([1, 2, 3])
    cf = storage.cf(total)
    kept = valid(cf.where("xs", lambda xs: len(xs) > 2))
    assert values(storage, kept) == {"xs": {(1, 2, 3)}, "t": {6}}
    assert calls(storage, kept) == {"total": {((1, 2, 3),)}}


def test_feedback_loop_filter(storage: Storage) -> None:
    cf = feedback_loop(storage)
    kept = valid(cf.where("s", lambda s: s < 8))
    assert values(storage, kept) == {"s": {1, 2, 4}}
    assert calls(storage, kept) == {"scale": {(1,), (2,)}}


# ---------------------------------------------------------------------------- set algebra


def test_union_glues_frames_by_name(storage: Storage) -> None:
    chain(storage)
    both = valid(storage.cf(inc) | storage.cf(dbl))
    assert both.get_graph_desc() == "y@y = inc(x=x)\nz@z = dbl(y=y)"
    assert values(storage, both) == {"x": {0, 1, 2, 3}, "y": {1, 2, 3, 4}, "z": {2, 4}}
    rows = {tuple(r) for r in both.df(include_calls=False)[["x", "z"]].fillna(-1).values}
    assert rows == {(0, 2), (1, 4), (2, -1), (3, -1)}
    assert valid(type(both).union(storage.cf(inc), storage.cf(dbl))).sets == both.sets


def test_union_completes_variables_on_shared_edges(storage: Storage) -> None:
    with storage:
        for x in range(4):
            inc(x)
    cf = storage.cf(inc)
    other = cf.where("x", lambda x: x >= 2).rename(vars={"y": "out"})
    both = valid(cf | other)
    assert both.get_graph_desc() == "(out | y)@y = inc(x=x)"
    assert values(storage, both)["out"] == {1, 2, 3, 4}


def test_intersection_keeps_what_is_shared(storage: Storage) -> None:
    chain(storage)
    shared = valid(storage.cf(inc) & storage.cf(dbl))
    assert shared.nodes == {"y"}
    assert values(storage, shared) == {"y": {1, 2}}
    cf = storage.cf(inc).expand_forward()
    assert valid(cf & cf.upstream("z")).sets == cf.upstream("z").sets


def test_difference_removes_elements_and_empty_nodes(storage: Storage) -> None:
    cf = chain(storage)
    rest = valid(cf - storage.cf(dbl))
    assert rest.nodes == {"x", "inc", "y"}
    assert values(storage, rest) == {"x": {0, 1, 2, 3}, "y": {3, 4}}
    assert calls(storage, rest) == {"inc": {(2,), (3,)}}
    gone = valid(cf - cf)
    assert gone.nodes == set()
    assert "0 variable(s)" in repr(gone)
    assert valid(cf - cf.upstream("z")).nodes == {"x", "inc", "y"}


def test_set_algebra_errors() -> None:
    one, two = Storage(), Storage()
    for s in (one, two):
        with s:
            inc(1)
    with pytest.raises(ValueError, match="different storages"):
        one.cf(inc) | two.cf(inc)
    with pytest.raises(ValueError, match="different storages"):
        one.cf(inc) & two.cf(inc)
    with pytest.raises(ValueError, match="different storages"):
        one.cf(inc) - two.cf(inc)
    clash = one.cf(inc).rename(vars={"x": "inc2"}, funcs={"inc": "x"})
    with pytest.raises(ValueError, match="different kinds"):
        one.cf(inc) | clash
    with pytest.raises(TypeError):
        one.cf(inc) | 3


# ---------------------------------------------------------------------------- invariants


@pytest.fixture(scope="module")
def stored() -> tuple[Storage, Any]:
    """One stored computation (with a parasitic input) and its whole frame."""
    storage = Storage()
    with storage:
        for x in range(5):
            y = inc(x)
            if x % 2 == 0:
                w = add(y, dbl(y))
                if x != 2:
                    split(w)
        add(inc(9), 7)
    return storage, valid(storage.cf(inc).expand_all())


@st.composite
def subframes(draw: st.DrawFn, base: Any) -> Any:
    """A valid sub-frame of ``base``, made by one of the selection operations."""
    nodes = sorted(base.nodes)
    kind = draw(st.sampled_from(["subsets", "nodes", "up", "down", "isin", "lt"]))
    if kind == "subsets":
        elts = {}
        for node in nodes:
            hids = sorted(base.sets[node])
            elts[node] = set(draw(st.lists(st.sampled_from(hids), unique=True))) if hids else set()
        return base.select_subsets(elts)
    if kind == "nodes":
        return base.select_nodes(draw(st.sets(st.sampled_from(nodes), min_size=1)))
    how = draw(st.sampled_from(["strong", "weak"]))
    if kind == "up":
        return base.upstream(draw(st.sampled_from(nodes)), how=how)
    if kind == "down":
        return base.downstream(draw(st.sampled_from(nodes)), how=how)
    if kind == "isin":
        return base.isin(draw(st.sets(st.integers(0, 20))))
    return base < draw(st.integers(0, 20))


SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(data=st.data())
def test_union_and_intersection_laws(stored: tuple[Storage, Any], data: st.DataObject) -> None:
    _, base = stored
    a = valid(data.draw(subframes(base)))
    b = valid(data.draw(subframes(base)))
    union, inter = valid(a | b), valid(a & b)
    assert elements(union) == elements(valid(b | a))
    assert elements(inter) == elements(valid(b & a))
    assert elements(valid(a | a)) == elements(a)
    assert elements(valid(a & a)) == elements(a)
    assert elements(inter) <= elements(a) <= elements(union)
    assert elements(a) | elements(b) <= elements(union)
    assert set(inter.edges()) <= set(a.edges()) <= set(union.edges())


@SETTINGS
@given(data=st.data())
def test_difference_laws(stored: tuple[Storage, Any], data: st.DataObject) -> None:
    _, base = stored
    a = valid(data.draw(subframes(base)))
    b = valid(data.draw(subframes(base)))
    diff = valid(a - b)
    assert elements(diff) <= elements(a)
    assert not elements(valid(diff & b))
    assert all(diff.sets[node] for node in diff.nodes)  # no empty node left
    assert elements(valid(a - a)) == set()


@SETTINGS
@given(data=st.data())
def test_upstream_contains_the_whole_history(
    stored: tuple[Storage, Any], data: st.DataObject
) -> None:
    storage, base = stored
    var = data.draw(st.sampled_from(sorted(base.vnames)))
    how = data.draw(st.sampled_from(["strong", "weak"]))
    history = storage.cf({"v": base.refs_by_var()[var]}).expand_back(recursive=True)
    up = valid(base.upstream(var, how=how))
    assert call_hids(history) <= call_hids(up)
    assert up.sets[var] == base.sets[var]


@SETTINGS
@given(data=st.data())
def test_operations_return_valid_frames(stored: tuple[Storage, Any], data: st.DataObject) -> None:
    _, base = stored
    a = valid(data.draw(subframes(base)))
    nodes = sorted(a.nodes)
    if nodes:
        node = data.draw(st.sampled_from(nodes))
        for frame in (
            a.upstream(node),
            a.downstream(node, how="weak"),
            a.midstream(*data.draw(st.sets(st.sampled_from(nodes), min_size=1))),
            a.drop([node], with_dependents=data.draw(st.booleans())),
        ):
            assert elements(valid(frame)) <= elements(a)
    for frame in (a.cleanup(), a.merge_vars(), a.where(lambda v: v % 3 != 1)):
        valid(frame)
    for direction in ("forward", "back"):
        assert valid(a.drop_unreachable(direction)).sets == a.sets
    repr(a)
