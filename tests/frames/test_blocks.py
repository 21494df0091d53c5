"""Calls held as columns: rows from the store pivot into blocks that give back the same calls."""

from __future__ import annotations

import gc
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mandala.backends.records import DIRECTION_IN, DIRECTION_OUT, CallRows, StoredCall, StoredOutput
from mandala.errors import CorruptValueError
from mandala.frames.blocks import RefView, blocks_from_rows, paused_gc, rows_from_calls
from mandala.frames.index import ElementIndex
from mandala.imports import Storage, op
from tests.harness import strategies as shared


@op(output_names=["y"])
def inc(x):
    return x + 1


@op(output_names=["total"])
def add(a, b=0):
    return a + b


@op(output_names=["p"])
def pair(x):
    return [x, x + 1]


@op
def split(x):
    return x, -x


def _normal(call: StoredCall) -> StoredCall:
    """The call with its edges in name order (a store returns them in any order)."""
    return call._replace(inputs=tuple(sorted(call.inputs)), outputs=tuple(sorted(call.outputs)))


def _calls_of(rows: CallRows, load_heads: Any = None) -> set[StoredCall]:
    """The calls of the blocks of ``rows``, as objects (details read by ``load_heads``)."""
    refs = RefView()
    refs.add(*rows.edges[3:6])
    blocks = blocks_from_rows(rows, load_heads)
    return {block.stored(row, refs) for block in blocks for row in range(len(block))}


def _normalized(calls: Any) -> set[StoredCall]:
    return {_normal(call) for call in calls}


def _fill(storage: Storage) -> None:
    with storage:
        for x in range(4):
            y = inc(x)
            add(y)
            add(y, b=x)
            pair(x)
            split(y)


@pytest.mark.parametrize("name", ["inc", "add", "pair", "split"])
def test_rows_of_an_op_give_the_stored_calls(storage: Storage, name: str) -> None:
    _fill(storage)
    backend = storage.backend
    assert _calls_of(
        backend.columns.load_call_rows_of_op(name), backend.columns.load_call_details
    ) == _normalized(backend.calls.load_calls_of_op(name))


def test_rows_touching_refs_and_by_key_give_the_stored_calls(storage: Storage) -> None:
    _fill(storage)
    backend = storage.backend
    calls = backend.calls.load_calls_of_op("inc")
    outputs = [edge.history_key for call in calls for edge in call.outputs]
    for direction in (DIRECTION_IN, DIRECTION_OUT):
        assert _calls_of(
            backend.columns.load_call_rows_touching(outputs, direction),
            backend.columns.load_call_details,
        ) == _normalized(backend.calls.load_calls_touching(outputs, direction))
    keys = [call.history_key for call in calls] + [b"\x00" * 16, b"not a key"]
    assert _calls_of(
        backend.columns.load_call_rows_set(keys), backend.columns.load_call_details
    ) == _normalized(calls)
    assert blocks_from_rows(backend.columns.load_call_rows_set([])) == []


def test_values_load_alike_through_a_join_and_through_in_lists(storage: Storage) -> None:
    with storage:
        for x in range(6000):  # past the size where the join takes over
            inc(x)
    backend = storage.backend
    keys = [
        edge.content_key for call in backend.calls.load_calls_of_op("inc") for edge in call.outputs
    ]
    joined = backend.values.load_values_set(keys)
    assert len(joined) == 6000
    sample = keys[:50]
    assert {k: joined[k] for k in sample} == backend.values.load_values(sample)


def test_equal_length_list_values_stay_whole_in_a_table() -> None:
    storage = Storage()
    with storage:
        for x in range(3):
            pair(x)
    df = storage.cf(pair).df(include_calls=False)
    assert sorted(map(tuple, df["p"])) == [(0, 1), (1, 2), (2, 3)]


# ---------------------------------------------------------------------------- generated calls

_keys = shared.keys | st.binary(min_size=15, max_size=15).map(
    lambda b: b + b"\x00"  # trailing NUL: numpy bytes arrays would drop it
)


@st.composite
def _stored_calls(draw: Any) -> list[StoredCall]:
    names = ["a", "b", "elts_0", "elts_1", "x"]
    calls = []
    count = draw(st.integers(0, 12))
    keys = draw(st.lists(_keys, min_size=3 * count, max_size=3 * count, unique=True))
    for i in range(count):
        op_name = draw(st.sampled_from(["f", "g", "__make_list__"]))
        version = draw(st.integers(0, 1))
        inputs = draw(st.lists(st.sampled_from(names), unique=True, max_size=4))
        outputs = draw(st.lists(st.sampled_from(["output_0", "y"]), unique=True, max_size=2))
        ref = keys[3 * i + 1]
        kind = 4 * (ref[0] % 2)  # a ref has one kind: an atom (0) or a pointer (4)
        calls.append(
            StoredCall(
                keys[3 * i],
                keys[3 * i + 2],
                op_name,
                version,
                draw(st.none() | st.just("s1")),
                None,
                draw(st.none() | st.floats(0, 1e9)),
                None,
                tuple(StoredOutput(n, ref, ref, kind) for n in sorted(inputs)),
                tuple(StoredOutput(n, ref, ref, kind) for n in sorted(outputs)),
            )
        )
    return calls


def _rows_of(calls: list[StoredCall], seed: int) -> tuple[CallRows, Any]:
    """Rows of ``calls`` in a shuffled order; with their details, or (odd seeds) without them
    and with a reader of the details by call id."""
    ops = {}
    heads, edges = [], []
    details: dict[int, tuple] = {}
    for number, call in enumerate(calls):
        op_id = 10 + 2 * ["f", "g", "__make_list__"].index(call.op_name) + call.op_version
        ops[op_id] = (call.op_name, call.op_version)
        call_id = 1000 - 7 * number  # ids in no particular order
        heads.append((call_id, call.history_key, op_id))
        details[call_id] = (call.content_key, *call[4:8])
        for direction, side in ((DIRECTION_IN, call.inputs), (DIRECTION_OUT, call.outputs)):
            edges += [(call_id, direction, *edge) for edge in side]
    shuffler = random.Random(seed)
    shuffler.shuffle(heads)
    shuffler.shuffle(edges)

    def load_heads(call_ids: list[int]) -> list[list]:
        return [list(column) for column in zip(*map(details.__getitem__, call_ids))]

    given = [details[head[0]] for head in heads]
    rows = CallRows(
        tuple(map(list, zip(*heads))) if heads else tuple([] for _ in range(3)),
        tuple(map(list, zip(*edges))) if edges else tuple([] for _ in range(6)),
        ops,
        None if seed % 2 else (tuple(map(list, zip(*given))) if given else None),
    )
    return rows, load_heads


@settings(deadline=None, max_examples=60)
@given(calls=_stored_calls(), seed=st.integers(0, 2**16))
def test_blocks_give_back_the_calls_whatever_the_row_order(calls: list, seed: int) -> None:
    rows, load_heads = _rows_of(calls, seed)
    assert _calls_of(rows, load_heads) == set(calls)
    blocks = blocks_from_rows(rows, load_heads)
    assert sum(map(len, blocks)) == len(calls)
    for block in blocks:  # one op version and one signature per block
        signatures = {
            (
                c.op_name,
                c.op_version,
                tuple(e.name for e in c.inputs),
                tuple(e.name for e in c.outputs),
            )
            for c in calls
            if c.history_key in set(block.keys)
        }
        assert signatures == {
            (block.op_name, block.op_version, tuple(block.inputs), tuple(block.outputs))
        }
    assert _calls_of(rows_from_calls(calls)) == set(calls)


class _NoSource:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the index asked its source for {name}")


@settings(deadline=None, max_examples=60)
@given(calls=_stored_calls(), data=st.data())
def test_index_pairs_match_a_call_by_call_scan(calls: list, data: Any) -> None:
    index = ElementIndex(_NoSource())  # type: ignore[arg-type]
    half = len(calls) // 2
    index.add_calls(calls[:half])
    index.add_calls(calls)  # known calls are not indexed twice
    assert len(index.calls) == len(calls)
    chosen = data.draw(
        st.sets(st.sampled_from([c.history_key for c in calls]) if calls else st.nothing())
    )
    for op_name in ("f", "g", "__make_list__"):
        for label in ("a", "x", "elts", "y", "output_0"):
            for is_input in (True, False):
                expected = sorted(
                    (call.history_key, edge.history_key)
                    for call in calls
                    if call.op_name == op_name and call.history_key in chosen
                    for edge in (call.inputs if is_input else call.outputs)
                    if (
                        ("elts" if op_name == "__make_list__" else edge.name)
                        if is_input
                        else edge.name
                    )
                    == label
                )
                found = index.pairs(op_name, chosen, label, is_input)
                assert sorted(zip(*found)) == expected
    for call in calls:
        assert index.calls[call.history_key] == call


@pytest.mark.parametrize("enabled", [True, False])
def test_paused_gc_restores_the_collector_state(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        with pytest.raises(KeyError), paused_gc():
            assert not gc.isenabled()
            raise KeyError("inside")
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_a_large_table_loads_its_values_in_bulk_and_still_checks_them(tmp_path: Any) -> None:
    storage = Storage(str(tmp_path / "s.db"))
    with storage:
        for x in range(6000):  # past the size where values are read as rows
            inc(x)
    df = storage.cf(inc).df(include_calls=False)
    assert sorted(zip(df["x"], df["y"])) == [(x, x + 1) for x in range(6000)]
    [(content_key,)] = storage.backend.core.execute(
        "SELECT e.content_key FROM call_edges e WHERE e.direction = 1 LIMIT 1"
    ).fetchall()
    storage.backend.core.execute(
        "UPDATE stored_values SET data = ? WHERE content_key = ?", (b"garbage", content_key)
    )
    with pytest.raises(CorruptValueError, match="checksum"):
        Storage(str(tmp_path / "s.db")).cf(inc).df(include_calls=False)
