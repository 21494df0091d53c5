"""Versioned ops (copied as ``vmod.py`` into a deps folder); executions are counted in
``pipeline_ops.EXECUTIONS``, a module outside the deps folder (so not a tracked global)."""

from mandala.imports import op, track
from tests.migrate import pipeline_ops as counter


@track
def helper(x):
    return x + 1


@op
def inc(x):
    counter.EXECUTIONS.append("inc")
    return helper(x)


@op
def square(x):
    counter.EXECUTIONS.append("square")
    return x * x + 1000  # changed: a new version
