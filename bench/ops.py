"""The functions under benchmark, in a module of their own so child processes can import them.

The op bodies count their executions, so each workload can check that a memo hit really did not
run the function (a benchmark of "hits" that silently recomputes would be meaningless).
"""

from __future__ import annotations

import time

from mandala.imports import op

__all__ = ["inc", "inc_plain", "scale", "scale_plain", "RUNS", "LAST_BODY_S"]

RUNS = {"inc": 0, "scale": 0}
"""Executions of each op body in this process."""

LAST_BODY_S = [0.0]
"""Seconds spent in the last execution of ``scale``'s body (to separate compute from storing)."""


def inc_plain(x: int) -> int:
    """The trivial op, undecorated (for joblib and the plain memoizers)."""
    return x + 1


@op
def inc(x: int) -> int:
    RUNS["inc"] += 1
    return x + 1


def scale_plain(a):  # type: ignore[no-untyped-def]
    return a * 2.0


@op
def scale(a):  # type: ignore[no-untyped-def]
    RUNS["scale"] += 1
    start = time.perf_counter()
    out = a * 2.0
    LAST_BODY_S[0] = time.perf_counter() - start
    return out
