"""Ops run by worker processes in the parallel tests: importable by name, never in a test body.

Every op appends one line per real execution to the file passed as ``log`` (an ignored
argument, so it is not part of the call's identity): counting lines across processes proves
what ran, and how often. Appends of one short line are atomic, whichever process writes.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from mandala.imports import MList, MSet, NewArgDefault, op


def note(log: str | None, *parts: object) -> None:
    if log is not None:
        with open(log, "a") as file:
            file.write(" ".join(str(part) for part in parts) + "\n")


def executions(log: str | os.PathLike[str]) -> list[str]:
    """The lines written by executions so far (one per execution)."""
    path = Path(log)
    return path.read_text().splitlines() if path.exists() else []


@op(ignore_args=["log"])
def square(x: int, log: str | None = None) -> int:
    note(log, "square", x)
    return x * x


@op(ignore_args=["log"])
def add(x: int, y: int, log: str | None = None) -> int:
    note(log, "add", x, y)
    return x + y


@op(output_names=["quotient", "remainder"], ignore_args=["log"])
def divide(x: int, y: int, log: str | None = None) -> tuple[int, int]:
    note(log, "divide", x, y)
    return x // y, x % y


@op(ignore_args=["log"])
def total(xs: MList[int], log: str | None = None) -> int:
    note(log, "total", len(xs))
    return sum(xs)


@op(ignore_args=["log", "bad"])
def checked(x: int, bad: int, log: str | None = None) -> int:
    """Fails for ``x == bad`` (``bad`` is not part of the call's identity: a re-run with
    another ``bad`` is the same call)."""
    note(log, "checked", x)
    if x == bad:
        raise ValueError(f"checked refuses {x}")
    return x + 1000


@op(ignore_args=["log", "gate"])
def slow(x: int, seconds: float, log: str | None = None, gate: str | None = None) -> int:
    """Sleeps ``seconds`` (and, with a ``gate`` file path, first waits for that file)."""
    note(log, "slow", x, os.getpid())
    if gate is not None:
        while not os.path.exists(gate):
            time.sleep(0.02)
    time.sleep(seconds)
    return x * 10


@op
def pair(x: int):  # no annotation, no names: one output unless a tuple comes back
    return (x, x) if x < 0 else x


class Unpickled:
    """A value that counts, per process, how many times it was unpickled."""

    loads = 0

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return _rebuild, (self.payload,)


def _rebuild(payload: bytes) -> Unpickled:
    Unpickled.loads += 1
    return Unpickled(payload)


@op(ignore_args=["log"])
def make_blob(size: int, log: str | None = None) -> Unpickled:
    note(log, "make_blob", size)
    return Unpickled(os.urandom(size))


def mandala_location() -> str:
    """Where the process running this imported mandala from (run it on a worker)."""
    import mandala

    return str(mandala.__file__)


@op(ignore_args=["log"])
def sum_of_squares(x: int, y: int, log: str | None = None) -> int:
    """Calls another op in its body: a plain function call there, on a worker as on the driver."""
    note(log, "sum_of_squares", x, y)
    return square(x) + square(y)


@op(nout="var")
def spread(n: int):  # how many outputs: known only once it ran
    return tuple(range(n))


@op
def union_size(xs: MSet[int]) -> int:
    return len(xs)


@op
def scaled(x: int, factor: int = NewArgDefault(1)) -> int:  # the marker is the API
    return x * factor


@op
def shifted(x: int, options: dict) -> int:
    return x + options["offset"]


@op(ignore_args=["log"])
def zeros(n: int, log: str | None = None) -> np.ndarray:
    """An array result (Ray reads arrays out of its object store read-only, zero-copy)."""
    note(log, "zeros", n)
    return np.zeros(n)


class Unpicklable(Exception):
    """An exception that cannot travel back from a worker (it holds a lock)."""

    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


@op
def raise_unpicklable(x: int) -> int:
    raise Unpicklable()
