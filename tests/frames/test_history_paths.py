"""The column-wise and the element-wise history computations give the same tables."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mandala.frames import history
from mandala.imports import Storage, op


@op(output_names=["data"])
def make(seed):
    return seed * 10


@op(output_names=["model"])
def train(data, rate):
    return data + rate


@op(output_names=["result"])
def score(model, data):
    return model - data


def _rows(df):
    return {tuple(str(v) for v in row) for row in df.itertuples(index=False)}


@settings(deadline=None, max_examples=25)
@given(
    seeds=st.lists(st.integers(0, 20), min_size=1, max_size=6, unique=True),
    rates=st.lists(st.sampled_from([0.5, 0.25, 0.125]), min_size=1, max_size=3, unique=True),
    scored=st.integers(0, 3),
)
def test_both_history_paths_agree(seeds, rates, scored) -> None:
    storage = Storage()
    with storage:
        for i, seed in enumerate(seeds):
            data = make(seed)
            for rate in rates:
                model = train(data, rate)
                if (i + int(rate * 8)) % 4 < scored:  # some models are never scored
                    score(model, data)
    frames = [storage.cf(train).expand_all(), storage.cf(make).expand_forward(recursive=True)]
    for frame in frames:
        fast = frame.df(values="refs")
        original = history._columnar_tables
        history._columnar_tables = lambda *args: None  # force the element-wise path
        try:
            slow = frame.df(values="refs")
        finally:
            history._columnar_tables = original
        assert list(fast.columns) == list(slow.columns)
        assert _rows(fast) == _rows(slow)


def test_the_column_wise_path_is_taken_for_a_plain_pipeline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = Storage()
    with storage:
        for seed in range(3):
            score(train(make(seed), 0.5), make(seed))
    taken = []
    original = history._columnar_tables

    def spy(*args):
        result = original(*args)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(history, "_columnar_tables", spy)
    df = storage.cf(score).expand_back(recursive=True).df(include_calls=False)
    assert taken == [True]
    assert sorted(df["result"]) == [0.5, 0.5, 0.5]
