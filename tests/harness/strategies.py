"""Hypothesis strategies shared by the hashing, serialization, memoization and frame tests.

One definition each, so that every test that says "any builtin value" or "any key" draws from
the same space.
"""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["keys", "names", "scalars", "hashables", "builtin_values", "json_like"]

keys = st.binary(min_size=16, max_size=16)
"""A 16-byte key, as the hashing layer makes them (content, history and call keys)."""

names = st.text(min_size=1, max_size=8)
"""A short non-empty name (an argument, output or op name)."""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**300), max_value=2**300),  # past 64 bits, on purpose
    st.floats(allow_nan=True),
    st.complex_numbers(allow_nan=True),
    st.text(),
    st.binary(),
)
"""Every builtin scalar type, NaNs and huge integers included."""

hashables = st.recursive(
    scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4), max_leaves=8
)
"""Builtin values that can be dict keys and set elements: scalars, tuples, frozensets."""

builtin_values = st.recursive(
    hashables,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(hashables, inner, max_size=4)
        | st.sets(hashables, max_size=4)
        | st.frozensets(hashables, max_size=4)
    ),
    max_leaves=20,
)
"""Any nesting of builtin containers over :data:`scalars`."""

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_like = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
"""JSON-like op inputs: NaN-free scalars, lists and str-keyed dicts (equal values compare equal,
so a memo hit can be checked with ``==``)."""
