"""Ops of the stores built by ``build_old_stores.py``: imported by the original library (in its
own venv) to build them, and by the tests to re-run the same code on this release.

``from mandala.imports import *`` resolves to whichever library is on the path. ``EXECUTIONS``
counts real executions, so that a test can assert that a migrated store computes nothing.
"""

from typing import Any

import numpy as np
import pandas as pd

from mandala.imports import Ignore, MDict, MList, NewArgDefault, Storage, op  # noqa: F401

EXECUTIONS: list[str] = []


@op(output_names=["total", "difference"])
def add_sub(x: int, y: int = 3):  # unannotated: the original rejects Any for 2 outputs
    EXECUTIONS.append("add_sub")
    return x + y, x - y


@op
def scale(x: Any, factor: float = 2.0, verbose: bool = False, offset: Any = NewArgDefault(0)):  # noqa: B008
    EXECUTIONS.append("scale")
    return x * factor + offset


@op(ignore_args=("log",))
def noisy(x: int, log: Any = None) -> int:
    EXECUTIONS.append("noisy")
    return x + 100


@op
def make_range(n: int) -> MList[int]:
    EXECUTIONS.append("make_range")
    return list(range(n))


@op
def total(xs: MList[int]) -> int:
    EXECUTIONS.append("total")
    return sum(xs)


@op
def doubled(d: MDict[str, int]) -> MDict[str, int]:
    EXECUTIONS.append("doubled")
    return {k: v * 2 for k, v in d.items()}


@op(output_names=["array", "frame"])
def tables(n: int):  # unannotated, as add_sub
    EXECUTIONS.append("tables")
    return np.arange(n, dtype=np.float64), pd.DataFrame({"a": list(range(n)), "b": ["x"] * n})


@op
def column_sum(frame: Any) -> float:
    EXECUTIONS.append("column_sum")
    return float(frame["a"].sum())


def plain_script(storage: Any) -> None:
    """Plain ops: several outputs, defaults, NewArgDefault, ignored args."""
    with storage:
        for x in range(3):
            s, d = add_sub(x)
            scale(s)
            scale(d, factor=3.0)
            noisy(s, log=Ignore("a log line"))
        add_sub(10, y=5)
        scale(4, offset=0)  # equal to the NewArgDefault: the same call as scale(4)


def collections_script(storage: Any) -> None:
    """MList / MDict inputs and outputs, elements feeding other ops."""
    with storage:
        xs = make_range(4)
        total(xs)
        total([xs[0], xs[3], 7])
        s, _ = add_sub(xs[1])
        doubled({"p": 1, "q": s})
        d = doubled({"a": 5})
        total([d["a"], 1])


def pipeline_script(storage: Any) -> None:
    """numpy / pandas values and a multi-step pipeline."""
    with storage:
        for n in (2, 3):
            array, frame = tables(n)
            c = column_sum(frame)
            scale(c)
            scale(array)


class Unknown:
    """A user class: its pickles name tests.migrate.pipeline_ops.Unknown (not allow-listed)."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown) and other.v == self.v

    def __hash__(self) -> int:
        return hash(self.v)


@op
def wrap_unknown(v: int) -> Any:
    EXECUTIONS.append("wrap_unknown")
    return Unknown(v)


@op
def unwrap_unknown(u: Any) -> int:
    EXECUTIONS.append("unwrap_unknown")
    return u.v


def unknown_script(storage: Any) -> None:
    """A value of a user class (needs allow_pickle), a call depending on it, and one that does
    not."""
    with storage:
        unwrap_unknown(wrap_unknown(1))
        add_sub(1)
