"""Reads by key use indexes: no statement of a keyed read scans the calls or edges tables.

SQLite has no statistics on the temporary key tables, and once planned a three-way join with
a scan of ``call_edges``, so one ``get_call`` cost time proportional to the whole store. Each
statement the reads run is checked with ``EXPLAIN QUERY PLAN``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mandala.backends.records import DIRECTION_IN, DIRECTION_OUT
from mandala.imports import Storage, op


@op
def inc(x: int) -> int:
    return x + 1


@pytest.fixture
def filled(tmp_path: Path) -> Storage:
    storage = Storage(tmp_path / "s.db")
    with storage:
        for i in range(300):
            inc(i)
    return storage


def statements_of(storage: Storage, read) -> list[tuple[str, tuple]]:
    backend = storage.backend
    core = backend.core
    seen: list[tuple[str, tuple]] = []
    original = core.execute

    def spy(sql, params=()):
        if sql.lstrip().upper().startswith("SELECT"):
            seen.append((sql, tuple(params)))
        return original(sql, params)

    core.execute = spy  # type: ignore[method-assign]
    try:
        read(backend)
    finally:
        del core.execute
    return seen


_KEY_TABLES = ("SCAN k", "SCAN l", "lookup_keys", "lookup_calls")
"""Scans allowed: the temporary tables that hold the keys asked for."""


def full_scans(storage: Storage, statements: list[tuple[str, tuple]]) -> list[str]:
    """Plan steps that scan a table of the store (not a table of requested keys)."""
    found = []
    for sql, params in statements:
        plan = storage.backend.core.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        for row in plan:
            detail = row[-1]
            if detail.startswith("SCAN") and not any(t in detail for t in _KEY_TABLES):
                found.append(f"{detail}  <-  {sql}")
    return found


def test_keyed_reads_of_calls_use_indexes(filled: Storage) -> None:
    with filled:
        ref = inc(7)
    call = filled.get_ref_creator(ref)
    keys = [call.history_key]
    outputs = [r.history_key for r in call.outputs.values()]
    inputs = [r.history_key for r in call.inputs.values()]
    reads = {
        "load_calls": lambda b: b.calls.load_calls(keys),
        "load_calls_set": lambda b: b.calls.load_calls_set(keys),
        "touching outputs": lambda b: b.calls.load_calls_touching(outputs, DIRECTION_OUT),
        "touching inputs": lambda b: b.calls.load_calls_touching(inputs, DIRECTION_IN),
        "find_outputs": lambda b: b.calls.find_outputs(keys[0]),
        "creators": lambda b: b.calls.creators(outputs),
        "consumers": lambda b: b.calls.consumers(inputs),
        "dependents": lambda b: b.calls.dependents(keys),
        "load_refs": lambda b: b.values.load_refs(outputs),
    }
    for name, read in reads.items():
        statements = statements_of(filled, read)
        assert statements, name
        assert full_scans(filled, statements) == [], name
    assert [c.history_key for c in filled.backend.calls.load_calls_set(keys)] == keys
