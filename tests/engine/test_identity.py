"""Content and history ids of refs and calls, and the content-id fallback of lookups.

docs/compatibility.md §a.4 (wrap_atom), §a.6, §a.7 (bug g.1-1 fixed: content reuse works across sessions),
checklist i.1-i.3.
"""

from __future__ import annotations

import json

import pytest

from mandala.imports import Storage, op, wrap_atom

SNIPPET = """
import json, sys
from mandala.imports import Storage, op

runs = []

@op
def describe(x, options):
    runs.append(1)
    return {"x": x, "n": len(options)}

storage = Storage(sys.argv[1])
with storage:
    r = describe(3, {"b": {3, 1, 2}, "a": [1.5, None, "s"]})
call = storage.get_ref_creator(r)
print(json.dumps({"hid": r.hid, "cid": r.cid, "call": call.hid, "runs": len(runs),
                  "value": storage.unwrap(r)}))
"""


def _describe_op(runs):
    @op
    def describe(x, options):
        runs.append(1)
        return {"x": x, "n": len(options)}

    return describe


def test_same_call_has_same_ids_across_processes_and_sessions(fresh_db_path, snippet) -> None:
    first = json.loads(
        snippet(SNIPPET, str(fresh_db_path), env={"PYTHONHASHSEED": "1"}).stdout.splitlines()[-1]
    )
    second = json.loads(
        snippet(SNIPPET, str(fresh_db_path), env={"PYTHONHASHSEED": "2"}).stdout.splitlines()[-1]
    )
    assert first["runs"] == 1
    assert second["runs"] == 0  # found in the file written by the other process
    assert first["value"] == second["value"] == {"x": 3, "n": 2}
    assert (first["hid"], first["cid"], first["call"]) == (
        second["hid"],
        second["cid"],
        second["call"],
    )
    # This process, a fresh in-memory store, the same ids (same sets in another order).
    runs: list = []
    storage = Storage()
    with storage:
        r = _describe_op(runs)(3, {"a": [1.5, None, "s"], "b": {2, 3, 1}})
    assert (r.hid, r.cid, storage.get_ref_creator(r).hid) == (
        first["hid"],
        first["cid"],
        first["call"],
    )
    # And a new session on the file finds it without running.
    reopened = Storage(fresh_db_path)
    with reopened:
        again = _describe_op(runs)(3, {"b": {1, 2, 3}, "a": [1.5, None, "s"]})
    assert runs == [1]
    assert again.hid == first["hid"]


def test_ids_do_not_depend_on_the_backend(tmp_path) -> None:
    runs: list = []
    refs = []
    for storage in (Storage(), Storage(tmp_path / "a.db")):
        with storage:
            refs.append(_describe_op(runs)(1, [2]))
    assert refs[0].hid == refs[1].hid
    assert refs[0].cid == refs[1].cid


def test_wrap_atom_passed_is_the_same_call_as_the_raw_value(storage: Storage) -> None:
    runs = []

    @op
    def inc(x):
        runs.append(x)
        return x + 1

    with storage:
        a = inc(10)
        b = inc(wrap_atom(10))
    assert runs == [10]
    assert a.hid == b.hid
    assert storage.get_ref_creator(a).hid == storage.get_ref_creator(b).hid


def test_wrap_atom_fields() -> None:
    ref = wrap_atom([1, 2])
    assert ref.in_memory is True
    assert ref.obj == [1, 2]
    assert ref.hid != ref.cid
    assert wrap_atom([1, 2]).hid == ref.hid
    assert wrap_atom([1, 2]).cid == ref.cid
    assert wrap_atom(ref) is ref
    assert wrap_atom([2, 1]).cid != ref.cid


def test_wrap_atom_with_a_history_id() -> None:
    other = wrap_atom("x")
    ref = wrap_atom(5, history_id=other.hid)
    assert ref.hid == other.hid
    assert ref.cid == wrap_atom(5).cid
    with pytest.raises(ValueError):
        wrap_atom(ref, history_id=other.hid)


@pytest.mark.parametrize(
    ("a", "b"), [(1, True), (1, 1.0), (True, 1.0), (0, False), ((1, 2), [1, 2]), (23, 23.0)]
)
def test_values_of_different_types_are_different_calls(storage: Storage, a, b) -> None:
    runs = []

    @op(output_names=["same"])
    def ident(x):
        runs.append(type(x).__name__)
        return x

    with storage:
        ra = ident(a)
        rb = ident(b)
    assert runs == [type(a).__name__, type(b).__name__]
    assert ra.hid != rb.hid
    assert ra.cid != rb.cid
    assert type(storage.unwrap(rb)) is type(b)


def test_one_true_one_point_zero_are_three_calls(storage: Storage) -> None:
    runs = []

    @op
    def ident(x):
        runs.append(repr(x))
        return x

    with storage:
        refs = [ident(1), ident(True), ident(1.0), ident(1), ident(True), ident(1.0)]
    assert runs == ["1", "True", "1.0"]
    assert len({r.hid for r in refs}) == 3
    values = storage.unwrap(refs[:3])
    assert [type(v) for v in values] == [int, bool, float]


def test_output_history_depends_on_call_and_output_name(storage: Storage) -> None:
    @op
    def pair(x):
        return x, x

    with storage:
        a0, a1 = pair(1)
        b0, b1 = pair(2)
    assert a0.cid == a1.cid  # equal values
    assert a0.hid != a1.hid  # different output names
    assert len({a0.hid, a1.hid, b0.hid, b1.hid}) == 4
    assert a0.hid != wrap_atom(1).hid  # an output's history is not that of a raw value


def test_output_history_depends_on_the_output_name_only_through_the_name(tmp_path) -> None:
    def define(name):
        @op(output_names=[name])
        def produce(x):
            return x

        return produce

    first, second = Storage(), Storage()
    with first:
        a = define("left")(1)
    with second:
        b = define("right")(1)
    assert first.get_ref_creator(a).hid == second.get_ref_creator(b).hid  # same call
    assert a.cid == b.cid
    assert a.hid != b.hid


def test_op_name_is_part_of_the_call_identity(storage: Storage) -> None:
    @op
    def f(x):
        return x

    @op
    def g(x):
        return x

    with storage:
        a, b = f(1), g(1)
    assert a.cid == b.cid
    assert a.hid != b.hid
    assert storage.get_ref_creator(a).hid != storage.get_ref_creator(b).hid


def test_input_names_are_part_of_the_call_identity(storage: Storage) -> None:
    runs = []

    def define(param):
        namespace: dict = {"op": op, "runs": runs}
        exec(f"@op\ndef h({param}):\n    runs.append(1)\n    return {param}\n", namespace)
        return namespace["h"]

    with storage:
        a = define("x")(1)
        b = define("y")(1)
    assert runs == [1, 1]
    assert a.hid != b.hid


# ------------------------------------------------------------------ content-id reuse


def _inc_dbl(runs):
    @op
    def inc(x):
        runs.append("inc")
        return x + 1

    @op
    def dbl(x):
        runs.append("dbl")
        return 2 * x

    return inc, dbl


def test_content_reuse_within_a_session(storage: Storage) -> None:
    runs: list = []
    inc, dbl = _inc_dbl(runs)
    with storage:
        first = dbl(inc(1))
        second = dbl(2)
    assert runs == ["inc", "dbl"]
    assert first.cid == second.cid
    assert first.hid != second.hid
    assert storage.unwrap(second) == 4
    first_call = storage.get_ref_creator(first)
    second_call = storage.get_ref_creator(second)
    assert first_call.hid != second_call.hid
    assert first_call.cid == second_call.cid
    assert storage.exists_call(second_call.hid)


def test_content_reuse_across_sessions(persistent) -> None:
    """The reference recomputes here (bug g.1-1); we reuse the stored result."""
    runs: list = []
    inc, dbl = _inc_dbl(runs)
    with persistent.open():
        first = dbl(inc(1))
    assert runs == ["inc", "dbl"]
    reopened = persistent.open()
    with reopened:
        second = dbl(2)
    assert runs == ["inc", "dbl"]
    assert second.cid == first.cid
    assert second.hid != first.hid
    assert reopened.unwrap(second) == 4
    # The reuse saved a call row of its own: a third session finds it by history.
    third = persistent.open()
    with third:
        again = dbl(2)
    assert runs == ["inc", "dbl"]
    assert again.hid == second.hid
    assert third.get_ref_creator(again).hid == reopened.get_ref_creator(second).hid
    assert third.unwrap(again) == 4
    assert third.cache_stats()["calls"]["stored"] == 3


def test_content_reuse_restamps_every_output(storage: Storage) -> None:
    runs = []

    @op
    def make(x):
        return x

    @op(output_names=["lo", "hi"])
    def bounds(x):
        runs.append(x)
        return x - 1, x + 1

    with storage:
        lo1, hi1 = bounds(make(5))
        lo2, hi2 = bounds(5)
    assert runs == [5]
    assert (lo1.cid, hi1.cid) == (lo2.cid, hi2.cid)
    assert len({lo1.hid, hi1.hid, lo2.hid, hi2.hid}) == 4
    call = storage.get_ref_creator(hi2)
    assert call.outputs["lo"].hid == lo2.hid
    assert call.outputs["hi"].hid == hi2.hid
    assert storage.unwrap([lo2, hi2]) == [4, 6]


def test_content_reuse_of_a_collection_output_across_sessions(persistent) -> None:
    from mandala.imports import MList
    from mandala.model.refs import ListRef

    runs: list = []

    @op
    def inc(x):
        runs.append("inc")
        return x + 1

    @op
    def upto(n) -> MList[int]:
        runs.append("upto")
        return list(range(n))

    with persistent.open():
        first = upto(inc(2))
    reopened = persistent.open()
    with reopened:
        second = upto(3)
    assert runs == ["inc", "upto"]
    assert isinstance(second, ListRef)
    assert second.cid == first.cid and second.hid != first.hid
    assert len(second) == 3
    assert [e.cid for e in second] == [e.cid for e in first]
    assert {e.hid for e in second}.isdisjoint({e.hid for e in first})
    assert reopened.unwrap(second) == [0, 1, 2]
    assert reopened.get_ref_creator(second[1]).op.name == "__list_getitem__"
    assert reopened.get_ref_creator(second[1]).inputs["list"].hid == second.hid
    third = persistent.open()
    with third:
        again = upto(3)
    assert runs == ["inc", "upto"]
    assert [e.hid for e in again] == [e.hid for e in second]
    assert third.unwrap(again[2]) == 2
