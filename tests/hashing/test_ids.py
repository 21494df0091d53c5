"""Derived ids: pinned digests for every function of ``mandala.hashing.ids``, plus invariants."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from blake3 import blake3
from hypothesis import given
from hypothesis import strategies as st

from mandala.hashing.ids import (
    UNKNOWN_GLOBAL_CONTENT,
    atom_history_key,
    call_key,
    code_content_key,
    dict_key,
    global_content_key,
    list_key,
    op_key,
    output_history_key,
    pointer_key,
    set_key,
    version_key,
)
from tests.harness.strategies import keys, names

A = bytes(range(16))
B = bytes(range(16, 32))
C = bytes(range(32, 48))
OP = op_key("train", 0)

GOLDEN_CASES: dict[str, Callable[[], bytes]] = {
    "op_key": lambda: op_key("train", 0),
    "op_key_versioned": lambda: op_key("train", 3),
    "op_key_unicode": lambda: op_key("überop", 0),
    "atom_history_key": lambda: atom_history_key(A),
    "call_key_no_inputs": lambda: call_key(OP, []),
    "call_key": lambda: call_key(OP, [("x", A), ("lr", B)]),
    "call_key_semantic": lambda: call_key(OP, [("x", A), ("lr", B)], semantic_version="abc123"),
    "call_key_empty_semantic": lambda: call_key(OP, [("x", A)], semantic_version=""),
    "output_history_key": lambda: output_history_key(A, "output_0"),
    "list_key_empty": lambda: list_key([]),
    "list_key": lambda: list_key([A, B, C]),
    "dict_key_empty": lambda: dict_key({}),
    "dict_key": lambda: dict_key({"b": B, "a": A}),
    "set_key": lambda: set_key([C, A, B]),
    "pointer_key": lambda: pointer_key(A),
    "code_content_key": lambda: code_content_key("def f(x):\n    return x"),
    "global_content_key": lambda: global_content_key(A),
    "version_key_content": lambda: version_key("content", [("m", "f", A), ("m", "g", B)]),
    "version_key_semantic": lambda: version_key("semantic", [("m", "f", A)]),
    "unknown_global_content": lambda: UNKNOWN_GLOBAL_CONTENT,
}

GOLDEN_HEX: dict[str, str] = {
    "op_key": "6667950d063a0717d60c5971dcd206d6",
    "op_key_versioned": "ef94c98374354897cd200009259a03f4",
    "op_key_unicode": "1062497ad6cca74fb082fcb791376d97",
    "atom_history_key": "bfd669a9ca70104a6918beaab2beb4c7",
    "call_key_no_inputs": "ddf422153f8973d4aa2703b57df11004",
    "call_key": "6b7a7f4b40f48fcdc8a39061be01b221",
    "call_key_semantic": "05c0849256b306a884713b9083c34894",
    "call_key_empty_semantic": "ef25b59e54cb3c7db11f8d326193110b",
    "output_history_key": "0d0f5a282d78faabfdabcc3f75dcb3e5",
    "list_key_empty": "05ea9187615fdc41d0aaa7c1ea9e00e3",
    "list_key": "0fcaaa54e88a845fa6d6e49822925c67",
    "dict_key_empty": "b84ca8a2993905c12378c7ad6da7eeec",
    "dict_key": "6cf333e5974e109bbe0682d885d7794f",
    "set_key": "60b947cd4dbd6712704ae78e4567d0de",
    "pointer_key": "f0f0e8a6d2744bd0980c22006b6bb239",
    "code_content_key": "f315e0eab3fe24ef4cc07c87816e6a8a",
    "global_content_key": "e83a7162fb58267752886354cc123fcd",
    "version_key_content": "eaf256080690c80e453c38f30898ac4f",
    "version_key_semantic": "051ac1d14d1efc5cec3f18892b3e0b41",
    "unknown_global_content": "8d2f2e9793c924b3d8c234ab788d58e8",
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_derived_id_matches_pinned_digest(case: str) -> None:
    assert GOLDEN_CASES[case]().hex() == GOLDEN_HEX[case]


def test_every_golden_case_is_pinned_and_distinct() -> None:
    assert sorted(GOLDEN_HEX) == sorted(GOLDEN_CASES)
    assert len(set(GOLDEN_HEX.values())) == len(GOLDEN_HEX)


# --- the documented preimages (docs/hashing.md, section 2) reproduce the keys ------------------


def _k(preimage: bytes) -> bytes:
    return blake3(preimage).digest(16)


def _name(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw


def test_documented_preimages_reproduce_the_keys() -> None:
    assert op_key("train", 3) == _k(b"mandala:op\0" + _name("train") + struct.pack("<q", 3))
    assert atom_history_key(A) == _k(b"mandala:atom-history\0" + A)
    assert call_key(OP, [("x", A), ("lr", B)], "v1") == _k(
        b"mandala:call\0" + OP + _name("lr") + B + _name("x") + A + b"\0semantic\0v1"
    )
    assert output_history_key(A, "out") == _k(b"mandala:output\0" + A + _name("out"))
    assert list_key([B, A]) == _k(b"mandala:list\0" + struct.pack("<Q", 2) + B + A)
    assert dict_key({"b": B, "a": A}) == _k(
        b"mandala:dict\0" + struct.pack("<Q", 2) + _name("a") + A + _name("b") + B
    )
    assert set_key([B, A, B]) == _k(b"mandala:set\0" + struct.pack("<Q", 2) + A + B)
    assert pointer_key(A) == _k(b"mandala:pointer\0" + A)


# --- invariants ---------------------------------------------------------------------------------


@given(
    st.dictionaries(st.tuples(names, names), keys, max_size=6),
    st.randoms(),
    st.sampled_from(["content", "semantic"]),
)
def test_version_key_does_not_depend_on_component_order(components, rnd, kind) -> None:
    rows = [(module, qualname, key) for (module, qualname), key in components.items()]
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert version_key(kind, rows) == version_key(kind, shuffled)
    other = "semantic" if kind == "content" else "content"
    assert version_key(kind, rows) != version_key(other, rows)


@given(st.dictionaries(st.tuples(names, names), keys, min_size=1, max_size=6), keys)
def test_version_key_changes_with_any_component(components, replacement) -> None:
    rows = [(module, qualname, key) for (module, qualname), key in components.items()]
    changed = [*rows[:-1], (rows[-1][0], rows[-1][1], replacement)]
    if replacement != rows[-1][2]:
        assert version_key("content", rows) != version_key("content", changed)
    assert version_key("content", rows) != version_key("content", rows[:-1])


@given(st.dictionaries(names, keys, max_size=6), st.randoms())
def test_call_key_does_not_depend_on_input_order(inputs: dict[str, bytes], rnd) -> None:
    pairs = list(inputs.items())
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    assert call_key(OP, pairs) == call_key(OP, shuffled)
    assert call_key(OP, pairs, "s") == call_key(OP, shuffled, "s")


@given(st.dictionaries(names, keys, max_size=6), st.randoms())
def test_dict_key_does_not_depend_on_insertion_order(items: dict[str, bytes], rnd) -> None:
    pairs = list(items.items())
    rnd.shuffle(pairs)
    assert dict_key(dict(pairs)) == dict_key(items)


@given(st.lists(keys, max_size=6), st.randoms())
def test_set_key_ignores_order_and_duplicates(elements: list[bytes], rnd) -> None:
    shuffled = elements + elements
    rnd.shuffle(shuffled)
    assert set_key(shuffled) == set_key(elements)


@given(st.lists(keys, min_size=2, max_size=6, unique=True))
def test_list_key_depends_on_order(elements: list[bytes]) -> None:
    assert list_key(elements) != list_key(list(reversed(elements)))


@given(names, names)
def test_different_names_give_different_keys(first: str, second: str) -> None:
    if first == second:
        return
    assert op_key(first, 0) != op_key(second, 0)
    assert output_history_key(A, first) != output_history_key(A, second)
    assert call_key(OP, [(first, A)]) != call_key(OP, [(second, A)])
    assert dict_key({first: A}) != dict_key({second: A})


def test_versions_and_semantic_versions_change_the_keys() -> None:
    assert op_key("f", 0) != op_key("f", 1)
    inputs = [("x", A)]
    plain = call_key(OP, inputs)
    assert plain != call_key(OP, inputs, semantic_version="")
    assert call_key(OP, inputs, "a") != call_key(OP, inputs, "b")
    assert call_key(OP, inputs) != call_key(op_key("train", 1), inputs)


def test_kinds_never_collide_on_the_same_material() -> None:
    produced = {
        atom_history_key(A),
        pointer_key(A),
        list_key([A]),
        set_key([A]),
        dict_key({"": A}),
        output_history_key(A, ""),
    }
    assert len(produced) == 6


def test_names_are_length_prefixed() -> None:
    # Without the prefix, ("ab", key) and ("a", "b" + key[:-1]) could share a preimage.
    assert call_key(OP, [("ab", A)]) != call_key(OP, [("a", b"b" + A[:-1])])
    assert dict_key({"ab": A, "c": B}) != dict_key({"a": b"b" + A[:-1], "c": B})
