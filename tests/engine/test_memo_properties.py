"""Property tests of memoization over random JSON-like inputs (docs/compatibility.md, checklist i.1, i.3)."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mandala.imports import MList, Storage, op
from tests.harness.strategies import json_like

SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


_TMP = Path(tempfile.mkdtemp(prefix="mandala-props-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
_DB = _TMP / "props.db"  # one file shared by every example: sessions pile up calls in it

RUNS: list = []


def describe_plain(x):
    """What the op computes: a value of a different shape than its input."""
    return {"value": x, "kind": type(x).__name__, "text": json.dumps(x, sort_keys=True)}


@op(output_names=["description"])
def describe(x):
    RUNS.append(1)
    return describe_plain(x)


@op
def total(xs: MList[int]):
    RUNS.append(1)
    return sum(xs)


def _canonical(x) -> str:
    return json.dumps(x, sort_keys=True)


@SETTINGS
@given(json_like)
def test_second_call_does_not_execute_and_returns_the_same_ids(x) -> None:
    storage = Storage()
    RUNS.clear()
    with storage:
        first = describe(x)
        second = describe(x)
    assert len(RUNS) == 1
    with storage:
        third = describe(x)
    assert len(RUNS) == 1
    assert first.hid == second.hid == third.hid
    assert first.cid == second.cid == third.cid
    assert storage.unwrap(third) == describe_plain(x)
    assert storage.unwrap(first) == describe_plain(x)


@SETTINGS
@given(json_like, json_like)
def test_calls_are_equal_exactly_when_inputs_are(x, y) -> None:
    storage = Storage()
    with storage:
        rx = describe(x)
        ry = describe(y)
    same = _canonical(x) == _canonical(y)
    assert (rx.hid == ry.hid) == same
    assert (rx.cid == ry.cid) == same


@SETTINGS
@given(st.dictionaries(st.text(max_size=5), json_like, min_size=2, max_size=6))
def test_dict_order_does_not_change_the_call(d) -> None:
    storage = Storage()
    RUNS.clear()
    with storage:
        a = describe(d)
        b = describe(dict(reversed(list(d.items()))))
    assert len(RUNS) == 1
    assert a.hid == b.hid


@SETTINGS
@given(json_like)
def test_values_survive_reopening_a_file_store(x) -> None:
    RUNS.clear()
    with Storage(_DB) as storage:
        r = describe(x)
    executed = len(RUNS)
    assert executed <= 1  # 0 when an earlier example had the same input
    reopened = Storage(_DB)
    with reopened:
        again = describe(x)
    assert len(RUNS) == executed
    assert again.hid == r.hid
    assert again.in_memory is False
    assert reopened.unwrap(again) == describe_plain(x)
    loaded = Storage(_DB).load_ref(r.hid)
    assert loaded.obj == describe_plain(x)
    storage.close()
    reopened.close()


@SETTINGS
@given(st.lists(st.integers(min_value=-1000, max_value=1000), max_size=8))
def test_mlist_inputs_memoize_by_elements(xs) -> None:
    storage = Storage()
    RUNS.clear()
    with storage:
        a = total(xs)
        b = total(list(xs))
    assert len(RUNS) == 1
    assert a.hid == b.hid
    assert storage.unwrap(a) == sum(xs)
    maker = storage.get_ref_creator(storage.get_ref_creator(a).inputs["xs"])
    assert sorted(maker.inputs, key=lambda n: int(n.split("_")[1])) == [
        f"elts_{i}" for i in range(len(xs))
    ]
    assert [storage.unwrap(maker.inputs[f"elts_{i}"]) for i in range(len(xs))] == xs
