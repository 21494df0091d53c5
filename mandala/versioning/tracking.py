"""``@track``: marks a function (or class) as a dependency for code versioning.

Code versioning is not available in this release; until it is, ``track`` returns what it is
given, unchanged, so code written for the original library runs as it is. Once versioning
lands, tracked functions are recorded in the dependencies of the calls that use them.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["track"]

T = TypeVar("T")


def track(obj: T) -> T:
    """Mark ``obj`` as a versioning dependency (currently a no-op marker; returns ``obj``)."""
    return obj
