"""Importing the results of the original library (pymandala 0.2) into a store of this release.

``from_pymandala(OLD.db, storage)`` (or the command ``mandala migrate OLD.db NEW``) copies every
op, call, value, collection and code version of an original SQLite store into ``storage``,
re-keyed under this release's ids, so that the same script run on the new store computes
nothing. The old file is only read (opened read-only). See ``docs/migration.md``.
"""

from __future__ import annotations

import os
import time

from mandala.migrate.convert import Converter
from mandala.migrate.old_store import OldStore
from mandala.migrate.report import Counts, MigrationReport, Problem
from mandala.storage import Storage

__all__ = ["from_pymandala", "MigrationReport", "Counts", "Problem"]


def from_pymandala(
    old_path: str | os.PathLike[str],
    storage: Storage,
    allow_pickle: bool = False,
    batch_size: int = 1000,
) -> MigrationReport:
    """Copy an original (pymandala 0.2) SQLite store into ``storage``, re-keyed under our ids.

    Idempotent: a second run converts nothing and reports everything as already present. What
    cannot be converted (a value whose type cannot be loaded, and the calls that need it) is
    listed in the report's ``problems`` while everything else is migrated.

    Args:
        old_path: the original's ``.db`` file; opened read-only, never modified.
        storage: the target store (a new or existing store of this release). For a versioned
            original store, it must be versioned too (``deps_path``), over the same code.
        allow_pickle: also unpickle values whose types are outside the safe allow-list (user
            classes...). Unpickling runs code named by the store: only for stores you trust.
        batch_size: calls per committed transaction (an interrupted run resumes from there).

    Returns:
        A :class:`MigrationReport` with counts and problems.

    Raises:
        MigrationError: ``old_path`` is not a store of the original library, or the store and
            the target disagree on versioning.

    Example:
        >>> storage = Storage("new.db")                                   # doctest: +SKIP
        >>> report = from_pymandala("old.db", storage)                     # doctest: +SKIP
        >>> report.calls.converted, report.problems                       # doctest: +SKIP
        (120, [])
    """
    started = time.perf_counter()
    report = MigrationReport()
    old = OldStore(old_path, allow_pickle=allow_pickle)
    try:
        from mandala.migrate.versions import version_map

        versions = version_map(old, storage, report)
        Converter(old, storage, report, versions, batch_size).run()
    finally:
        old.close()
    report.seconds = time.perf_counter() - started
    return report
