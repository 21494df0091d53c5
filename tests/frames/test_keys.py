"""Keys as integer ids: a key table gives each key one id, and a key set behaves as a set of keys."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mandala.frames.keys import KeySet, KeyTable, key_array
from mandala.hashing.key_table import KeySequence, key_list, positions_in
from tests.harness import strategies as shared

# keys from a small pool, so that sets overlap; some share their first 8 bytes (the lookup
# word) and some end in zero bytes (a numpy bytes item would drop those)
_pool = st.sampled_from(
    [bytes([i]) * 16 for i in range(6)]
    + [b"\x07" * 8 + bytes([i]) * 8 for i in range(4)]
    + [b"\x09" * 15 + b"\x00", b"\x09" * 14 + b"\x00\x00", b"\x00" * 16]
)
_key_lists = st.lists(_pool | shared.keys, max_size=30)


@settings(deadline=None, max_examples=200)
@given(batches=st.lists(_key_lists, max_size=5))
def test_a_key_keeps_one_id_and_reads_back(batches: list[list[bytes]]) -> None:
    table = KeyTable()
    seen: dict[bytes, int] = {}
    for batch in batches:
        ids = table.intern(key_array(batch)).tolist()
        for key, key_id in zip(batch, ids):
            assert seen.setdefault(key, key_id) == key_id
        assert table.to_bytes(np.asarray(ids, dtype=np.int64)) == batch
    assert sorted(seen.values()) == list(range(len(seen)))
    probe = list(seen) + [b"\x05" * 15 + b"\x06", b"\x07" * 8 + b"\x63" * 8]
    found = table.find(key_array(probe)).tolist()
    assert found == [seen.get(key, -1) for key in probe]
    for key in probe:
        assert table.id_of(key) == seen.get(key, -1)
    assert table.id_of(b"short") == -1


@settings(deadline=None, max_examples=200)
@given(keys=_key_lists, data=st.data())
def test_a_key_array_reads_back_as_the_keys_it_holds(keys: list[bytes], data: Any) -> None:
    array = key_array(keys)
    assert key_list(array) == keys
    sequence = KeySequence(array)
    assert len(sequence) == len(keys) and list(sequence) == keys
    for index in range(-len(keys), len(keys)):
        assert sequence[index] == keys[index]
    for index in (len(keys), -len(keys) - 1):
        with pytest.raises(IndexError):
            sequence[index]
    start = data.draw(st.integers(-40, 40) | st.none())
    stop = data.draw(st.integers(-40, 40) | st.none())
    step = data.draw(st.sampled_from([None, 1, 2, -1, -3]))
    assert sequence[start:stop:step] == keys[start:stop:step]


@settings(deadline=None, max_examples=300)
@given(haystack=_key_lists, needles=_key_lists)
def test_keys_are_found_at_their_positions(haystack: list[bytes], needles: list[bytes]) -> None:
    distinct = list(dict.fromkeys(haystack))
    found = positions_in(key_array(distinct), key_array(needles)).tolist()
    position = {key: i for i, key in enumerate(distinct)}
    assert found == [position.get(key, -1) for key in needles]


_ops = [operator.or_, operator.and_, operator.sub, operator.xor]
_tests = [operator.le, operator.lt, operator.ge, operator.gt, operator.eq, operator.ne]


@settings(deadline=None, max_examples=200)
@given(a=_key_lists, b=_key_lists, shared=st.booleans(), data=st.data())
def test_a_key_set_behaves_as_a_set_of_keys(
    a: list[bytes], b: list[bytes], shared: bool, data: Any
) -> None:
    table = KeyTable()
    left = KeySet.of_keys(table, a)
    right: Any = KeySet.of_keys(table, b) if shared else set(b)
    model_a, model_b = set(a), set(b)
    assert set(left) == model_a and len(left) == len(model_a)
    for op in _ops:
        assert set(op(left, right)) == op(model_a, model_b)
        assert set(op(right, left)) == op(model_b, model_a)
        inplace = left.copy()
        inplace = {
            operator.or_: operator.ior,
            operator.and_: operator.iand,
            operator.sub: operator.isub,
            operator.xor: operator.ixor,
        }[op](inplace, right)
        assert set(inplace) == op(model_a, model_b)
        assert set(left) == model_a  # the copy was changed, not the original
    for test in _tests:
        assert test(left, right) == test(model_a, model_b)
        assert test(right, left) == test(model_b, model_a)
    assert left.isdisjoint(b) == model_a.isdisjoint(model_b)
    assert left.issuperset(b) == model_a.issuperset(model_b)
    assert left.issubset(b) == model_a.issubset(model_b)
    assert left.union(b, a) == model_a | model_b
    assert left.intersection(b) == model_a & model_b
    assert left.difference(b) == model_a - model_b
    for key in a + b + [b"not a key"]:
        assert (key in left) == (key in model_a)
    # changes one key at a time, then bulk algebra again
    changing = left.copy()
    model = set(model_a)
    for key in data.draw(st.lists(_pool, max_size=8)):
        if data.draw(st.booleans()):
            changing.add(key)
            model.add(key)
        else:
            changing.discard(key)
            model.discard(key)
        assert (key in changing) == (key in model)
    assert set(changing) == model
    assert set(changing | right) == model | model_b
    assert set(changing - right) == model - model_b
    assert changing == model


def test_many_membership_tests_and_a_large_set() -> None:
    table = KeyTable()
    rng = np.random.default_rng(5)
    keys = [bytes(k) for k in rng.integers(0, 256, size=(5000, 16), dtype=np.uint8)]
    every = KeySet.of_keys(table, keys)
    half = KeySet.of_keys(table, keys[::2])
    assert len(every) == len(set(keys))
    assert half <= every and not every <= half
    assert set(every - half) == set(keys[1::2]) - set(keys[::2])
    assert all(key in half for key in keys[::2])
    assert not any(key in half for key in keys[1::2] if key not in set(keys[::2]))


def test_a_key_of_another_length_is_refused() -> None:
    table = KeyTable()
    with pytest.raises(ValueError, match="16 bytes"):
        KeySet.of_keys(table, [b"short"])
    with pytest.raises(ValueError, match="16 bytes"):
        KeySet(table).add(b"short")
    with pytest.raises(ValueError, match="16 bytes"):
        KeySet(table) | [b"short"]
    # looking a non-key up finds nothing, as in a set of keys
    assert not KeySet.of_keys(table, [b"k" * 16]) & [b"short", "text"]
    assert KeySet.of_keys(table, [b"k" * 16]) - [b"short"] == {b"k" * 16}
