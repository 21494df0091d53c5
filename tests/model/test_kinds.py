"""The stored kind of refs (mandala.model.kinds): the one mapping between ref classes and the
kind column of the store."""

from __future__ import annotations

import pytest

from mandala.backends import records
from mandala.model.kinds import (
    KIND_ATOM,
    KIND_DICT,
    KIND_LIST,
    KIND_NAMES,
    KIND_POINTER,
    KIND_SET,
    ref_from_kind,
    ref_kind,
)
from mandala.model.refs import AtomRef, DictRef, ListRef, Ref, SetRef

CONTENT, HISTORY = b"\x01" * 16, b"\x02" * 16


@pytest.mark.parametrize(
    ("cls", "kind"),
    [(AtomRef, KIND_ATOM), (ListRef, KIND_LIST), (DictRef, KIND_DICT), (SetRef, KIND_SET)],
)
def test_kind_and_class_round_trip(cls: type[Ref], kind: int) -> None:
    ref = cls(CONTENT, HISTORY, True, None)
    assert ref_kind(ref) == kind
    lazy = ref_from_kind(kind, CONTENT, HISTORY)
    assert type(lazy) is cls
    assert (lazy.content_key, lazy.history_key, lazy.in_memory, lazy.obj) == (
        CONTENT,
        HISTORY,
        False,
        None,
    )


def test_a_value_pointer_atom_is_the_pointer_kind_and_reads_back_as_an_atom() -> None:
    # Only a ValuePointer's ref has equal content and history keys.
    assert ref_kind(AtomRef(CONTENT, CONTENT, True, None)) == KIND_POINTER
    assert type(ref_from_kind(KIND_POINTER, CONTENT, CONTENT)) is AtomRef


def test_subclasses_get_the_kind_of_the_class_they_derive_from() -> None:
    class Tagged(ListRef):
        __slots__ = ()

    class Placeholder(Ref):
        __slots__ = ()

    assert ref_kind(Tagged(CONTENT, HISTORY, True, None)) == KIND_LIST
    assert ref_kind(Placeholder(CONTENT, HISTORY, False, None)) == KIND_ATOM


def test_the_backend_records_use_the_same_constants() -> None:
    assert (records.KIND_ATOM, records.KIND_POINTER, records.KIND_NAMES) == (
        KIND_ATOM,
        KIND_POINTER,
        KIND_NAMES,
    )
    assert sorted(KIND_NAMES) == [0, 1, 2, 3, 4]
