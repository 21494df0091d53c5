"""Property tests of computation frames over random small pipelines (docs/compatibility.md §d.3-d.5).

A pipeline draws a few inputs; each is prepared (``prep``) or used raw, trained with one or
more hyper-parameters (branching), and some of the models are scored against the data they
were trained on (merging). The frames built from the store must agree with the same pipeline
computed in plain Python.

Raw inputs, raw datasets and hyper-parameters come from disjoint value ranges: two raw values
that are equal are the same ref, and the frame's reuse heuristics (a new input variable reuses
any variable whose refs overlap that way, §d.4) would then legitimately merge unrelated columns.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mandala.imports import Storage, op

SETTINGS = settings(max_examples=30, deadline=None)


def prep_plain(x: int) -> int:
    return 3 * x + 1


def fit_plain(d: int, k: float) -> float:
    return d * k + 1


def score_plain(m: float, d: int) -> float:
    return m - d


@op(output_names=["p"])
def prep(x):
    return prep_plain(x)


@op(output_names=["m"])
def fit(d, k):
    return fit_plain(d, k)


@op(output_names=["s"])
def score(m, d):
    return score_plain(m, d)


OPS = {"prep": prep, "fit": fit, "score": score}


def _pipelines(max_preps: int) -> Any:
    # one input: (value, times prepared, [(hyper-parameter, scored?), ...])
    one = st.tuples(
        st.integers(min_value=0, max_value=30),
        st.integers(min_value=0, max_value=max_preps),
        st.lists(
            st.tuples(st.sampled_from([0.5, 1.5, 2.5, 3.5]), st.booleans()),
            max_size=3,
            unique_by=lambda t: t[0],
        ),
    )
    return st.lists(one, min_size=1, max_size=4)


pipelines = _pipelines(1)
"""Each dataset is prepared at most once: every column of the final history is one value."""

chained = _pipelines(3)
"""Datasets prepared up to three times (``prep(prep(x))``): feedback loops in the frame."""


def run(storage: Storage, pipeline: list) -> dict[str, Counter]:
    """Run the pipeline through the ops; return each op's distinct calls as value tuples.

    A call is identified by its history (where its inputs came from), so two calls with equal
    values but different histories count twice, as they are stored twice.
    """
    calls: dict[str, dict[Any, tuple]] = {"prep": {}, "fit": {}, "score": {}}
    finals: dict[Any, tuple] = {}
    with storage:
        for x, preps, fits in pipeline:
            if preps:
                data, d_value, d_key = x, x, ("raw", x)
                for _ in range(preps):
                    before = d_value
                    data = prep(data)
                    d_value, d_key = prep_plain(d_value), ("prep", d_key)
                    calls["prep"][d_key] = (before, d_value)
            else:
                data = x + 1000  # raw datasets: a range of their own
                d_value, d_key = x + 1000, ("raw", x + 1000)
            for k, scored in fits:
                model = fit(data, k)
                m_value, m_key = fit_plain(d_value, k), ("fit", d_key, k)
                calls["fit"][m_key] = (d_value, k, m_value)
                if scored:
                    score(model, data)
                    s_value = score_plain(m_value, d_value)
                    calls["score"][("score", m_key)] = (m_value, d_value, s_value)
                    x_value = x if preps == 1 else None
                    finals[("score", m_key)] = (x_value, d_value, k, m_value, s_value)
    result = {name: Counter(c.values()) for name, c in calls.items()}
    result["history"] = Counter(finals.values())
    return result


def norm(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def table(df: Any, columns: list[str]) -> Counter:
    return Counter(tuple(norm(row[c]) for c in columns) for row in df.to_dict("records"))


COLUMNS = {"prep": ["x", "p"], "fit": ["d", "k", "m"], "score": ["m", "d", "s"]}


@SETTINGS
@given(chained)
def test_the_frame_of_an_op_has_one_row_per_stored_call(pipeline: list) -> None:
    storage = Storage()
    expected = run(storage, pipeline)
    for name, op_ in OPS.items():
        cf = storage.cf(op_)
        df = cf.df(include_calls=False)
        assert len(df) == sum(expected[name].values()) == len(cf.fs[name])
        if len(df):
            assert table(df, COLUMNS[name]) == expected[name]
        with_calls = cf.df()
        assert len(with_calls) == len(df)
        if len(df):
            assert {c.op.name for c in with_calls[name]} == {name}
            assert len({c.hid for c in with_calls[name]}) == len(df)


def _frames(storage: Storage) -> list[Any]:
    return [storage.cf(op_) for op_ in OPS.values()]


@SETTINGS
@given(chained)
def test_expand_all_is_idempotent(pipeline: list) -> None:
    storage = Storage()
    run(storage, pipeline)
    for start in _frames(storage):
        once = start.expand_all()
        twice = once.expand_all()
        assert twice.vs == once.vs
        assert twice.fs == once.fs
        assert twice.edges() == once.edges()


@SETTINGS
@given(chained)
def test_every_expansion_keeps_the_frame_invariant(pipeline: list) -> None:
    storage = Storage()
    run(storage, pipeline)
    for start in _frames(storage):
        for frame in (
            start.expand_back(),
            start.expand_forward(),
            start.expand_back(recursive=True),
            start.expand_forward(recursive=True),
            start.expand_all(),
            start.expand_all(reuse_existing=False),
        ):
            frame._check()


@SETTINGS
@given(pipelines)
def test_the_history_of_the_final_op_matches_plain_python(pipeline: list) -> None:
    storage = Storage()
    expected = run(storage, pipeline)
    cf = storage.cf(score).expand_back(recursive=True)
    df = cf.df(include_calls=False)
    assert len(df) == sum(expected["score"].values())
    if not len(df):
        return
    # x (prep's input) is a column when some scored dataset was prepared; raw ones leave it empty
    prepared = any(t[0] is not None for t in expected["history"])
    assert ("x" in df.columns) == prepared
    if prepared:
        assert table(df, ["x", "d", "k", "m", "s"]) == expected["history"]
    else:
        assert table(df, ["d", "k", "m", "s"]) == Counter(
            {t[1:]: n for t, n in expected["history"].items()}
        )
