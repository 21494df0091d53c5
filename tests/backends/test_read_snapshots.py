"""Reads of many calls see one state of the store while another process writes.

Such a read takes several statements (the calls' rows, then their edges). Here another storage
on the same store commits new calls and deletes old ones right between the two, and the read
must show exactly the calls of the state it began on, each with all its edges.
"""

from __future__ import annotations

from typing import Any

import pytest

from mandala.imports import Storage, op
from tests.conftest import PersistentStore


@op
def scaled(i: int) -> int:
    return i * 10


_FIRST = 40


def _write_between_reads(
    monkeypatch: pytest.MonkeyPatch, reader: Storage, writer: Storage
) -> list[bool]:
    """Once ``reader`` has read the rows of some calls (before their edges), let ``writer``
    add calls and delete some of the first ones; returns a list that is non-empty once done."""
    backend = reader.backend.core
    cls = type(backend)
    fired: list[bool] = []

    def write_once(self: Any, sql: str) -> None:
        if self is backend and not fired and "c.history_key" in sql and "call_edges" not in sql:
            fired.append(True)
            with writer:
                for i in range(_FIRST, _FIRST + 10):
                    scaled(i)
            writer.drop_calls(
                writer.cf(scaled).df()["scaled"].tolist()[:5], delete_dependents=False
            )

    original_columns, original_execute = cls.columns, cls.execute

    def columns(self: Any, sql: str, params: tuple, kinds: Any) -> Any:
        found = original_columns(self, sql, params, kinds)
        write_once(self, sql)
        return found

    def execute(self: Any, sql: str, params: Any = ()) -> Any:
        cursor = original_execute(self, sql, params)
        write_once(self, sql)
        return cursor

    monkeypatch.setattr(cls, "columns", columns)
    monkeypatch.setattr(cls, "execute", execute)
    return fired


def _stored(persistent: PersistentStore) -> tuple[Storage, Storage]:
    first = persistent.open()
    with first:
        for i in range(_FIRST):
            scaled(i)
    return persistent.open(), persistent.open()


def test_a_frame_reads_one_state_while_another_storage_writes(
    persistent: PersistentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = _stored(persistent)
    fired = _write_between_reads(monkeypatch, reader, writer)
    table = reader.cf(scaled).df()
    assert fired
    assert sorted(table["i"]) == list(range(_FIRST))
    assert sorted(table["var_0"]) == [10 * i for i in range(_FIRST)]
    monkeypatch.undo()
    assert len(persistent.open().cf(scaled).df()) == _FIRST + 10 - 5  # the writes did land


def test_calls_read_as_objects_see_one_state_while_another_storage_writes(
    persistent: PersistentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = _stored(persistent)
    fired = _write_between_reads(monkeypatch, reader, writer)
    calls = reader.backend.calls.load_calls_of_op("scaled")
    assert fired
    assert len(calls) == _FIRST
    assert all(len(call.inputs) == 1 and len(call.outputs) == 1 for call in calls)
