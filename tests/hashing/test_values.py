"""Content keys of values: pinned digests, invariants, determinism across processes, errors."""

from __future__ import annotations

import copy
import datetime
import json
import math
import os
import struct
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from blake3 import blake3
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.extra import pandas as hpd

from mandala.errors import UnhashableValueError
from mandala.hashing import values
from mandala.hashing.digest import digest
from mandala.hashing.values import canonical_encoding, content_key, register_content_hasher
from tests.harness.strategies import builtin_values, hashables, scalars

REPO_ROOT = Path(__file__).resolve().parents[2]


class Described:
    """Hashes through ``__get_mandala_dict__`` (the class name does not enter the key)."""

    def __init__(self, a: int, b: str) -> None:
        self.a, self.b = a, b

    def __get_mandala_dict__(self) -> dict[str, object]:
        return {"a": self.a, "b": self.b}


def _generator():
    yield 1


# --- golden keys: changing any of these is a breaking change (see docs/hashing.md) --------------

GOLDEN_CASES: dict[str, Callable[[], object]] = {
    "none": lambda: None,
    "true": lambda: True,
    "false": lambda: False,
    "int_0": lambda: 0,
    "int_1": lambda: 1,
    "int_-1": lambda: -1,
    "int_255": lambda: 255,
    "int_-129": lambda: -129,
    "int_big": lambda: 2**200 + 7,
    "int_big_negative": lambda: -(3**150),
    "float_1": lambda: 1.0,
    "float_0": lambda: 0.0,
    "float_-0": lambda: -0.0,
    "float_nan": lambda: math.nan,
    "float_inf": lambda: math.inf,
    "float_-inf": lambda: -math.inf,
    "float_third": lambda: 1 / 3,
    "complex": lambda: complex(1.5, -2.0),
    "str_empty": lambda: "",
    "str_1": lambda: "1",
    "str_unicode": lambda: "héllo wörld ∑ 🐍",
    "str_surrogate": lambda: "\ud800",
    "bytes_empty": lambda: b"",
    "bytes_1": lambda: b"1",
    "bytearray": lambda: bytearray(b"1"),
    "tuple_empty": lambda: (),
    "tuple": lambda: (1, "a", None),
    "list_empty": lambda: [],
    "list": lambda: [1, "a", None],
    "dict_empty": lambda: {},
    "dict": lambda: {"b": 2, "a": 1},
    "dict_mixed_keys": lambda: {1: "int", "1": "str", (1,): "tuple", None: "none", 1.5: "f"},
    "set": lambda: {"x", "y", "z"},
    "frozenset": lambda: frozenset({"x", "y", "z"}),
    "nested": lambda: {"params": [1, 2.5, {"k": ("v", frozenset({3}))}], "tag": None},
    "np_float64_1d": lambda: np.arange(5, dtype=np.float64),
    "np_int32_2d": lambda: np.arange(6, dtype=np.int32).reshape(2, 3),
    "np_bool": lambda: np.array([True, False, True]),
    "np_uint8_3d": lambda: np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    "np_complex128": lambda: np.array([1 + 2j, -0.5j]),
    "np_unicode": lambda: np.array(["a", "bcd"]),
    "np_datetime64": lambda: np.array(["2020-01-01", "NaT"], dtype="datetime64[s]"),
    "np_structured": lambda: np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "<i4"), ("b", "<f8")]),
    "np_0d": lambda: np.array(7.0),
    "np_empty": lambda: np.zeros((0, 3)),
    "np_big_endian": lambda: np.arange(3, dtype=">i4"),
    "np_transposed": lambda: np.arange(6, dtype=np.float64).reshape(2, 3).T,
    "np_strided": lambda: np.arange(10, dtype=np.int64)[::3],
    "np_fortran": lambda: np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
    "np_object": lambda: np.array([1, "a", None, (2, 3)], dtype=object),
    "np_scalar_float32": lambda: np.float32(1.5),
    "np_scalar_int64": lambda: np.int64(1),
    "np_scalar_bool": lambda: np.bool_(True),
    "np_scalar_str": lambda: np.str_("a"),
    "np_scalar_datetime": lambda: np.datetime64("2020-01-01T00:00:00", "s"),
    "df_simple": lambda: pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, np.nan]}),
    "df_extension": lambda: pd.DataFrame(
        {
            "cat": pd.Categorical(["u", "v", "u"]),
            "s": pd.array(["x", None, "z"], dtype="str"),
            "n": pd.array([1, None, 3], dtype="Int64"),
            "t": pd.date_range("2020-01-01", periods=3, tz="Europe/Paris"),
            "naive": pd.date_range("2020-01-01", periods=3),
            "o": pd.Series([1, "a", None], dtype=object),
        }
    ),
    "df_multiindex": lambda: pd.DataFrame(
        {"v": [1.0, 2.0]}, index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "i"])
    ),
    "series": lambda: pd.Series([1.0, 2.0], index=["x", "y"], name="s"),
    "index": lambda: pd.Index([3, 1, 2], name="ix"),
    "range_index": lambda: pd.RangeIndex(4),
    "pd_array": lambda: pd.array([True, None], dtype="boolean"),
    "pickled_namespace": lambda: types.SimpleNamespace(b=2, a={"q", "r", "s"}, c=[1.5]),
    "pickled_date": lambda: datetime.date(2024, 2, 29),
    "mandala_dict": lambda: Described(1, "x"),
}

GOLDEN_HEX: dict[str, str] = {
    "none": "34ab8b65c2622b75106dba567a23b032",
    "true": "3d5ce082d3e6c13e406b078e5157bb6a",
    "false": "542a1d6b133a93a2b22779029c14f780",
    "int_0": "f37edcc9bb8f3222ea3670eb5cdc9980",
    "int_1": "d1d7c5f888c745e2d9cfef4819121cf7",
    "int_-1": "ac3d6b4768bc30819f2277def0ee14d4",
    "int_255": "33268d4843c12c4ac34b41ca781970ab",
    "int_-129": "1c2706ad5d94e8056fcfd9e7d10f05fa",
    "int_big": "6632e0323d4a8459da742abaf970d05f",
    "int_big_negative": "750527541b931a576d69ac2f304f24a9",
    "float_1": "a94f21935469ff1af6aa6072c8266aed",
    "float_0": "9925494339f5d628d824d6611de31d0c",
    "float_-0": "05af4945872009a34e79d38236ee40a7",
    "float_nan": "408a4d8aa4e2d1a459772cdf572d92c1",
    "float_inf": "dab4518964e87d6aeccef8bc0b33e00c",
    "float_-inf": "1f28d7f8b27fa309a9bde1002c5acc40",
    "float_third": "ba07dc75d3c8043256765ba5afea012a",
    "complex": "203245b8fc9d6fd8a4ec939cda52ab7c",
    "str_empty": "7f31207b6b43aba78e8c5d446676f651",
    "str_1": "80fb23ee5f67788c87187edd3ad436fb",
    "str_unicode": "2cdae09a3548cabe6de892ed6471cd52",
    "str_surrogate": "22f17f0f09e4be09e4231666a343cf07",
    "bytes_empty": "7273bfcf01fe9d98c9efdeabfbdb8454",
    "bytes_1": "70a2b065b895d6d3cbcac7256eb860e8",
    "bytearray": "70cc0556ae4da158839ec04d6c76aa7f",
    "tuple_empty": "d3880a5b93036646bb038a9895a4f1ac",
    "tuple": "148334afa5abef7e67d41565f45195c3",
    "list_empty": "d1d85ec98ffa31572fe21ae6ffb6d2e7",
    "list": "be5450c35d2fbadedde671ec5f5be153",
    "dict_empty": "3af6451e1efae9e9b5616d4af92e58b3",
    "dict": "ea84d6b12d05cb2190610a97bf9f0444",
    "dict_mixed_keys": "58a272d2b17ce7dbcd530187eca20478",
    "set": "e68580964950b034f5371ecb0a2e654b",
    "frozenset": "69f58b080d81d083872efe46349f88ae",
    "nested": "c37a5bc2f65591f71101b71fb62bab13",
    "np_float64_1d": "9181bd269a650aeca574bbc1cc50de84",
    "np_int32_2d": "677b41d49b2bbe45a4f6e3a6179dcbf7",
    "np_bool": "8790c128101460e3f4a64d271cb6ace5",
    "np_uint8_3d": "50d41ad0ed5258849c2ac4f348aff348",
    "np_complex128": "0d0043879ddc01bb9c90ceface25608b",
    "np_unicode": "3e66042e11b03b1aadd7f93572894846",
    "np_datetime64": "eb6695eec80aecda0f7bb5ec153fda3a",
    "np_structured": "02a07cb9e9e650a20749036eda332bdc",
    "np_0d": "07c236ea558303275fcafd84652af8ac",
    "np_empty": "23ee317057cc3cf6f4a69fc07913deb3",
    "np_big_endian": "6694625a75ba115a29d58dd1f9a47ab7",
    "np_transposed": "6fadb84db6875a700e5d7515651d7789",
    "np_strided": "29498c2c84ef1644a7972584d7cb30b2",
    "np_fortran": "c8856249d0f74f2114f22c83b3cb7580",
    "np_object": "f0d312c3e91cf3a4bd898fc8051ab5f0",
    "np_scalar_float32": "b6f455941a77bce95911dbb8aebbdba0",
    "np_scalar_int64": "9700e3652fefb65d77637e739458bbd0",
    "np_scalar_bool": "257eabd63c40faf27a821619136f5f22",
    "np_scalar_str": "d0015f2dfdd65b0b6384043ca792e9f1",
    "np_scalar_datetime": "870843788a9fc9c0d83f51b3e17632c4",
    "df_simple": "ae48ad4a2f6c6637fe9b3241cba6bfb4",
    "df_extension": "59dac9686bdf014223313ce550110872",
    "df_multiindex": "931886b386be3f9bdc48415e24c0e962",
    "series": "3e9f761ccfcf0cefd5f1aa9b59f889db",
    "index": "062fc07cae23d6867320a57c2691c739",
    "range_index": "021d14691230df797f915d82a85c377b",
    "pd_array": "f0ac3b7abefb763f3bd2a4dbfaf2c9ea",
    "pickled_namespace": "ba455f1217b5c57f2c55b7cd3c57892f",
    "pickled_date": "6be35869ca82235621905caf7550dae3",
    "mandala_dict": "144be293a2bf51d6ccc96dbf2cd9d3e7",
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_content_key_matches_pinned_digest(case: str) -> None:
    assert content_key(GOLDEN_CASES[case]()).hex() == GOLDEN_HEX[case]


def test_every_golden_case_is_pinned() -> None:
    assert sorted(GOLDEN_HEX) == sorted(GOLDEN_CASES)


def test_golden_keys_are_all_distinct() -> None:
    # Equal values appear on purpose only in pairs that must collide (none here).
    assert len(set(GOLDEN_HEX.values())) == len(GOLDEN_HEX)


# --- the documented layout reproduces the keys (docs/hashing.md) --------------------------------


def _k(preimage: bytes) -> bytes:
    return blake3(preimage).digest(16)


def _u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def _str(s: str) -> bytes:
    raw = s.encode("utf-8")
    return b"s" + _u64(len(raw)) + raw


def test_documented_examples_of_scalar_encodings() -> None:
    assert canonical_encoding(1) == bytes.fromhex("69010000000000000001")
    assert canonical_encoding(-1) == bytes.fromhex("690100000000000000ff")
    assert canonical_encoding(256) == bytes.fromhex("6902000000000000000001")
    assert canonical_encoding("ab") == bytes.fromhex("7302000000000000006162")
    assert canonical_encoding(None) == b"N"
    assert canonical_encoding(True) == b"T"
    assert canonical_encoding(False) == b"F"
    assert canonical_encoding(1.5) == b"f" + struct.pack("<d", 1.5)
    assert canonical_encoding(-math.nan) == b"f" + bytes.fromhex("000000000000f87f")
    assert canonical_encoding(b"xy") == b"b" + _u64(2) + b"xy"
    assert canonical_encoding(2j) == b"c" + struct.pack("<dd", 0.0, 2.0)


def test_documented_layout_reproduces_container_keys() -> None:
    e1, ea = canonical_encoding(1), _str("a")
    assert content_key((1, "a")) == _k(b"t" + _u64(2) + e1 + ea)
    assert content_key([1, "a"]) == _k(b"l" + _u64(2) + e1 + ea)
    entries = sorted([(_str("b"), canonical_encoding(2)), (_str("a"), e1)])
    assert content_key({"b": 2, "a": 1}) == _k(b"d" + _u64(2) + b"".join(k + v for k, v in entries))
    elements = b"".join(sorted([_str("x"), _str("y")]))
    assert content_key({"y", "x"}) == _k(b"e" + _u64(2) + elements)
    assert content_key(frozenset({"y", "x"})) == _k(b"z" + _u64(2) + elements)
    assert content_key(Described(1, "x")) == _k(b"M" + canonical_encoding({"a": 1, "b": "x"}))


def test_documented_layout_reproduces_array_keys() -> None:
    array = np.arange(6, dtype="<f8").reshape(2, 3)
    header = b"A" + _str("<f8") + _u64(2) + _u64(2) + _u64(3)
    assert content_key(array) == _k(header + _k(array.tobytes()))
    assert content_key(array.T) == _k(
        b"A" + _str("<f8") + _u64(2) + _u64(3) + _u64(2) + _k(array.T.tobytes(order="C"))
    )
    scalar = np.float32(1.5)
    assert content_key(scalar) == _k(b"n" + _str("<f4") + _u64(4) + scalar.tobytes())
    objects = np.array([1, "a"], dtype=object)
    assert content_key(objects) == _k(
        b"A" + _str("|O") + _u64(1) + _u64(2) + _k(canonical_encoding(1) + _str("a"))
    )


def test_documented_layout_reproduces_frame_key() -> None:
    frame = pd.DataFrame({"a": np.array([1.0, 2.0])}, index=pd.Index([5, 6], name="i"))
    columns = b"I" + b"N" + b"x" + _str("str") + canonical_encoding(np.array(["a"], dtype=object))
    index = b"I" + _str("i") + canonical_encoding(np.array([5, 6]))
    column = canonical_encoding(np.array([1.0, 2.0]))
    assert content_key(frame) == _k(b"D" + columns + index + _u64(1) + column)


def test_content_key_is_the_digest_of_the_canonical_encoding() -> None:
    for factory in GOLDEN_CASES.values():
        value = factory()
        assert content_key(value) == digest(canonical_encoding(value))


# --- distinctions -------------------------------------------------------------------------------


def test_values_that_python_considers_equal_get_different_keys_across_types() -> None:
    same_looking = [1, True, 1.0, 1 + 0j, np.int64(1), np.float64(1.0), np.int32(1), "1", b"1"]
    same_looking += [bytearray(b"1"), (1,), [1], {1}, frozenset({1}), np.array(1), np.array([1])]
    keys = [content_key(value) for value in same_looking]
    assert len(set(keys)) == len(keys)


def test_signed_zero_differs_and_every_nan_is_the_same() -> None:
    assert content_key(-0.0) != content_key(0.0)
    negative_nan = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000001))[0]
    assert math.isnan(negative_nan)
    assert content_key(negative_nan) == content_key(math.nan) == content_key(float("nan"))
    assert content_key(complex(math.nan, 0)) == content_key(complex(negative_nan, 0))


def test_mandala_dict_does_not_collide_with_the_plain_dict() -> None:
    assert content_key(Described(1, "x")) != content_key({"a": 1, "b": "x"})
    assert content_key(Described(1, "x")) == content_key(Described(1, "x"))
    assert content_key(Described(1, "x")) != content_key(Described(2, "x"))


def test_numpy_scalars_are_tagged_with_their_dtype() -> None:
    keys = {content_key(np.float32(1.5)), content_key(np.float64(1.5)), content_key(1.5)}
    keys |= {content_key(np.float16(1.5)), content_key(np.array(1.5, dtype=np.float32))}
    assert len(keys) == 5


def test_array_dtype_shape_and_byte_order_count() -> None:
    base = np.arange(6, dtype=np.int64)
    variants = [base, base.astype(np.int32), base.reshape(2, 3), base.reshape(3, 2)]
    variants += [base.astype(">i8"), base.astype(np.float64), base.astype(object)]
    assert len({content_key(v) for v in variants}) == len(variants)


def test_memmap_hashes_like_the_array(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    mapped = np.memmap(tmp_path / "m.bin", dtype=np.float32, mode="w+", shape=(3, 4))
    mapped[:] = array
    assert content_key(mapped) == content_key(array)


def test_array_subclasses_are_not_mistaken_for_plain_arrays() -> None:
    data = np.array([1.0, 2.0, 3.0])
    masked = np.ma.masked_array(data, mask=[False, True, False])
    assert content_key(masked) != content_key(data)
    assert content_key(masked) != content_key(np.ma.masked_array(data, mask=[True, False, False]))


# --- non-contiguous arrays ----------------------------------------------------------------------


def test_large_non_contiguous_arrays_are_hashed_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(values, "_CHUNK_BYTES", 64)  # forces both chunking branches
    array = np.arange(40 * 30, dtype=np.float64).reshape(40, 30)
    for view in (array.T, array[::2, ::3], np.asfortranarray(array), array[:, ::-1]):
        assert not view.flags.c_contiguous
        assert content_key(view) == content_key(np.ascontiguousarray(view))


@settings(deadline=None, max_examples=60)
@given(
    hnp.arrays(
        dtype=st.one_of(hnp.scalar_dtypes(), hnp.datetime64_dtypes(), hnp.byte_string_dtypes()),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5),
    ),
    st.sampled_from(["T", "F", "step", "reverse"]),
)
def test_views_hash_like_their_c_contiguous_copy(array: np.ndarray, layout: str) -> None:
    if layout == "T":
        view = array.T
    elif layout == "F":
        view = np.asfortranarray(array)
    elif layout == "step":
        view = array[::2]
    else:
        view = array[::-1]
    assert content_key(view) == content_key(np.ascontiguousarray(view))
    assert content_key(view) == content_key(view.copy())


@settings(deadline=None, max_examples=60)
@given(
    hnp.arrays(
        dtype=st.one_of(hnp.scalar_dtypes(), hnp.unicode_string_dtypes()),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    )
)
def test_arrays_copy_and_key_length(array: np.ndarray) -> None:
    key = content_key(array)
    assert len(key) == 16
    assert content_key(array.copy()) == key
    if array.nbytes:
        changed = array.copy()
        flat = changed.reshape(-1).view(np.uint8)
        flat[0] ^= 1  # any changed byte changes the key
        assert content_key(changed) != key


# --- builtins: invariants -----------------------------------------------------------------------


def _strictly_equal(a: object, b: object) -> bool:
    """Equality that also compares types, signed zeros and NaNs (as the keys do)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))  # type: ignore[arg-type]
    if isinstance(a, complex):
        return _strictly_equal(a.real, b.real) and _strictly_equal(a.imag, b.imag)  # type: ignore[attr-defined]
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_strictly_equal, a, b))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return _strictly_equal(_canonical_items(a), _canonical_items(b))  # type: ignore[arg-type]
    if isinstance(a, (set, frozenset)):
        return _strictly_equal(_canonical_elements(a), _canonical_elements(b))  # type: ignore[arg-type]
    return a == b


def _canonical_items(d: dict[object, object]) -> list[tuple[object, object]]:
    return sorted(d.items(), key=lambda item: canonical_encoding(item[0]))


def _canonical_elements(s: set[object] | frozenset[object]) -> list[object]:
    return sorted(s, key=canonical_encoding)


@settings(max_examples=300)
@given(builtin_values)
def test_equal_values_get_equal_keys(value: object) -> None:
    key = content_key(value)
    assert len(key) == 16
    assert content_key(copy.deepcopy(value)) == key


@settings(max_examples=300)
@given(builtin_values, builtin_values)
def test_different_values_get_different_keys(a: object, b: object) -> None:
    assert (content_key(a) == content_key(b)) == _strictly_equal(a, b)


def _no_equal_but_different(elements: list[object]) -> bool:
    """No two elements compare equal while having different canonical encodings."""
    for i, a in enumerate(elements):
        for b in elements[i + 1 :]:
            if a == b and canonical_encoding(a) != canonical_encoding(b):
                return False
    return True


@given(st.dictionaries(hashables, builtin_values, max_size=6), st.randoms())
def test_dict_key_does_not_depend_on_insertion_order(d: dict[object, object], rnd) -> None:
    assume(_no_equal_but_different(list(d)))
    items = list(d.items())
    rnd.shuffle(items)
    assert content_key(dict(items)) == content_key(d)


@given(st.lists(hashables, max_size=8), st.randoms())
def test_set_key_does_not_depend_on_insertion_order(elements: list[object], rnd) -> None:
    # Python's own sets keep whichever of two equal elements came first ((None, 0) vs
    # (None, False)), so such sets really differ with the order; leave them out.
    assume(_no_equal_but_different(elements))
    shuffled = list(elements)
    rnd.shuffle(shuffled)
    assert content_key(set(shuffled)) == content_key(set(elements))
    assert content_key(frozenset(shuffled)) == content_key(frozenset(elements))


@given(st.integers())
def test_integers_differ_from_their_float_str_and_numpy_forms(n: int) -> None:
    forms = [n, float(n), str(n), str(n).encode(), [n], (n,)]
    if -(2**63) <= n < 2**63:
        forms.append(np.int64(n))
    assert len({content_key(form) for form in forms}) == len(forms)


@given(st.lists(scalars, max_size=5))
def test_tuple_and_list_differ(items: list[object]) -> None:
    assert content_key(tuple(items)) != content_key(list(items))


# --- pandas -------------------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})


def test_frames_differing_in_names_dtypes_or_index_differ() -> None:
    frame = _frame()
    variants = [
        frame,
        frame.rename(columns={"a": "z"}),
        frame.astype({"a": "int32"}),
        frame.astype({"a": "Int64"}),
        frame.set_axis([10, 11, 12]),
        frame.rename_axis("rows"),
        frame.rename_axis(columns="cols"),
        frame[["b", "a"]],
        frame.iloc[:2],
    ]
    assert len({content_key(v) for v in variants}) == len(variants)


def test_equal_frames_built_differently_hash_equal() -> None:
    frame = _frame()
    from_array = pd.DataFrame(np.array([[1.0, 0.5], [2.0, 1.5], [3.0, 2.5]]), columns=["a", "b"])
    from_array["a"] = from_array["a"].astype(np.int64)
    from_records = pd.DataFrame.from_records([(1, 0.5), (2, 1.5), (3, 2.5)], columns=["a", "b"])
    explicit_index = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]}, index=[0, 1, 2])
    reordered = frame[["b", "a"]][["a", "b"]]
    for other in (from_array, from_records, explicit_index, reordered, frame.copy()):
        assert content_key(other) == content_key(frame)


def test_extension_dtypes_hash_and_differ_from_numpy_ones() -> None:
    numbers = [1, 2, 3]
    columns = [
        pd.Series(numbers),
        pd.Series(numbers, dtype="Int64"),
        pd.Series(numbers, dtype="Float64"),
        pd.Series(numbers, dtype="category"),
        pd.Series([str(n) for n in numbers], dtype="str"),
        pd.Series([str(n) for n in numbers], dtype=object),
        pd.Series(pd.date_range("2020", periods=3)),
        pd.Series(pd.date_range("2020", periods=3, tz="UTC")),
        pd.Series(pd.date_range("2020", periods=3, tz="UTC").tz_convert("Asia/Tokyo")),
        pd.Series(pd.period_range("2020", periods=3, freq="D")),
    ]
    keys = [content_key(c) for c in columns]
    assert len(set(keys)) == len(keys)
    assert [content_key(c.copy(deep=True)) for c in columns] == keys


def test_nullable_and_missing_values_count() -> None:
    with_na = pd.Series([1, None, 3], dtype="Int64")
    with_zero = pd.Series([1, 0, 3], dtype="Int64")
    assert content_key(with_na) != content_key(with_zero)
    assert content_key(pd.Categorical(["a", None])) != content_key(pd.Categorical(["a", "a"]))


def test_range_index_equals_the_materialised_index() -> None:
    assert content_key(pd.RangeIndex(5)) == content_key(pd.Index(np.arange(5)))
    assert content_key(pd.RangeIndex(5)) != content_key(pd.Index(np.arange(5), name="n"))


@settings(deadline=None, max_examples=40)
@given(
    hpd.data_frames(
        [
            hpd.column("i", dtype=np.int64),
            hpd.column("f", dtype=np.float64),
            hpd.column("s", elements=st.text(max_size=3)),
        ],
        index=hpd.range_indexes(max_size=6),
    )
)
def test_frame_keys_do_not_depend_on_how_the_frame_was_built(frame: pd.DataFrame) -> None:
    rebuilt = pd.DataFrame({name: frame[name].to_list() for name in frame.columns})
    rebuilt = rebuilt.astype(frame.dtypes.to_dict()).set_axis(pd.Index(frame.index.to_numpy()))
    assert content_key(rebuilt) == content_key(frame)
    if len(frame):
        changed = frame.copy()
        changed.iloc[0, 0] = changed.iloc[0, 0] ^ 1
        assert content_key(changed) != content_key(frame)


# --- objects: pickle fallback, registration -----------------------------------------------------


class Node:
    """An object graph with a cycle (parent pointers) and a set in its state."""

    def __init__(self, name: str, parent: Node | None = None) -> None:
        self.name = name
        self.parent = parent
        self.children: list[Node] = []
        self.tags = {f"tag{i}" for i in range(10)}
        if parent is not None:
            parent.children.append(self)


def _tree(order: list[str]) -> Node:
    root = Node("root")
    for name in order:
        Node(name, root)
    return root


def test_objects_with_reference_cycles_hash_through_pickle() -> None:
    assert content_key(_tree(["a", "b"])) == content_key(_tree(["a", "b"]))
    assert content_key(_tree(["a", "b"])) != content_key(_tree(["b", "a"]))


def test_pickled_objects_ignore_attribute_order_and_string_aliasing() -> None:
    first = types.SimpleNamespace()
    first.a, first.b = "shared", "shared"
    second = types.SimpleNamespace()
    second.b = "".join(["sha", "red"])  # an equal but distinct str object
    second.a = "shared"
    assert first.a is first.b and second.a is not second.b
    assert content_key(first) == content_key(second)


def test_pickled_objects_route_arrays_through_their_canonical_key() -> None:
    array = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert content_key(types.SimpleNamespace(x=array.T)) == content_key(
        types.SimpleNamespace(x=np.ascontiguousarray(array.T))
    )
    assert content_key(types.SimpleNamespace(x=array)) != content_key(
        types.SimpleNamespace(x=array.astype(np.float32))
    )


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


class Point3(Point):
    pass


class Point4(Point3):
    pass


def test_registered_encoders_apply_to_subclasses_and_exact_types_win() -> None:
    register_content_hasher(Point, lambda p: (p.x, p.y), name="tests.Point")
    try:
        assert content_key(Point(1, 2)) == content_key(Point(1, 2))
        assert content_key(Point(1, 2)) != content_key((1, 2))
        assert content_key(Point3(1, 2)) == content_key(Point(1, 2))  # inherited registration
        register_content_hasher(Point3, lambda p: (p.x, p.y), name="tests.Point3")
        assert content_key(Point3(1, 2)) != content_key(Point(1, 2))  # exact registration wins
        assert content_key(Point4(1, 2)) == content_key(Point3(1, 2))  # nearest base in MRO
        assert canonical_encoding(Point(1, 2)) == (
            b"R" + _str("tests.Point") + canonical_encoding((1, 2))
        )
    finally:
        values._registered.pop(Point, None)
        values._registered.pop(Point3, None)
        values._resolved.clear()
        values._resolved.update(values._CONTAINERS)


def test_builtin_kinds_cannot_be_registered() -> None:
    with pytest.raises(ValueError, match="fixed canonical encoding"):
        register_content_hasher(int, str)
    with pytest.raises(TypeError):
        register_content_hasher("not a class", str)  # type: ignore[arg-type]


def test_torch_tensors_are_tagged_apart_from_numpy() -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert content_key(tensor) == content_key(tensor.clone())
    assert content_key(tensor) != content_key(tensor.numpy())
    assert content_key(tensor) != content_key(tensor.to(torch.float64))
    assert content_key(tensor.T) == content_key(tensor.T.contiguous())
    bf16 = tensor.to(torch.bfloat16)
    assert content_key(bf16) == content_key(bf16.clone())
    assert content_key(bf16) != content_key(tensor.to(torch.float16))
    assert content_key(tensor.requires_grad_(True)) == content_key(tensor.detach())


# --- determinism across processes ---------------------------------------------------------------

_SUBPROCESS_SCRIPT = textwrap.dedent(
    """
    import json, types
    from mandala.hashing.values import content_key
    words = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
    values = {
        "set": words,
        "frozenset": frozenset(words),
        "dict": {w: len(w) for w in words},  # insertion order follows the hash seed
        "mixed_dict": {1: "a", "1": "b", (2, "x"): None, frozenset(words): 3.5},
        "object": types.SimpleNamespace(tags=words, index={w: len(w) for w in words}),
    }
    print(json.dumps({name: content_key(v).hex() for name, v in values.items()}))
    """
)


def _keys_in_subprocess(hash_seed: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_keys_do_not_depend_on_the_hash_seed() -> None:
    first, second = _keys_in_subprocess("0"), _keys_in_subprocess("4242")
    assert first == second
    assert len(set(first.values())) == len(first)


def test_hashing_builtins_imports_neither_numpy_nor_pandas() -> None:
    script = (
        "import sys; from mandala.hashing.values import content_key;"
        "content_key({'a': [1, 2.5, ('x', None)], 'b': {1, 2}}); content_key(object());"
        "print(sorted(m for m in ('numpy', 'pandas', 'torch') if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (lambda: lambda x: x, "function"),
        (lambda: _generator(), "generator"),
        (lambda: threading.Lock(), "_thread.lock"),
        (lambda: {"nested": [1, threading.Lock()]}, "_thread.lock"),
    ],
    ids=["lambda", "generator", "lock", "nested_lock"],
)
def test_unpicklable_values_raise_a_helpful_error(
    make: Callable[[], object], type_name: str
) -> None:
    with pytest.raises(UnhashableValueError) as caught:
        content_key(make())
    message = str(caught.value)
    assert f"type {type_name} " in message
    for fix in ("__get_mandala_dict__", "Ignore(", "ValuePointer", "register_content_hasher"):
        assert fix in message
    assert "argument" not in message  # the engine adds the op and argument names
    assert isinstance(caught.value, TypeError)


def test_self_referencing_containers_raise_instead_of_crashing() -> None:
    looped_list: list[object] = [1]
    looped_list.append(looped_list)
    looped_dict: dict[str, object] = {}
    looped_dict["me"] = [looped_dict]
    looped_array = np.empty(1, dtype=object)
    looped_array[0] = looped_array
    for value in (looped_list, looped_dict, (looped_list,), looped_array):
        with pytest.raises(UnhashableValueError, match="contains itself"):
            content_key(value)


def test_self_describing_objects_that_refer_to_themselves_raise() -> None:
    class Loop:
        def __get_mandala_dict__(self) -> dict[str, object]:
            return {"self": self}

    with pytest.raises(UnhashableValueError, match="contains itself"):
        content_key(Loop())


def test_too_deeply_nested_values_raise() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(UnhashableValueError, match="nested too deeply"):
        content_key(deep)


def test_shared_but_acyclic_references_are_fine() -> None:
    shared = [1, 2]
    assert content_key([shared, shared]) == content_key([[1, 2], [1, 2]])
